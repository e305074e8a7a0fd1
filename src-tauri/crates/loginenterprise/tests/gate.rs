//! The client and the gate against the simulated appliance over real HTTPS: each outcome and each failure the
//! appliance can produce, with the message an admin would see.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::Le;
use ringmaster_loginenterprise::{
    run_gate, CancellationToken, ConnectionResourcesUpdate, EventKind, GateProgress, LeError, RunState, TestState,
    VerdictKind,
};
use ringmaster_sim::le::{self, Behaviour, LeConfig};
use serde_json::{json, Value};

/// Run the gate and keep its progress.
async fn gate(
    le: &Le,
    req: ringmaster_loginenterprise::GateRequest,
) -> (ringmaster_loginenterprise::GateResult, Vec<GateProgress>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let result = run_gate(&le.client, req, CancellationToken::new(), move |p| sink.lock().unwrap().push(p)).await;
    let progress = seen.lock().unwrap().clone();
    (result, progress)
}

fn reasons(r: &ringmaster_loginenterprise::GateResult) -> String {
    r.verdict.reasons.join(" | ")
}

#[tokio::test]
async fn a_passing_run_opens_the_gate_with_its_evidence() {
    let le = Le::start(common::fast()).await;
    let version = le.client.system_version().await.expect("version");
    assert_eq!(version.current_version.as_deref(), Some("6.1.12"));

    let req = le.request(le::TEST_PASS);
    let baseline = req.baseline_run_id.clone().expect("seeded baseline");
    let (result, progress) = gate(&le, req).await;
    assert_eq!(result.verdict.kind, VerdictKind::Pass, "{}", reasons(&result));
    assert!(result.opens_gate());
    assert!(
        reasons(&result).contains("login succeeded and all 2 required apps ran successfully (4/4"),
        "{}",
        reasons(&result)
    );
    assert_eq!(result.test_name.as_deref(), Some(le::TEST_PASS_NAME));
    let run_id = result.run_id.clone().expect("a run");

    // Progress: prepared, started, watched the run to completed, finished PASS.
    assert!(matches!(progress.first(), Some(GateProgress::Preparing { .. })), "{progress:?}");
    assert!(progress.contains(&GateProgress::Started { run_id: run_id.clone() }), "{progress:?}");
    assert!(
        progress.iter().any(|p| matches!(p, GateProgress::Running { state, .. } if state == "completed")),
        "{progress:?}"
    );
    assert_eq!(progress.last(), Some(&GateProgress::Finished { verdict: VerdictKind::Pass }));

    // Evidence: the raw answers, and an overview of the baseline with this run compared.
    let ev = &result.evidence;
    assert_eq!(ev.test.as_ref().and_then(|t| t["id"].as_str()), Some(le::TEST_PASS));
    assert_eq!(ev.run.as_ref().and_then(|r| r["state"].as_str()), Some("completed"));
    assert_eq!(
        ev.run.as_ref().and_then(|r| r["comment"].as_str()),
        Some("ringmaster: win11-24h2-avd-m365 1.0.42, change CHG0012345")
    );
    let kinds: Vec<&str> = ev.events.iter().filter_map(|e| e["eventType"].as_str()).collect();
    assert_eq!(kinds, vec!["testRunStarted", "testRunFinished"]);
    let runs = ev.overview.as_ref().and_then(|o| o["applicationTestResult"].as_array()).expect("overview");
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0]["testRunId"], json!(baseline));
    assert_eq!(runs[0]["isBase"], json!(true));
    assert_eq!(runs[1]["testRunId"], json!(run_id));
    assert!(ev.errors.is_empty(), "{:?}", ev.errors);
    let outcome = result.outcome.expect("outcome");
    assert_eq!(outcome.apps.len(), 4);

    // The test now points at the ring.
    let test = le.client.test(le::TEST_PASS).await.expect("test");
    let hosts = &test.connection_resources.as_ref().expect("resources")["connector"]["hostList"];
    assert_eq!(hosts[1]["endpoint"], json!("avd-pilot-1.contoso.local"));
    assert_eq!(test.state, Some(TestState::Enabled));

    // The run's comment can be rewritten (image version and change id after promotion).
    le.client.comment_run(&run_id, "promoted to ring 1").await.expect("comment");
    let run = le.client.test_run(&run_id).await.expect("run");
    assert_eq!(run.comment.as_deref(), Some("promoted to ring 1"));
    assert_eq!(run.state, Some(RunState::Completed));
    le.assert_clean().await;
}

#[tokio::test]
async fn a_failing_app_fails_the_gate_and_names_the_regression() {
    let le = Le::start(common::fast()).await;
    let mut req = le.request(le::TEST_FAIL_APP);
    req.required_apps.push(le::FAILING_APP.into());
    let (result, _) = gate(&le, req).await;
    assert_eq!(result.verdict.kind, VerdictKind::Fail, "{}", reasons(&result));
    let why = reasons(&result);
    assert!(why.contains("Microsoft Teams failed"), "{why}");
    assert!(why.contains("1 of 4 app executions failed"), "{why}");
    assert!(why.contains("Microsoft Teams succeeded in the baseline run #1: a regression of this image"), "{why}");
    let failure =
        result.evidence.events.iter().find(|e| e["eventType"] == "applicationFailure").expect("failure event");
    assert_eq!(failure["properties"][0]["value"], json!("Microsoft Teams"));
    le.assert_clean().await;
}

#[tokio::test]
async fn a_launcher_event_makes_the_gate_inconclusive() {
    let le = Le::start(common::fast()).await;
    let (result, _) = gate(&le, le.request(le::TEST_LAUNCHER_OFFLINE)).await;
    assert_eq!(result.verdict.kind, VerdictKind::Inconclusive, "{}", reasons(&result));
    assert!(
        result.verdict.reasons[0]
            .contains("launcher or connection events (connectionInitializationTimeout, launcherOffline)"),
        "{}",
        reasons(&result)
    );
    assert!(!result.opens_gate());
    le.assert_clean().await;
}

#[tokio::test]
async fn a_login_failure_fails_the_gate() {
    let le = Le::start(common::fast()).await;
    let (result, _) = gate(&le, le.request(le::TEST_LOGIN_FAILURE)).await;
    assert_eq!(result.verdict.kind, VerdictKind::Fail, "{}", reasons(&result));
    assert!(result.verdict.reasons[0].contains("login failed (loginFailure)"), "{}", reasons(&result));
    le.assert_clean().await;
}

#[tokio::test]
async fn an_internal_error_is_inconclusive() {
    let le = Le::start(common::fast()).await;
    let (result, _) = gate(&le, le.request(le::TEST_INTERNAL_ERROR)).await;
    assert_eq!(result.verdict.kind, VerdictKind::Inconclusive, "{}", reasons(&result));
    assert!(reasons(&result).contains("the run ended 'internalError'"), "{}", reasons(&result));
    le.assert_clean().await;
}

#[tokio::test]
async fn a_run_past_the_timeout_is_inconclusive_and_stopped() {
    let le = Le::start(common::fast()).await;
    let mut req = le.request(le::TEST_NEVER_COMPLETES);
    req.timeout = Duration::from_millis(300);
    let (result, progress) = gate(&le, req).await;
    assert_eq!(result.verdict.kind, VerdictKind::Inconclusive, "{}", reasons(&result));
    assert!(result.timed_out);
    assert_eq!(result.verdict.reasons[0], "the run did not complete within the gate's timeout");
    assert!(progress.iter().any(|p| matches!(p, GateProgress::Stopping { .. })), "{progress:?}");
    let stats = le.stats().await;
    assert_eq!(Le::requests(&stats, "Configuration_StopTest"), 1);
    // Stopped: the run is cancelled and the test is free again.
    let run = le.client.test_run(result.run_id.as_deref().expect("run")).await.expect("run");
    assert_ne!(run.state, None);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let run = le.client.test_run(&run.id).await.expect("run");
    assert_eq!(run.state, Some(RunState::Completed));
    assert_eq!(run.result.map(|r| r.as_api()), Some("cancelled"));
    assert_eq!(le.client.test(le::TEST_NEVER_COMPLETES).await.expect("test").state, Some(TestState::Enabled));
    le.assert_clean().await;
}

#[tokio::test]
async fn cancelling_the_gate_stops_the_run() {
    let le = Le::start(common::fast()).await;
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        trigger.cancel();
    });
    let result = run_gate(&le.client, le.request(le::TEST_NEVER_COMPLETES), cancel, |_| {}).await;
    assert_eq!(result.verdict.kind, VerdictKind::Inconclusive);
    assert!(result.cancelled);
    assert!(result.verdict.reasons[0].starts_with("the gate was cancelled while run"), "{}", reasons(&result));
    assert_eq!(Le::requests(&le.stats().await, "Configuration_StopTest"), 1);
    le.assert_clean().await;
}

#[tokio::test]
async fn a_wrong_token_is_refused_with_what_to_do() {
    let le = Le::start(common::fast()).await;
    let client = le.client_with_token("not-the-token");
    let err = client.system_version().await.expect_err("refused");
    assert!(matches!(err, LeError::Unauthorized));
    assert_eq!(
        err.to_string(),
        "the appliance refused the access token: create a new one under Other > Access control > Public API"
    );
    let result = run_gate(&client, le.request(le::TEST_PASS), CancellationToken::new(), |_| {}).await;
    assert_eq!(result.verdict.kind, VerdictKind::Inconclusive);
    assert_eq!(result.verdict.reasons, vec![err.to_string()]);
    // Without any token at all.
    let r = le.http.get(format!("{}/v7/system/version", le.handle.base_url)).send().await.expect("answer");
    assert_eq!(r.status().as_u16(), 401);
    assert_eq!(r.text().await.expect("body"), "", "401 has no body");
    assert_eq!(le.stats().await.unauthorized, 3);
    le.assert_clean().await;
}

#[tokio::test]
async fn a_test_already_running_is_inconclusive_and_left_alone() {
    let le = Le::start(common::fast()).await;
    match le.client.start_test(le::TEST_RUNNING, "again").await {
        Err(LeError::Conflict { problem, .. }) => {
            assert_eq!(problem.status, Some(409));
            assert_eq!(problem.detail.as_deref(), Some("Test 'AVD smoke - running' is already running."));
        }
        other => panic!("expected a 409, got {other:?}"),
    }
    let (result, _) = gate(&le, le.request(le::TEST_RUNNING)).await;
    assert_eq!(result.verdict.kind, VerdictKind::Inconclusive);
    assert!(
        result.verdict.reasons[0].starts_with("the test 'AVD smoke - running' is already running on the appliance"),
        "{}",
        reasons(&result)
    );
    // The gate did not re-point someone else's run.
    let stats = le.stats().await;
    assert_eq!(Le::requests(&stats, "Configuration_UpdateConnectionResources"), 0);
    // Once stopped, the test can be started again.
    le.client.stop_test(le::TEST_RUNNING).await.expect("stop");
    tokio::time::sleep(Duration::from_millis(50)).await;
    let run = le.client.test_run(le::RUNNING_RUN).await.expect("run");
    assert_eq!(run.result.map(|r| r.as_api()), Some("cancelled"));
    le.client.start_test(le::TEST_RUNNING, "after the stop").await.expect("starts");
    le.assert_clean().await;
}

#[tokio::test]
async fn a_disabled_test_is_inconclusive_with_what_to_do() {
    let le = Le::start(common::fast()).await;
    let err = le.client.start_test(le::TEST_DISABLED, "x").await.expect_err("409");
    assert!(err.to_string().contains("409 Conflict): Conflict: Test 'AVD smoke - disabled' is disabled"), "{err}");
    let (result, _) = gate(&le, le.request(le::TEST_DISABLED)).await;
    assert_eq!(result.verdict.kind, VerdictKind::Inconclusive);
    assert!(result.verdict.reasons[0].contains("is disabled on the appliance: enable it"), "{}", reasons(&result));
    le.assert_clean().await;
}

#[tokio::test]
async fn server_errors_are_retried_for_reads_only_then_reported() {
    let le = Le::start(common::fast()).await;
    // One 500: the read is retried and succeeds.
    le.faults(json!({ "status": 500, "count": 1 })).await;
    le.client.system_version().await.expect("second attempt succeeds");
    assert_eq!(Le::requests(&le.stats().await, "Data_GetSystemVersions"), 2);

    // A lasting 500: every attempt, then the problem.
    le.faults(json!({ "status": 500 })).await;
    let err = le.client.system_version().await.expect_err("500");
    assert_eq!(err.status(), Some(500));
    assert_eq!(
        err.to_string(),
        "GET /v7/system/version: the appliance answered HTTP 500 Internal Server Error: An unexpected error \
         occurred on the appliance (injected by the simulator)."
    );
    assert_eq!(Le::requests(&le.stats().await, "Data_GetSystemVersions"), 2 + 3);

    // Writes are not retried: a start may have happened.
    le.faults(json!({ "status": 500, "operation": "Configuration_StartTest" })).await;
    let err = le.client.start_test(le::TEST_PASS, "x").await.expect_err("500");
    assert_eq!(err.status(), Some(500));
    assert_eq!(Le::requests(&le.stats().await, "Configuration_StartTest"), 1);
    let result = run_gate(&le.client, le.request(le::TEST_PASS), CancellationToken::new(), |_| {}).await;
    assert_eq!(result.verdict.kind, VerdictKind::Inconclusive);
    assert!(
        result.verdict.reasons[0].starts_with("PUT /v7/tests/{testId}/start: the appliance answered HTTP 500"),
        "{}",
        reasons(&result)
    );
    le.faults(json!({})).await;
    le.assert_clean().await;
}

#[tokio::test]
async fn garbage_json_names_the_call() {
    let le = Le::start(common::fast()).await;
    le.faults(json!({ "garbage": true, "operation": "Data_GetTestRun" })).await;
    let (result, _) = gate(&le, le.request(le::TEST_PASS)).await;
    assert_eq!(result.verdict.kind, VerdictKind::Inconclusive);
    let why = &result.verdict.reasons[0];
    assert!(
        why.starts_with(
            "the appliance's answer to GET /v7/test-runs/{testRunId} is not what the Login Enterprise API describes: \
             the body is not JSON"
        ),
        "{why}"
    );
    // The gate stopped the run it could no longer follow.
    assert_eq!(Le::requests(&le.stats().await, "Configuration_StopTest"), 1);
    le.faults(json!({ "garbage": true })).await;
    assert!(matches!(
        le.client.test(le::TEST_PASS).await,
        Err(LeError::BadResponse { call: "GET /v7/tests/{testId}", .. })
    ));
    le.faults(json!({})).await;
    le.assert_clean().await;
}

#[tokio::test]
async fn an_appliance_that_is_down_did_not_answer() {
    let le = Le::start(common::fast()).await;
    le.client.system_version().await.expect("up");
    le.faults(json!({ "down": true })).await;
    let err = le.client.system_version().await.expect_err("down");
    let host = le.handle.base_url.trim_start_matches("https://").trim_end_matches("/publicApi").to_string();
    assert!(matches!(&err, LeError::Unreachable { timed_out: false, .. }), "{err:?}");
    assert!(
        err.to_string().starts_with(&format!("the appliance at {host} did not answer (GET /v7/system/version): ")),
        "{err}"
    );
    let result = run_gate(&le.client, le.request(le::TEST_PASS), CancellationToken::new(), |_| {}).await;
    assert_eq!(result.verdict.kind, VerdictKind::Inconclusive);
    assert!(result.verdict.reasons[0].contains("did not answer"), "{}", reasons(&result));
    // Back up on the same address.
    le.faults(json!({})).await;
    le.client.system_version().await.expect("up again");
    le.assert_clean().await;
}

#[tokio::test]
async fn a_slow_appliance_times_out_per_request() {
    let le = Le::start(common::fast()).await;
    le.faults(json!({ "delayMs": 1500, "operation": "Data_GetSystemVersions" })).await;
    let client = le.client.clone().with_request_timeout(Duration::from_millis(200));
    let err = client.system_version().await.expect_err("timeout");
    assert!(matches!(&err, LeError::Unreachable { timed_out: true, .. }), "{err:?}");
    assert_eq!(err.code(), "Timeout");
    assert!(err.to_string().ends_with("no answer within 0.2 s"), "{err}");
    // Timeouts of reads are retried.
    assert_eq!(Le::requests(&le.stats().await, "Data_GetSystemVersions"), 3);
    le.faults(json!({})).await;
    le.assert_clean().await;
}

#[tokio::test]
async fn lists_are_walked_across_pages() {
    let le = Le::start(LeConfig { filler_tests: 9, ..common::fast() }).await;
    let client = le.client.clone().with_page_size(3);
    let tests = client.application_tests().await.expect("tests");
    // 8 seeded application tests and 9 fillers; the load test is not an application test.
    assert_eq!(tests.len(), 17);
    assert!(tests.iter().all(|t| t.is_application_test()));
    assert!(!tests.iter().any(|t| t.id == le::TEST_LOAD));
    let ids: std::collections::HashSet<&str> = tests.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids.len(), 17, "no test twice");
    assert_eq!(Le::requests(&le.stats().await, "Configuration_GetTests"), 6);

    // `filter` also matches descriptions (every filler mentions "AVD smoke"): the name is matched exactly here.
    let found = client.application_test_by_name(le::TEST_PASS_NAME).await.expect("lookup").expect("found");
    assert_eq!(found.id, le::TEST_PASS);
    assert!(client.application_test_by_name("AVD").await.expect("lookup").is_none());

    // Events page too, oldest first.
    let (result, _) = gate(&le, le.request(le::TEST_FAIL_APP)).await;
    let run_id = result.run_id.expect("run");
    let events = client.with_page_size(1).run_events(&run_id).await.expect("events");
    let kinds: Vec<EventKind> = events.iter().map(|e| e.event_type.clone()).collect();
    assert_eq!(kinds, vec![EventKind::TestRunStarted, EventKind::ApplicationFailure, EventKind::TestRunFinished]);
    le.assert_clean().await;
}

#[tokio::test]
async fn a_page_smaller_than_asked_is_still_walked_to_the_end() {
    // The appliance may cap `count`: the client follows the items it got, not the count it asked.
    let le = Le::start(LeConfig { max_page_size: 2, filler_tests: 3, ..common::fast() }).await;
    let tests = le.client.clone().with_page_size(5).application_tests().await.expect("tests");
    assert_eq!(tests.len(), 11);
    assert_eq!(Le::requests(&le.stats().await, "Configuration_GetTests"), 6);
    le.assert_clean().await;
}

#[tokio::test]
async fn unknown_tests_and_runs_are_not_found() {
    let le = Le::start(common::fast()).await;
    let missing = "0e000000-0000-4000-8000-000000000000";
    let err = le.client.test(missing).await.expect_err("404");
    assert!(matches!(err, LeError::NotFound { call: "GET /v7/tests/{testId}", .. }), "{err:?}");
    assert!(err.to_string().contains("was not found"), "{err}");
    let result = run_gate(&le.client, le.request(missing), CancellationToken::new(), |_| {}).await;
    assert_eq!(result.verdict.kind, VerdictKind::Inconclusive);
    assert!(result.verdict.reasons[0].contains("does not exist on the appliance"), "{}", reasons(&result));
    assert!(matches!(le.client.test_run(missing).await, Err(LeError::NotFound { .. })));

    // A baseline that is gone: judged alone, and said so.
    let mut req = le.request(le::TEST_PASS);
    req.baseline_run_id = Some(missing.into());
    let (result, _) = gate(&le, req).await;
    assert_eq!(result.verdict.kind, VerdictKind::Pass, "{}", reasons(&result));
    assert!(result.evidence.errors[0].contains("baseline run"), "{:?}", result.evidence.errors);
    le.assert_clean().await;
}

#[tokio::test]
async fn behaviour_can_change_between_runs() {
    let le = Le::start(common::fast()).await;
    let r = le
        .http
        .post(format!("{}/_le/behaviour", le.handle.control_url))
        .json(&json!({ "testId": le::TEST_PASS, "behaviour": Behaviour::FailApp { app: "Microsoft Word".into() } }))
        .send()
        .await
        .expect("behaviour");
    assert!(r.status().is_success());
    let (result, _) = gate(&le, le.request(le::TEST_PASS)).await;
    assert_eq!(result.verdict.kind, VerdictKind::Fail, "{}", reasons(&result));
    assert!(reasons(&result).contains("Microsoft Word failed"), "{}", reasons(&result));
    le.assert_clean().await;
}

#[tokio::test]
async fn the_sim_reports_requests_that_break_the_spec() {
    let le = Le::start(common::fast()).await;
    if !le.stats().await.validating {
        eprintln!("skipped: the Login Enterprise spec is not present, so the sim does not validate");
        return;
    }
    let url = format!("{}/v7/tests/{}/connection-resources", le.handle.base_url, le::TEST_PASS);
    let r = le
        .http
        .put(&url)
        .bearer_auth(&le.handle.token)
        .json(&json!({ "launcherGroups": "not a list", "surprise": 1 }))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 400);
    let body: Value = r.json().await.expect("problem JSON");
    assert_eq!(body["status"], json!(400));
    let r = le
        .http
        .get(format!("{}/v7/tests?pageSize=5", le.handle.base_url))
        .bearer_auth(&le.handle.token)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status().as_u16(), 400);
    let stats = le.stats().await;
    assert_eq!(stats.spec_violations.len(), 2, "{:#?}", stats.spec_violations);
    assert!(
        stats.spec_violations[0].contains("Configuration_UpdateConnectionResources"),
        "{:?}",
        stats.spec_violations
    );
    assert!(stats.spec_violations[1].contains("unknown query parameter 'pageSize'"), "{:?}", stats.spec_violations);
}

#[tokio::test]
async fn connection_resources_round_trip_through_the_spec() {
    let le = Le::start(common::fast()).await;
    let custom = ConnectionResourcesUpdate {
        connector: Some(ringmaster_loginenterprise::Connector::Custom {
            host: "rdweb.wvd.microsoft.com".into(),
            command_line: "msrdcw.exe --feed {host}".into(),
            resource: Some("Pilot desktop".into()),
        }),
        ..ConnectionResourcesUpdate::default()
    };
    le.client.set_connection_resources(le::TEST_PASS, &custom).await.expect("set");
    let test = le.client.test(le::TEST_PASS).await.expect("test");
    let resources = test.connection_resources.expect("resources");
    assert_eq!(resources["connector"]["type"], json!("Custom"));
    assert_eq!(resources["connector"]["commandLine"], json!("msrdcw.exe --feed {host}"));
    // Groups were left as they were.
    assert_eq!(resources["launcherGroups"][0]["id"], json!(le::LAUNCHER_GROUP));
    let err = le
        .client
        .set_connection_resources(
            le::TEST_PASS,
            &ConnectionResourcesUpdate {
                launcher_groups: Some(vec!["0a000000-0000-4000-8000-000000000000".into()]),
                ..ConnectionResourcesUpdate::default()
            },
        )
        .await
        .expect_err("unknown group");
    assert_eq!(err.status(), Some(400));
    assert!(
        err.to_string().contains("launcherGroups: Group '0a000000-0000-4000-8000-000000000000' does not exist."),
        "{err}"
    );
    le.assert_clean().await;
}

#[tokio::test]
async fn the_running_test_holds_a_run_that_stays_created() {
    let le = Le::start(LeConfig::default()).await;
    let run = le.client.test_run(le::RUNNING_RUN).await.expect("run");
    assert_eq!(run.state, Some(RunState::Created));
    assert_eq!(run.result, None, "an unfinished run carries no result");
    assert_eq!(le.client.test(le::TEST_RUNNING).await.expect("test").state, Some(TestState::Running));
    let overview = le.client.run_overview(le::RUNNING_RUN, &[]).await.expect("overview");
    assert_eq!(overview.run(le::RUNNING_RUN).map(|r| r.is_base), Some(true));
    le.assert_clean().await;
}
