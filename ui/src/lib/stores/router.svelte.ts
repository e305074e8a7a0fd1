export type View = "build" | "releases" | "rings" | "hosts" | "rollouts" | "audit" | "settings";

export const VIEWS: readonly View[] = ["build", "releases", "rings", "hosts", "rollouts", "audit", "settings"];

/**
 * Which screen is showing, the host pool the Hosts screen is narrowed to (ARM id), the rollout
 * the Rollouts screen shows and the release page open on the Releases screen.
 */
export class Router {
  view = $state<View>("rings");
  poolId = $state<string | null>(null);
  /** The rollout picked on the Rollouts screen; null shows the newest. */
  rolloutId = $state<string | null>(null);
  /** The release (version name) open on the Releases screen; null shows the list. */
  releaseVersion = $state<string | null>(null);

  constructor(initial: View = "rings") {
    this.view = initial;
  }

  go(view: View): void {
    // The Releases entry always leads to the list.
    if (view === "releases") this.releaseVersion = null;
    this.view = view;
  }

  /** Open the Hosts screen filtered to one pool (from a card on the board). */
  openPool(poolId: string): void {
    this.poolId = poolId;
    this.view = "hosts";
  }

  setPool(poolId: string | null): void {
    this.poolId = poolId;
  }

  /** Open the Rollouts screen on one rollout (after starting it, for instance). */
  openRollout(id: string): void {
    this.rolloutId = id;
    this.view = "rollouts";
  }

  selectRollout(id: string | null): void {
    this.rolloutId = id;
  }

  /** Open a release's page (from the list, or after a capture made it). */
  openRelease(version: string): void {
    this.releaseVersion = version;
    this.view = "releases";
  }

  closeRelease(): void {
    this.releaseVersion = null;
  }
}
