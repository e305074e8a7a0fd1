import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import {
  commands,
  type AppError,
  type BuildUpdate,
  type CaptureState,
  type CaptureSummary,
  type CaptureView,
  type GoldenMaster,
  type MasterRegistration,
  type RunState,
  type ScriptCollection,
  type ScriptRun,
} from "../bindings";
import { isCaptureFinished, isRunFinished, newestFirst } from "../build";
import { hasTauri, settle, type Result } from "../ipc";
import { sortNewestFirst } from "../rollouts";
import { throttle, type Throttled } from "../throttle";

/** Emitted by the backend whenever a script run or a capture changes (output, stage, state). */
export const BUILD_EVENT = "build-updated";

/** At most ~4 fetches a second of the run or capture on screen, however fast its events come. */
export const DETAIL_INTERVAL_MS = 250;
export const LIST_INTERVAL_MS = 500;

export type BuildOptions = {
  /** A run or capture this window knew as running has ended. */
  onfinished?: (kind: "run" | "capture", id: string, state: RunState | CaptureState) => void;
  /** A gate run on this release (version name) started or ended. */
  ongate?: (version: string) => void;
  /** The app has something to tell people now (an automatic rollback). */
  onnotice?: (id: string) => void;
  detailIntervalMs?: number;
  listIntervalMs?: number;
};

/**
 * The build half of the pipeline: golden masters, script collections, their runs and captures. The
 * run and the capture on screen are followed through the backend's `build-updated` events.
 */
export class Build {
  masters = $state.raw<GoldenMaster[] | null>(null);
  mastersError = $state.raw<AppError | null>(null);
  collections = $state.raw<ScriptCollection[] | null>(null);
  collectionsError = $state.raw<AppError | null>(null);
  /** Newest first. */
  runs = $state.raw<ScriptRun[] | null>(null);
  runsError = $state.raw<AppError | null>(null);
  /** Newest first. */
  captures = $state.raw<CaptureSummary[] | null>(null);
  capturesError = $state.raw<AppError | null>(null);

  /** The run on screen, and its latest state. */
  runId = $state<string | null>(null);
  run = $state.raw<ScriptRun | null>(null);
  runError = $state.raw<AppError | null>(null);
  /** The capture on screen, and its latest state. */
  captureId = $state<string | null>(null);
  capture = $state.raw<CaptureView | null>(null);
  captureError = $state.raw<AppError | null>(null);

  /** Runs and captures under way, for the sidebar badge. */
  running = $derived(
    (this.runs?.filter((r) => r.state === "running").length ?? 0) +
      (this.captures?.filter((c) => c.state === "running").length ?? 0),
  );

  private readonly options: BuildOptions;
  private readonly runsTask: Throttled;
  private readonly capturesTask: Throttled;
  private readonly runTask: Throttled;
  private readonly captureTask: Throttled;
  private unlisten: UnlistenFn[] = [];
  private stopped = false;
  /** Last state seen per run or capture, to notice the moment one ends. Not rendered. */
  // eslint-disable-next-line svelte/prefer-svelte-reactivity
  private states = new Map<string, string>();

  constructor(options: BuildOptions = {}) {
    this.options = options;
    const list = options.listIntervalMs ?? LIST_INTERVAL_MS;
    const detail = options.detailIntervalMs ?? DETAIL_INTERVAL_MS;
    this.runsTask = throttle(() => this.loadRuns(), list);
    this.capturesTask = throttle(() => this.loadCaptures(), list);
    this.runTask = throttle(() => this.loadRun(), detail);
    this.captureTask = throttle(() => this.loadCapture(), detail);
  }

  /** Follow the backend's events and load what is cheap (runs and captures come from the local journal). */
  async start(): Promise<void> {
    if (!hasTauri()) return;
    this.stopped = false;
    try {
      const off = await listen<BuildUpdate>(BUILD_EVENT, (event) => this.onUpdated(event.payload));
      this.unlisten.push(off);
      if (this.stopped) this.stop();
    } catch (e) {
      this.runsError = {
        code: "events",
        message: `Live build updates are unavailable: ${e instanceof Error ? e.message : String(e)}`,
        requestId: null,
      };
    }
    await Promise.all([this.loadRuns(), this.loadCaptures()]);
  }

  stop(): void {
    this.stopped = true;
    for (const task of [this.runsTask, this.capturesTask, this.runTask, this.captureTask]) task.cancel();
    for (const off of this.unlisten.splice(0)) {
      Promise.resolve()
        .then(() => off())
        .catch(() => undefined);
    }
  }

  /** Everything the Build screen shows; masters ask Azure, so only when the screen opens. */
  async load(): Promise<void> {
    await Promise.all([this.loadMasters(), this.loadCollections(), this.loadRuns(), this.loadCaptures()]);
  }

  async loadMasters(): Promise<void> {
    const result = await settle(commands.getGoldenMasters());
    if (result.status === "ok") {
      this.masters = result.data;
      this.mastersError = null;
    } else {
      this.mastersError = result.error;
    }
  }

  async register(registration: MasterRegistration): Promise<Result<GoldenMaster, AppError>> {
    const result = await settle(commands.registerMaster(registration));
    if (result.status === "ok") {
      const master = result.data;
      const list = this.masters ?? [];
      const at = list.findIndex((m) => m.vmId.toLowerCase() === master.vmId.toLowerCase());
      this.masters = at < 0 ? [...list, master] : list.map((m, i) => (i === at ? master : m));
    }
    return result;
  }

  async loadCollections(): Promise<void> {
    const result = await settle(commands.getCollections());
    if (result.status === "ok") {
      this.collections = [...result.data].sort((a, b) => a.name.localeCompare(b.name));
      this.collectionsError = null;
    } else {
      this.collectionsError = result.error;
    }
  }

  /** Put a collection the backend answered with (saved, imported) into the list. */
  private putCollection(c: ScriptCollection): void {
    const others = (this.collections ?? []).filter((x) => x.id !== c.id);
    this.collections = [...others, c].sort((a, b) => a.name.localeCompare(b.name));
  }

  async saveCollection(c: ScriptCollection): Promise<Result<ScriptCollection, AppError>> {
    const result = await settle(commands.saveCollection(c));
    if (result.status === "ok") this.putCollection(result.data);
    return result;
  }

  async importCollection(text: string): Promise<Result<ScriptCollection, AppError>> {
    const result = await settle(commands.importCollection(text));
    if (result.status === "ok") this.putCollection(result.data);
    return result;
  }

  async deleteCollection(id: string): Promise<Result<null, AppError>> {
    const result = await settle(commands.deleteCollection(id));
    if (result.status === "ok") this.collections = (this.collections ?? []).filter((c) => c.id !== id);
    return result;
  }

  exportCollection(id: string): Promise<Result<string, AppError>> {
    return settle(commands.exportCollection(id));
  }

  // ---------------------------------------------------------------- runs

  async loadRuns(): Promise<void> {
    const result = await settle(commands.getScriptRuns());
    if (result.status === "ok") {
      for (const r of result.data) this.note("run", r.id, r.state);
      this.runs = newestFirst(result.data);
      if (this.runsError?.code !== "events") this.runsError = null;
    } else {
      this.runsError = result.error;
    }
  }

  async startRun(collectionId: string, vmId: string): Promise<Result<ScriptRun, AppError>> {
    const result = await settle(commands.startScriptRun(collectionId, vmId));
    if (result.status === "ok") {
      this.applyRun(result.data);
      this.watchRun(result.data.id);
    }
    return result;
  }

  /** Show one run (or none) and follow it. */
  watchRun(id: string | null): void {
    if (id === this.runId) return;
    this.runTask.cancel();
    this.runId = id;
    this.runError = null;
    this.run = id === null ? null : (this.runs?.find((r) => r.id === id) ?? null);
    if (id !== null) this.runTask.trigger();
  }

  async loadRun(): Promise<void> {
    const id = this.runId;
    if (id === null) return;
    const result = await settle(commands.getScriptRun(id));
    if (id !== this.runId) return;
    if (result.status === "ok") {
      this.runError = null;
      this.applyRun(result.data);
    } else {
      this.runError = result.error;
    }
  }

  private applyRun(run: ScriptRun): void {
    this.note("run", run.id, run.state);
    const list = this.runs ?? [];
    this.runs = list.some((r) => r.id === run.id) ? list.map((r) => (r.id === run.id ? run : r)) : newestFirst([run, ...list]);
    if (run.id === this.runId) this.run = run;
  }

  // ---------------------------------------------------------------- captures

  async loadCaptures(): Promise<void> {
    const result = await settle(commands.getCaptures());
    if (result.status === "ok") {
      for (const c of result.data) this.note("capture", c.id, c.state);
      this.captures = sortNewestFirst(result.data);
      this.capturesError = null;
    } else {
      this.capturesError = result.error;
    }
  }

  /** Show one capture (or none) and follow it. */
  watchCapture(id: string | null): void {
    if (id === this.captureId) return;
    this.captureTask.cancel();
    this.captureId = id;
    this.captureError = null;
    this.capture = null;
    if (id !== null) this.captureTask.trigger();
  }

  async loadCapture(): Promise<void> {
    const id = this.captureId;
    if (id === null) return;
    const result = await settle(commands.getCapture(id));
    if (id !== this.captureId) return;
    if (result.status === "ok") {
      this.captureError = null;
      this.applyCapture(result.data);
    } else {
      this.captureError = result.error;
    }
  }

  /** A capture the backend answered with (just started): show it at once and follow it. */
  applyCapture(view: CaptureView): void {
    this.note("capture", view.id, view.state);
    const summary: CaptureSummary = {
      id: view.id,
      version: view.plan.version,
      state: view.state,
      stage: view.stage,
      createdAt: view.createdAt,
      finishedAt: view.finishedAt,
      reason: view.reason,
    };
    const list = this.captures ?? [];
    this.captures = list.some((c) => c.id === view.id)
      ? list.map((c) => (c.id === view.id ? summary : c))
      : sortNewestFirst([summary, ...list]);
    if (view.id === this.captureId) this.capture = view;
  }

  startedCapture(view: CaptureView): void {
    this.watchCapture(view.id);
    this.applyCapture(view);
  }

  /** Ask a run (after its current script) or a capture (at its next stage) to stop. */
  cancel(id: string): Promise<Result<null, AppError>> {
    return settle(commands.cancelBuild(id));
  }

  private onUpdated(update: BuildUpdate): void {
    if (update.kind === "run") {
      this.runsTask.trigger();
      if (update.id === this.runId) this.runTask.trigger();
    } else if (update.kind === "capture") {
      this.capturesTask.trigger();
      if (update.id === this.captureId) this.captureTask.trigger();
    } else if (update.kind === "gate") {
      this.options.ongate?.(update.id);
    } else if (update.kind === "notice") {
      this.options.onnotice?.(update.id);
    }
  }

  private note(kind: "run" | "capture", id: string, state: RunState | CaptureState): void {
    const key = `${kind}:${id}`;
    const before = this.states.get(key);
    this.states.set(key, state);
    const ended = kind === "run" ? isRunFinished(state as RunState) : isCaptureFinished(state as CaptureState);
    if (before === "running" && ended) this.options.onfinished?.(kind, id, state);
  }
}
