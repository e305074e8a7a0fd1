//! What the engine's integration tests share: a simulated tenant with spec validation on, a real HTTPS client
//! to it, and its stats.
#![allow(dead_code)]

use std::time::Duration;

use ringmaster_azure::{simulated_tenant_client, simulated_user_client, RetryPolicy};
use ringmaster_engine::{BuildConfig, ExecutorConfig, TenantConnection};
use ringmaster_sim::{Seed, SimConfig, SimHandle};
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

/// A connection to `sim` whose executors run at the sim's `time_scale`.
pub fn connection(sim: &SimHandle, time_scale: f64, policy: RetryPolicy) -> TenantConnection {
    let r = &sim.ready;
    let ca = std::fs::read(&r.ca_cert).unwrap();
    let client =
        simulated_tenant_client(&r.arm, &r.login, &ca, &r.tenant_id, &r.client_id, &r.client_secret, policy).unwrap();
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
