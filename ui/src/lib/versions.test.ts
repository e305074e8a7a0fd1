import { describe, expect, it } from "vitest";
import { PALETTE_SIZE, VersionPalette, compareNewestFirst, sortVersions } from "./versions";

describe("compareNewestFirst", () => {
  it("compares version segments as numbers, newest first", () => {
    const sorted = ["2026.1113.9", "2026.1127.1", "2026.1113.10", "2025.1231.4"].sort(compareNewestFirst);
    expect(sorted).toEqual(["2026.1127.1", "2026.1113.10", "2026.1113.9", "2025.1231.4"]);
  });

  it("puts unknown last", () => {
    expect(["unknown", "2026.1.1", "2025.1.1"].sort(compareNewestFirst)).toEqual(["2026.1.1", "2025.1.1", "unknown"]);
  });

  it("sortVersions drops duplicates and unknown", () => {
    expect(sortVersions(["1.0.0", "unknown", "1.2.0", "1.0.0", ""])).toEqual(["1.2.0", "1.0.0"]);
  });
});

describe("VersionPalette", () => {
  it("gives the newest version the first colour and unknown the grey", () => {
    const palette = new VersionPalette(["2026.1030.1", "2026.1127.1", "unknown", "2026.1113.2"]);
    expect(palette.order).toEqual(["2026.1127.1", "2026.1113.2", "2026.1030.1"]);
    expect(palette.color("2026.1127.1")).toBe("var(--version-0)");
    expect(palette.color("2026.1113.2")).toBe("var(--version-1)");
    expect(palette.color("2026.1030.1")).toBe("var(--version-2)");
    expect(palette.color("unknown")).toBe("var(--version-unknown)");
  });

  it("is independent of the order and repetition of its input", () => {
    const a = new VersionPalette(["3.0.0", "1.0.0", "2.0.0"]);
    const b = new VersionPalette(["1.0.0", "2.0.0", "2.0.0", "3.0.0", "1.0.0"]);
    for (const v of ["1.0.0", "2.0.0", "3.0.0"]) expect(a.color(v)).toBe(b.color(v));
  });

  it("keeps the colours of newer versions when an older one appears", () => {
    const before = new VersionPalette(["2026.1127.1", "2026.1113.2"]);
    const after = new VersionPalette(["2026.1127.1", "2026.1113.2", "2026.1030.1"]);
    expect(after.color("2026.1127.1")).toBe(before.color("2026.1127.1"));
    expect(after.color("2026.1113.2")).toBe(before.color("2026.1113.2"));
  });

  it("wraps around the palette for very old versions", () => {
    const versions = Array.from({ length: PALETTE_SIZE + 2 }, (_, i) => `1.0.${i}`);
    const palette = new VersionPalette(versions);
    // 1.0.9 is the newest (slot 0); PALETTE_SIZE versions later the colours repeat.
    expect(palette.slot("1.0.9")).toBe(0);
    expect(palette.slot(`1.0.${9 - PALETTE_SIZE}`)).toBe(0);
    expect(palette.color("9.9.9")).toBe("var(--version-unknown)");
  });
});
