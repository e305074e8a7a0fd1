export type View = "rings" | "images" | "hosts" | "settings";

export const VIEWS: readonly View[] = ["rings", "images", "hosts", "settings"];

/** Which screen is showing, and the host pool the Hosts screen is narrowed to (ARM id). */
export class Router {
  view = $state<View>("rings");
  poolId = $state<string | null>(null);

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
}
