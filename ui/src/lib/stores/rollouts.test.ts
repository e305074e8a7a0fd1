import { emit } from "@tauri-apps/api/event";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ROLLOUT_ID, makeRollout, summary } from "../../test/fixtures";
import { sleep, waitFor } from "../../test/util";
import type { RolloutState } from "../bindings";
import { ROLLOUT_EVENT, Rollouts } from "./rollouts.svelte";

let stores: Rollouts[] = [];

afterEach(() => {
  stores.forEach((s) => s.stop());
  stores = [];
  clearMocks();
});

function backend(state: () => RolloutState) {
  const calls: string[] = [];
  mockIPC(
    (cmd) => {
      calls.push(cmd);
      if (cmd === "list_rollouts") return [summary(ROLLOUT_ID, state()), summary("ro-done", "completed")];
      if (cmd === "get_rollout") return makeRollout(["done", "queued"], { state: state() });
      return Promise.reject(`command ${cmd} not found`);
    },
    { shouldMockEvents: true },
  );
  return calls;
}

describe("Rollouts store", () => {
  it("counts running rollouts", async () => {
    backend(() => "running");
    const store = new Rollouts();
    stores.push(store);
    await store.start();
    expect(store.running).toBe(1);
    expect(store.list?.map((r) => r.id)).toEqual([ROLLOUT_ID, "ro-done"]);
  });

  it("reports a rollout it knew as running once it completes, and only once", async () => {
    let state: RolloutState = "running";
    backend(() => state);
    const onfinished = vi.fn();
    const store = new Rollouts({ onfinished, listIntervalMs: 20, detailIntervalMs: 20 });
    stores.push(store);
    await store.start();
    store.watch(ROLLOUT_ID);
    await waitFor(() => expect(store.current?.state).toBe("running"));
    // Already finished when first seen: not news.
    expect(onfinished).not.toHaveBeenCalled();

    state = "completed";
    await emit(ROLLOUT_EVENT, ROLLOUT_ID);
    await waitFor(() => expect(store.current?.state).toBe("completed"));
    await waitFor(() => expect(store.list?.[0].state).toBe("completed"));
    for (let i = 0; i < 5; i++) {
      await emit(ROLLOUT_EVENT, ROLLOUT_ID);
      await sleep(30);
    }
    expect(onfinished).toHaveBeenCalledTimes(1);
    expect(onfinished).toHaveBeenCalledWith(ROLLOUT_ID, "completed");
  });

  it("keeps a stage history only for the rollout on screen", async () => {
    backend(() => "running");
    const store = new Rollouts({ detailIntervalMs: 10 });
    stores.push(store);
    await store.start();
    store.watch(ROLLOUT_ID);
    await waitFor(() => expect(store.history).toHaveLength(1));
    expect(store.history[0].counts).toMatchObject({ done: 1, queued: 1, failed: 0 });
    store.watch(null);
    expect(store.history).toEqual([]);
    expect(store.current).toBeNull();
  });
});
