//! Gate runs: each gate's verdict on a release in a ring, kept as evidence for the checklist and sign-off.

use rusqlite::params;

use crate::{Store, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct GateRunRecord {
    pub id: String,
    pub version: String,
    pub ring: String,
    /// `health`, `loginEnterprise`.
    pub gate: String,
    /// running | finished
    pub state: String,
    /// pass | fail | inconclusive, once finished.
    pub verdict: Option<String>,
    /// JSON array of strings.
    pub reasons: String,
    /// JSON, owned by the engine.
    pub evidence: String,
    pub started_by: String,
    pub started_at: String,
    pub finished_at: Option<String>,
}

impl Store {
    /// Insert or update a gate run (started, then finished).
    pub fn save_gate_run(&self, g: &GateRunRecord) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO gate_runs(id, version, ring, gate, state, verdict, reasons, evidence, started_by, started_at,
               finished_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT(id) DO UPDATE SET state = excluded.state, verdict = excluded.verdict,
               reasons = excluded.reasons, evidence = excluded.evidence, finished_at = excluded.finished_at",
            params![
                g.id,
                g.version,
                g.ring,
                g.gate,
                g.state,
                g.verdict,
                g.reasons,
                g.evidence,
                g.started_by,
                g.started_at,
                g.finished_at
            ],
        )?;
        Ok(())
    }

    /// Every gate run of a release, newest first.
    pub fn gate_runs(&self, version: &str) -> Result<Vec<GateRunRecord>, StoreError> {
        self.query_gate_runs("WHERE version = ?1", version)
    }

    /// Every gate run of every release, newest first.
    pub fn gate_runs_any(&self) -> Result<Vec<GateRunRecord>, StoreError> {
        self.query_gate_runs("WHERE ?1 = ?1", "")
    }

    fn query_gate_runs(&self, filter: &str, arg: &str) -> Result<Vec<GateRunRecord>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(&format!(
            "SELECT id, version, ring, gate, state, verdict, reasons, evidence, started_by, started_at, finished_at
             FROM gate_runs {filter} ORDER BY started_at DESC, id DESC"
        ))?;
        let rows = st.query_map([arg], |r| {
            Ok(GateRunRecord {
                id: r.get(0)?,
                version: r.get(1)?,
                ring: r.get(2)?,
                gate: r.get(3)?,
                state: r.get(4)?,
                verdict: r.get(5)?,
                reasons: r.get(6)?,
                evidence: r.get(7)?,
                started_by: r.get(8)?,
                started_at: r.get(9)?,
                finished_at: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
