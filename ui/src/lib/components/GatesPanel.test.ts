import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, describe, expect, it } from "vitest";
import { byTestId, render, waitFor } from "../../test/util";
import type { GateRun } from "../bindings";
import GatesPanel from "./GatesPanel.svelte";

let cleanup: (() => void)[] = [];
afterEach(() => {
  cleanup.forEach((fn) => fn());
  cleanup = [];
  clearMocks();
});

function gate(over: Partial<GateRun>): GateRun {
  return {
    id: "g1",
    version: "2026.1127.1",
    ring: "test",
    gate: "health",
    running: false,
    verdict: "pass",
    reasons: ["All 4 host(s) run 2026.1127.1"],
    startedBy: "alex",
    startedAt: "2026-11-27T10:00:00Z",
    finishedAt: "2026-11-27T10:01:00Z",
    evidence: "{}",
    ...over,
  };
}

describe("GatesPanel", () => {
  it("shows the newest run of each Test gate with its verdict and reasons", () => {
    const runs = [
      gate({ id: "old", verdict: "fail", startedAt: "2026-11-27T09:00:00Z", reasons: ["old"] }),
      gate({ id: "new" }),
      gate({ id: "le", gate: "loginEnterprise", verdict: "inconclusive", reasons: ["launcher offline"] }),
    ];
    const { target, destroy } = render(GatesPanel, { version: "2026.1127.1", runs });
    cleanup.push(destroy);
    const rows = [...target.querySelectorAll('[data-testid="gate-run"]')];
    expect(rows.map((r) => `${r.getAttribute("data-gate")}:${r.getAttribute("data-verdict")}`)).toEqual([
      "health:pass",
      "loginEnterprise:inconclusive",
    ]);
    expect(rows[1].textContent).toContain("launcher offline");
    expect(target.textContent).toContain("1 earlier gate run kept as evidence");
  });

  it("runs the Test gates and is disabled while any gate runs", async () => {
    const calls: { cmd: string; args: unknown }[] = [];
    mockIPC((cmd, args) => {
      calls.push({ cmd, args });
      if (cmd === "run_gates") return [gate({ running: true, verdict: null, finishedAt: null })];
      return Promise.reject(`command ${cmd} not found`);
    });
    const { target, destroy } = render(GatesPanel, { version: "2026.1127.1", runs: [] });
    cleanup.push(destroy);
    const button = byTestId(target, "run-gates")[0] as HTMLButtonElement;
    expect(button.disabled).toBe(false);
    button.click();
    await waitFor(() => expect(calls.some((c) => c.cmd === "run_gates")).toBe(true));
    expect(calls.find((c) => c.cmd === "run_gates")?.args).toMatchObject({ version: "2026.1127.1", ring: "test" });

    const { target: t2, destroy: d2 } = render(GatesPanel, {
      version: "2026.1127.1",
      runs: [gate({ running: true, verdict: null, finishedAt: null })],
    });
    cleanup.push(d2);
    expect((byTestId(t2, "run-gates")[0] as HTMLButtonElement).disabled).toBe(true);
    expect(byTestId(t2, "gate-run")[0].getAttribute("data-verdict")).toBe("running");
  });

  it("shows why the gates could not start", async () => {
    mockIPC(() => Promise.reject({ code: "InvalidInput", message: "the Test ring has no gates configured", requestId: null }));
    const { target, destroy } = render(GatesPanel, { version: "2026.1127.1", runs: [] });
    cleanup.push(destroy);
    (byTestId(target, "run-gates")[0] as HTMLButtonElement).click();
    await waitFor(() => expect(target.textContent).toContain("no gates configured"));
  });
});
