//! The gate's verdict on one application test run. Pure: the same run, events and required apps always give the same
//! verdict, with its reasons. Only PASS opens the gate; FAIL blames the image, INCONCLUSIVE says the run could not
//! judge it (both block promotion).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::events::{EventClass, EventKind};
use crate::model::{AppResultStatus, RunData, RunResult, RunState, SuccessCounts, TestRun};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum VerdictKind {
    Pass,
    Fail,
    Inconclusive,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub kind: VerdictKind,
    /// Why, most important first; never empty.
    pub reasons: Vec<String>,
}

impl Verdict {
    pub fn opens_gate(&self) -> bool {
        self.kind == VerdictKind::Pass
    }

    pub(crate) fn inconclusive(reason: impl Into<String>) -> Verdict {
        Verdict { kind: VerdictKind::Inconclusive, reasons: vec![reason.into()] }
    }
}

/// One application of the run, as the overview reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AppResult {
    pub name: String,
    /// `appExecutionSuccessful`.
    pub succeeded: bool,
    /// `resultStatus` is `overThreshold`: it ran but was slow (reported, not gated).
    pub over_threshold: bool,
}

/// What the appliance said about a run, reduced to what the verdict needs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunOutcome {
    pub state: Option<RunState>,
    /// How the run ended; `None` until the run is `completed` (an unfinished run's `result` means nothing).
    pub result: Option<RunResult>,
    /// `platformSummary.loginSuccessful` of the run in the overview.
    pub login_successful: Option<bool>,
    /// The run's `appFailureResults`: app executions that succeeded out of all.
    pub app_executions: Option<SuccessCounts>,
    /// The run's `applicationSummaries` in the overview.
    pub apps: Vec<AppResult>,
}

impl RunOutcome {
    pub fn from_api(run: &TestRun, overview: Option<&RunData>) -> RunOutcome {
        let completed = run.is_completed();
        RunOutcome {
            state: run.state,
            result: if completed { run.result } else { None },
            login_successful: overview.and_then(|o| o.platform_summary.as_ref()).and_then(|p| p.login_successful),
            app_executions: run.app_failure_results,
            apps: overview
                .map(|o| {
                    o.application_summaries
                        .iter()
                        .map(|a| AppResult {
                            name: a
                                .application_name
                                .clone()
                                .or_else(|| a.application_id.clone())
                                .unwrap_or_else(|| "(unnamed app)".into()),
                            succeeded: a.app_execution_successful == Some(true)
                                && a.result_status != Some(AppResultStatus::Error),
                            over_threshold: a.result_status == Some(AppResultStatus::OverThreshold),
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }
}

fn count_by_kind<'a>(events: impl Iterator<Item = &'a EventKind>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for e in events {
        *m.entry(e.as_api().to_string()).or_insert(0) += 1;
    }
    m
}

fn describe(counts: &BTreeMap<String, usize>) -> String {
    counts.iter().map(|(k, n)| if *n == 1 { k.clone() } else { format!("{k} x{n}") }).collect::<Vec<_>>().join(", ")
}

fn same_app(a: &str, b: &str) -> bool {
    a.trim().eq_ignore_ascii_case(b.trim())
}

/// Judge a run. INCONCLUSIVE when the run ended internalError, cancelled or incomplete, did not complete, timed
/// out, or a launcher/connection (or appliance) event occurred; PASS when login succeeded and every required app
/// ran with all app executions successful; FAIL otherwise.
pub fn verdict(run: &RunOutcome, events: &[EventKind], required_apps: &[String], timed_out: bool) -> Verdict {
    let mut inconclusive = Vec::new();
    let mut failures = Vec::new();
    let mut notes = Vec::new();

    if timed_out {
        inconclusive.push("the run did not complete within the gate's timeout".to_string());
    }
    match run.result {
        Some(RunResult::Successful) => {}
        Some(r) => inconclusive.push(format!("the run ended '{r}' on the appliance, so it did not judge the image")),
        None if !timed_out => inconclusive.push(format!(
            "the run has not completed (state '{}')",
            run.state.map(|s| s.as_api()).unwrap_or("unknown")
        )),
        None => {}
    }

    let of_class = |c: EventClass| count_by_kind(events.iter().filter(|e| e.class() == c));
    let launcher = of_class(EventClass::LauncherOrConnection);
    if !launcher.is_empty() {
        inconclusive.push(format!(
            "launcher or connection events ({}): the session never fairly reached the image",
            describe(&launcher)
        ));
    }
    let appliance = of_class(EventClass::Appliance);
    if !appliance.is_empty() {
        inconclusive
            .push(format!("appliance resource events ({}): fix the appliance and run again", describe(&appliance)));
    }
    let run_events = of_class(EventClass::Run);
    if !run_events.is_empty() {
        inconclusive.push(format!("the appliance reported the run itself failing ({})", describe(&run_events)));
    }

    let login = of_class(EventClass::Login);
    if !login.is_empty() {
        failures.push(format!("login failed ({})", describe(&login)));
    } else if run.login_successful == Some(false) {
        failures.push("login did not succeed".to_string());
    } else if run.login_successful.is_none() && run.result.is_some() {
        inconclusive.push("the appliance reported no login result for the run".to_string());
    }

    let mut app_failures = Vec::new();
    for app in run.apps.iter().filter(|a| !a.succeeded) {
        app_failures.push(format!("{} failed", app.name));
    }
    for required in required_apps {
        if !run.apps.iter().any(|a| same_app(&a.name, required)) {
            app_failures.push(format!("required app '{required}' is missing from the run's results"));
        }
    }
    match run.app_executions {
        Some(c) if c.total_count == 0 => app_failures.push("no application ran (0 app executions)".to_string()),
        Some(c) if c.success_count < c.total_count => {
            app_failures.push(format!("{} of {} app executions failed", c.total_count - c.success_count, c.total_count))
        }
        Some(_) => {}
        None if run.result.is_some() => {
            inconclusive.push("the appliance reported no app execution counts for the run".to_string())
        }
        None => {}
    }
    let app_events = of_class(EventClass::Application);
    if !app_events.is_empty() && app_failures.is_empty() {
        app_failures.push(format!("application failure events ({})", describe(&app_events)));
    }
    failures.extend(app_failures);

    let slow: Vec<&str> = run.apps.iter().filter(|a| a.over_threshold).map(|a| a.name.as_str()).collect();
    if !slow.is_empty() {
        notes.push(format!("note: over a performance threshold (not gated): {}", slow.join(", ")));
    }
    let perf = of_class(EventClass::Performance);
    if !perf.is_empty() {
        notes.push(format!("note: performance events (not gated): {}", describe(&perf)));
    }

    let kind = if !inconclusive.is_empty() {
        VerdictKind::Inconclusive
    } else if !failures.is_empty() {
        VerdictKind::Fail
    } else {
        VerdictKind::Pass
    };
    let mut reasons = inconclusive;
    reasons.extend(failures);
    if kind == VerdictKind::Pass {
        let counts = run.app_executions.unwrap_or_default();
        let apps = if required_apps.is_empty() {
            format!("all {} apps ran successfully", run.apps.len())
        } else {
            format!("all {} required apps ran successfully", required_apps.len())
        };
        reasons.push(format!(
            "login succeeded and {apps} ({}/{} app executions)",
            counts.success_count, counts.total_count
        ));
    }
    reasons.extend(notes);
    Verdict { kind, reasons }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RESULTS: [RunResult; 4] =
        [RunResult::Successful, RunResult::InternalError, RunResult::Cancelled, RunResult::Incomplete];

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Events {
        None,
        LauncherOrConnection,
        LoginFailure,
        ApplicationFailure,
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Apps {
        AllSucceeded,
        OneFailed,
        RequiredMissing,
    }

    fn app(name: &str, succeeded: bool) -> AppResult {
        AppResult { name: name.into(), succeeded, over_threshold: false }
    }

    fn outcome(result: RunResult, apps: Apps) -> RunOutcome {
        let (apps, counts) = match apps {
            Apps::AllSucceeded => {
                (vec![app("Microsoft Edge", true), app("Microsoft Word", true), app("Notepad", true)], (3, 3))
            }
            Apps::OneFailed => {
                (vec![app("Microsoft Edge", true), app("Microsoft Word", false), app("Notepad", true)], (2, 3))
            }
            Apps::RequiredMissing => (vec![app("Microsoft Edge", true), app("Notepad", true)], (2, 2)),
        };
        RunOutcome {
            state: Some(RunState::Completed),
            result: Some(result),
            login_successful: Some(true),
            app_executions: Some(SuccessCounts { success_count: counts.0, total_count: counts.1 }),
            apps,
        }
    }

    fn events(class: Events) -> Vec<EventKind> {
        let mut list = vec![EventKind::TestRunStarted, EventKind::TestRunFinished];
        match class {
            Events::None => {}
            Events::LauncherOrConnection => list.push(EventKind::LauncherOffline),
            Events::LoginFailure => list.push(EventKind::LoginFailure),
            Events::ApplicationFailure => list.push(EventKind::ApplicationFailure),
        }
        list
    }

    fn required() -> Vec<String> {
        vec!["Microsoft Edge".into(), "Microsoft Word".into()]
    }

    /// Every run result x event class x app results x timed out: the kind, and a reason naming the cause.
    #[test]
    fn verdict_table_covers_every_combination() {
        let mut cases = 0;
        for result in RESULTS {
            for ev in [Events::None, Events::LauncherOrConnection, Events::LoginFailure, Events::ApplicationFailure] {
                for apps in [Apps::AllSucceeded, Apps::OneFailed, Apps::RequiredMissing] {
                    for timed_out in [false, true] {
                        cases += 1;
                        let expected =
                            if result != RunResult::Successful || ev == Events::LauncherOrConnection || timed_out {
                                VerdictKind::Inconclusive
                            } else if ev == Events::None && apps == Apps::AllSucceeded {
                                VerdictKind::Pass
                            } else {
                                VerdictKind::Fail
                            };
                        let v = verdict(&outcome(result, apps), &events(ev), &required(), timed_out);
                        let case = format!("{result:?} / {ev:?} / {apps:?} / timed out {timed_out}: {:?}", v.reasons);
                        assert_eq!(v.kind, expected, "{case}");
                        assert!(!v.reasons.is_empty() && v.reasons.iter().all(|r| !r.trim().is_empty()), "{case}");
                        assert_eq!(v.opens_gate(), expected == VerdictKind::Pass, "{case}");
                        let all = v.reasons.join(" | ");
                        let expect_mention = |cond: bool, needle: &str| {
                            if cond {
                                assert!(all.contains(needle), "{case}: no reason mentions '{needle}'");
                            }
                        };
                        expect_mention(timed_out, "timeout");
                        expect_mention(result != RunResult::Successful, result.as_api());
                        expect_mention(ev == Events::LauncherOrConnection, "launcherOffline");
                        expect_mention(ev == Events::LoginFailure, "login failed");
                        expect_mention(apps == Apps::OneFailed, "Microsoft Word failed");
                        expect_mention(apps == Apps::RequiredMissing, "'Microsoft Word' is missing");
                        expect_mention(
                            ev == Events::ApplicationFailure && apps == Apps::AllSucceeded,
                            "applicationFailure",
                        );
                        expect_mention(expected == VerdictKind::Pass, "login succeeded");
                    }
                }
            }
        }
        assert_eq!(cases, 4 * 4 * 3 * 2);
    }

    #[test]
    fn every_launcher_or_connection_event_is_inconclusive() {
        let kinds = EventKind::launcher_or_connection();
        assert!(
            kinds.contains(&EventKind::LauncherOffline) && kinds.contains(&EventKind::ConnectionInitializationTimeout)
        );
        for kind in kinds {
            let v = verdict(
                &outcome(RunResult::Successful, Apps::AllSucceeded),
                std::slice::from_ref(&kind),
                &required(),
                false,
            );
            assert_eq!(v.kind, VerdictKind::Inconclusive, "{kind}: {:?}", v.reasons);
            assert!(v.reasons[0].contains(kind.as_api()), "{kind}: {:?}", v.reasons);
        }
    }

    #[test]
    fn login_not_successful_without_an_event_fails() {
        let mut run = outcome(RunResult::Successful, Apps::AllSucceeded);
        run.login_successful = Some(false);
        let v = verdict(&run, &[], &required(), false);
        assert_eq!(v.kind, VerdictKind::Fail);
        assert_eq!(v.reasons, vec!["login did not succeed".to_string()]);
    }

    #[test]
    fn no_app_executions_fail_even_when_nothing_is_required() {
        let mut run = outcome(RunResult::Successful, Apps::AllSucceeded);
        run.apps.clear();
        run.app_executions = Some(SuccessCounts { success_count: 0, total_count: 0 });
        let v = verdict(&run, &[], &[], false);
        assert_eq!(v.kind, VerdictKind::Fail);
        assert!(v.reasons.iter().any(|r| r.contains("0 app executions")), "{:?}", v.reasons);
    }

    #[test]
    fn an_unfinished_run_is_inconclusive_and_its_result_ignored() {
        let run = RunOutcome { state: Some(RunState::Created), ..RunOutcome::default() };
        let v = verdict(&run, &[], &required(), false);
        assert_eq!(v.kind, VerdictKind::Inconclusive);
        assert!(v.reasons[0].contains("has not completed (state 'created')"), "{:?}", v.reasons);
    }

    #[test]
    fn missing_evidence_is_inconclusive_not_pass() {
        let mut run = outcome(RunResult::Successful, Apps::AllSucceeded);
        run.login_successful = None;
        let v = verdict(&run, &[], &required(), false);
        assert_eq!(v.kind, VerdictKind::Inconclusive, "{:?}", v.reasons);
        let mut run = outcome(RunResult::Successful, Apps::AllSucceeded);
        run.app_executions = None;
        assert_eq!(verdict(&run, &[], &required(), false).kind, VerdictKind::Inconclusive);
    }

    #[test]
    fn appliance_events_are_inconclusive_and_performance_is_only_noted() {
        let run = outcome(RunResult::Successful, Apps::AllSucceeded);
        let v = verdict(&run, &[EventKind::AccountDisabled, EventKind::LoginFailure], &required(), false);
        assert_eq!(v.kind, VerdictKind::Inconclusive, "{:?}", v.reasons);
        let mut slow = run.clone();
        slow.apps[0].over_threshold = true;
        let v = verdict(&slow, &[EventKind::ApplicationThresholdExceeded], &required(), false);
        assert_eq!(v.kind, VerdictKind::Pass, "{:?}", v.reasons);
        assert!(v.reasons.iter().any(|r| r.contains("applicationThresholdExceeded")), "{:?}", v.reasons);
        assert!(v.reasons.iter().any(|r| r.contains("Microsoft Edge")), "{:?}", v.reasons);
    }

    #[test]
    fn required_apps_match_case_and_space_insensitively() {
        let run = outcome(RunResult::Successful, Apps::AllSucceeded);
        let v = verdict(&run, &[], &[" microsoft edge ".into()], false);
        assert_eq!(v.kind, VerdictKind::Pass, "{:?}", v.reasons);
    }
}
