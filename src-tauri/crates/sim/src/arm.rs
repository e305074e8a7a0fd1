//! ARM and Resource Graph: routing, auth, throttling, paging, LROs, fault injection and spec validation.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::entra::{self, TokenProblem};
use crate::throttle::{Kind, Outcome};
use crate::{FaultKind, Faults, Shared};

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new().fallback(dispatch).with_state(shared)
}

/// What a handler answers before the common headers are added.
pub(crate) struct Reply {
    pub status: StatusCode,
    pub body: Option<Value>,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn ok(body: Value) -> Reply {
        Reply { status: StatusCode::OK, body: Some(body), headers: vec![] }
    }
    pub fn empty(status: StatusCode) -> Reply {
        Reply { status, body: None, headers: vec![] }
    }
    pub fn with_status(status: StatusCode, body: Value) -> Reply {
        Reply { status, body: Some(body), headers: vec![] }
    }
    pub fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Reply {
        Reply { status, body: Some(json!({"error": {"code": code, "message": message.into()}})), headers: vec![] }
    }
    pub fn header(mut self, k: &str, v: impl Into<String>) -> Reply {
        self.headers.push((k.to_string(), v.into()));
        self
    }
}

pub(crate) struct Req {
    pub method: Method,
    pub path: String,
    pub segs: Vec<String>,
    pub lower: Vec<String>,
    pub query: HashMap<String, String>,
    pub body: Option<Value>,
}

impl Req {
    /// The ARM id the path names.
    pub fn id(&self) -> String {
        format!("/{}", self.segs.join("/"))
    }
}

async fn dispatch(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut response = handle(&shared, method, uri, headers, body).await;
    // ARM's Date header, on the sim clock: the time base for anything a client sends (token expiry).
    if let Ok(v) = HeaderValue::from_str(&http_date(shared.clock.now())) {
        response.headers_mut().insert(axum::http::header::DATE, v);
    }
    response
}

fn http_date(t: time::OffsetDateTime) -> String {
    let f = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    t.to_offset(time::UtcOffset::UTC).format(&f).unwrap_or_default()
}

async fn handle(shared: &Arc<Shared>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let shared = shared.clone();
    if shared.config.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(shared.config.latency_ms)).await;
    }
    let path = uri.path().to_string();
    let query: HashMap<String, String> = url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let correlation = headers
        .get("x-ms-client-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());

    if path.starts_with("/_sim/") {
        return finish(control(&shared, &method, &path, &body), &correlation);
    }
    let body_json = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                return finish(
                    Reply::error(
                        StatusCode::BAD_REQUEST,
                        "InvalidRequestContent",
                        format!("The request content was invalid and could not be deserialized: {e}"),
                    ),
                    &correlation,
                )
            }
        }
    };
    let segs: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    let lower = segs.iter().map(|s| s.to_ascii_lowercase()).collect();
    let req = Req { method, path: path.clone(), segs, lower, query, body: body_json };
    let op = operation_name(&req);
    shared.count(&op);

    let caller = match entra::verify_caller(&shared, headers.get("authorization").and_then(|v| v.to_str().ok())) {
        Ok(c) => c,
        Err(problem) => {
            if let Ok(mut s) = shared.stats.lock() {
                s.unauthorized += 1;
            }
            return finish(unauthorized(&shared, problem), &correlation);
        }
    };
    if let Some(reply) = other_tenant(&shared, &req, &op, &caller) {
        return finish(reply, &correlation);
    }
    let principal = caller.oid;
    crate::rollout::advance(&shared);

    if let Some(reply) = injected_fault(&shared, &op) {
        return match reply {
            Some(r) => finish(r, &correlation),
            None => {
                // A hung operation: answer so late that any sane client timeout fires first.
                tokio::time::sleep(Duration::from_secs(600)).await;
                finish(Reply::error(StatusCode::GATEWAY_TIMEOUT, "GatewayTimeout", "hung"), &correlation)
            }
        };
    }

    let is_op_status = op.ends_with("_AsyncOperation") || op.ends_with("_OperationResult");
    if let (Some(specs), false) = (&shared.specs, is_op_status) {
        if let Err(v) = specs.check_request(req.method.as_str(), &req.path, &req.query, req.body.as_ref()) {
            return finish(Reply::error(StatusCode::BAD_REQUEST, v.code, v.message), &correlation);
        }
    } else if !is_op_status && !req.query.contains_key("api-version") {
        return finish(
            Reply::error(
                StatusCode::BAD_REQUEST,
                "MissingApiVersionParameter",
                "The api-version query parameter (?api-version=) is required for all requests.",
            ),
            &correlation,
        );
    }

    let is_graph = op == "Resources";
    let mut throttle_headers = vec![];
    if !is_graph {
        let kind = match req.method {
            Method::GET | Method::HEAD => Kind::Read,
            Method::DELETE => Kind::Delete,
            _ => Kind::Write,
        };
        let (scope_word, scope) = match (req.lower.first().map(String::as_str), req.segs.get(1)) {
            (Some("subscriptions"), Some(s)) => ("subscription", s.to_ascii_lowercase()),
            _ => ("tenant", "tenant".to_string()),
        };
        let outcome = shared.throttle.lock().map(|mut t| t.take(&principal, &scope, kind));
        match outcome {
            Ok(Outcome::Allowed { remaining }) => {
                throttle_headers.push((
                    format!("x-ms-ratelimit-remaining-{scope_word}-{}", kind.header_word()),
                    remaining.to_string(),
                ));
            }
            Ok(Outcome::Throttled { retry_after_s }) => {
                if let Ok(mut s) = shared.stats.lock() {
                    s.throttled += 1;
                }
                let r = Reply::error(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    format!("The request is being throttled as the limit has been reached for operation type - {}. Please retry after {retry_after_s} seconds.", kind.header_word()),
                )
                .header("Retry-After", retry_after_s.to_string());
                return finish(r, &correlation);
            }
            Err(_) => {}
        }
    }

    let mut reply = route(&shared, &req, &op, &principal);
    reply.headers.extend(throttle_headers);

    if let (Some(specs), Some(body), false) = (&shared.specs, &reply.body, is_op_status) {
        if let Err(v) = specs.check_response(req.method.as_str(), &req.path, reply.status.as_u16(), body) {
            tracing::error!("{}", v.message);
            if let Ok(mut s) = shared.stats.lock() {
                s.spec_violations.push(v.message.clone());
            }
            reply = Reply::error(StatusCode::INTERNAL_SERVER_ERROR, v.code, v.message);
        }
    }
    finish(reply, &correlation)
}

/// A token from another tenant (the second one, where the test user is a guest) holds no role on this tenant's
/// subscriptions: it lists none, and ARM refuses it on any of them for its issuer.
fn other_tenant(shared: &Shared, req: &Req, op: &str, caller: &entra::Caller) -> Option<Reply> {
    let home = shared.tenant.read().map(|t| t.tenant_id.clone()).unwrap_or_default();
    if caller.tenant_id.is_empty() || caller.tenant_id.eq_ignore_ascii_case(&home) {
        return None;
    }
    if op == "Subscriptions_List" {
        return Some(Reply::ok(json!({"value": [], "nextLink": ""})));
    }
    if req.lower.first().map(String::as_str) == Some("subscriptions") {
        let tid = &caller.tenant_id;
        return Some(
            Reply::error(
                StatusCode::UNAUTHORIZED,
                "InvalidAuthenticationTokenTenant",
                format!("The access token is from the wrong issuer 'https://sts.windows.net/{tid}/'. It must match the tenant 'https://sts.windows.net/{home}/' associated with this subscription. Please use the authority (URL) 'https://login.windows.net/{home}' to get the token."),
            )
            .header(
                "WWW-Authenticate",
                format!("Bearer authorization_uri=\"{}/{home}\", error=\"invalid_token\", error_description=\"The access token is from the wrong issuer.\"", shared.login_base),
            ),
        );
    }
    None
}

fn finish(reply: Reply, correlation: &str) -> Response {
    let mut builder = Response::builder().status(reply.status);
    let h = builder.headers_mut().expect("fresh builder has headers");
    h.insert("x-ms-request-id", HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()).expect("uuid is ascii"));
    if let Ok(v) = HeaderValue::from_str(correlation) {
        h.insert("x-ms-correlation-request-id", v);
    }
    for (k, v) in &reply.headers {
        if let (Ok(name), Ok(val)) = (axum::http::HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            h.insert(name, val);
        }
    }
    let body = match reply.body {
        Some(Value::String(raw)) if reply.headers.iter().any(|(k, _)| k == "x-sim-raw") => Body::from(raw),
        Some(v) => {
            h.insert("content-type", HeaderValue::from_static("application/json; charset=utf-8"));
            Body::from(v.to_string())
        }
        None => Body::empty(),
    };
    builder.body(body).expect("valid response")
}

fn unauthorized(shared: &Shared, problem: TokenProblem) -> Reply {
    let tenant = shared.tenant.read().map(|t| t.tenant_id.clone()).unwrap_or_default();
    let (code, message, desc) = match problem {
        TokenProblem::Missing => ("AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.".to_string(), "The authorization header is missing."),
        TokenProblem::Invalid => ("InvalidAuthenticationToken", "The access token is invalid.".to_string(), "The access token is invalid."),
        TokenProblem::Expired(exp) => (
            "ExpiredAuthenticationToken",
            format!("The access token expiry UTC time '{exp}' is earlier than current UTC time, or the token was revoked."),
            "The access token is expired.",
        ),
        TokenProblem::WrongAudience(aud) => (
            "InvalidAuthenticationTokenAudience",
            format!("The access token has been obtained for wrong audience or resource '{aud}'. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.azure.com/'."),
            "The access token has the wrong audience.",
        ),
    };
    Reply::error(StatusCode::UNAUTHORIZED, code, message).header(
        "WWW-Authenticate",
        format!(
            "Bearer authorization_uri=\"{}/{tenant}\", error=\"invalid_token\", error_description=\"{desc}\"",
            shared.login_base
        ),
    )
}

/// `Some(Some(reply))`: answer with it; `Some(None)`: hang; `None`: no fault.
fn injected_fault(shared: &Shared, op: &str) -> Option<Option<Reply>> {
    let mut faults = shared.faults.lock().ok()?;
    if op == "Resources" && faults.graph_unavailable {
        drop(faults);
        bump_injected(shared);
        return Some(Some(Reply::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "Resource Graph is temporarily unavailable. Please retry later.",
        )));
    }
    let idx = faults.rules.iter().position(|r| {
        r.count > 0
            && (r.operation == "*" || r.operation.eq_ignore_ascii_case(op))
            && r.probability.is_none_or(|p| rand::Rng::random_bool(&mut rand::rng(), p.clamp(0.0, 1.0)))
    })?;
    let rule = {
        let r = &mut faults.rules[idx];
        r.count -= 1;
        r.clone()
    };
    drop(faults);
    bump_injected(shared);
    Some(match rule.kind {
        FaultKind::Status => {
            let status = StatusCode::from_u16(rule.status.unwrap_or(500)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Some(Reply::error(
                status,
                "InternalServerError",
                "Encountered internal server error. Diagnostic information: injected by the simulator.",
            ))
        }
        FaultKind::MalformedJson => Some(Reply {
            status: StatusCode::OK,
            body: Some(Value::String("{\"value\": [ {\"id\": \"/subscriptions/trunc".into())),
            headers: vec![("x-sim-raw".into(), "1".into()), ("content-type".into(), "application/json".into())],
        }),
        FaultKind::Throttle => Some(
            Reply::error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "The request is being throttled (injected by the simulator).",
            )
            .header("Retry-After", rule.retry_after_s.unwrap_or(1).to_string()),
        ),
        FaultKind::Hang => None,
    })
}

fn bump_injected(shared: &Shared) {
    if let Ok(mut s) = shared.stats.lock() {
        s.errors_injected += 1;
    }
}

/// Test hooks on the ARM port: stats, faults, token revocation, resource edits.
fn control(shared: &Shared, method: &Method, path: &str, body: &Bytes) -> Reply {
    match (method.as_str(), path) {
        ("GET", "/_sim/stats") => {
            crate::rollout::advance(shared);
            let mut stats = shared.stats.lock().map(|s| s.clone()).unwrap_or_default();
            let now = shared.clock.now();
            if let Ok(t) = shared.tenant.read() {
                stats.max_out_of_service = t.sim.max_out_of_service.clone();
                stats.vm_creates = t.sim.vm_creates;
                stats.drained_idle = t.drained_idle(now);
                stats.orphans = t.orphans();
                stats.master_violations = t.sim.master_violations.clone();
                stats.capture_leftovers = t.capture_leftovers();
            }
            stats.sim_now = crate::tenant::rfc3339(now);
            Reply::ok(serde_json::to_value(stats).unwrap_or(Value::Null))
        }
        ("GET", "/_sim/messages") => {
            crate::rollout::advance(shared);
            let messages = shared.tenant.read().map(|t| t.sim.messages.clone()).unwrap_or_default();
            Reply::ok(serde_json::to_value(messages).unwrap_or(Value::Null))
        }
        ("POST", "/_sim/faults") => match serde_json::from_slice::<Faults>(body) {
            Ok(f) => {
                if let Ok(mut cur) = shared.faults.lock() {
                    *cur = f;
                }
                Reply::ok(json!({"ok": true}))
            }
            Err(e) => Reply::error(StatusCode::BAD_REQUEST, "InvalidFaults", e.to_string()),
        },
        ("POST", "/_sim/expire-tokens") => {
            shared.tokens_not_before.store(shared.now_unix() + 1, std::sync::atomic::Ordering::SeqCst);
            Reply::ok(json!({"ok": true}))
        }
        ("PATCH", "/_sim/resource") => {
            let Ok(v) = serde_json::from_slice::<Value>(body) else {
                return Reply::error(StatusCode::BAD_REQUEST, "InvalidRequestContent", "expected {id, merge}");
            };
            let id = v["id"].as_str().unwrap_or_default();
            let Ok(mut tenant) = shared.tenant.write() else {
                return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "Poisoned", "tenant lock");
            };
            match tenant.get_mut(id) {
                Some(r) => {
                    merge(r, &v["merge"]);
                    let out = r.clone();
                    if let Some(pool) = crate::lifecycle::pool_of(id) {
                        tenant.refresh_pool(&pool);
                    }
                    Reply::ok(out)
                }
                None => Reply::error(StatusCode::NOT_FOUND, "ResourceNotFound", format!("no resource {id}")),
            }
        }
        _ => Reply::error(StatusCode::NOT_FOUND, "NotFound", format!("no sim control endpoint {method} {path}")),
    }
}

pub(crate) fn merge(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                merge(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (t, p) => *t = p.clone(),
    }
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

/// Name the operation the way the specs do (used by stats and fault rules).
fn operation_name(req: &Req) -> String {
    let l: Vec<&str> = req.lower.iter().map(String::as_str).collect();
    let m = req.method.as_str();
    if let [_, .., "providers", "microsoft.resources", "tags", "default"] = l.as_slice() {
        return match m {
            "GET" => "Tags_GetAtScope",
            "PUT" => "Tags_CreateOrUpdateAtScope",
            "PATCH" => "Tags_UpdateAtScope",
            "DELETE" => "Tags_DeleteAtScope",
            _ => "Unknown",
        }
        .into();
    }
    let name = match (m, l.as_slice()) {
        ("POST", ["providers", "microsoft.resourcegraph", "resources"]) => "Resources",
        ("GET", ["subscriptions"]) => "Subscriptions_List",
        ("GET", ["subscriptions", _]) => "Subscriptions_Get",
        ("GET", ["tenants"]) => "Tenants_List",
        ("GET", ["subscriptions", _, "resourcegroups"]) => "ResourceGroups_List",
        ("GET", ["subscriptions", _, "providers", "microsoft.compute", "galleries"]) => "Galleries_List",
        ("GET", ["subscriptions", _, "providers", "microsoft.compute", "virtualmachines"]) => "VirtualMachines_ListAll",
        ("GET", ["subscriptions", _, "providers", "microsoft.desktopvirtualization", "hostpools"]) => "HostPools_List",
        ("GET", ["subscriptions", _, "providers", "microsoft.compute", "locations", _, "usages"]) => "Usage_List",
        ("GET", ["subscriptions", _, "providers", "microsoft.compute", "locations", _, "operations", _]) => {
            "Compute_AsyncOperation"
        }
        ("GET", ["subscriptions", _, "providers", "microsoft.compute", "locations", _, "operationresults", _]) => {
            "Compute_OperationResult"
        }
        ("GET", ["subscriptions", _, "providers", "microsoft.network", "locations", _, "operations", _]) => {
            "Network_AsyncOperation"
        }
        ("GET", ["subscriptions", _, "providers", "microsoft.network", "locations", _, "operationresults", _]) => {
            "Network_OperationResult"
        }
        (
            "POST",
            ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.compute", "virtualmachines", _, action],
        ) => match *action {
            "deallocate" => "VirtualMachines_Deallocate",
            "start" => "VirtualMachines_Start",
            "poweroff" => "VirtualMachines_PowerOff",
            "generalize" => "VirtualMachines_Generalize",
            "restart" => "VirtualMachines_Restart",
            "runcommand" => "VirtualMachines_RunCommand",
            _ => "Unknown_POST",
        },
        (
            "GET",
            ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.compute", "virtualmachines", _, "instanceview"],
        ) => "VirtualMachines_InstanceView",
        (
            "POST",
            ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.desktopvirtualization", "hostpools", _, action],
        ) => match *action {
            "retrieveregistrationtoken" => "HostPools_RetrieveRegistrationToken",
            "listregistrationtokens" => "HostPools_ListRegistrationTokens",
            _ => "Unknown_POST",
        },
        (
            "POST",
            ["subscriptions", _, "resourcegroups", _, "providers", "microsoft.desktopvirtualization", "hostpools", _, "sessionhosts", _, "usersessions", _, action],
        ) => match *action {
            "sendmessage" => "UserSessions_SendMessage",
            "disconnect" => "UserSessions_Disconnect",
            _ => "Unknown_POST",
        },
        (_, ["subscriptions", _, "resourcegroups", _, "providers", _ns, rest @ ..]) => {
            let types: Vec<&str> = rest.iter().step_by(2).copied().collect();
            let collection = rest.len() % 2 == 1;
            let base = match types.as_slice() {
                ["galleries"] => "Galleries",
                ["galleries", "images"] => "GalleryImages",
                ["galleries", "images", "versions"] => "GalleryImageVersions",
                ["virtualmachines"] => "VirtualMachines",
                ["virtualmachines", "extensions"] => "VirtualMachineExtensions",
                ["virtualmachines", "runcommands"] => "VirtualMachineRunCommands",
                ["snapshots"] => "Snapshots",
                ["networkinterfaces"] => "NetworkInterfaces",
                ["disks"] => "Disks",
                ["hostpools"] => "HostPools",
                ["hostpools", "sessionhosts"] => "SessionHosts",
                ["hostpools", "usersessions"] => return "UserSessions_ListByHostPool".into(),
                ["hostpools", "sessionhosts", "usersessions"] => "UserSessions",
                _ => return format!("Unknown_{m}"),
            };
            let verb = match (m, collection, base) {
                ("GET", true, "GalleryImages") => "ListByGallery",
                ("GET", true, "GalleryImageVersions") => "ListByGalleryImage",
                ("GET", true, "HostPools") => "ListByResourceGroup",
                ("GET", true, "Galleries") => "ListByResourceGroup",
                ("GET", true, "Disks") => "ListByResourceGroup",
                ("GET", true, "Snapshots") => "ListByResourceGroup",
                ("GET", true, "VirtualMachineRunCommands") => "ListByVirtualMachine",
                ("GET", false, "VirtualMachineRunCommands") => "GetByVirtualMachine",
                ("GET", true, _) => "List",
                ("GET", false, _) => "Get",
                ("PATCH", false, _) => "Update",
                ("PUT", false, _) => "CreateOrUpdate",
                ("DELETE", false, _) => "Delete",
                _ => "Unknown",
            };
            return format!("{base}_{verb}");
        }
        _ => "Unknown",
    };
    name.to_string()
}

fn route(shared: &Shared, req: &Req, op: &str, principal: &str) -> Reply {
    let Ok(tenant) = shared.tenant.read() else {
        return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "tenant lock poisoned");
    };
    // Every subscription-scoped path must name a subscription of this tenant.
    if req.lower.first().map(String::as_str) == Some("subscriptions") {
        if let Some(sub) = req.segs.get(1) {
            if !tenant.subscriptions.iter().any(|s| s.id.eq_ignore_ascii_case(sub)) {
                return Reply::error(
                    StatusCode::NOT_FOUND,
                    "SubscriptionNotFound",
                    format!("The subscription '{sub}' could not be found."),
                );
            }
        }
    }
    drop(tenant);
    if let Some(reply) = crate::rollout::route(shared, req, op) {
        return reply;
    }
    let Ok(tenant) = shared.tenant.read() else {
        return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "tenant lock poisoned");
    };
    let page_size = req
        .query
        .get("pageSize")
        .and_then(|p| p.parse::<usize>().ok())
        .filter(|p| (1..=1000).contains(p))
        .unwrap_or(shared.config.page_size);
    match op {
        "Resources" => {
            drop(tenant);
            resource_graph(shared, req, principal)
        }
        "Subscriptions_List" => {
            let items: Vec<Value> = tenant
                .subscriptions
                .iter()
                .map(|s| {
                    json!({
                        "id": format!("/subscriptions/{}", s.id),
                        "subscriptionId": s.id,
                        "tenantId": tenant.tenant_id,
                        "displayName": s.name,
                        "state": s.state,
                        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "EnterpriseAgreement_2014-09-01", "spendingLimit": "Off"},
                        "authorizationSource": "RoleBased",
                        "managedByTenants": [],
                        "tags": {}
                    })
                })
                .collect();
            page(shared, req, items, page_size)
        }
        "Tenants_List" => page(shared, req, shared.directory.tenants_for(principal), page_size),
        "Subscriptions_Get" => {
            let sub = &req.segs[1];
            let s = tenant.subscriptions.iter().find(|s| s.id.eq_ignore_ascii_case(sub));
            match s {
                Some(s) => Reply::ok(
                    json!({"id": format!("/subscriptions/{}", s.id), "subscriptionId": s.id, "tenantId": tenant.tenant_id, "displayName": s.name, "state": s.state, "authorizationSource": "RoleBased"}),
                ),
                None => Reply::error(StatusCode::NOT_FOUND, "SubscriptionNotFound", "not found"),
            }
        }
        "ResourceGroups_List" => {
            let scope = format!("/subscriptions/{}/resourcegroups/", req.segs[1]);
            let items: Vec<Value> = tenant.list(&scope, "Microsoft.Resources/resourceGroups").cloned().collect();
            page(shared, req, items, page_size)
        }
        "Galleries_List" | "VirtualMachines_ListAll" | "HostPools_List" => {
            let scope = format!("/subscriptions/{}/", req.segs[1]);
            let rtype = match op {
                "Galleries_List" => "Microsoft.Compute/galleries",
                "VirtualMachines_ListAll" => "Microsoft.Compute/virtualMachines",
                _ => "Microsoft.DesktopVirtualization/hostpools",
            };
            let items: Vec<Value> = tenant.list(&scope, rtype).cloned().collect();
            page(shared, req, items, page_size)
        }
        _ if op.ends_with("_Get") => {
            let id = format!("/{}", req.segs.join("/"));
            match tenant.get(&id) {
                Some(v) => {
                    let mut v = v.clone();
                    expand(shared, &tenant, req, &mut v);
                    Reply::ok(v)
                }
                None => not_found(req),
            }
        }
        _ if op.contains("_List") => {
            // A child collection under a resource group scoped parent.
            let parent = format!("/{}", req.segs[..req.segs.len() - 1].join("/"));
            let rg_scope = req.segs.len() == 6;
            if !rg_scope && tenant.get(&parent).is_none() {
                return not_found(req);
            }
            let last = req.lower.last().map(String::as_str).unwrap_or_default();
            let (scope, rtype) = match last {
                "images" => (format!("{parent}/images/"), "Microsoft.Compute/galleries/images"),
                "versions" => (format!("{parent}/versions/"), "Microsoft.Compute/galleries/images/versions"),
                "sessionhosts" => {
                    (format!("{parent}/sessionhosts/"), "Microsoft.DesktopVirtualization/hostpools/sessionhosts")
                }
                "usersessions" if op == "UserSessions_ListByHostPool" => (
                    format!("{parent}/sessionhosts/"),
                    "Microsoft.DesktopVirtualization/hostpools/sessionhosts/usersessions",
                ),
                "usersessions" => (
                    format!("{parent}/usersessions/"),
                    "Microsoft.DesktopVirtualization/hostpools/sessionhosts/usersessions",
                ),
                "virtualmachines" => (format!("{parent}/virtualmachines/"), "Microsoft.Compute/virtualMachines"),
                "extensions" => (format!("{parent}/extensions/"), crate::lifecycle::EXTENSION_TYPE),
                "networkinterfaces" => (format!("{parent}/networkinterfaces/"), crate::lifecycle::NIC_TYPE),
                "disks" => (format!("{parent}/disks/"), crate::lifecycle::DISK_TYPE),
                "snapshots" => (format!("{parent}/snapshots/"), crate::lifecycle::SNAPSHOT_TYPE),
                "hostpools" => (format!("{parent}/hostpools/"), "Microsoft.DesktopVirtualization/hostpools"),
                "galleries" => (format!("{parent}/galleries/"), "Microsoft.Compute/galleries"),
                _ => return not_found(req),
            };
            let items: Vec<Value> = tenant.list(&scope, rtype).cloned().collect();
            page(shared, req, items, page_size)
        }
        _ => Reply::error(
            StatusCode::BAD_REQUEST,
            "InvalidResourceType",
            format!("The simulator does not serve {} {}.", req.method, req.path),
        ),
    }
}

pub(crate) fn not_found(req: &Req) -> Reply {
    let name = req.segs.last().cloned().unwrap_or_default();
    let rg = req.segs.get(3).cloned().unwrap_or_default();
    Reply::error(
        StatusCode::NOT_FOUND,
        "ResourceNotFound",
        format!("The Resource '{name}' under resource group '{rg}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"),
    )
}

fn expand(shared: &Shared, tenant: &crate::tenant::Tenant, req: &Req, v: &mut Value) {
    let expand = req.query.get("$expand").map(|e| e.to_ascii_lowercase()).unwrap_or_default();
    let rtype = v["type"].as_str().unwrap_or_default().to_ascii_lowercase();
    if expand == "replicationstatus" && rtype == "microsoft.compute/galleries/images/versions" {
        let now_s = (shared.clock.now() - shared.clock.start()).whole_seconds();
        if let Some(status) = tenant.replication_status(v["id"].as_str().unwrap_or_default(), now_s) {
            v["properties"]["replicationStatus"] = status;
        }
    }
    if expand == "instanceview" {
        crate::rollout::expand_instance_view(tenant, v);
    }
}

/// Serve one page of `items` and a `nextLink` carrying the offset, preserving the request's other parameters.
fn page(shared: &Shared, req: &Req, items: Vec<Value>, size: usize) -> Reply {
    let offset = req
        .query
        .get("$skiptoken")
        .and_then(|t| URL_SAFE_NO_PAD.decode(t).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("offset:").and_then(|n| n.parse::<usize>().ok()))
        .unwrap_or(0);
    let end = (offset + size).min(items.len());
    let slice = items.get(offset..end).map(<[Value]>::to_vec).unwrap_or_default();
    let mut body = json!({"value": slice});
    if end < items.len() {
        let mut url = url::Url::parse(&format!("{}{}", shared.arm_base, req.path)).expect("sim URLs parse");
        {
            let mut q = url.query_pairs_mut();
            for (k, v) in &req.query {
                if k != "$skiptoken" {
                    q.append_pair(k, v);
                }
            }
            q.append_pair("$skiptoken", &URL_SAFE_NO_PAD.encode(format!("offset:{end}")));
        }
        body["nextLink"] = Value::String(url.to_string());
    } else if req.lower.as_slice() == ["subscriptions"] || req.lower.as_slice() == ["tenants"] {
        // The Subscriptions spec marks nextLink required; on the last page it is empty.
        body["nextLink"] = Value::String(String::new());
    }
    Reply::ok(body)
}

fn resource_graph(shared: &Shared, req: &Req, principal: &str) -> Reply {
    let (allowed, remaining, resets) =
        shared.throttle.lock().map(|mut t| t.take_graph(principal)).unwrap_or((true, 0, Duration::ZERO));
    let resets_header = format!("00:00:{:02}", resets.as_secs().max(1));
    if !allowed {
        if let Ok(mut s) = shared.stats.lock() {
            s.throttled += 1;
        }
        return Reply::error(StatusCode::TOO_MANY_REQUESTS, "RateLimiting", "Please provide below info when asking for support: timestampUtc, correlationId. The user quota for Resource Graph queries was exceeded.")
            .header("Retry-After", resets.as_secs().max(1).to_string())
            .header("x-ms-user-quota-remaining", "0")
            .header("x-ms-user-quota-resets-after", resets_header);
    }
    let Some(body) = &req.body else {
        return Reply::error(StatusCode::BAD_REQUEST, "InvalidRequestContent", "The request content is required.");
    };
    let Some(query) = body["query"].as_str() else {
        return Reply::error(StatusCode::BAD_REQUEST, "InvalidQuery", "Query is required.");
    };
    let subs: Option<Vec<String>> =
        body["subscriptions"].as_array().map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect());
    let options = &body["options"];
    let format = options["resultFormat"].as_str().unwrap_or("objectArray");
    if format != "objectArray" {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "UnsupportedResultFormat",
            "The simulator answers resultFormat objectArray only.",
        );
    }
    let top = options["$top"].as_u64().unwrap_or(1000).clamp(1, 1000) as usize;
    let skip = options["$skip"].as_u64().unwrap_or(0) as usize;
    // Like Resource Graph, a $skipToken pages through the snapshot the first page was cut from, so paging a
    // large result costs one evaluation, and rows do not shift between pages.
    let (snapshot, offset) = match options["$skipToken"].as_str() {
        Some(t) => {
            let parsed = URL_SAFE_NO_PAD.decode(t).ok().and_then(|b| String::from_utf8(b).ok()).and_then(|s| {
                let rest = s.strip_prefix("rg:")?;
                let (id, off) = rest.split_once(':')?;
                Some((id.parse::<u64>().ok()?, off.parse::<usize>().ok()?))
            });
            let found = parsed.and_then(|(id, off)| {
                shared
                    .graph_snapshots
                    .lock()
                    .ok()?
                    .iter()
                    .find(|(sid, _)| *sid == id)
                    .map(|(_, rows)| (id, rows.clone(), off))
            });
            match found {
                Some((id, rows, off)) => ((id, rows), off),
                None => {
                    return Reply::error(
                        StatusCode::BAD_REQUEST,
                        "InvalidSkipToken",
                        "The $skipToken is not valid for this query, or it has expired.",
                    )
                }
            }
        }
        None => {
            let tenant = match shared.tenant.read() {
                Ok(t) => t,
                Err(_) => {
                    return Reply::error(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "InternalServerError",
                        "tenant lock poisoned",
                    )
                }
            };
            let rows = match crate::graph::run(&tenant, query, subs.as_deref()) {
                Ok(r) => r,
                Err(e) => {
                    return Reply::error(
                        StatusCode::BAD_REQUEST,
                        "BadRequest",
                        format!(
                            "Please provide below info when asking for support: timestampUtc, correlationId. \
                             Query is invalid: {}",
                            e.0
                        ),
                    )
                }
            };
            let rows: Arc<Vec<Value>> = Arc::new(rows.into_iter().map(Value::Object).collect());
            let id = shared.graph_snapshot_seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if let Ok(mut snaps) = shared.graph_snapshots.lock() {
                snaps.push((id, rows.clone()));
                // Keep the newest few: an abandoned paging run must not hold memory forever.
                let excess = snaps.len().saturating_sub(8);
                snaps.drain(..excess);
            }
            ((id, rows), skip)
        }
    };
    let (snapshot_id, rows) = snapshot;
    let total = rows.len();
    let end = (offset + top).min(total);
    let data: Vec<Value> = rows.iter().skip(offset).take(end.saturating_sub(offset)).cloned().collect();
    let mut out = json!({
        "totalRecords": total,
        "count": data.len(),
        "resultTruncated": "false",
        "data": data,
        "facets": []
    });
    if end < total {
        out["$skipToken"] = Value::String(URL_SAFE_NO_PAD.encode(format!("rg:{snapshot_id}:{end}")));
    }
    Reply::ok(out)
        .header("x-ms-user-quota-remaining", remaining.to_string())
        .header("x-ms-user-quota-resets-after", resets_header)
}
