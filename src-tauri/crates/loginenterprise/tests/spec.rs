//! The client's enums against the v7 spec: a value the appliance can send that the client does not know, or a value
//! the client names that the spec does not have, fails here (skipped with a note when the spec is absent; a failure
//! under CI).

use ringmaster_loginenterprise::{AppResultStatus, EventClass, EventKind, RunResult, RunState, TestState, EVENT_TYPES};
use serde::Serialize;
use serde_json::Value;

fn spec() -> Option<Value> {
    let path = ringmaster_sim::le::spec_for_tests()?;
    let text = std::fs::read_to_string(&path).expect("spec readable");
    Some(serde_json::from_str(&text).expect("spec is JSON"))
}

fn spec_enum(spec: &Value, schema: &str) -> Vec<String> {
    spec["components"]["schemas"][schema]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{schema} is an enum in the spec"))
        .iter()
        .map(|v| v.as_str().expect("string values").to_string())
        .collect()
}

fn names<T: Serialize>(values: &[T]) -> Vec<String> {
    values
        .iter()
        .map(|v| serde_json::to_value(v).expect("serializes").as_str().expect("a string").to_string())
        .collect()
}

#[test]
fn event_types_are_the_specs() {
    let Some(spec) = spec() else { return };
    let expected = spec_enum(&spec, "EventType");
    assert_eq!(EVENT_TYPES, expected.iter().map(String::as_str).collect::<Vec<_>>().as_slice());
    for name in &expected {
        assert!(!matches!(EventKind::from_api(name), EventKind::Other(_)), "{name} has no variant");
    }
    // The README names these two; the class holds the other launcher and connection types.
    let launcher: Vec<String> = EventKind::launcher_or_connection().iter().map(|k| k.as_api().to_string()).collect();
    assert_eq!(
        launcher,
        vec![
            "launcherOffline",
            "connectionInitializationTimeout",
            "launcherCapacityExceeded",
            "sessionDiscoveryError",
            "sessionRequestEndedBeforeEngineBecameOnline",
            "remoteSessionDisconnected"
        ]
    );
    assert_eq!(EventKind::from_api("somethingNew").class(), EventClass::Informational);
}

#[test]
fn run_and_test_states_are_the_specs() {
    let Some(spec) = spec() else { return };
    assert_eq!(
        names(&[RunResult::Successful, RunResult::InternalError, RunResult::Cancelled, RunResult::Incomplete]),
        spec_enum(&spec, "ApplicationTestResult")
    );
    assert_eq!(
        names(&[RunState::Created, RunState::TestRunEnded, RunState::Completed]),
        spec_enum(&spec, "ApplicationTestState")
    );
    assert_eq!(
        names(&[TestState::Disabled, TestState::Enabled, TestState::Running, TestState::Stopping]),
        spec_enum(&spec, "TestControlState")
    );
    assert_eq!(
        names(&[AppResultStatus::Successful, AppResultStatus::OverThreshold, AppResultStatus::Error]),
        spec_enum(&spec, "ApplicationResultStatus")
    );
    for r in [RunResult::Successful, RunResult::InternalError, RunResult::Cancelled, RunResult::Incomplete] {
        assert_eq!(serde_json::to_value(r).expect("serializes"), Value::String(r.as_api().into()));
    }
}

#[test]
fn the_operations_the_client_calls_are_in_the_spec() {
    let Some(spec) = spec() else { return };
    assert_eq!(spec["servers"][0]["url"], "/publicApi");
    for (method, path) in [
        ("get", "/v7/system/version"),
        ("get", "/v7/tests"),
        ("get", "/v7/tests/{testId}"),
        ("put", "/v7/tests/{testId}/connection-resources"),
        ("put", "/v7/tests/{testId}/start"),
        ("put", "/v7/tests/{testId}/stop"),
        ("get", "/v7/test-runs/{testRunId}"),
        ("get", "/v7/test-runs/{testRunId}/events"),
        ("get", "/v7/application-test-run-overview/{testRunId}"),
        ("put", "/v7/test-runs/{testRunId}/comment"),
    ] {
        assert!(spec["paths"][path][method].is_object(), "{method} {path} is not in the spec");
    }
    // 409 on start means running or disabled.
    assert!(spec["paths"]["/v7/tests/{testId}/start"]["put"]["responses"]["409"].is_object());
}
