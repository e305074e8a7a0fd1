//! Reading what a tenant has: host pools, session hosts with the image each runs, and gallery image versions.
//! Two paths give the same records: Resource Graph (a handful of paged queries for any size of tenant) and
//! per-resource ARM listing (the fallback when Resource Graph is unavailable, and the benchmark's baseline).

use std::collections::{BTreeMap, HashMap};

use futures::stream::{self, StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::Value;

use crate::client::ArmClient;
use crate::cloud::api_version;
use crate::error::AzureError;

#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRecord {
    pub id: String,
    pub name: String,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostPoolRecord {
    pub id: String,
    pub name: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    pub tags: BTreeMap<String, String>,
    pub pool_type: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SessionHostRecord {
    pub id: String,
    pub host_pool_id: String,
    /// The registered host name (FQDN).
    pub name: String,
    pub status: String,
    pub allow_new_session: bool,
    pub sessions: u32,
    pub last_heartbeat: Option<String>,
    pub vm_id: Option<String>,
    /// `storageProfile.imageReference.id` of the host's VM.
    pub image_id: Option<String>,
    pub failed_checks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegionState {
    pub region: String,
    pub state: String,
    pub progress: u32,
    pub replicas: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ImageVersionRecord {
    pub id: String,
    pub name: String,
    pub location: String,
    pub exclude_from_latest: bool,
    pub published: Option<String>,
    pub end_of_life: Option<String>,
    pub provisioning_state: String,
    pub replication_state: String,
    pub regions: Vec<RegionState>,
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawInventory {
    pub subscriptions: Vec<SubscriptionRecord>,
    pub host_pools: Vec<HostPoolRecord>,
    pub session_hosts: Vec<SessionHostRecord>,
    pub image_versions: Vec<ImageVersionRecord>,
}

/// Where a refresh is, for a progress bar.
#[derive(Debug, Clone)]
pub struct Progress {
    pub stage: String,
    /// 0.0..=1.0
    pub fraction: f32,
}

pub type ProgressFn<'a> = &'a (dyn Fn(Progress) + Send + Sync);

// ---- wire shapes (lenient: unknown fields ignored, missing ones defaulted, enums kept as strings) ----

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Subscription {
    subscription_id: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    state: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ArmResource {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    tags: Option<Value>,
    #[serde(default)]
    properties: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphPool {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    location: Option<String>,
    #[serde(default)]
    resource_group: String,
    #[serde(default)]
    subscription_id: String,
    #[serde(default)]
    tags: Option<Value>,
    #[serde(default)]
    pool_type: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphHost {
    id: String,
    #[serde(default)]
    status: Option<Value>,
    #[serde(default)]
    allow_new_session: Option<Value>,
    #[serde(default)]
    sessions: Option<Value>,
    #[serde(default)]
    last_heart_beat: Option<Value>,
    #[serde(default)]
    resource_id: Option<Value>,
    #[serde(default)]
    health: Option<Value>,
    #[serde(default)]
    image_id: Option<Value>,
}

pub const QUERY_HOST_POOLS: &str = "resources \
| where type =~ 'microsoft.desktopvirtualization/hostpools' \
| project id, name, location, resourceGroup, subscriptionId, tags, poolType = tostring(properties.hostPoolType) \
| order by id asc";

/// Session hosts joined to their VM's image reference: one row per host, 1,000 rows a page.
pub const QUERY_SESSION_HOSTS: &str = "desktopvirtualizationresources \
| where type =~ 'microsoft.desktopvirtualization/hostpools/sessionhosts' \
| extend vmId = tolower(tostring(properties.resourceId)) \
| join kind=leftouter (resources | where type =~ 'microsoft.compute/virtualmachines' \
| project vmId = tolower(id), imageId = tostring(properties.storageProfile.imageReference.id)) on vmId \
| project id, status = tostring(properties.status), allowNewSession = properties.allowNewSession, \
sessions = properties.sessions, lastHeartBeat = properties.lastHeartBeat, resourceId = tostring(properties.resourceId), \
health = properties.sessionHostHealthCheckResults, imageId \
| order by id asc";

pub const QUERY_IMAGE_VERSIONS: &str = "resources \
| where type =~ 'microsoft.compute/galleries/images/versions' \
| project id, name, location, tags, properties \
| order by id asc";

fn tags_of(v: Option<Value>) -> BTreeMap<String, String> {
    match v {
        Some(Value::Object(m)) => m
            .into_iter()
            .map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, s)
            })
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn as_string(v: &Option<Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        _ => None,
    }
}

fn as_bool(v: &Option<Value>, default: bool) -> bool {
    match v {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
        _ => default,
    }
}

fn as_u32(v: &Option<Value>) -> u32 {
    match v {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0).min(u32::MAX as u64) as u32,
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

/// The host pool a session host id belongs to (`.../hostPools/{hp}/sessionHosts/{name}`).
pub fn split_session_host_id(id: &str) -> Option<(String, String)> {
    let lower = id.to_ascii_lowercase();
    let at = lower.find("/sessionhosts/")?;
    Some((id[..at].to_string(), id[at + "/sessionhosts/".len()..].to_string()))
}

fn failed_checks(v: &Option<Value>) -> Vec<String> {
    v.as_ref()
        .and_then(Value::as_array)
        .map(|checks| {
            checks
                .iter()
                .filter(|c| c["healthCheckResult"].as_str() == Some("HealthCheckFailed"))
                .filter_map(|c| c["healthCheckName"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn pool_from_arm(p: ArmResource) -> HostPoolRecord {
    let parts: Vec<&str> = p.id.split('/').collect();
    HostPoolRecord {
        subscription_id: parts.get(2).copied().unwrap_or_default().to_string(),
        resource_group: parts.get(4).copied().unwrap_or_default().to_ascii_lowercase(),
        pool_type: p.properties["hostPoolType"].as_str().unwrap_or_default().to_string(),
        location: p.location.clone().unwrap_or_default(),
        tags: tags_of(p.tags.clone()),
        name: p.name.clone(),
        id: p.id,
    }
}

fn host_from_graph(h: GraphHost) -> Option<SessionHostRecord> {
    let (pool, name) = split_session_host_id(&h.id)?;
    Some(SessionHostRecord {
        host_pool_id: pool,
        name,
        status: as_string(&h.status).unwrap_or_else(|| "Unknown".into()),
        allow_new_session: as_bool(&h.allow_new_session, true),
        sessions: as_u32(&h.sessions),
        last_heartbeat: as_string(&h.last_heart_beat),
        vm_id: as_string(&h.resource_id),
        image_id: as_string(&h.image_id),
        failed_checks: failed_checks(&h.health),
        id: h.id,
    })
}

fn host_from_arm(r: ArmResource) -> Option<SessionHostRecord> {
    let p = &r.properties;
    let get = |k: &str| p.get(k).cloned();
    let (pool, name) = split_session_host_id(&r.id)?;
    Some(SessionHostRecord {
        host_pool_id: pool,
        name,
        status: as_string(&get("status")).unwrap_or_else(|| "Unknown".into()),
        allow_new_session: as_bool(&get("allowNewSession"), true),
        sessions: as_u32(&get("sessions")),
        last_heartbeat: as_string(&get("lastHeartBeat")),
        vm_id: as_string(&get("resourceId")),
        image_id: None,
        failed_checks: failed_checks(&get("sessionHostHealthCheckResults")),
        id: r.id,
    })
}

/// Region names come as display names from the gallery ("West Europe") and as ids elsewhere ("westeurope").
pub fn normalize_region(r: &str) -> String {
    r.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_ascii_lowercase()
}

fn version_from(r: &ArmResource) -> ImageVersionRecord {
    let p = &r.properties;
    let pp = &p["publishingProfile"];
    let text = |v: &Value| v.as_str().map(str::to_string);
    let mut regions: Vec<RegionState> = pp["targetRegions"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|t| RegionState {
                    region: normalize_region(t["name"].as_str().unwrap_or_default()),
                    state: "Unknown".into(),
                    progress: 0,
                    replicas: t["regionalReplicaCount"]
                        .as_u64()
                        .or(pp["replicaCount"].as_u64())
                        .map_or(1, |n| u32::try_from(n).unwrap_or(u32::MAX)),
                })
                .collect()
        })
        .unwrap_or_default();
    let rs = &p["replicationStatus"];
    if let Some(summary) = rs["summary"].as_array() {
        for s in summary {
            let region = normalize_region(s["region"].as_str().unwrap_or_default());
            let state = s["state"].as_str().unwrap_or("Unknown").to_string();
            let progress = s["progress"].as_u64().unwrap_or(0).min(100) as u32;
            match regions.iter_mut().find(|r| r.region == region) {
                Some(r) => {
                    r.state = state;
                    r.progress = progress;
                }
                None => regions.push(RegionState { region, state, progress, replicas: 0 }),
            }
        }
    }
    ImageVersionRecord {
        id: r.id.clone(),
        name: r.name.clone(),
        location: r.location.clone().unwrap_or_default(),
        exclude_from_latest: pp["excludeFromLatest"].as_bool().unwrap_or(false),
        published: text(&pp["publishedDate"]),
        end_of_life: text(&pp["endOfLifeDate"]),
        provisioning_state: text(&p["provisioningState"]).unwrap_or_else(|| "Unknown".into()),
        replication_state: text(&rs["aggregatedState"]).unwrap_or_else(|| "Unknown".into()),
        regions,
        tags: tags_of(r.tags.clone()),
    }
}

pub async fn list_subscriptions(client: &ArmClient) -> Result<Vec<SubscriptionRecord>, AzureError> {
    let subs: Vec<Subscription> = client
        .list_all("/subscriptions", &[("api-version", api_version::SUBSCRIPTIONS)], "subscription list", |_| {})
        .await?;
    Ok(subs
        .into_iter()
        .map(|s| SubscriptionRecord {
            id: s.subscription_id,
            name: s.display_name,
            state: s.state.unwrap_or_else(|| "Unknown".into()),
        })
        .collect())
}

/// Replication status per version: Resource Graph does not carry it, so one GET each.
async fn with_replication(client: &ArmClient, ids: Vec<String>) -> Result<Vec<ImageVersionRecord>, AzureError> {
    stream::iter(ids)
        .map(|id| async move {
            let r: ArmResource = client
                .get_json(
                    &id,
                    &[("api-version", api_version::GALLERY), ("$expand", "ReplicationStatus")],
                    "image version",
                )
                .await?;
            Ok::<_, AzureError>(version_from(&r))
        })
        .buffered(6)
        .try_collect()
        .await
}

/// The subscriptions to read: every one listed, or those of `only` (case-insensitive) when it names any.
fn in_scope(subscriptions: &[SubscriptionRecord], only: &[String]) -> Vec<String> {
    subscriptions
        .iter()
        .filter(|s| only.is_empty() || only.iter().any(|o| o.eq_ignore_ascii_case(&s.id)))
        .map(|s| s.id.clone())
        .collect()
}

/// Resource Graph path: 3 paged queries plus one GET per image version.
pub async fn fetch_via_graph(client: &ArmClient, progress: ProgressFn<'_>) -> Result<RawInventory, AzureError> {
    fetch_via_graph_in(client, progress, &[]).await
}

/// [`fetch_via_graph`] over the subscriptions of `only` (all when empty); every subscription is still listed.
pub async fn fetch_via_graph_in(
    client: &ArmClient,
    progress: ProgressFn<'_>,
    only: &[String],
) -> Result<RawInventory, AzureError> {
    progress(Progress { stage: "Listing subscriptions".into(), fraction: 0.02 });
    let subscriptions = list_subscriptions(client).await?;
    let sub_ids = in_scope(&subscriptions, only);
    if sub_ids.is_empty() {
        return Ok(RawInventory { subscriptions, ..RawInventory::default() });
    }

    progress(Progress { stage: "Querying host pools".into(), fraction: 0.08 });
    let pools: Vec<GraphPool> = client.resource_graph(QUERY_HOST_POOLS, &sub_ids, |_, _| {}).await?;
    let host_pools = pools
        .into_iter()
        .map(|p| HostPoolRecord {
            id: p.id,
            name: p.name,
            subscription_id: p.subscription_id,
            resource_group: p.resource_group,
            location: p.location.unwrap_or_default(),
            tags: tags_of(p.tags),
            pool_type: as_string(&p.pool_type).unwrap_or_default(),
        })
        .collect();

    progress(Progress { stage: "Querying session hosts".into(), fraction: 0.15 });
    let hosts: Vec<GraphHost> = client
        .resource_graph(QUERY_SESSION_HOSTS, &sub_ids, |got, total| {
            let f = if total == 0 { 1.0 } else { got as f32 / total as f32 };
            progress(Progress {
                stage: format!("Querying session hosts ({got} of {total})"),
                fraction: 0.15 + 0.65 * f,
            });
        })
        .await?;
    let session_hosts = hosts.into_iter().filter_map(host_from_graph).collect();

    progress(Progress { stage: "Reading image versions".into(), fraction: 0.85 });
    let versions: Vec<ArmResource> = client.resource_graph(QUERY_IMAGE_VERSIONS, &sub_ids, |_, _| {}).await?;
    let image_versions = with_replication(client, versions.into_iter().map(|v| v.id).collect()).await?;
    progress(Progress { stage: "Done".into(), fraction: 1.0 });
    Ok(RawInventory { subscriptions, host_pools, session_hosts, image_versions })
}

async fn list_in_subscription(
    client: &ArmClient,
    subscription: String,
    provider_path: &'static str,
    api: &'static str,
    what: &'static str,
) -> Result<Vec<ArmResource>, AzureError> {
    let path = format!("/subscriptions/{subscription}/providers/{provider_path}");
    client.list_all(&path, &[("api-version", api)], what, |_| {}).await
}

/// Per-resource ARM listing: pools, VMs and galleries per subscription, session hosts per pool.
pub async fn fetch_via_arm(client: &ArmClient, progress: ProgressFn<'_>) -> Result<RawInventory, AzureError> {
    fetch_via_arm_in(client, progress, &[]).await
}

/// [`fetch_via_arm`] over the subscriptions of `only` (all when empty); every subscription is still listed.
pub async fn fetch_via_arm_in(
    client: &ArmClient,
    progress: ProgressFn<'_>,
    only: &[String],
) -> Result<RawInventory, AzureError> {
    const CONCURRENCY: usize = 8;
    progress(Progress { stage: "Listing subscriptions".into(), fraction: 0.02 });
    let subscriptions = list_subscriptions(client).await?;

    let sub_ids = in_scope(&subscriptions, only);
    progress(Progress { stage: "Listing host pools".into(), fraction: 0.05 });
    let pool_lists: Vec<Vec<ArmResource>> = stream::iter(sub_ids.clone())
        .map(|id| {
            list_in_subscription(
                client,
                id,
                "Microsoft.DesktopVirtualization/hostPools",
                api_version::DESKTOP_VIRTUALIZATION,
                "host pool list",
            )
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    let host_pools: Vec<HostPoolRecord> = pool_lists.into_iter().flatten().map(pool_from_arm).collect();

    let total_pools = host_pools.len().max(1);
    let done = std::sync::atomic::AtomicUsize::new(0);
    let pool_ids: Vec<String> = host_pools.iter().map(|p| p.id.clone()).collect();
    let host_lists: Vec<Vec<ArmResource>> = stream::iter(pool_ids)
        .map(|pool_id| {
            let done = &done;
            async move {
                let r = client
                    .list_all(
                        &format!("{pool_id}/sessionHosts"),
                        &[("api-version", api_version::DESKTOP_VIRTUALIZATION)],
                        "session host list",
                        |_| {},
                    )
                    .await;
                let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                progress(Progress {
                    stage: format!("Listing session hosts ({n} of {total_pools} pools)"),
                    fraction: 0.1 + 0.5 * n as f32 / total_pools as f32,
                });
                r
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;

    progress(Progress { stage: "Listing virtual machines".into(), fraction: 0.65 });
    let vm_lists: Vec<Vec<ArmResource>> = stream::iter(sub_ids.clone())
        .map(|id| {
            list_in_subscription(
                client,
                id,
                "Microsoft.Compute/virtualMachines",
                api_version::COMPUTE,
                "virtual machine list",
            )
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    let images: HashMap<String, String> = vm_lists
        .into_iter()
        .flatten()
        .filter_map(|vm| {
            let img = vm.properties["storageProfile"]["imageReference"]["id"].as_str()?.to_string();
            Some((vm.id.to_ascii_lowercase(), img))
        })
        .collect();
    let session_hosts = host_lists
        .into_iter()
        .flatten()
        .filter_map(host_from_arm)
        .map(|mut h| {
            h.image_id = h.vm_id.as_ref().and_then(|v| images.get(&v.to_ascii_lowercase()).cloned());
            h
        })
        .collect();

    progress(Progress { stage: "Listing galleries".into(), fraction: 0.8 });
    let galleries: Vec<Vec<ArmResource>> = stream::iter(sub_ids.clone())
        .map(|id| list_in_subscription(client, id, "Microsoft.Compute/galleries", api_version::GALLERY, "gallery list"))
        .buffer_unordered(CONCURRENCY)
        .try_collect()
        .await?;
    let mut version_ids = Vec::new();
    for g in galleries.into_iter().flatten() {
        let defs: Vec<ArmResource> = client
            .list_all(
                &format!("{}/images", g.id),
                &[("api-version", api_version::GALLERY)],
                "image definitions",
                |_| {},
            )
            .await?;
        for d in defs {
            let versions: Vec<ArmResource> = client
                .list_all(
                    &format!("{}/versions", d.id),
                    &[("api-version", api_version::GALLERY)],
                    "image versions",
                    |_| {},
                )
                .await?;
            version_ids.extend(versions.into_iter().map(|v| v.id));
        }
    }
    let image_versions = with_replication(client, version_ids).await?;
    progress(Progress { stage: "Done".into(), fraction: 1.0 });
    Ok(RawInventory { subscriptions, host_pools, session_hosts, image_versions })
}

/// Resource Graph first; if it is unavailable (5xx after retries, 403 on the provider), per-resource listing.
pub async fn fetch(client: &ArmClient, progress: ProgressFn<'_>) -> Result<(RawInventory, bool), AzureError> {
    fetch_in(client, progress, &[]).await
}

/// [`fetch`] over the subscriptions of `only` (all when empty).
pub async fn fetch_in(
    client: &ArmClient,
    progress: ProgressFn<'_>,
    only: &[String],
) -> Result<(RawInventory, bool), AzureError> {
    match fetch_via_graph_in(client, progress, only).await {
        Ok(inv) => Ok((inv, true)),
        Err(e) if graph_unavailable(&e) => {
            tracing::warn!(target: "inventory", "Resource Graph unavailable ({e}); falling back to ARM listing");
            Ok((fetch_via_arm_in(client, progress, only).await?, false))
        }
        Err(e) => Err(e),
    }
}

fn graph_unavailable(e: &AzureError) -> bool {
    match e {
        AzureError::Arm(a) => a.status >= 500 || a.status == 403 && a.message.contains("ResourceGraph"),
        AzureError::Transport { .. } => true,
        _ => false,
    }
}

fn decode_resource(v: Value, what: &str) -> Result<ArmResource, AzureError> {
    // serde would also read a struct from an array (`["id", "name", ...]`): a resource is an object.
    if !v.is_object() {
        return Err(AzureError::Decode {
            what: what.into(),
            detail: "it is not a JSON object".into(),
            request_id: None,
        });
    }
    serde_json::from_value(v).map_err(|e| AzureError::Decode {
        what: what.into(),
        detail: e.to_string(),
        request_id: None,
    })
}

/// Parse one session host as ARM returns it (`SessionHosts_Get`, an item of `SessionHosts_List`).
pub fn session_host_from_json(v: Value) -> Result<SessionHostRecord, AzureError> {
    let r = decode_resource(v, "session host")?;
    let id = r.id.clone();
    host_from_arm(r).ok_or_else(|| AzureError::Decode {
        what: "session host".into(),
        detail: format!("'{id}' is not a session host id"),
        request_id: None,
    })
}

/// Parse one host pool as ARM returns it (`HostPools_Get`, an item of `HostPools_List`).
pub fn host_pool_from_json(v: Value) -> Result<HostPoolRecord, AzureError> {
    Ok(pool_from_arm(decode_resource(v, "host pool")?))
}

/// Parse one gallery image version (`GalleryImageVersions_Get`, with or without `$expand=ReplicationStatus`).
pub fn image_version_from_json(v: Value) -> Result<ImageVersionRecord, AzureError> {
    Ok(version_from(&decode_resource(v, "image version")?))
}

/// The image reference id of a VM (`VirtualMachines_Get`).
pub fn vm_image_id_from_json(v: &Value) -> Option<String> {
    v["properties"]["storageProfile"]["imageReference"]["id"].as_str().map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Caught by tests/fuzz.rs: serde reads a struct from an array too, so `["id", "name"]` parsed as a resource.
    #[test]
    fn an_array_is_not_a_resource() {
        let e = image_version_from_json(json!(["/subscriptions/s/x", "v"])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Azure sent a response this app cannot read (image version): it is not a JSON object"
        );
        assert!(host_pool_from_json(json!([""])).is_err());
        assert!(session_host_from_json(json!(["/hostPools/p/sessionHosts/h"])).is_err());
    }

    /// Caught by tests/fuzz.rs: a replica count past `u32::MAX` wrapped (2^32 replicas read as 0).
    #[test]
    fn replica_counts_saturate_instead_of_wrapping() {
        let v = image_version_from_json(json!({
            "id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/galleries/g/images/d/versions/1.0.0",
            "properties": {"publishingProfile": {"targetRegions": [
                {"name": "West Europe", "regionalReplicaCount": 4294967296u64},
                {"name": "North Europe", "regionalReplicaCount": 2}
            ]}}
        }))
        .unwrap();
        assert_eq!(v.regions[0].replicas, u32::MAX);
        assert_eq!(v.regions[1].replicas, 2);
    }
}
