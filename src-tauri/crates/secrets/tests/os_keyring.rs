//! The real OS keyring. On Linux the kernel keyring (keyring's `linux-native`) only reads back inside a session
//! keyring, so run this under one:
//!
//! ```text
//! keyctl session - cargo test -p ringmaster-secrets --test os_keyring
//! ```
//!
//! (`keyctl` comes with the `keyutils` package.) Where the keyring cannot store and read back a value, the test
//! prints why and passes without checking anything else.

use std::sync::Arc;

use ringmaster_secrets::{DataKeys, KeyringSecretStore, OsKeyring, SecretError, SecretStore, KEYRING_SERVICE};
use ringmaster_store::Store;

#[test]
fn secrets_round_trip_with_the_key_in_the_os_keyring() {
    // A service of its own, so the test never touches the app's entries.
    let service = format!("{KEYRING_SERVICE}-test-{}", std::process::id());
    let keyring = Arc::new(OsKeyring::new(&service));
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Store::open(&dir.path().join("ringmaster.db")).unwrap());
    let store = match KeyringSecretStore::with_data_keys(db.clone(), keyring.clone()) {
        Ok(s) => s,
        Err(SecretError::NoKeyring(why)) => {
            eprintln!(
                "SKIPPED: the OS keyring cannot store and read back here ({why}). On Linux run: \
                 keyctl session - cargo test -p ringmaster-secrets --test os_keyring"
            );
            return;
        }
        Err(e) => panic!("unexpected error: {e}"),
    };
    let profile = "keyring-test";
    store.put(profile, "refresh-token", "1.AQ-from-the-real-keyring").unwrap();
    let key = keyring.get(profile).unwrap().expect("the data key is in the keyring");
    assert_eq!(key.as_bytes().len(), 32);

    // A second store (a restarted app) finds the key in the keyring, not in memory.
    let again = KeyringSecretStore::with_data_keys(db, Arc::new(OsKeyring::new(&service))).unwrap();
    assert_eq!(again.get(profile, "refresh-token").unwrap().unwrap().expose(), "1.AQ-from-the-real-keyring");

    again.delete_profile(profile).unwrap();
    assert!(keyring.get(profile).unwrap().is_none(), "the key left the keyring with the profile");
    eprintln!("the OS keyring round trip passed");
}
