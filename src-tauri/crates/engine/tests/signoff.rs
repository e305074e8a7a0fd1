//! Sign-off and promotion end to end against the simulated tenant: a release leaves the Test ring only with its
//! rollout completed, its gates passed since and a current approval written to the image version's tags; new
//! evidence makes an approval stale; a failing gate rolls the ring back on its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ringmaster_engine::{Engine, GateRun, RingGates, RolloutState, SignOffDecision};
use ringmaster_sim::Seed;
use ringmaster_store::Store;

mod common;

const TIME_SCALE: f64 = 2000.0;
/// The Test release: every Test host runs it, Pilot does not, and it is not published to `latest`.
const NEW: &str = "2026.1127.1";
/// The Pilot release: no Test host runs it, and it is not published to `latest` either.
const PILOT: &str = "2026.1120.2";

fn pool(sim: &ringmaster_sim::SimHandle, sub: usize, rg: &str, name: &str) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.DesktopVirtualization/hostPools/{name}",
        sim.ready.subscriptions[sub]
    )
}

async fn wait_rollout(engine: &Engine, id: &str) {
    let started = Instant::now();
    loop {
        let v = engine.rollout(id).unwrap();
        if v.state != RolloutState::Running {
            assert_eq!(v.state, RolloutState::Completed, "{:?}", v.reason);
            return;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "rollout still running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_gates(engine: &Engine, version: &str, n: usize) -> Vec<GateRun> {
    let started = Instant::now();
    loop {
        let newest: Vec<GateRun> = engine.gate_runs(version).unwrap().into_iter().take(n).collect();
        if newest.len() == n && newest.iter().all(|g| !g.running) {
            return newest;
        }
        assert!(started.elapsed() < Duration::from_secs(90), "gates still running: {newest:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_leaves_test_only_with_gates_passed_and_a_current_approval() {
    let sim = common::start_sim(Seed::Demo, TIME_SCALE).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::new(Arc::new(Store::open(&dir.path().join("s.db")).unwrap())));
    engine.connect(common::user_connection(&sim, TIME_SCALE).await);
    engine.refresh(&|_| {}).await.unwrap();
    let pilot_pool = pool(&sim, 1, "rg-avd-pilot", "hp-pilot-weu");

    // Nothing done yet: every requirement is listed, and Pilot refuses the release.
    let check = engine.promotion_check(NEW, "test").unwrap();
    assert!(!check.ready);
    assert_eq!(check.next_ring.as_deref(), Some("pilot"));
    let missing = check.missing.join("\n");
    assert!(check.met.iter().any(|m| m == "Every Test pool runs 2026.1127.1"), "{:?}", check.met);
    for expected in ["Health gate has not run", "Login Enterprise gate has not run", "Approvals: 0 of 1 current"] {
        assert!(missing.contains(expected), "{expected} not in:\n{missing}");
    }
    let plan = engine.plan_rollout(&pilot_pool, NEW, &common::quick_policy()).unwrap();
    let blocker = plan.blockers.iter().find(|b| b.field == "promotion").expect("Pilot is closed to it");
    assert!(blocker.message.contains("has not been promoted out of the Test ring"), "{}", blocker.message);
    assert!(engine.promote(NEW, "test").await.unwrap_err().to_string().contains("cannot leave the Test ring yet"));

    // Let the Test gates pass: only the approval is missing.
    engine.run_gates(NEW, "test").unwrap();
    wait_gates(&engine, NEW, 2).await;
    let check = engine.promotion_check(NEW, "test").unwrap();
    assert_eq!(check.missing, vec!["Approvals: 0 of 1 current".to_string()], "{:?}", check.met);

    // A rejection needs a reason; an approval on stale evidence is refused.
    let err = engine.sign_off(NEW, "test", SignOffDecision::Reject, " ", &check.evidence_sha256).await;
    assert!(err.unwrap_err().to_string().contains("needs a comment"));
    let err = engine.sign_off(NEW, "test", SignOffDecision::Approve, "", &"0".repeat(64)).await;
    assert!(err.unwrap_err().to_string().contains("evidence changed"));

    // Approve: written to the version's tags in Azure, read back, and the ring opens.
    let signed = engine
        .sign_off(NEW, "test", SignOffDecision::Approve, "Smoke and apps fine", &check.evidence_sha256)
        .await
        .unwrap();
    assert!(signed.ready, "{:?}", signed.missing);
    let a = &signed.approvals[0];
    assert_eq!((a.approver_name.as_str(), a.current), ("Alex Wilber", true));
    assert_eq!(a.approver_tenant_id, sim.ready.tenant_id);
    assert_eq!(a.evidence_sha256, check.evidence_sha256);
    assert!(engine
        .plan_rollout(&pilot_pool, NEW, &common::quick_policy())
        .unwrap()
        .blockers
        .iter()
        .all(|b| b.field != "promotion"));

    // New evidence (another gate run) makes the approval stale, and the ring closes again.
    engine.run_gates(NEW, "test").unwrap();
    wait_gates(&engine, NEW, 2).await;
    let stale = engine.promotion_check(NEW, "test").unwrap();
    assert!(!stale.ready);
    assert!(!stale.approvals[0].current);
    assert!(
        stale.missing.iter().any(|m| m.contains("Alex Wilber's approval") && m.contains("no longer counts")),
        "{:?}",
        stale.missing
    );

    // Only members of the ring's approver group may sign off.
    let mut gates = engine.ring_gates("test").unwrap();
    gates.approver_group = Some("11111111-2222-3333-4444-555555555555".into());
    engine.set_ring_gates(&gates).unwrap();
    let err = engine.sign_off(NEW, "test", SignOffDecision::Approve, "", &stale.evidence_sha256).await.unwrap_err();
    assert!(err.to_string().contains("only from members of group"), "{err}");
    gates.approver_group = Some(ringmaster_sim::APPROVERS_GROUP_ID.into());
    engine.set_ring_gates(&gates).unwrap();
    let again =
        engine.sign_off(NEW, "test", SignOffDecision::Approve, "Re-checked", &stale.evidence_sha256).await.unwrap();
    assert!(again.ready, "{:?}", again.missing);
    assert_eq!(again.approvals.len(), 1, "one approval per person per ring: the newest replaces the old");

    // Promote: refused while a Pilot region still replicates, then rollouts start in every Pilot pool.
    let replicated = |engine: &Engine| engine.release(NEW).unwrap().regions.iter().all(|r| r.state == "Completed");
    if !replicated(&engine) {
        let err = engine.promote(NEW, "test").await.unwrap_err().to_string();
        assert!(err.contains("cannot enter the Pilot ring yet") && err.contains("not replicated"), "{err}");
        assert!(engine.rollouts().unwrap().iter().all(|r| r.ring != "Pilot"), "nothing started");
    }
    let started = Instant::now();
    while !replicated(&engine) {
        assert!(started.elapsed() < Duration::from_secs(30), "replication never finished");
        tokio::time::sleep(Duration::from_millis(200)).await;
        engine.refresh_release(NEW).await.unwrap();
    }
    let started = engine.promote(NEW, "test").await.unwrap();
    assert_eq!(started.len(), 2, "hp-pilot-weu and hp-pilot-neu");
    let actions: Vec<String> = engine.audit_log(None, 200).unwrap().entries.into_iter().map(|e| e.action).collect();
    for a in ["signoff.approve", "release.promote", "gates.configure"] {
        assert!(actions.iter().any(|x| x == a), "{a} not audited: {actions:?}");
    }
    assert!(engine.verify_audit_log().unwrap().intact);

    // An application identity cannot sign off.
    let app = Arc::new(Engine::new(Arc::new(Store::open_in_memory().unwrap())));
    app.connect(common::connection(&sim, TIME_SCALE, common::retry_policy()));
    app.refresh(&|_| {}).await.unwrap();
    let sha = app.promotion_check(NEW, "test").unwrap().evidence_sha256;
    let err = app.sign_off(NEW, "test", SignOffDecision::Approve, "", &sha).await.unwrap_err();
    assert!(err.to_string().contains("not a person"), "{err}");
    // ... but its own fresh inventory shows the approval: it lives in Azure (the version's tags), not in a cache.
    assert_eq!(app.promotion_check(NEW, "test").unwrap().approvals[0].approver_name, "Alex Wilber");

    let stats = common::stats(&sim).await;
    assert!(stats["specViolations"].as_array().unwrap().is_empty(), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_gate_rolls_the_ring_back_without_waiting_for_a_person() {
    let sim = common::start_sim(Seed::Demo, TIME_SCALE).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Arc::new(Engine::new(Arc::new(Store::open(&dir.path().join("r.db")).unwrap())));
    engine.connect(common::connection(&sim, TIME_SCALE, common::retry_policy()));
    engine.refresh(&|_| {}).await.unwrap();
    let test_pool = pool(&sim, 1, "rg-avd-test", "hp-test-weu");

    let view = engine.start_rollout(&test_pool, PILOT, &common::quick_policy()).await.unwrap();
    wait_rollout(&engine, &view.id).await;
    engine.refresh(&|_| {}).await.unwrap();
    engine.set_ring_gates(&RingGates { auto_rollback: true, ..common::teams_fails_gates() }).unwrap();
    engine.run_gates(PILOT, "test").unwrap();
    wait_gates(&engine, PILOT, 1).await;

    // The rollback starts on its own, to the release the pool ran before, and people are told.
    let started = Instant::now();
    let rollback = loop {
        if let Some(r) = engine.rollouts().unwrap().into_iter().find(|r| r.kind == "rollback") {
            break r;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no automatic rollback");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(rollback.target_version, NEW, "back to what the pool ran before");
    wait_rollout(&engine, &rollback.id).await;
    let notice = engine.notices().into_iter().next().expect("a notice");
    assert_eq!(notice.level, "danger");
    assert!(notice.title.contains("rolled back automatically"), "{notice:?}");
    assert!(
        notice.message.contains("Login Enterprise gate failed") && notice.message.contains("hp-test-weu"),
        "{notice:?}"
    );
    let log = engine.audit_log(None, 200).unwrap().entries;
    let auto = log.iter().find(|e| e.action == "rollout.rollback.automatic").expect("audited");
    assert_eq!(auto.actor, ringmaster_engine::audit::AUTOMATIC);
    assert!(auto.detail.contains("Teams") || auto.detail.contains("Login Enterprise"), "{}", auto.detail);
    assert!(log.iter().any(|e| e.action == "gate.autoRollback"));

    // The release is now out of Test, and its promotion says so; it is never the pool's known-good again.
    engine.refresh(&|_| {}).await.unwrap();
    assert_ne!(engine.last_known_good(&test_pool).unwrap().as_deref(), Some(PILOT));
    let check = engine.promotion_check(PILOT, "test").unwrap();
    assert!(check.missing.iter().any(|m| m.contains("was rolled back")), "{:?}", check.missing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baking_ring_is_checked_by_the_app_and_promotion_waits_for_the_bake() {
    let sim = common::start_sim(Seed::Demo, TIME_SCALE).await;
    let engine = Arc::new(Engine::new(Arc::new(Store::open_in_memory().unwrap())));
    engine.connect(common::connection(&sim, TIME_SCALE, common::retry_policy()));
    engine.refresh(&|_| {}).await.unwrap();
    let test_pool = pool(&sim, 1, "rg-avd-test", "hp-test-weu");
    let view = engine.start_rollout(&test_pool, PILOT, &common::quick_policy()).await.unwrap();
    wait_rollout(&engine, &view.id).await;
    engine.refresh(&|_| {}).await.unwrap();
    engine
        .set_ring_gates(&RingGates { ring: "test".into(), health: true, bake_hours: 2, ..Default::default() })
        .unwrap();

    // The app runs the health gate on its own while the ring bakes, once at a time.
    let checked = engine.bake_tick().unwrap();
    assert_eq!(checked, vec![(PILOT.to_string(), "test".to_string())]);
    assert!(engine.bake_tick().unwrap().is_empty(), "not while the check still runs");
    let runs = wait_gates(&engine, PILOT, 1).await;
    assert_eq!(runs[0].started_by, ringmaster_engine::audit::AUTOMATIC);
    assert_eq!(runs[0].verdict, Some(ringmaster_engine::GateVerdict::Pass), "{:?}", runs[0].reasons);

    // Gates pass, but the bake has most of 2 hours to go: promotion says how long.
    let check = engine.promotion_check(PILOT, "test").unwrap();
    assert!(check.gates_passed && !check.baked, "{check:?}");
    assert!(
        check.missing.iter().any(|m| m.starts_with("Bake time: 1 h 5") && m.contains("left")),
        "{:?}",
        check.missing
    );
    assert!(check.bake_ends_at.is_some());
}
