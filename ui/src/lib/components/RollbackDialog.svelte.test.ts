import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { flushSync, mount, unmount } from "svelte";
import { afterEach, describe, expect, it, vi } from "vitest";
import { POLICY, makeBoard, makePlan } from "../../test/fixtures";
import { findByTestId, text, waitFor } from "../../test/util";
import { VersionPalette } from "../versions";
import RollbackDialog from "./RollbackDialog.svelte";

afterEach(() => clearMocks());

describe("Roll back dialog, inventory changing underneath", () => {
  it("re-plans with the same policy when a newer inventory arrives, so it says what is true now", async () => {
    const pool = makeBoard().rings[1].pools[0];
    let hosts = 3;
    const planCalls: unknown[] = [];
    mockIPC((cmd, args) => {
      if (cmd === "get_default_policy") return POLICY;
      if (cmd === "plan_rollback") {
        planCalls.push(args);
        return makePlan({ targetVersion: "2026.1105.1", hosts: makePlan().hosts.slice(0, hosts), poolName: "hp-pilot-01" });
      }
      return Promise.reject(`command ${cmd} not found`);
    });
    const props = $state({
      pool,
      palette: new VersionPalette(["2026.1105.1"]),
      syncedAt: "2026-11-27T10:00:00Z" as string | null,
      onclose: vi.fn(),
      onstarted: vi.fn(),
    });
    const target = document.createElement("div");
    document.body.appendChild(target);
    const instance = mount(RollbackDialog, { target, props });
    try {
      const summary = await findByTestId(target, "rollback-summary");
      expect(text(summary)).toContain("Replace 3 hosts");
      // A refresh finds that one more host needs it (say, a host was rebuilt on the bad release).
      hosts = 4;
      props.syncedAt = "2026-11-27T10:05:00Z";
      flushSync();
      await waitFor(() => expect(text(target.querySelector('[data-testid="rollback-summary"]'))).toContain("Replace 4 hosts"));
      expect(planCalls).toHaveLength(2);
      expect(planCalls[1]).toEqual({ hostPoolId: pool.id, policy: POLICY });
      // The same inventory again changes nothing.
      props.syncedAt = "2026-11-27T10:05:00Z";
      flushSync();
      expect(planCalls).toHaveLength(2);
    } finally {
      unmount(instance);
      target.remove();
    }
  });
});
