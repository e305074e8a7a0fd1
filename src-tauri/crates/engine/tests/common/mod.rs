//! What the engine's integration tests share: a simulated tenant with spec validation on, a real HTTPS client
//! to it, and its stats.
#![allow(dead_code)]

use std::time::Duration;

use ringmaster_azure::{simulated_tenant_client, simulated_user_client, RetryPolicy};
use std::sync::Arc;

use ringmaster_engine::{
    BuildConfig, CapacityLimit, DrainMode, ExecutorConfig, LeGateConfig, RingGates, RolloutPolicy, TenantConnection,
};
use ringmaster_secrets::{InMemoryDataKeys, KeyringSecretStore, SecretBlobs, SecretStore};
use ringmaster_sim::{Seed, SimConfig, SimHandle};
use ringmaster_store::Store;
use serde_json::Value;

pub fn retry_policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 4,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        min_poll: Duration::from_millis(30),
        max_poll: Duration::from_millis(500),
        ..RetryPolicy::default()
    }
}

/// An ARM client of the sim's app registration, to look at the tenant the way a test's assertions need.
pub fn tenant_client(sim: &SimHandle, policy: RetryPolicy) -> ringmaster_azure::ArmClient {
    let r = &sim.ready;
    let ca = std::fs::read(&r.ca_cert).unwrap();
    simulated_tenant_client(&r.arm, &r.login, &ca, &r.tenant_id, &r.client_id, &r.client_secret, policy).unwrap()
}

/// A connection to `sim` whose executors run at the sim's `time_scale`.
pub fn connection(sim: &SimHandle, time_scale: f64, policy: RetryPolicy) -> TenantConnection {
    let r = &sim.ready;
    let client = tenant_client(sim, policy);
    TenantConnection {
        client,
        mode: "demo".into(),
        tenant_id: r.tenant_id.clone(),
        tenant_name: r.tenant_name.clone(),
        cloud: "Simulated".into(),
        authority_host: r.login.clone(),
        executor: ExecutorConfig::for_time_scale(time_scale),
        build: BuildConfig::for_time_scale(time_scale),
        principal: "engine test".into(),
        login_enterprise: Some(ringmaster_engine::LoginEnterpriseConnection {
            base_url: r.le.clone(),
            token: r.le_token.clone(),
            ca_pem: std::fs::read(&r.le_ca_cert).ok(),
            default_test: Some("AVD smoke".into()),
        }),
    }
}

/// The same, acting as the sim's test user (Alex Wilber) signed in by authorization code + PKCE: a person, who can
/// sign off.
pub async fn user_connection(sim: &SimHandle, time_scale: f64) -> TenantConnection {
    let r = &sim.ready;
    let ca = std::fs::read(&r.ca_cert).unwrap();
    let client =
        simulated_user_client(&r.arm, &r.login, &ca, &r.tenant_id, &r.public_client_id, retry_policy()).await.unwrap();
    TenantConnection { client, principal: r.test_user.clone(), ..connection(sim, time_scale, retry_policy()) }
}

pub async fn start_sim(seed: Seed, time_scale: f64) -> SimHandle {
    ringmaster_sim::start(SimConfig {
        seed,
        time_scale,
        validate_specs: ringmaster_sim::spec::spec_dir_for_tests(),
        ..SimConfig::default()
    })
    .await
    .unwrap()
}

fn http(sim: &SimHandle) -> reqwest::Client {
    let ca = std::fs::read(&sim.ready.ca_cert).unwrap();
    ringmaster_azure::http_client(Some(&ca)).unwrap()
}

pub async fn stats(sim: &SimHandle) -> Value {
    http(sim).get(&sim.ready.stats).send().await.unwrap().json().await.unwrap()
}

/// Set the sim's injected faults (`POST /_sim/faults`).
pub async fn set_faults(sim: &SimHandle, faults: Value) {
    let url = sim.ready.stats.replace("/_sim/stats", "/_sim/faults");
    let r = http(sim).post(url).json(&faults).send().await.unwrap();
    assert!(r.status().is_success(), "faults refused: {}", r.text().await.unwrap_or_default());
}

/// The demo's Test pool (hp-test-weu, 4 hosts).
pub fn test_pool(sim: &SimHandle) -> String {
    format!(
        "/subscriptions/{}/resourceGroups/rg-avd-test/providers/Microsoft.DesktopVirtualization/hostPools/hp-test-weu",
        sim.ready.subscriptions[1]
    )
}

/// Two hosts at a time, users logged off at once, no canary: a quick rollout for tests about what comes after it.
pub fn quick_policy() -> RolloutPolicy {
    RolloutPolicy {
        capacity: CapacityLimit::Hosts { hosts: 2 },
        drain_mode: DrainMode::ForceLogoff,
        logoff_delay_minutes: 0,
        message: "Updating".into(),
        max_failures: 1,
        canary: false,
        standby: false,
        surge: false,
    }
}

/// The Test ring judged only by the appliance's test whose Teams fails.
pub fn teams_fails_gates() -> RingGates {
    RingGates {
        ring: "test".into(),
        health: false,
        login_enterprise: Some(LeGateConfig {
            test_name: "AVD smoke - Teams fails".into(),
            required_apps: vec![],
            timeout_minutes: 30,
        }),
        ..Default::default()
    }
}

/// A secret store sealing into `store` with a data key kept in memory (the OS keyring's stand-in).
pub fn sealed_secrets(store: &Arc<Store>) -> Arc<dyn SecretStore> {
    let blobs: Arc<dyn SecretBlobs> = store.clone();
    Arc::new(KeyringSecretStore::with_data_keys(blobs, Arc::new(InMemoryDataKeys::new())).unwrap())
}
