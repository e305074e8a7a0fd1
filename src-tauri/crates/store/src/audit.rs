//! The audit log: who did what to which release, pool or master, and when. Append-only and hash-chained: each
//! entry carries the SHA-256 of the previous one, so altering or removing a row breaks every link after it.

use rusqlite::{params, OptionalExtension};
use sha2::{Digest, Sha256};

use crate::{Store, StoreError};

/// The link before the first entry.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub seq: i64,
    pub at: String,
    pub actor: String,
    pub action: String,
    pub subject: String,
    /// JSON, owned by the engine.
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

/// Where the chain first breaks, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokenLink {
    pub seq: i64,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChainCheck {
    pub entries: u64,
    pub first_broken: Option<BrokenLink>,
}

/// The hash of an entry: every field, length-prefixed so no two entries can collide by shifting text between
/// fields.
pub fn entry_hash(
    prev_hash: &str,
    seq: i64,
    at: &str,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &str,
) -> String {
    let mut h = Sha256::new();
    for part in [prev_hash, &seq.to_string(), at, actor, action, subject, detail] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl Store {
    /// Append an entry, chained to the last one, in one transaction.
    pub fn append_audit(
        &self,
        at: &str,
        actor: &str,
        action: &str,
        subject: &str,
        detail: &str,
    ) -> Result<AuditRecord, StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let last: Option<(i64, String)> = tx
            .query_row("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?;
        let (seq, prev_hash) = match last {
            Some((s, h)) => (s + 1, h),
            None => (1, GENESIS_HASH.to_string()),
        };
        let hash = entry_hash(&prev_hash, seq, at, actor, action, subject, detail);
        tx.execute(
            "INSERT INTO audit_log(seq, at, actor, action, subject, detail, prev_hash, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![seq, at, actor, action, subject, detail, prev_hash, hash],
        )?;
        tx.commit()?;
        Ok(AuditRecord {
            seq,
            at: at.into(),
            actor: actor.into(),
            action: action.into(),
            subject: subject.into(),
            detail: detail.into(),
            prev_hash,
            hash,
        })
    }

    /// Newest first: `limit` entries with `seq` below `before` (all when `None`).
    pub fn audit_entries(&self, before: Option<i64>, limit: u32) -> Result<Vec<AuditRecord>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log
             WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2",
        )?;
        let rows = st.query_map(params![before.unwrap_or(i64::MAX), limit], |r| {
            Ok(AuditRecord {
                seq: r.get(0)?,
                at: r.get(1)?,
                actor: r.get(2)?,
                action: r.get(3)?,
                subject: r.get(4)?,
                detail: r.get(5)?,
                prev_hash: r.get(6)?,
                hash: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Walk the whole chain from the first entry: every hash recomputed, every link and sequence number checked.
    pub fn verify_audit(&self) -> Result<ChainCheck, StoreError> {
        let conn = self.conn()?;
        let mut st = conn
            .prepare("SELECT seq, at, actor, action, subject, detail, prev_hash, hash FROM audit_log ORDER BY seq")?;
        let mut rows = st.query([])?;
        let mut expected_prev = GENESIS_HASH.to_string();
        let mut expected_seq = 1i64;
        let mut entries = 0u64;
        while let Some(r) = rows.next()? {
            entries += 1;
            let seq: i64 = r.get(0)?;
            let (at, actor, action, subject, detail): (String, String, String, String, String) =
                (r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?);
            let (prev_hash, hash): (String, String) = (r.get(6)?, r.get(7)?);
            let broken = |reason: String| Ok(ChainCheck { entries, first_broken: Some(BrokenLink { seq, reason }) });
            if seq != expected_seq {
                return broken(format!("entry {expected_seq} is missing (the next entry is {seq})"));
            }
            if prev_hash != expected_prev {
                return broken(format!("entry {seq} does not point at entry {}'s hash", seq - 1));
            }
            if entry_hash(&prev_hash, seq, &at, &actor, &action, &subject, &detail) != hash {
                return broken(format!("entry {seq} was altered after it was written (its hash does not match)"));
            }
            expected_prev = hash;
            expected_seq += 1;
        }
        Ok(ChainCheck { entries, first_broken: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store_with_entries(dir: &std::path::Path, n: usize) -> Store {
        let store = Store::open(&dir.join("audit.db")).unwrap();
        for i in 0..n {
            store.append_audit(&format!("2026-11-27T10:00:{i:02}Z"), "alex", "rollout.start", "hp-test", "{}").unwrap();
        }
        store
    }

    #[test]
    fn an_intact_chain_verifies_and_the_app_cannot_edit_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_entries(dir.path(), 5);
        assert_eq!(store.verify_audit().unwrap(), ChainCheck { entries: 5, first_broken: None });
        let conn = store.conn().unwrap();
        let err = conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 2", []).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{err}");
        assert!(conn.execute("DELETE FROM audit_log WHERE seq = 5", []).is_err());
    }

    #[test]
    fn an_edited_row_is_the_first_broken_link() {
        let dir = tempfile::tempdir().unwrap();
        let store = store_with_entries(dir.path(), 5);
        drop(store);
        // Someone with the file and sqlite3: drop the guard, edit entry 3.
        let raw = rusqlite::Connection::open(dir.path().join("audit.db")).unwrap();
        raw.execute_batch("DROP TRIGGER audit_log_no_update; UPDATE audit_log SET actor = 'mallory' WHERE seq = 3;")
            .unwrap();
        drop(raw);
        let store = Store::open(&dir.path().join("audit.db")).unwrap();
        let check = store.verify_audit().unwrap();
        let broken = check.first_broken.unwrap();
        assert_eq!(broken.seq, 3);
        assert!(broken.reason.contains("altered"), "{}", broken.reason);
    }

    #[test]
    fn a_removed_row_or_a_forged_rehash_breaks_the_chain() {
        let dir = tempfile::tempdir().unwrap();
        drop(store_with_entries(dir.path(), 5));
        let raw = rusqlite::Connection::open(dir.path().join("audit.db")).unwrap();
        raw.execute_batch("DROP TRIGGER audit_log_no_delete; DELETE FROM audit_log WHERE seq = 2;").unwrap();
        drop(raw);
        let store = Store::open(&dir.path().join("audit.db")).unwrap();
        assert_eq!(store.verify_audit().unwrap().first_broken.unwrap().seq, 3);

        // Rewriting one entry with a freshly computed hash still breaks the next entry's link.
        let dir = tempfile::tempdir().unwrap();
        drop(store_with_entries(dir.path(), 5));
        let raw = rusqlite::Connection::open(dir.path().join("audit.db")).unwrap();
        let prev: String = raw.query_row("SELECT hash FROM audit_log WHERE seq = 1", [], |r| r.get(0)).unwrap();
        let forged = entry_hash(&prev, 2, "2026-11-27T10:00:01Z", "mallory", "rollout.start", "hp-test", "{}");
        raw.execute_batch("DROP TRIGGER audit_log_no_update;").unwrap();
        raw.execute("UPDATE audit_log SET actor = 'mallory', hash = ?1 WHERE seq = 2", [forged]).unwrap();
        drop(raw);
        let store = Store::open(&dir.path().join("audit.db")).unwrap();
        let broken = store.verify_audit().unwrap().first_broken.unwrap();
        assert_eq!(broken.seq, 3);
        assert!(broken.reason.contains("does not point"), "{}", broken.reason);
    }
}
