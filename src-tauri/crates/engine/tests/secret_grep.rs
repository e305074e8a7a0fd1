//! The secret grep test: known token values go in (the person's access and refresh tokens, rotated once, and the
//! Login Enterprise appliance's token), the app signs in, refreshes, rolls a ring out, runs the gates, signs off and
//! exports a change record, and then the SQLite file (and its WAL), the change record, every log line (at TRACE)
//! and every payload the UI would be sent are searched for them: zero hits.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringmaster_azure::signin::{
    Account, AuthCodeFlow, PublicClientApp, RefreshToken, RefreshTokenCredential, TokenCache,
};
use ringmaster_azure::{http_client, AccessToken, ArmClient, AzureError, Cloud, TokenSource};
use ringmaster_engine::{Engine, RolloutState, SignOffDecision, TenantConnection};
use ringmaster_sim::Seed;
use ringmaster_store::Store;

mod common;

const TIME_SCALE: f64 = 2000.0;

type Seen = Arc<Mutex<Vec<String>>>;

/// Hands out the real credential's tokens and remembers each one.
struct Recording {
    inner: RefreshTokenCredential,
    seen: Seen,
}

#[async_trait::async_trait]
impl TokenSource for Recording {
    async fn token(&self, scope: &str, force_refresh: bool) -> Result<AccessToken, AzureError> {
        let t = self.inner.token(scope, force_refresh).await?;
        self.seen.lock().unwrap().push(t.secret().to_string());
        Ok(t)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Keeps the session's refresh tokens (in memory, as the demo does) and remembers each one.
struct RecordingCache(Seen);

#[async_trait::async_trait]
impl TokenCache for RecordingCache {
    async fn save_refresh_token(
        &self,
        _account: &Account,
        refresh_token: &RefreshToken,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.0.lock().unwrap().push(refresh_token.secret().to_string());
        Ok(())
    }
}

/// Every log line, at every level, into memory.
#[derive(Clone, Default)]
struct LogBuffer(Arc<Mutex<Vec<u8>>>);

impl Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_token_reaches_sqlite_logs_exports_or_ui_payloads() {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let sim = common::start_sim(Seed::Demo, TIME_SCALE).await;
    let r = sim.ready.clone();
    let ca = std::fs::read(&r.ca_cert).unwrap();
    let http = http_client(Some(&ca)).unwrap();
    let browser = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Sign in (authorization code + PKCE), keeping every token the session is given.
    let seen: Seen = Arc::default();
    let cloud = Cloud::simulated(&r.login, &r.arm);
    let app = PublicClientApp::new(cloud.clone(), &r.public_client_id, &r.tenant_id);
    let signed_in = AuthCodeFlow::new(http.clone(), app.clone()).sign_in_unattended(browser.clone()).await.unwrap();
    seen.lock().unwrap().push(signed_in.access_token.secret().to_string());
    let credential =
        RefreshTokenCredential::from_sign_in(http.clone(), &app, signed_in, Arc::new(RecordingCache(seen.clone())))
            .await
            .unwrap();
    let client = ArmClient::new(
        http.clone(),
        &cloud.arm_endpoint,
        &cloud.arm_scope,
        Arc::new(Recording { inner: credential, seen: seen.clone() }),
        common::retry_policy(),
    )
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("grep.db");
    let store = Arc::new(Store::open(&db).unwrap());
    let engine = Arc::new(Engine::new(store.clone()));
    engine.set_secret_store(Ok(common::sealed_secrets(&store)));
    engine.connect(TenantConnection {
        client,
        mode: "azure-cli".into(),
        login_enterprise: None,
        ..common::connection(&sim, TIME_SCALE, common::retry_policy())
    });
    let le_ca = std::fs::read_to_string(&r.le_ca_cert).unwrap();
    let mut payloads: Vec<String> = Vec::new();
    let mut keep = |v: &dyn erased::Json| payloads.push(v.json());
    keep(&engine.set_login_enterprise(&r.le, &r.le_token, Some(&le_ca), Some("AVD smoke")).unwrap());

    // Work: refresh, roll Test out, the tokens expire and rotate, gates, sign-off, a change record.
    keep(&engine.refresh(&|_| {}).await.unwrap());
    keep(&engine.board().unwrap());
    let pool = common::test_pool(&sim);
    // The Test pool's hosts join AD DS: the join account's password goes through the profile and the rollout.
    const JOIN_PASSWORD: &str = "Ad-J0in-Secret!planted";
    let mut profile = engine.pool_profile(&pool).await.unwrap();
    profile.join_type = "ActiveDirectory".into();
    profile.domain = "corp.contoso.com".into();
    profile.join_user = "svc-avdjoin@corp.contoso.com".into();
    profile.join_password = Some(JOIN_PASSWORD.into());
    keep(&engine.set_pool_profile(&pool, &profile).await.unwrap());
    keep(&engine.pool_profile(&pool).await.unwrap());
    let policy = common::quick_policy();
    let view = engine.start_rollout(&pool, "2026.1120.2", &policy).await.unwrap();
    let started = Instant::now();
    loop {
        let v = engine.rollout(&view.id).unwrap();
        if v.state != RolloutState::Running {
            assert_eq!(v.state, RolloutState::Completed, "{:?}", v.reason);
            keep(&v);
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(120));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hook = browser.post(format!("{}/_sim/expire-tokens", r.arm)).send().await.unwrap();
    assert!(hook.status().is_success());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    keep(&engine.refresh(&|_| {}).await.unwrap());
    engine.run_gates("2026.1120.2", "test").unwrap();
    let started = Instant::now();
    while engine.gate_runs("2026.1120.2").unwrap().iter().any(|g| g.running) {
        assert!(started.elapsed() < Duration::from_secs(90));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    keep(&engine.gate_runs("2026.1120.2").unwrap());
    let sha = engine.promotion_check("2026.1120.2", "test").unwrap().evidence_sha256;
    keep(&engine.sign_off("2026.1120.2", "test", SignOffDecision::Approve, "ok", &sha).await.unwrap());
    keep(&engine.release("2026.1120.2").unwrap());
    keep(&engine.audit_log(None, 1000).unwrap());
    keep(&engine.login_enterprise_settings().unwrap());
    keep(&engine.connection_info().unwrap());
    let export = dir.path().join("export");
    std::fs::create_dir_all(&export).unwrap();
    keep(&engine.export_change_record("2026.1120.2", Some(&export)).unwrap());

    let mut secrets_planted = seen.lock().unwrap().clone();
    secrets_planted.sort();
    secrets_planted.dedup();
    let refresh_tokens = secrets_planted.iter().filter(|s| s.starts_with("1.")).count();
    assert!(refresh_tokens >= 2, "the refresh token rotated at least once ({refresh_tokens} seen)");
    assert!(secrets_planted.len() >= 4, "access and refresh tokens recorded: {}", secrets_planted.len());
    secrets_planted.push(r.le_token.clone());
    secrets_planted.push(JOIN_PASSWORD.to_string());

    let mut places: Vec<(String, Vec<u8>)> = Vec::new();
    for f in [db.clone(), dir.path().join("grep.db-wal")].into_iter().chain(files_under(&export)) {
        if let Ok(bytes) = std::fs::read(&f) {
            places.push((f.display().to_string(), bytes));
        }
    }
    places.push(("logs".into(), logs.0.lock().unwrap().clone()));
    places.push(("UI payloads".into(), payloads.join("\n").into_bytes()));
    let db_bytes: usize = places.iter().filter(|(n, _)| n.contains("grep.db")).map(|(_, b)| b.len()).sum();
    assert!(db_bytes > 10_000, "the database was written ({db_bytes} bytes)");
    assert!(places.iter().any(|(n, _)| n == "logs") && !logs.0.lock().unwrap().is_empty(), "logs were captured");
    let mut hits = Vec::new();
    for (name, bytes) in &places {
        for s in &secrets_planted {
            if contains(bytes, s) {
                hits.push(format!("{name} holds a secret starting {}", &s[..s.len().min(8)]));
            }
        }
    }
    assert!(hits.is_empty(), "{hits:#?}");
}

/// `serde_json::to_string` over anything the commands return.
mod erased {
    pub trait Json {
        fn json(&self) -> String;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> String {
            serde_json::to_string(self).unwrap()
        }
    }
}
