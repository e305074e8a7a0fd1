//! Entry points into the crate's private parsers, for the property-based fuzz tests (`tests/fuzz.rs`) only. In the
//! app, what Azure, Entra or a browser sends reaches these through an HTTP exchange, which a fuzz case cannot
//! afford. Hidden from the docs and not part of the API: nothing else calls them.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use time::OffsetDateTime;

use crate::client::{self, ArmClient, ArmResponse, RetryPolicy, WritePacer};
use crate::credential::{self, AccessToken};
use crate::error::{AzureError, EntraError};
use crate::signin::{self, BrowserRequest, Callback, DeviceCodePrompt, SignedIn};

/// The error the client returns for an ARM answer that is not a success; `None` when `status` is not an HTTP
/// status (outside 100-999).
pub fn arm_error(status: u16, headers: &HeaderMap, body: &[u8]) -> Option<AzureError> {
    let status = StatusCode::from_u16(status).ok()?;
    let request_id = headers.get("x-ms-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    Some(client::arm_error(status, headers, body, request_id))
}

/// `Retry-After` as the client reads it.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    client::retry_after(headers)
}

/// The wait before the next poll of a long-running operation after `polls` polls.
pub fn poll_interval(policy: &RetryPolicy, headers: &HeaderMap, polls: u32) -> Duration {
    client::poll_interval(policy, headers, polls)
}

/// An `Azure-AsyncOperation` status answer: done, running, or the operation's error. `None` when `status` is not an
/// HTTP status.
pub fn operation_done(status: u16, headers: HeaderMap, body: &[u8]) -> Option<Result<bool, AzureError>> {
    let status = StatusCode::from_u16(status).ok()?;
    let r = ArmResponse { status, headers, body: bytes::Bytes::copy_from_slice(body), request_id: None };
    Some(client::operation_done(&r, "PUT /subscriptions/s/resourceGroups/rg"))
}

/// The waits the write pacer imposes on `writes` writes (or deletes) in a row to one subscription after a response
/// with `headers` (`x-ms-ratelimit-remaining-subscription-writes|deletes`).
pub fn pacing_delays(headers: &HeaderMap, delete: bool, writes: usize) -> Vec<Duration> {
    let method = if delete { reqwest::Method::DELETE } else { reqwest::Method::PUT };
    let url = reqwest::Url::parse("https://management.azure.com/subscriptions/s/resourceGroups/rg").expect("a URL");
    let Some(key) = WritePacer::key(&url, &method) else { return Vec::new() };
    let mut pacer = WritePacer::default();
    pacer.observe(key.clone(), headers);
    (0..writes).map(|_| pacer.delay(&key)).collect()
}

/// Azure's clock as the client judges it after a response with this `Date` header.
pub fn server_now_after(client: &ArmClient, date: &str) -> OffsetDateTime {
    let mut headers = HeaderMap::new();
    if let Ok(v) = reqwest::header::HeaderValue::from_str(date) {
        headers.insert("date", v);
    }
    client.observe_server_clock(&headers);
    client.server_now()
}

/// An Entra error body in the words a service principal's sign-in failure shows.
pub fn entra_message(body: &[u8], status: u16) -> String {
    credential::entra_message(body, status)
}

/// A client-credentials token answer.
pub fn access_token(body: &[u8]) -> Result<AccessToken, AzureError> {
    credential::access_token_from(body)
}

/// Whether a token is fresh enough to use.
pub fn is_fresh(token: &AccessToken) -> bool {
    token.fresh()
}

/// A token endpoint's answer to a person's sign-in (code redemption or device code poll): the session, or why not.
pub fn token_answer(status: u16, body: &[u8], client_id: &str, nonce: Option<&str>) -> Result<SignedIn, AzureError> {
    let reply = signin::read_entra_answer(status, body, "token response")?;
    signin::signed_in(reply, client_id, nonce, "https://management.azure.com/.default")
}

/// A device code endpoint's answer: the prompt, how long the code lives and the poll interval.
pub fn device_code_answer(status: u16, body: &[u8]) -> Result<(DeviceCodePrompt, Duration, Duration), AzureError> {
    let reply = signin::read_entra_answer(status, body, "device code response")?;
    Ok(signin::device_code_schedule(&reply))
}

/// What the loopback listener makes of one request head.
#[derive(Debug)]
pub enum BrowserAnswer {
    Unreadable,
    NotFound,
    NotASignIn,
    Code(String),
    Refused(EntraError),
    StateMismatch,
}

pub fn browser_request(head: &str, expected_state: &str) -> BrowserAnswer {
    match signin::read_browser_request(head, expected_state) {
        BrowserRequest::Unreadable => BrowserAnswer::Unreadable,
        BrowserRequest::NotFound => BrowserAnswer::NotFound,
        BrowserRequest::NotASignIn => BrowserAnswer::NotASignIn,
        BrowserRequest::Answer(Callback::Code(c)) => BrowserAnswer::Code(c),
        BrowserRequest::Answer(Callback::Refused(e)) => BrowserAnswer::Refused(e),
        BrowserRequest::Answer(Callback::StateMismatch) => BrowserAnswer::StateMismatch,
    }
}
