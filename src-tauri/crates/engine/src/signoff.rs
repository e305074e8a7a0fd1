//! Sign-off and promotion: a release leaves a ring only when the ring's rollouts completed, its gates passed since,
//! its bake time ran without a failing check, and enough people approved the evidence as it stands now.
//!
//! Approvals live on the image version in Azure, as tags, so every admin's and reviewer's app sees the same ones;
//! each binds the SHA-256 of the ring's evidence bundle it was given, so new evidence (a gate run, a rollback)
//! makes it stale.

use std::collections::BTreeMap;
use std::sync::Arc;

use ringmaster_azure::{inventory, ops};
use ringmaster_store::{GateRunRecord, PoolRow, RolloutRecord, VersionRow};
use serde::{Deserialize, Serialize};
use serde_json::json;
use specta::Type;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::build::{parse_time, sha256_hex};
use crate::gates::{GateKind, RingGates};
use crate::model::RolloutView;
use crate::release::when;
use crate::rings::{ring_display_name, version_row};
use crate::{Engine, EngineError};

/// Tag names: `ringmaster-signoff-<ring>-<approver object id>`; one per person per ring, the newest wins.
pub const SIGNOFF_TAG_PREFIX: &str = "ringmaster-signoff-";
/// Azure's limit on a tag value.
const TAG_VALUE_MAX: usize = 256;
pub const COMMENT_MAX: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub enum SignOffDecision {
    Approve,
    Reject,
}

/// One person's sign-off on a release in a ring, as read back from the image version's tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct Approval {
    pub ring: String,
    pub decision: SignOffDecision,
    pub approver_name: String,
    pub approver_object_id: String,
    pub approver_tenant_id: String,
    pub at: String,
    /// SHA-256 of the evidence bundle the approver was shown.
    pub evidence_sha256: String,
    /// As much of the comment as fits in the tag (the full text is in the audit log of the app that signed).
    pub comment: String,
    /// Bound to the evidence as it is now.
    pub current: bool,
}

/// What a ring's approvers sign: the bundle and its hash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct SignOffEvidence {
    pub version: String,
    pub ring: String,
    pub sha256: String,
    /// The canonical JSON the hash is taken over.
    pub bundle: String,
}

/// Whether a release may leave a ring, and exactly what is missing if not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct PromotionCheck {
    pub version: String,
    pub ring: String,
    pub ring_name: String,
    pub next_ring: Option<String>,
    pub next_ring_name: Option<String>,
    /// Pools of the next ring a promotion starts rollouts in.
    pub next_pools: Vec<String>,
    /// Every requirement is met (and there is a next ring to promote to).
    pub ready: bool,
    /// What stands in the way, one line each, in the order to fix them.
    pub missing: Vec<String>,
    /// What is met, one line each.
    pub met: Vec<String>,
    pub required_gates: Vec<GateKind>,
    pub approvals_required: u32,
    pub approver_group: Option<String>,
    pub approvals: Vec<Approval>,
    pub evidence_sha256: String,
    pub bake_hours: u32,
    /// When the bake time ends (or ended), once the ring completed.
    pub bake_ends_at: Option<String>,
    /// The ring completed the release at.
    pub completed_at: Option<String>,
    /// Each requirement at a glance: every pool of the ring runs it; every required gate passed since; the
    /// bake time ran; enough current approvals and no current rejection.
    pub rollout_done: bool,
    pub gates_passed: bool,
    pub baked: bool,
    pub approved: bool,
}

/// A ring's requirements judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Judgement {
    pub missing: Vec<String>,
    pub met: Vec<String>,
    pub completed_at: Option<String>,
    pub bake_ends_at: Option<String>,
    pub rollout_done: bool,
    pub gates_passed: bool,
    pub baked: bool,
    pub approved: bool,
}

// ---------------------------------------------------------------- tags

fn tag_name(ring: &str, object_id: &str) -> String {
    format!("{SIGNOFF_TAG_PREFIX}{ring}-{}", object_id.to_ascii_lowercase())
}

/// `v1|A|<sha256>|<tenant>|<unix seconds>|<name>|<comment>`, cut to fit Azure's 256 characters (the comment
/// gives way first, then the name).
pub fn encode_approval(a: &Approval) -> String {
    let at = OffsetDateTime::parse(&a.at, &Rfc3339).map(|t| t.unix_timestamp()).unwrap_or(0);
    let d = match a.decision {
        SignOffDecision::Approve => "A",
        SignOffDecision::Reject => "R",
    };
    let name: String = a.approver_name.replace('|', "/").chars().take(64).collect();
    let head = format!("v1|{d}|{}|{}|{at}|{name}|", a.evidence_sha256, a.approver_tenant_id);
    let room = TAG_VALUE_MAX.saturating_sub(head.chars().count());
    let comment: String = a.comment.chars().take(room).collect();
    format!("{head}{comment}")
}

/// Read an approval back from its tag; `None` for anything that is not one of ours.
pub fn decode_approval(name: &str, value: &str) -> Option<Approval> {
    let rest = name.strip_prefix(SIGNOFF_TAG_PREFIX)?;
    // The object id is a GUID (36 characters) at the end; the ring is what comes before it.
    if rest.len() < 38 || !rest.is_char_boundary(rest.len() - 37) {
        return None;
    }
    let (ring, oid) = rest.split_at(rest.len() - 37);
    let oid = oid.strip_prefix('-')?;
    let mut parts = value.splitn(7, '|');
    if parts.next()? != "v1" {
        return None;
    }
    let decision = match parts.next()? {
        "A" => SignOffDecision::Approve,
        "R" => SignOffDecision::Reject,
        _ => return None,
    };
    let sha = parts.next()?;
    if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let tenant = parts.next()?;
    let at = OffsetDateTime::from_unix_timestamp(parts.next()?.parse().ok()?).ok()?.format(&Rfc3339).ok()?;
    Some(Approval {
        ring: ring.to_string(),
        decision,
        approver_name: parts.next()?.to_string(),
        approver_object_id: oid.to_string(),
        approver_tenant_id: tenant.to_string(),
        at,
        evidence_sha256: sha.to_ascii_lowercase(),
        comment: parts.next().unwrap_or_default().to_string(),
        current: false,
    })
}

fn approvals_of(v: &VersionRow, ring: &str, evidence_sha256: &str) -> Vec<Approval> {
    let tags: BTreeMap<String, String> = serde_json::from_str(&v.tags_json).unwrap_or_default();
    let mut out: Vec<Approval> = tags
        .iter()
        .filter_map(|(k, v)| decode_approval(k, v))
        .filter(|a| a.ring == ring)
        .map(|mut a| {
            a.current = a.evidence_sha256 == evidence_sha256;
            a
        })
        .collect();
    out.sort_by(|a, b| b.at.cmp(&a.at));
    out
}

// ---------------------------------------------------------------- the rules

/// A ring's pools and what the release did there.
pub struct RingEvidence<'a> {
    pub version: &'a str,
    pub ring: &'a str,
    pub pools: Vec<&'a PoolRow>,
    /// Per pool: (hosts, hosts on the release).
    pub host_counts: Vec<(u32, u32)>,
    /// Every rollout and rollback of the ring's pools, newest first.
    pub rollouts: Vec<&'a RolloutRecord>,
    /// Finished gate runs of the release in the ring.
    pub gate_runs: Vec<&'a GateRunRecord>,
}

/// The canonical bundle approvers sign: the ring's rollouts of the release (and rollbacks since) and its finished
/// gate runs. Host states are left out: they change by the minute and would make every approval stale.
pub fn evidence_bundle(e: &RingEvidence) -> serde_json::Value {
    let first_rollout =
        e.rollouts.iter().filter(|r| r.kind == "rollout" && r.target_version == e.version).map(|r| &r.created_at).min();
    let mut rollouts: Vec<serde_json::Value> = e
        .rollouts
        .iter()
        .filter(|r| {
            (r.kind == "rollout" && r.target_version == e.version)
                || (matches!(r.kind.as_str(), "rollback" | "restore")
                    && first_rollout.is_some_and(|f| &r.created_at >= f))
        })
        .map(|r| {
            json!({"id": r.id, "pool": r.pool_name, "kind": r.kind, "target": r.target_version, "state": r.state,
                   "rolledBack": r.rolled_back, "finishedAt": r.finished_at})
        })
        .collect();
    rollouts.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    let mut gates: Vec<serde_json::Value> = e
        .gate_runs
        .iter()
        .map(|g| {
            json!({"id": g.id, "gate": g.gate, "verdict": g.verdict, "reasons": serde_json::from_str::<serde_json::Value>(&g.reasons).unwrap_or_default(),
                   "startedBy": g.started_by, "finishedAt": g.finished_at})
        })
        .collect();
    gates.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    json!({"format": "ringmaster-signoff-evidence/1", "version": e.version, "ring": e.ring, "rollouts": rollouts, "gateRuns": gates})
}

fn hours_minutes(d: time::Duration) -> String {
    let m = d.whole_minutes().max(1);
    match (m / 60, m % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

/// What a ring requires of the release, judged. Pure.
pub fn judge(e: &RingEvidence, gates: &RingGates, approvals: &[Approval], now: OffsetDateTime) -> Judgement {
    let ring_name = ring_display_name(e.ring);
    let mut missing = Vec::new();
    let mut met = Vec::new();

    // 1. Every pool of the ring completed the release.
    let mut completed_at: Option<String> = None;
    let mut all_done = !e.pools.is_empty();
    if e.pools.is_empty() {
        missing.push(format!("The {ring_name} ring has no host pools"));
    }
    for (p, (hosts, on_release)) in e.pools.iter().zip(&e.host_counts) {
        let newest = e.rollouts.iter().find(|r| {
            r.host_pool_id.eq_ignore_ascii_case(&p.id) && r.target_version == e.version && r.kind == "rollout"
        });
        match newest {
            Some(r) if r.rolled_back => {
                all_done = false;
                missing.push(format!("{}: the rollout of {} was rolled back", p.name, e.version));
            }
            Some(r) if r.state == "completed" => {
                if let Some(f) = &r.finished_at {
                    if completed_at.as_ref().is_none_or(|c| f > c) {
                        completed_at = Some(f.clone());
                    }
                }
            }
            Some(r) => {
                all_done = false;
                missing.push(format!("{}: the rollout of {} is {}", p.name, e.version, r.state));
            }
            None if *hosts > 0 && on_release == hosts => {}
            None => {
                all_done = false;
                missing.push(format!(
                    "{}: {} has not been rolled out ({on_release} of {hosts} hosts run it)",
                    p.name, e.version
                ));
            }
        }
    }
    if all_done {
        met.push(format!("Every {ring_name} pool runs {}", e.version));
    }

    // 2. Gates: the newest finished run of each required gate since the ring completed passed.
    let since = completed_at.clone().unwrap_or_default();
    let missing_before_gates = missing.len();
    let after: Vec<&&GateRunRecord> =
        e.gate_runs.iter().filter(|g| g.finished_at.as_deref().is_some_and(|f| f >= since.as_str())).collect();
    for kind in gates.kinds() {
        let newest = after.iter().filter(|g| g.gate == kind.as_str()).max_by(|a, b| a.finished_at.cmp(&b.finished_at));
        match newest {
            Some(g) if g.verdict.as_deref() == Some("pass") => met.push(format!("{} passed", kind.label())),
            Some(g) => {
                let reasons: Vec<String> = serde_json::from_str(&g.reasons).unwrap_or_default();
                missing.push(format!(
                    "{}: {}{}",
                    kind.label(),
                    g.verdict.as_deref().unwrap_or("running").to_uppercase(),
                    reasons.first().map(|r| format!(" ({r})")).unwrap_or_default()
                ))
            }
            None => missing.push(format!(
                "{} has not run{}",
                kind.label(),
                if completed_at.is_some() { " since the ring completed" } else { "" }
            )),
        }
    }

    let gates_passed = missing.len() == missing_before_gates;

    // 3. Bake: N hours since the ring completed, restarted by any failing check.
    let missing_before_bake = missing.len();
    let mut bake_ends_at = None;
    if gates.bake_hours > 0 {
        let last_failure =
            after.iter().filter(|g| g.verdict.as_deref() == Some("fail")).filter_map(|g| g.finished_at.clone()).max();
        let start = match (&completed_at, &last_failure) {
            (Some(c), Some(f)) if f > c => Some(f.clone()),
            (Some(c), _) => Some(c.clone()),
            _ => None,
        };
        match start.as_deref().and_then(parse_time) {
            Some(s) => {
                let ends = s + time::Duration::hours(gates.bake_hours as i64);
                bake_ends_at = ends.format(&Rfc3339).ok();
                if now >= ends {
                    met.push(format!("Baked {} h without a failing check", gates.bake_hours));
                } else {
                    let restarted = last_failure.as_ref().is_some_and(|f| Some(f) == start.as_ref());
                    missing.push(format!(
                        "Bake time: {} left (until {}){}",
                        hours_minutes(ends - now),
                        when(bake_ends_at.as_deref().unwrap_or_default()),
                        if restarted { "; restarted by a failing check" } else { "" }
                    ));
                }
            }
            None => missing.push(format!("Bake time ({} h) starts when the ring completes", gates.bake_hours)),
        }
    }

    let baked = missing.len() == missing_before_bake;

    // 4. Approvals: enough current ones, and no current rejection.
    let missing_before_approvals = missing.len();
    for a in approvals.iter().filter(|a| a.current && a.decision == SignOffDecision::Reject) {
        missing.push(format!(
            "Rejected by {}{}",
            a.approver_name,
            if a.comment.is_empty() { String::new() } else { format!(": \"{}\"", a.comment) }
        ));
    }
    let current = approvals.iter().filter(|a| a.current && a.decision == SignOffDecision::Approve).count() as u32;
    if gates.approvals_required > 0 {
        if current >= gates.approvals_required {
            met.push(format!("{current} of {} approval(s)", gates.approvals_required));
        } else {
            missing.push(format!(
                "Approvals: {current} of {} current{}",
                gates.approvals_required,
                gates.approver_group.as_ref().map(|g| format!(" (approvers from group {g})")).unwrap_or_default()
            ));
        }
    }
    let approved = missing.len() == missing_before_approvals;
    for a in approvals.iter().filter(|a| !a.current) {
        missing.push(format!(
            "{}'s {} ({}) no longer counts: the evidence changed after it",
            a.approver_name,
            if a.decision == SignOffDecision::Approve { "approval" } else { "rejection" },
            when(&a.at)
        ));
    }
    Judgement { missing, met, completed_at, bake_ends_at, rollout_done: all_done, gates_passed, baked, approved }
}

// ---------------------------------------------------------------- the engine

impl Engine {
    /// The rings that have pools, in pipeline order.
    pub(crate) fn pipeline_rings(&self) -> Result<Vec<String>, EngineError> {
        let mut rings: Vec<String> =
            self.store.pools()?.into_iter().map(|p| p.ring).filter(|r| !r.is_empty()).collect();
        rings.sort_by_key(|r| crate::rings::ring_rank(r));
        rings.dedup();
        Ok(rings)
    }

    /// A version as the cache has it, by name.
    pub(crate) fn cached_version(&self, version: &str) -> Result<VersionRow, EngineError> {
        self.store
            .versions()?
            .into_iter()
            .find(|v| v.name == version)
            .ok_or_else(|| EngineError::InvalidInput(format!("no image version {version} in the inventory")))
    }

    /// The evidence a ring's approvers sign for a release.
    pub fn signoff_evidence(&self, version: &str, ring: &str) -> Result<SignOffEvidence, EngineError> {
        let ring = ring.to_ascii_lowercase();
        self.cached_version(version)?;
        let pools = self.store.pools()?;
        let rollouts = self.store.rollouts()?;
        let gate_runs = self.store.gate_runs(version)?;
        let e = self.ring_evidence(version, &ring, &pools, &rollouts, &gate_runs)?;
        let bundle = evidence_bundle(&e).to_string();
        Ok(SignOffEvidence { version: version.into(), ring, sha256: sha256_hex(bundle.as_bytes()), bundle })
    }

    fn ring_evidence<'a>(
        &self,
        version: &'a str,
        ring: &'a str,
        pools: &'a [PoolRow],
        rollouts: &'a [RolloutRecord],
        gate_runs: &'a [GateRunRecord],
    ) -> Result<RingEvidence<'a>, EngineError> {
        let ring_pools: Vec<&PoolRow> = pools.iter().filter(|p| p.ring == ring).collect();
        let mut host_counts = Vec::new();
        for p in &ring_pools {
            let listing = self.store.hosts_of_pool(&p.id)?;
            let on = listing.iter().filter(|l| l.host.image_version == version).count() as u32;
            host_counts.push((listing.len() as u32, on));
        }
        Ok(RingEvidence {
            version,
            ring,
            rollouts: rollouts
                .iter()
                .filter(|r| ring_pools.iter().any(|p| p.id.eq_ignore_ascii_case(&r.host_pool_id)))
                .collect(),
            pools: ring_pools,
            host_counts,
            gate_runs: gate_runs.iter().filter(|g| g.ring == ring && g.state == "finished").collect(),
        })
    }

    /// May the release leave the ring? What is missing if not.
    pub fn promotion_check(&self, version: &str, ring: &str) -> Result<PromotionCheck, EngineError> {
        let ring = ring.trim().to_ascii_lowercase();
        let v = self.cached_version(version)?;
        let pools = self.store.pools()?;
        let rollouts = self.store.rollouts()?;
        let gate_runs = self.store.gate_runs(version)?;
        let e = self.ring_evidence(version, &ring, &pools, &rollouts, &gate_runs)?;
        let sha = sha256_hex(evidence_bundle(&e).to_string().as_bytes());
        let gates = self.ring_gates(&ring)?;
        let approvals = approvals_of(&v, &ring, &sha);
        let j = judge(&e, &gates, &approvals, OffsetDateTime::now_utc());
        let mut missing = j.missing;
        let rings = self.pipeline_rings()?;
        let next_ring = rings.iter().position(|r| *r == ring).and_then(|i| rings.get(i + 1)).cloned();
        if next_ring.is_none() {
            missing.push(format!("{} is the last ring: there is nothing to promote to", ring_display_name(&ring)));
        }
        let next_pools = next_ring
            .as_ref()
            .map(|n| pools.iter().filter(|p| &p.ring == n).map(|p| p.name.clone()).collect())
            .unwrap_or_default();
        Ok(PromotionCheck {
            version: version.into(),
            ring_name: ring_display_name(&ring),
            next_ring_name: next_ring.as_deref().map(ring_display_name),
            next_ring,
            next_pools,
            ready: missing.is_empty(),
            missing,
            met: j.met,
            required_gates: gates.kinds(),
            approvals_required: gates.approvals_required,
            approver_group: gates.approver_group.clone(),
            approvals,
            evidence_sha256: sha,
            bake_hours: gates.bake_hours,
            bake_ends_at: j.bake_ends_at,
            completed_at: j.completed_at,
            rollout_done: j.rollout_done,
            gates_passed: j.gates_passed,
            baked: j.baked,
            approved: j.approved,
            ring,
        })
    }

    /// Sign-off in the ring before the last (Pilot/UAT), for checklist item 6; `None` without such a ring.
    pub(crate) fn signoff_state(&self, version: &str) -> Result<Option<crate::release::SignOffState>, EngineError> {
        let rings = self.pipeline_rings()?;
        if rings.len() < 3 {
            return Ok(None);
        }
        let check = self.promotion_check(version, &rings[rings.len() - 2])?;
        let current = |d: SignOffDecision| check.approvals.iter().filter(move |a| a.current && a.decision == d);
        Ok(Some(crate::release::SignOffState {
            ring_name: check.ring_name.clone(),
            required: check.approvals_required,
            approvals: current(SignOffDecision::Approve)
                .map(|a| (a.approver_name.clone(), a.at.clone(), a.evidence_sha256.clone()))
                .collect(),
            rejections: current(SignOffDecision::Reject)
                .map(|a| (a.approver_name.clone(), a.comment.clone()))
                .collect(),
            stale: check.approvals.iter().filter(|a| !a.current).map(|a| a.approver_name.clone()).collect(),
        }))
    }

    /// One round of bake checks: for every release baking in a ring (completed there, bake time set and not over),
    /// run the ring's health gate as the app unless a gate is already running there. A failure restarts the bake and,
    /// where the ring says so, rolls it back. Returns the (version, ring) pairs checked.
    pub fn bake_tick(self: &Arc<Self>) -> Result<Vec<(String, String)>, EngineError> {
        let mut checked = Vec::new();
        let now = OffsetDateTime::now_utc();
        let running: Vec<(String, String)> = self
            .store
            .gate_runs_any()?
            .into_iter()
            .filter(|g| g.state == "running")
            .map(|g| (g.version, g.ring))
            .collect();
        let versions: std::collections::BTreeSet<String> = self
            .store
            .rollouts()?
            .into_iter()
            .filter(|r| r.kind == "rollout" && r.state == "completed" && !r.rolled_back)
            .map(|r| r.target_version)
            .collect();
        for ring in self.pipeline_rings()? {
            let gates = self.ring_gates(&ring)?;
            if gates.bake_hours == 0 {
                continue;
            }
            for version in &versions {
                let check = self.promotion_check(version, &ring)?;
                let baking = check.rollout_done
                    && check.bake_ends_at.as_deref().and_then(parse_time).is_some_and(|end| now < end);
                if !baking || running.contains(&(version.clone(), ring.clone())) {
                    continue;
                }
                let kinds = [GateKind::Health];
                self.start_gate_runs(version, &gates, &kinds, crate::audit::AUTOMATIC)?;
                checked.push((version.clone(), ring.clone()));
            }
        }
        Ok(checked)
    }

    /// What the app does on its own while it runs: every `every`, start the rollouts whose maintenance window has
    /// opened; every `bake_every`, run [`Engine::bake_tick`].
    pub fn start_monitor(self: &Arc<Self>, every: std::time::Duration, bake_every: std::time::Duration) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last_bake = std::time::Instant::now();
            loop {
                tick.tick().await;
                if this.connection().is_err() {
                    continue;
                }
                if let Err(e) = this.schedule_tick().await {
                    tracing::warn!(target: "rollout", "scheduled rollouts could not be checked: {e}");
                }
                if let Err(e) = this.standby_tick() {
                    tracing::warn!(target: "rollout", "standby hosts could not be checked: {e}");
                }
                if last_bake.elapsed() >= bake_every {
                    last_bake = std::time::Instant::now();
                    if let Err(e) = this.bake_tick() {
                        tracing::warn!(target: "gates", "bake checks could not run: {e}");
                    }
                }
            }
        });
    }

    /// Every ring's promotion check for a release, in pipeline order.
    pub fn promotion_checks(&self, version: &str) -> Result<Vec<PromotionCheck>, EngineError> {
        self.pipeline_rings()?.iter().map(|r| self.promotion_check(version, r)).collect()
    }

    /// Approve or reject a release in a ring, bound to the evidence the approver saw (`evidence_sha256`). The
    /// approver is whoever the app's token names; an app-only identity cannot sign off. Written to the image
    /// version's tags in Azure and to the audit log.
    pub async fn sign_off(
        &self,
        version: &str,
        ring: &str,
        decision: SignOffDecision,
        comment: &str,
        evidence_sha256: &str,
    ) -> Result<PromotionCheck, EngineError> {
        let ring = ring.trim().to_ascii_lowercase();
        let comment = comment.trim();
        if comment.chars().count() > COMMENT_MAX {
            return Err(EngineError::InvalidInput(format!(
                "the comment is {} characters; keep it to {COMMENT_MAX}",
                comment.chars().count()
            )));
        }
        if decision == SignOffDecision::Reject && comment.is_empty() {
            return Err(EngineError::InvalidInput("say why you reject it: a rejection needs a comment".into()));
        }
        let check = self.promotion_check(version, &ring)?;
        if check.evidence_sha256 != evidence_sha256.to_ascii_lowercase() {
            return Err(EngineError::InvalidInput(
                "the evidence changed while you were reviewing it (a gate ran or a rollout moved); review it again and sign off on what is there now"
                    .into(),
            ));
        }
        let client = self.connection()?.client.clone();
        let who = client.identity().await.ok_or_else(|| {
            EngineError::InvalidInput("your identity could not be read from your sign-in; sign in again".into())
        })?;
        if who.is_app {
            return Err(EngineError::InvalidInput(format!(
                "{} is an application, not a person: sign-off needs a person signed in",
                who.name
            )));
        }
        let gates = self.ring_gates(&ring)?;
        if let Some(group) = &gates.approver_group {
            if who.groups_overage {
                return Err(EngineError::InvalidInput(format!(
                    "your sign-in does not list your groups (you are in too many for a token), so membership of {group} cannot be checked; ask an admin to clear the approver group or use a group-filtered token"
                )));
            }
            if !who.groups.iter().any(|g| g.eq_ignore_ascii_case(group)) {
                return Err(EngineError::InvalidInput(format!(
                    "the {} ring takes approvals only from members of group {group}, and {} is not one",
                    ring_display_name(&ring),
                    who.name
                )));
            }
        }
        let v = self.cached_version(version)?;
        let approval = Approval {
            ring: ring.clone(),
            decision,
            approver_name: who.name.clone(),
            approver_object_id: who.object_id.clone(),
            approver_tenant_id: who.tenant_id.clone(),
            at: crate::now_rfc3339(),
            evidence_sha256: check.evidence_sha256.clone(),
            comment: comment.to_string(),
            current: true,
        };
        self.audit(
            match decision {
                SignOffDecision::Approve => "signoff.approve",
                SignOffDecision::Reject => "signoff.reject",
            },
            version,
            json!({"ring": ring, "comment": comment, "evidenceSha256": approval.evidence_sha256,
                   "approver": {"objectId": who.object_id, "name": who.name, "tenantId": who.tenant_id}}),
        )?;
        let tags = BTreeMap::from([(tag_name(&ring, &who.object_id), encode_approval(&approval))]);
        ops::merge_tags(&client, &v.id, &tags).await?;
        // Read the version back so the cache holds the tags as Azure has them now (other people's too).
        if let Some(fresh) = ops::get_image_version(&client, &v.id).await? {
            self.store.upsert_version(&version_row(&inventory::image_version_from_json(fresh)?))?;
        }
        self.promotion_check(version, &ring)
    }

    /// Promote a release out of a ring: start its rollout in every pool of the next ring with the default policy.
    /// Refused, with exactly what is missing, unless the ring's promotion check is ready.
    pub async fn promote(self: &Arc<Self>, version: &str, ring: &str) -> Result<Vec<RolloutView>, EngineError> {
        let check = self.promotion_check(version, ring)?;
        if !check.ready {
            return Err(EngineError::InvalidInput(format!(
                "{version} cannot leave the {} ring yet: {}",
                check.ring_name,
                check.missing.join("; ")
            )));
        }
        let next = check.next_ring.clone().unwrap_or_default();
        // Plan every pool first: a promotion starts everywhere or nowhere.
        let policy = self.ring_policy(&next)?;
        let plan = self.plan_ring_rollout(&next, version, &policy)?;
        // A next ring already on the release is promoted with nothing to start.
        let already_there = plan.pools.is_empty() && !plan.skipped.is_empty();
        if !plan.blockers.is_empty() && !already_there {
            return Err(EngineError::InvalidInput(format!(
                "{version} cannot enter the {} ring yet: {}",
                check.next_ring_name.unwrap_or_default(),
                plan.blockers.join("; ")
            )));
        }
        self.audit(
            "release.promote",
            version,
            json!({"from": check.ring, "to": next, "evidenceSha256": check.evidence_sha256, "pools": check.next_pools}),
        )?;
        let mut started = Vec::new();
        for p in &plan.pools {
            started.push(self.start_rollout(&p.host_pool_id, version, &policy).await?);
        }
        Ok(started)
    }

    /// Why a rollout of `version` may not enter the pool's ring yet: the ring before it has not let it go. A
    /// release already published to Prod (visible to `latest`) has been through the pipeline and may go anywhere.
    pub(crate) fn promotion_blocker(
        &self,
        pool: &PoolRow,
        version: &VersionRow,
    ) -> Result<Option<String>, EngineError> {
        if !version.exclude_from_latest || !self.promotion_enforced()? {
            return Ok(None);
        }
        let rings = self.pipeline_rings()?;
        let Some(i) = rings.iter().position(|r| *r == pool.ring) else { return Ok(None) };
        let Some(previous) = i.checked_sub(1).and_then(|p| rings.get(p)) else { return Ok(None) };
        let check = self.promotion_check(&version.name, previous)?;
        Ok((!check.ready).then(|| {
            format!(
                "{} has not been promoted out of the {} ring: {}",
                version.name,
                check.ring_name,
                check.missing.join("; ")
            )
        }))
    }

    pub fn promotion_enforced(&self) -> Result<bool, EngineError> {
        Ok(self.store.setting("promotion.enforced")?.as_deref() != Some("false"))
    }

    /// Whether a rollout of an unreleased version must first be promoted out of the ring before (default yes).
    pub fn set_promotion_enforced(&self, enforced: bool) -> Result<(), EngineError> {
        self.audit("promotion.enforcement", "pipeline", json!({"enforced": enforced}))?;
        self.store.set_setting("promotion.enforced", if enforced { "true" } else { "false" })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(comment: &str) -> Approval {
        Approval {
            ring: "test".into(),
            decision: SignOffDecision::Approve,
            approver_name: "Alex | Wilber".into(),
            approver_object_id: "3f2a9c1e-7b4d-4e8a-9c6f-1d2e3f4a5b6c".into(),
            approver_tenant_id: "72f988bf-86f1-41af-91ab-2d7cd011db47".into(),
            at: "2026-11-27T10:00:00Z".into(),
            evidence_sha256: "ab".repeat(32),
            comment: comment.into(),
            current: false,
        }
    }

    #[test]
    fn an_approval_round_trips_through_its_tag_within_azures_limit() {
        let a = approval("Teams and Outlook fine | checked");
        let value = encode_approval(&a);
        assert!(value.chars().count() <= 256);
        let back = decode_approval(&tag_name("test", &a.approver_object_id), &value).unwrap();
        assert_eq!(back.approver_name, "Alex / Wilber", "a | in a name cannot break the format");
        assert_eq!(back.comment, a.comment, "the comment keeps its own |");
        assert_eq!((back.ring.as_str(), back.evidence_sha256.as_str()), ("test", a.evidence_sha256.as_str()));
        assert_eq!(back.at, "2026-11-27T10:00:00Z");

        let long = approval(&"x".repeat(500));
        let value = encode_approval(&long);
        assert_eq!(value.chars().count(), 256, "the comment is cut to fit");
        assert!(decode_approval(&tag_name("test", &long.approver_object_id), &value).is_some());
    }

    #[test]
    fn tags_that_are_not_approvals_are_ignored() {
        let name = tag_name("pilot", "3f2a9c1e-7b4d-4e8a-9c6f-1d2e3f4a5b6c");
        assert!(decode_approval("ringmaster-capture", "x").is_none());
        assert!(decode_approval(&name, "v2|A|...").is_none());
        assert!(decode_approval(&name, "v1|A|nothex|t|0|n|c").is_none());
        assert!(decode_approval(&name, &format!("v1|X|{}|t|0|n|", "a".repeat(64))).is_none());
        assert!(decode_approval("ringmaster-signoff-x", "v1").is_none());
        let ok = decode_approval(&name, &format!("v1|R|{}|t|0|n|", "a".repeat(64))).unwrap();
        assert_eq!((ok.ring.as_str(), ok.decision), ("pilot", SignOffDecision::Reject));
    }
}
