import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it, vi } from "vitest";
import { POLICY, makeBoard, makePlan, makeRollout } from "../../test/fixtures";
import { byTestId, findByTestId, render, text, waitFor } from "../../test/util";
import type { AppError, RolloutPlan, RolloutPolicy } from "../bindings";
import { VersionPalette } from "../versions";
import RollbackDialog from "./RollbackDialog.svelte";

let calls: { cmd: string; args: unknown }[] = [];
let cleanup: (() => void)[] = [];
const pool = makeBoard().rings[1].pools[0];

function backend(plan: () => RolloutPlan | Promise<never>, policy: RolloutPolicy = POLICY) {
  calls = [];
  mockIPC((cmd, args) => {
    calls.push({ cmd, args });
    if (cmd === "get_default_policy") return policy;
    if (cmd === "plan_rollback") return plan();
    if (cmd === "rollback_pool") return makeRollout(["queued"], { id: "ro-back", kind: "rollback" });
    return Promise.reject(`command ${cmd} not found`);
  });
}

afterEach(() => {
  cleanup.forEach((fn) => fn());
  cleanup = [];
  clearMocks();
});

function open() {
  const onclose = vi.fn();
  const onstarted = vi.fn();
  const view = render(RollbackDialog, { pool, palette: new VersionPalette(["2026.1105.1"]), onclose, onstarted });
  cleanup.push(view.destroy);
  return { ...view, onclose, onstarted };
}

const rollbackPlan = () =>
  makePlan({ targetVersion: "2026.1105.1", hosts: makePlan().hosts.slice(0, 3), maxOutOfService: 1, poolName: "hp-pilot-01" });

describe("Roll back dialog", () => {
  it("says plainly what will happen, with the default policy", async () => {
    backend(rollbackPlan);
    const { target } = open();
    const summary = await findByTestId(target, "rollback-summary");
    expect(text(summary)).toBe(
      "Replace 3 hosts of hp-pilot-01 with 2026.1105.1, the last known-good release; at most 1 host out of service at once, one host first. " +
        "Users on a host being replaced get the message below and are logged off after 15 min.",
    );
    expect(text(byTestId(target, "rollback-message")[0])).toBe(POLICY.message);
    expect(calls.find((c) => c.cmd === "plan_rollback")!.args).toEqual({ hostPoolId: pool.id, policy: POLICY });
  });

  it("says a rollback from standby starts the kept hosts instead of rebuilding", async () => {
    backend(() => ({ ...rollbackPlan(), standbyRestore: true }));
    const { target } = open();
    const summary = await findByTestId(target, "rollback-summary");
    expect(text(summary)).toBe(
      "Instant: start the 3 standby hosts of hp-pilot-01 again (they run 2026.1105.1), then drain and remove the hosts that replaced them; nothing is rebuilt. " +
        "Users on a host being removed get the message below and are logged off after 15 min.",
    );
  });

  it("rolls back with rollback_pool and hands back the rollout", async () => {
    backend(rollbackPlan);
    const { target, onstarted } = open();
    const confirm = (await findByTestId(target, "confirm-rollback")) as HTMLButtonElement;
    await waitFor(() => expect(confirm.disabled).toBe(false));
    expect(text(confirm)).toBe("Roll back 3 hosts");
    confirm.click();
    await waitFor(() => expect(onstarted).toHaveBeenCalledTimes(1));
    expect(calls.find((c) => c.cmd === "rollback_pool")!.args).toEqual({ hostPoolId: pool.id, policy: POLICY });
    expect(onstarted.mock.calls[0][0].kind).toBe("rollback");
  });

  it("explains when there is nothing to roll back to", async () => {
    const noRelease: AppError = {
      code: "InvalidInput",
      message: "No known-good release is recorded for this pool: nothing to roll back to.",
      requestId: null,
    };
    backend(() => Promise.reject(noRelease));
    const { target, onclose } = open();
    const error = await findByTestId(target, "rollback-error");
    expect(text(error)).toContain("Can't roll back hp-pilot-01");
    expect(text(error)).toContain(noRelease.message);
    expect(byTestId(target, "confirm-rollback")).toHaveLength(0);
    const close = [...target.querySelectorAll<HTMLButtonElement>(".modal-footer button")].find((b) => text(b) === "Close")!;
    close.click();
    expect(onclose).toHaveBeenCalled();
  });

  it("will not start while the plan has blockers", async () => {
    backend(() => ({ ...rollbackPlan(), blockers: [{ field: "version", message: "2026.1105.1 is not replicated to westeurope yet." }] }));
    const { target } = open();
    await findByTestId(target, "plan-blockers");
    expect(text(byTestId(target, "plan-blockers")[0])).toContain("not replicated to westeurope");
    expect((byTestId(target, "confirm-rollback")[0] as HTMLButtonElement).disabled).toBe(true);
  });
});
