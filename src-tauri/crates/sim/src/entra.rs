//! Entra ID v2 as far as the app needs it now: the OpenID discovery document and the token endpoint with the
//! client-credentials grant, answering errors the way Entra does (AADSTS codes).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

use crate::Shared;

/// The audiences ARM accepts.
pub const ARM_AUDIENCES: &[&str] =
    &["https://management.azure.com", "https://management.azure.com/", "https://management.core.windows.net/"];

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(discovery))
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .with_state(shared)
}

async fn latency(shared: &Shared) {
    if shared.config.latency_ms > 0 {
        tokio::time::sleep(std::time::Duration::from_millis(shared.config.latency_ms)).await;
    }
}

async fn discovery(State(shared): State<Arc<Shared>>, Path(tenant): Path<String>) -> Response {
    latency(&shared).await;
    shared.count("Entra_OpenIdConfiguration");
    if !known_tenant(&shared, &tenant) {
        return aadsts(StatusCode::BAD_REQUEST, "invalid_tenant", 90002, &format!("Tenant '{tenant}' not found."));
    }
    let base = format!("{}/{}", shared.login_base, shared.config_tenant());
    Json(json!({
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "jwks_uri": format!("{}/{}/discovery/v2.0/keys", shared.login_base, shared.config_tenant()),
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "issuer": format!("{base}/v2.0"),
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

impl Shared {
    fn config_tenant(&self) -> String {
        self.tenant.read().map(|t| t.tenant_id.clone()).unwrap_or_default()
    }
}

fn known_tenant(shared: &Shared, tenant: &str) -> bool {
    tenant.eq_ignore_ascii_case(&shared.config_tenant()) || tenant == "organizations"
}

async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    _headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    latency(&shared).await;
    shared.count("Entra_Token");
    if !known_tenant(&shared, &tenant) {
        return aadsts(StatusCode::BAD_REQUEST, "invalid_request", 90002, &format!("Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."));
    }
    match form.get("grant_type").map(String::as_str) {
        Some("client_credentials") => {}
        Some(other) => {
            return aadsts(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                70003,
                &format!("The app requested an unsupported grant type '{other}'."),
            )
        }
        None => {
            return aadsts(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                900144,
                "The request body must contain the following parameter: 'grant_type'.",
            )
        }
    }
    let client_id = form.get("client_id").cloned().unwrap_or_default();
    if client_id != shared.client_id {
        return aadsts(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory."),
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

fn aadsts(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let trace = uuid::Uuid::new_v4();
    let correlation = uuid::Uuid::new_v4();
    let now = time::OffsetDateTime::now_utc();
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {}", crate::tenant::rfc3339(now)),
        "error_codes": [code],
        "timestamp": crate::tenant::rfc3339(now),
        "trace_id": trace.to_string(),
        "correlation_id": correlation.to_string(),
    });
    (status, Json(body)).into_response()
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

/// Verify a bearer token issued by this sim; returns the caller's object id.
pub fn verify(shared: &Shared, authorization: Option<&str>) -> Result<String, TokenProblem> {
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
    Ok(claims["oid"].as_str().unwrap_or_default().to_string())
}
