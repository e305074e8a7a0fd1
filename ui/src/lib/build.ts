import type {
  CaptureStage,
  CaptureState,
  CaptureView,
  ChecklistState,
  ReleaseStage,
  RunState,
  Script,
  ScriptCollection,
  ScriptRun,
  StageTiming,
  StepState,
  TemporaryResource,
} from "./bindings";

// ---------------------------------------------------------------- labels and tones

export type Tone = "ok" | "warn" | "danger" | "neutral" | "accent";

export const RUN_STATE: Record<RunState, { label: string; tone: Tone }> = {
  running: { label: "Running", tone: "accent" },
  succeeded: { label: "Succeeded", tone: "ok" },
  failed: { label: "Failed", tone: "danger" },
  cancelled: { label: "Cancelled", tone: "neutral" },
};

export const STEP_STATE: Record<StepState, { label: string; tone: Tone }> = {
  pending: { label: "Pending", tone: "neutral" },
  running: { label: "Running", tone: "accent" },
  succeeded: { label: "Succeeded", tone: "ok" },
  failed: { label: "Failed", tone: "danger" },
  timedOut: { label: "Timed out", tone: "danger" },
  canceled: { label: "Cancelled", tone: "danger" },
  skipped: { label: "Skipped", tone: "neutral" },
};

export const CAPTURE_STATE: Record<CaptureState, { label: string; tone: Tone }> = {
  running: { label: "Running", tone: "accent" },
  succeeded: { label: "Succeeded", tone: "ok" },
  failed: { label: "Failed", tone: "danger" },
  cancelled: { label: "Cancelled", tone: "neutral" },
};

/** The capture's stages in order, without the final `done` marker. */
export const CAPTURE_STAGES: readonly CaptureStage[] = [
  "snapshot",
  "disk",
  "nic",
  "temporaryVm",
  "sysprep",
  "waitForStop",
  "deallocate",
  "generalize",
  "imageVersion",
  "cleanup",
];

/** Short names for the stepper; the backend's sentence (`StageTiming.label`) is the long form. */
export const CAPTURE_STAGE_SHORT: Record<CaptureStage, string> = {
  snapshot: "Snapshot",
  disk: "Disk",
  nic: "Network interface",
  temporaryVm: "Temporary VM",
  sysprep: "Sysprep",
  waitForStop: "Wait for stop",
  deallocate: "Deallocate",
  generalize: "Generalize",
  imageVersion: "Image version",
  cleanup: "Cleanup",
  done: "Done",
};

export const RESOURCE_KIND: Record<string, string> = {
  snapshot: "Snapshot",
  disk: "OS disk",
  nic: "Network interface",
  vm: "Temporary VM",
  imageVersion: "Image version",
};

export const RELEASE_STAGE: Record<ReleaseStage, { label: string; tone: Tone }> = {
  captured: { label: "Captured", tone: "neutral" },
  inTest: { label: "In Test", tone: "accent" },
  inPilot: { label: "In Pilot", tone: "accent" },
  inProd: { label: "In Prod", tone: "ok" },
  rejected: { label: "Rejected", tone: "danger" },
  retired: { label: "Retired", tone: "neutral" },
};

/** The pipeline a release moves along, left to right. */
export const PIPELINE: readonly { stage: ReleaseStage; label: string }[] = [
  { stage: "captured", label: "Captured" },
  { stage: "inTest", label: "Test" },
  { stage: "inPilot", label: "Pilot" },
  { stage: "inProd", label: "Prod" },
];

export const CHECKLIST_STATE: Record<ChecklistState, { label: string; tone: Tone }> = {
  met: { label: "Met", tone: "ok" },
  notMet: { label: "Not met", tone: "danger" },
  missingEvidence: { label: "Missing evidence", tone: "warn" },
  notYetAvailable: { label: "Not yet available", tone: "neutral" },
};

export function isRunFinished(state: RunState): boolean {
  return state !== "running";
}

export function isCaptureFinished(state: CaptureState): boolean {
  return state !== "running";
}

// ---------------------------------------------------------------- times

function time(iso: string | null | undefined): number | null {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

/** Milliseconds from `start` to `end`, or to `now` while it has not ended; null before it starts. */
export function elapsedMs(start: string | null | undefined, end: string | null | undefined, now: number): number | null {
  const s = time(start);
  if (s === null) return null;
  const e = time(end) ?? now;
  return Math.max(0, e - s);
}

export function newestFirst<T extends { startedAt: string }>(rows: readonly T[]): T[] {
  return [...rows].sort((a, b) => (time(b.startedAt) ?? 0) - (time(a.startedAt) ?? 0));
}

// ---------------------------------------------------------------- script runs

/** How many of a run's scripts succeeded, of how many. */
export function runProgress(run: ScriptRun): { succeeded: number; finished: number; total: number } {
  const finished = run.steps.filter((s) => s.state !== "pending" && s.state !== "running").length;
  return { succeeded: run.steps.filter((s) => s.state === "succeeded").length, finished, total: run.steps.length };
}

// ---------------------------------------------------------------- captures

export type StageStatus = "pending" | "current" | "done" | "failed" | "skipped";

export type StageRow = StageTiming & { status: StageStatus };

/**
 * Where each stage stands. A stage that started and never finished while the capture went on to
 * clean up is the one that failed; stages after it never ran.
 */
export function stageRows(capture: CaptureView): StageRow[] {
  const byStage = new Map(capture.stages.map((s) => [s.stage, s]));
  const finished = capture.state !== "running";
  const at = CAPTURE_STAGES.indexOf(capture.stage);
  return CAPTURE_STAGES.map((stage, i) => {
    const timing = byStage.get(stage) ?? { stage, label: CAPTURE_STAGE_SHORT[stage], startedAt: null, finishedAt: null };
    let status: StageStatus;
    if (timing.finishedAt) status = "done";
    else if (timing.startedAt && (stage !== capture.stage || finished)) status = "failed";
    else if (timing.startedAt || (!finished && stage === capture.stage)) status = "current";
    else if (capture.reason !== null && (at < 0 || i < at || finished)) status = "skipped";
    else status = "pending";
    return { ...timing, status };
  });
}

/** Temporary resources that exist in Azure as far as the journal knows (the new image version is no leftover). */
export function leftovers(resources: readonly TemporaryResource[]): TemporaryResource[] {
  return resources.filter((r) => r.state === "created" && r.kind !== "imageVersion");
}

/** True once every temporary resource is gone (a succeeded capture keeps its image version, which is the point). */
export function nothingLeftBehind(capture: CaptureView): boolean {
  return capture.resources.every((r) => r.state === "deleted" || (r.kind === "imageVersion" && r.state === "kept"));
}

// ---------------------------------------------------------------- collections

/** Run Command runs a script for at most 90 minutes. */
export const MAX_TIMEOUT_SECONDS = 5400;
export const DEFAULT_TIMEOUT_SECONDS = 600;
export const MAX_NAME = 120;

const PARAMETER_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** One problem with a collection, and the field it belongs to: `name`, or `script.<i>.<field>`. */
export type CollectionProblem = { field: string; message: string };

/** The same checks the backend makes before saving, so the editor can say so at once, field by field. */
export function validateCollection(c: Pick<ScriptCollection, "name" | "scripts">): CollectionProblem[] {
  const out: CollectionProblem[] = [];
  if (c.name.trim() === "") out.push({ field: "name", message: "Give the collection a name." });
  else if (c.name.length > MAX_NAME) out.push({ field: "name", message: `At most ${MAX_NAME} characters.` });
  if (c.scripts.length === 0) out.push({ field: "scripts", message: "Add at least one script." });
  c.scripts.forEach((s, i) => {
    if (s.name.trim() === "") out.push({ field: `script.${i}.name`, message: "Give the script a name." });
    if (s.content.trim() === "") out.push({ field: `script.${i}.content`, message: "The script is empty." });
    else if (new TextEncoder().encode(s.content).length > 256 * 1024) {
      out.push({ field: `script.${i}.content`, message: "Over 256 KB: run it from a file share instead." });
    }
    const t = s.timeoutSeconds;
    if (!Number.isInteger(t) || t < 1 || t > MAX_TIMEOUT_SECONDS) {
      out.push({ field: `script.${i}.timeout`, message: `1 to ${MAX_TIMEOUT_SECONDS} seconds (Run Command allows 90 minutes).` });
    }
    (s.parameters ?? []).forEach((p, j) => {
      if (!PARAMETER_NAME.test(p.name)) {
        out.push({
          field: `script.${i}.param.${j}`,
          message: p.name === "" ? "Name the parameter." : "Letters, digits or _, not starting with a digit.",
        });
      }
    });
  });
  return out;
}

export function newScript(n: number): Script {
  return { name: `Script ${n}`, content: "", parameters: [], continueOnError: false, timeoutSeconds: DEFAULT_TIMEOUT_SECONDS };
}

export function emptyCollection(): ScriptCollection {
  return { id: "", name: "", description: "", scripts: [newScript(1)], updatedAt: "" };
}

/** A copy of `list` with the item at `from` moved to `to` (clamped). */
export function move<T>(list: readonly T[], from: number, to: number): T[] {
  const out = [...list];
  const target = Math.max(0, Math.min(out.length - 1, to));
  if (from < 0 || from >= out.length || target === from) return out;
  const [item] = out.splice(from, 1);
  out.splice(target, 0, item);
  return out;
}

/** The collection as the backend stores it: same fields, trimmed names. */
export function normalized(c: ScriptCollection): ScriptCollection {
  return {
    id: c.id,
    name: c.name.trim(),
    description: c.description ?? "",
    updatedAt: c.updatedAt ?? "",
    scripts: c.scripts.map((s) => ({
      name: s.name.trim(),
      content: s.content,
      parameters: (s.parameters ?? []).map((p) => ({ name: p.name.trim(), value: p.value })),
      continueOnError: s.continueOnError ?? false,
      timeoutSeconds: s.timeoutSeconds,
    })),
  };
}

/** "Baseline apps" -> "baseline-apps.json". */
export function fileName(name: string): string {
  const slug = name
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "");
  return `${slug || "collection"}.json`;
}

// ---------------------------------------------------------------- resource ids

const SUBNET_ID = /^\/subscriptions\/[^/?#\\]+\/resourceGroups\/[^/?#\\]+\/providers\/Microsoft\.Network\/virtualNetworks\/[^/?#\\]+\/subnets\/[^/?#\\]+$/i;
const DEFINITION_ID = /^\/subscriptions\/[^/?#\\]+\/resourceGroups\/[^/?#\\]+\/providers\/Microsoft\.Compute\/galleries\/[^/?#\\]+\/images\/[^/?#\\]+$/i;

export function subnetProblem(id: string): string | null {
  if (id.trim() === "") return "Enter the subnet the temporary capture VM joins.";
  return SUBNET_ID.test(id.trim()) ? null : "Not a subnet resource id: /subscriptions/…/virtualNetworks/…/subnets/…";
}

export function definitionProblem(id: string): string | null {
  if (id.trim() === "") return "Enter the gallery image definition captures become versions of.";
  return DEFINITION_ID.test(id.trim()) ? null : "Not an image definition id: /subscriptions/…/galleries/…/images/…";
}

/** The last segment of an ARM id. */
export function nameOf(id: string): string {
  return id.split("/").filter(Boolean).pop() ?? id;
}
