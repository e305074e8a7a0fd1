import { clearMocks, mockIPC } from "@tauri-apps/api/mocks";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { CHECKLIST, DEFINITION_ID, retentionPreview } from "../../test/build-fixtures";
import { makeVersions } from "../../test/fixtures";
import { byTestId, findByTestId, render, sleep, text, waitFor } from "../../test/util";
import type { ChecklistItem, ReleaseSummary, ReleaseView, RetentionPreview } from "../bindings";
import Checklist from "../components/Checklist.svelte";
import { Releases } from "../stores/releases.svelte";
import { VersionPalette } from "../versions";
import ReleasesView from "./ReleasesView.svelte";

type Handler = (args: Record<string, unknown> | undefined) => unknown;

let calls: { cmd: string; args: unknown }[] = [];
let cleanup: (() => void)[] = [];
let preview: RetentionPreview;

const versions = makeVersions();
const palette = new VersionPalette(versions.map((v) => v.name));

function summary(version: string, extra: Partial<ReleaseSummary> = {}): ReleaseSummary {
  const row = versions.find((v) => v.name === version);
  return {
    versionId: row?.id ?? `${DEFINITION_ID}/versions/${version}`,
    version,
    stage: "inPilot",
    published: row?.published ?? null,
    endOfLife: row?.endOfLife ?? null,
    replicationState: row?.replicationState ?? "Completed",
    hosts: row?.hosts ?? 0,
    checklistMet: 3,
    checklistTotal: 7,
    ...extra,
  };
}

function release(version: string, checklist: ChecklistItem[] = CHECKLIST): ReleaseView {
  const row = versions.find((v) => v.name === version)!;
  return {
    summary: summary(version),
    excludeFromLatest: true,
    pools: [{ hostPoolId: "/p/hp-test-01", poolName: "hp-test-01", ring: "Test", location: "westeurope", hostsOnRelease: 4, hosts: 4 }],
    regions: row.regions,
    regionNeeds: [
      { region: "westeurope", requiredReplicas: 3, reason: "Prod creates up to 60 VMs at once" },
      { region: "southeastasia", requiredReplicas: 1, reason: "Prod: hp-prod-sea" },
    ],
    checklist,
    capture: { id: "cap-1", version, state: "succeeded", stage: "done", createdAt: "2026-11-25T09:00:00Z", finishedAt: "2026-11-25T09:41:00Z", reason: null },
    runs: [],
    rollouts: [],
    gateRuns: [],
    promotions: [],
  };
}

function backend(overrides: Record<string, Handler> = {}) {
  calls = [];
  const handlers: Record<string, Handler> = {
    get_releases: () => [
      summary("2026.1127.1", { stage: "inTest", checklistMet: 2 }),
      summary("2026.1113.2", { stage: "rejected" }),
      summary("2026.1030.1", { stage: "inProd", checklistMet: 5 }),
    ],
    get_release: (args) => release(args?.version as string),
    get_retention_preview: () => preview,
    delete_versions: (args) => {
      const ids = args?.versionIds as string[];
      const gone = preview.delete.filter((d) => ids.includes(d.versionId));
      preview = { ...preview, delete: preview.delete.filter((d) => !ids.includes(d.versionId)) };
      return gone.map((d) => d.version);
    },
    set_retention_policy: () => null,
    ...overrides,
  };
  mockIPC((cmd, args) => {
    calls.push({ cmd, args });
    const handler = handlers[cmd];
    if (!handler) return Promise.reject(`command ${cmd} not found`);
    return handler(args as Record<string, unknown> | undefined);
  });
}

beforeEach(() => {
  preview = retentionPreview();
});

afterEach(() => {
  cleanup.forEach((fn) => fn());
  cleanup = [];
  clearMocks();
});

function openView(selected: string | null = null) {
  const releases = new Releases();
  const ondeleted = vi.fn();
  const onopen = vi.fn();
  const view = render(ReleasesView, { releases, versions, palette, selected, onopen, onclose: vi.fn(), ondeleted });
  cleanup.push(view.destroy);
  return { ...view, releases, ondeleted, onopen };
}

const count = (cmd: string) => calls.filter((c) => c.cmd === cmd).length;

describe("Releases list", () => {
  it("lists every version newest first with its stage, checklist progress and replication", async () => {
    backend();
    const { target, onopen } = openView();
    await waitFor(() => expect(byTestId(target, "release-row")[0]?.dataset.stage).toBe("inTest"));
    const rows = byTestId(target, "release-row");
    expect(rows.map((r) => r.dataset.version)).toEqual(["2026.1127.1", "2026.1113.2", "2026.1030.1"]);
    expect(rows.map((r) => r.dataset.stage)).toEqual(["inTest", "rejected", "inProd"]);
    expect(text(byTestId(rows[0], "release-stage")[0])).toBe("In Test");
    expect(text(byTestId(rows[0], "checklist-meter")[0])).toContain("2/7");
    // Replication per region, as the Images screen showed it.
    expect(text(rows[0])).toContain("westeurope");
    byTestId(rows[1], "open-release-row")[0].click();
    expect(onopen).toHaveBeenCalledWith("2026.1113.2");
  });
});

describe("Release page", () => {
  it("shows where the release is in the pipeline, who runs it and replication against what the rings need", async () => {
    backend();
    const { target } = openView("2026.1127.1");
    const detail = await findByTestId(target, "release-detail");
    expect(calls.find((c) => c.cmd === "get_release")?.args).toEqual({ version: "2026.1127.1" });
    const strip = byTestId(detail, "pipeline-strip")[0];
    const steps = [...strip.querySelectorAll<HTMLElement>("li[data-step]")];
    expect(steps.map((s) => s.dataset.status)).toEqual(["passed", "passed", "current", "ahead"]);
    expect(steps[2].getAttribute("aria-current")).toBe("step");
    expect(text(byTestId(detail, "release-pools")[0])).toContain("hp-test-01");
    const regions = byTestId(detail, "region-row");
    const west = regions.find((r) => r.dataset.region === "westeurope")!;
    // 2 replicas where the rings need 3: short, so not shown as fine.
    expect(west.dataset.tone).toBe("warn");
    expect(text(west)).toContain("2 of 3 replicas");
    expect(text(west)).toContain("Prod creates up to 60 VMs at once");
    // Needed but not replicated there at all.
    expect(regions.find((r) => r.dataset.region === "southeastasia")!.dataset.tone).toBe("danger");
  });
});

describe("Checklist", () => {
  it("renders the four states apart, and never shows 'not yet available' as met", () => {
    const view = render(Checklist, { items: CHECKLIST });
    cleanup.push(view.destroy);
    const items = byTestId(view.target, "checklist-item");
    expect(items).toHaveLength(7);
    expect(items.map((i) => i.dataset.state)).toEqual(["met", "notMet", "met", "missingEvidence", "notYetAvailable", "notYetAvailable", "met"]);
    expect(items.map((i) => text(byTestId(i, "checklist-state")[0]))).toEqual([
      "Met",
      "Not met",
      "Met",
      "Missing evidence",
      "Not yet available",
      "Not yet available",
      "Met",
    ]);

    // Each state has its own mark: a tick only for met.
    const TICK = "M5 12.5l4.5 4.5L19 7";
    const mark = (i: HTMLElement) => i.querySelector(".mark path")?.getAttribute("d");
    for (const item of items) {
      if (item.dataset.state === "met") expect(mark(item)).toBe(TICK);
      else expect(mark(item)).not.toBe(TICK);
    }
    const unavailable = items.filter((i) => i.dataset.state === "notYetAvailable");
    for (const item of unavailable) {
      expect(item.classList.contains("met")).toBe(false);
      expect(text(item)).not.toMatch(/\bMet\b/);
    }
    // Evidence, and the next step only where something is left to do.
    expect(text(items[1])).toContain("hotfix-kb5044284");
    expect(text(byTestId(items[1], "checklist-next")[0])).toContain("Put those changes into a script collection");
    expect(byTestId(items[0], "checklist-next")).toHaveLength(0);
    expect(text(byTestId(items[4], "checklist-next")[0])).toContain("Validate by hand");
  });

  it("does not count 'not yet available' even if every other item is met", () => {
    const allElse = CHECKLIST.map((i) => (i.state === "notYetAvailable" ? i : { ...i, state: "met" as const, nextStep: null }));
    const view = render(Checklist, { items: allElse });
    cleanup.push(view.destroy);
    const states = byTestId(view.target, "checklist-item").map((i) => i.dataset.state);
    expect(states.filter((s) => s === "met")).toHaveLength(5);
    expect(states.filter((s) => s === "notYetAvailable")).toHaveLength(2);
  });
});

describe("Retention", () => {
  it("previews what it keeps and deletes with reasons, and deletes only after a confirmation listing them", async () => {
    backend();
    const { target, ondeleted } = openView();
    const panel = await findByTestId(target, "retention");
    await waitFor(() => expect(byTestId(panel, "retention-delete")[0].querySelectorAll("li")).toHaveLength(2));
    expect(text(byTestId(panel, "retention-policy")[0])).toBe("Keep the newest 3 · end of life 180 days after capture");
    expect(text(byTestId(panel, "retention-keep")[0])).toContain("7,266 hosts run it");
    expect(text(byTestId(panel, "retention-delete")[0])).toContain("past its end of life");

    const button = byTestId(panel, "retention-delete-button")[0] as HTMLButtonElement;
    expect(text(button)).toBe("Delete 2 versions…");
    button.click();
    let dialog = await findByTestId(target, "retention-confirm");
    expect(text(dialog.querySelector("h2"))).toBe("Delete 2 image versions?");
    expect(text(byTestId(dialog, "retention-confirm-list")[0])).toContain("2026.0821.1");
    expect(text(byTestId(dialog, "retention-confirm-list")[0])).toContain("2026.0807.2");
    // Keep them: nothing is deleted.
    [...dialog.querySelectorAll("button")].find((b) => text(b) === "Keep them")!.click();
    await waitFor(() => expect(byTestId(target, "retention-confirm")).toHaveLength(0));
    await sleep(20);
    expect(count("delete_versions")).toBe(0);

    // Spare one, then confirm: only the other goes.
    panel.querySelector<HTMLInputElement>('input[aria-label="Delete 2026.0807.2"]')!.click();
    await waitFor(() => expect(text(button)).toBe("Delete 1 version…"));
    button.click();
    dialog = await findByTestId(target, "retention-confirm");
    expect(byTestId(dialog, "retention-confirm-list")[0].querySelectorAll("li")).toHaveLength(1);
    byTestId(dialog, "retention-confirm-delete")[0].click();
    await waitFor(() => expect(count("delete_versions")).toBe(1));
    expect(calls.find((c) => c.cmd === "delete_versions")?.args).toEqual({ versionIds: [`${DEFINITION_ID}/versions/2026.0821.1`] });
    await waitFor(() => expect(text(byTestId(target, "retention-deleted")[0])).toContain("Deleted 2026.0821.1"));
    expect(ondeleted).toHaveBeenCalledWith(["2026.0821.1"]);
    // The preview is read again afterwards.
    await waitFor(() => expect(byTestId(panel, "retention-delete")[0].querySelectorAll("li")).toHaveLength(1));
  });

  it("shows the backend's refusal when a version came into use since the preview", async () => {
    backend({
      delete_versions: () => Promise.reject({ code: "InvalidInput", message: "2026.0821.1 must be kept: 4 hosts run it", requestId: null }),
    });
    const { target, ondeleted } = openView();
    const panel = await findByTestId(target, "retention");
    await waitFor(() => expect(byTestId(panel, "retention-delete-button")).toHaveLength(1));
    byTestId(panel, "retention-delete-button")[0].click();
    (await findByTestId(target, "retention-confirm-delete")).click();
    await waitFor(() => expect(text(byTestId(panel, "error-banner")[0])).toContain("2026.0821.1 must be kept: 4 hosts run it"));
    expect(ondeleted).not.toHaveBeenCalled();
  });
});
