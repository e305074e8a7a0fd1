import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import { commands, type AppError, type AuditEntry, type AuditVerification } from "../bindings";
import { mergeNewest } from "../audit";
import { hasTauri, settle } from "../ipc";
import { throttle, type Throttled } from "../throttle";
import { BUILD_EVENT } from "./build.svelte";
import { ROLLOUT_EVENT } from "./rollouts.svelte";

/** Entries read per page, newest first. */
export const AUDIT_PAGE_SIZE = 100;
/** A busy rollout emits many events a second: re-read the newest page at most once a second. */
export const AUDIT_REFRESH_MS = 1000;
/** The backend's events after which the log may have grown: rollouts and builds act, refreshes follow deletes. */
export const AUDIT_EVENTS = [ROLLOUT_EVENT, BUILD_EVENT, "inventory-updated"] as const;
/** "Show entry #S" pages back at most this far before giving up. */
const MAX_PAGES_TO_REACH = 50;

export type AuditOptions = {
  refreshMs?: number;
  pageSize?: number;
};

/**
 * The hash-chained audit log: the pages loaded so far (newest first), and the last verification of the
 * whole chain. Follows the backend's rollout and build events once the Audit screen has loaded it.
 */
export class Audit {
  /** Newest first; null until the first page arrives. */
  entries = $state.raw<AuditEntry[] | null>(null);
  /** `before` for the next (older) page; null once the first entry is loaded. */
  nextBefore = $state<number | null>(null);
  error = $state.raw<AppError | null>(null);
  loadingOlder = $state(false);
  olderError = $state.raw<AppError | null>(null);

  verification = $state.raw<AuditVerification | null>(null);
  verifying = $state(false);
  verifyError = $state.raw<AppError | null>(null);

  /** How many entries the log holds: the newest entry's number (they count up from 1 without gaps). */
  total = $derived(this.entries?.[0]?.seq ?? 0);

  private readonly pageSize: number;
  private readonly refreshTask: Throttled;
  private unlisten: UnlistenFn[] = [];
  private stopped = false;
  /** Bumped when the list is replaced, so an older page read before that is dropped. */
  private generation = 0;

  constructor(options: AuditOptions = {}) {
    this.pageSize = options.pageSize ?? AUDIT_PAGE_SIZE;
    this.refreshTask = throttle(() => this.loadNewest(), options.refreshMs ?? AUDIT_REFRESH_MS);
  }

  /** Follow the backend's events; nothing is read until the Audit screen asks. */
  async start(): Promise<void> {
    if (!hasTauri()) return;
    this.stopped = false;
    for (const name of AUDIT_EVENTS) {
      try {
        const off = await listen(name, () => this.onChanged());
        this.unlisten.push(off);
      } catch {
        // Without events the screen still refreshes each time it opens.
      }
    }
    if (this.stopped) this.stop();
  }

  stop(): void {
    this.stopped = true;
    this.refreshTask.cancel();
    for (const off of this.unlisten.splice(0)) {
      Promise.resolve()
        .then(() => off())
        .catch(() => undefined);
    }
  }

  /** Something happened that may have added entries: re-read the newest page if the log is on screen. */
  onChanged(): void {
    if (this.entries !== null) this.refreshTask.trigger();
  }

  /** Read the newest page and put the entries not loaded yet in front. */
  async loadNewest(): Promise<void> {
    const generation = this.generation;
    const result = await settle(commands.getAuditLog(null, this.pageSize));
    if (generation !== this.generation) return;
    if (result.status === "ok") {
      const merged = mergeNewest(this.entries ?? [], result.data.entries, result.data.nextBefore, this.nextBefore);
      if (merged.replaced) {
        // An older page on its way belongs to the list just dropped.
        this.generation++;
        this.entries = merged.entries;
        this.nextBefore = merged.nextBefore;
      } else if (merged.entries.length !== this.entries?.length) {
        this.entries = merged.entries;
      }
      this.error = null;
    } else {
      this.error = result.error;
    }
  }

  /** The next page of older entries. */
  async loadOlder(): Promise<void> {
    const before = this.nextBefore;
    if (before === null || this.loadingOlder || this.entries === null) return;
    const generation = this.generation;
    this.loadingOlder = true;
    const result = await settle(commands.getAuditLog(before, this.pageSize));
    this.loadingOlder = false;
    if (generation !== this.generation || before !== this.nextBefore) return;
    if (result.status === "ok") {
      const oldest = this.entries[this.entries.length - 1]?.seq ?? Infinity;
      this.entries = [...this.entries, ...result.data.entries.filter((e) => e.seq < oldest)];
      this.nextBefore = result.data.nextBefore;
      this.olderError = null;
    } else {
      this.olderError = result.error;
    }
  }

  /** Page back until entry `seq` is loaded (for "Show entry #S"); false when it could not be reached. */
  async loadUntil(seq: number): Promise<boolean> {
    for (let i = 0; i < MAX_PAGES_TO_REACH; i++) {
      if (this.has(seq)) return true;
      if (this.nextBefore === null || this.olderError) return false;
      await this.loadOlder();
    }
    return this.has(seq);
  }

  has(seq: number): boolean {
    return this.entries?.some((e) => e.seq === seq) ?? false;
  }

  /** Walk the whole chain in the backend: every hash recomputed, every link checked. */
  async verify(): Promise<void> {
    if (this.verifying) return;
    this.verifying = true;
    const result = await settle(commands.verifyAuditLog());
    this.verifying = false;
    if (result.status === "ok") {
      this.verification = result.data;
      this.verifyError = null;
      // Show what was just verified.
      void this.loadNewest();
    } else {
      this.verifyError = result.error;
    }
  }
}
