//! The simulated Entra's interactive sign-in, spoken raw over HTTPS as a browser and a public client would:
//! authorize + PKCE, code redemption, refresh token rotation, two tenants, the device code flow, AADSTS errors,
//! and ARM accepting the user's tokens.

use std::collections::HashMap;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::redirect::Policy;
use ringmaster_sim::{ReadyInfo, Seed, SimConfig, SimHandle};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const ARM_SCOPE: &str = "https://management.azure.com/.default openid profile offline_access";

struct Sim {
    handle: SimHandle,
    /// Follows no redirect, like a test standing in for the browser.
    http: reqwest::Client,
}

impl Sim {
    async fn start(device_code_interval_s: u64) -> Sim {
        let config = SimConfig {
            seed: Seed::Demo,
            device_code_interval_s,
            validate_specs: ringmaster_sim::spec::spec_dir_for_tests(),
            ..SimConfig::default()
        };
        let handle = ringmaster_sim::start(config).await.expect("sim starts");
        let ca = std::fs::read(&handle.ready.ca_cert).expect("CA written");
        let http = reqwest::Client::builder()
            .tls_certs_only([reqwest::Certificate::from_pem(&ca).expect("CA parses")])
            .redirect(Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client builds");
        Sim { handle, http }
    }

    fn r(&self) -> &ReadyInfo {
        &self.handle.ready
    }

    fn authorize_url(&self, tenant: &str, params: &[(&str, &str)]) -> String {
        let mut url = url::Url::parse(&format!("{}/{tenant}/oauth2/v2.0/authorize", self.r().login)).unwrap();
        url.query_pairs_mut().extend_pairs(params);
        url.to_string()
    }

    /// A valid authorize request's parameters with `challenge` for the verifier.
    fn authorize_params<'a>(&'a self, challenge: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("client_id", self.r().public_client_id.as_str()),
            ("response_type", "code"),
            ("redirect_uri", "http://127.0.0.1:53117/"),
            ("scope", ARM_SCOPE),
            ("state", "st-123"),
            ("nonce", "n-456"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ]
    }

    /// Run /authorize; the 302's query.
    async fn authorize(&self, tenant: &str, params: &[(&str, &str)]) -> HashMap<String, String> {
        let resp = self.http.get(self.authorize_url(tenant, params)).send().await.unwrap();
        assert_eq!(resp.status(), 302, "authorize redirects: {}", resp.text().await.unwrap_or_default());
        let location = resp.headers()["location"].to_str().unwrap().to_string();
        let url = url::Url::parse(&location).unwrap();
        assert_eq!(url.host_str(), Some("127.0.0.1"));
        assert_eq!(url.port(), Some(53117));
        url.query_pairs().into_owned().collect()
    }

    async fn token(&self, tenant: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let resp =
            self.http.post(format!("{}/{tenant}/oauth2/v2.0/token", self.r().login)).form(form).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }

    async fn hook(&self, path: &str, body: Value) -> u16 {
        self.http.post(format!("{}{path}", self.r().login)).json(&body).send().await.unwrap().status().as_u16()
    }

    async fn arm(&self, token: &str, path: &str) -> (u16, Value) {
        let resp = self.http.get(format!("{}{path}", self.r().arm)).bearer_auth(token).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn stats(&self) -> Value {
        self.http.get(&self.r().stats).send().await.unwrap().json().await.unwrap()
    }

    /// Sign in by authorization code; the token response.
    async fn sign_in(&self) -> Value {
        let (verifier, challenge) = pkce();
        let q = self.authorize(&self.r().tenant_id, &self.authorize_params(&challenge)).await;
        let (status, body) = self.token(&self.r().tenant_id, &self.redeem_form(&q["code"], &verifier)).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    fn redeem_form<'a>(&'a self, code: &'a str, verifier: &'a str) -> Vec<(&'a str, &'a str)> {
        vec![
            ("client_id", self.r().public_client_id.as_str()),
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", "http://127.0.0.1:53117/"),
            ("code_verifier", verifier),
            ("scope", ARM_SCOPE),
            ("client_info", "1"),
        ]
    }

    async fn refresh(&self, tenant: &str, refresh_token: &str, scope: &str) -> (u16, Value) {
        let form = [
            ("client_id", self.r().public_client_id.as_str()),
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("scope", scope),
        ];
        self.token(tenant, &form).await
    }
}

fn pkce() -> (String, String) {
    let verifier = format!("v{}", "0123456789abcdefghijklmnopqrstuvwxyz-._~ABCDEFGH".repeat(2));
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn claims(jwt: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

fn aadsts(body: &Value) -> u64 {
    let code = body["error_codes"][0].as_u64().expect("error_codes");
    let description = body["error_description"].as_str().unwrap();
    assert!(description.starts_with(&format!("AADSTS{code}: ")), "{description}");
    for k in ["timestamp", "trace_id", "correlation_id"] {
        assert!(body[k].is_string(), "{k} in {body}");
    }
    code
}

#[tokio::test]
async fn ready_line_names_the_public_client_test_user_and_second_tenant() {
    let sim = Sim::start(5).await;
    let r = sim.r();
    assert!(!r.public_client_id.is_empty() && r.public_client_id != r.client_id);
    assert_eq!(r.test_user, "alex.wilber@contoso.onmicrosoft.com");
    assert!(!r.second_tenant_id.is_empty() && r.second_tenant_id != r.tenant_id);
    let line = serde_json::to_value(r).unwrap();
    for k in ["public_client_id", "test_user", "second_tenant_id"] {
        assert!(line[k].is_string(), "{k} in the ready line");
    }
    let disco: Value = sim
        .http
        .get(format!("{}/{}/v2.0/.well-known/openid-configuration", r.login, r.second_tenant_id))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(disco["token_endpoint"], format!("{}/{}/oauth2/v2.0/token", r.login, r.second_tenant_id));
    assert_eq!(
        disco["device_authorization_endpoint"],
        format!("{}/{}/oauth2/v2.0/devicecode", r.login, r.second_tenant_id)
    );
    sim.handle.shutdown();
}

#[tokio::test]
async fn authorization_code_with_pkce_gives_user_tokens_arm_accepts() {
    let sim = Sim::start(5).await;
    let (verifier, challenge) = pkce();
    let mut params = sim.authorize_params(&challenge);
    params.push(("client_info", "1"));
    let q = sim.authorize(&sim.r().tenant_id, &params).await;
    assert_eq!(q["state"], "st-123", "state comes back unchanged");
    assert!(q["code"].len() > 40);
    assert!(q.contains_key("client_info"));

    let (status, body) = sim.token(&sim.r().tenant_id, &sim.redeem_form(&q["code"], &verifier)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["refresh_token"].as_str().unwrap().len() > 100);
    let id = claims(body["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "n-456");
    assert_eq!(id["aud"], sim.r().public_client_id);
    assert_eq!(id["tid"], sim.r().tenant_id);
    assert_eq!(id["preferred_username"], sim.r().test_user);
    assert_eq!(id["name"], "Alex Wilber");
    assert!(id["oid"].is_string());
    let info: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body["client_info"].as_str().unwrap()).unwrap()).unwrap();
    assert_eq!(info["uid"], id["oid"]);
    assert_eq!(info["utid"], sim.r().tenant_id);
    let access = claims(body["access_token"].as_str().unwrap());
    assert_eq!(access["aud"], "https://management.azure.com");
    assert_eq!(access["upn"], sim.r().test_user);
    assert_eq!(access["appid"], sim.r().public_client_id);

    let token = body["access_token"].as_str().unwrap();
    let (status, subs) = sim.arm(token, "/subscriptions?api-version=2022-12-01").await;
    assert_eq!(status, 200, "{subs}");
    assert_eq!(subs["value"].as_array().unwrap().len(), 3);
    let (status, tenants) = sim.arm(token, "/tenants?api-version=2022-12-01").await;
    assert_eq!(status, 200, "{tenants}");
    let ids: Vec<&str> = tenants["value"].as_array().unwrap().iter().map(|t| t["tenantId"].as_str().unwrap()).collect();
    assert_eq!(ids, [sim.r().tenant_id.as_str(), sim.r().second_tenant_id.as_str()]);

    // The code is single-use.
    let (status, again) = sim.token(&sim.r().tenant_id, &sim.redeem_form(&q["code"], &verifier)).await;
    assert_eq!((status, again["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(aadsts(&again), 54005);
    let stats = sim.stats().await;
    assert_eq!(stats["signIn"]["codesRedeemed"], 1);
    assert!(stats["specViolations"].as_array().unwrap().is_empty(), "{stats}");
    sim.handle.shutdown();
}

#[tokio::test]
async fn a_wrong_pkce_verifier_is_refused_and_spends_the_code() {
    let sim = Sim::start(5).await;
    let (verifier, challenge) = pkce();
    let q = sim.authorize(&sim.r().tenant_id, &sim.authorize_params(&challenge)).await;
    let wrong = format!("{verifier}x");
    let (status, body) = sim.token(&sim.r().tenant_id, &sim.redeem_form(&q["code"], &wrong)).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    assert_eq!(aadsts(&body), 501481);
    let (_, body) = sim.token(&sim.r().tenant_id, &sim.redeem_form(&q["code"], &verifier)).await;
    assert_eq!(aadsts(&body), 54005, "one attempt per code");
    sim.handle.shutdown();
}

#[tokio::test]
async fn authorize_errors_redirect_only_to_a_registered_loopback_uri() {
    let sim = Sim::start(5).await;
    let (_, challenge) = pkce();
    let tenant = sim.r().tenant_id.clone();

    // Unknown app or a redirect URI that is not loopback: an error page, never a redirect.
    let mut params = sim.authorize_params(&challenge);
    params[0] = ("client_id", "00000000-0000-0000-0000-000000000000");
    let resp = sim.http.get(sim.authorize_url(&tenant, &params)).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(aadsts(&resp.json().await.unwrap()), 700016);
    for uri in ["https://evil.example/cb", "http://evil.example/", "http://127.0.0.1.evil.example/"] {
        let mut params = sim.authorize_params(&challenge);
        params[2] = ("redirect_uri", uri);
        let resp = sim.http.get(sim.authorize_url(&tenant, &params)).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{uri}");
        assert_eq!(aadsts(&resp.json().await.unwrap()), 50011);
    }
    let resp = sim.http.get(sim.authorize_url("not-a-tenant.example", &sim.authorize_params(&challenge))).send().await;
    assert_eq!(aadsts(&resp.unwrap().json().await.unwrap()), 90002);

    // http://localhost with any port is a registered loopback URI too.
    let mut params = sim.authorize_params(&challenge);
    params[2] = ("redirect_uri", "http://localhost:40123/callback");
    let resp = sim.http.get(sim.authorize_url(&tenant, &params)).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    assert!(resp.headers()["location"].to_str().unwrap().starts_with("http://localhost:40123/callback?code="));

    // With a valid redirect URI, errors go back to it with the state.
    let cases: Vec<(&str, Option<&str>, &str)> = vec![
        ("code_challenge_method", Some("plain"), "invalid_request"),
        ("code_challenge_method", None, "invalid_request"),
        ("code_challenge", None, "invalid_request"),
        ("response_type", Some("token"), "unsupported_response_type"),
        ("scope", Some("https://management.azure.com/.default https://graph.microsoft.com/User.Read"), "invalid_scope"),
    ];
    for (param, value, error) in cases {
        let mut params: Vec<(&str, &str)> =
            sim.authorize_params(&challenge).into_iter().filter(|(k, _)| *k != param).collect();
        if let Some(v) = value {
            params.push((param, v));
        }
        let q = sim.authorize(&tenant, &params).await;
        assert_eq!(q.get("error").map(String::as_str), Some(error), "{param}={value:?}: {q:?}");
        assert!(q["error_description"].starts_with("AADSTS"), "{q:?}");
        assert_eq!(q["state"], "st-123");
        assert!(!q.contains_key("code"));
    }
    let mut params = sim.authorize_params(&challenge);
    params.push(("prompt", "none"));
    let q = sim.authorize(&tenant, &params).await;
    assert_eq!(q["error"], "login_required");
    assert!(q["error_description"].starts_with("AADSTS50058:"));
    sim.handle.shutdown();
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_used_one_is_refused() {
    let sim = Sim::start(5).await;
    let first = sim.sign_in().await;
    let rt1 = first["refresh_token"].as_str().unwrap().to_string();
    let tenant = sim.r().tenant_id.clone();

    let (status, second) = sim.refresh(&tenant, &rt1, ARM_SCOPE).await;
    assert_eq!(status, 200, "{second}");
    let rt2 = second["refresh_token"].as_str().unwrap().to_string();
    assert_ne!(rt1, rt2, "each refresh returns a new refresh token");
    assert_eq!(claims(second["access_token"].as_str().unwrap())["aud"], "https://management.azure.com");

    let (status, reused) = sim.refresh(&tenant, &rt1, ARM_SCOPE).await;
    assert_eq!((status, reused["error"].as_str()), (400, Some("invalid_grant")));
    assert_eq!(aadsts(&reused), 70000);

    // The scope decides the audience.
    let (status, graph) = sim.refresh(&tenant, &rt2, "https://graph.microsoft.com/.default offline_access").await;
    assert_eq!(status, 200, "{graph}");
    assert_eq!(claims(graph["access_token"].as_str().unwrap())["aud"], "https://graph.microsoft.com");
    let (status, _) = sim.arm(graph["access_token"].as_str().unwrap(), "/subscriptions?api-version=2022-12-01").await;
    assert_eq!(status, 401, "ARM refuses a Graph token");

    let rt3 = graph["refresh_token"].as_str().unwrap().to_string();
    let (_, bad) = sim.refresh(&tenant, &rt3, "https://example.org/.default").await;
    assert_eq!(aadsts(&bad), 500011);
    let stats = sim.stats().await;
    assert_eq!(stats["signIn"]["refreshTokensRedeemed"], 2);
    assert_eq!(stats["signIn"]["refreshTokensRefused"], 1);
    sim.handle.shutdown();
}

#[tokio::test]
async fn one_refresh_token_reaches_the_second_tenant() {
    let sim = Sim::start(5).await;
    let signed = sim.sign_in().await;
    let rt = signed["refresh_token"].as_str().unwrap();
    let second = sim.r().second_tenant_id.clone();
    let (status, body) = sim.refresh(&second, rt, ARM_SCOPE).await;
    assert_eq!(status, 200, "{body}");
    let access = claims(body["access_token"].as_str().unwrap());
    assert_eq!(access["tid"], second);
    assert_ne!(access["oid"], claims(signed["access_token"].as_str().unwrap())["oid"], "a guest has its own object id");
    let id = claims(body["id_token"].as_str().unwrap());
    assert_eq!(id["tid"], second);

    let token = body["access_token"].as_str().unwrap();
    let (status, subs) = sim.arm(token, "/subscriptions?api-version=2022-12-01").await;
    assert_eq!(status, 200);
    assert!(subs["value"].as_array().unwrap().is_empty(), "no subscriptions in the guest tenant: {subs}");
    let (status, err) = sim
        .arm(token, &format!("/subscriptions/{}/resourcegroups?api-version=2024-07-01", sim.r().subscriptions[0]))
        .await;
    assert_eq!((status, err["error"]["code"].as_str()), (401, Some("InvalidAuthenticationTokenTenant")));
    let (status, tenants) = sim.arm(token, "/tenants?api-version=2022-12-01").await;
    assert_eq!(status, 200);
    assert_eq!(tenants["value"].as_array().unwrap().len(), 2);
    assert!(sim.stats().await["specViolations"].as_array().unwrap().is_empty());
    sim.handle.shutdown();
}

#[tokio::test]
async fn revoked_and_expired_sessions_answer_their_aadsts_codes() {
    let sim = Sim::start(5).await;
    let tenant = sim.r().tenant_id.clone();
    let rt = sim.sign_in().await["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(sim.hook("/_sim/signin/revoke", json!({})).await, 200);
    let (_, body) = sim.refresh(&tenant, &rt, ARM_SCOPE).await;
    assert_eq!((body["error"].as_str(), aadsts(&body)), (Some("invalid_grant"), 50173));

    let rt = sim.sign_in().await["refresh_token"].as_str().unwrap().to_string();
    assert_eq!(sim.hook("/_sim/signin/expire", json!({})).await, 200);
    let (_, body) = sim.refresh(&tenant, &rt, ARM_SCOPE).await;
    assert_eq!((body["error"].as_str(), aadsts(&body)), (Some("invalid_grant"), 700082));
    sim.handle.shutdown();
}

#[tokio::test]
async fn the_public_client_has_no_secret_and_the_automation_app_is_unchanged() {
    let sim = Sim::start(5).await;
    let r = sim.r();
    let (status, body) = sim
        .token(
            &r.tenant_id,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &r.public_client_id),
                ("scope", "https://management.azure.com/.default"),
            ],
        )
        .await;
    assert_eq!((status, aadsts(&body)), (401, 7000218));
    let (status, body) = sim
        .token(
            &r.tenant_id,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &r.client_id),
                ("client_secret", &r.client_secret),
                ("scope", "https://management.azure.com/.default"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["idtyp"], "app");
    // The automation app is registered in the seeded tenant only.
    let (_, body) = sim
        .token(
            &r.second_tenant_id,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &r.client_id),
                ("client_secret", &r.client_secret),
                ("scope", "https://management.azure.com/.default"),
            ],
        )
        .await;
    assert_eq!(aadsts(&body), 700016);
    sim.handle.shutdown();
}

async fn start_device_code(sim: &Sim) -> Value {
    let resp = sim
        .http
        .post(format!("{}/organizations/oauth2/v2.0/devicecode", sim.r().login))
        .form(&[("client_id", sim.r().public_client_id.as_str()), ("scope", ARM_SCOPE)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn poll(sim: &Sim, device_code: &str) -> (u16, Value) {
    let form = [
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
        ("client_id", sim.r().public_client_id.as_str()),
        ("device_code", device_code),
    ];
    sim.token("organizations", &form).await
}

#[tokio::test]
async fn device_code_pending_slow_down_approve() {
    let sim = Sim::start(1).await;
    let dc = start_device_code(&sim).await;
    for k in ["device_code", "user_code", "verification_uri", "message"] {
        assert!(dc[k].is_string(), "{k}");
    }
    assert_eq!(dc["interval"], 1);
    assert_eq!(dc["expires_in"], 900);
    assert!(dc["message"].as_str().unwrap().contains(dc["user_code"].as_str().unwrap()));
    let device_code = dc["device_code"].as_str().unwrap();

    // Polled at once: faster than the interval.
    let (status, body) = poll(&sim, device_code).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("slow_down")), "{body}");
    // The interval is now 1 + 5 s: wait it out.
    tokio::time::sleep(Duration::from_millis(6100)).await;
    let (_, body) = poll(&sim, device_code).await;
    assert_eq!(body["error"], "authorization_pending", "{body}");
    assert_eq!(aadsts(&body), 70016);

    let user_code = dc["user_code"].as_str().unwrap();
    assert_eq!(sim.hook("/_sim/devicecode/approve", json!({"user_code": user_code})).await, 200);
    tokio::time::sleep(Duration::from_millis(6100)).await;
    let (status, body) = poll(&sim, device_code).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(claims(body["id_token"].as_str().unwrap())["preferred_username"], sim.r().test_user);
    assert!(body["refresh_token"].is_string());
    let stats = sim.stats().await;
    assert_eq!(stats["signIn"]["deviceCodePolls"], 3);
    assert_eq!(stats["signIn"]["deviceCodeSlowDowns"], 1);
    sim.handle.shutdown();
}

#[tokio::test]
async fn device_code_declined_expired_and_unknown() {
    let sim = Sim::start(1).await;
    let dc = start_device_code(&sim).await;
    assert_eq!(sim.hook("/_sim/devicecode/decline", json!({"user_code": dc["user_code"]})).await, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (_, body) = poll(&sim, dc["device_code"].as_str().unwrap()).await;
    assert_eq!(body["error"], "authorization_declined", "{body}");

    let dc = start_device_code(&sim).await;
    assert_eq!(sim.hook("/_sim/devicecode/expire", json!({"user_code": dc["user_code"]})).await, 200);
    let (_, body) = poll(&sim, dc["device_code"].as_str().unwrap()).await;
    assert_eq!((body["error"].as_str(), aadsts(&body)), (Some("expired_token"), 70019));

    let (_, body) = poll(&sim, "not-a-device-code").await;
    assert_eq!(body["error"], "bad_verification_code");
    assert_eq!(sim.hook("/_sim/devicecode/approve", json!({"user_code": "NOSUCHCOD"})).await, 404);
    sim.handle.shutdown();
}
