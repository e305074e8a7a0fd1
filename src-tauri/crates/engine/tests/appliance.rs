//! A real tenant's Login Enterprise appliance kept for the machine: the URL in the settings, the access token sealed
//! in the secret store. The gates use it, and the token is nowhere in clear: not in the SQLite file (or its WAL), not
//! in the audit log, not in what the settings screen is sent.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ringmaster_engine::{Engine, GateKind, GateVerdict, TenantConnection};
use ringmaster_sim::Seed;
use ringmaster_store::Store;

mod common;

const TIME_SCALE: f64 = 2000.0;

fn without_appliance(sim: &ringmaster_sim::SimHandle) -> TenantConnection {
    TenantConnection {
        mode: "azure-cli".into(),
        login_enterprise: None,
        ..common::connection(sim, TIME_SCALE, common::retry_policy())
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_appliance_token_is_sealed_and_the_gates_use_it() {
    let sim = common::start_sim(Seed::Demo, TIME_SCALE).await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("a.db");
    let store = Arc::new(Store::open(&db).unwrap());
    let engine = Arc::new(Engine::new(store.clone()));
    engine.set_secret_store(Ok(common::sealed_secrets(&store)));
    engine.connect(without_appliance(&sim));
    engine.refresh(&|_| {}).await.unwrap();
    assert_eq!(engine.login_enterprise_settings().unwrap().source, "none");
    assert_eq!(engine.ring_gates("test").unwrap().kinds(), vec![GateKind::Health], "no appliance, no LE gate");

    let r = &sim.ready;
    let ca = std::fs::read_to_string(&r.le_ca_cert).unwrap();
    let err = engine.set_login_enterprise(&r.le.replace("https://", "http://"), &r.le_token, None, None).unwrap_err();
    assert!(err.to_string().contains("https://"), "{err}");
    let settings = engine.set_login_enterprise(&r.le, &r.le_token, Some(&ca), Some("AVD smoke")).unwrap();
    assert_eq!((settings.source.as_str(), settings.token_stored, settings.has_ca), ("stored", true, true));
    assert!(!serde_json::to_string(&settings).unwrap().contains(&r.le_token), "the screen never gets the token");
    // Saving again without a token keeps the stored one.
    engine.set_login_enterprise(&r.le, "", Some(&ca), Some("AVD smoke")).unwrap();

    // The Test ring now has its Login Enterprise gate, and it reaches the appliance with the stored token.
    let gates = engine.ring_gates("test").unwrap();
    assert_eq!(gates.kinds(), vec![GateKind::Health, GateKind::LoginEnterprise]);
    engine.run_gates("2026.1127.1", "test").unwrap();
    let started = Instant::now();
    let le = loop {
        let runs = engine.gate_runs("2026.1127.1").unwrap();
        if let Some(g) = runs.iter().find(|g| g.gate == GateKind::LoginEnterprise && !g.running) {
            break g.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(90), "the LE gate never finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(le.verdict, Some(GateVerdict::Pass), "{:?}", le.reasons);

    // Nowhere in clear: the database file and its WAL, the audit log, the gate evidence.
    let audit: String = engine.audit_log(None, 500).unwrap().entries.iter().map(|e| e.detail.clone()).collect();
    assert!(audit.contains("loginEnterprise.configure") || audit.contains(&r.le), "{audit}");
    assert!(!audit.contains(&r.le_token));
    assert!(!le.evidence.contains(&r.le_token));
    for file in [db.clone(), dir.path().join("a.db-wal")] {
        if let Ok(bytes) = std::fs::read(&file) {
            assert!(!contains(&bytes, &r.le_token), "{} holds the token in clear", file.display());
        }
    }

    engine.clear_login_enterprise().unwrap();
    assert_eq!(engine.login_enterprise_settings().unwrap().source, "none");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_keyring_the_token_is_refused_not_kept_in_clear() {
    let sim = common::start_sim(Seed::Demo, TIME_SCALE).await;
    let engine = Arc::new(Engine::new(Arc::new(Store::open_in_memory().unwrap())));
    engine.set_secret_store(Err("no OS keyring available".into()));
    engine.connect(without_appliance(&sim));
    let err = engine.set_login_enterprise(&sim.ready.le, &sim.ready.le_token, None, None).unwrap_err();
    assert!(err.to_string().contains("will not keep them in clear"), "{err}");
    let settings = engine.login_enterprise_settings().unwrap();
    assert_eq!(settings.source, "none");
    assert!(settings.secret_store_problem.unwrap().contains("no OS keyring"));
}
