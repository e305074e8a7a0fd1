import type { AuditEntry } from "./bindings";

// ---------------------------------------------------------------- areas

/** The part of the pipeline an action belongs to: the `area` of `area.verb`. */
export type AuditArea =
  | "rollout"
  | "capture"
  | "run"
  | "collection"
  | "master"
  | "release"
  | "retention"
  | "version"
  | "build"
  | "other";

/** In the order the filter lists them: the pipeline's order, then housekeeping. */
export const AUDIT_AREAS: readonly AuditArea[] = [
  "master",
  "collection",
  "run",
  "capture",
  "build",
  "release",
  "rollout",
  "retention",
  "version",
  "other",
];

/** The icons areas use (names from Icon.svelte, which plain `tsc` cannot read). */
type AreaIcon = "master" | "collection" | "script" | "capture" | "stop" | "releases" | "rollouts" | "clock" | "trash" | "audit";

/** Each area's filter label, icon and colour (`--area-*` in app.css, light and dark). */
export const AREA: Record<AuditArea, { label: string; icon: AreaIcon }> = {
  master: { label: "Masters", icon: "master" },
  collection: { label: "Collections", icon: "collection" },
  run: { label: "Runs", icon: "script" },
  capture: { label: "Captures", icon: "capture" },
  build: { label: "Cancels", icon: "stop" },
  release: { label: "Releases", icon: "releases" },
  rollout: { label: "Rollouts", icon: "rollouts" },
  retention: { label: "Retention", icon: "clock" },
  version: { label: "Deletions", icon: "trash" },
  other: { label: "Other", icon: "audit" },
};

export function areaOf(action: string): AuditArea {
  const area = action.split(".")[0];
  return (AUDIT_AREAS as readonly string[]).includes(area) && area !== "other" ? (area as AuditArea) : "other";
}

// ---------------------------------------------------------------- labels

/** What each action the backend records reads as. */
const ACTION_LABEL: Record<string, string> = {
  "rollout.start": "Started a rollout",
  "rollout.pause": "Paused a rollout",
  "rollout.resume": "Resumed a rollout",
  "rollout.abort": "Aborted a rollout",
  "rollout.retry": "Retried failed hosts",
  "rollout.rollback": "Rolled back",
  "capture.start": "Started a capture",
  "capture.finish": "Capture finished",
  "run.start": "Started a script run",
  "run.finish": "Script run finished",
  "collection.save": "Saved a collection",
  "collection.delete": "Deleted a collection",
  "master.register": "Registered a golden master",
  "build.cancel": "Cancelled a run or capture",
  "release.publish": "Published to 'latest'",
  "retention.policy": "Changed the retention policy",
  "version.delete": "Deleted an image version",
};

/** "rollout.start" reads "Started a rollout"; an action this UI does not know reads "Area: verb". */
export function actionLabel(action: string): string {
  const known = ACTION_LABEL[action];
  if (known) return known;
  const [area, ...rest] = action.split(".");
  const verb = rest.join(".").replace(/[._-]+/g, " ").trim();
  const head = area ? area.charAt(0).toUpperCase() + area.slice(1) : "Action";
  return verb ? `${head}: ${verb}` : head;
}

// ---------------------------------------------------------------- details

/** The detail JSON parsed, or null when it is not JSON (shown as it is then). */
export function parseDetail(detail: string): unknown {
  try {
    return JSON.parse(detail);
  } catch {
    return null;
  }
}

/** The detail JSON indented for reading; text that is not JSON comes back as it is. */
export function prettyDetail(detail: string): string {
  const parsed = parseDetail(detail);
  if (parsed === null && detail.trim() !== "null") return detail;
  return JSON.stringify(parsed, null, 2);
}

/**
 * How an ending came out, for `run.finish` and `capture.finish` (their detail's `result`): shown next to the
 * action so a failed capture stands out without opening it.
 */
export function outcomeOf(entry: Pick<AuditEntry, "action" | "detail">): string | null {
  if (!entry.action.endsWith(".finish")) return null;
  const parsed = parseDetail(entry.detail);
  if (typeof parsed !== "object" || parsed === null) return null;
  const result = (parsed as Record<string, unknown>).result;
  return typeof result === "string" && result !== "" ? result : null;
}

export function outcomeTone(outcome: string): "ok" | "danger" | "neutral" {
  if (outcome === "succeeded") return "ok";
  if (outcome === "failed" || outcome === "timedOut") return "danger";
  return "neutral";
}

/** The app's own actor (an executor finishing, publishing): not a person. */
export const AUTOMATIC_ACTOR = "Ringmaster (automatic)";

export function isAutomatic(actor: string): boolean {
  return actor === AUTOMATIC_ACTOR;
}

export type ActorView = {
  kind: "automatic" | "app" | "person";
  /** What the row shows: a sign-in name, an application (client) id, or "Ringmaster". */
  name: string;
  /** The line under it: "automatic", "service principal", or nothing for a person. */
  note: string | null;
  /** Entra ID object id, when the token carried one. */
  objectId: string | null;
};

/**
 * How the backend names who acted: the token's `upn` (or another name claim), or `app <client id>` for a service
 * principal, each followed by ` (object id <oid>)` when the token has one; or the app itself.
 */
export function describeActor(actor: string): ActorView {
  if (isAutomatic(actor)) return { kind: "automatic", name: "Ringmaster", note: "automatic", objectId: null };
  const m = /^(.*?)\s*\(object id ([^)]+)\)$/.exec(actor);
  const who = (m ? m[1] : actor).trim() || actor;
  const objectId = m ? m[2] : null;
  if (/^app\s+\S+$/.test(who)) return { kind: "app", name: who.replace(/^app\s+/, ""), note: "service principal", objectId };
  return { kind: "person", name: who, note: null, objectId };
}

/** Two letters for a person's avatar: "jordan.lee@…" gives "JL", "admin@…" gives "AD". */
export function initials(name: string): string {
  const local = name.split("@")[0];
  const parts = local.split(/[\s._-]+/).filter(Boolean);
  const letters = parts.length > 1 ? parts[0][0] + parts[1][0] : local.slice(0, 2);
  return letters.toUpperCase();
}

/** The first 12 hex digits: enough to tell entries apart by eye. */
export function shortHash(hash: string): string {
  return hash.slice(0, 12);
}

// ---------------------------------------------------------------- filtering

/**
 * True when every word of `query` is found in the entry's actor, action (code or label) or subject,
 * ignoring case. An empty query matches everything.
 */
export function matchesQuery(entry: Pick<AuditEntry, "actor" | "action" | "subject">, query: string): boolean {
  const words = query.toLowerCase().split(/\s+/).filter(Boolean);
  if (words.length === 0) return true;
  const haystack = `${entry.actor}\n${entry.action}\n${actionLabel(entry.action)}\n${entry.subject}`.toLowerCase();
  return words.every((w) => haystack.includes(w));
}

/** Entries of the given area (all of them for null) that match the query, in their order. */
export function filterEntries<T extends Pick<AuditEntry, "actor" | "action" | "subject">>(
  entries: readonly T[],
  query: string,
  area: AuditArea | null,
): T[] {
  return entries.filter((e) => (area === null || areaOf(e.action) === area) && matchesQuery(e, query));
}

/**
 * The areas the loaded entries have, in the filter's order, each with how many of `matching` (the entries the
 * text filter leaves) it holds. Areas no loaded entry has are left out.
 */
export function areaCounts(
  entries: readonly Pick<AuditEntry, "action">[],
  matching: readonly Pick<AuditEntry, "action">[] = entries,
): { area: AuditArea; count: number }[] {
  const present = new Set(entries.map((e) => areaOf(e.action)));
  const counts = new Map<AuditArea, number>();
  for (const e of matching) {
    const area = areaOf(e.action);
    counts.set(area, (counts.get(area) ?? 0) + 1);
  }
  return AUDIT_AREAS.filter((a) => present.has(a)).map((area) => ({ area, count: counts.get(area) ?? 0 }));
}

/**
 * Put a freshly read newest page in front of what is loaded. Entries never change, so the ones already
 * loaded stay; if the page does not reach them (more new entries than a page), the older ones are dropped
 * and paging starts again from the page, so the list never has a hole.
 */
export function mergeNewest(
  loaded: readonly AuditEntry[],
  page: readonly AuditEntry[],
  pageNextBefore: number | null,
  loadedNextBefore: number | null,
): { entries: AuditEntry[]; nextBefore: number | null; replaced: boolean } {
  const replace = { entries: [...page], nextBefore: pageNextBefore, replaced: true };
  if (loaded.length === 0 || page.length === 0) return replace;
  const newestLoaded = loaded[0].seq;
  // A gap between the page and what is loaded (or the log shrank, which an intact one never does).
  if (page[page.length - 1].seq > newestLoaded + 1 || page[0].seq < newestLoaded) return replace;
  const fresh = page.filter((e) => e.seq > newestLoaded);
  return { entries: fresh.length === 0 ? [...loaded] : [...fresh, ...loaded], nextBefore: loadedNextBefore, replaced: false };
}
