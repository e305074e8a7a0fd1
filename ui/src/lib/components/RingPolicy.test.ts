import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it } from "vitest";
import { POLICY } from "../../test/fixtures";
import { byTestId, findByTestId, render, text, waitFor } from "../../test/util";
import type { RingGates } from "../bindings";
import RingPolicy from "./RingPolicy.svelte";

const GATES: RingGates = {
  ring: "prod",
  health: true,
  loginEnterprise: null,
  script: null,
  approvalsRequired: 0,
  approverGroup: null,
  bakeHours: 0,
  autoRollback: false,
  rollout: null,
};

let saved: RingGates[] = [];
let cleanup: (() => void)[] = [];

afterEach(() => {
  cleanup.forEach((fn) => fn());
  cleanup = [];
  clearMocks();
});

function open(gates: RingGates) {
  saved = [];
  mockIPC((cmd, args) => {
    if (cmd === "get_ring_gates") return gates;
    if (cmd === "get_default_policy") return POLICY;
    if (cmd === "set_ring_gates") {
      const g = (args as { gates: RingGates }).gates;
      saved.push(g);
      return g;
    }
    return Promise.reject(`command ${cmd} not found`);
  });
  const view = render(RingPolicy, { ringKey: "prod", ringName: "Prod", collections: [] });
  cleanup.push(view.destroy);
  return view;
}

describe("Ring policy", () => {
  it("gives the ring a rollout policy of its own, starting from the app's defaults", async () => {
    const { target } = open(GATES);
    const toggle = (await findByTestId(target, "policy-rollout")) as HTMLInputElement;
    expect(toggle.checked).toBe(false);
    toggle.click();
    const capacity = (await findByTestId(target, "policy-capacity")) as HTMLInputElement;
    capacity.value = "10";
    capacity.dispatchEvent(new Event("input", { bubbles: true }));
    (byTestId(target, "policy-save")[0] as HTMLButtonElement).click();
    await waitFor(() => expect(saved).toHaveLength(1));
    expect(saved[0].rollout).toEqual({ ...POLICY, capacity: { type: POLICY.capacity.type, [POLICY.capacity.type]: 10 } });
    await waitFor(() => expect(text(target)).toContain("Saved"));
  });

  it("goes back to the defaults when unticked", async () => {
    const { target } = open({ ...GATES, rollout: POLICY });
    const toggle = (await findByTestId(target, "policy-rollout")) as HTMLInputElement;
    expect(toggle.checked).toBe(true);
    toggle.click();
    await waitFor(() => expect(byTestId(target, "policy-capacity")).toHaveLength(0));
    (byTestId(target, "policy-save")[0] as HTMLButtonElement).click();
    await waitFor(() => expect(saved).toHaveLength(1));
    expect(saved[0].rollout).toBeNull();
  });
});
