import { describe, expect, it } from "vitest";
import type { HostStage } from "./bindings";
import { formatClock, formatMinutes } from "./format";
import {
  CHART_SERIES,
  STAGES,
  actionsFor,
  appendSnapshot,
  describePolicy,
  problemsByField,
  sortNewestFirst,
  stackedAreaPaths,
  timeTicks,
  type StageSnapshot,
} from "./rollouts";

function counts(values: Partial<Record<HostStage, number>>): Record<HostStage, number> {
  return Object.fromEntries(STAGES.map((s) => [s, values[s] ?? 0])) as Record<HostStage, number>;
}

const BOX = { left: 0, top: 0, width: 100, height: 40 };

describe("rollout actions", () => {
  it.each([
    ["running", ["pause", "abort"]],
    ["paused", ["resume", "abort"]],
    ["failed", ["retry", "resume", "abort"]],
    ["completed", []],
    ["aborted", []],
  ] as const)("%s rollouts offer %j", (state, expected) => {
    expect(actionsFor(state)).toEqual(expected);
  });

  it("offers to release the standby hosts a completed rollout still keeps, and nothing else", () => {
    expect(actionsFor("completed", true)).toEqual(["release"]);
    expect(actionsFor("running", true)).toEqual(["pause", "abort"]);
  });
});

describe("stacked area chart", () => {
  it("draws one closed path per series, stacked done, failed, in flight, queued from the bottom", () => {
    const history: StageSnapshot[] = [{ at: 0, counts: counts({ done: 1, creating: 1, waitingForLogoff: 1, queued: 1 }) }];
    const paths = stackedAreaPaths(history, 4, BOX, [0, 1000]);
    expect(paths.map((p) => p.key)).toEqual(CHART_SERIES.map((s) => s.key));
    expect(paths.every((p) => p.d.startsWith("M") && p.d.endsWith("Z"))).toBe(true);
    // 4 hosts over 40 px: done fills 30..40, failed is empty at 30, in flight 10..30, queued 0..10.
    expect(paths[0].d).toBe("M0,30H100V40H0Z");
    expect(paths[1].d).toBe("M0,30H100V30H0Z");
    expect(paths[2].d).toBe("M0,10H100V30H0Z");
    expect(paths[3].d).toBe("M0,0H100V10H0Z");
  });

  it("steps at each snapshot: counts hold until the next one arrives", () => {
    const history: StageSnapshot[] = [
      { at: 0, counts: counts({ queued: 2 }) },
      { at: 500, counts: counts({ done: 1, queued: 1 }) },
    ];
    const [done] = stackedAreaPaths(history, 2, BOX, [0, 1000]);
    // Top: 0 done until t=500 (x=50), then 1 of 2 (y=20) to the end; back along the bottom.
    expect(done.d).toBe("M0,40H50V20H100V40H50V40H0Z");
  });

  it("draws nothing before the first snapshot", () => {
    expect(stackedAreaPaths([], 4, BOX).every((p) => p.d === "")).toBe(true);
  });
});

describe("stage history", () => {
  it("keeps the first and last of a run of identical snapshots, and caps the length", () => {
    let history: StageSnapshot[] = [];
    for (let t = 0; t < 5; t++) history = appendSnapshot(history, { at: t, counts: counts({ queued: 3 }) });
    expect(history.map((s) => s.at)).toEqual([0, 4]);
    history = appendSnapshot(history, { at: 5, counts: counts({ queued: 2, draining: 1 }) });
    expect(history.map((s) => s.at)).toEqual([0, 4, 5]);
    for (let t = 6; t < 20; t++) history = appendSnapshot(history, { at: t, counts: counts({ done: t }) }, 5);
    expect(history).toHaveLength(5);
    expect(history[4].at).toBe(19);
  });
});

describe("policy helpers", () => {
  it("puts each blocker next to the field it names, the rest apart", () => {
    const { byField, other } = problemsByField([
      { field: "message", message: "Too long" },
      { field: "capacity", message: "At least 1" },
      { field: "message", message: "Empty" },
      { field: "tenant", message: "Something else" },
    ]);
    expect(byField).toEqual({ message: ["Too long", "Empty"], capacity: ["At least 1"] });
    expect(other).toEqual(["Something else"]);
  });

  it("describes a policy in words", () => {
    expect(
      describePolicy({
        capacity: { type: "hosts", hosts: 2 },
        drainMode: "forceLogoff",
        logoffDelayMinutes: 15,
        message: "",
        maxFailures: 1,
        canary: true,
      }),
    ).toEqual(["at most 2 hosts out of service", "log users off after 15 min", "canary host first", "stop after 1 failed host"]);
  });

  it("sorts rollouts newest first", () => {
    const rows = [{ createdAt: "2026-11-27T08:00:00Z" }, { createdAt: "2026-11-27T10:00:00+01:00" }, { createdAt: "2026-11-27T09:30:00Z" }];
    expect(sortNewestFirst(rows).map((r) => r.createdAt)).toEqual([
      "2026-11-27T09:30:00Z",
      "2026-11-27T10:00:00+01:00",
      "2026-11-27T08:00:00Z",
    ]);
  });
});

describe("times", () => {
  it("puts axis ticks on round times, at most the number asked for", () => {
    const start = new Date(2026, 10, 27, 10, 0, 7).getTime();
    const ticks = timeTicks(start, start + 4 * 60_000, 5);
    expect(ticks.length).toBeLessThanOrEqual(5);
    expect(ticks.length).toBeGreaterThanOrEqual(3);
    expect(ticks.map((t) => formatClock(t, false))).toEqual(["10:01", "10:02", "10:03", "10:04"]);
  });

  it("formats clock times and durations", () => {
    expect(formatClock(new Date(2026, 10, 27, 9, 5, 3).toISOString())).toBe("09:05:03");
    expect(formatClock(null)).toBe("—");
    expect(formatMinutes(25)).toBe("25 min");
    expect(formatMinutes(60)).toBe("1 h");
    expect(formatMinutes(130)).toBe("2 h 10 min");
  });
});
