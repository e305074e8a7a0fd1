//! Releases, computed: the next version name, where a capture replicates and how many replicas, the
//! pre-publish checklist from evidence, where a release is in the pipeline, and what retention may delete.
//! Everything here is pure: the engine gathers the evidence, these functions judge it.

use std::collections::{BTreeMap, HashSet};

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::gates::{GateKind, GateRun, GateVerdict};
use crate::model::{ImageVersionRow, RolloutState, RolloutSummary};
use crate::release_model::*;
use crate::rings::ring_display_name;

/// One new VM per this many is what a single gallery replica serves comfortably at once.
pub const VMS_PER_REPLICA: u32 = 20;
pub const MAX_REPLICAS: u32 = 100;

/// Parse `a.b.c` into numbers, for ordering versions as the gallery does.
pub fn version_key(name: &str) -> Option<(u64, u64, u64)> {
    let mut parts = name.split('.').map(|p| p.parse::<u64>().ok());
    let key = (parts.next()??, parts.next()??, parts.next()??);
    parts.next().is_none().then_some(key)
}

/// `YYYY.MMDD.N`, N one past the highest N already used for that day: sortable, unique in the definition.
pub fn next_version_name(existing: &[String], today: time::Date) -> String {
    let prefix = format!("{}.{:02}{:02}", today.year(), u8::from(today.month()), today.day());
    let n = existing
        .iter()
        .filter_map(|v| v.strip_prefix(&format!("{prefix}.")).and_then(|n| n.parse::<u64>().ok()))
        .max()
        .unwrap_or(0);
    format!("{prefix}.{}", n + 1)
}

/// A pool as replica planning sees it: where it is, its ring, and how many VMs its rollout may create at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolCapacity {
    pub pool_name: String,
    pub ring: String,
    pub location: String,
    pub parallel_creates: u32,
}

/// Every region of every ring's pools, plus the gallery's home region, with one replica per 20 VMs the largest
/// ring may create at once there (pools of a ring roll out concurrently), at least 1 and at most 100.
pub fn region_targets(pools: &[PoolCapacity], gallery_location: &str) -> Vec<RegionTarget> {
    let mut by_region: BTreeMap<String, BTreeMap<String, Vec<&PoolCapacity>>> = BTreeMap::new();
    for p in pools.iter().filter(|p| !p.ring.is_empty()) {
        by_region.entry(p.location.to_ascii_lowercase()).or_default().entry(p.ring.clone()).or_default().push(p);
    }
    let mut out: Vec<RegionTarget> = by_region
        .into_iter()
        .map(|(region, rings)| {
            let (ring, members) = rings
                .iter()
                .max_by_key(|(ring, ps)| (ps.iter().map(|p| p.parallel_creates).sum::<u32>(), std::cmp::Reverse(*ring)))
                .map(|(r, ps)| (r.clone(), ps.clone()))
                .unwrap_or_default();
            let creates: u32 = members.iter().map(|p| p.parallel_creates).sum();
            let replicas = creates.div_ceil(VMS_PER_REPLICA).clamp(1, MAX_REPLICAS);
            let pools_text = members
                .iter()
                .map(|p| format!("{} {}", p.pool_name, p.parallel_creates))
                .collect::<Vec<_>>()
                .join(", ");
            RegionTarget {
                reason: format!(
                    "{} may create up to {creates} VMs at once here ({pools_text}); one replica per {VMS_PER_REPLICA}",
                    ring_display_name(&ring)
                ),
                region,
                replicas,
            }
        })
        .collect();
    let home = gallery_location.to_ascii_lowercase().replace(' ', "");
    if !home.is_empty() && !out.iter().any(|r| r.region == home) {
        out.push(RegionTarget {
            region: home,
            replicas: 1,
            reason: "The gallery's home region: Azure keeps the source copy where the version is created".into(),
        });
    }
    out
}

pub fn end_of_life(now: OffsetDateTime, policy: &RetentionPolicy) -> String {
    (now + time::Duration::days(policy.end_of_life_days as i64)).format(&Rfc3339).unwrap_or_default()
}

fn parse(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// `2026-11-27 08:00 UTC` for evidence lines people read; the text as given when it is not a time.
pub fn when(s: &str) -> String {
    match parse(s) {
        Some(t) => {
            let t = t.to_offset(time::UtcOffset::UTC);
            format!("{}-{:02}-{:02} {:02}:{:02} UTC", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute())
        }
        None => s.to_string(),
    }
}

fn when_opt(s: &Option<String>) -> String {
    s.as_deref().map(when).unwrap_or_else(|| "(not finished)".into())
}

// ---------------------------------------------------------------- checklist

/// The capture that made a release, as the checklist needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptureEvidence {
    pub id: String,
    pub master_vm_id: String,
    pub created_at: String,
    pub succeeded: bool,
    /// Run commands found on the master that this app did not start (changes it cannot account for).
    pub unrecorded_changes: Vec<String>,
}

/// A pool of the Test ring and how the release fares there.
#[derive(Debug, Clone, PartialEq)]
pub struct TestPoolEvidence {
    pub pool_name: String,
    pub hosts: u32,
    pub hosts_on_release_healthy: u32,
    /// The newest rollout (not rollback) of this release to the pool.
    pub rollout: Option<RolloutSummary>,
    pub rolled_back: bool,
}

/// Sign-off in one ring, as checklist item 6 needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct SignOffState {
    pub ring_name: String,
    pub required: u32,
    /// Current approvals: (approver, when, evidence SHA-256).
    pub approvals: Vec<(String, String, String)>,
    /// Current rejections: (approver, comment).
    pub rejections: Vec<(String, String)>,
    /// Approvers whose sign-off no longer counts (the evidence changed).
    pub stale: Vec<String>,
}

/// Everything the checklist is computed from.
#[derive(Debug, Clone, PartialEq)]
pub struct ChecklistEvidence {
    pub version: Option<ImageVersionRow>,
    pub capture: Option<CaptureEvidence>,
    /// When the previous successful capture of the same master started.
    pub previous_capture_at: Option<String>,
    /// Script runs on the master, any order.
    pub runs: Vec<ScriptRun>,
    pub region_needs: Vec<RegionNeed>,
    pub test_pools: Vec<TestPoolEvidence>,
    /// The release a ring would roll back to, if there is one.
    pub rollback: Option<ImageVersionRow>,
    /// The gates the Test ring requires.
    pub test_gates: Vec<GateKind>,
    /// Gate runs of this release in the Test ring, any order.
    pub gate_runs: Vec<GateRun>,
    /// Sign-off in the ring before the last (Pilot/UAT), when the pipeline has one.
    pub signoff: Option<SignOffState>,
    pub now: OffsetDateTime,
}

fn item(number: u32, title: &str, state: ChecklistState, evidence: Vec<String>, next: Option<&str>) -> ChecklistItem {
    ChecklistItem {
        number,
        title: title.into(),
        state,
        evidence,
        next_step: if state == ChecklistState::Met { None } else { next.map(str::to_string) },
    }
}

/// An item judged over several parts: not met if any part says so, else missing evidence if any part lacks it,
/// else met. Each of the first two comes with its next step.
fn judged(
    (number, title): (u32, &str),
    evidence: Vec<String>,
    (not_met, not_met_next): (bool, &str),
    (missing, missing_next): (bool, &str),
) -> ChecklistItem {
    if not_met {
        item(number, title, ChecklistState::NotMet, evidence, Some(not_met_next))
    } else if missing {
        item(number, title, ChecklistState::MissingEvidence, evidence, Some(missing_next))
    } else {
        item(number, title, ChecklistState::Met, evidence, None)
    }
}

/// Runs on the capture's master between the previous capture and this one, oldest first.
pub fn runs_in_window<'a>(e: &'a ChecklistEvidence, capture: &CaptureEvidence) -> Vec<&'a ScriptRun> {
    let mut runs: Vec<&ScriptRun> = e
        .runs
        .iter()
        .filter(|r| r.vm_id.eq_ignore_ascii_case(&capture.master_vm_id))
        .filter(|r| r.started_at.as_str() < capture.created_at.as_str())
        .filter(|r| e.previous_capture_at.as_deref().is_none_or(|p| r.started_at.as_str() > p))
        .collect();
    runs.sort_by(|a, b| a.started_at.cmp(&b.started_at));
    runs
}

pub fn checklist(e: &ChecklistEvidence) -> Vec<ChecklistItem> {
    vec![
        golden_image_updated(e),
        installs_scripted(e),
        in_gallery(e),
        test_deployment(e),
        validation_passed(e),
        signed_off(e),
        rollback_available(e),
    ]
}

fn signed_off(e: &ChecklistEvidence) -> ChecklistItem {
    const TITLE: &str = "Pilot/UAT signed off";
    let Some(so) = &e.signoff else {
        return item(
            6,
            TITLE,
            ChecklistState::MissingEvidence,
            vec!["The pipeline has no ring between Test and Prod to sign off in".into()],
            Some("Tag a Pilot or UAT host pool with ringmaster-ring so a ring signs off before Prod"),
        );
    };
    let mut evidence: Vec<String> = so
        .approvals
        .iter()
        .map(|(who, at, sha)| format!("Approved by {who} at {} (evidence {})", when(at), &sha[..sha.len().min(12)]))
        .collect();
    evidence.extend(so.rejections.iter().map(|(who, c)| format!("Rejected by {who}: {c}")));
    evidence
        .extend(so.stale.iter().map(|who| format!("{who}'s sign-off no longer counts: the evidence changed after it")));
    let needed = so.required.max(1);
    evidence.push(format!("The {} ring requires {} approval(s)", so.ring_name, so.required));
    judged(
        (6, TITLE),
        evidence,
        (!so.rejections.is_empty(), "Resolve the rejection, gather new evidence and ask for sign-off again"),
        (
            (so.approvals.len() as u32) < needed,
            if so.required == 0 {
                "Require at least one approval for the ring in Settings, then ask an approver to sign off"
            } else {
                "Ask an approver to review the evidence and sign off on the release page"
            },
        ),
    )
}

const NOT_CAPTURED_HERE: &str = "Capture releases with Ringmaster so the checklist can prove how the image was built";

fn golden_image_updated(e: &ChecklistEvidence) -> ChecklistItem {
    const TITLE: &str = "Golden image updated";
    let Some(capture) = &e.capture else {
        return item(
            1,
            TITLE,
            ChecklistState::MissingEvidence,
            vec!["No capture by Ringmaster made this version".into()],
            Some(NOT_CAPTURED_HERE),
        );
    };
    let runs = runs_in_window(e, capture);
    let since = e
        .previous_capture_at
        .as_deref()
        .map(|p| format!("since the previous capture ({})", when(p)))
        .unwrap_or_else(|| "before this capture".into());
    match runs.iter().rev().find(|r| r.state == RunState::Succeeded) {
        Some(r) => item(
            1,
            TITLE,
            ChecklistState::Met,
            vec![format!(
                "'{}' succeeded on {} at {} (run {}), {since}",
                r.collection_name,
                r.vm_name,
                when_opt(&r.finished_at),
                r.id
            )],
            None,
        ),
        None => item(
            1,
            TITLE,
            ChecklistState::NotMet,
            vec![if runs.is_empty() {
                format!("No script collection ran on the master {since}")
            } else {
                format!("{} run(s) on the master {since}, none succeeded", runs.len())
            }],
            Some("Run the update collection on the golden master, then capture a new version"),
        ),
    }
}

fn installs_scripted(e: &ChecklistEvidence) -> ChecklistItem {
    const TITLE: &str = "App installs scripted";
    let Some(capture) = &e.capture else {
        return item(
            2,
            TITLE,
            ChecklistState::MissingEvidence,
            vec!["No capture by Ringmaster made this version".into()],
            Some(NOT_CAPTURED_HERE),
        );
    };
    let runs = runs_in_window(e, capture);
    let mut evidence: Vec<String> = runs
        .iter()
        .map(|r| {
            let hashes: Vec<String> = r
                .steps
                .iter()
                .map(|s| format!("{} ({})", s.script_name, &s.script_sha256[..s.script_sha256.len().min(12)]))
                .collect();
            format!("{} '{}' by {}: {}", when(&r.started_at), r.collection_name, r.started_by, hashes.join(", "))
        })
        .collect();
    if !capture.unrecorded_changes.is_empty() {
        evidence.push(format!(
            "Run commands on the master this app did not start: {}",
            capture.unrecorded_changes.join(", ")
        ));
        return item(
            2,
            TITLE,
            ChecklistState::NotMet,
            evidence,
            Some("Put those changes into a script collection, run it, and capture again"),
        );
    }
    // A failed script may have left the master half-changed, unless the same collection later succeeded.
    let failed: Vec<&&ScriptRun> = runs
        .iter()
        .filter(|r| r.state != RunState::Succeeded)
        .filter(|r| {
            !runs.iter().any(|later| {
                later.collection_id == r.collection_id
                    && later.state == RunState::Succeeded
                    && later.started_at > r.started_at
            })
        })
        .collect();
    if let Some(f) = failed.first() {
        evidence.push(format!(
            "'{}' ended {:?} at {} and was not rerun successfully",
            f.collection_name,
            f.state,
            when_opt(&f.finished_at)
        ));
        return item(
            2,
            TITLE,
            ChecklistState::NotMet,
            evidence,
            Some("Fix the failing script and rerun the collection before capturing"),
        );
    }
    if runs.is_empty() {
        return item(
            2,
            TITLE,
            ChecklistState::MissingEvidence,
            vec!["No recorded script run between the previous capture and this one".into()],
            Some("Make changes to the master only through script collections"),
        );
    }
    evidence.push("No run command on the master that this app did not start".into());
    item(2, TITLE, ChecklistState::Met, evidence, None)
}

fn in_gallery(e: &ChecklistEvidence) -> ChecklistItem {
    const TITLE: &str = "In the gallery with proper versioning";
    let Some(v) = &e.version else {
        return item(
            3,
            TITLE,
            ChecklistState::MissingEvidence,
            vec!["The version is not in the gallery inventory".into()],
            Some("Refresh the inventory; if it is still missing, capture again"),
        );
    };
    let mut evidence =
        vec![format!("{} in {} / {}, provisioning {}", v.name, v.gallery, v.definition, v.provisioning_state)];
    if version_key(&v.name).is_none() {
        evidence.push("The name is not <int>.<int>.<int>".into());
        return item(3, TITLE, ChecklistState::NotMet, evidence, Some("Capture again with a proper version name"));
    }
    if v.provisioning_state != "Succeeded" {
        return item(
            3,
            TITLE,
            ChecklistState::NotMet,
            evidence,
            Some("Wait for provisioning, or capture again if it failed"),
        );
    }
    if e.region_needs.is_empty() {
        evidence.push("No ring has a region yet, so no replication target to check".into());
        return item(
            3,
            TITLE,
            ChecklistState::MissingEvidence,
            evidence,
            Some("Tag host pools with ringmaster-ring and refresh"),
        );
    }
    let mut short = Vec::new();
    for need in &e.region_needs {
        match v.regions.iter().find(|r| r.region == need.region) {
            Some(r) if r.state == "Completed" && r.replicas >= need.required_replicas => evidence.push(format!(
                "{}: replicated, {} replica(s) (needs {})",
                need.region, r.replicas, need.required_replicas
            )),
            Some(r) => {
                let line = format!(
                    "{}: {} {}%, {} replica(s) (needs {})",
                    need.region, r.state, r.progress, r.replicas, need.required_replicas
                );
                evidence.push(line.clone());
                short.push(line);
            }
            None => {
                let line = format!("{}: not a target region (a ring has pools there)", need.region);
                evidence.push(line.clone());
                short.push(line);
            }
        }
    }
    if short.is_empty() {
        item(3, TITLE, ChecklistState::Met, evidence, None)
    } else {
        let replicating = short.iter().all(|l| l.contains("Replicating") || l.contains("InProgress"));
        item(
            3,
            TITLE,
            ChecklistState::NotMet,
            evidence,
            Some(if replicating {
                "Wait for replication to finish"
            } else {
                "Add the missing regions or replicas to the version's target regions"
            }),
        )
    }
}

fn test_deployment(e: &ChecklistEvidence) -> ChecklistItem {
    const TITLE: &str = "Test deployment created";
    if e.test_pools.is_empty() {
        return item(
            4,
            TITLE,
            ChecklistState::MissingEvidence,
            vec!["No host pool is tagged ringmaster-ring=test".into()],
            Some("Tag a Test host pool and refresh"),
        );
    }
    let mut evidence = Vec::new();
    let mut not_met = false;
    let mut missing = false;
    for p in &e.test_pools {
        let hosts = format!("{} of {} hosts on it and healthy", p.hosts_on_release_healthy, p.hosts);
        match &p.rollout {
            Some(r) if p.rolled_back => {
                not_met = true;
                evidence.push(format!("{}: rolled back after rollout {} ({hosts})", p.pool_name, r.id));
            }
            Some(r) if r.state == RolloutState::Completed => {
                if p.hosts_on_release_healthy < p.hosts {
                    not_met = true;
                }
                evidence.push(format!(
                    "{}: rollout {} completed {} ({hosts})",
                    p.pool_name,
                    r.id,
                    when_opt(&r.finished_at)
                ));
            }
            Some(r) if matches!(r.state, RolloutState::Failed | RolloutState::Aborted) => {
                not_met = true;
                evidence.push(format!("{}: rollout {} {:?} ({hosts})", p.pool_name, r.id, r.state));
            }
            Some(r) => {
                missing = true;
                evidence.push(format!(
                    "{}: rollout {} {:?}, {}/{} done ({hosts})",
                    p.pool_name, r.id, r.state, r.done, r.total
                ));
            }
            None => {
                missing = true;
                evidence.push(format!("{}: no Ringmaster rollout of this release ({hosts})", p.pool_name));
            }
        }
    }
    judged(
        (4, TITLE),
        evidence,
        (not_met, "Fix the failed hosts (retry) or roll out again; every Test host must be healthy on this release"),
        (missing, "Roll this release out to the Test ring"),
    )
}

fn validation_passed(e: &ChecklistEvidence) -> ChecklistItem {
    const TITLE: &str = "Validation passed";
    if e.test_gates.is_empty() {
        return item(
            5,
            TITLE,
            ChecklistState::MissingEvidence,
            vec!["The Test ring requires no gates".into()],
            Some("Configure the Test ring's gates (health, Login Enterprise)"),
        );
    }
    // Evidence older than the Test ring's latest rollout of this release says nothing about what runs now.
    let rolled_out_at = e.test_pools.iter().filter_map(|p| p.rollout.as_ref()?.finished_at.clone()).max();
    let mut evidence = Vec::new();
    let (mut failed, mut missing) = (false, false);
    for kind in &e.test_gates {
        let latest = e
            .gate_runs
            .iter()
            .filter(|g| g.gate == *kind && g.ring == "test")
            .max_by(|a, b| a.started_at.cmp(&b.started_at));
        match latest {
            None => {
                missing = true;
                evidence.push(format!("{}: not run on this release", kind.label()));
            }
            Some(g) if g.running => {
                missing = true;
                evidence.push(format!("{}: running since {}", kind.label(), when(&g.started_at)));
            }
            Some(g) if rolled_out_at.as_deref().is_some_and(|r| g.started_at.as_str() < r) => {
                missing = true;
                evidence.push(format!("{}: ran before the latest Test rollout finished; run it again", kind.label()));
            }
            Some(g) => {
                let verdict = g.verdict.unwrap_or(GateVerdict::Inconclusive);
                if verdict != GateVerdict::Pass {
                    failed = true;
                }
                let why = g.reasons.first().cloned().unwrap_or_default();
                evidence.push(format!(
                    "{}: {} at {} ({why})",
                    kind.label(),
                    verdict.as_str().to_uppercase(),
                    when_opt(&g.finished_at)
                ));
            }
        }
    }
    judged(
        (5, TITLE),
        evidence,
        (failed, "Fix what the gate found, roll out a fixed release, and run the gates again"),
        (missing, "Run the Test ring's gates on this release"),
    )
}

fn rollback_available(e: &ChecklistEvidence) -> ChecklistItem {
    const TITLE: &str = "Rollback image available";
    let Some(v) = &e.rollback else {
        return item(
            7,
            TITLE,
            ChecklistState::MissingEvidence,
            vec!["No earlier version reached Prod".into()],
            Some("Keep the last Prod version in the gallery; retention never deletes it"),
        );
    };
    let mut evidence = vec![format!("{} (provisioning {})", v.name, v.provisioning_state)];
    let mut problems = Vec::new();
    if v.provisioning_state != "Succeeded" {
        problems.push("it is not provisioned".to_string());
    }
    match v.end_of_life.as_deref().and_then(parse) {
        Some(eol) if eol <= e.now => problems.push(format!("it reached end of life on {}", when_opt(&v.end_of_life))),
        Some(_) => evidence.push(format!("End of life {}", when_opt(&v.end_of_life))),
        None => evidence.push("No end-of-life date".into()),
    }
    for need in &e.region_needs {
        match v.regions.iter().find(|r| r.region == need.region) {
            Some(r) if r.state == "Completed" => evidence.push(format!("{}: replicated", need.region)),
            _ => problems.push(format!("not replicated in {}", need.region)),
        }
    }
    if problems.is_empty() {
        item(7, TITLE, ChecklistState::Met, evidence, None)
    } else {
        evidence.extend(problems.iter().map(|p| format!("{}: {p}", v.name)));
        item(
            7,
            TITLE,
            ChecklistState::NotMet,
            evidence,
            Some("Extend the rollback version's end of life or add the missing regions to it"),
        )
    }
}

/// Where a release stands: the furthest ring with hosts on it, rejected when a ring rolled it back, retired
/// when past end of life.
pub fn release_stage(v: &ImageVersionRow, rolled_back: bool, now: OffsetDateTime) -> ReleaseStage {
    let rings: HashSet<String> = v.rings.iter().map(|r| r.to_ascii_lowercase()).collect();
    if rings.iter().any(|r| r == "prod" || r == "production") {
        return ReleaseStage::InProd;
    }
    if v.end_of_life.as_deref().and_then(parse).is_some_and(|eol| eol <= now) {
        return ReleaseStage::Retired;
    }
    if rolled_back {
        return ReleaseStage::Rejected;
    }
    if rings.iter().any(|r| r == "pilot" || r == "uat") {
        ReleaseStage::InPilot
    } else if !v.rings.is_empty() {
        // Test, Validation or a ring name this build does not know: the release is being tried out.
        ReleaseStage::InTest
    } else {
        ReleaseStage::Captured
    }
}

// ---------------------------------------------------------------- retention

/// Keep the newest N, anything a host runs, and every ring's last known-good; the rest may be deleted.
pub fn retention(
    versions: &[ImageVersionRow],
    last_known_good: &HashSet<String>,
    policy: &RetentionPolicy,
) -> RetentionPreview {
    let mut sorted: Vec<&ImageVersionRow> = versions.iter().collect();
    sorted.sort_by(|a, b| version_key(&b.name).cmp(&version_key(&a.name)).then_with(|| b.name.cmp(&a.name)));
    let mut keep = Vec::new();
    let mut delete = Vec::new();
    for (i, v) in sorted.iter().enumerate() {
        let entry = |reason: String| RetentionEntry { version_id: v.id.clone(), version: v.name.clone(), reason };
        if v.hosts > 0 {
            keep.push(entry(format!("{} host(s) run it", v.hosts)));
        } else if last_known_good.contains(&v.name) {
            keep.push(entry("A ring's last known-good release (its rollback target)".into()));
        } else if (i as u32) < policy.keep_newest {
            keep.push(entry(format!("One of the newest {}", policy.keep_newest)));
        } else {
            delete.push(entry(format!(
                "Older than the newest {}, on no host, no ring's rollback target",
                policy.keep_newest
            )));
        }
    }
    RetentionPreview { policy: policy.clone(), keep, delete }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RegionReplication;

    fn t(s: &str) -> OffsetDateTime {
        OffsetDateTime::parse(s, &Rfc3339).unwrap()
    }

    fn version(name: &str, hosts: u32, rings: &[&str]) -> ImageVersionRow {
        ImageVersionRow {
            id: format!("/g/images/d/versions/{name}"),
            name: name.into(),
            gallery: "gal".into(),
            definition: "d".into(),
            location: "westeurope".into(),
            published: None,
            end_of_life: Some("2027-06-01T00:00:00Z".into()),
            exclude_from_latest: true,
            provisioning_state: "Succeeded".into(),
            replication_state: "Completed".into(),
            regions: vec![
                RegionReplication {
                    region: "westeurope".into(),
                    state: "Completed".into(),
                    progress: 100,
                    replicas: 2,
                },
                RegionReplication {
                    region: "northeurope".into(),
                    state: "Completed".into(),
                    progress: 100,
                    replicas: 1,
                },
            ],
            rings: rings.iter().map(|r| r.to_string()).collect(),
            hosts,
        }
    }

    fn run(id: &str, started: &str, state: RunState) -> ScriptRun {
        ScriptRun {
            id: id.into(),
            collection_id: "c1".into(),
            collection_name: "Monthly updates".into(),
            vm_id: "/s/rg/vm-golden".into(),
            vm_name: "vm-golden".into(),
            state,
            started_by: "admin@contoso".into(),
            started_at: started.into(),
            finished_at: Some(started.into()),
            steps: vec![ScriptStep {
                position: 0,
                script_name: "Install".into(),
                script_sha256: "ab".repeat(32),
                continue_on_error: false,
                state: if state == RunState::Succeeded { StepState::Succeeded } else { StepState::Failed },
                exit_code: Some(0),
                output: String::new(),
                error: String::new(),
                started_at: None,
                finished_at: None,
                duration_ms: None,
            }],
        }
    }

    fn summary(state: RolloutState) -> RolloutSummary {
        RolloutSummary {
            id: "r1".into(),
            kind: "rollout".into(),
            host_pool_id:
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DesktopVirtualization/hostPools/hp-test".into(),
            pool_name: "hp-test".into(),
            ring: "Test".into(),
            target_version: "2026.1127.1".into(),
            state,
            done: 4,
            total: 4,
            created_at: "2026-11-27T12:00:00Z".into(),
            finished_at: Some("2026-11-27T13:00:00Z".into()),
        }
    }

    /// Evidence under which every computable item is met.
    fn good() -> ChecklistEvidence {
        ChecklistEvidence {
            version: Some(version("2026.1127.1", 4, &["Test"])),
            capture: Some(CaptureEvidence {
                id: "cap".into(),
                master_vm_id: "/s/rg/vm-golden".into(),
                created_at: "2026-11-27T10:00:00Z".into(),
                succeeded: true,
                unrecorded_changes: vec![],
            }),
            previous_capture_at: Some("2026-11-20T10:00:00Z".into()),
            runs: vec![run("run1", "2026-11-26T09:00:00Z", RunState::Succeeded)],
            region_needs: vec![
                RegionNeed { region: "westeurope".into(), required_replicas: 2, reason: String::new() },
                RegionNeed { region: "northeurope".into(), required_replicas: 1, reason: String::new() },
            ],
            test_pools: vec![TestPoolEvidence {
                pool_name: "hp-test".into(),
                hosts: 4,
                hosts_on_release_healthy: 4,
                rollout: Some(summary(RolloutState::Completed)),
                rolled_back: false,
            }],
            rollback: Some(version("2026.1105.1", 200, &["Prod"])),
            test_gates: vec![GateKind::Health, GateKind::LoginEnterprise],
            gate_runs: vec![
                gate(GateKind::Health, GateVerdict::Pass),
                gate(GateKind::LoginEnterprise, GateVerdict::Pass),
            ],
            signoff: Some(SignOffState {
                ring_name: "Pilot".into(),
                required: 1,
                approvals: vec![("Alex Wilber".into(), "2026-11-27T13:30:00Z".into(), "ab".repeat(32))],
                rejections: vec![],
                stale: vec![],
            }),
            now: t("2026-11-27T14:00:00Z"),
        }
    }

    fn gate(kind: GateKind, verdict: GateVerdict) -> GateRun {
        GateRun {
            id: format!("g-{}", kind.as_str()),
            version: "2026.1127.1".into(),
            ring: "test".into(),
            gate: kind,
            running: false,
            verdict: Some(verdict),
            reasons: vec!["because".into()],
            started_by: "alex".into(),
            started_at: "2026-11-27T13:10:00Z".into(),
            finished_at: Some("2026-11-27T13:20:00Z".into()),
            evidence: "{}".into(),
        }
    }

    fn state(e: &ChecklistEvidence, n: u32) -> ChecklistState {
        checklist(e).into_iter().find(|i| i.number == n).unwrap().state
    }

    #[test]
    fn item6_sign_off_needs_a_current_approval_and_no_rejection() {
        assert_eq!(state(&good(), 6), ChecklistState::Met);
        let mut e = good();
        let so = e.signoff.as_mut().unwrap();
        so.stale = std::mem::take(&mut so.approvals).into_iter().map(|(who, _, _)| who).collect();
        assert_eq!(state(&e, 6), ChecklistState::MissingEvidence, "a stale approval does not count");
        let i = checklist(&e).remove(5);
        assert!(i.evidence.iter().any(|l| l.contains("no longer counts")), "{:?}", i.evidence);
        let mut e = good();
        e.signoff.as_mut().unwrap().rejections.push(("Sam".into(), "Teams crashes".into()));
        assert_eq!(state(&e, 6), ChecklistState::NotMet);
        let mut e = good();
        let so = e.signoff.as_mut().unwrap();
        so.required = 0;
        so.approvals.clear();
        assert_eq!(state(&e, 6), ChecklistState::MissingEvidence, "no approval required is no sign-off");
        e.signoff = None;
        assert_eq!(state(&e, 6), ChecklistState::MissingEvidence);
    }

    #[test]
    fn every_item_is_met_on_good_evidence() {
        let items = checklist(&good());
        assert_eq!(items.len(), 7);
        for i in &items {
            assert_eq!(i.state, ChecklistState::Met, "item {} {:?}", i.number, i.evidence);
            assert!(!i.evidence.is_empty());
            assert_eq!(i.next_step.is_none(), i.state == ChecklistState::Met);
        }
    }

    #[test]
    fn item1_golden_image_updated() {
        let mut e = good();
        e.runs = vec![run("old", "2026-11-19T09:00:00Z", RunState::Succeeded)];
        assert_eq!(state(&e, 1), ChecklistState::NotMet, "a run before the previous capture does not count");
        e.runs = vec![run("f", "2026-11-26T09:00:00Z", RunState::Failed)];
        assert_eq!(state(&e, 1), ChecklistState::NotMet);
        e.capture = None;
        assert_eq!(state(&e, 1), ChecklistState::MissingEvidence);
    }

    #[test]
    fn item2_installs_scripted() {
        let mut e = good();
        e.capture.as_mut().unwrap().unrecorded_changes = vec!["InstallAdobe".into()];
        assert_eq!(state(&e, 2), ChecklistState::NotMet);
        let mut e = good();
        e.runs.push(run("f", "2026-11-26T10:00:00Z", RunState::Failed));
        assert_eq!(state(&e, 2), ChecklistState::NotMet, "a failure after the last success leaves the master unknown");
        e.runs.push(run("fix", "2026-11-26T11:00:00Z", RunState::Succeeded));
        assert_eq!(state(&e, 2), ChecklistState::Met, "rerun successfully");
        let mut e = good();
        e.runs.clear();
        assert_eq!(state(&e, 2), ChecklistState::MissingEvidence);
        e.capture = None;
        assert_eq!(state(&e, 2), ChecklistState::MissingEvidence);
    }

    #[test]
    fn item3_in_the_gallery() {
        let mut e = good();
        e.region_needs[0].required_replicas = 3;
        assert_eq!(state(&e, 3), ChecklistState::NotMet, "too few replicas");
        let mut e = good();
        e.version.as_mut().unwrap().regions[1].state = "Replicating".into();
        let i = checklist(&e).into_iter().find(|i| i.number == 3).unwrap();
        assert_eq!(i.state, ChecklistState::NotMet);
        assert_eq!(i.next_step.as_deref(), Some("Wait for replication to finish"));
        let mut e = good();
        e.version.as_mut().unwrap().provisioning_state = "Failed".into();
        assert_eq!(state(&e, 3), ChecklistState::NotMet);
        let mut e = good();
        e.region_needs.push(RegionNeed { region: "eastus".into(), required_replicas: 1, reason: String::new() });
        assert_eq!(state(&e, 3), ChecklistState::NotMet, "a ring region not targeted");
        let mut e = good();
        e.version = None;
        assert_eq!(state(&e, 3), ChecklistState::MissingEvidence);
    }

    #[test]
    fn item4_test_deployment() {
        let mut e = good();
        e.test_pools[0].hosts_on_release_healthy = 3;
        assert_eq!(state(&e, 4), ChecklistState::NotMet, "an unhealthy host");
        let mut e = good();
        e.test_pools[0].rollout = Some(summary(RolloutState::Failed));
        assert_eq!(state(&e, 4), ChecklistState::NotMet);
        let mut e = good();
        e.test_pools[0].rolled_back = true;
        assert_eq!(state(&e, 4), ChecklistState::NotMet);
        let mut e = good();
        e.test_pools[0].rollout = None;
        assert_eq!(state(&e, 4), ChecklistState::MissingEvidence, "hosts on it but no recorded rollout");
        e.test_pools[0].rollout = Some(summary(RolloutState::Running));
        assert_eq!(state(&e, 4), ChecklistState::MissingEvidence);
        e.test_pools.clear();
        assert_eq!(state(&e, 4), ChecklistState::MissingEvidence);
    }

    #[test]
    fn item5_validation_passed() {
        let mut e = good();
        e.gate_runs[1].verdict = Some(GateVerdict::Inconclusive);
        assert_eq!(state(&e, 5), ChecklistState::NotMet, "only PASS opens the gate");
        let mut e = good();
        e.gate_runs[0].verdict = Some(GateVerdict::Fail);
        assert_eq!(state(&e, 5), ChecklistState::NotMet);
        let mut e = good();
        e.gate_runs.pop();
        assert_eq!(state(&e, 5), ChecklistState::MissingEvidence, "a configured gate that never ran");
        let mut e = good();
        e.gate_runs[0].running = true;
        assert_eq!(state(&e, 5), ChecklistState::MissingEvidence);
        let mut e = good();
        e.test_pools[0].rollout.as_mut().unwrap().finished_at = Some("2026-11-27T13:30:00Z".into());
        assert_eq!(state(&e, 5), ChecklistState::MissingEvidence, "gates that ran before the latest rollout are stale");
        let mut e = good();
        e.gate_runs.push(GateRun {
            started_at: "2026-11-27T13:40:00Z".into(),
            verdict: Some(GateVerdict::Fail),
            ..gate(GateKind::Health, GateVerdict::Fail)
        });
        assert_eq!(state(&e, 5), ChecklistState::NotMet, "the newest run of each gate counts");
        let mut e = good();
        e.test_gates.clear();
        assert_eq!(state(&e, 5), ChecklistState::MissingEvidence);
    }

    #[test]
    fn item7_rollback_image() {
        let mut e = good();
        e.rollback.as_mut().unwrap().end_of_life = Some("2026-11-01T00:00:00Z".into());
        assert_eq!(state(&e, 7), ChecklistState::NotMet, "past end of life");
        let mut e = good();
        e.rollback.as_mut().unwrap().regions.pop();
        assert_eq!(state(&e, 7), ChecklistState::NotMet, "not in a ring region");
        let mut e = good();
        e.rollback = None;
        assert_eq!(state(&e, 7), ChecklistState::MissingEvidence);
    }

    #[test]
    fn evidence_times_read_as_people_write_them() {
        assert_eq!(when("2026-11-27T08:00:16.590958579Z"), "2026-11-27 08:00 UTC");
        assert_eq!(when("2026-11-27T09:30:00+01:00"), "2026-11-27 08:30 UTC");
        assert_eq!(when("not a time"), "not a time");
        assert_eq!(when_opt(&None), "(not finished)");
    }

    #[test]
    fn version_names_sort_and_never_repeat() {
        let today = time::macros::date!(2026 - 11 - 27);
        assert_eq!(next_version_name(&[], today), "2026.1127.1");
        let existing = vec!["2026.1127.1".to_string(), "2026.1127.2".into(), "2026.1120.9".into()];
        assert_eq!(next_version_name(&existing, today), "2026.1127.3");
        assert_eq!(next_version_name(&[], time::macros::date!(2027 - 01 - 05)), "2027.0105.1");
        assert!(version_key("2027.0105.1") > version_key("2026.1231.9"));
        assert_eq!(version_key("1.2"), None);
        assert_eq!(version_key("1.2.x"), None);
    }

    #[test]
    fn replicas_follow_the_largest_ring_per_region() {
        let pools = vec![
            PoolCapacity {
                pool_name: "hp-test".into(),
                ring: "test".into(),
                location: "westeurope".into(),
                parallel_creates: 1,
            },
            PoolCapacity {
                pool_name: "hp-prod-1".into(),
                ring: "prod".into(),
                location: "westeurope".into(),
                parallel_creates: 10,
            },
            PoolCapacity {
                pool_name: "hp-prod-2".into(),
                ring: "prod".into(),
                location: "westeurope".into(),
                parallel_creates: 15,
            },
            PoolCapacity {
                pool_name: "hp-prod-neu".into(),
                ring: "prod".into(),
                location: "northeurope".into(),
                parallel_creates: 5,
            },
            PoolCapacity {
                pool_name: "huge".into(),
                ring: "prod".into(),
                location: "eastus".into(),
                parallel_creates: 5000,
            },
            PoolCapacity {
                pool_name: "adm".into(),
                ring: String::new(),
                location: "westus".into(),
                parallel_creates: 50,
            },
        ];
        let t = region_targets(&pools, "West Europe");
        let by: BTreeMap<_, _> = t.iter().map(|r| (r.region.as_str(), r.replicas)).collect();
        assert_eq!(by.get("westeurope"), Some(&2), "25 VMs at once -> 2 replicas");
        assert_eq!(by.get("northeurope"), Some(&1));
        assert_eq!(by.get("eastus"), Some(&MAX_REPLICAS));
        assert!(!by.contains_key("westus"), "pools without a ring are not targets");
        assert!(t.iter().find(|r| r.region == "westeurope").unwrap().reason.contains("Prod may create up to 25"));
        let t = region_targets(&pools, "uksouth");
        assert_eq!(t.last().unwrap().region, "uksouth");
    }

    #[test]
    fn retention_never_deletes_what_runs_or_is_a_rollback_target() {
        let versions = vec![
            version("2026.1001.1", 0, &[]),
            version("2026.1016.1", 0, &[]),
            version("2026.1022.1", 3, &["Prod"]),
            version("2026.1105.1", 0, &[]),
            version("2026.1113.1", 0, &[]),
            version("2026.1120.1", 0, &[]),
            version("2026.1127.1", 4, &["Test"]),
        ];
        let lkg: HashSet<String> = ["2026.1016.1".to_string()].into();
        let p = retention(&versions, &lkg, &RetentionPolicy { keep_newest: 2, end_of_life_days: 180 });
        let deleted: Vec<&str> = p.delete.iter().map(|d| d.version.as_str()).collect();
        assert_eq!(deleted, vec!["2026.1113.1", "2026.1105.1", "2026.1001.1"]);
        assert!(p.keep.iter().any(|k| k.version == "2026.1022.1" && k.reason.contains("host")));
        assert!(p.keep.iter().any(|k| k.version == "2026.1016.1" && k.reason.contains("known-good")));
        assert_eq!(p.keep.len() + p.delete.len(), versions.len());
    }

    #[test]
    fn release_stages() {
        let now = t("2026-11-27T00:00:00Z");
        assert_eq!(release_stage(&version("1.0.0", 0, &[]), false, now), ReleaseStage::Captured);
        assert_eq!(release_stage(&version("1.0.0", 4, &["Test"]), false, now), ReleaseStage::InTest);
        assert_eq!(release_stage(&version("1.0.0", 4, &["Test", "Pilot"]), false, now), ReleaseStage::InPilot);
        assert_eq!(release_stage(&version("1.0.0", 4, &["Prod"]), true, now), ReleaseStage::InProd);
        assert_eq!(release_stage(&version("1.0.0", 0, &[]), true, now), ReleaseStage::Rejected);
        let mut old = version("1.0.0", 0, &[]);
        old.end_of_life = Some("2026-01-01T00:00:00Z".into());
        assert_eq!(release_stage(&old, false, now), ReleaseStage::Retired);
    }
}
