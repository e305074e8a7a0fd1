//! Checks requests and responses against the official ARM OpenAPI specs (`shared/azure-specs`), so a client
//! bug cannot hide behind a lenient simulator and the simulator cannot drift from Azure.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// The spec files whose operations the sim serves, relative to `specification/`. Stable before preview: the
/// first template that matches a path wins.
pub const SPEC_FILES: &[&str] = &[
    "resources/resource-manager/Microsoft.Resources/stable/2022-12-01/subscriptions.json",
    "resources/resource-manager/Microsoft.Resources/stable/2024-07-01/resources.json",
    "compute/resource-manager/Microsoft.Compute/GalleryRP/stable/2024-03-03/gallery.json",
    "compute/resource-manager/Microsoft.Compute/ComputeRP/stable/2024-07-01/virtualMachine.json",
    "compute/resource-manager/Microsoft.Compute/ComputeRP/stable/2024-07-01/runCommand.json",
    "compute/resource-manager/Microsoft.Compute/ComputeRP/stable/2024-07-01/computeRPCommon.json",
    "compute/resource-manager/Microsoft.Compute/DiskRP/stable/2024-03-02/disk.json",
    "compute/resource-manager/Microsoft.Compute/DiskRP/stable/2024-03-02/snapshot.json",
    "network/resource-manager/Microsoft.Network/stable/2024-05-01/networkInterface.json",
    "desktopvirtualization/resource-manager/Microsoft.DesktopVirtualization/stable/2024-04-03/desktopvirtualization.json",
    "resourcegraph/resource-manager/Microsoft.ResourceGraph/stable/2024-04-01/resourcegraph.json",
];

/// Where the specs are: `RINGMASTER_AZURE_SPECS`, else `shared/azure-specs` beside the workspace.
pub fn default_spec_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("RINGMASTER_AZURE_SPECS") {
        return PathBuf::from(dir);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../../shared/azure-specs")
}

#[derive(Debug, Clone)]
enum Seg {
    Lit(String),
    Param,
}

struct Operation {
    operation_id: String,
    method: String,
    template: Vec<Seg>,
    /// The template follows a `{scope}` of one or more segments.
    scoped: bool,
    literals: usize,
    api_version: String,
    file: PathBuf,
    op: Value,
}

/// What the validator found wrong, phrased like ARM's 400 messages.
#[derive(Debug, Clone)]
pub struct Violation {
    pub code: &'static str,
    pub message: String,
}

pub struct SpecIndex {
    ops: Vec<Operation>,
    files: Mutex<HashMap<PathBuf, Arc<Value>>>,
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl std::fmt::Debug for SpecIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SpecIndex({} operations)", self.ops.len())
    }
}

impl SpecIndex {
    /// Load the specs from `dir` (the `azure-specs` folder). Fails when a file is missing or unreadable.
    pub fn load(dir: &Path) -> Result<SpecIndex, String> {
        let root = dir.join("specification");
        let mut ops = Vec::new();
        let mut files = HashMap::new();
        for rel in SPEC_FILES {
            let path = root.join(rel);
            let path = path.canonicalize().map_err(|e| format!("spec {}: {e}", path.display()))?;
            let text = std::fs::read_to_string(&path).map_err(|e| format!("spec {}: {e}", path.display()))?;
            let json: Value = serde_json::from_str(&text).map_err(|e| format!("spec {}: {e}", path.display()))?;
            let api_version = json["info"]["version"].as_str().unwrap_or_default().to_string();
            if let Some(paths) = json["paths"].as_object() {
                for (template, item) in paths {
                    if template.contains("{resourceId}") {
                        continue;
                    }
                    // `/{scope}/...` (the Tags API): the scope is any resource id, so the template is matched as
                    // a suffix of at least one segment more.
                    let (scoped, template) = match template.strip_prefix("/{scope}") {
                        Some(rest) => (true, rest),
                        None if template.contains("{scope}") => continue,
                        None => (false, template.as_str()),
                    };
                    let segs: Vec<Seg> = template
                        .split('/')
                        .filter(|s| !s.is_empty())
                        .map(|s| if s.starts_with('{') { Seg::Param } else { Seg::Lit(s.to_ascii_lowercase()) })
                        .collect();
                    let literals = segs.iter().filter(|s| matches!(s, Seg::Lit(_))).count();
                    for method in ["get", "put", "post", "patch", "delete"] {
                        if let Some(op) = item.get(method) {
                            let mut op = op.clone();
                            // Path-level parameters apply to every operation under the path.
                            if let Some(common) = item.get("parameters").and_then(Value::as_array) {
                                let list = op["parameters"].as_array().cloned().unwrap_or_default();
                                op["parameters"] = Value::Array(common.iter().cloned().chain(list).collect());
                            }
                            ops.push(Operation {
                                operation_id: op["operationId"].as_str().unwrap_or_default().to_string(),
                                method: method.to_ascii_uppercase(),
                                template: segs.clone(),
                                scoped,
                                literals,
                                api_version: api_version.clone(),
                                file: path.clone(),
                                op,
                            });
                        }
                    }
                }
            }
            files.insert(path, Arc::new(json));
        }
        Ok(SpecIndex { ops, files: Mutex::new(files), validators: Mutex::new(HashMap::new()) })
    }

    fn find(&self, method: &str, path: &str) -> Option<&Operation> {
        let segs: Vec<String> = path.split('/').filter(|s| !s.is_empty()).map(|s| s.to_ascii_lowercase()).collect();
        self.ops
            .iter()
            .filter(|o| o.method == method)
            .filter(|o| if o.scoped { segs.len() > o.template.len() } else { o.template.len() == segs.len() })
            .filter(|o| {
                let tail = &segs[segs.len() - o.template.len()..];
                o.template.iter().zip(tail).all(|(t, s)| match t {
                    Seg::Lit(l) => l == s,
                    Seg::Param => true,
                })
            })
            .max_by_key(|o| o.literals)
    }

    /// The spec's operationId for a request, if the specs describe it.
    pub fn operation_id(&self, method: &str, path: &str) -> Option<String> {
        self.find(method, path).map(|o| o.operation_id.clone())
    }

    /// Check a request: the operation exists, `api-version` is the spec's or newer, required query
    /// parameters are present and the body matches the body parameter's schema.
    pub fn check_request(
        &self,
        method: &str,
        path: &str,
        query: &HashMap<String, String>,
        body: Option<&Value>,
    ) -> Result<(), Violation> {
        let Some(op) = self.find(method, path) else {
            return Err(Violation {
                code: "InvalidResourceType",
                message: format!("No operation in the Azure specs matches {method} {path}."),
            });
        };
        match query.get("api-version") {
            None => {
                return Err(Violation {
                    code: "MissingApiVersionParameter",
                    message: "The api-version query parameter (?api-version=) is required for all requests.".into(),
                })
            }
            Some(v) if v.as_str() < op.api_version.as_str() => {
                return Err(Violation {
                    code: "InvalidApiVersionParameter",
                    message: format!(
                        "The api-version '{v}' is older than '{}', the version {} is specified and simulated at.",
                        op.api_version, op.operation_id
                    ),
                })
            }
            Some(_) => {}
        }
        let params = op.op["parameters"].as_array().cloned().unwrap_or_default();
        for p in params {
            let (file, p) = self.resolve(&op.file, &p);
            match p["in"].as_str() {
                Some("query") if p["required"].as_bool() == Some(true) => {
                    let name = p["name"].as_str().unwrap_or_default();
                    if !query.contains_key(name) {
                        return Err(Violation {
                            code: "InvalidParameter",
                            message: format!("{}: the required query parameter '{name}' is missing.", op.operation_id),
                        });
                    }
                }
                Some("body") => {
                    let required = p["required"].as_bool() == Some(true);
                    match body {
                        None if required => {
                            return Err(Violation {
                                code: "InvalidRequestContent",
                                message: format!("{}: the request body is required.", op.operation_id),
                            })
                        }
                        None => {}
                        Some(b) => {
                            let key = format!("{}#req", op.operation_id);
                            let v = self
                                .validator(&key, &file, &p["schema"])
                                .map_err(|e| Violation { code: "SimSpecError", message: e })?;
                            // Enums are checked as the service does: most are `modelAsString`, open to values the
                            // spec does not list (VM sizes are the usual case).
                            let first = v
                                .iter_errors(b)
                                .find(|err| !tolerated(&op.operation_id, err))
                                .map(|err| format!("{} at '{}'", err, err.instance_path()));
                            if let Some(err) = first {
                                return Err(Violation {
                                    code: "InvalidRequestContent",
                                    message: format!("{}: the request content is not valid: {err}.", op.operation_id),
                                });
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Check a response body against the spec's schema for its status. Extensible enums (AVD and Compute
    /// model most enums as strings) are not checked: Azure adds values without a new api-version.
    pub fn check_response(&self, method: &str, path: &str, status: u16, body: &Value) -> Result<(), Violation> {
        let Some(op) = self.find(method, path) else { return Ok(()) };
        let responses = &op.op["responses"];
        let (key, resp) = match responses.get(status.to_string()) {
            Some(r) => (status.to_string(), r.clone()),
            None if status >= 400 => match responses.get("default") {
                Some(r) => ("default".to_string(), r.clone()),
                None => return Ok(()),
            },
            None => {
                return Err(Violation {
                    code: "SimSpecViolation",
                    message: format!("{} does not list status {status} among its responses.", op.operation_id),
                })
            }
        };
        let (file, resp) = self.resolve(&op.file, &resp);
        if resp.get("schema").is_none() {
            return Ok(());
        }
        let v = self
            .validator(&format!("{}#{key}", op.operation_id), &file, &resp["schema"])
            .map_err(|e| Violation { code: "SimSpecError", message: e })?;
        let first = v
            .iter_errors(body)
            .find(|err| !tolerated(&op.operation_id, err))
            .map(|err| format!("{} at '{}'", err, err.instance_path()));
        match first {
            Some(err) => Err(Violation {
                code: "SimSpecViolation",
                message: format!("{} response {status} does not match the spec: {err}", op.operation_id),
            }),
            None => Ok(()),
        }
    }

    fn load_file(&self, path: &Path) -> Option<Arc<Value>> {
        let mut files = self.files.lock().ok()?;
        if let Some(v) = files.get(path) {
            return Some(v.clone());
        }
        let text = std::fs::read_to_string(path).ok()?;
        let v: Arc<Value> = Arc::new(serde_json::from_str(&text).ok()?);
        files.insert(path.to_path_buf(), v.clone());
        Some(v)
    }

    /// Follow a `$ref` (local or to another file) to the object it names; returns the file it lives in.
    fn resolve(&self, file: &Path, v: &Value) -> (PathBuf, Value) {
        let Some(r) = v.get("$ref").and_then(Value::as_str) else {
            return (file.to_path_buf(), v.clone());
        };
        let (target, pointer) = ref_target(file, r);
        match self.load_file(&target).and_then(|doc| doc.pointer(pointer).cloned()) {
            Some(found) => self.resolve(&target, &found),
            None => (target, Value::Null),
        }
    }

    fn validator(&self, key: &str, file: &Path, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        if let Some(v) = self.validators.lock().map_err(|e| e.to_string())?.get(key) {
            return Ok(v.clone());
        }
        let absolute = absolutize_refs(schema, file);
        let v = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft4)
            .build(&absolute)
            .map_err(|e| format!("cannot compile the spec schema for {key}: {e}"))?;
        let v = Arc::new(v);
        self.validators.lock().map_err(|e| e.to_string())?.insert(key.to_string(), v.clone());
        Ok(v)
    }
}

/// Deviations between the specs and the service that the sim follows the service on.
fn tolerated(operation_id: &str, err: &jsonschema::ValidationError<'_>) -> bool {
    use jsonschema::error::ValidationErrorKind;
    match err.kind() {
        // Most enums are `modelAsString`: Azure adds values without a new api-version.
        ValidationErrorKind::Enum { .. } => true,
        // Resource Graph declares `data` as an object, yet returns an array for resultFormat=objectArray
        // (its own examples show arrays).
        ValidationErrorKind::Type { .. } => operation_id == "Resources" && err.instance_path().to_string() == "/data",
        _ => false,
    }
}

/// The file and JSON pointer a `$ref` written in `file` names.
fn ref_target<'a>(file: &Path, r: &'a str) -> (PathBuf, &'a str) {
    let (rel, pointer) = r.split_once('#').unwrap_or((r, ""));
    if rel.is_empty() {
        return (file.to_path_buf(), pointer);
    }
    let joined = file.parent().unwrap_or(Path::new("/")).join(rel);
    (joined.canonicalize().unwrap_or(joined), pointer)
}

/// Rewrite the `$ref`s of a schema cut out of a spec file into absolute `file://` URIs, so the resolver
/// finds them wherever the schema now sits.
fn absolutize_refs(v: &Value, file: &Path) -> Value {
    match v {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, val) in map {
                if k == "$ref" {
                    if let Some(r) = val.as_str() {
                        let (target, pointer) = ref_target(file, r);
                        out.insert(k.clone(), Value::String(format!("file://{}#{pointer}", target.display())));
                        continue;
                    }
                }
                out.insert(k.clone(), absolutize_refs(val, file));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(|i| absolutize_refs(i, file)).collect()),
        other => other.clone(),
    }
}

/// For tests: the specs folder if present; under CI (`CI=true`) a missing folder is a failure, elsewhere the
/// caller is told validation is skipped.
pub fn spec_dir_for_tests() -> Option<PathBuf> {
    let dir = default_spec_dir();
    if dir.join("specification").is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("the Azure specs are missing at {} (set RINGMASTER_AZURE_SPECS); CI requires them", dir.display());
    }
    eprintln!("note: Azure specs not found at {}; spec validation skipped", dir.display());
    None
}
