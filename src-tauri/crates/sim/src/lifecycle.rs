//! The tenant as it changes over sim time: long-running operations that complete at a sim time and apply their
//! effect then, AVD agents that register a while after their extension ran, users who log off drained hosts by
//! themselves, and the safety counters a rollout is judged by.
//!
//! Nothing here runs in the background: [`Tenant::advance`] is called at the start of every request (and when
//! stats are read) and applies, in time order, everything that has fallen due on the sim clock since.

use std::collections::{BTreeMap, HashMap};

use rand::Rng;
use serde::Serialize;
use serde_json::{json, Value};
use time::{Duration, OffsetDateTime};

use crate::tenant::{rfc3339, Tenant};

/// The AD domain session hosts register under (`{computerName}.corp.contoso.com`), as in the seeds.
pub const HOST_DOMAIN: &str = "corp.contoso.com";
/// A drained, empty host with no activity for this long counts as forgotten in drain.
pub const DRAINED_IDLE_AFTER: Duration = Duration::minutes(30);

pub const VM_TYPE: &str = "Microsoft.Compute/virtualMachines";
pub const EXTENSION_TYPE: &str = "Microsoft.Compute/virtualMachines/extensions";
pub const NIC_TYPE: &str = "Microsoft.Network/networkInterfaces";
pub const DISK_TYPE: &str = "Microsoft.Compute/disks";
pub const POOL_TYPE: &str = "Microsoft.DesktopVirtualization/hostpools";
pub const HOST_TYPE: &str = "Microsoft.DesktopVirtualization/hostpools/sessionhosts";
pub const SESSION_TYPE: &str = "Microsoft.DesktopVirtualization/hostpools/sessionhosts/usersessions";
pub const SNAPSHOT_TYPE: &str = "Microsoft.Compute/snapshots";
pub const RUN_COMMAND_TYPE: &str = "Microsoft.Compute/virtualMachines/runCommands";
pub const VERSION_TYPE: &str = "Microsoft.Compute/galleries/images/versions";
/// The tag that marks a golden master VM; its value names the gallery image definition the master's captures become
/// versions of.
pub const MASTER_TAG: &str = "ringmaster-golden-master";
/// The tag the app puts on every temporary resource of a capture (snapshot, disk, NIC, VM).
pub const CAPTURE_TAG: &str = "ringmaster-capture";

/// What an operation does to the tenant when it completes.
#[derive(Debug, Clone)]
pub enum Effect {
    /// Merge the PATCH body into the resource (gallery image version update).
    Merge(Value),
    CreateVm {
        fail: bool,
    },
    DeleteVm,
    Deallocate,
    Start,
    PowerOff,
    Extension {
        dsc: Option<DscRun>,
    },
    CreateNic,
    DeleteNic,
    DeleteDisk,
    DeleteSnapshot,
    /// A disk or snapshot (create or update) reaches `Succeeded`.
    Provisioned,
    /// A managed run command's PUT: ended by its script's timeline (see `runcommand`), never at `completes_at`.
    RunCommand,
    DeleteRunCommand,
    /// A gallery image version captured from a VM: it succeeds only if the VM (same `vmId`) is still there.
    CreateVersion {
        vm_id: String,
        vm_guid: String,
    },
    DeleteVersion,
}

/// The AVD agent install the DSC extension performs: which pool, with which registration token.
#[derive(Debug, Clone)]
pub struct DscRun {
    pub host_pool: String,
    pub token: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum OpState {
    InProgress,
    Succeeded,
    /// `http` is the status the `Location` URL answers with; `error` is ARM's `{code, message}`.
    Failed {
        http: u16,
        error: Value,
    },
    Canceled {
        error: Value,
    },
}

/// What the `Location` URL answers once the operation succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Final {
    /// 200 with the resource as it is now (PUT, PATCH).
    Resource,
    /// 204 (DELETE).
    NoContent,
    /// 200 without a body (POST actions).
    Empty,
}

/// A long-running operation: it completes at `completes_at` on the sim clock, whether or not anyone polls.
#[derive(Debug, Clone)]
pub struct AsyncOp {
    pub id: String,
    /// `Microsoft.Compute` or `Microsoft.Network`: where its polling URLs live.
    pub namespace: &'static str,
    pub subscription: String,
    pub location: String,
    pub resource_id: String,
    /// The operation's verb, for conflict messages (`create`, `delete`, `deallocate`, ...).
    pub action: &'static str,
    pub effect: Effect,
    pub started: OffsetDateTime,
    pub completes_at: OffsetDateTime,
    pub ended: Option<OffsetDateTime>,
    pub api_version: String,
    pub state: OpState,
    pub result: Final,
    /// Ended by something else than the clock (a run command's script); `completes_at` is then only an estimate
    /// for `Retry-After`.
    pub external: bool,
}

/// What the sim knows about a VM beyond its ARM JSON.
#[derive(Debug, Clone)]
pub struct VmState {
    /// `starting`, `running`, `stopping`, `stopped`, `deallocating`, `deallocated`.
    pub power: &'static str,
    pub last_touch: OffsetDateTime,
    /// The create body without secrets: a PUT with the same body is idempotent.
    pub request: Value,
    /// Sysprep /generalize ran to its end in the guest.
    pub sysprepped: bool,
    /// `VirtualMachines_Generalize` was called (instance view `OSState/generalized`).
    pub generalized: bool,
}

impl VmState {
    pub fn new(power: &'static str, at: OffsetDateTime, request: Value) -> VmState {
        VmState { power, last_touch: at, request, sysprepped: false, generalized: false }
    }
}

/// An AVD agent due to register its VM with a host pool.
#[derive(Debug, Clone)]
pub struct Registration {
    pub at: OffsetDateTime,
    pub vm_id: String,
    pub pool_id: String,
    pub fqdn: String,
}

#[derive(Debug, Clone)]
pub struct RegToken {
    pub token: String,
    pub expires: OffsetDateTime,
}

/// A session host drained through the API, and when anything last happened to it.
#[derive(Debug, Clone)]
pub struct Drain {
    pub activity: OffsetDateTime,
    pub vm_id: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    pub message_title: String,
    pub message_body: String,
    pub sent_at: String,
}

/// The tenant's moving parts. Keys are lower-cased resource ids unless said otherwise.
#[derive(Debug, Default)]
pub struct SimState {
    pub ops: HashMap<String, AsyncOp>,
    pub vms: BTreeMap<String, VmState>,
    /// Extension instance views by extension id.
    pub ext_status: BTreeMap<String, Value>,
    pub registrations: Vec<Registration>,
    /// The registration token of each host pool.
    pub tokens: BTreeMap<String, RegToken>,
    /// When each user session logs off by itself (on a drained host, or at the end of its working session).
    pub session_ends: BTreeMap<String, OffsetDateTime>,
    /// When the next user logs on, while users come and go over the day.
    pub next_logon: Option<OffsetDateTime>,
    pub next_session_seq: u64,
    pub drained: BTreeMap<String, Drain>,
    /// Messages sent to each user session, by the session id as served.
    pub messages: BTreeMap<String, Vec<Message>>,
    /// Session hosts of each pool at seed time.
    pub pool_baseline: BTreeMap<String, u64>,
    /// By pool id as served.
    pub max_out_of_service: BTreeMap<String, u64>,
    pub vm_creates: u64,
    pub next_ip: u32,
    /// Managed run command executions by run command id.
    pub runs: BTreeMap<String, crate::runcommand::ScriptRun>,
    pub next_run_seq: u64,
    /// What happens to a VM's guest later on: sysprep finishing in the background, a shutdown.
    pub vm_timers: Vec<crate::runcommand::VmTimer>,
    /// Every change to a golden master that a capture must never make (see `Stats::master_violations`).
    pub master_violations: Vec<String>,
    /// Gallery image version PUT bodies, by version id: the same body again is idempotent.
    pub version_requests: BTreeMap<String, Value>,
    /// Compute quota limits raised above the defaults at seed time, by `sub|location|usage name`.
    pub quota: BTreeMap<String, u64>,
}

/// A uniform random duration between `lo` and `hi` sim-minutes.
pub fn minutes(lo: f64, hi: f64) -> Duration {
    Duration::seconds_f64(rand::rng().random_range(lo * 60.0..=hi * 60.0))
}

/// The wait until the next user logs on: about one every 2 minutes in working hours (07:00-18:00 UTC), one every 20
/// at night, exponentially distributed.
fn next_arrival(at: OffsetDateTime) -> Duration {
    let mean_s = if (7..18).contains(&at.hour()) { 120.0 } else { 1200.0 };
    let u: f64 = rand::rng().random_range(f64::EPSILON..1.0);
    Duration::seconds_f64(-u.ln() * mean_s)
}

pub fn lower(id: &str) -> String {
    id.to_ascii_lowercase()
}

/// The resource group id of a resource id.
pub fn rg_of(id: &str) -> String {
    id.split('/').take(5).collect::<Vec<_>>().join("/")
}

/// The host pool id a session host or user session id lives under.
pub fn pool_of(id: &str) -> Option<String> {
    let l = lower(id);
    l.find("/sessionhosts/").map(|i| id[..i].to_string())
}

/// The session host id a user session id lives under.
pub fn host_of(session_id: &str) -> Option<String> {
    let l = lower(session_id);
    l.find("/usersessions/").map(|i| session_id[..i].to_string())
}

fn name_of(id: &str) -> &str {
    id.rsplit('/').next().unwrap_or_default()
}

impl SimState {
    /// A private IP for a new NIC, unique in the tenant.
    pub fn allocate_ip(&mut self) -> String {
        let n = self.next_ip;
        self.next_ip += 1;
        format!("10.{}.{}.{}", 20 + (n / 62_500) % 200, (n / 250) % 250, n % 250 + 4)
    }

    /// The operation in flight on a VM or one of its extensions.
    pub fn busy(&self, vm_id: &str) -> Option<&AsyncOp> {
        let vm = lower(vm_id);
        let child = format!("{vm}/");
        self.ops.values().filter(|o| o.state == OpState::InProgress).find(|o| {
            let r = lower(&o.resource_id);
            r == vm || r.starts_with(&child)
        })
    }

    /// The operation in flight on exactly this resource.
    pub fn in_flight(&self, id: &str) -> Option<&AsyncOp> {
        self.ops.values().find(|o| o.state == OpState::InProgress && o.resource_id.eq_ignore_ascii_case(id))
    }
}

impl Tenant {
    /// Whether anything has fallen due at `now` (cheap; under the read lock).
    pub fn has_due(&self, now: OffsetDateTime) -> bool {
        let s = &self.sim;
        s.ops.values().any(|o| o.state == OpState::InProgress && !o.external && o.completes_at <= now)
            || s.registrations.iter().any(|r| r.at <= now)
            || s.session_ends.values().any(|t| *t <= now)
            || s.next_logon.is_some_and(|t| t <= now)
            || self.next_script_event().is_some_and(|(t, _)| t <= now)
    }

    /// Apply, in sim-time order, everything due at `now`. `never_register`: VM name parts whose agent never
    /// registers (`agentNeverRegisters`).
    pub fn advance(&mut self, now: OffsetDateTime, never_register: &[String]) {
        // Users first, in time order: log-offs and log-ons touch only sessions and counts.
        while let Some(at) = self.sim.next_logon.filter(|t| *t <= now) {
            self.end_sessions_until(at);
            self.log_on(at);
            self.sim.next_logon = Some(at + next_arrival(at));
        }
        self.end_sessions_until(now);
        loop {
            let op = self
                .sim
                .ops
                .values()
                .filter(|o| o.state == OpState::InProgress && !o.external && o.completes_at <= now)
                .min_by_key(|o| o.completes_at)
                .map(|o| (o.completes_at, o.id.clone()));
            let script = self.next_script_event().filter(|(t, _)| *t <= now);
            let reg = self.sim.registrations.iter().enumerate().filter(|(_, r)| r.at <= now).min_by_key(|(_, r)| r.at);
            let reg = reg.map(|(i, r)| (r.at, i));
            // Earliest first; on a tie operations go before scripts, scripts before agents.
            let far = now + Duration::days(1);
            let (ot, st, rt) = (
                op.as_ref().map_or(far, |o| o.0),
                script.as_ref().map_or(far, |s| s.0),
                reg.as_ref().map_or(far, |r| r.0),
            );
            if let Some((_, id)) = op.filter(|_| ot <= st && ot <= rt) {
                self.complete(&id, never_register);
            } else if let Some((at, event)) = script.filter(|_| st <= rt) {
                self.apply_script_event(event, at);
            } else if let Some((_, i)) = reg {
                let r = self.sim.registrations.remove(i);
                self.register(&r);
            } else {
                break;
            }
        }
    }

    /// Apply a completed operation's effect at its completion time.
    fn complete(&mut self, op_id: &str, never_register: &[String]) {
        let Some(op) = self.sim.ops.get(op_id).cloned() else { return };
        let at = op.completes_at;
        let state = match &op.effect {
            Effect::Merge(patch) => {
                if let Some(v) = self.get_mut(&op.resource_id) {
                    if v["properties"]["provisioningState"] == json!("Updating") {
                        crate::arm::merge(v, patch);
                        v["properties"]["provisioningState"] = json!("Succeeded");
                    }
                }
                OpState::Succeeded
            }
            Effect::CreateVm { fail } => self.finish_vm_create(&op, *fail),
            Effect::DeleteVm => {
                self.remove_vm(&op.resource_id, at);
                OpState::Succeeded
            }
            Effect::Deallocate | Effect::Start | Effect::PowerOff => {
                let power = match op.effect {
                    Effect::Start => "running",
                    Effect::PowerOff => "stopped",
                    _ => "deallocated",
                };
                self.finish_power(&op.resource_id, power, at);
                OpState::Succeeded
            }
            Effect::Extension { dsc } => self.finish_extension(&op, dsc.as_ref(), never_register),
            Effect::CreateNic => {
                if let Some(nic) =
                    self.get_mut(&op.resource_id).filter(|n| n["properties"]["provisioningState"] == "Updating")
                {
                    nic["properties"]["provisioningState"] = json!("Succeeded");
                    if let Some(confs) = nic["properties"]["ipConfigurations"].as_array_mut() {
                        for c in confs {
                            c["properties"]["provisioningState"] = json!("Succeeded");
                        }
                    }
                }
                OpState::Succeeded
            }
            Effect::DeleteNic | Effect::DeleteDisk | Effect::DeleteSnapshot => {
                self.resources.remove(&lower(&op.resource_id));
                OpState::Succeeded
            }
            Effect::Provisioned => {
                if let Some(v) = self.get_mut(&op.resource_id) {
                    v["properties"]["provisioningState"] = json!("Succeeded");
                }
                OpState::Succeeded
            }
            // Ended by the script (`runcommand`); never due on the clock.
            Effect::RunCommand => OpState::Succeeded,
            Effect::DeleteRunCommand => {
                self.remove_run_command(&op.resource_id);
                OpState::Succeeded
            }
            Effect::CreateVersion { vm_id, vm_guid } => self.finish_version(&op, vm_id, vm_guid),
            Effect::DeleteVersion => {
                self.resources.remove(&lower(&op.resource_id));
                self.replication.remove(&lower(&op.resource_id));
                self.sim.version_requests.remove(&lower(&op.resource_id));
                OpState::Succeeded
            }
        };
        if let Some(o) = self.sim.ops.get_mut(op_id) {
            o.state = state;
            o.ended = Some(at);
        }
        if op.resource_id.to_ascii_lowercase().contains("/microsoft.compute/virtualmachines/") {
            let vm = vm_of(&op.resource_id);
            self.touch_vm(&vm, at);
        }
    }

    fn finish_vm_create(&mut self, op: &AsyncOp, fail: bool) -> OpState {
        let key = lower(&op.resource_id);
        let Some(vm) = self.resources.get_mut(&key) else { return OpState::Succeeded };
        let name = vm["name"].as_str().unwrap_or_default().to_string();
        if fail {
            vm["properties"]["provisioningState"] = json!("Failed");
            if let Some(s) = self.sim.vms.get_mut(&key) {
                s.power = "running";
            }
            return OpState::Failed {
                http: 409,
                error: json!({
                    "code": "OSProvisioningClientError",
                    "message": format!("OS provisioning for VM '{name}' failed. Error details: The VM guest agent reported a failure during Windows setup (simulated by the failProvisioning fault). Make sure the image has been properly prepared (generalized)."),
                }),
            };
        }
        vm["properties"]["provisioningState"] = json!("Succeeded");
        if let Some(s) = self.sim.vms.get_mut(&key) {
            s.power = "running";
        }
        OpState::Succeeded
    }

    /// A power operation ends: `power` is `running`, `stopped` or `deallocated`.
    fn finish_power(&mut self, vm_id: &str, power: &'static str, at: OffsetDateTime) {
        let key = lower(vm_id);
        if let Some(vm) = self.resources.get_mut(&key) {
            vm["properties"]["provisioningState"] = json!("Succeeded");
        }
        self.sim.vms.entry(key).or_insert(VmState::new("running", at, Value::Null)).power = power;
        let running = power == "running";
        self.set_host_status_for_vm(vm_id, if running { "Available" } else { "Shutdown" }, at);
        if !running {
            let op = if power == "stopped" { "VirtualMachines_PowerOff" } else { "VirtualMachines_Deallocate" };
            self.note_master(vm_id, &format!("{power} ({op})"), at);
            self.interrupt_runs(vm_id, at, "The VM stopped while the run command was pending or running.");
        }
    }

    /// Whether a VM (its ARM JSON) is tagged as a golden master.
    pub fn is_master_json(vm: &Value) -> bool {
        vm["tags"].as_object().is_some_and(|t| t.keys().any(|k| k.eq_ignore_ascii_case(MASTER_TAG)))
    }

    /// Record something a golden master must never go through, if `vm_id` is one.
    pub fn note_master(&mut self, vm_id: &str, what: &str, at: OffsetDateTime) {
        if let Some(vm) = self.get(vm_id).filter(|v| Tenant::is_master_json(v)) {
            let id = vm["id"].as_str().unwrap_or(vm_id).to_string();
            self.sim.master_violations.push(format!("{id}: {what} at {}", rfc3339(at)));
        }
    }

    /// Existing VMs, NICs, disks and snapshots tagged `ringmaster-capture` that are not being deleted.
    pub fn capture_leftovers(&self) -> Vec<String> {
        self.resources
            .values()
            .filter(|v| {
                let t = v["type"].as_str().unwrap_or_default();
                [VM_TYPE, NIC_TYPE, DISK_TYPE, SNAPSHOT_TYPE].iter().any(|k| k.eq_ignore_ascii_case(t))
                    && v["tags"].as_object().is_some_and(|t| t.keys().any(|k| k.eq_ignore_ascii_case(CAPTURE_TAG)))
                    && v["properties"]["provisioningState"] != json!("Deleting")
            })
            .filter_map(id_of)
            .collect()
    }

    fn finish_extension(&mut self, op: &AsyncOp, dsc: Option<&DscRun>, never_register: &[String]) -> OpState {
        let at = op.completes_at;
        let ext_key = lower(&op.resource_id);
        let vm_id = vm_of(&op.resource_id);
        let Some(ext) = self.resources.get(&ext_key).cloned() else { return OpState::Succeeded };
        let ext_name = ext["name"].as_str().unwrap_or_default().to_string();
        let publisher = ext["properties"]["publisher"].as_str().unwrap_or_default().to_string();
        let ext_type = ext["properties"]["type"].as_str().unwrap_or_default().to_string();
        let handler = ext["properties"]["typeHandlerVersion"].as_str().unwrap_or("1.0").to_string();
        let view = |code: &str, level: &str, display: &str, message: &str| {
            json!({
                "name": ext_name,
                "type": format!("{publisher}.{ext_type}"),
                "typeHandlerVersion": handler,
                "statuses": [{"code": code, "level": level, "displayStatus": display, "message": message, "time": rfc3339(at)}]
            })
        };
        let outcome = match dsc {
            None => Ok(None),
            Some(run) => self.check_registration(&vm_id, run, at),
        };
        match outcome {
            Ok(pool) => {
                if let Some(e) = self.resources.get_mut(&ext_key) {
                    e["properties"]["provisioningState"] = json!("Succeeded");
                }
                let message = if dsc.is_some() {
                    "DSC configuration 'AddSessionHost' was applied successfully: the Azure Virtual Desktop agent is installed."
                } else {
                    "Enable succeeded."
                };
                self.sim
                    .ext_status
                    .insert(ext_key, view("ProvisioningState/succeeded", "Info", "Provisioning succeeded", message));
                let vm_name = name_of(&vm_id).to_string();
                if let Some((pool_id, fqdn)) = pool {
                    if !crate::Faults::matches(never_register, &vm_name) {
                        self.sim.registrations.push(Registration {
                            at: at + minutes(2.0, 5.0),
                            vm_id: vm_id.clone(),
                            pool_id,
                            fqdn,
                        });
                    }
                }
                OpState::Succeeded
            }
            Err((code, detail)) => {
                if let Some(e) = self.resources.get_mut(&ext_key) {
                    e["properties"]["provisioningState"] = json!("Failed");
                }
                let message = format!("DSC Configuration 'AddSessionHost' completed with error(s). {detail}");
                self.sim.ext_status.insert(
                    ext_key,
                    view(&format!("ProvisioningState/failed/{code}"), "Error", "Provisioning failed", &message),
                );
                OpState::Failed {
                    http: 409,
                    error: json!({
                        "code": "VMExtensionProvisioningError",
                        "message": format!("VM has reported a failure when processing extension '{ext_name}' (publisher '{publisher}' and type '{ext_type}'). Error message: '{message}'. More information on troubleshooting is available at https://aka.ms/VMExtensionDSCWindowsTroubleshoot."),
                    }),
                }
            }
        }
    }

    /// Whether the agent can register: the pool exists in the VM's subscription and the token is its current,
    /// unexpired one. Ok((pool id, host FQDN)) or Err((code, message)).
    fn check_registration(
        &self,
        vm_id: &str,
        run: &DscRun,
        at: OffsetDateTime,
    ) -> Result<Option<(String, String)>, (&'static str, String)> {
        let sub = vm_id.split('/').nth(2).unwrap_or_default();
        let pool = self
            .list(&format!("/subscriptions/{sub}/"), POOL_TYPE)
            .find(|p| p["name"].as_str().is_some_and(|n| n.eq_ignore_ascii_case(&run.host_pool)))
            .and_then(|p| p["id"].as_str().map(str::to_string));
        let Some(pool_id) = pool else {
            return Err((
                "HostPoolNotFound",
                format!("The host pool '{}' was not found in subscription '{sub}'.", run.host_pool),
            ));
        };
        match self.sim.tokens.get(&lower(&pool_id)) {
            Some(t) if t.token == run.token && !run.token.is_empty() && t.expires > at => {}
            Some(t) if t.token == run.token && !run.token.is_empty() => {
                return Err((
                    "RegistrationTokenExpired",
                    format!(
                        "The registration token of host pool '{}' expired at {}. Generate a new registration token.",
                        run.host_pool,
                        rfc3339(t.expires)
                    ),
                ))
            }
            _ => {
                return Err((
                    "InvalidRegistrationToken",
                    format!(
                        "The registration token is not valid for host pool '{}' (unknown, revoked or replaced).",
                        run.host_pool
                    ),
                ))
            }
        }
        let vm = self.get(vm_id);
        let computer = vm
            .and_then(|v| v["properties"]["osProfile"]["computerName"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| name_of(vm_id).to_string());
        Ok(Some((pool_id, format!("{}.{HOST_DOMAIN}", computer.to_ascii_lowercase()))))
    }

    /// The agent registers its VM: the session host appears (or is taken over) under the pool.
    fn register(&mut self, r: &Registration) {
        let Some(vm) = self.get(&r.vm_id).cloned() else { return };
        let running = self.sim.vms.get(&lower(&r.vm_id)).is_none_or(|s| s.power == "running");
        if !running || vm["properties"]["provisioningState"] != json!("Succeeded") {
            return;
        }
        let Some(pool) = self.get(&r.pool_id).cloned() else { return };
        let pool_name = pool["name"].as_str().unwrap_or_default();
        let pool_id = pool["id"].as_str().unwrap_or(&r.pool_id).to_string();
        let host_id = format!("{pool_id}/sessionHosts/{}", r.fqdn);
        // A host re-registering under an existing name takes the record over; its old sessions are gone.
        let old: Vec<String> = self.list(&format!("{host_id}/usersessions/"), SESSION_TYPE).filter_map(id_of).collect();
        for s in old {
            self.resources.remove(&lower(&s));
            self.sim.session_ends.remove(&lower(&s));
        }
        self.sim.drained.remove(&lower(&host_id));
        let t = rfc3339(r.at);
        let check = |name: &str| {
            json!({
                "healthCheckName": name,
                "healthCheckResult": "HealthCheckSucceeded",
                "additionalFailureDetails": {"message": "", "errorCode": 0, "lastHealthCheckDateTime": t}
            })
        };
        self.insert(json!({
            "id": host_id,
            "name": format!("{pool_name}/{}", r.fqdn),
            "type": HOST_TYPE,
            "properties": {
                "objectId": uuid::Uuid::new_v4().to_string(),
                "lastHeartBeat": t,
                "sessions": 0,
                "agentVersion": "1.0.10286.1000",
                "allowNewSession": true,
                "virtualMachineId": vm["properties"]["vmId"].clone(),
                "resourceId": vm["id"].clone(),
                "status": "Available",
                "statusTimestamp": t,
                "osVersion": "10.0.26100",
                "sxSStackVersion": "rdp-sxs250910001",
                "updateState": "Succeeded",
                "lastUpdateTime": t,
                "updateErrorMessage": "",
                "sessionHostHealthCheckResults": [
                    check("DomainJoinedCheck"),
                    check("SxSStackListenerCheck"),
                    check("UrlsAccessibleCheck"),
                    check("FSLogixHealthCheck")
                ]
            }
        }));
        self.refresh_pool(&pool_id);
    }

    /// Remove a VM and what it takes with it: extensions always, the OS disk and NICs when their deleteOption
    /// is `Delete` (else they stay, detached: orphans). A session host still registered for it goes Unavailable.
    pub fn remove_vm(&mut self, vm_id: &str, at: OffsetDateTime) {
        let key = lower(vm_id);
        self.note_master(vm_id, "deleted (VirtualMachines_Delete)", at);
        let Some(vm) = self.resources.remove(&key) else { return };
        self.sim.runs.retain(|k, _| !k.starts_with(&format!("{key}/")));
        self.sim.vm_timers.retain(|timer| !timer.vm_id.eq_ignore_ascii_case(vm_id));
        let exts: Vec<String> = self
            .resources
            .range(format!("{key}/")..)
            .take_while(|(k, _)| k.starts_with(&format!("{key}/")))
            .map(|(k, _)| k.clone())
            .collect();
        for e in exts {
            self.resources.remove(&e);
            self.sim.ext_status.remove(&e);
        }
        for nic in vm["properties"]["networkProfile"]["networkInterfaces"].as_array().cloned().unwrap_or_default() {
            let Some(nic_id) = nic["id"].as_str() else { continue };
            if nic["properties"]["deleteOption"].as_str().is_some_and(|d| d.eq_ignore_ascii_case("Delete")) {
                self.resources.remove(&lower(nic_id));
            } else if let Some(n) = self.get_mut(nic_id) {
                if let Some(props) = n["properties"].as_object_mut() {
                    props.remove("virtualMachine");
                    props.remove("primary");
                }
            }
        }
        let os = &vm["properties"]["storageProfile"]["osDisk"];
        if let Some(disk_id) = os["managedDisk"]["id"].as_str() {
            if os["deleteOption"].as_str().is_some_and(|d| d.eq_ignore_ascii_case("Delete")) {
                self.resources.remove(&lower(disk_id));
            } else if let Some(d) = self.get_mut(disk_id) {
                if let Some(obj) = d.as_object_mut() {
                    obj.remove("managedBy");
                }
                d["properties"]["diskState"] = json!("Unattached");
            }
        }
        self.sim.vms.remove(&key);
        self.sim.registrations.retain(|r| !r.vm_id.eq_ignore_ascii_case(vm_id));
        self.set_host_status_for_vm(vm_id, "Unavailable", at);
    }

    /// Set the status of the session hosts registered for a VM (the agent's heartbeat follows the VM).
    fn set_host_status_for_vm(&mut self, vm_id: &str, status: &str, at: OffsetDateTime) {
        let hosts: Vec<String> = self
            .resources
            .iter()
            .filter(|(k, v)| {
                k.contains("/sessionhosts/")
                    && !k.contains("/usersessions/")
                    && v["properties"]["resourceId"].as_str().is_some_and(|r| r.eq_ignore_ascii_case(vm_id))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for h in hosts {
            if let Some(v) = self.resources.get_mut(&h) {
                v["properties"]["status"] = json!(status);
                v["properties"]["statusTimestamp"] = json!(rfc3339(at));
                if status == "Available" {
                    v["properties"]["lastHeartBeat"] = json!(rfc3339(at));
                }
            }
            if let Some(pool) = pool_of(&h) {
                self.refresh_pool(&pool);
            }
        }
    }

    /// Record activity on a VM (an operation touched it) and on a drained host registered for it.
    pub fn touch_vm(&mut self, vm_id: &str, at: OffsetDateTime) {
        if let Some(s) = self.sim.vms.get_mut(&lower(vm_id)) {
            s.last_touch = s.last_touch.max(at);
        }
        for d in self.sim.drained.values_mut() {
            if d.vm_id.eq_ignore_ascii_case(vm_id) {
                d.activity = d.activity.max(at);
            }
        }
    }

    /// A user session ends (log-off by the user or forced): it disappears and its host's count follows.
    pub fn log_off(&mut self, session_id: &str, at: OffsetDateTime) -> bool {
        let key = lower(session_id);
        self.sim.session_ends.remove(&key);
        if self.resources.remove(&key).is_none() {
            return false;
        }
        if let Some(host) = host_of(session_id) {
            self.recount_sessions(&host);
            if let Some(d) = self.sim.drained.get_mut(&lower(&host)) {
                d.activity = d.activity.max(at);
            }
        }
        true
    }

    /// Make a host's `sessions` equal to the user sessions under it.
    pub fn recount_sessions(&mut self, host_id: &str) {
        let n = self.list(&format!("{host_id}/usersessions/"), SESSION_TYPE).count();
        if let Some(h) = self.get_mut(host_id) {
            h["properties"]["sessions"] = json!(n);
        }
    }

    /// Drain (`allow == false`) or undrain a host. Draining gives each of its users 5-60 sim-minutes before they
    /// log off by themselves; undraining keeps them.
    pub fn set_allow_new_session(&mut self, host_id: &str, allow: bool, now: OffsetDateTime) {
        let Some(host) = self.get_mut(host_id) else { return };
        let was = host["properties"]["allowNewSession"].as_bool().unwrap_or(true);
        host["properties"]["allowNewSession"] = json!(allow);
        let vm_id = host["properties"]["resourceId"].as_str().unwrap_or_default().to_string();
        let sessions: Vec<String> =
            self.list(&format!("{host_id}/usersessions/"), SESSION_TYPE).filter_map(id_of).collect();
        if !allow {
            let d = self.sim.drained.entry(lower(host_id)).or_insert(Drain { activity: now, vm_id });
            d.activity = d.activity.max(now);
            if was {
                for s in sessions {
                    self.sim.session_ends.insert(lower(&s), now + minutes(5.0, 60.0));
                }
            }
        } else {
            self.sim.drained.remove(&lower(host_id));
            for s in sessions {
                self.sim.session_ends.remove(&lower(&s));
            }
        }
        if let Some(pool) = pool_of(host_id) {
            self.refresh_pool(&pool);
        }
    }

    /// Remove a session host registration and its user sessions (not the VM).
    pub fn remove_host(&mut self, host_id: &str) {
        let key = lower(host_id);
        let children: Vec<String> = self
            .resources
            .range(format!("{key}/")..)
            .take_while(|(k, _)| k.starts_with(&format!("{key}/")))
            .map(|(k, _)| k.clone())
            .collect();
        for c in children {
            self.resources.remove(&c);
            self.sim.session_ends.remove(&c);
        }
        self.resources.remove(&key);
        self.sim.drained.remove(&key);
        if let Some(pool) = pool_of(host_id) {
            self.refresh_pool(&pool);
        }
    }

    /// Recompute a pool's out-of-service count and keep its maximum.
    pub fn refresh_pool(&mut self, pool_id: &str) {
        let key = lower(pool_id);
        let Some(baseline) = self.sim.pool_baseline.get(&key).copied() else { return };
        let healthy = self
            .list(&format!("{key}/sessionhosts/"), HOST_TYPE)
            .filter(|h| {
                h["properties"]["status"] == json!("Available") && h["properties"]["allowNewSession"] != json!(false)
            })
            .count() as u64;
        let out = baseline.saturating_sub(healthy);
        let served = self.get(&key).and_then(|p| p["id"].as_str()).unwrap_or(pool_id).to_string();
        let max = self.sim.max_out_of_service.entry(served).or_insert(0);
        *max = (*max).max(out);
    }

    /// Session hosts drained through the API, empty, and idle for more than 30 sim-minutes.
    pub fn drained_idle(&self, now: OffsetDateTime) -> Vec<String> {
        self.sim
            .drained
            .iter()
            .filter(|(_, d)| now - d.activity > DRAINED_IDLE_AFTER)
            .filter_map(|(k, d)| {
                let h = self.resources.get(k)?;
                let p = &h["properties"];
                let idle = p["allowNewSession"] == json!(false) && p["sessions"].as_u64().unwrap_or(0) == 0;
                let vm_busy = self.sim.busy(&d.vm_id).is_some();
                // A drained host whose VM is deallocated is kept on purpose (standby), not forgotten.
                let vm_off = self.sim.vms.get(&lower(&d.vm_id)).is_some_and(|s| s.power != "running");
                (idle && !vm_busy && !vm_off).then(|| h["id"].as_str().unwrap_or(k).to_string())
            })
            .collect()
    }

    /// NICs and managed disks attached to no VM.
    pub fn orphans(&self) -> Vec<String> {
        self.resources
            .values()
            .filter(|v| {
                let t = v["type"].as_str().unwrap_or_default();
                if t.eq_ignore_ascii_case(NIC_TYPE) {
                    v["properties"]["virtualMachine"]["id"].as_str().is_none()
                        && v["properties"]["provisioningState"] != json!("Deleting")
                } else if t.eq_ignore_ascii_case(DISK_TYPE) {
                    v["managedBy"].as_str().is_none_or(str::is_empty)
                        && v["properties"]["provisioningState"] != json!("Deleting")
                } else {
                    false
                }
            })
            .filter_map(|v| v["id"].as_str().map(str::to_string))
            .collect()
    }

    /// Every session due to log off by `until`, in time order.
    fn end_sessions_until(&mut self, until: OffsetDateTime) {
        let mut ends: Vec<(OffsetDateTime, String)> =
            self.sim.session_ends.iter().filter(|(_, t)| **t <= until).map(|(id, t)| (*t, id.clone())).collect();
        ends.sort();
        for (at, id) in ends {
            self.log_off(&id, at);
        }
    }

    /// Users start coming and going: the first arrival soon after `now`.
    pub fn start_user_activity(&mut self, now: OffsetDateTime) {
        self.sim.next_logon = Some(now + next_arrival(now));
    }

    /// A user logs on to an available host that takes new sessions (the emptiest of a few picked at random, as
    /// breadth-first load balancing would), and logs off again after a working session of 30 minutes to 8 hours.
    fn log_on(&mut self, at: OffsetDateTime) {
        let mut rng = rand::rng();
        let hosts: Vec<(String, u64)> = self
            .resources
            .values()
            .filter(|v| v["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(HOST_TYPE)))
            .filter(|v| {
                v["properties"]["status"] == json!("Available") && v["properties"]["allowNewSession"] != json!(false)
            })
            .filter_map(|v| Some((id_of(v)?, v["properties"]["sessions"].as_u64().unwrap_or(0))))
            .filter(|(_, n)| *n < 16)
            .collect();
        if hosts.is_empty() {
            return;
        }
        let Some((host, _)) = (0..3).map(|_| &hosts[rng.random_range(0..hosts.len())]).min_by_key(|(_, n)| *n).cloned()
        else {
            return;
        };
        self.sim.next_session_seq += 1;
        let session_id = format!("{host}/userSessions/{}", 1000 + self.sim.next_session_seq);
        let user = crate::tenant::USERS[rng.random_range(0..crate::tenant::USERS.len())];
        let pool_and_host: Vec<&str> = host.split('/').collect();
        let name = format!(
            "{}/{}/{}",
            pool_and_host.get(8).copied().unwrap_or_default(),
            pool_and_host.get(10).copied().unwrap_or_default(),
            1000 + self.sim.next_session_seq
        );
        self.insert(json!({
            "id": session_id,
            "name": name,
            "type": SESSION_TYPE,
            "properties": {
                "objectId": uuid::Uuid::new_v4().to_string(),
                "userPrincipalName": format!("{user}@contoso.com"),
                "applicationType": "Desktop",
                "sessionState": "Active",
                "activeDirectoryUserName": format!("CONTOSO\\{user}"),
                "createTime": at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
            }
        }));
        self.sim.session_ends.insert(lower(&session_id), at + minutes(30.0, 480.0));
        self.recount_sessions(&host);
    }

    /// At seed time: each pool's host count, its starting out-of-service count, and the log-off times of users
    /// already on drained hosts.
    pub fn init_dynamics(&mut self, start: OffsetDateTime, rng: &mut impl Rng) {
        let pools: Vec<String> = self
            .resources
            .values()
            .filter(|v| v["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(POOL_TYPE)))
            .filter_map(id_of)
            .collect();
        for p in &pools {
            let n = self.list(&format!("{p}/sessionhosts/"), HOST_TYPE).count() as u64;
            self.sim.pool_baseline.insert(lower(p), n);
            self.refresh_pool(p);
        }
        let drained_sessions: Vec<String> = self
            .resources
            .values()
            .filter(|v| v["type"].as_str().is_some_and(|t| t.eq_ignore_ascii_case(SESSION_TYPE)))
            .filter_map(id_of)
            .filter(|s| {
                host_of(s)
                    .and_then(|h| self.get(&h))
                    .is_some_and(|h| h["properties"]["allowNewSession"] == json!(false))
            })
            .collect();
        for s in drained_sessions {
            let after = Duration::seconds(rng.random_range(300..=3600));
            self.sim.session_ends.insert(lower(&s), start + after);
        }
    }
}

fn id_of(v: &Value) -> Option<String> {
    v["id"].as_str().map(str::to_string)
}

/// The VM id of a VM or VM extension id.
pub fn vm_of(id: &str) -> String {
    match lower(id).find("/extensions/") {
        Some(i) => id[..i].to_string(),
        None => id.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenant::{build, SimClock};
    use crate::Seed;

    /// Sessions of users who logged on since the seed (their ids count on from 1001).
    fn newcomers(t: &Tenant) -> usize {
        t.resources
            .values()
            .filter(|v| v["type"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(SESSION_TYPE)))
            .filter_map(|v| v["id"].as_str()?.rsplit('/').next()?.parse::<u64>().ok())
            .filter(|n| *n > 1000)
            .count()
    }

    #[test]
    fn users_come_during_the_day_onto_available_hosts_and_leave_again() {
        let clock = SimClock::new(1.0);
        let mut t = build(Seed::Demo, &clock);
        assert_eq!(newcomers(&t), 0);
        // Start at 08:00 UTC on the sim's first day: a working morning.
        let start = clock.now().replace_time(time::macros::time!(08:00));
        t.start_user_activity(start);
        t.advance(start + Duration::hours(2), &[]);
        let morning = newcomers(&t);
        assert!(morning > 20, "about one arrival every 2 minutes: {morning} in two hours");
        // Every new session is on an Available host that takes new sessions, and each host's count matches.
        for v in t.resources.values().filter(|v| v["type"].as_str().is_some_and(|x| x.eq_ignore_ascii_case(HOST_TYPE)))
        {
            let id = id_of(v).unwrap();
            let n = t.list(&format!("{id}/usersessions/"), SESSION_TYPE).count() as u64;
            assert_eq!(v["properties"]["sessions"].as_u64().unwrap_or(0), n, "{id}");
        }
        // A day later most of the day's users have logged off again (sessions last 30 minutes to 8 hours), and
        // arrivals carry on.
        t.advance(start + Duration::hours(24), &[]);
        assert!(t.sim.next_logon.is_some_and(|n| n > start + Duration::hours(24)));
        let arrivals = t.sim.next_session_seq as usize;
        let still_on = newcomers(&t);
        assert!(arrivals > 250 && still_on * 3 < arrivals, "{still_on} of {arrivals} still on");
    }
}
