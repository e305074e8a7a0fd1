//! The build journal: golden masters, script collections, their runs (the evidence that the image changed only
//! through scripts) and captures. Like the rollout journal, every step is written here before its side effect.

use rusqlite::{params, OptionalExtension};

use crate::{Store, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct MasterRecord {
    pub vm_id: String,
    pub image_definition_id: String,
    pub capture_subnet_id: String,
    pub registered_at: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CollectionRecord {
    pub id: String,
    pub name: String,
    /// The collection as JSON (the engine owns its shape).
    pub body: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RunRecord {
    pub id: String,
    pub collection_id: String,
    pub collection_name: String,
    pub vm_id: String,
    /// running | succeeded | failed | cancelled
    pub state: String,
    pub started_by: String,
    pub started_at: String,
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub position: u32,
    pub script_name: String,
    pub script_sha256: String,
    /// The script as run, JSON (the engine owns its shape).
    pub body: String,
    pub continue_on_error: bool,
    /// The managed run command's name on the VM: deterministic, so a resumed run finds it.
    pub run_command_name: String,
    pub state: String,
    pub exit_code: Option<i32>,
    pub output: String,
    pub error: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u32>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CaptureRecord {
    pub id: String,
    pub master_vm_id: String,
    pub version: String,
    pub version_id: String,
    /// JSON, owned by the engine: the plan, the temporary resources and the stage timings.
    pub plan: String,
    pub state: String,
    pub stage: String,
    pub reason: Option<String>,
    pub started_by: String,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub resources: String,
    pub stages: String,
    pub sysprep_output: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CaptureEventRecord {
    pub at: String,
    pub level: String,
    pub message: String,
    pub request_id: Option<String>,
}

impl Store {
    // ---- golden masters ----

    pub fn save_master(&self, m: &MasterRecord) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO golden_masters(vm_id, image_definition_id, capture_subnet_id, registered_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(vm_id) DO UPDATE SET image_definition_id = excluded.image_definition_id,
               capture_subnet_id = excluded.capture_subnet_id",
            params![m.vm_id, m.image_definition_id, m.capture_subnet_id, m.registered_at],
        )?;
        Ok(())
    }

    pub fn masters(&self) -> Result<Vec<MasterRecord>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT vm_id, image_definition_id, capture_subnet_id, registered_at FROM golden_masters ORDER BY vm_id",
        )?;
        let rows = st.query_map([], |r| {
            Ok(MasterRecord {
                vm_id: r.get(0)?,
                image_definition_id: r.get(1)?,
                capture_subnet_id: r.get(2)?,
                registered_at: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // ---- script collections ----

    pub fn save_collection(&self, c: &CollectionRecord) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO script_collections(id, name, body, updated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET name = excluded.name, body = excluded.body, updated_at = excluded.updated_at",
            params![c.id, c.name, c.body, c.updated_at],
        )?;
        Ok(())
    }

    pub fn delete_collection(&self, id: &str) -> Result<bool, StoreError> {
        Ok(self.conn()?.execute("DELETE FROM script_collections WHERE id = ?1", [id])? > 0)
    }

    pub fn collections(&self) -> Result<Vec<CollectionRecord>, StoreError> {
        let conn = self.conn()?;
        let mut st =
            conn.prepare("SELECT id, name, body, updated_at FROM script_collections ORDER BY name COLLATE NOCASE, id")?;
        let rows = st.query_map([], |r| {
            Ok(CollectionRecord { id: r.get(0)?, name: r.get(1)?, body: r.get(2)?, updated_at: r.get(3)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // ---- script runs ----

    /// Create a run and its steps in one transaction.
    pub fn create_run(&self, run: &RunRecord, steps: &[StepRecord]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO script_runs(id, collection_id, collection_name, vm_id, state, started_by, started_at, finished_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                run.id,
                run.collection_id,
                run.collection_name,
                run.vm_id,
                run.state,
                run.started_by,
                run.started_at,
                run.finished_at
            ],
        )?;
        {
            let mut st = tx.prepare(
                "INSERT INTO script_steps(run_id, position, script_name, script_sha256, body, continue_on_error,
                   run_command_name, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?;
            for s in steps {
                st.execute(params![
                    run.id,
                    s.position,
                    s.script_name,
                    s.script_sha256,
                    s.body,
                    s.continue_on_error,
                    s.run_command_name,
                    s.state
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    const RUN_COLUMNS: &'static str =
        "id, collection_id, collection_name, vm_id, state, started_by, started_at, finished_at";

    fn run_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
        Ok(RunRecord {
            id: r.get(0)?,
            collection_id: r.get(1)?,
            collection_name: r.get(2)?,
            vm_id: r.get(3)?,
            state: r.get(4)?,
            started_by: r.get(5)?,
            started_at: r.get(6)?,
            finished_at: r.get(7)?,
        })
    }

    pub fn run(&self, id: &str) -> Result<Option<RunRecord>, StoreError> {
        let sql = format!("SELECT {} FROM script_runs WHERE id = ?1", Self::RUN_COLUMNS);
        Ok(self.conn()?.query_row(&sql, [id], Self::run_row).optional()?)
    }

    /// Newest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>, StoreError> {
        let sql = format!("SELECT {} FROM script_runs ORDER BY started_at DESC, id DESC", Self::RUN_COLUMNS);
        let conn = self.conn()?;
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map([], Self::run_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn finish_run(&self, id: &str, state: &str, at: &str) -> Result<(), StoreError> {
        self.conn()?
            .execute("UPDATE script_runs SET state = ?2, finished_at = ?3 WHERE id = ?1", params![id, state, at])?;
        Ok(())
    }

    pub fn steps(&self, run_id: &str) -> Result<Vec<StepRecord>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT position, script_name, script_sha256, body, continue_on_error, run_command_name, state,
               exit_code, output, error, started_at, finished_at, duration_ms
             FROM script_steps WHERE run_id = ?1 ORDER BY position",
        )?;
        let rows = st.query_map([run_id], |r| {
            Ok(StepRecord {
                position: r.get(0)?,
                script_name: r.get(1)?,
                script_sha256: r.get(2)?,
                body: r.get(3)?,
                continue_on_error: r.get(4)?,
                run_command_name: r.get(5)?,
                state: r.get(6)?,
                exit_code: r.get(7)?,
                output: r.get(8)?,
                error: r.get(9)?,
                started_at: r.get(10)?,
                finished_at: r.get(11)?,
                duration_ms: r.get(12)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Record a step's progress: state, output so far and (when it ended) its result.
    pub fn update_step(&self, run_id: &str, s: &StepRecord) -> Result<(), StoreError> {
        self.conn()?.execute(
            "UPDATE script_steps SET state = ?3, exit_code = ?4, output = ?5, error = ?6, started_at = ?7,
               finished_at = ?8, duration_ms = ?9 WHERE run_id = ?1 AND position = ?2",
            params![
                run_id,
                s.position,
                s.state,
                s.exit_code,
                s.output,
                s.error,
                s.started_at,
                s.finished_at,
                s.duration_ms
            ],
        )?;
        Ok(())
    }

    // ---- captures ----

    pub fn create_capture(&self, c: &CaptureRecord) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO captures(id, master_vm_id, version, version_id, plan, state, stage, reason, started_by,
               created_at, finished_at, resources, stages, sysprep_output)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                c.id,
                c.master_vm_id,
                c.version,
                c.version_id,
                c.plan,
                c.state,
                c.stage,
                c.reason,
                c.started_by,
                c.created_at,
                c.finished_at,
                c.resources,
                c.stages,
                c.sysprep_output
            ],
        )?;
        Ok(())
    }

    /// Write the capture's moving parts (state, stage, resources, timings) in one statement.
    pub fn update_capture(&self, c: &CaptureRecord) -> Result<(), StoreError> {
        self.conn()?.execute(
            "UPDATE captures SET state = ?2, stage = ?3, reason = ?4, finished_at = ?5, resources = ?6, stages = ?7,
               sysprep_output = ?8 WHERE id = ?1",
            params![c.id, c.state, c.stage, c.reason, c.finished_at, c.resources, c.stages, c.sysprep_output],
        )?;
        Ok(())
    }

    const CAPTURE_COLUMNS: &'static str = "id, master_vm_id, version, version_id, plan, state, stage, reason,
        started_by, created_at, finished_at, resources, stages, sysprep_output";

    fn capture_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CaptureRecord> {
        Ok(CaptureRecord {
            id: r.get(0)?,
            master_vm_id: r.get(1)?,
            version: r.get(2)?,
            version_id: r.get(3)?,
            plan: r.get(4)?,
            state: r.get(5)?,
            stage: r.get(6)?,
            reason: r.get(7)?,
            started_by: r.get(8)?,
            created_at: r.get(9)?,
            finished_at: r.get(10)?,
            resources: r.get(11)?,
            stages: r.get(12)?,
            sysprep_output: r.get(13)?,
        })
    }

    pub fn capture(&self, id: &str) -> Result<Option<CaptureRecord>, StoreError> {
        let sql = format!("SELECT {} FROM captures WHERE id = ?1", Self::CAPTURE_COLUMNS);
        Ok(self.conn()?.query_row(&sql, [id], Self::capture_row).optional()?)
    }

    /// Newest first.
    pub fn captures(&self) -> Result<Vec<CaptureRecord>, StoreError> {
        let sql = format!("SELECT {} FROM captures ORDER BY created_at DESC, id DESC", Self::CAPTURE_COLUMNS);
        let conn = self.conn()?;
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map([], Self::capture_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn add_capture_event(&self, capture_id: &str, e: &CaptureEventRecord) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO capture_events(capture_id, at, level, message, request_id) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![capture_id, e.at, e.level, e.message, e.request_id],
        )?;
        Ok(())
    }

    /// Oldest first.
    pub fn capture_events(&self, capture_id: &str) -> Result<Vec<CaptureEventRecord>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn
            .prepare("SELECT at, level, message, request_id FROM capture_events WHERE capture_id = ?1 ORDER BY id")?;
        let rows = st.query_map([capture_id], |r| {
            Ok(CaptureEventRecord { at: r.get(0)?, level: r.get(1)?, message: r.get(2)?, request_id: r.get(3)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
