//! Typed ARM writes and reads the rollout engine makes, one function per operation, each at the api-version
//! of the spec it is checked against. Every write is idempotent: a PUT with a deterministic name, a PATCH to a
//! fixed value, a DELETE that treats "already gone" as done. That is what lets a rollout resume after a crash.

use reqwest::Method;
use serde_json::{json, Value};

use crate::client::ArmClient;
use crate::cloud::api_version::{COMPUTE, DESKTOP_VIRTUALIZATION};
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

pub async fn put_extension(client: &ArmClient, vm_id: &str, name: &str, body: &Value) -> Result<Value, AzureError> {
    Ok(client
        .send_lro(Method::PUT, &format!("{vm_id}/extensions/{name}"), &compute(), Some(body))
        .await?
        .unwrap_or(Value::Null))
}
