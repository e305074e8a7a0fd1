//! Drive the simulated Login Enterprise appliance over real HTTPS: start it (validating every request and response
//! against the v7 spec when it is present), trust its CA, and talk to it with the real client.

#![allow(dead_code)]

use std::time::Duration;

use ringmaster_loginenterprise::{ConnectionResourcesUpdate, GateRequest, LeClient, RetryPolicy};
use ringmaster_sim::le::{self, LeConfig, LeHandle, LeStats};
use serde_json::Value;

pub struct Le {
    pub handle: LeHandle,
    pub http: reqwest::Client,
    pub client: LeClient,
}

/// Fast runs: 240 sim seconds take about 0.1 s.
pub fn fast() -> LeConfig {
    LeConfig { time_scale: 2_000.0, ..LeConfig::default() }
}

pub fn retry() -> RetryPolicy {
    RetryPolicy { attempts: 3, base_delay: Duration::from_millis(20), max_delay: Duration::from_millis(100) }
}

impl Le {
    pub async fn start(config: LeConfig) -> Le {
        let config = LeConfig { spec: le::spec_for_tests(), ..config };
        let handle = le::start_appliance(config).await.expect("appliance starts");
        let ca = std::fs::read(&handle.ca_cert).expect("CA written");
        let cert = reqwest::Certificate::from_pem(&ca).expect("CA parses");
        let http = reqwest::Client::builder()
            .tls_certs_only([cert])
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client builds");
        let client = LeClient::new(&handle.base_url, handle.token.clone(), http.clone())
            .expect("client")
            .with_retry(retry())
            .with_request_timeout(Duration::from_secs(5));
        Le { handle, http, client }
    }

    /// A client with another token.
    pub fn client_with_token(&self, token: &str) -> LeClient {
        LeClient::new(&self.handle.base_url, token, self.http.clone()).expect("client").with_retry(retry())
    }

    /// `POST /_le/faults` on the control port.
    pub async fn faults(&self, faults: Value) {
        let r = self
            .http
            .post(format!("{}/_le/faults", self.handle.control_url))
            .json(&faults)
            .send()
            .await
            .expect("faults posted");
        assert!(r.status().is_success(), "faults refused: {}", r.text().await.unwrap_or_default());
    }

    /// `GET /_le/stats` on the control port.
    pub async fn stats(&self) -> LeStats {
        self.http
            .get(format!("{}/_le/stats", self.handle.control_url))
            .send()
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats JSON")
    }

    pub fn requests(stats: &LeStats, op: &str) -> u64 {
        stats.requests_by_operation.get(op).copied().unwrap_or(0)
    }

    /// Every request the client made and every answer the sim gave matched the spec.
    pub async fn assert_clean(&self) {
        let stats = self.stats().await;
        assert!(stats.spec_violations.is_empty(), "spec violations: {:#?}", stats.spec_violations);
        assert!(stats.unserved.is_empty(), "calls the sim does not serve: {:#?}", stats.unserved);
    }

    /// A gate request pointing `test_id` at two pilot hosts, the seeded groups, the baseline of the test.
    pub fn request(&self, test_id: &str) -> GateRequest {
        let mut resources =
            ConnectionResourcesUpdate::rdp_hosts(["avd-pilot-0.contoso.local", "avd-pilot-1.contoso.local"]);
        resources.launcher_groups = Some(vec![self.handle.launcher_group_id.clone()]);
        resources.account_groups = Some(vec![self.handle.account_group_id.clone()]);
        GateRequest {
            test_id: test_id.to_string(),
            connection_resources: resources,
            comment: "ringmaster: win11-24h2-avd-m365 1.0.42, change CHG0012345".into(),
            required_apps: vec!["Microsoft Edge".into(), "Microsoft Word".into()],
            baseline_run_id: self.handle.seeded(test_id).and_then(|t| t.baseline_run_id.clone()),
            timeout: Duration::from_secs(15),
            poll_interval: Duration::from_millis(20),
        }
    }
}
