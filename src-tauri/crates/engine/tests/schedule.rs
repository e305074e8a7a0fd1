//! Rollouts scheduled into a maintenance window: checked when scheduled, started by the app when the window opens,
//! cancellable until then, and marked missed (not started late into the working day) when the app was closed.

use std::sync::Arc;
use std::time::Duration;

use ringmaster_engine::{CapacityLimit, Engine, RolloutPolicy};
use ringmaster_sim::Seed;
use ringmaster_store::{ScheduledRolloutRecord, Store};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

mod common;

fn at(from_now: time::Duration) -> String {
    (OffsetDateTime::now_utc() + from_now).format(&Rfc3339).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_rollout_starts_when_its_window_opens_and_not_before() {
    let sim = common::start_sim(Seed::Demo, 2000.0).await;
    let store = Arc::new(Store::open_in_memory().unwrap());
    let engine = Arc::new(Engine::new(store.clone()));
    engine.connect(common::connection(&sim, 2000.0, common::retry_policy()));
    engine.refresh(&|_| {}).await.unwrap();
    let pool = common::test_pool(&sim);
    let policy = common::quick_policy();

    // Checked when scheduled: a window in the past, or a policy that cannot work, is refused with the reason.
    let err = engine.schedule_rollout(&pool, "2026.1120.2", &policy, &at(time::Duration::minutes(-5))).unwrap_err();
    assert!(err.to_string().contains("in the future"), "{err}");
    let none_out = RolloutPolicy { capacity: CapacityLimit::Hosts { hosts: 0 }, ..policy.clone() };
    let err = engine.schedule_rollout(&pool, "2026.1120.2", &none_out, &at(time::Duration::hours(1))).unwrap_err();
    assert!(err.to_string().contains("policy needs fixing"), "{err}");

    // One in two seconds, one in an hour (then cancelled).
    let soon = engine.schedule_rollout(&pool, "2026.1120.2", &policy, &at(time::Duration::seconds(2))).unwrap();
    assert_eq!(soon.state, "scheduled");
    assert!(soon.blocked_now.is_empty(), "{:?}", soon.blocked_now);
    let later = engine.schedule_rollout(&pool, "2026.1120.2", &policy, &at(time::Duration::hours(1))).unwrap();
    let listed = engine.cancel_scheduled_rollout(&later.id).unwrap();
    assert_eq!(listed.iter().find(|s| s.id == later.id).unwrap().state, "cancelled");
    assert!(engine.cancel_scheduled_rollout(&later.id).unwrap_err().to_string().contains("already cancelled"));

    assert_eq!(engine.schedule_tick().await.unwrap(), 0, "the window has not opened");
    assert!(engine.rollouts().unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(engine.schedule_tick().await.unwrap(), 1);
    let started = engine.scheduled_rollouts().unwrap().into_iter().find(|s| s.id == soon.id).unwrap();
    assert_eq!(started.state, "started");
    let rollout = engine.rollouts().unwrap().into_iter().next().expect("the rollout");
    assert_eq!(started.rollout_id.as_deref(), Some(rollout.id.as_str()));
    assert_eq!(rollout.target_version, "2026.1120.2");
    assert_eq!(engine.schedule_tick().await.unwrap(), 0, "started once");

    // A window the app missed by more than 12 hours is not started late: it is marked missed and people are told.
    store
        .save_scheduled_rollout(&ScheduledRolloutRecord {
            id: "missed-1".into(),
            host_pool_id: pool.clone(),
            pool_name: "hp-test-weu".into(),
            version: "2026.1127.1".into(),
            policy: serde_json::to_string(&policy).unwrap(),
            start_at: at(time::Duration::hours(-13)),
            created_by: "someone".into(),
            created_at: at(time::Duration::hours(-20)),
            state: "scheduled".into(),
            rollout_id: None,
            reason: None,
        })
        .unwrap();
    engine.schedule_tick().await.unwrap();
    let missed = engine.scheduled_rollouts().unwrap().into_iter().find(|s| s.id == "missed-1").unwrap();
    assert_eq!(missed.state, "missed");
    assert!(missed.reason.unwrap().contains("not running"));
    assert!(engine.notices().iter().any(|n| n.title.contains("was missed")));

    let actions: Vec<String> = engine.audit_log(None, 100).unwrap().entries.into_iter().map(|e| e.action).collect();
    for a in ["rollout.schedule", "rollout.unschedule", "rollout.start", "rollout.scheduleMissed"] {
        assert!(actions.iter().any(|x| x == a), "{a} missing from {actions:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_rollout_is_scheduled_for_every_pool_that_needs_it_or_for_none() {
    let sim = common::start_sim(Seed::Demo, 2000.0).await;
    let engine = Arc::new(Engine::new(Arc::new(Store::open_in_memory().unwrap())));
    engine.connect(common::connection(&sim, 2000.0, common::retry_policy()));
    engine.set_promotion_enforced(false).unwrap();
    engine.refresh(&|_| {}).await.unwrap();
    let policy = common::quick_policy();
    let window = at(time::Duration::hours(3));

    let err =
        engine.schedule_ring_rollout("pilot", "2026.1120.2", &policy, &at(time::Duration::minutes(-1))).unwrap_err();
    assert!(err.to_string().contains("in the future"), "{err}");
    let none_out = RolloutPolicy { capacity: CapacityLimit::Hosts { hosts: 0 }, ..policy.clone() };
    let err = engine.schedule_ring_rollout("pilot", "2026.1120.2", &none_out, &window).unwrap_err();
    assert!(err.to_string().contains("needs fixing for hp-pilot-weu"), "{err}");
    assert!(engine.scheduled_rollouts().unwrap().is_empty(), "none scheduled");

    // North Europe already runs 2026.1120.2: only West Europe gets the window.
    let scheduled = engine.schedule_ring_rollout("pilot", "2026.1120.2", &policy, &window).unwrap();
    assert_eq!(scheduled.iter().map(|s| s.pool_name.as_str()).collect::<Vec<_>>(), ["hp-pilot-weu"]);
    assert_eq!(engine.scheduled_rollouts().unwrap().len(), 1);
    let err = engine.schedule_ring_rollout("test", "2026.1127.1", &policy, &window).unwrap_err();
    assert!(err.to_string().contains("nothing to schedule"), "{err}");
}
