//! A person's sign-in end to end against the simulated tenant over HTTPS: authorization code + PKCE through a
//! "browser" (a reqwest client that does not follow redirects: it takes the 302 from /authorize and requests the
//! loopback URL itself), the device code flow, refresh token rotation, a second tenant, and AADSTS errors in plain words.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::Url;
use ringmaster_azure::{
    aadsts_plain_words, http_client, list_tenants, Account, ArmClient, AuthCodeFlow, AzureError, Cloud, DeviceCodeFlow,
    EntraError, PublicClientApp, RefreshToken, RefreshTokenCredential, SignInError, TokenCache, TokenSource,
};
use ringmaster_sim::{Seed, SimConfig, SimHandle};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

const ARM: &str = "https://management.azure.com/.default";

struct Tenant {
    sim: SimHandle,
    /// The app's client: HTTPS only, trusts the sim's CA.
    http: reqwest::Client,
    /// The stand-in browser: follows no redirect, reaches the loopback listener over plain HTTP.
    browser: reqwest::Client,
}

async fn tenant() -> Tenant {
    let config = SimConfig {
        seed: Seed::Demo,
        device_code_interval_s: 1,
        validate_specs: common::spec_dir(),
        ..SimConfig::default()
    };
    let sim = ringmaster_sim::start(config).await.expect("sim starts");
    let ca = std::fs::read(&sim.ready.ca_cert).expect("CA written");
    let http = http_client(Some(&ca)).expect("client");
    let browser = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca).unwrap()])
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    Tenant { sim, http, browser }
}

impl Tenant {
    fn app(&self, tenant: &str) -> PublicClientApp {
        let r = &self.sim.ready;
        PublicClientApp::new(Cloud::simulated(&r.login, &r.arm), &r.public_client_id, tenant)
    }

    async fn stats(&self) -> Value {
        self.browser.get(&self.sim.ready.stats).send().await.unwrap().json().await.unwrap()
    }

    async fn hook(&self, path: &str, body: Value) {
        let r = self.browser.post(format!("{}{path}", self.sim.ready.login)).json(&body).send().await.unwrap();
        assert!(r.status().is_success(), "{path}: {}", r.status());
    }

    fn arm_client(&self, credential: Arc<dyn TokenSource>) -> ArmClient {
        ArmClient::new(self.http.clone(), &self.sim.ready.arm, ARM, credential, common::fast_policy()).unwrap()
    }

    /// An `open_browser` that plays the browser: GET the authorize URL (after `on_authorize`), take the 302's
    /// Location (after `on_redirect`) and GET it from the loopback listener. The listener's page comes back on `page`.
    fn browser(
        &self,
        on_authorize: fn(&mut Url),
        on_redirect: fn(&mut Url),
    ) -> (impl FnOnce(&Url) -> Result<(), String> + Send, Page) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let browser = self.browser.clone();
        let open = move |url: &Url| {
            let mut url = url.clone();
            on_authorize(&mut url);
            tokio::spawn(async move {
                let resp = browser.get(url).send().await.expect("authorize answers");
                assert_eq!(resp.status(), 302, "authorize redirects");
                let mut location = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
                assert_eq!(location.scheme(), "http");
                on_redirect(&mut location);
                let page = browser.get(location).send().await.expect("the loopback listener answers");
                let _ = tx.send((page.status().as_u16(), page.text().await.unwrap_or_default()));
            });
            Ok(())
        };
        (open, rx)
    }
}

/// The loopback listener's answer to the browser: status and page.
type Page = tokio::sync::oneshot::Receiver<(u16, String)>;

fn keep(_: &mut Url) {}

fn set_query(url: &mut Url, key: &str, value: &str) {
    let pairs: Vec<(String, String)> =
        url.query_pairs().into_owned().map(|(k, v)| if k == key { (k, value.to_string()) } else { (k, v) }).collect();
    url.query_pairs_mut().clear().extend_pairs(pairs);
}

fn claims(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

/// Keeps every refresh token it is given, newest last.
#[derive(Default)]
struct SavedTokens(Mutex<Vec<String>>);

impl SavedTokens {
    fn all(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

#[async_trait::async_trait]
impl TokenCache for SavedTokens {
    async fn save_refresh_token(
        &self,
        _account: &Account,
        refresh_token: &RefreshToken,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.0.lock().unwrap().push(refresh_token.secret().to_string());
        Ok(())
    }
}

async fn raw_refresh(t: &Tenant, refresh_token: &str) -> (u16, Value) {
    let r = &t.sim.ready;
    let resp = t
        .browser
        .post(format!("{}/{}/oauth2/v2.0/token", r.login, r.tenant_id))
        .form(&[
            ("client_id", r.public_client_id.as_str()),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("scope", "https://management.azure.com/.default offline_access"),
        ])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn auth_code_with_pkce_signs_in_and_arm_answers_the_user() {
    let t = tenant().await;
    let (open, page) = t.browser(keep, keep);
    let flow = AuthCodeFlow::new(t.http.clone(), t.app("organizations"));
    let signed_in = flow.sign_in(open, CancellationToken::new()).await.expect("signed in");
    let (status, text) = page.await.unwrap();
    assert_eq!(status, 200);
    assert!(text.contains("You can close this window"), "{text}");

    let r = &t.sim.ready;
    let a = &signed_in.account;
    assert_eq!(a.username, r.test_user);
    assert_eq!(a.name, "Alex Wilber");
    assert_eq!(a.tenant_id, r.tenant_id);
    assert_eq!(a.home_tenant_id, r.tenant_id);
    assert_eq!(a.home_account_id, format!("{}.{}", a.object_id, r.tenant_id));
    assert!(signed_in.refresh_token.is_some());
    assert_eq!(claims(signed_in.access_token.secret())["aud"], "https://management.azure.com");

    let debug = format!("{signed_in:?}");
    assert!(!debug.contains(signed_in.access_token.secret()));
    assert!(!debug.contains(signed_in.refresh_token.as_ref().unwrap().secret()));

    let saved = Arc::new(SavedTokens::default());
    let app = t.app("organizations");
    let credential =
        RefreshTokenCredential::from_sign_in(t.http.clone(), &app, signed_in, saved.clone()).await.unwrap();
    assert_eq!(saved.all().len(), 1, "the first refresh token is saved at once");
    let client = t.arm_client(Arc::new(credential.clone()));
    let subs: Vec<Value> =
        client.list_all("/subscriptions", &[("api-version", "2022-12-01")], "subscriptions", |_| {}).await.unwrap();
    assert_eq!(subs.len(), 3);
    assert!(client.principal().await.starts_with(&r.test_user), "{}", client.principal().await);

    let tenants = list_tenants(&client).await.unwrap();
    let ids: Vec<&str> = tenants.iter().map(|t| t.tenant_id.as_str()).collect();
    assert_eq!(ids, [r.tenant_id.as_str(), r.second_tenant_id.as_str()]);
    assert_eq!(tenants[0].display_name.as_deref(), Some("Contoso (demo)"));
    assert_eq!(tenants[1].default_domain.as_deref(), Some("tailspintoys.onmicrosoft.com"));

    let stats = t.stats().await;
    assert_eq!(stats["signIn"]["codesRedeemed"], 1);
    assert_eq!(stats["signIn"]["refreshTokensRedeemed"], 0, "the sign-in's access token was used, no refresh");
    assert!(stats["specViolations"].as_array().unwrap().is_empty(), "{stats}");
    t.sim.shutdown();
}

#[tokio::test]
async fn a_wrong_state_is_refused_without_a_token_exchange() {
    let t = tenant().await;
    let (open, page) = t.browser(keep, |loc| set_query(loc, "state", "forged-state"));
    let flow = AuthCodeFlow::new(t.http.clone(), t.app(&t.sim.ready.tenant_id.clone()));
    let err = flow.sign_in(open, CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, AzureError::SignIn(SignInError::StateMismatch)), "{err:?}");
    assert_eq!(err.code(), "StateMismatch");
    assert!(err.to_string().contains("state mismatch"), "{err}");
    let (status, text) = page.await.unwrap();
    assert_eq!(status, 400);
    assert!(text.contains("does not belong to the sign-in"), "{text}");
    let stats = t.stats().await;
    assert_eq!(stats["signIn"]["codesIssued"], 1);
    assert_eq!(stats["signIn"]["codesRedeemed"], 0);
    assert!(stats["requestsByOperation"].get("Entra_Token").is_none(), "no token request: {stats}");
    t.sim.shutdown();
}

#[tokio::test]
async fn an_id_token_with_another_nonce_is_discarded() {
    let t = tenant().await;
    // Someone swaps the nonce on the way to Entra: the ID token comes back with theirs.
    let (open, _page) = t.browser(|url| set_query(url, "nonce", "attackers-nonce"), keep);
    let flow = AuthCodeFlow::new(t.http.clone(), t.app("organizations"));
    let err = flow.sign_in(open, CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, AzureError::SignIn(SignInError::NonceMismatch)), "{err:?}");
    t.sim.shutdown();
}

#[tokio::test]
async fn an_error_redirect_reads_as_plain_words() {
    let t = tenant().await;
    let (open, page) = t.browser(keep, keep);
    // The sim has no browser session, so a silent sign-in comes back as login_required (AADSTS50058).
    let flow = AuthCodeFlow::new(t.http.clone(), t.app("organizations")).with_prompt(Some("none"));
    let err = flow.sign_in(open, CancellationToken::new()).await.unwrap_err();
    let AzureError::Entra(e) = &err else { panic!("expected Entra's refusal, got {err:?}") };
    assert_eq!(e.error, "login_required");
    assert_eq!(e.aadsts, Some(50058));
    assert!(e.correlation_id.is_some() && e.trace_id.is_some(), "{e:?}");
    assert_eq!(err.code(), "AADSTS50058");
    assert!(err.to_string().contains("No account is signed in"), "{err}");
    let (_, text) = page.await.unwrap();
    assert!(text.contains("did not complete"), "{text}");
    t.sim.shutdown();
}

#[tokio::test]
async fn sign_in_times_out_and_can_be_cancelled() {
    let t = tenant().await;
    let flow = AuthCodeFlow::new(t.http.clone(), t.app("organizations")).with_timeout(Duration::from_millis(300));
    let err = flow.sign_in(|_| Ok(()), CancellationToken::new()).await.unwrap_err();
    assert!(matches!(err, AzureError::SignIn(SignInError::TimedOut(_))), "{err:?}");

    let cancel = CancellationToken::new();
    let flow = AuthCodeFlow::new(t.http.clone(), t.app("organizations"));
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        trigger.cancel();
    });
    let err = flow.sign_in(|_| Ok(()), cancel).await.unwrap_err();
    assert!(matches!(err, AzureError::Cancelled), "{err:?}");

    let err = flow.sign_in(|_| Err("no browser here".into()), CancellationToken::new()).await.unwrap_err();
    assert!(matches!(&err, AzureError::SignIn(SignInError::Browser(m)) if m == "no browser here"), "{err:?}");
    t.sim.shutdown();
}

#[tokio::test]
async fn the_sims_pkce_refusal_reads_as_plain_words() {
    let t = tenant().await;
    let r = &t.sim.ready;
    // Run /authorize by hand with a challenge, then redeem with another verifier.
    let verifier = "a".repeat(64);
    let challenge = URL_SAFE_NO_PAD.encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    let mut url = Url::parse(&format!("{}/organizations/oauth2/v2.0/authorize", r.login)).unwrap();
    url.query_pairs_mut().extend_pairs([
        ("client_id", r.public_client_id.as_str()),
        ("response_type", "code"),
        ("redirect_uri", "http://localhost:1"),
        ("scope", "https://management.azure.com/.default openid offline_access"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let resp = t.browser.get(url).send().await.unwrap();
    let location = Url::parse(resp.headers()["location"].to_str().unwrap()).unwrap();
    let code = location.query_pairs().find(|(k, _)| k == "code").unwrap().1.into_owned();
    let resp = t
        .browser
        .post(format!("{}/organizations/oauth2/v2.0/token", r.login))
        .form(&[
            ("client_id", r.public_client_id.as_str()),
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://localhost:1"),
            ("code_verifier", &"b".repeat(64)),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let e = EntraError::from_body(&resp.bytes().await.unwrap(), status).expect("an OAuth error body");
    assert_eq!((e.status, e.error.as_str(), e.aadsts), (Some(400), "invalid_grant", Some(501481)));
    assert!(e.plain_words().contains("PKCE"), "{}", e.plain_words());
    assert!(e.to_string().contains("AADSTS501481"), "{e}");
    t.sim.shutdown();
}

#[tokio::test]
async fn refresh_tokens_rotate_and_the_cache_keeps_the_newest() {
    let t = tenant().await;
    let (open, _) = t.browser(keep, keep);
    let app = t.app("organizations");
    let signed_in =
        AuthCodeFlow::new(t.http.clone(), app.clone()).sign_in(open, CancellationToken::new()).await.unwrap();
    let saved = Arc::new(SavedTokens::default());
    let credential =
        RefreshTokenCredential::from_sign_in(t.http.clone(), &app, signed_in, saved.clone()).await.unwrap();

    let cached = credential.token(ARM, false).await.unwrap();
    let refreshed = credential.token(ARM, true).await.unwrap();
    assert_ne!(cached.secret(), refreshed.secret());
    credential.token(ARM, true).await.unwrap();
    let all = saved.all();
    assert_eq!(all.len(), 3, "the sign-in's refresh token and one per rotation");
    assert!(all.windows(2).all(|w| w[0] != w[1]), "each refresh gives a new refresh token");

    // Every superseded refresh token is refused by Entra; the newest one (the cache's last) is what works.
    for old in &all[..2] {
        let (status, body) = raw_refresh(&t, old).await;
        assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
        assert_eq!(body["error_codes"][0], 70000);
    }
    let again = credential.token(ARM, false).await.unwrap();
    assert_eq!(again.secret(), credential.token(ARM, false).await.unwrap().secret(), "fresh tokens are cached");
    let (status, _) = raw_refresh(&t, all.last().unwrap()).await;
    assert_eq!(status, 200, "the cache holds the newest refresh token");
    t.sim.shutdown();
}

#[tokio::test]
async fn one_session_gets_tokens_for_the_second_tenant() {
    let t = tenant().await;
    let (open, _) = t.browser(keep, keep);
    let app = t.app("organizations");
    let signed_in =
        AuthCodeFlow::new(t.http.clone(), app.clone()).sign_in(open, CancellationToken::new()).await.unwrap();
    let saved = Arc::new(SavedTokens::default());
    let home = RefreshTokenCredential::from_sign_in(t.http.clone(), &app, signed_in, saved.clone()).await.unwrap();
    let r = &t.sim.ready;

    let tenants = list_tenants(&t.arm_client(Arc::new(home.clone()))).await.unwrap();
    let second = home.for_tenant(&tenants[1].tenant_id);
    let token = second.token(ARM, false).await.unwrap();
    let c = claims(token.secret());
    assert_eq!(c["tid"], r.second_tenant_id);
    assert!(second.describe().contains(&r.second_tenant_id));
    let subs: Vec<Value> = t
        .arm_client(Arc::new(second.clone()))
        .list_all("/subscriptions", &[("api-version", "2022-12-01")], "subscriptions", |_| {})
        .await
        .unwrap();
    assert!(subs.is_empty(), "the guest tenant has no subscriptions for this user");

    // The second tenant's refresh rotated the shared token; the home tenant goes on with the newest.
    let home_token = home.token(ARM, true).await.unwrap();
    assert_eq!(claims(home_token.secret())["tid"], r.tenant_id);
    assert_eq!(saved.all().len(), 3);
    t.sim.shutdown();
}

#[tokio::test]
async fn a_revoked_session_asks_to_sign_in_again() {
    let t = tenant().await;
    let (open, _) = t.browser(keep, keep);
    let app = t.app("organizations");
    let signed_in =
        AuthCodeFlow::new(t.http.clone(), app.clone()).sign_in(open, CancellationToken::new()).await.unwrap();
    let rt = signed_in.refresh_token.as_ref().unwrap().secret().to_string();
    let credential =
        RefreshTokenCredential::from_sign_in(t.http.clone(), &app, signed_in, Arc::new(SavedTokens::default()))
            .await
            .unwrap();
    t.hook("/_sim/signin/revoke", json!({})).await;
    let err = credential.token(ARM, true).await.unwrap_err();
    assert!(err.is_sign_in_required(), "{err:?}");
    assert_eq!(err.code(), "SignInRequired");
    let AzureError::SignInRequired { cause, .. } = &err else { unreachable!() };
    assert_eq!(cause.aadsts, Some(50173));
    let text = err.to_string();
    assert!(text.contains("Sign in again") && text.contains("AADSTS50173"), "{text}");
    assert!(!text.contains(&rt) && !format!("{err:?}").contains(&rt), "no refresh token in errors");

    // The dead session is not sent to Entra again, for any tenant.
    let err = credential.for_tenant(&t.sim.ready.second_tenant_id).token(ARM, false).await.unwrap_err();
    assert!(err.is_sign_in_required());
    assert_eq!(t.stats().await["signIn"]["refreshTokensRefused"], 1);
    t.sim.shutdown();
}

#[tokio::test]
async fn device_code_flow_polls_at_the_interval_until_approved() {
    let t = tenant().await;
    let login = t.sim.ready.login.clone();
    let browser = t.browser.clone();
    let prompts = Arc::new(Mutex::new(vec![]));
    let seen = prompts.clone();
    let started = Instant::now();
    let signed_in = DeviceCodeFlow::new(t.http.clone(), t.app("organizations"))
        .sign_in(
            move |p| {
                seen.lock().unwrap().push(p.clone());
                let user_code = p.user_code.clone();
                tokio::spawn(async move {
                    // The person needs a moment: the first poll finds the sign-in pending.
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    browser
                        .post(format!("{login}/_sim/devicecode/approve"))
                        .json(&json!({"user_code": user_code}))
                        .send()
                        .await
                        .unwrap();
                });
            },
            CancellationToken::new(),
        )
        .await
        .expect("signed in with a device code");
    assert!(started.elapsed() >= Duration::from_secs(2), "at least two 1 s intervals");
    let prompt = prompts.lock().unwrap()[0].clone();
    assert_eq!(prompt.user_code.len(), 9);
    assert!(prompt.verification_uri.ends_with("/_sim/devicelogin"));
    assert!(prompt.message.contains(&prompt.user_code));
    assert!(prompt.expires_at > time::OffsetDateTime::now_utc() + time::Duration::minutes(10));
    assert_eq!(signed_in.account.username, t.sim.ready.test_user);
    assert!(signed_in.refresh_token.is_some());
    let s = t.stats().await["signIn"].clone();
    assert_eq!(s["deviceCodeSlowDowns"], 0, "never polled faster than the interval");
    assert!(s["deviceCodePolls"].as_u64().unwrap() >= 2, "{s}");
    t.sim.shutdown();
}

#[tokio::test]
async fn device_code_flow_slows_down_by_five_seconds() {
    let t = tenant().await;
    let (login, browser) = (t.sim.ready.login.clone(), t.browser.clone());
    let started = Instant::now();
    DeviceCodeFlow::new(t.http.clone(), t.app("organizations"))
        .sign_in(
            move |p| {
                let user_code = p.user_code.clone();
                tokio::spawn(async move {
                    for action in ["slow-down", "approve"] {
                        browser
                            .post(format!("{login}/_sim/devicecode/{action}"))
                            .json(&json!({"user_code": user_code}))
                            .send()
                            .await
                            .unwrap();
                    }
                });
            },
            CancellationToken::new(),
        )
        .await
        .expect("signed in after slowing down");
    // The sim now wants 1 + 5 s between polls and answers slow_down again to anything faster: one slow_down and
    // two polls in all means the client waited the longer interval.
    let s = t.stats().await["signIn"].clone();
    assert_eq!((s["deviceCodeSlowDowns"].as_u64(), s["deviceCodePolls"].as_u64()), (Some(1), Some(2)), "{s}");
    assert!(started.elapsed() >= Duration::from_secs(6));
    t.sim.shutdown();
}

async fn device_code_outcome(t: &Tenant, action: &'static str) -> AzureError {
    let (login, browser) = (t.sim.ready.login.clone(), t.browser.clone());
    DeviceCodeFlow::new(t.http.clone(), t.app("organizations"))
        .sign_in(
            move |p| {
                let user_code = p.user_code.clone();
                tokio::spawn(async move {
                    browser
                        .post(format!("{login}/_sim/devicecode/{action}"))
                        .json(&json!({"user_code": user_code}))
                        .send()
                        .await
                        .unwrap();
                });
            },
            CancellationToken::new(),
        )
        .await
        .unwrap_err()
}

#[tokio::test]
async fn device_code_declined_expired_and_cancelled_are_clear() {
    let t = tenant().await;
    let err = device_code_outcome(&t, "decline").await;
    assert!(matches!(err, AzureError::SignIn(SignInError::Declined)), "{err:?}");
    assert_eq!(err.code(), "SignInDeclined");
    let err = device_code_outcome(&t, "expire").await;
    assert!(matches!(err, AzureError::SignIn(SignInError::DeviceCodeExpired)), "{err:?}");
    assert!(err.to_string().contains("expired"), "{err}");

    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let err = DeviceCodeFlow::new(t.http.clone(), t.app("organizations"))
        .sign_in(move |_| trigger.cancel(), cancel)
        .await
        .unwrap_err();
    assert!(matches!(err, AzureError::Cancelled), "{err:?}");

    // An app registration the tenant does not know.
    let r = &t.sim.ready;
    let unknown = PublicClientApp::new(
        Cloud::simulated(&r.login, &r.arm),
        "00000000-0000-0000-0000-00000000beef",
        "organizations",
    );
    let err = DeviceCodeFlow::new(t.http.clone(), unknown).sign_in(|_| {}, CancellationToken::new()).await.unwrap_err();
    assert_eq!(err.code(), "AADSTS700016");
    assert!(err.to_string().contains("client ID"), "{err}");
    t.sim.shutdown();
}

#[test]
fn aadsts_codes_read_as_plain_words_and_keep_the_code() {
    for code in [50076, 50079, 50126, 50173, 700082, 70008, 65001, 700016, 7000218, 50058, 53003, 90002, 501481, 70000]
    {
        assert!(aadsts_plain_words(code).is_some(), "AADSTS{code} has plain words");
    }
    assert!(aadsts_plain_words(12345678).is_none());
    let cases = [
        (50076, "multi-factor", true),
        (50079, "multi-factor", true),
        (50126, "password is wrong", false),
        (50173, "revoked", true),
        (700082, "expired", true),
        (70008, "expired", true),
        (65001, "consent", true),
        (700016, "client ID", false),
        (7000218, "public client", false),
        (50058, "signed in", true),
        (53003, "Conditional Access", true),
        (90002, "tenant was not found", false),
        (501481, "PKCE", false),
        (70000, "no longer valid", true),
    ];
    for (code, words, sign_in_again) in cases {
        let description = format!(
            "AADSTS{code}: Something Entra said.\r\nTrace ID: 0000aaaa-11bb-cccc-dd22-eeeeee333333\r\nCorrelation ID: \
             aaaa0000-bb11-2222-33cc-444444dddddd\r\nTimestamp: 2016-01-09 02:02:12Z"
        );
        let e = EntraError::from_parts("some_error", &description);
        assert_eq!(e.aadsts, Some(code));
        assert_eq!(e.description, "Something Entra said.");
        assert_eq!(e.trace_id.as_deref(), Some("0000aaaa-11bb-cccc-dd22-eeeeee333333"));
        assert_eq!(e.correlation_id.as_deref(), Some("aaaa0000-bb11-2222-33cc-444444dddddd"));
        assert!(e.plain_words().contains(words), "AADSTS{code}: {}", e.plain_words());
        assert!(e.to_string().contains(&format!("AADSTS{code}")), "the code stays for support: {e}");
        assert_eq!(e.needs_sign_in(), sign_in_again, "AADSTS{code}");
    }
    // An unknown code keeps Entra's own sentence; invalid_grant always means signing in again.
    let e = EntraError::from_parts("invalid_grant", "AADSTS99999: A new thing. Trace ID: t Correlation ID: c");
    assert_eq!(e.plain_words(), "A new thing.");
    assert!(e.needs_sign_in());
}
