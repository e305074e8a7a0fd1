//! A person's session with Entra for a real tenant: interactive sign-in (authorization code + PKCE through the
//! system browser, or a device code), kept across restarts with the rotating refresh token sealed in the secret
//! store and who signed in in the settings, one tenant at a time out of those the person reaches.

use std::sync::Arc;

use ringmaster_azure::signin::{
    list_tenants, Account, AuthCodeFlow, DeviceCodeFlow, DeviceCodePrompt, PublicClientApp, RefreshToken,
    RefreshTokenCredential, TenantInfo, TokenCache,
};
use ringmaster_azure::{http_client, ArmClient, Cloud, RetryPolicy};
use ringmaster_secrets::SecretStore;
use ringmaster_store::Store;
use serde::{Deserialize, Serialize};
use specta::Type;
use tokio_util::sync::CancellationToken;

use crate::{BuildConfig, Engine, EngineError, ExecutorConfig, TenantConnection};

/// The Azure CLI's public client (what tools without their own app registration sign in as);
/// `RINGMASTER_CLIENT_ID` names the organisation's own.
pub const DEFAULT_CLIENT_ID: &str = "04b07795-8ddb-461a-bbee-02f9e1bf7b46";
const ACCOUNT_KEY: &str = "entra.account";
const TENANT_KEY: &str = "entra.tenant";
const REFRESH_TOKEN_NAME: &str = "entra.refreshToken";

/// Where the session is kept: the refresh token sealed in the secret store, the account (not secret) in the settings.
pub struct SavedSession {
    store: Arc<Store>,
    secrets: Arc<dyn SecretStore>,
}

#[async_trait::async_trait]
impl TokenCache for SavedSession {
    async fn save_refresh_token(
        &self,
        account: &Account,
        refresh_token: &RefreshToken,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        self.secrets.put(crate::appliance::SECRET_PROFILE, REFRESH_TOKEN_NAME, refresh_token.secret())?;
        self.store.set_setting(ACCOUNT_KEY, &serde_json::to_string(account)?)?;
        Ok(())
    }
}

impl SavedSession {
    fn load(&self) -> Result<Option<(Account, RefreshToken)>, EngineError> {
        let Some(account) = self.store.setting(ACCOUNT_KEY)? else { return Ok(None) };
        let Ok(account) = serde_json::from_str::<Account>(&account) else { return Ok(None) };
        let token = self
            .secrets
            .get(crate::appliance::SECRET_PROFILE, REFRESH_TOKEN_NAME)
            .map_err(|e| EngineError::InvalidInput(e.to_string()))?;
        Ok(token.map(|t| (account, RefreshToken::new(t.expose().to_string()))))
    }

    fn forget(&self) -> Result<(), EngineError> {
        self.secrets
            .delete(crate::appliance::SECRET_PROFILE, REFRESH_TOKEN_NAME)
            .map_err(|e| EngineError::InvalidInput(e.to_string()))?;
        self.store.delete_setting(ACCOUNT_KEY)?;
        self.store.delete_setting(TENANT_KEY)?;
        Ok(())
    }
}

/// What the sign-in screen shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub signed_in: bool,
    pub name: Option<String>,
    pub username: Option<String>,
    pub tenant_id: Option<String>,
    pub cloud: String,
    /// Why the last session ended on its own (Entra refused its refresh token: expired, revoked, password changed).
    pub ended_reason: Option<String>,
    /// Why a session cannot be kept on this machine (no OS keyring): signing in is refused until there is one.
    pub secret_store_problem: Option<String>,
}

/// A tenant the person reaches, for the picker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct TenantChoice {
    pub tenant_id: String,
    pub name: String,
    pub default_domain: Option<String>,
    pub current: bool,
}

/// The code to enter at the URL, shown while the device code flow waits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct DeviceCode {
    pub user_code: String,
    pub verification_uri: String,
    pub message: String,
    pub expires_at: String,
}

impl From<&DeviceCodePrompt> for DeviceCode {
    fn from(p: &DeviceCodePrompt) -> Self {
        DeviceCode {
            user_code: p.user_code.clone(),
            verification_uri: p.verification_uri.clone(),
            message: p.message.clone(),
            expires_at: p.expires_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        }
    }
}

/// How this machine signs in: the cloud, the public client, and (for the simulated tenant) the CA to trust.
#[derive(Debug, Clone)]
pub struct SignInConfig {
    pub cloud: Cloud,
    pub client_id: String,
    pub ca_pem: Option<Vec<u8>>,
    pub policy: RetryPolicy,
}

impl Engine {
    fn saved_session(&self) -> Result<SavedSession, EngineError> {
        Ok(SavedSession { store: self.store.clone(), secrets: self.secret_store()? })
    }

    fn http(config: &SignInConfig) -> Result<reqwest::Client, EngineError> {
        Ok(http_client(config.ca_pem.as_deref())?)
    }

    /// Connect as the session's credential, to `tenant_id` (or the tenant it signed in to).
    fn connect_session(
        &self,
        config: &SignInConfig,
        credential: RefreshTokenCredential,
        tenant_id: Option<&str>,
    ) -> Result<SessionInfo, EngineError> {
        let credential = match tenant_id {
            Some(t) => credential.for_tenant(t),
            None => credential,
        };
        let account = credential.account().clone();
        let tenant = credential.tenant_id().to_string();
        let client = ArmClient::new(
            Self::http(config)?,
            &config.cloud.arm_endpoint,
            &config.cloud.arm_scope,
            Arc::new(credential.clone()),
            config.policy.clone(),
        )?;
        self.store.set_setting(TENANT_KEY, &tenant)?;
        if let Ok(mut s) = self.session.write() {
            *s = Some(credential);
        }
        if let Ok(mut r) = self.session_ended.write() {
            *r = None;
        }
        self.connect(TenantConnection {
            client,
            mode: "entra".into(),
            tenant_id: tenant.clone(),
            tenant_name: self.store.setting(&format!("entra.tenantName.{tenant}"))?.unwrap_or_else(|| tenant.clone()),
            cloud: config.cloud.name.clone(),
            authority_host: config.cloud.authority_host.clone(),
            executor: ExecutorConfig::default(),
            build: BuildConfig::default(),
            principal: format!("{} (object id {})", account.username, account.object_id),
            login_enterprise: None,
        });
        Ok(self.session_info(config))
    }

    pub fn session_info(&self, config: &SignInConfig) -> SessionInfo {
        let credential = self.session.read().ok().and_then(|s| s.clone());
        SessionInfo {
            signed_in: credential.is_some(),
            name: credential.as_ref().map(|c| c.account().name.clone()),
            username: credential.as_ref().map(|c| c.account().username.clone()),
            tenant_id: credential.as_ref().map(|c| c.tenant_id().to_string()),
            cloud: config.cloud.name.clone(),
            ended_reason: self.session_ended.read().ok().and_then(|r| r.clone()),
            secret_store_problem: self.secret_store().err().map(|e| e.to_string()),
        }
    }

    /// Entra refused the session (its refresh token expired or was revoked): forget it and go back to sign-in,
    /// saying why. Nothing else is lost: the cache and journals stay.
    pub(crate) fn end_session(&self, reason: &str) {
        if self.session.read().map(|s| s.is_none()).unwrap_or(true) {
            return;
        }
        tracing::warn!(target: "session", "the session ended: {reason}");
        if let Ok(saved) = self.saved_session() {
            let _ = saved.forget();
        }
        if let Ok(mut s) = self.session.write() {
            *s = None;
        }
        if let Ok(mut r) = self.session_ended.write() {
            *r = Some(reason.to_string());
        }
        crate::audit::record_automatic(&self.store, "session.ended", "Entra", serde_json::json!({"reason": reason}));
        self.disconnect();
    }

    /// Resume the saved session, if there is one: no browser, the refresh token does it.
    pub fn restore_session(&self, config: &SignInConfig) -> Result<SessionInfo, EngineError> {
        let saved = self.saved_session()?;
        let Some((account, refresh_token)) = saved.load()? else { return Ok(self.session_info(config)) };
        let app = PublicClientApp::new(config.cloud.clone(), &config.client_id, &account.tenant_id);
        let credential =
            RefreshTokenCredential::new(Self::http(config)?, &app, account, refresh_token, Arc::new(saved));
        let tenant = self.store.setting(TENANT_KEY)?;
        self.connect_session(config, credential, tenant.as_deref())
    }

    /// Sign in through the browser: `open` is handed the Entra authorize URL (the app opens the system browser);
    /// a loopback listener takes the redirect.
    pub async fn sign_in_with_browser<F>(
        &self,
        config: &SignInConfig,
        open: F,
        cancel: CancellationToken,
    ) -> Result<SessionInfo, EngineError>
    where
        F: FnOnce(&reqwest::Url) -> Result<(), String> + Send,
    {
        let saved = Arc::new(self.saved_session()?);
        let app = PublicClientApp::new(config.cloud.clone(), &config.client_id, "organizations");
        let http = Self::http(config)?;
        let signed_in = AuthCodeFlow::new(http.clone(), app.clone()).sign_in(open, cancel).await?;
        let credential = RefreshTokenCredential::from_sign_in(http, &app, signed_in, saved).await?;
        self.connect_session(config, credential, None)
    }

    /// Sign in with a device code: `on_prompt` shows the code and URL; this returns once the person entered it.
    pub async fn sign_in_with_device_code<F>(
        &self,
        config: &SignInConfig,
        on_prompt: F,
        cancel: CancellationToken,
    ) -> Result<SessionInfo, EngineError>
    where
        F: FnOnce(&DeviceCodePrompt) + Send,
    {
        let saved = Arc::new(self.saved_session()?);
        let app = PublicClientApp::new(config.cloud.clone(), &config.client_id, "organizations");
        let http = Self::http(config)?;
        let signed_in = DeviceCodeFlow::new(http.clone(), app.clone()).sign_in(on_prompt, cancel).await?;
        let credential = RefreshTokenCredential::from_sign_in(http, &app, signed_in, saved).await?;
        self.connect_session(config, credential, None)
    }

    /// The tenants the signed-in person reaches.
    pub async fn tenants(&self) -> Result<Vec<TenantChoice>, EngineError> {
        let client = self.connection()?.client.clone();
        let current = self.connection()?.tenant_id.clone();
        let tenants: Vec<TenantInfo> = list_tenants(&client).await?;
        let mut out = Vec::new();
        for t in tenants {
            let name = t.display_name.clone().unwrap_or_else(|| t.tenant_id.clone());
            self.store.set_setting(&format!("entra.tenantName.{}", t.tenant_id), &name)?;
            out.push(TenantChoice {
                current: t.tenant_id.eq_ignore_ascii_case(&current),
                tenant_id: t.tenant_id,
                name,
                default_domain: t.default_domain,
            });
        }
        Ok(out)
    }

    /// Work in another tenant the person reaches, with the same session (its refresh token is redeemed there).
    pub fn switch_tenant(&self, config: &SignInConfig, tenant_id: &str) -> Result<SessionInfo, EngineError> {
        crate::pipeline::check_guid(tenant_id)?;
        let credential = self
            .session
            .read()
            .ok()
            .and_then(|s| s.clone())
            .ok_or_else(|| EngineError::InvalidInput("sign in first".into()))?;
        self.audit("session.tenant", tenant_id, serde_json::json!({"tenantId": tenant_id}))?;
        self.connect_session(config, credential, Some(tenant_id))
    }

    /// Forget the session on this machine (the refresh token and who it was).
    pub fn sign_out(&self, config: &SignInConfig) -> Result<SessionInfo, EngineError> {
        if self.store.rollouts()?.iter().any(|r| r.state == "running") {
            return Err(EngineError::InvalidInput(
                "a rollout is running: pause or finish it before signing out, or it would stop half-way".into(),
            ));
        }
        self.audit("session.signOut", "Entra", serde_json::json!({}))?;
        self.saved_session()?.forget()?;
        if let Ok(mut s) = self.session.write() {
            *s = None;
        }
        self.disconnect();
        Ok(self.session_info(config))
    }
}
