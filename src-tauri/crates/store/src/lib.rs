//! The local SQLite file: a cache of the tenant's inventory (Azure stays the truth), the sync history and
//! settings. WAL mode, forward-only migrations embedded in the binary.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension};

mod audit;
mod build;
mod gates;
mod schedule;
pub use audit::*;
pub use build::*;
pub use gates::*;
pub use schedule::*;
pub mod secrets;
pub use secrets::{SealedSecret, SecretBlobs};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the local database at {path} could not be opened: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("the local database was written by a newer Ringmaster (schema {found}, this build knows {known}); update the app")]
    TooNew { found: i64, known: i64 },
    #[error("local database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("local database lock poisoned")]
    Poisoned,
}

/// Forward-only migrations; index + 1 is the schema version they bring the file to.
const MIGRATIONS: &[&str] = &[
    // 1: inventory cache and sync history.
    "CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE subscriptions (id TEXT PRIMARY KEY, name TEXT NOT NULL, state TEXT NOT NULL);
     CREATE TABLE host_pools (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, subscription_id TEXT NOT NULL, resource_group TEXT NOT NULL,
        location TEXT NOT NULL, pool_type TEXT NOT NULL, ring TEXT NOT NULL);
     CREATE TABLE session_hosts (
        id TEXT PRIMARY KEY, host_pool_id TEXT NOT NULL, name TEXT NOT NULL, status TEXT NOT NULL,
        state TEXT NOT NULL, allow_new_session INTEGER NOT NULL, sessions INTEGER NOT NULL,
        last_heartbeat TEXT, vm_id TEXT, image_version_id TEXT, image_version TEXT NOT NULL,
        failed_checks TEXT NOT NULL);
     CREATE INDEX session_hosts_pool ON session_hosts(host_pool_id);
     CREATE INDEX session_hosts_name ON session_hosts(name);
     CREATE TABLE image_versions (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, gallery TEXT NOT NULL, definition TEXT NOT NULL,
        location TEXT NOT NULL, published TEXT, end_of_life TEXT, exclude_from_latest INTEGER NOT NULL,
        provisioning_state TEXT NOT NULL, replication_state TEXT NOT NULL, regions TEXT NOT NULL);
     CREATE TABLE sync_runs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, started_at TEXT NOT NULL, finished_at TEXT NOT NULL,
        source TEXT, requests INTEGER NOT NULL, duration_ms INTEGER NOT NULL, hosts INTEGER NOT NULL,
        error_code TEXT, error_message TEXT, request_id TEXT);",
    // 2: the rollout journal. Every step is written here before its side effect, so a restarted app resumes.
    "CREATE TABLE deployment_profiles (host_pool_id TEXT PRIMARY KEY, profile TEXT NOT NULL, captured_at TEXT NOT NULL);
     CREATE TABLE rollouts (
        id TEXT PRIMARY KEY, host_pool_id TEXT NOT NULL, pool_name TEXT NOT NULL, ring TEXT NOT NULL,
        target_version_id TEXT NOT NULL, target_version TEXT NOT NULL, previous_version TEXT,
        kind TEXT NOT NULL, policy TEXT NOT NULL, state TEXT NOT NULL, reason TEXT,
        created_at TEXT NOT NULL, finished_at TEXT, rolled_back INTEGER NOT NULL DEFAULT 0);
     CREATE TABLE rollout_hosts (
        rollout_id TEXT NOT NULL REFERENCES rollouts(id), position INTEGER NOT NULL, name TEXT NOT NULL,
        vm_id TEXT NOT NULL, stage TEXT NOT NULL, sessions INTEGER NOT NULL, messaged_at TEXT,
        started_at TEXT, finished_at TEXT, error TEXT, request_id TEXT, attempts INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (rollout_id, name));
     CREATE TABLE rollout_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT, rollout_id TEXT NOT NULL REFERENCES rollouts(id), at TEXT NOT NULL,
        host TEXT, level TEXT NOT NULL, message TEXT NOT NULL, request_id TEXT);
     CREATE INDEX rollout_events_rollout ON rollout_events(rollout_id, id);",
    // 3: the build journal: golden masters, script collections, their runs (evidence) and captures.
    "CREATE TABLE golden_masters (
        vm_id TEXT PRIMARY KEY, image_definition_id TEXT NOT NULL, capture_subnet_id TEXT NOT NULL,
        registered_at TEXT NOT NULL);
     CREATE TABLE script_collections (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, body TEXT NOT NULL, updated_at TEXT NOT NULL);
     CREATE TABLE script_runs (
        id TEXT PRIMARY KEY, collection_id TEXT NOT NULL, collection_name TEXT NOT NULL, vm_id TEXT NOT NULL,
        state TEXT NOT NULL, started_by TEXT NOT NULL, started_at TEXT NOT NULL, finished_at TEXT);
     CREATE TABLE script_steps (
        run_id TEXT NOT NULL REFERENCES script_runs(id), position INTEGER NOT NULL, script_name TEXT NOT NULL,
        script_sha256 TEXT NOT NULL, body TEXT NOT NULL, continue_on_error INTEGER NOT NULL,
        run_command_name TEXT NOT NULL, state TEXT NOT NULL, exit_code INTEGER, output TEXT NOT NULL DEFAULT '',
        error TEXT NOT NULL DEFAULT '', started_at TEXT, finished_at TEXT, duration_ms INTEGER,
        PRIMARY KEY (run_id, position));
     CREATE INDEX script_runs_vm ON script_runs(vm_id, started_at);
     CREATE TABLE captures (
        id TEXT PRIMARY KEY, master_vm_id TEXT NOT NULL, version TEXT NOT NULL, version_id TEXT NOT NULL,
        plan TEXT NOT NULL, state TEXT NOT NULL, stage TEXT NOT NULL, reason TEXT, started_by TEXT NOT NULL,
        created_at TEXT NOT NULL, finished_at TEXT, resources TEXT NOT NULL, stages TEXT NOT NULL,
        sysprep_output TEXT NOT NULL DEFAULT '');
     CREATE TABLE capture_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT, capture_id TEXT NOT NULL REFERENCES captures(id), at TEXT NOT NULL,
        level TEXT NOT NULL, message TEXT NOT NULL, request_id TEXT);
     CREATE INDEX capture_events_capture ON capture_events(capture_id, id);",
    // 4: secrets, sealed: only ciphertext and its nonce; the key is in the OS keyring (see `secrets`).
    "CREATE TABLE secrets (
        profile TEXT NOT NULL, name TEXT NOT NULL, nonce BLOB NOT NULL, ciphertext BLOB NOT NULL,
        updated_at TEXT NOT NULL, PRIMARY KEY (profile, name));",
    // 5: the audit log: append-only (triggers refuse UPDATE and DELETE) and hash-chained, so an edit made behind
    // the app's back (triggers dropped) still shows as a broken link.
    "CREATE TABLE audit_log (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL,
        subject TEXT NOT NULL, detail TEXT NOT NULL, prev_hash TEXT NOT NULL, hash TEXT NOT NULL);
     CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
     CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;",
    // 6: gate runs: each gate's verdict on a release in a ring, with its reasons and evidence.
    "CREATE TABLE gate_runs (
        id TEXT PRIMARY KEY, version TEXT NOT NULL, ring TEXT NOT NULL, gate TEXT NOT NULL, state TEXT NOT NULL,
        verdict TEXT, reasons TEXT NOT NULL, evidence TEXT NOT NULL, started_by TEXT NOT NULL,
        started_at TEXT NOT NULL, finished_at TEXT);
     CREATE INDEX gate_runs_version ON gate_runs(version, ring, started_at);",
    // 7: image version tags as the gallery reports them: sign-offs live there, so every app sees the same ones.
    "ALTER TABLE image_versions ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';",
    // 8: rollouts scheduled into a maintenance window, started by the app when the window opens.
    "CREATE TABLE scheduled_rollouts (
        id TEXT PRIMARY KEY, host_pool_id TEXT NOT NULL, pool_name TEXT NOT NULL, version TEXT NOT NULL,
        policy TEXT NOT NULL, start_at TEXT NOT NULL, created_by TEXT NOT NULL, created_at TEXT NOT NULL,
        state TEXT NOT NULL, rollout_id TEXT, reason TEXT);
     CREATE INDEX scheduled_rollouts_due ON scheduled_rollouts(state, start_at);",
];

#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionRow {
    pub id: String,
    pub name: String,
    pub state: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PoolRow {
    pub id: String,
    pub name: String,
    pub subscription_id: String,
    pub resource_group: String,
    pub location: String,
    pub pool_type: String,
    /// Lower-cased `ringmaster-ring` tag; empty when the pool has none.
    pub ring: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostRecord {
    pub id: String,
    pub host_pool_id: String,
    pub name: String,
    pub status: String,
    /// available | draining | unavailable | unknown
    pub state: String,
    pub allow_new_session: bool,
    pub sessions: u32,
    pub last_heartbeat: Option<String>,
    pub vm_id: Option<String>,
    pub image_version_id: Option<String>,
    pub image_version: String,
    pub failed_checks: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct VersionRow {
    pub id: String,
    pub name: String,
    pub gallery: String,
    pub definition: String,
    pub location: String,
    pub published: Option<String>,
    pub end_of_life: Option<String>,
    pub exclude_from_latest: bool,
    pub provisioning_state: String,
    pub replication_state: String,
    /// JSON array of `{region, state, progress, replicas}`.
    pub regions_json: String,
    /// JSON object of the version's tags.
    pub tags_json: String,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub subscriptions: Vec<SubscriptionRow>,
    pub pools: Vec<PoolRow>,
    pub hosts: Vec<HostRecord>,
    pub versions: Vec<VersionRow>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SyncRecord {
    pub started_at: String,
    pub finished_at: String,
    pub source: Option<String>,
    pub requests: u32,
    pub duration_ms: u32,
    pub hosts: u32,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub request_id: Option<String>,
}

/// Per-pool counts, computed in SQL so a 10,000-host tenant stays instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PoolStats {
    pub hosts: u32,
    pub available: u32,
    pub draining: u32,
    pub unavailable: u32,
    pub unknown: u32,
    pub users: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostSort {
    Name,
    HostPool,
    Ring,
    State,
    Sessions,
    ImageVersion,
    LastHeartbeat,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostFilter {
    pub host_pool: Option<String>,
    pub text: Option<String>,
    pub state: Option<String>,
    pub sort: HostSort,
    pub descending: bool,
    pub offset: u32,
    pub limit: u32,
}

/// A host row with its pool's name and ring, for the hosts table.
#[derive(Debug, Clone, PartialEq)]
pub struct HostListing {
    pub host: HostRecord,
    pub pool_name: String,
    pub ring: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RolloutRecord {
    pub id: String,
    pub host_pool_id: String,
    pub pool_name: String,
    pub ring: String,
    pub target_version_id: String,
    pub target_version: String,
    pub previous_version: Option<String>,
    /// `rollout` or `rollback`.
    pub kind: String,
    /// The policy as JSON (the engine owns its shape).
    pub policy: String,
    /// running | paused | completed | failed | aborted
    pub state: String,
    pub reason: Option<String>,
    pub created_at: String,
    pub finished_at: Option<String>,
    pub rolled_back: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RolloutHostRecord {
    pub position: u32,
    pub name: String,
    pub vm_id: String,
    pub stage: String,
    pub sessions: u32,
    pub messaged_at: Option<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub error: Option<String>,
    pub request_id: Option<String>,
    pub attempts: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RolloutEventRecord {
    pub at: String,
    pub host: Option<String>,
    pub level: String,
    pub message: String,
    pub request_id: Option<String>,
}

pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.path.display())
    }
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn =
            Connection::open(path).map_err(|source| StoreError::Open { path: path.display().to_string(), source })?;
        Self::init(conn, path.to_path_buf())
    }

    pub fn open_in_memory() -> Result<Store, StoreError> {
        Self::init(Connection::open_in_memory()?, PathBuf::from(":memory:"))
    }

    fn init(mut conn: Connection, path: PathBuf) -> Result<Store, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        let known = MIGRATIONS.len() as i64;
        if version > known {
            return Err(StoreError::TooNew { found: version, known });
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(Store { conn: Mutex::new(conn), path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> Result<std::sync::MutexGuard<'_, Connection>, StoreError> {
        self.conn.lock().map_err(|_| StoreError::Poisoned)
    }

    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self.conn()?.pragma_query_value(None, "user_version", |r| r.get(0))?)
    }

    pub fn setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.conn()?.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| r.get(0)).optional()?)
    }

    pub fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO settings(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    pub fn delete_setting(&self, key: &str) -> Result<(), StoreError> {
        self.conn()?.execute("DELETE FROM settings WHERE key = ?1", [key])?;
        Ok(())
    }

    /// Replace the cached inventory with a new snapshot, atomically: readers see the old one or the new one.
    pub fn replace_inventory(&self, s: &Snapshot) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        tx.execute_batch(
            "DELETE FROM subscriptions; DELETE FROM host_pools; DELETE FROM session_hosts; DELETE FROM image_versions;",
        )?;
        {
            let mut st = tx.prepare("INSERT INTO subscriptions(id, name, state) VALUES (?1, ?2, ?3)")?;
            for r in &s.subscriptions {
                st.execute(params![r.id, r.name, r.state])?;
            }
            let mut st = tx.prepare(
                "INSERT OR REPLACE INTO host_pools(id, name, subscription_id, resource_group, location, pool_type, ring)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for p in &s.pools {
                st.execute(params![
                    p.id,
                    p.name,
                    p.subscription_id,
                    p.resource_group,
                    p.location,
                    p.pool_type,
                    p.ring
                ])?;
            }
            let mut st = tx.prepare(
                "INSERT OR REPLACE INTO session_hosts(id, host_pool_id, name, status, state, allow_new_session, sessions,
                   last_heartbeat, vm_id, image_version_id, image_version, failed_checks)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?;
            for h in &s.hosts {
                st.execute(params![
                    h.id,
                    h.host_pool_id,
                    h.name,
                    h.status,
                    h.state,
                    h.allow_new_session,
                    h.sessions,
                    h.last_heartbeat,
                    h.vm_id,
                    h.image_version_id,
                    h.image_version,
                    h.failed_checks.join("\n"),
                ])?;
            }
            for v in &s.versions {
                Self::put_version(&tx, v)?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Put one image version into the cache as the gallery reports it now (after a capture, or a targeted
    /// refresh of a version whose replication is in progress) without a full inventory refresh.
    pub fn upsert_version(&self, v: &VersionRow) -> Result<(), StoreError> {
        Self::put_version(&*self.conn()?, v)
    }

    fn put_version(conn: &Connection, v: &VersionRow) -> Result<(), StoreError> {
        conn.prepare_cached(
            "INSERT OR REPLACE INTO image_versions(id, name, gallery, definition, location, published, end_of_life,
               exclude_from_latest, provisioning_state, replication_state, regions, tags)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        )?
        .execute(params![
            v.id,
            v.name,
            v.gallery,
            v.definition,
            v.location,
            v.published,
            v.end_of_life,
            v.exclude_from_latest,
            v.provisioning_state,
            v.replication_state,
            v.regions_json,
            v.tags_json
        ])?;
        Ok(())
    }

    /// Drop an image version the gallery no longer has from the cache.
    pub fn remove_version(&self, id: &str) -> Result<(), StoreError> {
        self.conn()?.execute("DELETE FROM image_versions WHERE lower(id) = lower(?1)", [id])?;
        Ok(())
    }

    pub fn record_sync(&self, r: &SyncRecord) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO sync_runs(started_at, finished_at, source, requests, duration_ms, hosts, error_code, error_message, request_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                r.started_at,
                r.finished_at,
                r.source,
                r.requests,
                r.duration_ms,
                r.hosts,
                r.error_code,
                r.error_message,
                r.request_id
            ],
        )?;
        Ok(())
    }

    fn sync_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SyncRecord> {
        Ok(SyncRecord {
            started_at: r.get(0)?,
            finished_at: r.get(1)?,
            source: r.get(2)?,
            requests: r.get(3)?,
            duration_ms: r.get(4)?,
            hosts: r.get(5)?,
            error_code: r.get(6)?,
            error_message: r.get(7)?,
            request_id: r.get(8)?,
        })
    }

    const SYNC_COLUMNS: &'static str =
        "started_at, finished_at, source, requests, duration_ms, hosts, error_code, error_message, request_id";

    /// The newest sync run, successful or not.
    pub fn last_sync(&self) -> Result<Option<SyncRecord>, StoreError> {
        let sql = format!("SELECT {} FROM sync_runs ORDER BY id DESC LIMIT 1", Self::SYNC_COLUMNS);
        Ok(self.conn()?.query_row(&sql, [], Self::sync_row).optional()?)
    }

    /// The newest successful sync run: the one the cached inventory came from.
    pub fn last_good_sync(&self) -> Result<Option<SyncRecord>, StoreError> {
        let sql =
            format!("SELECT {} FROM sync_runs WHERE error_code IS NULL ORDER BY id DESC LIMIT 1", Self::SYNC_COLUMNS);
        Ok(self.conn()?.query_row(&sql, [], Self::sync_row).optional()?)
    }

    pub fn subscriptions(&self) -> Result<Vec<SubscriptionRow>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare("SELECT id, name, state FROM subscriptions ORDER BY name")?;
        let rows = st.query_map([], |r| Ok(SubscriptionRow { id: r.get(0)?, name: r.get(1)?, state: r.get(2)? }))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn pools(&self) -> Result<Vec<PoolRow>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT id, name, subscription_id, resource_group, location, pool_type, ring FROM host_pools ORDER BY name",
        )?;
        let rows = st.query_map([], |r| {
            Ok(PoolRow {
                id: r.get(0)?,
                name: r.get(1)?,
                subscription_id: r.get(2)?,
                resource_group: r.get(3)?,
                location: r.get(4)?,
                pool_type: r.get(5)?,
                ring: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Counts per pool id (lower-cased).
    pub fn pool_stats(&self) -> Result<Vec<(String, PoolStats)>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT lower(host_pool_id), count(*),
                    sum(state = 'available'), sum(state = 'draining'), sum(state = 'unavailable'),
                    sum(state = 'unknown'), sum(sessions)
             FROM session_hosts GROUP BY lower(host_pool_id)",
        )?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                PoolStats {
                    hosts: r.get(1)?,
                    available: r.get(2)?,
                    draining: r.get(3)?,
                    unavailable: r.get(4)?,
                    unknown: r.get(5)?,
                    users: r.get(6)?,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// (pool id lower-cased, image version name, hosts).
    pub fn version_counts(&self) -> Result<Vec<(String, String, u32)>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT lower(host_pool_id), image_version, count(*) FROM session_hosts
             GROUP BY lower(host_pool_id), image_version",
        )?;
        let rows = st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn versions(&self) -> Result<Vec<VersionRow>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT id, name, gallery, definition, location, published, end_of_life, exclude_from_latest,
                    provisioning_state, replication_state, regions, tags FROM image_versions",
        )?;
        let rows = st.query_map([], |r| {
            Ok(VersionRow {
                id: r.get(0)?,
                name: r.get(1)?,
                gallery: r.get(2)?,
                definition: r.get(3)?,
                location: r.get(4)?,
                published: r.get(5)?,
                end_of_life: r.get(6)?,
                exclude_from_latest: r.get(7)?,
                provisioning_state: r.get(8)?,
                replication_state: r.get(9)?,
                regions_json: r.get(10)?,
                tags_json: r.get(11)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One page of hosts matching `f`, and how many match in all.
    pub fn query_hosts(&self, f: &HostFilter) -> Result<(u32, Vec<HostListing>), StoreError> {
        let mut where_sql = vec!["1 = 1".to_string()];
        let mut args: Vec<String> = Vec::new();
        if let Some(pool) = &f.host_pool {
            args.push(pool.to_ascii_lowercase());
            where_sql.push(format!("lower(h.host_pool_id) = ?{}", args.len()));
        }
        if let Some(state) = &f.state {
            args.push(state.clone());
            where_sql.push(format!("h.state = ?{}", args.len()));
        }
        if let Some(text) = f.text.as_ref().map(|t| t.trim()).filter(|t| !t.is_empty()) {
            // LIKE with the wildcards in the user's text escaped.
            let escaped = text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            args.push(format!("%{escaped}%"));
            let n = args.len();
            where_sql.push(format!(
                "(h.name LIKE ?{n} ESCAPE '\\' OR p.name LIKE ?{n} ESCAPE '\\' OR h.image_version LIKE ?{n} ESCAPE '\\')"
            ));
        }
        let order = match f.sort {
            HostSort::Name => "h.name",
            HostSort::HostPool => "p.name",
            HostSort::Ring => "p.ring",
            HostSort::State => "h.state",
            HostSort::Sessions => "h.sessions",
            HostSort::ImageVersion => "h.image_version",
            HostSort::LastHeartbeat => "h.last_heartbeat",
        };
        let dir = if f.descending { "DESC" } else { "ASC" };
        let from = "FROM session_hosts h LEFT JOIN host_pools p ON lower(p.id) = lower(h.host_pool_id)";
        let where_clause = where_sql.join(" AND ");
        let conn = self.conn()?;
        let total: u32 = conn.query_row(
            &format!("SELECT count(*) {from} WHERE {where_clause}"),
            rusqlite::params_from_iter(args.iter()),
            |r| r.get(0),
        )?;
        let sql = format!(
            "SELECT h.id, h.host_pool_id, h.name, h.status, h.state, h.allow_new_session, h.sessions, h.last_heartbeat,
                    h.vm_id, h.image_version_id, h.image_version, h.failed_checks,
                    coalesce(p.name, ''), coalesce(p.ring, '')
             {from} WHERE {where_clause} ORDER BY {order} {dir}, h.name ASC LIMIT {} OFFSET {}",
            f.limit.min(1000),
            f.offset
        );
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map(rusqlite::params_from_iter(args.iter()), |r| {
            let checks: String = r.get(11)?;
            Ok(HostListing {
                host: HostRecord {
                    id: r.get(0)?,
                    host_pool_id: r.get(1)?,
                    name: r.get(2)?,
                    status: r.get(3)?,
                    state: r.get(4)?,
                    allow_new_session: r.get(5)?,
                    sessions: r.get(6)?,
                    last_heartbeat: r.get(7)?,
                    vm_id: r.get(8)?,
                    image_version_id: r.get(9)?,
                    image_version: r.get(10)?,
                    failed_checks: checks.split('\n').filter(|s| !s.is_empty()).map(str::to_string).collect(),
                },
                pool_name: r.get(12)?,
                ring: r.get(13)?,
            })
        })?;
        Ok((total, rows.collect::<Result<_, _>>()?))
    }

    /// A host a rollout just verified in Azure: Available, taking sessions, on `version`. Keeps the cache true
    /// between the rollout's end and the next inventory refresh.
    /// Every cached session host of one pool, by name (in pages: `query_hosts` serves at most 1,000 at a time).
    pub fn hosts_of_pool(&self, host_pool_id: &str) -> Result<Vec<HostListing>, StoreError> {
        let mut out = Vec::new();
        loop {
            let (total, page) = self.query_hosts(&HostFilter {
                host_pool: Some(host_pool_id.to_string()),
                text: None,
                state: None,
                sort: HostSort::Name,
                descending: false,
                offset: out.len() as u32,
                limit: 1000,
            })?;
            let done = page.is_empty() || out.len() + page.len() >= total as usize;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }

    pub fn record_host_replaced(
        &self,
        host_pool_id: &str,
        name: &str,
        version: &str,
        version_id: &str,
    ) -> Result<(), StoreError> {
        self.conn()?.execute(
            "UPDATE session_hosts SET image_version = ?3, image_version_id = ?4, status = 'Available',
               state = 'available', allow_new_session = 1, sessions = 0, failed_checks = ''
             WHERE lower(host_pool_id) = lower(?1) AND name = ?2",
            params![host_pool_id, name, version, version_id],
        )?;
        Ok(())
    }

    /// The cache follows a host replaced under another name (standby) or restored to its own: the row of `from`
    /// becomes `to`, on `version`, Available, until the next refresh shows both.
    pub fn record_host_renamed(
        &self,
        host_pool_id: &str,
        from: &str,
        to: &str,
        vm_id: &str,
        version: &str,
        version_id: &str,
    ) -> Result<(), StoreError> {
        self.conn()?.execute(
            "UPDATE session_hosts SET id = substr(id, 1, length(id) - length(?2)) || ?3, name = ?3, vm_id = ?4,
               image_version = ?5, image_version_id = ?6, status = 'Available', state = 'available',
               allow_new_session = 1, sessions = 0, failed_checks = ''
             WHERE lower(host_pool_id) = lower(?1) AND name = ?2 AND NOT EXISTS
               (SELECT 1 FROM session_hosts o WHERE lower(o.host_pool_id) = lower(?1) AND o.name = ?3)",
            params![host_pool_id, from, to, vm_id, version, version_id],
        )?;
        Ok(())
    }

    // ---- deployment profiles ----

    pub fn profile(&self, host_pool_id: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn()?
            .query_row(
                "SELECT profile FROM deployment_profiles WHERE lower(host_pool_id) = lower(?1)",
                [host_pool_id],
                |r| r.get(0),
            )
            .optional()?)
    }

    pub fn save_profile(&self, host_pool_id: &str, profile: &str, at: &str) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO deployment_profiles(host_pool_id, profile, captured_at) VALUES (?1, ?2, ?3)
             ON CONFLICT(host_pool_id) DO UPDATE SET profile = excluded.profile, captured_at = excluded.captured_at",
            params![host_pool_id, profile, at],
        )?;
        Ok(())
    }

    // ---- rollout journal ----

    /// Create a rollout and its hosts in one transaction.
    pub fn create_rollout(&self, r: &RolloutRecord, hosts: &[RolloutHostRecord]) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO rollouts(id, host_pool_id, pool_name, ring, target_version_id, target_version, previous_version,
               kind, policy, state, reason, created_at, finished_at, rolled_back)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            params![
                r.id,
                r.host_pool_id,
                r.pool_name,
                r.ring,
                r.target_version_id,
                r.target_version,
                r.previous_version,
                r.kind,
                r.policy,
                r.state,
                r.reason,
                r.created_at,
                r.finished_at,
                r.rolled_back
            ],
        )?;
        {
            let mut st = tx.prepare(
                "INSERT INTO rollout_hosts(rollout_id, position, name, vm_id, stage, sessions, attempts)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for h in hosts {
                st.execute(params![r.id, h.position, h.name, h.vm_id, h.stage, h.sessions, h.attempts])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    const ROLLOUT_COLUMNS: &'static str = "id, host_pool_id, pool_name, ring, target_version_id, target_version,
        previous_version, kind, policy, state, reason, created_at, finished_at, rolled_back";

    fn rollout_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RolloutRecord> {
        Ok(RolloutRecord {
            id: r.get(0)?,
            host_pool_id: r.get(1)?,
            pool_name: r.get(2)?,
            ring: r.get(3)?,
            target_version_id: r.get(4)?,
            target_version: r.get(5)?,
            previous_version: r.get(6)?,
            kind: r.get(7)?,
            policy: r.get(8)?,
            state: r.get(9)?,
            reason: r.get(10)?,
            created_at: r.get(11)?,
            finished_at: r.get(12)?,
            rolled_back: r.get(13)?,
        })
    }

    pub fn rollout(&self, id: &str) -> Result<Option<RolloutRecord>, StoreError> {
        let sql = format!("SELECT {} FROM rollouts WHERE id = ?1", Self::ROLLOUT_COLUMNS);
        Ok(self.conn()?.query_row(&sql, [id], Self::rollout_row).optional()?)
    }

    /// Newest first.
    pub fn rollouts(&self) -> Result<Vec<RolloutRecord>, StoreError> {
        let sql = format!("SELECT {} FROM rollouts ORDER BY created_at DESC, id DESC", Self::ROLLOUT_COLUMNS);
        let conn = self.conn()?;
        let mut st = conn.prepare(&sql)?;
        let rows = st.query_map([], Self::rollout_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn set_rollout_state(
        &self,
        id: &str,
        state: &str,
        reason: Option<&str>,
        finished_at: Option<&str>,
    ) -> Result<(), StoreError> {
        self.conn()?.execute(
            "UPDATE rollouts SET state = ?2, reason = ?3, finished_at = ?4 WHERE id = ?1",
            params![id, state, reason, finished_at],
        )?;
        Ok(())
    }

    pub fn mark_rolled_back(&self, id: &str) -> Result<(), StoreError> {
        self.conn()?.execute("UPDATE rollouts SET rolled_back = 1 WHERE id = ?1", [id])?;
        Ok(())
    }

    pub fn rollout_hosts(&self, rollout_id: &str) -> Result<Vec<RolloutHostRecord>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT position, name, vm_id, stage, sessions, messaged_at, started_at, finished_at, error, request_id, attempts
             FROM rollout_hosts WHERE rollout_id = ?1 ORDER BY position",
        )?;
        let rows = st.query_map([rollout_id], |r| {
            Ok(RolloutHostRecord {
                position: r.get(0)?,
                name: r.get(1)?,
                vm_id: r.get(2)?,
                stage: r.get(3)?,
                sessions: r.get(4)?,
                messaged_at: r.get(5)?,
                started_at: r.get(6)?,
                finished_at: r.get(7)?,
                error: r.get(8)?,
                request_id: r.get(9)?,
                attempts: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Record that a host enters `stage` (before the stage's side effect runs).
    pub fn set_host_stage(&self, rollout_id: &str, name: &str, stage: &str, at: &str) -> Result<(), StoreError> {
        self.conn()?.execute(
            "UPDATE rollout_hosts SET stage = ?3,
               started_at = coalesce(started_at, ?4),
               finished_at = CASE WHEN ?3 IN ('done', 'failed', 'skipped') THEN ?4 ELSE NULL END,
               error = CASE WHEN ?3 = 'failed' THEN error ELSE NULL END,
               request_id = CASE WHEN ?3 = 'failed' THEN request_id ELSE NULL END
             WHERE rollout_id = ?1 AND name = ?2",
            params![rollout_id, name, stage, at],
        )?;
        Ok(())
    }

    pub fn fail_host(
        &self,
        rollout_id: &str,
        name: &str,
        error: &str,
        request_id: Option<&str>,
        at: &str,
    ) -> Result<(), StoreError> {
        self.conn()?.execute(
            "UPDATE rollout_hosts SET stage = 'failed', error = ?3, request_id = ?4, finished_at = ?5,
               attempts = attempts + 1 WHERE rollout_id = ?1 AND name = ?2",
            params![rollout_id, name, error, request_id, at],
        )?;
        Ok(())
    }

    /// Put failed hosts back in the queue (retry); returns how many.
    pub fn requeue_failed_hosts(&self, rollout_id: &str) -> Result<usize, StoreError> {
        Ok(self.conn()?.execute(
            "UPDATE rollout_hosts SET stage = 'queued', error = NULL, request_id = NULL, finished_at = NULL
             WHERE rollout_id = ?1 AND stage = 'failed'",
            [rollout_id],
        )?)
    }

    pub fn skip_queued_hosts(&self, rollout_id: &str, at: &str) -> Result<usize, StoreError> {
        Ok(self.conn()?.execute(
            "UPDATE rollout_hosts SET stage = 'skipped', finished_at = ?2 WHERE rollout_id = ?1 AND stage = 'queued'",
            params![rollout_id, at],
        )?)
    }

    pub fn set_host_messaged(&self, rollout_id: &str, name: &str, at: &str) -> Result<(), StoreError> {
        self.conn()?.execute(
            "UPDATE rollout_hosts SET messaged_at = coalesce(messaged_at, ?3) WHERE rollout_id = ?1 AND name = ?2",
            params![rollout_id, name, at],
        )?;
        Ok(())
    }

    pub fn set_host_sessions(&self, rollout_id: &str, name: &str, sessions: u32) -> Result<(), StoreError> {
        self.conn()?.execute(
            "UPDATE rollout_hosts SET sessions = ?3 WHERE rollout_id = ?1 AND name = ?2",
            params![rollout_id, name, sessions],
        )?;
        Ok(())
    }

    pub fn add_rollout_event(&self, rollout_id: &str, e: &RolloutEventRecord) -> Result<(), StoreError> {
        self.conn()?.execute(
            "INSERT INTO rollout_events(rollout_id, at, host, level, message, request_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![rollout_id, e.at, e.host, e.level, e.message, e.request_id],
        )?;
        Ok(())
    }

    /// The newest `limit` events, oldest first.
    pub fn rollout_events(&self, rollout_id: &str, limit: u32) -> Result<Vec<RolloutEventRecord>, StoreError> {
        let conn = self.conn()?;
        let mut st = conn.prepare(
            "SELECT at, host, level, message, request_id FROM
               (SELECT * FROM rollout_events WHERE rollout_id = ?1 ORDER BY id DESC LIMIT ?2) ORDER BY id",
        )?;
        let rows = st.query_map(params![rollout_id, limit], |r| {
            Ok(RolloutEventRecord {
                at: r.get(0)?,
                host: r.get(1)?,
                level: r.get(2)?,
                message: r.get(3)?,
                request_id: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_host_of_a_large_pool_is_returned_not_just_the_first_page() {
        let store = Store::open_in_memory().unwrap();
        let pool = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DesktopVirtualization/hostPools/hp-big";
        let hosts = (0..2500)
            .map(|i| HostRecord {
                id: format!("{pool}/sessionHosts/h{i:05}"),
                host_pool_id: pool.into(),
                name: format!("h{i:05}"),
                status: "Available".into(),
                state: "available".into(),
                allow_new_session: true,
                sessions: 0,
                last_heartbeat: None,
                vm_id: None,
                image_version_id: None,
                image_version: "1.0.0".into(),
                failed_checks: vec![],
            })
            .collect();
        store
            .replace_inventory(&Snapshot {
                subscriptions: vec![],
                pools: vec![PoolRow {
                    id: pool.into(),
                    name: "hp-big".into(),
                    subscription_id: "s".into(),
                    resource_group: "rg".into(),
                    location: "westeurope".into(),
                    pool_type: "Pooled".into(),
                    ring: "prod".into(),
                }],
                hosts,
                versions: vec![],
            })
            .unwrap();
        let all = store.hosts_of_pool(pool).unwrap();
        assert_eq!(all.len(), 2500);
        assert_eq!(all.first().unwrap().host.name, "h00000");
        assert_eq!(all.last().unwrap().host.name, "h02499");
    }
}
