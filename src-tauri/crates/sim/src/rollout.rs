//! The ARM operations a session host replacement uses, served the way Azure serves them: network interfaces,
//! VMs (create, delete, deallocate, start, instance view), VM extensions (the AVD agent's DSC install), managed
//! disk delete, host pool registration tokens, session hosts (drain, remove) and user sessions (message, log
//! off), plus the polling of their long-running operations.

use std::sync::RwLockWriteGuard;

use axum::http::StatusCode;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::Rng;
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::arm::{merge, not_found, Reply, Req};
use crate::lifecycle::{
    lower, minutes, rg_of, AsyncOp, DscRun, Effect, Final, Message, OpState, VmState, DISK_TYPE, EXTENSION_TYPE,
    NIC_TYPE, VM_TYPE,
};
use crate::tenant::{display_region, rfc3339, Tenant};
use crate::{Faults, Shared};

pub(crate) const COMPUTE: &str = "Microsoft.Compute";
const NETWORK: &str = "Microsoft.Network";

/// Apply everything due on the sim clock (operations completing, agents registering, users logging off).
pub fn advance(shared: &Shared) {
    let now = shared.clock.now();
    let due = shared.tenant.read().map(|t| t.has_due(now)).unwrap_or(false);
    if !due {
        return;
    }
    let never = shared.faults.lock().map(|f| f.agent_never_registers.clone()).unwrap_or_default();
    if let Ok(mut t) = shared.tenant.write() {
        t.advance(now, &never);
    }
}

/// The operations this module serves; `None` for the rest.
pub fn route(shared: &Shared, req: &Req, op: &str) -> Option<Reply> {
    let reply = match op {
        "NetworkInterfaces_CreateOrUpdate" => put_nic(shared, req),
        "NetworkInterfaces_Delete" => delete_nic(shared, req),
        "VirtualMachines_CreateOrUpdate" => put_vm(shared, req),
        "VirtualMachines_Delete" => delete_vm(shared, req),
        "VirtualMachines_Deallocate" => power(shared, req, Power::Deallocate),
        "VirtualMachines_Start" => power(shared, req, Power::Start),
        "VirtualMachines_PowerOff" => power(shared, req, Power::Off),
        "VirtualMachines_InstanceView" => instance_view(shared, req),
        "VirtualMachineExtensions_CreateOrUpdate" => put_extension(shared, req),
        "Disks_Delete" => delete_disk(shared, req),
        "GalleryImageVersions_Update" => update_version(shared, req),
        "Tags_GetAtScope" | "Tags_CreateOrUpdateAtScope" | "Tags_UpdateAtScope" | "Tags_DeleteAtScope" => {
            tags_at_scope(shared, req, op)
        }
        "HostPools_Update" => patch_pool(shared, req),
        "HostPools_RetrieveRegistrationToken" => retrieve_token(shared, req),
        "HostPools_ListRegistrationTokens" => list_tokens(shared, req),
        "SessionHosts_Update" => patch_host(shared, req),
        "SessionHosts_Delete" => delete_host(shared, req),
        "UserSessions_SendMessage" => send_message(shared, req),
        "UserSessions_Delete" => log_off(shared, req),
        "UserSessions_Disconnect" => disconnect(shared, req),
        "Compute_AsyncOperation" | "Network_AsyncOperation" => poll(shared, req, false),
        "Compute_OperationResult" | "Network_OperationResult" => poll(shared, req, true),
        _ => return crate::capture::route(shared, req, op),
    };
    Some(reply)
}

// ---------------------------------------------------------------------------------------------------------
// Long-running operation plumbing

pub(crate) fn write(shared: &Shared) -> Result<RwLockWriteGuard<'_, Tenant>, Reply> {
    shared
        .tenant
        .write()
        .map_err(|_| Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "tenant lock poisoned"))
}

macro_rules! tenant_or_reply {
    ($shared:expr) => {
        match crate::rollout::write($shared) {
            Ok(t) => t,
            Err(r) => return r,
        }
    };
}
pub(crate) use tenant_or_reply;

fn op_urls(shared: &Shared, op: &AsyncOp) -> (String, String) {
    let long = shared.faults.lock().map(|f| f.long_poll_urls).unwrap_or(false);
    let pad = if long { format!("&p={}", "x".repeat(4200)) } else { String::new() };
    let base = format!(
        "{}/subscriptions/{}/providers/{}/locations/{}",
        shared.arm_base, op.subscription, op.namespace, op.location
    );
    (
        format!("{base}/operations/{}?api-version={}{pad}", op.id, op.api_version),
        format!("{base}/operationResults/{}?api-version={}{pad}", op.id, op.api_version),
    )
}

/// Real seconds until the operation completes, rounded down, capped at the configured `Retry-After`.
fn retry_after(shared: &Shared, op: &AsyncOp, now: OffsetDateTime) -> String {
    let left = (op.completes_at - now).as_seconds_f64().max(0.0) / shared.config.time_scale;
    (left.floor() as u64).min(shared.config.lro_retry_after_s).to_string()
}

/// Add the polling headers: `Location` always, `Azure-AsyncOperation` unless the `lroStyle: location` fault is set.
pub(crate) fn with_lro(shared: &Shared, reply: Reply, op: &AsyncOp, now: OffsetDateTime) -> Reply {
    let (async_url, location_url) = op_urls(shared, op);
    let style = shared.faults.lock().ok().and_then(|f| f.lro_style.clone()).unwrap_or_else(|| "both".into());
    let mut r = reply.header("Location", location_url).header("Retry-After", retry_after(shared, op, now));
    if style != "location" {
        r = r.header("Azure-AsyncOperation", async_url);
    }
    r
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn new_op(
    t: &mut Tenant,
    req: &Req,
    namespace: &'static str,
    location: &str,
    resource_id: &str,
    action: &'static str,
    effect: Effect,
    duration: Duration,
    result: Final,
    now: OffsetDateTime,
) -> AsyncOp {
    let op = AsyncOp {
        id: uuid::Uuid::new_v4().to_string(),
        namespace,
        subscription: req.segs.get(1).cloned().unwrap_or_default(),
        location: norm_location(location),
        resource_id: resource_id.to_string(),
        action,
        effect,
        started: now,
        completes_at: now + duration,
        ended: None,
        api_version: req.query.get("api-version").cloned().unwrap_or_default(),
        state: OpState::InProgress,
        result,
        external: false,
    };
    t.sim.ops.insert(op.id.clone(), op.clone());
    op
}

fn poll(shared: &Shared, req: &Req, result_style: bool) -> Reply {
    let now = shared.clock.now();
    let op_id = req.segs.last().cloned().unwrap_or_default();
    let Ok(t) = shared.tenant.read() else {
        return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "tenant lock poisoned");
    };
    let Some(op) = t.sim.ops.get(&op_id).cloned() else {
        return Reply::error(
            StatusCode::NOT_FOUND,
            "OperationNotFound",
            format!("The operation '{op_id}' was not found."),
        );
    };
    let started = rfc3339(op.started);
    let ended = rfc3339(op.ended.unwrap_or(now));
    let status_doc = |status: &str, error: Option<&Value>| {
        let mut doc = json!({"name": op_id, "status": status, "startTime": started, "endTime": ended});
        if let Some(e) = error {
            doc["error"] = e.clone();
        }
        doc
    };
    match &op.state {
        OpState::InProgress => {
            let ra = retry_after(shared, &op, now);
            if result_style {
                let (_, location_url) = op_urls(shared, &op);
                Reply::empty(StatusCode::ACCEPTED).header("Location", location_url).header("Retry-After", ra)
            } else {
                Reply::ok(json!({"name": op_id, "status": "InProgress", "startTime": started}))
                    .header("Retry-After", ra)
            }
        }
        OpState::Succeeded if result_style => match op.result {
            Final::Resource => match t.get(&op.resource_id) {
                Some(v) => Reply::ok(v.clone()),
                None => Reply::empty(StatusCode::NO_CONTENT),
            },
            Final::NoContent => Reply::empty(StatusCode::NO_CONTENT),
            Final::Empty => Reply::empty(StatusCode::OK),
        },
        OpState::Succeeded => Reply::ok(status_doc("Succeeded", None)),
        OpState::Failed { http, error } if result_style => {
            Reply::with_status(StatusCode::from_u16(*http).unwrap_or(StatusCode::CONFLICT), json!({"error": error}))
        }
        OpState::Failed { error, .. } => Reply::ok(status_doc("Failed", Some(error))),
        OpState::Canceled { error } if result_style => {
            Reply::with_status(StatusCode::CONFLICT, json!({"error": error}))
        }
        OpState::Canceled { error } => Reply::ok(status_doc("Canceled", Some(error))),
    }
}

// ---------------------------------------------------------------------------------------------------------
// Helpers

pub(crate) fn norm_location(l: &str) -> String {
    l.to_ascii_lowercase().replace(' ', "")
}

pub(crate) fn check_rg(t: &Tenant, req: &Req) -> Result<(), Reply> {
    let rg = req.segs.get(3).cloned().unwrap_or_default();
    let rg_id = format!("/subscriptions/{}/resourceGroups/{rg}", req.segs[1]);
    match t.get(&rg_id) {
        Some(_) => Ok(()),
        None => Err(Reply::error(
            StatusCode::NOT_FOUND,
            "ResourceGroupNotFound",
            format!("Resource group '{rg}' could not be found."),
        )),
    }
}

pub(crate) fn error_with_target(status: StatusCode, code: &str, message: String, target: &str) -> Reply {
    Reply::with_status(status, json!({"error": {"code": code, "message": message, "target": target}}))
}

fn avd_not_found(what: &str) -> Reply {
    Reply::error(
        StatusCode::NOT_FOUND,
        "NotFound",
        format!("ActivityId: {} Error: {what} not found", uuid::Uuid::new_v4()),
    )
}

pub(crate) fn state_of(v: &Value) -> &str {
    v["properties"]["provisioningState"].as_str().unwrap_or_default()
}

pub(crate) fn busy_reply(vm_name: &str, action: &str, op: &AsyncOp) -> Reply {
    Reply::error(
        StatusCode::CONFLICT,
        "RetryableErrorDueToAnotherOperation",
        format!(
            "Operation '{action}' is not allowed on VM '{vm_name}' because the VM is busy with operation '{}' ({}). Retry after it completes.",
            op.action, op.id
        ),
    )
}

pub(crate) fn marked_for_deletion(vm_name: &str, action: &str) -> Reply {
    Reply::error(
        StatusCode::CONFLICT,
        "OperationNotAllowed",
        format!("Operation '{action}' is not allowed on VM '{vm_name}' since the VM is marked for deletion. You can only retry the Delete operation (or wait for an ongoing one to complete)."),
    )
}

/// The request body without what Azure never returns (`adminPassword`, `customData`).
fn without_secrets(body: &Value) -> Value {
    let mut b = body.clone();
    if let Some(os) = b["properties"]["osProfile"].as_object_mut() {
        os.remove("adminPassword");
        os.remove("customData");
    }
    b
}

fn random_hex(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n).map(|_| format!("{:x}", rng.random_range(0..16u8))).collect()
}

/// A network interface as Network RP serves it. `confs`: (name, subnet id, private IP, allocation method).
pub fn nic_json(
    id: &str,
    name: &str,
    location: &Value,
    tags: &Value,
    confs: &[(String, String, String, String)],
    state: &str,
    rng: &mut impl Rng,
) -> Value {
    let guid = |rng: &mut dyn rand::RngCore| {
        let b: [u8; 16] = rng.random();
        uuid::Builder::from_random_bytes(b).into_uuid().to_string()
    };
    let etag = format!("W/\"{}\"", guid(rng));
    let ip_confs: Vec<Value> = confs
        .iter()
        .enumerate()
        .map(|(i, (cname, subnet, ip, method))| {
            json!({
                "id": format!("{id}/ipConfigurations/{cname}"),
                "name": cname,
                "type": "Microsoft.Network/networkInterfaces/ipConfigurations",
                "etag": etag,
                "properties": {
                    "provisioningState": state,
                    "privateIPAddress": ip,
                    "privateIPAllocationMethod": method,
                    "subnet": {"id": subnet},
                    "primary": i == 0,
                    "privateIPAddressVersion": "IPv4"
                }
            })
        })
        .collect();
    let suffix: String = (0..24).map(|_| char::from(b'a' + rng.random_range(0..26u8))).collect();
    json!({
        "id": id,
        "name": name,
        "type": NIC_TYPE,
        "location": location,
        "tags": if tags.is_object() { tags.clone() } else { json!({}) },
        "etag": etag,
        "properties": {
            "provisioningState": state,
            "resourceGuid": guid(rng),
            "ipConfigurations": ip_confs,
            "dnsSettings": {
                "dnsServers": [],
                "appliedDnsServers": [],
                "internalDomainNameSuffix": format!("{suffix}.ax.internal.cloudapp.net")
            },
            "enableAcceleratedNetworking": false,
            "vnetEncryptionSupported": false,
            "enableIPForwarding": false,
            "disableTcpStateTracking": false,
            "hostedWorkloads": [],
            "tapConfigurations": [],
            "nicType": "Standard"
        }
    })
}

/// A managed OS disk as Disk RP serves it, attached to `vm_id`.
pub fn disk_json(
    id: &str,
    location: &Value,
    vm_id: &str,
    os_disk: &Value,
    image_id: &str,
    created: &str,
    rng: &mut impl Rng,
) -> Value {
    let name = id.rsplit('/').next().unwrap_or_default();
    let sku = os_disk["managedDisk"]["storageAccountType"].as_str().unwrap_or("Premium_LRS");
    let size = os_disk["diskSizeGB"].as_u64().unwrap_or(128);
    let source = if image_id.to_ascii_lowercase().contains("/galleries/") {
        json!({"createOption": "FromImage", "galleryImageReference": {"id": image_id}})
    } else {
        json!({"createOption": "FromImage", "imageReference": {"id": image_id}})
    };
    let b: [u8; 16] = rng.random();
    json!({
        "id": id,
        "name": name,
        "type": DISK_TYPE,
        "location": location,
        "tags": {},
        "managedBy": vm_id,
        "sku": {"name": sku, "tier": if sku.starts_with("Premium") { "Premium" } else { "Standard" }},
        "properties": {
            "osType": os_disk["osType"].as_str().unwrap_or("Windows"),
            "hyperVGeneration": "V2",
            "creationData": source,
            "diskSizeGB": size,
            "diskSizeBytes": size * 1_073_741_824,
            "diskIOPSReadWrite": 500,
            "diskMBpsReadWrite": 100,
            "encryption": {"type": "EncryptionAtRestWithPlatformKey"},
            "networkAccessPolicy": "AllowAll",
            "publicNetworkAccess": "Enabled",
            "timeCreated": created,
            "provisioningState": "Succeeded",
            "diskState": "Attached",
            "uniqueId": uuid::Builder::from_random_bytes(b).into_uuid().to_string()
        }
    })
}

// ---------------------------------------------------------------------------------------------------------
// Network interfaces

type IpConf = (String, String, String, String);

fn put_nic(shared: &Shared, req: &Req) -> Reply {
    let now = shared.clock.now();
    let id = req.id();
    let name = req.segs.last().cloned().unwrap_or_default();
    let body = req.body.clone().unwrap_or(json!({}));
    let Some(location) = body["location"].as_str().map(norm_location) else {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "LocationRequired",
            "The location property is required for this definition.",
        );
    };
    let requested = body["properties"]["ipConfigurations"].as_array().cloned().unwrap_or_default();
    if requested.is_empty() {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "NetworkInterfaceMustHaveAtLeastOneIpConfiguration",
            format!("Network interface {id} must have at least one IP configuration."),
        );
    }
    let mut t = tenant_or_reply!(shared);
    if let Err(r) = check_rg(&t, req) {
        return r;
    }
    let existing = t.get(&id).cloned();
    if let Some(e) = &existing {
        if state_of(e) == "Deleting" {
            return Reply::error(
                StatusCode::CONFLICT,
                "AnotherOperationInProgress",
                format!("Another operation on this or dependent resource is in progress. To retrieve status of the operation use uri: {id}."),
            );
        }
    }
    let mut confs: Vec<IpConf> = Vec::new();
    for (i, c) in requested.iter().enumerate() {
        let Some(cname) = c["name"].as_str().filter(|n| !n.is_empty()) else {
            return Reply::error(
                StatusCode::BAD_REQUEST,
                "InvalidRequestFormat",
                format!("Cannot parse the request: properties.ipConfigurations[{i}].name is required."),
            );
        };
        let subnet = c["properties"]["subnet"]["id"].as_str().unwrap_or_default();
        let ls = subnet.to_ascii_lowercase();
        if !(ls.starts_with("/subscriptions/")
            && ls.contains("/providers/microsoft.network/virtualnetworks/")
            && ls.contains("/subnets/"))
        {
            return Reply::error(
                StatusCode::BAD_REQUEST,
                "LinkedInvalidPropertyId",
                format!("Property id '{subnet}' at path 'properties.ipConfigurations[{i}].properties.subnet.id' is invalid. Expect fully qualified resource Id that start with '/subscriptions/{{subscriptionId}}' or '/providers/{{resourceProviderNamespace}}/'."),
            );
        }
        let method = c["properties"]["privateIPAllocationMethod"].as_str().unwrap_or("Dynamic").to_string();
        let kept = existing.as_ref().and_then(|e| {
            e["properties"]["ipConfigurations"]
                .as_array()?
                .iter()
                .find(|x| x["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(cname)))
                .and_then(|x| x["properties"]["privateIPAddress"].as_str().map(str::to_string))
        });
        let ip = match c["properties"]["privateIPAddress"].as_str() {
            Some(ip) if method.eq_ignore_ascii_case("Static") => ip.to_string(),
            _ => kept.unwrap_or_else(|| t.sim.allocate_ip()),
        };
        confs.push((cname.to_string(), subnet.to_string(), ip, method));
    }
    let mut nic = nic_json(&id, &name, &json!(location), &body["tags"], &confs, "Updating", &mut rand::rng());
    for key in ["enableAcceleratedNetworking", "enableIPForwarding", "disableTcpStateTracking", "networkSecurityGroup"]
    {
        if let Some(v) = body["properties"].get(key) {
            nic["properties"][key] = v.clone();
        }
    }
    if let Some(servers) = body["properties"]["dnsSettings"]["dnsServers"].as_array() {
        nic["properties"]["dnsSettings"]["dnsServers"] = json!(servers);
    }
    if let Some(e) = &existing {
        for key in ["virtualMachine", "primary", "resourceGuid", "macAddress"] {
            if let Some(v) = e["properties"].get(key) {
                nic["properties"][key] = v.clone();
            }
        }
    }
    t.insert(nic.clone());
    let op = new_op(
        &mut t,
        req,
        NETWORK,
        &location,
        &id,
        "create",
        Effect::CreateNic,
        Duration::seconds_f64(rand::rng().random_range(3.0..8.0)),
        Final::Resource,
        now,
    );
    let status = if existing.is_some() { StatusCode::OK } else { StatusCode::CREATED };
    with_lro(shared, Reply::with_status(status, nic), &op, now)
}

fn delete_nic(shared: &Shared, req: &Req) -> Reply {
    let now = shared.clock.now();
    let id = req.id();
    let mut t = tenant_or_reply!(shared);
    let Some(nic) = t.get(&id).cloned() else { return Reply::empty(StatusCode::NO_CONTENT) };
    if let Some(vm) = nic["properties"]["virtualMachine"]["id"].as_str() {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "NicInUse",
            format!("Network Interface {} is used by existing resource {vm}. In order to delete the network interface, it must be dissociated from the resource. To learn more, see aka.ms/deletenic.", nic["id"].as_str().unwrap_or(&id)),
        );
    }
    if let Some(op) = t.sim.in_flight(&id).filter(|o| o.action == "delete").cloned() {
        return with_lro(shared, Reply::empty(StatusCode::ACCEPTED), &op, now);
    }
    if let Some(n) = t.get_mut(&id) {
        n["properties"]["provisioningState"] = json!("Deleting");
    }
    let location = nic["location"].as_str().unwrap_or("westeurope").to_string();
    let op = new_op(
        &mut t,
        req,
        NETWORK,
        &location,
        &id,
        "delete",
        Effect::DeleteNic,
        Duration::seconds_f64(rand::rng().random_range(5.0..15.0)),
        Final::NoContent,
        now,
    );
    with_lro(shared, Reply::empty(StatusCode::ACCEPTED), &op, now)
}

// ---------------------------------------------------------------------------------------------------------
// Virtual machines

/// Resolve a gallery image reference (a version id, or a definition id = latest) and check that the version is
/// replicated to `location` now. Ok((version id, OS disk size)).
fn resolve_gallery_image(shared: &Shared, t: &Tenant, image_id: &str, location: &str) -> Result<(String, u64), Reply> {
    let version_id = if image_id.to_ascii_lowercase().contains("/versions/") {
        image_id.to_string()
    } else {
        let key = |v: &Value| -> Vec<u64> {
            v["name"].as_str().unwrap_or_default().split('.').map(|p| p.parse().unwrap_or(0)).collect()
        };
        let latest = t
            .list(&format!("{image_id}/versions/"), "Microsoft.Compute/galleries/images/versions")
            .filter(|v| v["properties"]["publishingProfile"]["excludeFromLatest"] != json!(true))
            // A version still being created (or that failed) is not a candidate for "latest".
            .filter(|v| state_of(v) == "Succeeded")
            .max_by_key(|v| key(v))
            .and_then(|v| v["id"].as_str().map(str::to_string));
        match latest {
            Some(v) => v,
            None => {
                return Err(error_with_target(
                    StatusCode::NOT_FOUND,
                    "GalleryImageNotFound",
                    format!("The gallery image {image_id} has no version available for 'latest' in {location} region."),
                    "imageReference",
                ))
            }
        }
    };
    let Some(version) = t.get(&version_id) else {
        let segs: Vec<&str> = version_id.split('/').collect();
        let rg = segs.get(4).copied().unwrap_or_default();
        let rel = segs.iter().skip(6).copied().collect::<Vec<_>>().join("/");
        return Err(Reply::error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The Resource '{rel}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"),
        ));
    };
    let size = version["properties"]["storageProfile"]["osDiskImage"]["sizeInGB"].as_u64().unwrap_or(128);
    let now_s = (shared.clock.now() - shared.clock.start()).whole_seconds();
    let region = display_region(location);
    let state = match t.replication_status(&version_id, now_s) {
        Some(status) => status["summary"]
            .as_array()
            .and_then(|s| s.iter().find(|r| r["region"].as_str() == Some(region.as_str())))
            .and_then(|r| r["state"].as_str().map(str::to_string)),
        None => version["properties"]["publishingProfile"]["targetRegions"]
            .as_array()
            .and_then(|s| s.iter().find(|r| r["name"].as_str().is_some_and(|n| norm_location(n) == location)))
            .map(|_| "Completed".to_string()),
    };
    if state.as_deref() != Some("Completed") {
        return Err(error_with_target(
            StatusCode::NOT_FOUND,
            "GalleryImageNotFound",
            format!("The gallery image {} is not available in {location} region. Please contact image owner to replicate to this region, or change your requested region.", version["id"].as_str().unwrap_or(&version_id)),
            "imageReference",
        ));
    }
    Ok((version["id"].as_str().unwrap_or(&version_id).to_string(), size))
}

fn put_vm(shared: &Shared, req: &Req) -> Reply {
    let now = shared.clock.now();
    let id = req.id();
    let name = req.segs.last().cloned().unwrap_or_default();
    let body = req.body.clone().unwrap_or(json!({}));
    let fail = shared.faults.lock().map(|f| Faults::matches(&f.fail_provisioning, &name)).unwrap_or(false);
    let request = without_secrets(&body);
    let mut t = tenant_or_reply!(shared);
    if let Err(r) = check_rg(&t, req) {
        return r;
    }
    if let Some(existing) = t.get(&id).cloned() {
        return update_vm(shared, &mut t, &id, existing, &body, request, now);
    }
    let Some(location) = body["location"].as_str().map(norm_location) else {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "LocationRequired",
            "The location property is required for this definition.",
        );
    };
    let os_in = &body["properties"]["storageProfile"]["osDisk"];
    let attach = os_in["createOption"].as_str().is_some_and(|c| c.eq_ignore_ascii_case("Attach"));
    let attached = if attach {
        match check_attach(&t, &body, &location) {
            Ok(disk) => Some(disk),
            Err(r) => return r,
        }
    } else {
        None
    };
    let image_id = body["properties"]["storageProfile"]["imageReference"]["id"].as_str().map(str::to_string);
    let mut source_image = image_id.clone().unwrap_or_default();
    let mut os_size = attached.as_ref().and_then(|d| d["properties"]["diskSizeGB"].as_u64()).unwrap_or(128);
    if let Some(iid) = image_id.as_ref().filter(|_| !attach) {
        if iid.to_ascii_lowercase().contains("/providers/microsoft.compute/galleries/") {
            match resolve_gallery_image(shared, &t, iid, &location) {
                Ok((version, size)) => {
                    source_image = version;
                    os_size = size;
                }
                Err(r) => return r,
            }
        }
    }
    let nics = body["properties"]["networkProfile"]["networkInterfaces"].as_array().cloned().unwrap_or_default();
    if nics.is_empty() {
        return error_with_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            "At least one network interface reference is required in networkProfile.networkInterfaces.".into(),
            "networkProfile",
        );
    }
    for nic in &nics {
        let nic_id = nic["id"].as_str().unwrap_or_default();
        let missing = || {
            Reply::error(
                StatusCode::BAD_REQUEST,
                "InvalidResourceReference",
                format!("Resource {nic_id} referenced by resource {id} was not found. Please make sure that the referenced resource exists, and that both resources are in the same region."),
            )
        };
        let Some(n) = t.get(nic_id) else { return missing() };
        if n["location"].as_str().map(norm_location).as_deref() != Some(location.as_str()) || state_of(n) == "Deleting"
        {
            return missing();
        }
        if let Some(other) = n["properties"]["virtualMachine"]["id"].as_str() {
            return Reply::error(
                StatusCode::BAD_REQUEST,
                "NicInUse",
                format!("Network Interface {nic_id} is used by existing resource {other}. A network interface can be attached to one virtual machine only."),
            );
        }
    }
    let disk_name = os_in["name"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| format!("{name}_OsDisk_1_{}", uuid::Uuid::new_v4().simple()));
    let rg_id = rg_of(&id);
    let disk_id = match &attached {
        Some(d) => d["id"].as_str().unwrap_or_default().to_string(),
        None => format!("{rg_id}/providers/Microsoft.Compute/disks/{disk_name}"),
    };
    if attached.is_none() && t.get(&disk_id).is_some() {
        return Reply::error(
            StatusCode::CONFLICT,
            "ConflictingUserInput",
            format!(
                "Disk {disk_name} already exists in resource group {}. Only CreateOption.Attach is supported.",
                req.segs[3].to_ascii_uppercase()
            ),
        );
    }
    let mut vm = build_vm(&id, &name, &location, &body, &disk_id, os_size, now);
    if let Some(d) = &attached {
        // The VM boots from the disk as it is: its OS type and SKU are the disk's.
        let os = &mut vm["properties"]["storageProfile"]["osDisk"];
        os["osType"] = d["properties"]["osType"].clone();
        os["managedDisk"]["storageAccountType"] = d["sku"]["name"].clone();
    }
    t.insert(vm.clone());
    for (i, nic) in vm["properties"]["networkProfile"]["networkInterfaces"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        if let Some(n) = t.get_mut(nic["id"].as_str().unwrap_or_default()) {
            n["properties"]["virtualMachine"] = json!({"id": id});
            n["properties"]["primary"] = json!(nic["properties"]["primary"].as_bool().unwrap_or(i == 0));
        }
    }
    match &attached {
        Some(_) => {
            if let Some(d) = t.get_mut(&disk_id) {
                d["managedBy"] = json!(id);
                d["properties"]["diskState"] = json!("Attached");
            }
        }
        None => {
            let disk = disk_json(
                &disk_id,
                &json!(location),
                &id,
                &vm["properties"]["storageProfile"]["osDisk"],
                &source_image,
                &rfc3339(now),
                &mut rand::rng(),
            );
            t.insert(disk);
        }
    }
    t.sim.vms.insert(lower(&id), VmState::new("starting", now, request));
    t.sim.vm_creates += 1;
    // Booting an existing disk skips OS provisioning from an image: quicker.
    let duration = if attach { minutes(2.0, 4.0) } else { minutes(4.0, 9.0) };
    let op = new_op(
        &mut t,
        req,
        COMPUTE,
        &location,
        &id,
        "create",
        Effect::CreateVm { fail },
        duration,
        Final::Resource,
        now,
    );
    with_lro(shared, Reply::with_status(StatusCode::CREATED, vm), &op, now)
}

/// A create with `osDisk.createOption: Attach`: no OS profile, no image, and a managed disk in the VM's region that is
/// provisioned and attached to no other VM. Ok(the disk).
fn check_attach(t: &Tenant, body: &Value, location: &str) -> Result<Value, Reply> {
    let p = &body["properties"];
    if p["osProfile"].is_object() {
        return Err(error_with_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            "Parameter 'osProfile' is not allowed.".into(),
            "osProfile",
        ));
    }
    if p["storageProfile"]["imageReference"].is_object() {
        return Err(error_with_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            "Cannot attach an existing OS disk if the VM is created from a platform, user or shared gallery image."
                .into(),
            "imageReference",
        ));
    }
    let Some(disk_id) = p["storageProfile"]["osDisk"]["managedDisk"]["id"].as_str().filter(|s| !s.is_empty()) else {
        return Err(error_with_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            "Required parameter 'osDisk.managedDisk.id' is missing (null).".into(),
            "osDisk.managedDisk.id",
        ));
    };
    let disk_name = disk_id.rsplit('/').next().unwrap_or_default();
    let Some(disk) = t.get(disk_id).filter(|d| state_of(d) != "Deleting") else {
        let rg = disk_id.split('/').nth(4).unwrap_or_default();
        return Err(Reply::error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The Resource 'Microsoft.Compute/disks/{disk_name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"),
        ));
    };
    if state_of(disk) != "Succeeded" {
        return Err(Reply::error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            format!("Disk '{disk_name}' cannot be attached while it is being provisioned (provisioningState '{}'). Wait for its create operation to complete.", state_of(disk)),
        ));
    }
    if disk["location"].as_str().map(norm_location).as_deref() != Some(location) {
        return Err(error_with_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("The disk '{disk_id}' must be in the same location ('{location}') as the virtual machine."),
            "osDisk.managedDisk.id",
        ));
    }
    if let Some(other) = disk["managedBy"].as_str().filter(|s| !s.is_empty()) {
        return Err(Reply::error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            format!("Disk '{disk_name}' is already attached to VM '{other}'. A disk can be attached to one VM only."),
        ));
    }
    let disk_security = disk["properties"]["securityProfile"]["securityType"].as_str().unwrap_or("Standard");
    let vm_security = p["securityProfile"]["securityType"].as_str().unwrap_or("Standard");
    if disk_security.eq_ignore_ascii_case("TrustedLaunch") && !vm_security.eq_ignore_ascii_case("TrustedLaunch") {
        return Err(error_with_target(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("Security type of VM ('{vm_security}') is not compatible with the security type of the attached OS disk ('{disk_security}')."),
            "securityProfile.securityType",
        ));
    }
    Ok(disk.clone())
}

/// The VM as Compute serves it after a create PUT: the body as sent, without secrets, with the defaults Azure
/// fills in.
fn build_vm(
    id: &str,
    name: &str,
    location: &str,
    body: &Value,
    disk_id: &str,
    os_size: u64,
    now: OffsetDateTime,
) -> Value {
    let mut props = body["properties"].clone();
    if !props.is_object() {
        props = json!({});
    }
    let linux = props["osProfile"]["linuxConfiguration"].is_object();
    if let Some(os) = props["osProfile"].as_object_mut() {
        os.remove("adminPassword");
        os.remove("customData");
        os.entry("secrets").or_insert(json!([]));
        os.entry("allowExtensionOperations").or_insert(json!(true));
        os.entry("requireGuestProvisionSignal").or_insert(json!(true));
        if !linux {
            os.entry("windowsConfiguration")
                .or_insert(json!({"provisionVMAgent": true, "enableAutomaticUpdates": true}));
        }
    }
    {
        let sp = &mut props["storageProfile"];
        let os = &mut sp["osDisk"];
        let defaults = [
            ("osType", json!(if linux { "Linux" } else { "Windows" })),
            ("createOption", json!("FromImage")),
            ("caching", json!("ReadWrite")),
            ("diskSizeGB", json!(os_size)),
            ("deleteOption", json!("Detach")),
        ];
        for (k, v) in defaults {
            if os.get(k).is_none() {
                os[k] = v;
            }
        }
        os["name"] = json!(disk_id.rsplit('/').next().unwrap_or_default());
        if os["managedDisk"].get("storageAccountType").is_none() {
            os["managedDisk"]["storageAccountType"] = json!("Premium_LRS");
        }
        os["managedDisk"]["id"] = json!(disk_id);
        if sp.get("dataDisks").is_none() {
            sp["dataDisks"] = json!([]);
        }
    }
    if let Some(nics) = props["networkProfile"]["networkInterfaces"].as_array_mut() {
        let single = nics.len() == 1;
        for nic in nics.iter_mut() {
            if nic["properties"].get("deleteOption").is_none() {
                nic["properties"]["deleteOption"] = json!("Detach");
            }
            if single && nic["properties"].get("primary").is_none() {
                nic["properties"]["primary"] = json!(true);
            }
        }
    }
    props["vmId"] = json!(uuid::Uuid::new_v4().to_string());
    props["timeCreated"] = json!(rfc3339(now));
    props["provisioningState"] = json!("Creating");
    let mut vm = json!({
        "id": id,
        "name": name,
        "type": VM_TYPE,
        "location": location,
        "tags": if body["tags"].is_object() { body["tags"].clone() } else { json!({}) },
        "properties": props
    });
    if let Some(zones) = body.get("zones") {
        vm["zones"] = zones.clone();
    }
    if let Some(identity) = body.get("identity").filter(|i| i.is_object()) {
        let mut identity = identity.clone();
        if identity["type"].as_str().is_some_and(|t| t.contains("SystemAssigned")) {
            identity["principalId"] = json!(uuid::Uuid::new_v4().to_string());
            identity["tenantId"] = json!(crate::tenant::TENANT_ID);
        }
        vm["identity"] = identity;
    }
    vm
}

/// A PUT of an existing VM: the same body is idempotent (200, no new provisioning); otherwise tags and delete
/// options may change, the image and computer name may not.
fn update_vm(
    shared: &Shared,
    t: &mut Tenant,
    id: &str,
    existing: Value,
    body: &Value,
    request: Value,
    now: OffsetDateTime,
) -> Reply {
    let name = existing["name"].as_str().unwrap_or_default().to_string();
    if state_of(&existing) == "Deleting" {
        return marked_for_deletion(&name, "PUT");
    }
    let same = t.sim.vms.get(&lower(id)).is_some_and(|s| s.request == request);
    if same {
        let reply = Reply::ok(existing);
        return match t.sim.in_flight(id).cloned() {
            Some(op) => with_lro(shared, reply, &op, now),
            None => reply,
        };
    }
    let old_image = existing["properties"]["storageProfile"]["imageReference"]["id"].as_str().unwrap_or_default();
    if let Some(new_image) = body["properties"]["storageProfile"]["imageReference"]["id"].as_str() {
        if !new_image.eq_ignore_ascii_case(old_image) {
            return error_with_target(
                StatusCode::CONFLICT,
                "PropertyChangeNotAllowed",
                "Changing property 'imageReference' is not allowed.".into(),
                "imageReference",
            );
        }
    }
    let old_computer = existing["properties"]["osProfile"]["computerName"].as_str().unwrap_or_default();
    if let Some(new_computer) = body["properties"]["osProfile"]["computerName"].as_str() {
        if !new_computer.eq_ignore_ascii_case(old_computer) {
            return error_with_target(
                StatusCode::CONFLICT,
                "PropertyChangeNotAllowed",
                "Changing property 'osProfile.computerName' is not allowed.".into(),
                "osProfile.computerName",
            );
        }
    }
    if let Some(new_disk) = body["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"].as_str() {
        let old_disk =
            existing["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"].as_str().unwrap_or_default();
        if !new_disk.eq_ignore_ascii_case(old_disk) {
            if let Err(r) = swap_os_disk(t, id, &name, old_disk, new_disk, now) {
                return r;
            }
        }
    }
    let Some(vm) = t.get_mut(id) else { return Reply::error(StatusCode::NOT_FOUND, "NotFound", "gone") };
    if body["tags"].is_object() {
        vm["tags"] = body["tags"].clone();
    }
    if let Some(opt) = body["properties"]["storageProfile"]["osDisk"].get("deleteOption") {
        vm["properties"]["storageProfile"]["osDisk"]["deleteOption"] = opt.clone();
    }
    for nic in body["properties"]["networkProfile"]["networkInterfaces"].as_array().cloned().unwrap_or_default() {
        let (Some(nic_id), Some(opt)) = (nic["id"].as_str(), nic["properties"].get("deleteOption")) else { continue };
        if let Some(list) = vm["properties"]["networkProfile"]["networkInterfaces"].as_array_mut() {
            for n in list.iter_mut().filter(|n| n["id"].as_str().is_some_and(|i| i.eq_ignore_ascii_case(nic_id))) {
                n["properties"]["deleteOption"] = opt.clone();
            }
        }
    }
    let out = vm.clone();
    t.sim.vms.entry(lower(id)).or_insert(VmState::new("running", now, Value::Null)).request = request;
    t.touch_vm(id, now);
    Reply::ok(out)
}

/// OS disk swap (a VM PUT naming another managed disk): the VM must be deallocated and the disk free.
fn swap_os_disk(
    t: &mut Tenant,
    vm_id: &str,
    vm_name: &str,
    old_disk: &str,
    new_disk: &str,
    now: OffsetDateTime,
) -> Result<(), Reply> {
    let power = t.sim.vms.get(&lower(vm_id)).map(|s| s.power).unwrap_or("running");
    if power != "deallocated" {
        return Err(Reply::error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            format!("The OS disk of VM '{vm_name}' can only be swapped while the VM is deallocated (it is {power})."),
        ));
    }
    let Some(disk) = t.get(new_disk).filter(|d| state_of(d) == "Succeeded").cloned() else {
        return Err(Reply::error(StatusCode::NOT_FOUND, "NotFound", format!("Disk '{new_disk}' was not found.")));
    };
    if let Some(other) = disk["managedBy"].as_str().filter(|s| !s.is_empty()) {
        return Err(Reply::error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            format!("Disk '{new_disk}' is already attached to VM '{other}'."),
        ));
    }
    if let Some(d) = t.get_mut(old_disk) {
        if let Some(obj) = d.as_object_mut() {
            obj.remove("managedBy");
        }
        d["properties"]["diskState"] = json!("Unattached");
    }
    if let Some(d) = t.get_mut(new_disk) {
        d["managedBy"] = json!(vm_id);
        d["properties"]["diskState"] = json!("Attached");
    }
    if let Some(vm) = t.get_mut(vm_id) {
        let os = &mut vm["properties"]["storageProfile"]["osDisk"];
        os["managedDisk"]["id"] = disk["id"].clone();
        os["name"] = disk["name"].clone();
        os["diskSizeGB"] = disk["properties"]["diskSizeGB"].clone();
    }
    t.note_master(
        vm_id,
        &format!("OS disk changed from '{old_disk}' to '{new_disk}' (VirtualMachines_CreateOrUpdate)"),
        now,
    );
    Ok(())
}

fn delete_vm(shared: &Shared, req: &Req) -> Reply {
    let now = shared.clock.now();
    let id = req.id();
    let mut t = tenant_or_reply!(shared);
    let Some(vm) = t.get(&id).cloned() else { return Reply::empty(StatusCode::NO_CONTENT) };
    if state_of(&vm) == "Deleting" {
        if let Some(op) = t.sim.in_flight(&id).cloned() {
            return with_lro(shared, Reply::empty(StatusCode::ACCEPTED), &op, now);
        }
    }
    // A delete preempts whatever runs on the VM (a create, an extension).
    let vm_key = lower(&id);
    for op in t.sim.ops.values_mut().filter(|o| o.state == OpState::InProgress) {
        let r = lower(&op.resource_id);
        if r == vm_key || r.starts_with(&format!("{vm_key}/")) {
            op.state = OpState::Canceled {
                error: json!({"code": "OperationPreempted", "message": "Operation execution has been preempted by a more recent operation."}),
            };
            op.ended = Some(now);
        }
    }
    if let Some(v) = t.get_mut(&id) {
        v["properties"]["provisioningState"] = json!("Deleting");
    }
    t.touch_vm(&id, now);
    let location = vm["location"].as_str().unwrap_or("westeurope").to_string();
    let op = new_op(
        &mut t,
        req,
        COMPUTE,
        &location,
        &id,
        "delete",
        Effect::DeleteVm,
        minutes(1.0, 2.0),
        Final::NoContent,
        now,
    );
    with_lro(shared, Reply::empty(StatusCode::ACCEPTED), &op, now)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Power {
    Start,
    Deallocate,
    /// Stop without releasing the hardware (`PowerState/stopped`; still billed).
    Off,
}

fn power(shared: &Shared, req: &Req, p: Power) -> Reply {
    let now = shared.clock.now();
    let id = format!("/{}", req.segs[..req.segs.len() - 1].join("/"));
    let action = match p {
        Power::Start => "start",
        Power::Deallocate => "deallocate",
        Power::Off => "powerOff",
    };
    let mut t = tenant_or_reply!(shared);
    let Some(vm) = t.get(&id).cloned() else {
        let name = req.segs[req.segs.len() - 2].clone();
        let rg = req.segs[3].clone();
        return Reply::error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The Resource 'Microsoft.Compute/virtualMachines/{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"),
        );
    };
    let name = vm["name"].as_str().unwrap_or_default().to_string();
    if state_of(&vm) == "Deleting" {
        return marked_for_deletion(&name, action);
    }
    if let Some(op) = t.sim.busy(&id).cloned() {
        return busy_reply(&name, action, &op);
    }
    if p == Power::Start && t.sim.vms.get(&lower(&id)).is_some_and(|s| s.generalized) {
        return Reply::error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            format!("Operation 'start' is not allowed on VM '{name}' since the VM is generalized."),
        );
    }
    if let Some(v) = t.get_mut(&id) {
        v["properties"]["provisioningState"] = json!("Updating");
    }
    let entry = t.sim.vms.entry(lower(&id)).or_insert(VmState::new("running", now, Value::Null));
    entry.power = match p {
        Power::Start => "starting",
        Power::Deallocate => "deallocating",
        Power::Off => "stopping",
    };
    t.touch_vm(&id, now);
    let location = vm["location"].as_str().unwrap_or("westeurope").to_string();
    let (effect, duration) = match p {
        Power::Start => (Effect::Start, minutes(1.0, 2.0)),
        Power::Deallocate => (Effect::Deallocate, minutes(1.0, 3.0)),
        Power::Off => (Effect::PowerOff, minutes(0.5, 1.5)),
    };
    let op = new_op(&mut t, req, COMPUTE, &location, &id, action, effect, duration, Final::Empty, now);
    with_lro(shared, Reply::empty(StatusCode::ACCEPTED), &op, now)
}

fn instance_view(shared: &Shared, req: &Req) -> Reply {
    let id = format!("/{}", req.segs[..req.segs.len() - 1].join("/"));
    let Ok(t) = shared.tenant.read() else {
        return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "tenant lock poisoned");
    };
    match t.get(&id) {
        Some(vm) => Reply::ok(vm_instance_view(&t, vm)),
        None => not_found(req),
    }
}

/// `$expand=instanceView` on a VM or an extension.
pub fn expand_instance_view(t: &Tenant, v: &mut Value) {
    let rtype = v["type"].as_str().unwrap_or_default().to_ascii_lowercase();
    if rtype == VM_TYPE.to_ascii_lowercase() {
        v["properties"]["instanceView"] = vm_instance_view(t, v);
    } else if rtype == EXTENSION_TYPE.to_ascii_lowercase() {
        v["properties"]["instanceView"] = extension_view(t, v);
    }
}

fn extension_view(t: &Tenant, ext: &Value) -> Value {
    let id = ext["id"].as_str().unwrap_or_default();
    if let Some(v) = t.sim.ext_status.get(&lower(id)) {
        return v.clone();
    }
    let p = &ext["properties"];
    let state = p["provisioningState"].as_str().unwrap_or("Succeeded");
    json!({
        "name": ext["name"],
        "type": format!("{}.{}", p["publisher"].as_str().unwrap_or_default(), p["type"].as_str().unwrap_or_default()),
        "typeHandlerVersion": p["typeHandlerVersion"].as_str().unwrap_or("1.0"),
        "statuses": [{
            "code": format!("ProvisioningState/{}", state.to_ascii_lowercase()),
            "level": if state == "Failed" { "Error" } else { "Info" },
            "displayStatus": format!("Provisioning {}", state.to_ascii_lowercase())
        }]
    })
}

fn vm_instance_view(t: &Tenant, vm: &Value) -> Value {
    let id = vm["id"].as_str().unwrap_or_default();
    let state = vm["properties"]["provisioningState"].as_str().unwrap_or("Succeeded").to_ascii_lowercase();
    let power = t.sim.vms.get(&lower(id)).map(|s| s.power).unwrap_or("running");
    let generalized = t.sim.vms.get(&lower(id)).is_some_and(|s| s.generalized);
    let mut statuses = vec![match state.as_str() {
        "failed" => json!({
            "code": "ProvisioningState/failed/OSProvisioningClientError",
            "level": "Error",
            "displayStatus": "Provisioning failed",
            "message": "OS provisioning failed (simulated by the failProvisioning fault)."
        }),
        s => json!({
            "code": format!("ProvisioningState/{s}"),
            "level": "Info",
            "displayStatus": match s {
                "succeeded" => "Provisioning succeeded".to_string(),
                other => format!("{}{}", other[..1].to_ascii_uppercase(), &other[1..]),
            }
        }),
    }];
    if generalized {
        statuses.push(json!({"code": "OSState/generalized", "level": "Info", "displayStatus": "VM generalized"}));
    }
    statuses
        .push(json!({"code": format!("PowerState/{power}"), "level": "Info", "displayStatus": format!("VM {power}")}));
    let extensions: Vec<Value> =
        t.list(&format!("{id}/extensions/"), EXTENSION_TYPE).map(|e| extension_view(t, e)).collect();
    let disk = vm["properties"]["storageProfile"]["osDisk"]["name"].clone();
    let mut view = json!({
        "computerName": vm["properties"]["osProfile"]["computerName"].as_str().unwrap_or(vm["name"].as_str().unwrap_or_default()),
        "osName": "Windows 11 Enterprise multi-session",
        "osVersion": "10.0.26100.2314",
        "hyperVGeneration": "V2",
        "disks": [{"name": disk, "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Provisioning succeeded"}]}],
        "extensions": extensions,
        "statuses": statuses
    });
    if power == "running" {
        view["vmAgent"] = json!({
            "vmAgentVersion": "2.7.41491.1102",
            "statuses": [{"code": "ProvisioningState/succeeded", "level": "Info", "displayStatus": "Ready", "message": "GuestAgent is running and processing the extensions."}]
        });
    }
    view
}

// ---------------------------------------------------------------------------------------------------------
// VM extensions (the AVD agent) and disks

fn put_extension(shared: &Shared, req: &Req) -> Reply {
    let now = shared.clock.now();
    let id = req.id();
    let name = req.segs.last().cloned().unwrap_or_default();
    let vm_id = format!("/{}", req.segs[..req.segs.len() - 2].join("/"));
    let body = req.body.clone().unwrap_or(json!({}));
    let mut t = tenant_or_reply!(shared);
    let Some(vm) = t.get(&vm_id).cloned() else {
        let vm_name = req.segs[req.segs.len() - 3].clone();
        return Reply::error(
            StatusCode::NOT_FOUND,
            "ParentResourceNotFound",
            format!("Can not perform requested operation on nested resource. Parent resource '{vm_name}' not found."),
        );
    };
    let vm_name = vm["name"].as_str().unwrap_or_default().to_string();
    if state_of(&vm) == "Deleting" {
        return marked_for_deletion(&vm_name, "extension create or update");
    }
    if let Some(op) = t.sim.busy(&vm_id).cloned() {
        return busy_reply(&vm_name, "extension create or update", &op);
    }
    let power = t.sim.vms.get(&lower(&vm_id)).map(|s| s.power).unwrap_or("running");
    if power != "running" {
        return Reply::error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            "Cannot modify extensions in the VM when the VM is not running.",
        );
    }
    let p = &body["properties"];
    for field in ["publisher", "type", "typeHandlerVersion"] {
        if p[field].as_str().is_none_or(str::is_empty) {
            return error_with_target(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                format!("Required parameter '{field}' is missing (null)."),
                field,
            );
        }
    }
    let publisher = p["publisher"].as_str().unwrap_or_default();
    let ext_type = p["type"].as_str().unwrap_or_default();
    let dsc =
        (publisher.eq_ignore_ascii_case("Microsoft.Powershell") && ext_type.eq_ignore_ascii_case("DSC")).then(|| {
            // The DSC extension takes its arguments as `configurationArguments` (older schema) or `properties` (the
            // portal's AVD template); the token in protected settings, or (discouraged) in plain settings.
            let settings = &p["settings"];
            let protected = &p["protectedSettings"];
            let arg = |name: &str| {
                settings["configurationArguments"][name].as_str().or_else(|| settings["properties"][name].as_str())
            };
            let token = protected["Items"]["RegistrationInfoToken"]
                .as_str()
                .or_else(|| protected["configurationArguments"]["registrationInfoToken"].as_str())
                .or_else(|| arg("registrationInfoToken"))
                .unwrap_or_default();
            DscRun { host_pool: arg("hostPoolName").unwrap_or_default().to_string(), token: token.to_string() }
        });
    let existed = t.get(&id).is_some();
    let mut props = p.clone();
    if let Some(obj) = props.as_object_mut() {
        obj.remove("protectedSettings");
        obj.remove("protectedSettingsFromKeyVault");
        obj.remove("instanceView");
    }
    props["provisioningState"] = json!(if existed { "Updating" } else { "Creating" });
    let mut ext = json!({
        "id": id,
        "name": name,
        "type": EXTENSION_TYPE,
        "location": body["location"].as_str().map(norm_location).unwrap_or_else(|| vm["location"].as_str().unwrap_or_default().to_string()),
        "properties": props
    });
    if body["tags"].is_object() {
        ext["tags"] = body["tags"].clone();
    }
    t.insert(ext.clone());
    t.sim.ext_status.insert(
        lower(&id),
        json!({
            "name": name,
            "type": format!("{publisher}.{ext_type}"),
            "typeHandlerVersion": p["typeHandlerVersion"],
            "statuses": [{"code": "ProvisioningState/transitioning", "level": "Info", "displayStatus": "Transitioning", "message": "Extension is being provisioned."}]
        }),
    );
    t.touch_vm(&vm_id, now);
    let location = vm["location"].as_str().unwrap_or("westeurope").to_string();
    let op = new_op(
        &mut t,
        req,
        COMPUTE,
        &location,
        &id,
        "extension create or update",
        Effect::Extension { dsc },
        minutes(0.8, 1.2),
        Final::Resource,
        now,
    );
    let status = if existed { StatusCode::OK } else { StatusCode::CREATED };
    with_lro(shared, Reply::with_status(status, ext), &op, now)
}

fn delete_disk(shared: &Shared, req: &Req) -> Reply {
    let now = shared.clock.now();
    let id = req.id();
    let mut t = tenant_or_reply!(shared);
    let Some(disk) = t.get(&id).cloned() else { return Reply::empty(StatusCode::NO_CONTENT) };
    if let Some(vm) = disk["managedBy"].as_str().filter(|s| !s.is_empty()) {
        let vm_name = vm.rsplit('/').next().unwrap_or_default();
        return Reply::error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            format!("Disk {} is attached to VM {vm_name}.", disk["name"].as_str().unwrap_or_default()),
        );
    }
    if let Some(op) = t.sim.in_flight(&id).cloned() {
        return with_lro(shared, Reply::empty(StatusCode::ACCEPTED), &op, now);
    }
    if let Some(d) = t.get_mut(&id) {
        d["properties"]["provisioningState"] = json!("Deleting");
    }
    let location = disk["location"].as_str().unwrap_or("westeurope").to_string();
    let op = new_op(
        &mut t,
        req,
        COMPUTE,
        &location,
        &id,
        "delete",
        Effect::DeleteDisk,
        Duration::seconds_f64(rand::rng().random_range(10.0..30.0)),
        Final::NoContent,
        now,
    );
    with_lro(shared, Reply::empty(StatusCode::ACCEPTED), &op, now)
}

/// GalleryImageVersions_Update: the version shows `Updating` and takes the PATCH 2 sim-seconds later.
fn update_version(shared: &Shared, req: &Req) -> Reply {
    let now = shared.clock.now();
    let id = req.id();
    let mut t = tenant_or_reply!(shared);
    let Some(v) = t.get_mut(&id) else { return not_found(req) };
    v["properties"]["provisioningState"] = json!("Updating");
    let location = v["location"].as_str().unwrap_or("westeurope").to_string();
    let current = v.clone();
    let patch = req.body.clone().unwrap_or(Value::Null);
    let op = new_op(
        &mut t,
        req,
        COMPUTE,
        &location,
        &id,
        "update",
        Effect::Merge(patch),
        Duration::seconds(2),
        Final::Resource,
        now,
    );
    with_lro(shared, Reply::ok(current), &op, now)
}

/// The Tags API on a resource (`{id}/providers/Microsoft.Resources/tags/default`): read, replace, merge or delete
/// its tags without rewriting the resource. Answers synchronously (200), which the spec allows for these LROs.
/// ARM's limits hold: 50 tags, names up to 512 characters without `<>%&\?/`, values up to 256.
fn tags_at_scope(shared: &Shared, req: &Req, op: &str) -> Reply {
    let scope = format!("/{}", req.segs[..req.segs.len() - 4].join("/"));
    let mut t = tenant_or_reply!(shared);
    let Some(resource) = t.get_mut(&scope) else {
        return Reply::error(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("The Resource '{scope}' was not found."),
        );
    };
    let current: serde_json::Map<String, Value> = resource["tags"].as_object().cloned().unwrap_or_default();
    let body = req.body.clone().unwrap_or(Value::Null);
    let given: serde_json::Map<String, Value> = body["properties"]["tags"].as_object().cloned().unwrap_or_default();
    let next = match op {
        "Tags_GetAtScope" => current,
        "Tags_CreateOrUpdateAtScope" => given,
        "Tags_DeleteAtScope" => serde_json::Map::new(),
        _ => match body["operation"].as_str() {
            Some("Merge") => current.into_iter().chain(given).collect(),
            Some("Replace") => given,
            Some("Delete") => current
                .into_iter()
                .filter(|(k, v)| {
                    given.get(k).is_none_or(|g| g.as_str().is_some_and(|g| !g.is_empty() && Some(g) != v.as_str()))
                })
                .collect(),
            other => {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    "InvalidTagOperation",
                    format!("The tag operation '{}' is not valid: use Merge, Replace or Delete.", other.unwrap_or("")),
                )
            }
        },
    };
    if next.len() > 50 {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "InvalidTagCount",
            format!("The resource would have {} tags; at most 50 are allowed.", next.len()),
        );
    }
    for (k, v) in &next {
        let value = v.as_str().unwrap_or_default();
        if k.is_empty() || k.chars().count() > 512 || k.chars().any(|c| "<>%&\\?/".contains(c)) {
            return Reply::error(
                StatusCode::BAD_REQUEST,
                "InvalidTagNameCharacters",
                format!("The tag name '{k}' is not valid: 1 to 512 characters, none of <>%&\\?/."),
            );
        }
        if value.chars().count() > 256 {
            return Reply::error(
                StatusCode::BAD_REQUEST,
                "InvalidTagValueLength",
                format!("The value of tag '{k}' is longer than 256 characters."),
            );
        }
    }
    if op != "Tags_GetAtScope" {
        resource["tags"] = Value::Object(next.clone());
    }
    if op == "Tags_DeleteAtScope" {
        return Reply::ok(Value::Null);
    }
    Reply::ok(json!({
        "id": format!("{scope}/providers/Microsoft.Resources/tags/default"),
        "name": "default",
        "type": "Microsoft.Resources/tags",
        "properties": {"tags": next},
    }))
}

// ---------------------------------------------------------------------------------------------------------
// Host pools: registration tokens

/// An opaque registration token, shaped like the JWT AVD issues.
fn make_token(pool: &Value, expires: OffsetDateTime, now: OffsetDateTime) -> String {
    let object_id = pool["properties"]["objectId"].as_str().unwrap_or_default();
    let header = json!({"alg": "RS256", "kid": random_hex(40).to_uppercase(), "typ": "JWT"});
    let payload = json!({
        "RegistrationId": uuid::Uuid::new_v4().to_string(),
        "BrokerURI": "https://rdbroker-g-eu-r1.wvd.microsoft.com/",
        "DiagnosticsUris": ["https://rddiagnostics-g-eu-r1.wvd.microsoft.com/"],
        "EndpointPoolId": object_id,
        "GlobalBrokerUri": "https://rdbroker.wvd.microsoft.com/",
        "Geography": "EU",
        "GlobalBrokerResourceIdUri": format!("https://{object_id}.rdbroker.wvd.microsoft.com/"),
        "BrokerResourceIdUri": format!("https://{object_id}.rdbroker-g-eu-r1.wvd.microsoft.com/"),
        "DiagnosticsResourceIdUri": format!("https://{object_id}.rddiagnostics-g-eu-r1.wvd.microsoft.com/"),
        "AADJoinPreview": false,
        "nbf": now.unix_timestamp(),
        "exp": expires.unix_timestamp(),
        "iss": "RDInfraTokenManager",
        "aud": "RDmi"
    });
    let mut sig = [0u8; 256];
    rand::rng().fill(&mut sig[..]);
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(payload.to_string()),
        URL_SAFE_NO_PAD.encode(sig)
    )
}

fn patch_pool(shared: &Shared, req: &Req) -> Reply {
    let now = shared.clock.now();
    let id = req.id();
    let body = req.body.clone().unwrap_or(json!({}));
    let mut t = tenant_or_reply!(shared);
    let Some(pool) = t.get(&id).cloned() else { return not_found(req) };
    let info = &body["properties"]["registrationInfo"];
    let operation = info["registrationTokenOperation"].as_str().unwrap_or("None");
    let key = lower(&id);
    let mut issued = None;
    match operation {
        "Update" => {
            let Some(raw) = info["expirationTime"].as_str() else {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameter",
                    "registrationInfo.expirationTime is required when registrationTokenOperation is Update.",
                );
            };
            let Ok(expires) = OffsetDateTime::parse(raw, &Rfc3339) else {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameter",
                    format!("registrationInfo.expirationTime '{raw}' is not an ISO 8601 date and time."),
                );
            };
            if expires < now + Duration::hours(1) || expires > now + Duration::days(30) {
                return Reply::error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameter",
                    format!("The registration token expiration time {raw} is not valid: it must be at least 1 hour and at most 30 days after the current time of the service ({}).", rfc3339(now)),
                );
            }
            let token = make_token(&pool, expires, now);
            t.sim.tokens.insert(key.clone(), crate::lifecycle::RegToken { token: token.clone(), expires });
            issued = Some(token);
        }
        "Delete" => {
            t.sim.tokens.remove(&key);
        }
        "None" => {}
        other => {
            return Reply::error(
                StatusCode::BAD_REQUEST,
                "InvalidParameter",
                format!("registrationTokenOperation '{other}' is not one of Delete, None, Update."),
            )
        }
    }
    let registration = match t.sim.tokens.get(&key) {
        Some(tok) => json!({"expirationTime": rfc3339(tok.expires), "registrationTokenOperation": "Update"}),
        None => json!({"registrationTokenOperation": "None"}),
    };
    let Some(p) = t.get_mut(&id) else { return not_found(req) };
    if body["tags"].is_object() {
        p["tags"] = body["tags"].clone();
    }
    if let Some(props) = body["properties"].as_object() {
        let mut props = props.clone();
        props.remove("registrationInfo");
        merge(&mut p["properties"], &Value::Object(props));
    }
    p["properties"]["registrationInfo"] = registration;
    let mut out = p.clone();
    // The token is returned on writes only, never on reads (since api-version 2023-09-05).
    if let Some(token) = issued {
        out["properties"]["registrationInfo"]["token"] = json!(token);
    }
    Reply::ok(out)
}

fn retrieve_token(shared: &Shared, req: &Req) -> Reply {
    let pool_id = format!("/{}", req.segs[..req.segs.len() - 1].join("/"));
    let Ok(t) = shared.tenant.read() else {
        return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "tenant lock poisoned");
    };
    if t.get(&pool_id).is_none() {
        return not_found(req);
    }
    Reply::ok(match t.sim.tokens.get(&lower(&pool_id)) {
        Some(tok) => {
            json!({"expirationTime": rfc3339(tok.expires), "token": tok.token, "registrationTokenOperation": "Update"})
        }
        None => json!({"registrationTokenOperation": "None"}),
    })
}

fn list_tokens(shared: &Shared, req: &Req) -> Reply {
    let pool_id = format!("/{}", req.segs[..req.segs.len() - 1].join("/"));
    let Ok(t) = shared.tenant.read() else {
        return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "tenant lock poisoned");
    };
    if t.get(&pool_id).is_none() {
        return not_found(req);
    }
    let value: Vec<Value> = t
        .sim
        .tokens
        .get(&lower(&pool_id))
        .map(|tok| json!({"expirationTime": rfc3339(tok.expires), "token": tok.token}))
        .into_iter()
        .collect();
    Reply::ok(json!({"value": value}))
}

// ---------------------------------------------------------------------------------------------------------
// Session hosts and user sessions

fn patch_host(shared: &Shared, req: &Req) -> Reply {
    let now = shared.clock.now();
    let id = req.id();
    let body = req.body.clone().unwrap_or(json!({}));
    let mut t = tenant_or_reply!(shared);
    if t.get(&id).is_none() {
        return not_found(req);
    }
    let p = &body["properties"];
    if let Some(allow) = p["allowNewSession"].as_bool() {
        t.set_allow_new_session(&id, allow, now);
    }
    let Some(host) = t.get_mut(&id) else { return not_found(req) };
    for key in ["friendlyName", "assignedUser"] {
        if let Some(v) = p.get(key).filter(|v| v.is_string()) {
            host["properties"][key] = v.clone();
        }
    }
    Reply::ok(host.clone())
}

fn delete_host(shared: &Shared, req: &Req) -> Reply {
    let id = req.id();
    let force = req.query.get("force").is_some_and(|f| f.eq_ignore_ascii_case("true"));
    let mut t = tenant_or_reply!(shared);
    let Some(host) = t.get(&id).cloned() else { return Reply::empty(StatusCode::NO_CONTENT) };
    let sessions = t.list(&format!("{id}/usersessions/"), crate::lifecycle::SESSION_TYPE).count();
    if sessions > 0 && !force {
        let name = req.segs.last().cloned().unwrap_or_default();
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("ActivityId: {} Error: SessionHost '{name}' has {sessions} user session(s). Log the users off first or delete the session host with force=true.", uuid::Uuid::new_v4()),
        );
    }
    t.remove_host(host["id"].as_str().unwrap_or(&id));
    Reply::empty(StatusCode::OK)
}

fn send_message(shared: &Shared, req: &Req) -> Reply {
    let now = shared.clock.now();
    let id = format!("/{}", req.segs[..req.segs.len() - 1].join("/"));
    let body = req.body.clone().unwrap_or(json!({}));
    let mut t = tenant_or_reply!(shared);
    let Some(session) = t.get(&id).cloned() else { return avd_not_found("User session ID") };
    let served = session["id"].as_str().unwrap_or(&id).to_string();
    t.sim.messages.entry(served).or_default().push(Message {
        message_title: body["messageTitle"].as_str().unwrap_or_default().to_string(),
        message_body: body["messageBody"].as_str().unwrap_or_default().to_string(),
        sent_at: rfc3339(now),
    });
    Reply::empty(StatusCode::OK)
}

fn log_off(shared: &Shared, req: &Req) -> Reply {
    let now = shared.clock.now();
    let id = req.id();
    let mut t = tenant_or_reply!(shared);
    let Some(session) = t.get(&id).cloned() else { return avd_not_found("User session ID") };
    t.log_off(session["id"].as_str().unwrap_or(&id), now);
    Reply::empty(StatusCode::OK)
}

fn disconnect(shared: &Shared, req: &Req) -> Reply {
    let id = format!("/{}", req.segs[..req.segs.len() - 1].join("/"));
    let mut t = tenant_or_reply!(shared);
    let Some(session) = t.get_mut(&id) else { return avd_not_found("User session ID") };
    session["properties"]["sessionState"] = json!("Disconnected");
    Reply::empty(StatusCode::OK)
}
