//! Types of the build half of the pipeline (golden master, script collections, capture, releases and their
//! checklist) that the UI sees. They derive `specta::Type` so the TypeScript bindings are generated from them.

use serde::{Deserialize, Serialize};
use specta::Type;

use crate::gates::GateRun;
use crate::model::{RegionReplication, RolloutSummary};

/// A VM the app builds images on, and the gallery image definition its captures become versions of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct GoldenMaster {
    pub vm_id: String,
    pub name: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    pub vm_size: String,
    /// `running`, `stopped`, `deallocated`, ... as the VM's instance view says; `unknown` when not read.
    pub power_state: String,
    pub image_definition_id: String,
    /// The image definition's name (`win11-24h2-m365`).
    pub image_definition: String,
    /// Where the temporary capture VM goes: a subnet with no line of sight to domain controllers.
    pub capture_subnet_id: String,
    /// When it was registered in this app; `None` for a VM Azure tags as a master that is not registered yet.
    pub registered_at: Option<String>,
}

/// A VM Azure tags `ringmaster-golden-master`, offered for registration with what the app would use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct MasterRegistration {
    pub vm_id: String,
    pub image_definition_id: String,
    pub capture_subnet_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ScriptParameter {
    pub name: String,
    pub value: String,
}

/// One PowerShell script of a collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct Script {
    pub name: String,
    pub content: String,
    #[serde(default)]
    pub parameters: Vec<ScriptParameter>,
    /// Carry on with the next script when this one fails.
    #[serde(default)]
    pub continue_on_error: bool,
    /// 1 s .. 5,400 s (Run Command runs a script for at most 90 minutes).
    pub timeout_seconds: u32,
}

/// Named, ordered scripts run on the golden master one after another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ScriptCollection {
    /// Empty when creating a new collection.
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub scripts: Vec<Script>,
    /// RFC 3339; set by the app.
    #[serde(default)]
    pub updated_at: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub enum StepState {
    Pending,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Canceled,
    /// Not run because an earlier script failed or the run was cancelled.
    Skipped,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "pending",
            StepState::Running => "running",
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
            StepState::TimedOut => "timedOut",
            StepState::Canceled => "canceled",
            StepState::Skipped => "skipped",
        }
    }

    pub fn parse(s: &str) -> StepState {
        match s {
            "pending" => StepState::Pending,
            "running" => StepState::Running,
            "succeeded" => StepState::Succeeded,
            "timedOut" => StepState::TimedOut,
            "canceled" => StepState::Canceled,
            "skipped" => StepState::Skipped,
            _ => StepState::Failed,
        }
    }

    /// Counts against the run (stops it unless the script may fail).
    pub fn is_failure(self) -> bool {
        matches!(self, StepState::Failed | StepState::TimedOut | StepState::Canceled)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub enum RunState {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> RunState {
        match s {
            "running" => RunState::Running,
            "succeeded" => RunState::Succeeded,
            "cancelled" => RunState::Cancelled,
            _ => RunState::Failed,
        }
    }
}

/// One script of a run, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ScriptStep {
    pub position: u32,
    pub script_name: String,
    /// SHA-256 of the script text with its parameters, as run.
    pub script_sha256: String,
    pub continue_on_error: bool,
    pub state: StepState,
    pub exit_code: Option<i32>,
    /// Standard output (Azure keeps the last 4,096 bytes).
    pub output: String,
    pub error: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u32>,
}

/// A collection run on a VM: the evidence that the golden image changed only through scripts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ScriptRun {
    pub id: String,
    pub collection_id: String,
    pub collection_name: String,
    pub vm_id: String,
    pub vm_name: String,
    pub state: RunState,
    /// Who started it (the signed-in identity).
    pub started_by: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub steps: Vec<ScriptStep>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub enum CaptureStage {
    Snapshot,
    Disk,
    Nic,
    TemporaryVm,
    Sysprep,
    WaitForStop,
    Deallocate,
    Generalize,
    ImageVersion,
    Cleanup,
    Done,
}

impl CaptureStage {
    pub const ALL: [CaptureStage; 11] = [
        CaptureStage::Snapshot,
        CaptureStage::Disk,
        CaptureStage::Nic,
        CaptureStage::TemporaryVm,
        CaptureStage::Sysprep,
        CaptureStage::WaitForStop,
        CaptureStage::Deallocate,
        CaptureStage::Generalize,
        CaptureStage::ImageVersion,
        CaptureStage::Cleanup,
        CaptureStage::Done,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CaptureStage::Snapshot => "snapshot",
            CaptureStage::Disk => "disk",
            CaptureStage::Nic => "nic",
            CaptureStage::TemporaryVm => "temporaryVm",
            CaptureStage::Sysprep => "sysprep",
            CaptureStage::WaitForStop => "waitForStop",
            CaptureStage::Deallocate => "deallocate",
            CaptureStage::Generalize => "generalize",
            CaptureStage::ImageVersion => "imageVersion",
            CaptureStage::Cleanup => "cleanup",
            CaptureStage::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<CaptureStage> {
        CaptureStage::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn label(self) -> &'static str {
        match self {
            CaptureStage::Snapshot => "Snapshot the master's OS disk",
            CaptureStage::Disk => "Disk from the snapshot",
            CaptureStage::Nic => "Network interface on the isolated subnet",
            CaptureStage::TemporaryVm => "Temporary VM on the copied disk",
            CaptureStage::Sysprep => "Sysprep the temporary VM",
            CaptureStage::WaitForStop => "Wait for the temporary VM to stop",
            CaptureStage::Deallocate => "Deallocate the temporary VM",
            CaptureStage::Generalize => "Generalize the temporary VM",
            CaptureStage::ImageVersion => "Create the gallery image version",
            CaptureStage::Cleanup => "Delete the temporary resources",
            CaptureStage::Done => "Done",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub enum CaptureState {
    Running,
    /// The image version exists; temporary resources are gone.
    Succeeded,
    /// Something failed; the reason says what, and the temporary resources are gone (or being removed).
    Failed,
    Cancelled,
}

impl CaptureState {
    pub fn as_str(self) -> &'static str {
        match self {
            CaptureState::Running => "running",
            CaptureState::Succeeded => "succeeded",
            CaptureState::Failed => "failed",
            CaptureState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> CaptureState {
        match s {
            "running" => CaptureState::Running,
            "succeeded" => CaptureState::Succeeded,
            "cancelled" => CaptureState::Cancelled,
            _ => CaptureState::Failed,
        }
    }
}

/// Replicas of the new version in one region, and why that many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct RegionTarget {
    /// ARM location name (`westeurope`).
    pub region: String,
    pub replicas: u32,
    pub reason: String,
}

/// Everything a capture will do, decided before it starts and shown for review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct CapturePlan {
    pub master_vm_id: String,
    pub image_definition_id: String,
    /// `YYYY.MMDD.N`: sortable, unique in the definition.
    pub version: String,
    pub target_regions: Vec<RegionTarget>,
    /// RFC 3339, from the retention policy.
    pub end_of_life: String,
    /// True until the release reaches Prod.
    pub exclude_from_latest: bool,
    pub capture_subnet_id: String,
    /// The run that last changed the master, if any: what the checklist binds to.
    pub last_run_id: Option<String>,
    /// Run commands on the master this app did not start: changes the checklist cannot account for.
    pub unrecorded_changes: Vec<String>,
    /// Things the admin should know before starting (no successful run since the last capture, ...).
    pub warnings: Vec<String>,
}

/// A temporary resource of a capture and whether it still exists as far as the journal knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct TemporaryResource {
    /// `snapshot`, `disk`, `nic`, `vm`.
    pub kind: String,
    pub id: String,
    /// `planned`, `created`, `deleted`.
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct StageTiming {
    pub stage: CaptureStage,
    pub label: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct CaptureEvent {
    pub at: String,
    /// info | warning | error
    pub level: String,
    pub message: String,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct CaptureView {
    pub id: String,
    pub state: CaptureState,
    pub stage: CaptureStage,
    pub plan: CapturePlan,
    pub reason: Option<String>,
    pub started_by: String,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub stages: Vec<StageTiming>,
    pub resources: Vec<TemporaryResource>,
    pub events: Vec<CaptureEvent>,
    /// The sysprep script's output, when it ran.
    pub sysprep_output: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct CaptureSummary {
    pub id: String,
    pub version: String,
    pub state: CaptureState,
    pub stage: CaptureStage,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub reason: Option<String>,
}

/// Where an image version is in the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub enum ReleaseStage {
    /// In the gallery, on no ring yet.
    Captured,
    InTest,
    InPilot,
    InProd,
    /// Rolled back from a ring.
    Rejected,
    /// Past its end-of-life date, or deleted.
    Retired,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub enum ChecklistState {
    Met,
    /// The evidence says it is not met.
    NotMet,
    /// There is no evidence yet either way.
    MissingEvidence,
    /// The feature that produces this evidence is not in this build; never shown as met.
    NotYetAvailable,
}

/// One item of the pre-publish checklist, computed from evidence (never ticked by hand).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ChecklistItem {
    pub number: u32,
    pub title: String,
    pub state: ChecklistState,
    /// What the state rests on, one fact per line.
    pub evidence: Vec<String>,
    /// When not met: what to do next.
    pub next_step: Option<String>,
}

/// A pool with hosts on the release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ReleasePool {
    pub host_pool_id: String,
    pub pool_name: String,
    pub ring: String,
    pub location: String,
    pub hosts_on_release: u32,
    pub hosts: u32,
}

/// Replication of the release in a region against what the rings need there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct RegionNeed {
    pub region: String,
    pub required_replicas: u32,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseSummary {
    pub version_id: String,
    pub version: String,
    pub stage: ReleaseStage,
    pub published: Option<String>,
    pub end_of_life: Option<String>,
    pub replication_state: String,
    pub hosts: u32,
    pub checklist_met: u32,
    pub checklist_total: u32,
}

/// One page per image version: where it is, who runs it, the evidence and the checklist.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseView {
    pub summary: ReleaseSummary,
    pub exclude_from_latest: bool,
    pub pools: Vec<ReleasePool>,
    pub regions: Vec<RegionReplication>,
    pub region_needs: Vec<RegionNeed>,
    pub checklist: Vec<ChecklistItem>,
    pub capture: Option<CaptureSummary>,
    /// Script runs on the master between the previous capture and this one.
    pub runs: Vec<ScriptRun>,
    pub rollouts: Vec<RolloutSummary>,
    /// Gate runs on this release in every ring, newest first.
    pub gate_runs: Vec<GateRun>,
    /// Whether it may leave each ring, in pipeline order (filled on the release page only, not in lists).
    pub promotions: Vec<crate::signoff::PromotionCheck>,
}

/// Retention: keep the newest N, never delete what runs somewhere or is a ring's last known-good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicy {
    pub keep_newest: u32,
    /// End of life of a new version, in days after capture.
    pub end_of_life_days: u32,
}

impl Default for RetentionPolicy {
    fn default() -> Self {
        RetentionPolicy { keep_newest: 5, end_of_life_days: 180 }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct RetentionEntry {
    pub version_id: String,
    pub version: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPreview {
    pub policy: RetentionPolicy,
    pub keep: Vec<RetentionEntry>,
    pub delete: Vec<RetentionEntry>,
}

/// Something the app did on its own that people should see now (an automatic rollback), shown until dismissed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct Notice {
    pub id: String,
    /// `danger`, `warn` or `info`.
    pub level: String,
    pub title: String,
    pub message: String,
    /// The release it concerns, to link to.
    pub version: Option<String>,
    pub at: String,
}

/// What a script run or capture tells the UI changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct BuildUpdate {
    /// `run`, `capture`, `gate` (id = the version) or `notice` (id = the notice).
    pub kind: String,
    pub id: String,
}
