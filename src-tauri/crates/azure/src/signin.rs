//! A person signing in to Entra through the desktop app (a public client): authorization code + PKCE with the system
//! browser and a loopback redirect, or the device code flow; then ARM tokens for any tenant the person reaches, from
//! the refresh token. Entra rotates refresh tokens: the newest is always kept and handed to a [`TokenCache`] to store
//! (encrypted, by the app).
//!
//! Nothing here logs, prints or puts in an error a token, an authorization code, a PKCE verifier or a refresh token.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::Rng;
use reqwest::Url;
use serde::{Deserialize, Deserializer, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::CancellationToken;

use crate::client::ArmClient;
use crate::cloud::{api_version, Cloud};
use crate::credential::{expiry, transport, AccessToken, TokenSource, MAX_TOKEN_LIFETIME_S};
use crate::error::{AzureError, EntraError, SignInError};

/// Asked with every resource scope: an ID token, the profile claims, and a refresh token.
const OIDC_SCOPES: &str = "openid profile offline_access";
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// RFC 8628 §3.5: after `slow_down`, poll five seconds slower from then on.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A public-client app registration in a cloud, and the authority a person signs in through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicClientApp {
    pub cloud: Cloud,
    pub client_id: String,
    /// A tenant id or domain, or `organizations` for any work account.
    pub tenant: String,
}

impl PublicClientApp {
    pub fn new(cloud: Cloud, client_id: &str, tenant: &str) -> Self {
        PublicClientApp { cloud, client_id: client_id.to_string(), tenant: tenant.to_string() }
    }
}

fn with_oidc(resource_scope: &str) -> String {
    format!("{resource_scope} {OIDC_SCOPES}")
}

/// A refresh token. Its value never appears in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    pub fn new(value: String) -> Self {
        RefreshToken(value)
    }
    /// The value, for storing it (encrypted) and nothing else.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

/// Who signed in, from the ID token and `client_info`. Not secret: the app may keep it in its settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    /// `uid.utid`: the person's object id and tenant at home, the same whatever tenant they signed in to.
    pub home_account_id: String,
    pub home_tenant_id: String,
    /// The person's object id in the tenant signed in to (a guest has another one there).
    pub object_id: String,
    /// The tenant signed in to.
    pub tenant_id: String,
    /// `preferred_username`, usually the UPN.
    pub username: String,
    pub name: String,
}

/// A completed interactive sign-in.
pub struct SignedIn {
    pub account: Account,
    pub access_token: AccessToken,
    /// The resource scope the access token is for.
    pub scope: String,
    pub refresh_token: Option<RefreshToken>,
}

impl fmt::Debug for SignedIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedIn")
            .field("account", &self.account)
            .field("access_token", &self.access_token)
            .field("scope", &self.scope)
            .field("refresh_token", &self.refresh_token)
            .finish()
    }
}

fn random_urlsafe(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    // ThreadRng is a CSPRNG seeded from the OS.
    rand::rng().fill(&mut b[..]);
    URL_SAFE_NO_PAD.encode(b)
}

/// PKCE (RFC 7636) with S256: the verifier stays here, its hash goes through the browser.
struct Pkce {
    verifier: String,
    challenge: String,
}

impl Pkce {
    fn new() -> Pkce {
        // 64 random bytes: 86 characters, within the 43-128 RFC 7636 allows.
        let verifier = random_urlsafe(64);
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        Pkce { verifier, challenge }
    }
}

/// One authorization request: the URL for the browser, and what its answer must match.
pub struct AuthorizationRequest {
    url: Url,
    redirect_uri: String,
    state: String,
    nonce: String,
    pkce: Pkce,
}

impl AuthorizationRequest {
    /// The URL to open in the browser (carries `state`, `nonce` and the PKCE challenge, never the verifier).
    pub fn url(&self) -> &Url {
        &self.url
    }
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }
}

impl fmt::Debug for AuthorizationRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthorizationRequest")
            .field("endpoint", &format!("{}{}", self.url.origin().ascii_serialization(), self.url.path()))
            .field("redirect_uri", &self.redirect_uri)
            .finish_non_exhaustive()
    }
}

/// Interactive sign-in with the system browser: authorization code + PKCE, answered on a loopback listener.
///
/// ```no_run
/// # async fn f(http: reqwest::Client, app: ringmaster_azure::PublicClientApp) -> Result<(), ringmaster_azure::AzureError> {
/// let cancel = tokio_util::sync::CancellationToken::new();
/// let signed_in = ringmaster_azure::AuthCodeFlow::new(http, app)
///     // The app opens the system browser here; tests follow the redirect themselves.
///     .sign_in(|url| { println!("open {url}"); Ok(()) }, cancel)
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AuthCodeFlow {
    http: reqwest::Client,
    app: PublicClientApp,
    resource_scope: String,
    timeout: Duration,
    login_hint: Option<String>,
    prompt: Option<String>,
    ip_literal_redirect: bool,
}

/// What the browser brought back to the loopback listener.
pub(crate) enum Callback {
    Code(String),
    Refused(EntraError),
    StateMismatch,
}

impl AuthCodeFlow {
    /// ARM's scope in the app's cloud, five minutes to finish, `prompt=select_account`.
    pub fn new(http: reqwest::Client, app: PublicClientApp) -> Self {
        AuthCodeFlow {
            http,
            resource_scope: app.cloud.arm_scope.clone(),
            app,
            timeout: Duration::from_secs(300),
            login_hint: None,
            prompt: Some("select_account".into()),
            ip_literal_redirect: false,
        }
    }
    pub fn with_scope(mut self, resource_scope: &str) -> Self {
        self.resource_scope = resource_scope.to_string();
        self
    }
    /// How long to wait for the browser to come back.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    pub fn with_login_hint(mut self, username: &str) -> Self {
        self.login_hint = Some(username.to_string());
        self
    }
    /// `select_account`, `login`, `consent`, or none.
    pub fn with_prompt(mut self, prompt: Option<&str>) -> Self {
        self.prompt = prompt.map(str::to_string);
        self
    }
    /// Redirect to `http://127.0.0.1:<port>` instead of `http://localhost:<port>` (the app registration must list
    /// the IP literal then).
    pub fn with_ip_literal_redirect(mut self) -> Self {
        self.ip_literal_redirect = true;
        self
    }

    /// A fresh request (new state, nonce and PKCE pair) for `redirect_uri`.
    pub fn authorization_request(&self, redirect_uri: &str) -> Result<AuthorizationRequest, AzureError> {
        let pkce = Pkce::new();
        let state = random_urlsafe(32);
        let nonce = random_urlsafe(32);
        let endpoint = self.app.cloud.authorize_endpoint(&self.app.tenant);
        let mut url = Url::parse(&endpoint)
            .map_err(|e| AzureError::Config(format!("the sign-in endpoint '{endpoint}' is not a URL: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("client_id", &self.app.client_id);
            q.append_pair("response_type", "code");
            q.append_pair("redirect_uri", redirect_uri);
            q.append_pair("response_mode", "query");
            q.append_pair("scope", &with_oidc(&self.resource_scope));
            q.append_pair("state", &state);
            q.append_pair("nonce", &nonce);
            q.append_pair("code_challenge", &pkce.challenge);
            q.append_pair("code_challenge_method", "S256");
            q.append_pair("client_info", "1");
            if let Some(p) = &self.prompt {
                q.append_pair("prompt", p);
            }
            if let Some(h) = &self.login_hint {
                q.append_pair("login_hint", h);
            }
        }
        Ok(AuthorizationRequest { url, redirect_uri: redirect_uri.to_string(), state, nonce, pkce })
    }

    /// Listen on loopback, hand the authorize URL to `open_browser`, wait for the redirect, check `state`, redeem
    /// the code with the PKCE verifier and check the ID token's `nonce`.
    pub async fn sign_in<F>(&self, open_browser: F, cancel: CancellationToken) -> Result<SignedIn, AzureError>
    where
        F: FnOnce(&Url) -> Result<(), String> + Send,
    {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|e| AzureError::SignIn(SignInError::Listener(e.to_string())))?;
        let port = listener.local_addr().map_err(|e| AzureError::SignIn(SignInError::Listener(e.to_string())))?.port();
        let host = if self.ip_literal_redirect { "127.0.0.1" } else { "localhost" };
        let request = self.authorization_request(&format!("http://{host}:{port}"))?;
        open_browser(request.url()).map_err(|e| AzureError::SignIn(SignInError::Browser(e)))?;

        let expected_state: Arc<str> = request.state.clone().into();
        let (tx, mut rx) = mpsc::channel::<Callback>(4);
        // Each connection on its own task: a browser's idle pre-connection must not hold up the real redirect.
        let mut connections = tokio::task::JoinSet::new();
        let deadline = tokio::time::sleep(self.timeout);
        tokio::pin!(deadline);
        let code = loop {
            tokio::select! {
                _ = cancel.cancelled() => return Err(AzureError::Cancelled),
                _ = &mut deadline => return Err(AzureError::SignIn(SignInError::TimedOut(self.timeout.as_secs()))),
                Some(callback) = rx.recv() => match callback {
                    Callback::Code(code) => break code,
                    Callback::Refused(e) => return Err(AzureError::Entra(Box::new(e))),
                    Callback::StateMismatch => return Err(AzureError::SignIn(SignInError::StateMismatch)),
                },
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        let (tx, state) = (tx.clone(), expected_state.clone());
                        connections.spawn(async move {
                            if let Some(callback) = answer_browser(stream, &state).await {
                                let _ = tx.send(callback).await;
                            }
                        });
                    }
                    Err(e) => return Err(AzureError::SignIn(SignInError::Listener(e.to_string()))),
                },
            }
        };
        drop(connections);

        let scope = with_oidc(&self.resource_scope);
        let form = [
            ("client_id", self.app.client_id.as_str()),
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", request.redirect_uri.as_str()),
            ("code_verifier", request.pkce.verifier.as_str()),
            ("scope", scope.as_str()),
            ("client_info", "1"),
        ];
        let endpoint = self.app.cloud.token_endpoint(&self.app.tenant);
        let reply = cancellable(&cancel, post_token(&self.http, &endpoint, &form)).await?;
        let signed_in = signed_in(reply, &self.app.client_id, Some(&request.nonce), &self.resource_scope)?;
        tracing::info!("signed in as {} (tenant {})", signed_in.account.username, signed_in.account.tenant_id);
        Ok(signed_in)
    }
}

impl AuthCodeFlow {
    /// Sign in where the directory consents without a person (the simulated tenant): `browser` (an HTTP client
    /// that follows no redirects) plays the browser, requesting the authorize URL and delivering its redirect to
    /// the loopback listener. Everything else is the interactive flow: PKCE, state and nonce are checked alike.
    pub async fn sign_in_unattended(&self, browser: reqwest::Client) -> Result<SignedIn, AzureError> {
        let open = move |url: &Url| {
            let url = url.clone();
            tokio::spawn(async move {
                let Ok(resp) = browser.get(url).send().await else { return };
                let location = resp.headers().get("location").and_then(|l| l.to_str().ok()).map(str::to_string);
                if let Some(location) = location {
                    let _ = browser.get(location).send().await;
                }
            });
            Ok(())
        };
        self.sign_in(open, CancellationToken::new()).await
    }
}

async fn cancellable<T>(
    cancel: &CancellationToken,
    work: impl Future<Output = Result<T, AzureError>>,
) -> Result<T, AzureError> {
    tokio::select! {
        _ = cancel.cancelled() => Err(AzureError::Cancelled),
        r = work => r,
    }
}

/// Read one HTTP request from the browser and answer it with a small page. Returns what a sign-in answer said;
/// `None` for anything else (a favicon, a probe), which gets a 404 or 400.
async fn answer_browser(mut stream: TcpStream, expected_state: &str) -> Option<Callback> {
    let head = tokio::time::timeout(Duration::from_secs(10), read_head(&mut stream)).await.ok()??;
    let callback = match read_browser_request(&head, expected_state) {
        BrowserRequest::Unreadable => return None,
        BrowserRequest::NotFound => {
            respond(&mut stream, "404 Not Found", "Not found", "This address only receives the sign-in answer.").await;
            return None;
        }
        BrowserRequest::NotASignIn => {
            respond(
                &mut stream,
                "400 Bad Request",
                "Not a sign-in answer",
                "This address only receives the sign-in answer.",
            )
            .await;
            return None;
        }
        BrowserRequest::Answer(callback) => callback,
    };
    match &callback {
        Callback::Code(_) => {
            respond(&mut stream, "200 OK", "Signed in", "Ringmaster received your sign-in. You can close this window.")
                .await
        }
        Callback::Refused(e) => {
            let text =
                format!("The sign-in did not complete: {e}. You can close this window and try again in Ringmaster.");
            respond(&mut stream, "200 OK", "Sign-in failed", &text).await
        }
        Callback::StateMismatch => {
            respond(
                &mut stream,
                "400 Bad Request",
                "Sign-in failed",
                "This answer does not belong to the sign-in Ringmaster started. Close this window and start again.",
            )
            .await
        }
    }
    Some(callback)
}

/// What one request to the loopback listener is.
pub(crate) enum BrowserRequest {
    /// Not HTTP: the connection is dropped.
    Unreadable,
    NotFound,
    NotASignIn,
    Answer(Callback),
}

/// Read a request head (anything on this machine can send one): only `GET /?...` with a `code` or an `error` is a
/// sign-in answer, and only one carrying the expected `state` is this sign-in's.
pub(crate) fn read_browser_request(head: &str, expected_state: &str) -> BrowserRequest {
    let mut words = head.lines().next().unwrap_or_default().split_whitespace();
    let (Some(method), Some(target)) = (words.next(), words.next()) else { return BrowserRequest::Unreadable };
    let Ok(url) = Url::parse(&format!("http://127.0.0.1{target}")) else { return BrowserRequest::Unreadable };
    if method != "GET" || url.path() != "/" {
        return BrowserRequest::NotFound;
    }
    let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
    if !q.contains_key("code") && !q.contains_key("error") {
        return BrowserRequest::NotASignIn;
    }
    BrowserRequest::Answer(if q.get("state").map(String::as_str) != Some(expected_state) {
        Callback::StateMismatch
    } else if let Some(error) = q.get("error") {
        Callback::Refused(EntraError::from_parts(error, q.get("error_description").map(String::as_str).unwrap_or("")))
    } else {
        Callback::Code(q.get("code").cloned().unwrap_or_default())
    })
}

async fn read_head(stream: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::with_capacity(2048);
    let mut chunk = [0u8; 2048];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        // A redirect with a code and state is well under this.
        if buf.len() > 32 * 1024 {
            return None;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(buf).ok()
}

async fn respond(stream: &mut TcpStream, status: &str, title: &str, text: &str) {
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{t}</title></head>\
         <body style=\"font-family:system-ui,sans-serif;margin:3em\"><h1>{t}</h1><p>{x}</p></body></html>",
        t = html_escape(title),
        x = html_escape(text)
    );
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// A token endpoint's success answer.
#[derive(Deserialize)]
pub(crate) struct TokenReply {
    access_token: String,
    #[serde(deserialize_with = "seconds")]
    expires_in: i64,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
    #[serde(default)]
    client_info: Option<String>,
}

/// Entra sends `expires_in` as a number (v2) or a string (older endpoints).
fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_i64().ok_or_else(|| serde::de::Error::custom("expires_in out of range")),
        serde_json::Value::String(s) => s.parse().map_err(serde::de::Error::custom),
        _ => Err(serde::de::Error::custom("expires_in is not a number")),
    }
}

async fn post_token(http: &reqwest::Client, endpoint: &str, form: &[(&str, &str)]) -> Result<TokenReply, AzureError> {
    let resp =
        http.post(endpoint).form(form).timeout(REQUEST_TIMEOUT).send().await.map_err(|e| transport(endpoint, e))?;
    let status = resp.status();
    let body = resp.bytes().await.map_err(|e| transport(endpoint, e))?;
    read_entra_answer(status.as_u16(), &body, "token response")
}

/// Read a token or device code endpoint's answer: the reply on a 2xx, else Entra's error.
pub(crate) fn read_entra_answer<T: serde::de::DeserializeOwned>(
    status: u16,
    body: &[u8],
    what: &str,
) -> Result<T, AzureError> {
    if !(200..300).contains(&status) {
        return Err(match EntraError::from_body(body, status) {
            Some(e) => AzureError::Entra(Box::new(e)),
            None => AzureError::Auth(format!("the sign-in service answered HTTP {status}")),
        });
    }
    // serde's message could quote a value; only say where the answer was unreadable.
    serde_json::from_slice(body).map_err(|e| AzureError::Decode {
        what: what.into(),
        detail: format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column()),
        request_id: None,
    })
}

#[derive(Deserialize)]
struct IdClaims {
    aud: String,
    #[serde(default)]
    nonce: Option<String>,
    #[serde(default)]
    oid: String,
    #[serde(default)]
    tid: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    preferred_username: String,
    #[serde(default)]
    exp: i64,
}

#[derive(Deserialize)]
struct ClientInfo {
    uid: String,
    utid: String,
}

fn jwt_payload<T: serde::de::DeserializeOwned>(jwt: &str) -> Option<T> {
    let payload = jwt.split('.').nth(1)?;
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?).ok()
}

/// The ID token came straight from the token endpoint over TLS, which OpenID Connect Core §3.1.3.7 accepts in
/// place of checking its signature; its audience, expiry and nonce are checked here.
fn read_id_token(id_token: &str, client_id: &str, nonce: Option<&str>) -> Result<IdClaims, AzureError> {
    let bad = |why: &str| AzureError::SignIn(SignInError::InvalidIdToken(why.to_string()));
    let claims: IdClaims = jwt_payload(id_token).ok_or_else(|| bad("it could not be read"))?;
    if claims.aud != client_id {
        return Err(bad("it was issued for another app"));
    }
    if claims.exp != 0 && claims.exp.saturating_add(300) < OffsetDateTime::now_utc().unix_timestamp() {
        return Err(bad("it has expired"));
    }
    if let Some(expected) = nonce {
        if claims.nonce.as_deref() != Some(expected) {
            return Err(AzureError::SignIn(SignInError::NonceMismatch));
        }
    }
    Ok(claims)
}

pub(crate) fn signed_in(
    reply: TokenReply,
    client_id: &str,
    nonce: Option<&str>,
    scope: &str,
) -> Result<SignedIn, AzureError> {
    let id_token = reply.id_token.as_deref().ok_or(AzureError::SignIn(SignInError::Incomplete("ID token")))?;
    let claims = read_id_token(id_token, client_id, nonce)?;
    let home = reply
        .client_info
        .as_deref()
        .and_then(|c| URL_SAFE_NO_PAD.decode(c.trim_end_matches('=')).ok())
        .and_then(|b| serde_json::from_slice::<ClientInfo>(&b).ok());
    let (uid, utid) = match home {
        Some(h) => (h.uid, h.utid),
        None => (claims.oid.clone(), claims.tid.clone()),
    };
    Ok(SignedIn {
        account: Account {
            home_account_id: format!("{uid}.{utid}"),
            home_tenant_id: utid,
            object_id: claims.oid,
            tenant_id: claims.tid,
            username: claims.preferred_username,
            name: claims.name,
        },
        access_token: AccessToken::new(reply.access_token, expiry(reply.expires_in)),
        scope: scope.to_string(),
        refresh_token: reply.refresh_token.map(RefreshToken),
    })
}

/// What the person is asked to do in the device code flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeviceCodePrompt {
    pub user_code: String,
    pub verification_uri: String,
    /// Entra's own instruction, localized to the request.
    pub message: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

#[derive(Deserialize)]
pub(crate) struct DeviceCodeReply {
    device_code: String,
    user_code: String,
    verification_uri: String,
    #[serde(deserialize_with = "seconds")]
    expires_in: i64,
    #[serde(default)]
    interval: Option<u64>,
    #[serde(default)]
    message: Option<String>,
}

/// The longest wait between device code polls: Entra asks for 5 seconds; a far larger `interval` would only make
/// the sign-in look stuck (and `u64::MAX` seconds overflowed on the first `slow_down`).
const MAX_DEVICE_CODE_INTERVAL_S: u64 = 60;

/// What to show for a device code, how long it lives and how often to poll, each within sane bounds whatever
/// Entra's answer says (`expires_in` of `i64::MAX` made `Instant + lifetime` panic).
pub(crate) fn device_code_schedule(reply: &DeviceCodeReply) -> (DeviceCodePrompt, Duration, Duration) {
    let seconds = reply.expires_in.clamp(0, MAX_TOKEN_LIFETIME_S);
    let prompt = DeviceCodePrompt {
        message: reply.message.clone().filter(|m| !m.trim().is_empty()).unwrap_or_else(|| {
            format!("To sign in, open {} and enter the code {}.", reply.verification_uri, reply.user_code)
        }),
        user_code: reply.user_code.clone(),
        verification_uri: reply.verification_uri.clone(),
        expires_at: expiry(seconds),
    };
    let interval = reply.interval.unwrap_or(5).clamp(1, MAX_DEVICE_CODE_INTERVAL_S);
    (prompt, Duration::from_secs(seconds as u64), Duration::from_secs(interval))
}

/// Sign-in on another device: show a code, poll the token endpoint until the person has entered it.
#[derive(Debug, Clone)]
pub struct DeviceCodeFlow {
    http: reqwest::Client,
    app: PublicClientApp,
    resource_scope: String,
}

impl DeviceCodeFlow {
    pub fn new(http: reqwest::Client, app: PublicClientApp) -> Self {
        DeviceCodeFlow { http, resource_scope: app.cloud.arm_scope.clone(), app }
    }
    pub fn with_scope(mut self, resource_scope: &str) -> Self {
        self.resource_scope = resource_scope.to_string();
        self
    }

    /// Ask for a code, hand it to `on_prompt`, then poll at Entra's interval (five seconds slower after each
    /// `slow_down`) until the person approves, declines, or the code expires.
    pub async fn sign_in<F>(&self, on_prompt: F, cancel: CancellationToken) -> Result<SignedIn, AzureError>
    where
        F: FnOnce(&DeviceCodePrompt) + Send,
    {
        let endpoint = self.app.cloud.device_code_endpoint(&self.app.tenant);
        let scope = with_oidc(&self.resource_scope);
        let form = [("client_id", self.app.client_id.as_str()), ("scope", scope.as_str())];
        let reply: DeviceCodeReply = cancellable(&cancel, async {
            let resp = self
                .http
                .post(&endpoint)
                .form(&form)
                .timeout(REQUEST_TIMEOUT)
                .send()
                .await
                .map_err(|e| transport(&endpoint, e))?;
            let status = resp.status();
            let body = resp.bytes().await.map_err(|e| transport(&endpoint, e))?;
            read_entra_answer(status.as_u16(), &body, "device code response")
        })
        .await?;
        let (prompt, lifetime, mut interval) = device_code_schedule(&reply);
        let deadline = Instant::now() + lifetime;
        on_prompt(&prompt);

        let token_endpoint = self.app.cloud.token_endpoint(&self.app.tenant);
        let form = [
            ("grant_type", DEVICE_CODE_GRANT),
            ("client_id", self.app.client_id.as_str()),
            ("device_code", reply.device_code.as_str()),
            ("client_info", "1"),
        ];
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Err(AzureError::Cancelled),
                _ = tokio::time::sleep(interval) => {}
            }
            if Instant::now() >= deadline {
                return Err(AzureError::SignIn(SignInError::DeviceCodeExpired));
            }
            match cancellable(&cancel, post_token(&self.http, &token_endpoint, &form)).await {
                Ok(reply) => {
                    let signed_in = signed_in(reply, &self.app.client_id, None, &self.resource_scope)?;
                    tracing::info!(
                        "signed in as {} (tenant {}) with a device code",
                        signed_in.account.username,
                        signed_in.account.tenant_id
                    );
                    return Ok(signed_in);
                }
                Err(AzureError::Entra(e)) => match e.error.as_str() {
                    "authorization_pending" => {}
                    "slow_down" => interval += SLOW_DOWN_STEP,
                    "authorization_declined" | "access_denied" => {
                        return Err(AzureError::SignIn(SignInError::Declined))
                    }
                    "expired_token" | "code_expired" => return Err(AzureError::SignIn(SignInError::DeviceCodeExpired)),
                    _ => return Err(AzureError::Entra(e)),
                },
                Err(e) => return Err(e),
            }
        }
    }
}

/// Where the app keeps the session's refresh token. Entra rotates it on every use and the previous one stops
/// working, so each new one must replace the stored one (the app stores it encrypted).
#[async_trait::async_trait]
pub trait TokenCache: Send + Sync {
    async fn save_refresh_token(
        &self,
        account: &Account,
        refresh_token: &RefreshToken,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>;
}

/// A session kept in this process only (the demo's): the newest refresh token, in memory.
#[derive(Default)]
pub struct MemoryTokenCache {
    newest: std::sync::Mutex<Option<RefreshToken>>,
}

#[async_trait::async_trait]
impl TokenCache for MemoryTokenCache {
    async fn save_refresh_token(
        &self,
        _account: &Account,
        refresh_token: &RefreshToken,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        *self.newest.lock().map_err(|_| "the token cache lock is poisoned")? = Some(refresh_token.clone());
        Ok(())
    }
}

/// ARM tokens for a signed-in person, for one tenant at a time, from the refresh token. Clones made with
/// [`RefreshTokenCredential::for_tenant`] share the session, so a rotation by one is seen by all.
#[derive(Clone)]
pub struct RefreshTokenCredential {
    session: Arc<Session>,
    tenant_id: String,
}

struct Session {
    http: reqwest::Client,
    cloud: Cloud,
    client_id: String,
    account: Account,
    cache: Arc<dyn TokenCache>,
    /// Held across a refresh: two refreshes racing with the same token would see the second refused as reused.
    state: Mutex<SessionState>,
}

struct SessionState {
    refresh_token: RefreshToken,
    /// Whether `refresh_token` reached the cache; retried on the next call if not.
    persisted: bool,
    /// By (tenant, scope).
    tokens: HashMap<(String, String), AccessToken>,
    /// Set when Entra refused the refresh token itself (expired, revoked, replaced): no tenant can use it.
    ended: Option<EntraError>,
}

impl fmt::Debug for RefreshTokenCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefreshTokenCredential")
            .field("username", &self.session.account.username)
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.session.client_id)
            .finish_non_exhaustive()
    }
}

impl RefreshTokenCredential {
    /// A saved session: `refresh_token` as last stored, for the tenant the account signed in to.
    pub fn new(
        http: reqwest::Client,
        app: &PublicClientApp,
        account: Account,
        refresh_token: RefreshToken,
        cache: Arc<dyn TokenCache>,
    ) -> Self {
        let tenant_id = account.tenant_id.clone();
        RefreshTokenCredential {
            session: Arc::new(Session {
                http,
                cloud: app.cloud.clone(),
                client_id: app.client_id.clone(),
                account,
                cache,
                state: Mutex::new(SessionState { refresh_token, persisted: true, tokens: HashMap::new(), ended: None }),
            }),
            tenant_id,
        }
    }

    /// The session a sign-in just opened: its refresh token is saved through `cache` now (an error if that fails),
    /// its access token is used until it expires.
    pub async fn from_sign_in(
        http: reqwest::Client,
        app: &PublicClientApp,
        signed_in: SignedIn,
        cache: Arc<dyn TokenCache>,
    ) -> Result<Self, AzureError> {
        let refresh_token =
            signed_in.refresh_token.ok_or(AzureError::SignIn(SignInError::Incomplete("refresh token")))?;
        cache
            .save_refresh_token(&signed_in.account, &refresh_token)
            .await
            .map_err(|e| AzureError::Config(format!("signed in, but the session could not be saved: {e}")))?;
        let credential = RefreshTokenCredential::new(http, app, signed_in.account, refresh_token, cache);
        let key = (credential.tenant_id.to_ascii_lowercase(), signed_in.scope);
        credential.session.state.lock().await.tokens.insert(key, signed_in.access_token);
        Ok(credential)
    }

    /// The same session, for another tenant the person reaches (from [`list_tenants`]).
    pub fn for_tenant(&self, tenant_id: &str) -> RefreshTokenCredential {
        RefreshTokenCredential { session: self.session.clone(), tenant_id: tenant_id.to_string() }
    }

    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    pub fn account(&self) -> &Account {
        &self.session.account
    }

    async fn persist(&self, state: &mut SessionState) {
        if state.persisted {
            return;
        }
        match self.session.cache.save_refresh_token(&self.session.account, &state.refresh_token).await {
            Ok(()) => state.persisted = true,
            Err(e) => tracing::warn!("the newest refresh token could not be saved ({e}); retrying on the next token"),
        }
    }
}

#[async_trait::async_trait]
impl TokenSource for RefreshTokenCredential {
    async fn token(&self, scope: &str, force_refresh: bool) -> Result<AccessToken, AzureError> {
        let mut state = self.session.state.lock().await;
        self.persist(&mut state).await;
        if let Some(cause) = &state.ended {
            return Err(AzureError::SignInRequired {
                tenant_id: self.tenant_id.clone(),
                cause: Box::new(cause.clone()),
            });
        }
        let key = (self.tenant_id.to_ascii_lowercase(), scope.to_string());
        if !force_refresh {
            if let Some(t) = state.tokens.get(&key).filter(|t| t.fresh()) {
                return Ok(t.clone());
            }
        }
        let endpoint = self.session.cloud.token_endpoint(&self.tenant_id);
        let scopes = with_oidc(scope);
        let form = [
            ("client_id", self.session.client_id.as_str()),
            ("grant_type", "refresh_token"),
            ("refresh_token", state.refresh_token.secret()),
            ("scope", scopes.as_str()),
            ("client_info", "1"),
        ];
        let reply = match post_token(&self.session.http, &endpoint, &form).await {
            Ok(r) => r,
            Err(AzureError::Entra(e)) if e.needs_sign_in() => {
                // These say the refresh token itself is dead; MFA, consent or a policy concern one tenant only.
                if e.aadsts.is_some_and(|c| matches!(c, 50173 | 700082 | 70008 | 70000 | 9002313)) {
                    state.ended = Some((*e).clone());
                }
                return Err(AzureError::SignInRequired { tenant_id: self.tenant_id.clone(), cause: e });
            }
            Err(e) => return Err(e),
        };
        if let Some(newest) = reply.refresh_token {
            state.refresh_token = RefreshToken(newest);
            state.persisted = false;
            self.persist(&mut state).await;
        }
        let token = AccessToken::new(reply.access_token, expiry(reply.expires_in));
        state.tokens.insert(key, token.clone());
        Ok(token)
    }

    fn describe(&self) -> String {
        format!("{} (signed in, tenant {})", self.session.account.username, self.tenant_id)
    }
}

/// A tenant the signed-in person reaches (`Tenants_List`, Microsoft.Resources 2022-12-01).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantInfo {
    pub tenant_id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub default_domain: Option<String>,
    /// `Home`, `ProjectedBy` or `ManagedBy` (Azure Lighthouse).
    #[serde(default)]
    pub tenant_category: Option<String>,
    #[serde(default)]
    pub domains: Vec<String>,
}

/// Every tenant the client's principal reaches, all pages (`GET /tenants`).
pub async fn list_tenants(client: &ArmClient) -> Result<Vec<TenantInfo>, AzureError> {
    client.list_all("/tenants", &[("api-version", api_version::SUBSCRIPTIONS)], "tenant list", |_| {}).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(cloud: Cloud) -> AuthCodeFlow {
        let app = PublicClientApp::new(cloud, "11111111-2222-3333-4444-555555555555", "organizations");
        AuthCodeFlow::new(reqwest::Client::new(), app)
    }

    #[test]
    fn authorize_and_token_urls_follow_each_sovereign_cloud() {
        let cases = [
            (Cloud::public(), "login.microsoftonline.com", "https://management.azure.com/.default"),
            (Cloud::us_government(), "login.microsoftonline.us", "https://management.usgovcloudapi.net/.default"),
            (Cloud::china(), "login.chinacloudapi.cn", "https://management.chinacloudapi.cn/.default"),
        ];
        for (cloud, host, arm_scope) in cases {
            let req = flow(cloud.clone()).authorization_request("http://localhost:5000").unwrap();
            let url = req.url();
            assert_eq!(url.scheme(), "https");
            assert_eq!(url.host_str(), Some(host));
            assert_eq!(url.path(), "/organizations/oauth2/v2.0/authorize");
            let q: HashMap<String, String> = url.query_pairs().into_owned().collect();
            assert_eq!(q["scope"], format!("{arm_scope} openid profile offline_access"));
            assert_eq!(q["redirect_uri"], "http://localhost:5000");
            assert_eq!(q["response_type"], "code");
            assert_eq!(q["code_challenge_method"], "S256");
            assert_eq!(
                cloud.token_endpoint("contoso.onmicrosoft.com"),
                format!("https://{host}/contoso.onmicrosoft.com/oauth2/v2.0/token")
            );
            assert_eq!(
                cloud.device_code_endpoint("organizations"),
                format!("https://{host}/organizations/oauth2/v2.0/devicecode")
            );
            assert_eq!(
                DeviceCodeFlow::new(reqwest::Client::new(), PublicClientApp::new(cloud, "x", "t")).resource_scope,
                arm_scope
            );
        }
    }

    #[test]
    fn each_request_has_fresh_state_nonce_and_an_s256_challenge_of_its_verifier() {
        let f = flow(Cloud::public());
        let (a, b) = (
            f.authorization_request("http://localhost:1").unwrap(),
            f.authorization_request("http://localhost:1").unwrap(),
        );
        assert_ne!(a.state, b.state);
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.pkce.verifier, b.pkce.verifier);
        for r in [&a, &b] {
            assert!((43..=128).contains(&r.pkce.verifier.len()), "RFC 7636 verifier length");
            assert!(r.pkce.verifier.bytes().all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c)));
            let q: HashMap<String, String> = r.url().query_pairs().into_owned().collect();
            assert_eq!(q["code_challenge"], URL_SAFE_NO_PAD.encode(Sha256::digest(r.pkce.verifier.as_bytes())));
            assert_eq!(q["state"], r.state);
            assert_eq!(q["nonce"], r.nonce);
            assert!(!r.url().as_str().contains(&r.pkce.verifier), "the verifier never leaves the app");
        }
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let f = flow(Cloud::public());
        let req = f.authorization_request("http://localhost:1").unwrap();
        let shown = format!("{req:?}");
        assert!(!shown.contains(&req.pkce.verifier) && !shown.contains(&req.state) && !shown.contains(&req.nonce));
        let rt = RefreshToken::new("1.AQ-very-secret-refresh".into());
        assert_eq!(format!("{rt:?}"), "RefreshToken(<redacted>)");
        let signed = SignedIn {
            account: Account {
                home_account_id: "u.t".into(),
                home_tenant_id: "t".into(),
                object_id: "u".into(),
                tenant_id: "t".into(),
                username: "a@b".into(),
                name: "A".into(),
            },
            access_token: AccessToken::new("eyJ-secret-access".into(), OffsetDateTime::now_utc()),
            scope: "s".into(),
            refresh_token: Some(rt),
        };
        let shown = format!("{signed:?}");
        assert!(!shown.contains("very-secret") && !shown.contains("secret-access"), "{shown}");
    }

    /// Caught by tests/fuzz.rs: an ID token `exp` near `i64::MAX` overflowed `exp + 300` (a panic in a debug build, an
    /// "expired" token in a release one), and an `expires_in` of `i64::MAX` panicked computing the expiry.
    #[test]
    fn absurd_expiries_in_a_token_answer_do_not_panic() {
        let claims = serde_json::json!({"aud": "app", "oid": "o", "tid": "t", "exp": i64::MAX});
        let id_token = format!("h.{}.s", URL_SAFE_NO_PAD.encode(claims.to_string()));
        assert!(read_id_token(&id_token, "app", None).is_ok());
        let body = serde_json::json!({"access_token": "a", "expires_in": i64::MAX, "id_token": id_token});
        let reply: TokenReply = read_entra_answer(200, body.to_string().as_bytes(), "token response").unwrap();
        let s = signed_in(reply, "app", None, "scope").unwrap();
        assert!(s.access_token.expires_at <= OffsetDateTime::now_utc() + time::Duration::seconds(MAX_TOKEN_LIFETIME_S));
    }

    /// Caught by tests/fuzz.rs: a device code answer with `expires_in` of `i64::MAX` panicked (`Instant + lifetime` and
    /// the prompt's expiry), an `interval` of `u64::MAX` overflowed on the first `slow_down`, and an empty `message`
    /// left the person with no instruction.
    #[test]
    fn device_code_timings_are_bounded_and_the_prompt_is_never_blank() {
        let body = serde_json::json!({
            "device_code": "d", "user_code": "ABC", "verification_uri": "https://microsoft.com/devicelogin",
            "expires_in": i64::MAX, "interval": u64::MAX, "message": ""
        });
        let reply: DeviceCodeReply = read_entra_answer(200, body.to_string().as_bytes(), "device code").unwrap();
        let (prompt, lifetime, interval) = device_code_schedule(&reply);
        assert!(Instant::now().checked_add(lifetime).is_some());
        assert_eq!(interval, Duration::from_secs(MAX_DEVICE_CODE_INTERVAL_S));
        assert_eq!(prompt.message, "To sign in, open https://microsoft.com/devicelogin and enter the code ABC.");
        let body = serde_json::json!({
            "device_code": "d", "user_code": "ABC", "verification_uri": "u", "expires_in": "900", "interval": 0
        });
        let reply: DeviceCodeReply = read_entra_answer(200, body.to_string().as_bytes(), "device code").unwrap();
        let (_, lifetime, interval) = device_code_schedule(&reply);
        assert_eq!((lifetime, interval), (Duration::from_secs(900), Duration::from_secs(1)));
    }

    #[test]
    fn the_loopback_listener_takes_only_a_get_of_the_root_with_this_state() {
        let read = |head: &str| match read_browser_request(head, "s1") {
            BrowserRequest::Unreadable => "unreadable".to_string(),
            BrowserRequest::NotFound => "not found".into(),
            BrowserRequest::NotASignIn => "not a sign-in".into(),
            BrowserRequest::Answer(Callback::Code(c)) => format!("code {c}"),
            BrowserRequest::Answer(Callback::Refused(e)) => format!("refused {}", e.error),
            BrowserRequest::Answer(Callback::StateMismatch) => "state mismatch".into(),
        };
        assert_eq!(read("GET /?code=c1&state=s1 HTTP/1.1\r\n\r\n"), "code c1");
        assert_eq!(read("GET /?error=access_denied&state=s1 HTTP/1.1\r\n\r\n"), "refused access_denied");
        assert_eq!(read("GET /?code=c1&state=s2 HTTP/1.1\r\n\r\n"), "state mismatch");
        assert_eq!(read("GET /?code=c1 HTTP/1.1\r\n\r\n"), "state mismatch");
        assert_eq!(read("GET /favicon.ico HTTP/1.1\r\n\r\n"), "not found");
        assert_eq!(read("POST /?code=c1&state=s1 HTTP/1.1\r\n\r\n"), "not found");
        assert_eq!(read("GET / HTTP/1.1\r\n\r\n"), "not a sign-in");
        assert_eq!(read(""), "unreadable");
        assert_eq!(read("GET"), "unreadable");
    }

    #[test]
    fn id_token_nonce_and_audience_are_checked() {
        let claims = |v: serde_json::Value| format!("h.{}.s", URL_SAFE_NO_PAD.encode(v.to_string()));
        let good = claims(serde_json::json!({"aud": "app", "nonce": "n1", "oid": "o", "tid": "t"}));
        assert!(read_id_token(&good, "app", Some("n1")).is_ok());
        assert!(matches!(read_id_token(&good, "app", Some("n2")), Err(AzureError::SignIn(SignInError::NonceMismatch))));
        assert!(matches!(
            read_id_token(&good, "other-app", Some("n1")),
            Err(AzureError::SignIn(SignInError::InvalidIdToken(_)))
        ));
        let no_nonce = claims(serde_json::json!({"aud": "app"}));
        assert!(matches!(
            read_id_token(&no_nonce, "app", Some("n1")),
            Err(AzureError::SignIn(SignInError::NonceMismatch))
        ));
    }
}
