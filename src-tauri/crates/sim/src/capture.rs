//! The ARM operations a non-destructive capture uses, beyond those of a host replacement: snapshots and disks copied
//! from the master's OS disk, generalize, gallery image versions captured from a VM (and their replication), and the
//! compute quota a temporary VM counts against.

use axum::http::StatusCode;
use rand::Rng;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use crate::arm::{not_found, Reply, Req};
use crate::lifecycle::{
    lower, minutes, AsyncOp, Effect, Final, OpState, DISK_TYPE, SNAPSHOT_TYPE, VERSION_TYPE, VM_TYPE,
};
use crate::rollout::{
    busy_reply, check_rg, error_with_target, marked_for_deletion, new_op, norm_location, state_of, tenant_or_reply,
    with_lro, COMPUTE,
};
use crate::tenant::{display_region, rfc3339, RegionPlan, Tenant};
use crate::Shared;

/// The operations this module serves; `None` for the rest.
pub fn route(shared: &Shared, req: &Req, op: &str) -> Option<Reply> {
    let reply = match op {
        "VirtualMachines_Generalize" => generalize(shared, req),
        "VirtualMachineRunCommands_CreateOrUpdate" => crate::runcommand::put(shared, req),
        "VirtualMachineRunCommands_GetByVirtualMachine" => crate::runcommand::get(shared, req),
        "VirtualMachineRunCommands_ListByVirtualMachine" => crate::runcommand::list(shared, req),
        "VirtualMachineRunCommands_Delete" => crate::runcommand::delete(shared, req),
        "Snapshots_CreateOrUpdate" => put_copy(shared, req, SNAPSHOT_TYPE),
        "Snapshots_Delete" => delete_snapshot(shared, req),
        "Disks_CreateOrUpdate" => put_copy(shared, req, DISK_TYPE),
        "GalleryImageVersions_CreateOrUpdate" => put_version(shared, req),
        "GalleryImageVersions_Delete" => delete_version(shared, req),
        "Usage_List" => usages(shared, req),
        _ => return None,
    };
    Some(reply)
}

fn random_guid() -> String {
    let b: [u8; 16] = rand::rng().random();
    uuid::Builder::from_random_bytes(b).into_uuid().to_string()
}

fn arm_not_found(kind: &str, id: &str) -> Reply {
    let name = id.rsplit('/').next().unwrap_or_default();
    let rg = id.trim_start_matches('/').split('/').nth(3).unwrap_or_default();
    Reply::error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!("The Resource '{kind}/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"),
    )
}

// ---------------------------------------------------------------------------------------------------------
// Snapshots and disks (createOption Copy)

/// The disk or snapshot a Copy names, in the same region (Copy does not cross regions; CopyStart does).
fn copy_source(t: &Tenant, source: &str, location: &str) -> Result<Value, Reply> {
    let id = if source.starts_with('/') { source.to_string() } else { format!("/{source}") };
    let l = lower(&id);
    let kind = if l.contains("/providers/microsoft.compute/snapshots/") {
        "Microsoft.Compute/snapshots"
    } else if l.contains("/providers/microsoft.compute/disks/") {
        "Microsoft.Compute/disks"
    } else {
        return Err(error_with_target(
            StatusCode::BAD_REQUEST,
            "LinkedInvalidPropertyId",
            format!("Property id '{source}' at path 'properties.creationData.sourceResourceId' is invalid. Expect fully qualified resource Id of a managed disk or snapshot that start with '/subscriptions/{{subscriptionId}}'."),
            "properties.creationData.sourceResourceId",
        ));
    };
    let Some(src) = t.get(&id).filter(|v| state_of(v) != "Deleting") else {
        return Err(arm_not_found(kind, &id));
    };
    let src_location = src["location"].as_str().map(norm_location).unwrap_or_default();
    if src_location != location {
        return Err(error_with_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("The source '{id}' is in region '{src_location}': createOption Copy needs it in the same region as the new resource ('{location}'). Use CopyStart to copy across regions."),
            "properties.creationData.sourceResourceId",
        ));
    }
    Ok(src.clone())
}

/// A snapshot or disk copied from `src`: OS type, generation, size and security profile come along.
fn copy_json(id: &str, rtype: &str, location: &str, body: &Value, src: &Value, now: OffsetDateTime) -> Value {
    let name = id.rsplit('/').next().unwrap_or_default();
    let snapshot = rtype == SNAPSHOT_TYPE;
    let sp = &src["properties"];
    let p = &body["properties"];
    let sku = body["sku"]["name"].as_str().unwrap_or("Standard_LRS");
    let size = sp["diskSizeGB"].as_u64().unwrap_or(128).max(p["diskSizeGB"].as_u64().unwrap_or(0));
    let mut props = json!({
        "creationData": {
            "createOption": "Copy",
            "sourceResourceId": p["creationData"]["sourceResourceId"],
            "sourceUniqueId": sp["uniqueId"]
        },
        "diskSizeGB": size,
        "diskSizeBytes": size * 1_073_741_824,
        "uniqueId": random_guid(),
        "timeCreated": rfc3339(now),
        "provisioningState": "Updating",
        "diskState": "Unattached",
        "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
        "networkAccessPolicy": "AllowAll",
        "publicNetworkAccess": "Enabled"
    });
    for key in ["osType", "hyperVGeneration", "securityProfile", "supportedCapabilities", "purchasePlan"] {
        if let Some(v) = p.get(key).or_else(|| sp.get(key)).filter(|v| !v.is_null()) {
            props[key] = v.clone();
        }
    }
    if snapshot {
        let incremental = p["incremental"].as_bool().unwrap_or(false);
        props["incremental"] = json!(incremental);
        if incremental {
            props["incrementalSnapshotFamilyId"] = json!(random_guid());
        }
    } else {
        props["diskIOPSReadWrite"] = json!(500);
        props["diskMBpsReadWrite"] = json!(100);
    }
    json!({
        "id": id,
        "name": name,
        "type": rtype,
        "location": location,
        "tags": if body["tags"].is_object() { body["tags"].clone() } else { json!({}) },
        "sku": {"name": sku, "tier": if sku.starts_with("Premium") { "Premium" } else { "Standard" }},
        "properties": props
    })
}

/// `Snapshots_CreateOrUpdate` and `Disks_CreateOrUpdate`. A new one is a Copy of a disk or snapshot in the same
/// region: 202 with `provisioningState: Updating`, then `Succeeded` after 1-3 sim-minutes (snapshot) or 1-2 (disk).
/// An existing one takes new tags (and a larger size for a disk).
fn put_copy(shared: &Shared, req: &Req, rtype: &'static str) -> Reply {
    let now = shared.clock.now();
    let id = req.id();
    let body = req.body.clone().unwrap_or(json!({}));
    let Some(location) = body["location"].as_str().map(norm_location) else {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "LocationRequired",
            "The location property is required for this definition.",
        );
    };
    let mut t = tenant_or_reply!(shared);
    if let Err(r) = check_rg(&t, req) {
        return r;
    }
    if let Some(existing) = t.get(&id).cloned() {
        return update_copy(shared, &mut t, req, existing, &body, now);
    }
    let creation = &body["properties"]["creationData"];
    let option = creation["createOption"].as_str().unwrap_or_default();
    if !option.eq_ignore_ascii_case("Copy") {
        return error_with_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!(
                "createOption '{option}' is not simulated: the simulator creates disks and snapshots by Copy only."
            ),
            "properties.creationData.createOption",
        );
    }
    let Some(source) = creation["sourceResourceId"].as_str() else {
        return error_with_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            "Required parameter 'creationData.sourceResourceId' is missing (null).".into(),
            "properties.creationData.sourceResourceId",
        );
    };
    let src = match copy_source(&t, source, &location) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let asked = body["properties"]["diskSizeGB"].as_u64();
    let src_size = src["properties"]["diskSizeGB"].as_u64().unwrap_or(128);
    if asked.is_some_and(|a| a < src_size) {
        return error_with_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!(
                "The disk size {}GB is smaller than the size of the source ({src_size}GB): disks can only grow.",
                asked.unwrap_or_default()
            ),
            "properties.diskSizeGB",
        );
    }
    let resource = copy_json(&id, rtype, &location, &body, &src, now);
    t.insert(resource.clone());
    let duration = if rtype == SNAPSHOT_TYPE { minutes(1.0, 3.0) } else { minutes(1.0, 2.0) };
    let op =
        new_op(&mut t, req, COMPUTE, &location, &id, "create", Effect::Provisioned, duration, Final::Resource, now);
    with_lro(shared, Reply::with_status(StatusCode::ACCEPTED, resource), &op, now)
}

fn update_copy(
    shared: &Shared,
    t: &mut Tenant,
    req: &Req,
    existing: Value,
    body: &Value,
    now: OffsetDateTime,
) -> Reply {
    let id = req.id();
    let name = existing["name"].as_str().unwrap_or_default().to_string();
    if state_of(&existing) == "Deleting" {
        return Reply::error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            format!("'{name}' is being deleted. Retry after the delete completes."),
        );
    }
    if let Some(op) = t.sim.in_flight(&id).cloned() {
        return with_lro(shared, Reply::ok(existing), &op, now);
    }
    let vm = existing["managedBy"].as_str().filter(|s| !s.is_empty()).map(str::to_string);
    let size = existing["properties"]["diskSizeGB"].as_u64().unwrap_or(0);
    let asked = body["properties"]["diskSizeGB"].as_u64().filter(|s| *s != size);
    let sku = body["sku"]["name"].as_str().filter(|s| Some(*s) != existing["sku"]["name"].as_str());
    // Size and SKU change only while no running VM uses the disk, and a disk never shrinks.
    let in_use = vm.as_ref().is_some_and(|v| t.sim.vms.get(&lower(v)).is_none_or(|s| s.power != "deallocated"));
    if asked.is_some_and(|a| a < size) || ((asked.is_some() || sku.is_some()) && in_use) {
        return error_with_target(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            format!("Disk '{name}' can only grow, and its size and SKU change only while it is unattached or its VM is deallocated."),
            "properties.diskSizeGB",
        );
    }
    let os_disk_of = |t: &Tenant, vm: &str| {
        t.get(vm).is_some_and(|v| {
            v["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"]
                .as_str()
                .is_some_and(|d| d.eq_ignore_ascii_case(&id))
        })
    };
    if let Some(vm) = vm.as_ref().filter(|v| (asked.is_some() || sku.is_some()) && os_disk_of(t, v)) {
        t.note_master(vm, &format!("OS disk '{id}' changed (Disks_CreateOrUpdate)"), now);
    }
    let Some(r) = t.get_mut(&id) else { return not_found(req) };
    if body["tags"].is_object() {
        r["tags"] = body["tags"].clone();
    }
    if let Some(a) = asked {
        r["properties"]["diskSizeGB"] = json!(a);
        r["properties"]["diskSizeBytes"] = json!(a * 1_073_741_824);
    }
    if let Some(sku) = sku {
        r["sku"] = json!({"name": sku, "tier": if sku.starts_with("Premium") { "Premium" } else { "Standard" }});
    }
    r["properties"]["provisioningState"] = json!("Updating");
    let out = r.clone();
    let location = out["location"].as_str().unwrap_or("westeurope").to_string();
    let op = new_op(
        t,
        req,
        COMPUTE,
        &location,
        &id,
        "update",
        Effect::Provisioned,
        Duration::seconds(3),
        Final::Resource,
        now,
    );
    with_lro(shared, Reply::ok(out), &op, now)
}

fn delete_snapshot(shared: &Shared, req: &Req) -> Reply {
    let now = shared.clock.now();
    let id = req.id();
    let mut t = tenant_or_reply!(shared);
    let Some(snap) = t.get(&id).cloned() else { return Reply::empty(StatusCode::NO_CONTENT) };
    if let Some(op) = t.sim.in_flight(&id).filter(|o| o.action == "delete").cloned() {
        return with_lro(shared, Reply::empty(StatusCode::ACCEPTED), &op, now);
    }
    if let Some(s) = t.get_mut(&id) {
        s["properties"]["provisioningState"] = json!("Deleting");
    }
    let location = snap["location"].as_str().unwrap_or("westeurope").to_string();
    let duration = Duration::seconds_f64(rand::rng().random_range(10.0..30.0));
    let op =
        new_op(&mut t, req, COMPUTE, &location, &id, "delete", Effect::DeleteSnapshot, duration, Final::NoContent, now);
    with_lro(shared, Reply::empty(StatusCode::ACCEPTED), &op, now)
}

// ---------------------------------------------------------------------------------------------------------
// Generalize

/// `VirtualMachines_Generalize` (synchronous 200): the VM must be stopped or deallocated, and sysprepped. Azure cannot
/// see inside the guest and would generalize an un-sysprepped VM, leaving an image that fails to provision; the sim
/// refuses it (409 OperationNotAllowed) so a capture that skipped Sysprep fails at this step instead.
fn generalize(shared: &Shared, req: &Req) -> Reply {
    let now = shared.clock.now();
    let id = format!("/{}", req.segs[..req.segs.len() - 1].join("/"));
    let mut t = tenant_or_reply!(shared);
    let Some(vm) = t.get(&id).cloned() else { return arm_not_found("Microsoft.Compute/virtualMachines", &id) };
    let name = vm["name"].as_str().unwrap_or_default().to_string();
    if state_of(&vm) == "Deleting" {
        return marked_for_deletion(&name, "generalize");
    }
    if let Some(op) = t.sim.busy(&id).cloned() {
        return busy_reply(&name, "generalize", &op);
    }
    let state = t.sim.vms.get(&lower(&id));
    let power = state.map_or("running", |s| s.power);
    if !matches!(power, "stopped" | "deallocated") {
        return Reply::error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            format!("Operation 'generalize' is not allowed on VM '{name}' since the VM is {power}. Run Sysprep in the guest, then stop or deallocate the VM before generalizing it."),
        );
    }
    if !state.is_some_and(|s| s.sysprepped) {
        return Reply::error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            format!("Operation 'generalize' is not allowed on VM '{name}' since its guest OS has not been sysprepped. Run Sysprep.exe /generalize in the VM before generalizing it."),
        );
    }
    if let Some(s) = t.sim.vms.get_mut(&lower(&id)) {
        s.generalized = true;
    }
    t.note_master(&id, "generalized (VirtualMachines_Generalize)", now);
    t.touch_vm(&id, now);
    Reply::empty(StatusCode::OK)
}

// ---------------------------------------------------------------------------------------------------------
// Gallery image versions captured from a VM

/// Whether a gallery image version name is `<int>.<int>.<int>`, each part a 32-bit integer.
fn valid_version_name(name: &str) -> bool {
    let parts: Vec<&str> = name.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<i32>().is_ok())
}

/// Sim-seconds a region takes to receive its replicas once the version is provisioned: 5 minutes plus 0.15 minute
/// per GB, divided by the square root of the replica count (replicas copy in parallel and each one can seed the
/// next): 128 GB takes ~24 minutes with 1 replica, ~19 with 2, ~16 with 3.
pub fn replication_seconds(size_gb: u64, replicas: u32) -> i64 {
    let minutes = 5.0 + 0.15 * size_gb as f64 / f64::from(replicas.max(1)).sqrt();
    (minutes * 60.0) as i64
}

/// The publishing profile as Azure stores it: the request's values, defaults filled in, region names as display names.
fn publishing_profile(p: &Value, home: &str, now: OffsetDateTime) -> Result<Value, Reply> {
    let mut out = if p.is_object() { p.clone() } else { json!({}) };
    let replicas = out["replicaCount"].as_u64().unwrap_or(1);
    let storage = out["storageAccountType"].as_str().unwrap_or("Standard_LRS").to_string();
    out["replicaCount"] = json!(replicas);
    out["storageAccountType"] = json!(storage);
    if out.get("excludeFromLatest").is_none() {
        out["excludeFromLatest"] = json!(false);
    }
    if out.get("replicationMode").is_none() {
        out["replicationMode"] = json!("Full");
    }
    let mut regions = out["targetRegions"].as_array().cloned().unwrap_or_default();
    if regions.is_empty() {
        regions.push(json!({"name": home}));
    }
    for r in regions.iter_mut() {
        r["name"] = json!(display_region(&norm_location(r["name"].as_str().unwrap_or_default())));
        if r.get("regionalReplicaCount").is_none() {
            r["regionalReplicaCount"] = json!(replicas);
        }
        if r.get("storageAccountType").is_none() {
            r["storageAccountType"] = json!(storage);
        }
        if r.get("excludeFromLatest").is_none() {
            r["excludeFromLatest"] = json!(false);
        }
    }
    if !regions.iter().any(|r| norm_location(r["name"].as_str().unwrap_or_default()) == home) {
        return Err(error_with_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("The target regions of a gallery image version must include the region of the gallery image version ('{}').", display_region(home)),
            "publishingProfile.targetRegions",
        ));
    }
    out["targetRegions"] = json!(regions);
    out["publishedDate"] = json!(rfc3339(now));
    Ok(out)
}

/// Replication plans: the home region completes with provisioning, the others `replication_seconds` after it.
fn plan_regions(profile: &Value, home: &str, size_gb: u64, start_s: i64, provisioned_s: i64) -> Vec<RegionPlan> {
    profile["targetRegions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let region = norm_location(r["name"].as_str().unwrap_or_default());
            let replicas = r["regionalReplicaCount"].as_u64().unwrap_or(1) as u32;
            let (starts, completes) = if region == home {
                (start_s, provisioned_s)
            } else {
                (provisioned_s, provisioned_s + replication_seconds(size_gb, replicas))
            };
            RegionPlan {
                region,
                replicas,
                starts_at_s: starts,
                completes_at_s: completes,
                fails: false,
                detail: String::new(),
            }
        })
        .collect()
}

fn put_version(shared: &Shared, req: &Req) -> Reply {
    let now = shared.clock.now();
    let id = req.id();
    let name = req.segs.last().cloned().unwrap_or_default();
    let def_id = format!("/{}", req.segs[..req.segs.len() - 2].join("/"));
    let body = req.body.clone().unwrap_or(json!({}));
    if !valid_version_name(&name) {
        return error_with_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("The gallery image version name '{name}' is invalid. It must follow the format <MajorVersion>.<MinorVersion>.<Patch>, each part an integer within the range of a 32-bit integer."),
            "galleryImageVersionName",
        );
    }
    let mut t = tenant_or_reply!(shared);
    if let Err(r) = check_rg(&t, req) {
        return r;
    }
    let Some(def) = t.get(&def_id).cloned() else {
        let n = req.segs.len();
        return Reply::error(
            StatusCode::NOT_FOUND,
            "ParentResourceNotFound",
            format!(
                "Can not perform requested operation on nested resource. Parent resource '{}/{}' not found.",
                req.segs[n - 5],
                req.segs[n - 3]
            ),
        );
    };
    let home = norm_location(def["location"].as_str().unwrap_or("westeurope"));
    let location = body["location"].as_str().map(norm_location).unwrap_or_default();
    if location != home {
        return error_with_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("The location '{location}' of the gallery image version must be the location of its gallery image ('{home}')."),
            "location",
        );
    }
    if let Some(existing) = t.get(&id).cloned() {
        return update_version(shared, &mut t, req, existing, &body, &home, now);
    }
    let source = &body["properties"]["storageProfile"]["source"];
    let Some(vm_id) = source["virtualMachineId"].as_str() else {
        return error_with_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            "The simulator captures gallery image versions from a VM only: set properties.storageProfile.source.virtualMachineId.".into(),
            "properties.storageProfile.source.virtualMachineId",
        );
    };
    let target = "properties.storageProfile.source.virtualMachineId";
    let Some(vm) = t.get(vm_id).filter(|v| state_of(v) != "Deleting").cloned() else {
        return error_with_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("The source virtual machine '{vm_id}' of gallery image version '{name}' was not found."),
            target,
        );
    };
    let generalized = t.sim.vms.get(&lower(vm_id)).is_some_and(|s| s.generalized);
    let os_state = def["properties"]["osState"].as_str().unwrap_or("Generalized");
    if os_state.eq_ignore_ascii_case("Generalized") && !generalized {
        return error_with_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("Cannot create Gallery Image Version from '{}' since the OS state of the virtual machine is not generalized, while the parent gallery image's OS state is Generalized. Sysprep the VM, then call generalize on it.", vm["id"].as_str().unwrap_or(vm_id)),
            target,
        );
    }
    let disk_id = vm["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"].as_str().unwrap_or_default();
    let disk = t.get(disk_id).cloned().unwrap_or(Value::Null);
    let gen = disk["properties"]["hyperVGeneration"].as_str().unwrap_or("V2");
    let def_gen = def["properties"]["hyperVGeneration"].as_str().unwrap_or("V1");
    if !gen.eq_ignore_ascii_case(def_gen) {
        return error_with_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("The resource with id '{vm_id}' has a different Hypervisor generation ['{gen}'] than the parent gallery image Hypervisor generation ['{def_gen}']."),
            target,
        );
    }
    let size = disk["properties"]["diskSizeGB"]
        .as_u64()
        .or_else(|| vm["properties"]["storageProfile"]["osDisk"]["diskSizeGB"].as_u64())
        .unwrap_or(128);
    let profile = match publishing_profile(&body["properties"]["publishingProfile"], &home, now) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut safety = json!({"allowDeletionOfReplicatedLocations": false, "reportedForPolicyViolation": false});
    if let Some(s) = body["properties"]["safetyProfile"].as_object() {
        for (k, v) in s {
            safety[k] = v.clone();
        }
    }
    let version = json!({
        "id": id,
        "name": name,
        "type": VERSION_TYPE,
        "location": home,
        "tags": if body["tags"].is_object() { body["tags"].clone() } else { json!({}) },
        "properties": {
            "publishingProfile": profile,
            "storageProfile": {
                "source": source,
                "osDiskImage": {"sizeInGB": size, "hostCaching": "ReadWrite"},
                "dataDiskImages": []
            },
            "safetyProfile": safety,
            "provisioningState": "Creating"
        }
    });
    // The copy in the home region takes 8-15 sim-minutes; replication to the other regions follows.
    let duration = minutes(8.0, 15.0);
    let start_s = (now - shared.clock.start()).whole_seconds();
    let plans = plan_regions(&profile, &home, size, start_s, start_s + duration.whole_seconds());
    t.insert(version.clone());
    t.replication.insert(lower(&id), plans);
    t.sim.version_requests.insert(lower(&id), body.clone());
    let effect = Effect::CreateVersion {
        vm_id: vm["id"].as_str().unwrap_or(vm_id).to_string(),
        vm_guid: vm["properties"]["vmId"].as_str().unwrap_or_default().to_string(),
    };
    let op = new_op(&mut t, req, COMPUTE, &home, &id, "create", effect, duration, Final::Resource, now);
    with_lro(shared, Reply::with_status(StatusCode::CREATED, version), &op, now)
}

/// A PUT of an existing version: the same body is idempotent; otherwise only the updatable publishing settings may
/// change (target regions, replica counts, excludeFromLatest, endOfLifeDate), not the source.
fn update_version(
    shared: &Shared,
    t: &mut Tenant,
    req: &Req,
    existing: Value,
    body: &Value,
    home: &str,
    now: OffsetDateTime,
) -> Reply {
    let id = req.id();
    let in_flight = t.sim.in_flight(&id).cloned();
    if state_of(&existing) == "Deleting" {
        return Reply::error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            format!("Gallery image version '{}' is being deleted.", existing["name"].as_str().unwrap_or_default()),
        );
    }
    if t.sim.version_requests.get(&lower(&id)) == Some(body) {
        let reply = Reply::ok(existing);
        return match in_flight {
            Some(op) => with_lro(shared, reply, &op, now),
            None => reply,
        };
    }
    if body["properties"]["storageProfile"]["source"] != existing["properties"]["storageProfile"]["source"] {
        return error_with_target(
            StatusCode::CONFLICT,
            "PropertyChangeNotAllowed",
            "Changing property 'galleryImageVersion.properties.storageProfile.source' is not allowed.".into(),
            "galleryImageVersion.properties.storageProfile.source",
        );
    }
    if let Some(op) = in_flight {
        return busy_version(&existing, &op);
    }
    let mut profile = match publishing_profile(&body["properties"]["publishingProfile"], home, now) {
        Ok(p) => p,
        Err(r) => return r,
    };
    profile["publishedDate"] = existing["properties"]["publishingProfile"]["publishedDate"].clone();
    // Regions added by the update start replicating now.
    let now_s = (now - shared.clock.start()).whole_seconds();
    let size = existing["properties"]["storageProfile"]["osDiskImage"]["sizeInGB"].as_u64().unwrap_or(128);
    let fresh = plan_regions(&profile, home, size, now_s, now_s);
    let plans = t.replication.entry(lower(&id)).or_default();
    plans.retain(|p| fresh.iter().any(|f| f.region == p.region));
    for f in fresh {
        if !plans.iter().any(|p| p.region == f.region) {
            plans.push(f);
        }
    }
    t.sim.version_requests.insert(lower(&id), body.clone());
    let Some(v) = t.get_mut(&id) else { return not_found(req) };
    v["properties"]["provisioningState"] = json!("Updating");
    if body["tags"].is_object() {
        v["tags"] = body["tags"].clone();
    }
    let current = v.clone();
    let patch = json!({"properties": {"publishingProfile": profile}});
    let op =
        new_op(t, req, COMPUTE, home, &id, "update", Effect::Merge(patch), Duration::seconds(2), Final::Resource, now);
    with_lro(shared, Reply::ok(current), &op, now)
}

fn busy_version(v: &Value, op: &AsyncOp) -> Reply {
    Reply::error(
        StatusCode::CONFLICT,
        "OperationNotAllowed",
        format!(
            "Gallery image version '{}' cannot be updated while its '{}' operation ({}) is in progress.",
            v["name"].as_str().unwrap_or_default(),
            op.action,
            op.id
        ),
    )
}

fn delete_version(shared: &Shared, req: &Req) -> Reply {
    let now = shared.clock.now();
    let id = req.id();
    let mut t = tenant_or_reply!(shared);
    let Some(v) = t.get(&id).cloned() else { return Reply::empty(StatusCode::NO_CONTENT) };
    if let Some(op) = t.sim.in_flight(&id).filter(|o| o.action == "delete").cloned() {
        return with_lro(shared, Reply::empty(StatusCode::ACCEPTED), &op, now);
    }
    // Deleting a version still being created ends its create.
    for op in
        t.sim.ops.values_mut().filter(|o| o.state == OpState::InProgress && o.resource_id.eq_ignore_ascii_case(&id))
    {
        op.state = OpState::Canceled {
            error: json!({"code": "OperationPreempted", "message": "Operation execution has been preempted by a more recent operation."}),
        };
        op.ended = Some(now);
    }
    if let Some(v) = t.get_mut(&id) {
        v["properties"]["provisioningState"] = json!("Deleting");
    }
    let location = v["location"].as_str().unwrap_or("westeurope").to_string();
    let op = new_op(
        &mut t,
        req,
        COMPUTE,
        &location,
        &id,
        "delete",
        Effect::DeleteVersion,
        minutes(1.0, 3.0),
        Final::NoContent,
        now,
    );
    with_lro(shared, Reply::empty(StatusCode::ACCEPTED), &op, now)
}

impl Tenant {
    /// The home-region copy of a captured version is done: it succeeds if its source VM (the same VM, by `vmId`) is
    /// still there; a VM deleted meanwhile leaves the version `Failed` in every region.
    pub fn finish_version(&mut self, op: &AsyncOp, vm_id: &str, vm_guid: &str) -> OpState {
        let vm_ok = self.get(vm_id).is_some_and(|v| {
            v["properties"]["vmId"].as_str().unwrap_or_default() == vm_guid && state_of(v) != "Deleting"
        });
        let key = lower(&op.resource_id);
        let Some(v) = self.resources.get_mut(&key) else { return OpState::Succeeded };
        if vm_ok {
            v["properties"]["provisioningState"] = json!("Succeeded");
            return OpState::Succeeded;
        }
        v["properties"]["provisioningState"] = json!("Failed");
        let name = v["name"].as_str().unwrap_or_default().to_string();
        let message = format!("The source virtual machine '{vm_id}' of gallery image version '{name}' was deleted before the image version was created.");
        if let Some(plans) = self.replication.get_mut(&key) {
            for p in plans.iter_mut() {
                p.fails = true;
                p.detail = message.clone();
            }
        }
        OpState::Failed { http: 409, error: json!({"code": "ResourceNotFound", "message": message}) }
    }
}

// ---------------------------------------------------------------------------------------------------------
// Compute usage (quota)

/// vCPUs, quota family and its display name of a VM size (`Standard_D4s_v5` → 4, `standardDSv5Family`).
pub fn size_family(size: &str) -> Option<(u64, String, String)> {
    let rest = size.get(..9).filter(|p| p.eq_ignore_ascii_case("Standard_")).map(|_| &size[9..])?;
    let (body, version) = match rest.split_once("_v") {
        Some((b, v)) => (b, format!("v{v}")),
        None => (rest, String::new()),
    };
    let series: String = body.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    let digits: String = body[series.len()..].chars().take_while(|c| c.is_ascii_digit()).collect();
    let suffix = &body[series.len() + digits.len()..];
    let vcpus = digits.parse().ok()?;
    let tag = format!("{}{}{version}", series.to_ascii_uppercase(), suffix.to_ascii_uppercase());
    Some((vcpus, format!("standard{tag}Family"), format!("Standard {tag} Family vCPUs")))
}

/// Default limits: 350 regional vCPUs, 200 per family, 25,000 VMs.
fn default_limit(name: &str) -> u64 {
    match name {
        "cores" => 350,
        "virtualMachines" => 25_000,
        _ => 200,
    }
}

impl Tenant {
    /// (usage name, localized name, current value) in a subscription and region. Deallocated VMs hold no vCPUs.
    fn usage(&self, sub: &str, location: &str) -> Vec<(String, String, u64)> {
        let mut vms = 0;
        let mut cores = 0;
        let mut families: std::collections::BTreeMap<String, (String, u64)> = std::collections::BTreeMap::new();
        families.insert("standardDSv5Family".into(), ("Standard DSv5 Family vCPUs".into(), 0));
        for vm in self.list(&format!("/subscriptions/{sub}/"), VM_TYPE) {
            if vm["location"].as_str().map(norm_location).as_deref() != Some(location) {
                continue;
            }
            vms += 1;
            let id = vm["id"].as_str().unwrap_or_default();
            if self.sim.vms.get(&lower(id)).is_some_and(|s| s.power == "deallocated") {
                continue;
            }
            let size = vm["properties"]["hardwareProfile"]["vmSize"].as_str().unwrap_or_default();
            if let Some((vcpus, family, display)) = size_family(size) {
                cores += vcpus;
                families.entry(family).or_insert((display, 0)).1 += vcpus;
            }
        }
        let mut out = vec![
            ("cores".to_string(), "Total Regional vCPUs".to_string(), cores),
            ("virtualMachines".to_string(), "Virtual Machines".to_string(), vms),
        ];
        out.extend(families.into_iter().map(|(f, (d, n))| (f, d, n)));
        out
    }

    /// At seed time: a subscription whose seeded VMs already use more than a default limit got its quota raised
    /// (to 125% of that use, rounded up to 100), as any real one running them would have.
    pub fn init_quota(&mut self) {
        let mut places: Vec<(String, String)> = self
            .resources
            .values()
            .filter(|v| v["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(VM_TYPE)))
            .filter_map(|v| {
                let sub = v["id"].as_str()?.split('/').nth(2)?.to_string();
                Some((sub, norm_location(v["location"].as_str()?)))
            })
            .collect();
        places.sort();
        places.dedup();
        for (sub, location) in places {
            for (name, _, used) in self.usage(&sub, &location) {
                let limit = default_limit(&name);
                if used * 5 / 4 > limit {
                    let raised = (used * 5 / 4).div_ceil(100) * 100;
                    self.sim.quota.insert(format!("{}|{location}|{name}", lower(&sub)), raised);
                }
            }
        }
    }
}

/// `Usage_List`: the subscription's compute usage and limits in a region.
fn usages(shared: &Shared, req: &Req) -> Reply {
    let sub = req.segs[1].clone();
    let location = norm_location(&req.segs[5]);
    let Ok(t) = shared.tenant.read() else {
        return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "tenant lock poisoned");
    };
    let value: Vec<Value> = t
        .usage(&sub, &location)
        .into_iter()
        .map(|(name, display, current)| {
            let limit = t
                .sim
                .quota
                .get(&format!("{}|{location}|{name}", lower(&sub)))
                .copied()
                .unwrap_or_else(|| default_limit(&name));
            json!({"unit": "Count", "currentValue": current, "limit": limit, "name": {"value": name, "localizedValue": display}})
        })
        .collect();
    Reply::ok(json!({"value": value}))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_names_and_size_families() {
        for ok in ["1.0.0", "2026.1127.1", "2147483647.0.1"] {
            assert!(valid_version_name(ok), "{ok}");
        }
        for bad in ["1.0", "1.0.0.0", "v1.0.0", "1.-1.0", "2147483648.0.0", "1..0"] {
            assert!(!valid_version_name(bad), "{bad}");
        }
        assert_eq!(
            size_family("Standard_D4s_v5"),
            Some((4, "standardDSv5Family".into(), "Standard DSv5 Family vCPUs".into()))
        );
        assert_eq!(size_family("Standard_D8ads_v5").map(|f| f.1), Some("standardDADSv5Family".into()));
        assert_eq!(size_family("Standard_E16s_v5").map(|f| f.0), Some(16));
        assert_eq!(size_family("Basic_A1"), None);
        assert!(replication_seconds(128, 1) > replication_seconds(128, 3));
        assert!(replication_seconds(512, 1) > replication_seconds(128, 1));
    }
}
