//! Interactive sign-in for a real tenant, against the simulated Entra: the browser flow (a stand-in browser follows
//! the authorize redirect to the loopback listener) and the device code flow (approved through the sim's hook), the
//! session kept across a restart with its refresh token sealed in the secret store, tenant switching, sign-out.

use std::sync::Arc;
use std::time::Duration;

use ringmaster_azure::{Cloud, RetryPolicy};
use ringmaster_engine::{Engine, SignInConfig};
use ringmaster_secrets::{InMemoryDataKeys, KeyringSecretStore, SecretBlobs, SecretStore};
use ringmaster_sim::Seed;
use ringmaster_store::Store;
use tokio_util::sync::CancellationToken;

mod common;

fn config(sim: &ringmaster_sim::SimHandle) -> SignInConfig {
    let r = &sim.ready;
    SignInConfig {
        cloud: Cloud::simulated(&r.login, &r.arm),
        client_id: r.public_client_id.clone(),
        ca_pem: Some(std::fs::read(&r.ca_cert).unwrap()),
        policy: RetryPolicy { ..common::retry_policy() },
    }
}

fn browser(sim: &ringmaster_sim::SimHandle) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(&sim.ready.ca_cert).unwrap()).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap()
}

/// The person, on another device: enters the code shown (the sim's approve hook stands for Entra's page).
fn approve(sim: &ringmaster_sim::SimHandle, user_code: &str) {
    let (login, b, code) = (sim.ready.login.clone(), browser(sim), user_code.to_string());
    tokio::spawn(async move {
        b.post(format!("{login}/_sim/devicecode/approve"))
            .json(&serde_json::json!({"user_code": code}))
            .send()
            .await
            .unwrap();
    });
}

fn engine_on(store: Arc<Store>, keys: Arc<InMemoryDataKeys>) -> Arc<Engine> {
    let engine = Arc::new(Engine::new(store.clone()));
    let blobs: Arc<dyn SecretBlobs> = store;
    let secrets: Arc<dyn SecretStore> = Arc::new(KeyringSecretStore::with_data_keys(blobs, keys).unwrap());
    engine.set_secret_store(Ok(secrets));
    engine
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_sign_in_survives_a_restart_and_switches_tenants() {
    let sim = common::start_sim(Seed::Demo, 60.0).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(Store::open(&dir.path().join("s.db")).unwrap());
    let keys = Arc::new(InMemoryDataKeys::new());
    let engine = engine_on(store.clone(), keys.clone());
    let config = config(&sim);
    assert!(!engine.restore_session(&config).unwrap().signed_in, "nothing saved yet");

    // The system browser, played by an HTTP client: the sim consents for its test user and redirects to us.
    let b = browser(&sim);
    let open = move |url: &reqwest::Url| {
        let (b, url) = (b.clone(), url.clone());
        tokio::spawn(async move {
            let resp = b.get(url).send().await.unwrap();
            let location = resp.headers()["location"].to_str().unwrap().to_string();
            b.get(location).send().await.unwrap();
        });
        Ok(())
    };
    let info = engine.sign_in_with_browser(&config, open, CancellationToken::new()).await.unwrap();
    assert!(info.signed_in);
    assert_eq!(info.name.as_deref(), Some("Alex Wilber"));
    assert_eq!(info.tenant_id.as_deref(), Some(sim.ready.tenant_id.as_str()));
    engine.refresh(&|_| {}).await.unwrap();
    assert_eq!(engine.connection_info().unwrap().mode, "entra");

    // Two tenants reachable; the second one, with the same session.
    let tenants = engine.tenants().await.unwrap();
    assert_eq!(tenants.len(), 2);
    assert!(tenants.iter().any(|t| t.current && t.tenant_id == sim.ready.tenant_id));
    assert!(engine.switch_tenant(&config, "not-a-guid").unwrap_err().to_string().contains("GUID"));
    let switched = engine.switch_tenant(&config, &sim.ready.second_tenant_id).unwrap();
    assert_eq!(switched.tenant_id.as_deref(), Some(sim.ready.second_tenant_id.as_str()));

    // A restart: a new engine on the same database and keyring resumes without a browser, in the chosen tenant.
    drop(engine);
    let again = engine_on(store.clone(), keys.clone());
    let resumed = again.restore_session(&config).unwrap();
    assert!(resumed.signed_in);
    assert_eq!(resumed.tenant_id.as_deref(), Some(sim.ready.second_tenant_id.as_str()));
    again.switch_tenant(&config, &sim.ready.tenant_id).unwrap();
    again.refresh(&|_| {}).await.unwrap();

    // The refresh token is sealed: never in the database in clear.
    let bytes: Vec<u8> =
        ["s.db", "s.db-wal"].iter().filter_map(|f| std::fs::read(dir.path().join(f)).ok()).flatten().collect();
    assert!(!bytes.windows(5).any(|w| w == b"1.ASI"), "a refresh token in clear");

    // Entra revokes the session: the next call fails, the app forgets it and says why; a restart does not resume.
    let hook =
        browser(&sim).post(format!("{}/_sim/signin/revoke", sim.ready.login)).json(&serde_json::json!({})).send();
    assert!(hook.await.unwrap().status().is_success());
    let tenant_now = again.session_info(&config).tenant_id.unwrap();
    let other = if tenant_now == sim.ready.tenant_id { &sim.ready.second_tenant_id } else { &sim.ready.tenant_id };
    again.switch_tenant(&config, other).unwrap();
    let err = again.refresh(&|_| {}).await.unwrap_err();
    assert_eq!(err.to_app_error().code, "SignInRequired", "{err}");
    let ended = again.session_info(&config);
    assert!(!ended.signed_in);
    assert!(ended.ended_reason.as_deref().is_some_and(|r| r.contains("Sign in again")), "{ended:?}");
    assert!(!engine_on(store.clone(), keys.clone()).restore_session(&config).unwrap().signed_in);

    // Sign in again (device code this time), then sign out: forgotten, and a restart no longer resumes.
    again.sign_in_with_device_code(&config, |p| approve(&sim, &p.user_code), CancellationToken::new()).await.unwrap();
    assert!(again.session_info(&config).ended_reason.is_none());

    // Sign out: forgotten, and a restart no longer resumes.
    let out = again.sign_out(&config).unwrap();
    assert!(!out.signed_in);
    assert!(again.connection_info().is_err());
    let third = engine_on(store, keys);
    assert!(!third.restore_session(&config).unwrap().signed_in);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_code_flow_shows_the_code_and_signs_in_once_approved() {
    let sim = common::start_sim(Seed::Demo, 60.0).await;
    let engine = engine_on(Arc::new(Store::open_in_memory().unwrap()), Arc::new(InMemoryDataKeys::new()));
    let config = config(&sim);
    let shown = Arc::new(std::sync::Mutex::new(None));
    let seen = shown.clone();
    let show = |p: &ringmaster_azure::signin::DeviceCodePrompt| {
        *seen.lock().unwrap() = Some(ringmaster_engine::DeviceCode::from(p));
        approve(&sim, &p.user_code);
    };
    let info = engine.sign_in_with_device_code(&config, show, CancellationToken::new()).await.unwrap();
    assert!(info.signed_in);
    let code = shown.lock().unwrap().clone().expect("the code was shown");
    assert!(!code.user_code.is_empty() && code.verification_uri.starts_with("https://"), "{code:?}");

    // Without a secret store, signing in is refused rather than keeping the token in clear.
    let bare = Arc::new(Engine::new(Arc::new(Store::open_in_memory().unwrap())));
    bare.set_secret_store(Err("no OS keyring available".into()));
    let err = bare.sign_in_with_device_code(&config, |_| {}, CancellationToken::new()).await.unwrap_err();
    assert!(err.to_string().contains("will not keep them in clear"), "{err}");
}
