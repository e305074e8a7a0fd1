//! The script gate: a script collection (validation scripts) run by managed run command on a sample, or all, of
//! the ring's session hosts that run the release. It passes when every script on every sampled host exits 0 and its
//! output contains the expected text; each script's output is kept as evidence.
//!
//! Run commands are created exactly as the Build executor creates them on the golden master (deterministic names,
//! `asyncExecution`, the script's parameters and timeout), followed with the same poller, and removed afterwards.
//! Hosts run concurrently (at most [`MAX_CONCURRENT_HOSTS`] at once); a host runs its scripts one after another, as
//! Run Command runs one script at a time per VM.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ringmaster_azure::{ops, ArmClient};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use specta::Type;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::build::{
    run_command_body, script_hash, validate_collection, Builds, RunCommandOutcome, StepError, RUN_COMMAND_PREFIX,
};
use crate::gates::GateVerdict;
use crate::release_model::{Script, ScriptCollection, StepState};
use crate::rings::ring_display_name;
use crate::{now_rfc3339, Engine, EngineError};

/// How many hosts run the collection at the same time.
pub const MAX_CONCURRENT_HOSTS: usize = 5;
/// The largest sample a gate may ask for (0 = every host is always allowed).
pub const MAX_SAMPLE: u32 = 1000;
/// The longest expected text.
pub const MAX_EXPECTED_OUTPUT: usize = 1024;
/// Evidence keeps at most this many bytes of a script's output and of its error stream (Azure keeps 4 KB too).
pub const EVIDENCE_TAIL_BYTES: usize = 4096;
/// How much of a stream a reason quotes.
const REASON_TAIL_CHARS: usize = 160;
/// How many problems the reasons list one by one.
const LISTED_PROBLEMS: usize = 10;
/// A run command may wait this long for the VM agent to pick it up, on top of the script's own timeout, before the
/// gate stops waiting (Azure's own timeout normally ends it first).
const PICKUP_ALLOWANCE: Duration = Duration::from_secs(15 * 60);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct ScriptGateConfig {
    /// A script collection (validation scripts), by id: the collections the Build view already manages
    /// (`Engine::collections()`).
    pub collection_id: String,
    /// How many of the ring's hosts on the release to run on; 0 = every host.
    pub sample: u32,
    /// Text every script's standard output must contain (empty = exit code only).
    pub expected_output: String,
}

/// Check a script gate's settings: clear messages that say what to fix. The collection itself is checked when the
/// gate runs (and by [`Engine::check_script_gate`]).
pub fn validate_script_gate(c: &ScriptGateConfig) -> Result<(), String> {
    if c.collection_id.trim().is_empty() {
        return Err("The script gate needs a script collection: choose the validation scripts to run.".into());
    }
    if c.sample > MAX_SAMPLE {
        return Err(format!(
            "The script gate's sample is at most {MAX_SAMPLE} hosts (0 runs the scripts on every host of the ring on the release); it is {}.",
            c.sample
        ));
    }
    if c.expected_output.chars().count() > MAX_EXPECTED_OUTPUT {
        return Err(format!(
            "The expected output is at most {MAX_EXPECTED_OUTPUT} characters; shorten it to a distinctive line the scripts print."
        ));
    }
    if c.expected_output.contains(['\r', '\n']) {
        return Err(
            "The expected output must be one line (Windows ends output lines with CR LF, so text across lines would not match); use a single distinctive line.".into(),
        );
    }
    if !c.expected_output.is_empty() && c.expected_output.trim().is_empty() {
        return Err("The expected output is only spaces; leave it empty to judge by exit code alone, or type the text the scripts print.".into());
    }
    Ok(())
}

/// A session host of the ring that runs the release: a candidate for the sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateHost {
    pub name: String,
    pub pool: String,
    /// The VM's resource id.
    pub vm_id: String,
    /// available | draining | unavailable | unknown
    pub state: String,
}

/// A host picked for the gate, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampledHost {
    pub host: GateHost,
    pub why: String,
}

/// Pick the hosts to run on, deterministically: every host when `sample` is 0 or covers them all; otherwise the
/// pools (by name) take turns, each giving its `Available` hosts first, then the rest, by name.
pub fn sample_hosts(hosts: &[GateHost], sample: u32) -> Vec<SampledHost> {
    let mut pools: BTreeMap<&str, Vec<&GateHost>> = BTreeMap::new();
    for h in hosts {
        pools.entry(h.pool.as_str()).or_default().push(h);
    }
    for list in pools.values_mut() {
        list.sort_by(|a, b| (a.state != "available", &a.name).cmp(&(b.state != "available", &b.name)));
    }
    let total = hosts.len();
    if sample == 0 || sample as usize >= total {
        let why = if sample == 0 {
            "every host of the ring on the release (sample 0)".to_string()
        } else {
            format!("a sample of {sample} covers all {total} host(s) on the release")
        };
        return pools.values().flatten().map(|h| SampledHost { host: (*h).clone(), why: why.clone() }).collect();
    }
    let mut picked = Vec::new();
    let mut round = 0;
    while picked.len() < sample as usize {
        for (pool, list) in &pools {
            if picked.len() == sample as usize {
                break;
            }
            if let Some(h) = list.get(round) {
                picked.push(SampledHost {
                    host: (*h).clone(),
                    why: format!(
                        "sample of {sample} of {total}: host {} of pool {pool} (pools take turns; Available hosts first, then by name)",
                        round + 1
                    ),
                });
            }
        }
        round += 1;
    }
    picked
}

/// What happened to one script on one host.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptOutcome {
    /// Its run command ran to an end Azure reported.
    Ran(RunCommandOutcome),
    /// It could not be run or followed to its end (Azure unreachable, refused, the wait ran out): why.
    NotRun(String),
    /// Not run: an earlier script on the host did not pass.
    Skipped,
}

/// One script's run on one host.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptOnHost {
    /// 1-based, the collection's order.
    pub position: u32,
    pub script: String,
    pub timeout_seconds: u32,
    pub run_command: String,
    pub outcome: ScriptOutcome,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// Azure's execution time, else the time the gate waited.
    pub duration_ms: Option<u32>,
    /// Removing the run command afterwards failed: why.
    pub cleanup_error: Option<String>,
}

/// The scripts run on one sampled host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostRun {
    pub host: SampledHost,
    pub scripts: Vec<ScriptOnHost>,
}

/// One script's result as the gate judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    Pass,
    /// The script ran and failed: why (host, script, exit code, output tail).
    Fail(String),
    /// Nothing is known about the script: why.
    Inconclusive(String),
    Skipped,
}

impl Judgement {
    fn as_str(&self) -> &'static str {
        match self {
            Judgement::Pass => "pass",
            Judgement::Fail(_) => "fail",
            Judgement::Inconclusive(_) => "inconclusive",
            Judgement::Skipped => "skipped",
        }
    }

    fn reason(&self) -> Option<&str> {
        match self {
            Judgement::Fail(r) | Judgement::Inconclusive(r) => Some(r),
            _ => None,
        }
    }
}

/// The last `max` bytes of `s`, cut at a character boundary.
pub fn tail_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// A stream's end on one line, for a reason.
fn short_tail(s: &str) -> String {
    let flat: String = s.trim().replace("\r\n", "\n").split('\n').map(str::trim).collect::<Vec<_>>().join(" | ");
    let n = flat.chars().count();
    if n <= REASON_TAIL_CHARS {
        flat
    } else {
        format!("…{}", flat.chars().skip(n - REASON_TAIL_CHARS).collect::<String>())
    }
}

fn quoted_tails(o: &RunCommandOutcome) -> String {
    let mut parts = Vec::new();
    if !o.output.trim().is_empty() {
        parts.push(format!("output ends '{}'", short_tail(&o.output)));
    } else {
        parts.push("no output".to_string());
    }
    if !o.error.trim().is_empty() {
        parts.push(format!("error ends '{}'", short_tail(&o.error)));
    }
    parts.join("; ")
}

/// Judge one script on one host. `expected` empty: the exit code alone decides.
pub fn judge(host: &str, s: &ScriptOnHost, expected: &str) -> Judgement {
    let script = &s.script;
    match &s.outcome {
        ScriptOutcome::Skipped => Judgement::Skipped,
        ScriptOutcome::NotRun(why) => Judgement::Inconclusive(format!("{host}: '{script}' could not be run: {why}")),
        ScriptOutcome::Ran(o) => match (o.state, o.exit_code) {
            (StepState::Succeeded, _) => {
                if expected.is_empty() || o.output.contains(expected) {
                    Judgement::Pass
                } else {
                    Judgement::Fail(format!(
                        "{host}: '{script}' exited with code {} but its output does not contain '{expected}' ({})",
                        o.exit_code.unwrap_or(0),
                        quoted_tails(o)
                    ))
                }
            }
            (StepState::Failed, Some(code)) => {
                Judgement::Fail(format!("{host}: '{script}' exited with code {code} ({})", quoted_tails(o)))
            }
            (StepState::TimedOut, _) => Judgement::Inconclusive(format!(
                "{host}: '{script}' timed out after its timeout of {} s{}",
                s.timeout_seconds,
                if o.output.trim().is_empty() { String::new() } else { format!(" ({})", quoted_tails(o)) }
            )),
            (state, _) => {
                let why = if o.error.trim().is_empty() { state.as_str().to_string() } else { short_tail(&o.error) };
                Judgement::Inconclusive(format!("{host}: '{script}' did not finish ({why})"))
            }
        },
    }
}

fn listed(mut lines: Vec<String>) -> Vec<String> {
    let n = lines.len();
    if n > LISTED_PROBLEMS {
        lines.truncate(LISTED_PROBLEMS);
        lines.push(format!("… and {} more", n - LISTED_PROBLEMS));
    }
    lines
}

/// The gate's verdict from what ran: FAIL when any script ran and failed, else INCONCLUSIVE when any could not be
/// run or did not finish, else PASS. Reasons: most important first.
pub fn script_gate_verdict(
    runs: &[HostRun],
    expected: &str,
    collection: &str,
    version: &str,
) -> (GateVerdict, Vec<String>) {
    if runs.is_empty() {
        return (
            GateVerdict::Inconclusive,
            vec![format!("No session host runs {version}: nothing to run the scripts on")],
        );
    }
    let mut fails = Vec::new();
    let mut unknown = Vec::new();
    let (mut fail_hosts, mut unknown_hosts, mut skipped, mut passed) = (0, 0, 0, 0);
    let mut cleanup = Vec::new();
    for run in runs {
        let host = &run.host.host.name;
        let (mut f, mut u) = (false, false);
        for s in &run.scripts {
            match judge(host, s, expected) {
                Judgement::Pass => passed += 1,
                Judgement::Fail(r) => {
                    fails.push(r);
                    f = true;
                }
                Judgement::Inconclusive(r) => {
                    unknown.push(r);
                    u = true;
                }
                Judgement::Skipped => skipped += 1,
            }
            if let Some(e) = &s.cleanup_error {
                cleanup.push(format!(
                    "Could not remove the run command {} from {host}: {e} (it stays in the VM model; delete it from the portal)",
                    s.run_command
                ));
            }
        }
        fail_hosts += usize::from(f);
        unknown_hosts += usize::from(u);
    }
    let n = runs.len();
    let skipped_note =
        (skipped > 0).then(|| format!("{skipped} later script run(s) skipped after a script did not pass"));
    let (verdict, mut reasons) = if !fails.is_empty() {
        let mut r =
            vec![format!("{} script run(s) failed on {fail_hosts} of {n} host(s) running {version}", fails.len())];
        r.extend(listed(fails));
        if !unknown.is_empty() {
            r.push(format!("{} more could not be run or did not finish on {unknown_hosts} host(s):", unknown.len()));
            r.extend(listed(unknown));
        }
        (GateVerdict::Fail, r)
    } else if !unknown.is_empty() {
        let mut r = vec![format!(
            "{} script run(s) on {unknown_hosts} of {n} host(s) could not be run or did not finish; none failed",
            unknown.len()
        )];
        r.extend(listed(unknown));
        (GateVerdict::Inconclusive, r)
    } else {
        let mut r =
            vec![format!("All {passed} script run(s) of '{collection}' passed on {n} host(s) running {version}")];
        r.push(if expected.is_empty() {
            "Judged by exit code only (no expected output is set)".to_string()
        } else {
            format!("Every script exited 0 and its output contains '{expected}'")
        });
        (GateVerdict::Pass, r)
    };
    reasons.extend(skipped_note);
    reasons.extend(cleanup);
    (verdict, reasons)
}

/// `ringmaster-gate-<first 8 of the gate run id>-<n>`: the same name on every host (run commands are per VM).
pub fn gate_run_command_name(gate_run_id: &str, position: u32) -> String {
    let short: String = gate_run_id.chars().filter(|c| c.is_ascii_alphanumeric()).take(8).collect();
    format!("{RUN_COMMAND_PREFIX}gate-{short}-{position}")
}

fn step_error(e: StepError) -> String {
    match e.request_id {
        Some(r) => format!("{} (request id {r})", e.message),
        None => e.message,
    }
}

/// What a host run needs, owned, so hosts can run as tasks.
struct HostJob {
    builds: Arc<Builds>,
    client: ArmClient,
    scripts: Arc<Vec<Script>>,
    gate_run_id: String,
    expected: String,
}

impl HostJob {
    /// Run the collection's scripts on one host, one after another; a script that does not pass stops the rest
    /// unless it may continue on error (as on the golden master).
    async fn run(&self, host: SampledHost) -> HostRun {
        let vm = &host.host.vm_id;
        let mut scripts: Vec<ScriptOnHost> = self
            .scripts
            .iter()
            .enumerate()
            .map(|(i, s)| ScriptOnHost {
                position: i as u32 + 1,
                script: s.name.clone(),
                timeout_seconds: s.timeout_seconds,
                run_command: gate_run_command_name(&self.gate_run_id, i as u32 + 1),
                outcome: ScriptOutcome::Skipped,
                started_at: None,
                finished_at: None,
                duration_ms: None,
                cleanup_error: None,
            })
            .collect();
        let location = match ops::get_vm(&self.client, vm).await {
            Ok(Some(v)) => v["location"].as_str().unwrap_or_default().to_string(),
            Ok(None) => {
                scripts[0].outcome = ScriptOutcome::NotRun(format!(
                    "its VM {vm} no longer exists (refresh the inventory and run the gate again)"
                ));
                return HostRun { host, scripts };
            }
            Err(e) => {
                scripts[0].outcome =
                    ScriptOutcome::NotRun(format!("could not read its VM from Azure: {}", step_error(e.into())));
                return HostRun { host, scripts };
            }
        };
        for (script, record) in self.scripts.iter().zip(scripts.iter_mut()) {
            self.run_script(vm, &location, script, record).await;
            let judgement = judge(&host.host.name, record, &self.expected);
            if judgement != Judgement::Pass && !script.continue_on_error {
                break;
            }
        }
        HostRun { host, scripts }
    }

    async fn run_script(&self, vm: &str, location: &str, script: &Script, record: &mut ScriptOnHost) {
        let name = record.run_command.clone();
        record.started_at = Some(now_rfc3339());
        let t0 = Instant::now();
        let body = run_command_body(script, location);
        record.outcome = match ops::put_run_command(&self.client, vm, &name, &body).await {
            Err(e) => ScriptOutcome::NotRun(format!("Azure did not create the run command: {}", step_error(e.into()))),
            Ok(_) => {
                let wait = Duration::from_secs(u64::from(script.timeout_seconds)) + PICKUP_ALLOWANCE;
                match tokio::time::timeout(wait, self.builds.follow_run_command(vm, &name, |_, _| {})).await {
                    Ok(Ok(view)) => ScriptOutcome::Ran(RunCommandOutcome::from_instance_view(&view)),
                    Ok(Err(e)) => ScriptOutcome::NotRun(step_error(e)),
                    Err(_) => ScriptOutcome::NotRun(format!(
                        "Azure did not report an end within {} minutes (the script's timeout plus time for the VM agent to pick it up)",
                        wait.as_secs() / 60
                    )),
                }
            }
        };
        record.finished_at = Some(now_rfc3339());
        let waited = t0.elapsed().as_millis().min(u128::from(u32::MAX)) as u32;
        record.duration_ms = match &record.outcome {
            ScriptOutcome::Ran(o) => o.duration_ms.or(Some(waited)),
            _ => Some(waited),
        };
        // Always, even after an error: a PUT that failed on the way back may still have created it. Gone is done.
        if let Err(e) = ops::delete_run_command(&self.client, vm, &name).await {
            tracing::warn!(target: "gates", "could not remove run command {name} from {vm}: {e}");
            record.cleanup_error = Some(step_error(e.into()));
        }
    }
}

fn host_evidence(run: &HostRun, expected: &str) -> Value {
    let h = &run.host.host;
    let scripts: Vec<Value> = run
        .scripts
        .iter()
        .map(|s| {
            let judgement = judge(&h.name, s, expected);
            let mut v = json!({
                "position": s.position,
                "script": s.script,
                "runCommand": s.run_command,
                "result": judgement.as_str(),
                "reason": judgement.reason(),
                "startedAt": s.started_at,
                "finishedAt": s.finished_at,
                "durationMs": s.duration_ms,
                "runCommandRemoved": s.started_at.is_some() && s.cleanup_error.is_none(),
                "cleanupError": s.cleanup_error,
            });
            match &s.outcome {
                ScriptOutcome::Ran(o) => {
                    v["state"] = json!(o.state.as_str());
                    v["exitCode"] = json!(o.exit_code);
                    v["output"] = json!(tail_bytes(&o.output, EVIDENCE_TAIL_BYTES));
                    v["error"] = json!(tail_bytes(&o.error, EVIDENCE_TAIL_BYTES));
                }
                ScriptOutcome::NotRun(why) => {
                    v["state"] = json!("notRun");
                    v["exitCode"] = Value::Null;
                    v["error"] = json!(tail_bytes(why, EVIDENCE_TAIL_BYTES));
                }
                ScriptOutcome::Skipped => {
                    v["state"] = json!(StepState::Skipped.as_str());
                    v["exitCode"] = Value::Null;
                }
            }
            v
        })
        .collect();
    json!({"name": h.name, "pool": h.pool, "vmId": h.vm_id, "state": h.state, "why": run.host.why, "scripts": scripts})
}

impl Engine {
    /// Check a script gate's settings and that its collection exists and is valid (for the ring's gate config).
    pub fn check_script_gate(&self, c: &ScriptGateConfig) -> Result<ScriptCollection, EngineError> {
        validate_script_gate(c).map_err(EngineError::InvalidInput)?;
        let collection = self.collections()?.into_iter().find(|x| x.id == c.collection_id).ok_or_else(|| {
            EngineError::InvalidInput(format!(
                "The script gate's collection ({}) no longer exists; choose another collection of validation scripts.",
                c.collection_id
            ))
        })?;
        validate_collection(&collection).map_err(|e| {
            EngineError::InvalidInput(format!("The script gate's collection '{}': {e}", collection.name))
        })?;
        Ok(collection)
    }

    /// Run the script gate on `version` in `ring`. Returns (verdict, reasons most important first, evidence JSON).
    /// Never panics; any Azure error is INCONCLUSIVE with a clear reason.
    pub(crate) async fn script_gate(
        &self,
        version: &str,
        ring: &str,
        config: &ScriptGateConfig,
        gate_run_id: &str,
    ) -> (GateVerdict, Vec<String>, Value) {
        let ring_name = ring_display_name(&ring.to_ascii_lowercase());
        let mut evidence = json!({
            "gateRunId": gate_run_id,
            "version": version,
            "ring": ring.to_ascii_lowercase(),
            "collectionId": config.collection_id,
            "expectedOutput": config.expected_output,
            "sample": config.sample,
        });
        let inconclusive = |why: String, evidence: Value| (GateVerdict::Inconclusive, vec![why], evidence);
        let collection = match self.check_script_gate(config) {
            Ok(c) => c,
            Err(e) => return inconclusive(format!("The script gate is not set up correctly: {e}"), evidence),
        };
        evidence["collection"] = json!(collection.name);
        evidence["scripts"] = json!(collection
            .scripts
            .iter()
            .enumerate()
            .map(|(i, s)| json!({
                "position": i + 1,
                "name": s.name,
                "sha256": script_hash(s),
                "timeoutSeconds": s.timeout_seconds,
                "continueOnError": s.continue_on_error,
            }))
            .collect::<Vec<_>>());
        let (client, builds) = match (self.connection(), self.builds()) {
            (Ok(c), Ok(b)) => (c.client.clone(), b),
            _ => return inconclusive("Not connected to a tenant: connect, then run the gate again".into(), evidence),
        };
        // Azure is the truth: pick hosts from a fresh inventory, not the cache.
        if let Err(e) = self.refresh(&|_| {}).await {
            if !matches!(e, EngineError::AlreadyRunning) {
                return inconclusive(format!("Could not read the ring's hosts from Azure: {e}"), evidence);
            }
        }
        let mut in_ring = 0usize;
        let mut candidates = Vec::new();
        let mut no_vm = Vec::new();
        for p in self.store.pools().unwrap_or_default().iter().filter(|p| p.ring.eq_ignore_ascii_case(ring)) {
            for l in self.store.hosts_of_pool(&p.id).unwrap_or_default() {
                in_ring += 1;
                if l.host.image_version != version {
                    continue;
                }
                match l.host.vm_id.filter(|v| !v.is_empty()) {
                    Some(vm_id) => candidates.push(GateHost {
                        name: l.host.name,
                        pool: p.name.clone(),
                        vm_id,
                        state: l.host.state,
                    }),
                    None => no_vm.push(l.host.name),
                }
            }
        }
        let on_release = candidates.len() + no_vm.len();
        let sampled = sample_hosts(&candidates, config.sample);
        let picked: std::collections::HashSet<&str> = sampled.iter().map(|s| s.host.name.as_str()).collect();
        let not_picked: Vec<&str> =
            candidates.iter().map(|h| h.name.as_str()).filter(|n| !picked.contains(n)).take(200).collect();
        evidence["hostsInRing"] = json!(in_ring);
        evidence["hostsOnRelease"] = json!(on_release);
        evidence["hostsWithoutVm"] = json!(no_vm);
        evidence["notSampled"] = json!(not_picked);
        if sampled.is_empty() {
            let why = if on_release > 0 {
                format!("None of the {on_release} host(s) of the {ring_name} ring on {version} has a VM resource id to run the scripts on")
            } else {
                format!(
                    "No session host of the {ring_name} ring runs {version} ({in_ring} host(s) in the ring): roll the release out to the ring first"
                )
            };
            return inconclusive(why, evidence);
        }

        let job = Arc::new(HostJob {
            builds,
            client,
            scripts: Arc::new(collection.scripts.clone()),
            gate_run_id: gate_run_id.to_string(),
            expected: config.expected_output.clone(),
        });
        let permits = Arc::new(Semaphore::new(MAX_CONCURRENT_HOSTS));
        let mut tasks = JoinSet::new();
        for (i, host) in sampled.iter().cloned().enumerate() {
            let (job, permits) = (job.clone(), permits.clone());
            tasks.spawn(async move {
                let _permit = permits.acquire_owned().await;
                (i, job.run(host).await)
            });
        }
        let mut runs: Vec<Option<HostRun>> = vec![None; sampled.len()];
        while let Some(done) = tasks.join_next().await {
            match done {
                Ok((i, run)) => runs[i] = Some(run),
                Err(e) => tracing::error!(target: "gates", "a script gate host task ended abnormally: {e}"),
            }
        }
        // A task that ended abnormally leaves its host unknown, never passed.
        let runs: Vec<HostRun> = runs
            .into_iter()
            .zip(sampled)
            .map(|(run, host)| {
                run.unwrap_or_else(|| HostRun {
                    scripts: vec![ScriptOnHost {
                        position: 1,
                        script: collection.scripts.first().map(|s| s.name.clone()).unwrap_or_default(),
                        timeout_seconds: 0,
                        run_command: gate_run_command_name(gate_run_id, 1),
                        outcome: ScriptOutcome::NotRun("the gate's task for this host ended abnormally".into()),
                        started_at: None,
                        finished_at: None,
                        duration_ms: None,
                        cleanup_error: None,
                    }],
                    host,
                })
            })
            .collect();
        let (verdict, mut reasons) = script_gate_verdict(&runs, &config.expected_output, &collection.name, version);
        reasons.push(if config.sample == 0 || runs.len() >= on_release {
            format!("Ran on all {} host(s) of the {ring_name} ring on {version}", runs.len())
        } else {
            format!(
                "Ran on a sample of {} of the {on_release} host(s) of the {ring_name} ring on {version}",
                runs.len()
            )
        });
        evidence["hosts"] = json!(runs.iter().map(|r| host_evidence(r, &config.expected_output)).collect::<Vec<_>>());
        (verdict, reasons, evidence)
    }

    /// The script gate, for integration tests (the app runs it through the ring's gates).
    #[doc(hidden)]
    pub async fn run_script_gate_for_test(
        &self,
        version: &str,
        ring: &str,
        config: &ScriptGateConfig,
        gate_run_id: &str,
    ) -> (GateVerdict, Vec<String>, Value) {
        self.script_gate(version, ring, config, gate_run_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ScriptGateConfig {
        ScriptGateConfig { collection_id: "c1".into(), sample: 2, expected_output: "VALIDATION OK".into() }
    }

    fn host(name: &str, pool: &str, state: &str) -> GateHost {
        GateHost { name: name.into(), pool: pool.into(), vm_id: format!("/vm/{name}"), state: state.into() }
    }

    fn ran(state: StepState, exit: Option<i32>, output: &str, error: &str) -> ScriptOutcome {
        ScriptOutcome::Ran(RunCommandOutcome {
            state,
            exit_code: exit,
            output: output.into(),
            error: error.into(),
            duration_ms: Some(1000),
        })
    }

    fn script(position: u32, name: &str, outcome: ScriptOutcome) -> ScriptOnHost {
        ScriptOnHost {
            position,
            script: name.into(),
            timeout_seconds: 300,
            run_command: gate_run_command_name("abcdef12-3456", position),
            outcome,
            started_at: Some("2026-11-27T10:00:00Z".into()),
            finished_at: Some("2026-11-27T10:00:30Z".into()),
            duration_ms: Some(30_000),
            cleanup_error: None,
        }
    }

    fn run(name: &str, scripts: Vec<ScriptOnHost>) -> HostRun {
        HostRun { host: SampledHost { host: host(name, "hp", "available"), why: "test".into() }, scripts }
    }

    #[test]
    fn settings_are_validated_with_messages_that_say_what_to_fix() {
        assert!(validate_script_gate(&config()).is_ok());
        assert!(
            validate_script_gate(&ScriptGateConfig { expected_output: String::new(), sample: 0, ..config() }).is_ok()
        );
        let e = validate_script_gate(&ScriptGateConfig { collection_id: " ".into(), ..config() }).unwrap_err();
        assert!(e.contains("needs a script collection"), "{e}");
        let e = validate_script_gate(&ScriptGateConfig { sample: 5000, ..config() }).unwrap_err();
        assert!(e.contains("at most 1000") && e.contains("0 runs"), "{e}");
        let e = validate_script_gate(&ScriptGateConfig { expected_output: "a\nb".into(), ..config() }).unwrap_err();
        assert!(e.contains("one line"), "{e}");
        let e = validate_script_gate(&ScriptGateConfig { expected_output: "x".repeat(2000), ..config() }).unwrap_err();
        assert!(e.contains("at most 1024"), "{e}");
        let e = validate_script_gate(&ScriptGateConfig { expected_output: "   ".into(), ..config() }).unwrap_err();
        assert!(e.contains("only spaces"), "{e}");
    }

    #[test]
    fn the_sample_spreads_across_pools_prefers_available_hosts_and_is_deterministic() {
        let hosts = vec![
            host("b-2", "hp-b", "available"),
            host("a-3", "hp-a", "available"),
            host("a-1", "hp-a", "unavailable"),
            host("a-2", "hp-a", "available"),
            host("b-1", "hp-b", "draining"),
        ];
        let names = |s: &[SampledHost]| s.iter().map(|h| h.host.name.clone()).collect::<Vec<_>>();
        let three = sample_hosts(&hosts, 3);
        assert_eq!(names(&three), ["a-2", "b-2", "a-3"]);
        assert!(three[1].why.contains("pool hp-b") && three[1].why.contains("sample of 3 of 5"), "{}", three[1].why);
        let mut reversed = hosts.clone();
        reversed.reverse();
        assert_eq!(names(&sample_hosts(&reversed, 3)), names(&three), "the input order does not matter");
        let all = sample_hosts(&hosts, 0);
        assert_eq!(names(&all), ["a-2", "a-3", "a-1", "b-2", "b-1"]);
        assert!(all[0].why.contains("every host"));
        assert_eq!(sample_hosts(&hosts, 9).len(), 5);
        assert!(sample_hosts(&hosts, 9)[0].why.contains("covers all 5"));
        assert!(sample_hosts(&[], 3).is_empty());
    }

    #[test]
    fn every_script_passing_everywhere_passes() {
        let runs = vec![
            run("h1", vec![script(1, "Apps", ran(StepState::Succeeded, Some(0), "x\nVALIDATION OK\n", ""))]),
            run("h2", vec![script(1, "Apps", ran(StepState::Succeeded, Some(0), "VALIDATION OK", ""))]),
        ];
        let (v, reasons) = script_gate_verdict(&runs, "VALIDATION OK", "Checks", "2.0");
        assert_eq!(v, GateVerdict::Pass, "{reasons:?}");
        assert!(reasons[0].contains("All 2 script run(s) of 'Checks' passed on 2 host(s)"), "{reasons:?}");
        let (v, reasons) = script_gate_verdict(&runs, "", "Checks", "2.0");
        assert_eq!(v, GateVerdict::Pass);
        assert!(reasons[1].contains("exit code only"));
    }

    #[test]
    fn a_failing_script_fails_the_gate_naming_host_script_and_exit_code() {
        let long_output = format!("{}\nlast words", "noise ".repeat(200));
        let runs = vec![
            run("h1", vec![script(1, "Apps", ran(StepState::Succeeded, Some(0), "VALIDATION OK", ""))]),
            run(
                "h2",
                vec![
                    script(1, "Teams", ran(StepState::Failed, Some(3), &long_output, "Teams missing")),
                    script(2, "Later", ScriptOutcome::Skipped),
                ],
            ),
            run("h3", vec![script(1, "Apps", ScriptOutcome::NotRun("409 Conflict".into()))]),
        ];
        let (v, reasons) = script_gate_verdict(&runs, "VALIDATION OK", "Checks", "2.0");
        assert_eq!(v, GateVerdict::Fail, "{reasons:?}");
        assert!(reasons[0].starts_with("1 script run(s) failed on 1 of 3 host(s)"), "{reasons:?}");
        assert!(reasons[1].contains("h2: 'Teams' exited with code 3"), "{reasons:?}");
        assert!(reasons[1].contains("last words") && reasons[1].contains("Teams missing"), "{reasons:?}");
        assert!(reasons[1].len() < 600, "a short tail, not the whole output");
        assert!(reasons.iter().any(|r| r.contains("h3: 'Apps' could not be run: 409 Conflict")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("1 later script run(s) skipped")), "{reasons:?}");
    }

    #[test]
    fn missing_expected_text_fails_and_azure_trouble_alone_is_inconclusive() {
        let runs = vec![run("h1", vec![script(1, "Apps", ran(StepState::Succeeded, Some(0), "all fine", ""))])];
        let (v, reasons) = script_gate_verdict(&runs, "VALIDATION OK", "Checks", "2.0");
        assert_eq!(v, GateVerdict::Fail);
        assert!(
            reasons[1].contains("does not contain 'VALIDATION OK'") && reasons[1].contains("all fine"),
            "{reasons:?}"
        );

        let runs = vec![
            run("h1", vec![script(1, "Apps", ran(StepState::TimedOut, None, "", "timed out"))]),
            run("h2", vec![script(1, "Apps", ran(StepState::Failed, None, "", "The VM stopped"))]),
            run("h3", vec![script(1, "Apps", ran(StepState::Succeeded, Some(0), "VALIDATION OK", ""))]),
        ];
        let (v, reasons) = script_gate_verdict(&runs, "VALIDATION OK", "Checks", "2.0");
        assert_eq!(v, GateVerdict::Inconclusive, "{reasons:?}");
        assert!(reasons[0].contains("2 script run(s) on 2 of 3 host(s)") && reasons[0].contains("none failed"));
        assert!(reasons.iter().any(|r| r.contains("h1: 'Apps' timed out after its timeout of 300 s")), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("h2: 'Apps' did not finish (The VM stopped)")), "{reasons:?}");
        assert_eq!(script_gate_verdict(&[], "", "Checks", "2.0").0, GateVerdict::Inconclusive);
    }

    #[test]
    fn a_run_command_left_behind_is_reported_without_changing_the_verdict() {
        let mut s = script(1, "Apps", ran(StepState::Succeeded, Some(0), "VALIDATION OK", ""));
        s.cleanup_error = Some("429 Too Many Requests".into());
        let (v, reasons) = script_gate_verdict(&[run("h1", vec![s])], "VALIDATION OK", "Checks", "2.0");
        assert_eq!(v, GateVerdict::Pass);
        assert!(reasons
            .last()
            .unwrap()
            .contains("Could not remove the run command ringmaster-gate-abcdef12-1 from h1"));
    }

    #[test]
    fn names_bodies_and_tails_match_what_azure_takes() {
        assert_eq!(gate_run_command_name("0f3a9c21-77aa-4e", 2), "ringmaster-gate-0f3a9c21-2");
        let s = Script {
            name: "Check".into(),
            content: "Write-Output 'VALIDATION OK'".into(),
            parameters: vec![crate::release_model::ScriptParameter { name: "Ring".into(), value: "test".into() }],
            continue_on_error: false,
            timeout_seconds: 120,
        };
        let body = run_command_body(&s, "westeurope");
        assert_eq!(body["properties"]["asyncExecution"], true);
        assert_eq!(body["properties"]["timeoutInSeconds"], 120);
        assert_eq!(body["properties"]["parameters"][0], json!({"name": "Ring", "value": "test"}));
        let long = "é".repeat(3000);
        let t = tail_bytes(&long, EVIDENCE_TAIL_BYTES);
        assert!(t.len() <= EVIDENCE_TAIL_BYTES && t.chars().all(|c| c == 'é'));
        assert_eq!(tail_bytes("short", 4096), "short");
    }

    #[test]
    fn evidence_keeps_exit_codes_states_and_capped_output() {
        let big = "x".repeat(10_000);
        let r = run(
            "h1",
            vec![script(1, "A", ran(StepState::Failed, Some(3), &big, "bad")), script(2, "B", ScriptOutcome::Skipped)],
        );
        let e = host_evidence(&r, "OK");
        assert_eq!(e["scripts"][0]["exitCode"], 3);
        assert_eq!(e["scripts"][0]["state"], "failed");
        assert_eq!(e["scripts"][0]["result"], "fail");
        assert_eq!(e["scripts"][0]["output"].as_str().unwrap().len(), EVIDENCE_TAIL_BYTES);
        assert_eq!(e["scripts"][1]["state"], "skipped");
        assert_eq!(e["scripts"][1]["result"], "skipped");
    }
}
