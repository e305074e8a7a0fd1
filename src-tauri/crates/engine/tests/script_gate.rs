//! The script gate end to end against the simulated tenant: validation scripts run by managed run command on the
//! ring's session hosts that run the release, judged by exit code and expected output, kept as evidence, and the
//! run commands removed afterwards.

use std::sync::Arc;

use ringmaster_azure::{ops, ArmClient};
use ringmaster_engine::build::script_hash;
use ringmaster_engine::{
    Engine, GateVerdict, RolloutState, Script, ScriptCollection, ScriptGateConfig, ScriptParameter,
};
use ringmaster_sim::{Seed, SimHandle};
use ringmaster_store::Store;
use serde_json::Value;

mod common;

const TIME_SCALE: f64 = 2000.0;
/// What the Test ring's hosts mostly run in the demo seed; the Pilot pools (two of them) run 2026.1120.2.
const TEST_RELEASE: &str = "2026.1127.1";
const PILOT_RELEASE: &str = "2026.1120.2";

struct Fixture {
    sim: SimHandle,
    engine: Arc<Engine>,
    client: ArmClient,
    _dir: tempfile::TempDir,
}

async fn fixture() -> Fixture {
    let sim = common::start_sim(Seed::Demo, TIME_SCALE).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::new(Arc::new(Store::open(&dir.path().join("sg.db")).unwrap())));
    engine.connect(common::connection(&sim, TIME_SCALE, common::retry_policy()));
    engine.refresh(&|_| {}).await.unwrap();
    let client = common::connection(&sim, TIME_SCALE, common::retry_policy()).client;
    Fixture { sim, engine, client, _dir: dir }
}

fn script(name: &str, content: &str) -> Script {
    Script {
        name: name.into(),
        content: content.into(),
        parameters: vec![],
        continue_on_error: false,
        timeout_seconds: 600,
    }
}

fn save(engine: &Engine, name: &str, scripts: Vec<Script>) -> ScriptCollection {
    engine
        .save_collection(&ScriptCollection {
            id: String::new(),
            name: name.into(),
            description: "Validation scripts".into(),
            scripts,
            updated_at: String::new(),
        })
        .unwrap()
}

fn gate(c: &ScriptCollection, sample: u32, expected: &str) -> ScriptGateConfig {
    ScriptGateConfig { collection_id: c.id.clone(), sample, expected_output: expected.into() }
}

/// The hosts of `ring` on `version`, as the cache knows them: (name, VM id).
fn hosts_on(engine: &Engine, ring: &str, version: &str) -> Vec<(String, String)> {
    let store = engine.store();
    let mut out = Vec::new();
    for p in store.pools().unwrap().into_iter().filter(|p| p.ring == ring) {
        for l in store.hosts_of_pool(&p.id).unwrap() {
            if l.host.image_version == version {
                out.push((l.host.name, l.host.vm_id.unwrap()));
            }
        }
    }
    out
}

fn sampled(evidence: &Value) -> Vec<Value> {
    evidence["hosts"].as_array().cloned().unwrap_or_default()
}

/// No run command is left on any sampled host: listing them and reading each by name both say so.
async fn assert_no_run_commands(f: &Fixture, evidence: &Value) {
    for h in sampled(evidence) {
        let vm = h["vmId"].as_str().unwrap();
        assert_eq!(ops::list_run_commands(&f.client, vm).await.unwrap(), Vec::<Value>::new(), "left on {vm}");
        for s in h["scripts"].as_array().unwrap() {
            let name = s["runCommand"].as_str().unwrap();
            assert!(ops::get_run_command(&f.client, vm, name).await.unwrap().is_none(), "{name} still on {vm}");
        }
    }
}

async fn assert_no_spec_violations(sim: &SimHandle) {
    let stats = common::stats(sim).await;
    assert!(stats["specViolations"].as_array().unwrap().is_empty(), "{stats}");
    assert_eq!(stats["masterViolations"], serde_json::json!([]), "the golden master was touched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_passing_collection_passes_on_every_host_with_evidence_and_leaves_no_run_commands() {
    let f = fixture().await;
    let mut apps = script("Apps present", "Write-Output \"Checking $Ring\"\nWrite-Output 'VALIDATION OK'");
    apps.parameters = vec![ScriptParameter { name: "Ring".into(), value: "test".into() }];
    let services = script("Services", "Write-Output 'FSLogix running'; Write-Output \"VALIDATION OK\"\nexit 0");
    let c = save(&f.engine, "Session host checks", vec![apps.clone(), services.clone()]);
    let on_release = hosts_on(&f.engine, "test", TEST_RELEASE);
    assert!(!on_release.is_empty());

    let (verdict, reasons, evidence) =
        f.engine.run_script_gate_for_test(TEST_RELEASE, "test", &gate(&c, 0, "VALIDATION OK"), "0f3a9c21-pass").await;
    assert_eq!(verdict, GateVerdict::Pass, "{reasons:?}");
    assert!(
        reasons[0].contains(&format!("passed on {} host(s) running {TEST_RELEASE}", on_release.len())),
        "{reasons:?}"
    );
    assert!(reasons.last().unwrap().contains("Ran on all"), "{reasons:?}");

    assert_eq!(evidence["collection"], "Session host checks");
    assert_eq!(evidence["scripts"][0]["sha256"], script_hash(&apps));
    assert_eq!(evidence["scripts"][1]["sha256"], script_hash(&services));
    assert_eq!(evidence["hostsOnRelease"], on_release.len());
    let hosts = sampled(&evidence);
    assert_eq!(hosts.len(), on_release.len(), "sample 0: every host on the release");
    let mut names: Vec<&str> = hosts.iter().map(|h| h["name"].as_str().unwrap()).collect();
    names.sort();
    let mut expected: Vec<&str> = on_release.iter().map(|(n, _)| n.as_str()).collect();
    expected.sort();
    assert_eq!(names, expected);
    for h in &hosts {
        assert!(h["why"].as_str().unwrap().contains("every host"), "{h}");
        let scripts = h["scripts"].as_array().unwrap();
        assert_eq!(scripts.len(), 2);
        for (i, s) in scripts.iter().enumerate() {
            assert_eq!(s["result"], "pass", "{s}");
            assert_eq!(s["state"], "succeeded");
            assert_eq!(s["exitCode"], 0);
            assert_eq!(s["runCommand"], format!("ringmaster-gate-0f3a9c21-{}", i + 1));
            assert_eq!(s["runCommandRemoved"], true);
            assert!(s["output"].as_str().unwrap().contains("VALIDATION OK"), "{s}");
            assert!(s["durationMs"].as_u64().is_some());
        }
        assert!(scripts[0]["output"].as_str().unwrap().contains("Checking test"), "parameters reach the script");
    }
    assert_no_run_commands(&f, &evidence).await;
    assert_no_spec_violations(&f.sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_scripts_and_missing_text_fail_the_gate_naming_host_script_and_exit_code() {
    let f = fixture().await;
    // Two Pilot pools run the release: a sample of 3 takes from both.
    let failing = save(
        &f.engine,
        "Failing checks",
        vec![
            script("Teams present", "Write-Output 'looking for Teams'\nWrite-Error 'Teams is not installed'\nexit 3"),
            script("Never reached", "Write-Output 'VALIDATION OK'"),
        ],
    );
    let (verdict, reasons, evidence) = f
        .engine
        .run_script_gate_for_test(PILOT_RELEASE, "pilot", &gate(&failing, 3, "VALIDATION OK"), "7d1e0b44-fail")
        .await;
    assert_eq!(verdict, GateVerdict::Fail, "{reasons:?}");
    assert!(reasons[0].starts_with("3 script run(s) failed on 3 of 3 host(s)"), "{reasons:?}");
    let hosts = sampled(&evidence);
    assert_eq!(hosts.len(), 3);
    let pools: std::collections::BTreeSet<&str> = hosts.iter().map(|h| h["pool"].as_str().unwrap()).collect();
    assert_eq!(pools.len(), 2, "the sample is spread across the ring's pools: {pools:?}");
    for h in &hosts {
        let name = h["name"].as_str().unwrap();
        assert!(h["why"].as_str().unwrap().contains("sample of 3"), "{h}");
        assert!(
            reasons.iter().any(|r| r.contains(name)
                && r.contains("'Teams present' exited with code 3")
                && r.contains("Teams is not installed")),
            "{name} not named: {reasons:?}"
        );
        let s = &h["scripts"];
        assert_eq!((s[0]["exitCode"].as_i64(), s[0]["state"].as_str()), (Some(3), Some("failed")));
        assert!(s[0]["error"].as_str().unwrap().contains("Teams is not installed"));
        assert_eq!(s[1]["state"], "skipped", "a host stops at its first failing script");
    }
    assert!(reasons.iter().any(|r| r.contains("3 later script run(s) skipped")), "{reasons:?}");
    assert_no_run_commands(&f, &evidence).await;

    // Exit 0 everywhere, but the expected text is missing.
    let quiet = save(&f.engine, "Quiet checks", vec![script("Profile", "Write-Output 'profile looks fine'")]);
    let (verdict, reasons, evidence) = f
        .engine
        .run_script_gate_for_test(PILOT_RELEASE, "pilot", &gate(&quiet, 1, "VALIDATION OK"), "9b2c4d66-text")
        .await;
    assert_eq!(verdict, GateVerdict::Fail, "{reasons:?}");
    assert!(
        reasons[1].contains("'Profile' exited with code 0 but its output does not contain 'VALIDATION OK'"),
        "{reasons:?}"
    );
    assert!(reasons[1].contains("profile looks fine"), "{reasons:?}");
    assert_eq!(sampled(&evidence).len(), 1);
    assert!(reasons.last().unwrap().contains("sample of 1 of the"), "{reasons:?}");
    assert_no_run_commands(&f, &evidence).await;
    assert_no_spec_violations(&f.sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_that_times_out_no_hosts_or_a_missing_collection_is_inconclusive() {
    let f = fixture().await;
    let mut hangs = script("Hangs", "Write-Output 'starting'\n# sim:hang");
    hangs.timeout_seconds = 30;
    let c = save(&f.engine, "Hanging checks", vec![hangs]);
    let (verdict, reasons, evidence) =
        f.engine.run_script_gate_for_test(TEST_RELEASE, "test", &gate(&c, 1, ""), "c0ffee00-hang").await;
    assert_eq!(verdict, GateVerdict::Inconclusive, "{reasons:?}");
    assert!(reasons[0].contains("none failed"), "{reasons:?}");
    assert!(reasons[1].contains("'Hangs' timed out after its timeout of 30 s"), "{reasons:?}");
    assert_eq!(sampled(&evidence)[0]["scripts"][0]["state"], "timedOut");
    assert_no_run_commands(&f, &evidence).await;

    // The oldest release runs nowhere in the Test ring.
    let ok = save(&f.engine, "OK", vec![script("Ok", "Write-Output 'VALIDATION OK'")]);
    let (verdict, reasons, _) =
        f.engine.run_script_gate_for_test("2026.1022.1", "test", &gate(&ok, 0, ""), "c0ffee01-none").await;
    assert_eq!(verdict, GateVerdict::Inconclusive);
    assert!(reasons[0].contains("No session host of the Test ring runs 2026.1022.1"), "{reasons:?}");

    let missing = ScriptGateConfig { collection_id: "gone".into(), sample: 0, expected_output: String::new() };
    let (verdict, reasons, _) =
        f.engine.run_script_gate_for_test(TEST_RELEASE, "test", &missing, "c0ffee02-gone").await;
    assert_eq!(verdict, GateVerdict::Inconclusive);
    assert!(reasons[0].contains("no longer exists"), "{reasons:?}");
    assert!(f.engine.check_script_gate(&missing).is_err());
    assert!(f.engine.check_script_gate(&gate(&ok, 0, "a\nb")).unwrap_err().to_string().contains("one line"));
    assert_no_spec_violations(&f.sim).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_runs_on_the_session_hosts_a_rollout_created() {
    let f = fixture().await;
    let pool = common::test_pool(&f.sim);
    let policy = common::quick_policy();
    // The Test pool onto the Pilot release: its hosts are replaced by new VMs.
    let view = f.engine.start_rollout(&pool, PILOT_RELEASE, &policy).await.unwrap();
    let started = std::time::Instant::now();
    loop {
        let v = f.engine.rollout(&view.id).unwrap();
        if v.state != RolloutState::Running {
            assert_eq!(v.state, RolloutState::Completed, "{:?}", v.reason);
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(120), "rollout still running");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let c = save(&f.engine, "OK", vec![script("Ok", "Write-Output 'VALIDATION OK'")]);
    let (verdict, reasons, evidence) =
        f.engine.run_script_gate_for_test(PILOT_RELEASE, "test", &gate(&c, 0, "VALIDATION OK"), "abcdabcd-roll").await;
    assert_eq!(verdict, GateVerdict::Pass, "{reasons:?}");
    assert_eq!(sampled(&evidence).len(), 4, "every host of the pool now runs the release");
    assert_no_run_commands(&f, &evidence).await;
    assert_no_spec_violations(&f.sim).await;
}
