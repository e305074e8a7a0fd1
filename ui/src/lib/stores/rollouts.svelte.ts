import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import { commands, type AppError, type RolloutState, type RolloutSummary, type RolloutView } from "../bindings";
import { hasTauri, settle, type Result } from "../ipc";
import {
  appendSnapshot,
  isFinished,
  sortNewestFirst,
  stageCounts,
  summaryOf,
  type RolloutAction,
  type StageSnapshot,
} from "../rollouts";
import { throttle, type Throttled } from "../throttle";

/** Emitted by the backend whenever a rollout's journal changes; the payload is the rollout's id. */
export const ROLLOUT_EVENT = "rollout-updated";

/** At most ~4 fetches a second of the rollout on screen, however fast its events come. */
export const DETAIL_INTERVAL_MS = 250;
/** The list (sidebar badge, list on the Rollouts screen) follows a little more lazily. */
export const LIST_INTERVAL_MS = 500;

export type RolloutsOptions = {
  /** A rollout this window knew as running or paused has completed, failed or been aborted. */
  onfinished?: (id: string, state: RolloutState) => void;
  detailIntervalMs?: number;
  listIntervalMs?: number;
};

const RUN: Record<RolloutAction, (id: string) => Promise<Result<RolloutView, AppError>>> = {
  pause: (id) => commands.pauseRollout(id),
  resume: (id) => commands.resumeRollout(id),
  abort: (id) => commands.abortRollout(id),
  retry: (id) => commands.retryRollout(id),
  release: (id) => commands.releaseStandby(id),
};

/**
 * Every rollout (for the list and the sidebar badge) and the one on screen, kept current from the
 * backend's `rollout-updated` events. While a rollout is watched, each update also adds a snapshot
 * of its hosts per stage to `history`, for the chart.
 */
export class Rollouts {
  /** Newest first; null until the first answer. */
  list = $state.raw<RolloutSummary[] | null>(null);
  listError = $state.raw<AppError | null>(null);

  /** Id of the rollout on screen, if any. */
  watching = $state<string | null>(null);
  current = $state.raw<RolloutView | null>(null);
  currentError = $state.raw<AppError | null>(null);
  history = $state.raw<StageSnapshot[]>([]);

  /** The action awaiting its answer, and the last one's failure. */
  pending = $state<RolloutAction | null>(null);
  actionError = $state.raw<AppError | null>(null);

  running = $derived(this.list?.filter((r) => r.state === "running").length ?? 0);

  private readonly options: RolloutsOptions;
  private readonly listTask: Throttled;
  private readonly detailTask: Throttled;
  private unlisten: UnlistenFn[] = [];
  private stopped = false;
  /** The last rollout the backend answered an action with, to show at once when it is watched next. */
  private lastApplied: RolloutView | null = null;
  /** Last state seen per rollout, to notice the moment one finishes. Not rendered. */
  // eslint-disable-next-line svelte/prefer-svelte-reactivity
  private states = new Map<string, RolloutState>();

  constructor(options: RolloutsOptions = {}) {
    this.options = options;
    this.listTask = throttle(() => this.loadList(), options.listIntervalMs ?? LIST_INTERVAL_MS);
    this.detailTask = throttle(() => this.loadCurrent(), options.detailIntervalMs ?? DETAIL_INTERVAL_MS);
  }

  async start(): Promise<void> {
    if (!hasTauri()) return;
    this.stopped = false;
    try {
      const off = await listen<string>(ROLLOUT_EVENT, (event) => this.onUpdated(event.payload));
      this.unlisten.push(off);
      if (this.stopped) this.stop();
    } catch (e) {
      this.listError = {
        code: "events",
        message: `Live rollout updates are unavailable: ${e instanceof Error ? e.message : String(e)}`,
        requestId: null,
      };
    }
    await this.loadList();
  }

  stop(): void {
    this.stopped = true;
    this.listTask.cancel();
    this.detailTask.cancel();
    for (const off of this.unlisten.splice(0)) {
      Promise.resolve()
        .then(() => off())
        .catch(() => undefined);
    }
  }

  async loadList(): Promise<void> {
    const result = await settle(commands.listRollouts());
    if (result.status === "ok") {
      for (const row of result.data) this.note(row.id, row.state);
      this.list = sortNewestFirst(result.data);
      if (this.listError?.code !== "events") this.listError = null;
    } else {
      this.listError = result.error;
    }
  }

  /** Show one rollout (or none): fetch it now and follow it until another is watched. */
  watch(id: string | null): void {
    if (id === this.watching) return;
    this.detailTask.cancel();
    this.watching = id;
    this.current = null;
    this.currentError = null;
    this.actionError = null;
    this.history = [];
    if (id === null) return;
    // Just started from a dialog: show what the backend answered while the fetch runs.
    if (this.lastApplied?.id === id) this.apply(this.lastApplied);
    this.detailTask.trigger();
  }

  async loadCurrent(): Promise<void> {
    const id = this.watching;
    if (id === null) return;
    const result = await settle(commands.getRollout(id));
    if (id !== this.watching) return;
    if (result.status === "ok") {
      this.currentError = null;
      this.apply(result.data);
    } else {
      this.currentError = result.error;
    }
  }

  /** Pause, resume, abort or retry the rollout on screen, or release the standby hosts it kept. */
  async act(action: RolloutAction): Promise<void> {
    const id = this.watching;
    if (id === null || this.pending !== null) return;
    this.pending = action;
    this.actionError = null;
    const result = await settle(RUN[action](id));
    this.pending = null;
    if (result.status === "ok") {
      this.apply(result.data);
    } else if (id === this.watching) {
      this.actionError = result.error;
    }
  }

  /** A rollout the backend just answered with (started, paused...): show it everywhere at once. */
  apply(view: RolloutView): void {
    this.lastApplied = view;
    this.note(view.id, view.state);
    const summary = summaryOf(view);
    const list = this.list ?? [];
    this.list = list.some((r) => r.id === view.id)
      ? list.map((r) => (r.id === view.id ? summary : r))
      : sortNewestFirst([summary, ...list]);
    if (view.id === this.watching) {
      this.current = view;
      this.history = appendSnapshot(this.history, { at: Date.now(), counts: stageCounts(view.stages) });
    }
  }

  dismissActionError(): void {
    this.actionError = null;
  }

  private onUpdated(id: string): void {
    this.listTask.trigger();
    if (id === this.watching) this.detailTask.trigger();
  }

  private note(id: string, state: RolloutState): void {
    const before = this.states.get(id);
    this.states.set(id, state);
    if (before !== undefined && !isFinished(before) && isFinished(state)) {
      this.options.onfinished?.(id, state);
    }
  }
}
