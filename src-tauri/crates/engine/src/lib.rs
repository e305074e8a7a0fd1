//! The engine: turns what Azure says into rings, pools and releases, keeps the local cache current and answers
//! the UI's questions from it. Commands in the app are one-liners over [`Engine`].

pub mod appliance;
pub mod audit;
pub mod build;
pub mod change_record;
pub mod gates;
pub mod model;
mod pipeline;
pub mod profile;
pub mod release;
pub mod release_model;
pub mod ring_rollout;
mod rings;
pub mod rollout;
pub mod schedule;
pub mod script_gate;
pub mod session;
pub mod signoff;
pub mod standby;

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Instant;

use ringmaster_azure::inventory::{self, RawInventory};
use ringmaster_azure::{ArmClient, AzureError};
use ringmaster_store::{HostFilter, HostSort, Snapshot, Store, StoreError, SyncRecord};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

pub use appliance::LoginEnterpriseSettings;
pub use audit::{AppRole, AuditEntry, AuditPage, AuditVerification};
pub use build::{BuildConfig, BuildNotifier};
pub use change_record::ChangeRecordFiles;
pub use gates::{GateKind, GateRun, GateVerdict, LeGateConfig, LoginEnterpriseConnection, RingGates};
pub use model::*;
pub use pipeline::{CAPTURE_SUBNET_TAG, MASTER_TAG};
pub use profile::ProfileSettings;
pub use release_model::*;
pub use ring_rollout::{RingPlan, SkippedPool};
pub use rings::{ring_display_name, version_from_image_id};
pub use rollout::{ExecutorConfig, Notifier};
pub use schedule::ScheduledRollout;
pub use script_gate::{validate_script_gate, ScriptGateConfig};
pub use session::{DeviceCode, SessionInfo, SignInConfig, TenantChoice};
pub use signoff::{Approval, PromotionCheck, SignOffDecision, SignOffEvidence};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Azure(#[from] AzureError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("not connected to a tenant yet")]
    NotConnected,
    #[error("an inventory refresh is already running")]
    AlreadyRunning,
    #[error("the refresh was cancelled; the previous inventory is still shown")]
    Cancelled,
    #[error("{0}")]
    InvalidInput(String),
}

impl EngineError {
    pub fn to_app_error(&self) -> AppError {
        let (code, request_id) = match self {
            EngineError::Azure(e) => (e.code(), e.request_id()),
            EngineError::Store(_) => ("LocalDatabase".to_string(), None),
            EngineError::NotConnected => ("NotConnected".to_string(), None),
            EngineError::AlreadyRunning => ("AlreadyRunning".to_string(), None),
            EngineError::Cancelled => ("Cancelled".to_string(), None),
            EngineError::InvalidInput(_) => ("InvalidInput".to_string(), None),
        };
        AppError { code, message: self.to_string(), request_id }
    }
}

impl From<EngineError> for AppError {
    fn from(e: EngineError) -> AppError {
        e.to_app_error()
    }
}

/// The tenant the engine talks to, and how it describes itself in settings.
pub struct TenantConnection {
    pub client: ArmClient,
    pub mode: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub cloud: String,
    pub authority_host: String,
    /// Rollout timing for this tenant (a simulated tenant's clock may run fast).
    pub executor: ExecutorConfig,
    /// Script run and capture timing for this tenant.
    pub build: BuildConfig,
    /// Who the app acts as, recorded on evidence (script runs, captures).
    pub principal: String,
    /// The Login Enterprise appliance the LE gate uses, if any.
    pub login_enterprise: Option<LoginEnterpriseConnection>,
}

pub struct Engine {
    store: Arc<Store>,
    connection: RwLock<Option<Arc<TenantConnection>>>,
    running: AtomicBool,
    cancel: std::sync::Mutex<Option<CancellationToken>>,
    rollouts: RwLock<Option<Arc<rollout::Rollouts>>>,
    notifier: RwLock<Notifier>,
    builds: RwLock<Option<Arc<build::Builds>>>,
    build_notifier: RwLock<BuildNotifier>,
    /// The newest notices, newest last; kept for this session only (the audit log keeps the record).
    notices: std::sync::Mutex<Vec<Notice>>,
    /// Where secrets go (the OS keyring's data key, sealed blobs in SQLite); `Err` says why there is none.
    secrets: RwLock<Result<Arc<dyn ringmaster_secrets::SecretStore>, String>>,
    /// A person's Entra session (real tenants signed in interactively), to switch tenants with.
    session: RwLock<Option<ringmaster_azure::signin::RefreshTokenCredential>>,
    session_ended: RwLock<Option<String>>,
    /// Refreshes started and finished this session, to tell stale progress from current.
    refresh_runs: std::sync::atomic::AtomicU32,
    finished_run: std::sync::atomic::AtomicU32,
}

pub(crate) fn now_rfc3339() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

/// Records a refresh as finished however it ends.
struct FinishedRun<'a>(&'a std::sync::atomic::AtomicU32, u32);
impl Drop for FinishedRun<'_> {
    fn drop(&mut self) {
        self.0.fetch_max(self.1, Ordering::SeqCst);
    }
}

/// Clears the running flag however a refresh ends.
struct RunningGuard<'a>(&'a AtomicBool);
impl Drop for RunningGuard<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

impl Engine {
    pub fn new(store: Arc<Store>) -> Engine {
        Engine {
            store,
            connection: RwLock::new(None),
            running: AtomicBool::new(false),
            cancel: std::sync::Mutex::new(None),
            rollouts: RwLock::new(None),
            notifier: RwLock::new(Arc::new(|_: &str| {})),
            builds: RwLock::new(None),
            build_notifier: RwLock::new(Arc::new(|_: &BuildUpdate| {})),
            notices: std::sync::Mutex::new(Vec::new()),
            secrets: RwLock::new(Err("no secret store was set up".into())),
            session: RwLock::new(None),
            session_ended: RwLock::new(None),
            refresh_runs: std::sync::atomic::AtomicU32::new(0),
            finished_run: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// The secret store, or why there is none (no OS keyring): secrets are then refused, never kept in clear.
    pub fn set_secret_store(&self, store: Result<Arc<dyn ringmaster_secrets::SecretStore>, String>) {
        if let Ok(mut s) = self.secrets.write() {
            *s = store;
        }
        if let Ok(runner) = self.runner() {
            runner.set_secrets(self.secret_store().ok());
        }
    }

    pub(crate) fn secret_store(&self) -> Result<Arc<dyn ringmaster_secrets::SecretStore>, EngineError> {
        match self.secrets.read().map(|s| s.clone()) {
            Ok(Ok(s)) => Ok(s),
            Ok(Err(why)) => Err(EngineError::InvalidInput(format!(
                "Ringmaster cannot store secrets on this machine ({why}); it will not keep them in clear"
            ))),
            Err(_) => Err(EngineError::InvalidInput("the secret store is unavailable".into())),
        }
    }

    /// Who to tell when a rollout changes (the app emits an event to the UI).
    pub fn set_rollout_notifier(&self, notifier: Notifier) {
        if let Ok(mut n) = self.notifier.write() {
            *n = notifier;
        }
    }

    /// Who to tell when a script run or capture changes.
    pub fn set_build_notifier(&self, notifier: BuildNotifier) {
        if let Ok(mut n) = self.build_notifier.write() {
            *n = notifier;
        }
    }

    /// Tell people now: kept for the session and announced as a build update of kind `notice`.
    pub(crate) fn notify(&self, level: &str, title: String, message: String, version: Option<&str>) {
        let notice = Notice {
            id: rollout::uuid_like(),
            level: level.into(),
            title,
            message,
            version: version.map(str::to_string),
            at: now_rfc3339(),
        };
        if let Ok(mut n) = self.notices.lock() {
            n.push(notice.clone());
            let excess = n.len().saturating_sub(20);
            n.drain(..excess);
        }
        if let Ok(n) = self.build_notifier.read() {
            n(&BuildUpdate { kind: "notice".into(), id: notice.id });
        }
    }

    /// The session's notices not dismissed, newest first.
    pub fn notices(&self) -> Vec<Notice> {
        self.notices.lock().map(|n| n.iter().rev().cloned().collect()).unwrap_or_default()
    }

    pub fn dismiss_notice(&self, id: &str) -> Result<(), EngineError> {
        let mut n =
            self.notices.lock().map_err(|_| EngineError::InvalidInput("the notice list is unavailable".into()))?;
        n.retain(|x| x.id != id);
        Ok(())
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Connect to a tenant and resume any rollout the journal says was running.
    pub fn connect(&self, connection: TenantConnection) {
        let notifier = self.notifier.read().map(|n| n.clone()).unwrap_or_else(|_| Arc::new(|_: &str| {}));
        let runner = rollout::Rollouts::new(
            self.store.clone(),
            connection.client.clone(),
            connection.executor.clone(),
            notifier,
        );
        runner.set_secrets(self.secret_store().ok());
        let build_notifier =
            self.build_notifier.read().map(|n| n.clone()).unwrap_or_else(|_| Arc::new(|_: &BuildUpdate| {}));
        let builds =
            build::Builds::new(self.store.clone(), connection.client.clone(), connection.build.clone(), build_notifier);
        if let Ok(mut c) = self.connection.write() {
            *c = Some(Arc::new(connection));
        }
        if let Ok(mut b) = self.builds.write() {
            *b = Some(builds.clone());
        }
        if let Err(e) = builds.resume_all() {
            tracing::error!(target: "build", "could not resume script runs and captures: {e}");
        }
        if let Ok(mut r) = self.rollouts.write() {
            *r = Some(runner.clone());
        }
        if let Err(e) = runner.resume_all() {
            tracing::error!(target: "rollout", "could not resume rollouts: {e}");
        }
    }

    fn runner(&self) -> Result<Arc<rollout::Rollouts>, EngineError> {
        self.rollouts.read().ok().and_then(|r| r.clone()).ok_or(EngineError::NotConnected)
    }

    /// What rolling `version` (a gallery image version name) out to a pool would do, from the cached inventory.
    pub fn plan_rollout(
        &self,
        host_pool_id: &str,
        version: &str,
        policy: &RolloutPolicy,
    ) -> Result<RolloutPlan, EngineError> {
        self.plan_for(host_pool_id, version, policy, false)
    }

    /// A rollback supersedes a paused or failed rollout of the pool (it is aborted when the rollback starts);
    /// only a running one blocks it.
    fn plan_for(
        &self,
        host_pool_id: &str,
        version: &str,
        policy: &RolloutPolicy,
        rollback: bool,
    ) -> Result<RolloutPlan, EngineError> {
        pipeline::check_id(host_pool_id, ringmaster_azure::resource_id::HOST_POOL)?;
        let pool =
            self.store.pools()?.into_iter().find(|p| p.id.eq_ignore_ascii_case(host_pool_id)).ok_or_else(|| {
                EngineError::InvalidInput(format!("no host pool {host_pool_id} in the inventory; refresh first"))
            })?;
        let v = self
            .store
            .versions()?
            .into_iter()
            .find(|v| v.name == version)
            .ok_or_else(|| EngineError::InvalidInput(format!("no image version {version} in the gallery")))?;
        #[derive(serde::Deserialize)]
        struct Region {
            region: String,
            state: String,
            #[serde(default)]
            replicas: u32,
        }
        let regions: Vec<Region> = serde_json::from_str(&v.regions_json).unwrap_or_default();
        let location = pool.location.to_ascii_lowercase();
        let in_region = regions.iter().find(|r| r.region == location);
        let replication = in_region.map(|r| r.state.clone()).unwrap_or_else(|| "NotTargeted".into());
        let replicas_in_region = in_region.map(|r| r.replicas).unwrap_or(0);
        let unfinished_rollout = self
            .store
            .rollouts()?
            .into_iter()
            .find(|r| {
                r.host_pool_id.eq_ignore_ascii_case(&pool.id)
                    && (r.state == "running" || (!rollback && matches!(r.state.as_str(), "paused" | "failed")))
            })
            .map(|r| (r.id, r.state));
        // Every host of the pool, however many (a page of the host table holds 1,000), but its standby hosts.
        let standby = self.standby_hosts(&pool.id)?;
        let hosts = self
            .store
            .hosts_of_pool(&pool.id)?
            .into_iter()
            .filter(|l| !standby.contains(&l.host.name))
            .map(|l| PlannedHost {
                name: l.host.name,
                vm_id: l.host.vm_id.unwrap_or_default(),
                sessions: l.host.sessions,
                state: HostState::parse(&l.host.state),
                current_version: l.host.image_version,
            })
            .collect();
        let promotion = if rollback { None } else { self.promotion_blocker(&pool, &v)? };
        let mut plan = rollout::plan(
            rollout::PlanInput {
                host_pool_id: pool.id,
                pool_name: pool.name,
                ring: ring_display_name(&pool.ring),
                location: pool.location,
                target_version: v.name,
                target_version_id: v.id,
                replication_state_in_region: replication,
                replicas_in_region,
                unfinished_rollout,
                hosts,
            },
            policy,
        );
        if let Some(message) = promotion {
            plan.blockers.push(PolicyProblem { field: "promotion".into(), message });
        }
        Ok(plan)
    }

    /// The version most of a pool's hosts run now, from the cache.
    fn dominant_version(&self, host_pool_id: &str) -> Result<Option<String>, EngineError> {
        Ok(self
            .store
            .version_counts()?
            .into_iter()
            .filter(|(p, _, _)| p.eq_ignore_ascii_case(host_pool_id))
            .max_by_key(|(_, _, n)| *n)
            .map(|(_, v, _)| v))
    }

    pub async fn start_rollout(
        &self,
        host_pool_id: &str,
        version: &str,
        policy: &RolloutPolicy,
    ) -> Result<RolloutView, EngineError> {
        let plan = self.plan_rollout(host_pool_id, version, policy)?;
        if plan.blockers.is_empty() {
            self.audit(
                "rollout.start",
                &plan.pool_name,
                serde_json::json!({"hostPoolId": host_pool_id, "version": version, "ring": plan.ring, "policy": policy}),
            )?;
        }
        let previous = self.dominant_version(host_pool_id)?;
        let runner = self.runner()?;
        if plan.blockers.is_empty() && !plan.hosts.is_empty() {
            // One standby generation per pool: this rollout's hosts take over from the last one's.
            self.release_pool_standby(host_pool_id)?;
        }
        let id = runner.start(&plan, policy, "rollout", previous).await?;
        runner.view(&id)
    }

    /// The pool's last known-good release: the newest completed rollout before the current one that was not
    /// rolled back, or the version the pool ran before its first rollout.
    pub fn last_known_good(&self, host_pool_id: &str) -> Result<Option<String>, EngineError> {
        let all: Vec<_> =
            self.store.rollouts()?.into_iter().filter(|r| r.host_pool_id.eq_ignore_ascii_case(host_pool_id)).collect();
        // A release rolled back in this pool is never its known-good, whatever ran it before.
        let rejected: HashSet<&str> = all.iter().filter(|r| r.rolled_back).map(|r| r.target_version.as_str()).collect();
        let history: Vec<_> = all.iter().filter(|r| r.state == "completed" && !r.rolled_back).collect();
        let Some(current) = history.first() else { return self.newest_released_before_current(host_pool_id) };
        let found = history
            .iter()
            .skip(1)
            .find(|r| r.target_version != current.target_version && !rejected.contains(r.target_version.as_str()))
            .map(|r| r.target_version.clone())
            .or_else(|| {
                current
                    .previous_version
                    .clone()
                    .filter(|v| *v != current.target_version && v != "unknown" && !rejected.contains(v.as_str()))
            });
        match found {
            Some(v) => Ok(Some(v)),
            None => self.newest_released_before_current(host_pool_id),
        }
    }

    /// Without rollout history: the newest version older than what the pool runs now that was released to
    /// Prod (visible to `latest`), which is what this process calls known-good.
    fn newest_released_before_current(&self, host_pool_id: &str) -> Result<Option<String>, EngineError> {
        let Some(current) = self.dominant_version(host_pool_id)? else { return Ok(None) };
        let mut versions = self.store.versions()?;
        versions.sort_by(|a, b| b.published.cmp(&a.published));
        let current_published = versions.iter().find(|v| v.name == current).and_then(|v| v.published.clone());
        Ok(versions
            .into_iter()
            .filter(|v| v.name != current && !v.exclude_from_latest && v.provisioning_state == "Succeeded")
            .find(|v| current_published.is_none() || v.published < current_published)
            .map(|v| v.name))
    }

    pub fn plan_rollback(&self, host_pool_id: &str, policy: &RolloutPolicy) -> Result<RolloutPlan, EngineError> {
        if let Some(restore) = self.plan_standby_restore(host_pool_id, policy)? {
            return Ok(restore);
        }
        let lkg = self.last_known_good(host_pool_id)?.ok_or_else(|| {
            EngineError::InvalidInput(
                "No known-good release is recorded for this pool: nothing to roll back to.".into(),
            )
        })?;
        self.plan_for(host_pool_id, &lkg, policy, true)
    }

    /// One click: roll the pool back to its last known-good release with the policy given.
    pub async fn rollback(&self, host_pool_id: &str, policy: &RolloutPolicy) -> Result<RolloutView, EngineError> {
        self.rollback_for(host_pool_id, policy, None).await
    }

    /// A rollback a person asked for (`automatic: None`), or one the app started on its own, with its reason.
    pub(crate) async fn rollback_for(
        &self,
        host_pool_id: &str,
        policy: &RolloutPolicy,
        automatic: Option<&str>,
    ) -> Result<RolloutView, EngineError> {
        let plan = self.plan_rollback(host_pool_id, policy)?;
        let runner = self.runner()?;
        if plan.blockers.is_empty() {
            let detail = serde_json::json!({"hostPoolId": host_pool_id, "to": plan.target_version, "ring": plan.ring, "policy": policy, "reason": automatic});
            match automatic {
                None => self.audit("rollout.rollback", &plan.pool_name, detail)?,
                Some(_) => audit::record_automatic(&self.store, "rollout.rollback.automatic", &plan.pool_name, detail),
            }
        }
        let current = self
            .store
            .rollouts()?
            .into_iter()
            .find(|r| r.host_pool_id.eq_ignore_ascii_case(host_pool_id) && !r.rolled_back && r.kind == "rollout");
        let previous = self.dominant_version(host_pool_id)?;
        if plan.blockers.is_empty() {
            for r in self.store.rollouts()?.into_iter().filter(|r| {
                r.host_pool_id.eq_ignore_ascii_case(host_pool_id) && matches!(r.state.as_str(), "paused" | "failed")
            }) {
                runner.abort(&r.id)?;
            }
        }
        let kind = if plan.standby_restore { "restore" } else { "rollback" };
        let id = runner.start(&plan, policy, kind, previous).await?;
        if let Some(c) = current {
            self.store.mark_rolled_back(&c.id)?;
            if plan.standby_restore {
                self.end_standby(&c.id, "restored")?;
            } else {
                self.release_pool_standby(host_pool_id)?;
            }
        }
        runner.view(&id)
    }

    pub fn rollouts(&self) -> Result<Vec<RolloutSummary>, EngineError> {
        match self.runner() {
            Ok(r) => r.list(),
            Err(_) => Ok(Vec::new()),
        }
    }

    pub fn rollout(&self, id: &str) -> Result<RolloutView, EngineError> {
        let mut view = self.runner()?.view(id)?;
        view.standby_kept = self.standby_kept(&view)?;
        Ok(view)
    }

    pub fn pause_rollout(&self, id: &str) -> Result<RolloutView, EngineError> {
        let r = self.runner()?;
        self.audit_rollout("pause", id)?;
        r.pause(id)?;
        r.view(id)
    }

    pub fn resume_rollout(&self, id: &str) -> Result<RolloutView, EngineError> {
        let r = self.runner()?;
        self.audit_rollout("resume", id)?;
        r.resume(id)?;
        r.view(id)
    }

    pub fn abort_rollout(&self, id: &str) -> Result<RolloutView, EngineError> {
        let r = self.runner()?;
        self.audit_rollout("abort", id)?;
        r.abort(id)?;
        r.view(id)
    }

    pub fn retry_rollout(&self, id: &str) -> Result<RolloutView, EngineError> {
        let r = self.runner()?;
        self.audit_rollout("retry", id)?;
        r.retry_failed(id)?;
        r.view(id)
    }

    fn audit_rollout(&self, verb: &str, id: &str) -> Result<(), EngineError> {
        let r = self.store.rollout(id)?.ok_or_else(|| EngineError::InvalidInput(format!("no rollout {id}")))?;
        self.audit(
            &format!("rollout.{verb}"),
            &r.pool_name,
            serde_json::json!({"rolloutId": id, "version": r.target_version, "state": r.state}),
        )
    }

    /// Stop talking to the tenant (signed out). Refused while a rollout runs: it would be left without a client.
    pub fn disconnect(&self) {
        if let Ok(mut c) = self.connection.write() {
            *c = None;
        }
    }

    fn connection(&self) -> Result<Arc<TenantConnection>, EngineError> {
        self.connection.read().ok().and_then(|c| c.clone()).ok_or(EngineError::NotConnected)
    }

    pub fn connection_info(&self) -> Result<ConnectionInfo, EngineError> {
        let c = self.connection()?;
        let only = self.inventory_subscriptions()?;
        let subscriptions = self
            .store
            .subscriptions()?
            .into_iter()
            .map(|s| SubscriptionInfo {
                included: only.is_empty() || only.iter().any(|o| o.eq_ignore_ascii_case(&s.id)),
                id: s.id,
                name: s.name,
                state: s.state,
            })
            .collect();
        Ok(ConnectionInfo {
            mode: c.mode.clone(),
            tenant_id: c.tenant_id.clone(),
            tenant_name: c.tenant_name.clone(),
            cloud: c.cloud.clone(),
            arm_endpoint: c.client.endpoint().as_str().trim_end_matches('/').to_string(),
            authority_host: c.authority_host.clone(),
            credential: c.client.credential().describe(),
            subscriptions,
            database_path: self.store.path().display().to_string(),
        })
    }

    pub fn sync_status(&self) -> Result<SyncStatus, EngineError> {
        let good = self.store.last_good_sync()?;
        let last = self.store.last_sync()?;
        let last_error = last.as_ref().and_then(|l| {
            l.error_code.as_ref().map(|code| AppError {
                code: code.clone(),
                message: l.error_message.clone().unwrap_or_default(),
                request_id: l.request_id.clone(),
            })
        });
        Ok(SyncStatus {
            running: self.running.load(Ordering::SeqCst),
            synced_at: good.as_ref().map(|g| g.finished_at.clone()),
            source: good.as_ref().and_then(|g| match g.source.as_deref() {
                Some("resourceGraph") => Some(InventorySource::ResourceGraph),
                Some("armListing") => Some(InventorySource::ArmListing),
                _ => None,
            }),
            requests: good.as_ref().map(|g| g.requests).unwrap_or(0),
            duration_ms: good.as_ref().map(|g| g.duration_ms).unwrap_or(0),
            last_error,
            finished_run: self.finished_run.load(Ordering::SeqCst),
        })
    }

    /// Stop a running refresh; the cache keeps the previous inventory.
    pub fn cancel_refresh(&self) {
        if let Ok(c) = self.cancel.lock() {
            if let Some(token) = c.as_ref() {
                token.cancel();
            }
        }
    }

    /// Read the tenant and replace the cached inventory. `progress` is called as work advances.
    pub async fn refresh(&self, progress: &(dyn Fn(SyncProgress) + Send + Sync)) -> Result<SyncStatus, EngineError> {
        let conn = self.connection()?;
        if self.running.swap(true, Ordering::SeqCst) {
            return Err(EngineError::AlreadyRunning);
        }
        let _guard = RunningGuard(&self.running);
        let run = self.refresh_runs.fetch_add(1, Ordering::SeqCst) + 1;
        let _finished = FinishedRun(&self.finished_run, run);
        let token = CancellationToken::new();
        if let Ok(mut c) = self.cancel.lock() {
            *c = Some(token.clone());
        }
        let started_at = now_rfc3339();
        let t0 = Instant::now();
        let requests_before = conn.client.requests();
        let client = &conn.client;
        let report = |p: inventory::Progress| {
            progress(SyncProgress {
                stage: p.stage,
                percent: (p.fraction * 100.0).clamp(0.0, 100.0) as u32,
                requests: (client.requests() - requests_before) as u32,
                run,
            })
        };
        let only = self.inventory_subscriptions()?;
        tracing::info!("refresh {run} started");
        let result = tokio::select! {
            r = inventory::fetch_in(client, &report, &only) => r.map_err(EngineError::from),
            _ = token.cancelled() => Err(EngineError::Cancelled),
        };
        let requests = (conn.client.requests() - requests_before) as u32;
        let duration_ms = t0.elapsed().as_millis().min(u32::MAX as u128) as u32;
        match result {
            Ok((raw, via_graph)) => {
                // Timed step by step: an end-to-end run once saw a refresh stay unfinished after its fetch.
                let t1 = Instant::now();
                let snapshot = rings::snapshot(&raw);
                let hosts = snapshot.hosts.len() as u32;
                let t2 = Instant::now();
                self.store.replace_inventory(&snapshot)?;
                let t3 = Instant::now();
                tracing::info!(
                    "refresh {run}: fetched {hosts} hosts in {} ms ({requests} requests), snapshot {} ms, stored {} ms",
                    duration_ms,
                    (t2 - t1).as_millis(),
                    (t3 - t2).as_millis()
                );
                self.store.record_sync(&SyncRecord {
                    started_at,
                    finished_at: now_rfc3339(),
                    source: Some(if via_graph { "resourceGraph" } else { "armListing" }.into()),
                    requests,
                    duration_ms,
                    hosts,
                    error_code: None,
                    error_message: None,
                    request_id: None,
                })?;
            }
            Err(e) => {
                let app = e.to_app_error();
                tracing::warn!(target: "inventory", "refresh failed: {}", app.message);
                if app.code == "SignInRequired" {
                    self.end_session(&app.message);
                }
                self.store.record_sync(&SyncRecord {
                    started_at,
                    finished_at: now_rfc3339(),
                    source: None,
                    requests,
                    duration_ms,
                    hosts: 0,
                    error_code: Some(app.code),
                    error_message: Some(app.message),
                    request_id: app.request_id,
                })?;
                return Err(e);
            }
        }
        drop(_guard);
        drop(_finished);
        self.sync_status()
    }

    /// The subscriptions the inventory reads; empty = every one the identity sees.
    pub fn inventory_subscriptions(&self) -> Result<Vec<String>, EngineError> {
        Ok(self
            .store
            .setting("inventory.subscriptions")?
            .and_then(|v| serde_json::from_str::<Vec<String>>(&v).ok())
            .unwrap_or_default())
    }

    /// Read only these subscriptions (empty: all). Each must be a subscription id the identity sees.
    pub fn set_inventory_subscriptions(&self, ids: &[String]) -> Result<Vec<String>, EngineError> {
        for id in ids {
            pipeline::check_guid(id)?;
        }
        let known: Vec<String> = self.store.subscriptions()?.into_iter().map(|s| s.id).collect();
        if let Some(unknown) = ids.iter().find(|i| !known.iter().any(|k| k.eq_ignore_ascii_case(i))) {
            return Err(EngineError::InvalidInput(format!(
                "{unknown} is not a subscription this identity sees; refresh, then pick from the list"
            )));
        }
        let mut ids: Vec<String> = ids.iter().map(|i| i.to_ascii_lowercase()).collect();
        ids.sort();
        ids.dedup();
        self.audit("inventory.subscriptions", "inventory", serde_json::json!({"subscriptions": ids}))?;
        self.store.set_setting("inventory.subscriptions", &serde_json::to_string(&ids).unwrap_or_default())?;
        Ok(ids)
    }

    /// Fetch without touching the cache (the benchmark measures the two paths this way).
    pub async fn fetch_raw(client: &ArmClient, via_graph: bool) -> Result<RawInventory, EngineError> {
        let noop = |_p: inventory::Progress| {};
        Ok(if via_graph {
            inventory::fetch_via_graph(client, &noop).await?
        } else {
            inventory::fetch_via_arm(client, &noop).await?
        })
    }

    pub fn board(&self) -> Result<RingBoard, EngineError> {
        let mut board = rings::board(&self.store)?;
        board.sync = self.sync_status()?;
        for lane in &mut board.rings {
            for card in &mut lane.pools {
                let moved = self.count_standby(card)?;
                lane.hosts -= moved;
            }
        }
        for card in &mut board.unassigned {
            self.count_standby(card)?;
        }
        Ok(board)
    }

    /// Move the pool's standby hosts out of its state and version counts into `standby`; returns how many.
    fn count_standby(&self, card: &mut PoolCard) -> Result<u32, EngineError> {
        let names = self.standby_hosts(&card.id)?;
        if names.is_empty() {
            return Ok(0);
        }
        let mut moved = 0;
        for line in self.store.hosts_of_pool(&card.id)?.into_iter().filter(|l| names.contains(&l.host.name)) {
            let h = line.host;
            let bucket = match HostState::parse(&h.state) {
                HostState::Available => &mut card.available,
                HostState::Draining => &mut card.draining,
                HostState::Unavailable => &mut card.unavailable,
                _ => &mut card.unknown,
            };
            *bucket = bucket.saturating_sub(1);
            if let Some(v) = card.versions.iter_mut().find(|v| v.version == h.image_version) {
                v.hosts = v.hosts.saturating_sub(1);
            }
            card.hosts = card.hosts.saturating_sub(1);
            card.standby += 1;
            moved += 1;
        }
        card.versions.retain(|v| v.hosts > 0);
        Ok(moved)
    }

    pub fn image_versions(&self) -> Result<Vec<ImageVersionRow>, EngineError> {
        rings::image_versions(&self.store)
    }

    pub fn query_hosts(&self, q: &HostQuery) -> Result<HostPage, EngineError> {
        if q.limit == 0 || q.limit > 1000 {
            return Err(EngineError::InvalidInput("limit must be between 1 and 1000".into()));
        }
        if q.text.as_ref().is_some_and(|t| t.len() > 256) {
            return Err(EngineError::InvalidInput("the search text is longer than 256 characters".into()));
        }
        let filter = HostFilter {
            host_pool: q.host_pool.clone(),
            text: q.text.clone(),
            state: q.state.map(|s| s.as_str().to_string()),
            sort: match q.sort {
                HostSortKey::Name => HostSort::Name,
                HostSortKey::HostPool => HostSort::HostPool,
                HostSortKey::Ring => HostSort::Ring,
                HostSortKey::State => HostSort::State,
                HostSortKey::Sessions => HostSort::Sessions,
                HostSortKey::ImageVersion => HostSort::ImageVersion,
                HostSortKey::LastHeartbeat => HostSort::LastHeartbeat,
            },
            descending: q.descending,
            offset: q.offset,
            limit: q.limit,
        };
        let (total, rows) = self.store.query_hosts(&filter)?;
        Ok(HostPage {
            total,
            offset: q.offset,
            rows: rows
                .into_iter()
                .map(|l| HostRow {
                    id: l.host.id,
                    name: l.host.name,
                    host_pool: l.pool_name,
                    ring: ring_display_name(&l.ring),
                    state: HostState::parse(&l.host.state),
                    status: l.host.status,
                    allow_new_session: l.host.allow_new_session,
                    sessions: l.host.sessions,
                    image_version: l.host.image_version,
                    vm_id: l.host.vm_id.unwrap_or_default(),
                    last_heartbeat: l.host.last_heartbeat,
                    failed_checks: l.host.failed_checks,
                })
                .collect(),
        })
    }
}

/// Used by tests and the bench: turn a raw inventory into the rows the store keeps.
pub fn snapshot_of(raw: &RawInventory) -> Snapshot {
    rings::snapshot(raw)
}
