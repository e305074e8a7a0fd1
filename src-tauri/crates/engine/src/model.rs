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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct SyncProgress {
    /// What is being fetched now, in words.
    pub stage: String,
    /// 0..=100.
    pub percent: u32,
    pub requests: u32,
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
