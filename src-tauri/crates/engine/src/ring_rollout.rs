//! A release into every pool of a ring at once, and the ring back to where it was. Each pool gets its own rollout
//! with the same policy (so each keeps its own capacity), planned together: it starts everywhere or nowhere.

use serde::{Deserialize, Serialize};
use specta::Type;

use crate::model::{RolloutPlan, RolloutPolicy, RolloutView};
use crate::rings::ring_display_name;
use crate::{Engine, EngineError};

/// What rolling a ring out (or back) would do, pool by pool.
#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct RingPlan {
    pub ring: String,
    pub ring_name: String,
    /// The release every pool goes to; for a rollback each pool's plan names its own last known-good release.
    pub version: Option<String>,
    pub rollback: bool,
    /// The pools that would change, each with its own plan.
    pub pools: Vec<RolloutPlan>,
    /// Pools with nothing to do, and why.
    pub skipped: Vec<SkippedPool>,
    /// Everything that stops the start, one line each ("pool: problem"); empty when it can start.
    pub blockers: Vec<String>,
    pub hosts: u32,
    pub users_now: u32,
    /// The pools run side by side: the longest pool's estimate.
    pub estimated_minutes: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct SkippedPool {
    pub pool_name: String,
    pub reason: String,
}

fn ring_plan(
    ring: &str,
    version: Option<&str>,
    rollback: bool,
    pools: Vec<RolloutPlan>,
    skipped: Vec<SkippedPool>,
) -> RingPlan {
    let mut blockers: Vec<String> =
        pools.iter().flat_map(|p| p.blockers.iter().map(move |b| format!("{}: {}", p.pool_name, b.message))).collect();
    if pools.is_empty() {
        blockers.push(if skipped.is_empty() {
            format!("the {} ring has no host pools", ring_display_name(ring))
        } else {
            "no pool of the ring has anything to replace".into()
        });
    }
    RingPlan {
        ring: ring.to_string(),
        ring_name: ring_display_name(ring),
        version: version.map(str::to_string),
        rollback,
        hosts: pools.iter().map(|p| p.hosts.len() as u32).sum(),
        users_now: pools.iter().map(|p| p.users_now).sum(),
        estimated_minutes: pools.iter().map(|p| p.estimated_minutes).max().unwrap_or(0),
        pools,
        skipped,
        blockers,
    }
}

impl Engine {
    fn ring_pools(&self, ring: &str) -> Result<Vec<ringmaster_store::PoolRow>, EngineError> {
        if ring.trim().is_empty() {
            return Err(EngineError::InvalidInput("choose a ring".into()));
        }
        Ok(self.store.pools()?.into_iter().filter(|p| p.ring == ring).collect())
    }

    /// What putting `version` on every pool of `ring` would do (pools already on it are skipped).
    pub fn plan_ring_rollout(
        &self,
        ring: &str,
        version: &str,
        policy: &RolloutPolicy,
    ) -> Result<RingPlan, EngineError> {
        let mut plans = Vec::new();
        let mut skipped = Vec::new();
        for p in self.ring_pools(ring)? {
            let hosts = self.store.hosts_of_pool(&p.id)?;
            if !hosts.is_empty() && hosts.iter().all(|l| l.host.image_version == version) {
                skipped.push(SkippedPool { pool_name: p.name, reason: format!("already on {version}") });
                continue;
            }
            plans.push(self.plan_rollout(&p.id, version, policy)?);
        }
        Ok(ring_plan(ring, Some(version), false, plans, skipped))
    }

    /// Start `version` in every pool of the ring that needs it, all or none.
    pub async fn start_ring_rollout(
        &self,
        ring: &str,
        version: &str,
        policy: &RolloutPolicy,
    ) -> Result<Vec<RolloutView>, EngineError> {
        let plan = self.plan_ring_rollout(ring, version, policy)?;
        self.start_ring(&plan, policy, "ring.rollout").await
    }

    /// Schedule `version` into every pool of the ring that needs it, for one maintenance window. Each pool's
    /// rollout re-checks its plan when the window opens (replication and promotion may have cleared by then).
    pub fn schedule_ring_rollout(
        &self,
        ring: &str,
        version: &str,
        policy: &RolloutPolicy,
        start_at: &str,
    ) -> Result<Vec<crate::schedule::ScheduledRollout>, EngineError> {
        crate::schedule::parse_window(start_at, time::OffsetDateTime::now_utc()).map_err(EngineError::InvalidInput)?;
        let plan = self.plan_ring_rollout(ring, version, policy)?;
        if plan.pools.is_empty() {
            return Err(EngineError::InvalidInput(format!("nothing to schedule: {}", plan.blockers.join("; "))));
        }
        // Every pool's policy check first, so a window is scheduled for all of them or for none.
        for p in &plan.pools {
            if let Some(problem) = crate::rollout::validate_policy(policy, p.pool_hosts).first() {
                return Err(EngineError::InvalidInput(format!(
                    "the rollout policy needs fixing for {}: {}",
                    p.pool_name, problem.message
                )));
            }
        }
        plan.pools.iter().map(|p| self.schedule_rollout(&p.host_pool_id, version, policy, start_at)).collect()
    }

    /// What rolling every pool of the ring back to its own last known-good release would do.
    pub fn plan_ring_rollback(&self, ring: &str, policy: &RolloutPolicy) -> Result<RingPlan, EngineError> {
        let mut plans = Vec::new();
        let mut skipped = Vec::new();
        let rollouts = self.store.rollouts()?;
        for p in self.ring_pools(ring)? {
            // Only what a rollout changed is undone: a pool no rollout touched keeps what it runs.
            let undoable = rollouts
                .iter()
                .any(|r| r.host_pool_id.eq_ignore_ascii_case(&p.id) && r.kind == "rollout" && !r.rolled_back);
            if !undoable {
                skipped.push(SkippedPool { pool_name: p.name, reason: "no rollout to undo".into() });
                continue;
            }
            let Some(lkg) = self.last_known_good(&p.id)? else {
                skipped.push(SkippedPool { pool_name: p.name, reason: "no known-good release recorded".into() });
                continue;
            };
            let hosts = self.store.hosts_of_pool(&p.id)?;
            if !hosts.is_empty() && hosts.iter().all(|l| l.host.image_version == lkg) {
                skipped.push(SkippedPool { pool_name: p.name, reason: format!("already on {lkg}, its known-good") });
                continue;
            }
            plans.push(self.plan_rollback(&p.id, policy)?);
        }
        Ok(ring_plan(ring, None, true, plans, skipped))
    }

    /// One click: every pool of the ring back to its last known-good release, all or none.
    pub async fn rollback_ring(&self, ring: &str, policy: &RolloutPolicy) -> Result<Vec<RolloutView>, EngineError> {
        let plan = self.plan_ring_rollback(ring, policy)?;
        self.start_ring(&plan, policy, "ring.rollback").await
    }

    async fn start_ring(
        &self,
        plan: &RingPlan,
        policy: &RolloutPolicy,
        action: &str,
    ) -> Result<Vec<RolloutView>, EngineError> {
        if !plan.blockers.is_empty() {
            let what = if plan.rollback { "rolled back" } else { "rolled out" };
            return Err(EngineError::InvalidInput(format!(
                "the {} ring cannot be {what}: {}",
                plan.ring_name,
                plan.blockers.join("; ")
            )));
        }
        let pools: Vec<serde_json::Value> = plan
            .pools
            .iter()
            .map(|p| serde_json::json!({"hostPoolId": p.host_pool_id, "to": p.target_version, "hosts": p.hosts.len()}))
            .collect();
        self.audit(
            action,
            &plan.ring_name,
            serde_json::json!({"ring": plan.ring, "version": plan.version, "pools": pools, "policy": policy}),
        )?;
        let mut started = Vec::new();
        for p in &plan.pools {
            started.push(if plan.rollback {
                self.rollback(&p.host_pool_id, policy).await?
            } else {
                self.start_rollout(&p.host_pool_id, &p.target_version, policy).await?
            });
        }
        Ok(started)
    }
}
