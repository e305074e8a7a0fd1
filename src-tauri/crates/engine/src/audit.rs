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

/// What the app is for on this machine: an operator runs the pipeline; a reviewer reads it and signs off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub enum AppRole {
    Operator,
    Reviewer,
}

/// The actions a reviewer's app takes: sign-offs, and switching its own mode.
const REVIEWER_ACTIONS: &[&str] = &["signoff.", "app.role"];

/// Append to the log as the app itself; a failure is logged, never fatal to the executor that reports.
pub(crate) fn record_automatic(store: &Store, action: &str, subject: &str, detail: serde_json::Value) {
    if let Err(e) = store.append_audit(&crate::now_rfc3339(), AUTOMATIC, action, subject, &detail.to_string()) {
        tracing::error!(target: "audit", "could not record {action} on {subject}: {e}");
    }
}

impl Engine {
    /// Record a user's action before it takes effect. Every user action passes here, so this is also where a
    /// reviewer's app refuses what only operators do.
    pub(crate) fn audit(&self, action: &str, subject: &str, detail: serde_json::Value) -> Result<(), EngineError> {
        if self.app_role()? == AppRole::Reviewer && !REVIEWER_ACTIONS.iter().any(|a| action.starts_with(a)) {
            return Err(EngineError::InvalidInput(format!(
                "this app is in reviewer mode: it signs off and exports change records but does not {action}; switch to operator mode in Settings if you are an operator"
            )));
        }
        self.store.append_audit(&crate::now_rfc3339(), &self.principal(), action, subject, &detail.to_string())?;
        Ok(())
    }

    pub fn app_role(&self) -> Result<AppRole, EngineError> {
        Ok(match self.store.setting("app.role")?.as_deref() {
            Some("reviewer") => AppRole::Reviewer,
            _ => AppRole::Operator,
        })
    }

    /// Switch between operator and reviewer mode (recorded; a reviewer's app refuses operator actions).
    pub fn set_app_role(&self, role: AppRole) -> Result<AppRole, EngineError> {
        let value = match role {
            AppRole::Operator => "operator",
            AppRole::Reviewer => "reviewer",
        };
        self.audit("app.role", value, serde_json::json!({"role": role}))?;
        self.store.set_setting("app.role", value)?;
        Ok(role)
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
