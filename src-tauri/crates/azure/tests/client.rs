//! The ARM client against the simulated tenant, over real HTTPS: paging, long-running operations, throttling,
//! retries, token refresh and the errors an admin sees.

mod common;

use std::time::{Duration, Instant};

use reqwest::Method;
use ringmaster_azure::cloud::api_version;
use ringmaster_azure::inventory::{self, SessionHostRecord};
use ringmaster_azure::AzureError;
use ringmaster_sim::Seed;
use serde_json::{json, Value};

const PROD_POOL: &str =
    "resourceGroups/rg-avd-prod-weu/providers/Microsoft.DesktopVirtualization/hostPools/hp-prod-weu-1";
const VERSION: &str = "resourceGroups/rg-avd-images/providers/Microsoft.Compute/galleries/gal_avd_contoso/images/win11-24h2-avd-m365/versions/2026.1127.1";

fn pool_path(t: &common::Tenant) -> String {
    format!("/subscriptions/{}/{PROD_POOL}", t.sub(2))
}

fn version_path(t: &common::Tenant) -> String {
    format!("/subscriptions/{}/{VERSION}", t.sub(0))
}

/// An update body as the Gallery spec wants it: the PATCH model requires the version's storageProfile.
async fn exclude_from_latest_patch(client: &ringmaster_azure::ArmClient, path: &str, exclude: bool) -> Value {
    let current: Value =
        client.get_json(path, &[("api-version", api_version::GALLERY)], "image version").await.unwrap();
    json!({"properties": {
        "publishingProfile": {"excludeFromLatest": exclude},
        "storageProfile": current["properties"]["storageProfile"].clone()
    }})
}

async fn list_hosts(client: &ringmaster_azure::ArmClient, pool: &str) -> Result<Vec<Value>, AzureError> {
    client
        .list_all(
            &format!("{pool}/sessionHosts"),
            &[("api-version", api_version::DESKTOP_VIRTUALIZATION)],
            "hosts",
            |_| {},
        )
        .await
}

#[tokio::test]
async fn follows_next_link_across_every_page() {
    let t = common::sim(Seed::Demo, 7).await;
    let client = t.client();
    let mut pages = Vec::new();
    let hosts: Vec<Value> = client
        .list_all(
            &format!("{}/sessionHosts", pool_path(&t)),
            &[("api-version", api_version::DESKTOP_VIRTUALIZATION)],
            "hosts",
            |n| pages.push(n),
        )
        .await
        .unwrap();
    assert_eq!(hosts.len(), 50);
    assert_eq!(pages, vec![7, 14, 21, 28, 35, 42, 49, 50], "one callback per page of 7");
    let mut ids: Vec<&str> = hosts.iter().map(|h| h["id"].as_str().unwrap()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 50, "no host served twice across pages");
    assert_eq!(t.stats().await["requestsByOperation"]["SessionHosts_List"], 8);
    t.assert_no_spec_violations().await;
}

#[tokio::test]
async fn long_running_update_polls_azure_async_operation() {
    let t = common::sim(Seed::Demo, 25).await;
    let client = t.client();
    let body = exclude_from_latest_patch(&client, &version_path(&t), false).await;
    let result = client
        .send_lro(Method::PATCH, &version_path(&t), &[("api-version", api_version::GALLERY)], Some(&body))
        .await
        .unwrap()
        .expect("final resource");
    assert_eq!(result["properties"]["provisioningState"], "Succeeded");
    assert_eq!(result["properties"]["publishingProfile"]["excludeFromLatest"], false);
    let stats = t.stats().await;
    assert!(stats["requestsByOperation"]["Compute_AsyncOperation"].as_u64().unwrap() >= 2);
    assert!(
        stats["requestsByOperation"].get("Compute_OperationResult").is_none(),
        "Location is not used when Azure-AsyncOperation is there"
    );
    t.assert_no_spec_violations().await;
}

#[tokio::test]
async fn long_running_update_polls_location_when_that_is_all_there_is() {
    let t = common::sim(Seed::Demo, 25).await;
    t.faults(json!({"lroStyle": "location"})).await;
    let client = t.client();
    let body = exclude_from_latest_patch(&client, &version_path(&t), false).await;
    let result = client
        .send_lro(Method::PATCH, &version_path(&t), &[("api-version", api_version::GALLERY)], Some(&body))
        .await
        .unwrap()
        .expect("final resource");
    assert_eq!(result["properties"]["publishingProfile"]["excludeFromLatest"], false);
    let stats = t.stats().await;
    assert!(stats["requestsByOperation"]["Compute_OperationResult"].as_u64().unwrap() >= 3, "{stats}");
    assert!(stats["requestsByOperation"].get("Compute_AsyncOperation").is_none());
}

#[tokio::test]
async fn polling_urls_over_4_kb_are_followed() {
    let t = common::sim(Seed::Demo, 25).await;
    t.faults(json!({"longPollUrls": true})).await;
    let client = t.client();
    let body = exclude_from_latest_patch(&client, &version_path(&t), false).await;
    let result = client
        .send_lro(Method::PATCH, &version_path(&t), &[("api-version", api_version::GALLERY)], Some(&body))
        .await
        .unwrap()
        .expect("final resource");
    assert_eq!(result["properties"]["provisioningState"], "Succeeded");
}

#[tokio::test]
async fn throttled_requests_wait_for_retry_after() {
    let t = common::sim(Seed::Demo, 25).await;
    t.faults(json!({"rules": [{"operation": "SessionHosts_List", "kind": "throttle", "count": 2, "retryAfterS": 1}]}))
        .await;
    let client = t.client();
    let started = Instant::now();
    let hosts = list_hosts(&client, &pool_path(&t)).await.unwrap();
    assert_eq!(hosts.len(), 50);
    assert!(started.elapsed() >= Duration::from_secs(2), "waited Retry-After twice: {:?}", started.elapsed());
    assert_eq!(client.counters().throttled.load(std::sync::atomic::Ordering::Relaxed), 2);
}

#[tokio::test]
async fn server_errors_are_retried_then_reported_with_the_request_id() {
    let t = common::sim(Seed::Demo, 25).await;
    t.faults(json!({"rules": [{"operation": "HostPools_Get", "kind": "status", "status": 503, "count": 2}]})).await;
    let client = t.client();
    let pool: Value =
        client.get_json(&pool_path(&t), &[("api-version", api_version::DESKTOP_VIRTUALIZATION)], "pool").await.unwrap();
    assert_eq!(pool["name"], "hp-prod-weu-1");
    assert_eq!(client.counters().retries.load(std::sync::atomic::Ordering::Relaxed), 2);

    t.faults(json!({"rules": [{"operation": "HostPools_Get", "kind": "status", "status": 500, "count": 10}]})).await;
    let err = client
        .get_json::<Value>(&pool_path(&t), &[("api-version", api_version::DESKTOP_VIRTUALIZATION)], "pool")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "InternalServerError");
    assert_eq!(err.status(), Some(500));
    assert!(err.request_id().is_some_and(|id| id.len() == 36), "request id carried: {err:?}");
}

#[tokio::test]
async fn an_expired_token_is_refreshed_once_and_the_call_succeeds() {
    let t = common::sim(Seed::Demo, 25).await;
    let client = t.client();
    list_hosts(&client, &pool_path(&t)).await.unwrap();
    // Tokens issued so far now count as expired.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    t.control(Method::POST, "/_sim/expire-tokens", json!({})).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let hosts = list_hosts(&client, &pool_path(&t)).await.unwrap();
    assert_eq!(hosts.len(), 50);
    let stats = t.stats().await;
    assert_eq!(stats["tokensIssued"], 2, "{stats}");
    assert_eq!(stats["unauthorized"], 1);
}

#[tokio::test]
async fn a_token_for_the_wrong_audience_is_refused_as_arm_does() {
    let t = common::sim(Seed::Demo, 25).await;
    let client = t.client_with(
        &t.sim.ready.client_secret.clone(),
        "https://graph.microsoft.com/.default",
        common::fast_policy(),
    );
    let err = list_hosts(&client, &pool_path(&t)).await.unwrap_err();
    assert_eq!(err.code(), "InvalidAuthenticationTokenAudience");
    assert_eq!(err.status(), Some(401));
}

#[tokio::test]
async fn a_wrong_client_secret_reads_as_plain_words() {
    let t = common::sim(Seed::Demo, 25).await;
    let client = t.client_with("not-the-secret", "https://management.azure.com/.default", common::fast_policy());
    let err = list_hosts(&client, &pool_path(&t)).await.unwrap_err();
    let AzureError::Auth(message) = &err else { panic!("expected an auth error, got {err:?}") };
    assert!(message.contains("AADSTS7000215"), "{message}");
    assert!(message.contains("use the secret's value"), "{message}");
    assert!(!message.contains("not-the-secret"), "the secret never appears in messages");
}

#[tokio::test]
async fn malformed_json_is_a_clear_decode_error() {
    let t = common::sim(Seed::Demo, 25).await;
    t.faults(json!({"rules": [{"operation": "SessionHosts_List", "kind": "malformedJson", "count": 1}]})).await;
    let client = t.client();
    let err = list_hosts(&client, &pool_path(&t)).await.unwrap_err();
    let AzureError::Decode { what, request_id, .. } = &err else { panic!("expected decode error, got {err:?}") };
    assert_eq!(what, "hosts");
    assert!(request_id.is_some());
    assert_eq!(err.code(), "UnreadableResponse");
}

#[tokio::test]
async fn a_hung_request_times_out_and_is_reported() {
    let t = common::sim(Seed::Demo, 25).await;
    t.faults(json!({"rules": [{"operation": "HostPools_Get", "kind": "hang", "count": 5}]})).await;
    let policy = ringmaster_azure::RetryPolicy {
        max_retries: 1,
        request_timeout: Duration::from_millis(500),
        ..common::fast_policy()
    };
    let client = t.client_with(&t.sim.ready.client_secret.clone(), "https://management.azure.com/.default", policy);
    let err = client
        .get_json::<Value>(&pool_path(&t), &[("api-version", api_version::DESKTOP_VIRTUALIZATION)], "pool")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "Timeout", "{err:?}");
}

#[tokio::test]
async fn links_to_other_hosts_are_refused_so_the_token_stays_home() {
    let t = common::sim(Seed::Demo, 25).await;
    let client = t.client();
    let err = client.url("https://attacker.example/subscriptions?api-version=1", &[]).unwrap_err();
    assert!(matches!(err, AzureError::ForeignLink(ref h) if h == "attacker.example"));
}

#[tokio::test]
async fn missing_resources_and_subscriptions_are_arm_errors() {
    let t = common::sim(Seed::Demo, 25).await;
    let client = t.client();
    let err = client
        .get_json::<Value>(
            &format!("/subscriptions/{}/resourceGroups/rg-avd-prod-weu/providers/Microsoft.DesktopVirtualization/hostPools/nope", t.sub(2)),
            &[("api-version", api_version::DESKTOP_VIRTUALIZATION)],
            "pool",
        )
        .await
        .unwrap_err();
    assert_eq!((err.code().as_str(), err.status()), ("ResourceNotFound", Some(404)));
    let err = client
        .get_json::<Value>(
            "/subscriptions/00000000-0000-0000-0000-000000000000/providers/Microsoft.DesktopVirtualization/hostPools",
            &[("api-version", api_version::DESKTOP_VIRTUALIZATION)],
            "pools",
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "SubscriptionNotFound");
}

#[tokio::test]
async fn an_old_api_version_is_refused_by_the_spec_check() {
    let t = common::sim(Seed::Demo, 25).await;
    if common::spec_dir().is_none() {
        return;
    }
    let client = t.client();
    let err = list_hosts_at(&client, &pool_path(&t), "2019-12-10-preview").await.unwrap_err();
    assert_eq!(err.code(), "InvalidApiVersionParameter");
    // Newer versions of the same API are accepted, as ARM does.
    assert_eq!(list_hosts_at(&client, &pool_path(&t), "2025-10-10").await.unwrap().len(), 50);
}

async fn list_hosts_at(
    client: &ringmaster_azure::ArmClient,
    pool: &str,
    version: &str,
) -> Result<Vec<Value>, AzureError> {
    client.list_all(&format!("{pool}/sessionHosts"), &[("api-version", version)], "hosts", |_| {}).await
}

#[tokio::test]
async fn resource_graph_pages_ten_thousand_hosts_with_skip_tokens() {
    let t = common::sim(Seed::Large, 25).await;
    let client = t.client();
    let noop = |_p: inventory::Progress| {};
    let inv = inventory::fetch_via_graph(&client, &noop).await.unwrap();
    assert_eq!(inv.session_hosts.len(), 10_000);
    assert_eq!(inv.host_pools.len(), 200);
    assert_eq!(inv.subscriptions.len(), 20);
    let with_image = inv.session_hosts.iter().filter(|h: &&SessionHostRecord| h.image_id.is_some()).count();
    assert_eq!(with_image, 10_000, "the join carries every VM's image");
    let stats = t.stats().await;
    // 1 query for pools, 10 pages of hosts, 1 for versions.
    assert_eq!(stats["requestsByOperation"]["Resources"], 12, "{stats}");
    t.assert_no_spec_violations().await;
}

#[tokio::test]
async fn both_inventory_paths_agree() {
    let t = common::sim(Seed::Demo, 10).await;
    let client = t.client();
    let noop = |_p: inventory::Progress| {};
    let mut graph = inventory::fetch_via_graph(&client, &noop).await.unwrap();
    let mut arm = inventory::fetch_via_arm(&client, &noop).await.unwrap();
    for inv in [&mut graph, &mut arm] {
        inv.host_pools.sort_by(|a, b| a.id.cmp(&b.id));
        inv.session_hosts.sort_by_key(|h| h.id.to_lowercase());
        inv.image_versions.sort_by(|a, b| a.id.cmp(&b.id));
    }
    assert_eq!(graph.session_hosts.len(), 226);
    assert_eq!(graph.session_hosts, arm.session_hosts);
    assert_eq!(graph.image_versions, arm.image_versions);
    assert_eq!(
        graph.host_pools.iter().map(|p| &p.name).collect::<Vec<_>>(),
        arm.host_pools.iter().map(|p| &p.name).collect::<Vec<_>>()
    );
    assert_eq!(
        graph.host_pools.iter().map(|p| &p.tags).collect::<Vec<_>>(),
        arm.host_pools.iter().map(|p| &p.tags).collect::<Vec<_>>()
    );
    t.assert_no_spec_violations().await;
}

#[tokio::test]
async fn falls_back_to_arm_listing_when_resource_graph_is_down() {
    let t = common::sim(Seed::Demo, 25).await;
    t.faults(json!({"graphUnavailable": true})).await;
    let client = t.client();
    let noop = |_p: inventory::Progress| {};
    let (inv, via_graph) = inventory::fetch(&client, &noop).await.unwrap();
    assert!(!via_graph);
    assert_eq!(inv.session_hosts.len(), 226);
    assert!(t.stats().await["requestsByOperation"]["SessionHosts_List"].as_u64().unwrap() >= 8);
}

#[tokio::test]
async fn azure_clock_is_read_from_the_date_header() {
    // A tenant whose clock runs an hour per second: expiry times must be judged by its clock, not ours.
    let config = ringmaster_sim::SimConfig { time_scale: 3600.0, ..ringmaster_sim::SimConfig::default() };
    let sim = ringmaster_sim::start(config).await.unwrap();
    let ca = std::fs::read(&sim.ready.ca_cert).unwrap();
    let r = &sim.ready;
    let client = ringmaster_azure::simulated_tenant_client(
        &r.arm,
        &r.login,
        &ca,
        &r.tenant_id,
        &r.client_id,
        &r.client_secret,
        common::fast_policy(),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    ringmaster_azure::inventory::list_subscriptions(&client).await.unwrap();
    let ahead = client.server_now() - time::OffsetDateTime::now_utc();
    assert!(ahead > time::Duration::minutes(60), "server clock ahead by {ahead}");
}

#[tokio::test]
async fn writes_are_paced_to_stay_inside_arm_write_limits() {
    let t = common::sim(Seed::Demo, 25).await;
    let client = t.client();
    let noop = |_p: inventory::Progress| {};
    let inv = inventory::fetch_via_graph(&client, &noop).await.unwrap();
    let prod: Vec<_> = inv.session_hosts.iter().filter(|h| h.host_pool_id.contains("rg-avd-prod")).collect();
    assert_eq!(prod.len(), 200);
    // 230 writes in one subscription: more than ARM's bucket of 200, refilling at 10 a second.
    for h in prod.iter().cycle().take(230) {
        ringmaster_azure::ops::set_allow_new_session(&client, &h.host_pool_id, &h.name, h.allow_new_session)
            .await
            .unwrap();
    }
    let c = client.counters();
    assert_eq!(c.throttled.load(std::sync::atomic::Ordering::Relaxed), 0, "no 429 received");
    assert!(c.paced.load(std::sync::atomic::Ordering::Relaxed) > 0, "the client slowed down instead");
    assert_eq!(t.stats().await["throttled"], 0);
}
