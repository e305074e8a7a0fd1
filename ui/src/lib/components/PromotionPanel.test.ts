import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it } from "vitest";
import { byTestId, render, waitFor } from "../../test/util";
import type { Approval, PromotionCheck } from "../bindings";
import { session } from "../stores/session.svelte";
import PromotionPanel from "./PromotionPanel.svelte";

let cleanup: (() => void)[] = [];
afterEach(() => {
  cleanup.forEach((fn) => fn());
  cleanup = [];
  clearMocks();
  session.role = "operator";
});

const SHA = "ab".repeat(32);

function approval(over: Partial<Approval> = {}): Approval {
  return {
    ring: "test",
    decision: "approve",
    approverName: "Alex Wilber",
    approverObjectId: "3f2a9c1e-7b4d-4e8a-9c6f-1d2e3f4a5b6c",
    approverTenantId: "t",
    at: "2026-11-27T10:00:00Z",
    evidenceSha256: SHA,
    comment: "fine",
    current: true,
    ...over,
  };
}

function check(over: Partial<PromotionCheck> = {}): PromotionCheck {
  return {
    version: "2026.1127.1",
    ring: "test",
    ringName: "Test",
    nextRing: "pilot",
    nextRingName: "Pilot",
    nextPools: ["hp-pilot-weu"],
    ready: true,
    missing: [],
    met: ["Every Test pool runs 2026.1127.1", "Health gate passed", "1 of 1 approval(s)"],
    requiredGates: ["health"],
    approvalsRequired: 1,
    approverGroup: null,
    approvals: [approval()],
    evidenceSha256: SHA,
    bakeHours: 0,
    bakeEndsAt: null,
    completedAt: "2026-11-27T09:00:00Z",
    rolloutDone: true,
    gatesPassed: true,
    baked: true,
    approved: true,
    ...over,
  };
}

const props = (checks: PromotionCheck[]) => ({ version: "2026.1127.1", checks, gatesRunning: [], onchanged: () => {} });

describe("PromotionPanel", () => {
  it("lists exactly what is missing and keeps Promote disabled until it is all there", () => {
    const blocked = check({
      ready: false,
      approved: false,
      missing: ["Approvals: 0 of 1 current", "Alex Wilber's approval (2026-11-27 10:00 UTC) no longer counts: the evidence changed after it"],
      approvals: [approval({ current: false })],
    });
    const { target, destroy } = render(PromotionPanel, props([blocked]));
    cleanup.push(destroy);
    const promote = byTestId(target, "ring-promote")[0] as HTMLButtonElement;
    expect(promote.disabled).toBe(true);
    expect(promote.title).toContain("Approvals: 0 of 1 current");
    expect(byTestId(target, "promotion-missing")[0].textContent).toContain("no longer counts");
    const a = byTestId(target, "approval")[0];
    expect(a.getAttribute("data-current")).toBe("false");
    expect(a.textContent).toContain("stale");
    const steps = byTestId(target, "promotion-step").map((s) => `${s.getAttribute("data-step")}:${s.getAttribute("data-done")}`);
    expect(steps).toEqual(["rollout:true", "gates:true", "approvals:false"]);
  });

  it("promotes a ready release and hides operator actions in reviewer mode", async () => {
    const calls: { cmd: string; args: unknown }[] = [];
    mockIPC((cmd, args) => {
      calls.push({ cmd, args });
      if (cmd === "promote") return [{ id: "r1" }];
      return Promise.reject(`command ${cmd} not found`);
    });
    let opened: string[] = [];
    const { target, destroy } = render(PromotionPanel, { ...props([check()]), onpromoted: (ids: string[]) => (opened = ids) });
    cleanup.push(destroy);
    const promote = byTestId(target, "ring-promote")[0] as HTMLButtonElement;
    expect(promote.disabled).toBe(false);
    promote.click();
    await waitFor(() => opened.length === 1);
    expect(calls[0]).toEqual({ cmd: "promote", args: { version: "2026.1127.1", ring: "test" } });

    session.role = "reviewer";
    await waitFor(() => byTestId(target, "ring-promote").length === 0);
    expect(byTestId(target, "ring-run-gates")).toHaveLength(0);
    expect(byTestId(target, "ring-sign-off")).toHaveLength(1);
  });
});
