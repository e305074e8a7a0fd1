//! Rollouts scheduled into a maintenance window: planned and checked now, started by the app when the window opens
//! (the app must be running then; a window missed while it was closed starts when it next runs, within 12 hours,
//! and is marked missed after that).

use std::sync::Arc;

use ringmaster_store::ScheduledRolloutRecord;
use serde::{Deserialize, Serialize};
use specta::Type;
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::audit::record_automatic;
use crate::model::RolloutPolicy;
use crate::{Engine, EngineError};

/// How late a window may still be started (the app was closed when it opened).
const GRACE: Duration = Duration::hours(12);
/// How far ahead a window may be.
const HORIZON: Duration = Duration::days(90);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledRollout {
    pub id: String,
    pub host_pool_id: String,
    pub pool_name: String,
    pub version: String,
    pub policy: RolloutPolicy,
    pub start_at: String,
    pub created_by: String,
    pub created_at: String,
    /// `scheduled`, `started`, `cancelled`, `failed` or `missed`.
    pub state: String,
    pub rollout_id: Option<String>,
    pub reason: Option<String>,
    /// What would stop it if it started now (it is re-checked when the window opens).
    pub blocked_now: Vec<String>,
}

fn view(r: ScheduledRolloutRecord, blocked_now: Vec<String>) -> ScheduledRollout {
    ScheduledRollout {
        policy: serde_json::from_str(&r.policy).unwrap_or_default(),
        id: r.id,
        host_pool_id: r.host_pool_id,
        pool_name: r.pool_name,
        version: r.version,
        start_at: r.start_at,
        created_by: r.created_by,
        created_at: r.created_at,
        state: r.state,
        rollout_id: r.rollout_id,
        reason: r.reason,
        blocked_now,
    }
}

/// When a window opens, as given (RFC 3339 with an offset): in the future, within 90 days. Normalised to UTC.
pub fn parse_window(start_at: &str, now: OffsetDateTime) -> Result<OffsetDateTime, String> {
    let t = OffsetDateTime::parse(start_at.trim(), &Rfc3339).map_err(|_| {
        format!("'{start_at}' is not a date and time with a time zone (e.g. 2026-11-28T22:00:00+01:00)")
    })?;
    if t <= now {
        return Err("the maintenance window must start in the future; to start now, use Start rollout".into());
    }
    if t > now + HORIZON {
        return Err("the maintenance window must start within 90 days".into());
    }
    Ok(t.to_offset(time::UtcOffset::UTC))
}

impl Engine {
    /// Schedule a rollout to start when a maintenance window opens. The plan is checked now: a policy that does not
    /// validate is refused; blockers that may clear by then (replication, promotion) are shown and re-checked at
    /// the start.
    pub fn schedule_rollout(
        &self,
        host_pool_id: &str,
        version: &str,
        policy: &RolloutPolicy,
        start_at: &str,
    ) -> Result<ScheduledRollout, EngineError> {
        let at = parse_window(start_at, OffsetDateTime::now_utc()).map_err(EngineError::InvalidInput)?;
        let plan = self.plan_rollout(host_pool_id, version, policy)?;
        // The policy itself must be right now; the pool and the version may still change before the window.
        if let Some(p) = crate::rollout::validate_policy(policy, plan.pool_hosts).first() {
            return Err(EngineError::InvalidInput(format!("the rollout policy needs fixing: {}", p.message)));
        }
        let record = ScheduledRolloutRecord {
            id: crate::rollout::uuid_like(),
            host_pool_id: plan.host_pool_id.clone(),
            pool_name: plan.pool_name.clone(),
            version: version.to_string(),
            policy: serde_json::to_string(policy).unwrap_or_default(),
            start_at: at.format(&Rfc3339).unwrap_or_default(),
            created_by: self.principal(),
            created_at: crate::now_rfc3339(),
            state: "scheduled".into(),
            rollout_id: None,
            reason: None,
        };
        self.audit(
            "rollout.schedule",
            &plan.pool_name,
            serde_json::json!({"hostPoolId": plan.host_pool_id, "version": version, "startAt": record.start_at, "policy": policy}),
        )?;
        self.store.save_scheduled_rollout(&record)?;
        let blocked = plan.blockers.iter().map(|b| b.message.clone()).collect();
        Ok(view(record, blocked))
    }

    /// Every scheduled rollout, soonest first, with what would block the waiting ones now.
    pub fn scheduled_rollouts(&self) -> Result<Vec<ScheduledRollout>, EngineError> {
        let mut out = Vec::new();
        for r in self.store.scheduled_rollouts()? {
            let blocked = if r.state == "scheduled" {
                let policy: RolloutPolicy = serde_json::from_str(&r.policy).unwrap_or_default();
                match self.plan_rollout(&r.host_pool_id, &r.version, &policy) {
                    Ok(plan) => plan.blockers.iter().map(|b| b.message.clone()).collect(),
                    Err(e) => vec![e.to_string()],
                }
            } else {
                Vec::new()
            };
            out.push(view(r, blocked));
        }
        Ok(out)
    }

    pub fn cancel_scheduled_rollout(&self, id: &str) -> Result<Vec<ScheduledRollout>, EngineError> {
        let mut r = self
            .store
            .scheduled_rollouts()?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or_else(|| EngineError::InvalidInput("no such scheduled rollout".into()))?;
        if r.state != "scheduled" {
            return Err(EngineError::InvalidInput(format!("this rollout is already {}", r.state)));
        }
        self.audit(
            "rollout.unschedule",
            &r.pool_name,
            serde_json::json!({"id": id, "version": r.version, "startAt": r.start_at}),
        )?;
        r.state = "cancelled".into();
        self.store.save_scheduled_rollout(&r)?;
        self.scheduled_rollouts()
    }

    /// Start the rollouts whose window has opened; returns how many started. A window missed by more than 12
    /// hours is marked missed, not started late into working hours.
    pub async fn schedule_tick(self: &Arc<Self>) -> Result<usize, EngineError> {
        let now = OffsetDateTime::now_utc();
        let mut started = 0;
        for mut r in self.store.scheduled_rollouts()?.into_iter().filter(|r| r.state == "scheduled") {
            let Some(at) = crate::build::parse_time(&r.start_at) else { continue };
            if at > now {
                continue;
            }
            if now - at > GRACE {
                r.state = "missed".into();
                r.reason = Some(format!(
                    "the app was not running when the window opened at {}",
                    crate::release::when(&r.start_at)
                ));
                self.store.save_scheduled_rollout(&r)?;
                record_automatic(&self.store, "rollout.scheduleMissed", &r.pool_name, serde_json::json!({"id": r.id}));
                self.notify(
                    "warn",
                    format!("A scheduled rollout of {} was missed", r.pool_name),
                    r.reason.clone().unwrap_or_default(),
                    Some(&r.version),
                );
                continue;
            }
            let policy: RolloutPolicy = serde_json::from_str(&r.policy).unwrap_or_default();
            match self.start_rollout(&r.host_pool_id, &r.version, &policy).await {
                Ok(view) if view.state == crate::model::RolloutState::Running => {
                    r.state = "started".into();
                    r.rollout_id = Some(view.id);
                    started += 1;
                }
                Ok(view) => {
                    r.state = "failed".into();
                    r.rollout_id = Some(view.id);
                    r.reason = view.reason.or_else(|| Some("the rollout did not start".into()));
                }
                Err(e) => {
                    r.state = "failed".into();
                    r.reason = Some(e.to_string());
                }
            }
            self.store.save_scheduled_rollout(&r)?;
            if r.state == "failed" {
                let why = r.reason.clone().unwrap_or_default();
                record_automatic(
                    &self.store,
                    "rollout.scheduleFailed",
                    &r.pool_name,
                    serde_json::json!({"id": r.id, "reason": why}),
                );
                self.notify(
                    "danger",
                    format!("The scheduled rollout of {} did not start", r.pool_name),
                    why,
                    Some(&r.version),
                );
            }
        }
        Ok(started)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_in_the_future_within_90_days_and_normalised_to_utc() {
        let now = OffsetDateTime::parse("2026-11-27T12:00:00Z", &Rfc3339).unwrap();
        let t = parse_window("2026-11-28T22:00:00+01:00", now).unwrap();
        assert_eq!(t.format(&Rfc3339).unwrap(), "2026-11-28T21:00:00Z");
        assert!(parse_window("2026-11-27T11:59:59Z", now).unwrap_err().contains("future"));
        assert!(parse_window("2027-03-01T00:00:00Z", now).unwrap_err().contains("90 days"));
        assert!(parse_window("tomorrow night", now).unwrap_err().contains("time zone"));
        assert!(parse_window("2026-11-28T22:00:00", now).is_err(), "no offset, no guessing");
    }
}
