//! Typed ARM writes and reads the rollout engine makes, one function per operation, each at the api-version
//! of the spec it is checked against. Every write is idempotent: a PUT with a deterministic name, a PATCH to a
//! fixed value, a DELETE that treats "already gone" as done. That is what lets a rollout resume after a crash.

use reqwest::Method;
use serde_json::{json, Value};

use std::time::Duration;

use crate::client::{ArmClient, Lro};
use crate::cloud::api_version::{COMPUTE, DESKTOP_VIRTUALIZATION, DISKS, GALLERY};
use crate::error::AzureError;

pub const NETWORK: &str = "2024-05-01";

fn dv() -> [(&'static str, &'static str); 1] {
    [("api-version", DESKTOP_VIRTUALIZATION)]
}

fn compute() -> [(&'static str, &'static str); 1] {
    [("api-version", COMPUTE)]
}

/// True when ARM said the thing is not there (a DELETE that already happened).
pub fn is_not_found(e: &AzureError) -> bool {
    e.status() == Some(404)
}

/// For writes whose goal is that something is gone (or no longer needs doing): 404 counts as done.
fn gone_is_done<T>(r: Result<T, AzureError>) -> Result<(), AzureError> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

// ---- AVD ----

pub async fn get_session_host(client: &ArmClient, host_pool_id: &str, name: &str) -> Result<Option<Value>, AzureError> {
    match client.get_json(&format!("{host_pool_id}/sessionHosts/{name}"), &dv(), "session host").await {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Drain (`false`) or undrain (`true`) a session host.
pub async fn set_allow_new_session(
    client: &ArmClient,
    host_pool_id: &str,
    name: &str,
    allow: bool,
) -> Result<(), AzureError> {
    let url = client.url(&format!("{host_pool_id}/sessionHosts/{name}"), &dv())?;
    client.send(Method::PATCH, url, Some(&json!({"properties": {"allowNewSession": allow}}))).await?;
    Ok(())
}

pub async fn list_user_sessions(client: &ArmClient, host_pool_id: &str, name: &str) -> Result<Vec<Value>, AzureError> {
    client.list_all(&format!("{host_pool_id}/sessionHosts/{name}/userSessions"), &dv(), "user sessions", |_| {}).await
}

/// The id a user session is addressed by: the last segment of its name (`pool/host/3`).
pub fn user_session_id(session: &Value) -> Option<String> {
    session["name"].as_str().and_then(|n| n.rsplit('/').next()).map(str::to_string)
}

pub async fn send_message(
    client: &ArmClient,
    host_pool_id: &str,
    name: &str,
    session_id: &str,
    title: &str,
    body: &str,
) -> Result<(), AzureError> {
    let url =
        client.url(&format!("{host_pool_id}/sessionHosts/{name}/userSessions/{session_id}/sendMessage"), &dv())?;
    // A user who logged off between listing and messaging needs no message.
    gone_is_done(client.send(Method::POST, url, Some(&json!({"messageTitle": title, "messageBody": body}))).await)
}

/// Log a user off (force). Already gone counts as done.
pub async fn log_off(client: &ArmClient, host_pool_id: &str, name: &str, session_id: &str) -> Result<(), AzureError> {
    let url = client.url(
        &format!("{host_pool_id}/sessionHosts/{name}/userSessions/{session_id}"),
        &[("api-version", DESKTOP_VIRTUALIZATION), ("force", "true")],
    )?;
    gone_is_done(client.send(Method::DELETE, url, None).await)
}

/// Remove the session host registration (not the VM). Already gone counts as done.
pub async fn delete_session_host(client: &ArmClient, host_pool_id: &str, name: &str) -> Result<(), AzureError> {
    let url = client.url(
        &format!("{host_pool_id}/sessionHosts/{name}"),
        &[("api-version", DESKTOP_VIRTUALIZATION), ("force", "true")],
    )?;
    gone_is_done(client.send(Method::DELETE, url, None).await)
}

/// The pool's registration token and its expiry, if it has one.
pub async fn retrieve_registration_token(
    client: &ArmClient,
    host_pool_id: &str,
) -> Result<Option<(String, String)>, AzureError> {
    let url = client.url(&format!("{host_pool_id}/retrieveRegistrationToken"), &dv())?;
    let v: Value = client.send(Method::POST, url, None).await?.json("registration token")?;
    match (v["token"].as_str(), v["expirationTime"].as_str()) {
        (Some(t), Some(exp)) if !t.is_empty() => Ok(Some((t.to_string(), exp.to_string()))),
        _ => Ok(None),
    }
}

/// Issue or renew the pool's registration token, valid until `expiration` (RFC 3339).
pub async fn renew_registration_token(
    client: &ArmClient,
    host_pool_id: &str,
    expiration: &str,
) -> Result<(), AzureError> {
    let url = client.url(host_pool_id, &dv())?;
    let body = json!({"properties": {"registrationInfo": {"expirationTime": expiration, "registrationTokenOperation": "Update"}}});
    client.send(Method::PATCH, url, Some(&body)).await?;
    Ok(())
}

// ---- Compute and network ----

pub async fn get_vm(client: &ArmClient, vm_id: &str) -> Result<Option<Value>, AzureError> {
    match client.get_json(vm_id, &compute(), "virtual machine").await {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

pub async fn get_nic(client: &ArmClient, nic_id: &str) -> Result<Option<Value>, AzureError> {
    match client.get_json(nic_id, &[("api-version", NETWORK)], "network interface").await {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Delete a VM (its OS disk and NIC go with it when their deleteOption is Delete). Already gone is done.
pub async fn delete_vm(client: &ArmClient, vm_id: &str) -> Result<(), AzureError> {
    gone_is_done(client.send_lro(Method::DELETE, vm_id, &compute(), None).await)
}

/// [`delete_vm`], with the caller's least waits before its first two polls.
/// Returns how long Azure says the delete ran, when it says (not when the VM was already gone).
pub async fn delete_vm_after(
    client: &ArmClient,
    vm_id: &str,
    waits: [Duration; 2],
) -> Result<Option<Duration>, AzureError> {
    let lro = Lro { waits, result: false };
    match client.send_lro_with(Method::DELETE, vm_id, &compute(), None, lro).await {
        Ok(done) => Ok(done.took),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Create or update a NIC and wait for it, without reading it back.
pub async fn put_nic_after(
    client: &ArmClient,
    nic_id: &str,
    body: &Value,
    waits: [Duration; 2],
) -> Result<Option<Duration>, AzureError> {
    let lro = Lro { waits, result: false };
    Ok(client.send_lro_with(Method::PUT, nic_id, &[("api-version", NETWORK)], Some(body), lro).await?.took)
}

/// Create or update a VM and wait until it has provisioned (a failed provisioning is an error), without reading
/// it back.
pub async fn put_vm_after(
    client: &ArmClient,
    vm_id: &str,
    body: &Value,
    waits: [Duration; 2],
) -> Result<Option<Duration>, AzureError> {
    let lro = Lro { waits, result: false };
    Ok(client.send_lro_with(Method::PUT, vm_id, &compute(), Some(body), lro).await?.took)
}

/// Create or update a VM extension and wait for its install, without reading it back.
pub async fn put_extension_after(
    client: &ArmClient,
    vm_id: &str,
    name: &str,
    body: &Value,
    waits: [Duration; 2],
) -> Result<Option<Duration>, AzureError> {
    let lro = Lro { waits, result: false };
    Ok(client
        .send_lro_with(Method::PUT, &format!("{vm_id}/extensions/{name}"), &compute(), Some(body), lro)
        .await?
        .took)
}

pub async fn deallocate_vm(client: &ArmClient, vm_id: &str) -> Result<(), AzureError> {
    client.send_lro(Method::POST, &format!("{vm_id}/deallocate"), &compute(), None).await?;
    Ok(())
}

pub async fn start_vm(client: &ArmClient, vm_id: &str) -> Result<(), AzureError> {
    client.send_lro(Method::POST, &format!("{vm_id}/start"), &compute(), None).await?;
    Ok(())
}

/// Delete a NIC left behind (deleteOption was not Delete). Already gone is done.
pub async fn delete_nic(client: &ArmClient, nic_id: &str) -> Result<(), AzureError> {
    gone_is_done(client.send_lro(Method::DELETE, nic_id, &[("api-version", NETWORK)], None).await)
}

pub async fn put_nic(client: &ArmClient, nic_id: &str, body: &Value) -> Result<Value, AzureError> {
    Ok(client.send_lro(Method::PUT, nic_id, &[("api-version", NETWORK)], Some(body)).await?.unwrap_or(Value::Null))
}

pub async fn put_vm(client: &ArmClient, vm_id: &str, body: &Value) -> Result<Value, AzureError> {
    Ok(client.send_lro(Method::PUT, vm_id, &compute(), Some(body)).await?.unwrap_or(Value::Null))
}

// ---- Golden master and capture ----

fn disks() -> [(&'static str, &'static str); 1] {
    [("api-version", DISKS)]
}

fn gallery() -> [(&'static str, &'static str); 1] {
    [("api-version", GALLERY)]
}

async fn get_optional(
    client: &ArmClient,
    id: &str,
    query: &[(&str, &str)],
    what: &str,
) -> Result<Option<Value>, AzureError> {
    match client.get_json(id, query, what).await {
        Ok(v) => Ok(Some(v)),
        Err(e) if is_not_found(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The VM's instance view (power state, OS state, statuses).
pub async fn vm_instance_view(client: &ArmClient, vm_id: &str) -> Result<Value, AzureError> {
    client.get_json(&format!("{vm_id}/instanceView"), &compute(), "instance view").await
}

/// `running`, `stopped`, `deallocated`, ... from an instance view's `PowerState/...` status.
pub fn power_state(instance_view: &Value) -> Option<String> {
    status_suffix(instance_view, "PowerState/")
}

/// True when the instance view says the OS is generalized.
pub fn is_generalized(instance_view: &Value) -> bool {
    status_suffix(instance_view, "OSState/").as_deref() == Some("generalized")
}

fn status_suffix(instance_view: &Value, prefix: &str) -> Option<String> {
    instance_view["statuses"]
        .as_array()?
        .iter()
        .filter_map(|s| s["code"].as_str())
        .find_map(|c| c.strip_prefix(prefix).map(str::to_string))
}

pub async fn generalize_vm(client: &ArmClient, vm_id: &str) -> Result<(), AzureError> {
    // Synchronous (200) per the spec.
    let url = client.url(&format!("{vm_id}/generalize"), &compute())?;
    client.send(Method::POST, url, None).await?;
    Ok(())
}

pub async fn get_snapshot(client: &ArmClient, id: &str) -> Result<Option<Value>, AzureError> {
    get_optional(client, id, &disks(), "snapshot").await
}

pub async fn put_snapshot(client: &ArmClient, id: &str, body: &Value) -> Result<Value, AzureError> {
    Ok(client.send_lro(Method::PUT, id, &disks(), Some(body)).await?.unwrap_or(Value::Null))
}

pub async fn delete_snapshot(client: &ArmClient, id: &str) -> Result<(), AzureError> {
    gone_is_done(client.send_lro(Method::DELETE, id, &disks(), None).await)
}

pub async fn get_disk(client: &ArmClient, id: &str) -> Result<Option<Value>, AzureError> {
    get_optional(client, id, &disks(), "managed disk").await
}

pub async fn put_disk(client: &ArmClient, id: &str, body: &Value) -> Result<Value, AzureError> {
    Ok(client.send_lro(Method::PUT, id, &disks(), Some(body)).await?.unwrap_or(Value::Null))
}

pub async fn delete_disk(client: &ArmClient, id: &str) -> Result<(), AzureError> {
    gone_is_done(client.send_lro(Method::DELETE, id, &disks(), None).await)
}

/// Create or update a managed run command. With `asyncExecution: true` this returns once Azure accepted it;
/// the script's progress is then read with [`get_run_command`].
pub async fn put_run_command(client: &ArmClient, vm_id: &str, name: &str, body: &Value) -> Result<Value, AzureError> {
    Ok(client
        .send_lro(Method::PUT, &format!("{vm_id}/runCommands/{name}"), &compute(), Some(body))
        .await?
        .unwrap_or(Value::Null))
}

/// A managed run command with its instance view (execution state, exit code, output so far).
pub async fn get_run_command(client: &ArmClient, vm_id: &str, name: &str) -> Result<Option<Value>, AzureError> {
    get_optional(
        client,
        &format!("{vm_id}/runCommands/{name}"),
        &[("api-version", COMPUTE), ("$expand", "instanceView")],
        "run command",
    )
    .await
}

pub async fn list_run_commands(client: &ArmClient, vm_id: &str) -> Result<Vec<Value>, AzureError> {
    client.list_all(&format!("{vm_id}/runCommands"), &compute(), "run commands", |_| {}).await
}

/// Delete a finished run command so they do not pile up in the VM model. Already gone is done.
pub async fn delete_run_command(client: &ArmClient, vm_id: &str, name: &str) -> Result<(), AzureError> {
    gone_is_done(client.send_lro(Method::DELETE, &format!("{vm_id}/runCommands/{name}"), &compute(), None).await)
}

pub async fn get_image_version(client: &ArmClient, id: &str) -> Result<Option<Value>, AzureError> {
    get_optional(client, id, &[("api-version", GALLERY), ("$expand", "ReplicationStatus")], "image version").await
}

pub async fn put_image_version(client: &ArmClient, id: &str, body: &Value) -> Result<Value, AzureError> {
    Ok(client.send_lro(Method::PUT, id, &gallery(), Some(body)).await?.unwrap_or(Value::Null))
}

pub async fn delete_image_version(client: &ArmClient, id: &str) -> Result<(), AzureError> {
    gone_is_done(client.send_lro(Method::DELETE, id, &gallery(), None).await)
}

pub async fn list_image_versions(client: &ArmClient, image_definition_id: &str) -> Result<Vec<Value>, AzureError> {
    client.list_all(&format!("{image_definition_id}/versions"), &gallery(), "image versions", |_| {}).await
}

pub async fn get_image_definition(client: &ArmClient, id: &str) -> Result<Option<Value>, AzureError> {
    get_optional(client, id, &gallery(), "image definition").await
}

/// Compute quota usage in a region (`cores`, per-family vCPUs).
pub async fn list_usages(client: &ArmClient, subscription_id: &str, location: &str) -> Result<Vec<Value>, AzureError> {
    client
        .list_all(
            &format!("/subscriptions/{subscription_id}/providers/Microsoft.Compute/locations/{location}/usages"),
            &compute(),
            "compute usage",
            |_| {},
        )
        .await
}

/// Make a release visible to `latest` (it reached Prod): `excludeFromLatest=false` on the version and on each of
/// its target regions (latest resolves per region). Idempotent.
pub async fn publish_to_latest(client: &ArmClient, version_id: &str) -> Result<(), AzureError> {
    set_exclude_from_latest(client, version_id, false).await
}

/// Hide a version from `latest` or show it, everywhere it is replicated. The update body carries the version's
/// source as read, because the spec requires `storageProfile` on update.
pub async fn set_exclude_from_latest(client: &ArmClient, version_id: &str, exclude: bool) -> Result<(), AzureError> {
    let v = client.get_json::<Value>(version_id, &gallery(), "image version").await?;
    let regions: Vec<Value> = v["properties"]["publishingProfile"]["targetRegions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| {
            let mut t = json!({"name": r["name"], "excludeFromLatest": exclude});
            for k in ["regionalReplicaCount", "storageAccountType"] {
                if !r[k].is_null() {
                    t[k] = r[k].clone();
                }
            }
            t
        })
        .collect();
    let mut profile = json!({"excludeFromLatest": exclude});
    if !regions.is_empty() {
        profile["targetRegions"] = Value::Array(regions);
    }
    let body = json!({"properties": {
        "publishingProfile": profile,
        "storageProfile": {"source": v["properties"]["storageProfile"]["source"]}
    }});
    client.send_lro(Method::PATCH, version_id, &gallery(), Some(&body)).await?;
    Ok(())
}

/// Merge tags into a resource without rewriting it (`Tags_UpdateAtScope`, operation `Merge`): other tags stay as
/// they are, so two apps signing off at once do not erase each other. Returns the resource's tags afterwards.
pub async fn merge_tags(
    client: &ArmClient,
    resource_id: &str,
    tags: &std::collections::BTreeMap<String, String>,
) -> Result<std::collections::BTreeMap<String, String>, AzureError> {
    let body = json!({"operation": "Merge", "properties": {"tags": tags}});
    let reply = client
        .send_lro(
            Method::PATCH,
            &format!("{resource_id}/providers/Microsoft.Resources/tags/default"),
            &[("api-version", crate::cloud::api_version::RESOURCES)],
            Some(&body),
        )
        .await?
        .unwrap_or(Value::Null);
    Ok(reply["properties"]["tags"]
        .as_object()
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default())
}
