import {
  commands,
  type AppError,
  type ReleaseSummary,
  type ReleaseView,
  type RetentionPolicy,
  type RetentionPreview,
} from "../bindings";
import { settle, type Result } from "../ipc";

/**
 * Image versions as releases: where each is in the pipeline, its checklist, and what retention
 * would keep or delete. Everything here is computed by the backend from the cached inventory and
 * the build journal, so it reloads whenever either changes.
 */
export class Releases {
  list = $state.raw<ReleaseSummary[] | null>(null);
  listError = $state.raw<AppError | null>(null);

  /** The release page on screen (version name), and its content. */
  version = $state<string | null>(null);
  current = $state.raw<ReleaseView | null>(null);
  currentError = $state.raw<AppError | null>(null);

  retention = $state.raw<RetentionPreview | null>(null);
  retentionError = $state.raw<AppError | null>(null);

  private seq = 0;
  private following: ReturnType<typeof setTimeout> | null = null;

  /** How often an open release whose replication is in progress is re-read from the gallery. */
  static readonly REPLICATION_POLL_MS = 5000;

  /** Reload whatever is on screen: the list, the open release and the retention preview. */
  async reload(): Promise<void> {
    await Promise.all([this.loadList(), this.loadCurrent(), this.loadRetention()]);
  }

  /** Reload only what the Releases screen has loaded already (nothing before it is first opened). */
  async reloadIfShown(): Promise<void> {
    await Promise.all([
      this.list !== null || this.listError !== null ? this.loadList() : undefined,
      this.loadCurrent(),
      this.retention !== null || this.retentionError !== null ? this.loadRetention() : undefined,
    ]);
  }

  async loadList(): Promise<void> {
    const result = await settle(commands.getReleases());
    if (result.status === "ok") {
      this.list = result.data;
      this.listError = null;
    } else {
      this.listError = result.error;
    }
  }

  open(version: string | null): void {
    if (version === this.version) return;
    this.version = version;
    this.current = null;
    this.currentError = null;
    void this.loadCurrent();
  }

  async loadCurrent(): Promise<void> {
    const version = this.version;
    if (version === null) return;
    const mine = ++this.seq;
    const result = await settle(commands.getRelease(version));
    if (mine !== this.seq || version !== this.version) return;
    if (result.status === "ok") {
      this.current = result.data;
      this.currentError = null;
      this.followReplication();
    } else {
      this.currentError = result.error;
    }
  }

  /**
   * While the open release still replicates, re-read just that version from the gallery every few
   * seconds (one GET, not a full inventory refresh) so its regions fill in live.
   */
  private followReplication(): void {
    if (this.following !== null) return;
    const replicating = (v: ReleaseView | null) =>
      v !== null && (v.summary.replicationState === "InProgress" || v.regions.some((r) => r.state === "Replicating"));
    if (!replicating(this.current)) return;
    this.following = setTimeout(async () => {
      this.following = null;
      const version = this.version;
      if (version === null || !replicating(this.current)) return;
      const result = await settle(commands.refreshRelease(version));
      if (version !== this.version) return;
      if (result.status === "ok") {
        this.current = result.data;
        this.list = this.list?.map((r) => (r.version === version ? result.data.summary : r)) ?? null;
        this.followReplication();
      } else {
        // Stop following; the error shows and the next inventory refresh reloads the page.
        this.currentError = result.error;
      }
    }, Releases.REPLICATION_POLL_MS);
  }

  async loadRetention(): Promise<void> {
    const result = await settle(commands.getRetentionPreview());
    if (result.status === "ok") {
      this.retention = result.data;
      this.retentionError = null;
    } else {
      this.retentionError = result.error;
    }
  }

  async setPolicy(policy: RetentionPolicy): Promise<Result<null, AppError>> {
    const result = await settle(commands.setRetentionPolicy(policy));
    if (result.status === "ok") await this.loadRetention();
    return result;
  }

  /** Delete versions retention allows deleting; the backend re-checks each one first. */
  async deleteVersions(versionIds: string[]): Promise<Result<string[], AppError>> {
    const result = await settle(commands.deleteVersions(versionIds));
    await this.loadRetention();
    return result;
  }
}
