//! Secrets the app keeps for a profile (a refresh token, a client secret): never in clear on disk.
//!
//! [`KeyringSecretStore`] keeps one random 256-bit data key per profile in the OS keyring and the secrets themselves,
//! encrypted with it (ChaCha20-Poly1305), in the local database through [`SecretBlobs`]. Only the key goes to the
//! keyring because Windows Credential Manager limits a credential to 2,560 bytes, less than a refresh token can be.
//! Without a working keyring the store cannot be built: it never falls back to clear text.
//!
//! [`InMemorySecretStore`] is for tests and for a session that must not outlive the process.

mod keyring_store;

use std::collections::HashMap;
use std::fmt;
use std::sync::Mutex;

use ringmaster_store::StoreError;
use zeroize::Zeroizing;

pub use keyring_store::{DataKey, DataKeys, InMemoryDataKeys, KeyringSecretStore, OsKeyring, KEYRING_SERVICE};
pub use ringmaster_store::{SealedSecret, SecretBlobs};

/// A secret read back. Its value never appears in `Debug` output and is wiped from memory on drop.
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: String) -> Self {
        Secret(Zeroizing::new(value))
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("no OS keyring available; Ringmaster will not store secrets in clear ({0})")]
    NoKeyring(String),
    #[error("the OS keyring refused the request: {0}")]
    Keyring(String),
    #[error("the secret '{name}' of profile '{profile}' could not be decrypted: it was altered, or the profile's key in the OS keyring is not the one it was sealed with")]
    Decrypt { profile: String, name: String },
    #[error("the secret '{name}' of profile '{profile}' is stored but the profile's key is missing from the OS keyring; sign in or enter it again")]
    KeyMissing { profile: String, name: String },
    #[error("the stored secret '{name}' of profile '{profile}' is malformed: {why}")]
    Malformed { profile: String, name: String, why: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("secret store lock poisoned")]
    Poisoned,
}

/// Named secrets per profile.
pub trait SecretStore: Send + Sync {
    /// Insert or replace.
    fn put(&self, profile: &str, name: &str, secret: &str) -> Result<(), SecretError>;
    fn get(&self, profile: &str, name: &str) -> Result<Option<Secret>, SecretError>;
    /// Whether there was one.
    fn delete(&self, profile: &str, name: &str) -> Result<bool, SecretError>;
    /// Every secret of the profile, and its key.
    fn delete_profile(&self, profile: &str) -> Result<(), SecretError>;
}

/// Secrets in process memory only.
#[derive(Default)]
pub struct InMemorySecretStore {
    secrets: Mutex<HashMap<(String, String), Zeroizing<String>>>,
}

impl InMemorySecretStore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl fmt::Debug for InMemorySecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.secrets.lock().map(|s| s.len()).unwrap_or_default();
        write!(f, "InMemorySecretStore({n} secrets)")
    }
}

impl SecretStore for InMemorySecretStore {
    fn put(&self, profile: &str, name: &str, secret: &str) -> Result<(), SecretError> {
        let mut s = self.secrets.lock().map_err(|_| SecretError::Poisoned)?;
        s.insert((profile.to_string(), name.to_string()), Zeroizing::new(secret.to_string()));
        Ok(())
    }

    fn get(&self, profile: &str, name: &str) -> Result<Option<Secret>, SecretError> {
        let s = self.secrets.lock().map_err(|_| SecretError::Poisoned)?;
        Ok(s.get(&(profile.to_string(), name.to_string())).map(|v| Secret::new(v.to_string())))
    }

    fn delete(&self, profile: &str, name: &str) -> Result<bool, SecretError> {
        let mut s = self.secrets.lock().map_err(|_| SecretError::Poisoned)?;
        Ok(s.remove(&(profile.to_string(), name.to_string())).is_some())
    }

    fn delete_profile(&self, profile: &str) -> Result<(), SecretError> {
        let mut s = self.secrets.lock().map_err(|_| SecretError::Poisoned)?;
        s.retain(|(p, _), _| p != profile);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_memory_store_round_trips_per_profile() {
        let store = InMemorySecretStore::new();
        store.put("contoso", "refresh-token", "rt-1").unwrap();
        store.put("contoso", "refresh-token", "rt-2").unwrap();
        store.put("fabrikam", "refresh-token", "rt-9").unwrap();
        assert_eq!(store.get("contoso", "refresh-token").unwrap().unwrap().expose(), "rt-2");
        assert!(store.get("contoso", "other").unwrap().is_none());
        assert!(store.delete("contoso", "refresh-token").unwrap());
        assert!(!store.delete("contoso", "refresh-token").unwrap());
        store.delete_profile("fabrikam").unwrap();
        assert!(store.get("fabrikam", "refresh-token").unwrap().is_none());
        assert_eq!(format!("{:?}", Secret::new("hunter2".into())), "Secret(<redacted>)");
    }
}
