import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { flushSync } from "svelte";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { host, makeBoard } from "../../test/fixtures";
import { byTestId, findByTestId, render, sleep, text, waitFor } from "../../test/util";
import type { HostQuery } from "../bindings";
import { PAGE_SIZE } from "../stores/hosts.svelte";
import { VersionPalette } from "../versions";
import HostsView from "./HostsView.svelte";

const TOTAL = 10_000;
let queries: HostQuery[] = [];
let cleanup: (() => void)[] = [];

beforeEach(() => {
  queries = [];
  mockIPC((cmd, args) => {
    if (cmd !== "query_hosts") throw { code: "unexpected", message: cmd, requestId: null };
    const query = (args as { query: HostQuery }).query;
    queries.push(query);
    const count = Math.max(0, Math.min(query.limit, TOTAL - query.offset));
    return { total: TOTAL, offset: query.offset, rows: Array.from({ length: count }, (_, i) => host(query.offset + i)) };
  });
});

afterEach(() => {
  cleanup.forEach((fn) => fn());
  cleanup = [];
  clearMocks();
});

function renderHosts(props: Partial<{ poolId: string | null; onpoolchange: (id: string | null) => void }> = {}) {
  const view = render(HostsView, {
    board: makeBoard(),
    palette: new VersionPalette(["2026.1127.1"]),
    poolId: props.poolId ?? null,
    onpoolchange: props.onpoolchange ?? vi.fn(),
  });
  cleanup.push(view.destroy);
  return view;
}

function header(target: HTMLElement, label: string): HTMLElement {
  const cell = [...target.querySelectorAll<HTMLElement>('[role="columnheader"]')].find((c) => text(c).startsWith(label));
  if (!cell) throw new Error(`no column ${label}`);
  return cell;
}

const last = () => queries[queries.length - 1];

describe("Hosts view", () => {
  it("asks for the first window sorted by name and shows the total", async () => {
    const { target } = renderHosts();
    await waitFor(() => expect(text(byTestId(target, "hosts-count")[0])).toBe("10,000 hosts"));
    expect(queries[0]).toEqual({
      hostPool: null,
      text: null,
      state: null,
      sort: "name",
      descending: false,
      offset: 0,
      limit: PAGE_SIZE,
    });
    expect(text(byTestId(target, "host-row")[0])).toContain("avd-00000");
  });

  it("renders only the rows in view, not all 10,000", async () => {
    const { target } = renderHosts();
    await waitFor(() => expect(byTestId(target, "host-row").length).toBeGreaterThan(0));
    expect(byTestId(target, "host-row").length).toBeLessThan(60);
    const body = target.querySelector<HTMLElement>(".body")!;
    expect(body.style.height).toBe(`${TOTAL * 36}px`);
  });

  it("fetches the window that scrolls into view", async () => {
    const { target } = renderHosts();
    await waitFor(() => expect(queries).toHaveLength(1));
    const viewport = target.querySelector<HTMLElement>(".viewport")!;
    Object.defineProperty(viewport, "scrollTop", { configurable: true, value: 5_000 * 36 });
    viewport.dispatchEvent(new Event("scroll"));
    await waitFor(() => expect(queries.some((q) => q.offset === 4_800)).toBe(true));
    await waitFor(() => expect(text(target.querySelector('[aria-rowindex="5002"]'))).toContain("avd-05000"));
    expect(queries.every((q) => q.limit === PAGE_SIZE && q.offset % PAGE_SIZE === 0)).toBe(true);
  });

  it("sorts by a column on click, toggling the direction, with aria-sort", async () => {
    const { target } = renderHosts();
    await waitFor(() => expect(queries).toHaveLength(1));
    expect(header(target, "Name").getAttribute("aria-sort")).toBe("ascending");
    expect(header(target, "Sessions").getAttribute("aria-sort")).toBe("none");

    header(target, "Sessions").querySelector("button")!.click();
    flushSync();
    await waitFor(() => expect(last()).toMatchObject({ sort: "sessions", descending: false, offset: 0 }));
    expect(header(target, "Sessions").getAttribute("aria-sort")).toBe("ascending");
    expect(header(target, "Name").getAttribute("aria-sort")).toBe("none");

    header(target, "Sessions").querySelector("button")!.click();
    flushSync();
    await waitFor(() => expect(last()).toMatchObject({ sort: "sessions", descending: true, offset: 0 }));
    expect(header(target, "Sessions").getAttribute("aria-sort")).toBe("descending");
  });

  it("shows the short host name, with the domain apart and the FQDN in the title", async () => {
    clearMocks();
    mockIPC((_cmd, args) => {
      const query = (args as { query: HostQuery }).query;
      return { total: 1, offset: query.offset, rows: [host(0, { name: "avdpw1-012.corp.contoso.com" })] };
    });
    const { target } = renderHosts();
    await waitFor(() => expect(target.querySelector('[data-testid="host-row"] .host')).not.toBeNull());
    const cell = target.querySelector<HTMLElement>('[data-testid="host-row"] [role="cell"]')!;
    expect(text(cell.querySelector(".host"))).toBe("avdpw1-012");
    expect(text(cell.querySelector(".domain"))).toBe(".corp.contoso.com");
    expect(cell.title).toBe("avdpw1-012.corp.contoso.com");
  });

  it("keeps every header label whole, with its sort arrow, on one shared column grid", async () => {
    const { target } = renderHosts();
    await waitFor(() => expect(queries).toHaveLength(1));
    const labels = [...target.querySelectorAll('[role="columnheader"] .label')].map((l) => text(l));
    expect(labels).toEqual(["Name", "Pool", "Ring", "State", "Sessions", "Image version", "Last heartbeat", "Failed checks"]);
    expect(text(header(target, "Sessions").querySelector(".arrow"))).toBe("↕");
    expect(text(header(target, "Name").querySelector(".arrow"))).toBe("↑");
    const table = target.querySelector<HTMLElement>('[role="table"]')!;
    const columns = table.style.getPropertyValue("--columns").trim().split(/\s+(?![^(]*\))/);
    expect(columns).toHaveLength(8);
    expect(columns.filter((c) => c.startsWith("minmax("))).toHaveLength(3);
  });

  it("filters by state with the segmented control", async () => {
    const { target } = renderHosts();
    await waitFor(() => expect(queries).toHaveLength(1));
    const unavailable = target.querySelector<HTMLButtonElement>('[data-state="unavailable"]')!;
    unavailable.click();
    flushSync();
    await waitFor(() => expect(last()).toMatchObject({ state: "unavailable", offset: 0 }));
    expect(unavailable.getAttribute("aria-pressed")).toBe("true");
    target.querySelector<HTMLButtonElement>('[data-state="all"]')!.click();
    flushSync();
    await waitFor(() => expect(last().state).toBeNull());
  });

  it("debounces the text filter by 200 ms", async () => {
    const { target } = renderHosts();
    await waitFor(() => expect(queries).toHaveLength(1));
    const input = byTestId(target, "hosts-search")[0] as HTMLInputElement;
    for (const value of ["w", "we", "weu"]) {
      input.value = value;
      input.dispatchEvent(new Event("input", { bubbles: true }));
      await sleep(20);
    }
    await sleep(100);
    expect(queries.filter((q) => q.text !== null)).toHaveLength(0);
    await waitFor(() => expect(last()).toMatchObject({ text: "weu", offset: 0 }));
    expect(queries.filter((q) => q.text !== null).map((q) => q.text)).toEqual(["weu"]);
  });

  it("narrows to the pool it was opened for, and can drop it", async () => {
    const board = makeBoard();
    const pool = board.rings[1].pools[0];
    const onpoolchange = vi.fn();
    const { target } = renderHosts({ poolId: pool.id, onpoolchange });
    await waitFor(() => expect(queries).toHaveLength(1));
    expect(queries[0].hostPool).toBe(pool.id);
    const chip = byTestId(target, "pool-chip")[0];
    expect(text(chip)).toContain("hp-pilot-01");
    chip.querySelector("button")!.click();
    expect(onpoolchange).toHaveBeenCalledWith(null);
  });

  it("shows a failed query's message and request id", async () => {
    clearMocks();
    mockIPC(() => Promise.reject({ code: "arm", message: "The store is locked.", requestId: "req-42" }));
    const { target } = renderHosts();
    const banner = await findByTestId(target, "error-banner");
    expect(text(banner)).toContain("The store is locked.");
    expect(text(banner)).toContain("ARM request id: req-42");
  });
});
