/** Hosts whose VM was not built from a gallery version report this. */
export const UNKNOWN_VERSION = "unknown";

/** Number of distinct version colours; older versions wrap around. Matches --version-N in app.css. */
export const PALETTE_SIZE = 8;

function segments(version: string): Array<number | string> {
  return version.split(/[.\-+]/).map((part) => (/^\d+$/.test(part) ? Number(part) : part));
}

/**
 * Order two gallery version names (`Major.Minor.Patch`, numbers compared as numbers).
 * Returns a negative number when `a` is newer than `b`, so `sort(compareNewestFirst)` puts the
 * newest first. "unknown" always sorts last.
 */
export function compareNewestFirst(a: string, b: string): number {
  if (a === b) return 0;
  if (a === UNKNOWN_VERSION) return 1;
  if (b === UNKNOWN_VERSION) return -1;
  const sa = segments(a);
  const sb = segments(b);
  for (let i = 0; i < Math.max(sa.length, sb.length); i++) {
    const x = sa[i];
    const y = sb[i];
    if (x === undefined) return 1;
    if (y === undefined) return -1;
    if (x === y) continue;
    if (typeof x === "number" && typeof y === "number") return y - x;
    return String(y).localeCompare(String(x));
  }
  return 0;
}

/** Distinct known versions, newest first ("unknown" excluded). */
export function sortVersions(versions: Iterable<string>): string[] {
  const distinct = new Set<string>();
  for (const v of versions) {
    if (v && v !== UNKNOWN_VERSION) distinct.add(v);
  }
  return [...distinct].sort(compareNewestFirst);
}

/**
 * One colour per image version, the same on every screen: a version's colour is its index in the
 * global newest-first list. Colours are CSS custom properties so each theme can tune them.
 */
export class VersionPalette {
  readonly order: readonly string[];
  private readonly index: ReadonlyMap<string, number>;

  constructor(versions: Iterable<string> = []) {
    this.order = sortVersions(versions);
    this.index = new Map(this.order.map((v, i) => [v, i]));
  }

  /** Palette slot of a version, or -1 for "unknown" and versions outside the list. */
  slot(version: string): number {
    const i = this.index.get(version);
    return i === undefined ? -1 : i % PALETTE_SIZE;
  }

  color(version: string): string {
    const slot = this.slot(version);
    return slot < 0 ? "var(--version-unknown)" : `var(--version-${slot})`;
  }
}
