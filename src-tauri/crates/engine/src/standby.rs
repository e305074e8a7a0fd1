//! Standby: a rollout that keeps each replaced host's VM deallocated (its registration drained) until the ring's
//! bake ends. A rollback then starts those hosts again and removes their replacements, instead of rebuilding.
//! One generation is kept per pool: a newer rollout of the pool, or the end of the bake, releases it (the standby
//! hosts are removed). What became of each rollout's standby is a setting (`standby.<rollout id>`).

use std::collections::HashSet;
use std::sync::Arc;

use ringmaster_azure::ops;
use ringmaster_store::RolloutRecord;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::model::{HostState, PlannedHost, RolloutPlan, RolloutPolicy};
use crate::rings::ring_display_name;
use crate::{Engine, EngineError};

/// How long standby is kept when the ring has no bake time.
const DEFAULT_KEEP_HOURS: i64 = 24;

fn key(rollout_id: &str) -> String {
    format!("standby.{rollout_id}")
}

fn kept_standby(r: &RolloutRecord) -> bool {
    r.kind == "rollout" && serde_json::from_str::<RolloutPolicy>(&r.policy).is_ok_and(|p| p.standby)
}

impl Engine {
    /// The pool's rollouts whose standby hosts still exist (kept, not released or restored).
    fn standby_rollouts(&self, host_pool_id: &str) -> Result<Vec<RolloutRecord>, EngineError> {
        let mut out = Vec::new();
        for r in self.store.rollouts()?.into_iter().filter(|r| r.host_pool_id.eq_ignore_ascii_case(host_pool_id)) {
            if kept_standby(&r) && self.store.setting(&key(&r.id))?.is_none() {
                out.push(r);
            }
        }
        Ok(out)
    }

    /// Names of the pool's hosts kept as standby: no rollout plans them.
    pub(crate) fn standby_hosts(&self, host_pool_id: &str) -> Result<HashSet<String>, EngineError> {
        let mut names = HashSet::new();
        for r in self.standby_rollouts(host_pool_id)? {
            names.extend(self.store.rollout_hosts(&r.id)?.into_iter().filter(|h| h.stage == "done").map(|h| h.name));
        }
        Ok(names)
    }

    /// The restore a rollback of the pool would run: the latest rollout's standby hosts back on what they ran.
    pub(crate) fn plan_standby_restore(
        &self,
        host_pool_id: &str,
        policy: &RolloutPolicy,
    ) -> Result<Option<RolloutPlan>, EngineError> {
        let latest = self
            .store
            .rollouts()?
            .into_iter()
            .find(|r| r.host_pool_id.eq_ignore_ascii_case(host_pool_id) && r.kind == "rollout" && !r.rolled_back);
        let Some(r) = latest.filter(kept_standby) else { return Ok(None) };
        if self.store.setting(&key(&r.id))?.is_some() || r.state == "running" {
            return Ok(None);
        }
        let hosts: Vec<PlannedHost> = self
            .store
            .rollout_hosts(&r.id)?
            .into_iter()
            .filter(|h| h.stage == "done")
            .map(|h| PlannedHost {
                name: h.name,
                vm_id: h.vm_id,
                sessions: 0,
                state: HostState::Unavailable,
                current_version: r.target_version.clone(),
            })
            .collect();
        let Some(back_to) = r.previous_version.clone() else { return Ok(None) };
        if hosts.is_empty() {
            return Ok(None);
        }
        let version_id =
            self.store.versions()?.into_iter().find(|v| v.name == back_to).map(|v| v.id).unwrap_or_default();
        let pool_hosts = self.store.hosts_of_pool(host_pool_id)?.len().max(hosts.len()) as u32;
        let cap = crate::rollout::effective_capacity(policy, pool_hosts);
        let n = hosts.len() as u32;
        Ok(Some(RolloutPlan {
            host_pool_id: r.host_pool_id.clone(),
            pool_name: r.pool_name.clone(),
            ring: ring_display_name(&r.ring),
            location: String::new(),
            target_version: back_to,
            target_version_id: version_id,
            already_current: 0,
            pool_hosts,
            max_out_of_service: cap,
            users_now: 0,
            // Starting a VM and its agent reporting in takes minutes, not a rebuild.
            estimated_minutes: n.div_ceil(cap.max(1)) * 5,
            replication_state: "Completed".into(),
            blockers: crate::rollout::validate_policy(policy, pool_hosts),
            warnings: vec![format!(
                "Instant: {n} standby host(s) kept by rollout {} are started again, then their replacements drained and removed.",
                r.id
            )],
            standby_restore: true,
            hosts,
        }))
    }

    /// Mark a rollout's standby as gone (`restored` or `released`); when released, remove the standby hosts in the
    /// background (each removal is idempotent, and a later rollout clears any it meets).
    pub(crate) fn end_standby(&self, rollout_id: &str, how: &str) -> Result<(), EngineError> {
        self.store.set_setting(&key(rollout_id), how)?;
        if how != "released" {
            return Ok(());
        }
        let r = self.store.rollouts()?.into_iter().find(|r| r.id == rollout_id);
        let (Some(r), Ok(runner)) = (r, self.runner()) else { return Ok(()) };
        let hosts = self.store.rollout_hosts(rollout_id)?.into_iter().filter(|h| h.stage == "done").collect();
        runner.remove_standby(r.host_pool_id, hosts);
        Ok(())
    }

    /// Release every standby the pool still keeps (a new rollout of the pool is starting).
    pub(crate) fn release_pool_standby(&self, host_pool_id: &str) -> Result<(), EngineError> {
        for r in self.standby_rollouts(host_pool_id)? {
            self.end_standby(&r.id, "released")?;
            crate::audit::record_automatic(
                &self.store,
                "rollout.standby.release",
                &r.pool_name,
                serde_json::json!({"rolloutId": r.id, "reason": "a newer rollout of the pool started"}),
            );
        }
        Ok(())
    }

    /// Release standby kept longer than its ring's bake time (or a day without one). Run by the app's monitor.
    pub fn standby_tick(self: &Arc<Self>) -> Result<usize, EngineError> {
        let now = OffsetDateTime::now_utc();
        let mut released = 0;
        for r in self.store.rollouts()?.into_iter().filter(|r| kept_standby(r) && r.state == "completed") {
            if self.store.setting(&key(&r.id))?.is_some() {
                continue;
            }
            let bake = self.ring_gates(&r.ring).map(|g| g.bake_hours).unwrap_or(0);
            let keep = if bake == 0 { DEFAULT_KEEP_HOURS } else { i64::from(bake) };
            let finished = r.finished_at.as_deref().and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok());
            if finished.is_some_and(|f| now - f > time::Duration::hours(keep)) {
                self.end_standby(&r.id, "released")?;
                crate::audit::record_automatic(
                    &self.store,
                    "rollout.standby.release",
                    &r.pool_name,
                    serde_json::json!({"rolloutId": r.id, "reason": format!("kept {keep} h, past the ring's bake")}),
                );
                released += 1;
            }
        }
        Ok(released)
    }

    /// Whether a finished rollout's replaced hosts are still kept as standby.
    pub(crate) fn standby_kept(&self, view: &crate::model::RolloutView) -> Result<bool, EngineError> {
        Ok(view.kind == "rollout"
            && view.policy.standby
            && view.state == crate::model::RolloutState::Completed
            && self.store.setting(&key(&view.id))?.is_none())
    }

    /// Release a rollout's standby now (the admin is sure of the release); the rollout as it is then.
    pub fn release_standby(&self, rollout_id: &str) -> Result<crate::model::RolloutView, EngineError> {
        let r = self
            .store
            .rollouts()?
            .into_iter()
            .find(|r| r.id == rollout_id)
            .ok_or_else(|| EngineError::InvalidInput(format!("no rollout {rollout_id}")))?;
        if !kept_standby(&r) || self.store.setting(&key(rollout_id))?.is_some() {
            return Err(EngineError::InvalidInput("this rollout keeps no standby hosts".into()));
        }
        self.audit("rollout.standby.release", &r.pool_name, serde_json::json!({"rolloutId": r.id}))?;
        self.end_standby(rollout_id, "released")?;
        self.rollout(rollout_id)
    }
}

impl crate::rollout::Rollouts {
    /// Remove released standby hosts (their drained registrations and deallocated VMs), one after another.
    pub(crate) fn remove_standby(
        self: &Arc<Self>,
        host_pool_id: String,
        hosts: Vec<ringmaster_store::RolloutHostRecord>,
    ) {
        let this = self.clone();
        tokio::spawn(async move {
            for h in hosts {
                let client = this.client();
                if let Err(e) = ops::delete_session_host(client, &host_pool_id, &h.name).await {
                    tracing::warn!(target: "rollout", "standby {}: {e}", h.name);
                }
                if let Err(e) = ops::delete_vm(client, &h.vm_id).await {
                    tracing::warn!(target: "rollout", "standby {}: {e}", h.name);
                }
            }
        });
    }
}
