//! Rollouts: replace every session host of a pool from a new image version without breaking the users' day.
//!
//! The planner is pure: hosts + policy -> plan. The executor runs one state machine per host inside a sliding
//! window (a new host starts the moment capacity frees). Each stage is written to the SQLite journal before its
//! side effect and every ARM write is idempotent, so after the app is killed the rollout resumes where it stopped.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use ringmaster_azure::{ops, ArmClient};
use ringmaster_store::{RolloutEventRecord, RolloutHostRecord, RolloutRecord, Store};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::model::*;
use crate::EngineError;

pub const MESSAGE_LIMIT: usize = 260;
const MESSAGE_TITLE: &str = "Your desktop is being updated";
const EXTENSION_NAME: &str = "AVDRegistration";
/// The AVD agent's DSC package, as the portal and Microsoft's templates use it.
const AVD_DSC_MODULES_URL: &str =
    "https://wvdportalstorageblob.blob.core.windows.net/galleryartifacts/Configuration_1.0.02790.438.zip";

fn now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).ok()
}

/// Timing of the executor. Against Azure a policy minute is a minute; against a fast-clocked simulated tenant it
/// is shorter, so a demo rollout takes minutes, not hours.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Real duration of one policy minute (log-off delay).
    pub minute: Duration,
    /// How often a host's sessions and registration are checked.
    pub poll: Duration,
    /// Give up on a host that has not come back `Available` after this long.
    pub verify_timeout: Duration,
    /// Give up waiting for users to leave (wait-for-logoff) after this long.
    pub logoff_timeout: Duration,
    /// Poll long-running steps on the schedule learned from Azure's run times (off: poll from the start, as a
    /// baseline for the benchmark).
    pub learn_pace: bool,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            minute: Duration::from_secs(60),
            poll: Duration::from_secs(15),
            verify_timeout: Duration::from_secs(45 * 60),
            logoff_timeout: Duration::from_secs(12 * 3600),
            learn_pace: true,
        }
    }
}

impl ExecutorConfig {
    /// Our seconds per tenant second: 1 against Azure, less against a simulated tenant whose clock runs faster.
    pub fn scale(&self) -> f64 {
        self.minute.as_secs_f64() / 60.0
    }

    /// For a simulated tenant whose clock runs `scale` times faster than real time.
    pub fn for_time_scale(scale: f64) -> ExecutorConfig {
        let d = ExecutorConfig::default();
        let s = |x: Duration| Duration::from_secs_f64((x.as_secs_f64() / scale).max(0.01));
        ExecutorConfig {
            minute: s(d.minute),
            poll: s(d.poll).max(Duration::from_millis(50)),
            // However fast the tenant's clock, never give up on a host in less than a minute of wall time: a
            // busy machine must not turn into a failed host.
            verify_timeout: s(d.verify_timeout).max(Duration::from_secs(60)),
            logoff_timeout: s(d.logoff_timeout).max(Duration::from_secs(60)),
            learn_pace: true,
        }
    }
}

// ---------------------------------------------------------------- policy and planning (pure)

/// Check a policy against a pool of `pool_hosts` hosts. Empty when it is usable.
pub fn validate_policy(p: &RolloutPolicy, pool_hosts: u32) -> Vec<PolicyProblem> {
    let mut out = Vec::new();
    let mut problem = |field: &str, message: String| out.push(PolicyProblem { field: field.into(), message });
    match p.capacity {
        CapacityLimit::Hosts { hosts: 0 } => {
            problem("capacity", "At least 1 host must be allowed out of service, or nothing can be replaced.".into())
        }
        CapacityLimit::Hosts { hosts } if pool_hosts > 1 && hosts >= pool_hosts => problem(
            "capacity",
            format!(
                "{hosts} hosts out of service at once would leave none of this pool's {pool_hosts} hosts available; \
                 use at most {}.",
                pool_hosts - 1
            ),
        ),
        CapacityLimit::Percent { percent } if percent == 0 || percent > 100 => {
            problem("capacity", format!("{percent} % is not a share of the pool; use 1 to 100 %."))
        }
        _ => {}
    }
    if p.logoff_delay_minutes > 60 {
        problem(
            "logoffDelayMinutes",
            format!(
                "{} minutes is too long: AVD allows 0 to 60 minutes before users are logged off.",
                p.logoff_delay_minutes
            ),
        );
    }
    let chars = p.message.chars().count();
    if chars > MESSAGE_LIMIT {
        problem(
            "message",
            format!("The message is {chars} characters; AVD shows at most {MESSAGE_LIMIT}. Shorten it."),
        );
    }
    if p.message.trim().is_empty() && p.drain_mode == DrainMode::ForceLogoff {
        problem("message", "Tell users what is happening before they are logged off: the message is empty.".into());
    }
    if p.max_failures == 0 {
        problem("maxFailures", "Stop after at least 1 failed host (0 would stop before starting).".into());
    }
    out
}

/// Hosts out of service at once for this pool: the policy's limit, never leaving the pool without an available
/// host (unless the pool has only one).
pub fn effective_capacity(p: &RolloutPolicy, pool_hosts: u32) -> u32 {
    let raw = match p.capacity {
        CapacityLimit::Hosts { hosts } => hosts,
        CapacityLimit::Percent { percent } => pool_hosts * percent.min(100) / 100,
    };
    let ceiling = if pool_hosts > 1 { pool_hosts - 1 } else { 1 };
    raw.clamp(1, ceiling.max(1))
}

/// Minutes one host is expected to take: drain, then delete (2), create (7), register (4), verify (2).
fn minutes_per_host(p: &RolloutPolicy) -> u32 {
    let drain = match p.drain_mode {
        DrainMode::ForceLogoff => p.logoff_delay_minutes,
        DrainMode::WaitForLogoff => 30,
    };
    drain + 15
}

/// Order hosts for replacement: those already out of service first (replacing them costs no capacity), then
/// the emptiest. The first one is the canary.
pub fn order_hosts(hosts: &mut [PlannedHost]) {
    hosts.sort_by(|a, b| {
        let rank = |h: &PlannedHost| match h.state {
            HostState::Unavailable | HostState::Unknown => 0,
            HostState::Draining => 1,
            HostState::Available => 2,
        };
        rank(a).cmp(&rank(b)).then(a.sessions.cmp(&b.sessions)).then(a.name.cmp(&b.name))
    });
}

pub struct PlanInput {
    pub host_pool_id: String,
    pub pool_name: String,
    pub ring: String,
    pub location: String,
    pub target_version: String,
    pub target_version_id: String,
    pub replication_state_in_region: String,
    /// Replicas of the target version in the pool's region.
    pub replicas_in_region: u32,
    /// A rollout of this pool that has not ended cleanly (running, paused, failed): `(id, state)`.
    pub unfinished_rollout: Option<(String, String)>,
    pub hosts: Vec<PlannedHost>,
}

pub fn plan(input: PlanInput, policy: &RolloutPolicy) -> RolloutPlan {
    let pool_hosts = input.hosts.len() as u32;
    let mut blockers = validate_policy(policy, pool_hosts);
    let mut warnings = Vec::new();
    let (mut todo, current): (Vec<PlannedHost>, Vec<PlannedHost>) =
        input.hosts.into_iter().partition(|h| h.current_version != input.target_version);
    order_hosts(&mut todo);
    if input.replication_state_in_region != "Completed" {
        blockers.push(PolicyProblem {
            field: "version".into(),
            message: format!(
                "{} is not replicated to {} yet (replication: {}); hosts there cannot be created from it.",
                input.target_version, input.location, input.replication_state_in_region
            ),
        });
    }
    let cap = effective_capacity(policy, pool_hosts);
    let replicas_needed = cap.div_ceil(crate::release::VMS_PER_REPLICA).max(1);
    if input.replication_state_in_region == "Completed" && input.replicas_in_region < replicas_needed {
        blockers.push(PolicyProblem {
            field: "version".into(),
            message: format!(
                "{} has {} replica(s) in {}; creating up to {cap} VMs at once needs {replicas_needed} (one per {}). Add replicas to the version or lower the cap.",
                input.target_version,
                input.replicas_in_region,
                input.location,
                crate::release::VMS_PER_REPLICA
            ),
        });
    }
    if let Some((id, state)) = &input.unfinished_rollout {
        blockers.push(PolicyProblem {
            field: "pool".into(),
            message: format!(
                "Rollout {id} of this pool is {state}; resume, retry or abort it before starting another."
            ),
        });
    }
    if todo.is_empty() {
        warnings.push(format!("Every host already runs {}.", input.target_version));
    }
    if pool_hosts == 1 {
        warnings.push("The pool has a single host: it is out of service while it is replaced.".into());
    }
    if policy.surge {
        warnings.push(format!(
            "Surge: each new host is built and Available before its old one is drained; up to {cap} extra VM(s) run \
             at once (checked against the region's vCPU quota when the rollout starts)."
        ));
    }
    if policy.standby || policy.surge {
        // The new host takes the other of the host's two names: both must be valid Windows computer names.
        if let Some(h) = todo.iter().find(|h| computer_name(&standby_swap(&h.name)).len() > 15) {
            blockers.push(PolicyProblem {
                field: "standby".into(),
                message: format!(
                    "{}'s partner would be named {}, longer than the 15 characters Windows allows; turn standby \
                     and surge off for this pool.",
                    computer_name(&h.name),
                    computer_name(&standby_swap(&h.name))
                ),
            });
        }
    }
    let n = todo.len() as u32;
    let waves = if n == 0 {
        0
    } else if policy.canary {
        1 + (n - 1).div_ceil(cap)
    } else {
        n.div_ceil(cap)
    };
    RolloutPlan {
        users_now: todo.iter().map(|h| h.sessions).sum(),
        estimated_minutes: waves * minutes_per_host(policy),
        already_current: current.len() as u32,
        max_out_of_service: cap,
        pool_hosts,
        hosts: todo,
        host_pool_id: input.host_pool_id,
        pool_name: input.pool_name,
        ring: input.ring,
        location: input.location,
        target_version: input.target_version,
        target_version_id: input.target_version_id,
        replication_state: input.replication_state_in_region,
        blockers,
        warnings,
        standby_restore: false,
    }
}

/// The other of a host's two names under standby: `avd-3` <-> `avd-3-r` (the domain part, if any, stays).
pub fn standby_swap(name: &str) -> String {
    let (computer, rest) = name.split_at(name.find('.').unwrap_or(name.len()));
    match computer.strip_suffix("-r") {
        Some(base) => format!("{base}{rest}"),
        None => format!("{computer}-r{rest}"),
    }
}

/// The vCPUs of an Azure VM size, read from its name (`Standard_D4s_v5` -> 4); none when the name does not say.
pub fn vcpus_of(size: &str) -> Option<u32> {
    let body = size.strip_prefix("Standard_").or_else(|| size.strip_prefix("Basic_"))?;
    let digits: String =
        body.chars().skip_while(|c| c.is_ascii_alphabetic()).take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok().filter(|n| *n > 0)
}

/// Why a surge of `extra_vms` VMs of `size` does not fit the region's free vCPUs, if it does not.
pub fn surge_quota_problem(extra_vms: u32, size: &str, location: &str, cores_free: Option<i64>) -> Option<String> {
    let (Some(vcpus), Some(free)) = (vcpus_of(size), cores_free) else { return None };
    let need = i64::from(extra_vms) * i64::from(vcpus);
    (need > free).then(|| {
        format!(
            "Surge needs {need} vCPUs in {location} at once ({extra_vms} x {size}), and the subscription has {} of its \
             regional vCPU quota free: lower the hosts out of service at once, turn surge off, or raise the quota.",
            free.max(0)
        )
    })
}

/// The VM id of a host's standby partner: same resource group, the VM name swapped the same way.
fn standby_vm_id(vm_id: &str) -> String {
    match vm_id.rsplit_once('/') {
        Some((scope, vm)) => format!("{scope}/{}", standby_swap(vm)),
        None => standby_swap(vm_id),
    }
}

// ---------------------------------------------------------------- deployment profile

/// Everything a new session host needs besides its image, copied from an existing host's VM and reused across
/// rings so only the image changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentProfile {
    pub location: String,
    pub vm_size: String,
    pub zones: Option<Vec<String>>,
    pub os_disk_type: String,
    pub os_disk_size_gb: Option<u64>,
    pub security_profile: Option<Value>,
    pub license_type: Option<String>,
    pub subnet_id: String,
    pub admin_username: String,
    pub tags: serde_json::Map<String, Value>,
    /// `AzureAD` or `ActiveDirectory`.
    pub join_type: String,
    pub modules_url: String,
    /// How hosts join Active Directory (with `join_type` `ActiveDirectory`). The join account's password is in the
    /// secret store, never here.
    #[serde(default)]
    pub domain_join: Option<DomainJoin>,
}

/// An Active Directory join: the domain, the OU new computer accounts go to (empty = the default Computers
/// container) and the account that joins them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DomainJoin {
    pub domain: String,
    pub ou_path: String,
    pub user: String,
}

/// The secret store profile of domain join passwords (one per host pool, named by the pool's id).
pub const DOMAIN_JOIN_SECRETS: &str = "domain-join";
/// The VM extension that joins a host to the domain (before the AVD agent registers it).
const JOIN_EXTENSION_NAME: &str = "joindomain";

impl DeploymentProfile {
    /// Read a profile off a session host's VM and its NIC.
    pub fn from_vm(vm: &Value, nic: &Value) -> Result<DeploymentProfile, String> {
        let p = &vm["properties"];
        let text =
            |v: &Value, what: &str| v.as_str().map(str::to_string).ok_or_else(|| format!("the VM has no {what}"));
        let subnet = nic["properties"]["ipConfigurations"][0]["properties"]["subnet"]["id"].as_str();
        let mut tags = vm["tags"].as_object().cloned().unwrap_or_default();
        tags.remove("ringmaster-image-version");
        // A host joined to Active Directory carries the JsonADDomainExtension: its public settings say where.
        let domain_join = vm["resources"].as_array().and_then(|exts| {
            exts.iter().find(|e| e["properties"]["type"].as_str() == Some("JsonADDomainExtension")).map(|e| {
                let s = &e["properties"]["settings"];
                let field = |k: &str| s[k].as_str().unwrap_or_default().to_string();
                DomainJoin { domain: field("Name"), ou_path: field("OUPath"), user: field("User") }
            })
        });
        Ok(DeploymentProfile {
            location: text(&vm["location"], "location")?,
            vm_size: text(&p["hardwareProfile"]["vmSize"], "VM size")?,
            zones: vm["zones"].as_array().map(|z| z.iter().filter_map(|s| s.as_str().map(str::to_string)).collect()),
            os_disk_type: p["storageProfile"]["osDisk"]["managedDisk"]["storageAccountType"]
                .as_str()
                .unwrap_or("Premium_LRS")
                .to_string(),
            os_disk_size_gb: p["storageProfile"]["osDisk"]["diskSizeGB"].as_u64(),
            security_profile: p.get("securityProfile").cloned().filter(|v| v.is_object()),
            license_type: p["licenseType"].as_str().map(str::to_string),
            subnet_id: subnet.map(str::to_string).ok_or("the VM's NIC has no subnet")?,
            admin_username: p["osProfile"]["adminUsername"].as_str().unwrap_or("rmadmin").to_string(),
            tags,
            join_type: if domain_join.is_some() { "ActiveDirectory" } else { "AzureAD" }.into(),
            modules_url: AVD_DSC_MODULES_URL.into(),
            domain_join,
        })
    }

    /// The JsonADDomainExtension that joins a new host to the domain; the password only in protected settings.
    fn join_body(&self, join: &DomainJoin, password: &str) -> Value {
        let mut settings = json!({"Name": join.domain, "User": join.user, "Restart": "true", "Options": "3"});
        if !join.ou_path.is_empty() {
            settings["OUPath"] = json!(join.ou_path);
        }
        json!({
            "location": self.location,
            "properties": {
                "publisher": "Microsoft.Compute", "type": "JsonADDomainExtension", "typeHandlerVersion": "1.3",
                "autoUpgradeMinorVersion": true,
                "settings": settings,
                "protectedSettings": {"Password": password}
            }
        })
    }

    fn nic_body(&self) -> Value {
        json!({
            "location": self.location,
            "tags": self.tags,
            "properties": {"ipConfigurations": [{"name": "ipconfig1", "properties": {
                "subnet": {"id": self.subnet_id}, "privateIPAllocationMethod": "Dynamic"
            }}]}
        })
    }

    fn vm_body(
        &self,
        computer_name: &str,
        nic_id: &str,
        image_version_id: &str,
        version: &str,
        password: &str,
    ) -> Value {
        let mut tags = self.tags.clone();
        tags.insert("ringmaster-image-version".into(), json!(version));
        let mut os_disk = json!({
            "createOption": "FromImage", "caching": "ReadWrite", "deleteOption": "Delete",
            "managedDisk": {"storageAccountType": self.os_disk_type}
        });
        if let Some(size) = self.os_disk_size_gb {
            os_disk["diskSizeGB"] = json!(size);
        }
        let mut props = json!({
            "hardwareProfile": {"vmSize": self.vm_size},
            "storageProfile": {"imageReference": {"id": image_version_id}, "osDisk": os_disk},
            "osProfile": {
                "computerName": computer_name, "adminUsername": self.admin_username, "adminPassword": password,
                "windowsConfiguration": {"provisionVMAgent": true, "enableAutomaticUpdates": false}
            },
            "networkProfile": {"networkInterfaces": [{"id": nic_id, "properties": {"primary": true, "deleteOption": "Delete"}}]}
        });
        if let Some(s) = &self.security_profile {
            props["securityProfile"] = s.clone();
        }
        if let Some(l) = &self.license_type {
            props["licenseType"] = json!(l);
        }
        let mut body = json!({"location": self.location, "tags": tags, "properties": props});
        if self.join_type == "AzureAD" {
            body["identity"] = json!({"type": "SystemAssigned"});
        }
        if let Some(z) = &self.zones {
            body["zones"] = json!(z);
        }
        body
    }

    fn extension_body(&self, pool_name: &str, token: &str) -> Value {
        json!({
            "location": self.location,
            "properties": {
                "publisher": "Microsoft.Powershell", "type": "DSC", "typeHandlerVersion": "2.83",
                "autoUpgradeMinorVersion": true,
                "settings": {
                    "modulesUrl": self.modules_url,
                    "configurationFunction": "Configuration.ps1\\AddSessionHost",
                    "configurationArguments": {"hostPoolName": pool_name, "aadJoin": self.join_type == "AzureAD"}
                },
                "protectedSettings": {"Items": {"RegistrationInfoToken": token}}
            }
        })
    }
}

/// A throwaway local administrator password for a new VM: never stored, never logged (the host is joined to a
/// directory and managed from there).
fn admin_password() -> String {
    const SETS: [&[u8]; 4] = [b"ABCDEFGHJKLMNPQRSTUVWXYZ", b"abcdefghijkmnopqrstuvwxyz", b"23456789", b"!#%+-=?@^_"];
    let mut rng = rand::rng();
    let mut out: Vec<u8> = SETS.iter().map(|s| s[rng.random_range(0..s.len())]).collect();
    let all: Vec<u8> = SETS.concat();
    out.extend((0..20).map(|_| all[rng.random_range(0..all.len())]));
    for i in (1..out.len()).rev() {
        out.swap(i, rng.random_range(0..=i));
    }
    String::from_utf8(out).unwrap_or_default()
}

fn computer_name(host_name: &str) -> &str {
    host_name.split('.').next().unwrap_or(host_name)
}

fn segment_id(id: &str, upto: &str) -> Option<String> {
    let lower = id.to_ascii_lowercase();
    let at = lower.find(&format!("/providers/{}", upto.to_ascii_lowercase()))?;
    Some(id[..at].to_string())
}

// ---------------------------------------------------------------- executor

/// Called whenever a rollout changes (journal written), with its id.
pub type Notifier = Arc<dyn Fn(&str) + Send + Sync>;

struct Control {
    wake: Arc<Notify>,
}

pub struct Rollouts {
    /// Where the domain join password is (set once the engine has a secret store).
    secrets: Mutex<Option<Arc<dyn ringmaster_secrets::SecretStore>>>,
    store: Arc<Store>,
    client: ArmClient,
    config: ExecutorConfig,
    notify: Notifier,
    running: Mutex<HashMap<String, Control>>,
    token_lock: tokio::sync::Mutex<()>,
    /// Registration tokens read in the last few minutes, by host pool: hosts registering together share one read.
    tokens: Mutex<HashMap<String, (String, tokio::time::Instant)>>,
    pace: Pace,
}

/// The slow steps of a replacement, whose durations [`Pace`] learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Step {
    DeleteVm,
    CreateNic,
    CreateVm,
    JoinDomain,
    InstallAgent,
    Register,
}

/// How long each slow step has recently taken in this app run. Once a step has finished a few times, it is first
/// checked when half of them had finished and next when nearly all had, then as Azure and the policy say: a 4-9
/// minute VM create costs about two polls instead of one a minute. Learned rather than assumed, so a region
/// quicker or slower than usual is paced by what it does.
#[derive(Default)]
struct Pace {
    recent: Mutex<HashMap<Step, std::collections::VecDeque<Duration>>>,
}

impl Pace {
    const SAMPLES: usize = 5;
    const WINDOW: usize = 64;

    /// The least waits before the first and the second check of `step`.
    fn waits(&self, step: Step) -> [Duration; 2] {
        let Ok(m) = self.recent.lock() else { return [Duration::ZERO; 2] };
        match m.get(&step) {
            Some(d) if d.len() >= Self::SAMPLES => {
                let mut sorted: Vec<Duration> = d.iter().copied().collect();
                sorted.sort();
                let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
                let (median, p90) = (at(0.5), at(0.9));
                [median, p90.saturating_sub(median)]
            }
            _ => [Duration::ZERO; 2],
        }
    }

    fn observe(&self, step: Step, took: Duration) {
        if let Ok(mut m) = self.recent.lock() {
            let d = m.entry(step).or_default();
            if d.len() == Self::WINDOW {
                d.pop_front();
            }
            d.push_back(took);
        }
    }

    /// Learn from Azure's own account of a step's run time (tenant time, converted to ours by `scale`), never
    /// from when a poll happened to see it done: that would feed the schedule's own delays back into it.
    fn learn(&self, step: Step, took: Option<Duration>, scale: f64) {
        if let Some(d) = took {
            self.observe(step, d.mul_f64(scale));
        }
    }
}

use crate::build::StepError;

impl Rollouts {
    pub fn new(store: Arc<Store>, client: ArmClient, config: ExecutorConfig, notify: Notifier) -> Arc<Rollouts> {
        Arc::new(Rollouts {
            store,
            client,
            config,
            notify,
            running: Mutex::new(HashMap::new()),
            token_lock: tokio::sync::Mutex::new(()),
            tokens: Mutex::new(HashMap::new()),
            pace: Pace::default(),
            secrets: Mutex::new(None),
        })
    }

    pub(crate) fn client(&self) -> &ArmClient {
        &self.client
    }

    pub fn set_secrets(&self, secrets: Option<Arc<dyn ringmaster_secrets::SecretStore>>) {
        if let Ok(mut s) = self.secrets.lock() {
            *s = secrets;
        }
    }

    fn waits(&self, step: Step) -> [Duration; 2] {
        if self.config.learn_pace {
            self.pace.waits(step)
        } else {
            [Duration::ZERO; 2]
        }
    }

    fn join_password(&self, host_pool_id: &str) -> Option<ringmaster_secrets::Secret> {
        let secrets = self.secrets.lock().ok()?.clone()?;
        secrets.get(DOMAIN_JOIN_SECRETS, &host_pool_id.to_ascii_lowercase()).ok().flatten()
    }

    fn event(&self, id: &str, host: Option<&str>, level: &str, message: String, request_id: Option<String>) {
        let e =
            RolloutEventRecord { at: now(), host: host.map(str::to_string), level: level.into(), message, request_id };
        if let Err(err) = self.store.add_rollout_event(id, &e) {
            tracing::error!(target: "rollout", "journal: {err}");
        }
        (self.notify)(id);
    }

    /// Capture (or reuse) the pool's deployment profile from one of its hosts' VMs.
    pub async fn ensure_profile(
        &self,
        host_pool_id: &str,
        sample_vm_id: &str,
    ) -> Result<DeploymentProfile, EngineError> {
        if let Some(json) = self.store.profile(host_pool_id)? {
            if let Ok(p) = serde_json::from_str::<DeploymentProfile>(&json) {
                return Ok(p);
            }
        }
        let vm = ops::get_vm(&self.client, sample_vm_id)
            .await?
            .ok_or_else(|| EngineError::InvalidInput(format!("the VM {sample_vm_id} no longer exists")))?;
        let nic_id = vm["properties"]["networkProfile"]["networkInterfaces"][0]["id"]
            .as_str()
            .ok_or_else(|| EngineError::InvalidInput("the VM has no network interface".into()))?
            .to_string();
        let nic = ops::get_nic(&self.client, &nic_id)
            .await?
            .ok_or_else(|| EngineError::InvalidInput(format!("the NIC {nic_id} no longer exists")))?;
        let profile = DeploymentProfile::from_vm(&vm, &nic).map_err(EngineError::InvalidInput)?;
        self.store.save_profile(host_pool_id, &serde_json::to_string(&profile).unwrap_or_default(), &now())?;
        Ok(profile)
    }

    /// Journal a new rollout from a plan and start it.
    pub async fn start(
        self: &Arc<Self>,
        plan: &RolloutPlan,
        policy: &RolloutPolicy,
        kind: &str,
        previous_version: Option<String>,
    ) -> Result<String, EngineError> {
        if let Some(b) = plan.blockers.first() {
            return Err(EngineError::InvalidInput(b.message.clone()));
        }
        if plan.hosts.is_empty() {
            return Err(EngineError::InvalidInput(format!("Every host already runs {}.", plan.target_version)));
        }
        if let Some(active) = self.store.rollouts()?.into_iter().find(|r| {
            r.host_pool_id.eq_ignore_ascii_case(&plan.host_pool_id) && matches!(r.state.as_str(), "running" | "paused")
        }) {
            return Err(EngineError::InvalidInput(format!(
                "{} already has a rollout to {} in progress; finish or abort it first.",
                plan.pool_name, active.target_version
            )));
        }
        let profile = self.ensure_profile(&plan.host_pool_id, &plan.hosts[0].vm_id).await?;
        if policy.surge {
            let sub = plan.host_pool_id.split('/').nth(2).unwrap_or_default();
            let usages = ops::list_usages(&self.client, sub, &profile.location).await?;
            let free = usages
                .iter()
                .find(|u| u["name"]["value"] == "cores")
                .map(|u| u["limit"].as_i64().unwrap_or(0) - u["currentValue"].as_i64().unwrap_or(0));
            let extra = plan.max_out_of_service.min(plan.hosts.len() as u32);
            if let Some(problem) = surge_quota_problem(extra, &profile.vm_size, &profile.location, free) {
                return Err(EngineError::InvalidInput(problem));
            }
        }
        let id = format!("ro-{}", uuid_like());
        let record = RolloutRecord {
            id: id.clone(),
            host_pool_id: plan.host_pool_id.clone(),
            pool_name: plan.pool_name.clone(),
            ring: plan.ring.clone(),
            target_version_id: plan.target_version_id.clone(),
            target_version: plan.target_version.clone(),
            previous_version,
            kind: kind.into(),
            policy: serde_json::to_string(policy).unwrap_or_default(),
            state: RolloutState::Running.as_str().into(),
            reason: None,
            created_at: now(),
            finished_at: None,
            rolled_back: false,
        };
        let hosts: Vec<RolloutHostRecord> = plan
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| RolloutHostRecord {
                position: i as u32,
                name: h.name.clone(),
                vm_id: h.vm_id.clone(),
                stage: HostStage::Queued.as_str().into(),
                sessions: h.sessions,
                messaged_at: None,
                started_at: None,
                finished_at: None,
                error: None,
                request_id: None,
                attempts: 0,
            })
            .collect();
        self.store.create_rollout(&record, &hosts)?;
        self.event(
            &id,
            None,
            "info",
            format!(
                "{} of {} to {}: {} hosts, at most {} out of service",
                match kind {
                    "rollback" => "Rollback",
                    "restore" => "Instant rollback from standby",
                    _ => "Rollout",
                },
                plan.pool_name,
                plan.target_version,
                plan.hosts.len(),
                plan.max_out_of_service
            ),
            None,
        );
        self.spawn(&id);
        Ok(id)
    }

    /// Start the executor for a rollout unless one runs already.
    fn spawn(self: &Arc<Self>, id: &str) {
        let wake = {
            let Ok(mut running) = self.running.lock() else { return };
            if running.contains_key(id) {
                if let Some(c) = running.get(id) {
                    c.wake.notify_one();
                }
                return;
            }
            let wake = Arc::new(Notify::new());
            running.insert(id.to_string(), Control { wake: wake.clone() });
            wake
        };
        let this = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            if let Err(e) = this.run(&id, wake).await {
                tracing::error!(target: "rollout", "rollout {id} stopped: {e}");
                let _ = this.store.set_rollout_state(&id, "failed", Some(&e.to_string()), Some(&now()));
                this.event(&id, None, "error", format!("The rollout stopped: {e}"), None);
            }
            if let Ok(mut running) = this.running.lock() {
                running.remove(&id);
            }
            (this.notify)(&id);
        });
    }

    /// After a restart: pick up every rollout the journal says is running (or paused with hosts mid-way).
    pub fn resume_all(self: &Arc<Self>) -> Result<usize, EngineError> {
        let mut n = 0;
        for r in self.store.rollouts()? {
            let hosts = self.store.rollout_hosts(&r.id)?;
            let mid_way = hosts.iter().any(|h| HostStage::parse(&h.stage).in_flight());
            if r.state == "running" || mid_way {
                self.event(&r.id, None, "info", "Resuming after a restart".into(), None);
                self.spawn(&r.id);
                n += 1;
            }
        }
        Ok(n)
    }

    fn wake(&self, id: &str) {
        if let Ok(running) = self.running.lock() {
            if let Some(c) = running.get(id) {
                c.wake.notify_one();
            }
        }
    }

    fn set_state(&self, id: &str, state: RolloutState, reason: Option<&str>) -> Result<(), EngineError> {
        let finished = matches!(state, RolloutState::Completed | RolloutState::Failed | RolloutState::Aborted);
        self.store.set_rollout_state(id, state.as_str(), reason, finished.then(now).as_deref())?;
        Ok(())
    }

    fn record(&self, id: &str) -> Result<RolloutRecord, EngineError> {
        self.store.rollout(id)?.ok_or_else(|| EngineError::InvalidInput(format!("no rollout {id}")))
    }

    /// Stop starting new hosts; those in flight finish their replacement.
    pub fn pause(&self, id: &str) -> Result<(), EngineError> {
        let r = self.record(id)?;
        if r.state != "running" {
            return Err(EngineError::InvalidInput(format!("the rollout is {}, not running", r.state)));
        }
        self.set_state(id, RolloutState::Paused, Some("Paused by the operator"))?;
        self.event(id, None, "info", "Paused: hosts in progress finish, no new ones start".into(), None);
        self.wake(id);
        Ok(())
    }

    pub fn resume(self: &Arc<Self>, id: &str) -> Result<(), EngineError> {
        let r = self.record(id)?;
        if r.state != "paused" && r.state != "failed" {
            return Err(EngineError::InvalidInput(format!(
                "the rollout is {}; only a paused or failed one resumes",
                r.state
            )));
        }
        self.set_state(id, RolloutState::Running, None)?;
        self.event(id, None, "info", "Resumed".into(), None);
        self.spawn(id);
        Ok(())
    }

    /// Put failed hosts back in the queue and carry on.
    pub fn retry_failed(self: &Arc<Self>, id: &str) -> Result<usize, EngineError> {
        let r = self.record(id)?;
        if matches!(r.state.as_str(), "completed" | "aborted") {
            return Err(EngineError::InvalidInput(format!("the rollout is {}", r.state)));
        }
        let n = self.store.requeue_failed_hosts(id)?;
        self.set_state(id, RolloutState::Running, None)?;
        self.event(id, None, "info", format!("Retrying {n} failed host(s)"), None);
        self.spawn(id);
        Ok(n)
    }

    /// Stop for good: queued hosts are skipped, hosts in flight finish (a half-replaced host helps nobody).
    pub fn abort(&self, id: &str) -> Result<(), EngineError> {
        let r = self.record(id)?;
        if matches!(r.state.as_str(), "completed" | "aborted") {
            return Err(EngineError::InvalidInput(format!("the rollout is already {}", r.state)));
        }
        self.store.skip_queued_hosts(id, &now())?;
        self.set_state(id, RolloutState::Aborted, Some("Aborted by the operator"))?;
        self.event(id, None, "warning", "Aborted: queued hosts skipped; hosts in progress finish".into(), None);
        self.wake(id);
        Ok(())
    }

    async fn run(self: &Arc<Self>, id: &str, wake: Arc<Notify>) -> Result<(), EngineError> {
        let record = self.record(id)?;
        let policy: RolloutPolicy = serde_json::from_str(&record.policy).unwrap_or_default();
        let profile: DeploymentProfile = self
            .store
            .profile(&record.host_pool_id)?
            .and_then(|p| serde_json::from_str(&p).ok())
            .ok_or_else(|| EngineError::InvalidInput("the pool has no deployment profile".into()))?;
        let pool_hosts = self.store.rollout_hosts(id)?.len() as u32;
        let pool_size = self.pool_size(&record.host_pool_id).max(pool_hosts);
        let cap = effective_capacity(&policy, pool_size);
        let join_password = match &profile.domain_join {
            Some(join) => Some(self.join_password(&record.host_pool_id).ok_or_else(|| {
                EngineError::InvalidInput(format!(
                    "hosts of this pool join {}, and no password for {} is stored: set it in the pool's deployment \
                     profile",
                    join.domain, join.user
                ))
            })?),
            None => None,
        };
        let ctx = Arc::new(HostContext { record: record.clone(), policy: policy.clone(), profile, join_password });
        let mut tasks: JoinSet<String> = JoinSet::new();
        let mut active: HashSet<String> = HashSet::new();
        loop {
            let state = RolloutState::parse(&self.record(id)?.state);
            let hosts = self.store.rollout_hosts(id)?;
            // Hosts the journal has mid-way but no task runs for: resumed after a restart.
            for h in hosts.iter().filter(|h| HostStage::parse(&h.stage).in_flight()) {
                if active.insert(h.name.clone()) {
                    self.spawn_host(&mut tasks, ctx.clone(), h.clone());
                }
            }
            let failed = hosts.iter().filter(|h| h.stage == "failed").count() as u32;
            let done = hosts.iter().filter(|h| h.stage == "done").count();
            let mut queued = hosts.iter().filter(|h| h.stage == "queued");
            if state == RolloutState::Running {
                if failed >= policy.max_failures {
                    let first = hosts.iter().find(|h| h.stage == "failed");
                    let reason = format!(
                        "{failed} host(s) failed (the policy stops after {}): {}",
                        policy.max_failures,
                        first.and_then(|h| h.error.clone()).unwrap_or_default()
                    );
                    self.set_state(id, RolloutState::Failed, Some(&reason))?;
                    self.event(
                        id,
                        None,
                        "error",
                        format!("Stopped: {reason}. Fix the cause, then retry the failed hosts."),
                        None,
                    );
                    continue;
                }
                let canary_pending = policy.canary && done == 0;
                let allowed = if canary_pending { 1 } else { cap as usize };
                while active.len() < allowed {
                    let Some(next) = queued.next() else { break };
                    if canary_pending {
                        self.event(
                            id,
                            Some(&next.name),
                            "info",
                            "Canary: the first host; nothing else starts until it is healthy".into(),
                            None,
                        );
                    }
                    // A host's first step: drain it, or (restoring standby) start its VM.
                    let builds_first = ctx.record.kind == "restore" || ctx.policy.surge;
                    let first = if builds_first { HostStage::Creating } else { HostStage::Draining };
                    self.store.set_host_stage(id, &next.name, first.as_str(), &now())?;
                    active.insert(next.name.clone());
                    let mut h = next.clone();
                    h.stage = first.as_str().into();
                    self.spawn_host(&mut tasks, ctx.clone(), h);
                }
                (self.notify)(id);
            }
            if active.is_empty() {
                let queued_left = hosts.iter().any(|h| h.stage == "queued");
                if state == RolloutState::Running && !queued_left {
                    let failed_now = self.store.rollout_hosts(id)?.iter().filter(|h| h.stage == "failed").count();
                    if failed_now == 0 {
                        // Before the state flips, so whoever sees "completed" in Prod sees the release in latest.
                        if record.kind == "rollout" && is_prod_ring(&record.ring) {
                            self.publish(id, &record).await;
                        }
                        self.set_state(id, RolloutState::Completed, None)?;
                        self.event(
                            id,
                            None,
                            "info",
                            format!("Completed: every host runs {}", record.target_version),
                            None,
                        );
                    } else {
                        let reason = format!("{failed_now} host(s) failed; retry them or roll back");
                        self.set_state(id, RolloutState::Failed, Some(&reason))?;
                        self.event(id, None, "error", reason, None);
                    }
                }
                if state != RolloutState::Running || !queued_left {
                    return Ok(());
                }
            }
            tokio::select! {
                finished = tasks.join_next(), if !tasks.is_empty() => {
                    match finished {
                        Some(Ok(name)) => { active.remove(&name); }
                        Some(Err(e)) => {
                            tracing::error!(target: "rollout", "host task ended abnormally: {e}");
                            active.clear();
                        }
                        None => {}
                    }
                }
                _ = wake.notified() => {}
            }
        }
    }

    /// The release reached Prod: make it visible to `latest` (captures create versions hidden from it).
    async fn publish(&self, id: &str, record: &RolloutRecord) {
        match ops::publish_to_latest(&self.client, &record.target_version_id).await {
            Ok(()) => {
                if let Ok(Some(v)) = ops::get_image_version(&self.client, &record.target_version_id).await {
                    if let Ok(r) = ringmaster_azure::inventory::image_version_from_json(v) {
                        let _ = self.store.upsert_version(&crate::rings::version_row(&r));
                    }
                }
                crate::audit::record_automatic(
                    &self.store,
                    "release.publish",
                    &record.target_version,
                    serde_json::json!({"rolloutId": id, "pool": record.pool_name, "excludeFromLatest": false}),
                );
                self.event(
                    id,
                    None,
                    "info",
                    format!("{} reached Prod: now visible to 'latest'", record.target_version),
                    None,
                )
            }
            Err(e) => self.event(
                id,
                None,
                "warning",
                format!("{} reached Prod but could not be made visible to 'latest': {e}", record.target_version),
                e.request_id(),
            ),
        }
    }

    fn pool_size(&self, host_pool_id: &str) -> u32 {
        self.store
            .pool_stats()
            .ok()
            .and_then(|s| s.into_iter().find(|(id, _)| id.eq_ignore_ascii_case(host_pool_id)).map(|(_, st)| st.hosts))
            .unwrap_or(0)
    }

    fn spawn_host(self: &Arc<Self>, tasks: &mut JoinSet<String>, ctx: Arc<HostContext>, host: RolloutHostRecord) {
        let this = self.clone();
        tasks.spawn(async move {
            let id = ctx.record.id.clone();
            let name = host.name.clone();
            let result = if ctx.record.kind == "restore" {
                this.restore_host(&ctx, &host).await
            } else if ctx.policy.surge {
                this.surge_host(&ctx, &host).await
            } else {
                this.replace_host(&ctx, &host).await
            };
            if let Err(e) = result {
                let _ = this.store.fail_host(&id, &name, &e.message, e.request_id.as_deref(), &now());
                this.event(&id, Some(&name), "error", format!("Failed: {}", e.message), e.request_id);
            }
            name
        });
    }

    fn enter(&self, ctx: &HostContext, host: &str, stage: HostStage, what: &str) -> Result<(), StepError> {
        self.store.set_host_stage(&ctx.record.id, host, stage.as_str(), &now())?;
        self.event(&ctx.record.id, Some(host), "info", what.to_string(), None);
        Ok(())
    }

    /// One host's state machine, from the stage the journal holds to done. Every step is safe to repeat.
    async fn replace_host(&self, ctx: &HostContext, host: &RolloutHostRecord) -> Result<(), StepError> {
        let pool = ctx.record.host_pool_id.clone();
        // `name` keys the journal; the new host has it too, or (standby) its partner name, so the old VM can stay.
        let name = host.name.clone();
        let vm_id = host.vm_id.clone();
        let standby = ctx.policy.standby;
        let (new_name, new_vm_id) =
            if standby { (standby_swap(&name), standby_vm_id(&vm_id)) } else { (name.clone(), vm_id.clone()) };
        let mut stage = HostStage::parse(&host.stage);
        // When (by Azure's clock) this run installed the agent: how long registration takes is learned from it.
        let mut registered_at = None;
        loop {
            match stage {
                HostStage::Queued | HostStage::Draining => {
                    self.drain(ctx, &name, &name, "Draining: no new sessions").await?;
                    stage = HostStage::WaitingForLogoff;
                }
                HostStage::WaitingForLogoff => {
                    self.wait_for_logoff(ctx, &name, &name).await?;
                    stage = HostStage::Removing;
                }
                HostStage::Removing => {
                    self.retire_host(ctx, &name, &vm_id).await?;
                    stage = HostStage::Creating;
                }
                HostStage::Creating => {
                    self.create_host(ctx, &name, &new_name, &new_vm_id, standby).await?;
                    stage = HostStage::Registering;
                }
                HostStage::Registering => {
                    registered_at = Some(self.register_host(ctx, &name, &new_vm_id).await?);
                    stage = HostStage::Verifying;
                }
                HostStage::Verifying => {
                    self.enter(ctx, &name, HostStage::Verifying, "Waiting for the host to be Available and healthy")?;
                    self.verify(ctx, &new_name, registered_at).await?;
                    let (version, version_id) = (&ctx.record.target_version, &ctx.record.target_version_id);
                    if standby {
                        self.store.record_host_renamed(&pool, &name, &new_name, &new_vm_id, version, version_id)?;
                    } else {
                        self.store.record_host_replaced(&pool, &name, version, version_id)?;
                    }
                    let done = if standby {
                        format!(
                            "Done: {} runs {version}; {} is on standby",
                            computer_name(&new_name),
                            computer_name(&name)
                        )
                    } else {
                        format!("Done: running {version}")
                    };
                    self.enter(ctx, &name, HostStage::Done, &done)?;
                    return Ok(());
                }
                HostStage::Done | HostStage::Failed | HostStage::Skipped => return Ok(()),
            }
        }
    }

    /// Create the new host's NIC and VM from the release (after clearing a partner slot an older host still holds).
    async fn create_host(
        &self,
        ctx: &HostContext,
        row: &str,
        new_name: &str,
        new_vm_id: &str,
        partner: bool,
    ) -> Result<(), StepError> {
        let pool = &ctx.record.host_pool_id;
        self.enter(
            ctx,
            row,
            HostStage::Creating,
            &format!("Creating {} from {}", computer_name(new_name), ctx.record.target_version),
        )?;
        if partner {
            self.clear_standby_slot(pool, new_name, new_vm_id, &ctx.record.target_version).await?;
        }
        let rg_scope = segment_id(new_vm_id, "Microsoft.Compute").unwrap_or_default();
        let nic_id =
            format!("{rg_scope}/providers/Microsoft.Network/networkInterfaces/{}-nic", computer_name(new_name));
        // A NIC of this name that outlived its VM (deleteOption Detach) is updated in place, not orphaned.
        let waits = self.waits(Step::CreateNic);
        let took = ops::put_nic_after(&self.client, &nic_id, &ctx.profile.nic_body(), waits).await?;
        self.pace.learn(Step::CreateNic, took, self.config.scale());
        let body = ctx.profile.vm_body(
            computer_name(new_name),
            &nic_id,
            &ctx.record.target_version_id,
            &ctx.record.target_version,
            &admin_password(),
        );
        // A VM that fails to provision fails its operation, which is the error returned here.
        let took = ops::put_vm_after(&self.client, new_vm_id, &body, self.waits(Step::CreateVm)).await?;
        self.pace.learn(Step::CreateVm, took, self.config.scale());
        Ok(())
    }

    /// Join the domain (AD DS profiles) and install the AVD agent with a registration token; returns when, by
    /// Azure's clock, the agent's install finished (registration is timed from then).
    async fn register_host(&self, ctx: &HostContext, row: &str, new_vm_id: &str) -> Result<OffsetDateTime, StepError> {
        if let (Some(join), Some(password)) = (&ctx.profile.domain_join, &ctx.join_password) {
            self.enter(ctx, row, HostStage::Registering, &format!("Joining {}", join.domain))?;
            let body = ctx.profile.join_body(join, password.expose());
            let waits = self.waits(Step::JoinDomain);
            let took = ops::put_extension_after(&self.client, new_vm_id, JOIN_EXTENSION_NAME, &body, waits).await?;
            self.pace.learn(Step::JoinDomain, took, self.config.scale());
        }
        self.enter(ctx, row, HostStage::Registering, "Registering the AVD agent")?;
        let token = self.registration_token(&ctx.record.host_pool_id).await?;
        let body = ctx.profile.extension_body(&ctx.record.pool_name, &token);
        let waits = self.waits(Step::InstallAgent);
        let took = ops::put_extension_after(&self.client, new_vm_id, EXTENSION_NAME, &body, waits).await?;
        self.pace.learn(Step::InstallAgent, took, self.config.scale());
        Ok(self.client.server_now())
    }

    /// Surge: build the new host under the partner name and wait until it is Available, then drain, empty and
    /// remove (or, with standby, deallocate) the old one. Capacity never drops below the pool's size.
    async fn surge_host(&self, ctx: &HostContext, host: &RolloutHostRecord) -> Result<(), StepError> {
        let pool = ctx.record.host_pool_id.clone();
        let name = host.name.clone();
        let vm_id = host.vm_id.clone();
        let (new_name, new_vm_id) = (standby_swap(&name), standby_vm_id(&vm_id));
        let mut stage = HostStage::parse(&host.stage);
        let mut registered_at = None;
        loop {
            match stage {
                HostStage::Queued | HostStage::Creating => {
                    self.create_host(ctx, &name, &new_name, &new_vm_id, true).await?;
                    stage = HostStage::Registering;
                }
                HostStage::Registering => {
                    registered_at = Some(self.register_host(ctx, &name, &new_vm_id).await?);
                    stage = HostStage::Verifying;
                }
                HostStage::Verifying => {
                    self.enter(
                        ctx,
                        &name,
                        HostStage::Verifying,
                        "Waiting for the new host to be Available and healthy",
                    )?;
                    self.verify(ctx, &new_name, registered_at).await?;
                    stage = HostStage::Draining;
                }
                HostStage::Draining => {
                    self.drain(ctx, &name, &name, "Draining the old host: no new sessions").await?;
                    stage = HostStage::WaitingForLogoff;
                }
                HostStage::WaitingForLogoff => {
                    self.wait_for_logoff(ctx, &name, &name).await?;
                    stage = HostStage::Removing;
                }
                HostStage::Removing => {
                    self.retire_host(ctx, &name, &vm_id).await?;
                    let (version, version_id) = (&ctx.record.target_version, &ctx.record.target_version_id);
                    self.store.record_host_renamed(&pool, &name, &new_name, &new_vm_id, version, version_id)?;
                    let done = format!("Done: {} runs {version}", computer_name(&new_name));
                    self.enter(ctx, &name, HostStage::Done, &done)?;
                    return Ok(());
                }
                HostStage::Done | HostStage::Failed | HostStage::Skipped => return Ok(()),
            }
        }
    }

    /// Stop new sessions on `name` (journal row `row`). A host already unregistered (a resumed rollout, a host that
    /// died) has nothing to drain.
    async fn drain(&self, ctx: &HostContext, row: &str, name: &str, what: &str) -> Result<(), StepError> {
        self.enter(ctx, row, HostStage::Draining, what)?;
        match ops::set_allow_new_session(&self.client, &ctx.record.host_pool_id, name, false).await {
            Err(e) if !ops::is_not_found(&e) => Err(e.into()),
            _ => Ok(()),
        }
    }

    /// The replaced host leaves: with standby its VM is deallocated and its drained registration kept (a rollback
    /// starts it again in minutes); otherwise both are removed.
    async fn retire_host(&self, ctx: &HostContext, name: &str, vm_id: &str) -> Result<(), StepError> {
        if ctx.policy.standby {
            self.enter(ctx, name, HostStage::Removing, "Deallocating the old VM as standby")?;
            ops::deallocate_vm(&self.client, vm_id).await?;
            Ok(())
        } else {
            self.enter(ctx, name, HostStage::Removing, "Removing the old session host and its VM")?;
            self.remove_host(&ctx.record.host_pool_id, name, vm_id).await
        }
    }

    /// Remove a session host's registration and its VM (the NIC and OS disk go with a VM created with
    /// deleteOption Delete). Both are done when already gone.
    async fn remove_host(&self, pool: &str, name: &str, vm_id: &str) -> Result<(), StepError> {
        ops::delete_session_host(&self.client, pool, name).await?;
        let took = ops::delete_vm_after(&self.client, vm_id, self.waits(Step::DeleteVm)).await?;
        self.pace.learn(Step::DeleteVm, took, self.config.scale());
        Ok(())
    }

    /// A standby slot still holding an older host (a standby released but not yet removed, or one from a rollout
    /// before): remove it so the new host can take the name. One already on the target (a resumed create) stays.
    async fn clear_standby_slot(&self, pool: &str, name: &str, vm_id: &str, target: &str) -> Result<(), StepError> {
        if let Some(vm) = ops::get_vm(&self.client, vm_id).await? {
            if vm["tags"]["ringmaster-image-version"].as_str() != Some(target) {
                self.remove_host(pool, name, vm_id).await?;
            }
        }
        Ok(())
    }

    /// Instant rollback: start a standby host again, let it take users, then drain and remove the host that
    /// replaced it. Every step is safe to repeat.
    async fn restore_host(&self, ctx: &HostContext, host: &RolloutHostRecord) -> Result<(), StepError> {
        let pool = ctx.record.host_pool_id.clone();
        let name = host.name.clone();
        let (new_name, new_vm_id) = (standby_swap(&name), standby_vm_id(&host.vm_id));
        let mut stage = HostStage::parse(&host.stage);
        loop {
            match stage {
                HostStage::Queued | HostStage::Creating => {
                    self.enter(ctx, &name, HostStage::Creating, "Starting the standby VM")?;
                    ops::start_vm(&self.client, &host.vm_id).await?;
                    stage = HostStage::Verifying;
                }
                HostStage::Registering | HostStage::Verifying => {
                    self.enter(ctx, &name, HostStage::Verifying, "Waiting for the standby host to be Available")?;
                    // Verify also lets it take sessions again.
                    self.verify(ctx, &name, None).await?;
                    stage = HostStage::Draining;
                }
                HostStage::Draining => {
                    let what = format!("Draining {}", computer_name(&new_name));
                    self.drain(ctx, &name, &new_name, &what).await?;
                    stage = HostStage::WaitingForLogoff;
                }
                HostStage::WaitingForLogoff => {
                    self.wait_for_logoff(ctx, &name, &new_name).await?;
                    stage = HostStage::Removing;
                }
                HostStage::Removing => {
                    self.enter(ctx, &name, HostStage::Removing, &format!("Removing {}", computer_name(&new_name)))?;
                    self.remove_host(&pool, &new_name, &new_vm_id).await?;
                    let (version, version_id) = (&ctx.record.target_version, &ctx.record.target_version_id);
                    self.store.record_host_renamed(&pool, &new_name, &name, &host.vm_id, version, version_id)?;
                    self.enter(ctx, &name, HostStage::Done, &format!("Done: back on {version}"))?;
                    return Ok(());
                }
                HostStage::Done | HostStage::Failed | HostStage::Skipped => return Ok(()),
            }
        }
    }

    /// Wait until `name` has no user sessions (messaging them and logging them off per the policy); `row` is the
    /// host's journal entry.
    async fn wait_for_logoff(&self, ctx: &HostContext, row: &str, name: &str) -> Result<(), StepError> {
        let pool = &ctx.record.host_pool_id;
        let id = &ctx.record.id;
        self.store.set_host_stage(id, row, HostStage::WaitingForLogoff.as_str(), &now())?;
        let started = tokio::time::Instant::now();
        loop {
            let sessions = match ops::list_user_sessions(&self.client, pool, name).await {
                Ok(s) => s,
                Err(e) if ops::is_not_found(&e) => Vec::new(),
                Err(e) => return Err(e.into()),
            };
            self.store.set_host_sessions(id, row, sessions.len() as u32)?;
            if sessions.is_empty() {
                return Ok(());
            }
            let record = self.store.rollout_hosts(id)?.into_iter().find(|h| h.name == row);
            let messaged_at = record.and_then(|h| h.messaged_at);
            let messaged_at = match messaged_at {
                Some(t) => t,
                None => {
                    for s in &sessions {
                        if let Some(sid) = ops::user_session_id(s) {
                            ops::send_message(&self.client, pool, name, &sid, MESSAGE_TITLE, &ctx.policy.message)
                                .await?;
                        }
                    }
                    let t = now();
                    self.store.set_host_messaged(id, row, &t)?;
                    self.event(id, Some(row), "info", format!("Messaged {} user(s)", sessions.len()), None);
                    t
                }
            };
            if ctx.policy.drain_mode == DrainMode::ForceLogoff {
                let delay = self.config.minute * ctx.policy.logoff_delay_minutes;
                let since = parse_time(&messaged_at)
                    .map(|t| (OffsetDateTime::now_utc() - t).unsigned_abs())
                    .unwrap_or_default();
                if since >= delay {
                    for s in &sessions {
                        if let Some(sid) = ops::user_session_id(s) {
                            ops::log_off(&self.client, pool, name, &sid).await?;
                        }
                    }
                    self.event(id, Some(row), "info", format!("Logged off {} remaining user(s)", sessions.len()), None);
                    // Removing the registration is forced, so sessions still closing need no second look.
                    self.store.set_host_sessions(id, row, 0)?;
                    return Ok(());
                }
                tokio::time::sleep((delay - since).min(self.config.poll)).await;
            } else {
                if started.elapsed() > self.config.logoff_timeout {
                    return Err(StepError {
                        message: format!("{} user(s) still connected after the wait limit", sessions.len()),
                        request_id: None,
                    });
                }
                tokio::time::sleep(self.config.poll).await;
            }
        }
    }

    /// The pool's registration token, renewed when it is missing or expires within two hours. One task at a time:
    /// renewing replaces the token, which would break a registration using the old one.
    /// A token read in the last five (policy) minutes is reused: short enough that one renewed elsewhere is
    /// soon picked up, long enough that hosts registering together share one read.
    async fn registration_token(&self, pool: &str) -> Result<String, StepError> {
        let _guard = self.token_lock.lock().await;
        let reuse_for = self.config.minute * 5;
        let cached = self.tokens.lock().ok().and_then(|m| m.get(pool).cloned());
        if let Some((token, read_at)) = cached {
            if read_at.elapsed() < reuse_for {
                return Ok(token);
            }
        }
        let token = match ops::retrieve_registration_token(&self.client, pool).await? {
            Some((token, exp))
                if parse_time(&exp).is_some_and(|t| t - time::Duration::hours(2) > self.client.server_now()) =>
            {
                token
            }
            _ => {
                let expiry = (self.client.server_now() + time::Duration::days(1)).format(&Rfc3339).unwrap_or_default();
                ops::renew_registration_token(&self.client, pool, &expiry).await?;
                ops::retrieve_registration_token(&self.client, pool).await?.map(|(t, _)| t).ok_or(StepError {
                    message: "the host pool issued no registration token".into(),
                    request_id: None,
                })?
            }
        };
        if let Ok(mut m) = self.tokens.lock() {
            m.insert(pool.to_string(), (token.clone(), tokio::time::Instant::now()));
        }
        Ok(token)
    }

    async fn verify(
        &self,
        ctx: &HostContext,
        name: &str,
        registered_at: Option<OffsetDateTime>,
    ) -> Result<(), StepError> {
        let started = tokio::time::Instant::now();
        let mut checks = 0u32;
        // The agent takes minutes to register: look when registrations have usually finished, then when nearly all
        // have, then every poll interval.
        let waits = self.waits(Step::Register);
        tokio::time::sleep(waits[0]).await;
        loop {
            if let Some(h) = ops::get_session_host(&self.client, &ctx.record.host_pool_id, name).await? {
                let p = &h["properties"];
                let failed: Vec<&str> = p["sessionHostHealthCheckResults"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter(|c| c["healthCheckResult"] == "HealthCheckFailed")
                            .filter_map(|c| c["healthCheckName"].as_str())
                            .collect()
                    })
                    .unwrap_or_default();
                if p["status"] == "Available" && failed.is_empty() {
                    // How long the agent took, by the session host's own status time.
                    let status_at = p["statusTimestamp"].as_str().and_then(parse_time);
                    if let (Some(began), Some(at)) = (registered_at, status_at) {
                        self.pace.learn(Step::Register, Duration::try_from(at - began).ok(), self.config.scale());
                    }
                    if p["allowNewSession"] == false {
                        ops::set_allow_new_session(&self.client, &ctx.record.host_pool_id, name, true).await?;
                    }
                    return Ok(());
                }
            }
            if started.elapsed() > self.config.verify_timeout {
                return Err(StepError {
                    message: "the host did not register as Available in time: check the AVD agent and the session host health \
                              checks"
                        .into(),
                    request_id: None,
                });
            }
            // Registration takes minutes: check often at first, then less (up to 4x the poll interval).
            let backoff = self.config.poll.saturating_mul(1 << checks.min(2));
            tokio::time::sleep(if checks == 0 { backoff.max(waits[1]) } else { backoff }).await;
            checks += 1;
        }
    }

    pub fn view(&self, id: &str) -> Result<RolloutView, EngineError> {
        let r = self.record(id)?;
        let policy: RolloutPolicy = serde_json::from_str(&r.policy).unwrap_or_default();
        let hosts = self.store.rollout_hosts(id)?;
        let pool_size = self.pool_size(&r.host_pool_id).max(hosts.len() as u32);
        let cap = effective_capacity(&policy, pool_size);
        let progress: Vec<HostProgress> = hosts
            .iter()
            .map(|h| HostProgress {
                name: h.name.clone(),
                stage: HostStage::parse(&h.stage),
                sessions: h.sessions,
                started_at: h.started_at.clone(),
                finished_at: h.finished_at.clone(),
                error: h.error.clone(),
                request_id: h.request_id.clone(),
            })
            .collect();
        let stages = HostStage::ALL
            .iter()
            .map(|s| StageCount { stage: *s, hosts: progress.iter().filter(|h| h.stage == *s).count() as u32 })
            .collect();
        let done = progress.iter().filter(|h| h.stage == HostStage::Done).count() as u32;
        let remaining = progress.iter().filter(|h| h.stage == HostStage::Queued || h.stage.in_flight()).count() as u32;
        let eta_minutes = (RolloutState::parse(&r.state) == RolloutState::Running && remaining > 0)
            .then(|| remaining.div_ceil(cap.max(1)) * minutes_per_host(&policy));
        Ok(RolloutView {
            users_connected: progress
                .iter()
                .filter(|h| h.stage == HostStage::WaitingForLogoff)
                .map(|h| h.sessions)
                .sum(),
            total: progress.len() as u32,
            done,
            eta_minutes,
            stages,
            hosts: progress,
            events: self
                .store
                .rollout_events(id, 200)?
                .into_iter()
                .map(|e| RolloutEvent {
                    at: e.at,
                    host: e.host,
                    level: e.level,
                    message: e.message,
                    request_id: e.request_id,
                })
                .collect(),
            state: RolloutState::parse(&r.state),
            max_out_of_service: cap,
            policy,
            id: r.id,
            kind: r.kind,
            host_pool_id: r.host_pool_id,
            pool_name: r.pool_name,
            ring: r.ring,
            target_version: r.target_version,
            previous_version: r.previous_version,
            reason: r.reason,
            created_at: r.created_at,
            finished_at: r.finished_at,
            standby_kept: false,
        })
    }

    pub fn list(&self) -> Result<Vec<RolloutSummary>, EngineError> {
        summaries(&self.store)
    }
}

/// Every rollout in the journal, newest first, as the UI lists them.
pub fn summaries(store: &Store) -> Result<Vec<RolloutSummary>, EngineError> {
    let mut out = Vec::new();
    for r in store.rollouts()? {
        let hosts = store.rollout_hosts(&r.id)?;
        out.push(RolloutSummary {
            done: hosts.iter().filter(|h| h.stage == "done").count() as u32,
            total: hosts.len() as u32,
            state: RolloutState::parse(&r.state),
            id: r.id,
            kind: r.kind,
            host_pool_id: r.host_pool_id,
            pool_name: r.pool_name,
            ring: r.ring,
            target_version: r.target_version,
            created_at: r.created_at,
            finished_at: r.finished_at,
        });
    }
    Ok(out)
}

struct HostContext {
    record: RolloutRecord,
    policy: RolloutPolicy,
    profile: DeploymentProfile,
    /// The domain join account's password, from the secret store (in memory only, for this run).
    join_password: Option<ringmaster_secrets::Secret>,
}

/// Prod by its display name (`Prod`, `Production`).
pub fn is_prod_ring(ring: &str) -> bool {
    matches!(ring.to_ascii_lowercase().as_str(), "prod" | "production")
}

pub(crate) fn uuid_like() -> String {
    let mut rng = rand::rng();
    (0..12).map(|_| char::from_digit(rng.random_range(0..36), 36).unwrap_or('0')).collect()
}

#[cfg(test)]
mod partner_tests {
    use super::*;

    #[test]
    fn partner_names_swap_both_ways_and_keep_the_domain() {
        assert_eq!(standby_swap("avd-3"), "avd-3-r");
        assert_eq!(standby_swap("avd-3-r"), "avd-3");
        assert_eq!(standby_swap("avdtst-001.corp.contoso.com"), "avdtst-001-r.corp.contoso.com");
        assert_eq!(standby_swap("avdtst-001-r.corp.contoso.com"), "avdtst-001.corp.contoso.com");
        assert_eq!(
            standby_vm_id("/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/avd-3"),
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/avd-3-r"
        );
    }

    #[test]
    fn surge_is_checked_against_the_free_regional_vcpus() {
        assert_eq!(vcpus_of("Standard_D4s_v5"), Some(4));
        assert_eq!(vcpus_of("Standard_NV36ads_A10_v5"), Some(36));
        assert_eq!(vcpus_of("Standard_B2ms"), Some(2));
        assert_eq!(vcpus_of("D4s_v5"), None);
        assert_eq!(surge_quota_problem(5, "Standard_D4s_v5", "westeurope", Some(20)), None);
        let p = surge_quota_problem(6, "Standard_D4s_v5", "westeurope", Some(20)).unwrap();
        assert!(p.starts_with("Surge needs 24 vCPUs in westeurope at once (6 x Standard_D4s_v5)"), "{p}");
        assert!(p.contains("has 20 of its regional vCPU quota free"), "{p}");
        assert_eq!(surge_quota_problem(6, "Standard_D4s_v5", "westeurope", None), None, "no usage: not checked");
    }

    #[test]
    fn a_partner_name_too_long_for_windows_blocks_standby_and_surge() {
        let input = |name: &str| PlanInput {
            host_pool_id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DesktopVirtualization/hostPools/hp"
                .into(),
            pool_name: "hp".into(),
            ring: "Test".into(),
            location: "westeurope".into(),
            target_version: "2".into(),
            target_version_id: "v2".into(),
            replication_state_in_region: "Completed".into(),
            replicas_in_region: 5,
            unfinished_rollout: None,
            hosts: vec![PlannedHost {
                name: name.into(),
                vm_id: format!("/x/{name}"),
                sessions: 0,
                state: HostState::Available,
                current_version: "1".into(),
            }],
        };
        let surge = RolloutPolicy { surge: true, ..RolloutPolicy::default() };
        assert!(plan(input("avdprod-00001"), &surge).blockers.is_empty());
        let blocked = plan(input("avdprod-000001.corp.contoso.com"), &surge);
        assert!(blocked.blockers.iter().any(|b| b.message.contains("longer than the 15 characters")), "{blocked:?}");
        assert!(blocked.warnings.iter().any(|w| w.starts_with("Surge:")));
    }
}

#[cfg(test)]
mod pace_tests {
    use super::*;

    #[test]
    fn polls_wait_for_the_median_then_the_90th_percentile_of_azures_own_timings() {
        let pace = Pace::default();
        let min = |m: u64| Duration::from_secs(m * 60);
        for m in [4, 9, 6, 5] {
            pace.learn(Step::CreateVm, Some(min(m)), 1.0);
        }
        // Too few to go by.
        assert_eq!(pace.waits(Step::CreateVm), [Duration::ZERO; 2]);
        pace.learn(Step::CreateVm, None, 1.0);
        assert_eq!(pace.waits(Step::CreateVm), [Duration::ZERO; 2], "no timing from Azure, nothing learned");
        for m in [7, 8, 4, 6, 5, 9] {
            pace.learn(Step::CreateVm, Some(min(m)), 1.0);
        }
        // Ten samples 4..9 minutes: median 6, 90th percentile 9 (3 more).
        assert_eq!(pace.waits(Step::CreateVm), [min(6), min(3)]);
        // Other steps learn apart.
        assert_eq!(pace.waits(Step::DeleteVm), [Duration::ZERO; 2]);
    }

    #[test]
    fn a_faster_tenant_clock_scales_what_is_learned_and_old_samples_age_out() {
        let pace = Pace::default();
        for _ in 0..Pace::WINDOW {
            pace.learn(Step::Register, Some(Duration::from_secs(600)), 1.0);
        }
        assert_eq!(pace.waits(Step::Register)[0], Duration::from_secs(600));
        // The region got quicker: a window of new samples replaces the old ones.
        for _ in 0..Pace::WINDOW {
            pace.learn(Step::Register, Some(Duration::from_secs(300)), 0.01);
        }
        assert_eq!(pace.waits(Step::Register), [Duration::from_secs(3), Duration::ZERO]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, sessions: u32, state: HostState, version: &str) -> PlannedHost {
        PlannedHost {
            name: name.into(),
            vm_id: format!("/vm/{name}"),
            sessions,
            state,
            current_version: version.into(),
        }
    }

    fn input(hosts: Vec<PlannedHost>) -> PlanInput {
        PlanInput {
            host_pool_id: "/hp".into(),
            pool_name: "hp".into(),
            ring: "test".into(),
            location: "westeurope".into(),
            target_version: "2".into(),
            target_version_id: "/v/2".into(),
            replication_state_in_region: "Completed".into(),
            replicas_in_region: 2,
            unfinished_rollout: None,
            hosts,
        }
    }

    #[test]
    fn policy_validation_says_what_to_fix() {
        let mut p = RolloutPolicy { capacity: CapacityLimit::Hosts { hosts: 10 }, ..RolloutPolicy::default() };
        p.logoff_delay_minutes = 90;
        p.message = "x".repeat(261);
        p.max_failures = 0;
        let problems = validate_policy(&p, 10);
        let fields: Vec<&str> = problems.iter().map(|p| p.field.as_str()).collect();
        assert_eq!(fields, ["capacity", "logoffDelayMinutes", "message", "maxFailures"]);
        assert!(problems[0].message.contains("use at most 9"), "{}", problems[0].message);
        assert!(problems[2].message.contains("261 characters"));
        assert!(validate_policy(&RolloutPolicy::default(), 10).is_empty());
        let p = RolloutPolicy { capacity: CapacityLimit::Percent { percent: 0 }, ..RolloutPolicy::default() };
        assert_eq!(validate_policy(&p, 10)[0].field, "capacity");
        let p = RolloutPolicy { message: "  ".into(), ..RolloutPolicy::default() };
        assert_eq!(validate_policy(&p, 10)[0].field, "message");
        // 260 characters, multi-byte, is fine.
        let p = RolloutPolicy { message: "é".repeat(260), ..RolloutPolicy::default() };
        assert!(validate_policy(&p, 10).is_empty());
    }

    #[test]
    fn capacity_never_empties_the_pool() {
        let p = |c| RolloutPolicy { capacity: c, ..RolloutPolicy::default() };
        assert_eq!(effective_capacity(&p(CapacityLimit::Percent { percent: 20 }), 50), 10);
        assert_eq!(effective_capacity(&p(CapacityLimit::Percent { percent: 20 }), 4), 1);
        assert_eq!(effective_capacity(&p(CapacityLimit::Percent { percent: 100 }), 4), 3);
        assert_eq!(effective_capacity(&p(CapacityLimit::Hosts { hosts: 7 }), 4), 3);
        assert_eq!(effective_capacity(&p(CapacityLimit::Hosts { hosts: 2 }), 1), 1);
    }

    #[test]
    fn preflight_blocks_too_few_replicas_and_an_unfinished_rollout() {
        let hosts: Vec<PlannedHost> = (0..100).map(|i| host(&format!("h{i}"), 0, HostState::Available, "1")).collect();
        let wide = RolloutPolicy { capacity: CapacityLimit::Hosts { hosts: 50 }, ..RolloutPolicy::default() };
        let mut i = input(hosts.clone());
        i.replicas_in_region = 2;
        let p = plan(i, &wide);
        assert_eq!(p.blockers.len(), 1, "{:?}", p.blockers);
        assert!(p.blockers[0].message.contains("needs 3"), "{}", p.blockers[0].message);
        let mut i = input(hosts.clone());
        i.replicas_in_region = 3;
        assert!(plan(i, &wide).blockers.is_empty());
        let mut i = input(hosts);
        i.unfinished_rollout = Some(("r42".into(), "failed".into()));
        let p = plan(i, &RolloutPolicy::default());
        assert!(p.blockers.iter().any(|b| b.field == "pool" && b.message.contains("r42 of this pool is failed")));
    }

    #[test]
    fn plan_orders_unhealthy_then_emptiest_and_skips_current() {
        let hosts = vec![
            host("a", 5, HostState::Available, "1"),
            host("b", 0, HostState::Available, "1"),
            host("c", 3, HostState::Unavailable, "1"),
            host("d", 1, HostState::Available, "2"),
            host("e", 0, HostState::Draining, "1"),
        ];
        let p = plan(input(hosts), &RolloutPolicy::default());
        let order: Vec<&str> = p.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(order, ["c", "e", "b", "a"]);
        assert_eq!(p.already_current, 1);
        assert_eq!(p.users_now, 8);
        assert_eq!(p.max_out_of_service, 1);
        assert!(p.blockers.is_empty());
        // canary wave + 3 more waves of 1, each 15 min delay + 15 min work.
        assert_eq!(p.estimated_minutes, 4 * 30);
    }

    #[test]
    fn an_unreplicated_version_blocks_the_plan() {
        let mut i = input(vec![host("a", 0, HostState::Available, "1"), host("b", 0, HostState::Available, "1")]);
        i.replication_state_in_region = "Replicating".into();
        let p = plan(i, &RolloutPolicy::default());
        assert_eq!(p.blockers.len(), 1);
        assert!(p.blockers[0].message.contains("not replicated to westeurope"));
    }

    #[test]
    fn admin_passwords_meet_azure_complexity_and_differ() {
        let a = admin_password();
        let b = admin_password();
        assert_ne!(a, b);
        assert_eq!(a.len(), 24);
        assert!(a.chars().any(|c| c.is_ascii_uppercase()));
        assert!(a.chars().any(|c| c.is_ascii_lowercase()));
        assert!(a.chars().any(|c| c.is_ascii_digit()));
        assert!(a.chars().any(|c| !c.is_ascii_alphanumeric()));
    }

    #[test]
    fn the_profile_is_read_off_a_vm_and_builds_spec_shaped_bodies() {
        let vm = json!({
            "location": "westeurope", "tags": {"cost-center": "IT", "ringmaster-image-version": "1"},
            "properties": {
                "hardwareProfile": {"vmSize": "Standard_D8s_v5"},
                "storageProfile": {"osDisk": {"managedDisk": {"storageAccountType": "Premium_LRS"}, "diskSizeGB": 128}},
                "osProfile": {"adminUsername": "rmadmin"},
                "securityProfile": {"securityType": "TrustedLaunch"},
                "licenseType": "Windows_Client",
                "networkProfile": {"networkInterfaces": [{"id": "/nic"}]}
            }
        });
        let nic = json!({"properties": {"ipConfigurations": [{"properties": {"subnet": {"id": "/subnets/avd"}}}]}});
        let p = DeploymentProfile::from_vm(&vm, &nic).unwrap();
        assert_eq!(p.subnet_id, "/subnets/avd");
        assert!(!p.tags.contains_key("ringmaster-image-version"));
        let body = p.vm_body("avd-1", "/nic", "/v/2", "2", "pw");
        assert_eq!(body["properties"]["storageProfile"]["imageReference"]["id"], "/v/2");
        assert_eq!(body["properties"]["osProfile"]["computerName"], "avd-1");
        assert_eq!(
            body["properties"]["networkProfile"]["networkInterfaces"][0]["properties"]["deleteOption"],
            "Delete"
        );
        assert_eq!(body["tags"]["ringmaster-image-version"], "2");
        let ext = p.extension_body("hp", "tok");
        assert_eq!(ext["properties"]["protectedSettings"]["Items"]["RegistrationInfoToken"], "tok");
        assert_eq!(ext["properties"]["settings"]["configurationArguments"]["hostPoolName"], "hp");
    }
}
