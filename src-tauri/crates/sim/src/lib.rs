//! A simulated Azure tenant: Entra v2 (client credentials; a person's sign-in by authorization code + PKCE, refresh
//! token and device code, with a second tenant the test user reaches), ARM (subscriptions, galleries, VMs, managed run
//! commands, disks and snapshots, AVD host pools, session hosts, user sessions) and Resource Graph, served over HTTPS
//! on loopback with ARM's protocol rules: paging, error bodies, throttling, long-running operations. Used in-process
//! by the app's demo mode and as the `ringmaster-sim` binary by tests and benchmarks.
//!
//! The tenant moves on a sim clock (`time_scale` times real time): long-running operations (NIC, VM, extension,
//! disk, snapshot, gallery version) complete at a sim time and apply their effect then, run command scripts print
//! and end on it, AVD agents register a few minutes after their DSC extension ran, users leave drained hosts. All times the sim serves and judges (including a
//! registration token's `expirationTime`) are on that clock; every ARM answer's `Date` header carries it.

mod arm;
mod capture;
mod entra;
pub mod graph;
pub mod le;
mod lifecycle;
mod rollout;
mod runcommand;
pub mod spec;
pub mod tenant;
mod throttle;
mod tls;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};

pub use entra::APPROVERS_GROUP_ID;
pub use tenant::Seed;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("could not listen on {addr}: {source}")]
    Listen { addr: String, source: std::io::Error },
    #[error("could not create the simulator's TLS certificate: {0}")]
    Tls(String),
    #[error("could not write the simulator's state to {path}: {source}")]
    State { path: String, source: std::io::Error },
    #[error("the Azure specs could not be loaded for validation: {0}")]
    Specs(String),
    #[error("the simulated Login Enterprise appliance could not start: {0}")]
    LoginEnterprise(String),
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub listen: SocketAddr,
    pub seed: Seed,
    /// Added to every response, standing for a WAN round trip.
    pub latency_ms: u64,
    /// How much faster than real time the tenant's clock runs.
    pub time_scale: f64,
    /// Where the CA certificate is written; a temporary folder when not given.
    pub state_dir: Option<PathBuf>,
    /// Validate every request and response against the specs in this folder (`shared/azure-specs`).
    pub validate_specs: Option<PathBuf>,
    /// Items per page of ARM list operations (small, so clients always meet `nextLink`).
    pub page_size: usize,
    /// Lifetime of issued access tokens.
    pub token_lifetime_s: i64,
    /// Seconds the sim asks LRO pollers to wait (`Retry-After`).
    pub lro_retry_after_s: u64,
    /// The device code flow's polling `interval` (Entra: 5).
    pub device_code_interval_s: u64,
    /// How long a device code stays valid (Entra: 900).
    pub device_code_lifetime_s: u64,
    /// Users log on to available hosts and off again over the day (busier in working hours, UTC). Off by default
    /// so tests see the seeded sessions only; the demo turns it on.
    pub user_activity: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            listen: "127.0.0.1:0".parse().expect("valid addr"),
            seed: Seed::Demo,
            latency_ms: 0,
            time_scale: 1.0,
            state_dir: None,
            validate_specs: None,
            page_size: 25,
            token_lifetime_s: 3600,
            lro_retry_after_s: 1,
            device_code_interval_s: 5,
            device_code_lifetime_s: 900,
            user_activity: false,
        }
    }
}

/// The line `ringmaster-sim` prints when ready: everything a client needs to connect.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReadyInfo {
    pub arm: String,
    pub login: String,
    pub ca_cert: String,
    pub tenant_id: String,
    pub tenant_name: String,
    pub client_id: String,
    pub client_secret: String,
    pub subscriptions: Vec<String>,
    pub stats: String,
    /// The public-client app registration a person signs in with (loopback redirect, device code).
    #[serde(default)]
    pub public_client_id: String,
    /// The user the sim signs in as (UPN); a guest in the second tenant.
    #[serde(default)]
    pub test_user: String,
    /// A second tenant the test user reaches: `GET /tenants` lists it, refresh tokens redeem for it.
    #[serde(default)]
    pub second_tenant_id: String,
    /// The simulated Login Enterprise appliance's API base (`https://localhost:P/publicApi`).
    #[serde(default)]
    pub le: String,
    /// Its public API access token.
    #[serde(default)]
    pub le_token: String,
    /// The CA its certificate chains to (PEM path).
    #[serde(default)]
    pub le_ca_cert: String,
}

/// Injected faults, set through `POST /_sim/faults`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Faults {
    pub rules: Vec<FaultRule>,
    /// `both` (default: `Azure-AsyncOperation` and `Location`) or `location` (only `Location`).
    pub lro_style: Option<String>,
    /// Pad polling URLs to over 4 KB, as ARM may.
    pub long_poll_urls: bool,
    /// Resource Graph answers 503 (the app must fall back to ARM listing).
    pub graph_unavailable: bool,
    /// VMs whose name contains one of these: the create LRO ends `Failed` (`OSProvisioningClientError`) and the VM
    /// stays with `provisioningState: Failed`.
    pub fail_provisioning: Vec<String>,
    /// VMs whose name contains one of these: the AVD agent extension succeeds but the host never registers.
    pub agent_never_registers: Vec<String>,
    /// VMs whose name contains one of these: Sysprep fails in run commands created while the fault is set (the script
    /// ends `Failed`, exit code 1, Sysprep's fatal error on stderr); the VM keeps running and is not sysprepped.
    pub sysprep_fails: Vec<String>,
}

impl Faults {
    pub(crate) fn matches(list: &[String], vm_name: &str) -> bool {
        let name = vm_name.to_ascii_lowercase();
        list.iter().any(|s| !s.is_empty() && name.contains(&s.to_ascii_lowercase()))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FaultRule {
    /// An operation name as in `/_sim/stats` (`HostPools_List`), or `*`.
    pub operation: String,
    pub kind: FaultKind,
    /// How many requests it hits before it is spent (unbounded when left out).
    #[serde(default = "unbounded")]
    pub count: u32,
    /// When set (0.0-1.0), each matching request is hit with this probability instead of the first `count`
    /// requests; `count` still bounds how many are hit in all.
    #[serde(default)]
    pub probability: Option<f64>,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub retry_after_s: Option<u64>,
}

fn unbounded() -> u32 {
    u32::MAX
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// Answer with `status` (default 500) and an ARM error body.
    Status,
    /// Answer 200 with a body that is not JSON.
    MalformedJson,
    /// Answer 429 with `Retry-After`.
    Throttle,
    /// Drop the connection without an answer (a timeout for the client).
    Hang,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    pub requests: u64,
    pub requests_by_operation: BTreeMap<String, u64>,
    pub throttled: u64,
    pub errors_injected: u64,
    pub spec_violations: Vec<String>,
    pub tokens_issued: u64,
    pub unauthorized: u64,
    /// Per host pool id: the most session hosts ever out of service at once, where out of service = the pool's
    /// host count at seed time minus the hosts currently registered, `Available` and accepting new sessions.
    pub max_out_of_service: BTreeMap<String, u64>,
    /// Session hosts drained through the API that have no sessions left and saw no activity (drain, log-off, an
    /// operation on their VM) for more than 30 sim-minutes: hosts forgotten in drain.
    pub drained_idle: Vec<String>,
    /// VM create PUTs that created a new VM.
    pub vm_creates: u64,
    /// Network interfaces and managed disks attached to no VM.
    pub orphans: Vec<String>,
    /// One line each time a VM tagged `ringmaster-golden-master` goes through something a non-destructive capture
    /// must never do to it: a run command with Sysprep starts on it, it is generalized, deallocated, stopped, deleted,
    /// or its OS disk is changed.
    pub master_violations: Vec<String>,
    /// Existing VMs, network interfaces, disks and snapshots tagged `ringmaster-capture` (the app's temporary capture
    /// resources) that are not being deleted.
    pub capture_leftovers: Vec<String>,
    /// The sim clock at the time of the answer (RFC 3339); the `Date` header of every ARM answer carries it too.
    pub sim_now: String,
    /// What the sign-in endpoints saw.
    #[serde(default)]
    pub sign_in: SignInStats,
}

/// Counters of the sign-in endpoints, for tests that must not time things.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SignInStats {
    pub authorize_requests: u64,
    pub codes_issued: u64,
    pub codes_redeemed: u64,
    pub refresh_tokens_redeemed: u64,
    pub refresh_tokens_refused: u64,
    pub device_codes_issued: u64,
    pub device_code_polls: u64,
    pub device_code_slow_downs: u64,
    pub user_tokens_issued: u64,
}

pub(crate) struct Shared {
    pub config: SimConfig,
    pub tenant: RwLock<tenant::Tenant>,
    pub clock: tenant::SimClock,
    pub specs: Option<spec::SpecIndex>,
    pub stats: Mutex<Stats>,
    pub faults: Mutex<Faults>,
    pub throttle: Mutex<throttle::Throttle>,
    pub signing_key: [u8; 32],
    /// Tokens issued before this unix time are treated as expired (`/_sim/expire-tokens`).
    pub tokens_not_before: AtomicI64,
    pub arm_base: String,
    pub login_base: String,
    pub client_id: String,
    pub client_secret: String,
    /// Entra's tenants and test user.
    pub directory: entra::Directory,
    /// Authorization codes, refresh tokens and device codes issued.
    pub entra: Mutex<entra::EntraState>,
    /// Resource Graph result snapshots that `$skipToken`s page through (id, rows).
    pub graph_snapshots: Mutex<Vec<(u64, Arc<Vec<serde_json::Value>>)>>,
    pub graph_snapshot_seq: std::sync::atomic::AtomicU64,
}

impl Shared {
    pub fn count(&self, op: &str) {
        if let Ok(mut s) = self.stats.lock() {
            s.requests += 1;
            *s.requests_by_operation.entry(op.to_string()).or_default() += 1;
        }
    }

    pub fn now_unix(&self) -> i64 {
        time::OffsetDateTime::now_utc().unix_timestamp()
    }

    pub fn tokens_not_before(&self) -> i64 {
        self.tokens_not_before.load(Ordering::SeqCst)
    }
}

/// A running simulator. Dropping the handle does not stop it; call [`SimHandle::shutdown`].
pub struct SimHandle {
    pub ready: ReadyInfo,
    handles: Vec<axum_server::Handle>,
    /// The simulated Login Enterprise appliance.
    pub appliance: Option<le::LeHandle>,
    _state_dir: Option<tempdir::TempDir>,
}

impl SimHandle {
    pub fn shutdown(&self) {
        for h in &self.handles {
            h.shutdown();
        }
        if let Some(a) = &self.appliance {
            a.shutdown();
        }
    }
}

mod tempdir {
    /// A folder removed on drop (the CA certificate of an in-process sim lives here).
    pub struct TempDir(pub std::path::PathBuf);
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// Start the simulator on the current tokio runtime and return once it accepts connections.
pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
    let specs = match &config.validate_specs {
        Some(dir) => Some(spec::SpecIndex::load(dir).map_err(SimError::Specs)?),
        None => None,
    };
    let (state_dir, temp) = match &config.state_dir {
        Some(d) => (d.clone(), None),
        None => {
            let d = std::env::temp_dir().join(format!("ringmaster-sim-{}", uuid::Uuid::new_v4()));
            (d.clone(), Some(tempdir::TempDir(d)))
        }
    };
    std::fs::create_dir_all(&state_dir)
        .map_err(|source| SimError::State { path: state_dir.display().to_string(), source })?;
    let certs = tls::generate().map_err(SimError::Tls)?;
    let ca_path = state_dir.join("ringmaster-sim-ca.pem");
    std::fs::write(&ca_path, &certs.ca_pem)
        .map_err(|source| SimError::State { path: ca_path.display().to_string(), source })?;
    let rustls_config = axum_server::tls_rustls::RustlsConfig::from_pem(
        certs.leaf_pem.clone().into_bytes(),
        certs.key_pem.clone().into_bytes(),
    )
    .await
    .map_err(|e| SimError::Tls(e.to_string()))?;

    let bind = |addr: SocketAddr| -> Result<std::net::TcpListener, SimError> {
        let l =
            std::net::TcpListener::bind(addr).map_err(|source| SimError::Listen { addr: addr.to_string(), source })?;
        l.set_nonblocking(true).map_err(|source| SimError::Listen { addr: addr.to_string(), source })?;
        Ok(l)
    };
    let arm_listener = bind(config.listen)?;
    let mut login_addr = config.listen;
    login_addr.set_port(0);
    let login_listener = bind(login_addr)?;
    let arm_port = arm_listener.local_addr().map_err(|source| SimError::Listen { addr: "arm".into(), source })?;
    let login_port = login_listener.local_addr().map_err(|source| SimError::Listen { addr: "login".into(), source })?;
    // The certificate names localhost; use it so clients verify the name.
    let arm_base = format!("https://localhost:{}", arm_port.port());
    let login_base = format!("https://localhost:{}", login_port.port());

    let clock = tenant::SimClock::new(config.time_scale);
    let mut tenant = tenant::build(config.seed, &clock);
    if config.user_activity {
        tenant.start_user_activity(clock.now());
    }
    let mut key = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut key);
    let ready = ReadyInfo {
        arm: arm_base.clone(),
        login: login_base.clone(),
        ca_cert: ca_path.display().to_string(),
        tenant_id: tenant.tenant_id.clone(),
        tenant_name: tenant.display_name.clone(),
        client_id: "5e0c1f7a-4d2b-4b8e-a1c3-ringmaster01".replace("ringmaster01", "9f8e7d6c5b4a"),
        client_secret: format!("sim~{}", uuid::Uuid::new_v4().simple()),
        subscriptions: tenant.subscriptions.iter().map(|s| s.id.clone()).collect(),
        stats: format!("{arm_base}/_sim/stats"),
        public_client_id: entra::PUBLIC_CLIENT_ID.to_string(),
        test_user: String::new(),
        second_tenant_id: entra::SECOND_TENANT_ID.to_string(),
        le: String::new(),
        le_token: String::new(),
        le_ca_cert: String::new(),
    };
    let directory = entra::Directory::new(&tenant.tenant_id, &tenant.display_name);
    let ready = ReadyInfo { test_user: directory.user_upn.clone(), ..ready };
    let shared = Arc::new(Shared {
        config: config.clone(),
        tenant: RwLock::new(tenant),
        clock,
        specs,
        stats: Mutex::new(Stats::default()),
        faults: Mutex::new(Faults::default()),
        throttle: Mutex::new(throttle::Throttle::new(config.time_scale)),
        signing_key: key,
        tokens_not_before: AtomicI64::new(0),
        arm_base,
        login_base,
        client_id: ready.client_id.clone(),
        client_secret: ready.client_secret.clone(),
        directory,
        entra: Mutex::new(entra::EntraState::default()),
        graph_snapshots: Mutex::new(Vec::new()),
        graph_snapshot_seq: std::sync::atomic::AtomicU64::new(1),
    });

    let arm_handle = axum_server::Handle::new();
    let login_handle = axum_server::Handle::new();
    let arm_app = arm::router(shared.clone());
    let login_app = entra::router(shared.clone());
    let arm_server = axum_server::from_tcp_rustls(arm_listener, rustls_config.clone()).handle(arm_handle.clone());
    let login_server = axum_server::from_tcp_rustls(login_listener, rustls_config).handle(login_handle.clone());
    tokio::spawn(async move {
        if let Err(e) = arm_server.serve(arm_app.into_make_service()).await {
            tracing::error!("sim ARM server stopped: {e}");
        }
    });
    tokio::spawn(async move {
        if let Err(e) = login_server.serve(login_app.into_make_service()).await {
            tracing::error!("sim login server stopped: {e}");
        }
    });
    arm_handle.listening().await;
    login_handle.listening().await;
    // The Login Enterprise appliance the Test ring's gate talks to, on the same clock speed; its responses are
    // checked against the LE spec whenever the Azure ones are.
    let mut le_listen = config.listen;
    le_listen.set_port(0);
    let appliance = le::start_appliance(le::LeConfig {
        listen: le_listen,
        time_scale: config.time_scale,
        spec: config.validate_specs.as_ref().map(|_| le::default_spec_path()).filter(|p| p.is_file()),
        state_dir: Some(state_dir.clone()),
        latency_ms: config.latency_ms,
        ..le::LeConfig::default()
    })
    .await
    .map_err(|e| SimError::LoginEnterprise(e.to_string()))?;
    let ready = ReadyInfo {
        le: appliance.base_url.clone(),
        le_token: appliance.token.clone(),
        le_ca_cert: appliance.ca_cert.display().to_string(),
        ..ready
    };
    Ok(SimHandle { ready, handles: vec![arm_handle, login_handle], appliance: Some(appliance), _state_dir: temp })
}
