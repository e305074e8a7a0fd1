//! The Login Enterprise gate: point an application test at a ring, run it, wait for it, read what happened and judge
//! it. Never returns an error: whatever goes wrong becomes an INCONCLUSIVE verdict whose reason says what and why,
//! with the evidence gathered so far.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::client::LeClient;
use crate::error::LeError;
use crate::model::{ConnectionResourcesUpdate, RunOverview, RunState, TestRun, TestState};
use crate::verdict::{verdict, RunOutcome, Verdict, VerdictKind};

#[derive(Debug, Clone)]
pub struct GateRequest {
    /// The application test's id on the appliance.
    pub test_id: String,
    /// What to point the test at: the ring's hosts and the launcher and account groups to use.
    pub connection_resources: ConnectionResourcesUpdate,
    /// Written onto the run when it starts (image version, change id).
    pub comment: String,
    /// Apps that must have run successfully; matched to the overview's application names.
    pub required_apps: Vec<String>,
    /// A previous run (the image in production) the new run is compared with in the overview.
    pub baseline_run_id: Option<String>,
    /// How long the run may take before the gate gives up (INCONCLUSIVE) and stops it.
    pub timeout: Duration,
    pub poll_interval: Duration,
}

/// Where the gate is, for the UI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "camelCase")]
pub enum GateProgress {
    /// Reading the test and pointing it at the ring.
    Preparing {
        test_id: String,
    },
    Starting {
        test_id: String,
    },
    Started {
        run_id: String,
    },
    /// The run's state changed (created, testRunEnded, completed).
    Running {
        run_id: String,
        state: String,
        elapsed_s: u64,
    },
    /// The gate gave up waiting (timeout or cancelled) and stops the test so the appliance is free again.
    Stopping {
        run_id: String,
        why: String,
    },
    /// Reading events and the overview.
    Collecting {
        run_id: String,
    },
    Finished {
        verdict: VerdictKind,
    },
}

/// Raw answers of the appliance, for the evidence bundle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateEvidence {
    /// `host[:port]` of the appliance.
    pub appliance: String,
    pub started_at: String,
    pub finished_at: String,
    /// The test as read before the run (`include=all`).
    pub test: Option<Value>,
    /// The `ConnectionResourcesUpdate` body sent.
    pub connection_resources: Option<Value>,
    /// The run as last read (`include=all`).
    pub run: Option<Value>,
    pub events: Vec<Value>,
    /// The overview: the baseline run as base with this run compared, or this run alone.
    pub overview: Option<Value>,
    /// Errors met on the way, including ones the gate recovered from.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GateResult {
    pub verdict: Verdict,
    pub test_id: String,
    pub test_name: Option<String>,
    pub run_id: Option<String>,
    pub timed_out: bool,
    pub cancelled: bool,
    /// What the verdict was made of, when the run got that far.
    pub outcome: Option<RunOutcome>,
    pub evidence: GateEvidence,
}

impl GateResult {
    pub fn opens_gate(&self) -> bool {
        self.verdict.opens_gate()
    }
}

fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

struct Gate<'a, F> {
    client: &'a LeClient,
    progress: F,
    result: GateResult,
}

impl<F: FnMut(GateProgress)> Gate<'_, F> {
    fn finish(mut self, verdict: Verdict) -> GateResult {
        self.result.verdict = verdict;
        self.result.evidence.finished_at = now();
        (self.progress)(GateProgress::Finished { verdict: self.result.verdict.kind });
        self.result
    }

    fn fail_with(mut self, what: &str, e: LeError) -> GateResult {
        self.result.evidence.errors.push(format!("{what}: {e}"));
        self.finish(Verdict::inconclusive(e.to_string()))
    }

    /// The appliance must be left free for the next gate: stop a run the gate stopped waiting for.
    async fn stop(&mut self, run_id: &str, why: &str) {
        (self.progress)(GateProgress::Stopping { run_id: run_id.to_string(), why: why.to_string() });
        if let Err(e) = self.client.stop_test(&self.result.test_id).await {
            // A run that ended on its own in the meantime answers 409: nothing left to stop.
            if !matches!(e, LeError::Conflict { .. }) {
                self.result.evidence.errors.push(format!("stopping the test after {why}: {e}"));
            }
        }
    }
}

/// Run the gate: point the test at the ring, start it, wait for the run (until `timeout` or `cancel`), read its events
/// and the overview compared with the baseline run, and judge it. Only a PASS verdict opens the gate.
pub async fn run_gate(
    client: &LeClient,
    req: GateRequest,
    cancel: CancellationToken,
    progress: impl FnMut(GateProgress),
) -> GateResult {
    let mut gate = Gate {
        client,
        progress,
        result: GateResult {
            verdict: Verdict::inconclusive("the gate did not finish"),
            test_id: req.test_id.clone(),
            test_name: None,
            run_id: None,
            timed_out: false,
            cancelled: false,
            outcome: None,
            evidence: GateEvidence {
                appliance: client.host().to_string(),
                started_at: now(),
                ..GateEvidence::default()
            },
        },
    };
    (gate.progress)(GateProgress::Preparing { test_id: req.test_id.clone() });

    let test = match client.test(&req.test_id).await {
        Ok(t) => t,
        Err(LeError::NotFound { .. }) => {
            let msg = format!("the test {} does not exist on the appliance {}", req.test_id, client.host());
            return gate.finish(Verdict::inconclusive(msg));
        }
        Err(e) => return gate.fail_with("reading the test", e),
    };
    gate.result.test_name = test.name.clone();
    gate.result.evidence.test = Some(test.raw.clone());
    let name = test.display_name().to_string();
    if !test.is_application_test() {
        let msg = format!("'{name}' is a {}; the gate runs application tests", test.test_type);
        return gate.finish(Verdict::inconclusive(msg));
    }
    // Re-pointing a test that is running would change someone else's run.
    if let Some(reason) = busy_reason(&name, test.state) {
        return gate.finish(Verdict::inconclusive(reason));
    }

    if cancel.is_cancelled() {
        gate.result.cancelled = true;
        return gate.finish(Verdict::inconclusive("the gate was cancelled before the test was started"));
    }
    gate.result.evidence.connection_resources = serde_json::to_value(&req.connection_resources).ok();
    if let Err(e) = client.set_connection_resources(&req.test_id, &req.connection_resources).await {
        return gate.fail_with("pointing the test at the ring", e);
    }

    (gate.progress)(GateProgress::Starting { test_id: req.test_id.clone() });
    let run_id = match client.start_test(&req.test_id, &req.comment).await {
        Ok(id) => id,
        Err(LeError::Conflict { problem, .. }) => {
            // The 409 says running or disabled; the test's state says which.
            let state = client.test(&req.test_id).await.ok().and_then(|t| t.state);
            let reason = busy_reason(&name, state)
                .unwrap_or_else(|| format!("the appliance refused to start '{name}': {problem}"));
            gate.result.evidence.errors.push(format!("starting the test: 409 {problem}"));
            return gate.finish(Verdict::inconclusive(reason));
        }
        Err(e) => return gate.fail_with("starting the test", e),
    };
    gate.result.run_id = Some(run_id.clone());
    (gate.progress)(GateProgress::Started { run_id: run_id.clone() });

    // Poll until completed, the timeout or cancellation.
    let started = Instant::now();
    let deadline = started + req.timeout;
    let mut last_state: Option<RunState> = None;
    let run: Option<TestRun> = loop {
        let read = tokio::select! {
            r = client.test_run(&run_id) => r,
            _ = cancel.cancelled() => {
                gate.result.cancelled = true;
                break None;
            }
        };
        match read {
            Ok(run) => {
                gate.result.evidence.run = Some(run.raw.clone());
                if run.state != last_state {
                    last_state = run.state;
                    (gate.progress)(GateProgress::Running {
                        run_id: run_id.clone(),
                        state: run.state.map(|s| s.as_api()).unwrap_or("unknown").to_string(),
                        elapsed_s: started.elapsed().as_secs(),
                    });
                }
                if run.is_completed() {
                    break Some(run);
                }
                if Instant::now() >= deadline {
                    gate.result.timed_out = true;
                    break Some(run);
                }
            }
            Err(e) => {
                gate.stop(&run_id, "an error reading the run").await;
                return gate.fail_with("reading the run", e);
            }
        }
        let wait = req.poll_interval.min(deadline.saturating_duration_since(Instant::now()));
        tokio::select! {
            _ = cancel.cancelled() => {
                gate.result.cancelled = true;
                break None;
            }
            _ = tokio::time::sleep(wait) => {}
        }
    };
    if gate.result.timed_out {
        let why = format!("the gate's timeout ({:?})", req.timeout);
        gate.stop(&run_id, &why).await;
    }
    if gate.result.cancelled {
        gate.stop(&run_id, "cancellation").await;
        let mut reasons = vec![format!("the gate was cancelled while run {run_id} of '{name}' was in progress")];
        if let Some(v) = &gate.result.evidence.run {
            reasons.push(format!("the run was '{}' when cancelled", v["state"].as_str().unwrap_or("unknown")));
        }
        return gate.finish(Verdict { kind: VerdictKind::Inconclusive, reasons });
    }
    let Some(run) = run else {
        return gate.finish(Verdict::inconclusive("the run could not be read"));
    };

    (gate.progress)(GateProgress::Collecting { run_id: run_id.clone() });
    let events = match client.run_events(&run_id).await {
        Ok(ev) => ev,
        Err(e) => {
            // Without the events a launcher failure cannot be ruled out.
            return gate.fail_with("reading the run's events", e);
        }
    };
    gate.result.evidence.events = events.iter().map(|e| e.raw.clone()).collect();

    let overview = overview(&mut gate, &run_id, req.baseline_run_id.as_deref()).await;
    let overview = match overview {
        Ok(o) => o,
        Err(e) if gate.result.timed_out => {
            // A run cut short may have no overview yet; the timeout already decides.
            gate.result.evidence.errors.push(format!("reading the overview: {e}"));
            RunOverview::default()
        }
        Err(e) => return gate.fail_with("reading the run's overview", e),
    };
    let data = overview.run(&run_id);
    let outcome = RunOutcome::from_api(&run, data);
    let kinds: Vec<_> = events.iter().map(|e| e.event_type.clone()).collect();
    let mut v = verdict(&outcome, &kinds, &req.required_apps, gate.result.timed_out);
    v.reasons.extend(regressions(&overview, &run_id));
    gate.result.outcome = Some(outcome);
    gate.finish(v)
}

/// The overview compared with the baseline; without one (or when the baseline is gone), the run alone.
async fn overview<F: FnMut(GateProgress)>(
    gate: &mut Gate<'_, F>,
    run_id: &str,
    baseline: Option<&str>,
) -> Result<RunOverview, LeError> {
    if let Some(base) = baseline.filter(|b| !b.eq_ignore_ascii_case(run_id)) {
        match gate.client.run_overview(base, &[run_id.to_string()]).await {
            Ok(o) => {
                gate.result.evidence.overview = Some(o.raw.clone());
                return Ok(o);
            }
            Err(LeError::NotFound { detail, .. }) => gate.result.evidence.errors.push(format!(
                "the baseline run {base} was not found ({}); the run is judged without a comparison",
                detail.unwrap_or_default()
            )),
            Err(e) => return Err(e),
        }
    }
    let o = gate.client.run_overview(run_id, &[]).await?;
    gate.result.evidence.overview = Some(o.raw.clone());
    Ok(o)
}

/// Apps that failed in this run but succeeded in the baseline: the image broke them.
fn regressions(overview: &RunOverview, run_id: &str) -> Vec<String> {
    let Some(base) =
        overview.application_test_result.iter().find(|r| r.is_base && !r.test_run_id.eq_ignore_ascii_case(run_id))
    else {
        return vec![];
    };
    let Some(this) = overview.run(run_id) else { return vec![] };
    let ok_in_base = |name: &str| {
        base.application_summaries
            .iter()
            .any(|a| a.application_name.as_deref() == Some(name) && a.app_execution_successful == Some(true))
    };
    this.application_summaries
        .iter()
        .filter(|a| a.app_execution_successful != Some(true))
        .filter_map(|a| a.application_name.as_deref())
        .filter(|n| ok_in_base(n))
        .map(|n| {
            let counter = base.counter.map(|c| format!(" #{c}")).unwrap_or_default();
            format!("{n} succeeded in the baseline run{counter}: a regression of this image")
        })
        .collect()
}

fn busy_reason(name: &str, state: Option<TestState>) -> Option<String> {
    match state {
        Some(TestState::Running) | Some(TestState::Stopping) => Some(format!(
            "the test '{name}' is already running on the appliance: wait for that run to end, or stop it, then run \
             the gate again"
        )),
        Some(TestState::Disabled) => Some(format!(
            "the test '{name}' is disabled on the appliance: enable it under Configuration > Application testing"
        )),
        _ => None,
    }
}
