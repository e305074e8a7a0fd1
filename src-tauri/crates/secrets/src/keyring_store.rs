//! Envelope encryption: a per-profile data key in the OS keyring, ciphertext in the database.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::TryRngCore;
use zeroize::Zeroizing;

use crate::{SealedSecret, Secret, SecretBlobs, SecretError, SecretStore};

/// The keyring service name data keys are stored under (user: `data-key/<profile>`).
pub const KEYRING_SERVICE: &str = "ringmaster";
const NONCE_LEN: usize = 12;

/// A profile's 256-bit data key. Wiped from memory on drop; never in `Debug` output.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// 32 bytes from the operating system's random source.
    pub fn generate() -> Result<DataKey, SecretError> {
        let mut k = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng
            .try_fill_bytes(&mut k[..])
            .map_err(|e| SecretError::Keyring(format!("no randomness for a new key: {e}")))?;
        Ok(DataKey(k))
    }
    pub fn from_bytes(bytes: &[u8]) -> Option<DataKey> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(DataKey(Zeroizing::new(arr)))
    }
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(<redacted>)")
    }
}

/// Where the per-profile data keys live: the OS keyring in the app ([`OsKeyring`]).
pub trait DataKeys: Send + Sync {
    /// Fail with [`SecretError::NoKeyring`] unless a key can be stored and read back.
    fn probe(&self) -> Result<(), SecretError>;
    fn get(&self, profile: &str) -> Result<Option<DataKey>, SecretError>;
    fn put(&self, profile: &str, key: &DataKey) -> Result<(), SecretError>;
    fn delete(&self, profile: &str) -> Result<(), SecretError>;
}

/// The OS keyring through the `keyring` crate: macOS Keychain, Windows Credential Manager, Linux kernel keyutils
/// (session keyring linked to the persistent one: it survives logout for a few days, not a reboot).
#[derive(Debug, Clone)]
pub struct OsKeyring {
    service: String,
}

impl OsKeyring {
    pub fn new(service: &str) -> Self {
        OsKeyring { service: service.to_string() }
    }

    fn entry(&self, user: &str) -> Result<keyring::Entry, SecretError> {
        keyring::Entry::new(&self.service, user).map_err(|e| SecretError::Keyring(e.to_string()))
    }
}

impl DataKeys for OsKeyring {
    fn probe(&self) -> Result<(), SecretError> {
        let no = |what: &str, e: keyring::Error| SecretError::NoKeyring(format!("{what}: {e}"));
        let value = DataKey::generate()?;
        // Unique per probe: two stores probing at once must not read each other's value.
        let user = format!(
            "probe/{}/{:x}",
            std::process::id(),
            u64::from_le_bytes(value.as_bytes()[..8].try_into().unwrap_or_default())
        );
        let entry = keyring::Entry::new(&self.service, &user).map_err(|e| no("cannot open an entry", e))?;
        entry.set_secret(value.as_bytes()).map_err(|e| no("cannot store", e))?;
        let back = entry.get_secret().map_err(|e| no("cannot read back what it stored", e));
        let _ = entry.delete_credential();
        // Some keyrings accept a write and then cannot read it (the Linux kernel keyring outside a session).
        if back?.as_slice() != value.as_bytes() {
            return Err(SecretError::NoKeyring("it returned something other than what was stored".into()));
        }
        Ok(())
    }

    fn get(&self, profile: &str) -> Result<Option<DataKey>, SecretError> {
        match self.entry(&format!("data-key/{profile}"))?.get_secret() {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                DataKey::from_bytes(&bytes).map(Some).ok_or_else(|| {
                    SecretError::Keyring(format!("the key of profile '{profile}' in the keyring is not 32 bytes"))
                })
            }
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(e) => Err(SecretError::Keyring(e.to_string())),
        }
    }

    fn put(&self, profile: &str, key: &DataKey) -> Result<(), SecretError> {
        self.entry(&format!("data-key/{profile}"))?
            .set_secret(key.as_bytes())
            .map_err(|e| SecretError::Keyring(e.to_string()))
    }

    fn delete(&self, profile: &str) -> Result<(), SecretError> {
        match self.entry(&format!("data-key/{profile}"))?.delete_credential() {
            Ok(()) | Err(keyring::Error::NoEntry) => Ok(()),
            Err(e) => Err(SecretError::Keyring(e.to_string())),
        }
    }
}

/// Data keys in process memory: for tests of everything but the OS keyring itself.
#[derive(Default)]
pub struct InMemoryDataKeys {
    keys: Mutex<HashMap<String, DataKey>>,
}

impl InMemoryDataKeys {
    pub fn new() -> Self {
        Self::default()
    }
}

impl DataKeys for InMemoryDataKeys {
    fn probe(&self) -> Result<(), SecretError> {
        Ok(())
    }
    fn get(&self, profile: &str) -> Result<Option<DataKey>, SecretError> {
        Ok(self.keys.lock().map_err(|_| SecretError::Poisoned)?.get(profile).cloned())
    }
    fn put(&self, profile: &str, key: &DataKey) -> Result<(), SecretError> {
        self.keys.lock().map_err(|_| SecretError::Poisoned)?.insert(profile.to_string(), key.clone());
        Ok(())
    }
    fn delete(&self, profile: &str) -> Result<(), SecretError> {
        self.keys.lock().map_err(|_| SecretError::Poisoned)?.remove(profile);
        Ok(())
    }
}

/// Secrets sealed with ChaCha20-Poly1305 under a per-profile key kept in the OS keyring; nonce and ciphertext in
/// [`SecretBlobs`] (the app's SQLite file).
///
/// Only the 32-byte key goes to the keyring: Windows limits a credential to 2,560 bytes, which a refresh token can
/// exceed, and one key per profile keeps keyring prompts and entries few.
pub struct KeyringSecretStore {
    blobs: Arc<dyn SecretBlobs>,
    keys: Arc<dyn DataKeys>,
    /// Keys already read from the keyring this run.
    cache: Mutex<HashMap<String, DataKey>>,
}

impl fmt::Debug for KeyringSecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyringSecretStore")
    }
}

/// Associated data: the secret's place, so a ciphertext copied to another profile or name does not decrypt.
fn associated_data(profile: &str, name: &str) -> Vec<u8> {
    let mut aad = b"ringmaster-secret/v1\0".to_vec();
    aad.extend_from_slice(&(profile.len() as u32).to_be_bytes());
    aad.extend_from_slice(profile.as_bytes());
    aad.extend_from_slice(name.as_bytes());
    aad
}

impl KeyringSecretStore {
    /// Keys in the OS keyring; fails with "no OS keyring available; Ringmaster will not store secrets in clear"
    /// when the keyring cannot store and read back a value.
    pub fn new(blobs: Arc<dyn SecretBlobs>) -> Result<Self, SecretError> {
        Self::with_data_keys(blobs, Arc::new(OsKeyring::new(KEYRING_SERVICE)))
    }

    pub fn with_data_keys(blobs: Arc<dyn SecretBlobs>, keys: Arc<dyn DataKeys>) -> Result<Self, SecretError> {
        keys.probe()?;
        Ok(KeyringSecretStore { blobs, keys, cache: Mutex::new(HashMap::new()) })
    }

    /// The profile's key from the cache or the keyring.
    fn key(&self, profile: &str) -> Result<Option<DataKey>, SecretError> {
        let mut cache = self.cache.lock().map_err(|_| SecretError::Poisoned)?;
        if let Some(k) = cache.get(profile) {
            return Ok(Some(k.clone()));
        }
        let key = self.keys.get(profile)?;
        if let Some(k) = &key {
            cache.insert(profile.to_string(), k.clone());
        }
        Ok(key)
    }

    /// The profile's key, made and stored in the keyring on its first secret.
    fn key_or_create(&self, profile: &str) -> Result<DataKey, SecretError> {
        if let Some(k) = self.key(profile)? {
            return Ok(k);
        }
        let k = DataKey::generate()?;
        self.keys.put(profile, &k)?;
        self.cache.lock().map_err(|_| SecretError::Poisoned)?.insert(profile.to_string(), k.clone());
        Ok(k)
    }
}

impl SecretStore for KeyringSecretStore {
    fn put(&self, profile: &str, name: &str, secret: &str) -> Result<(), SecretError> {
        let key = self.key_or_create(profile)?;
        let mut nonce = [0u8; NONCE_LEN];
        // A fresh random nonce per write: 96 bits make a repeat under one key negligible.
        rand::rngs::OsRng
            .try_fill_bytes(&mut nonce)
            .map_err(|e| SecretError::Keyring(format!("no randomness for a nonce: {e}")))?;
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_bytes()));
        let aad = associated_data(profile, name);
        let ciphertext =
            cipher.encrypt(Nonce::from_slice(&nonce), Payload { msg: secret.as_bytes(), aad: &aad }).map_err(|_| {
                SecretError::Malformed { profile: profile.into(), name: name.into(), why: "encryption failed" }
            })?;
        self.blobs.put_sealed(profile, name, &SealedSecret { nonce: nonce.to_vec(), ciphertext })?;
        Ok(())
    }

    fn get(&self, profile: &str, name: &str) -> Result<Option<Secret>, SecretError> {
        let Some(sealed) = self.blobs.get_sealed(profile, name)? else {
            return Ok(None);
        };
        let Some(key) = self.key(profile)? else {
            return Err(SecretError::KeyMissing { profile: profile.into(), name: name.into() });
        };
        if sealed.nonce.len() != NONCE_LEN {
            return Err(SecretError::Malformed {
                profile: profile.into(),
                name: name.into(),
                why: "wrong nonce length",
            });
        }
        let cipher = ChaCha20Poly1305::new(Key::from_slice(key.as_bytes()));
        let aad = associated_data(profile, name);
        let plain = Zeroizing::new(
            cipher
                .decrypt(Nonce::from_slice(&sealed.nonce), Payload { msg: &sealed.ciphertext, aad: &aad })
                .map_err(|_| SecretError::Decrypt { profile: profile.into(), name: name.into() })?,
        );
        let text = std::str::from_utf8(&plain).map_err(|_| SecretError::Malformed {
            profile: profile.into(),
            name: name.into(),
            why: "not UTF-8",
        })?;
        Ok(Some(Secret::new(text.to_string())))
    }

    fn delete(&self, profile: &str, name: &str) -> Result<bool, SecretError> {
        Ok(self.blobs.delete_sealed(profile, name)?)
    }

    fn delete_profile(&self, profile: &str) -> Result<(), SecretError> {
        self.blobs.delete_profile_sealed(profile)?;
        self.keys.delete(profile)?;
        self.cache.lock().map_err(|_| SecretError::Poisoned)?.remove(profile);
        Ok(())
    }
}
