//! Managed run commands (`virtualMachines/{vm}/runCommands/{name}`, api 2024-07-01): a PowerShell script the sim
//! "runs" on the VM's timeline, so a client can stream its output, read its exit code, hit its timeout, queue a
//! second one behind it, and run Sysprep in it.
//!
//! The script is not executed; its lines are read as a plan (see [`plan`]):
//! - `Write-Output`, `Write-Host`, `echo` → a stdout line; `Write-Error` → a stderr line; `throw` → a stderr line
//!   and exit code 1. Variables (`$Name`, `${Name}`) expand from the run command's `parameters` and
//!   `protectedParameters` in double-quoted and bare text, not in single-quoted text (as PowerShell does); an unknown
//!   variable expands to nothing.
//! - `exit N` ends the script with exit code N; `Start-Sleep -Seconds N` (or `-Milliseconds`) takes N sim-seconds.
//! - `# sim:hang` never returns (only a timeout, a delete or the VM stopping ends it); `# sim:output-lines N` prints
//!   `line i of N` N times.
//! - A line invoking `Sysprep.exe` runs Sysprep for 5-10 sim-minutes (under `Start-Process` without `-Wait`, in the
//!   background while the script goes on). With `/generalize` the VM is then sysprepped; with `/shutdown` it stops
//!   1-2 sim-minutes after Sysprep ends.
//! - Everything else takes a share of the script's base runtime (20-60 sim-seconds in all).
//!
//! Execution follows Azure's managed run command: one script at a time per VM (later ones stay `Pending`), a
//! non-zero exit code makes the execution `Failed`, `timeoutInSeconds` (0 or absent: none) ends it `TimedOut`, and
//! `output`/`error` keep their last 4,096 bytes.

use axum::http::StatusCode;
use rand::Rng;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use crate::arm::{not_found, Reply, Req};
use crate::lifecycle::{lower, Effect, Final, OpState, RUN_COMMAND_TYPE};
use crate::rollout::{busy_reply, marked_for_deletion, new_op, norm_location, state_of, tenant_or_reply, with_lro};
use crate::tenant::{rfc3339, Tenant};
use crate::{Faults, Shared};

/// Azure keeps the last 4,096 bytes of a run command's output and error streams.
pub const STREAM_LIMIT: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Out,
    Err,
}

/// Sysprep as a script runs it. Offsets are sim-seconds from the script's start.
#[derive(Debug, Clone)]
pub struct SysprepRun {
    pub generalize: bool,
    pub shutdown: bool,
    /// Started with `Start-Process` without `-Wait`: the script goes on while Sysprep runs.
    pub background: bool,
    pub at_s: f64,
    pub done_s: f64,
    /// False under the `sysprepFails` fault.
    pub ok: bool,
}

/// What a script does, read from its text once, when the run command is created.
#[derive(Debug, Clone)]
pub struct ScriptPlan {
    /// (sim-seconds from the start, stream, text) in time order.
    pub lines: Vec<(f64, Stream, String)>,
    pub duration_s: f64,
    /// `# sim:hang`: the script never ends by itself.
    pub hangs: bool,
    pub exit_code: i32,
    pub sysprep: Option<SysprepRun>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecState {
    Pending,
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Canceled,
}

impl ExecState {
    pub fn as_str(self) -> &'static str {
        match self {
            ExecState::Pending => "Pending",
            ExecState::Running => "Running",
            ExecState::Succeeded => "Succeeded",
            ExecState::Failed => "Failed",
            ExecState::TimedOut => "TimedOut",
            ExecState::Canceled => "Canceled",
        }
    }

    fn active(self) -> bool {
        matches!(self, ExecState::Pending | ExecState::Running)
    }
}

/// One execution of a run command.
#[derive(Debug, Clone)]
pub struct ScriptRun {
    pub vm_id: String,
    pub name: String,
    /// Creation order: the queue order on the VM.
    pub seq: u64,
    pub plan: ScriptPlan,
    pub timeout_s: Option<f64>,
    pub async_execution: bool,
    pub treat_failure: bool,
    /// The PUT's long-running operation.
    pub op_id: String,
    /// The PUT body: the same body again does not run the script again.
    pub request: Value,
    pub state: ExecState,
    /// When a pending run is picked up (set once it is first in its VM's queue).
    pub starts_at: Option<OffsetDateTime>,
    pub started: Option<OffsetDateTime>,
    /// When a running script ends; `None`: never by itself.
    pub ends_at: Option<OffsetDateTime>,
    pub ended: Option<OffsetDateTime>,
    pub message: String,
    pub exit_code: Option<i32>,
    /// Output is shown up to this offset once the run ended early (timeout, interruption).
    pub cut_s: Option<f64>,
}

/// Something due on a VM's guest at a sim time.
#[derive(Debug, Clone)]
pub struct VmTimer {
    pub at: OffsetDateTime,
    pub vm_id: String,
    pub kind: TimerKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerKind {
    /// Sysprep started in the background finishes.
    SysprepDone { generalize: bool, shutdown: bool, ok: bool },
    /// The guest shuts down (Sysprep `/shutdown`): `PowerState/stopped`.
    Stop,
}

#[derive(Debug, Clone)]
pub enum ScriptEvent {
    Start(String),
    End(String),
    Timer(usize),
}

// ---------------------------------------------------------------------------------------------------------
// Reading a script

#[derive(Debug, Clone, PartialEq)]
enum Stmt {
    Out(String),
    Err(String),
    Throw(String),
    Exit(String),
    Sleep(f64),
    Hang,
    OutputLines(u32),
    Sysprep { generalize: bool, shutdown: bool, background: bool },
    Other,
}

impl Stmt {
    /// Takes a share of the script's base runtime.
    fn works(&self) -> bool {
        !matches!(self, Stmt::Sleep(_) | Stmt::Hang | Stmt::Exit(_))
    }
}

/// Split a line into statements at `;` outside quotes, dropping a trailing `#` comment.
fn split_line(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    for ch in line.chars() {
        match (quote, ch) {
            (None, '\'' | '"') => {
                quote = Some(ch);
                cur.push(ch);
            }
            (Some(q), c) if c == q => {
                quote = None;
                cur.push(ch);
            }
            (None, ';') => out.push(std::mem::take(&mut cur)),
            (None, '#') => break,
            _ => cur.push(ch),
        }
    }
    out.push(cur);
    out.into_iter().map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

fn statements(script: &str) -> Vec<Stmt> {
    let mut out = Vec::new();
    for raw in script.lines() {
        let line = raw.trim();
        if let Some(comment) = line.strip_prefix('#') {
            let c = comment.trim();
            let Some(directive) = c.get(..4).filter(|p| p.eq_ignore_ascii_case("sim:")).map(|_| c[4..].trim()) else {
                continue;
            };
            let (word, rest) = split_word(directive);
            match word.to_ascii_lowercase().as_str() {
                "hang" => out.push(Stmt::Hang),
                "output-lines" => out.push(Stmt::OutputLines(rest.trim().parse().unwrap_or(0))),
                _ => {}
            }
            continue;
        }
        for st in split_line(line) {
            out.push(statement(&st));
        }
    }
    out
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    }
}

fn statement(s: &str) -> Stmt {
    let low = s.to_ascii_lowercase();
    if low.contains("sysprep.exe") {
        return Stmt::Sysprep {
            generalize: low.contains("/generalize"),
            shutdown: low.contains("/shutdown"),
            background: low.contains("start-process") && !low.contains("-wait"),
        };
    }
    let (head, rest) = split_word(s);
    let without = |rest: &str, params: &[&str]| {
        let (w, r) = split_word(rest);
        if params.iter().any(|p| w.eq_ignore_ascii_case(p)) {
            r.trim().to_string()
        } else {
            rest.trim().to_string()
        }
    };
    match head.to_ascii_lowercase().as_str() {
        "write-output" | "write-host" | "echo" | "write" => Stmt::Out(without(rest, &["-InputObject", "-Object"])),
        "write-error" => Stmt::Err(without(rest, &["-Message"])),
        "throw" => Stmt::Throw(rest.trim().to_string()),
        "exit" => Stmt::Exit(rest.trim().to_string()),
        "start-sleep" | "sleep" => Stmt::Sleep(sleep_seconds(rest)),
        _ => Stmt::Other,
    }
}

fn sleep_seconds(args: &str) -> f64 {
    let words: Vec<&str> = args.split_whitespace().collect();
    let mut i = 0;
    let mut seconds = 0.0;
    while i < words.len() {
        let w = words[i].to_ascii_lowercase();
        let next = words.get(i + 1).and_then(|n| n.parse::<f64>().ok());
        match w.as_str() {
            "-seconds" | "-s" => {
                seconds += next.unwrap_or(0.0);
                i += 1;
            }
            "-milliseconds" | "-m" => {
                seconds += next.unwrap_or(0.0) / 1000.0;
                i += 1;
            }
            _ => seconds += w.parse::<f64>().unwrap_or(0.0),
        }
        i += 1;
    }
    seconds.max(0.0)
}

/// Expand `$Name` / `${Name}` from the parameters (case-insensitive, as PowerShell variables are).
fn expand(text: &str, params: &[(String, String)]) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '$' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let (name, next) = if chars.get(i + 1) == Some(&'{') {
            match chars[i + 2..].iter().position(|c| *c == '}') {
                Some(end) => (chars[i + 2..i + 2 + end].iter().collect::<String>(), i + 3 + end),
                None => (String::new(), i + 1),
            }
        } else {
            let len =
                chars[i + 1..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == '_' || **c == ':').count();
            (chars[i + 1..i + 1 + len].iter().collect::<String>(), i + 1 + len)
        };
        if name.is_empty() {
            out.push('$');
            i += 1;
            continue;
        }
        if let Some((_, v)) = params.iter().find(|(n, _)| n.eq_ignore_ascii_case(&name)) {
            out.push_str(v);
        }
        i = next;
    }
    out
}

/// The text an argument prints: single-quoted is literal, double-quoted and bare text expand variables.
fn render(arg: &str, params: &[(String, String)]) -> String {
    let a = arg.trim();
    if let Some(inner) = a.strip_prefix('\'') {
        let mut out = String::new();
        let mut it = inner.chars().peekable();
        while let Some(c) = it.next() {
            if c == '\'' {
                if it.peek() == Some(&'\'') {
                    it.next();
                    out.push('\'');
                    continue;
                }
                break;
            }
            out.push(c);
        }
        return out;
    }
    if let Some(inner) = a.strip_prefix('"') {
        let mut raw = String::new();
        let mut it = inner.chars();
        while let Some(c) = it.next() {
            match c {
                '`' => {
                    if let Some(n) = it.next() {
                        raw.push(n);
                    }
                }
                '"' => break,
                _ => raw.push(c),
            }
        }
        return expand(&raw, params);
    }
    expand(a, params)
}

/// Sysprep's own words when it fails (the usual cause: a Store app installed for one user only).
const SYSPREP_FATAL: [&str; 3] = [
    "Sysprep.exe : A fatal error occurred while trying to sysprep the machine.",
    "SYSPRP Package Microsoft.DesktopAppInstaller_1.21.3482.0_x64__8wekyb3d8bbwe was installed for a user, but not provisioned for all users. This package will not function properly in the sysprep image.",
    "SYSPRP Sysprep_Clean_Validate_Opk: Failed to remove apps for the current user: 0x80073cf2. See C:\\Windows\\System32\\Sysprep\\Panther\\setupact.log for details.",
];

/// Read a script into its timeline. `sysprep_fails`: the VM is under the `sysprepFails` fault.
pub fn plan(script: &str, params: &[(String, String)], sysprep_fails: bool, rng: &mut impl Rng) -> ScriptPlan {
    let stmts = statements(script);
    let base: f64 = rng.random_range(20.0..=60.0);
    // The base runtime is spread over the statements that run: those before an `exit`, `throw` or hang.
    let last = stmts
        .iter()
        .position(|s| matches!(s, Stmt::Exit(_) | Stmt::Throw(_) | Stmt::Hang))
        .map_or(stmts.len(), |i| i + 1);
    let work = stmts[..last].iter().filter(|s| s.works()).count();
    let share = base / work.max(1) as f64;
    let mut t = 0.0;
    let mut lines = Vec::new();
    let mut exit_code = 0;
    let mut hangs = false;
    let mut sysprep = None;
    for st in stmts {
        match st {
            // A statement prints when it runs, then takes its share of the runtime.
            Stmt::Out(text) => {
                lines.push((t, Stream::Out, render(&text, params)));
                t += share;
            }
            Stmt::Err(text) => {
                lines.push((t, Stream::Err, render(&text, params)));
                t += share;
            }
            Stmt::Throw(text) => {
                let text = render(&text, params);
                lines.push((t, Stream::Err, if text.is_empty() { "ScriptHalted".into() } else { text }));
                t += share;
                exit_code = 1;
                break;
            }
            Stmt::Exit(arg) => {
                let arg = render(arg.trim_start_matches('(').trim_end_matches(')'), params);
                exit_code = arg.trim().parse().unwrap_or(0);
                break;
            }
            Stmt::Sleep(s) => t += s,
            Stmt::Hang => {
                hangs = true;
                break;
            }
            Stmt::OutputLines(n) => {
                for i in 1..=n {
                    lines.push((t + share * f64::from(i - 1) / f64::from(n), Stream::Out, format!("line {i} of {n}")));
                }
                t += share;
            }
            Stmt::Sysprep { generalize, shutdown, background } => {
                t += share;
                let at_s = t;
                // Sysprep fails within its first minutes, or completes in 5-10.
                let takes =
                    if sysprep_fails { rng.random_range(60.0..=180.0) } else { rng.random_range(300.0..=600.0) };
                sysprep = Some(SysprepRun {
                    generalize,
                    shutdown,
                    background,
                    at_s,
                    done_s: at_s + takes,
                    ok: !sysprep_fails,
                });
                if background {
                    continue;
                }
                t += takes;
                if sysprep_fails {
                    lines.extend(SYSPREP_FATAL.iter().map(|l| (t, Stream::Err, l.to_string())));
                    exit_code = 1;
                    break;
                }
            }
            Stmt::Other => t += share,
        }
    }
    if work == 0 {
        t += base;
    }
    ScriptPlan { lines, duration_s: t, hangs, exit_code, sysprep }
}

/// The last `STREAM_LIMIT` bytes of a stream (cut at a character boundary).
fn tail(s: String) -> String {
    if s.len() <= STREAM_LIMIT {
        return s;
    }
    let mut start = s.len() - STREAM_LIMIT;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    s[start..].to_string()
}

fn seconds(d: Duration) -> f64 {
    d.as_seconds_f64()
}

// ---------------------------------------------------------------------------------------------------------
// The execution timeline

impl Tenant {
    /// The earliest script event: a pending run picked up, a running one ending, a guest timer.
    pub fn next_script_event(&self) -> Option<(OffsetDateTime, ScriptEvent)> {
        let mut best: Option<(OffsetDateTime, ScriptEvent)> = None;
        let mut offer = |t: OffsetDateTime, e: ScriptEvent| {
            if best.as_ref().is_none_or(|(b, _)| t < *b) {
                best = Some((t, e));
            }
        };
        for (k, r) in &self.sim.runs {
            match (r.state, r.starts_at, r.ends_at) {
                (ExecState::Pending, Some(t), _) => offer(t, ScriptEvent::Start(k.clone())),
                (ExecState::Running, _, Some(t)) => offer(t, ScriptEvent::End(k.clone())),
                _ => {}
            }
        }
        for (i, timer) in self.sim.vm_timers.iter().enumerate() {
            offer(timer.at, ScriptEvent::Timer(i));
        }
        best
    }

    pub fn apply_script_event(&mut self, event: ScriptEvent, at: OffsetDateTime) {
        match event {
            ScriptEvent::Start(k) => self.start_run(&k, at),
            ScriptEvent::End(k) => self.end_run(&k, at),
            ScriptEvent::Timer(i) => {
                let timer = self.sim.vm_timers.remove(i);
                self.fire_timer(timer);
            }
        }
    }

    fn run_command_state(&mut self, run_key: &str, state: &str) {
        if let Some(rc) = self.resources.get_mut(run_key) {
            rc["properties"]["provisioningState"] = json!(state);
        }
    }

    /// End a run command's PUT operation (its script started or ended).
    fn end_op(&mut self, op_id: &str, state: OpState, at: OffsetDateTime) {
        if let Some(o) = self.sim.ops.get_mut(op_id).filter(|o| o.state == OpState::InProgress) {
            o.state = state;
            o.ended = Some(at);
            o.completes_at = at;
        }
    }

    fn start_run(&mut self, key: &str, at: OffsetDateTime) {
        let Some(run) = self.sim.runs.get_mut(key) else { return };
        run.state = ExecState::Running;
        run.started = Some(at);
        let natural = (!run.plan.hangs).then(|| at + Duration::seconds_f64(run.plan.duration_s));
        let limit = run.timeout_s.map(|s| at + Duration::seconds_f64(s));
        run.ends_at = match (natural, limit) {
            (Some(n), Some(l)) => Some(n.min(l)),
            (n, l) => n.or(l),
        };
        let run = run.clone();
        if run.async_execution {
            // "Provisioning will complete as soon as the script starts" (spec, asyncExecution).
            self.run_command_state(key, "Succeeded");
            self.end_op(&run.op_id, OpState::Succeeded, at);
        } else if let Some(o) = self.sim.ops.get_mut(&run.op_id) {
            o.completes_at = run.ends_at.unwrap_or(at + Duration::days(1));
        }
        if let Some(s) = &run.plan.sysprep {
            self.note_master(&run.vm_id, &format!("sysprep started by run command '{}'", run.name), at);
            let reached = run.timeout_s.is_none_or(|t| s.at_s <= t);
            if s.background && reached {
                self.sim.vm_timers.push(VmTimer {
                    at: at + Duration::seconds_f64(s.done_s),
                    vm_id: run.vm_id.clone(),
                    kind: TimerKind::SysprepDone { generalize: s.generalize, shutdown: s.shutdown, ok: s.ok },
                });
            }
        }
    }

    fn end_run(&mut self, key: &str, at: OffsetDateTime) {
        let Some(run) = self.sim.runs.get_mut(key) else { return };
        let timed_out = run.timeout_s.is_some_and(|t| run.plan.hangs || t < run.plan.duration_s);
        run.ended = Some(at);
        if timed_out {
            let limit = run.timeout_s.unwrap_or_default();
            run.state = ExecState::TimedOut;
            run.cut_s = Some(limit);
            run.message = format!("The script did not complete within its timeout of {limit} seconds and was stopped.");
        } else {
            let code = run.plan.exit_code;
            run.exit_code = Some(code);
            // A non-zero exit code is a script failure: `executionState` Failed (provisioningState only follows it
            // with treatFailureAsDeploymentFailure, per the spec's description of that flag).
            run.state = if code == 0 { ExecState::Succeeded } else { ExecState::Failed };
            run.message = if code == 0 { String::new() } else { format!("The script exited with code {code}.") };
        }
        let run = run.clone();
        let failed = run.state != ExecState::Succeeded;
        let provisioning = if failed && run.treat_failure { "Failed" } else { "Succeeded" };
        self.run_command_state(key, provisioning);
        if !run.async_execution {
            let state = if failed && run.treat_failure {
                OpState::Failed {
                    http: 409,
                    error: json!({
                        "code": "VMExtensionProvisioningError",
                        "message": format!("VM has reported a failure when processing extension 'RunCommandHandlerWindows' (run command '{}'). Execution state: {}. {}", run.name, run.state.as_str(), run.message),
                    }),
                }
            } else {
                OpState::Succeeded
            };
            self.end_op(&run.op_id, state, at);
        }
        if let Some(s) = run.plan.sysprep.as_ref().filter(|s| !s.background && s.ok && !timed_out) {
            self.sysprep_done(&run.vm_id, s.generalize, s.shutdown, at);
        }
        self.schedule_runs(&run.vm_id, at);
    }

    fn sysprep_done(&mut self, vm_id: &str, generalize: bool, shutdown: bool, at: OffsetDateTime) {
        if generalize {
            if let Some(s) = self.sim.vms.get_mut(&lower(vm_id)) {
                s.sysprepped = true;
            } else if self.get(vm_id).is_some() {
                let mut s = crate::lifecycle::VmState::new("running", at, Value::Null);
                s.sysprepped = true;
                self.sim.vms.insert(lower(vm_id), s);
            }
        }
        if shutdown {
            let after = crate::lifecycle::minutes(1.0, 2.0);
            self.sim.vm_timers.push(VmTimer { at: at + after, vm_id: vm_id.to_string(), kind: TimerKind::Stop });
        }
    }

    fn fire_timer(&mut self, timer: VmTimer) {
        let running = self.sim.vms.get(&lower(&timer.vm_id)).is_none_or(|s| s.power == "running");
        if self.get(&timer.vm_id).is_none() || !running {
            return;
        }
        match timer.kind {
            TimerKind::SysprepDone { generalize, shutdown, ok } => {
                if ok {
                    self.sysprep_done(&timer.vm_id, generalize, shutdown, timer.at);
                }
            }
            TimerKind::Stop => {
                let key = lower(&timer.vm_id);
                self.sim.vms.entry(key).or_insert(crate::lifecycle::VmState::new("running", timer.at, Value::Null));
                self.stop_guest(&timer.vm_id, timer.at);
            }
        }
    }

    /// The guest shut itself down (Sysprep `/shutdown`): the VM is stopped, not deallocated.
    fn stop_guest(&mut self, vm_id: &str, at: OffsetDateTime) {
        if let Some(s) = self.sim.vms.get_mut(&lower(vm_id)) {
            s.power = "stopped";
        }
        self.touch_vm(vm_id, at);
        self.note_master(vm_id, "stopped (the guest OS shut down after Sysprep /shutdown)", at);
        self.interrupt_runs(vm_id, at, "The VM stopped while the run command was pending or running.");
    }

    /// The VM stopped: pending and running scripts on it fail.
    pub fn interrupt_runs(&mut self, vm_id: &str, at: OffsetDateTime, message: &str) {
        let prefix = format!("{}/", lower(vm_id));
        let keys: Vec<String> = self
            .sim
            .runs
            .iter()
            .filter(|(k, r)| k.starts_with(&prefix) && r.state.active())
            .map(|(k, _)| k.clone())
            .collect();
        for k in keys {
            let Some(run) = self.sim.runs.get_mut(&k) else { continue };
            run.cut_s = Some(run.started.map_or(0.0, |s| seconds(at - s)));
            run.state = ExecState::Failed;
            run.ended = Some(at);
            run.message = message.to_string();
            let (op_id, was_async) = (run.op_id.clone(), run.async_execution);
            if !was_async {
                self.run_command_state(&k, "Failed");
            }
            self.end_op(
                &op_id,
                OpState::Canceled {
                    error: json!({"code": "OperationPreempted", "message": format!("Operation execution has been preempted: {message}")}),
                },
                at,
            );
        }
    }

    /// Stop a pending or running execution (its run command was updated or deleted).
    fn cancel_run(&mut self, key: &str, at: OffsetDateTime) {
        let Some(run) = self.sim.runs.get_mut(key).filter(|r| r.state.active()) else { return };
        run.cut_s = Some(run.started.map_or(0.0, |s| seconds(at - s)));
        run.state = ExecState::Canceled;
        run.ended = Some(at);
        run.message = "The run command was canceled: it was updated or deleted while it ran.".into();
        let (op_id, vm_id) = (run.op_id.clone(), run.vm_id.clone());
        self.end_op(
            &op_id,
            OpState::Canceled {
                error: json!({"code": "OperationPreempted", "message": "Operation execution has been preempted by a more recent operation."}),
            },
            at,
        );
        self.schedule_runs(&vm_id, at);
    }

    /// Pick up the VM's next pending script when none runs and the VM is running.
    fn schedule_runs(&mut self, vm_id: &str, at: OffsetDateTime) {
        let running = self.sim.vms.get(&lower(vm_id)).is_none_or(|s| s.power == "running");
        let usable = self.get(vm_id).is_some_and(|v| state_of(v) != "Deleting");
        let prefix = format!("{}/", lower(vm_id));
        let mine = || self.sim.runs.iter().filter(|(k, _)| k.starts_with(&prefix));
        if !running
            || !usable
            || mine()
                .any(|(_, r)| r.state == ExecState::Running || (r.starts_at.is_some() && r.state == ExecState::Pending))
        {
            return;
        }
        let Some(next) =
            mine().filter(|(_, r)| r.state == ExecState::Pending).min_by_key(|(_, r)| r.seq).map(|(k, _)| k.clone())
        else {
            return;
        };
        // The guest agent picks a run command up a few seconds after it is set.
        let starts = at + Duration::seconds_f64(rand::rng().random_range(2.0..=5.0));
        let Some(run) = self.sim.runs.get_mut(&next) else { return };
        run.starts_at = Some(starts);
        let eta = if run.async_execution || run.plan.hangs {
            starts
        } else {
            starts + Duration::seconds_f64(run.timeout_s.unwrap_or(f64::MAX).min(run.plan.duration_s))
        };
        let op_id = run.op_id.clone();
        if let Some(o) = self.sim.ops.get_mut(&op_id) {
            o.completes_at = eta;
        }
    }

    pub fn remove_run_command(&mut self, id: &str) {
        let key = lower(id);
        self.resources.remove(&key);
        self.sim.runs.remove(&key);
    }

    /// `properties.instanceView` of a run command at `now`.
    pub fn run_instance_view(&self, id: &str, now: OffsetDateTime) -> Value {
        let Some(run) = self.sim.runs.get(&lower(id)) else {
            return json!({"executionState": "Unknown", "executionMessage": "", "statuses": []});
        };
        let until = match run.state {
            ExecState::Pending => -1.0,
            ExecState::Running => run.started.map_or(0.0, |s| seconds(now - s)),
            _ => run.cut_s.unwrap_or(f64::INFINITY),
        };
        let stream = |which: Stream| {
            let text: Vec<&str> = run
                .plan
                .lines
                .iter()
                .filter(|(t, s, _)| *s == which && *t <= until)
                .map(|(_, _, l)| l.as_str())
                .collect();
            tail(text.join("\n"))
        };
        let mut view = json!({
            "executionState": run.state.as_str(),
            "executionMessage": run.message,
            "output": stream(Stream::Out),
            "error": stream(Stream::Err),
            "statuses": []
        });
        if let Some(s) = run.started {
            view["startTime"] = json!(rfc3339(s));
        }
        if let Some(e) = run.ended {
            view["endTime"] = json!(rfc3339(e));
        }
        if let Some(c) = run.exit_code {
            view["exitCode"] = json!(c);
        }
        view
    }
}

// ---------------------------------------------------------------------------------------------------------
// HTTP

fn vm_of_run(req: &Req) -> String {
    format!("/{}", req.segs[..req.segs.len() - 2].join("/"))
}

fn wants_instance_view(req: &Req) -> bool {
    req.query.get("$expand").is_some_and(|e| e.eq_ignore_ascii_case("instanceView"))
}

/// An operation in flight on the VM other than a run command (run commands queue instead of conflicting).
fn other_op_on_vm<'a>(t: &'a Tenant, vm_id: &str) -> Option<&'a crate::lifecycle::AsyncOp> {
    let vm = lower(vm_id);
    t.sim.ops.values().filter(|o| o.state == OpState::InProgress).find(|o| {
        let r = lower(&o.resource_id);
        r == vm || (r.starts_with(&format!("{vm}/")) && !r.contains("/runcommands/"))
    })
}

/// Managed run commands are run by the RunCommandHandler extension, so a VM that is not running refuses them the
/// way it refuses any extension change: 409 OperationNotAllowed (rather than accepting and failing the script).
fn not_running() -> Reply {
    Reply::error(
        StatusCode::CONFLICT,
        "OperationNotAllowed",
        "Cannot modify extensions in the VM when the VM is not running.",
    )
}

fn parent_missing(req: &Req) -> Reply {
    let vm_name = req.segs[req.segs.len() - 3].clone();
    Reply::error(
        StatusCode::NOT_FOUND,
        "ParentResourceNotFound",
        format!("Can not perform requested operation on nested resource. Parent resource '{vm_name}' not found."),
    )
}

pub fn put(shared: &Shared, req: &Req) -> Reply {
    let now = shared.clock.now();
    let id = req.id();
    let key = lower(&id);
    let name = req.segs.last().cloned().unwrap_or_default();
    let vm_id = vm_of_run(req);
    let body = req.body.clone().unwrap_or(json!({}));
    let vm_name = req.segs[req.segs.len() - 3].clone();
    let fails = shared.faults.lock().map(|f| Faults::matches(&f.sysprep_fails, &vm_name)).unwrap_or(false);
    let mut t = tenant_or_reply!(shared);
    let Some(vm) = t.get(&vm_id).cloned() else { return parent_missing(req) };
    if state_of(&vm) == "Deleting" {
        return marked_for_deletion(&vm_name, "run command create or update");
    }
    if let Some(op) = other_op_on_vm(&t, &vm_id).cloned() {
        return busy_reply(&vm_name, "run command create or update", &op);
    }
    if t.sim.vms.get(&lower(&vm_id)).map_or("running", |s| s.power) != "running" {
        return not_running();
    }
    let existing = t.get(&id).cloned();
    if existing.as_ref().is_some_and(|e| state_of(e) == "Deleting") {
        return Reply::error(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            format!("Run command '{name}' is being deleted. Retry after the delete completes."),
        );
    }
    if let (Some(e), Some(run)) = (&existing, t.sim.runs.get(&key)) {
        if run.request == body {
            let reply = Reply::ok(e.clone());
            return match t.sim.in_flight(&id).cloned() {
                Some(op) => with_lro(shared, reply, &op, now),
                None => reply,
            };
        }
    }
    let p = &body["properties"];
    let Some(script) = p["source"]["script"].as_str() else {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            "The simulator runs inline scripts only: set properties.source.script (scriptUri and commandId are not simulated).",
        );
    };
    let timeout = p["timeoutInSeconds"].as_i64().unwrap_or(0);
    if timeout < 0 {
        return Reply::error(
            StatusCode::BAD_REQUEST,
            "InvalidParameter",
            format!("timeoutInSeconds must be 0 (no timeout) or a positive number of seconds, not {timeout}."),
        );
    }
    let params: Vec<(String, String)> = ["parameters", "protectedParameters"]
        .iter()
        .flat_map(|k| p[*k].as_array().cloned().unwrap_or_default())
        .filter_map(|x| Some((x["name"].as_str()?.to_string(), x["value"].as_str().unwrap_or_default().to_string())))
        .collect();
    t.cancel_run(&key, now);
    let plan = plan(script, &params, fails, &mut rand::rng());
    let mut props = p.clone();
    if let Some(obj) = props.as_object_mut() {
        obj.remove("protectedParameters");
        obj.remove("runAsPassword");
        obj.remove("instanceView");
        obj.entry("asyncExecution").or_insert(json!(false));
        obj.entry("treatFailureAsDeploymentFailure").or_insert(json!(false));
    }
    props["provisioningState"] = json!(if existing.is_some() { "Updating" } else { "Creating" });
    let location = body["location"]
        .as_str()
        .map(norm_location)
        .unwrap_or_else(|| vm["location"].as_str().unwrap_or_default().to_string());
    let mut rc = json!({"id": id, "name": name, "type": RUN_COMMAND_TYPE, "location": location, "properties": props});
    if body["tags"].is_object() {
        rc["tags"] = body["tags"].clone();
    }
    t.insert(rc.clone());
    let op = new_op(
        &mut t,
        req,
        crate::rollout::COMPUTE,
        &location,
        &id,
        "run command",
        Effect::RunCommand,
        Duration::hours(1),
        Final::Resource,
        now,
    );
    if let Some(o) = t.sim.ops.get_mut(&op.id) {
        o.external = true;
    }
    t.sim.next_run_seq += 1;
    let run = ScriptRun {
        vm_id: vm["id"].as_str().unwrap_or(&vm_id).to_string(),
        name: name.clone(),
        seq: t.sim.next_run_seq,
        plan,
        timeout_s: (timeout > 0).then_some(timeout as f64),
        async_execution: p["asyncExecution"].as_bool().unwrap_or(false),
        treat_failure: p["treatFailureAsDeploymentFailure"].as_bool().unwrap_or(false),
        op_id: op.id.clone(),
        request: body.clone(),
        state: ExecState::Pending,
        starts_at: None,
        started: None,
        ends_at: None,
        ended: None,
        message: String::new(),
        exit_code: None,
        cut_s: None,
    };
    t.sim.runs.insert(key, run);
    t.schedule_runs(&vm_id, now);
    t.touch_vm(&vm_id, now);
    let op = t.sim.ops.get(&op.id).cloned().unwrap_or(op);
    let status = if existing.is_some() { StatusCode::OK } else { StatusCode::CREATED };
    with_lro(shared, Reply::with_status(status, rc), &op, now)
}

pub fn get(shared: &Shared, req: &Req) -> Reply {
    let now = shared.clock.now();
    let Ok(t) = shared.tenant.read() else {
        return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "tenant lock poisoned");
    };
    let Some(rc) = t.get(&req.id()) else { return not_found(req) };
    let mut rc = rc.clone();
    if wants_instance_view(req) {
        rc["properties"]["instanceView"] = t.run_instance_view(&req.id(), now);
    }
    Reply::ok(rc)
}

pub fn list(shared: &Shared, req: &Req) -> Reply {
    let now = shared.clock.now();
    let vm_id = format!("/{}", req.segs[..req.segs.len() - 1].join("/"));
    let Ok(t) = shared.tenant.read() else {
        return Reply::error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", "tenant lock poisoned");
    };
    if t.get(&vm_id).is_none() {
        return not_found(req);
    }
    let expand = wants_instance_view(req);
    let value: Vec<Value> = t
        .list(&format!("{vm_id}/runcommands/"), RUN_COMMAND_TYPE)
        .map(|rc| {
            let mut rc = rc.clone();
            if expand {
                rc["properties"]["instanceView"] = t.run_instance_view(rc["id"].as_str().unwrap_or_default(), now);
            }
            rc
        })
        .collect();
    Reply::ok(json!({"value": value}))
}

pub fn delete(shared: &Shared, req: &Req) -> Reply {
    let now = shared.clock.now();
    let id = req.id();
    let vm_id = vm_of_run(req);
    let mut t = tenant_or_reply!(shared);
    let Some(rc) = t.get(&id).cloned() else { return Reply::empty(StatusCode::NO_CONTENT) };
    if state_of(&rc) == "Deleting" {
        if let Some(op) = t.sim.in_flight(&id).filter(|o| o.action == "delete").cloned() {
            return with_lro(shared, Reply::empty(StatusCode::ACCEPTED), &op, now);
        }
    }
    if t.sim.vms.get(&lower(&vm_id)).map_or("running", |s| s.power) != "running" {
        return not_running();
    }
    t.cancel_run(&lower(&id), now);
    if let Some(r) = t.get_mut(&id) {
        r["properties"]["provisioningState"] = json!("Deleting");
    }
    let location = rc["location"].as_str().unwrap_or("westeurope").to_string();
    let op = new_op(
        &mut t,
        req,
        crate::rollout::COMPUTE,
        &location,
        &id,
        "delete",
        Effect::DeleteRunCommand,
        Duration::seconds_f64(rand::rng().random_range(5.0..15.0)),
        Final::NoContent,
        now,
    );
    with_lro(shared, Reply::empty(StatusCode::ACCEPTED), &op, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn read(script: &str, params: &[(&str, &str)]) -> ScriptPlan {
        let params: Vec<(String, String)> = params.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        plan(script, &params, false, &mut rand::rngs::StdRng::seed_from_u64(7))
    }

    fn out(p: &ScriptPlan) -> Vec<&str> {
        p.lines.iter().filter(|(_, s, _)| *s == Stream::Out).map(|(_, _, l)| l.as_str()).collect()
    }

    #[test]
    fn output_parameters_and_quoting_follow_powershell() {
        let p = read(
            "param($Ring)\nWrite-Output \"ring $Ring\"\nWrite-Output 'ring $Ring'\nWrite-Host ring ${ring} now; echo \"$Unknown.\"\n# a comment\nWrite-Output 'it''s'",
            &[("Ring", "pilot")],
        );
        assert_eq!(out(&p), ["ring pilot", "ring $Ring", "ring pilot now", ".", "it's"]);
        assert_eq!(p.exit_code, 0);
        assert!((20.0..=60.0).contains(&p.duration_s), "{}", p.duration_s);
        let times: Vec<f64> = p.lines.iter().map(|l| l.0).collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "lines come in time order: {times:?}");
    }

    #[test]
    fn sleeps_exit_codes_errors_and_directives() {
        let p =
            read("Write-Output 'a'\nStart-Sleep -Seconds 120\nWrite-Error 'bad'\nexit 3\nWrite-Output 'never'", &[]);
        assert_eq!(out(&p), ["a"]);
        assert_eq!(p.exit_code, 3);
        assert!(p.duration_s >= 140.0 && p.duration_s <= 180.0, "{}", p.duration_s);
        let err: Vec<&str> = p.lines.iter().filter(|l| l.1 == Stream::Err).map(|l| l.2.as_str()).collect();
        assert_eq!(err, ["bad"]);
        assert!(p.lines[1].0 >= 120.0, "the error comes after the sleep");

        let p = read("# sim:output-lines 3\nStart-Sleep 2", &[]);
        assert_eq!(out(&p), ["line 1 of 3", "line 2 of 3", "line 3 of 3"]);
        let p = read("Write-Output 'x'\n# sim:hang\nWrite-Output 'y'", &[]);
        assert!(p.hangs);
        assert_eq!(out(&p), ["x"]);
        assert_eq!(read("throw \"boom\"", &[]).exit_code, 1);
    }

    #[test]
    fn sysprep_runs_for_minutes_and_fails_under_the_fault() {
        let p = read("C:\\Windows\\System32\\Sysprep\\Sysprep.exe /generalize /oobe /shutdown /mode:vm", &[]);
        let s = p.sysprep.clone().unwrap();
        assert!(s.generalize && s.shutdown && !s.background && s.ok);
        assert!((300.0..=660.0).contains(&p.duration_s), "{}", p.duration_s);
        let bg = read("Start-Process -FilePath C:\\Windows\\System32\\Sysprep\\Sysprep.exe -ArgumentList '/generalize /oobe /quit /mode:vm'", &[]);
        assert!(bg.sysprep.as_ref().unwrap().background && !bg.sysprep.as_ref().unwrap().shutdown);
        assert!(bg.duration_s <= 60.0, "the script does not wait for Sysprep");

        let failed = plan(
            "& $env:windir\\System32\\Sysprep\\Sysprep.exe /generalize /shutdown\nWrite-Output 'after'",
            &[],
            true,
            &mut rand::rngs::StdRng::seed_from_u64(1),
        );
        assert_eq!(failed.exit_code, 1);
        assert!(!failed.sysprep.as_ref().unwrap().ok);
        assert!(failed.lines.iter().any(|l| l.1 == Stream::Err && l.2.contains("setupact.log")));
        assert!(out(&failed).is_empty(), "the script stops at the failure");
    }

    #[test]
    fn streams_keep_their_last_4096_bytes() {
        let long: String = "é".repeat(3000);
        let t = tail(long);
        assert!(t.len() <= STREAM_LIMIT && t.len() >= STREAM_LIMIT - 1);
        assert!(t.chars().all(|c| c == 'é'));
    }
}
