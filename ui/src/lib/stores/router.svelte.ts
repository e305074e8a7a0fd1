export type View = "rings" | "images" | "hosts" | "rollouts" | "settings";

export const VIEWS: readonly View[] = ["rings", "images", "hosts", "rollouts", "settings"];

/**
 * Which screen is showing, the host pool the Hosts screen is narrowed to (ARM id) and the rollout
 * the Rollouts screen shows.
 */
export class Router {
  view = $state<View>("rings");
  poolId = $state<string | null>(null);
  /** The rollout picked on the Rollouts screen; null shows the newest. */
  rolloutId = $state<string | null>(null);

  constructor(initial: View = "rings") {
    this.view = initial;
  }

  go(view: View): void {
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
}
