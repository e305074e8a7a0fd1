import { emit } from "@tauri-apps/api/event";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it } from "vitest";
import { makeBoard, syncStatus } from "../../test/fixtures";
import { waitFor } from "../../test/util";
import { Inventory, PROGRESS_EVENT } from "./inventory.svelte";

let stores: Inventory[] = [];

afterEach(() => {
  stores.forEach((s) => s.stop());
  stores = [];
  clearMocks();
});

describe("Inventory store", () => {
  // Seen in the end-to-end test: the startup refresh ended while the window was still subscribing. Its last
  // progress ("Done") arrived, its "updated" event did not, and the window showed a refresh running for good, so
  // it never asked for another.
  it("ends a refresh whose status says it finished, even when its own end event was missed", async () => {
    let answerBoard: () => void = () => {};
    const boardAsked = new Promise<void>((resolve) => (answerBoard = resolve));
    let finished = 1;
    mockIPC(
      async (cmd) => {
        if (cmd === "get_board") {
          await boardAsked;
          return makeBoard(syncStatus({ finishedRun: finished }));
        }
        if (cmd === "get_image_versions") return [];
        if (cmd === "get_connection") return null;
        if (cmd === "refresh_inventory") {
          finished = 2;
          return syncStatus({ finishedRun: 2 });
        }
        return Promise.reject(`command ${cmd} not found`);
      },
      { shouldMockEvents: true },
    );
    const store = new Inventory();
    stores.push(store);
    const started = store.start();
    await waitFor(() => expect(store.sync).toBeNull());
    await emit(PROGRESS_EVENT, { stage: "Done", percent: 100, requests: 9, run: 1 });
    await waitFor(() => expect(store.running).toBe(true));
    answerBoard();
    await started;
    expect(store.progress).toBeNull();
    expect(store.running).toBe(false);
    // So the refresh a finished rollout asks for really happens.
    store.requestRefresh();
    await waitFor(() => expect(store.sync?.finishedRun).toBe(2));
  });
});
