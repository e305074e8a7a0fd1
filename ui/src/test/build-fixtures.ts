import type {
  CapturePlan,
  CaptureStage,
  CaptureView,
  ChecklistItem,
  GoldenMaster,
  RetentionPreview,
  ScriptCollection,
  ScriptRun,
  ScriptStep,
} from "../lib/bindings";

const RG = "/subscriptions/sub-1/resourceGroups/rg-avd-build";
export const MASTER_ID = `${RG}/providers/Microsoft.Compute/virtualMachines/vm-golden-w11`;
export const DEFINITION_ID = "/subscriptions/sub-1/resourceGroups/rg-images/providers/Microsoft.Compute/galleries/gal/images/win11";
export const SUBNET_ID = `${RG}/providers/Microsoft.Network/virtualNetworks/vnet-build/subnets/snet-capture`;

export function master(extra: Partial<GoldenMaster> = {}): GoldenMaster {
  return {
    vmId: MASTER_ID,
    name: "vm-golden-w11",
    subscriptionId: "sub-1",
    resourceGroup: "rg-avd-build",
    location: "westeurope",
    vmSize: "Standard_D4s_v5",
    powerState: "running",
    imageDefinitionId: DEFINITION_ID,
    imageDefinition: "win11",
    captureSubnetId: SUBNET_ID,
    registeredAt: "2026-11-01T09:00:00Z",
    ...extra,
  };
}

export function collection(extra: Partial<ScriptCollection> = {}): ScriptCollection {
  return {
    id: "col-1",
    name: "Baseline apps",
    description: "Everything every desktop gets",
    updatedAt: "2026-11-26T09:00:00Z",
    scripts: [
      { name: "Install FSLogix", content: "Write-Output 'fslogix'", parameters: [], continueOnError: false, timeoutSeconds: 900 },
      { name: "Install Teams", content: "Write-Output 'teams'", parameters: [{ name: "Channel", value: "ga" }], continueOnError: false, timeoutSeconds: 600 },
      { name: "Cleanup", content: "Write-Output 'clean'", parameters: [], continueOnError: true, timeoutSeconds: 300 },
    ],
    ...extra,
  };
}

export function step(position: number, extra: Partial<ScriptStep> = {}): ScriptStep {
  return {
    position,
    scriptName: `Script ${position}`,
    scriptSha256: "3f2a9c41d0be7e55aa01b2c3d4e5f60718293a4b5c6d7e8f9012345678901234",
    continueOnError: false,
    state: "pending",
    exitCode: null,
    output: "",
    error: "",
    startedAt: null,
    finishedAt: null,
    durationMs: null,
    ...extra,
  };
}

export function run(extra: Partial<ScriptRun> = {}): ScriptRun {
  return {
    id: "run-1",
    collectionId: "col-1",
    collectionName: "Baseline apps",
    vmId: MASTER_ID,
    vmName: "vm-golden-w11",
    state: "running",
    startedBy: "admin@contoso.com",
    startedAt: "2026-11-27T09:50:00Z",
    finishedAt: null,
    steps: [
      step(1, { state: "succeeded", exitCode: 0, output: "fslogix", startedAt: "2026-11-27T09:50:00Z", finishedAt: "2026-11-27T09:51:00Z", durationMs: 60_000 }),
      step(2, { state: "running", output: "line 1", startedAt: "2026-11-27T09:51:00Z" }),
      step(3),
    ],
    ...extra,
  };
}

export function capturePlan(extra: Partial<CapturePlan> = {}): CapturePlan {
  return {
    masterVmId: MASTER_ID,
    imageDefinitionId: DEFINITION_ID,
    version: "2026.1127.2",
    targetRegions: [
      { region: "westeurope", replicas: 3, reason: "Prod: hp-prod-weu creates up to 60 VMs at once" },
      { region: "northeurope", replicas: 1, reason: "Test: hp-test-neu" },
    ],
    endOfLife: "2027-05-26T00:00:00Z",
    excludeFromLatest: true,
    captureSubnetId: SUBNET_ID,
    lastRunId: "run-1",
    unrecordedChanges: ["hotfix-kb5044284"],
    warnings: ["The master has run commands this app did not start (hotfix-kb5044284): checklist item 2 will not be met."],
    ...extra,
  };
}

const STAGES: CaptureStage[] = ["snapshot", "disk", "nic", "temporaryVm", "sysprep", "waitForStop", "deallocate", "generalize", "imageVersion", "cleanup", "done"];

export function captureView(extra: Partial<CaptureView> = {}, upTo: CaptureStage = "sysprep"): CaptureView {
  const at = STAGES.indexOf(upTo);
  return {
    id: "cap-1",
    state: "running",
    stage: upTo,
    plan: capturePlan(),
    reason: null,
    startedBy: "admin@contoso.com",
    createdAt: "2026-11-27T09:40:00Z",
    finishedAt: null,
    stages: STAGES.map((stage, i) => ({
      stage,
      label: stage,
      startedAt: i <= at ? `2026-11-27T09:4${Math.min(9, i)}:00Z` : null,
      finishedAt: i < at ? `2026-11-27T09:4${Math.min(9, i + 1)}:00Z` : null,
    })),
    resources: [
      { kind: "snapshot", id: `${RG}/providers/Microsoft.Compute/snapshots/rm-cap-1-snap`, state: "created" },
      { kind: "disk", id: `${RG}/providers/Microsoft.Compute/disks/rm-cap-1-osdisk`, state: "created" },
      { kind: "nic", id: `${RG}/providers/Microsoft.Network/networkInterfaces/rm-cap-1-nic`, state: "created" },
      { kind: "vm", id: `${RG}/providers/Microsoft.Compute/virtualMachines/rm-cap-1-vm`, state: "created" },
    ],
    events: [{ at: "2026-11-27T09:40:00Z", level: "info", message: "Capture started", requestId: null }],
    sysprepOutput: "",
    ...extra,
  };
}

export const CHECKLIST: ChecklistItem[] = [
  { number: 1, title: "Golden image updated", state: "met", evidence: ["'Baseline apps' by admin@contoso.com succeeded"], nextStep: null },
  {
    number: 2,
    title: "App installs scripted",
    state: "notMet",
    evidence: ["Run command hotfix-kb5044284 on the master was not started by Ringmaster"],
    nextStep: "Put those changes into a script collection, run it, and capture again",
  },
  { number: 3, title: "In the gallery with proper versioning", state: "met", evidence: ["westeurope: 3 replicas"], nextStep: null },
  { number: 4, title: "Test deployment created", state: "missingEvidence", evidence: ["hp-test: no Ringmaster rollout of this release"], nextStep: "Roll this release out to the Test ring" },
  {
    number: 5,
    title: "Validation passed",
    state: "notYetAvailable",
    evidence: ["Health, script and Login Enterprise gates are not in this build yet"],
    nextStep: "Validate by hand until gates are available",
  },
  { number: 6, title: "Pilot/UAT signed off", state: "notYetAvailable", evidence: ["Sign-off is not in this build yet"], nextStep: null },
  { number: 7, title: "Rollback image available", state: "met", evidence: ["2026.1113.2 replicated everywhere"], nextStep: null },
];

export function retentionPreview(extra: Partial<RetentionPreview> = {}): RetentionPreview {
  const id = (v: string) => `${DEFINITION_ID}/versions/${v}`;
  return {
    policy: { keepNewest: 3, endOfLifeDays: 180 },
    keep: [
      { versionId: id("2026.1127.1"), version: "2026.1127.1", reason: "one of the newest 3" },
      { versionId: id("2026.1030.1"), version: "2026.1030.1", reason: "7,266 hosts run it" },
    ],
    delete: [
      { versionId: id("2026.0821.1"), version: "2026.0821.1", reason: "older than the newest 3, no host runs it" },
      { versionId: id("2026.0807.2"), version: "2026.0807.2", reason: "older than the newest 3, past its end of life" },
    ],
    ...extra,
  };
}
