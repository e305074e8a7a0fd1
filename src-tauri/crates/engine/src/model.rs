//! Domain types the UI sees. They derive `specta::Type` so the TypeScript bindings are generated from them.

use serde::{Deserialize, Serialize};
use specta::Type;

/// Health of one session host, folded from AVD's many statuses into what an admin acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub enum HostState {
    /// `Available` and accepting new sessions.
    Available,
    /// `Available` but `allowNewSession=false`: users leaving, nobody new arriving.
    Draining,
    /// Anything AVD reports as not usable (Unavailable, NoHeartbeat, Shutdown, UpgradeFailed...).
    Unavailable,
    /// A status this build does not know yet; shown as-is, never as healthy.
    Unknown,
}

impl HostState {
    pub fn as_str(self) -> &'static str {
        match self {
            HostState::Available => "available",
            HostState::Draining => "draining",
            HostState::Unavailable => "unavailable",
            HostState::Unknown => "unknown",
        }
    }

    pub fn parse(s: &str) -> HostState {
        match s {
            "available" => HostState::Available,
            "draining" => HostState::Draining,
            "unavailable" => HostState::Unavailable,
            _ => HostState::Unknown,
        }
    }

    /// Map AVD's `status` + `allowNewSession` to a state.
    pub fn from_avd(status: &str, allow_new_session: bool) -> HostState {
        match status {
            "Available" if allow_new_session => HostState::Available,
            "Available" => HostState::Draining,
            "Unavailable"
            | "Shutdown"
            | "Disconnected"
            | "Upgrading"
            | "UpgradeFailed"
            | "NoHeartbeat"
            | "NotJoinedToDomain"
            | "DomainTrustRelationshipLost"
            | "SxSStackListenerNotReady"
            | "FSLogixNotHealthy"
            | "NeedsAssistance" => HostState::Unavailable,
            _ => HostState::Unknown,
        }
    }
}

/// How many hosts of a pool run one image version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct VersionCount {
    /// Gallery image version name (`2026.1127.1`), or `unknown` when the VM was not built from a gallery version.
    pub version: String,
    pub hosts: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct PoolCard {
    pub id: String,
    pub name: String,
    pub subscription_id: String,
    pub subscription_name: String,
    pub resource_group: String,
    pub location: String,
    pub pool_type: String,
    pub hosts: u32,
    pub available: u32,
    pub draining: u32,
    pub unavailable: u32,
    pub unknown: u32,
    /// Hosts kept deallocated as standby by the pool's last rollout: counted here only, not in the states or
    /// versions above.
    #[serde(default)]
    pub standby: u32,
    pub users: u32,
    /// Newest version first.
    pub versions: Vec<VersionCount>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct RingLane {
    /// Display name of the ring (`Test`, `Pilot`, `Prod`, or a tag value the tenant uses).
    pub name: String,
    /// The `ringmaster-ring` tag value pools carry, lower-cased; empty for pools with no ring.
    pub key: String,
    pub pools: Vec<PoolCard>,
    pub hosts: u32,
    pub users: u32,
    /// The version most hosts of this ring run, if any.
    pub dominant_version: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct RingBoard {
    pub rings: Vec<RingLane>,
    /// Pools with no `ringmaster-ring` tag: shown apart so nobody mistakes them for a ring.
    pub unassigned: Vec<PoolCard>,
    pub sync: SyncStatus,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct RegionReplication {
    pub region: String,
    /// Completed, Replicating, Failed or Unknown, as the gallery reports it.
    pub state: String,
    pub progress: u32,
    pub replicas: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ImageVersionRow {
    pub id: String,
    pub name: String,
    pub gallery: String,
    pub definition: String,
    pub location: String,
    pub published: Option<String>,
    pub end_of_life: Option<String>,
    pub exclude_from_latest: bool,
    pub provisioning_state: String,
    /// Completed, InProgress, Failed or Unknown.
    pub replication_state: String,
    pub regions: Vec<RegionReplication>,
    /// Rings with at least one host on this version, in ring order.
    pub rings: Vec<String>,
    pub hosts: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct HostRow {
    pub id: String,
    pub name: String,
    pub host_pool: String,
    pub ring: String,
    pub state: HostState,
    /// AVD's own status word, for the detail.
    pub status: String,
    pub allow_new_session: bool,
    pub sessions: u32,
    pub image_version: String,
    pub vm_id: String,
    pub last_heartbeat: Option<String>,
    pub failed_checks: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub enum HostSortKey {
    Name,
    HostPool,
    Ring,
    State,
    Sessions,
    ImageVersion,
    LastHeartbeat,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct HostQuery {
    /// Only this host pool (ARM id), or every pool.
    pub host_pool: Option<String>,
    /// Case-insensitive substring of the host name, pool name or image version.
    pub text: Option<String>,
    pub state: Option<HostState>,
    pub sort: HostSortKey,
    pub descending: bool,
    pub offset: u32,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct HostPage {
    /// Rows matching the filter, before offset/limit.
    pub total: u32,
    pub offset: u32,
    pub rows: Vec<HostRow>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub enum InventorySource {
    /// Resource Graph: one paged query per resource kind.
    ResourceGraph,
    /// Per-resource ARM listing (Resource Graph unavailable).
    ArmListing,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// True while a refresh runs.
    pub running: bool,
    /// RFC 3339 time the cached inventory was taken, if there is one.
    pub synced_at: Option<String>,
    pub source: Option<InventorySource>,
    pub requests: u32,
    pub duration_ms: u32,
    /// The last refresh's failure, if it failed; the cache still shows the previous good inventory.
    pub last_error: Option<AppError>,
    /// The number of the last refresh that ended this session: progress of that one or an earlier one that arrives
    /// late (events and replies can cross) is stale.
    pub finished_run: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct SyncProgress {
    /// What is being fetched now, in words.
    pub stage: String,
    /// 0..=100.
    pub percent: u32,
    pub requests: u32,
    /// Which refresh this session it belongs to (1, 2, ...).
    pub run: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionInfo {
    /// `demo` when connected to the built-in simulated tenant.
    pub mode: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub cloud: String,
    pub arm_endpoint: String,
    pub authority_host: String,
    /// How the app authenticates: `client secret (simulated tenant)`, `Azure CLI`.
    pub credential: String,
    pub subscriptions: Vec<SubscriptionInfo>,
    pub database_path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionInfo {
    pub id: String,
    pub name: String,
    pub state: String,
    /// The inventory reads it (every subscription does until some are picked in Settings).
    pub included: bool,
}

/// An error as it crosses to the UI: a stable code to branch on and a sentence for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct AppError {
    pub code: String,
    pub message: String,
    /// ARM's `x-ms-request-id`, when Azure answered.
    pub request_id: Option<String>,
}

// ---- rollouts ----

/// How many hosts may be out of service at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum CapacityLimit {
    Hosts { hosts: u32 },
    Percent { percent: u32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub enum DrainMode {
    /// Message users, then wait for them to log off on their own.
    WaitForLogoff,
    /// Message users, then log them off after `logoffDelayMinutes`.
    ForceLogoff,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct RolloutPolicy {
    pub capacity: CapacityLimit,
    pub drain_mode: DrainMode,
    /// 0-60, as AVD allows.
    pub logoff_delay_minutes: u32,
    /// Shown to users on a draining host; at most 260 characters.
    pub message: String,
    /// Stop starting new hosts after this many failed ones.
    pub max_failures: u32,
    /// Replace one host first; nothing else starts until it is healthy.
    pub canary: bool,
    /// Keep each replaced host's VM deallocated (and its registration drained) as standby until the ring's bake
    /// ends: the new host gets the other of two names, and a rollback starts the standby hosts instead of
    /// rebuilding. Off: replaced VMs are deleted and hosts are rebuilt under the same names.
    #[serde(default)]
    pub standby: bool,
    /// Build each new host (under its partner name) and wait until it is Available before its old host is drained:
    /// capacity never drops, at the cost of up to the cap's worth of extra VMs (checked against the regional vCPU
    /// quota when the rollout starts).
    #[serde(default)]
    pub surge: bool,
}

impl Default for RolloutPolicy {
    fn default() -> Self {
        RolloutPolicy {
            capacity: CapacityLimit::Percent { percent: 20 },
            drain_mode: DrainMode::ForceLogoff,
            logoff_delay_minutes: 15,
            message:
                "This desktop is being updated. Please save your work and sign out; you can sign in again right away."
                    .into(),
            max_failures: 1,
            canary: true,
            standby: false,
            surge: false,
        }
    }
}

/// A policy field that is wrong, and what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct PolicyProblem {
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct PlannedHost {
    pub name: String,
    pub vm_id: String,
    pub sessions: u32,
    pub state: HostState,
    pub current_version: String,
}

/// What a rollout would do, shown before it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct RolloutPlan {
    pub host_pool_id: String,
    pub pool_name: String,
    pub ring: String,
    pub location: String,
    pub target_version: String,
    pub target_version_id: String,
    /// In the order they will be replaced (canary first).
    pub hosts: Vec<PlannedHost>,
    /// Hosts already on the target version.
    pub already_current: u32,
    pub pool_hosts: u32,
    /// Hosts out of service at once, after applying the policy to this pool.
    pub max_out_of_service: u32,
    pub users_now: u32,
    pub estimated_minutes: u32,
    /// Replication of the target version in the pool's region.
    pub replication_state: String,
    /// Problems that block the start (policy, replication); empty when it can start.
    pub blockers: Vec<PolicyProblem>,
    pub warnings: Vec<String>,
    /// A rollback that starts the standby hosts the last rollout kept, instead of rebuilding.
    #[serde(default)]
    pub standby_restore: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub enum RolloutState {
    Running,
    Paused,
    Completed,
    Failed,
    Aborted,
}

impl RolloutState {
    pub fn as_str(self) -> &'static str {
        match self {
            RolloutState::Running => "running",
            RolloutState::Paused => "paused",
            RolloutState::Completed => "completed",
            RolloutState::Failed => "failed",
            RolloutState::Aborted => "aborted",
        }
    }
    pub fn parse(s: &str) -> RolloutState {
        match s {
            "paused" => RolloutState::Paused,
            "completed" => RolloutState::Completed,
            "failed" => RolloutState::Failed,
            "aborted" => RolloutState::Aborted,
            _ => RolloutState::Running,
        }
    }
}

/// Where one host is in its replacement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub enum HostStage {
    Queued,
    Draining,
    WaitingForLogoff,
    Removing,
    Creating,
    Registering,
    Verifying,
    Done,
    Failed,
    Skipped,
}

impl HostStage {
    pub const ALL: [HostStage; 10] = [
        HostStage::Queued,
        HostStage::Draining,
        HostStage::WaitingForLogoff,
        HostStage::Removing,
        HostStage::Creating,
        HostStage::Registering,
        HostStage::Verifying,
        HostStage::Done,
        HostStage::Failed,
        HostStage::Skipped,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            HostStage::Queued => "queued",
            HostStage::Draining => "draining",
            HostStage::WaitingForLogoff => "waitingForLogoff",
            HostStage::Removing => "removing",
            HostStage::Creating => "creating",
            HostStage::Registering => "registering",
            HostStage::Verifying => "verifying",
            HostStage::Done => "done",
            HostStage::Failed => "failed",
            HostStage::Skipped => "skipped",
        }
    }
    pub fn parse(s: &str) -> HostStage {
        HostStage::ALL.into_iter().find(|h| h.as_str() == s).unwrap_or(HostStage::Queued)
    }
    /// Out of service and being worked on.
    pub fn in_flight(self) -> bool {
        !matches!(self, HostStage::Queued | HostStage::Done | HostStage::Failed | HostStage::Skipped)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct HostProgress {
    pub name: String,
    pub stage: HostStage,
    pub sessions: u32,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct RolloutEvent {
    pub at: String,
    pub host: Option<String>,
    /// info | warning | error
    pub level: String,
    pub message: String,
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct StageCount {
    pub stage: HostStage,
    pub hosts: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct RolloutView {
    pub id: String,
    /// `rollout` or `rollback`.
    pub kind: String,
    pub host_pool_id: String,
    pub pool_name: String,
    pub ring: String,
    pub target_version: String,
    pub previous_version: Option<String>,
    pub state: RolloutState,
    pub reason: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub policy: RolloutPolicy,
    pub max_out_of_service: u32,
    pub hosts: Vec<HostProgress>,
    pub stages: Vec<StageCount>,
    pub done: u32,
    pub total: u32,
    pub users_connected: u32,
    pub eta_minutes: Option<u32>,
    pub events: Vec<RolloutEvent>,
    /// The replaced hosts are still kept as standby (a rollback of the pool starts them again).
    #[serde(default)]
    pub standby_kept: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct RolloutSummary {
    pub id: String,
    pub kind: String,
    pub host_pool_id: String,
    pub pool_name: String,
    pub ring: String,
    pub target_version: String,
    pub state: RolloutState,
    pub done: u32,
    pub total: u32,
    pub created_at: String,
    pub finished_at: Option<String>,
}
