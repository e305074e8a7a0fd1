import { afterEach, describe, expect, it, vi } from "vitest";
import { flushSync } from "svelte";
import { makeBoard, makeVersions, summary } from "../../test/fixtures";
import { byTestId, render, text, waitFor } from "../../test/util";
import { VersionPalette } from "../versions";
import { Releases } from "../stores/releases.svelte";
import ReleasesView from "./ReleasesView.svelte";
import RingsView from "./RingsView.svelte";

let cleanup: (() => void)[] = [];
afterEach(() => {
  cleanup.forEach((fn) => fn());
  cleanup = [];
});

function paletteFor(board = makeBoard()) {
  return new VersionPalette(board.rings.flatMap((r) => r.pools.flatMap((p) => p.versions.map((v) => v.version))));
}

function renderBoard(onopenpool = vi.fn(), board = makeBoard()) {
  const view = render(RingsView, { board, palette: paletteFor(board), onopenpool });
  cleanup.push(view.destroy);
  return { ...view, onopenpool };
}

describe("Rings board", () => {
  it("renders one lane per ring, in pipeline order, with step numbers and totals", () => {
    const { target } = renderBoard();
    const lanes = byTestId(target, "ring-lane");
    expect(lanes.map((l) => l.dataset.ring)).toEqual(["Test", "Pilot", "Prod"]);
    expect(lanes.map((l) => text(l.querySelector(".step")))).toEqual(["1", "2", "3"]);
    expect(text(lanes[1])).toContain("18 hosts");
    expect(text(lanes[1])).toContain("31 users");
    expect(text(lanes[1])).toContain("mostly on 2026.1113.2");
  });

  it("puts each pool card in its ring's lane", () => {
    const { target } = renderBoard();
    const lanes = byTestId(target, "ring-lane");
    const names = lanes.map((lane) => byTestId(lane, "pool-card").map((c) => text(c.querySelector(".name"))));
    expect(names).toEqual([["hp-test-01"], ["hp-pilot-01", "hp-pilot-02"], ["hp-prod-01"]]);
  });

  it("shows the version legend with host counts and the state counts", () => {
    const { target } = renderBoard();
    const card = byTestId(target, "pool-card").find((c) => text(c).includes("hp-pilot-01"))!;
    const legend = byTestId(card, "version-legend").map((li) => text(li));
    expect(legend).toEqual(["2026.1127.1 2", "2026.1113.2 10"]);
    expect(text(card)).toContain("10 available");
    expect(text(card)).toContain("2 unavailable");
    expect(text(card)).toContain("31 users");
    // Unavailable turns red only when there is some.
    expect(card.querySelector(".stat.bad")).not.toBeNull();
    const healthy = byTestId(target, "pool-card").find((c) => text(c).includes("hp-pilot-02"))!;
    expect(healthy.querySelector(".stat.bad")).toBeNull();
  });

  it("sizes the stacked bar segments by host count in the version's colour", () => {
    const { target } = renderBoard();
    const card = byTestId(target, "pool-card").find((c) => text(c).includes("hp-prod-01"))!;
    const segments = [...card.querySelectorAll<HTMLElement>(".segment")];
    expect(segments.map((s) => s.style.flexGrow)).toEqual(["40", "3"]);
    expect(segments[1].style.background).toBe("var(--version-unknown)");
  });

  it("lists unassigned pools apart, with how to tag them", () => {
    const { target } = renderBoard();
    const section = target.querySelector(".unassigned")!;
    expect(text(section)).toContain("hp-kiosk");
    expect(text(section)).toContain("Tag a host pool with ringmaster-ring=<ring> to place it in a ring");
    // Not inside any lane.
    expect(byTestId(target, "ring-lane").some((l) => text(l).includes("hp-kiosk"))).toBe(false);
  });

  it("opens a pool on click and on Enter", () => {
    const { target, onopenpool } = renderBoard();
    const cards = byTestId(target, "pool-card");
    cards[0].click();
    expect(onopenpool).toHaveBeenLastCalledWith(expect.objectContaining({ name: "hp-test-01" }));
    expect(cards[2].getAttribute("tabindex")).toBe("0");
    cards[2].dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
    expect(onopenpool).toHaveBeenLastCalledWith(expect.objectContaining({ name: "hp-pilot-02" }));
    expect(onopenpool).toHaveBeenCalledTimes(2);
  });

  it("shows skeleton lanes while the first sync runs, and an empty state when there are no pools", () => {
    const empty = { ...makeBoard(), rings: [], unassigned: [] };
    const running = render(RingsView, { board: empty, palette: new VersionPalette(), running: true, onopenpool: vi.fn() });
    cleanup.push(running.destroy);
    expect(running.target.querySelector('[aria-busy="true"]')).not.toBeNull();
    expect(text(running.target)).toContain("First sync in progress");

    const idle = render(RingsView, { board: empty, palette: new VersionPalette(), running: false, onopenpool: vi.fn() });
    cleanup.push(idle.destroy);
    expect(text(idle.target)).toContain("No host pools found");
    expect(byTestId(idle.target, "ring-lane")).toHaveLength(0);
  });

  it("uses the same colour for a version on the board and on the Releases screen", () => {
    const board = makeBoard();
    const versions = makeVersions();
    const palette = new VersionPalette([
      ...board.rings.flatMap((r) => r.pools.flatMap((p) => p.versions.map((v) => v.version))),
      ...versions.map((v) => v.name),
    ]);
    const rings = render(RingsView, { board, palette, onopenpool: vi.fn() });
    // Nothing to load: the releases list comes from the inventory's versions here.
    const releases = new Releases();
    releases.list = [];
    releases.retention = { policy: { keepNewest: 5, endOfLifeDays: 180 }, keep: [], delete: [] };
    const images = render(ReleasesView, { releases, versions, palette, onopen: vi.fn(), onclose: vi.fn() });
    cleanup.push(rings.destroy, images.destroy);
    flushSync();

    const imageRows = byTestId(images.target, "release-row");
    expect(imageRows.map((r) => r.dataset.version)).toEqual(["2026.1127.1", "2026.1113.2", "2026.1030.1"]);
    for (const row of imageRows) {
      const version = row.dataset.version!;
      const swatch = row.querySelector<HTMLElement>(".swatch")!;
      const legend = byTestId(rings.target, "version-legend").find((li) => li.dataset.version === version)!;
      expect(legend.querySelector<HTMLElement>(".swatch")!.style.background).toBe(swatch.style.background);
    }
    expect(new Set(imageRows.map((r) => r.querySelector<HTMLElement>(".swatch")!.style.background)).size).toBe(3);
  });

  it("offers Roll out and Roll back in each card's menu, by mouse and keyboard, without opening the pool", async () => {
    const onrollout = vi.fn();
    const onrollback = vi.fn();
    const onopenpool = vi.fn();
    const board = makeBoard();
    const view = render(RingsView, { board, palette: paletteFor(board), onopenpool, onrollout, onrollback });
    cleanup.push(view.destroy);
    const menus = byTestId(view.target, "pool-menu");
    expect(menus).toHaveLength(5);
    const button = menus[1];
    expect(button.getAttribute("aria-label")).toBe("Actions for hp-pilot-01");
    expect(button.getAttribute("aria-haspopup")).toBe("menu");

    button.click();
    await waitFor(() => expect(document.activeElement?.getAttribute("data-testid")).toBe("pool-rollout"));
    expect(button.getAttribute("aria-expanded")).toBe("true");
    byTestId(view.target, "pool-rollout")[0].click();
    expect(onrollout).toHaveBeenCalledWith(expect.objectContaining({ name: "hp-pilot-01" }), "Pilot");
    await waitFor(() => expect(byTestId(view.target, "pool-rollout")).toHaveLength(0));
    expect(document.activeElement).toBe(button);

    // Keyboard: ArrowDown opens on the first item, ArrowDown moves, Escape closes back to the button.
    button.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown", bubbles: true }));
    await waitFor(() => expect(document.activeElement?.getAttribute("data-testid")).toBe("pool-rollout"));
    document.activeElement!.dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowDown", bubbles: true }));
    expect(document.activeElement?.getAttribute("data-testid")).toBe("pool-rollback");
    document.activeElement!.dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true }));
    await waitFor(() => expect(byTestId(view.target, "pool-rollback")).toHaveLength(0));
    expect(document.activeElement).toBe(button);

    button.click();
    (await waitFor(() => byTestId(view.target, "pool-rollback")[0]!)).click();
    expect(onrollback).toHaveBeenCalledWith(expect.objectContaining({ name: "hp-pilot-01" }));
    expect(onopenpool).not.toHaveBeenCalled();
  });

  it("shows each pool's unfinished rollout under its card and opens it, and a whole ring from its lane", () => {
    const board = makeBoard();
    const [first, second] = [board.rings[0].pools[0], board.rings[1].pools[0]];
    const onopenrollout = vi.fn();
    const onringrollout = vi.fn();
    const onringrollback = vi.fn();
    const rollouts = [
      summary("new", "running", { hostPoolId: first.id.toUpperCase(), done: 3, total: 4 }),
      summary("old", "failed", { hostPoolId: first.id }),
      summary("done", "completed", { hostPoolId: second.id }),
    ];
    const view = render(RingsView, { board, palette: paletteFor(board), onopenpool: vi.fn(), rollouts, onopenrollout, onringrollout, onringrollback });
    cleanup.push(view.destroy);
    const strips = byTestId(view.target, "pool-activity");
    expect(strips).toHaveLength(1);
    expect(strips[0].dataset.state).toBe("running");
    expect(text(strips[0])).toBe("Rollout to 2026.1127.1 Running · 3/4");
    strips[0].click();
    expect(onopenrollout).toHaveBeenCalledWith("new");
    const lane = byTestId(view.target, "ring-lane")[1];
    (byTestId(lane, "ring-rollout")[0] as HTMLButtonElement).click();
    (byTestId(lane, "ring-rollback")[0] as HTMLButtonElement).click();
    expect(onringrollout).toHaveBeenCalledWith(board.rings[1].key, "Pilot");
    expect(onringrollback).toHaveBeenCalledWith(board.rings[1].key, "Pilot");
  });

  it("counts a pool's standby hosts apart from its states", () => {
    const board = makeBoard();
    board.rings[0].pools[0] = { ...board.rings[0].pools[0], standby: 3 };
    const view = render(RingsView, { board, palette: paletteFor(board), onopenpool: vi.fn() });
    cleanup.push(view.destroy);
    const standby = byTestId(view.target, "pool-standby");
    expect(standby).toHaveLength(1);
    expect(text(standby[0])).toBe("3 standby");
  });

  it("has no menu when nothing can be started from the board", () => {
    const { target } = renderBoard();
    expect(byTestId(target, "pool-menu")).toHaveLength(0);
  });
});
