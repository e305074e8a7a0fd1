//! The audit log as the engine writes and reads it: who did what to which pool, release or master. User actions
//! are recorded before they take effect (an action that cannot be recorded does not happen); what the app does
//! on its own (a run or capture ending, a release published to `latest`) is recorded as the app.

use ringmaster_store::Store;
use serde::{Deserialize, Serialize};
use specta::Type;

use crate::{Engine, EngineError};

/// Who acts when nobody clicked: the executors.
pub const AUTOMATIC: &str = "Ringmaster (automatic)";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct AuditEntry {
    pub seq: u32,
    pub at: String,
    pub actor: String,
    /// `rollout.start`, `capture.finish`, ... (area.verb).
    pub action: String,
    /// What it was done to: a pool, a release, a master, a collection.
    pub subject: String,
    /// Details as JSON text.
    pub detail: String,
    /// SHA-256 chaining this entry to the one before.
    pub hash: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `before` for the next (older) page; `None` at the first entry.
    pub next_before: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct AuditVerification {
    pub entries: u32,
    pub intact: bool,
    /// The first entry whose link is broken.
    pub first_broken_seq: Option<u32>,
    pub reason: Option<String>,
    pub checked_at: String,
}

/// Append to the log as the app itself; a failure is logged, never fatal to the executor that reports.
pub(crate) fn record_automatic(store: &Store, action: &str, subject: &str, detail: serde_json::Value) {
    if let Err(e) = store.append_audit(&crate::now_rfc3339(), AUTOMATIC, action, subject, &detail.to_string()) {
        tracing::error!(target: "audit", "could not record {action} on {subject}: {e}");
    }
}

impl Engine {
    /// Record a user's action before it takes effect.
    pub(crate) fn audit(&self, action: &str, subject: &str, detail: serde_json::Value) -> Result<(), EngineError> {
        self.store.append_audit(&crate::now_rfc3339(), &self.principal(), action, subject, &detail.to_string())?;
        Ok(())
    }

    pub fn audit_log(&self, before: Option<u32>, limit: u32) -> Result<AuditPage, EngineError> {
        let limit = limit.clamp(1, 1000);
        let rows = self.store.audit_entries(before.map(i64::from), limit)?;
        let next_before = rows.last().filter(|r| r.seq > 1 && rows.len() as u32 == limit).map(|r| r.seq as u32);
        Ok(AuditPage {
            entries: rows
                .into_iter()
                .map(|r| AuditEntry {
                    seq: r.seq as u32,
                    at: r.at,
                    actor: r.actor,
                    action: r.action,
                    subject: r.subject,
                    detail: r.detail,
                    hash: r.hash,
                })
                .collect(),
            next_before,
        })
    }

    pub fn verify_audit_log(&self) -> Result<AuditVerification, EngineError> {
        let check = self.store.verify_audit()?;
        Ok(AuditVerification {
            entries: check.entries as u32,
            intact: check.first_broken.is_none(),
            first_broken_seq: check.first_broken.as_ref().map(|b| b.seq as u32),
            reason: check.first_broken.map(|b| b.reason),
            checked_at: crate::now_rfc3339(),
        })
    }
}
