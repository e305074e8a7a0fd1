//! The webview's security configuration, checked as it is shipped: the CSP in `tauri.conf.json` and the capabilities
//! in `capabilities/`. A change that loosens either has to change this test too, on purpose.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Every permission a capability may grant. The app's own commands need none (no app manifest in build.rs), and
/// the single-instance plugin has no commands and needs none.
const ALLOWED_PERMISSIONS: &[&str] = &["core:event:allow-listen", "core:event:allow-unlisten"];
/// Plugin families that must never be granted to the webview, even if someone adds them to the allow-list above.
const FORBIDDEN_PREFIXES: &[&str] = &["shell:", "fs:", "http:", "opener:"];

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn config() -> Value {
    read_json(&manifest_dir().join("tauri.conf.json"))
}

/// The CSP as directive -> sources. Tauri accepts a string or an object of directive -> string or list.
fn parse_csp(csp: &Value) -> BTreeMap<String, Vec<String>> {
    let mut directives = BTreeMap::new();
    let mut add = |name: &str, sources: Vec<String>| {
        let name = name.trim().to_ascii_lowercase();
        assert!(!name.is_empty(), "empty CSP directive in {csp}");
        assert!(directives.insert(name.clone(), sources).is_none(), "CSP directive {name} given twice: {csp}");
    };
    let split = |s: &str| s.split_ascii_whitespace().map(str::to_string).collect::<Vec<_>>();
    match csp {
        Value::String(s) => {
            for directive in s.split(';').map(str::trim).filter(|d| !d.is_empty()) {
                let mut parts = split(directive).into_iter();
                let name = parts.next().unwrap();
                add(&name, parts.collect());
            }
        }
        Value::Object(map) => {
            for (name, sources) in map {
                let sources = match sources {
                    Value::String(s) => split(s),
                    Value::Array(list) => {
                        list.iter().map(|v| v.as_str().expect("CSP source is a string").to_string()).collect()
                    }
                    other => panic!("CSP directive {name} has an unexpected value {other}"),
                };
                add(name, sources);
            }
        }
        other => panic!("app.security.csp must be set (a string or an object), found {other}"),
    }
    directives
}

fn shipped_csp() -> BTreeMap<String, Vec<String>> {
    parse_csp(&config()["app"]["security"]["csp"])
}

/// Checks one CSP, returning what is wrong with it.
fn csp_problems(csp: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut problems = Vec::new();
    let sources = |name: &str| csp.get(name).map(|s| s.iter().map(String::as_str).collect::<Vec<_>>());
    let lower = |list: &[&str]| list.iter().map(|s| s.to_ascii_lowercase()).collect::<Vec<_>>();

    // Nothing anywhere may allow any host, any scheme of remote content, or eval.
    for (name, list) in csp {
        for source in list {
            let s = source.to_ascii_lowercase();
            let remote = s.contains('*')
                || s == "http:"
                || s == "https:"
                || s == "ws:"
                || s == "wss:"
                || ((s.starts_with("http://") || s.starts_with("https://") || s.starts_with("ws"))
                    && !(name == "connect-src" && s == "http://ipc.localhost"));
            if remote {
                problems.push(format!("{name} allows remote content: {source}"));
            }
            if s == "'unsafe-eval'" || s == "'wasm-unsafe-eval'" || s == "'unsafe-hashes'" {
                problems.push(format!("{name} allows {source}"));
            }
        }
    }

    // default-src and script-src: our own files only.
    match sources("default-src") {
        Some(list) if lower(&list) == ["'self'"] || lower(&list) == ["'none'"] => {}
        other => problems.push(format!("default-src must be 'self' (or 'none'), found {other:?}")),
    }
    let default_is_self = sources("default-src").is_some_and(|l| lower(&l) == ["'self'"]);
    match sources("script-src") {
        Some(list) if lower(&list) == ["'self'"] => {}
        None if default_is_self => {}
        other => problems.push(format!("script-src must be 'self' (no 'unsafe-inline', no hosts), found {other:?}")),
    }

    // The only thing the page talks to is the IPC bridge.
    match sources("connect-src") {
        Some(list) => {
            let mut got = lower(&list);
            got.sort();
            if got != ["http://ipc.localhost", "ipc:"] {
                problems.push(format!("connect-src must be exactly `ipc: http://ipc.localhost`, found {list:?}"));
            }
        }
        None => problems.push("connect-src must be set to `ipc: http://ipc.localhost`".into()),
    }

    // No plugins, frames, <base> or form posts.
    for name in ["object-src", "frame-src"] {
        match sources(name) {
            Some(list) if lower(&list) == ["'none'"] => {}
            None if default_is_self => {}
            other => {
                problems.push(format!("{name} must be 'none' (or absent under default-src 'self'), found {other:?}"))
            }
        }
    }
    for name in ["base-uri", "form-action"] {
        match sources(name) {
            Some(list) if lower(&list) == ["'none'"] => {}
            other => problems.push(format!("{name} must be 'none', found {other:?}")),
        }
    }

    // Styles: our own files plus inline styles (Svelte sets style attributes); nothing else.
    if let Some(list) = sources("style-src") {
        for source in lower(&list) {
            if source != "'self'" && source != "'unsafe-inline'" {
                problems.push(format!("style-src allows {source}"));
            }
        }
    }
    // Images: ours and data: URLs only.
    if let Some(list) = sources("img-src") {
        for source in lower(&list) {
            if source != "'self'" && source != "data:" {
                problems.push(format!("img-src allows {source}"));
            }
        }
    }
    problems
}

#[test]
fn shipped_csp_is_locked_down() {
    let csp = shipped_csp();
    let problems = csp_problems(&csp);
    assert!(problems.is_empty(), "CSP problems: {problems:#?}\nCSP: {csp:#?}");
    // Svelte's inline style attributes still work.
    assert_eq!(csp["style-src"], ["'self'", "'unsafe-inline'"]);
}

#[test]
fn dev_csp_if_any_is_locked_down_too() {
    let dev = &config()["app"]["security"]["devCsp"];
    if !dev.is_null() {
        let problems = csp_problems(&parse_csp(dev));
        assert!(problems.is_empty(), "devCsp problems: {problems:#?}");
    }
}

#[test]
fn the_csp_check_catches_loose_policies() {
    let good = "default-src 'self'; connect-src ipc: http://ipc.localhost; img-src 'self' data:; \
                style-src 'self' 'unsafe-inline'; script-src 'self'; object-src 'none'; frame-src 'none'; \
                base-uri 'none'; form-action 'none'";
    assert_eq!(csp_problems(&parse_csp(&Value::String(good.into()))), Vec::<String>::new());
    // Absent object-src/frame-src are fine under default-src 'self'.
    let minimal = "default-src 'self'; connect-src ipc: http://ipc.localhost; base-uri 'none'; form-action 'none'";
    assert_eq!(csp_problems(&parse_csp(&Value::String(minimal.into()))), Vec::<String>::new());

    for (change, bad) in [
        ("script-src 'self'", "script-src 'self' 'unsafe-inline'"),
        ("script-src 'self'", "script-src 'self' 'unsafe-eval'"),
        ("script-src 'self'", "script-src 'self' https://cdn.example.com"),
        ("script-src 'self'", "script-src *"),
        ("default-src 'self'", "default-src 'self' https:"),
        ("default-src 'self'", "default-src *"),
        ("connect-src ipc: http://ipc.localhost", "connect-src ipc: http://ipc.localhost https://management.azure.com"),
        ("connect-src ipc: http://ipc.localhost", "connect-src 'self' ipc: http://ipc.localhost"),
        ("connect-src ipc: http://ipc.localhost", "connect-src ipc:"),
        ("object-src 'none'", "object-src 'self'"),
        ("frame-src 'none'", "frame-src https://evil.example"),
        ("base-uri 'none'", "base-uri 'self'"),
        ("img-src 'self' data:", "img-src 'self' data: https:"),
        ("style-src 'self' 'unsafe-inline'", "style-src 'self' 'unsafe-inline' https://fonts.example.com"),
    ] {
        assert!(good.contains(change), "{change}");
        let loose = good.replace(change, bad);
        let problems = csp_problems(&parse_csp(&Value::String(loose.clone())));
        assert!(!problems.is_empty(), "not caught: {loose}");
    }
    // Dropping a directive that has no safe default.
    for name in ["connect-src ipc: http://ipc.localhost; ", "base-uri 'none'; "] {
        let loose = good.replace(name, "");
        assert!(!csp_problems(&parse_csp(&Value::String(loose.clone()))).is_empty(), "not caught: {loose}");
    }
    // object-src/frame-src may be absent only under default-src 'self'.
    let loose = minimal.replace("default-src 'self'", "default-src 'none'");
    assert!(!csp_problems(&parse_csp(&Value::String(loose.clone()))).is_empty(), "not caught: {loose}");
}

#[test]
fn global_tauri_and_dangerous_switches_are_off() {
    let config = config();
    let app = &config["app"];
    assert_ne!(app["withGlobalTauri"], Value::Bool(true), "withGlobalTauri exposes window.__TAURI__ to any script");
    let security = &app["security"];
    for key in ["dangerousDisableAssetCspModification", "dangerousRemoteDomainIpcAccess"] {
        assert!(
            security[key].is_null() || security[key] == Value::Bool(false),
            "app.security.{key} must not be set: {}",
            security[key]
        );
    }
    assert_ne!(security["assetProtocol"]["enable"], Value::Bool(true), "the asset protocol would serve local files");
    // Capabilities come from capabilities/ only (checked below), not inline in the config.
    if let Some(list) = security["capabilities"].as_array() {
        for c in list {
            assert_eq!(c.as_str(), Some("default"), "unexpected capability in tauri.conf.json: {c}");
        }
    }
}

#[test]
fn the_only_window_is_main_and_it_loads_the_bundled_ui() {
    let config = config();
    let windows = config["app"]["windows"].as_array().expect("app.windows");
    assert_eq!(windows.len(), 1, "one window: {windows:?}");
    let window = &windows[0];
    assert!(window["label"].is_null() || window["label"] == "main", "window label: {}", window["label"]);
    if let Some(url) = window["url"].as_str() {
        assert!(!url.contains("://"), "the window must load the bundled UI, not {url}");
    }
    assert_eq!(config["build"]["frontendDist"], "../ui/dist", "the UI is bundled, not loaded from a URL");
}

fn capability_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&manifest_dir().join("capabilities"), &mut files);
    files.sort();
    files
}

fn permission_id(permission: &Value) -> &str {
    match permission {
        Value::String(s) => s,
        Value::Object(o) => o.get("identifier").and_then(Value::as_str).expect("permission object has an identifier"),
        other => panic!("unexpected permission entry {other}"),
    }
}

#[test]
fn capabilities_grant_only_the_allow_list_to_the_main_window() {
    let files = capability_files();
    assert!(!files.is_empty(), "capabilities/ has no files");
    for path in files {
        let name = path.display().to_string();
        // tauri-build also loads TOML capabilities: keep them all in JSON, where this test reads them.
        assert_eq!(path.extension().and_then(|e| e.to_str()), Some("json"), "{name}: capabilities must be JSON");
        let cap = read_json(&path);
        assert_eq!(cap["windows"], serde_json::json!(["main"]), "{name}: windows must be exactly [\"main\"]");
        assert!(cap["webviews"].is_null(), "{name}: no webview-specific grants");
        assert!(cap["remote"].is_null(), "{name}: no remote URLs may use the IPC");
        assert_ne!(cap["local"], Value::Bool(false), "{name}: capabilities are for the local UI");
        let permissions = cap["permissions"].as_array().unwrap_or_else(|| panic!("{name}: permissions"));
        for p in permissions {
            let id = permission_id(p);
            for prefix in FORBIDDEN_PREFIXES {
                assert!(!id.starts_with(prefix), "{name}: {id} grants the webview {prefix} access");
            }
            assert!(ALLOWED_PERMISSIONS.contains(&id), "{name}: {id} is not in the allow-list {ALLOWED_PERMISSIONS:?}");
            if let Value::Object(o) = p {
                assert!(o.get("allow").is_none() && o.get("deny").is_none(), "{name}: {id} has a custom scope");
            }
        }
    }
}
