import { emit } from "@tauri-apps/api/event";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ROLLOUT_ID, makeRollout, summary } from "../../test/fixtures";
import { byTestId, findByTestId, render, sleep, text, waitFor } from "../../test/util";
import type { RolloutState, RolloutView } from "../bindings";
import RolloutDetail from "../components/RolloutDetail.svelte";
import { CHART_SERIES } from "../rollouts";
import { ROLLOUT_EVENT, Rollouts } from "../stores/rollouts.svelte";
import { VersionPalette } from "../versions";
import RolloutsView from "./RolloutsView.svelte";

let calls: { cmd: string; args: unknown }[] = [];
let current: RolloutView;
let cleanup: (() => void)[] = [];

const palette = new VersionPalette(["2026.1127.1", "2026.1113.2"]);
const count = (cmd: string) => calls.filter((c) => c.cmd === cmd).length;

function withState(state: RolloutState, extra: Partial<RolloutView> = {}): RolloutView {
  return { ...current, state, ...extra };
}

beforeEach(() => {
  calls = [];
  current = makeRollout(["done", "creating", "waitingForLogoff", "queued"]);
  mockIPC(
    (cmd, args) => {
      calls.push({ cmd, args });
      switch (cmd) {
        case "list_rollouts":
          return [
            summary(ROLLOUT_ID, current.state, { done: current.done, total: current.total }),
            summary("ro-old", "completed", { createdAt: "2026-11-20T08:00:00Z", kind: "rollback", poolName: "hp-pilot-01" }),
          ];
        case "get_rollout":
          return current;
        case "pause_rollout":
          return (current = withState("paused", { reason: "Paused by the operator" }));
        case "abort_rollout":
          return (current = withState("aborted", { reason: "Aborted by the operator" }));
        case "retry_rollout":
        case "resume_rollout":
          return (current = withState("running", { reason: null }));
        default:
          return Promise.reject(`command ${cmd} not found`);
      }
    },
    { shouldMockEvents: true },
  );
});

afterEach(() => {
  cleanup.forEach((fn) => fn());
  cleanup = [];
  clearMocks();
});

async function openView(selectedId: string | null = null) {
  const rollouts = new Rollouts();
  await rollouts.start();
  const onselect = vi.fn();
  const view = render(RolloutsView, { rollouts, palette, selectedId, onselect });
  cleanup.push(view.destroy, () => rollouts.stop());
  await findByTestId(view.target, "rollout-detail");
  return { ...view, rollouts, onselect };
}

function renderDetail(rollout: RolloutView) {
  const onaction = vi.fn();
  const view = render(RolloutDetail, { rollout, history: [], palette, onaction });
  cleanup.push(view.destroy);
  return { ...view, onaction };
}

const actionsOf = (root: HTMLElement) => byTestId(root, "rollout-action").map((b) => b.dataset.action);

describe("Rollouts view", () => {
  it("lists rollouts newest first and shows the newest one's detail", async () => {
    const { target } = await openView();
    expect(target.querySelector('[data-testid="rollouts-view"]')).not.toBeNull();
    const items = byTestId(target, "rollout-item");
    expect(items.map((i) => i.dataset.rolloutId)).toEqual([ROLLOUT_ID, "ro-old"]);
    expect(items[0].getAttribute("aria-current")).toBe("true");
    expect(text(items[0])).toContain("hp-test-01");
    expect(text(items[0])).toContain("Running");
    expect(text(items[0])).toContain("1/4");
    expect(text(items[1])).toContain("Rollback");
    expect(text(byTestId(target, "rollout-detail")[0].querySelector("h2"))).toBe("Rollout of hp-test-01 to 2026.1127.1");
  });

  it("renders one tile per host coloured by stage, with a count per stage", async () => {
    const { target } = await openView();
    const tiles = byTestId(target, "rollout-host");
    expect(tiles.map((t) => t.dataset.stage)).toEqual(["done", "creating", "waitingForLogoff", "queued"]);
    expect(tiles.map((t) => t.classList.contains(`stage-${t.dataset.stage}`))).toEqual([true, true, true, true]);
    expect(tiles[2].title).toBe("avd-h3.corp.contoso.com\nWaiting for log-off\n3 users still connected");
    const legend = Object.fromEntries(byTestId(target, "stage-legend").map((li) => [li.dataset.stage, text(li.querySelector(".count"))]));
    expect(legend).toMatchObject({ done: "1", creating: "1", waitingForLogoff: "1", queued: "1", failed: "0", skipped: "0" });
    expect(text(byTestId(target, "rollout-users")[0])).toBe("3");
    expect(text(byTestId(target, "rollout-eta")[0])).toBe("about 25 min left");
  });

  it("shows a failed host's error and request id when its tile is focused", async () => {
    current = makeRollout(["done", "failed", "queued"], { state: "failed", reason: "Stopped after 1 failed host." });
    const { target } = await openView();
    const detail = byTestId(target, "host-detail")[0];
    // The first failed host is shown before anything is picked, and is the grid's Tab stop.
    expect(text(detail)).toContain("The VM did not register");
    const tiles = byTestId(target, "rollout-host");
    expect(tiles.map((t) => t.tabIndex)).toEqual([-1, 0, -1]);

    tiles[0].focus();
    await waitFor(() => expect(text(detail)).toContain("avd-h1"));
    expect(byTestId(detail, "host-error")).toHaveLength(0);
    tiles[0].dispatchEvent(new KeyboardEvent("keydown", { key: "ArrowRight", bubbles: true }));
    expect(document.activeElement).toBe(tiles[1]);
    await waitFor(() => expect(text(byTestId(detail, "host-error")[0])).toBe("The VM did not register with the host pool within 20 minutes."));
    expect(text(byTestId(detail, "host-request-id")[0])).toBe("9d1c5e7a-0b3f-4c2d-8e6a-1f2b3c4d5e6f");
  });

  it.each([
    ["running", ["pause", "abort"]],
    ["paused", ["resume", "abort"]],
    ["failed", ["retry", "resume", "abort"]],
    ["completed", []],
    ["aborted", []],
  ] as const)("offers the right buttons when the rollout is %s", (state, expected) => {
    const { target } = renderDetail(withState(state));
    expect(actionsOf(target)).toEqual(expected);
    expect(target.querySelector('[data-testid="rollout-state"]')?.getAttribute("data-state")).toBe(state);
  });

  it("shows why a rollout failed in a red callout with a retry button", async () => {
    current = makeRollout(["done", "failed", "queued"], {
      state: "failed",
      reason: "Stopped after 1 failed host (the policy allows 1).",
    });
    const { target } = await openView();
    const callout = byTestId(target, "rollout-reason")[0];
    expect(callout.getAttribute("role")).toBe("alert");
    expect(text(callout)).toContain("Stopped after 1 failed host (the policy allows 1).");
    byTestId(callout, "retry-failed")[0].click();
    await waitFor(() => expect(calls.find((c) => c.cmd === "retry_rollout")?.args).toEqual({ id: ROLLOUT_ID }));
    await waitFor(() => expect(actionsOf(target)).toEqual(["pause", "abort"]));
  });

  it("pauses with pause_rollout and the rollout's id, then offers Resume", async () => {
    const { target } = await openView();
    byTestId(target, "rollout-action").find((b) => b.dataset.action === "pause")!.click();
    await waitFor(() => expect(actionsOf(target)).toEqual(["resume", "abort"]));
    expect(calls.filter((c) => c.cmd === "pause_rollout").map((c) => c.args)).toEqual([{ id: ROLLOUT_ID }]);
    expect(text(byTestId(target, "rollout-reason")[0])).toBe("Paused by the operator");
    // The list follows at once, without waiting for an event.
    expect(byTestId(target, "rollout-item")[0].dataset.state).toBe("paused");
  });

  it("asks before aborting", async () => {
    const { target } = await openView();
    const abort = () => byTestId(target, "rollout-action").find((b) => b.dataset.action === "abort")!;

    abort().click();
    const dialog = await findByTestId(document.body, "abort-dialog");
    expect(text(dialog)).toContain("1 queued host is skipped");
    [...dialog.querySelectorAll("button")].find((b) => text(b) === "Keep going")!.click();
    await waitFor(() => expect(byTestId(document.body, "abort-dialog")).toHaveLength(0));
    expect(count("abort_rollout")).toBe(0);

    abort().click();
    (await findByTestId(document.body, "confirm-abort")).click();
    await waitFor(() => expect(count("abort_rollout")).toBe(1));
    expect(calls.find((c) => c.cmd === "abort_rollout")!.args).toEqual({ id: ROLLOUT_ID });
    await waitFor(() => expect(actionsOf(target)).toEqual([]));
  });

  it("shows an action the backend refused", async () => {
    const { target } = await openView();
    clearMocks();
    mockIPC(() => Promise.reject({ code: "InvalidInput", message: "the rollout is completed, not running", requestId: null }));
    byTestId(target, "rollout-action").find((b) => b.dataset.action === "pause")!.click();
    const banner = await findByTestId(target, "error-banner");
    expect(text(banner)).toContain("the rollout is completed, not running");
  });

  it("lists events oldest first with local times, hosts, request ids in mono and errors in red", async () => {
    const { target } = await openView();
    const log = byTestId(target, "rollout-events")[0];
    const lines = byTestId(log, "rollout-event");
    expect(lines).toHaveLength(3);
    expect(lines.map((l) => text(l.querySelector(".time")))).toEqual(
      current.events.map((e) => {
        const d = new Date(e.at);
        return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, "0")).join(":");
      }),
    );
    expect(text(lines[1].querySelector(".host"))).toBe("avd-h2");
    const ids = byTestId(log, "event-request-id");
    expect(ids.map((c) => text(c))).toEqual(["4b7e2d10-5c3a-4f8e-9a1b-2c3d4e5f6a7b", "9d1c5e7a-0b3f-4c2d-8e6a-1f2b3c4d5e6f"]);
    expect(ids.every((c) => c.tagName === "CODE")).toBe(true);
    expect(lines.map((l) => l.classList.contains("error"))).toEqual([false, false, true]);
    expect(byTestId(lines[0], "event-request-id")).toHaveLength(0);
  });

  it("draws the stage chart with one path per series", async () => {
    const { target } = await openView();
    const paths = byTestId(target, "chart-series");
    expect(paths.map((p) => p.dataset.series)).toEqual(CHART_SERIES.map((s) => s.key));
    expect(paths.every((p) => p.tagName.toLowerCase() === "path" && (p.getAttribute("d") ?? "").length > 0)).toBe(true);
    expect(byTestId(target, "stage-chart")[0].querySelectorAll("text.axis").length).toBeGreaterThan(2);
  });

  it("follows rollout-updated events, fetching at most about 4 times a second", async () => {
    const { target, rollouts } = await openView();
    const fetches = count("get_rollout");
    expect(rollouts.history).toHaveLength(1);

    current = makeRollout(["done", "done", "verifying", "draining"], { events: [...current.events] });
    const started = performance.now();
    for (let i = 0; i < 30; i++) {
      void emit(ROLLOUT_EVENT, ROLLOUT_ID);
      await sleep(5);
    }
    const elapsed = performance.now() - started;
    await waitFor(() => expect(byTestId(target, "rollout-host").map((t) => t.dataset.stage)).toEqual(["done", "done", "verifying", "draining"]));
    await sleep(300);
    // 30 events: the first fetch at once, then at most one per 250 ms, plus the one after the burst.
    expect(count("get_rollout") - fetches).toBeLessThanOrEqual(Math.ceil(elapsed / 250) + 1);
    expect(count("get_rollout") - fetches).toBeLessThan(10);
    expect(count("list_rollouts")).toBeLessThanOrEqual(Math.ceil(elapsed / 500) + 2);
    // Each new answer adds a point to the chart's history.
    expect(rollouts.history.length).toBeGreaterThan(1);

    // Events for another rollout refresh the list only.
    const before = count("get_rollout");
    await emit(ROLLOUT_EVENT, "ro-old");
    await sleep(600);
    expect(count("get_rollout")).toBe(before);
  });

  it("selects a rollout from the list", async () => {
    const { target, onselect } = await openView();
    byTestId(target, "rollout-item")[1].click();
    expect(onselect).toHaveBeenCalledWith("ro-old");
  });
});
