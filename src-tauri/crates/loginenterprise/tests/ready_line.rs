//! The simulated tenant brings its Login Enterprise appliance: the ready line names it (`le`, `le_token`,
//! `le_ca_cert`) and the demo seed has application tests a Test-ring gate can run.

use std::time::Duration;

use ringmaster_loginenterprise::LeClient;
use ringmaster_sim::{Seed, SimConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_tenant_announces_an_appliance_with_application_tests() {
    let sim = ringmaster_sim::start(SimConfig {
        seed: Seed::Demo,
        validate_specs: ringmaster_sim::spec::spec_dir_for_tests(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let r = &sim.ready;
    assert!(r.le.ends_with("/publicApi"), "{}", r.le);
    assert!(!r.le_token.is_empty());
    let line = serde_json::to_value(r).unwrap();
    assert!(line["le"].is_string() && line["le_token"].is_string(), "the ready line carries le and le_token");
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&r.le_ca_cert).unwrap()).unwrap();
    let http = reqwest::Client::builder().tls_certs_only([ca]).timeout(Duration::from_secs(20)).build().unwrap();
    let client = LeClient::new(&r.le, r.le_token.clone(), http).unwrap();
    client.system_version().await.unwrap();
    let tests = client.application_tests().await.unwrap();
    assert!(
        tests.iter().any(|t| t.name.as_deref() == Some("AVD smoke")),
        "at least one application test in the demo seed"
    );
    sim.shutdown();
}
