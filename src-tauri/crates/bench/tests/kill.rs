//! The app killed with SIGKILL at random points of a rollout, and started again each time: the rollout
//! completes with no duplicate VMs, no orphan NICs or disks, no host left drained, and the capacity cap kept.

use std::process::{Child, Command};
use std::time::Duration;

use ringmaster_sim::{Seed, SimConfig};

mod common;

const KILLS: usize = 20;
const CAP: u64 = 2;

/// How the rollout replaces hosts: in place, keeping standby, or by surge.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    InPlace,
    Standby,
    Surge,
}

fn worker(ready: &std::path::Path, db: &std::path::Path, pool: &str, mode: Mode) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringmaster-bench"));
    cmd.args(["rollout-worker", "--ready"]).arg(ready).arg("--db").arg(db).args([
        "--pool",
        pool,
        "--version",
        "2026.1127.1",
        "--cap",
        &CAP.to_string(),
        "--time-scale",
        "500",
    ]);
    match mode {
        Mode::InPlace => {}
        Mode::Standby => {
            cmd.arg("--standby");
        }
        Mode::Surge => {
            cmd.arg("--surge");
        }
    }
    cmd.spawn().expect("worker starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_twenty_times_the_rollout_still_completes_cleanly() {
    killed_twenty_times(serde_json::json!({}), Mode::InPlace).await;
}

/// Surge: each new host (under the partner name) is built before its old one is drained and removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_twenty_times_a_surge_rollout_still_completes_cleanly() {
    killed_twenty_times(serde_json::json!({}), Mode::Surge).await;
}

/// Keeping standby: the old VMs are deallocated, not deleted, and the new ones take the partner names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_twenty_times_a_standby_rollout_still_completes_cleanly() {
    killed_twenty_times(serde_json::json!({}), Mode::Standby).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_twenty_times_under_5xx_errors_and_a_429_storm() {
    killed_twenty_times(
        serde_json::json!({"rules": [
            {"operation": "*", "kind": "status", "status": 503, "probability": 0.05},
            {"operation": "*", "kind": "throttle", "retryAfterS": 1, "probability": 0.05, "count": 15}
        ]}),
        Mode::InPlace,
    )
    .await;
}

async fn killed_twenty_times(faults: serde_json::Value, mode: Mode) {
    let sim = ringmaster_sim::start(SimConfig {
        seed: Seed::Demo,
        time_scale: 500.0,
        validate_specs: ringmaster_sim::spec::spec_dir_for_tests(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.json");
    std::fs::write(&ready, serde_json::to_string(&sim.ready).unwrap()).unwrap();
    let db = dir.path().join("app.db");
    let pool = format!(
        "/subscriptions/{}/resourceGroups/rg-avd-pilot/providers/Microsoft.DesktopVirtualization/hostPools/hp-pilot-weu",
        sim.ready.subscriptions[1]
    );

    let ca = std::fs::read(&sim.ready.ca_cert).unwrap();
    let http = ringmaster_azure::http_client(Some(&ca)).unwrap();
    let r = http.post(format!("{}/_sim/faults", sim.ready.arm)).json(&faults).send().await.unwrap();
    assert!(r.status().is_success());

    let kills =
        common::kill_repeatedly(|| worker(&ready, &db, &pool, mode), KILLS, 100..600, Duration::from_secs(180)).await;
    assert_eq!(kills, KILLS, "the rollout finished before {KILLS} kills; it needs to run longer");

    let s: serde_json::Value = http.get(&sim.ready.stats).send().await.unwrap().json().await.unwrap();
    assert_eq!(s["vmCreates"], 10, "exactly one new VM per host, whatever was killed: {s}");
    assert!(s["orphans"].as_array().is_none_or(|o| o.is_empty()), "no orphan NICs or disks: {s}");
    assert!(s["drainedIdle"].as_array().is_none_or(|o| o.is_empty()), "no host left drained: {s}");
    let max_out = s["maxOutOfService"].as_object().unwrap();
    let pool_max = max_out.iter().find(|(k, _)| k.eq_ignore_ascii_case(&pool)).map(|(_, v)| v.as_u64().unwrap());
    assert!(pool_max.unwrap_or(0) <= CAP, "capacity cap kept across {kills} kills: {s}");
    assert!(s["specViolations"].as_array().unwrap().is_empty(), "{s}");
    if mode != Mode::InPlace {
        // Standby: every replaced VM is still there (deallocated) beside its replacement. Surge: only the
        // replacements are left. None duplicated either way.
        let client = ringmaster_azure::simulated_tenant_client(
            &sim.ready.arm,
            &sim.ready.login,
            &ca,
            &sim.ready.tenant_id,
            &sim.ready.client_id,
            &sim.ready.client_secret,
            ringmaster_azure::RetryPolicy::default(),
        )
        .unwrap();
        let vms: Vec<serde_json::Value> = client
            .list_all(
                &format!("/subscriptions/{}/providers/Microsoft.Compute/virtualMachines", sim.ready.subscriptions[1]),
                &[("api-version", "2024-07-01")],
                "VMs",
                |_| {},
            )
            .await
            .unwrap();
        let names: Vec<&str> =
            vms.iter().filter_map(|v| v["name"].as_str()).filter(|n| n.starts_with("avdplw")).collect();
        let partners = names.iter().filter(|n| n.ends_with("-r")).count();
        let expected = if mode == Mode::Standby { (20, 10) } else { (10, 10) };
        assert_eq!((names.len(), partners), expected, "{names:?}");
    }
    sim.shutdown();
}
