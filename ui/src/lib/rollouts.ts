import type {
  DrainMode,
  HostStage,
  PolicyProblem,
  RolloutPolicy,
  RolloutState,
  RolloutSummary,
  RolloutView,
  StageCount,
} from "./bindings";
import { formatMinutes, plural } from "./format";

/** AVD shows at most this many characters of the message sent to users on a draining host. */
export const MESSAGE_LIMIT = 260;
/** AVD allows 0 to 60 minutes between the message and the forced log-off. */
export const MAX_LOGOFF_DELAY = 60;

/** Every stage, in the order a host goes through them (the order of `RolloutView.stages`). */
export const STAGES: readonly HostStage[] = [
  "queued",
  "draining",
  "waitingForLogoff",
  "removing",
  "creating",
  "registering",
  "verifying",
  "done",
  "failed",
  "skipped",
];

export const STAGE_LABELS: Record<HostStage, string> = {
  queued: "Queued",
  draining: "Draining",
  waitingForLogoff: "Waiting for log-off",
  removing: "Removing",
  creating: "Creating",
  registering: "Registering",
  verifying: "Verifying",
  done: "Done",
  failed: "Failed",
  skipped: "Skipped",
};

/** Stages where a host is out of service and being worked on. */
export const IN_FLIGHT: readonly HostStage[] = ["draining", "waitingForLogoff", "removing", "creating", "registering", "verifying"];

export function isInFlight(stage: HostStage): boolean {
  return IN_FLIGHT.includes(stage);
}

export const STATE_LABELS: Record<RolloutState, string> = {
  running: "Running",
  paused: "Paused",
  completed: "Completed",
  failed: "Failed",
  aborted: "Aborted",
};

/** A rollout in one of these states will not change again by itself. */
export function isFinished(state: RolloutState): boolean {
  return state === "completed" || state === "failed" || state === "aborted";
}

export type RolloutAction = "pause" | "resume" | "abort" | "retry" | "release";

export const ACTION_LABELS: Record<RolloutAction, string> = {
  pause: "Pause",
  resume: "Resume",
  abort: "Abort…",
  retry: "Retry failed",
  release: "Release standby",
};

/** What an operator can do with a rollout in each state, in button order. */
export function actionsFor(state: RolloutState, standbyKept = false): RolloutAction[] {
  switch (state) {
    case "completed":
      return standbyKept ? ["release"] : [];
    case "running":
      return ["pause", "abort"];
    case "paused":
      return ["resume", "abort"];
    case "failed":
      return ["retry", "resume", "abort"];
    default:
      return [];
  }
}

/** "Rollout" or "Rollback", from `RolloutView.kind`. */
export function kindLabel(kind: string): string {
  return kind === "rollback" ? "Rollback" : kind === "restore" ? "Instant rollback" : "Rollout";
}

/** Newest first (RFC 3339 times compare as text only in one offset, so parse them). */
export function sortNewestFirst<T extends { createdAt: string }>(rows: readonly T[]): T[] {
  const time = (iso: string) => {
    const t = Date.parse(iso);
    return Number.isNaN(t) ? 0 : t;
  };
  return [...rows].sort((a, b) => time(b.createdAt) - time(a.createdAt));
}

export function summaryOf(view: RolloutView): RolloutSummary {
  return {
    id: view.id,
    kind: view.kind,
    hostPoolId: view.hostPoolId,
    poolName: view.poolName,
    ring: view.ring,
    targetVersion: view.targetVersion,
    state: view.state,
    done: view.done,
    total: view.total,
    createdAt: view.createdAt,
    finishedAt: view.finishedAt,
  };
}

export function stageCounts(stages: readonly StageCount[]): Record<HostStage, number> {
  const counts = Object.fromEntries(STAGES.map((s) => [s, 0])) as Record<HostStage, number>;
  for (const { stage, hosts } of stages) counts[stage] = (counts[stage] ?? 0) + hosts;
  return counts;
}

// ---------------------------------------------------------------- policy

/** The policy fields a plan's blockers can point at, as `PolicyProblem.field` spells them. */
export type PolicyField = "version" | "capacity" | "logoffDelayMinutes" | "message" | "maxFailures";

export const POLICY_FIELDS: readonly PolicyField[] = ["version", "capacity", "logoffDelayMinutes", "message", "maxFailures"];

/** Blockers grouped by the form field they belong to; `other` holds those no field matches. */
export function problemsByField(problems: readonly PolicyProblem[]): {
  byField: Partial<Record<PolicyField, string[]>>;
  other: string[];
} {
  const byField: Partial<Record<PolicyField, string[]>> = {};
  const other: string[] = [];
  for (const problem of problems) {
    const field = POLICY_FIELDS.find((f) => f === problem.field);
    if (field) (byField[field] ??= []).push(problem.message);
    else other.push(problem.message);
  }
  return { byField, other };
}

export const DRAIN_LABELS: Record<DrainMode, string> = {
  forceLogoff: "Log users off after a delay",
  waitForLogoff: "Wait for users to log off",
};

/** "at most 20 % out of service · log off after 15 min · canary first · stop after 1 failed host". */
export function describePolicy(policy: RolloutPolicy): string[] {
  const parts = [
    policy.capacity.type === "hosts"
      ? `at most ${plural(policy.capacity.hosts, "host")} out of service`
      : `at most ${policy.capacity.percent} % out of service`,
    policy.drainMode === "forceLogoff"
      ? `log users off after ${formatMinutes(policy.logoffDelayMinutes)}`
      : "wait for users to log off",
  ];
  if (policy.canary) parts.push("canary host first");
  parts.push(`stop after ${plural(policy.maxFailures, "failed host")}`);
  return parts;
}

// ---------------------------------------------------------------- stage history and chart

/** Hosts per stage at one moment, as seen by this window. */
export type StageSnapshot = { at: number; counts: Record<HostStage, number> };

/** Snapshots kept per rollout while it is on screen. */
export const HISTORY_LIMIT = 2000;

function sameCounts(a: Record<HostStage, number>, b: Record<HostStage, number>): boolean {
  return STAGES.every((s) => a[s] === b[s]);
}

/**
 * Add a snapshot to a history. A run of identical counts keeps only its first and last point (the
 * chart is a step chart, so the points in between add nothing), and the oldest points go first
 * past `limit`.
 */
export function appendSnapshot(history: readonly StageSnapshot[], next: StageSnapshot, limit = HISTORY_LIMIT): StageSnapshot[] {
  const out = [...history];
  const last = out[out.length - 1];
  const before = out[out.length - 2];
  if (last && next.at < last.at) return out;
  if (last && before && sameCounts(last.counts, next.counts) && sameCounts(before.counts, next.counts)) {
    out[out.length - 1] = next;
  } else {
    out.push(next);
  }
  return out.length > limit ? out.slice(out.length - limit) : out;
}

export type ChartSeries = { key: "done" | "failed" | "inFlight" | "queued"; label: string; stages: readonly HostStage[] };

/** The chart's series, bottom to top. Skipped hosts are left out: they will never be replaced. */
export const CHART_SERIES: readonly ChartSeries[] = [
  { key: "done", label: "Done", stages: ["done"] },
  { key: "failed", label: "Failed", stages: ["failed"] },
  { key: "inFlight", label: "In flight", stages: IN_FLIGHT },
  { key: "queued", label: "Queued", stages: ["queued"] },
];

export function seriesValue(series: ChartSeries, counts: Record<HostStage, number>): number {
  return series.stages.reduce((n, s) => n + (counts[s] ?? 0), 0);
}

export type ChartBox = { left: number; top: number; width: number; height: number };

/** Time domain of a history: at least `minSpanMs` wide so a single snapshot still draws as an area. */
export function timeDomain(history: readonly StageSnapshot[], minSpanMs = 60_000): [number, number] {
  if (history.length === 0) return [0, minSpanMs];
  const start = history[0].at;
  const end = Math.max(history[history.length - 1].at, start + minSpanMs);
  return [start, end];
}

const round = (n: number) => Math.round(n * 10) / 10;

/**
 * One closed SVG path per series: a step-after stacked area (counts change at the moment a
 * snapshot arrives and hold until the next), from the first snapshot to the end of `domain`.
 */
export function stackedAreaPaths(
  history: readonly StageSnapshot[],
  total: number,
  box: ChartBox,
  domain: [number, number] = timeDomain(history),
  series: readonly ChartSeries[] = CHART_SERIES,
): { key: ChartSeries["key"]; d: string }[] {
  if (history.length === 0) return series.map((s) => ({ key: s.key, d: "" }));
  const [t0, t1] = domain;
  const span = Math.max(1, t1 - t0);
  const max = Math.max(1, total);
  const x = (t: number) => round(box.left + ((t - t0) / span) * box.width);
  const y = (v: number) => round(box.top + box.height - (Math.min(v, max) / max) * box.height);
  const xEnd = x(t1);

  // Cumulative bottom and top of each series at each snapshot.
  const bottoms = history.map(() => 0);
  return series.map((s) => {
    const lower = [...bottoms];
    const upper = history.map((snap, i) => lower[i] + seriesValue(s, snap.counts));
    upper.forEach((v, i) => (bottoms[i] = v));

    let d = `M${x(history[0].at)},${y(upper[0])}`;
    for (let i = 1; i < history.length; i++) d += `H${x(history[i].at)}V${y(upper[i])}`;
    d += `H${xEnd}V${y(lower[lower.length - 1])}`;
    for (let i = history.length - 1; i >= 1; i--) d += `H${x(history[i].at)}V${y(lower[i - 1])}`;
    d += `H${x(history[0].at)}Z`;
    return { key: s.key, d };
  });
}

const TICK_STEPS_MS = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 21600, 43200, 86400].map(
  (s) => s * 1000,
);

/** Round times between `start` and `end` for the time axis: at most `maxTicks` of them. */
export function timeTicks(start: number, end: number, maxTicks = 5): number[] {
  const span = Math.max(1, end - start);
  const step = TICK_STEPS_MS.find((s) => span / s <= maxTicks) ?? TICK_STEPS_MS[TICK_STEPS_MS.length - 1];
  // Align to the step in local time, so minutes and hours land on round numbers.
  const offset = new Date(start).getTimezoneOffset() * 60_000;
  const ticks: number[] = [];
  for (let t = Math.ceil((start - offset) / step) * step + offset; t <= end; t += step) ticks.push(t);
  return ticks;
}

/** The Start dialog asks for a new plan this long after the last change to the form. */
export const PLAN_DEBOUNCE_MS = 300;
