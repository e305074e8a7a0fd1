//! The app killed with SIGKILL at random points of a capture, and started again each time: the capture
//! resumes from its journal and ends with a gallery version (or a clear failure), nothing orphaned, and the
//! golden master never sysprepped, generalized or stopped.

use std::process::{Child, Command};
use std::time::Duration;

use ringmaster_sim::{Seed, SimConfig};

mod common;

const KILLS: usize = 10;
const TIME_SCALE: &str = "100";

fn worker(ready: &std::path::Path, db: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ringmaster-bench"))
        .args(["capture-worker", "--ready"])
        .arg(ready)
        .arg("--db")
        .arg(db)
        .args(["--time-scale", TIME_SCALE])
        .spawn()
        .expect("worker starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_ten_times_the_capture_resumes_and_leaves_nothing_behind() {
    let sim = ringmaster_sim::start(SimConfig {
        seed: Seed::Demo,
        time_scale: TIME_SCALE.parse().unwrap(),
        validate_specs: ringmaster_sim::spec::spec_dir_for_tests(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.json");
    std::fs::write(&ready, serde_json::to_string(&sim.ready).unwrap()).unwrap();
    let db = dir.path().join("app.db");
    let ca = std::fs::read(&sim.ready.ca_cert).unwrap();
    let http = ringmaster_azure::http_client(Some(&ca)).unwrap();

    let kills = common::kill_repeatedly(|| worker(&ready, &db), KILLS, 300..1500, Duration::from_secs(240)).await;
    assert_eq!(kills, KILLS, "the capture finished before {KILLS} kills; it needs to run longer");

    let s: serde_json::Value = http.get(&sim.ready.stats).send().await.unwrap().json().await.unwrap();
    assert_eq!(s["captureLeftovers"], serde_json::json!([]), "temporary resources left behind: {s}");
    assert_eq!(s["masterViolations"], serde_json::json!([]), "the master was touched: {s}");
    assert!(s["specViolations"].as_array().unwrap().is_empty(), "{s}");
    // One capture in the journal, and it succeeded: the kills cost time, not the release.
    let store = ringmaster_store::Store::open(&db).unwrap();
    let captures = store.captures().unwrap();
    assert_eq!(captures.len(), 1);
    assert_eq!(captures[0].state, "succeeded", "{:?}", captures[0].reason);
    // Exactly one new version in the gallery: a resumed capture never creates a second one.
    let r = &sim.ready;
    let client = ringmaster_azure::simulated_tenant_client(
        &r.arm,
        &r.login,
        &ca,
        &r.tenant_id,
        &r.client_id,
        &r.client_secret,
        ringmaster_azure::RetryPolicy::default(),
    )
    .unwrap();
    let definition = captures[0].version_id.rsplit_once("/versions/").unwrap().0.to_string();
    let versions = ringmaster_azure::ops::list_image_versions(&client, &definition).await.unwrap();
    let seeded = ["2026.1022.1", "2026.1105.1", "2026.1113.1", "2026.1120.2", "2026.1127.1"];
    let new: Vec<&str> = versions.iter().filter_map(|v| v["name"].as_str()).filter(|n| !seeded.contains(n)).collect();
    assert_eq!(new, vec![captures[0].version.as_str()], "exactly one new version");
    sim.shutdown();
}
