//! Access tokens for ARM: the client-credentials grant (service principals, the simulated tenant) and the
//! Azure CLI's signed-in account (through `azure_identity`).

use std::ffi::OsStr;
use std::fmt;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use crate::error::AzureError;

/// A bearer token. Its value never appears in `Debug` output or logs.
#[derive(Clone)]
pub struct AccessToken {
    value: String,
    pub expires_at: OffsetDateTime,
}

impl AccessToken {
    pub fn new(value: String, expires_at: OffsetDateTime) -> Self {
        AccessToken { value, expires_at }
    }
    pub fn secret(&self) -> &str {
        &self.value
    }
    /// The token's payload claims. Reads the payload only; the token itself is never returned or logged.
    fn claims(&self) -> Option<serde_json::Value> {
        use base64::Engine as _;
        let payload = self.value.split('.').nth(1)?;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Who the token was issued to, as fields: what a sign-off records about its approver.
    pub fn token_identity(&self) -> Option<TokenIdentity> {
        TokenIdentity::from_claims(&self.claims()?)
    }

    /// Who the token was issued to, from its claims (user principal name or app id, and object id), for
    /// recording on evidence.
    pub fn identity(&self) -> Option<String> {
        let claims = self.claims()?;
        let who = ["upn", "unique_name", "preferred_username", "name"]
            .iter()
            .find_map(|k| claims[*k].as_str().filter(|s| !s.is_empty()).map(str::to_string))
            .or_else(|| claims["appid"].as_str().or(claims["azp"].as_str()).map(|a| format!("app {a}")))?;
        Some(match claims["oid"].as_str() {
            Some(oid) => format!("{who} (object id {oid})"),
            None => who,
        })
    }

    /// Refresh a little early so a token does not expire in flight.
    pub(crate) fn fresh(&self) -> bool {
        // Checked: an expiry at the very start of the date range (from the CLI's output) must not panic.
        self.expires_at.checked_sub(time::Duration::minutes(2)).is_some_and(|t| t > OffsetDateTime::now_utc())
    }
}

/// The longest token lifetime believed: Entra's tokens live hours (at most about a day with continuous access
/// evaluation). A larger `expires_in` is cut to this, so the expiry stays a date (`i64::MAX` seconds would panic).
pub(crate) const MAX_TOKEN_LIFETIME_S: i64 = 30 * 24 * 3600;

/// When a token that lives `expires_in` seconds from now expires (a negative lifetime counts as already expired).
pub(crate) fn expiry(expires_in: i64) -> OffsetDateTime {
    OffsetDateTime::now_utc() + time::Duration::seconds(expires_in.clamp(0, MAX_TOKEN_LIFETIME_S))
}

/// Read a client-credentials token answer.
pub(crate) fn access_token_from(body: &[u8]) -> Result<AccessToken, AzureError> {
    let t: TokenResponse = serde_json::from_slice(body).map_err(|e| AzureError::Decode {
        what: "token response".into(),
        detail: e.to_string(),
        request_id: None,
    })?;
    Ok(AccessToken::new(t.access_token, expiry(t.expires_in)))
}

/// A token's subject as Entra states it: object id, display name, tenant, whether it is an application rather than a
/// person, and the groups the token lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenIdentity {
    pub object_id: String,
    /// Display name, else user principal name, else `app <appid>`.
    pub name: String,
    pub username: Option<String>,
    pub tenant_id: String,
    /// An app-only token (a service principal or managed identity): no person behind it.
    pub is_app: bool,
    /// Group object ids from the `groups` claim.
    pub groups: Vec<String>,
    /// Entra left the groups out because there are too many (`_claim_names.groups`): membership cannot be told
    /// from the token.
    pub groups_overage: bool,
}

impl TokenIdentity {
    pub fn from_claims(claims: &serde_json::Value) -> Option<TokenIdentity> {
        let s = |k: &str| claims[k].as_str().filter(|v| !v.is_empty()).map(str::to_string);
        let object_id = s("oid")?;
        let tenant_id = s("tid")?;
        let username = s("upn").or_else(|| s("preferred_username")).or_else(|| s("unique_name"));
        let app_id = s("appid").or_else(|| s("azp"));
        // v1 tokens say `idtyp: app`; without it an app token has no scopes (`scp`) and no user names.
        let is_app = match claims["idtyp"].as_str() {
            Some(t) => t == "app",
            None => s("scp").is_none() && username.is_none(),
        };
        let name = s("name")
            .or_else(|| username.clone())
            .or_else(|| s("app_displayname"))
            .or_else(|| app_id.map(|a| format!("app {a}")))?;
        let groups = claims["groups"]
            .as_array()
            .map(|a| a.iter().filter_map(|g| g.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        let groups_overage = claims["_claim_names"]["groups"].is_string();
        Some(TokenIdentity { object_id, name, username, tenant_id, is_app, groups, groups_overage })
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessToken(<redacted>, expires {})", self.expires_at)
    }
}

#[async_trait::async_trait]
pub trait TokenSource: Send + Sync {
    /// A token for `scope`; `force_refresh` skips the cache (after ARM said 401).
    async fn token(&self, scope: &str, force_refresh: bool) -> Result<AccessToken, AzureError>;
    /// How this source signs in, for the settings screen.
    fn describe(&self) -> String;
}

/// OAuth 2.0 client credentials against Entra v2 (`{authority}/{tenant}/oauth2/v2.0/token`), found through the
/// tenant's OpenID discovery document.
pub struct ClientSecretCredential {
    http: reqwest::Client,
    authority_host: String,
    tenant_id: String,
    client_id: String,
    client_secret: String,
    cache: Mutex<CredentialCache>,
}

impl fmt::Debug for ClientSecretCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientSecretCredential")
            .field("authority_host", &self.authority_host)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// The token endpoint found by discovery, and the last token with its scope.
#[derive(Default)]
struct CredentialCache {
    token_endpoint: Option<String>,
    token: Option<(String, AccessToken)>,
}

#[derive(Deserialize)]
struct Discovery {
    token_endpoint: String,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    expires_in: i64,
}

#[derive(Deserialize)]
struct EntraError {
    error: String,
    #[serde(default)]
    error_description: String,
}

impl ClientSecretCredential {
    pub fn new(
        http: reqwest::Client,
        authority_host: &str,
        tenant_id: &str,
        client_id: &str,
        client_secret: &str,
    ) -> Self {
        ClientSecretCredential {
            http,
            authority_host: authority_host.trim_end_matches('/').to_string(),
            tenant_id: tenant_id.to_string(),
            client_id: client_id.to_string(),
            client_secret: client_secret.to_string(),
            cache: Mutex::new(CredentialCache::default()),
        }
    }

    async fn token_endpoint(&self) -> Result<String, AzureError> {
        let url = format!("{}/{}/v2.0/.well-known/openid-configuration", self.authority_host, self.tenant_id);
        let resp = self.http.get(&url).timeout(Duration::from_secs(30)).send().await.map_err(|e| transport(&url, e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| transport(&url, e))?;
        if !status.is_success() {
            return Err(AzureError::Auth(entra_message(&body, status.as_u16())));
        }
        let d: Discovery = serde_json::from_slice(&body).map_err(|e| AzureError::Decode {
            what: "OpenID discovery document".into(),
            detail: e.to_string(),
            request_id: None,
        })?;
        Ok(d.token_endpoint)
    }
}

/// Turn an Entra error body into plain words (AADSTS code kept for support).
pub(crate) fn entra_message(body: &[u8], status: u16) -> String {
    match serde_json::from_slice::<EntraError>(body) {
        Ok(e) => {
            let first = e.error_description.split(" Trace ID:").next().unwrap_or_default().trim().to_string();
            let hint = if first.starts_with("AADSTS7000215") {
                " Check the client secret: use the secret's value, not its ID."
            } else if first.starts_with("AADSTS700016") {
                " Check the application (client) ID and that the app is registered in this tenant."
            } else if first.starts_with("AADSTS90002") {
                " Check the tenant ID and the cloud."
            } else {
                ""
            };
            let first = if first.is_empty() { "the sign-in service refused the request".to_string() } else { first };
            match e.error.trim() {
                "" => format!("{}.{hint}", first.trim_end_matches('.')),
                error => format!("{first} ({error}).{hint}"),
            }
        }
        Err(_) => format!("the sign-in service answered HTTP {status}"),
    }
}

pub(crate) fn transport(url: &str, e: reqwest::Error) -> AzureError {
    let host = reqwest::Url::parse(url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
    // reqwest's Display includes the URL; keep only the cause chain.
    let mut detail = String::new();
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(&e);
    while let Some(s) = src {
        detail = s.to_string();
        src = s.source();
    }
    if detail.is_empty() {
        detail = if e.is_timeout() { "timed out".into() } else { "connection failed".into() };
    }
    AzureError::Transport { host, detail, timed_out: e.is_timeout() }
}

#[async_trait::async_trait]
impl TokenSource for ClientSecretCredential {
    async fn token(&self, scope: &str, force_refresh: bool) -> Result<AccessToken, AzureError> {
        let mut cache = self.cache.lock().await;
        if !force_refresh {
            if let Some((s, t)) = &cache.token {
                if s == scope && t.fresh() {
                    return Ok(t.clone());
                }
            }
        }
        let endpoint = match &cache.token_endpoint {
            Some(e) => e.clone(),
            None => {
                let e = self.token_endpoint().await?;
                cache.token_endpoint = Some(e.clone());
                e
            }
        };
        let form = [
            ("grant_type", "client_credentials"),
            ("client_id", self.client_id.as_str()),
            ("client_secret", self.client_secret.as_str()),
            ("scope", scope),
        ];
        let resp = self
            .http
            .post(&endpoint)
            .form(&form)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| transport(&endpoint, e))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| transport(&endpoint, e))?;
        if !status.is_success() {
            return Err(AzureError::Auth(entra_message(&body, status.as_u16())));
        }
        let token = access_token_from(&body)?;
        cache.token = Some((scope.to_string(), token.clone()));
        Ok(token)
    }

    fn describe(&self) -> String {
        format!("service principal {} (client secret)", self.client_id)
    }
}

/// The account signed in to the Azure CLI (`az login`), through `azure_identity`.
pub struct AzureCliSource {
    inner: Arc<azure_identity::AzureCliCredential>,
}

/// Runs the Azure CLI for `azure_identity` (`cmd /C az account get-access-token ...` on Windows, `/bin/sh -c ...`
/// elsewhere) as its own executor does, except that on Windows the console process gets no window: without
/// `CREATE_NO_WINDOW` a desktop app would flash a console on every token it asks the CLI for.
#[derive(Debug)]
struct QuietExecutor;

#[async_trait::async_trait]
impl azure_identity::Executor for QuietExecutor {
    async fn run(&self, program: &OsStr, args: &[&OsStr]) -> std::io::Result<Output> {
        let mut command = std::process::Command::new(program);
        command.args(args).stdin(Stdio::null());
        #[cfg(windows)]
        {
            use std::os::windows::process::CommandExt as _;
            // `CREATE_NO_WINDOW`, from the Win32 process creation flags.
            const CREATE_NO_WINDOW: u32 = 0x0800_0000;
            command.creation_flags(CREATE_NO_WINDOW);
        }
        // The CLI takes a second or more: off the async workers, as azure_identity's std executor does.
        tokio::task::spawn_blocking(move || command.output()).await.map_err(std::io::Error::other)?
    }
}

impl AzureCliSource {
    pub fn new(tenant_id: Option<String>) -> Result<Self, AzureError> {
        let options = azure_identity::AzureCliCredentialOptions {
            tenant_id,
            executor: Some(Arc::new(QuietExecutor)),
            ..Default::default()
        };
        let inner = azure_identity::AzureCliCredential::new(Some(options))
            .map_err(|e| AzureError::Config(format!("Azure CLI credential: {e}")))?;
        Ok(AzureCliSource { inner })
    }
}

#[async_trait::async_trait]
impl TokenSource for AzureCliSource {
    async fn token(&self, scope: &str, _force_refresh: bool) -> Result<AccessToken, AzureError> {
        use azure_core::credentials::TokenCredential;
        // The CLI keeps its own cache and refreshes on expiry.
        let t = self.inner.get_token(&[scope], None).await.map_err(|e| {
            AzureError::Auth(format!("the Azure CLI could not provide a token ({e}). Run `az login` and try again."))
        })?;
        Ok(AccessToken::new(t.token.secret().to_string(), t.expires_on))
    }

    fn describe(&self) -> String {
        "Azure CLI (az login)".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn the_cli_runs_through_the_quiet_executor_and_its_output_comes_back() {
        use azure_identity::Executor as _;
        #[cfg(windows)]
        let (program, args) = ("cmd", ["/C", "echo quiet"]);
        #[cfg(not(windows))]
        let (program, args) = ("/bin/sh", ["-c", "echo quiet"]);
        let args: Vec<&OsStr> = args.iter().map(OsStr::new).collect();
        let out = QuietExecutor.run(OsStr::new(program), &args).await.unwrap();
        assert!(out.status.success());
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "quiet");
        let missing = QuietExecutor.run(OsStr::new("/no/such/az"), &[]).await.unwrap_err();
        assert_eq!(missing.kind(), std::io::ErrorKind::NotFound);
    }

    /// Caught by tests/fuzz.rs: a lifetime of `i64::MAX` seconds, and an expiry at the start of the date range,
    /// panicked (`OffsetDateTime` out of range).
    #[test]
    fn absurd_lifetimes_and_expiries_do_not_panic() {
        let t = access_token_from(br#"{"access_token":"x","expires_in":9223372036854775807}"#).unwrap();
        assert!(t.fresh());
        assert!(t.expires_at <= OffsetDateTime::now_utc() + time::Duration::seconds(MAX_TOKEN_LIFETIME_S));
        let t = access_token_from(br#"{"access_token":"x","expires_in":-9223372036854775808}"#).unwrap();
        assert!(!t.fresh());
        let oldest = AccessToken::new("x".into(), time::PrimitiveDateTime::MIN.assume_utc());
        assert!(!oldest.fresh());
    }

    /// Caught by tests/fuzz.rs: an error body with an empty description or error read " (invalid_client)." or "()".
    #[test]
    fn entra_messages_are_never_blank_or_empty_parentheses() {
        assert_eq!(
            entra_message(br#"{"error":"invalid_client"}"#, 401),
            "the sign-in service refused the request (invalid_client)."
        );
        assert_eq!(entra_message(br#"{"error":"","error_description":"Nope."}"#, 400), "Nope.");
        assert_eq!(entra_message(b"<html>", 502), "the sign-in service answered HTTP 502");
    }

    #[test]
    fn a_persons_token_names_them_and_lists_their_groups() {
        let id = TokenIdentity::from_claims(&json!({
            "oid": "o1", "tid": "t1", "name": "Alex Wilber", "upn": "alex@contoso.example", "idtyp": "user",
            "scp": "user_impersonation", "groups": ["g1", "g2"]
        }))
        .unwrap();
        assert_eq!(id.name, "Alex Wilber");
        assert_eq!(id.username.as_deref(), Some("alex@contoso.example"));
        assert!(!id.is_app);
        assert_eq!(id.groups, ["g1", "g2"]);
        assert!(!id.groups_overage);
    }

    #[test]
    fn an_app_token_is_told_apart_with_or_without_idtyp() {
        let with = TokenIdentity::from_claims(&json!({"oid": "o", "tid": "t", "appid": "a", "idtyp": "app"})).unwrap();
        assert!(with.is_app);
        assert_eq!(with.name, "app a");
        let without = TokenIdentity::from_claims(&json!({"oid": "o", "tid": "t", "appid": "a"})).unwrap();
        assert!(without.is_app);
        let v2_user =
            TokenIdentity::from_claims(&json!({"oid": "o", "tid": "t", "preferred_username": "u@x", "scp": "x"}));
        assert!(!v2_user.unwrap().is_app);
    }

    #[test]
    fn group_overage_and_missing_claims_are_reported_not_guessed() {
        let over = TokenIdentity::from_claims(&json!({
            "oid": "o", "tid": "t", "name": "N", "idtyp": "user", "_claim_names": {"groups": "src1"}
        }))
        .unwrap();
        assert!(over.groups_overage);
        assert!(over.groups.is_empty());
        assert!(TokenIdentity::from_claims(&json!({"tid": "t", "name": "N"})).is_none(), "no object id");
        assert!(TokenIdentity::from_claims(&json!({"oid": "o", "name": "N"})).is_none(), "no tenant");
    }
}
