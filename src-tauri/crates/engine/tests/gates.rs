//! Gates end to end against the simulated tenant and its Login Enterprise appliance: the health gate judges a
//! fresh inventory, the LE gate runs an application test against the ring's hosts, and checklist item 5 follows.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ringmaster_engine::{
    CapacityLimit, ChecklistState, DrainMode, Engine, GateKind, GateRun, GateVerdict, LeGateConfig, RingGates,
    RolloutPolicy, RolloutState,
};
use ringmaster_sim::Seed;
use ringmaster_store::Store;

mod common;

const TIME_SCALE: f64 = 2000.0;

async fn wait_gates(engine: &Engine, version: &str, n: usize) -> Vec<GateRun> {
    let started = Instant::now();
    loop {
        let runs = engine.gate_runs(version).unwrap();
        let newest: Vec<GateRun> = runs.into_iter().take(n).collect();
        if newest.len() == n && newest.iter().all(|g| !g.running) {
            return newest;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "gates still running: {newest:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn verdict_of(runs: &[GateRun], kind: GateKind) -> (GateVerdict, Vec<String>) {
    let g = runs.iter().find(|g| g.gate == kind).unwrap();
    (g.verdict.unwrap(), g.reasons.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_test_rings_gates_judge_a_release_and_feed_checklist_item_5() {
    let sim = common::start_sim(Seed::Demo, TIME_SCALE).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::new(Arc::new(Store::open(&dir.path().join("g.db")).unwrap())));
    engine.connect(common::connection(&sim, TIME_SCALE, common::retry_policy()));
    engine.refresh(&|_| {}).await.unwrap();
    // The Pilot release, which no Test host runs yet.
    let version = "2026.1120.2";
    let item5 = |engine: &Engine| engine.release(version).unwrap().checklist[4].clone();
    assert_eq!(item5(&engine).state, ChecklistState::MissingEvidence);

    // The Test hosts run another release: health FAIL; the appliance's smoke test PASS.
    let gates = engine.ring_gates("test").unwrap();
    assert_eq!(gates.kinds(), vec![GateKind::Health, GateKind::LoginEnterprise]);
    engine.run_gates(version, "test").unwrap();
    let runs = wait_gates(&engine, version, 2).await;
    let (health, why) = verdict_of(&runs, GateKind::Health);
    assert_eq!(health, GateVerdict::Fail, "{why:?}");
    assert!(why.iter().any(|r| r.contains("runs 2026.1127.1, not 2026.1120.2")), "{why:?}");
    let (le, why) = verdict_of(&runs, GateKind::LoginEnterprise);
    assert_eq!(le, GateVerdict::Pass, "{why:?}");
    assert_eq!(item5(&engine).state, ChecklistState::NotMet);

    // Roll the Test pool onto the release; the earlier gate runs are now stale, new ones pass.
    let pool = format!(
        "/subscriptions/{}/resourceGroups/rg-avd-test/providers/Microsoft.DesktopVirtualization/hostPools/hp-test-weu",
        sim.ready.subscriptions[1]
    );
    let policy = RolloutPolicy {
        capacity: CapacityLimit::Hosts { hosts: 1 },
        drain_mode: DrainMode::ForceLogoff,
        logoff_delay_minutes: 0,
        message: "Updating".into(),
        max_failures: 1,
        canary: true,
    };
    let view = engine.start_rollout(&pool, version, &policy).await.unwrap();
    let started = Instant::now();
    loop {
        let v = engine.rollout(&view.id).unwrap();
        if v.state != RolloutState::Running {
            assert_eq!(v.state, RolloutState::Completed, "{:?}", v.reason);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(item5(&engine).state, ChecklistState::MissingEvidence, "gates older than the rollout do not count");
    engine.run_gates(version, "test").unwrap();
    let runs = wait_gates(&engine, version, 2).await;
    assert_eq!(verdict_of(&runs, GateKind::Health).0, GateVerdict::Pass);
    assert_eq!(verdict_of(&runs, GateKind::LoginEnterprise).0, GateVerdict::Pass);
    let item = item5(&engine);
    assert_eq!(item.state, ChecklistState::Met, "{:?}", item.evidence);

    // A test whose Teams fails closes the gate again, with the reason.
    engine
        .set_ring_gates(&RingGates {
            ring: "test".into(),
            health: false,
            login_enterprise: Some(LeGateConfig {
                test_name: "AVD smoke - Teams fails".into(),
                required_apps: vec![],
                timeout_minutes: 30,
            }),
        })
        .unwrap();
    engine.run_gates(version, "test").unwrap();
    let runs = wait_gates(&engine, version, 1).await;
    let (le, why) = verdict_of(&runs, GateKind::LoginEnterprise);
    assert_eq!(le, GateVerdict::Fail, "{why:?}");
    assert!(why.iter().any(|r| r.contains("Teams")), "{why:?}");
    assert_eq!(item5(&engine).state, ChecklistState::NotMet);

    let actions: Vec<String> = engine.audit_log(None, 100).unwrap().entries.into_iter().map(|e| e.action).collect();
    assert!(actions.iter().filter(|a| *a == "gate.finish").count() >= 5, "{actions:?}");
    assert!(actions.contains(&"gates.configure".to_string()));
    assert!(engine.verify_audit_log().unwrap().intact);
    let stats = common::stats(&sim).await;
    assert!(stats["specViolations"].as_array().unwrap().is_empty(), "{stats}");
    let le_stats = sim.appliance.as_ref().unwrap().stats();
    assert!(le_stats.spec_violations.is_empty(), "{:?}", le_stats.spec_violations);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gate_configuration_is_validated() {
    let sim = common::start_sim(Seed::Demo, TIME_SCALE).await;
    let engine = Arc::new(Engine::new(Arc::new(Store::open_in_memory().unwrap())));
    engine.connect(common::connection(&sim, TIME_SCALE, common::retry_policy()));
    let bad = RingGates {
        ring: "pilot".into(),
        health: true,
        login_enterprise: Some(LeGateConfig { test_name: " ".into(), required_apps: vec![], timeout_minutes: 30 }),
    };
    assert!(engine.set_ring_gates(&bad).unwrap_err().to_string().contains("test name"));
    let slow = RingGates {
        login_enterprise: Some(LeGateConfig { test_name: "x".into(), required_apps: vec![], timeout_minutes: 0 }),
        ..bad
    };
    assert!(engine.set_ring_gates(&slow).unwrap_err().to_string().contains("1 to 240"));
    let none = RingGates { ring: "pilot".into(), health: false, login_enterprise: None };
    engine.set_ring_gates(&none).unwrap();
    assert!(engine.run_gates("2026.1120.2", "pilot").unwrap_err().to_string().contains("no gates"));
}
