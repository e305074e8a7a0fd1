import { describe, expect, it } from "vitest";
import { captureView, collection } from "../test/build-fixtures";
import {
  definitionProblem,
  fileName,
  move,
  nothingLeftBehind,
  runProgress,
  stageRows,
  subnetProblem,
  validateCollection,
} from "./build";
import { run } from "../test/build-fixtures";

describe("collection validation", () => {
  it("accepts a good collection", () => {
    expect(validateCollection(collection())).toEqual([]);
  });

  it("names each problem's field, as the backend would refuse it", () => {
    const c = collection({
      name: "  ",
      scripts: [
        { name: "", content: " ", parameters: [{ name: "1st", value: "x" }, { name: "ok_2", value: "" }], continueOnError: false, timeoutSeconds: 0 },
        { name: "Long", content: "Write-Output 1", parameters: [{ name: "", value: "v" }], continueOnError: false, timeoutSeconds: 5401 },
        { name: "Fine", content: "Write-Output 1", parameters: [], continueOnError: false, timeoutSeconds: 5400 },
      ],
    });
    expect(validateCollection(c).map((p) => p.field)).toEqual([
      "name",
      "script.0.name",
      "script.0.content",
      "script.0.timeout",
      "script.0.param.0",
      "script.1.timeout",
      "script.1.param.0",
    ]);
    expect(validateCollection(collection({ scripts: [] }))).toEqual([{ field: "scripts", message: "Add at least one script." }]);
    expect(validateCollection(collection({ name: "x".repeat(121) }))[0].field).toBe("name");
  });

  it("refuses a fractional or missing timeout", () => {
    const s = collection().scripts[0];
    expect(validateCollection(collection({ scripts: [{ ...s, timeoutSeconds: 1.5 }] }))[0].field).toBe("script.0.timeout");
    expect(validateCollection(collection({ scripts: [{ ...s, timeoutSeconds: Number.NaN }] }))[0].field).toBe("script.0.timeout");
  });
});

describe("helpers", () => {
  it("moves an item and clamps the target", () => {
    expect(move(["a", "b", "c"], 0, 1)).toEqual(["b", "a", "c"]);
    expect(move(["a", "b", "c"], 2, -5)).toEqual(["c", "a", "b"]);
    expect(move(["a", "b", "c"], 1, 1)).toEqual(["a", "b", "c"]);
  });

  it("checks ARM ids for the registration form", () => {
    expect(subnetProblem("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Network/virtualNetworks/v/subnets/snet")).toBeNull();
    expect(subnetProblem("snet-capture")).toMatch(/Not a subnet resource id/);
    expect(subnetProblem("")).toMatch(/Enter the subnet/);
    expect(definitionProblem("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/win11")).toBeNull();
    expect(definitionProblem("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g")).toMatch(/Not an image definition/);
  });

  it("names export files after the collection", () => {
    expect(fileName("Baseline apps (2026)")).toBe("baseline-apps-2026.json");
    expect(fileName("!!!")).toBe("collection.json");
  });

  it("counts a run's scripts", () => {
    expect(runProgress(run())).toEqual({ succeeded: 1, finished: 1, total: 3 });
  });
});

describe("capture stages", () => {
  it("marks finished stages done and the running one current", () => {
    const rows = stageRows(captureView({}, "sysprep"));
    expect(rows).toHaveLength(10);
    expect(rows.map((r) => r.status)).toEqual(["done", "done", "done", "done", "current", "pending", "pending", "pending", "pending", "pending"]);
  });

  it("finds the stage that failed and skips the ones that never ran", () => {
    const failed = captureView({ state: "failed", reason: "Sysprep the temporary VM failed: boom", finishedAt: "2026-11-27T10:00:00Z" }, "sysprep");
    failed.stage = "done";
    failed.stages = failed.stages.map((s) =>
      s.stage === "cleanup" || s.stage === "done" ? { ...s, startedAt: "2026-11-27T09:55:00Z", finishedAt: "2026-11-27T09:58:00Z" } : s,
    );
    const rows = stageRows(failed);
    expect(rows.find((r) => r.stage === "sysprep")?.status).toBe("failed");
    expect(rows.filter((r) => r.status === "skipped").map((r) => r.stage)).toEqual(["waitForStop", "deallocate", "generalize", "imageVersion"]);
    expect(rows.find((r) => r.stage === "cleanup")?.status).toBe("done");
  });

  it("says nothing is left behind only once every temporary resource is deleted", () => {
    const c = captureView();
    expect(nothingLeftBehind(c)).toBe(false);
    const gone = c.resources.map((r) => ({ ...r, state: "deleted" }));
    expect(nothingLeftBehind({ ...c, resources: gone })).toBe(true);
    // The new image version is what a capture is for: kept is fine.
    expect(nothingLeftBehind({ ...c, resources: [...gone, { kind: "imageVersion", id: "v", state: "kept" }] })).toBe(true);
    expect(nothingLeftBehind({ ...c, resources: [...gone, { kind: "imageVersion", id: "v", state: "created" }] })).toBe(false);
  });
});
