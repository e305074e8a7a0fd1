//! Rollouts end to end against the simulated tenant (fast clock): replace a pool's hosts, keep capacity, roll
//! back, and survive the app being killed mid-way.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ringmaster_engine::{CapacityLimit, DrainMode, Engine, RolloutPolicy, RolloutState, RolloutView, TenantConnection};
use ringmaster_sim::{Seed, SimHandle};

mod common;
use ringmaster_store::Store;
use serde_json::Value;

const TIME_SCALE: f64 = 2000.0;

fn connection(sim: &SimHandle) -> TenantConnection {
    common::connection(sim, TIME_SCALE, common::retry_policy())
}

async fn start_sim() -> SimHandle {
    common::start_sim(Seed::Demo, TIME_SCALE).await
}

async fn stats(sim: &SimHandle) -> Value {
    common::stats(sim).await
}

fn policy(hosts: u32) -> RolloutPolicy {
    RolloutPolicy {
        capacity: CapacityLimit::Hosts { hosts },
        drain_mode: DrainMode::ForceLogoff,
        logoff_delay_minutes: 5,
        message: "Updating this desktop; please save your work.".into(),
        max_failures: 1,
        canary: true,
        standby: false,
        surge: false,
    }
}

fn pilot_pool(sim: &SimHandle) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/rg-avd-pilot/providers/Microsoft.DesktopVirtualization/hostPools/hp-pilot-weu",
        sim.ready.subscriptions[1]
    )
}

async fn wait_finished(engine: &Engine, id: &str, limit: Duration) -> RolloutView {
    let started = Instant::now();
    loop {
        let v = engine.rollout(id).unwrap();
        if !matches!(v.state, RolloutState::Running) {
            return v;
        }
        assert!(started.elapsed() < limit, "rollout still running after {limit:?}: {:?}", v.stages);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn versions_of_pool(engine: &Engine, pool: &str) -> Vec<(String, u32)> {
    let board = engine.board().unwrap();
    let card = board.rings.iter().flat_map(|r| &r.pools).find(|p| p.id.eq_ignore_ascii_case(pool)).unwrap();
    card.versions.iter().map(|v| (v.version.clone(), v.hosts)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_is_replaced_within_capacity_then_rolled_back() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Arc::new(Store::open(&dir.path().join("r.db")).unwrap()));
    engine.connect(connection(&sim));
    // These tests drive the executor on a Pilot pool, not the pipeline: no promotion out of Test first.
    engine.set_promotion_enforced(false).unwrap();
    engine.refresh(&|_| {}).await.unwrap();
    let pool = pilot_pool(&sim);

    // No history yet: known-good is the newest release published to Prod before what the pool runs.
    assert_eq!(engine.last_known_good(&pool).unwrap().as_deref(), Some("2026.1105.1"));
    let plan = engine.plan_rollout(&pool, "2026.1127.1", &policy(3)).unwrap();
    assert!(plan.blockers.is_empty(), "{:?}", plan.blockers);
    assert_eq!(plan.hosts.len(), 10);
    assert_eq!(plan.max_out_of_service, 3);

    let view = engine.start_rollout(&pool, "2026.1127.1", &policy(3)).await.unwrap();
    let done = wait_finished(&engine, &view.id, Duration::from_secs(120)).await;
    assert_eq!(done.state, RolloutState::Completed, "{:?} {:?}", done.reason, done.events.last());
    assert_eq!(done.done, 10);
    // The cache already shows what the rollout verified, before any refresh.
    assert_eq!(versions_of_pool(&engine, &pool), [("2026.1127.1".to_string(), 10)]);

    engine.refresh(&|_| {}).await.unwrap();
    assert_eq!(versions_of_pool(&engine, &pool), [("2026.1127.1".to_string(), 10)]);
    let s = stats(&sim).await;
    let max_out = s["maxOutOfService"].as_object().unwrap();
    let pool_max = max_out.iter().find(|(k, _)| k.eq_ignore_ascii_case(&pool)).map(|(_, v)| v.as_u64().unwrap());
    assert!(pool_max.unwrap_or(0) <= 3, "capacity cap kept: {s}");
    assert_eq!(s["vmCreates"], 10, "one VM per replaced host: {s}");
    assert!(s["orphans"].as_array().is_none_or(|o| o.is_empty()), "{s}");
    assert!(s["drainedIdle"].as_array().is_none_or(|o| o.is_empty()), "{s}");
    assert!(s["specViolations"].as_array().unwrap().is_empty(), "{s}");

    // One click back to the last known-good release.
    assert_eq!(engine.last_known_good(&pool).unwrap().as_deref(), Some("2026.1120.2"));
    let back = engine.rollback(&pool, &policy(3)).await.unwrap();
    assert_eq!(back.kind, "rollback");
    let back = wait_finished(&engine, &back.id, Duration::from_secs(120)).await;
    assert_eq!(back.state, RolloutState::Completed, "{:?}", back.reason);
    engine.refresh(&|_| {}).await.unwrap();
    assert_eq!(versions_of_pool(&engine, &pool), [("2026.1120.2".to_string(), 10)]);
    let list = engine.rollouts().unwrap();
    assert_eq!(list.len(), 2);
}

#[test]
fn a_rollout_killed_mid_way_resumes_without_duplicates() {
    // The tenant lives on its own runtime; each "process" of the app gets another, the first dropped abruptly
    // mid-rollout as a killed app would be.
    let tenant_rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let sim = tenant_rt.block_on(start_sim());
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("crash.db");
    let pool = pilot_pool(&sim);

    let first = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let id = first.block_on(async {
        let engine = Engine::new(Arc::new(Store::open(&db).unwrap()));
        engine.connect(connection(&sim));
        // These tests drive the executor on a Pilot pool, not the pipeline: no promotion out of Test first.
        engine.set_promotion_enforced(false).unwrap();
        engine.refresh(&|_| {}).await.unwrap();
        let v = engine.start_rollout(&pool, "2026.1127.1", &policy(2)).await.unwrap();
        let started = Instant::now();
        loop {
            let now = engine.rollout(&v.id).unwrap();
            if now.done >= 2 || started.elapsed() > Duration::from_secs(60) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        v.id
    });
    first.shutdown_background();

    let second = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    second.block_on(async {
        let engine = Engine::new(Arc::new(Store::open(&db).unwrap()));
        let before = engine.store().rollout(&id).unwrap().unwrap();
        assert_eq!(before.state, "running");
        engine.connect(connection(&sim));
        // These tests drive the executor on a Pilot pool, not the pipeline: no promotion out of Test first.
        engine.set_promotion_enforced(false).unwrap();
        let done = wait_finished(&engine, &id, Duration::from_secs(120)).await;
        assert_eq!(done.state, RolloutState::Completed, "{:?} {:?}", done.reason, done.events.last());
        assert!(done.events.iter().any(|e| e.message.contains("Resuming after a restart")));
        engine.refresh(&|_| {}).await.unwrap();
        assert_eq!(versions_of_pool(&engine, &pool), [("2026.1127.1".to_string(), 10)]);
        let s = stats(&sim).await;
        assert_eq!(s["vmCreates"], 10, "no duplicate VMs: {s}");
        assert!(s["orphans"].as_array().is_none_or(|o| o.is_empty()), "{s}");
        assert!(s["drainedIdle"].as_array().is_none_or(|o| o.is_empty()), "{s}");
    });
    second.shutdown_background();
    tenant_rt.shutdown_background();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vm_that_never_provisions_stops_the_rollout_with_a_reason_and_retry_works() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Arc::new(Store::open(&dir.path().join("f.db")).unwrap()));
    engine.connect(connection(&sim));
    // These tests drive the executor on a Pilot pool, not the pipeline: no promotion out of Test first.
    engine.set_promotion_enforced(false).unwrap();
    engine.refresh(&|_| {}).await.unwrap();
    let pool = pilot_pool(&sim);
    let plan = engine.plan_rollout(&pool, "2026.1127.1", &policy(2)).unwrap();
    let canary = plan.hosts[0].name.split('.').next().unwrap().to_string();
    let ca = std::fs::read(&sim.ready.ca_cert).unwrap();
    let http = ringmaster_azure::http_client(Some(&ca)).unwrap();
    let r = http
        .post(format!("{}/_sim/faults", sim.ready.arm))
        .json(&serde_json::json!({"failProvisioning": [canary]}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let v = engine.start_rollout(&pool, "2026.1127.1", &policy(2)).await.unwrap();
    let failed = wait_finished(&engine, &v.id, Duration::from_secs(60)).await;
    assert_eq!(failed.state, RolloutState::Failed);
    let reason = failed.reason.clone().unwrap();
    assert!(reason.contains("1 host(s) failed"), "{reason}");
    assert_eq!(failed.done, 0, "the canary failed, so nothing else started");
    assert_eq!(failed.hosts.iter().filter(|h| h.stage == ringmaster_engine::HostStage::Queued).count(), 9);
    let bad = failed.hosts.iter().find(|h| h.error.is_some()).unwrap();
    assert!(bad.name.starts_with(&canary));

    // Clear the fault and retry: the canary is replaced and the rest follows.
    http.post(format!("{}/_sim/faults", sim.ready.arm)).json(&serde_json::json!({})).send().await.unwrap();
    engine.retry_rollout(&v.id).unwrap();
    let done = wait_finished(&engine, &v.id, Duration::from_secs(120)).await;
    assert_eq!(done.state, RolloutState::Completed, "{:?}", done.reason);
}

#[tokio::test]
async fn pause_and_abort_leave_no_host_half_done() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Arc::new(Store::open(&dir.path().join("p.db")).unwrap()));
    engine.connect(connection(&sim));
    // These tests drive the executor on a Pilot pool, not the pipeline: no promotion out of Test first.
    engine.set_promotion_enforced(false).unwrap();
    engine.refresh(&|_| {}).await.unwrap();
    let pool = pilot_pool(&sim);
    let v = engine.start_rollout(&pool, "2026.1127.1", &policy(2)).await.unwrap();
    engine.pause_rollout(&v.id).unwrap();
    let paused = loop {
        let p = engine.rollout(&v.id).unwrap();
        if !p.hosts.iter().any(|h| h.stage.in_flight()) {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(paused.state, RolloutState::Paused);
    assert!(paused.done <= 1, "only the canary could finish");
    engine.abort_rollout(&v.id).unwrap();
    let aborted = engine.rollout(&v.id).unwrap();
    assert_eq!(aborted.state, RolloutState::Aborted);
    assert!(aborted.hosts.iter().all(|h| !h.stage.in_flight()));
    assert!(aborted.hosts.iter().any(|h| h.stage == ringmaster_engine::HostStage::Skipped));
    let s = stats(&sim).await;
    assert!(s["drainedIdle"].as_array().is_none_or(|o| o.is_empty()), "no host left drained: {s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollout_completes_through_5xx_errors_and_a_429_storm() {
    let sim = start_sim().await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Arc::new(Store::open(&dir.path().join("storm.db")).unwrap()));
    engine.connect(connection(&sim));
    // These tests drive the executor on a Pilot pool, not the pipeline: no promotion out of Test first.
    engine.set_promotion_enforced(false).unwrap();
    engine.refresh(&|_| {}).await.unwrap();
    let ca = std::fs::read(&sim.ready.ca_cert).unwrap();
    let http = ringmaster_azure::http_client(Some(&ca)).unwrap();
    // 5 % of every request fails with 503, and a burst of 429s (Retry-After 1 s) lands on the way.
    let faults = serde_json::json!({"rules": [
        {"operation": "*", "kind": "status", "status": 503, "probability": 0.05},
        {"operation": "*", "kind": "throttle", "retryAfterS": 1, "probability": 0.03, "count": 10}
    ]});
    let r = http.post(format!("{}/_sim/faults", sim.ready.arm)).json(&faults).send().await.unwrap();
    assert!(r.status().is_success());
    let pool = pilot_pool(&sim);
    let v = engine.start_rollout(&pool, "2026.1127.1", &policy(3)).await.unwrap();
    let done = wait_finished(&engine, &v.id, Duration::from_secs(180)).await;
    assert_eq!(done.state, RolloutState::Completed, "{:?} {:?}", done.reason, done.events.last());
    let s = stats(&sim).await;
    assert!(s["errorsInjected"].as_u64().unwrap() > 0, "faults were injected: {s}");
    assert_eq!(s["vmCreates"], 10, "retries created no duplicate VM: {s}");
    assert!(s["orphans"].as_array().is_none_or(|o| o.is_empty()), "{s}");
    let max_out = s["maxOutOfService"].as_object().unwrap();
    let pool_max = max_out.iter().find(|(k, _)| k.eq_ignore_ascii_case(&pool)).map(|(_, v)| v.as_u64().unwrap());
    assert!(pool_max.unwrap_or(0) <= 3, "capacity cap kept: {s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_completes_in_prod_becomes_visible_to_latest() {
    let sim = common::start_sim(Seed::Rollout(4), TIME_SCALE).await;
    let dir = tempfile::tempdir().unwrap();
    let engine = Engine::new(Arc::new(Store::open(&dir.path().join("p.db")).unwrap()));
    let conn = connection(&sim);
    let client = conn.client.clone();
    engine.connect(conn);
    let version = format!(
        "/subscriptions/{}/resourceGroups/rg-avd-images/providers/Microsoft.Compute/galleries/gal_avd_northwind/images/win11-24h2-avd-m365/versions/2026.1030.1",
        sim.ready.subscriptions[0]
    );
    // As a capture leaves it: hidden from latest, everywhere.
    ringmaster_azure::ops::set_exclude_from_latest(&client, &version, true).await.unwrap();
    let before = ringmaster_azure::ops::get_image_version(&client, &version).await.unwrap().unwrap();
    assert_eq!(before["properties"]["publishingProfile"]["excludeFromLatest"], true);
    engine.refresh(&|_| {}).await.unwrap();
    let pool = format!(
        "/subscriptions/{}/resourceGroups/rg-avd-prod/providers/Microsoft.DesktopVirtualization/hostPools/hp-prod-bench",
        sim.ready.subscriptions[0]
    );
    let view = engine.start_rollout(&pool, "2026.1030.1", &policy(2)).await.unwrap();
    let done = wait_finished(&engine, &view.id, Duration::from_secs(120)).await;
    assert_eq!(done.state, RolloutState::Completed, "{:?}", done.reason);
    let v = ringmaster_azure::ops::get_image_version(&client, &version).await.unwrap().unwrap();
    assert_eq!(v["properties"]["publishingProfile"]["excludeFromLatest"], false);
    assert!(v["properties"]["publishingProfile"]["targetRegions"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["excludeFromLatest"] == false));
    let cached = engine.image_versions().unwrap().into_iter().find(|v| v.name == "2026.1030.1").unwrap();
    assert!(!cached.exclude_from_latest, "the cache follows at once");
    assert!(done.events.iter().any(|e| e.message.contains("visible to 'latest'")));
    assert!(common::stats(&sim).await["specViolations"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edited_deployment_profile_builds_the_next_hosts() {
    let sim = common::start_sim(Seed::Demo, 2000.0).await;
    let engine = Arc::new(Engine::new(Arc::new(Store::open_in_memory().unwrap())));
    engine.connect(common::connection(&sim, 2000.0, common::retry_policy()));
    engine.refresh(&|_| {}).await.unwrap();
    let pool = common::test_pool(&sim);

    // Read off one of the pool's hosts the first time.
    let read = engine.pool_profile(&pool).await.unwrap();
    assert!(read.vm_size.starts_with("Standard_"), "{read:?}");
    let mut edits = read.clone();
    edits.vm_size = "Standard_D8s_v5".into();
    edits.os_disk_size_gb = Some(256);
    edits.os_disk_type = "UltraSSD_LRS".into();
    assert!(engine.set_pool_profile(&pool, &edits).await.unwrap_err().to_string().contains("OS disk type"));
    edits.os_disk_type = "StandardSSD_LRS".into();
    let saved = engine.set_pool_profile(&pool, &edits).await.unwrap();
    assert_eq!((saved.vm_size.as_str(), saved.os_disk_size_gb), ("Standard_D8s_v5", Some(256)));
    assert_eq!(engine.pool_profile(&pool).await.unwrap(), saved, "kept");

    // The next rollout builds hosts with it: the new VMs in Azure have the edited size and disk.
    let view = engine.start_rollout(&pool, "2026.1120.2", &common::quick_policy()).await.unwrap();
    let started = std::time::Instant::now();
    loop {
        let v = engine.rollout(&view.id).unwrap();
        if v.state != RolloutState::Running {
            assert_eq!(v.state, RolloutState::Completed, "{:?}", v.reason);
            break;
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(120));
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let vm_id = engine.store().rollout_hosts(&view.id).unwrap()[0].vm_id.clone();
    let client = common::tenant_client(&sim, common::retry_policy());
    let vm = ringmaster_azure::ops::get_vm(&client, &vm_id).await.unwrap().unwrap();
    assert_eq!(vm["properties"]["hardwareProfile"]["vmSize"], "Standard_D8s_v5");
    assert_eq!(vm["properties"]["storageProfile"]["osDisk"]["managedDisk"]["storageAccountType"], "StandardSSD_LRS");
    assert_eq!(vm["properties"]["storageProfile"]["osDisk"]["diskSizeGB"], 256);
    assert!(engine.audit_log(None, 50).unwrap().entries.iter().any(|e| e.action == "profile.save"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ad_ds_profile_joins_new_hosts_with_a_password_only_the_secret_store_holds() {
    const PASSWORD: &str = "Join-Acc0unt-Pa55!word";
    let sim = common::start_sim(Seed::Demo, 2000.0).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ringmaster.db");
    let store = Arc::new(Store::open(&db).unwrap());
    let engine = Arc::new(Engine::new(store.clone()));
    let secrets = common::sealed_secrets(&store);
    engine.set_secret_store(Ok(secrets.clone()));
    engine.connect(common::connection(&sim, 2000.0, common::retry_policy()));
    engine.refresh(&|_| {}).await.unwrap();
    let pool = common::test_pool(&sim);

    let mut edits = engine.pool_profile(&pool).await.unwrap();
    assert_eq!((edits.join_type.as_str(), edits.join_password_stored), ("AzureAD", false));
    edits.join_type = "ActiveDirectory".into();
    edits.domain = "corp.contoso.com".into();
    edits.ou_path = "OU=AVD,DC=corp,DC=contoso,DC=com".into();
    edits.join_user = "svc-avdjoin@corp.contoso.com".into();
    edits.security_type = "TrustedLaunch".into();
    let err = engine.set_pool_profile(&pool, &edits).await.unwrap_err().to_string();
    assert!(err.contains("password"), "{err}");
    edits.domain = "not a domain".into();
    edits.join_password = Some(PASSWORD.into());
    let err = engine.set_pool_profile(&pool, &edits).await.unwrap_err().to_string();
    assert!(err.contains("DNS name"), "{err}");
    edits.domain = "corp.contoso.com".into();
    let saved = engine.set_pool_profile(&pool, &edits).await.unwrap();
    assert_eq!(saved.join_password, None, "a password never comes back");
    assert!(saved.join_password_stored);
    assert_eq!((saved.domain.as_str(), saved.security_type.as_str()), ("corp.contoso.com", "TrustedLaunch"));

    let view = engine.start_rollout(&pool, "2026.1120.2", &common::quick_policy()).await.unwrap();
    let done = wait_finished(&engine, &view.id, Duration::from_secs(120)).await;
    assert_eq!(done.state, RolloutState::Completed, "{:?}", done.reason);
    assert!(done.events.iter().any(|e| e.message == "Joining corp.contoso.com"));

    // Every new host got the join extension (settings in the clear, the password only in protected settings,
    // which Azure never returns) and the AVD agent set for a domain join.
    let client = common::tenant_client(&sim, common::retry_policy());
    let q = [("api-version", "2024-07-01")];
    for host in engine.store().rollout_hosts(&view.id).unwrap() {
        let join: Value = client.get_json(&format!("{}/extensions/joindomain", host.vm_id), &q, "join").await.unwrap();
        assert_eq!(join["properties"]["type"], "JsonADDomainExtension");
        assert_eq!(join["properties"]["settings"]["Name"], "corp.contoso.com");
        assert_eq!(join["properties"]["settings"]["OUPath"], "OU=AVD,DC=corp,DC=contoso,DC=com");
        assert!(join["properties"].get("protectedSettings").is_none());
        let vm = ringmaster_azure::ops::get_vm(&client, &host.vm_id).await.unwrap().unwrap();
        assert!(vm.get("identity").is_none(), "a domain-joined host has no Entra identity");
        assert_eq!(vm["properties"]["securityProfile"]["securityType"], "TrustedLaunch");
    }

    // Nowhere in clear: not in the SQLite file or its WAL, not in the audit log.
    let audit = serde_json::to_string(&engine.audit_log(None, 100).unwrap()).unwrap();
    assert!(audit.contains("profile.save") && !audit.contains(PASSWORD));
    for f in std::fs::read_dir(dir.path()).unwrap() {
        let bytes = std::fs::read(f.unwrap().path()).unwrap();
        assert!(!bytes.windows(PASSWORD.len()).any(|w| w == PASSWORD.as_bytes()));
    }

    // Without the password the next rollout refuses to start replacing hosts, and says what to do.
    secrets.delete("domain-join", &pool.to_ascii_lowercase()).unwrap();
    let view = engine.start_rollout(&pool, "2026.1127.1", &common::quick_policy()).await.unwrap();
    let done = wait_finished(&engine, &view.id, Duration::from_secs(60)).await;
    assert_ne!(done.state, RolloutState::Completed);
    let reason = done.reason.unwrap_or_default();
    assert!(reason.contains("no password for svc-avdjoin@corp.contoso.com is stored"), "{reason}");
    assert!(done.hosts.iter().all(|h| h.stage == ringmaster_engine::HostStage::Queued), "no host was touched");
    assert!(common::stats(&sim).await["specViolations"].as_array().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ring_rolls_out_and_back_in_every_pool_or_in_none() {
    let sim = start_sim().await;
    let engine = Engine::new(Arc::new(Store::open_in_memory().unwrap()));
    engine.connect(connection(&sim));
    engine.set_promotion_enforced(false).unwrap();
    engine.refresh(&|_| {}).await.unwrap();

    // 2026.1127.1 is still replicating to North Europe: the whole ring waits, and nothing starts.
    let plan = engine.plan_ring_rollout("pilot", "2026.1127.1", &policy(3)).unwrap();
    assert_eq!((plan.ring_name.as_str(), plan.pools.len()), ("Pilot", 2));
    assert!(plan.blockers.iter().any(|b| b.starts_with("hp-pilot-neu: ")), "{:?}", plan.blockers);
    assert!(plan.blockers.iter().all(|b| !b.starts_with("hp-pilot-weu")), "{:?}", plan.blockers);
    let err = engine.start_ring_rollout("pilot", "2026.1127.1", &policy(3)).await.unwrap_err().to_string();
    assert!(err.contains("the Pilot ring cannot be rolled out: hp-pilot-neu: "), "{err}");
    assert!(engine.rollouts().unwrap().is_empty(), "all or nothing");

    // A release replicated everywhere goes to both pools at once, each under its own cap.
    let plan = engine.plan_ring_rollout("pilot", "2026.1120.2", &policy(3)).unwrap();
    assert!(plan.blockers.is_empty(), "{:?}", plan.blockers);
    assert_eq!(plan.hosts, plan.pools.iter().map(|p| p.hosts.len() as u32).sum::<u32>());
    // North Europe already runs it.
    assert_eq!(plan.pools.iter().map(|p| p.pool_name.as_str()).collect::<Vec<_>>(), ["hp-pilot-weu"]);
    assert_eq!(plan.skipped[0].pool_name, "hp-pilot-neu");
    assert_eq!(plan.skipped[0].reason, "already on 2026.1120.2");
    let started = engine.start_ring_rollout("pilot", "2026.1120.2", &policy(3)).await.unwrap();
    assert_eq!(started.len(), 1);
    for r in &started {
        let done = wait_finished(&engine, &r.id, Duration::from_secs(120)).await;
        assert_eq!(done.state, RolloutState::Completed, "{}: {:?}", done.pool_name, done.reason);
    }
    let again = engine.plan_ring_rollout("pilot", "2026.1120.2", &policy(3)).unwrap();
    assert_eq!(again.skipped.len(), 2, "both pools already on it");
    assert_eq!(again.blockers, ["no pool of the ring has anything to replace"]);

    // One click takes every pool back to its own known-good release.
    let back = engine.plan_ring_rollback("pilot", &policy(3)).unwrap();
    assert!(back.blockers.is_empty(), "{:?}", back.blockers);
    assert_eq!(back.pools.len(), 1, "only what the rollout changed");
    assert_eq!(
        (back.skipped[0].pool_name.as_str(), back.skipped[0].reason.as_str()),
        ("hp-pilot-neu", "no rollout to undo")
    );
    for p in &back.pools {
        assert_eq!(Some(p.target_version.clone()), engine.last_known_good(&p.host_pool_id).unwrap());
        assert_ne!(p.target_version, "2026.1120.2");
    }
    let rolled = engine.rollback_ring("pilot", &policy(3)).await.unwrap();
    assert_eq!(rolled.len(), back.pools.len());
    for r in &rolled {
        assert_eq!(r.kind, "rollback");
        let done = wait_finished(&engine, &r.id, Duration::from_secs(120)).await;
        assert_eq!(done.state, RolloutState::Completed, "{}: {:?}", done.pool_name, done.reason);
    }
    let audit = engine.audit_log(None, 100).unwrap().entries;
    for action in ["ring.rollout", "ring.rollback"] {
        assert_eq!(audit.iter().filter(|e| e.action == action).count(), 1, "{action}");
    }
    let s = stats(&sim).await;
    assert!(s["specViolations"].as_array().unwrap().is_empty(), "{s}");
    assert!(s["drainedIdle"].as_array().is_none_or(|o| o.is_empty()), "{s}");
}

/// A sim, an engine that has read it, the Test pool, and a client to look at the tenant with.
async fn standby_setup() -> (SimHandle, Engine, String, ringmaster_azure::ArmClient) {
    let sim = start_sim().await;
    let engine = Engine::new(Arc::new(Store::open_in_memory().unwrap()));
    engine.connect(connection(&sim));
    engine.refresh(&|_| {}).await.unwrap();
    let pool = common::test_pool(&sim);
    let client = common::tenant_client(&sim, common::retry_policy());
    (sim, engine, pool, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standby_keeps_replaced_hosts_deallocated_and_a_rollback_starts_them_again() {
    let (sim, engine, pool, client) = standby_setup().await;
    let standby = RolloutPolicy { standby: true, ..policy(2) };
    let before = engine.plan_rollout(&pool, "2026.1120.2", &standby).unwrap();
    assert!(before.blockers.is_empty(), "{:?}", before.blockers);
    let old: Vec<(String, String)> = before.hosts.iter().map(|h| (h.name.clone(), h.vm_id.clone())).collect();

    let view = engine.start_rollout(&pool, "2026.1120.2", &standby).await.unwrap();
    let done = wait_finished(&engine, &view.id, Duration::from_secs(120)).await;
    assert_eq!(done.state, RolloutState::Completed, "{:?}", done.reason);
    assert!(done.events.iter().any(|e| e.message.ends_with("is on standby")));
    let power = |vm: Value| vm["properties"]["instanceView"]["statuses"].to_string();
    for (name, vm_id) in &old {
        // The old VM is still there, deallocated; its partner runs the release.
        let view = ringmaster_azure::ops::vm_instance_view(&client, vm_id).await.unwrap();
        assert!(view.to_string().contains("deallocated"), "{name}: {view}");
        let partner = vm_id.rsplit_once('/').map(|(s, n)| format!("{s}/{n}-r")).unwrap();
        let vm = ringmaster_azure::ops::get_vm(&client, &partner).await.unwrap().expect("partner VM");
        assert_eq!(vm["tags"]["ringmaster-image-version"], "2026.1120.2", "{}", power(vm.clone()));
    }
    // After a refresh the standby hosts are in the inventory, and no plan replaces them.
    engine.refresh(&|_| {}).await.unwrap();
    let board = engine.board().unwrap();
    let card = board.rings.iter().flat_map(|r| &r.pools).find(|p| p.id.eq_ignore_ascii_case(&pool)).unwrap();
    assert_eq!((card.hosts, card.standby, card.unavailable), (old.len() as u32, old.len() as u32, 0), "{card:?}");
    assert_eq!(versions_of_pool(&engine, &pool), [("2026.1120.2".to_string(), old.len() as u32)]);
    let next = engine.plan_rollout(&pool, "2026.1127.1", &policy(2)).unwrap();
    assert_eq!(next.hosts.len() as u32 + next.already_current, old.len() as u32, "standby hosts are not planned");
    assert!(next.hosts.iter().all(|h| h.name.split('.').next().unwrap().ends_with("-r")));

    // The rollback starts the standby hosts and removes their replacements: no rebuild.
    let plan = engine.plan_rollback(&pool, &policy(2)).unwrap();
    assert!(plan.standby_restore && plan.blockers.is_empty(), "{plan:?}");
    let vm_creates = stats(&sim).await["vmCreates"].as_u64().unwrap();
    let back = engine.rollback(&pool, &policy(2)).await.unwrap();
    assert_eq!(back.kind, "restore");
    let back = wait_finished(&engine, &back.id, Duration::from_secs(120)).await;
    assert_eq!(back.state, RolloutState::Completed, "{:?} {:?}", back.reason, back.events.last());
    let s = stats(&sim).await;
    assert_eq!(s["vmCreates"].as_u64().unwrap(), vm_creates, "nothing rebuilt: {s}");
    for (name, vm_id) in &old {
        let view = ringmaster_azure::ops::vm_instance_view(&client, vm_id).await.unwrap();
        assert!(view.to_string().contains("running"), "{name}: {view}\n{:#?}", back.events);
        let partner = vm_id.rsplit_once('/').map(|(s, n)| format!("{s}/{n}-r")).unwrap();
        assert!(ringmaster_azure::ops::get_vm(&client, &partner).await.unwrap().is_none(), "{partner} removed");
    }
    engine.refresh(&|_| {}).await.unwrap();
    assert_eq!(engine.store().hosts_of_pool(&pool).unwrap().len(), old.len(), "back to the original hosts");
    assert!(s["orphans"].as_array().is_none_or(|o| o.is_empty()), "{s}");
    assert!(s["drainedIdle"].as_array().is_none_or(|o| o.is_empty()), "{s}");
    assert!(s["specViolations"].as_array().unwrap().is_empty(), "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn released_standby_hosts_are_removed_and_the_next_rollout_releases_the_last() {
    let (sim, engine, pool, client) = standby_setup().await;
    let standby = RolloutPolicy { standby: true, ..policy(2) };
    let first = engine.start_rollout(&pool, "2026.1120.2", &standby).await.unwrap();
    let first = wait_finished(&engine, &first.id, Duration::from_secs(120)).await;
    assert_eq!(first.state, RolloutState::Completed, "{:?}", first.reason);
    engine.refresh(&|_| {}).await.unwrap();

    // The next standby rollout takes the original names back: the first one's standby hosts go.
    let second = engine.start_rollout(&pool, "2026.1127.1", &standby).await.unwrap();
    let second = wait_finished(&engine, &second.id, Duration::from_secs(120)).await;
    assert_eq!(second.state, RolloutState::Completed, "{:?} {:?}", second.reason, second.events.last());
    let audit = engine.audit_log(None, 100).unwrap().entries;
    assert!(audit.iter().any(|e| e.action == "rollout.standby.release"));
    assert!(engine.release_standby(&first.id).unwrap_err().to_string().contains("no standby"));

    // Released on request: the second rollout's standby hosts (the `-r` ones) are removed.
    assert!(engine.rollout(&second.id).unwrap().standby_kept);
    assert!(!engine.release_standby(&second.id).unwrap().standby_kept);
    let started = Instant::now();
    loop {
        let mut left = 0;
        for h in engine.store().rollout_hosts(&second.id).unwrap() {
            if ringmaster_azure::ops::get_vm(&client, &h.vm_id).await.unwrap().is_some() {
                left += 1;
            }
        }
        if left == 0 {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{left} standby VMs still there");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    engine.refresh(&|_| {}).await.unwrap();
    let hosts = engine.store().hosts_of_pool(&pool).unwrap();
    assert!(hosts.iter().all(|l| l.host.image_version == "2026.1127.1"), "only the live hosts are left");
    let s = stats(&sim).await;
    assert!(s["orphans"].as_array().is_none_or(|o| o.is_empty()), "{s}");
    assert!(s["specViolations"].as_array().unwrap().is_empty(), "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn surge_builds_each_new_host_before_its_old_one_is_drained() {
    let (sim, engine, pool, client) = standby_setup().await;
    let surge = RolloutPolicy { surge: true, ..policy(2) };
    let plan = engine.plan_rollout(&pool, "2026.1120.2", &surge).unwrap();
    assert!(plan.blockers.is_empty(), "{:?}", plan.blockers);
    assert!(plan.warnings.iter().any(|w| w.starts_with("Surge:")), "{:?}", plan.warnings);
    let old: Vec<String> = plan.hosts.iter().map(|h| h.vm_id.clone()).collect();

    let view = engine.start_rollout(&pool, "2026.1120.2", &surge).await.unwrap();
    let done = wait_finished(&engine, &view.id, Duration::from_secs(120)).await;
    assert_eq!(done.state, RolloutState::Completed, "{:?} {:?}", done.reason, done.events.last());
    // Per host, the new one was Available before the old one was drained.
    for h in &done.hosts {
        // Events are oldest first.
        let at = |what: &str| {
            done.events.iter().position(|e| e.host.as_deref() == Some(&h.name) && e.message.starts_with(what))
        };
        let (built, drained) = (at("Waiting for the new host"), at("Draining the old host"));
        assert!(built.is_some() && drained.is_some() && built < drained, "{}: {built:?} {drained:?}", h.name);
    }
    let s = stats(&sim).await;
    let max_out = s["maxOutOfService"].as_object().unwrap();
    let pool_max = max_out.iter().find(|(k, _)| k.eq_ignore_ascii_case(&pool)).map(|(_, v)| v.as_u64().unwrap());
    assert_eq!(pool_max.unwrap_or(0), 0, "capacity never dropped: {s}");
    assert_eq!(s["vmCreates"], old.len(), "{s}");
    for vm_id in &old {
        assert!(ringmaster_azure::ops::get_vm(&client, vm_id).await.unwrap().is_none(), "{vm_id} removed");
        let partner = format!("{vm_id}-r");
        let vm = ringmaster_azure::ops::get_vm(&client, &partner).await.unwrap().expect("partner VM");
        assert_eq!(vm["tags"]["ringmaster-image-version"], "2026.1120.2");
    }
    assert!(s["orphans"].as_array().is_none_or(|o| o.is_empty()), "{s}");
    assert!(s["drainedIdle"].as_array().is_none_or(|o| o.is_empty()), "{s}");
    assert!(s["specViolations"].as_array().unwrap().is_empty(), "{s}");
}
