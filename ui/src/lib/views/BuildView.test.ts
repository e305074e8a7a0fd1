import { emit } from "@tauri-apps/api/event";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { captureView, capturePlan, collection, master, run, step, SUBNET_ID } from "../../test/build-fixtures";
import { byTestId, findByTestId, render, sleep, text, waitFor } from "../../test/util";
import type { CapturePlan, CaptureView, GoldenMaster, MasterRegistration, ScriptRun } from "../bindings";
import CaptureDialog from "../components/CaptureDialog.svelte";
import CapturePanel from "../components/CapturePanel.svelte";
import { BUILD_EVENT, Build } from "../stores/build.svelte";
import BuildView from "./BuildView.svelte";

type Handler = (args: Record<string, unknown> | undefined) => unknown;

let calls: { cmd: string; args: unknown }[] = [];
let cleanup: (() => void)[] = [];
let current: ScriptRun;

const count = (cmd: string) => calls.filter((c) => c.cmd === cmd).length;

function backend(overrides: Record<string, Handler> = {}) {
  calls = [];
  const handlers: Record<string, Handler> = {
    get_golden_masters: () => [master()],
    get_collections: () => [collection()],
    get_script_runs: () => [current],
    get_script_run: () => current,
    get_captures: () => [],
    cancel_build: () => null,
    ...overrides,
  };
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

beforeEach(() => {
  current = run();
});

afterEach(() => {
  cleanup.forEach((fn) => fn());
  cleanup = [];
  clearMocks();
});

async function openView() {
  const build = new Build({ detailIntervalMs: 10, listIntervalMs: 10 });
  await build.start();
  const view = render(BuildView, { build });
  cleanup.push(view.destroy, () => build.stop());
  return { ...view, build };
}

describe("Build view", () => {
  it("shows the master, the collections and the newest run", async () => {
    backend();
    const { target } = await openView();
    const card = await findByTestId(target, "master-card");
    expect(card.dataset.registered).toBe("true");
    expect(text(card)).toContain("Standard_D4s_v5");
    expect(text(card)).toContain("westeurope");
    expect(text(card)).toContain("win11");
    expect(text(card)).toContain("vnet-build/snet-capture");
    expect(text(byTestId(card, "master-power")[0])).toBe("Running");
    await waitFor(() => expect(byTestId(target, "collection-item")).toHaveLength(1));
    await findByTestId(target, "collection-editor");
    const panel = await findByTestId(target, "run-panel");
    expect(panel.dataset.state).toBe("running");
    expect(byTestId(target, "run-row")).toHaveLength(1);
  });

  it("streams a run's output and state from build-updated events, stdout and stderr apart", async () => {
    backend();
    const { target } = await openView();
    const panel = await findByTestId(target, "run-panel");
    const steps = () => byTestId(panel, "run-step");
    await waitFor(() => expect(steps().map((s) => s.dataset.state)).toEqual(["succeeded", "running", "pending"]));
    // The running script's output is open and follows along.
    await waitFor(() => expect(text(byTestId(steps()[1], "step-stdout")[0])).toBe("line 1"));
    const before = count("get_script_run");

    current = run({ steps: [current.steps[0], step(2, { state: "running", output: "line 1\nline 2", startedAt: "2026-11-27T09:51:00Z" }), step(3)] });
    await emit(BUILD_EVENT, { kind: "run", id: "run-1" });
    await waitFor(() => expect(byTestId(steps()[1], "step-stdout")[0].textContent).toBe("line 1\nline 2"));
    expect(count("get_script_run")).toBeGreaterThan(before);

    // An event about something else does not refetch this run.
    const fetched = count("get_script_run");
    await emit(BUILD_EVENT, { kind: "run", id: "run-other" });
    await emit(BUILD_EVENT, { kind: "capture", id: "run-1" });
    await sleep(50);
    expect(count("get_script_run")).toBe(fetched);

    current = run({
      state: "failed",
      finishedAt: "2026-11-27T09:55:00Z",
      steps: [
        current.steps[0],
        step(2, { state: "failed", exitCode: 1603, output: "line 1\nline 2", error: "Install failed: 1603", startedAt: "2026-11-27T09:51:00Z", durationMs: 125_000 }),
        step(3, { state: "skipped" }),
      ],
    });
    await emit(BUILD_EVENT, { kind: "run", id: "run-1" });
    await waitFor(() => expect(panel.dataset.state).toBe("failed"));
    expect(steps().map((s) => s.dataset.state)).toEqual(["succeeded", "failed", "skipped"]);
    expect(text(byTestId(steps()[1], "step-exit")[0])).toBe("exit 1603");
    expect(text(steps()[1])).toContain("2 min 5 s");
    const stderr = byTestId(steps()[1], "step-stderr")[0];
    expect(stderr.textContent).toBe("Install failed: 1603");
    expect(stderr.classList.contains("stderr")).toBe(true);
    expect(byTestId(panel, "cancel-run")).toHaveLength(0);
    await waitFor(() => expect(byTestId(target, "run-row")[0].dataset.state).toBe("failed"));
  });

  it("cancels a run after its current script and says so", async () => {
    backend();
    const { target } = await openView();
    const cancel = await findByTestId(target, "cancel-run");
    cancel.click();
    await waitFor(() => expect(calls.find((c) => c.cmd === "cancel_build")?.args).toEqual({ id: "run-1" }));
    expect(text(byTestId(target, "run-panel")[0])).toContain("Run Command can't stop a script midway");
  });

  it("registers a tagged master, checking the ids first and showing the backend's refusal", async () => {
    const tagged: GoldenMaster = master({ name: "vm-golden-dev", vmId: "/x/vm-golden-dev", registeredAt: null, powerState: "deallocated" });
    let answer: Handler = (args) => ({ ...tagged, ...(args?.registration as MasterRegistration), registeredAt: "2026-11-27T10:00:00Z" });
    backend({ get_golden_masters: () => [tagged], register_master: (args) => answer(args) });
    const { target } = await openView();
    const card = await findByTestId(target, "master-card");
    expect(card.dataset.registered).toBe("false");
    expect(text(card)).toContain("Not registered");
    byTestId(card, "register-button")[0].click();
    const subnet = (await findByTestId(card, "register-subnet")) as HTMLInputElement;
    expect(subnet.value).toBe(SUBNET_ID);

    subnet.value = "snet-capture";
    subnet.dispatchEvent(new Event("input", { bubbles: true }));
    await waitFor(() => expect(text(byTestId(card, "field-error")[0])).toContain("Not a subnet resource id"));
    byTestId(card, "register-submit")[0].click();
    await sleep(20);
    expect(count("register_master")).toBe(0);

    subnet.value = SUBNET_ID;
    subnet.dispatchEvent(new Event("input", { bubbles: true }));
    answer = () => Promise.reject({ code: "InvalidInput", message: "there is no image definition /x/win11", requestId: null });
    byTestId(card, "register-submit")[0].click();
    await waitFor(() => expect(text(byTestId(card, "error-banner")[0])).toContain("there is no image definition /x/win11"));

    answer = (args) => ({ ...tagged, ...(args?.registration as MasterRegistration), registeredAt: "2026-11-27T10:00:00Z" });
    byTestId(card, "register-submit")[0].click();
    await waitFor(() => expect(byTestId(target, "master-card")[0].dataset.registered).toBe("true"));
    expect(calls.find((c) => c.cmd === "register_master")?.args).toEqual({
      registration: { vmId: "/x/vm-golden-dev", imageDefinitionId: master().imageDefinitionId, captureSubnetId: SUBNET_ID },
    });
  });
});

describe("Capture dialog", () => {
  function open(plan: () => CapturePlan | Promise<never>) {
    backend({
      plan_capture: () => plan(),
      start_capture: (args) => captureView({ plan: args?.plan as CapturePlan }, "snapshot"),
    });
    const onclose = vi.fn();
    const onstarted = vi.fn();
    const view = render(CaptureDialog, { master: master(), onclose, onstarted });
    cleanup.push(view.destroy);
    return { ...view, onclose, onstarted };
  }

  it("shows the plan: version, regions with replicas and reasons, end of life, and the warnings first", async () => {
    const { target } = open(() => capturePlan());
    const plan = await findByTestId(target, "capture-plan");
    expect(calls.find((c) => c.cmd === "plan_capture")?.args).toEqual({ masterVmId: master().vmId });
    expect(text(byTestId(plan, "capture-version")[0])).toBe("2026.1127.2");
    const regions = byTestId(plan, "capture-region");
    expect(regions.map((r) => r.dataset.region)).toEqual(["westeurope", "northeurope"]);
    expect([...regions[0].querySelectorAll("td")].map((td) => text(td))).toEqual(["westeurope", "3", "Prod: hp-prod-weu creates up to 60 VMs at once"]);
    expect(text(plan)).toContain("4 replicas in 2 regions");
    expect(text(byTestId(plan, "capture-eol")[0])).toMatch(/2027/);
    // Warnings are an alert, above everything else in the plan.
    const warnings = byTestId(plan, "capture-warnings")[0];
    expect(warnings.getAttribute("role")).toBe("alert");
    expect(plan.firstElementChild).toBe(warnings);
    expect(text(byTestId(warnings, "capture-warning")[0])).toContain("checklist item 2 will not be met");
    expect(text(byTestId(plan, "capture-unrecorded")[0])).toBe("hotfix-kb5044284");
    expect((byTestId(plan, "capture-exclude")[0] as HTMLInputElement).checked).toBe(true);
    await waitFor(() => expect(document.activeElement).toBe(byTestId(target, "start-capture")[0]));
  });

  it("starts the capture with the reviewed plan", async () => {
    const { target, onstarted } = open(() => capturePlan({ warnings: [], unrecordedChanges: [] }));
    await findByTestId(target, "capture-plan");
    expect(byTestId(target, "capture-warnings")).toHaveLength(0);
    (byTestId(target, "capture-exclude")[0] as HTMLInputElement).click();
    const start = byTestId(target, "start-capture")[0] as HTMLButtonElement;
    expect(text(start)).toBe("Capture 2026.1127.2");
    start.click();
    await waitFor(() => expect(onstarted).toHaveBeenCalledTimes(1));
    const sent = (calls.find((c) => c.cmd === "start_capture")?.args as { plan: CapturePlan }).plan;
    expect(sent).toEqual({ ...capturePlan({ warnings: [], unrecordedChanges: [] }), excludeFromLatest: false });
    expect((onstarted.mock.calls[0][0] as CaptureView).id).toBe("cap-1");
  });

  it("says why a capture can't be planned", async () => {
    const { target } = open(() =>
      Promise.reject({ code: "InvalidInput", message: "A script collection is still running on the master; capture when it ends.", requestId: null }),
    );
    const banner = await findByTestId(target, "error-banner");
    expect(text(banner)).toContain("Couldn't plan the capture");
    expect(text(banner)).toContain("still running on the master");
    expect((byTestId(target, "start-capture")[0] as HTMLButtonElement).disabled).toBe(true);
  });
});

describe("Capture panel", () => {
  it("shows the stage timeline, temporary resources and sysprep output of a capture under way", () => {
    const view = render(CapturePanel, { capture: captureView({ sysprepOutput: "Sysprep: /generalize" }), oncancel: vi.fn() });
    cleanup.push(view.destroy);
    const stages = byTestId(view.target, "capture-stage");
    expect(stages.map((s) => s.dataset.status)).toEqual(["done", "done", "done", "done", "current", "pending", "pending", "pending", "pending", "pending"]);
    expect(byTestId(view.target, "capture-resource").map((r) => r.dataset.state)).toEqual(["created", "created", "created", "created"]);
    expect(text(view.target)).toContain("Sysprep: /generalize");
    expect(byTestId(view.target, "cancel-capture")).toHaveLength(1);
    expect(byTestId(view.target, "nothing-left")).toHaveLength(0);
  });

  it("shows a failed capture's reason, its failed stage in red, and that nothing was left behind", () => {
    const failed = captureView(
      {
        state: "failed",
        reason: "Sysprep the temporary VM failed: package was installed for a user, but not provisioned for all users",
        finishedAt: "2026-11-27T09:58:00Z",
      },
      "sysprep",
    );
    failed.stage = "done";
    failed.stages = failed.stages.map((s) => (s.stage === "cleanup" || s.stage === "done" ? { ...s, startedAt: "2026-11-27T09:55:00Z", finishedAt: "2026-11-27T09:58:00Z" } : s));
    failed.resources = failed.resources.map((r) => ({ ...r, state: "deleted" }));
    const view = render(CapturePanel, { capture: failed, oncancel: vi.fn() });
    cleanup.push(view.destroy);
    expect(text(byTestId(view.target, "capture-reason")[0])).toContain("not provisioned for all users");
    const sysprep = byTestId(view.target, "capture-stage").find((s) => s.dataset.stage === "sysprep")!;
    expect(sysprep.dataset.status).toBe("failed");
    expect(sysprep.classList.contains("failed")).toBe(true);
    expect(text(byTestId(view.target, "nothing-left")[0])).toContain("Nothing left behind");
    expect(byTestId(view.target, "cancel-capture")).toHaveLength(0);
  });

  it("lists what may be left when a stopped capture could not delete everything", () => {
    const stuck = captureView({ state: "failed", reason: "Cleanup failed", finishedAt: "2026-11-27T09:58:00Z" }, "cleanup");
    stuck.resources[3] = { ...stuck.resources[3], state: "created" };
    stuck.resources = stuck.resources.map((r, i) => (i < 3 ? { ...r, state: "deleted" } : r));
    const view = render(CapturePanel, { capture: stuck });
    cleanup.push(view.destroy);
    expect(byTestId(view.target, "nothing-left")).toHaveLength(0);
    expect(text(byTestId(view.target, "leftovers")[0])).toContain("rm-cap-1-vm");
  });
});

describe("Build store", () => {
  it("reports a capture it followed once it succeeds, and only once", async () => {
    let view = captureView();
    backend({ get_captures: () => [{ id: view.id, version: view.plan.version, state: view.state, stage: view.stage, createdAt: view.createdAt, finishedAt: null, reason: null }], get_capture: () => view });
    const onfinished = vi.fn();
    const build = new Build({ onfinished, detailIntervalMs: 5, listIntervalMs: 5 });
    cleanup.push(() => build.stop());
    await build.start();
    build.watchCapture(view.id);
    await waitFor(() => expect(build.capture?.state).toBe("running"));
    expect(build.running).toBe(2);

    view = { ...view, state: "succeeded", stage: "done" };
    await emit(BUILD_EVENT, { kind: "capture", id: view.id });
    await waitFor(() => expect(build.capture?.state).toBe("succeeded"));
    await emit(BUILD_EVENT, { kind: "capture", id: view.id });
    await sleep(40);
    expect(onfinished).toHaveBeenCalledTimes(1);
    expect(onfinished).toHaveBeenCalledWith("capture", view.id, "succeeded");
  });
});
