//! Entra ID v2 as far as the app needs it: the OpenID discovery document; the token endpoint with the
//! client-credentials grant (the automation app), and the public-client sign-in a person does: authorization code with
//! PKCE through `/authorize` (the sim consents as its test user and redirects at once), refresh tokens that rotate,
//! and the device code flow. Errors are answered the way Entra does (OAuth error + AADSTS code).
//!
//! Two tenants exist: the seeded one (home of the test user and of both app registrations) and a second one where
//! the test user is a guest, so a refresh token can be redeemed for either. Sim-only hooks under `/_sim/` approve or
//! decline device codes and revoke or expire sessions.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::Rng;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::Shared;

/// The audiences ARM accepts.
pub const ARM_AUDIENCES: &[&str] =
    &["https://management.azure.com", "https://management.azure.com/", "https://management.core.windows.net/"];

/// Microsoft Graph, the audience of a sign-in that asks for no other resource.
const GRAPH: &str = "https://graph.microsoft.com";

/// The second tenant, where the test user is a guest.
pub const SECOND_TENANT_ID: &str = "9b7e4c2a-5d1f-4a8e-b3c6-7f0e2d1a4b58";
const SECOND_TENANT_NAME: &str = "Tailspin Toys";
const SECOND_TENANT_DOMAIN: &str = "tailspintoys.onmicrosoft.com";

/// The public-client app registration (multi-tenant, consented in both tenants): loopback redirect URIs, device code.
pub const PUBLIC_CLIENT_ID: &str = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f";

const TEST_USER_OID: &str = "3f2a9c1e-7b4d-4e8a-9c6f-1d2e3f4a5b6c";
/// The test user's guest object in the second tenant: another object id, as in Entra.
const TEST_USER_GUEST_OID: &str = "8e4b1a7d-2c9f-4d3e-a6b5-c7d8e9f0a1b2";
const TEST_USER_NAME: &str = "Alex Wilber";
/// The Entra group the test user belongs to ("Ringmaster approvers"), listed in the `groups` claim of the user's
/// access tokens so a ring can require approvers from it.
pub const APPROVERS_GROUP_ID: &str = "5b1f0c2e-9a7d-4c3b-8e6f-2a1d0c9b8e7f";

const AUTH_CODE_LIFETIME: Duration = Duration::from_secs(600);
/// RFC 8628 §3.5: each `slow_down` adds five seconds to the interval.
const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// The directory the sim's Entra answers for: the tenants, and the one user who signs in.
pub struct Directory {
    pub tenants: Vec<DirTenant>,
    pub user_upn: String,
}

pub struct DirTenant {
    pub id: String,
    pub display_name: String,
    pub domain: String,
    /// The test user's object id in this tenant.
    user_oid: &'static str,
    /// Whether the automation (client-credentials) app is registered here.
    has_automation_app: bool,
}

impl Directory {
    /// The seeded tenant (`Contoso (demo)` → `contoso.onmicrosoft.com`) and the guest tenant.
    pub fn new(home_id: &str, home_name: &str) -> Directory {
        let word: String = home_name
            .split_whitespace()
            .next()
            .unwrap_or("contoso")
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect::<String>()
            .to_ascii_lowercase();
        let domain = format!("{word}.onmicrosoft.com");
        Directory {
            user_upn: format!("alex.wilber@{domain}"),
            tenants: vec![
                DirTenant {
                    id: home_id.to_string(),
                    display_name: home_name.to_string(),
                    domain,
                    user_oid: TEST_USER_OID,
                    has_automation_app: true,
                },
                DirTenant {
                    id: SECOND_TENANT_ID.to_string(),
                    display_name: SECOND_TENANT_NAME.to_string(),
                    domain: SECOND_TENANT_DOMAIN.to_string(),
                    user_oid: TEST_USER_GUEST_OID,
                    has_automation_app: false,
                },
            ],
        }
    }

    fn home(&self) -> &DirTenant {
        &self.tenants[0]
    }

    /// A path segment: a tenant id or domain, `organizations`/`common` (`Multi`), or unknown.
    fn resolve(&self, segment: &str) -> Authority<'_> {
        if segment.eq_ignore_ascii_case("organizations") || segment.eq_ignore_ascii_case("common") {
            return Authority::Multi;
        }
        match self.tenants.iter().find(|t| t.id.eq_ignore_ascii_case(segment) || t.domain.eq_ignore_ascii_case(segment))
        {
            Some(t) => Authority::Tenant(t),
            None => Authority::Unknown,
        }
    }

    fn by_id(&self, id: &str) -> Option<&DirTenant> {
        self.tenants.iter().find(|t| t.id.eq_ignore_ascii_case(id))
    }

    /// Whether an access token's object id is the test user (in any tenant).
    pub fn is_test_user(&self, oid: &str) -> bool {
        self.tenants.iter().any(|t| t.user_oid == oid)
    }

    /// `GET /tenants` items (Tenants_List, Microsoft.Resources 2022-12-01) for a caller: the test user reaches both
    /// tenants, anyone else only the seeded one.
    pub fn tenants_for(&self, oid: &str) -> Vec<Value> {
        let reach = if self.is_test_user(oid) { self.tenants.len() } else { 1 };
        self.tenants[..reach]
            .iter()
            .map(|t| {
                json!({
                    "id": format!("/tenants/{}", t.id),
                    "tenantId": t.id,
                    "countryCode": "US",
                    "displayName": t.display_name,
                    "domains": [t.domain],
                    "tenantCategory": "Home",
                    "defaultDomain": t.domain,
                    "tenantType": "AAD"
                })
            })
            .collect()
    }
}

enum Authority<'a> {
    Tenant(&'a DirTenant),
    Multi,
    Unknown,
}

/// Codes, refresh tokens and device codes the sim has issued.
#[derive(Default)]
pub struct EntraState {
    codes: HashMap<String, AuthCode>,
    refresh_tokens: HashMap<String, RefreshGrant>,
    device_codes: HashMap<String, DeviceGrant>,
}

struct AuthCode {
    client_id: String,
    redirect_uri: String,
    challenge: String,
    scope: String,
    nonce: Option<String>,
    /// The tenant the code was asked for; `None` when through `organizations`/`common`.
    tenant: Option<String>,
    issued: Instant,
    redeemed: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RefreshState {
    Active,
    /// Rotated: a newer refresh token replaced it.
    Redeemed,
    Revoked,
    Expired,
}

struct RefreshGrant {
    client_id: String,
    state: RefreshState,
    issued_at: time::OffsetDateTime,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum DeviceState {
    Pending,
    Approved,
    Declined,
    Redeemed,
}

struct DeviceGrant {
    user_code: String,
    client_id: String,
    scope: String,
    tenant: Option<String>,
    expires: Instant,
    interval: Duration,
    last_seen: Instant,
    state: DeviceState,
    /// Set by `/_sim/devicecode/slow-down`: the next poll is told to slow down whatever its timing.
    force_slow_down: bool,
}

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(discovery))
        .route("/{tenant}/oauth2/v2.0/authorize", get(authorize))
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .route("/{tenant}/oauth2/v2.0/devicecode", post(device_code))
        .route("/_sim/devicelogin", get(device_login_page))
        .route("/_sim/devicecode/{action}", post(device_code_hook))
        .route("/_sim/signin/{action}", post(session_hook))
        .with_state(shared)
}

async fn latency(shared: &Shared) {
    if shared.config.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(shared.config.latency_ms)).await;
    }
}

async fn discovery(State(shared): State<Arc<Shared>>, Path(tenant): Path<String>) -> Response {
    latency(&shared).await;
    shared.count("Entra_OpenIdConfiguration");
    let issuer_tenant = match shared.directory.resolve(&tenant) {
        Authority::Tenant(t) => t.id.clone(),
        Authority::Multi => "{tenantid}".to_string(),
        Authority::Unknown => {
            return aadsts(StatusCode::BAD_REQUEST, "invalid_tenant", 90002, &format!("Tenant '{tenant}' not found."))
        }
    };
    let base = match shared.directory.resolve(&tenant) {
        Authority::Tenant(t) => format!("{}/{}", shared.login_base, t.id),
        _ => format!("{}/{}", shared.login_base, tenant),
    };
    Json(json!({
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{base}/discovery/v2.0/keys"),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{}/{issuer_tenant}/v2.0", shared.login_base),
        "request_uri_parameter_supported": false,
        "userinfo_endpoint": "https://graph.microsoft.com/oidc/userinfo",
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "http_logout_supported": true,
        "frontchannel_logout_supported": true,
        "end_session_endpoint": format!("{base}/oauth2/v2.0/logout"),
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "auth_time", "acr", "nonce", "tid", "oid"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com"
    }))
    .into_response()
}

/// An OAuth error with its AADSTS code, as Entra words it.
struct Refusal {
    status: StatusCode,
    error: &'static str,
    code: u32,
    description: String,
}

fn refuse(error: &'static str, code: u32, description: impl Into<String>) -> Refusal {
    Refusal { status: StatusCode::BAD_REQUEST, error, code, description: description.into() }
}

impl Refusal {
    fn unauthorized(mut self) -> Refusal {
        self.status = StatusCode::UNAUTHORIZED;
        self
    }
    fn into_response(self) -> Response {
        aadsts(self.status, self.error, self.code, &self.description)
    }
}

/// Entra's `Trace ID … Correlation ID … Timestamp` tail, with its line breaks.
fn described(code: u32, description: &str) -> (String, String, String, String) {
    let trace = uuid::Uuid::new_v4().to_string();
    let correlation = uuid::Uuid::new_v4().to_string();
    let timestamp = entra_timestamp(time::OffsetDateTime::now_utc());
    let text = format!(
        "AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {}",
        crate::tenant::rfc3339(time::OffsetDateTime::now_utc())
    );
    (text, trace, correlation, timestamp)
}

/// `2016-01-09 02:02:12Z`, the timestamp form of Entra's error bodies.
fn entra_timestamp(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]Z");
    t.format(&f).unwrap_or_default()
}

fn aadsts(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let (text, trace, correlation, timestamp) = described(code, description);
    let body = json!({
        "error": error,
        "error_description": text,
        "error_codes": [code],
        "timestamp": timestamp,
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (status, Json(body)).into_response()
}

fn random_token(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    rand::rng().fill(&mut b[..]);
    URL_SAFE_NO_PAD.encode(b)
}

/// A redirect URI the public client registered: Entra lets native apps use any port on loopback.
fn loopback_redirect(uri: &str) -> Option<url::Url> {
    let u = url::Url::parse(uri).ok()?;
    if u.scheme() != "http" || u.fragment().is_some() {
        return None;
    }
    match u.host()? {
        url::Host::Domain(d) if d.eq_ignore_ascii_case("localhost") => Some(u),
        url::Host::Ipv4(ip) if ip.is_loopback() => Some(u),
        url::Host::Ipv6(ip) if ip.is_loopback() => Some(u),
        _ => None,
    }
}

fn found(location: &str) -> Response {
    (StatusCode::FOUND, [(header::LOCATION, location.to_string()), (header::CACHE_CONTROL, "no-store".to_string())])
        .into_response()
}

/// `GET /{tenant}/oauth2/v2.0/authorize`: the test user is signed in and has consented, so a valid request is
/// answered at once with a 302 to `redirect_uri` carrying `code` and `state`.
async fn authorize(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    latency(&shared).await;
    shared.count("Entra_Authorize");
    if let Ok(mut s) = shared.stats.lock() {
        s.sign_in.authorize_requests += 1;
    }
    let authority = shared.directory.resolve(&tenant);
    let tenant_id = match authority {
        Authority::Unknown => {
            return refuse("invalid_tenant", 90002, format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.")).into_response()
        }
        Authority::Tenant(t) => Some(t.id.clone()),
        Authority::Multi => None,
    };
    // Until the app and its redirect URI are known to be genuine, errors are shown here, never redirected.
    let client_id = q.get("client_id").cloned().unwrap_or_default();
    if client_id.is_empty() {
        return refuse(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        )
        .into_response();
    }
    if client_id == shared.client_id {
        return refuse("invalid_request", 500113, "No reply address is registered for the application.")
            .into_response();
    }
    if client_id != PUBLIC_CLIENT_ID {
        return refuse("unauthorized_client", 700016, format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.")).into_response();
    }
    let redirect_uri = q.get("redirect_uri").cloned().unwrap_or_default();
    let Some(mut redirect) = loopback_redirect(&redirect_uri) else {
        return refuse("invalid_request", 50011, format!("The redirect URI '{redirect_uri}' specified in the request does not match the redirect URIs configured for the application '{client_id}'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal.")).into_response();
    };
    let state = q.get("state").cloned();
    let fail = |redirect: &mut url::Url, r: Refusal| -> Response {
        let (text, trace, correlation, _) = described(r.code, &r.description);
        {
            let mut pairs = redirect.query_pairs_mut();
            pairs.append_pair("error", r.error);
            pairs.append_pair("error_description", &text);
            pairs.append_pair("error_uri", &format!("https://login.microsoftonline.com/error?code={}", r.code));
            pairs.append_pair("trace_id", &trace);
            pairs.append_pair("correlation_id", &correlation);
            if let Some(s) = &state {
                pairs.append_pair("state", s);
            }
        }
        found(redirect.as_str())
    };
    match q.get("response_type").map(String::as_str) {
        Some("code") => {}
        None => {
            return fail(
                &mut redirect,
                refuse(
                    "invalid_request",
                    900144,
                    "The request body must contain the following parameter: 'response_type'.",
                ),
            )
        }
        Some(other) => {
            return fail(
                &mut redirect,
                refuse(
                    "unsupported_response_type",
                    700054,
                    format!("response_type '{other}' is not enabled for the application."),
                ),
            )
        }
    }
    let scope = q.get("scope").cloned().unwrap_or_default();
    if scope.trim().is_empty() {
        return fail(
            &mut redirect,
            refuse("invalid_request", 900144, "The request body must contain the following parameter: 'scope'."),
        );
    }
    if let Err(r) = Scopes::parse(&scope, &tenant) {
        return fail(&mut redirect, r);
    }
    let challenge = q.get("code_challenge").cloned().unwrap_or_default();
    let method = q.get("code_challenge_method").map(String::as_str).unwrap_or("");
    if challenge.is_empty() || method != "S256" {
        return fail(
            &mut redirect,
            refuse(
                "invalid_request",
                9002325,
                "Proof Key for Code Exchange is required for this application: send code_challenge with code_challenge_method 'S256'.",
            ),
        );
    }
    // A S256 challenge is base64url of 32 bytes.
    if challenge.len() != 43 || URL_SAFE_NO_PAD.decode(&challenge).is_err() {
        return fail(&mut redirect, refuse("invalid_request", 501491, "Invalid size of Code_Challenge parameter."));
    }
    if q.get("prompt").map(String::as_str) == Some("none") {
        // The sim has no browser session to sign in silently with.
        return fail(
            &mut redirect,
            refuse(
                "login_required",
                50058,
                "A silent sign-in request was sent but no user is signed in. The cookies used to represent the user's session were not sent in the request to Azure AD.",
            ),
        );
    }

    let code = format!("1.ASIM{}", random_token(96));
    if let Ok(mut st) = shared.entra.lock() {
        st.codes.retain(|_, c| c.issued.elapsed() < AUTH_CODE_LIFETIME * 2);
        st.codes.insert(
            code.clone(),
            AuthCode {
                client_id,
                redirect_uri: redirect_uri.clone(),
                challenge,
                scope,
                nonce: q.get("nonce").cloned(),
                tenant: tenant_id,
                issued: Instant::now(),
                redeemed: false,
            },
        );
    }
    if let Ok(mut s) = shared.stats.lock() {
        s.sign_in.codes_issued += 1;
    }
    {
        let mut pairs = redirect.query_pairs_mut();
        pairs.append_pair("code", &code);
        if let Some(s) = &state {
            pairs.append_pair("state", s);
        }
        if q.get("client_info").map(String::as_str) == Some("1") {
            pairs.append_pair("client_info", &shared.client_info());
        }
        pairs.append_pair("session_state", &uuid::Uuid::new_v4().to_string());
    }
    found(redirect.as_str())
}

/// The scopes of a request: at most one resource (its audience), and the OpenID ones.
struct Scopes {
    audience: String,
    /// What the token response's `scope` says was granted.
    granted: Vec<String>,
    openid: bool,
    offline_access: bool,
}

impl Scopes {
    fn parse(scope: &str, tenant: &str) -> Result<Scopes, Refusal> {
        let mut resources: Vec<String> = vec![];
        let mut granted = vec![];
        let (mut openid, mut offline_access) = (false, false);
        for s in scope.split_whitespace() {
            match s {
                "openid" => openid = true,
                "offline_access" => offline_access = true,
                "profile" | "email" => {}
                _ => {
                    let (resource, permission) = match s.rsplit_once('/') {
                        Some((r, p)) if r.contains("://") => (r.to_string(), p),
                        _ => (GRAPH.to_string(), s),
                    };
                    let permission = if permission == ".default" { "user_impersonation" } else { permission };
                    granted.push(format!("{resource}/{permission}"));
                    if !resources.contains(&resource) {
                        resources.push(resource);
                    }
                }
            }
        }
        for g in ["openid", "profile", "email", "offline_access"] {
            if scope.split_whitespace().any(|s| s == g) {
                granted.push(g.to_string());
            }
        }
        if resources.len() > 1 {
            return Err(refuse(
                "invalid_scope",
                28000,
                format!("Provided value for the input parameter scope is not valid because it contains more than one resource. Scope {scope} is not valid."),
            ));
        }
        let audience = resources.pop().unwrap_or_else(|| GRAPH.to_string());
        if audience != GRAPH && !ARM_AUDIENCES.contains(&audience.as_str()) {
            return Err(refuse(
                "invalid_resource",
                500011,
                format!("The resource principal named {audience} was not found in the tenant named {tenant}. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."),
            ));
        }
        Ok(Scopes { audience, granted, openid, offline_access })
    }
}

impl Shared {
    fn config_tenant(&self) -> String {
        self.tenant.read().map(|t| t.tenant_id.clone()).unwrap_or_default()
    }

    /// `client_info`: base64url JSON of the user's home object id and tenant (MSAL's home account id).
    fn client_info(&self) -> String {
        let home = self.directory.home();
        URL_SAFE_NO_PAD.encode(json!({"uid": home.user_oid, "utid": home.id}).to_string())
    }
}

async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    _headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    latency(&shared).await;
    shared.count("Entra_Token");
    let authority = shared.directory.resolve(&tenant);
    if matches!(authority, Authority::Unknown) {
        return aadsts(StatusCode::BAD_REQUEST, "invalid_request", 90002, &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."));
    }
    let grant_type = match form.get("grant_type").map(String::as_str) {
        Some(g) => g.to_string(),
        None => {
            return aadsts(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            )
        }
    };
    let result = match grant_type.as_str() {
        "client_credentials" => return client_credentials(&shared, &authority, &tenant, &form),
        "authorization_code" => {
            public_client(&shared, &form).and_then(|()| authorization_code(&shared, &authority, &tenant, &form))
        }
        "refresh_token" => {
            public_client(&shared, &form).and_then(|()| refresh_token(&shared, &authority, &tenant, &form))
        }
        "urn:ietf:params:oauth:grant-type:device_code" | "device_code" => {
            public_client(&shared, &form).and_then(|()| device_code_token(&shared, &authority, &tenant, &form))
        }
        other => Err(refuse(
            "unsupported_grant_type",
            70003,
            format!("The app requested an unsupported grant type '{other}'."),
        )),
    };
    match result {
        Ok(body) => Json(body).into_response(),
        Err(r) => r.into_response(),
    }
}

/// The grants a person uses are for the public client only, which must not present a secret.
fn public_client(shared: &Shared, form: &HashMap<String, String>) -> Result<(), Refusal> {
    let client_id = form.get("client_id").map(String::as_str).unwrap_or_default();
    let has_secret = form.contains_key("client_secret") || form.contains_key("client_assertion");
    if client_id.is_empty() {
        return Err(refuse(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        ));
    }
    if client_id == shared.client_id {
        if !has_secret {
            return Err(refuse(
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
            .unauthorized());
        }
        return Err(refuse(
            "unauthorized_client",
            700025,
            "The application is a confidential client; this grant is for the public client.",
        )
        .unauthorized());
    }
    if client_id != PUBLIC_CLIENT_ID {
        return Err(refuse(
            "unauthorized_client",
            700016,
            format!("Application with identifier '{client_id}' was not found in the directory."),
        ));
    }
    if has_secret {
        return Err(refuse(
            "invalid_client",
            700025,
            "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
        )
        .unauthorized());
    }
    Ok(())
}

fn client_credentials(
    shared: &Shared,
    authority: &Authority<'_>,
    tenant: &str,
    form: &HashMap<String, String>,
) -> Response {
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    let has_secret = form.contains_key("client_secret") || form.contains_key("client_assertion");
    if client_id == PUBLIC_CLIENT_ID {
        let r = if has_secret {
            refuse(
                "invalid_client",
                700025,
                "Client is public so neither 'client_assertion' nor 'client_secret' should be presented.",
            )
        } else {
            refuse(
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        };
        return r.unauthorized().into_response();
    }
    let registered_here = match authority {
        Authority::Tenant(t) => t.has_automation_app,
        _ => true,
    };
    if client_id != shared.client_id || !registered_here {
        return aadsts(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
        );
    }
    if form.get("client_secret") != Some(&shared.client_secret) {
        return aadsts(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
        );
    }
    let scope = form.get("scope").cloned().unwrap_or_default();
    let Some(resource) = scope.strip_suffix("/.default") else {
        return aadsts(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            1002012,
            &format!("The provided value for scope {scope} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier."),
        );
    };
    let now = shared.now_unix();
    let lifetime = shared.config.token_lifetime_s;
    let claims = json!({
        "aud": resource,
        "iss": format!("https://sts.windows.net/{}/", shared.config_tenant()),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "appid": client_id,
        "idtyp": "app",
        "oid": "0c7a5f3e-8d41-4b26-9e1f-5a6b7c8d9e10",
        "sub": "0c7a5f3e-8d41-4b26-9e1f-5a6b7c8d9e10",
        "tid": shared.config_tenant(),
        "app_displayname": "Ringmaster automation (simulated)",
        "ver": "1.0"
    });
    if let Ok(mut s) = shared.stats.lock() {
        s.tokens_issued += 1;
    }
    Json(json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": sign(&shared.signing_key, &claims),
    }))
    .into_response()
}

/// The tenant a user token is for: the one in the path, else the one the grant was issued for, else home.
fn token_tenant<'a>(shared: &'a Shared, authority: &Authority<'a>, granted_for: Option<&str>) -> &'a DirTenant {
    match authority {
        Authority::Tenant(t) => t,
        _ => granted_for.and_then(|id| shared.directory.by_id(id)).unwrap_or_else(|| shared.directory.home()),
    }
}

fn authorization_code(
    shared: &Shared,
    authority: &Authority<'_>,
    tenant: &str,
    form: &HashMap<String, String>,
) -> Result<Value, Refusal> {
    let code = form.get("code").cloned().unwrap_or_default();
    if code.is_empty() {
        return Err(refuse(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'code'.",
        ));
    }
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let (scope, authorize_scope, nonce, granted_for) = {
        let mut st = shared.entra.lock().map_err(|_| refuse("server_error", 90000, "state lock poisoned"))?;
        let Some(grant) = st.codes.get_mut(&code) else {
            return Err(refuse("invalid_grant", 70000, "The provided value for the 'code' parameter is not valid."));
        };
        if grant.redeemed {
            return Err(refuse("invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token."));
        }
        // Any attempt spends the code: it cannot be retried with other parameters.
        grant.redeemed = true;
        if grant.issued.elapsed() > AUTH_CODE_LIFETIME {
            return Err(refuse("invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource."));
        }
        if form.get("client_id") != Some(&grant.client_id) {
            return Err(refuse(
                "invalid_grant",
                700005,
                "Provided Authorization Code is intended to use against other tenant or application.",
            ));
        }
        if let (Authority::Tenant(t), Some(issued_for)) = (authority, &grant.tenant) {
            if !t.id.eq_ignore_ascii_case(issued_for) {
                return Err(refuse(
                    "invalid_grant",
                    700005,
                    "Provided Authorization Code is intended to use against other tenant or application.",
                ));
            }
        }
        if form.get("redirect_uri") != Some(&grant.redirect_uri) {
            return Err(refuse("invalid_grant", 50011, format!("The redirect URI '{}' specified in the request does not match the redirect URI used to request the authorization code.", form.get("redirect_uri").map(String::as_str).unwrap_or_default())));
        }
        if verifier.is_empty() {
            return Err(refuse(
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'code_verifier'.",
            ));
        }
        let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        if computed != grant.challenge {
            return Err(refuse(
                "invalid_grant",
                501481,
                "The Code_Verifier does not match the code_challenge supplied in the authorization request.",
            ));
        }
        let scope = form.get("scope").cloned().unwrap_or_else(|| grant.scope.clone());
        (scope, grant.scope.clone(), grant.nonce.clone(), grant.tenant.clone())
    };
    let scopes = Scopes::parse(&scope, tenant)?;
    let for_tenant = token_tenant(shared, authority, granted_for.as_deref());
    if let Ok(mut s) = shared.stats.lock() {
        s.sign_in.codes_redeemed += 1;
    }
    Ok(issue_user_tokens(
        shared,
        for_tenant,
        &scopes,
        nonce.as_deref(),
        // A refresh token comes with `offline_access`, asked at /authorize or now.
        scopes.offline_access || authorize_scope.split_whitespace().any(|s| s == "offline_access"),
        form.get("client_info").map(String::as_str) == Some("1"),
    ))
}

fn refresh_token(
    shared: &Shared,
    authority: &Authority<'_>,
    tenant: &str,
    form: &HashMap<String, String>,
) -> Result<Value, Refusal> {
    let presented = form.get("refresh_token").cloned().unwrap_or_default();
    if presented.is_empty() {
        return Err(refuse(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'refresh_token'.",
        ));
    }
    let scope = form.get("scope").cloned().unwrap_or_default();
    if scope.trim().is_empty() {
        return Err(refuse(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        ));
    }
    let scopes = Scopes::parse(&scope, tenant)?;
    {
        let mut st = shared.entra.lock().map_err(|_| refuse("server_error", 90000, "state lock poisoned"))?;
        let refused = |shared: &Shared| {
            if let Ok(mut s) = shared.stats.lock() {
                s.sign_in.refresh_tokens_refused += 1;
            }
        };
        let Some(grant) = st.refresh_tokens.get_mut(&presented) else {
            refused(shared);
            return Err(refuse("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid."));
        };
        if form.get("client_id") != Some(&grant.client_id) {
            refused(shared);
            return Err(refuse(
                "invalid_grant",
                70000,
                "Provided grant is invalid or malformed: the refresh token was issued to a different client.",
            ));
        }
        match grant.state {
            RefreshState::Active => grant.state = RefreshState::Redeemed,
            RefreshState::Redeemed => {
                refused(shared);
                return Err(refuse("invalid_grant", 70000, "Provided grant is invalid or malformed. The refresh token was already redeemed and replaced by a newer one."));
            }
            RefreshState::Revoked => {
                refused(shared);
                return Err(refuse("invalid_grant", 50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password."));
            }
            RefreshState::Expired => {
                refused(shared);
                return Err(refuse(
                    "invalid_grant",
                    700082,
                    format!("The refresh token has expired due to inactivity. The token was issued on {} and was inactive for 90.00:00:00.", crate::tenant::rfc3339(grant.issued_at)),
                ));
            }
        }
    }
    let for_tenant = token_tenant(shared, authority, None);
    if let Ok(mut s) = shared.stats.lock() {
        s.sign_in.refresh_tokens_redeemed += 1;
    }
    Ok(issue_user_tokens(
        shared,
        for_tenant,
        &scopes,
        None,
        true,
        form.get("client_info").map(String::as_str) == Some("1"),
    ))
}

/// Access token (per the scope's audience), rotated refresh token, ID token and client info for the test user.
fn issue_user_tokens(
    shared: &Shared,
    tenant: &DirTenant,
    scopes: &Scopes,
    nonce: Option<&str>,
    with_refresh: bool,
    client_info: bool,
) -> Value {
    let now = shared.now_unix();
    let lifetime = shared.config.token_lifetime_s;
    let home = shared.directory.home();
    let upn = &shared.directory.user_upn;
    let guest = tenant.id != home.id;
    let mut access = json!({
        "aud": scopes.audience,
        "iss": format!("https://sts.windows.net/{}/", tenant.id),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime,
        "acr": "1",
        "amr": ["pwd", "mfa"],
        "appid": PUBLIC_CLIENT_ID,
        "appidacr": "0",
        "groups": [APPROVERS_GROUP_ID],
        "idtyp": "user",
        "name": TEST_USER_NAME,
        "oid": tenant.user_oid,
        "scp": "user_impersonation",
        "sub": pairwise(tenant.user_oid, &scopes.audience),
        "tid": tenant.id,
        "unique_name": upn,
        "uti": random_token(16),
        "ver": "1.0"
    });
    if guest {
        // A guest's token names the home tenant as identity provider and carries no upn.
        access["idp"] = json!(format!("https://sts.windows.net/{}/", home.id));
    } else {
        access["upn"] = json!(upn);
    }
    let mut body = json!({
        "token_type": "Bearer",
        "scope": scopes.granted.join(" "),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": sign(&shared.signing_key, &access),
    });
    if with_refresh {
        let rt = format!("1.ASIM{}", random_token(192));
        if let Ok(mut st) = shared.entra.lock() {
            st.refresh_tokens.insert(
                rt.clone(),
                RefreshGrant {
                    client_id: PUBLIC_CLIENT_ID.to_string(),
                    state: RefreshState::Active,
                    issued_at: time::OffsetDateTime::now_utc(),
                },
            );
        }
        body["refresh_token"] = json!(rt);
    }
    if scopes.openid {
        let mut id = json!({
            "aud": PUBLIC_CLIENT_ID,
            "iss": format!("{}/{}/v2.0", shared.login_base, tenant.id),
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": TEST_USER_NAME,
            "oid": tenant.user_oid,
            "preferred_username": upn,
            "sub": pairwise(tenant.user_oid, PUBLIC_CLIENT_ID),
            "tid": tenant.id,
            "uti": random_token(16),
            "ver": "2.0"
        });
        if let Some(n) = nonce {
            id["nonce"] = json!(n);
        }
        body["id_token"] = json!(sign(&shared.signing_key, &id));
    }
    if client_info {
        body["client_info"] = json!(shared.client_info());
    }
    if let Ok(mut s) = shared.stats.lock() {
        s.tokens_issued += 1;
        s.sign_in.user_tokens_issued += 1;
    }
    body
}

/// Entra's `sub` is pairwise: the same user has a different subject per app.
fn pairwise(oid: &str, app: &str) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(format!("{oid}|{app}").as_bytes())[..24])
}

/// `POST /{tenant}/oauth2/v2.0/devicecode`.
async fn device_code(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    latency(&shared).await;
    shared.count("Entra_DeviceCode");
    let authority = shared.directory.resolve(&tenant);
    let tenant_id = match authority {
        Authority::Unknown => {
            return refuse("invalid_request", 90002, format!("Tenant '{tenant}' not found.")).into_response()
        }
        Authority::Tenant(t) => Some(t.id.clone()),
        Authority::Multi => None,
    };
    if let Err(r) = public_client(&shared, &form) {
        return r.into_response();
    }
    let scope = form.get("scope").cloned().unwrap_or_default();
    if scope.trim().is_empty() {
        return refuse("invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
            .into_response();
    }
    if let Err(r) = Scopes::parse(&scope, &tenant) {
        return r.into_response();
    }
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut rng = rand::rng();
    let user_code: String = (0..9).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    let device_code = format!("DAQABIQEAAAD{}", random_token(120));
    let interval = shared.config.device_code_interval_s.max(1);
    let lifetime = shared.config.device_code_lifetime_s.max(1);
    let verification_uri = format!("{}/_sim/devicelogin", shared.login_base);
    if let Ok(mut st) = shared.entra.lock() {
        st.device_codes.retain(|_, d| d.expires + Duration::from_secs(3600) > Instant::now());
        st.device_codes.insert(
            device_code.clone(),
            DeviceGrant {
                user_code: user_code.clone(),
                client_id: PUBLIC_CLIENT_ID.to_string(),
                scope,
                tenant: tenant_id,
                expires: Instant::now() + Duration::from_secs(lifetime),
                interval: Duration::from_secs(interval),
                last_seen: Instant::now(),
                state: DeviceState::Pending,
                force_slow_down: false,
            },
        );
    }
    if let Ok(mut s) = shared.stats.lock() {
        s.sign_in.device_codes_issued += 1;
    }
    Json(json!({
        "user_code": user_code,
        "device_code": device_code,
        "verification_uri": verification_uri,
        "expires_in": lifetime,
        "interval": interval,
        "message": format!("To sign in, use a web browser to open the page {verification_uri} and enter the code {user_code} to authenticate."),
    }))
    .into_response()
}

fn device_code_token(
    shared: &Shared,
    authority: &Authority<'_>,
    tenant: &str,
    form: &HashMap<String, String>,
) -> Result<Value, Refusal> {
    let presented = form.get("device_code").or_else(|| form.get("code")).cloned().unwrap_or_default();
    if presented.is_empty() {
        return Err(refuse(
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'device_code'.",
        ));
    }
    let (scope, granted_for) = {
        let mut st = shared.entra.lock().map_err(|_| refuse("server_error", 90000, "state lock poisoned"))?;
        let mut stats = shared.stats.lock().map_err(|_| refuse("server_error", 90000, "stats lock poisoned"))?;
        stats.sign_in.device_code_polls += 1;
        let Some(grant) = st.device_codes.get_mut(&presented) else {
            return Err(refuse("bad_verification_code", 70018, "The device code was not recognized."));
        };
        if form.get("client_id") != Some(&grant.client_id) {
            return Err(refuse("invalid_grant", 700005, "The device code was issued to another application."));
        }
        let now = Instant::now();
        if now >= grant.expires {
            return Err(refuse("expired_token", 70019, "Verification code expired."));
        }
        let too_soon = now.duration_since(grant.last_seen) < grant.interval;
        grant.last_seen = now;
        if grant.force_slow_down || too_soon {
            grant.force_slow_down = false;
            grant.interval += SLOW_DOWN_STEP;
            stats.sign_in.device_code_slow_downs += 1;
            return Err(refuse(
                "slow_down",
                50196,
                format!(
                    "The client polled faster than the interval; wait {} seconds between polls.",
                    grant.interval.as_secs()
                ),
            ));
        }
        match grant.state {
            DeviceState::Pending => {
                return Err(refuse(
                    "authorization_pending",
                    70016,
                    "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                ))
            }
            DeviceState::Declined => {
                return Err(refuse("authorization_declined", 65004, "User declined to consent to access the app."))
            }
            DeviceState::Redeemed => {
                return Err(refuse("invalid_grant", 54005, "The device code was already redeemed."))
            }
            DeviceState::Approved => grant.state = DeviceState::Redeemed,
        }
        (grant.scope.clone(), grant.tenant.clone())
    };
    let scopes = Scopes::parse(&scope, tenant)?;
    let for_tenant = token_tenant(shared, authority, granted_for.as_deref());
    Ok(issue_user_tokens(
        shared,
        for_tenant,
        &scopes,
        None,
        scopes.offline_access,
        form.get("client_info").map(String::as_str) == Some("1"),
    ))
}

async fn device_login_page(State(shared): State<Arc<Shared>>) -> Html<String> {
    Html(format!(
        "<!doctype html><title>Simulated device sign-in</title><p>Simulated tenant: the test user {} approves a code \
         with <code>POST /_sim/devicecode/approve {{\"user_code\": \"…\"}}</code>.</p>",
        shared.directory.user_upn
    ))
}

/// `POST /_sim/devicecode/{approve|decline|expire|slow-down}` with `{"user_code": "…"}`.
async fn device_code_hook(
    State(shared): State<Arc<Shared>>,
    Path(action): Path<String>,
    Json(body): Json<Value>,
) -> Response {
    let user_code = body["user_code"].as_str().unwrap_or_default().trim().to_ascii_uppercase();
    let Ok(mut st) = shared.entra.lock() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "state lock poisoned").into_response();
    };
    let Some(grant) = st.device_codes.values_mut().find(|d| d.user_code == user_code) else {
        return (StatusCode::NOT_FOUND, Json(json!({"error": format!("no device code with user code '{user_code}'")})))
            .into_response();
    };
    match action.as_str() {
        "approve" if grant.state == DeviceState::Pending => grant.state = DeviceState::Approved,
        "decline" if grant.state == DeviceState::Pending => grant.state = DeviceState::Declined,
        "approve" | "decline" => {
            return (StatusCode::CONFLICT, Json(json!({"error": "the device code is no longer pending"})))
                .into_response()
        }
        "expire" => grant.expires = Instant::now(),
        "slow-down" => grant.force_slow_down = true,
        other => {
            return (StatusCode::NOT_FOUND, Json(json!({"error": format!("unknown device code action '{other}'")})))
                .into_response()
        }
    }
    Json(json!({"ok": true, "user_code": user_code, "action": action})).into_response()
}

/// `POST /_sim/signin/revoke` (every refresh token revoked, as after a password reset: AADSTS50173) or
/// `POST /_sim/signin/expire` (every refresh token expired by inactivity: AADSTS700082).
async fn session_hook(State(shared): State<Arc<Shared>>, Path(action): Path<String>) -> Response {
    let to = match action.as_str() {
        "revoke" => RefreshState::Revoked,
        "expire" => RefreshState::Expired,
        other => {
            return (StatusCode::NOT_FOUND, Json(json!({"error": format!("unknown sign-in action '{other}'")})))
                .into_response()
        }
    };
    let Ok(mut st) = shared.entra.lock() else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "state lock poisoned").into_response();
    };
    let mut n = 0;
    for g in st.refresh_tokens.values_mut().filter(|g| g.state == RefreshState::Active) {
        g.state = to;
        n += 1;
    }
    Json(json!({"ok": true, "refreshTokens": n})).into_response()
}

pub fn sign(key: &[u8; 32], claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"HS256","kid":"ringmaster-sim"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{sig}")
}

/// Why ARM refuses a bearer token, in ARM's words.
pub enum TokenProblem {
    Missing,
    Invalid,
    Expired(i64),
    WrongAudience(String),
}

/// Who a valid bearer token speaks for.
pub struct Caller {
    pub oid: String,
    pub tenant_id: String,
}

/// Verify a bearer token issued by this sim; returns the caller's object id and tenant.
pub fn verify_caller(shared: &Shared, authorization: Option<&str>) -> Result<Caller, TokenProblem> {
    let token = authorization
        .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
        .ok_or(TokenProblem::Missing)?;
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(TokenProblem::Invalid);
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(&shared.signing_key).expect("HMAC takes any key length");
    mac.update(format!("{h}.{p}").as_bytes());
    let sig = URL_SAFE_NO_PAD.decode(s).map_err(|_| TokenProblem::Invalid)?;
    mac.verify_slice(&sig).map_err(|_| TokenProblem::Invalid)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(p).map_err(|_| TokenProblem::Invalid)?)
        .map_err(|_| TokenProblem::Invalid)?;
    let exp = claims["exp"].as_i64().unwrap_or(0);
    let iat = claims["iat"].as_i64().unwrap_or(0);
    if exp <= shared.now_unix() || iat < shared.tokens_not_before() {
        return Err(TokenProblem::Expired(exp));
    }
    let aud = claims["aud"].as_str().unwrap_or_default();
    if !ARM_AUDIENCES.contains(&aud) {
        return Err(TokenProblem::WrongAudience(aud.to_string()));
    }
    Ok(Caller {
        oid: claims["oid"].as_str().unwrap_or_default().to_string(),
        tenant_id: claims["tid"].as_str().unwrap_or_default().to_string(),
    })
}
