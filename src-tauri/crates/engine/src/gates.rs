//! Gates: what must say yes before a release leaves a ring. The health gate reads Azure (through a fresh
//! inventory) and judges the ring's hosts; the Login Enterprise gate runs an application test against the ring's
//! hosts on the appliance. Every run is kept as evidence and feeds checklist item 5.

use std::sync::Arc;
use std::time::Duration;

use ringmaster_loginenterprise::{run_gate, CancellationToken, ConnectionResourcesUpdate, GateRequest, LeClient};
use ringmaster_store::GateRunRecord;
use serde::{Deserialize, Serialize};
use specta::Type;

use crate::audit::record_automatic;
use crate::release_model::BuildUpdate;
use crate::rings::ring_display_name;
use crate::script_gate::ScriptGateConfig;
use crate::{now_rfc3339, Engine, EngineError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub enum GateKind {
    /// Every host of the ring runs the release, is `Available` and passes its session host health checks.
    Health,
    /// A Login Enterprise application test against the ring's hosts.
    LoginEnterprise,
    /// Validation scripts by run command on a sample of the ring's hosts.
    Script,
}

impl GateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            GateKind::Health => "health",
            GateKind::LoginEnterprise => "loginEnterprise",
            GateKind::Script => "script",
        }
    }

    pub fn parse(s: &str) -> Option<GateKind> {
        match s {
            "health" => Some(GateKind::Health),
            "loginEnterprise" => Some(GateKind::LoginEnterprise),
            "script" => Some(GateKind::Script),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            GateKind::Health => "Health gate",
            GateKind::LoginEnterprise => "Login Enterprise gate",
            GateKind::Script => "Script gate",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub enum GateVerdict {
    Pass,
    Fail,
    Inconclusive,
}

impl GateVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            GateVerdict::Pass => "pass",
            GateVerdict::Fail => "fail",
            GateVerdict::Inconclusive => "inconclusive",
        }
    }

    pub fn parse(s: &str) -> Option<GateVerdict> {
        match s {
            "pass" => Some(GateVerdict::Pass),
            "fail" => Some(GateVerdict::Fail),
            "inconclusive" => Some(GateVerdict::Inconclusive),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct LeGateConfig {
    /// The application test's name on the appliance (matched exactly).
    pub test_name: String,
    /// Apps that must have run successfully; empty = every app the test runs.
    pub required_apps: Vec<String>,
    /// Give up (INCONCLUSIVE) after this long: 1 to 240 minutes.
    pub timeout_minutes: u32,
}

/// The gates a ring requires before a release leaves it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct RingGates {
    /// The ring's tag value (`test`).
    pub ring: String,
    pub health: bool,
    pub login_enterprise: Option<LeGateConfig>,
    /// Validation scripts on the ring's hosts.
    #[serde(default)]
    pub script: Option<ScriptGateConfig>,
    /// Current approvals a release needs before it leaves the ring (0 = none).
    #[serde(default)]
    pub approvals_required: u32,
    /// Approvers must be members of this Entra group (object id), when set.
    #[serde(default)]
    pub approver_group: Option<String>,
    /// Hours the release must run in the ring without a failing check before promotion opens (0 = none).
    #[serde(default)]
    pub bake_hours: u32,
    /// Roll the ring back to its last known-good release, without waiting for a person, when a gate fails.
    #[serde(default)]
    pub auto_rollback: bool,
    /// How releases are rolled out in this ring (ring rollouts, promotion into it, its rollbacks, and the start
    /// dialog's defaults for its pools); none = the app's defaults.
    #[serde(default)]
    pub rollout: Option<crate::model::RolloutPolicy>,
}

impl RingGates {
    pub fn kinds(&self) -> Vec<GateKind> {
        let mut k = Vec::new();
        if self.health {
            k.push(GateKind::Health);
        }
        if self.login_enterprise.is_some() {
            k.push(GateKind::LoginEnterprise);
        }
        if self.script.is_some() {
            k.push(GateKind::Script);
        }
        k
    }
}

/// One gate's run on a release in a ring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Type)]
#[serde(rename_all = "camelCase")]
pub struct GateRun {
    pub id: String,
    pub version: String,
    pub ring: String,
    pub gate: GateKind,
    pub running: bool,
    pub verdict: Option<GateVerdict>,
    /// Why, most important first.
    pub reasons: Vec<String>,
    pub started_by: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// The raw evidence (JSON text): host states, or the appliance's test, run, events and overview.
    pub evidence: String,
}

pub(crate) fn gate_run_view(r: GateRunRecord) -> Option<GateRun> {
    Some(GateRun {
        gate: GateKind::parse(&r.gate)?,
        running: r.state == "running",
        verdict: r.verdict.as_deref().and_then(GateVerdict::parse),
        reasons: serde_json::from_str(&r.reasons).unwrap_or_default(),
        id: r.id,
        version: r.version,
        ring: r.ring,
        started_by: r.started_by,
        started_at: r.started_at,
        finished_at: r.finished_at,
        evidence: r.evidence,
    })
}

/// How to reach the Login Enterprise appliance.
#[derive(Clone)]
pub struct LoginEnterpriseConnection {
    pub base_url: String,
    /// The public API access token. Never logged, never stored by the engine.
    pub token: String,
    /// Extra CA to trust (the simulated appliance's).
    pub ca_pem: Option<Vec<u8>>,
    /// The test a ring's LE gate uses when none is configured (the demo's "AVD smoke").
    pub default_test: Option<String>,
}

impl std::fmt::Debug for LoginEnterpriseConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LoginEnterpriseConnection({}, token <redacted>)", self.base_url)
    }
}

/// Judge the ring's hosts for the health gate: (verdict, reasons, evidence).
pub fn health_verdict(version: &str, hosts: &[(String, String, String, Vec<String>)]) -> (GateVerdict, Vec<String>) {
    if hosts.is_empty() {
        return (GateVerdict::Inconclusive, vec!["The ring has no session hosts to check".into()]);
    }
    let mut problems = Vec::new();
    for (name, state, image, failed_checks) in hosts {
        if image != version {
            problems.push(format!("{name} runs {image}, not {version}"));
        } else if state != "available" {
            problems.push(format!("{name} is {state}"));
        } else if !failed_checks.is_empty() {
            problems.push(format!("{name} fails {}", failed_checks.join(", ")));
        }
    }
    if problems.is_empty() {
        (
            GateVerdict::Pass,
            vec![format!("All {} host(s) run {version}, are Available and pass their health checks", hosts.len())],
        )
    } else {
        let n = problems.len();
        let mut reasons: Vec<String> = problems.into_iter().take(10).collect();
        if n > 10 {
            reasons.push(format!("… and {} more", n - 10));
        }
        reasons.insert(0, format!("{n} of {} host(s) not healthy on {version}", hosts.len()));
        (GateVerdict::Fail, reasons)
    }
}

impl Engine {
    fn gates_key(ring: &str) -> String {
        format!("gates.{}", ring.to_ascii_lowercase())
    }

    /// The gates a ring requires: as configured, else the health gate (and, where an appliance is connected and
    /// offers a default test, its Login Enterprise gate on the Test ring).
    pub fn ring_gates(&self, ring: &str) -> Result<RingGates, EngineError> {
        let ring = ring.to_ascii_lowercase();
        if let Some(saved) = self.store.setting(&Self::gates_key(&ring))? {
            if let Ok(g) = serde_json::from_str::<RingGates>(&saved) {
                return Ok(g);
            }
        }
        let le = self.le_connection();
        let login_enterprise = match (ring.as_str(), le.and_then(|l| l.default_test)) {
            ("test", Some(test_name)) => {
                Some(LeGateConfig { test_name, required_apps: Vec::new(), timeout_minutes: 60 })
            }
            _ => None,
        };
        // One approval before a release leaves any ring but the last.
        let last = self.pipeline_rings()?.last().cloned();
        let approvals_required = if last.as_deref() == Some(ring.as_str()) { 0 } else { 1 };
        Ok(RingGates {
            ring,
            health: true,
            login_enterprise,
            script: None,
            approvals_required,
            approver_group: None,
            bake_hours: 0,
            auto_rollback: false,
            rollout: None,
        })
    }

    /// The ring's rollout policy (the app's defaults unless the ring sets one).
    pub fn ring_policy(&self, ring: &str) -> Result<crate::model::RolloutPolicy, EngineError> {
        Ok(self.ring_gates(ring)?.rollout.unwrap_or_default())
    }

    /// The policy a rollout starts from: its ring's (given, or the pool's), else the app's defaults.
    pub fn policy_for(
        &self,
        host_pool_id: Option<&str>,
        ring: Option<&str>,
    ) -> Result<crate::model::RolloutPolicy, EngineError> {
        let ring = match (ring.filter(|r| !r.trim().is_empty()), host_pool_id) {
            (Some(r), _) => Some(r.to_string()),
            (None, Some(pool)) => {
                self.store.pools()?.into_iter().find(|p| p.id.eq_ignore_ascii_case(pool)).map(|p| p.ring)
            }
            (None, None) => None,
        };
        match ring.filter(|r| !r.is_empty()) {
            Some(r) => self.ring_policy(&r),
            None => Ok(crate::model::RolloutPolicy::default()),
        }
    }

    pub fn set_ring_gates(&self, g: &RingGates) -> Result<RingGates, EngineError> {
        let mut g = g.clone();
        g.ring = g.ring.trim().to_ascii_lowercase();
        if g.ring.is_empty() {
            return Err(EngineError::InvalidInput("which ring?".into()));
        }
        if let Some(le) = &g.login_enterprise {
            if le.test_name.trim().is_empty() {
                return Err(EngineError::InvalidInput(
                    "the Login Enterprise gate needs an application test name".into(),
                ));
            }
            if !(1..=240).contains(&le.timeout_minutes) {
                return Err(EngineError::InvalidInput("the Login Enterprise timeout is 1 to 240 minutes".into()));
            }
        }
        if let Some(script) = &g.script {
            crate::script_gate::validate_script_gate(script).map_err(EngineError::InvalidInput)?;
            if !self.collections()?.iter().any(|c| c.id == script.collection_id) {
                return Err(EngineError::InvalidInput(
                    "the script gate's collection does not exist; pick one of the Build view's collections".into(),
                ));
            }
        }
        if let Some(policy) = &g.rollout {
            // Pool sizes differ within a ring: the cap is checked against each pool when a rollout is planned.
            let problems = crate::rollout::validate_policy(policy, 0);
            if !problems.is_empty() {
                let said: Vec<String> = problems.into_iter().map(|p| p.message).collect();
                return Err(EngineError::InvalidInput(format!("the rollout policy: {}", said.join(" "))));
            }
        }
        if g.approvals_required > 10 {
            return Err(EngineError::InvalidInput("a ring can require at most 10 approvals".into()));
        }
        if g.bake_hours > 720 {
            return Err(EngineError::InvalidInput("the bake time is 0 to 720 hours (30 days)".into()));
        }
        g.approver_group = g.approver_group.map(|x| x.trim().to_ascii_lowercase()).filter(|x| !x.is_empty());
        if let Some(group) = &g.approver_group {
            if crate::pipeline::check_guid(group).is_err() {
                return Err(EngineError::InvalidInput(format!(
                    "the approver group '{group}' is not an Entra group object id (a GUID such as 5b1f0c2e-9a7d-4c3b-8e6f-2a1d0c9b8e7f)"
                )));
            }
        }
        self.audit("gates.configure", &ring_display_name(&g.ring), serde_json::to_value(&g).unwrap_or_default())?;
        self.store.set_setting(&Self::gates_key(&g.ring), &serde_json::to_string(&g).unwrap_or_default())?;
        Ok(g)
    }

    pub fn gate_runs(&self, version: &str) -> Result<Vec<GateRun>, EngineError> {
        Ok(self.store.gate_runs(version)?.into_iter().filter_map(gate_run_view).collect())
    }

    /// Run the ring's gates on a release in the background; returns the runs as started. Progress and results
    /// arrive as build updates (`kind: "gate"`, id = the version).
    pub fn run_gates(self: &Arc<Self>, version: &str, ring: &str) -> Result<Vec<GateRun>, EngineError> {
        let gates = self.ring_gates(ring)?;
        if gates.kinds().is_empty() {
            return Err(EngineError::InvalidInput(format!(
                "the {} ring has no gates configured",
                ring_display_name(ring)
            )));
        }
        if self.store.gate_runs(version)?.iter().any(|g| g.state == "running" && g.ring == gates.ring) {
            return Err(EngineError::InvalidInput("the gates are already running on this release".into()));
        }
        self.cached_version(version)?;
        self.audit("gate.start", version, serde_json::json!({"ring": gates.ring, "gates": gates.kinds()}))?;
        let records = self.start_gate_runs(version, &gates, &gates.kinds(), &self.principal())?;
        Ok(records.into_iter().filter_map(gate_run_view).collect())
    }

    /// Record the runs as started and judge them in the background, one after the other. A failing gate rolls the
    /// ring back when the ring says so.
    pub(crate) fn start_gate_runs(
        self: &Arc<Self>,
        version: &str,
        gates: &RingGates,
        kinds: &[GateKind],
        started_by: &str,
    ) -> Result<Vec<GateRunRecord>, EngineError> {
        let mut started = Vec::new();
        for kind in kinds {
            let record = GateRunRecord {
                id: crate::rollout::uuid_like(),
                version: version.to_string(),
                ring: gates.ring.clone(),
                gate: kind.as_str().into(),
                state: "running".into(),
                verdict: None,
                reasons: "[]".into(),
                evidence: "{}".into(),
                started_by: started_by.to_string(),
                started_at: now_rfc3339(),
                finished_at: None,
            };
            self.store.save_gate_run(&record)?;
            started.push(record);
        }
        self.announce_gate(version);
        let this = self.clone();
        let version = version.to_string();
        let gates = gates.clone();
        let runs = started.clone();
        tokio::spawn(async move {
            for mut record in runs {
                let kind = GateKind::parse(&record.gate).unwrap_or(GateKind::Health);
                let (verdict, reasons, evidence) = match kind {
                    GateKind::Health => this.health_gate(&version, &gates.ring).await,
                    GateKind::LoginEnterprise => this.le_gate(&version, &gates).await,
                    GateKind::Script => match &gates.script {
                        Some(config) => this.script_gate(&version, &gates.ring, config, &record.id).await,
                        None => (
                            GateVerdict::Inconclusive,
                            vec!["No script gate is configured for this ring".into()],
                            serde_json::json!({}),
                        ),
                    },
                };
                record.state = "finished".into();
                record.verdict = Some(verdict.as_str().into());
                record.reasons = serde_json::to_string(&reasons).unwrap_or_default();
                record.evidence = evidence.to_string();
                record.finished_at = Some(now_rfc3339());
                if let Err(e) = this.store.save_gate_run(&record) {
                    tracing::error!(target: "gates", "could not record the gate result: {e}");
                }
                record_automatic(
                    &this.store,
                    "gate.finish",
                    &version,
                    serde_json::json!({"ring": gates.ring, "gate": record.gate, "verdict": verdict, "reasons": reasons}),
                );
                this.announce_gate(&version);
                if verdict == GateVerdict::Fail && gates.auto_rollback {
                    this.auto_rollback(&version, &gates.ring, kind, &reasons).await;
                }
            }
        });
        Ok(started)
    }

    /// A gate failed on a release the ring runs: roll every pool of the ring that has it back to its last
    /// known-good release now, record why, and tell people.
    async fn auto_rollback(&self, version: &str, ring: &str, gate: GateKind, reasons: &[String]) {
        let why = format!(
            "{} failed on {version} in the {} ring{}",
            gate.label(),
            ring_display_name(ring),
            reasons.first().map(|r| format!(": {r}")).unwrap_or_default()
        );
        let pools: Vec<_> = self.store.pools().unwrap_or_default().into_iter().filter(|p| p.ring == ring).collect();
        let rollouts = self.store.rollouts().unwrap_or_default();
        let mut rolled = Vec::new();
        let mut problems = Vec::new();
        for p in pools {
            let on_release =
                self.store.hosts_of_pool(&p.id).unwrap_or_default().iter().any(|l| l.host.image_version == version);
            let active = rollouts.iter().find(|r| {
                r.host_pool_id.eq_ignore_ascii_case(&p.id)
                    && r.kind == "rollout"
                    && r.target_version == version
                    && !r.rolled_back
            });
            if !on_release && active.is_none() {
                continue;
            }
            // A rollout still going would block the rollback: stop it first.
            if let Some(r) = active.filter(|r| r.state == "running") {
                if let Ok(runner) = self.runner() {
                    let _ = runner.abort(&r.id);
                }
            }
            match self.rollback_for(&p.id, &self.ring_policy(ring).unwrap_or_default(), Some(&why)).await {
                Ok(view) if view.state == crate::model::RolloutState::Running => rolled.push(p.name.clone()),
                Ok(view) => {
                    problems.push(format!("{}: {}", p.name, view.reason.unwrap_or_else(|| "not started".into())))
                }
                Err(e) => problems.push(format!("{}: {e}", p.name)),
            }
        }
        if rolled.is_empty() && problems.is_empty() {
            return;
        }
        let (level, title) = if problems.is_empty() {
            ("danger", format!("{} rolled back automatically", ring_display_name(ring)))
        } else {
            ("danger", format!("Automatic rollback of {} needs you", ring_display_name(ring)))
        };
        let mut message = why.clone();
        if !rolled.is_empty() {
            message.push_str(&format!(". Rolling back: {}", rolled.join(", ")));
        }
        if !problems.is_empty() {
            message.push_str(&format!(". Could not roll back: {}", problems.join("; ")));
        }
        record_automatic(
            &self.store,
            "gate.autoRollback",
            version,
            serde_json::json!({"ring": ring, "gate": gate, "reason": why, "pools": rolled, "problems": problems}),
        );
        self.notify(level, title, message, Some(version));
    }

    fn announce_gate(&self, version: &str) {
        let n = self.build_notifier.read().map(|n| n.clone());
        if let Ok(n) = n {
            n(&BuildUpdate { kind: "gate".into(), id: version.into() });
        }
    }

    async fn health_gate(&self, version: &str, ring: &str) -> (GateVerdict, Vec<String>, serde_json::Value) {
        // Azure is the truth: judge a fresh inventory, not the cache.
        if let Err(e) = self.refresh(&|_| {}).await {
            if !matches!(e, EngineError::AlreadyRunning) {
                return (
                    GateVerdict::Inconclusive,
                    vec![format!("Could not read the ring's hosts from Azure: {e}")],
                    serde_json::json!({}),
                );
            }
        }
        let mut hosts = Vec::new();
        let pools = self.store.pools().unwrap_or_default();
        for p in pools.iter().filter(|p| p.ring == ring) {
            let listing = self.store.hosts_of_pool(&p.id).unwrap_or_default();
            for l in listing {
                hosts.push((l.host.name, l.host.state, l.host.image_version, l.host.failed_checks));
            }
        }
        let (verdict, reasons) = health_verdict(version, &hosts);
        let evidence = serde_json::json!({"hosts": hosts.iter().map(|(n, s, i, f)| serde_json::json!({"name": n, "state": s, "image": i, "failedChecks": f})).collect::<Vec<_>>()});
        (verdict, reasons, evidence)
    }

    async fn le_gate(&self, version: &str, gates: &RingGates) -> (GateVerdict, Vec<String>, serde_json::Value) {
        let inconclusive = |why: String| (GateVerdict::Inconclusive, vec![why], serde_json::json!({}));
        let Some(config) = gates.login_enterprise.clone() else {
            return inconclusive("No Login Enterprise gate is configured for this ring".into());
        };
        let Some(le) = self.le_connection() else {
            return inconclusive("No Login Enterprise appliance is connected (set its URL and access token)".into());
        };
        let mut http = reqwest::Client::builder().timeout(Duration::from_secs(30));
        if let Some(pem) = &le.ca_pem {
            match reqwest::Certificate::from_pem(pem) {
                Ok(cert) => http = http.add_root_certificate(cert),
                Err(e) => return inconclusive(format!("The appliance's CA certificate is not valid: {e}")),
            }
        }
        let http = match http.build() {
            Ok(h) => h,
            Err(e) => return inconclusive(format!("Could not set up HTTPS to the appliance: {e}")),
        };
        let client = match LeClient::new(&le.base_url, le.token.clone(), http) {
            Ok(c) => c,
            Err(e) => return inconclusive(e.to_string()),
        };
        let test = match client.application_test_by_name(&config.test_name).await {
            Ok(Some(t)) => t,
            Ok(None) => {
                return inconclusive(format!("The appliance has no application test named '{}'", config.test_name))
            }
            Err(e) => return inconclusive(e.to_string()),
        };
        let hosts: Vec<String> = self
            .store
            .pools()
            .unwrap_or_default()
            .iter()
            .filter(|p| p.ring == gates.ring)
            .flat_map(|p| {
                self.store.hosts_of_pool(&p.id).unwrap_or_default().into_iter().map(|h| h.host.name).collect::<Vec<_>>()
            })
            .collect();
        // Compare with the newest passing run of another release (what production runs).
        let baseline_run_id = self
            .store
            .gate_runs_any()
            .unwrap_or_default()
            .into_iter()
            .filter(|g| g.gate == "loginEnterprise" && g.version != version && g.verdict.as_deref() == Some("pass"))
            .find_map(|g| {
                serde_json::from_str::<serde_json::Value>(&g.evidence).ok()?["runId"].as_str().map(str::to_string)
            });
        let poll = self.connection().map(|c| c.executor.poll).unwrap_or(Duration::from_secs(15));
        let request = GateRequest {
            test_id: test.id.clone(),
            connection_resources: ConnectionResourcesUpdate::rdp_hosts(hosts),
            comment: format!("Ringmaster: {version} in the {} ring", ring_display_name(&gates.ring)),
            required_apps: config.required_apps.clone(),
            baseline_run_id,
            timeout: Duration::from_secs(config.timeout_minutes as u64 * 60),
            poll_interval: poll,
        };
        let result = run_gate(&client, request, CancellationToken::new(), |_| {}).await;
        let verdict = match result.verdict.kind {
            ringmaster_loginenterprise::VerdictKind::Pass => GateVerdict::Pass,
            ringmaster_loginenterprise::VerdictKind::Fail => GateVerdict::Fail,
            ringmaster_loginenterprise::VerdictKind::Inconclusive => GateVerdict::Inconclusive,
        };
        let mut evidence = serde_json::to_value(&result).unwrap_or_default();
        evidence["runId"] = serde_json::json!(result.run_id);
        (verdict, result.verdict.reasons.clone(), evidence)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, state: &str, image: &str, failed: &[&str]) -> (String, String, String, Vec<String>) {
        (name.into(), state.into(), image.into(), failed.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn the_health_gate_passes_only_a_ring_fully_healthy_on_the_release() {
        let ok = vec![host("a", "available", "2.0.0", &[]), host("b", "available", "2.0.0", &[])];
        assert_eq!(health_verdict("2.0.0", &ok).0, GateVerdict::Pass);
        let mut bad = ok.clone();
        bad.push(host("c", "unavailable", "2.0.0", &[]));
        bad.push(host("d", "available", "1.0.0", &[]));
        bad.push(host("e", "available", "2.0.0", &["FSLogixHealthCheck"]));
        let (v, reasons) = health_verdict("2.0.0", &bad);
        assert_eq!(v, GateVerdict::Fail);
        assert!(reasons[0].starts_with("3 of 5"), "{reasons:?}");
        assert!(reasons.iter().any(|r| r.contains("d runs 1.0.0")));
        assert!(reasons.iter().any(|r| r.contains("FSLogixHealthCheck")));
        assert_eq!(health_verdict("2.0.0", &[]).0, GateVerdict::Inconclusive);
    }
}
