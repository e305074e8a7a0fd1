import { describe, expect, it } from "vitest";
import { formatCount, formatDuration, plural, relativeTime, splitHostName } from "./format";

const NOW = Date.parse("2026-11-27T10:00:00Z");
const ago = (ms: number) => new Date(NOW - ms).toISOString();
const MIN = 60_000;

describe("relativeTime", () => {
  it.each([
    [0, "just now"],
    [30_000, "just now"],
    [60_000, "1 min ago"],
    [2 * MIN, "2 min ago"],
    [59 * MIN, "59 min ago"],
    [60 * MIN, "1 h ago"],
    [5 * 60 * MIN + 59 * MIN, "5 h ago"],
    [25 * 60 * MIN, "yesterday"],
    [3 * 24 * 60 * MIN, "3 days ago"],
  ])("%i ms ago reads %s", (ms, expected) => {
    expect(relativeTime(ago(ms), NOW)).toBe(expected);
  });

  it("treats small clock skew into the future as just now", () => {
    expect(relativeTime(ago(-20_000), NOW)).toBe("just now");
  });

  it("says never for a missing or unparsable time", () => {
    expect(relativeTime(null, NOW)).toBe("never");
    expect(relativeTime("not a date", NOW)).toBe("never");
  });

  it("falls back to a date after a month", () => {
    const text = relativeTime(ago(45 * 24 * 60 * MIN), NOW);
    expect(text).not.toMatch(/ago/);
    expect(text).toMatch(/2026/);
  });
});

describe("numbers and durations", () => {
  it("formats counts with separators and plurals", () => {
    expect(formatCount(10000)).toBe("10,000");
    expect(plural(1, "host")).toBe("1 host");
    expect(plural(2500, "host")).toBe("2,500 hosts");
  });

  it("formats durations", () => {
    expect(formatDuration(850)).toBe("850 ms");
    expect(formatDuration(1340)).toBe("1.3 s");
    expect(formatDuration(125_000)).toBe("2 min 5 s");
  });
});

describe("splitHostName", () => {
  it("splits an FQDN at the first dot", () => {
    expect(splitHostName("avdpw1-012.corp.contoso.com")).toEqual({ host: "avdpw1-012", domain: "corp.contoso.com" });
  });

  it.each(["avd-00001", "10.0.4.12", ".hidden", "trailing."])("keeps %s whole", (name) => {
    expect(splitHostName(name)).toEqual({ host: name, domain: "" });
  });
});
