//! Start a simulated tenant (validating against the Azure specs when they are present) and an ARM client for it.

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ringmaster_azure::{http_client, ArmClient, ClientSecretCredential, Cloud, RetryPolicy};
use ringmaster_sim::{Seed, SimConfig, SimHandle};

pub fn spec_dir() -> Option<PathBuf> {
    ringmaster_sim::spec::spec_dir_for_tests()
}

pub struct Tenant {
    pub sim: SimHandle,
    pub http: reqwest::Client,
}

pub async fn sim(seed: Seed, page_size: usize) -> Tenant {
    let config = SimConfig { seed, page_size, validate_specs: spec_dir(), ..SimConfig::default() };
    let sim = ringmaster_sim::start(config).await.expect("sim starts");
    let ca = std::fs::read(&sim.ready.ca_cert).expect("CA written");
    let http = http_client(Some(&ca)).expect("client");
    Tenant { sim, http }
}

pub fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        max_retries: 3,
        max_throttle_waits: 5,
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        max_retry_after: Duration::from_secs(5),
        request_timeout: Duration::from_secs(20),
        min_poll: Duration::from_millis(50),
        max_poll: Duration::from_secs(2),
        lro_timeout: Duration::from_secs(60),
    }
}

impl Tenant {
    pub fn client_with(&self, secret: &str, scope: &str, policy: RetryPolicy) -> ArmClient {
        let r = &self.sim.ready;
        let cloud = Cloud::simulated(&r.login, &r.arm);
        let cred =
            ClientSecretCredential::new(self.http.clone(), &cloud.authority_host, &r.tenant_id, &r.client_id, secret);
        ArmClient::new(self.http.clone(), &cloud.arm_endpoint, scope, Arc::new(cred), policy).expect("client")
    }

    pub fn client(&self) -> ArmClient {
        self.client_with(&self.sim.ready.client_secret.clone(), "https://management.azure.com/.default", fast_policy())
    }

    pub async fn stats(&self) -> serde_json::Value {
        self.http.get(&self.sim.ready.stats).send().await.unwrap().json().await.unwrap()
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: serde_json::Value) {
        let url = format!("{}{}", self.sim.ready.arm, path);
        let r = self.http.request(method, url).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "sim control {path} failed: {}", r.text().await.unwrap_or_default());
    }

    pub async fn faults(&self, faults: serde_json::Value) {
        self.control(reqwest::Method::POST, "/_sim/faults", faults).await;
    }

    pub fn sub(&self, i: usize) -> String {
        self.sim.ready.subscriptions[i].clone()
    }

    /// Spec violations the sim saw: a test that ends with any has exposed a client or sim bug.
    pub async fn assert_no_spec_violations(&self) {
        let s = self.stats().await;
        let v = s["specViolations"].as_array().cloned().unwrap_or_default();
        assert!(v.is_empty(), "spec violations: {v:?}");
    }
}
