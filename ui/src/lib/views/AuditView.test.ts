import { emit } from "@tauri-apps/api/event";
import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { NOW } from "../../test/fixtures";
import { byTestId, findByTestId, render, sleep, text, waitFor } from "../../test/util";
import type { AuditEntry, AuditPage, AuditVerification } from "../bindings";
import { Audit } from "../stores/audit.svelte";
import { clock } from "../stores/clock.svelte";
import AuditView from "./AuditView.svelte";

type Handler = (args: Record<string, unknown> | undefined) => unknown;

let calls: { cmd: string; args: unknown }[] = [];
let cleanup: (() => void)[] = [];
/** The backend's log, oldest first. */
let log: AuditEntry[] = [];
/** Entry n was written n minutes after this. */
let base = NOW;

const ACTIONS: [string, string, string][] = [
  ["admin@contoso.com (object id 7c5d2e1a)", "rollout.start", "hp-test-weu-pooled"],
  ["Ringmaster (automatic)", "capture.finish", "2026.1127.1"],
  ["jordan.lee@contoso.com (object id 1a2b3c4d)", "collection.save", "Baseline apps"],
  ["admin@contoso.com (object id 7c5d2e1a)", "capture.start", "2026.1127.1"],
  ["app 5e0c1f7a-4d2b (object id 0d9c8b7a)", "master.register", "vm-golden-w11"],
];

function makeEntry(seq: number): AuditEntry {
  const [actor, action, subject] = ACTIONS[seq % ACTIONS.length];
  const detail =
    action === "capture.finish"
      ? { captureId: `cap-${seq}`, result: seq % 2 ? "failed" : "succeeded", reason: null }
      : { hostPoolId: `/subscriptions/sub-1/hostPools/${subject}`, version: "2026.1127.1", policy: { maxFailures: 1 } };
  return {
    seq,
    at: new Date(base + seq * 60_000).toISOString(),
    actor,
    action,
    subject,
    detail: JSON.stringify(detail),
    hash: `${seq.toString(16).padStart(4, "0")}${"9f8e7d6c5b4a".repeat(5)}`,
  };
}

/** A log of n entries, one a minute, the newest a minute ago. */
function seed(n: number) {
  base = NOW - (n + 1) * 60_000;
  log = Array.from({ length: n }, (_, i) => makeEntry(i + 1));
}

function page(before: number | null, limit: number): AuditPage {
  const rows = log.filter((e) => before === null || e.seq < before).reverse().slice(0, limit);
  const last = rows[rows.length - 1];
  return { entries: rows, nextBefore: last && last.seq > 1 && rows.length === limit ? last.seq : null };
}

function backend(overrides: Record<string, Handler> = {}) {
  calls = [];
  const handlers: Record<string, Handler> = {
    get_audit_log: (args) => page((args?.before as number | null) ?? null, args?.limit as number),
    verify_audit_log: (): AuditVerification => ({
      entries: log.length,
      intact: true,
      firstBrokenSeq: null,
      reason: null,
      checkedAt: new Date(NOW).toISOString(),
    }),
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

const auditCalls = () => calls.filter((c) => c.cmd === "get_audit_log").map((c) => c.args as { before: number | null; limit: number });

function openView(audit = new Audit({ refreshMs: 20 })) {
  const view = render(AuditView, { audit });
  cleanup.push(view.destroy);
  cleanup.push(() => audit.stop());
  return { ...view, audit };
}

const rows = (target: HTMLElement) => byTestId(target, "audit-entry");
const seqs = (target: HTMLElement) => rows(target).map((r) => Number(r.dataset.seq));
const row = (target: HTMLElement, seq: number) => target.querySelector<HTMLElement>(`[data-testid="audit-entry"][data-seq="${seq}"]`)!;

function key(el: HTMLElement, k: string) {
  el.dispatchEvent(new KeyboardEvent("keydown", { key: k, bubbles: true, cancelable: true }));
}

function type(input: HTMLInputElement, value: string) {
  input.value = value;
  input.dispatchEvent(new Event("input", { bubbles: true }));
}

beforeEach(() => {
  clock.now = NOW;
});

afterEach(() => {
  cleanup.forEach((fn) => fn());
  cleanup = [];
  clearMocks();
  vi.restoreAllMocks();
});

describe("Audit log", () => {
  it("lists the newest page, newest first, with who did what to which subject", async () => {
    seed(5);
    backend();
    const { target } = openView();
    await waitFor(() => expect(rows(target)).toHaveLength(5));
    expect(auditCalls()[0]).toEqual({ before: null, limit: 100 });
    expect(seqs(target)).toEqual([5, 4, 3, 2, 1]);
    expect(text(byTestId(target, "audit-count")[0])).toBe("5 entries");

    // #5: rollout.start by a person.
    const newest = row(target, 5);
    expect(newest.dataset.action).toBe("rollout.start");
    expect(newest.dataset.area).toBe("rollout");
    expect(text(byTestId(newest, "audit-action-label")[0])).toBe("Started a rollout");
    const who = byTestId(newest, "audit-actor")[0];
    expect(who.dataset.kind).toBe("person");
    expect(text(who)).toBe("AD admin@contoso.com");
    expect(newest.querySelector(".actor")?.getAttribute("title")).toBe(ACTIONS[0][0]);
    expect(text(newest)).toContain("hp-test-weu-pooled");
    const time = newest.querySelector("time")!;
    expect(text(time)).toBe("1 min ago");
    expect(time.getAttribute("datetime")).toBe(log[4].at);
    expect(time.getAttribute("title")).toMatch(/2026/);
    const hash = byTestId(newest, "audit-hash")[0];
    expect(text(hash)).toBe(log[4].hash.slice(0, 12));
    expect(hash.getAttribute("title")).toBe(log[4].hash);

    // #1: a capture ending, recorded as the app, with its result.
    const automatic = row(target, 1);
    expect(text(automatic)).toContain("Ringmaster");
    expect(text(automatic)).toContain("automatic");
    expect(text(byTestId(automatic, "audit-outcome")[0])).toBe("failed");
    // #4: a service principal.
    const app = byTestId(row(target, 4), "audit-actor")[0];
    expect(app.dataset.kind).toBe("app");
    expect(text(app)).toBe("5e0c1f7a-4d2b service principal");
    expect(byTestId(target, "load-older")).toHaveLength(0);
    expect(text(byTestId(target, "audit-footer")[0])).toContain("All 5 entries loaded");
  });

  it("copies an entry's full hash", async () => {
    seed(3);
    backend();
    const writeText = vi.fn(() => Promise.resolve());
    Object.defineProperty(navigator, "clipboard", { value: { writeText }, configurable: true });
    const { target } = openView();
    await waitFor(() => expect(rows(target)).toHaveLength(3));
    byTestId(row(target, 2), "audit-copy-hash")[0].click();
    await waitFor(() => expect(writeText).toHaveBeenCalledWith(log[1].hash));
    // Copying is not a click on the row.
    expect(row(target, 2).getAttribute("aria-expanded")).toBe("false");
    await waitFor(() => expect(byTestId(row(target, 2), "audit-copy-hash")[0].getAttribute("title")).toBe("Copied"));
  });

  it("says the chain is intact after Verify chain, with how many entries and when", async () => {
    seed(12);
    backend();
    const { target } = openView();
    await waitFor(() => expect(rows(target)).toHaveLength(12));
    expect(byTestId(target, "chain-banner")).toHaveLength(0);
    const button = byTestId(target, "verify-chain")[0] as HTMLButtonElement;
    expect(text(button)).toBe("Verify chain");
    button.click();
    const banner = await findByTestId(target, "chain-banner");
    expect(banner.dataset.intact).toBe("true");
    expect(text(banner)).toMatch(/^Chain intact: 12 entries verified at \d\d:\d\d:\d\d/);
    expect(banner.querySelector("time")?.getAttribute("datetime")).toBe(new Date(NOW).toISOString());
    expect(byTestId(target, "audit-broken-tag")).toHaveLength(0);
  });

  it("says where the chain breaks, and shows that entry, loading older pages to reach it", async () => {
    seed(230);
    backend({
      verify_audit_log: () => ({
        entries: 17,
        intact: false,
        firstBrokenSeq: 17,
        reason: "entry 17 was altered after it was written (its hash does not match)",
        checkedAt: new Date(NOW).toISOString(),
      }),
    });
    const { target } = openView();
    await waitFor(() => expect(rows(target)).toHaveLength(100));
    byTestId(target, "verify-chain")[0].click();
    const banner = await findByTestId(target, "chain-banner");
    expect(banner.dataset.intact).toBe("false");
    expect(banner.getAttribute("role")).toBe("alert");
    expect(text(banner)).toContain("Chain broken at entry #17: entry 17 was altered after it was written (its hash does not match)");
    expect(text(banner)).toContain("Entries #1 to #16 are intact.");

    // Entry 17 is two pages back: Show loads them, then opens and highlights it.
    const show = byTestId(banner, "show-broken")[0];
    expect(text(show)).toBe("Show entry #17");
    show.click();
    await waitFor(() => expect(row(target, 17)).not.toBeNull());
    expect(auditCalls().slice(1).filter((c) => c.before !== null)).toEqual([
      { before: 131, limit: 100 },
      { before: 31, limit: 100 },
    ]);
    const broken = row(target, 17);
    await waitFor(() => expect(broken.classList.contains("highlighted")).toBe(true));
    expect(broken.classList.contains("broken")).toBe(true);
    expect(text(byTestId(broken, "audit-broken-tag")[0])).toBe("Broken");
    expect(broken.getAttribute("aria-expanded")).toBe("true");
    expect(document.activeElement).toBe(broken);
    // Only the first broken entry is marked.
    expect(byTestId(target, "audit-broken-tag")).toHaveLength(1);
  });

  it("loads older entries a page at a time until the first one", async () => {
    seed(230);
    backend();
    const { target } = openView();
    await waitFor(() => expect(rows(target)).toHaveLength(100));
    expect(seqs(target)[0]).toBe(230);
    expect(seqs(target)[99]).toBe(131);
    expect(text(byTestId(target, "audit-footer")[0])).toContain("Showing entries #131 to #230 of 230");
    expect(text(byTestId(target, "audit-count")[0].parentElement)).toContain("100 loaded");

    byTestId(target, "load-older")[0].click();
    await waitFor(() => expect(rows(target)).toHaveLength(200));
    expect(auditCalls()[1]).toEqual({ before: 131, limit: 100 });
    expect(seqs(target)[199]).toBe(31);

    byTestId(target, "load-older")[0].click();
    await waitFor(() => expect(rows(target)).toHaveLength(230));
    expect(auditCalls()[2]).toEqual({ before: 31, limit: 100 });
    expect(seqs(target)[229]).toBe(1);
    // Newest first throughout, no entry twice.
    expect(seqs(target)).toEqual(Array.from({ length: 230 }, (_, i) => 230 - i));
    expect(byTestId(target, "load-older")).toHaveLength(0);
    expect(text(byTestId(target, "audit-footer")[0])).toContain("All 230 entries loaded: the log starts at entry #1.");
  });

  it("filters the loaded entries by text and by area", async () => {
    seed(10);
    backend();
    const { target } = openView();
    await waitFor(() => expect(rows(target)).toHaveLength(10));
    const box = byTestId(target, "audit-filter")[0] as HTMLInputElement;

    type(box, "jordan");
    await waitFor(() => expect(seqs(target)).toEqual([7, 2]));
    expect(rows(target).every((r) => r.dataset.action === "collection.save")).toBe(true);
    type(box, "CAPTURE 2026.1127");
    await waitFor(() => expect(seqs(target)).toEqual([8, 6, 3, 1]));
    expect(text(byTestId(target, "audit-footer")[0])).toContain("4 entries of 10 loaded match");

    // Both: captures that ended, as the app.
    type(box, "automatic");
    await waitFor(() => expect(seqs(target)).toEqual([6, 1]));
    type(box, "");
    const chip = byTestId(target, "audit-area").find((c) => c.dataset.area === "master")!;
    await waitFor(() => expect(text(chip)).toBe("Masters 2"));
    chip.click();
    await waitFor(() => expect(seqs(target)).toEqual([9, 4]));
    expect(chip.getAttribute("aria-pressed")).toBe("true");

    type(box, "nothing like this");
    const empty = await findByTestId(target, "audit-no-match");
    expect(text(empty)).toContain("No loaded entry matches “nothing like this” in masters");
    empty.querySelector("button")!.click();
    await waitFor(() => expect(rows(target)).toHaveLength(10));
    expect(box.value).toBe("");
  });

  it("opens and closes an entry's detail from the keyboard", async () => {
    seed(4);
    backend();
    const { target } = openView();
    await waitFor(() => expect(rows(target)).toHaveLength(4));
    const first = row(target, 4);
    expect(first.tabIndex).toBe(0);
    first.focus();
    expect(first.getAttribute("aria-expanded")).toBe("false");

    key(first, "Enter");
    const detail = await findByTestId(target, "audit-detail");
    expect(first.getAttribute("aria-expanded")).toBe("true");
    expect(first.getAttribute("aria-controls")).toBe(detail.id);
    const json = byTestId(detail, "audit-detail-json")[0];
    // Pretty-printed: one key a line, indented.
    expect(json.textContent).toBe(JSON.stringify(JSON.parse(log[3].detail), null, 2));
    expect(json.textContent).toContain('\n  "version": "2026.1127.1"');
    expect(text(byTestId(detail, "audit-full-hash")[0])).toBe(log[3].hash);

    key(first, " ");
    await waitFor(() => expect(byTestId(target, "audit-detail")).toHaveLength(0));
    expect(first.getAttribute("aria-expanded")).toBe("false");

    // Down moves to the next entry; Space opens that one.
    key(first, "ArrowDown");
    expect(document.activeElement).toBe(row(target, 3));
    key(row(target, 3), " ");
    await waitFor(() => expect(row(target, 3).getAttribute("aria-expanded")).toBe("true"));
    key(row(target, 3), "Home");
    expect(document.activeElement).toBe(first);
  });

  it("re-reads the newest page when a rollout or build changes, at most once per interval", async () => {
    seed(5);
    backend();
    const audit = new Audit({ refreshMs: 60 });
    await audit.start();
    const { target } = openView(audit);
    await waitFor(() => expect(rows(target)).toHaveLength(5));
    const before = auditCalls().length;

    log.push(makeEntry(6));
    for (let i = 0; i < 10; i++) await emit("rollout-updated", "ro-1");
    await emit("build-updated", { kind: "run", id: "run-1" });
    await waitFor(() => expect(seqs(target)[0]).toBe(6));
    await sleep(150);
    // A burst gives one read at once and one at its end, not one per event.
    expect(auditCalls().length - before).toBeLessThanOrEqual(2);
    expect(auditCalls().slice(before).every((c) => c.before === null)).toBe(true);
    expect(seqs(target)).toEqual([6, 5, 4, 3, 2, 1]);
  });

  it("shows why the log could not be read, and tries again", async () => {
    seed(2);
    let fail = true;
    backend({
      get_audit_log: (args) =>
        fail ? Promise.reject({ code: "store", message: "database is locked", requestId: null }) : page(null, args?.limit as number),
    });
    const { target } = openView();
    const banner = await findByTestId(target, "error-banner");
    expect(text(banner)).toContain("Couldn't read the audit log");
    expect(text(banner)).toContain("database is locked");
    fail = false;
    [...banner.querySelectorAll("button")].find((b) => text(b) === "Try again")!.click();
    await waitFor(() => expect(rows(target)).toHaveLength(2));
    expect(byTestId(target, "error-banner")).toHaveLength(0);
  });

  it("says so when nothing has been recorded yet", async () => {
    seed(0);
    backend();
    const { target } = openView();
    const empty = await findByTestId(target, "audit-empty");
    expect(text(empty)).toContain("Nothing recorded yet");
    expect(byTestId(target, "audit-filter")).toHaveLength(0);
  });
});
