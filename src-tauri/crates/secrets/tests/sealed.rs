//! Secrets sealed under a per-profile key, stored in the app's real SQLite file: round trip, tamper detection, no
//! plaintext on disk, and no store at all without a keyring. The data keys live in memory here; the OS keyring has
//! its own test (`os_keyring.rs`).

use std::sync::Arc;

use ringmaster_secrets::{
    DataKey, DataKeys, InMemoryDataKeys, KeyringSecretStore, OsKeyring, SealedSecret, SecretBlobs, SecretError,
    SecretStore, KEYRING_SERVICE,
};
use ringmaster_store::Store;

const PLANTED: &str = "1.AQ-planted-refresh-token-7f3a9c2e51d84b06-do-not-leak";

struct Fixture {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
    db: Arc<Store>,
    keys: Arc<InMemoryDataKeys>,
    store: KeyringSecretStore,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ringmaster.db");
    let db = Arc::new(Store::open(&path).unwrap());
    let keys = Arc::new(InMemoryDataKeys::new());
    let store = KeyringSecretStore::with_data_keys(db.clone(), keys.clone()).unwrap();
    Fixture { _dir: dir, path, db, keys, store }
}

fn count(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).filter(|w| *w == needle).count()
}

#[test]
fn secrets_round_trip_through_sqlite() {
    let f = fixture();
    f.store.put("contoso", "refresh-token", PLANTED).unwrap();
    f.store.put("contoso", "client-secret", "sim~abc").unwrap();
    f.store.put("fabrikam", "refresh-token", "another").unwrap();
    assert_eq!(f.store.get("contoso", "refresh-token").unwrap().unwrap().expose(), PLANTED);
    assert_eq!(f.store.get("contoso", "client-secret").unwrap().unwrap().expose(), "sim~abc");
    assert_eq!(f.store.get("fabrikam", "refresh-token").unwrap().unwrap().expose(), "another");
    assert!(f.store.get("contoso", "missing").unwrap().is_none());

    // A rotated refresh token replaces the old one, with a new nonce.
    let before = f.db.get_sealed("contoso", "refresh-token").unwrap().unwrap();
    f.store.put("contoso", "refresh-token", "rotated").unwrap();
    let after = f.db.get_sealed("contoso", "refresh-token").unwrap().unwrap();
    assert_ne!(before.nonce, after.nonce, "a fresh nonce per write");
    assert_eq!(after.nonce.len(), 12);
    assert_eq!(f.store.get("contoso", "refresh-token").unwrap().unwrap().expose(), "rotated");

    // Reopening the file with the same keys reads them back.
    let reopened = KeyringSecretStore::with_data_keys(Arc::new(Store::open(&f.path).unwrap()), f.keys.clone()).unwrap();
    assert_eq!(reopened.get("fabrikam", "refresh-token").unwrap().unwrap().expose(), "another");

    assert!(f.store.delete("contoso", "client-secret").unwrap());
    assert!(f.store.get("contoso", "client-secret").unwrap().is_none());
    f.store.delete_profile("fabrikam").unwrap();
    assert!(f.keys.get("fabrikam").unwrap().is_none(), "the profile's key goes with it");
    assert!(f.store.get("fabrikam", "refresh-token").unwrap().is_none());
}

#[test]
fn no_plaintext_reaches_the_sqlite_file() {
    let f = fixture();
    f.store.put("contoso", "refresh-token", PLANTED).unwrap();
    f.store.put("contoso", "refresh-token-2", PLANTED).unwrap();
    // Every file SQLite wrote (the database, its WAL and shared memory), before and after a checkpoint.
    let scan = |when: &str| {
        for entry in std::fs::read_dir(f.path.parent().unwrap()).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(count(&bytes, PLANTED.as_bytes()), 0, "{when}: plaintext in {}", path.display());
            assert_eq!(count(&bytes, b"do-not-leak"), 0, "{when}: part of the plaintext in {}", path.display());
        }
    };
    scan("in the WAL");
    let key = f.keys.get("contoso").unwrap().unwrap();
    drop(f.store);
    drop(f.db);
    scan("after checkpoint");
    let bytes = std::fs::read(&f.path).unwrap();
    assert_eq!(count(&bytes, key.as_bytes()), 0, "the key is not in the file either");
    assert!(count(&bytes, b"refresh-token") > 0, "the scan does look at the rows written");
}

#[test]
fn tampered_ciphertext_nonce_key_or_place_fails_to_decrypt() {
    let f = fixture();
    f.store.put("contoso", "refresh-token", PLANTED).unwrap();
    let good = f.db.get_sealed("contoso", "refresh-token").unwrap().unwrap();
    let decrypt_error = |store: &KeyringSecretStore, name: &str| match store.get("contoso", name) {
        Err(SecretError::Decrypt { .. }) => {}
        other => panic!("expected a decrypt error, got {other:?}"),
    };

    let mut flipped = good.clone();
    flipped.ciphertext[3] ^= 0x01;
    f.db.put_sealed("contoso", "refresh-token", &flipped).unwrap();
    decrypt_error(&f.store, "refresh-token");

    let mut renonced = good.clone();
    renonced.nonce[0] ^= 0x80;
    f.db.put_sealed("contoso", "refresh-token", &renonced).unwrap();
    decrypt_error(&f.store, "refresh-token");

    let mut truncated = good.clone();
    truncated.ciphertext.pop();
    f.db.put_sealed("contoso", "refresh-token", &truncated).unwrap();
    decrypt_error(&f.store, "refresh-token");

    // Moved to another name: the associated data (profile + name) no longer matches.
    f.db.put_sealed("contoso", "client-secret", &good).unwrap();
    decrypt_error(&f.store, "client-secret");

    // The right bytes under another key (the keyring entry was replaced).
    f.db.put_sealed("contoso", "refresh-token", &good).unwrap();
    assert_eq!(f.store.get("contoso", "refresh-token").unwrap().unwrap().expose(), PLANTED);
    let other_keys = Arc::new(InMemoryDataKeys::new());
    other_keys.put("contoso", &DataKey::generate().unwrap()).unwrap();
    let wrong_key = KeyringSecretStore::with_data_keys(f.db.clone(), other_keys).unwrap();
    decrypt_error(&wrong_key, "refresh-token");

    // No key at all: said so, not a decrypt error.
    let no_key = KeyringSecretStore::with_data_keys(f.db.clone(), Arc::new(InMemoryDataKeys::new())).unwrap();
    assert!(matches!(no_key.get("contoso", "refresh-token"), Err(SecretError::KeyMissing { .. })));

    let mut short_nonce = good;
    short_nonce.nonce.truncate(8);
    f.db.put_sealed("contoso", "refresh-token", &short_nonce).unwrap();
    assert!(matches!(f.store.get("contoso", "refresh-token"), Err(SecretError::Malformed { .. })));
    // Errors never carry the secret.
    let e = f.store.get("contoso", "refresh-token").unwrap_err();
    assert!(!format!("{e} {e:?}").contains(PLANTED));
}

/// A keyring that accepts writes and cannot read them back, as the Linux kernel keyring does outside a session.
struct WriteOnlyKeyring;

impl DataKeys for WriteOnlyKeyring {
    fn probe(&self) -> Result<(), SecretError> {
        Err(SecretError::NoKeyring("cannot read back what it stored: No matching entry found in secure storage".into()))
    }
    fn get(&self, _: &str) -> Result<Option<DataKey>, SecretError> {
        Ok(None)
    }
    fn put(&self, _: &str, _: &DataKey) -> Result<(), SecretError> {
        Ok(())
    }
    fn delete(&self, _: &str) -> Result<(), SecretError> {
        Ok(())
    }
}

#[test]
fn without_a_keyring_there_is_no_store_and_nothing_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Store::open(&dir.path().join("ringmaster.db")).unwrap());
    let err = KeyringSecretStore::with_data_keys(db.clone(), Arc::new(WriteOnlyKeyring)).unwrap_err();
    assert!(matches!(err, SecretError::NoKeyring(_)));
    assert!(
        err.to_string().starts_with("no OS keyring available; Ringmaster will not store secrets in clear"),
        "{err}"
    );
    assert_eq!(db.get_sealed("p", "n").unwrap(), None::<SealedSecret>);
}

#[test]
fn the_os_keyring_either_works_or_the_store_refuses_to_exist() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Store::open(&dir.path().join("ringmaster.db")).unwrap());
    match KeyringSecretStore::with_data_keys(db, Arc::new(OsKeyring::new(&format!("{KEYRING_SERVICE}-test")))) {
        Ok(_) => eprintln!("the OS keyring works here; os_keyring.rs exercises it"),
        Err(e) => {
            assert!(matches!(e, SecretError::NoKeyring(_)), "{e:?}");
            assert!(e.to_string().starts_with("no OS keyring available; Ringmaster will not store secrets in clear"));
            eprintln!("no usable OS keyring here, as expected outside `keyctl session -`: {e}");
        }
    }
}
