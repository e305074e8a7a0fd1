//! The engine end to end below the UI: simulated tenant -> real HTTPS client -> engine -> a real SQLite file.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringmaster_azure::{simulated_tenant_client, RetryPolicy};
use ringmaster_engine::{Engine, HostQuery, HostSortKey, HostState, InventorySource, SyncProgress, TenantConnection};
use ringmaster_sim::{Seed, SimConfig, SimHandle};
use ringmaster_store::Store;
use serde_json::json;

struct Fixture {
    sim: SimHandle,
    engine: Engine,
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
}

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 2,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        min_poll: Duration::from_millis(50),
        ..RetryPolicy::default()
    }
}

fn connection(sim: &SimHandle) -> TenantConnection {
    let r = &sim.ready;
    let ca = std::fs::read(&r.ca_cert).unwrap();
    let client =
        simulated_tenant_client(&r.arm, &r.login, &ca, &r.tenant_id, &r.client_id, &r.client_secret, policy()).unwrap();
    TenantConnection {
        client,
        mode: "demo".into(),
        tenant_id: r.tenant_id.clone(),
        tenant_name: r.tenant_name.clone(),
        cloud: "Simulated".into(),
        authority_host: r.login.clone(),
        executor: ringmaster_engine::ExecutorConfig::for_time_scale(1.0),
        build: ringmaster_engine::BuildConfig::for_time_scale(1.0),
        principal: "engine test".into(),
        login_enterprise: None,
    }
}

async fn fixture(latency_ms: u64) -> Fixture {
    let config = SimConfig {
        seed: Seed::Demo,
        latency_ms,
        validate_specs: ringmaster_sim::spec::spec_dir_for_tests(),
        ..SimConfig::default()
    };
    let sim = ringmaster_sim::start(config).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("inventory.db");
    let engine = Engine::new(Arc::new(Store::open(&db).unwrap()));
    engine.connect(connection(&sim));
    Fixture { sim, engine, _dir: dir, db }
}

async fn sim_control(sim: &SimHandle, method: reqwest::Method, path: &str, body: serde_json::Value) {
    let ca = std::fs::read(&sim.ready.ca_cert).unwrap();
    let http = ringmaster_azure::http_client(Some(&ca)).unwrap();
    let r = http.request(method, format!("{}{path}", sim.ready.arm)).json(&body).send().await.unwrap();
    assert!(r.status().is_success());
}

fn query() -> HostQuery {
    HostQuery {
        host_pool: None,
        text: None,
        state: None,
        sort: HostSortKey::Name,
        descending: false,
        offset: 0,
        limit: 100,
    }
}

#[tokio::test]
async fn refresh_fills_the_rings_board_from_the_tenant() {
    let f = fixture(0).await;
    let seen: Arc<Mutex<Vec<SyncProgress>>> = Arc::default();
    let sink = seen.clone();
    let status = f.engine.refresh(&move |p| sink.lock().unwrap().push(p)).await.unwrap();
    assert_eq!(status.source, Some(InventorySource::ResourceGraph));
    assert!(status.synced_at.is_some());
    assert!(status.requests >= 5 && status.requests <= 12, "requests {}", status.requests);
    let progress = seen.lock().unwrap();
    assert!(progress.len() >= 4);
    assert!(progress.windows(2).all(|w| w[0].percent <= w[1].percent), "progress only moves forward");
    assert_eq!(progress.last().unwrap().percent, 100);

    let board = f.engine.board().unwrap();
    let names: Vec<&str> = board.rings.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["Test", "Pilot", "Prod"]);
    let pools: Vec<usize> = board.rings.iter().map(|r| r.pools.len()).collect();
    assert_eq!(pools, [1, 2, 4]);
    let hosts: Vec<u32> = board.rings.iter().map(|r| r.hosts).collect();
    assert_eq!(hosts, [4, 20, 200]);
    assert_eq!(board.unassigned.len(), 1);
    assert_eq!(board.unassigned[0].name, "hp-it-admins");
    let test_pool = &board.rings[0].pools[0];
    assert_eq!(test_pool.name, "hp-test-weu");
    assert_eq!(test_pool.versions.iter().map(|v| v.hosts).sum::<u32>(), 4);
    assert_eq!(test_pool.available + test_pool.draining + test_pool.unavailable + test_pool.unknown, 4);
    assert_eq!(test_pool.users, 0, "Test hosts carry no users in the demo");
    assert_eq!(board.rings[2].dominant_version.as_deref(), Some("2026.1105.1"));
    let prod_users: u32 = board.rings[2].users;
    assert!(prod_users > 100, "prod has users: {prod_users}");
    // Versions newest first within a pool.
    let pilot = &board.rings[1].pools.iter().find(|p| p.name == "hp-pilot-weu").unwrap().versions;
    assert_eq!(pilot[0].version, "2026.1120.2");

    let versions = f.engine.image_versions().unwrap();
    assert_eq!(versions.len(), 5);
    assert_eq!(versions[0].name, "2026.1127.1");
    assert_eq!(versions[0].replication_state, "InProgress");
    let neu = versions[0].regions.iter().find(|r| r.region == "northeurope").unwrap();
    assert_eq!(neu.state, "Replicating");
    assert_eq!(versions.iter().find(|v| v.name == "2026.1113.1").unwrap().replication_state, "Failed");
    assert_eq!(versions.iter().find(|v| v.name == "2026.1105.1").unwrap().rings, ["Pilot", "Prod"], "in ring order");
}

#[tokio::test]
async fn the_cache_survives_a_restart_and_shows_at_once() {
    let f = fixture(0).await;
    f.engine.refresh(&|_| {}).await.unwrap();
    let before = f.engine.board().unwrap();
    // A new engine on the same file, not connected to anything yet.
    let reopened = Engine::new(Arc::new(Store::open(&f.db).unwrap()));
    let after = reopened.board().unwrap();
    assert_eq!(before.rings, after.rings);
    assert!(after.sync.synced_at.is_some());
}

#[tokio::test]
async fn hosts_are_filtered_sorted_and_paged_in_sqlite() {
    let f = fixture(0).await;
    f.engine.refresh(&|_| {}).await.unwrap();
    let page = f.engine.query_hosts(&query()).unwrap();
    assert_eq!(page.total, 226);
    assert_eq!(page.rows.len(), 100);
    let names: Vec<&str> = page.rows.iter().map(|r| r.name.as_str()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);

    let q = HostQuery { text: Some("avdtst".into()), ..query() };
    let page = f.engine.query_hosts(&q).unwrap();
    assert_eq!(page.total, 4);
    assert!(page.rows.iter().all(|r| r.ring == "Test" && r.host_pool == "hp-test-weu"));

    let q = HostQuery { state: Some(HostState::Draining), ..query() };
    let page = f.engine.query_hosts(&q).unwrap();
    assert!(page.total > 0);
    assert!(page.rows.iter().all(|r| !r.allow_new_session && r.status == "Available"));

    let q = HostQuery { sort: HostSortKey::Sessions, descending: true, limit: 5, ..query() };
    let page = f.engine.query_hosts(&q).unwrap();
    assert!(page.rows.windows(2).all(|w| w[0].sessions >= w[1].sessions));

    // LIKE wildcards in the search text are literal.
    let q = HostQuery { text: Some("%".into()), ..query() };
    assert_eq!(f.engine.query_hosts(&q).unwrap().total, 0);
    let err = f.engine.query_hosts(&HostQuery { limit: 0, ..query() }).unwrap_err();
    assert_eq!(err.to_app_error().code, "InvalidInput");
}

#[tokio::test]
async fn an_unknown_host_status_is_shown_as_unknown_not_healthy() {
    let f = fixture(0).await;
    let sub = &f.sim.ready.subscriptions[1];
    let id = format!("/subscriptions/{sub}/resourceGroups/rg-avd-test/providers/Microsoft.DesktopVirtualization/hostPools/hp-test-weu/sessionHosts/avdtst-001.corp.contoso.com");
    sim_control(
        &f.sim,
        reqwest::Method::PATCH,
        "/_sim/resource",
        json!({"id": id, "merge": {"properties": {"status": "Hibernating"}}}),
    )
    .await;
    f.engine.refresh(&|_| {}).await.unwrap();
    let board = f.engine.board().unwrap();
    assert_eq!(board.rings[0].pools[0].unknown, 1);
    let q = HostQuery { text: Some("avdtst-001".into()), ..query() };
    let row = &f.engine.query_hosts(&q).unwrap().rows[0];
    assert_eq!(row.state, HostState::Unknown);
    assert_eq!(row.status, "Hibernating");
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_last_good_inventory_and_says_why() {
    let f = fixture(0).await;
    f.engine.refresh(&|_| {}).await.unwrap();
    sim_control(
        &f.sim,
        reqwest::Method::POST,
        "/_sim/faults",
        json!({"rules": [{"operation": "*", "kind": "status", "status": 500, "count": 1000}]}),
    )
    .await;
    let err = f.engine.refresh(&|_| {}).await.unwrap_err().to_app_error();
    assert_eq!(err.code, "InternalServerError");
    assert!(err.request_id.is_some());
    let board = f.engine.board().unwrap();
    assert_eq!(board.rings.len(), 3, "previous inventory still shown");
    let last = board.sync.last_error.expect("failure recorded");
    assert_eq!(last.code, "InternalServerError");
    assert!(board.sync.synced_at.is_some());
}

#[tokio::test]
async fn a_refresh_can_be_cancelled_and_a_second_one_is_refused_while_running() {
    let f = Arc::new(fixture(150).await);
    let runner = f.clone();
    let task = tokio::spawn(async move { runner.engine.refresh(&|_| {}).await });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = f.engine.refresh(&|_| {}).await.unwrap_err();
    assert_eq!(second.to_app_error().code, "AlreadyRunning");
    assert!(f.engine.sync_status().unwrap().running);
    f.engine.cancel_refresh();
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.to_app_error().code, "Cancelled");
    assert!(!f.engine.sync_status().unwrap().running);
    assert!(f.engine.board().unwrap().rings.is_empty(), "nothing half-written");
}

#[tokio::test]
async fn the_inventory_reads_only_the_subscriptions_picked() {
    let f = fixture(0).await;
    f.engine.refresh(&|_| {}).await.unwrap();
    let all_pools = f.engine.board().unwrap().rings.iter().map(|r| r.pools.len()).sum::<usize>();
    let subs = f.engine.connection_info().unwrap().subscriptions;
    assert_eq!(subs.len(), 3);
    assert!(subs.iter().all(|s| s.included), "every subscription until some are picked");

    // Only the subscription of the Test and Pilot pools: Prod's pools leave the board, the list keeps all three.
    let nonprod = f.sim.ready.subscriptions[1].clone();
    assert!(f.engine.set_inventory_subscriptions(&["not-a-guid".into()]).unwrap_err().to_string().contains("GUID"));
    let stranger = "00000000-0000-0000-0000-000000000000".to_string();
    assert!(f.engine.set_inventory_subscriptions(&[stranger]).unwrap_err().to_string().contains("not a subscription"));
    f.engine.set_inventory_subscriptions(std::slice::from_ref(&nonprod)).unwrap();
    f.engine.refresh(&|_| {}).await.unwrap();
    let board = f.engine.board().unwrap();
    let pools: Vec<String> = board.rings.iter().flat_map(|r| r.pools.iter().map(|p| p.id.clone())).collect();
    assert!(!pools.is_empty() && pools.len() < all_pools, "{pools:?}");
    assert!(pools.iter().all(|p| p.to_ascii_lowercase().contains(&nonprod.to_ascii_lowercase())), "{pools:?}");
    let subs = f.engine.connection_info().unwrap().subscriptions;
    assert_eq!(subs.len(), 3);
    assert_eq!(subs.iter().filter(|s| s.included).count(), 1);

    // Back to all.
    f.engine.set_inventory_subscriptions(&[]).unwrap();
    f.engine.refresh(&|_| {}).await.unwrap();
    assert_eq!(f.engine.board().unwrap().rings.iter().map(|r| r.pools.len()).sum::<usize>(), all_pools);
}
