//! The Login Enterprise appliance a real tenant's gates use: its URL (and a private CA, if it has one) in the
//! settings, its access token in the secret store (sealed in SQLite, the key in the OS keyring). The demo's
//! simulated appliance, or one given by the environment, takes precedence and is never stored.

use serde::{Deserialize, Serialize};
use specta::Type;

use crate::gates::LoginEnterpriseConnection;
use crate::{Engine, EngineError};

const URL_KEY: &str = "loginEnterprise.url";
const CA_KEY: &str = "loginEnterprise.caPem";
const TEST_KEY: &str = "loginEnterprise.defaultTest";
const TOKEN_NAME: &str = "loginEnterprise.token";
/// The secret store profile for this machine's tenant connection.
pub const SECRET_PROFILE: &str = "default";

/// What the settings screen shows about the appliance. The token itself never leaves the engine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct LoginEnterpriseSettings {
    /// `demo` (the simulated appliance), `environment` (RINGMASTER_LE_URL / _TOKEN), `stored` or `none`.
    pub source: String,
    pub url: Option<String>,
    pub token_stored: bool,
    pub has_ca: bool,
    pub default_test: Option<String>,
    /// Why secrets cannot be stored here, when they cannot.
    pub secret_store_problem: Option<String>,
}

/// An appliance URL Ringmaster will send a token to: https, a host, no credentials, query or fragment.
pub fn validate_appliance_url(url: &str) -> Result<String, String> {
    let trimmed = url.trim().trim_end_matches('/');
    let parsed = reqwest::Url::parse(trimmed).map_err(|e| format!("'{trimmed}' is not a URL: {e}"))?;
    if parsed.scheme() != "https" {
        return Err("the appliance URL must start with https:// (the access token must not travel in clear)".into());
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err("the appliance URL needs a host name".into());
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err("put the access token in its own field, not in the URL".into());
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err("the appliance URL cannot have a query (?) or a fragment (#)".into());
    }
    if trimmed.len() > 2048 {
        return Err("the appliance URL is longer than 2,048 characters".into());
    }
    Ok(trimmed.to_string())
}

impl Engine {
    /// The appliance the gates use: the connection's own (demo, environment), else the stored one.
    pub(crate) fn le_connection(&self) -> Option<LoginEnterpriseConnection> {
        if let Some(le) = self.connection().ok().and_then(|c| c.login_enterprise.clone()) {
            return Some(le);
        }
        let url = self.store.setting(URL_KEY).ok().flatten()?;
        let token = self.secret_store().ok()?.get(SECRET_PROFILE, TOKEN_NAME).ok().flatten()?;
        Some(LoginEnterpriseConnection {
            base_url: url,
            token: token.expose().to_string(),
            ca_pem: self.store.setting(CA_KEY).ok().flatten().map(String::into_bytes),
            default_test: self.store.setting(TEST_KEY).ok().flatten(),
        })
    }

    pub fn login_enterprise_settings(&self) -> Result<LoginEnterpriseSettings, EngineError> {
        let secret_store_problem = self.secret_store().err().map(|e| e.to_string());
        if let Some(le) = self.connection().ok().and_then(|c| c.login_enterprise.clone()) {
            let source = if self.connection()?.mode == "demo" { "demo" } else { "environment" };
            return Ok(LoginEnterpriseSettings {
                source: source.into(),
                url: Some(le.base_url),
                token_stored: false,
                has_ca: le.ca_pem.is_some(),
                default_test: le.default_test,
                secret_store_problem,
            });
        }
        let url = self.store.setting(URL_KEY)?;
        let token_stored = match self.secret_store() {
            Ok(s) => s.get(SECRET_PROFILE, TOKEN_NAME).map_err(|e| EngineError::InvalidInput(e.to_string()))?.is_some(),
            Err(_) => false,
        };
        Ok(LoginEnterpriseSettings {
            source: if url.is_some() && token_stored { "stored" } else { "none" }.into(),
            url,
            token_stored,
            has_ca: self.store.setting(CA_KEY)?.is_some(),
            default_test: self.store.setting(TEST_KEY)?,
            secret_store_problem,
        })
    }

    /// Keep the appliance for this machine: URL (and a private CA, PEM) in the settings, the access token sealed in
    /// the secret store. An empty token keeps the stored one. Refused, with the reason, without a secret store.
    pub fn set_login_enterprise(
        &self,
        url: &str,
        token: &str,
        ca_pem: Option<&str>,
        default_test: Option<&str>,
    ) -> Result<LoginEnterpriseSettings, EngineError> {
        let url = validate_appliance_url(url).map_err(EngineError::InvalidInput)?;
        let token = token.trim();
        if token.len() > 8192 || token.chars().any(char::is_whitespace) {
            return Err(EngineError::InvalidInput(
                "the access token is one word of at most 8,192 characters: paste it as the appliance shows it".into(),
            ));
        }
        let ca = ca_pem.map(str::trim).filter(|c| !c.is_empty());
        if let Some(pem) = ca {
            reqwest::Certificate::from_pem(pem.as_bytes())
                .map_err(|e| EngineError::InvalidInput(format!("the CA certificate is not valid PEM: {e}")))?;
        }
        let secrets = self.secret_store()?;
        let has_token =
            secrets.get(SECRET_PROFILE, TOKEN_NAME).map_err(|e| EngineError::InvalidInput(e.to_string()))?.is_some();
        if token.is_empty() && !has_token {
            return Err(EngineError::InvalidInput("enter the appliance's access token".into()));
        }
        // The audit entry names the appliance, never the token.
        self.audit(
            "loginEnterprise.configure",
            &url,
            serde_json::json!({"url": url, "tokenChanged": !token.is_empty(), "privateCa": ca.is_some()}),
        )?;
        if !token.is_empty() {
            secrets.put(SECRET_PROFILE, TOKEN_NAME, token).map_err(|e| EngineError::InvalidInput(e.to_string()))?;
        }
        self.store.set_setting(URL_KEY, &url)?;
        match ca {
            Some(pem) => self.store.set_setting(CA_KEY, pem)?,
            None => self.store.delete_setting(CA_KEY)?,
        }
        match default_test.map(str::trim).filter(|t| !t.is_empty()) {
            Some(t) => self.store.set_setting(TEST_KEY, t)?,
            None => self.store.delete_setting(TEST_KEY)?,
        }
        self.login_enterprise_settings()
    }

    /// Forget the stored appliance and its token.
    pub fn clear_login_enterprise(&self) -> Result<LoginEnterpriseSettings, EngineError> {
        self.audit("loginEnterprise.remove", "Login Enterprise", serde_json::json!({}))?;
        if let Ok(secrets) = self.secret_store() {
            secrets.delete(SECRET_PROFILE, TOKEN_NAME).map_err(|e| EngineError::InvalidInput(e.to_string()))?;
        }
        for key in [URL_KEY, CA_KEY, TEST_KEY] {
            self.store.delete_setting(key)?;
        }
        self.login_enterprise_settings()
    }
}

#[cfg(test)]
mod tests {
    use super::validate_appliance_url;

    #[test]
    fn only_plain_https_appliance_urls_are_accepted() {
        assert_eq!(validate_appliance_url(" https://le.contoso.com/ ").unwrap(), "https://le.contoso.com");
        for bad in [
            "http://le.contoso.com",
            "https://",
            "le.contoso.com",
            "https://user:pw@le.contoso.com",
            "https://le.contoso.com/?token=x",
            "https://le.contoso.com/#x",
        ] {
            assert!(validate_appliance_url(bad).is_err(), "{bad} accepted");
        }
    }
}
