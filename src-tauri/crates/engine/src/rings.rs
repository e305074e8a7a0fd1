//! Rings from tags: pools carry `ringmaster-ring=<ring>`; rings are shown in pipeline order (Test, Pilot/UAT,
//! Prod), any other ring names after them.

use std::collections::{BTreeMap, HashMap};

use ringmaster_azure::inventory::RawInventory;
use ringmaster_store::{HostRecord, PoolRow, Snapshot, Store, SubscriptionRow, VersionRow};
use serde::{Deserialize, Serialize};

use crate::model::*;
use crate::EngineError;

pub const RING_TAG: &str = "ringmaster-ring";

/// Known ring names in pipeline order.
const RING_ORDER: &[(&str, &str)] = &[
    ("test", "Test"),
    ("validation", "Validation"),
    ("pilot", "Pilot"),
    ("uat", "UAT"),
    ("prod", "Prod"),
    ("production", "Production"),
];

pub fn ring_display_name(key: &str) -> String {
    if key.is_empty() {
        return String::new();
    }
    RING_ORDER.iter().find(|(k, _)| *k == key).map(|(_, d)| d.to_string()).unwrap_or_else(|| {
        let mut c = key.chars();
        match c.next() {
            Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
            None => String::new(),
        }
    })
}

pub(crate) fn ring_rank(key: &str) -> (usize, String) {
    match RING_ORDER.iter().position(|(k, _)| *k == key) {
        Some(i) => (i, String::new()),
        None => (RING_ORDER.len(), key.to_string()),
    }
}

/// The version a VM runs, from its `imageReference.id`: the version name for a gallery image version, `latest`
/// for a definition id, `unknown` otherwise (marketplace image, or none).
pub fn version_from_image_id(image_id: Option<&str>) -> String {
    let Some(id) = image_id.filter(|s| !s.is_empty()) else { return "unknown".into() };
    let lower = id.to_ascii_lowercase();
    if let Some(at) = lower.rfind("/versions/") {
        return id[at + "/versions/".len()..].to_string();
    }
    if lower.contains("/galleries/") && lower.contains("/images/") {
        return "latest".into();
    }
    "unknown".into()
}

#[derive(Serialize, Deserialize)]
struct StoredRegion {
    region: String,
    state: String,
    progress: u32,
    replicas: u32,
}

fn segment_after(id: &str, key: &str) -> String {
    let parts: Vec<&str> = id.split('/').collect();
    parts
        .iter()
        .position(|p| p.eq_ignore_ascii_case(key))
        .and_then(|i| parts.get(i + 1))
        .map(|s| s.to_string())
        .unwrap_or_default()
}

pub fn snapshot(raw: &RawInventory) -> Snapshot {
    Snapshot {
        subscriptions: raw
            .subscriptions
            .iter()
            .map(|s| SubscriptionRow { id: s.id.clone(), name: s.name.clone(), state: s.state.clone() })
            .collect(),
        pools: raw
            .host_pools
            .iter()
            .map(|p| PoolRow {
                id: p.id.clone(),
                name: p.name.clone(),
                subscription_id: p.subscription_id.clone(),
                resource_group: p.resource_group.clone(),
                location: p.location.clone(),
                pool_type: p.pool_type.clone(),
                ring: p
                    .tags
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(RING_TAG))
                    .map(|(_, v)| v.trim().to_ascii_lowercase())
                    .unwrap_or_default(),
            })
            .collect(),
        hosts: raw
            .session_hosts
            .iter()
            .map(|h| HostRecord {
                id: h.id.clone(),
                host_pool_id: h.host_pool_id.clone(),
                name: h.name.clone(),
                status: h.status.clone(),
                state: HostState::from_avd(&h.status, h.allow_new_session).as_str().to_string(),
                allow_new_session: h.allow_new_session,
                sessions: h.sessions,
                last_heartbeat: h.last_heartbeat.clone(),
                vm_id: h.vm_id.clone(),
                image_version_id: h.image_id.clone(),
                image_version: version_from_image_id(h.image_id.as_deref()),
                failed_checks: h.failed_checks.clone(),
            })
            .collect(),
        versions: raw.image_versions.iter().map(version_row).collect(),
    }
}

/// The cache row of an image version as the gallery reports it.
pub fn version_row(v: &ringmaster_azure::inventory::ImageVersionRecord) -> VersionRow {
    VersionRow {
        id: v.id.clone(),
        name: v.name.clone(),
        gallery: segment_after(&v.id, "galleries"),
        definition: segment_after(&v.id, "images"),
        location: v.location.clone(),
        published: v.published.clone(),
        end_of_life: v.end_of_life.clone(),
        exclude_from_latest: v.exclude_from_latest,
        provisioning_state: v.provisioning_state.clone(),
        replication_state: v.replication_state.clone(),
        regions_json: serde_json::to_string(
            &v.regions
                .iter()
                .map(|r| StoredRegion {
                    region: r.region.clone(),
                    state: r.state.clone(),
                    progress: r.progress,
                    replicas: r.replicas,
                })
                .collect::<Vec<_>>(),
        )
        .unwrap_or_else(|_| "[]".into()),
        tags_json: serde_json::to_string(&v.tags).unwrap_or_else(|_| "{}".into()),
    }
}

/// Version names newest first: by publish date, then by name (sortable names).
fn version_order(store: &Store) -> Result<HashMap<String, usize>, EngineError> {
    let mut versions = store.versions()?;
    versions.sort_by(|a, b| b.published.cmp(&a.published).then_with(|| natural_cmp(&b.name, &a.name)));
    Ok(versions.into_iter().enumerate().map(|(i, v)| (v.name, i)).collect())
}

/// Compare dotted version names numerically where they are numbers.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    let pa: Vec<u64> = a.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    let pb: Vec<u64> = b.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    pa.cmp(&pb).then_with(|| a.cmp(b))
}

pub fn board(store: &Store) -> Result<RingBoard, EngineError> {
    let pools = store.pools()?;
    let stats: HashMap<String, _> = store.pool_stats()?.into_iter().collect();
    let order = version_order(store)?;
    let subs: HashMap<String, String> =
        store.subscriptions()?.into_iter().map(|s| (s.id.to_ascii_lowercase(), s.name)).collect();
    let mut counts: HashMap<String, Vec<VersionCount>> = HashMap::new();
    for (pool, version, hosts) in store.version_counts()? {
        counts.entry(pool).or_default().push(VersionCount { version, hosts });
    }
    let rank = |v: &str| order.get(v).copied().unwrap_or(usize::MAX);
    let mut lanes: BTreeMap<(usize, String), RingLane> = BTreeMap::new();
    let mut unassigned = Vec::new();
    for p in pools {
        let s = stats.get(&p.id.to_ascii_lowercase()).cloned().unwrap_or_default();
        let mut versions = counts.remove(&p.id.to_ascii_lowercase()).unwrap_or_default();
        versions.sort_by(|a, b| rank(&a.version).cmp(&rank(&b.version)).then_with(|| a.version.cmp(&b.version)));
        let card = PoolCard {
            subscription_name: subs.get(&p.subscription_id.to_ascii_lowercase()).cloned().unwrap_or_default(),
            id: p.id,
            name: p.name,
            subscription_id: p.subscription_id,
            resource_group: p.resource_group,
            location: p.location,
            pool_type: p.pool_type,
            hosts: s.hosts,
            available: s.available,
            draining: s.draining,
            unavailable: s.unavailable,
            unknown: s.unknown,
            standby: 0,
            users: s.users,
            versions,
        };
        if p.ring.is_empty() {
            unassigned.push(card);
            continue;
        }
        let lane = lanes.entry(ring_rank(&p.ring)).or_insert_with(|| RingLane {
            name: ring_display_name(&p.ring),
            key: p.ring.clone(),
            pools: vec![],
            hosts: 0,
            users: 0,
            dominant_version: None,
        });
        lane.hosts += card.hosts;
        lane.users += card.users;
        lane.pools.push(card);
    }
    let rings = lanes
        .into_values()
        .map(|mut lane| {
            let mut per_version: HashMap<&str, u32> = HashMap::new();
            for p in &lane.pools {
                for v in &p.versions {
                    *per_version.entry(v.version.as_str()).or_default() += v.hosts;
                }
            }
            lane.dominant_version = per_version
                .into_iter()
                .max_by(|a, b| a.1.cmp(&b.1).then_with(|| rank(b.0).cmp(&rank(a.0))))
                .map(|(v, _)| v.to_string());
            lane
        })
        .collect();
    Ok(RingBoard {
        rings,
        unassigned,
        sync: SyncStatus {
            running: false,
            synced_at: None,
            source: None,
            requests: 0,
            duration_ms: 0,
            last_error: None,
            finished_run: 0,
        },
    })
}

pub fn image_versions(store: &Store) -> Result<Vec<ImageVersionRow>, EngineError> {
    let pools: HashMap<String, String> =
        store.pools()?.into_iter().map(|p| (p.id.to_ascii_lowercase(), p.ring)).collect();
    let mut rings_of: HashMap<String, Vec<String>> = HashMap::new();
    let mut hosts_of: HashMap<String, u32> = HashMap::new();
    for (pool, version, n) in store.version_counts()? {
        *hosts_of.entry(version.clone()).or_default() += n;
        if let Some(ring) = pools.get(&pool).filter(|r| !r.is_empty()) {
            let list = rings_of.entry(version).or_default();
            if !list.contains(ring) {
                list.push(ring.clone());
            }
        }
    }
    let mut versions = store.versions()?;
    versions.sort_by(|a, b| b.published.cmp(&a.published).then_with(|| natural_cmp(&b.name, &a.name)));
    Ok(versions
        .into_iter()
        .map(|v| {
            let regions: Vec<StoredRegion> = serde_json::from_str(&v.regions_json).unwrap_or_default();
            let mut rings = rings_of.remove(&v.name).unwrap_or_default();
            rings.sort_by_key(|r| ring_rank(r));
            ImageVersionRow {
                hosts: hosts_of.get(&v.name).copied().unwrap_or(0),
                rings: rings.iter().map(|r| ring_display_name(r)).collect(),
                regions: regions
                    .into_iter()
                    .map(|r| RegionReplication {
                        region: r.region,
                        state: r.state,
                        progress: r.progress,
                        replicas: r.replicas,
                    })
                    .collect(),
                id: v.id,
                name: v.name,
                gallery: v.gallery,
                definition: v.definition,
                location: v.location,
                published: v.published,
                end_of_life: v.end_of_life,
                exclude_from_latest: v.exclude_from_latest,
                provisioning_state: v.provisioning_state,
                replication_state: v.replication_state,
            }
        })
        .collect())
}
