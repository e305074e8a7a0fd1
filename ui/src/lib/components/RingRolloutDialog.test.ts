import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it, vi } from "vitest";
import { POLICY, makePlan, makeRollout, makeVersions } from "../../test/fixtures";
import { byTestId, findByTestId, render, text, waitFor } from "../../test/util";
import type { RingPlan } from "../bindings";
import { VersionPalette } from "../versions";
import RingRolloutDialog from "./RingRolloutDialog.svelte";

let calls: { cmd: string; args: unknown }[] = [];
let cleanup: (() => void)[] = [];

afterEach(() => {
  cleanup.forEach((fn) => fn());
  cleanup = [];
  clearMocks();
});

function ringPlan(extra: Partial<RingPlan> = {}): RingPlan {
  const a = makePlan({ poolName: "hp-pilot-01", hostPoolId: "/p/1" });
  const b = makePlan({ poolName: "hp-pilot-02", hostPoolId: "/p/2" });
  return {
    ring: "pilot",
    ringName: "Pilot",
    version: a.targetVersion,
    rollback: false,
    pools: [a, b],
    skipped: [{ poolName: "hp-pilot-03", reason: `already on ${a.targetVersion}` }],
    blockers: [],
    hosts: a.hosts.length + b.hosts.length,
    usersNow: a.usersNow + b.usersNow,
    estimatedMinutes: Math.max(a.estimatedMinutes, b.estimatedMinutes),
    ...extra,
  };
}

function open(plan: RingPlan, rollback = false) {
  calls = [];
  mockIPC((cmd, args) => {
    calls.push({ cmd, args });
    if (cmd === "get_default_policy") return POLICY;
    if (cmd === "plan_ring_rollout" || cmd === "plan_ring_rollback") return plan;
    if (cmd === "start_ring_rollout" || cmd === "rollback_ring") return [makeRollout(["queued"], { id: "r1" }), makeRollout(["queued"], { id: "r2" })];
    if (cmd === "schedule_ring_rollout") return [];
    return Promise.reject(`command ${cmd} not found`);
  });
  const onstarted = vi.fn();
  const onscheduled = vi.fn();
  const view = render(RingRolloutDialog, {
    ring: "pilot",
    ringName: "Pilot",
    rollback,
    versions: makeVersions(),
    palette: new VersionPalette([]),
    onclose: vi.fn(),
    onstarted,
    onscheduled,
  });
  cleanup.push(view.destroy);
  return { ...view, onstarted, onscheduled };
}

describe("Ring rollout dialog", () => {
  it("plans every pool of the ring and starts them together", async () => {
    const plan = ringPlan();
    const { target, onstarted } = open(plan);
    const pools = await findByTestId(target, "ring-plan-pools");
    expect(text(pools)).toContain("hp-pilot-01");
    expect(text(pools)).toContain("hp-pilot-02");
    expect(text(target)).toContain(`hp-pilot-03: already on ${plan.version}`);
    const confirm = byTestId(target, "confirm-ring")[0] as HTMLButtonElement;
    await waitFor(() => expect(confirm.disabled).toBe(false));
    expect(text(confirm)).toBe(`Roll out ${plan.hosts} hosts`);
    confirm.click();
    await waitFor(() => expect(onstarted).toHaveBeenCalled());
    const startCall = calls.find((c) => c.cmd === "start_ring_rollout");
    expect(startCall?.args).toMatchObject({ ring: "pilot", policy: POLICY });
    expect(onstarted.mock.calls[0][0]).toHaveLength(2);
  });

  it("schedules every pool into one maintenance window", async () => {
    const { target, onscheduled } = open(ringPlan());
    await findByTestId(target, "ring-plan-pools");
    const schedule = byTestId(target, "ring-schedule")[0] as HTMLButtonElement;
    expect(schedule.disabled).toBe(true);
    const at = byTestId(target, "ring-schedule-at")[0] as HTMLInputElement;
    at.value = "2026-12-01T22:00";
    at.dispatchEvent(new Event("input", { bubbles: true }));
    await waitFor(() => expect(schedule.disabled).toBe(false));
    schedule.click();
    await waitFor(() => expect(onscheduled).toHaveBeenCalled());
    const call = calls.find((c) => c.cmd === "schedule_ring_rollout")!.args as { ring: string; startAt: string };
    expect(call.ring).toBe("pilot");
    expect(call.startAt).toBe(new Date("2026-12-01T22:00").toISOString());
  });

  it("starts nothing while any pool is blocked, and says which", async () => {
    const { target } = open(ringPlan({ blockers: ["hp-pilot-02: 2026.1127.1 is not replicated to eastus2 yet"] }));
    const blockers = await findByTestId(target, "ring-plan-blockers");
    expect(text(blockers)).toContain("Nothing starts until every pool can");
    expect(text(blockers)).toContain("hp-pilot-02: 2026.1127.1 is not replicated");
    expect((byTestId(target, "confirm-ring")[0] as HTMLButtonElement).disabled).toBe(true);
  });

  it("rolls the ring back without asking for a release", async () => {
    const { target, onstarted } = open(ringPlan({ rollback: true, version: null }), true);
    await findByTestId(target, "ring-plan-pools");
    expect(byTestId(target, "ring-version")).toHaveLength(0);
    const confirm = byTestId(target, "confirm-ring")[0] as HTMLButtonElement;
    await waitFor(() => expect(confirm.disabled).toBe(false));
    expect(text(confirm)).toMatch(/^Roll back \d+ hosts$/);
    confirm.click();
    await waitFor(() => expect(onstarted).toHaveBeenCalled());
    expect(calls.some((c) => c.cmd === "rollback_ring")).toBe(true);
  });
});
