import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { POLICY, makeBoard, makePlan, makeRollout, makeVersions } from "../../test/fixtures";
import { byTestId, findByTestId, render, sleep, text, waitFor } from "../../test/util";
import type { RolloutPlan, RolloutPolicy } from "../bindings";
import { VersionPalette } from "../versions";
import StartRolloutDialog from "./StartRolloutDialog.svelte";

type PlanArgs = { hostPoolId: string; version: string; policy: RolloutPolicy };

let calls: { cmd: string; args: unknown }[] = [];
let answerPlan: (args: PlanArgs) => RolloutPlan = () => makePlan();
let cleanup: (() => void)[] = [];

const pool = makeBoard().rings[1].pools[0];
const plans = () => calls.filter((c) => c.cmd === "plan_rollout").map((c) => c.args as PlanArgs);

beforeEach(() => {
  calls = [];
  answerPlan = () => makePlan();
  mockIPC((cmd, args) => {
    calls.push({ cmd, args });
    switch (cmd) {
      case "get_default_policy":
        return POLICY;
      case "plan_rollout":
        return answerPlan(args as PlanArgs);
      case "start_rollout":
        return makeRollout(["queued", "queued"], { id: "ro-new" });
      case "schedule_rollout":
        return { id: "sch-1", state: "scheduled", ...(args as object) };
      default:
        return Promise.reject(`command ${cmd} not found`);
    }
  });
});

afterEach(() => {
  cleanup.forEach((fn) => fn());
  cleanup = [];
  clearMocks();
});

function open(extra: Partial<{ pool: typeof pool }> = {}) {
  const onclose = vi.fn();
  const onstarted = vi.fn();
  const onscheduled = vi.fn();
  const view = render(StartRolloutDialog, {
    onscheduled,
    pool: extra.pool ?? pool,
    ring: "Pilot",
    versions: makeVersions(),
    palette: new VersionPalette(makeVersions().map((v) => v.name)),
    onclose,
    onstarted,
  });
  cleanup.push(view.destroy);
  const dialog = () => view.target.querySelector<HTMLDialogElement>('[data-testid="start-dialog"]')!;
  const startButton = () => byTestId(view.target, "start-rollout")[0] as HTMLButtonElement;
  return { ...view, onclose, onstarted, onscheduled, dialog, startButton };
}

function type(el: HTMLInputElement | HTMLTextAreaElement, value: string) {
  el.value = value;
  el.dispatchEvent(new Event("input", { bubbles: true }));
}

describe("Start rollout dialog", () => {
  it("lists versions newest first with their replication in the pool's region", async () => {
    const { target } = open();
    await waitFor(() => expect(plans()).toHaveLength(1));
    const rows = [...target.querySelectorAll<HTMLLabelElement>('[data-testid="version-picker"] label')];
    expect(rows.map((r) => text(r.querySelector(".version-name")))).toEqual(["2026.1127.1", "2026.1113.2", "2026.1030.1"]);
    expect(text(rows[0])).toContain("westeurope");
    // The newest version replicated to westeurope is picked.
    expect(rows[0].querySelector("input")!.checked).toBe(true);

    const elsewhere = open({ pool: { ...pool, location: "northeurope" } });
    const other = elsewhere.target.querySelector('[data-testid="version-picker"] label')!;
    expect(text(other)).toContain("not in northeurope");
  });

  it("plans with the default policy, then with whatever the form says, 300 ms after the last change", async () => {
    const { target } = open();
    await waitFor(() => expect(plans()).toHaveLength(1));
    expect(plans()[0]).toEqual({ hostPoolId: pool.id, version: "2026.1127.1", policy: POLICY });
    expect((byTestId(target, "message")[0] as HTMLTextAreaElement).value).toBe(POLICY.message);

    // Several edits in a row: one plan for all of them.
    target.querySelector<HTMLInputElement>('[data-testid="version-picker"] input[value="2026.1113.2"]')!.click();
    target.querySelector<HTMLInputElement>('input[value="hosts"]')!.click();
    await waitFor(() => expect(byTestId(target, "capacity-hosts")).toHaveLength(1));
    type(byTestId(target, "capacity-hosts")[0] as HTMLInputElement, "3");
    (byTestId(target, "drain-wait")[0] as HTMLInputElement).click();
    type(byTestId(target, "message")[0] as HTMLTextAreaElement, "Back in five minutes.");
    type(byTestId(target, "max-failures")[0] as HTMLInputElement, "2");
    (byTestId(target, "canary")[0] as HTMLInputElement).click();

    await sleep(150);
    expect(plans()).toHaveLength(1);
    await waitFor(() => expect(plans()).toHaveLength(2));
    expect(plans()[1]).toEqual({
      hostPoolId: pool.id,
      version: "2026.1113.2",
      policy: {
        capacity: { type: "hosts", hosts: 3 },
        drainMode: "waitForLogoff",
        logoffDelayMinutes: 15,
        message: "Back in five minutes.",
        maxFailures: 2,
        canary: false,
        standby: false,
        surge: false,
      },
    });
    await sleep(400);
    expect(plans()).toHaveLength(2);
  });

  it("shows the plan: hosts, users, capacity, duration, replication and the first 10 in order", async () => {
    const { target } = open();
    const summary = await findByTestId(target, "plan-summary");
    expect(text(byTestId(summary, "plan-hosts")[0])).toBe("12");
    expect(text(byTestId(summary, "plan-capacity")[0])).toBe("2 hosts");
    expect(text(summary)).toContain("2 of 14");
    expect(text(summary)).toContain("about 3 h 30 min");
    expect(text(summary)).toContain("Completed");
    expect(byTestId(summary, "plan-order")[0].querySelectorAll("li")).toHaveLength(10);
    expect(text(summary)).toContain("… and 2 more hosts");
  });

  it("disables Start while there are blockers, each shown next to its field", async () => {
    answerPlan = () =>
      makePlan({
        blockers: [
          { field: "message", message: "Tell users what is happening before they are logged off: the message is empty." },
          { field: "version", message: "2026.1127.1 is not replicated to westeurope yet (replication: Replicating)." },
          { field: "tenant", message: "The tenant is read-only." },
        ],
        warnings: ["The pool has a single host: it is out of service while it is replaced."],
      });
    const { target, startButton } = open();
    await waitFor(() => expect(byTestId(target, "field-error")).toHaveLength(2));

    const messageField = target.querySelector('[data-field="message"]')!;
    expect(text(messageField.querySelector('[data-testid="field-error"]'))).toContain("the message is empty");
    expect(byTestId(target, "message")[0].getAttribute("aria-invalid")).toBe("true");
    expect(text(target.querySelector('[data-field="version"] [data-testid="field-error"]'))).toContain("not replicated to westeurope");
    // A blocker no field matches is listed with the plan.
    expect(text(byTestId(target, "plan-blockers")[0])).toBe("The tenant is read-only.");
    expect(text(byTestId(target, "plan-warnings")[0])).toContain("single host");

    expect(startButton().disabled).toBe(true);
    expect(text(target.querySelector(".start-hint"))).toBe("Fix 3 problems to start");

    // Fixed: the next plan has no blockers and Start comes back.
    answerPlan = () => makePlan();
    type(byTestId(target, "message")[0] as HTMLTextAreaElement, "Updating, back soon.");
    await waitFor(() => expect(startButton().disabled).toBe(false));
    expect(byTestId(target, "field-error")).toHaveLength(0);
  });

  it("counts the message's characters and refuses more than 260", async () => {
    const { target, startButton } = open();
    await waitFor(() => expect(startButton().disabled).toBe(false));
    const counter = byTestId(target, "message-counter")[0];
    expect(text(counter)).toBe(`${POLICY.message.length} / 260`);

    const box = byTestId(target, "message")[0] as HTMLTextAreaElement;
    type(box, "x".repeat(261));
    await waitFor(() => expect(text(counter)).toBe("261 / 260"));
    expect(counter.classList.contains("over")).toBe(true);
    expect(box.getAttribute("aria-invalid")).toBe("true");
    expect(text(target.querySelector('[data-field="message"] [data-testid="field-error"]'))).toContain(
      "The message is 261 characters; AVD shows at most 260",
    );
    // The backend would say so too, but Start is off at once, not after the plan comes back.
    expect(startButton().disabled).toBe(true);
    await waitFor(() => expect(plans().at(-1)?.policy.message).toHaveLength(261));
    expect(startButton().disabled).toBe(true);

    type(box, "x".repeat(260));
    await waitFor(() => expect(text(counter)).toBe("260 / 260"));
    expect(counter.classList.contains("over")).toBe(false);
    await waitFor(() => expect(startButton().disabled).toBe(false));
  });

  it("starts the rollout with the form's version and policy and hands back the rollout", async () => {
    const { target, startButton, onstarted } = open();
    await waitFor(() => expect(startButton().disabled).toBe(false));
    type(byTestId(target, "logoff-delay")[0] as HTMLInputElement, "30");
    await waitFor(() => expect(plans().at(-1)?.policy.logoffDelayMinutes).toBe(30));
    await waitFor(() => expect(startButton().disabled).toBe(false));
    startButton().click();
    await waitFor(() => expect(onstarted).toHaveBeenCalledTimes(1));
    const start = calls.find((c) => c.cmd === "start_rollout")!.args;
    expect(start).toEqual({ hostPoolId: pool.id, version: "2026.1127.1", policy: { ...POLICY, logoffDelayMinutes: 30 } });
    expect(onstarted.mock.calls[0][0].id).toBe("ro-new");
  });

  it("schedules the rollout into a maintenance window instead, as UTC", async () => {
    const { target, startButton, onscheduled, onstarted } = open();
    await waitFor(() => expect(startButton().disabled).toBe(false));
    const schedule = byTestId(target, "schedule-rollout")[0] as HTMLButtonElement;
    expect(schedule.disabled).toBe(true);
    type(byTestId(target, "schedule-at")[0] as HTMLInputElement, "2030-01-15T22:30");
    await waitFor(() => expect(schedule.disabled).toBe(false));
    schedule.click();
    await waitFor(() => expect(onscheduled).toHaveBeenCalledTimes(1));
    const args = calls.find((c) => c.cmd === "schedule_rollout")!.args as { startAt: string; version: string };
    expect(args.startAt).toBe(new Date("2030-01-15T22:30").toISOString());
    expect(args.version).toBe("2026.1127.1");
    expect(onstarted).not.toHaveBeenCalled();
  });

  it("shows why the backend refused to start", async () => {
    const { target, startButton, onstarted } = open();
    await waitFor(() => expect(startButton().disabled).toBe(false));
    clearMocks();
    mockIPC((cmd) =>
      cmd === "start_rollout"
        ? Promise.reject({ code: "InvalidInput", message: "hp-pilot-01 already has a rollout in progress.", requestId: null })
        : makePlan(),
    );
    startButton().click();
    await waitFor(() => expect(text(byTestId(target, "start-error")[0])).toBe("hp-pilot-01 already has a rollout in progress."));
    expect(onstarted).not.toHaveBeenCalled();
  });

  it("closes on Escape and keeps Tab inside the dialog", async () => {
    const { dialog, onclose, startButton } = open();
    await waitFor(() => expect(startButton().disabled).toBe(false));
    // The picked version has focus first.
    expect((document.activeElement as HTMLInputElement).value).toBe("2026.1127.1");

    startButton().focus();
    dialog().dispatchEvent(new KeyboardEvent("keydown", { key: "Tab", bubbles: true, cancelable: true }));
    expect(document.activeElement?.getAttribute("aria-label")).toBe("Close");
    dialog().dispatchEvent(new KeyboardEvent("keydown", { key: "Tab", shiftKey: true, bubbles: true, cancelable: true }));
    expect(document.activeElement).toBe(startButton());

    dialog().dispatchEvent(new KeyboardEvent("keydown", { key: "Escape", bubbles: true, cancelable: true }));
    expect(onclose).toHaveBeenCalledTimes(1);
  });
});
