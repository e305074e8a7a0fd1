//! Sealed secrets in the local file: only what `ringmaster-secrets` encrypted (nonce and ciphertext) is stored here;
//! this crate never sees a key or a plaintext.

use rusqlite::{params, OptionalExtension};

use crate::{Store, StoreError};

/// One encrypted secret as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub nonce: Vec<u8>,
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedSecret({} byte nonce, {} byte ciphertext)", self.nonce.len(), self.ciphertext.len())
    }
}

/// Where encrypted secrets are kept, by profile and name.
pub trait SecretBlobs: Send + Sync {
    /// Insert or replace.
    fn put_sealed(&self, profile: &str, name: &str, sealed: &SealedSecret) -> Result<(), StoreError>;
    fn get_sealed(&self, profile: &str, name: &str) -> Result<Option<SealedSecret>, StoreError>;
    /// Whether there was one.
    fn delete_sealed(&self, profile: &str, name: &str) -> Result<bool, StoreError>;
    /// Every secret of a profile; how many there were.
    fn delete_profile_sealed(&self, profile: &str) -> Result<usize, StoreError>;
}

impl SecretBlobs for Store {
    fn put_sealed(&self, profile: &str, name: &str, sealed: &SealedSecret) -> Result<(), StoreError> {
        let now =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        self.conn()?.execute(
            "INSERT INTO secrets(profile, name, nonce, ciphertext, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT(profile, name) DO UPDATE SET nonce = excluded.nonce, ciphertext = excluded.ciphertext,
             updated_at = excluded.updated_at",
            params![profile, name, sealed.nonce, sealed.ciphertext, now],
        )?;
        Ok(())
    }

    fn get_sealed(&self, profile: &str, name: &str) -> Result<Option<SealedSecret>, StoreError> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT nonce, ciphertext FROM secrets WHERE profile = ?1 AND name = ?2",
                params![profile, name],
                |r| Ok(SealedSecret { nonce: r.get(0)?, ciphertext: r.get(1)? }),
            )
            .optional()?)
    }

    fn delete_sealed(&self, profile: &str, name: &str) -> Result<bool, StoreError> {
        Ok(self.conn()?.execute("DELETE FROM secrets WHERE profile = ?1 AND name = ?2", params![profile, name])? > 0)
    }

    fn delete_profile_sealed(&self, profile: &str) -> Result<usize, StoreError> {
        Ok(self.conn()?.execute("DELETE FROM secrets WHERE profile = ?1", params![profile])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_round_trip_and_are_replaced_in_place() {
        let store = Store::open_in_memory().unwrap();
        assert!(store.schema_version().unwrap() >= 4);
        let a = SealedSecret { nonce: vec![1; 12], ciphertext: vec![2; 40] };
        let b = SealedSecret { nonce: vec![3; 12], ciphertext: vec![4; 41] };
        assert_eq!(store.get_sealed("p", "refresh-token").unwrap(), None);
        store.put_sealed("p", "refresh-token", &a).unwrap();
        store.put_sealed("p", "refresh-token", &b).unwrap();
        store.put_sealed("q", "refresh-token", &a).unwrap();
        assert_eq!(store.get_sealed("p", "refresh-token").unwrap(), Some(b));
        assert_eq!(store.get_sealed("q", "refresh-token").unwrap(), Some(a));
        assert!(store.delete_sealed("p", "refresh-token").unwrap());
        assert!(!store.delete_sealed("p", "refresh-token").unwrap());
        assert_eq!(store.delete_profile_sealed("q").unwrap(), 1);
        assert_eq!(
            format!("{:?}", SealedSecret { nonce: vec![9; 12], ciphertext: vec![7; 3] }),
            "SealedSecret(12 byte nonce, 3 byte ciphertext)"
        );
    }

    #[test]
    fn a_version_3_file_gains_the_secrets_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v3.db");
        {
            let conn = rusqlite::Connection::open(&path).unwrap();
            for (i, sql) in crate::MIGRATIONS.iter().take(3).enumerate() {
                conn.execute_batch(sql).unwrap();
                conn.pragma_update(None, "user_version", (i + 1) as i64).unwrap();
            }
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), crate::MIGRATIONS.len() as i64, "migrated to the newest");
        store.put_sealed("p", "n", &SealedSecret { nonce: vec![0; 12], ciphertext: vec![1; 17] }).unwrap();
    }
}
