//! Steps 1 and 2 of the pipeline: script collections run on the golden master through managed run commands,
//! and the non-destructive capture of the master into a gallery image version.
//!
//! Both are journaled like rollouts: each step is written to SQLite before its side effect, every ARM write is
//! idempotent (deterministic names, PUT, deletes that treat "gone" as done), and [`Builds::resume_all`] picks up
//! whatever the journal says was under way when the app stopped. A capture never touches the master: it copies
//! the master's OS disk and works on the copy, and every VM action checks it is not aimed at the master.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringmaster_azure::{ops, ArmClient, AzureError};
use ringmaster_store::{CaptureEventRecord, CaptureRecord, RunRecord, StepRecord, Store};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::release_model::*;
use crate::EngineError;

/// Who hears that a run or capture changed (the app emits an event to the UI).
pub type BuildNotifier = Arc<dyn Fn(&BuildUpdate) + Send + Sync>;

/// Tag on every temporary resource of a capture, with the capture's id: anything carrying it can be found and
/// removed, whatever happened to the app.
pub const CAPTURE_TAG: &str = "ringmaster-capture";
/// Prefix of the run commands this app creates; any other run command on the master is a change it did not record.
pub const RUN_COMMAND_PREFIX: &str = "ringmaster-";
/// Run Command runs a script for at most 90 minutes.
pub const MAX_SCRIPT_SECONDS: u32 = 5400;
const SYSPREP_SCRIPT: &str = "Remove-Item -Path 'C:\\packages\\plugin' -Recurse -Force -ErrorAction SilentlyContinue\n\
& \"$env:windir\\System32\\Sysprep\\Sysprep.exe\" /generalize /oobe /shutdown /mode:vm /quiet";

fn now() -> String {
    crate::now_rfc3339()
}

pub(crate) fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The last segment of a resource id.
pub fn name_of(id: &str) -> &str {
    id.trim_end_matches('/').rsplit('/').next().unwrap_or(id)
}

/// `/subscriptions/{s}/resourceGroups/{rg}` of a resource id.
pub fn resource_group_id(id: &str) -> Option<String> {
    let parts: Vec<&str> = id.split('/').collect();
    (parts.len() >= 5
        && parts[1].eq_ignore_ascii_case("subscriptions")
        && parts[3].eq_ignore_ascii_case("resourceGroups"))
    .then(|| parts[..5].join("/"))
}

/// Timing of runs and captures: how often Azure is asked, and how long to wait for things Azure does not bound.
#[derive(Debug, Clone)]
pub struct BuildConfig {
    pub poll: Duration,
    /// Give up on a temporary VM that has not stopped this long (Azure's clock) after sysprep started.
    pub stop_timeout: time::Duration,
}

impl Default for BuildConfig {
    fn default() -> Self {
        BuildConfig { poll: Duration::from_secs(15), stop_timeout: time::Duration::minutes(60) }
    }
}

impl BuildConfig {
    /// For a simulated tenant whose clock runs `scale` times faster than real time.
    pub fn for_time_scale(scale: f64) -> BuildConfig {
        let d = BuildConfig::default();
        BuildConfig { poll: Duration::from_secs_f64(d.poll.as_secs_f64() / scale).max(Duration::from_millis(50)), ..d }
    }
}

/// Why a step of a rollout, script run or capture failed, with ARM's request id when Azure answered.
#[derive(Debug)]
pub(crate) struct StepError {
    pub(crate) message: String,
    pub(crate) request_id: Option<String>,
}

impl From<AzureError> for StepError {
    fn from(e: AzureError) -> Self {
        StepError { request_id: e.request_id(), message: e.to_string() }
    }
}

impl From<ringmaster_store::StoreError> for StepError {
    fn from(e: ringmaster_store::StoreError) -> Self {
        StepError { message: e.to_string(), request_id: None }
    }
}

impl From<&str> for StepError {
    fn from(message: &str) -> Self {
        StepError { message: message.to_string(), request_id: None }
    }
}

impl From<String> for StepError {
    fn from(message: String) -> Self {
        StepError { message, request_id: None }
    }
}

/// Validate a collection before it is saved: clear messages, nothing half-stored.
pub fn validate_collection(c: &ScriptCollection) -> Result<(), String> {
    if c.name.trim().is_empty() {
        return Err("A collection needs a name.".into());
    }
    if c.name.len() > 120 {
        return Err("A collection name is at most 120 characters.".into());
    }
    if c.scripts.is_empty() {
        return Err("A collection needs at least one script.".into());
    }
    for (i, s) in c.scripts.iter().enumerate() {
        let n = i + 1;
        if s.name.trim().is_empty() {
            return Err(format!("Script {n} needs a name."));
        }
        if s.content.trim().is_empty() {
            return Err(format!("Script {n} ({}) is empty.", s.name));
        }
        // Run Command takes the script inline; Azure limits the request size, keep well under it.
        if s.content.len() > 256 * 1024 {
            return Err(format!("Script {n} ({}) is over 256 KB; run it from a file share instead.", s.name));
        }
        if s.timeout_seconds == 0 || s.timeout_seconds > MAX_SCRIPT_SECONDS {
            return Err(format!(
                "Script {n} ({}): the timeout must be 1 to {MAX_SCRIPT_SECONDS} seconds (Run Command allows 90 minutes).",
                s.name
            ));
        }
        for p in &s.parameters {
            if p.name.is_empty()
                || !p.name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
                || p.name.chars().next().is_some_and(|ch| ch.is_ascii_digit())
            {
                return Err(format!(
                    "Script {n} ({}): parameter '{}' must be letters, digits or _ and not start with a digit.",
                    s.name, p.name
                ));
            }
        }
    }
    Ok(())
}

/// Parse a collection file (the export format: the collection as JSON). Bad files get a clear error.
pub fn parse_collection_file(text: &str) -> Result<ScriptCollection, String> {
    let mut c: ScriptCollection =
        serde_json::from_str(text).map_err(|e| format!("This is not a Ringmaster script collection file: {e}"))?;
    c.id = String::new();
    validate_collection(&c)?;
    Ok(c)
}

/// What a script run's evidence hash covers: the text and the parameters as sent.
/// A managed run command running `script` asynchronously (the caller polls its instance view): on the golden master
/// and, for the script gate, on session hosts alike.
pub fn run_command_body(script: &Script, location: &str) -> Value {
    json!({
        "location": location,
        "properties": {
            "source": {"script": script.content},
            "parameters": script.parameters.iter().map(|p| json!({"name": p.name, "value": p.value})).collect::<Vec<_>>(),
            "asyncExecution": true,
            "timeoutInSeconds": script.timeout_seconds,
            "treatFailureAsDeploymentFailure": false
        }
    })
}

pub fn script_hash(s: &Script) -> String {
    let mut text = s.content.clone();
    for p in &s.parameters {
        text.push_str(&format!("\n#param {}={}", p.name, p.value));
    }
    sha256_hex(text.as_bytes())
}

struct Control {
    cancel: bool,
}

pub struct Builds {
    store: Arc<Store>,
    client: ArmClient,
    config: BuildConfig,
    notify: BuildNotifier,
    running: Mutex<HashMap<String, Control>>,
}

impl Builds {
    pub fn new(store: Arc<Store>, client: ArmClient, config: BuildConfig, notify: BuildNotifier) -> Arc<Builds> {
        Arc::new(Builds { store, client, config, notify, running: Mutex::new(HashMap::new()) })
    }

    fn announce(&self, kind: &str, id: &str) {
        (self.notify)(&BuildUpdate { kind: kind.into(), id: id.into() });
    }

    fn cancelled(&self, id: &str) -> bool {
        self.running.lock().ok().and_then(|r| r.get(id).map(|c| c.cancel)).unwrap_or(false)
    }

    /// Ask a run or capture to stop at the next safe point.
    pub fn cancel(&self, id: &str) -> Result<(), EngineError> {
        let mut running = self.running.lock().map_err(|_| EngineError::InvalidInput("lock poisoned".into()))?;
        match running.get_mut(id) {
            Some(c) => {
                c.cancel = true;
                Ok(())
            }
            None => Err(EngineError::InvalidInput("nothing with that id is running".into())),
        }
    }

    /// Mark `id` as running; false when it already is.
    fn claim(&self, id: &str) -> bool {
        let Ok(mut running) = self.running.lock() else { return false };
        if running.contains_key(id) {
            return false;
        }
        running.insert(id.to_string(), Control { cancel: false });
        true
    }

    fn release(&self, id: &str) {
        if let Ok(mut running) = self.running.lock() {
            running.remove(id);
        }
    }

    /// After a restart: carry on with every run and capture the journal says was under way.
    pub fn resume_all(self: &Arc<Self>) -> Result<usize, EngineError> {
        let mut n = 0;
        for r in self.store.runs()? {
            if r.state == "running" {
                self.spawn_run(&r.id);
                n += 1;
            }
        }
        for c in self.store.captures()? {
            let leftovers = serde_json::from_str::<Vec<TemporaryResource>>(&c.resources)
                .unwrap_or_default()
                .iter()
                .any(|r| r.state == "created" || r.state == "planned");
            if c.state == "running" || (c.state != "succeeded" && leftovers) {
                self.capture_event(&c.id, "info", "Resuming after a restart".into(), None);
                self.spawn_capture(&c.id);
                n += 1;
            }
        }
        Ok(n)
    }

    // ------------------------------------------------------------------ script runs

    pub fn start_run(
        self: &Arc<Self>,
        collection: &ScriptCollection,
        vm_id: &str,
        started_by: &str,
    ) -> Result<String, EngineError> {
        validate_collection(collection).map_err(EngineError::InvalidInput)?;
        if let Some(busy) =
            self.store.runs()?.into_iter().find(|r| r.state == "running" && r.vm_id.eq_ignore_ascii_case(vm_id))
        {
            return Err(EngineError::InvalidInput(format!(
                "'{}' is already running on this VM; Run Command runs one script at a time. Wait for it or cancel it.",
                busy.collection_name
            )));
        }
        let id = crate::rollout::uuid_like();
        let short = &id[..8];
        let run = RunRecord {
            id: id.clone(),
            collection_id: collection.id.clone(),
            collection_name: collection.name.clone(),
            vm_id: vm_id.to_string(),
            state: RunState::Running.as_str().into(),
            started_by: started_by.to_string(),
            started_at: now(),
            finished_at: None,
        };
        let steps: Vec<StepRecord> = collection
            .scripts
            .iter()
            .enumerate()
            .map(|(i, s)| StepRecord {
                position: i as u32,
                script_name: s.name.clone(),
                script_sha256: script_hash(s),
                body: serde_json::to_string(s).unwrap_or_default(),
                continue_on_error: s.continue_on_error,
                run_command_name: format!("{RUN_COMMAND_PREFIX}{short}-{}", i + 1),
                state: StepState::Pending.as_str().into(),
                exit_code: None,
                output: String::new(),
                error: String::new(),
                started_at: None,
                finished_at: None,
                duration_ms: None,
            })
            .collect();
        self.store.create_run(&run, &steps)?;
        self.spawn_run(&id);
        Ok(id)
    }

    fn spawn_run(self: &Arc<Self>, id: &str) {
        if !self.claim(id) {
            return;
        }
        let this = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let result = this.drive_run(&id).await;
            if let Err(e) = result {
                tracing::error!(target: "build", "script run {id} stopped: {}", e.message);
                let _ = this.store.finish_run(&id, RunState::Failed.as_str(), &now());
            }
            this.release(&id);
            this.announce("run", &id);
        });
    }

    async fn drive_run(&self, id: &str) -> Result<(), StepError> {
        let run = self.store.run(id)?.ok_or_else(|| format!("no script run {id}"))?;
        let vm = ops::get_vm(&self.client, &run.vm_id)
            .await?
            .ok_or_else(|| format!("the VM {} no longer exists", run.vm_id))?;
        let location = vm["location"].as_str().unwrap_or_default().to_string();
        let mut failed = false;
        let mut cancelled = false;
        for mut step in self.store.steps(id)? {
            let state = StepState::parse(&step.state);
            if matches!(state, StepState::Succeeded | StepState::Skipped) {
                continue;
            }
            if state.is_failure() {
                failed |= !step.continue_on_error;
                continue;
            }
            if failed || cancelled || self.cancelled(id) {
                cancelled |= self.cancelled(id);
                step.state = StepState::Skipped.as_str().into();
                self.store.update_step(id, &step)?;
                continue;
            }
            let result = self.run_step(id, &run.vm_id, &location, &mut step).await;
            if let Err(e) = result {
                step.state = StepState::Failed.as_str().into();
                step.error =
                    format!("{}{}", e.message, e.request_id.map(|r| format!(" (request id {r})")).unwrap_or_default());
                step.finished_at = Some(now());
                self.store.update_step(id, &step)?;
            }
            if StepState::parse(&step.state).is_failure() && !step.continue_on_error {
                failed = true;
            }
            self.announce("run", id);
        }
        let end = if cancelled {
            RunState::Cancelled
        } else if failed {
            RunState::Failed
        } else {
            RunState::Succeeded
        };
        self.store.finish_run(id, end.as_str(), &now())?;
        crate::audit::record_automatic(
            &self.store,
            "run.finish",
            &run.collection_name,
            json!({"runId": id, "vmId": run.vm_id, "result": end.as_str()}),
        );
        Ok(())
    }

    /// Run one script: journal it as running, create its run command (unless a resumed run finds it there),
    /// stream its output into the journal until it ends, then remove the run command.
    async fn run_step(
        &self,
        run_id: &str,
        vm_id: &str,
        location: &str,
        step: &mut StepRecord,
    ) -> Result<(), StepError> {
        let script: Script = serde_json::from_str(&step.body).map_err(|e| format!("journal: {e}"))?;
        if step.started_at.is_none() {
            step.started_at = Some(now());
        }
        step.state = StepState::Running.as_str().into();
        self.store.update_step(run_id, step)?;
        self.announce("run", run_id);
        let existing = ops::get_run_command(&self.client, vm_id, &step.run_command_name).await?;
        if existing.is_none() {
            let body = run_command_body(&script, location);
            ops::put_run_command(&self.client, vm_id, &step.run_command_name, &body).await?;
        }
        let run_command = step.run_command_name.clone();
        let view = self
            .follow_run_command(vm_id, &run_command, |output, error| {
                if step.output != output || step.error != error {
                    step.output = output.to_string();
                    step.error = error.to_string();
                    let _ = self.store.update_step(run_id, step);
                    self.announce("run", run_id);
                }
            })
            .await?;
        let outcome = RunCommandOutcome::from_instance_view(&view);
        step.state = outcome.state.as_str().into();
        step.exit_code = outcome.exit_code;
        step.output = outcome.output;
        step.error = outcome.error;
        step.finished_at = Some(now());
        step.duration_ms = outcome.duration_ms.or_else(|| {
            let start = step.started_at.as_deref().and_then(parse_time)?;
            Some((OffsetDateTime::now_utc() - start).whole_milliseconds().max(0) as u32)
        });
        self.store.update_step(run_id, step)?;
        if let Err(e) = ops::delete_run_command(&self.client, vm_id, &step.run_command_name).await {
            tracing::warn!(target: "build", "could not remove run command {}: {e}", step.run_command_name);
        }
        Ok(())
    }

    /// Poll a run command's instance view until it ends, handing the output so far to `on_output`.
    pub(crate) async fn follow_run_command(
        &self,
        vm_id: &str,
        name: &str,
        mut on_output: impl FnMut(&str, &str),
    ) -> Result<Value, StepError> {
        let mut missing = 0;
        loop {
            match ops::get_run_command(&self.client, vm_id, name).await? {
                Some(rc) => {
                    let view = &rc["properties"]["instanceView"];
                    on_output(view["output"].as_str().unwrap_or_default(), view["error"].as_str().unwrap_or_default());
                    let state = view["executionState"].as_str().unwrap_or("Unknown");
                    if matches!(state, "Succeeded" | "Failed" | "TimedOut" | "Canceled") {
                        return Ok(view.clone());
                    }
                    if rc["properties"]["provisioningState"].as_str() == Some("Failed") {
                        return Err(format!("Azure could not start the run command {name}").into());
                    }
                }
                None => {
                    missing += 1;
                    if missing > 3 {
                        return Err(format!("the run command {name} disappeared from the VM").into());
                    }
                }
            }
            self.client.pause(self.config.poll).await;
        }
    }

    pub fn run_view(&self, id: &str) -> Result<ScriptRun, EngineError> {
        let r = self.store.run(id)?.ok_or_else(|| EngineError::InvalidInput(format!("no script run {id}")))?;
        Ok(run_view(r, self.store.steps(id)?))
    }

    // ------------------------------------------------------------------ capture

    pub fn start_capture(self: &Arc<Self>, plan: &CapturePlan, started_by: &str) -> Result<String, EngineError> {
        if let Some(busy) = self.store.captures()?.into_iter().find(|c| c.state == "running") {
            return Err(EngineError::InvalidInput(format!(
                "A capture of {} is already running; one capture at a time.",
                busy.version
            )));
        }
        let id = crate::rollout::uuid_like();
        let short = &id[..8];
        let rg = resource_group_id(&plan.master_vm_id)
            .ok_or_else(|| EngineError::InvalidInput(format!("'{}' is not a VM resource id", plan.master_vm_id)))?;
        let base = format!("rm-cap-{short}");
        let resources = vec![
            TemporaryResource {
                kind: "snapshot".into(),
                id: format!("{rg}/providers/Microsoft.Compute/snapshots/{base}-snap"),
                state: "planned".into(),
            },
            TemporaryResource {
                kind: "disk".into(),
                id: format!("{rg}/providers/Microsoft.Compute/disks/{base}-osdisk"),
                state: "planned".into(),
            },
            TemporaryResource {
                kind: "nic".into(),
                id: format!("{rg}/providers/Microsoft.Network/networkInterfaces/{base}-nic"),
                state: "planned".into(),
            },
            TemporaryResource {
                kind: "vm".into(),
                id: format!("{rg}/providers/Microsoft.Compute/virtualMachines/{base}-vm"),
                state: "planned".into(),
            },
        ];
        let stages: Vec<StageTiming> = CaptureStage::ALL
            .iter()
            .map(|s| StageTiming { stage: *s, label: s.label().into(), started_at: None, finished_at: None })
            .collect();
        let version_id = format!("{}/versions/{}", plan.image_definition_id, plan.version);
        self.store.create_capture(&CaptureRecord {
            id: id.clone(),
            master_vm_id: plan.master_vm_id.clone(),
            version: plan.version.clone(),
            version_id,
            plan: serde_json::to_string(plan).unwrap_or_default(),
            state: CaptureState::Running.as_str().into(),
            stage: CaptureStage::Snapshot.as_str().into(),
            reason: None,
            started_by: started_by.to_string(),
            created_at: now(),
            finished_at: None,
            resources: serde_json::to_string(&resources).unwrap_or_default(),
            stages: serde_json::to_string(&stages).unwrap_or_default(),
            sysprep_output: String::new(),
        })?;
        self.capture_event(
            &id,
            "info",
            format!("Capture of {} into {} started", name_of(&plan.master_vm_id), plan.version),
            None,
        );
        self.spawn_capture(&id);
        Ok(id)
    }

    fn capture_event(&self, id: &str, level: &str, message: String, request_id: Option<String>) {
        let e = CaptureEventRecord { at: now(), level: level.into(), message, request_id };
        if let Err(err) = self.store.add_capture_event(id, &e) {
            tracing::error!(target: "build", "journal: {err}");
        }
        self.announce("capture", id);
    }

    fn spawn_capture(self: &Arc<Self>, id: &str) {
        if !self.claim(id) {
            return;
        }
        let this = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            if let Err(e) = this.drive_capture(&id).await {
                // Only the journal itself failing gets here; the capture stays resumable.
                tracing::error!(target: "build", "capture {id} stopped: {}", e.message);
            }
            this.release(&id);
            this.announce("capture", &id);
        });
    }

    fn load(&self, id: &str) -> Result<CaptureJournal, StepError> {
        let record = self.store.capture(id)?.ok_or_else(|| format!("no capture {id}"))?;
        CaptureJournal::from_record(record)
    }

    fn save(&self, j: &CaptureJournal) -> Result<(), StepError> {
        self.store.update_capture(&j.to_record())?;
        self.announce("capture", &j.record.id);
        Ok(())
    }

    async fn drive_capture(&self, id: &str) -> Result<(), StepError> {
        let mut j = self.load(id)?;
        loop {
            let stage = j.stage();
            if stage == CaptureStage::Done {
                return Ok(());
            }
            if stage != CaptureStage::Cleanup && self.cancelled(id) {
                j.record.reason = Some("Cancelled by the operator".into());
                self.capture_event(id, "warning", "Cancelled: removing the temporary resources".into(), None);
                j.enter(CaptureStage::Cleanup);
                self.save(&j)?;
                continue;
            }
            j.begin(stage);
            self.save(&j)?;
            match self.capture_stage(&mut j, stage).await {
                Ok(()) => {
                    j.finish(stage);
                    let next = match stage {
                        CaptureStage::Cleanup => CaptureStage::Done,
                        s => CaptureStage::ALL[CaptureStage::ALL.iter().position(|x| *x == s).unwrap_or(0) + 1],
                    };
                    if next == CaptureStage::Done {
                        let failed = j.record.reason.is_some();
                        let cancelled = j.record.reason.as_deref() == Some("Cancelled by the operator");
                        let state = if cancelled {
                            CaptureState::Cancelled
                        } else if failed {
                            CaptureState::Failed
                        } else {
                            CaptureState::Succeeded
                        };
                        j.record.state = state.as_str().into();
                        j.record.finished_at = Some(now());
                        let message = match state {
                            CaptureState::Succeeded => {
                                format!("Image version {} created; nothing left behind", j.record.version)
                            }
                            _ => "Temporary resources removed; nothing left behind".to_string(),
                        };
                        self.capture_event(id, if failed { "warning" } else { "info" }, message, None);
                        crate::audit::record_automatic(
                            &self.store,
                            "capture.finish",
                            &j.record.version,
                            json!({"captureId": id, "result": state.as_str(), "reason": j.record.reason}),
                        );
                    }
                    j.enter(next);
                    self.save(&j)?;
                }
                Err(e) if stage == CaptureStage::Cleanup => {
                    // Keep trying: a capture must not leave resources behind. Each retry is journaled.
                    self.capture_event(id, "warning", format!("Cleanup: {} (retrying)", e.message), e.request_id);
                    self.client.pause(self.config.poll.saturating_mul(4)).await;
                }
                Err(e) => {
                    let reason = format!("{} failed: {}", stage.label(), e.message);
                    self.capture_event(id, "error", reason.clone(), e.request_id);
                    j.record.reason = Some(reason);
                    j.enter(CaptureStage::Cleanup);
                    self.save(&j)?;
                }
            }
        }
    }

    /// Refuse any VM action aimed at the master: the capture works on a copy, always.
    fn not_master(j: &CaptureJournal, vm_id: &str) -> Result<(), StepError> {
        if vm_id.eq_ignore_ascii_case(&j.plan.master_vm_id) {
            return Err("refusing to act on the golden master itself".to_string().into());
        }
        Ok(())
    }

    async fn capture_stage(&self, j: &mut CaptureJournal, stage: CaptureStage) -> Result<(), StepError> {
        let tags = json!({ CAPTURE_TAG: j.record.id });
        match stage {
            CaptureStage::Snapshot => {
                let master = ops::get_vm(&self.client, &j.plan.master_vm_id)
                    .await?
                    .ok_or_else(|| format!("the golden master {} no longer exists", j.plan.master_vm_id))?;
                let os_disk = master["properties"]["storageProfile"]["osDisk"]["managedDisk"]["id"]
                    .as_str()
                    .ok_or("the master has no managed OS disk")?
                    .to_string();
                let id = j.resource("snapshot");
                j.mark("snapshot", "created");
                self.save(j)?;
                let body = json!({
                    "location": master["location"],
                    "tags": tags,
                    "sku": {"name": "Standard_LRS"},
                    "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": os_disk}, "incremental": false}
                });
                ops::put_snapshot(&self.client, &id, &body).await?;
                self.capture_event(
                    &j.record.id,
                    "info",
                    format!("Snapshot {} of the master's OS disk taken", name_of(&id)),
                    None,
                );
            }
            CaptureStage::Disk => {
                let snap_id = j.resource("snapshot");
                let snap = ops::get_snapshot(&self.client, &snap_id).await?.ok_or("the snapshot is gone")?;
                let id = j.resource("disk");
                j.mark("disk", "created");
                self.save(j)?;
                let mut props = json!({
                    "creationData": {"createOption": "Copy", "sourceResourceId": snap_id},
                    "osType": snap["properties"]["osType"].as_str().unwrap_or("Windows"),
                    "hyperVGeneration": snap["properties"]["hyperVGeneration"].as_str().unwrap_or("V2")
                });
                if let Some(sp) = snap["properties"].get("securityProfile") {
                    props["securityProfile"] = sp.clone();
                }
                let body = json!({"location": snap["location"], "tags": tags, "sku": {"name": "Premium_LRS"}, "properties": props});
                ops::put_disk(&self.client, &id, &body).await?;
            }
            CaptureStage::Nic => {
                let master =
                    ops::get_vm(&self.client, &j.plan.master_vm_id).await?.ok_or("the golden master is gone")?;
                let id = j.resource("nic");
                j.mark("nic", "created");
                self.save(j)?;
                let body = json!({
                    "location": master["location"],
                    "tags": tags,
                    "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {
                        "subnet": {"id": j.plan.capture_subnet_id}, "privateIPAllocationMethod": "Dynamic"}}]}
                });
                ops::put_nic(&self.client, &id, &body).await?;
            }
            CaptureStage::TemporaryVm => {
                let master =
                    ops::get_vm(&self.client, &j.plan.master_vm_id).await?.ok_or("the golden master is gone")?;
                let id = j.resource("vm");
                Self::not_master(j, &id)?;
                j.mark("vm", "created");
                self.save(j)?;
                let mut props = json!({
                    "hardwareProfile": {"vmSize": master["properties"]["hardwareProfile"]["vmSize"]},
                    "storageProfile": {"osDisk": {
                        "createOption": "Attach", "osType": "Windows",
                        "managedDisk": {"id": j.resource("disk")}, "deleteOption": "Delete"}},
                    "networkProfile": {"networkInterfaces": [{"id": j.resource("nic"), "properties": {"primary": true, "deleteOption": "Delete"}}]}
                });
                if let Some(sp) = master["properties"].get("securityProfile") {
                    props["securityProfile"] = sp.clone();
                }
                let body = json!({"location": master["location"], "tags": tags, "properties": props});
                ops::put_vm(&self.client, &id, &body).await?;
                self.capture_event(
                    &j.record.id,
                    "info",
                    format!("Temporary VM {} running on the copied disk", name_of(&id)),
                    None,
                );
            }
            CaptureStage::Sysprep => {
                let vm = j.resource("vm");
                Self::not_master(j, &vm)?;
                let name = format!("{RUN_COMMAND_PREFIX}sysprep");
                if ops::get_run_command(&self.client, &vm, &name).await?.is_none() {
                    let power = ops::power_state(&ops::vm_instance_view(&self.client, &vm).await?);
                    if matches!(power.as_deref(), Some("stopped" | "deallocated")) {
                        // A resumed capture whose sysprep already shut the VM down.
                        return Ok(());
                    }
                    let location =
                        ops::get_vm(&self.client, &vm).await?.ok_or("the temporary VM is gone")?["location"].clone();
                    let body = json!({"location": location, "properties": {
                        "source": {"script": SYSPREP_SCRIPT}, "asyncExecution": true, "timeoutInSeconds": 3600,
                        "treatFailureAsDeploymentFailure": false}});
                    ops::put_run_command(&self.client, &vm, &name, &body).await?;
                }
                let mut last_output = String::new();
                let view = self
                    .follow_run_command(&vm, &name, |out, _| {
                        if out != last_output {
                            last_output = out.to_string();
                        }
                    })
                    .await?;
                let outcome = RunCommandOutcome::from_instance_view(&view);
                j.record.sysprep_output = format!(
                    "{}{}",
                    outcome.output,
                    if outcome.error.is_empty() { String::new() } else { format!("\n{}", outcome.error) }
                );
                self.save(j)?;
                if outcome.state != StepState::Succeeded {
                    let detail = outcome
                        .error
                        .lines()
                        .rev()
                        .find(|l| !l.trim().is_empty())
                        .unwrap_or("no error output")
                        .to_string();
                    return Err(format!(
                        "Sysprep ended {} (exit code {}): {detail}",
                        outcome.state.as_str(),
                        outcome.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "none".into())
                    )
                    .into());
                }
            }
            CaptureStage::WaitForStop => {
                let vm = j.resource("vm");
                let deadline = self.client.server_now() + self.config.stop_timeout;
                loop {
                    let power = ops::power_state(&ops::vm_instance_view(&self.client, &vm).await?);
                    if matches!(power.as_deref(), Some("stopped" | "deallocated")) {
                        break;
                    }
                    if self.client.server_now() > deadline {
                        return Err(format!(
                            "the temporary VM did not shut down within {} minutes of sysprep (power state {})",
                            self.config.stop_timeout.whole_minutes(),
                            power.unwrap_or_else(|| "unknown".into())
                        )
                        .into());
                    }
                    self.client.pause(self.config.poll).await;
                }
                let _ = ops::delete_run_command(&self.client, &vm, &format!("{RUN_COMMAND_PREFIX}sysprep")).await;
            }
            CaptureStage::Deallocate => {
                let vm = j.resource("vm");
                Self::not_master(j, &vm)?;
                ops::deallocate_vm(&self.client, &vm).await?;
            }
            CaptureStage::Generalize => {
                let vm = j.resource("vm");
                Self::not_master(j, &vm)?;
                if !ops::is_generalized(&ops::vm_instance_view(&self.client, &vm).await?) {
                    ops::generalize_vm(&self.client, &vm).await?;
                }
            }
            CaptureStage::ImageVersion => {
                let version_id = j.record.version_id.clone();
                if !j.resources.iter().any(|r| r.kind == "imageVersion") {
                    j.resources.push(TemporaryResource {
                        kind: "imageVersion".into(),
                        id: version_id.clone(),
                        state: "created".into(),
                    });
                    self.save(j)?;
                }
                let existing = ops::get_image_version(&self.client, &version_id).await?;
                if existing.is_none() {
                    let definition = ops::get_image_definition(&self.client, &j.plan.image_definition_id)
                        .await?
                        .ok_or_else(|| format!("the image definition {} does not exist", j.plan.image_definition_id))?;
                    let body = image_version_body(
                        &j.plan,
                        definition["location"].as_str().unwrap_or_default(),
                        &j.resource("vm"),
                    );
                    ops::put_image_version(&self.client, &version_id, &body).await?;
                }
                // Creation (or a resumed one still in progress): wait for the source region to be done.
                loop {
                    let v = ops::get_image_version(&self.client, &version_id)
                        .await?
                        .ok_or("the image version disappeared")?;
                    match v["properties"]["provisioningState"].as_str().unwrap_or("Unknown") {
                        "Succeeded" => break,
                        "Failed" | "Canceled" => {
                            return Err("the gallery reports the image version Failed".to_string().into())
                        }
                        _ => self.client.pause(self.config.poll.saturating_mul(2)).await,
                    }
                }
                j.mark("imageVersion", "kept");
                // Into the cache now, so the release page shows it before the next full refresh.
                if let Some(v) = ops::get_image_version(&self.client, &version_id).await? {
                    match ringmaster_azure::inventory::image_version_from_json(v) {
                        Ok(record) => self.store.upsert_version(&crate::rings::version_row(&record))?,
                        Err(e) => tracing::warn!(target: "build", "new version not cached: {e}"),
                    }
                }
                self.capture_event(
                    &j.record.id,
                    "info",
                    format!("Image version {} provisioned; replication continues in the gallery", j.record.version),
                    None,
                );
            }
            CaptureStage::Cleanup => {
                // The VM first (its disk and NIC go with it), then whatever remains, each "gone" counting as done.
                let failing = j.record.reason.is_some();
                let order = ["vm", "nic", "disk", "snapshot", "imageVersion"];
                for kind in order {
                    let Some(r) = j.resources.iter().find(|r| r.kind == kind).cloned() else { continue };
                    // "planned" is deleted too: a create may have reached Azure just before a crash (404 is done).
                    if r.state == "deleted" || (kind == "imageVersion" && !failing) {
                        continue;
                    }
                    match kind {
                        "vm" => {
                            Self::not_master(j, &r.id)?;
                            ops::delete_vm(&self.client, &r.id).await?
                        }
                        "nic" => ops::delete_nic(&self.client, &r.id).await?,
                        "disk" => ops::delete_disk(&self.client, &r.id).await?,
                        "snapshot" => ops::delete_snapshot(&self.client, &r.id).await?,
                        _ => ops::delete_image_version(&self.client, &r.id).await?,
                    }
                    j.mark(kind, "deleted");
                    self.save(j)?;
                }
            }
            CaptureStage::Done => {}
        }
        Ok(())
    }

    pub fn capture_view(&self, id: &str) -> Result<CaptureView, EngineError> {
        let j = self.load(id).map_err(|e| EngineError::InvalidInput(e.message))?;
        let events = self
            .store
            .capture_events(id)?
            .into_iter()
            .map(|e| CaptureEvent { at: e.at, level: e.level, message: e.message, request_id: e.request_id })
            .collect();
        Ok(CaptureView {
            id: j.record.id.clone(),
            state: CaptureState::parse(&j.record.state),
            stage: j.stage(),
            plan: j.plan.clone(),
            reason: j.record.reason.clone(),
            started_by: j.record.started_by.clone(),
            created_at: j.record.created_at.clone(),
            finished_at: j.record.finished_at.clone(),
            stages: j.stages.clone(),
            resources: j.resources.clone(),
            events,
            sysprep_output: j.record.sysprep_output.clone(),
        })
    }
}

pub fn capture_summary(c: CaptureRecord) -> CaptureSummary {
    CaptureSummary {
        id: c.id,
        version: c.version,
        state: CaptureState::parse(&c.state),
        stage: CaptureStage::parse(&c.stage).unwrap_or(CaptureStage::Cleanup),
        created_at: c.created_at,
        finished_at: c.finished_at,
        reason: c.reason,
    }
}

/// The PUT body of a new image version captured from a generalized VM.
pub fn image_version_body(plan: &CapturePlan, gallery_location: &str, vm_id: &str) -> Value {
    let regions: Vec<Value> = plan
        .target_regions
        .iter()
        .map(|r| {
            json!({"name": r.region, "regionalReplicaCount": r.replicas, "storageAccountType": "Standard_LRS",
                   "excludeFromLatest": plan.exclude_from_latest})
        })
        .collect();
    json!({
        "location": gallery_location,
        "tags": {"ringmaster-release": plan.version},
        "properties": {
            "publishingProfile": {
                "targetRegions": regions,
                "replicaCount": 1,
                "excludeFromLatest": plan.exclude_from_latest,
                "endOfLifeDate": plan.end_of_life,
                "storageAccountType": "Standard_LRS",
                "replicationMode": "Full"
            },
            "storageProfile": {"source": {"virtualMachineId": vm_id}},
            "safetyProfile": {"allowDeletionOfReplicatedLocations": false}
        }
    })
}

/// What a finished run command says, in the app's terms.
#[derive(Debug, Clone, PartialEq)]
pub struct RunCommandOutcome {
    pub state: StepState,
    pub exit_code: Option<i32>,
    pub output: String,
    pub error: String,
    pub duration_ms: Option<u32>,
}

impl RunCommandOutcome {
    pub fn from_instance_view(view: &Value) -> RunCommandOutcome {
        let exit_code = view["exitCode"].as_i64().map(|c| c as i32);
        let state = match view["executionState"].as_str().unwrap_or("Unknown") {
            // A script that "succeeded" with a non-zero exit code still failed as far as the image is concerned.
            "Succeeded" if exit_code.unwrap_or(0) == 0 => StepState::Succeeded,
            "TimedOut" => StepState::TimedOut,
            "Canceled" => StepState::Canceled,
            _ => StepState::Failed,
        };
        let duration_ms =
            match (view["startTime"].as_str().and_then(parse_time), view["endTime"].as_str().and_then(parse_time)) {
                (Some(s), Some(e)) if e >= s => Some((e - s).whole_milliseconds() as u32),
                _ => None,
            };
        let mut error = view["error"].as_str().unwrap_or_default().to_string();
        if error.is_empty() && state != StepState::Succeeded {
            error = view["executionMessage"].as_str().unwrap_or_default().to_string();
        }
        RunCommandOutcome {
            state,
            exit_code,
            output: view["output"].as_str().unwrap_or_default().to_string(),
            error,
            duration_ms,
        }
    }
}

pub(crate) fn run_view(r: RunRecord, steps: Vec<StepRecord>) -> ScriptRun {
    ScriptRun {
        vm_name: name_of(&r.vm_id).to_string(),
        id: r.id,
        collection_id: r.collection_id,
        collection_name: r.collection_name,
        vm_id: r.vm_id,
        state: RunState::parse(&r.state),
        started_by: r.started_by,
        started_at: r.started_at,
        finished_at: r.finished_at,
        steps: steps
            .into_iter()
            .map(|s| ScriptStep {
                position: s.position,
                script_name: s.script_name,
                script_sha256: s.script_sha256,
                continue_on_error: s.continue_on_error,
                state: StepState::parse(&s.state),
                exit_code: s.exit_code,
                output: s.output,
                error: s.error,
                started_at: s.started_at,
                finished_at: s.finished_at,
                duration_ms: s.duration_ms,
            })
            .collect(),
    }
}

/// A capture as the journal holds it, with its JSON parts parsed.
struct CaptureJournal {
    record: CaptureRecord,
    plan: CapturePlan,
    resources: Vec<TemporaryResource>,
    stages: Vec<StageTiming>,
}

impl CaptureJournal {
    fn from_record(record: CaptureRecord) -> Result<CaptureJournal, StepError> {
        let plan = serde_json::from_str(&record.plan).map_err(|e| format!("journal (plan): {e}"))?;
        let resources = serde_json::from_str(&record.resources).map_err(|e| format!("journal (resources): {e}"))?;
        let stages = serde_json::from_str(&record.stages).map_err(|e| format!("journal (stages): {e}"))?;
        Ok(CaptureJournal { record, plan, resources, stages })
    }

    fn to_record(&self) -> CaptureRecord {
        let mut r = self.record.clone();
        r.resources = serde_json::to_string(&self.resources).unwrap_or_default();
        r.stages = serde_json::to_string(&self.stages).unwrap_or_default();
        r
    }

    fn stage(&self) -> CaptureStage {
        CaptureStage::parse(&self.record.stage).unwrap_or(CaptureStage::Cleanup)
    }

    fn enter(&mut self, stage: CaptureStage) {
        self.record.stage = stage.as_str().into();
    }

    fn timing(&mut self, stage: CaptureStage) -> Option<&mut StageTiming> {
        self.stages.iter_mut().find(|s| s.stage == stage)
    }

    fn begin(&mut self, stage: CaptureStage) {
        if let Some(t) = self.timing(stage) {
            if t.started_at.is_none() {
                t.started_at = Some(now());
            }
        }
    }

    fn finish(&mut self, stage: CaptureStage) {
        if let Some(t) = self.timing(stage) {
            t.finished_at = Some(now());
        }
    }

    fn resource(&self, kind: &str) -> String {
        self.resources.iter().find(|r| r.kind == kind).map(|r| r.id.clone()).unwrap_or_default()
    }

    fn mark(&mut self, kind: &str, state: &str) {
        if let Some(r) = self.resources.iter_mut().find(|r| r.kind == kind) {
            r.state = state.into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collection() -> ScriptCollection {
        ScriptCollection {
            id: String::new(),
            name: "Apps".into(),
            description: String::new(),
            scripts: vec![Script {
                name: "Install Teams".into(),
                content: "Write-Output 'hi'".into(),
                parameters: vec![ScriptParameter { name: "Channel".into(), value: "prod".into() }],
                continue_on_error: false,
                timeout_seconds: 600,
            }],
            updated_at: String::new(),
        }
    }

    #[test]
    fn collections_are_validated_with_clear_messages() {
        assert!(validate_collection(&collection()).is_ok());
        let mut c = collection();
        c.scripts[0].timeout_seconds = 6000;
        assert!(validate_collection(&c).unwrap_err().contains("90 minutes"));
        let mut c = collection();
        c.scripts[0].parameters[0].name = "bad name".into();
        assert!(validate_collection(&c).unwrap_err().contains("parameter 'bad name'"));
        let mut c = collection();
        c.scripts.clear();
        assert!(validate_collection(&c).unwrap_err().contains("at least one script"));
        assert!(parse_collection_file("{not json").unwrap_err().contains("not a Ringmaster script collection"));
        let exported = serde_json::to_string(&collection()).unwrap();
        assert_eq!(parse_collection_file(&exported).unwrap().scripts, collection().scripts);
    }

    #[test]
    fn the_script_hash_covers_text_and_parameters() {
        let a = collection().scripts[0].clone();
        let mut b = a.clone();
        b.parameters[0].value = "preview".into();
        assert_ne!(script_hash(&a), script_hash(&b));
        assert_eq!(script_hash(&a), script_hash(&a.clone()));
        assert_eq!(script_hash(&a).len(), 64);
    }

    #[test]
    fn run_command_outcomes_map_to_step_states() {
        let v = json!({"executionState": "Succeeded", "exitCode": 0, "output": "ok", "startTime": "2026-11-27T10:00:00Z", "endTime": "2026-11-27T10:00:30Z"});
        let o = RunCommandOutcome::from_instance_view(&v);
        assert_eq!((o.state, o.duration_ms), (StepState::Succeeded, Some(30_000)));
        let v = json!({"executionState": "Succeeded", "exitCode": 3});
        assert_eq!(RunCommandOutcome::from_instance_view(&v).state, StepState::Failed);
        let v = json!({"executionState": "TimedOut", "executionMessage": "Execution timed out"});
        let o = RunCommandOutcome::from_instance_view(&v);
        assert_eq!((o.state, o.error.as_str()), (StepState::TimedOut, "Execution timed out"));
    }

    #[test]
    fn resource_ids_split_as_arm_builds_them() {
        let vm = "/subscriptions/s/resourceGroups/rg-build/providers/Microsoft.Compute/virtualMachines/vm1";
        assert_eq!(resource_group_id(vm).as_deref(), Some("/subscriptions/s/resourceGroups/rg-build"));
        assert_eq!(name_of(vm), "vm1");
        assert_eq!(resource_group_id("/nonsense"), None);
    }
}
