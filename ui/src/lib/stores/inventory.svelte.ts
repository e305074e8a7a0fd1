import { listen, type UnlistenFn } from "@tauri-apps/api/event";
import {
  commands,
  type AppError,
  type ConnectionInfo,
  type ImageVersionRow,
  type PoolCard,
  type RingBoard,
  type SyncProgress,
  type SyncStatus,
} from "../bindings";
import { hasTauri, settle } from "../ipc";
import { VersionPalette } from "../versions";

export const PROGRESS_EVENT = "inventory-progress";
export const UPDATED_EVENT = "inventory-updated";

/** Error codes that mean "the user asked for it", not a failure worth a red banner. */
const QUIET_CODES = new Set(["cancelled", "canceled"]);

function isQuiet(error: AppError | null | undefined): boolean {
  return error !== null && error !== undefined && QUIET_CODES.has(error.code.toLowerCase());
}

/**
 * Everything the screens share about the tenant: the ring board, image versions, connection and
 * refresh state. Shows the cached inventory at once, follows the backend's refresh through its
 * events, and reloads when a refresh ends.
 */
export class Inventory {
  board = $state.raw<RingBoard | null>(null);
  versions = $state.raw<ImageVersionRow[] | null>(null);
  connection = $state.raw<ConnectionInfo | null>(null);
  sync = $state.raw<SyncStatus | null>(null);
  progress = $state.raw<SyncProgress | null>(null);

  /** The first load (cached inventory) has answered, successfully or not. */
  loaded = $state(false);
  /** A refresh started from this window is awaiting its result. */
  refreshing = $state(false);
  cancelling = $state(false);
  /** Shown above the screens until dismissed: the last refresh's failure or a command error. */
  banner = $state.raw<AppError | null>(null);
  /** A quiet note such as "Refresh cancelled". */
  notice = $state<string | null>(null);

  boardError = $state.raw<AppError | null>(null);
  versionsError = $state.raw<AppError | null>(null);
  connectionError = $state.raw<AppError | null>(null);

  /** Bumped every time fresh inventory was loaded; views holding their own data refetch on it. */
  generation = $state(0);

  /** True while the backend refreshes (started by us, by itself at startup, or elsewhere). */
  running = $derived(this.refreshing || this.progress !== null || (this.sync?.running ?? false));

  /** Every pool on the board, ring lanes first, in board order. */
  pools = $derived.by((): PoolCard[] => {
    const board = this.board;
    if (!board) return [];
    return [...board.rings.flatMap((ring) => ring.pools), ...board.unassigned];
  });

  /** One colour per image version, shared by every screen. */
  palette = $derived.by(() => {
    const names: string[] = [];
    for (const pool of this.pools) {
      for (const v of pool.versions) names.push(v.version);
    }
    for (const row of this.versions ?? []) names.push(row.name);
    return new VersionPalette(names);
  });

  private unlisten: UnlistenFn[] = [];
  /** A refresh was asked for while one ran: its inventory may predate the change, so run another. */
  private refreshQueued = false;
  private loadSeq = 0;
  private updatesSeen = 0;
  private stopped = false;

  /** Subscribe to the backend's events, then load what it has cached. */
  async start(): Promise<void> {
    if (!hasTauri()) return;
    this.stopped = false;
    try {
      const offProgress = await listen<SyncProgress>(PROGRESS_EVENT, (event) => this.onProgress(event.payload));
      const offUpdated = await listen<SyncStatus>(UPDATED_EVENT, (event) => this.onUpdated(event.payload));
      if (this.stopped) {
        this.unlisten.push(offProgress, offUpdated);
        this.stop();
      } else {
        this.unlisten.push(offProgress, offUpdated);
      }
    } catch (e) {
      this.banner = {
        code: "events",
        message: `Live refresh updates are unavailable: ${e instanceof Error ? e.message : String(e)}`,
        requestId: null,
      };
    }
    await Promise.all([this.loadConnection(), this.reload()]);
  }

  stop(): void {
    this.stopped = true;
    for (const off of this.unlisten.splice(0)) {
      // UnlistenFn is typed as returning void but is async; the webview may already be tearing down.
      Promise.resolve()
        .then(() => off())
        .catch(() => undefined);
    }
  }

  async loadConnection(): Promise<void> {
    const result = await settle(commands.getConnection());
    if (result.status === "ok") {
      this.connection = result.data;
      this.connectionError = null;
    } else {
      this.connectionError = result.error;
    }
  }

  /** Load the board and image versions; a newer reload supersedes an older one still in flight. */
  async reload(): Promise<void> {
    const seq = ++this.loadSeq;
    const [board, versions] = await Promise.all([settle(commands.getBoard()), settle(commands.getImageVersions())]);
    if (seq !== this.loadSeq) return;

    if (board.status === "ok") {
      this.board = board.data;
      this.boardError = null;
      // Answers requested before the latest event were discarded above, so this is current.
      this.applySync(board.data.sync);
      if (!this.loaded && board.data.sync.lastError && !isQuiet(board.data.sync.lastError)) {
        // The previous session's refresh failed: say so once, at startup.
        this.banner = board.data.sync.lastError;
      }
    } else {
      this.boardError = board.error;
      if (this.sync === null) {
        const status = await settle(commands.getSyncStatus());
        if (status.status === "ok" && seq === this.loadSeq) this.applySync(status.data);
      }
    }

    if (versions.status === "ok") {
      this.versions = versions.data;
      this.versionsError = null;
    } else {
      this.versionsError = versions.error;
    }

    this.loaded = true;
    this.generation += 1;
  }

  /** Ask the backend for a fresh inventory. Resolves when the refresh ends. */
  async refresh(): Promise<void> {
    if (this.running) return;
    this.refreshing = true;
    this.notice = null;
    this.banner = null;
    const seen = this.updatesSeen;
    const result = await settle(commands.refreshInventory());
    this.refreshing = false;
    this.cancelling = false;
    this.progress = null;

    if (result.status === "ok") {
      this.applySync(result.data);
      this.applyOutcome(result.data.lastError);
    } else {
      this.sync = this.sync ? { ...this.sync, running: false } : null;
      this.applyOutcome(result.error);
    }
    // The "inventory-updated" event normally triggers the reload; do it here if it never came.
    if (this.updatesSeen === seen) await this.reload();
    this.runQueuedRefresh();
  }

  /**
   * The tenant changed under us (a rollout finished): refresh now, or as soon as the refresh in
   * progress ends, since that one may have read the tenant before the change.
   */
  requestRefresh(): void {
    if (this.running) {
      this.refreshQueued = true;
      return;
    }
    void this.refresh();
  }

  private runQueuedRefresh(): void {
    if (!this.refreshQueued || this.running || this.stopped) return;
    this.refreshQueued = false;
    void this.refresh();
  }

  async cancel(): Promise<void> {
    if (!this.running || this.cancelling) return;
    this.cancelling = true;
    const result = await settle(commands.cancelRefresh());
    if (result.status === "error") {
      this.cancelling = false;
      this.banner = result.error;
    }
  }

  dismissBanner(): void {
    this.banner = null;
  }

  /**
   * Take a status read from the backend. Progress of a refresh it says has finished is over, even if that
   * refresh's own "updated" event never reached this window (it can end before the window listens).
   */
  private applySync(status: SyncStatus): void {
    this.sync = status;
    if (this.progress !== null && this.progress.run <= status.finishedRun) this.progress = null;
  }

  private applyOutcome(error: AppError | null): void {
    if (error === null) return;
    if (isQuiet(error)) {
      this.notice = "Refresh cancelled";
    } else {
      this.banner = error;
    }
  }

  private onProgress(progress: SyncProgress): void {
    // Events and command replies can cross: progress of a refresh that has already ended must not bring the
    // progress bar back (it would stay, since no further event ends it).
    if (this.sync && progress.run <= this.sync.finishedRun) return;
    this.progress = progress;
    if (this.sync && !this.sync.running) this.sync = { ...this.sync, running: true };
  }

  private onUpdated(status: SyncStatus): void {
    // A status older than the one shown (events can cross) must not bring back a refresh that has ended.
    if (this.sync && status.finishedRun < this.sync.finishedRun) return;
    this.updatesSeen += 1;
    this.sync = status;
    this.progress = null;
    this.cancelling = false;
    this.applyOutcome(status.lastError);
    void this.reload();
    this.runQueuedRefresh();
  }
}
