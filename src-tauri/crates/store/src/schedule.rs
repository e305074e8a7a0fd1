//! Rollouts scheduled into a maintenance window: kept until the app starts them (or they are cancelled).

use rusqlite::params;

use crate::{Store, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledRolloutRecord {
    pub id: String,
    pub host_pool_id: String,
    pub pool_name: String,
    pub version: String,
    /// The policy as JSON (the engine owns its shape).
    pub policy: String,
    /// RFC 3339, UTC.
    pub start_at: String,
    pub created_by: String,
    pub created_at: String,
    /// scheduled | started | cancelled | failed | missed
    pub state: String,
    pub rollout_id: Option<String>,
    pub reason: Option<String>,
}

impl Store {
    pub fn save_scheduled_rollout(&self, r: &ScheduledRolloutRecord) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO scheduled_rollouts(id, host_pool_id, pool_name, version, policy, start_at, created_by,
               created_at, state, rollout_id, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT(id) DO UPDATE SET state = excluded.state, rollout_id = excluded.rollout_id,
               reason = excluded.reason",
            params![
                r.id,
                r.host_pool_id,
                r.pool_name,
                r.version,
                r.policy,
                r.start_at,
                r.created_by,
                r.created_at,
                r.state,
                r.rollout_id,
                r.reason
            ],
        )?;
        Ok(())
    }

    /// Every scheduled rollout, soonest first.
    pub fn scheduled_rollouts(&self) -> Result<Vec<ScheduledRolloutRecord>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT id, host_pool_id, pool_name, version, policy, start_at, created_by, created_at, state, rollout_id,
                    reason FROM scheduled_rollouts ORDER BY start_at, id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(ScheduledRolloutRecord {
                id: r.get(0)?,
                host_pool_id: r.get(1)?,
                pool_name: r.get(2)?,
                version: r.get(3)?,
                policy: r.get(4)?,
                start_at: r.get(5)?,
                created_by: r.get(6)?,
                created_at: r.get(7)?,
                state: r.get(8)?,
                rollout_id: r.get(9)?,
                reason: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
