//! A simulated Login Enterprise appliance: the v7 public API subset the gate uses (system version, application tests
//! with paging, connection resources, start and stop, test runs, their events, the run overview, run comments), served
//! over HTTPS on loopback under `/publicApi` with a bearer token, RFC 7807 problem bodies and a bodiless 401.
//!
//! Runs move on a sim clock (`time_scale` times real time): created -> testRunEnded -> completed, with the events and
//! results the test's [`Behaviour`] dictates. With a spec (`shared/loginenterprise-api/openapi-v7.json`) every request
//! and every response is checked against it, OpenAPI 3.0 translated to JSON Schema 2020-12; what does not match lands
//! in `spec_violations` of `GET /_le/stats`.
//!
//! Test hooks, without a token, on the API port and on a separate control port (which stays up when the API is
//! `down`): `GET /_le/stats`, `POST /_le/faults`, `POST /_le/behaviour`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::Response;
use axum::Router;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

use crate::tenant::{rfc3339, SimClock};

/// The seeded application tests (ids are stable, so demo configurations can name them).
pub const TEST_PASS: &str = "1e000000-0000-4000-8000-000000000001";
pub const TEST_FAIL_APP: &str = "1e000000-0000-4000-8000-000000000002";
pub const TEST_LAUNCHER_OFFLINE: &str = "1e000000-0000-4000-8000-000000000003";
pub const TEST_NEVER_COMPLETES: &str = "1e000000-0000-4000-8000-000000000004";
pub const TEST_INTERNAL_ERROR: &str = "1e000000-0000-4000-8000-000000000005";
pub const TEST_DISABLED: &str = "1e000000-0000-4000-8000-000000000006";
pub const TEST_RUNNING: &str = "1e000000-0000-4000-8000-000000000007";
pub const TEST_LOGIN_FAILURE: &str = "1e000000-0000-4000-8000-000000000008";
/// A load test: never among `testType=applicationTest`.
pub const TEST_LOAD: &str = "1e000000-0000-4000-8000-000000000009";
pub const TEST_PASS_NAME: &str = "AVD smoke";
/// The app that fails in [`TEST_FAIL_APP`]'s runs.
pub const FAILING_APP: &str = "Microsoft Teams";
/// The run in progress on [`TEST_RUNNING`] at start (it never ends unless stopped).
pub const RUNNING_RUN: &str = "c0000000-0000-4000-8000-000000000007";
pub const LAUNCHER_GROUP: &str = "1a000000-0000-4000-8000-000000000001";
pub const ACCOUNT_GROUP: &str = "1c000000-0000-4000-8000-000000000001";
/// The apps of the seeded workloads, in order.
pub const APPS: &[&str] = &["Microsoft Edge", "Microsoft Word", "Microsoft Excel", "Microsoft Teams"];

const PRODUCT_VERSION: &str = "6.1.12";
/// Sim seconds after a run is created: the session starts, the user is logged on.
const START_S: f64 = 5.0;
const LOGIN_S: f64 = 20.0;
/// Sim seconds from testRunEnded to completed (results are processed).
const FINALIZE_S: f64 = 15.0;

#[derive(Debug, thiserror::Error)]
pub enum LeSimError {
    #[error("could not listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("could not create the appliance's TLS certificate: {0}")]
    Tls(String),
    #[error("could not write the appliance's CA certificate to {path}: {source}")]
    State { path: String, source: std::io::Error },
    #[error("the Login Enterprise spec could not be loaded for validation: {0}")]
    Spec(String),
}

/// How a test's runs go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Behaviour {
    /// Login succeeds, every app runs.
    Pass,
    /// Login succeeds; `app` fails (an `applicationFailure` event, `appExecutionSuccessful: false`).
    FailApp { app: String },
    /// The launcher goes offline and the connection times out; nothing runs (`launcherOffline`,
    /// `connectionInitializationTimeout`).
    LauncherOffline,
    /// The user cannot log on (`loginFailure`); nothing runs.
    LoginFailure,
    /// The run never ends (until stopped).
    NeverCompletes,
    /// The appliance fails half-way: result `internalError`, `testRunFailed`.
    InternalError,
}

#[derive(Debug, Clone)]
pub struct LeConfig {
    /// The API listener; the control listener takes another port on the same address.
    pub listen: SocketAddr,
    /// How much faster than real time runs progress.
    pub time_scale: f64,
    /// Validate every request and response against this `openapi-v7.json`.
    pub spec: Option<PathBuf>,
    /// Sim seconds from a run's start to `testRunEnded`.
    pub run_duration_s: u64,
    /// The most items one page holds, whatever `count` asks (the spec allows up to 10,000).
    pub max_page_size: usize,
    /// Extra application tests ("Regional check NN", whose descriptions mention "AVD smoke"), for paging.
    pub filler_tests: usize,
    /// Where the CA certificate is written; a temporary folder when not given.
    pub state_dir: Option<PathBuf>,
    /// Added to every API answer, standing for a WAN round trip.
    pub latency_ms: u64,
}

impl Default for LeConfig {
    fn default() -> Self {
        LeConfig {
            listen: "127.0.0.1:0".parse().expect("valid addr"),
            time_scale: 1.0,
            spec: None,
            run_duration_s: 240,
            max_page_size: 10_000,
            filler_tests: 8,
            state_dir: None,
            latency_ms: 0,
        }
    }
}

/// Injected faults, set with `POST /_le/faults` (each post replaces the last; `{}` clears all).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct LeFaults {
    /// Answer API calls with this status and a problem body.
    pub status: Option<u16>,
    /// Answer API calls 200 with a body that is not JSON.
    pub garbage: bool,
    /// Close the API port: connections are refused until a post without `down`.
    pub down: bool,
    /// Answer API calls this much later.
    pub delay_ms: u64,
    /// Only calls of this operationId (`Data_GetTestRun`); all when absent.
    pub operation: Option<String>,
    /// Only the next N matching calls; all when absent.
    pub count: Option<u32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeStats {
    pub requests: u64,
    /// By the spec's operationId.
    pub requests_by_operation: BTreeMap<String, u64>,
    pub unauthorized: u64,
    pub faults_injected: u64,
    pub runs_started: u64,
    /// Requests and responses that do not match the spec (empty when all is well).
    pub spec_violations: Vec<String>,
    /// Calls to operations the spec has and the sim does not serve.
    pub unserved: Vec<String>,
    /// Whether requests and responses are checked against the spec.
    pub validating: bool,
    pub sim_now: String,
}

/// A seeded test, as the handle reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeededTest {
    pub id: String,
    pub name: String,
    /// `None` for the load test.
    pub behaviour: Option<Behaviour>,
    pub enabled: bool,
    /// A completed earlier run (every app passed) to compare with.
    pub baseline_run_id: Option<String>,
}

/// A running appliance. Dropping the handle does not stop it; call [`LeHandle::shutdown`].
pub struct LeHandle {
    /// `https://localhost:PORT/publicApi`.
    pub base_url: String,
    /// `https://localhost:PORT` of the control port (`/_le/*`).
    pub control_url: String,
    /// The bearer token the API accepts.
    pub token: String,
    /// The CA to trust (PEM).
    pub ca_cert: PathBuf,
    pub tests: Vec<SeededTest>,
    pub launcher_group_id: String,
    pub account_group_id: String,
    shared: Arc<Shared>,
    control: axum_server::Handle,
    _dir: Option<DirGuard>,
}

impl std::fmt::Debug for LeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeHandle")
            .field("base_url", &self.base_url)
            .field("control_url", &self.control_url)
            .field("token", &"<redacted>")
            .field("ca_cert", &self.ca_cert)
            .finish_non_exhaustive()
    }
}

impl LeHandle {
    pub fn shutdown(&self) {
        self.control.shutdown();
        if let Ok(mut api) = self.shared.api.lock() {
            if let Some(h) = api.take() {
                h.shutdown();
            }
        }
    }

    /// The stats, read in-process (the same as `GET /_le/stats`).
    pub fn stats(&self) -> LeStats {
        stats_now(&self.shared)
    }

    pub fn seeded(&self, id: &str) -> Option<&SeededTest> {
        self.tests.iter().find(|t| t.id == id)
    }
}

/// A folder removed on drop (the CA certificate of an in-process appliance lives here).
struct DirGuard(PathBuf);

impl Drop for DirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where the spec is: `RINGMASTER_LE_SPEC` (the file or its folder), else `shared/loginenterprise-api` beside the
/// workspace.
pub fn default_spec_path() -> PathBuf {
    let path = match std::env::var("RINGMASTER_LE_SPEC") {
        Ok(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../../shared/loginenterprise-api"),
    };
    if path.is_dir() {
        path.join("openapi-v7.json")
    } else {
        path
    }
}

/// For tests: the spec if present; under CI (`CI=true`) a missing spec is a failure, elsewhere the caller is told
/// validation is skipped.
pub fn spec_for_tests() -> Option<PathBuf> {
    let path = default_spec_path();
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("the Login Enterprise spec is missing at {} (set RINGMASTER_LE_SPEC); CI requires it", path.display());
    }
    eprintln!("note: Login Enterprise spec not found at {}; spec validation skipped", path.display());
    None
}

// ---------------------------------------------------------------------------------------------------------------
// The spec: OpenAPI 3.0 -> JSON Schema, operations, request and response checks.

/// OpenAPI 3.0 schemas as JSON Schema: `nullable` becomes a `null` type, `allOf` subtypes (each part closed with
/// `additionalProperties: false`, which no instance could satisfy as plain JSON Schema) are merged into one closed
/// object, and each subtype's discriminator property is pinned to its mapping value so `oneOf` picks exactly one.
pub mod openapi {
    use std::collections::{HashMap, HashSet};

    use serde_json::{json, Map, Value};

    pub fn ref_name(r: &str) -> &str {
        r.rsplit('/').next().unwrap_or(r)
    }

    /// Translate every schema of `components.schemas`.
    pub fn translate_components(raw: &Map<String, Value>) -> Map<String, Value> {
        let mut tags: HashMap<String, (String, String)> = HashMap::new();
        for s in raw.values() {
            let Some(d) = s.get("discriminator") else { continue };
            let Some(prop) = d["propertyName"].as_str() else { continue };
            for (key, r) in d["mapping"].as_object().into_iter().flatten() {
                if let Some(r) = r.as_str() {
                    tags.insert(ref_name(r).to_string(), (prop.to_string(), key.clone()));
                }
            }
        }
        raw.iter()
            .map(|(name, s)| {
                let mut s = if s.get("allOf").is_some() {
                    flatten(s, raw)
                } else if let Some(mapping) = s.get("discriminator").and_then(|d| d["mapping"].as_object()) {
                    // A base read directly is one of its subtypes.
                    let targets: Vec<Value> = mapping
                        .values()
                        .filter_map(Value::as_str)
                        .filter(|r| raw.contains_key(ref_name(r)))
                        .map(|r| json!({ "$ref": r }))
                        .collect();
                    json!({ "oneOf": targets })
                } else {
                    s.clone()
                };
                if let (Some((prop, value)), Some(props)) =
                    (tags.get(name), s.get_mut("properties").and_then(Value::as_object_mut))
                {
                    props.insert(prop.clone(), json!({ "type": "string", "enum": [value] }));
                }
                (name.clone(), translate(&s))
            })
            .collect()
    }

    /// Merge `allOf` parts (a `$ref` base and the subtype's own part) into one object schema.
    fn flatten(s: &Value, raw: &Map<String, Value>) -> Value {
        let mut out: Map<String, Value> = s
            .as_object()
            .map(|m| m.iter().filter(|(k, _)| *k != "allOf").map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default();
        let mut props = Map::new();
        let mut required: Vec<Value> = Vec::new();
        let mut closed = false;
        for part in s["allOf"].as_array().into_iter().flatten() {
            let part = match part.get("$ref").and_then(Value::as_str) {
                Some(r) => match raw.get(ref_name(r)) {
                    Some(base) if base.get("allOf").is_some() => flatten(base, raw),
                    Some(base) => base.clone(),
                    None => continue,
                },
                None => part.clone(),
            };
            if let Some(p) = part["properties"].as_object() {
                props.extend(p.iter().map(|(k, v)| (k.clone(), v.clone())));
            }
            for r in part["required"].as_array().into_iter().flatten() {
                if !required.contains(r) {
                    required.push(r.clone());
                }
            }
            closed |= part.get("additionalProperties") == Some(&Value::Bool(false));
        }
        out.insert("type".into(), json!("object"));
        out.insert("properties".into(), Value::Object(props));
        if !required.is_empty() {
            out.insert("required".into(), Value::Array(required));
        }
        if closed {
            out.insert("additionalProperties".into(), Value::Bool(false));
        }
        Value::Object(out)
    }

    /// One schema: `nullable` to a `null` type, OpenAPI-only keywords dropped, recursively.
    pub fn translate(v: &Value) -> Value {
        let Value::Object(m) = v else { return v.clone() };
        let mut out = Map::new();
        for (k, val) in m {
            match k.as_str() {
                "nullable" | "discriminator" | "example" | "xml" | "externalDocs" | "readOnly" | "writeOnly"
                | "deprecated" => {}
                "properties" => {
                    let props = val.as_object().map(|p| p.iter().map(|(n, s)| (n.clone(), translate(s))).collect());
                    out.insert(k.clone(), Value::Object(props.unwrap_or_default()));
                }
                "items" | "additionalProperties" | "not" => {
                    out.insert(k.clone(), if val.is_object() { translate(val) } else { val.clone() });
                }
                "allOf" | "oneOf" | "anyOf" => {
                    let list = val.as_array().map(|a| a.iter().map(translate).collect()).unwrap_or_default();
                    out.insert(k.clone(), Value::Array(list));
                }
                _ => {
                    out.insert(k.clone(), val.clone());
                }
            }
        }
        if m.get("nullable") == Some(&Value::Bool(true)) {
            match out.get("type").cloned() {
                Some(Value::String(t)) => {
                    out.insert("type".into(), json!([t, "null"]));
                    if let Some(Value::Array(e)) = out.get_mut("enum") {
                        e.push(Value::Null);
                    }
                }
                _ => return json!({ "anyOf": [Value::Object(out), { "type": "null" }] }),
            }
        }
        Value::Object(out)
    }

    /// The components a schema reaches through `$ref`s, transitively.
    pub fn reachable(schema: &Value, components: &Map<String, Value>) -> Map<String, Value> {
        fn refs(v: &Value, out: &mut Vec<String>) {
            match v {
                Value::Object(m) => {
                    for (k, val) in m {
                        match (k.as_str(), val) {
                            ("$ref", Value::String(r)) => out.push(ref_name(r).to_string()),
                            _ => refs(val, out),
                        }
                    }
                }
                Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
                _ => {}
            }
        }
        let mut seen = HashSet::new();
        let mut stack = Vec::new();
        refs(schema, &mut stack);
        let mut out = Map::new();
        while let Some(name) = stack.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(s) = components.get(&name) {
                refs(s, &mut stack);
                out.insert(name, s.clone());
            }
        }
        out
    }
}

#[derive(Debug, Clone)]
enum Seg {
    Lit(String),
    Param(String),
}

struct SpecOp {
    operation_id: String,
    method: String,
    template: Vec<Seg>,
    /// Path and query parameters as the spec gives them (schemas translated).
    params: Vec<Value>,
    /// (required, schema) of an `application/json` request body.
    body: Option<(bool, Value)>,
    /// Status (or `default`) -> the `application/json` schema, `None` for a bodiless answer.
    responses: BTreeMap<String, Option<Value>>,
}

struct LeSpec {
    base: String,
    ops: Vec<SpecOp>,
    components: Map<String, Value>,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl LeSpec {
    fn load(path: &Path) -> Result<LeSpec, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let doc: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
        let raw = doc["components"]["schemas"]
            .as_object()
            .ok_or_else(|| format!("{}: no components.schemas", path.display()))?;
        let components = openapi::translate_components(raw);
        let base = doc["servers"][0]["url"].as_str().unwrap_or("/publicApi").trim_end_matches('/').to_string();
        let json_schema = |content: &Value| content["application/json"].get("schema").map(openapi::translate);
        let mut ops = Vec::new();
        for (template, item) in doc["paths"].as_object().into_iter().flatten() {
            let segs: Vec<Seg> = template
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    Some(name) => Seg::Param(name.to_string()),
                    None => Seg::Lit(s.to_ascii_lowercase()),
                })
                .collect();
            let common: Vec<Value> = item["parameters"].as_array().cloned().unwrap_or_default();
            for method in ["get", "put", "post", "patch", "delete"] {
                let Some(op) = item.get(method) else { continue };
                let params = common
                    .iter()
                    .chain(op["parameters"].as_array().into_iter().flatten())
                    .map(|p| {
                        let mut p = p.clone();
                        p["schema"] = openapi::translate(&p["schema"]);
                        p
                    })
                    .collect();
                let body = op.get("requestBody").map(|rb| {
                    (rb["required"].as_bool() == Some(true), json_schema(&rb["content"]).unwrap_or(Value::Bool(true)))
                });
                let responses = op["responses"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(status, r)| (status.clone(), r.get("content").and_then(json_schema)))
                    .collect();
                ops.push(SpecOp {
                    operation_id: op["operationId"].as_str().unwrap_or_default().to_string(),
                    method: method.to_ascii_uppercase(),
                    template: segs.clone(),
                    params,
                    body,
                    responses,
                });
            }
        }
        Ok(LeSpec { base, ops, components, validators: Mutex::new(HashMap::new()) })
    }

    /// The operation for a request (path without the base), preferring literal segments; with its path parameters.
    fn find(&self, method: &str, segs: &[String]) -> Option<(&SpecOp, Vec<(String, String)>)> {
        self.ops
            .iter()
            .filter(|o| o.method == method && o.template.len() == segs.len())
            .filter(|o| {
                o.template.iter().zip(segs).all(|(t, s)| match t {
                    Seg::Lit(l) => l.eq_ignore_ascii_case(s),
                    Seg::Param(_) => true,
                })
            })
            .max_by_key(|o| o.template.iter().filter(|s| matches!(s, Seg::Lit(_))).count())
            .map(|o| {
                let params = o
                    .template
                    .iter()
                    .zip(segs)
                    .filter_map(|(t, s)| match t {
                        Seg::Param(name) => Some((name.clone(), s.clone())),
                        Seg::Lit(_) => None,
                    })
                    .collect();
                (o, params)
            })
    }

    fn validator(&self, key: &str, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        if let Some(v) = self.validators.lock().map_err(|e| e.to_string())?.get(key) {
            return Ok(v.clone());
        }
        let mut root = match schema {
            Value::Object(m) => m.clone(),
            other => {
                let mut m = Map::new();
                m.insert("allOf".into(), json!([other]));
                m
            }
        };
        root.insert("components".into(), json!({ "schemas": openapi::reachable(schema, &self.components) }));
        let v = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .should_validate_formats(true)
            .build(&Value::Object(root))
            .map_err(|e| format!("cannot compile the spec schema for {key}: {e}"))?;
        let v = Arc::new(v);
        self.validators.lock().map_err(|e| e.to_string())?.insert(key.to_string(), v.clone());
        Ok(v)
    }

    fn check(&self, key: &str, schema: &Value, instance: &Value) -> Result<(), String> {
        let v = self.validator(key, schema)?;
        let errors: Vec<String> =
            v.iter_errors(instance).take(3).map(|e| format!("{e} at '{}'", e.instance_path())).collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }

    /// The spec's type of a (translated) schema, following one `$ref`.
    fn type_of(&self, schema: &Value) -> Option<String> {
        let s = match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => self.components.get(openapi::ref_name(r))?,
            None => schema,
        };
        match &s["type"] {
            Value::String(t) => Some(t.clone()),
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null").map(str::to_string),
            _ => None,
        }
    }

    /// A query or path value as the JSON the parameter's schema describes.
    fn typed(&self, schema: &Value, raw: &str) -> Value {
        match self.type_of(schema).as_deref() {
            Some("integer") => raw.parse::<i64>().map(Value::from).unwrap_or_else(|_| json!(raw)),
            Some("number") => raw.parse::<f64>().map(Value::from).unwrap_or_else(|_| json!(raw)),
            Some("boolean") => match raw.to_ascii_lowercase().as_str() {
                "true" => json!(true),
                "false" => json!(false),
                _ => json!(raw),
            },
            _ => json!(raw),
        }
    }

    /// Check a request: known query parameters with valid values, valid path parameters, the body's presence,
    /// media type and schema.
    fn check_request(
        &self,
        op: &SpecOp,
        path_params: &[(String, String)],
        query: &[(String, String)],
        content_type: Option<&str>,
        body: Option<&Value>,
    ) -> Vec<String> {
        let id = &op.operation_id;
        let mut out = Vec::new();
        let known: HashSet<&str> =
            op.params.iter().filter(|p| p["in"] == "query").filter_map(|p| p["name"].as_str()).collect();
        for (k, _) in query {
            if !known.contains(k.as_str()) {
                out.push(format!("{id}: unknown query parameter '{k}'"));
            }
        }
        for p in &op.params {
            let name = p["name"].as_str().unwrap_or_default();
            let schema = &p["schema"];
            let value = match p["in"].as_str() {
                Some("path") => path_params.iter().find(|(n, _)| n == name).map(|(_, v)| self.typed(schema, v)),
                Some("query") => {
                    let values: Vec<&str> = query.iter().filter(|(k, _)| k == name).map(|(_, v)| v.as_str()).collect();
                    if values.is_empty() {
                        None
                    } else if self.type_of(schema).as_deref() == Some("array") {
                        // Form style: repeated keys when exploded (the default), comma-separated when not.
                        let items: Vec<&str> = if p["explode"] == Value::Bool(false) {
                            values.iter().flat_map(|v| v.split(',')).collect()
                        } else {
                            values
                        };
                        Some(Value::Array(items.iter().map(|v| self.typed(&schema["items"], v)).collect()))
                    } else if values.len() > 1 {
                        out.push(format!("{id}: query parameter '{name}' is given {} times", values.len()));
                        continue;
                    } else {
                        Some(self.typed(schema, values[0]))
                    }
                }
                _ => continue,
            };
            match value {
                None if p["required"] == Value::Bool(true) => {
                    out.push(format!("{id}: the required parameter '{name}' is missing"))
                }
                None => {}
                Some(v) => {
                    if let Err(e) = self.check(&format!("{id}#param:{name}"), schema, &v) {
                        out.push(format!("{id}: parameter '{name}' = {v}: {e}"));
                    }
                }
            }
        }
        match (&op.body, body) {
            (None, Some(_)) => out.push(format!("{id}: the operation takes no request body")),
            (Some((true, _)), None) => out.push(format!("{id}: the request body is required")),
            (Some((_, schema)), Some(b)) => {
                if !content_type.is_some_and(|c| c.to_ascii_lowercase().starts_with("application/json")) {
                    out.push(format!("{id}: the request body must be application/json, not {content_type:?}"));
                }
                if let Err(e) = self.check(&format!("{id}#request"), schema, b) {
                    out.push(format!("{id}: the request body does not match the spec: {e}"));
                }
            }
            _ => {}
        }
        out
    }

    /// Check a response: the status is one the operation lists, with a body exactly when the spec has one.
    fn check_response(&self, op: &SpecOp, status: u16, body: Option<&Value>) -> Result<(), String> {
        let id = &op.operation_id;
        let schema = match op.responses.get(&status.to_string()).or_else(|| op.responses.get("default")) {
            Some(s) => s,
            None => return Err(format!("{id} does not list status {status} among its responses")),
        };
        match (schema, body) {
            (None, None) => Ok(()),
            (None, Some(_)) => Err(format!("{id} response {status} has no body in the spec, yet one was sent")),
            (Some(_), None) => Err(format!("{id} response {status} needs a body")),
            (Some(s), Some(b)) => self
                .check(&format!("{id}#{status}"), s, b)
                .map_err(|e| format!("{id} response {status} does not match the spec: {e}")),
        }
    }

    fn lists_status(&self, op: &SpecOp, status: u16) -> bool {
        op.responses.contains_key(&status.to_string())
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The appliance's data and how runs unfold.

struct SimApp {
    id: String,
    name: &'static str,
    process: &'static str,
    timers: &'static [&'static str],
}

struct Group {
    id: String,
    name: &'static str,
    description: &'static str,
    members: u32,
}

struct SimTest {
    id: String,
    name: String,
    description: String,
    created: OffsetDateTime,
    load: bool,
    enabled: bool,
    behaviour: Behaviour,
    /// Indexes into `Appliance::apps`: the workload.
    apps: Vec<usize>,
    connector: Option<Value>,
    launcher_groups: Vec<String>,
    account_groups: Vec<String>,
    next_counter: u32,
}

struct PlannedEvent {
    id: String,
    at_s: f64,
    kind: &'static str,
    title: String,
    app: Option<usize>,
    session: bool,
    properties: Vec<(&'static str, String)>,
}

/// What a run will do, fixed when it starts.
struct RunPlan {
    /// Sim seconds after creation when the run ends on its own; `None`: never.
    ends_s: Option<f64>,
    result: &'static str,
    login_ok: bool,
    /// (app index, sim second it runs at, succeeds).
    apps: Vec<(usize, f64, bool)>,
    events: Vec<PlannedEvent>,
}

struct SimRun {
    id: String,
    test_id: String,
    test_name: String,
    counter: u32,
    created: OffsetDateTime,
    comment: Option<String>,
    plan: RunPlan,
    /// Sim seconds after creation when it was stopped.
    stopped_s: Option<f64>,
    session_id: String,
    snapshot: Value,
}

impl SimRun {
    fn elapsed(&self, now: OffsetDateTime) -> f64 {
        (now - self.created).as_seconds_f64()
    }

    fn end_s(&self) -> Option<f64> {
        match (self.plan.ends_s, self.stopped_s) {
            (Some(e), Some(s)) => Some(e.min(s)),
            (e, s) => e.or(s),
        }
    }

    fn cancelled(&self) -> bool {
        match (self.plan.ends_s, self.stopped_s) {
            (Some(e), Some(s)) => s < e,
            (None, Some(_)) => true,
            _ => false,
        }
    }

    fn state(&self, now: OffsetDateTime) -> &'static str {
        let el = self.elapsed(now);
        match self.end_s() {
            Some(end) if el >= end + FINALIZE_S => "completed",
            Some(end) if el >= end => "testRunEnded",
            _ => "created",
        }
    }

    fn completed(&self, now: OffsetDateTime) -> bool {
        self.state(now) == "completed"
    }

    fn result(&self) -> &'static str {
        if self.cancelled() {
            "cancelled"
        } else {
            self.plan.result
        }
    }

    /// The sim second up to which things have happened.
    fn horizon(&self, now: OffsetDateTime) -> f64 {
        let el = self.elapsed(now);
        self.end_s().map_or(el, |e| el.min(e))
    }

    /// Apps that ran so far: (index, succeeded).
    fn apps_run(&self, now: OffsetDateTime) -> Vec<(usize, bool)> {
        let h = self.horizon(now);
        self.plan.apps.iter().filter(|(_, at, _)| *at <= h).map(|(i, _, ok)| (*i, *ok)).collect()
    }

    fn counts(&self, now: OffsetDateTime) -> Value {
        let run = self.apps_run(now);
        json!({ "successCount": run.iter().filter(|(_, ok)| *ok).count(), "totalCount": run.len() })
    }
}

struct Appliance {
    apps: Vec<SimApp>,
    launcher_groups: Vec<Group>,
    account_groups: Vec<Group>,
    tests: Vec<SimTest>,
    runs: Vec<SimRun>,
    /// Events of stops (`testRunCancelled`), by run id.
    stop_events: HashMap<String, PlannedEvent>,
}

fn ts(t: OffsetDateTime) -> String {
    rfc3339(t)
}

fn at(created: OffsetDateTime, s: f64) -> OffsetDateTime {
    created + Duration::from_secs_f64(s.max(0.0))
}

fn new_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn event(at_s: f64, kind: &'static str, title: impl Into<String>) -> PlannedEvent {
    PlannedEvent { id: new_id(), at_s, kind, title: title.into(), app: None, session: false, properties: vec![] }
}

impl Appliance {
    fn seed(config: &LeConfig, clock: &SimClock) -> (Appliance, Vec<SeededTest>) {
        let start = clock.now();
        let apps: Vec<SimApp> = [
            ("msedge.exe", &["Edge start", "Page load"][..]),
            ("WINWORD.EXE", &["Word start", "Open document"][..]),
            ("EXCEL.EXE", &["Excel start", "Open workbook"][..]),
            ("ms-teams.exe", &["Teams start"][..]),
        ]
        .into_iter()
        .zip(APPS)
        .enumerate()
        .map(|(i, ((process, timers), name))| SimApp {
            id: format!("a0000000-0000-4000-8000-{:012}", i + 1),
            name,
            process,
            timers,
        })
        .collect();
        let all_apps: Vec<usize> = (0..apps.len()).collect();
        let mut t = Appliance {
            apps,
            launcher_groups: vec![Group {
                id: LAUNCHER_GROUP.into(),
                name: "AVD launchers",
                description: "Launchers in the AVD landing zone",
                members: 2,
            }],
            account_groups: vec![Group {
                id: ACCOUNT_GROUP.into(),
                name: "AVD test users",
                description: "Synthetic users licensed for AVD",
                members: 10,
            }],
            tests: Vec::new(),
            runs: Vec::new(),
            stop_events: HashMap::new(),
        };
        let seeds = vec![
            (
                TEST_PASS,
                TEST_PASS_NAME.into(),
                "Logs on to the ring and runs Edge, Word, Excel and Teams.",
                Behaviour::Pass,
                true,
                all_apps.clone(),
            ),
            (
                TEST_FAIL_APP,
                format!("{TEST_PASS_NAME} - Teams fails"),
                "The AVD smoke workload; Microsoft Teams fails to start.",
                Behaviour::FailApp { app: FAILING_APP.into() },
                true,
                all_apps.clone(),
            ),
            (
                TEST_LAUNCHER_OFFLINE,
                format!("{TEST_PASS_NAME} - launcher offline"),
                "The launcher goes offline before the session connects.",
                Behaviour::LauncherOffline,
                true,
                vec![0, 1],
            ),
            (
                TEST_NEVER_COMPLETES,
                format!("{TEST_PASS_NAME} - never completes"),
                "Runs that never end.",
                Behaviour::NeverCompletes,
                true,
                all_apps.clone(),
            ),
            (
                TEST_INTERNAL_ERROR,
                format!("{TEST_PASS_NAME} - internal error"),
                "The appliance fails half-way.",
                Behaviour::InternalError,
                true,
                all_apps.clone(),
            ),
            (
                TEST_DISABLED,
                format!("{TEST_PASS_NAME} - disabled"),
                "A disabled copy.",
                Behaviour::Pass,
                false,
                all_apps.clone(),
            ),
            (
                TEST_RUNNING,
                format!("{TEST_PASS_NAME} - running"),
                "Busy with a run someone else started.",
                Behaviour::Pass,
                true,
                all_apps.clone(),
            ),
            (
                TEST_LOGIN_FAILURE,
                format!("{TEST_PASS_NAME} - login fails"),
                "The test user cannot log on.",
                Behaviour::LoginFailure,
                true,
                all_apps.clone(),
            ),
        ];
        let mut seeded = Vec::new();
        for (i, (id, name, description, behaviour, enabled, apps)) in seeds.into_iter().enumerate() {
            t.tests.push(SimTest {
                id: id.into(),
                name: name.clone(),
                description: description.into(),
                created: start - Duration::from_secs(86_400 * 30),
                load: false,
                enabled,
                behaviour: behaviour.clone(),
                apps,
                connector: Some(json!({
                    "type": "Rdp",
                    "hostList": [{ "enabled": true, "endpoint": "avd-pilot-0.contoso.local" }],
                    "suppressCertWarn": true
                })),
                launcher_groups: vec![LAUNCHER_GROUP.into()],
                account_groups: vec![ACCOUNT_GROUP.into()],
                next_counter: 1,
            });
            // A completed run of yesterday's image, where everything passed: the baseline to compare with.
            let baseline = format!("b0000000-0000-4000-8000-{:012}", i + 1);
            t.create_run(
                id,
                &baseline,
                start - Duration::from_secs(86_400),
                Some("baseline".into()),
                &Behaviour::Pass,
                config,
            );
            seeded.push(SeededTest {
                id: id.into(),
                name,
                behaviour: Some(behaviour),
                enabled,
                baseline_run_id: Some(baseline),
            });
        }
        // Someone else's run, still going.
        t.create_run(
            TEST_RUNNING,
            RUNNING_RUN,
            start - Duration::from_secs(600),
            None,
            &Behaviour::NeverCompletes,
            config,
        );
        t.tests.push(SimTest {
            id: TEST_LOAD.into(),
            name: "Load: 50 sessions".into(),
            description: "Capacity test of the AVD smoke hosts".into(),
            created: start - Duration::from_secs(86_400 * 60),
            load: true,
            enabled: true,
            behaviour: Behaviour::Pass,
            apps: all_apps.clone(),
            connector: None,
            launcher_groups: vec![],
            account_groups: vec![],
            next_counter: 1,
        });
        seeded.push(SeededTest {
            id: TEST_LOAD.into(),
            name: "Load: 50 sessions".into(),
            behaviour: None,
            enabled: true,
            baseline_run_id: None,
        });
        for n in 1..=config.filler_tests {
            let id = format!("1e000000-0000-4000-8000-{:012}", 100 + n);
            let name = format!("Regional check {n:02}");
            t.tests.push(SimTest {
                id: id.clone(),
                name: name.clone(),
                description: format!("Copy of {TEST_PASS_NAME} for region {n:02}"),
                created: start - Duration::from_secs(86_400 * 7),
                load: false,
                enabled: true,
                behaviour: Behaviour::Pass,
                apps: all_apps.clone(),
                connector: None,
                launcher_groups: vec![],
                account_groups: vec![],
                next_counter: 1,
            });
            seeded.push(SeededTest {
                id,
                name,
                behaviour: Some(Behaviour::Pass),
                enabled: true,
                baseline_run_id: None,
            });
        }
        (t, seeded)
    }

    fn test(&self, id: &str) -> Option<&SimTest> {
        self.tests.iter().find(|t| t.id.eq_ignore_ascii_case(id))
    }

    fn run(&self, id: &str) -> Option<&SimRun> {
        self.runs.iter().find(|r| r.id.eq_ignore_ascii_case(id))
    }

    fn active_run(&self, test_id: &str, now: OffsetDateTime) -> Option<&SimRun> {
        self.runs.iter().find(|r| r.test_id.eq_ignore_ascii_case(test_id) && !r.completed(now))
    }

    fn test_state(&self, t: &SimTest, now: OffsetDateTime) -> &'static str {
        match self.active_run(&t.id, now) {
            Some(r) if r.stopped_s.is_some() => "stopping",
            Some(_) => "running",
            None if !t.enabled => "disabled",
            None => "enabled",
        }
    }

    fn plan(&self, behaviour: &Behaviour, test: &SimTest, duration: f64) -> RunPlan {
        let n = test.apps.len() as f64;
        let slot = |i: usize| LOGIN_S + (i as f64 + 1.0) * (duration - LOGIN_S).max(1.0) / (n + 1.0);
        let endpoint = test
            .connector
            .as_ref()
            .and_then(|c| c["hostList"][0]["endpoint"].as_str())
            .unwrap_or("the host")
            .to_string();
        let mut events = vec![event(START_S, "testRunStarted", format!("Test run of '{}' started", test.name))];
        let all_ok = |ok: bool| test.apps.iter().enumerate().map(|(i, a)| (*a, slot(i), ok)).collect::<Vec<_>>();
        let finished = |at_s: f64| event(at_s, "testRunFinished", format!("Test run of '{}' finished", test.name));
        match behaviour {
            Behaviour::Pass => {
                events.push(finished(duration));
                RunPlan { ends_s: Some(duration), result: "successful", login_ok: true, apps: all_ok(true), events }
            }
            Behaviour::FailApp { app } => {
                let mut apps = all_ok(true);
                for (i, (idx, at_s, ok)) in apps.iter_mut().enumerate() {
                    if self.apps[*idx].name.eq_ignore_ascii_case(app) {
                        *ok = false;
                        let name = self.apps[*idx].name;
                        let mut e = event(
                            *at_s,
                            "applicationFailure",
                            format!("{name} failed: the main window did not appear within 60 seconds"),
                        );
                        e.app = Some(*idx);
                        e.session = true;
                        e.properties = vec![("applicationName", name.to_string()), ("step", format!("{}", i + 1))];
                        events.push(e);
                    }
                }
                events.push(finished(duration));
                RunPlan { ends_s: Some(duration), result: "successful", login_ok: true, apps, events }
            }
            Behaviour::LauncherOffline => {
                events.push(event(START_S + 3.0, "launcherOffline", "Launcher 'LE-LAUNCHER-01' went offline"));
                let mut e = event(
                    (START_S + 60.0).min(duration),
                    "connectionInitializationTimeout",
                    format!("The connection to {endpoint} was not initialized in time"),
                );
                e.properties = vec![("host", endpoint.clone())];
                events.push(e);
                events.push(finished(duration));
                RunPlan { ends_s: Some(duration), result: "successful", login_ok: false, apps: vec![], events }
            }
            Behaviour::LoginFailure => {
                let mut e =
                    event(LOGIN_S, "loginFailure", "The user could not log on: the user profile service failed");
                e.session = true;
                events.push(e);
                events.push(finished(duration));
                RunPlan { ends_s: Some(duration), result: "successful", login_ok: false, apps: vec![], events }
            }
            Behaviour::NeverCompletes => {
                RunPlan { ends_s: None, result: "successful", login_ok: true, apps: all_ok(true), events }
            }
            Behaviour::InternalError => {
                let end = duration / 2.0;
                events.push(event(end, "testRunFailed", "The test run failed: the engine stopped responding"));
                let apps = all_ok(true).into_iter().filter(|(_, at_s, _)| *at_s <= end).collect();
                RunPlan { ends_s: Some(end), result: "internalError", login_ok: true, apps, events }
            }
        }
    }

    fn create_run(
        &mut self,
        test_id: &str,
        run_id: &str,
        created: OffsetDateTime,
        comment: Option<String>,
        behaviour: &Behaviour,
        config: &LeConfig,
    ) {
        let Some(ti) = self.tests.iter().position(|t| t.id == test_id) else { return };
        let plan = self.plan(behaviour, &self.tests[ti], config.run_duration_s.max(1) as f64);
        let snapshot = self.snapshot(&self.tests[ti]);
        let test = &mut self.tests[ti];
        let counter = test.next_counter;
        test.next_counter += 1;
        let test_name = test.name.clone();
        self.runs.push(SimRun {
            id: run_id.to_string(),
            test_id: test_id.to_string(),
            test_name,
            counter,
            created,
            comment,
            plan,
            stopped_s: None,
            session_id: new_id(),
            snapshot,
        });
    }

    // -- JSON as the API serves it ------------------------------------------------------------------------------

    fn group_json(&self, g: &Group, launcher: bool) -> Value {
        let created = ts(OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600));
        let mut v = json!({
            "type": "Selection",
            "name": g.name,
            "memberCount": g.members,
            "description": g.description,
            "created": created,
            "lastModified": created,
        });
        // Launcher groups name their id `id`, account groups `groupId`.
        v[if launcher { "id" } else { "groupId" }] = json!(g.id);
        v
    }

    fn connection_resources_json(&self, t: &SimTest) -> Value {
        let groups = |ids: &[String], all: &[Group], launcher: bool| -> Vec<Value> {
            ids.iter().filter_map(|id| all.iter().find(|g| g.id == *id)).map(|g| self.group_json(g, launcher)).collect()
        };
        json!({
            "connector": t.connector.clone().unwrap_or(Value::Null),
            "launcherGroups": groups(&t.launcher_groups, &self.launcher_groups, true),
            "accountGroups": groups(&t.account_groups, &self.account_groups, false),
        })
    }

    fn app_json(&self, a: &SimApp) -> Value {
        let when = ts(OffsetDateTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600));
        json!({
            "type": "WindowsApp",
            "id": a.id,
            "name": a.name,
            "description": format!("{} (sim)", a.name),
            "username": null,
            "created": when,
            "lastModified": when,
            "timers": a.timers,
            "takeScreenshots": true,
            "hasPassword": false,
            "commandLine": a.process,
            "workingDirectory": null,
            "mainWindowTitle": a.name,
            "mainProcessName": a.process,
        })
    }

    fn test_json(&self, t: &SimTest, include: &[String], now: OffsetDateTime) -> Value {
        let has = |what: &str| include.iter().any(|i| i == what || i == "all");
        let mut v = json!({
            "type": if t.load { "LoadTest" } else { "ApplicationTest" },
            "id": t.id,
            "environmentKey": null,
            "name": t.name,
            "description": t.description,
            "created": ts(t.created),
            "logonTimeTrackingProcess": "explorer.exe",
            "engineStartTimeout": "00:05:00",
            "applicationDebugModeEnabled": false,
            "state": self.test_state(t, now),
        });
        if t.load {
            v["numberOfSessions"] = json!(50);
            v["rampUpDurationInMinutes"] = json!(15);
            v["testDurationInMinutes"] = json!(30);
            v["rampDownDurationInMinutes"] = json!(5);
            v["euxEnabled"] = json!(true);
            v["sessionMetricsEnabled"] = json!(false);
        } else {
            v["isEmailEnabled"] = json!(false);
            v["emailRecipient"] = Value::Null;
            v["includeSuccessfulApplications"] = json!(true);
            v["restartOnComplete"] = json!(false);
            if has("thresholds") {
                v["thresholds"] = json!([]);
            }
        }
        if has("connectionResources") {
            v["connectionResources"] = self.connection_resources_json(t);
        }
        if has("workload") {
            let steps: Vec<Value> = t
                .apps
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    json!({
                        "type": "AppInvocation",
                        "id": format!("5e000000-0000-4000-8000-{}{:06}", &t.id[t.id.len().saturating_sub(6)..], i + 1),
                        "isEnabled": true,
                        "application": self.app_json(&self.apps[*a]),
                        "runOnce": false,
                        "leaveRunning": false,
                    })
                })
                .collect();
            v["workload"] = json!({ "steps": steps });
        }
        v
    }

    fn snapshot(&self, t: &SimTest) -> Value {
        let groups = |ids: &[String], all: &[Group]| -> Vec<Value> {
            ids.iter()
                .filter_map(|id| all.iter().find(|g| g.id == *id))
                .map(|g| json!({ "groupId": g.id, "name": g.name }))
                .collect()
        };
        let steps: Vec<Value> = t
            .apps
            .iter()
            .map(|a| {
                let app = &self.apps[*a];
                json!({
                    "type": "AppInvocation",
                    "appId": app.id,
                    "applicationName": app.name,
                    "timers": app.timers,
                    "runOnce": false,
                    "leaveRunning": false,
                })
            })
            .collect();
        json!({
            "restartOnComplete": false,
            "includeSuccessfulApplications": true,
            "isEmailEnabled": false,
            "emailRecipient": null,
            "thresholds": [],
            "testId": t.id,
            "name": t.name,
            "workload": { "steps": steps },
            "connector": t.connector.clone().unwrap_or(Value::Null),
            "launcherGroups": groups(&t.launcher_groups, &self.launcher_groups),
            "accountGroups": groups(&t.account_groups, &self.account_groups),
            "sessionMetricDefinition": [],
        })
    }

    fn visible_events<'a>(&'a self, r: &'a SimRun, now: OffsetDateTime) -> Vec<&'a PlannedEvent> {
        let h = r.horizon(now);
        let mut list: Vec<&PlannedEvent> = r.plan.events.iter().filter(|e| e.at_s <= h).collect();
        if let Some(e) = self.stop_events.get(&r.id).filter(|e| e.at_s <= r.elapsed(now)) {
            list.push(e);
        }
        list.sort_by(|a, b| a.at_s.total_cmp(&b.at_s));
        list
    }

    fn event_json(&self, r: &SimRun, e: &PlannedEvent, with_properties: bool) -> Value {
        let mut v = json!({
            "id": e.id,
            "eventType": e.kind,
            "timestamp": ts(at(r.created, e.at_s)),
            "title": e.title,
            "testId": r.test_id,
            "testRunId": r.id,
            "userSessionId": if e.session { json!(r.session_id) } else { Value::Null },
            "applicationId": e.app.map(|a| json!(self.apps[a].id)).unwrap_or(Value::Null),
        });
        if with_properties {
            v["properties"] =
                Value::Array(e.properties.iter().map(|(k, val)| json!({ "propertyId": k, "value": val })).collect());
        }
        v
    }

    fn run_json(&self, r: &SimRun, include: &[String], now: OffsetDateTime) -> Value {
        let has = |what: &str| include.iter().any(|i| i == what || i == "all");
        let el = r.elapsed(now);
        let state = r.state(now);
        let finished = r.end_s().filter(|_| state == "completed").map(|e| ts(at(r.created, e + FINALIZE_S)));
        let mut v = json!({
            "type": "ApplicationTest",
            "id": r.id,
            "testId": r.test_id,
            "created": ts(r.created),
            "started": if el >= START_S { json!(ts(at(r.created, START_S))) } else { Value::Null },
            "finished": finished,
            "counter": r.counter,
            "state": state,
            "productVersion": PRODUCT_VERSION,
            "appFailureResults": r.counts(now),
            "appPerformanceResults": r.counts(now),
            "comment": r.comment,
        });
        // The result means nothing before the run completes, and the spec's enum has no null: leave it out.
        if state == "completed" {
            v["result"] = json!(r.result());
        }
        if has("numberOfEvents") {
            v["numberOfEvents"] = json!(self.visible_events(r, now).len());
        }
        if has("testRunConfigurationSnapshot") {
            v["testRunConfigurationSnapshot"] = r.snapshot.clone();
        }
        if has("properties") {
            v["properties"] = json!([{ "propertyId": "launcher", "value": "LE-LAUNCHER-01" }]);
        }
        v
    }

    fn run_data_json(&self, r: &SimRun, is_base: bool, now: OffsetDateTime) -> Value {
        let completed = r.completed(now);
        fn perf(duration: f64, threshold: f64) -> Value {
            json!({ "duration": duration, "threshold": threshold, "isSuccessful": duration <= threshold })
        }
        let apps: Vec<Value> = r
            .apps_run(now)
            .into_iter()
            .map(|(i, ok)| {
                let app = &self.apps[i];
                let timers: Vec<Value> = app
                    .timers
                    .iter()
                    .enumerate()
                    .map(|(k, t)| {
                        let seconds = 1.2 + k as f64 * 0.7 + i as f64 * 0.3;
                        json!({ "timer": t, "performanceResult": perf(seconds, 10.0) })
                    })
                    .collect();
                json!({
                    "applicationId": app.id,
                    "applicationName": app.name,
                    "resultStatus": if ok { "successful" } else { "error" },
                    "appExecutionSuccessful": ok,
                    "performanceSuccessful": if ok { json!(true) } else { Value::Null },
                    "timerResults": if ok { json!(timers) } else { json!([]) },
                    "screenshots": [],
                })
            })
            .collect();
        let mut v = json!({
            "testRunId": r.id,
            "testName": r.test_name,
            "isBase": is_base,
            "counter": r.counter,
            "state": r.state(now),
            "applicationSummaries": apps,
        });
        if completed {
            v["testResult"] = json!(r.result());
        }
        if completed || r.horizon(now) >= LOGIN_S {
            v["platformSummary"] = json!({
                "loginSuccessful": r.plan.login_ok,
                "loginPerformance": perf(if r.plan.login_ok { 14.6 } else { 60.0 }, 30.0),
                "latencyPerformance": perf(38.0, 150.0),
            });
        }
        v
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Serving.

struct Shared {
    config: LeConfig,
    clock: SimClock,
    token: String,
    spec: Option<LeSpec>,
    appliance: Mutex<Appliance>,
    stats: Mutex<LeStats>,
    faults: Mutex<LeFaults>,
    /// The API listener's server while it is up (`None` while `down`).
    api: Mutex<Option<axum_server::Handle>>,
    api_addr: SocketAddr,
    tls: axum_server::tls_rustls::RustlsConfig,
}

impl Shared {
    fn count(&self, op: &str) {
        if let Ok(mut s) = self.stats.lock() {
            s.requests += 1;
            *s.requests_by_operation.entry(op.to_string()).or_default() += 1;
        }
    }

    fn violation(&self, message: String) {
        tracing::error!(target: "le-sim", "{message}");
        if let Ok(mut s) = self.stats.lock() {
            s.spec_violations.push(message);
        }
    }
}

fn stats_now(shared: &Shared) -> LeStats {
    let mut s = shared.stats.lock().map(|s| s.clone()).unwrap_or_default();
    s.validating = shared.spec.is_some();
    s.sim_now = rfc3339(shared.clock.now());
    s
}

#[derive(Clone)]
struct Ctx {
    shared: Arc<Shared>,
    control_port: bool,
}

struct Reply {
    status: StatusCode,
    body: Option<Value>,
    raw: Option<&'static str>,
}

impl Reply {
    fn json(status: StatusCode, body: Value) -> Reply {
        Reply { status, body: Some(body), raw: None }
    }
    fn ok(body: Value) -> Reply {
        Reply::json(StatusCode::OK, body)
    }
    fn empty(status: StatusCode) -> Reply {
        Reply { status, body: None, raw: None }
    }
}

/// An RFC 7807 problem, as ASP.NET Core writes them.
fn problem(status: StatusCode, detail: impl Into<String>) -> Reply {
    let section = match status.as_u16() {
        400 => "section-15.5.1",
        404 => "section-15.5.5",
        405 => "section-15.5.6",
        409 => "section-15.5.10",
        502 => "section-15.6.3",
        503 => "section-15.6.4",
        _ => "section-15.6.1",
    };
    Reply::json(
        status,
        json!({
            "type": format!("https://tools.ietf.org/html/rfc9110#{section}"),
            "title": status.canonical_reason().unwrap_or("Error"),
            "status": status.as_u16(),
            "detail": detail.into(),
        }),
    )
}

fn validation_problem(field: &str, message: impl Into<String>) -> Reply {
    Reply::json(
        StatusCode::BAD_REQUEST,
        json!({
            "type": "https://tools.ietf.org/html/rfc9110#section-15.5.1",
            "title": "One or more validation errors occurred.",
            "status": 400,
            "errors": { field: [message.into()] },
        }),
    )
}

fn finish(reply: Reply) -> Response {
    let mut builder = Response::builder().status(reply.status);
    let h = builder.headers_mut().expect("fresh builder has headers");
    if reply.status == StatusCode::UNAUTHORIZED {
        h.insert("www-authenticate", HeaderValue::from_static("Bearer"));
    }
    let body = match (reply.raw, reply.body) {
        (Some(raw), _) => {
            h.insert("content-type", HeaderValue::from_static("application/json; charset=utf-8"));
            Body::from(raw)
        }
        (None, Some(v)) => {
            h.insert("content-type", HeaderValue::from_static("application/json; charset=utf-8"));
            Body::from(v.to_string())
        }
        (None, None) => Body::empty(),
    };
    builder.body(body).expect("valid response")
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| s.to_string())
}

/// The operations the sim serves: the spec's operationId and the path parameters.
fn served_operation(method: &Method, segs: &[String]) -> Option<(&'static str, Vec<String>)> {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let m = method.as_str();
    let (op, params) = match (m, s.as_slice()) {
        ("GET", ["v7", "system", "version"]) => ("Data_GetSystemVersions", vec![]),
        ("GET", ["v7", "tests"]) => ("Configuration_GetTests", vec![]),
        ("GET", ["v7", "tests", id]) => ("Configuration_GetTest", vec![*id]),
        ("GET", ["v7", "tests", id, "connection-resources"]) => ("Configuration_GetConnectionResources", vec![*id]),
        ("PUT", ["v7", "tests", id, "connection-resources"]) => ("Configuration_UpdateConnectionResources", vec![*id]),
        ("PUT", ["v7", "tests", id, "start"]) => ("Configuration_StartTest", vec![*id]),
        ("PUT", ["v7", "tests", id, "stop"]) => ("Configuration_StopTest", vec![*id]),
        ("GET", ["v7", "test-runs", id]) => ("Data_GetTestRun", vec![*id]),
        ("GET", ["v7", "test-runs", id, "events"]) => ("Data_GetEventsByTestRun", vec![*id]),
        ("PUT", ["v7", "test-runs", id, "comment"]) => ("Data_UpdateComment", vec![*id]),
        ("GET", ["v7", "application-test-run-overview", id]) => ("Data_GetApplicationTestResultOverview", vec![*id]),
        _ => return None,
    };
    Some((op, params.into_iter().map(str::to_string).collect()))
}

/// The query of a request, keys in order and repeatable.
struct Query(Vec<(String, String)>);

impl Query {
    fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
    }
    fn all(&self, k: &str) -> Vec<String> {
        self.0.iter().filter(|(key, _)| key == k).map(|(_, v)| v.clone()).collect()
    }
    /// A comma-separated (non-exploded) list.
    fn list(&self, k: &str) -> Vec<String> {
        self.all(k).iter().flat_map(|v| v.split(',').map(|s| s.trim().to_string())).filter(|s| !s.is_empty()).collect()
    }
    fn int(&self, k: &str, default: i64, min: i64, max: i64) -> Result<i64, Reply> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => match v.parse::<i64>() {
                Ok(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(validation_problem(k, format!("The value '{v}' is not valid for {k} ({min}-{max})."))),
            },
        }
    }
    fn flag(&self, k: &str) -> Result<bool, Reply> {
        match self.get(k).map(str::to_ascii_lowercase).as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(v) => Err(validation_problem(k, format!("The value '{v}' is not valid for {k}."))),
        }
    }
}

async fn dispatch(State(ctx): State<Ctx>, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    let shared = ctx.shared;
    let path = uri.path().to_string();
    if let Some(hook) = path.strip_prefix("/_le/") {
        return finish(control(&shared, &method, hook, &body).await);
    }
    if ctx.control_port {
        return finish(problem(StatusCode::NOT_FOUND, "the control port serves /_le/ only; call the API port"));
    }
    let base = shared.spec.as_ref().map(|s| s.base.clone()).unwrap_or_else(|| "/publicApi".into());
    let Some(api_path) = path.strip_prefix(base.as_str()).filter(|p| p.is_empty() || p.starts_with('/')) else {
        shared.count("Unknown");
        shared.violation(format!("{method} {path}: outside the API base path {base}"));
        return finish(problem(StatusCode::NOT_FOUND, format!("no API at {path}")));
    };
    let segs: Vec<String> = api_path.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    let query = Query(
        url::form_urlencoded::parse(uri.query().unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect(),
    );
    let served = served_operation(&method, &segs);
    let spec_op = shared.spec.as_ref().and_then(|s| s.find(method.as_str(), &segs));
    let op_name = match (&served, &spec_op) {
        (_, Some((op, _))) => op.operation_id.clone(),
        (Some((op, _)), None) => op.to_string(),
        (None, None) => "Unknown".to_string(),
    };
    shared.count(&op_name);
    if shared.config.latency_ms > 0 {
        tokio::time::sleep(Duration::from_millis(shared.config.latency_ms)).await;
    }

    // A missing or wrong token: 401 without a body, as the appliance answers.
    let expected = format!("Bearer {}", shared.token);
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(expected.as_str()) {
        if let Ok(mut s) = shared.stats.lock() {
            s.unauthorized += 1;
        }
        return finish(Reply::empty(StatusCode::UNAUTHORIZED));
    }

    if let Some(reply) = injected_fault(&shared, &op_name).await {
        return finish(reply);
    }

    if shared.spec.is_some() && spec_op.is_none() {
        shared.violation(format!("{method} {api_path}: no operation in the spec matches"));
        return finish(problem(StatusCode::NOT_FOUND, format!("no API operation {method} {api_path}")));
    }
    let served = match (served, &spec_op) {
        // The sim's table and the spec must agree on what a path is.
        (Some((op, params)), Some((spec_op, _))) if spec_op.operation_id == op => Some(params),
        (Some((_, params)), None) => Some(params),
        _ => None,
    };
    let Some(params) = served else {
        if let Ok(mut s) = shared.stats.lock() {
            s.unserved.push(format!("{op_name} ({method} {api_path})"));
        }
        return finish(problem(StatusCode::NOT_FOUND, format!("{op_name} is not simulated")));
    };

    let body_json = if body.is_empty() {
        None
    } else {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) => Some(v),
            Err(e) => {
                shared.violation(format!("{op_name}: the request body is not JSON: {e}"));
                return finish(validation_problem("$", format!("The JSON value could not be converted: {e}")));
            }
        }
    };
    if let (Some(spec), Some((op, path_params))) = (&shared.spec, &spec_op) {
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
        let problems = spec.check_request(op, path_params, &query.0, content_type, body_json.as_ref());
        if !problems.is_empty() {
            for p in &problems {
                shared.violation(format!("request {p}"));
            }
            // ASP.NET answers 400 where the operation validates; a route constraint (a non-uuid id) is a 404.
            let status = if spec.lists_status(op, 400) { StatusCode::BAD_REQUEST } else { StatusCode::NOT_FOUND };
            let reply = if status == StatusCode::BAD_REQUEST {
                validation_problem("request", problems.join("; "))
            } else {
                problem(status, problems.join("; "))
            };
            return finish(reply);
        }
    }

    let mut reply = route(&shared, &op_name, &params, &query, body_json.as_ref());
    if let (Some(spec), Some((op, _))) = (&shared.spec, &spec_op) {
        if let Err(v) = spec.check_response(op, reply.status.as_u16(), reply.body.as_ref()) {
            shared.violation(format!("response {v}"));
            reply = problem(StatusCode::INTERNAL_SERVER_ERROR, v);
        }
    }
    finish(reply)
}

/// `Some(reply)` when a fault hits this call.
async fn injected_fault(shared: &Shared, op: &str) -> Option<Reply> {
    let hit = {
        let mut f = shared.faults.lock().ok()?;
        let active = f.status.is_some() || f.garbage || f.delay_ms > 0;
        let matches = f.operation.as_deref().is_none_or(|o| o.eq_ignore_ascii_case(op));
        if !active || !matches || f.count == Some(0) {
            return None;
        }
        if let Some(c) = f.count.as_mut() {
            *c -= 1;
        }
        f.clone()
    };
    if let Ok(mut s) = shared.stats.lock() {
        s.faults_injected += 1;
    }
    if hit.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(hit.delay_ms)).await;
    }
    if hit.garbage {
        return Some(Reply { status: StatusCode::OK, body: None, raw: Some("{\"items\": [ {\"id\": \"1e00<html>") });
    }
    hit.status.map(|s| {
        let status = StatusCode::from_u16(s).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status == StatusCode::UNAUTHORIZED {
            Reply::empty(status)
        } else {
            problem(status, "An unexpected error occurred on the appliance (injected by the simulator).")
        }
    })
}

fn route(shared: &Shared, op: &str, params: &[String], q: &Query, body: Option<&Value>) -> Reply {
    let now = shared.clock.now();
    let Ok(mut a) = shared.appliance.lock() else {
        return problem(StatusCode::INTERNAL_SERVER_ERROR, "appliance state lock poisoned");
    };
    let id = params.first().map(String::as_str).unwrap_or_default();
    let test_missing = || problem(StatusCode::NOT_FOUND, format!("Test with id '{id}' was not found."));
    let run_missing = || problem(StatusCode::NOT_FOUND, format!("Test run with id '{id}' was not found."));
    match op {
        "Data_GetSystemVersions" => {
            Reply::ok(json!({ "currentVersion": PRODUCT_VERSION, "latestVersion": PRODUCT_VERSION }))
        }
        "Configuration_GetTests" => list_tests(shared, &a, q, now).unwrap_or_else(|r| r),
        "Configuration_GetTest" => match a.test(id) {
            Some(t) => Reply::ok(a.test_json(t, &q.list("include"), now)),
            None => test_missing(),
        },
        "Configuration_GetConnectionResources" => match a.test(id) {
            Some(t) => Reply::ok(a.connection_resources_json(t)),
            None => test_missing(),
        },
        "Configuration_UpdateConnectionResources" => {
            let Some(ti) = a.tests.iter().position(|t| t.id.eq_ignore_ascii_case(id)) else { return test_missing() };
            let body = body.cloned().unwrap_or(Value::Null);
            let ids = |key: &str| -> Result<Option<Vec<String>>, Reply> {
                match &body[key] {
                    Value::Null => Ok(None),
                    Value::Array(items) => items
                        .iter()
                        .map(|v| {
                            v.as_str()
                                .map(str::to_string)
                                .ok_or_else(|| validation_problem(key, "Group ids are strings."))
                        })
                        .collect::<Result<Vec<_>, _>>()
                        .map(Some),
                    _ => Err(validation_problem(key, "A list of group ids is expected.")),
                }
            };
            let launchers = match ids("launcherGroups") {
                Ok(v) => v,
                Err(r) => return r,
            };
            let accounts = match ids("accountGroups") {
                Ok(v) => v,
                Err(r) => return r,
            };
            for (key, list, all) in
                [("launcherGroups", &launchers, &a.launcher_groups), ("accountGroups", &accounts, &a.account_groups)]
            {
                for gid in list.iter().flatten() {
                    if !all.iter().any(|g| g.id.eq_ignore_ascii_case(gid)) {
                        return validation_problem(key, format!("Group '{gid}' does not exist."));
                    }
                }
            }
            let connector = match &body["connector"] {
                Value::Null => None,
                c if c["type"].is_string() => Some(c.clone()),
                _ => return validation_problem("connector", "The connector needs a type."),
            };
            let t = &mut a.tests[ti];
            if let Some(c) = connector {
                t.connector = Some(c);
            }
            if let Some(l) = launchers {
                t.launcher_groups = l;
            }
            if let Some(acc) = accounts {
                t.account_groups = acc;
            }
            Reply::empty(StatusCode::OK)
        }
        "Configuration_StartTest" => {
            let Some(t) = a.test(id) else { return test_missing() };
            let name = t.name.clone();
            let test_id = t.id.clone();
            match a.test_state(t, now) {
                "disabled" => {
                    return problem(StatusCode::CONFLICT, format!("Test '{name}' is disabled and cannot be started."))
                }
                "running" | "stopping" => {
                    return problem(StatusCode::CONFLICT, format!("Test '{name}' is already running."))
                }
                _ => {}
            }
            let behaviour = t.behaviour.clone();
            let comment = body.and_then(|b| b["comment"].as_str()).map(str::to_string);
            let run_id = new_id();
            a.create_run(&test_id, &run_id, now, comment, &behaviour, &shared.config);
            if let Ok(mut s) = shared.stats.lock() {
                s.runs_started += 1;
            }
            Reply::json(StatusCode::CREATED, json!({ "id": run_id }))
        }
        "Configuration_StopTest" => {
            let Some(t) = a.test(id) else { return test_missing() };
            let name = t.name.clone();
            let Some(ri) = a.runs.iter().position(|r| r.test_id == t.id && !r.completed(now) && r.stopped_s.is_none())
            else {
                return problem(StatusCode::CONFLICT, format!("Test '{name}' is not running."));
            };
            let el = a.runs[ri].elapsed(now);
            let run = &mut a.runs[ri];
            // A run past its natural end has nothing left to stop.
            if run.plan.ends_s.is_none_or(|e| el < e) {
                run.stopped_s = Some(el);
                let run_id = run.id.clone();
                a.stop_events
                    .insert(run_id, event(el, "testRunCancelled", format!("Test run of '{name}' was stopped")));
            }
            Reply::empty(StatusCode::NO_CONTENT)
        }
        "Data_GetTestRun" => match a.run(id) {
            Some(r) => Reply::ok(a.run_json(r, &q.list("include"), now)),
            None => run_missing(),
        },
        "Data_GetEventsByTestRun" => {
            let Some(r) = a.run(id) else { return run_missing() };
            list_events(shared, &a, r, q, now).unwrap_or_else(|e| e)
        }
        "Data_UpdateComment" => {
            let Some(ri) = a.runs.iter().position(|r| r.id.eq_ignore_ascii_case(id)) else { return run_missing() };
            a.runs[ri].comment = body.and_then(|b| b["comment"].as_str()).map(str::to_string);
            Reply::empty(StatusCode::NO_CONTENT)
        }
        "Data_GetApplicationTestResultOverview" => {
            let Some(base) = a.run(id) else { return run_missing() };
            let mut items = vec![a.run_data_json(base, true, now)];
            for other in q.all("testRunIds") {
                match a.run(&other) {
                    Some(r) if r.id != base.id => items.push(a.run_data_json(r, false, now)),
                    Some(_) => {}
                    None => {
                        return problem(StatusCode::NOT_FOUND, format!("Test run with id '{other}' was not found."))
                    }
                }
            }
            Reply::ok(json!({ "applicationTestResult": items }))
        }
        other => problem(StatusCode::NOT_FOUND, format!("{other} is not simulated")),
    }
}

/// `count` as the appliance honours it: what was asked, capped by the configured page size.
fn page_bounds(shared: &Shared, q: &Query) -> Result<(usize, usize, bool), Reply> {
    let count = q.int("count", 100, 1, 10_000)? as usize;
    let offset = q.int("offset", 0, 0, i64::from(i32::MAX))? as usize;
    let total = q.flag("includeTotalCount")?;
    Ok((count.min(shared.config.max_page_size.max(1)), offset, total))
}

fn list_tests(shared: &Shared, a: &Appliance, q: &Query, now: OffsetDateTime) -> Result<Reply, Reply> {
    let (count, offset, with_total) = page_bounds(shared, q)?;
    let filter = q.get("filter").map(str::to_lowercase).filter(|f| !f.is_empty());
    let want_load = match q.get("testType") {
        None => None,
        Some("applicationTest") => Some(false),
        Some("loadTest") => Some(true),
        // No continuous tests are seeded.
        Some("continuousTest") => {
            return Ok(Reply::ok(json!({ "items": [], "totalCount": with_total.then_some(0), "offset": offset })))
        }
        Some(other) => return Err(validation_problem("testType", format!("The value '{other}' is not valid."))),
    };
    let mut tests: Vec<&SimTest> = a
        .tests
        .iter()
        .filter(|t| want_load.is_none_or(|l| t.load == l))
        .filter(|t| {
            filter
                .as_deref()
                .is_none_or(|f| t.name.to_lowercase().contains(f) || t.description.to_lowercase().contains(f))
        })
        .collect();
    match q.get("orderBy") {
        Some("description") => tests.sort_by(|x, y| x.description.cmp(&y.description)),
        Some("connector") => {
            tests.sort_by_key(|t| t.connector.as_ref().and_then(|c| c["type"].as_str()).unwrap_or("").to_string())
        }
        _ => tests.sort_by(|x, y| x.name.cmp(&y.name)),
    }
    if q.get("direction") == Some("desc") {
        tests.reverse();
    }
    let include = q.list("include");
    let total = tests.len();
    let items: Vec<Value> = tests.into_iter().skip(offset).take(count).map(|t| a.test_json(t, &include, now)).collect();
    Ok(Reply::ok(json!({ "items": items, "totalCount": with_total.then_some(total), "offset": offset })))
}

fn list_events(shared: &Shared, a: &Appliance, r: &SimRun, q: &Query, now: OffsetDateTime) -> Result<Reply, Reply> {
    let (count, offset, with_total) = page_bounds(shared, q)?;
    let parse_time = |k: &str| -> Result<Option<OffsetDateTime>, Reply> {
        match q.get(k) {
            None => Ok(None),
            Some(v) => OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .map(Some)
                .map_err(|_| validation_problem(k, format!("The value '{v}' is not a date-time."))),
        }
    };
    let from = parse_time("from")?;
    let to = parse_time("to")?;
    let with_properties = q.list("include").iter().any(|i| i == "properties" || i == "all");
    let mut events: Vec<&PlannedEvent> = a
        .visible_events(r, now)
        .into_iter()
        .filter(|e| from.is_none_or(|f| at(r.created, e.at_s) >= f) && to.is_none_or(|t| at(r.created, e.at_s) <= t))
        .collect();
    // The appliance lists newest first unless asked otherwise.
    if q.get("direction") != Some("asc") {
        events.reverse();
    }
    let total = events.len();
    let items: Vec<Value> =
        events.into_iter().skip(offset).take(count).map(|e| a.event_json(r, e, with_properties)).collect();
    Ok(Reply::ok(json!({ "items": items, "totalCount": with_total.then_some(total), "offset": offset })))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BehaviourRequest {
    test_id: String,
    behaviour: Behaviour,
}

async fn control(shared: &Arc<Shared>, method: &Method, hook: &str, body: &Bytes) -> Reply {
    match (method.as_str(), hook) {
        ("GET", "stats") => Reply::ok(serde_json::to_value(stats_now(shared)).unwrap_or(Value::Null)),
        ("POST", "faults") => {
            let faults: LeFaults = match serde_json::from_slice(body) {
                Ok(f) => f,
                Err(e) => return problem(StatusCode::BAD_REQUEST, format!("expected LeFaults JSON: {e}")),
            };
            let down = faults.down;
            if let Ok(mut f) = shared.faults.lock() {
                *f = faults;
            }
            match set_down(shared, down).await {
                Ok(()) => Reply::ok(json!({ "ok": true, "down": down })),
                Err(e) => problem(StatusCode::INTERNAL_SERVER_ERROR, e),
            }
        }
        ("POST", "behaviour") => {
            let req: BehaviourRequest = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return problem(StatusCode::BAD_REQUEST, format!("expected {{testId, behaviour}}: {e}")),
            };
            let Ok(mut a) = shared.appliance.lock() else {
                return problem(StatusCode::INTERNAL_SERVER_ERROR, "appliance state lock poisoned");
            };
            match a.tests.iter_mut().find(|t| t.id.eq_ignore_ascii_case(&req.test_id)) {
                Some(t) => {
                    t.behaviour = req.behaviour;
                    Reply::ok(json!({ "ok": true }))
                }
                None => problem(StatusCode::NOT_FOUND, format!("no test {}", req.test_id)),
            }
        }
        _ => problem(StatusCode::NOT_FOUND, format!("no control endpoint {method} /_le/{hook}")),
    }
}

/// Close the API port (connections are refused) or open it again on the same address.
async fn set_down(shared: &Arc<Shared>, down: bool) -> Result<(), String> {
    if down {
        let handle = shared.api.lock().map_err(|e| e.to_string())?.take();
        if let Some(h) = handle {
            // Graceful: the answer to a fault posted on the API port itself still goes out.
            h.graceful_shutdown(Some(Duration::from_millis(200)));
            for _ in 0..100 {
                match tokio::net::TcpStream::connect(shared.api_addr).await {
                    Err(_) => return Ok(()),
                    Ok(_) => tokio::time::sleep(Duration::from_millis(10)).await,
                }
            }
            return Err("the API port did not close".into());
        }
        return Ok(());
    }
    let mut last = String::new();
    for _ in 0..50 {
        {
            let mut api = shared.api.lock().map_err(|e| e.to_string())?;
            if api.is_some() {
                return Ok(());
            }
            match bind(shared.api_addr) {
                Ok(l) => {
                    *api = Some(serve(shared, l, false));
                    return Ok(());
                }
                Err(e) => last = e.to_string(),
            }
        }
        // The old listener may still be closing.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Err(format!("could not reopen the API port {}: {last}", shared.api_addr))
}

fn bind(addr: SocketAddr) -> Result<std::net::TcpListener, LeSimError> {
    let l =
        std::net::TcpListener::bind(addr).map_err(|source| LeSimError::Listen { addr: addr.to_string(), source })?;
    l.set_nonblocking(true).map_err(|source| LeSimError::Listen { addr: addr.to_string(), source })?;
    Ok(l)
}

fn serve(shared: &Arc<Shared>, listener: std::net::TcpListener, control_port: bool) -> axum_server::Handle {
    let handle = axum_server::Handle::new();
    let app = Router::new().fallback(dispatch).with_state(Ctx { shared: shared.clone(), control_port });
    let server = axum_server::from_tcp_rustls(listener, shared.tls.clone()).handle(handle.clone());
    tokio::spawn(async move {
        if let Err(e) = server.serve(app.into_make_service()).await {
            tracing::error!("simulated Login Enterprise appliance stopped: {e}");
        }
    });
    handle
}

/// Start the appliance on the current tokio runtime and return once it accepts connections.
pub async fn start_appliance(config: LeConfig) -> Result<LeHandle, LeSimError> {
    let spec = match &config.spec {
        Some(path) => Some(LeSpec::load(path).map_err(LeSimError::Spec)?),
        None => None,
    };
    let (dir, guard) = match &config.state_dir {
        Some(d) => (d.clone(), None),
        None => {
            let d = std::env::temp_dir().join(format!("ringmaster-le-sim-{}", uuid::Uuid::new_v4()));
            (d.clone(), Some(DirGuard(d)))
        }
    };
    std::fs::create_dir_all(&dir).map_err(|source| LeSimError::State { path: dir.display().to_string(), source })?;
    let certs = crate::tls::generate().map_err(LeSimError::Tls)?;
    let ca_cert = dir.join("ringmaster-le-sim-ca.pem");
    std::fs::write(&ca_cert, &certs.ca_pem)
        .map_err(|source| LeSimError::State { path: ca_cert.display().to_string(), source })?;
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(certs.leaf_pem.into_bytes(), certs.key_pem.into_bytes())
        .await
        .map_err(|e| LeSimError::Tls(e.to_string()))?;

    let api_listener = bind(config.listen)?;
    let api_addr = api_listener.local_addr().map_err(|source| LeSimError::Listen { addr: "api".into(), source })?;
    let mut control_addr = config.listen;
    control_addr.set_port(0);
    let control_listener = bind(control_addr)?;
    let control_addr =
        control_listener.local_addr().map_err(|source| LeSimError::Listen { addr: "control".into(), source })?;

    let clock = SimClock::new(config.time_scale);
    let (appliance, tests) = Appliance::seed(&config, &clock);
    let token = format!("le-sim-{}", uuid::Uuid::new_v4().simple());
    let base = spec.as_ref().map(|s| s.base.clone()).unwrap_or_else(|| "/publicApi".into());
    let shared = Arc::new(Shared {
        config,
        clock,
        token: token.clone(),
        spec,
        appliance: Mutex::new(appliance),
        stats: Mutex::new(LeStats::default()),
        faults: Mutex::new(LeFaults::default()),
        api: Mutex::new(None),
        api_addr,
        tls,
    });
    let api = serve(&shared, api_listener, false);
    let control = serve(&shared, control_listener, true);
    api.listening().await;
    control.listening().await;
    if let Ok(mut slot) = shared.api.lock() {
        *slot = Some(api);
    }
    // The certificate names localhost; use it so clients verify the name.
    Ok(LeHandle {
        base_url: format!("https://localhost:{}{base}", api_addr.port()),
        control_url: format!("https://localhost:{}", control_addr.port()),
        token,
        ca_cert,
        tests,
        launcher_group_id: LAUNCHER_GROUP.into(),
        account_group_id: ACCOUNT_GROUP.into(),
        shared,
        control,
        _dir: guard,
    })
}

#[cfg(test)]
mod tests {
    use super::openapi::*;
    use super::*;
    use serde_json::json;

    /// The translated spec is strict: the sim's own bodies pass, and each kind of mistake is caught.
    #[test]
    fn the_translated_spec_accepts_the_sims_bodies_and_rejects_mistakes() {
        let Some(path) = spec_for_tests() else { return };
        let spec = LeSpec::load(&path).expect("spec loads");
        let config = LeConfig::default();
        let clock = SimClock::new(1.0);
        let (a, _) = Appliance::seed(&config, &clock);
        let now = clock.now();
        let check = |schema: &str, v: &Value| {
            spec.check(schema, &json!({ "$ref": format!("#/components/schemas/{schema}") }), v)
        };

        let test = a.test_json(a.test(TEST_PASS).expect("seeded"), &["all".into()], now);
        check("ApplicationTest", &test).expect("the sim's test is valid");
        let load = a.test_json(a.test(TEST_LOAD).expect("seeded"), &[], now);
        let page = json!({ "items": [test.clone(), load], "totalCount": 2, "offset": 0 });
        check("TestResultSet", &page).expect("a page with both test types is valid");
        let run = a.run_json(a.run(RUNNING_RUN).expect("seeded"), &["all".into()], now);
        check("ApplicationTestRun", &run).expect("the sim's run is valid");

        let mut bad = test.clone();
        bad["bogus"] = json!(1);
        assert!(check("ApplicationTest", &bad).is_err(), "an unknown property is caught");
        let mut bad = test.clone();
        bad["state"] = json!("paused");
        assert!(check("ApplicationTest", &bad).is_err(), "a value outside an enum is caught");
        let mut bad = test.clone();
        bad["id"] = json!("not-a-uuid");
        assert!(check("ApplicationTest", &bad).is_err(), "a malformed uuid is caught");
        let mut bad = test.clone();
        bad["name"] = json!(null);
        check("ApplicationTest", &bad).expect("nullable fields take null");
        bad["isEmailEnabled"] = json!(null);
        assert!(check("ApplicationTest", &bad).is_err(), "null where the spec does not allow it is caught");
        let mut bad = test.clone();
        bad["type"] = json!("LoadTest");
        let page = json!({ "items": [bad], "offset": 0 });
        assert!(check("TestResultSet", &page).is_err(), "a test whose discriminator names the wrong type is caught");
        let mut bad = run.clone();
        bad["result"] = json!("passed");
        assert!(check("ApplicationTestRun", &bad).is_err());
        let mut bad = run;
        bad["created"] = json!("yesterday");
        assert!(check("ApplicationTestRun", &bad).is_err(), "a malformed date-time is caught");
        assert!(
            check("ConnectionResourcesUpdate", &json!({ "connector": { "type": "Rdp", "hostList": [] } })).is_err(),
            "a connector missing a required field is caught"
        );
        check("ConnectionResourcesUpdate", &json!({ "connector": { "type": "Desktop" }, "launcherGroups": null }))
            .expect("valid");
    }

    fn components(v: serde_json::Value) -> serde_json::Map<String, serde_json::Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn nullable_becomes_a_null_type_or_an_any_of() {
        assert_eq!(translate(&json!({"type": "string", "nullable": true})), json!({"type": ["string", "null"]}));
        assert_eq!(
            translate(&json!({"enum": ["a"], "type": "string", "nullable": true})),
            json!({"enum": ["a", null], "type": ["string", "null"]})
        );
        assert_eq!(
            translate(&json!({"oneOf": [{"$ref": "#/components/schemas/A"}], "nullable": true})),
            json!({"anyOf": [{"oneOf": [{"$ref": "#/components/schemas/A"}]}, {"type": "null"}]})
        );
    }

    #[test]
    fn all_of_subtypes_merge_and_pin_their_discriminator() {
        let raw = components(json!({
            "Base": {
                "required": ["type"], "type": "object", "additionalProperties": false,
                "properties": {"type": {"type": "string"}, "id": {"type": "string"}},
                "discriminator": {"propertyName": "type", "mapping": {"Sub": "#/components/schemas/Sub"}}
            },
            "Sub": {"allOf": [
                {"$ref": "#/components/schemas/Base"},
                {
                    "type": "object", "additionalProperties": false,
                    "properties": {"x": {"type": "integer", "nullable": true}}
                }
            ]}
        }));
        let t = translate_components(&raw);
        assert_eq!(
            t["Sub"],
            json!({"type": "object", "required": ["type"], "additionalProperties": false, "properties": {
                "type": {"type": "string", "enum": ["Sub"]},
                "id": {"type": "string"},
                "x": {"type": ["integer", "null"]}
            }})
        );
        assert_eq!(t["Base"], json!({"oneOf": [{"$ref": "#/components/schemas/Sub"}]}));
    }
}
