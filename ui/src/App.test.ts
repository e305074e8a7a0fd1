import { emit } from "@tauri-apps/api/event";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import App from "./App.svelte";
import type { HostQuery, RolloutState, SyncStatus } from "./lib/bindings";
import {
  CONNECTION,
  NOW,
  POLICY,
  ROLLOUT_ID,
  THROTTLED,
  makeBoard,
  makePlan,
  makeRollout,
  makeVersions,
  summary,
  syncStatus,
} from "./test/fixtures";
import { captureView, collection, master } from "./test/build-fixtures";
import { byTestId, findByTestId, render, text, waitFor } from "./test/util";

type Handler = (args: Record<string, unknown> | undefined) => unknown;

let calls: { cmd: string; args: unknown }[] = [];
let cleanup: (() => void)[] = [];

/** Answer like the backend; individual commands can be overridden per test. */
function backend(overrides: Record<string, Handler> = {}) {
  calls = [];
  const defaults: Record<string, Handler> = {
    get_board: () => makeBoard(),
    get_image_versions: () => makeVersions(),
    get_connection: () => CONNECTION,
    get_sync_status: () => syncStatus(),
    query_hosts: (args) => ({ total: 0, offset: (args?.query as HostQuery).offset, rows: [] }),
    refresh_inventory: () => syncStatus(),
    cancel_refresh: () => null,
    list_rollouts: () => [],
    get_default_policy: () => POLICY,
    plan_rollout: () => makePlan(),
  };
  const handlers = { ...defaults, ...overrides };
  mockIPC(
    (cmd, args) => {
      calls.push({ cmd, args });
      const handler = handlers[cmd];
      if (!handler) return Promise.reject(`command ${cmd} not found`);
      return handler(args as Record<string, unknown> | undefined);
    },
    { shouldMockEvents: true },
  );
}

const count = (cmd: string) => calls.filter((c) => c.cmd === cmd).length;

function renderApp() {
  const view = render(App, {});
  cleanup.push(view.destroy);
  return view.target;
}

beforeEach(() => {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(NOW);
});

afterEach(() => {
  cleanup.forEach((fn) => fn());
  cleanup = [];
  clearMocks();
  vi.useRealTimers();
});

describe("App", () => {
  it("tells the user to open the desktop app when there is no Tauri backend", () => {
    delete (window as { __TAURI_INTERNALS__?: unknown }).__TAURI_INTERNALS__;
    const target = renderApp();
    expect(text(target)).toContain("Ringmaster's UI runs inside the desktop app");
    expect(byTestId(target, "nav-rings")).toHaveLength(0);
  });

  it("shows the cached board, the tenant and how long ago it synced", async () => {
    backend();
    const target = renderApp();
    await waitFor(() => expect(byTestId(target, "ring-lane")).toHaveLength(3));
    expect(byTestId(target, "pool-card")).toHaveLength(5);
    await waitFor(() => expect(text(target.querySelector(".tenant"))).toContain("Contoso (demo)"));
    expect(text(target.querySelector(".tenant"))).toContain("DEMO");
    expect(text(byTestId(target, "sync-status")[0])).toBe("synced 2 min ago");
    expect(text(target.querySelector(".status"))).toContain("via Resource Graph");
  });

  it("shows a failed command's message and ARM request id", async () => {
    backend({ get_board: () => Promise.reject(THROTTLED) });
    const target = renderApp();
    const banner = await findByTestId(target, "error-banner");
    expect(text(banner)).toContain("Couldn't load the ring board");
    expect(text(banner)).toContain(THROTTLED.message);
    expect(text(banner)).toContain(`ARM request id: ${THROTTLED.requestId}`);
    expect(banner.querySelector("code")?.textContent).toBe(THROTTLED.requestId);
  });

  it("shows the last refresh's failure in a dismissible banner", async () => {
    backend({ get_board: () => makeBoard(syncStatus({ lastError: THROTTLED })) });
    const target = renderApp();
    const banner = await findByTestId(target, "error-banner");
    expect(text(banner)).toContain("The last refresh failed");
    expect(text(banner)).toContain(THROTTLED.message);
    banner.querySelector<HTMLButtonElement>('button[aria-label="Dismiss error"]')!.click();
    await waitFor(() => expect(byTestId(target, "error-banner")).toHaveLength(0));
  });

  it("turns Refresh into Cancel while a refresh runs", async () => {
    let finish!: (status: SyncStatus) => void;
    backend({ refresh_inventory: () => new Promise<SyncStatus>((resolve) => (finish = resolve)) });
    const target = renderApp();
    await waitFor(() => expect(byTestId(target, "ring-lane")).toHaveLength(3));
    const boardLoads = count("get_board");

    const button = () => byTestId(target, "refresh-button")[0];
    expect(text(button())).toBe("Refresh");
    button().click();
    await waitFor(() => expect(text(button())).toBe("Cancel"));
    expect(target.querySelector('[role="progressbar"]')).not.toBeNull();

    button().click();
    await waitFor(() => expect(count("cancel_refresh")).toBe(1));
    await waitFor(() => expect(text(button())).toBe("Cancelling…"));

    finish(syncStatus({ syncedAt: new Date(NOW).toISOString(), lastError: { code: "cancelled", message: "Cancelled", requestId: null } }));
    await waitFor(() => expect(text(button())).toBe("Refresh"));
    expect(target.querySelector('[role="progressbar"]')).toBeNull();
    // No "inventory-updated" arrived, so the UI reloads by itself; a cancel is not an error.
    await waitFor(() => expect(count("get_board")).toBe(boardLoads + 1));
    expect(byTestId(target, "error-banner")).toHaveLength(0);
    expect(text(target.querySelector(".status"))).toContain("Refresh cancelled");
  });

  it("follows a background refresh through its events and reloads when it ends", async () => {
    backend();
    const target = renderApp();
    await waitFor(() => expect(byTestId(target, "ring-lane")).toHaveLength(3));
    const boardLoads = count("get_board");

    await emit("inventory-progress", { stage: "Querying session hosts", percent: 40, requests: 5, run: 1 });
    await waitFor(() => expect(text(target.querySelector(".stage"))).toBe("Querying session hosts 40%"));
    expect(text(byTestId(target, "refresh-button")[0])).toBe("Cancel");
    expect(target.querySelector('[role="progressbar"]')?.getAttribute("aria-valuenow")).toBe("40");

    await emit("inventory-updated", syncStatus({ syncedAt: new Date(NOW).toISOString(), source: "armListing" }));
    await waitFor(() => expect(text(byTestId(target, "refresh-button")[0])).toBe("Refresh"));
    await waitFor(() => expect(count("get_board")).toBe(boardLoads + 1));
    expect(text(byTestId(target, "sync-status")[0])).toBe("synced just now");
    expect(text(target.querySelector(".status"))).toContain("via ARM listing");
  });

  it("ignores progress of a refresh that already ended when it arrives late", async () => {
    backend();
    const target = renderApp();
    await waitFor(() => expect(byTestId(target, "ring-lane")).toHaveLength(3));
    await emit("inventory-updated", syncStatus({ syncedAt: new Date(NOW).toISOString(), finishedRun: 1 }));
    // The reply and the last progress event crossed: "Done" of run 1 comes after run 1 ended.
    await emit("inventory-progress", { stage: "Done", percent: 100, requests: 9, run: 1 });
    await new Promise((r) => setTimeout(r, 50));
    expect(text(byTestId(target, "refresh-button")[0])).toBe("Refresh");
    expect(target.querySelector('[role="progressbar"]')).toBeNull();
    // A status from before that (a refused refresh's, still "running") arriving late changes nothing either.
    await emit("inventory-updated", syncStatus({ running: true, finishedRun: 0 }));
    await new Promise((r) => setTimeout(r, 50));
    expect(text(byTestId(target, "refresh-button")[0])).toBe("Refresh");
    // The next refresh's progress shows.
    await emit("inventory-progress", { stage: "Listing subscriptions", percent: 2, requests: 1, run: 2 });
    await waitFor(() => expect(text(byTestId(target, "refresh-button")[0])).toBe("Cancel"));
  });

  it("navigates with the sidebar and opens a pool's hosts from its card", async () => {
    backend();
    const target = renderApp();
    await waitFor(() => expect(byTestId(target, "pool-card")).toHaveLength(5));

    byTestId(target, "nav-releases")[0].click();
    await waitFor(() => expect(byTestId(target, "release-row")).toHaveLength(3));
    expect(byTestId(target, "nav-releases")[0].getAttribute("aria-current")).toBe("page");

    byTestId(target, "nav-settings")[0].click();
    await waitFor(() => expect(text(target)).toContain("RINGMASTER_TENANT=azure-cli"));
    expect(text(target)).toContain(CONNECTION.databasePath);

    byTestId(target, "nav-rings")[0].click();
    const card = await waitFor(() => byTestId(target, "pool-card").find((c) => text(c).includes("hp-pilot-02"))!);
    card.click();
    await waitFor(() => expect(byTestId(target, "pool-chip")).toHaveLength(1));
    const query = calls.filter((c) => c.cmd === "query_hosts").map((c) => (c.args as { query: HostQuery }).query)[0];
    expect(query.hostPool).toBe(makeBoard().rings[1].pools[1].id);
    await waitFor(() => expect(text(byTestId(target, "hosts-count")[0])).toBe("0 hosts"));
  });

  it("counts running rollouts in the sidebar and opens the Rollouts screen", async () => {
    backend({
      list_rollouts: () => [summary("ro-a", "running"), summary("ro-b", "running"), summary("ro-c", "completed")],
      get_rollout: (args) => makeRollout(["done", "queued"], { id: args?.id as string }),
    });
    const target = renderApp();
    const nav = byTestId(target, "nav-rollouts")[0];
    expect(nav.tagName).toBe("BUTTON");
    expect(text(nav)).not.toContain("Soon");
    await waitFor(() => expect(text(byTestId(target, "nav-rollouts-count")[0])).toBe("2"));
    expect(text(nav)).toContain("(2 running)");

    nav.click();
    await findByTestId(target, "rollouts-view");
    await waitFor(() => expect(byTestId(target, "rollout-item")).toHaveLength(3));
    await findByTestId(target, "rollout-detail");
    expect(calls.find((c) => c.cmd === "get_rollout")?.args).toEqual({ id: "ro-a" });
  });

  it("starts a rollout from a pool card's menu and lands on its detail", async () => {
    const started = makeRollout(["queued", "queued"], { id: ROLLOUT_ID, poolName: "hp-pilot-01", ring: "Pilot" });
    backend({
      start_rollout: () => started,
      get_rollout: () => started,
      list_rollouts: () => (count("start_rollout") > 0 ? [summary(ROLLOUT_ID, "running", { poolName: "hp-pilot-01" })] : []),
    });
    const target = renderApp();
    await waitFor(() => expect(byTestId(target, "pool-card")).toHaveLength(5));
    const card = byTestId(target, "pool-card").find((c) => text(c).includes("hp-pilot-01"))!;
    const menu = card.parentElement!.querySelector<HTMLButtonElement>('[data-testid="pool-menu"]')!;
    menu.click();
    await waitFor(() => expect(menu.getAttribute("aria-expanded")).toBe("true"));
    (await findByTestId(target, "pool-rollout")).click();
    // The card's own click (open its hosts) did not fire.
    expect(count("query_hosts")).toBe(0);

    const dialog = await findByTestId(document.body, "start-dialog");
    expect(text(dialog.querySelector("h2"))).toBe("Roll out to hp-pilot-01");
    const start = byTestId(dialog, "start-rollout")[0] as HTMLButtonElement;
    await waitFor(() => expect(start.disabled).toBe(false));
    start.click();

    await findByTestId(target, "rollouts-view");
    await waitFor(() => expect(byTestId(document.body, "start-dialog")).toHaveLength(0));
    const detail = await findByTestId(target, "rollout-detail");
    expect(text(detail.querySelector("h2"))).toBe("Rollout of hp-pilot-01 to 2026.1127.1");
    expect(byTestId(target, "nav-rollouts")[0].getAttribute("aria-current")).toBe("page");
    expect(calls.find((c) => c.cmd === "start_rollout")?.args).toEqual({
      hostPoolId: makeBoard().rings[1].pools[0].id,
      version: "2026.1127.1",
      policy: POLICY,
    });
  });

  it("refreshes the inventory once when a rollout it follows finishes", async () => {
    let state: RolloutState = "running";
    backend({ list_rollouts: () => [summary(ROLLOUT_ID, state)] });
    const target = renderApp();
    await waitFor(() => expect(byTestId(target, "nav-rollouts-count")).toHaveLength(1));
    expect(count("refresh_inventory")).toBe(0);

    state = "completed";
    await emit("rollout-updated", ROLLOUT_ID);
    await waitFor(() => expect(count("refresh_inventory")).toBe(1));
    await waitFor(() => expect(byTestId(target, "nav-rollouts-count")).toHaveLength(0));
    await emit("rollout-updated", ROLLOUT_ID);
    await new Promise((resolve) => setTimeout(resolve, 700));
    expect(count("refresh_inventory")).toBe(1);
  });

  it("lists the pipeline in order in the sidebar, Build first", () => {
    backend();
    const target = renderApp();
    const pipeline = target.querySelector('ul[aria-labelledby="nav-pipeline"]')!;
    expect([...pipeline.querySelectorAll("[data-testid^=nav-]")].map((b) => b.getAttribute("data-testid"))).toEqual([
      "nav-build",
      "nav-releases",
      "nav-rings",
      "nav-rollouts",
      "nav-audit",
    ]);
  });

  it("opens the audit log from the sidebar and reads its newer entries when a rollout moves", async () => {
    const entry = (seq: number, action: string) => ({
      seq,
      at: new Date(NOW - (10 - seq) * 60_000).toISOString(),
      actor: "admin@contoso.com",
      action,
      subject: "hp-test-01",
      detail: "{}",
      hash: String(seq).repeat(64).slice(0, 64),
    });
    let log = [entry(2, "capture.start"), entry(1, "master.register")];
    backend({ get_audit_log: () => ({ entries: log, nextBefore: null }) });
    const target = renderApp();
    expect(byTestId(target, "nav-audit")[0].closest(".soon")).toBeNull();
    byTestId(target, "nav-audit")[0].click();
    await findByTestId(target, "audit-view");
    expect(byTestId(target, "nav-audit")[0].getAttribute("aria-current")).toBe("page");
    await waitFor(() => expect(byTestId(target, "audit-entry").map((r) => r.dataset.action)).toEqual(["capture.start", "master.register"]));

    log = [entry(3, "rollout.start"), ...log];
    await emit("rollout-updated", ROLLOUT_ID);
    await waitFor(() => expect(byTestId(target, "audit-entry").map((r) => r.dataset.seq)).toEqual(["3", "2", "1"]), 3000);
  });

  it("refreshes the inventory once a capture it follows succeeds, and counts it in the sidebar while it runs", async () => {
    let view = captureView();
    const summary = () => ({ id: view.id, version: view.plan.version, state: view.state, stage: view.stage, createdAt: view.createdAt, finishedAt: view.finishedAt, reason: view.reason });
    backend({
      get_golden_masters: () => [master()],
      get_collections: () => [collection()],
      get_script_runs: () => [],
      get_captures: () => [summary()],
      get_capture: () => view,
    });
    const target = renderApp();
    await waitFor(() => expect(text(byTestId(target, "nav-build-count")[0])).toBe("1"));
    byTestId(target, "nav-build")[0].click();
    const panel = await findByTestId(target, "capture-panel");
    expect(panel.dataset.state).toBe("running");
    expect(count("refresh_inventory")).toBe(0);

    view = { ...view, state: "succeeded", stage: "done", finishedAt: new Date(NOW).toISOString() };
    await emit("build-updated", { kind: "capture", id: view.id });
    await waitFor(() => expect(count("refresh_inventory")).toBe(1));
    await waitFor(() => expect(byTestId(target, "capture-panel")[0].dataset.state).toBe("succeeded"));
    await waitFor(() => expect(byTestId(target, "nav-build-count")).toHaveLength(0));
  });
});
