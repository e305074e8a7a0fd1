import { describe, expect, it } from "vitest";
import {
  actionLabel,
  areaCounts,
  areaOf,
  describeActor,
  filterEntries,
  initials,
  matchesQuery,
  mergeNewest,
  outcomeOf,
  prettyDetail,
  shortHash,
} from "./audit";
import type { AuditEntry } from "./bindings";

function entry(seq: number, action = "rollout.start", extra: Partial<AuditEntry> = {}): AuditEntry {
  return {
    seq,
    at: `2026-11-27T09:${String(seq % 60).padStart(2, "0")}:00Z`,
    actor: "admin@contoso.com",
    action,
    subject: "hp-test-01",
    detail: "{}",
    hash: `${seq}`.padStart(64, "a"),
    ...extra,
  };
}

const newestFirst = (from: number, to: number) => Array.from({ length: from - to + 1 }, (_, i) => entry(from - i));

describe("audit labels", () => {
  it("reads each action the backend records, and any other as area and verb", () => {
    expect(actionLabel("rollout.start")).toBe("Started a rollout");
    expect(actionLabel("capture.finish")).toBe("Capture finished");
    expect(actionLabel("release.publish")).toBe("Published to 'latest'");
    expect(actionLabel("retention.policy")).toBe("Changed the retention policy");
    expect(actionLabel("gate.sign_off")).toBe("Gate: sign off");
    expect(actionLabel("weird")).toBe("Weird");
  });

  it("puts every action in an area, unknown ones in 'other'", () => {
    expect(areaOf("rollout.rollback")).toBe("rollout");
    expect(areaOf("master.register")).toBe("master");
    expect(areaOf("version.delete")).toBe("version");
    expect(areaOf("gate.pass")).toBe("other");
    expect(areaOf("other.thing")).toBe("other");
  });

  it("pretty-prints JSON details and leaves anything else as it is", () => {
    expect(prettyDetail('{"runId":"run-1","result":"failed"}')).toBe('{\n  "runId": "run-1",\n  "result": "failed"\n}');
    expect(prettyDetail("not json")).toBe("not json");
    expect(prettyDetail("null")).toBe("null");
  });

  it("tells how a run or capture ended, and nothing for other actions", () => {
    expect(outcomeOf(entry(1, "capture.finish", { detail: '{"captureId":"c","result":"failed","reason":"x"}' }))).toBe("failed");
    expect(outcomeOf(entry(1, "run.finish", { detail: "broken" }))).toBeNull();
    expect(outcomeOf(entry(1, "rollout.start", { detail: '{"result":"succeeded"}' }))).toBeNull();
  });

  it("reads who acted the way the backend names them", () => {
    expect(describeActor("admin@contoso.com (object id 7c5d2e1a-93b4)")).toEqual({
      kind: "person",
      name: "admin@contoso.com",
      note: null,
      objectId: "7c5d2e1a-93b4",
    });
    expect(describeActor("app 5e0c1f7a-4d2b (object id 0d9c)")).toEqual({ kind: "app", name: "5e0c1f7a-4d2b", note: "service principal", objectId: "0d9c" });
    expect(describeActor("Ringmaster (automatic)")).toEqual({ kind: "automatic", name: "Ringmaster", note: "automatic", objectId: null });
    expect(describeActor("engine test")).toEqual({ kind: "person", name: "engine test", note: null, objectId: null });
    expect(initials("jordan.lee@contoso.com")).toBe("JL");
    expect(initials("admin@contoso.com")).toBe("AD");
    expect(initials("engine test")).toBe("ET");
  });

  it("shortens a hash to its first 12 hex digits", () => {
    expect(shortHash("0123456789abcdef0123")).toBe("0123456789ab");
  });
});

describe("audit filter", () => {
  const entries = [
    entry(3, "capture.start", { subject: "2026.1127.1" }),
    entry(2, "rollout.start", { actor: "jordan.lee@contoso.com", subject: "hp-pilot-weu-it" }),
    entry(1, "run.finish", { actor: "Ringmaster (automatic)", subject: "Baseline apps" }),
  ];

  it("matches every word against actor, action, its label and subject, ignoring case", () => {
    expect(matchesQuery(entries[1], "JORDAN pilot")).toBe(true);
    expect(matchesQuery(entries[1], "jordan prod")).toBe(false);
    expect(matchesQuery(entries[0], "started capture")).toBe(true);
    expect(matchesQuery(entries[2], "automatic baseline")).toBe(true);
    expect(matchesQuery(entries[2], "  ")).toBe(true);
  });

  it("narrows to an area, and counts the areas of what the text leaves", () => {
    expect(filterEntries(entries, "", "rollout").map((e) => e.seq)).toEqual([2]);
    expect(filterEntries(entries, "contoso", null).map((e) => e.seq)).toEqual([3, 2]);
    expect(areaCounts(entries, filterEntries(entries, "jordan", null))).toEqual([
      { area: "run", count: 0 },
      { area: "capture", count: 0 },
      { area: "rollout", count: 1 },
    ]);
  });
});

describe("mergeNewest", () => {
  it("puts entries newer than those loaded in front and keeps the paging", () => {
    const loaded = newestFirst(150, 51);
    const merged = mergeNewest(loaded, newestFirst(153, 54), 54, 51);
    expect(merged.entries.map((e) => e.seq).slice(0, 5)).toEqual([153, 152, 151, 150, 149]);
    expect(merged.entries).toHaveLength(103);
    expect(merged.nextBefore).toBe(51);
    expect(merged.replaced).toBe(false);
  });

  it("starts over from the page when more entries arrived than a page holds", () => {
    const merged = mergeNewest(newestFirst(150, 51), newestFirst(400, 301), 301, 51);
    expect(merged.entries.map((e) => e.seq)[99]).toBe(301);
    expect(merged.entries).toHaveLength(100);
    expect(merged.nextBefore).toBe(301);
    expect(merged.replaced).toBe(true);
  });

  it("keeps the list when nothing is new", () => {
    const loaded = newestFirst(10, 1);
    const merged = mergeNewest(loaded, newestFirst(10, 1), null, null);
    expect(merged.entries).toEqual(loaded);
    expect(merged.replaced).toBe(false);
  });
});
