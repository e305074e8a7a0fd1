//! `ringmaster-bench inventory --seed large --latency-ms 30`: a full inventory refresh (fetch + write to SQLite)
//! through Resource Graph, and the same through per-pool ARM listing (what the portal and `az` do), against the
//! simulated tenant in the same run. Prints the figures; the last line is JSON.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ringmaster_azure::{simulated_tenant_client, ArmClient, RetryPolicy};
use ringmaster_engine::{
    snapshot_of, CapacityLimit, DrainMode, Engine, ExecutorConfig, RolloutPolicy, RolloutState, TenantConnection,
};
use ringmaster_sim::{Seed, SimConfig};
use ringmaster_store::Store;

struct Run {
    hosts: usize,
    requests: u64,
    wall: Duration,
}

async fn refresh(client: &ArmClient, via_graph: bool, db: &std::path::Path) -> anyhow::Result<Run> {
    let store = Arc::new(Store::open(db)?);
    let before = client.requests();
    let t0 = Instant::now();
    let raw = Engine::fetch_raw(client, via_graph).await.map_err(|e| anyhow::anyhow!(e.to_string()))?;
    store.replace_inventory(&snapshot_of(&raw))?;
    Ok(Run { hosts: raw.session_hosts.len(), requests: client.requests() - before, wall: t0.elapsed() })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("inventory") => {}
        Some("rollout") => return rollout(&args[1..]).await,
        Some("rollout-worker") => return rollout_worker(&args[1..]).await,
        Some("capture") => return capture(&args[1..]).await,
        Some("capture-worker") => return capture_worker(&args[1..]).await,
        _ => bail!("usage: ringmaster-bench inventory [--seed demo|large] [--latency-ms N]\n       ringmaster-bench rollout [--hosts N] [--cap K] [--time-scale X] [--fixed-polling]\n       ringmaster-bench capture [--time-scale X] [--latency-ms N]"),
    }
    let mut seed = Seed::Large;
    let mut latency_ms = 30;
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--seed" => {
                seed =
                    args.get(i + 1).context("--seed needs a value")?.parse().map_err(|e: String| anyhow::anyhow!(e))?;
                i += 1;
            }
            "--latency-ms" => {
                latency_ms = args.get(i + 1).context("--latency-ms needs a value")?.parse()?;
                i += 1;
            }
            other => bail!("unknown argument {other}"),
        }
        i += 1;
    }
    let sim = ringmaster_sim::start(SimConfig { seed, latency_ms, ..SimConfig::default() }).await?;
    let r = sim.ready.clone();
    let ca = std::fs::read(&r.ca_cert)?;
    let client = |_: ()| {
        simulated_tenant_client(
            &r.arm,
            &r.login,
            &ca,
            &r.tenant_id,
            &r.client_id,
            &r.client_secret,
            RetryPolicy::default(),
        )
    };
    let dir = tempfile::tempdir()?;

    // Warm the token and TLS session so neither path pays for them.
    let graph_client = client(())?;
    let arm_client = client(())?;
    for c in [&graph_client, &arm_client] {
        ringmaster_azure::inventory::list_subscriptions(c).await?;
    }

    let graph = refresh(&graph_client, true, &dir.path().join("graph.db")).await?;
    let baseline = refresh(&arm_client, false, &dir.path().join("baseline.db")).await?;
    if graph.hosts != baseline.hosts {
        bail!("the two paths disagree: {} hosts vs {}", graph.hosts, baseline.hosts);
    }
    println!("seed {seed:?}, {latency_ms} ms added to every response");
    println!(
        "resource graph : {:>6} hosts  {:>5} requests  {:>8} ms",
        graph.hosts,
        graph.requests,
        graph.wall.as_millis()
    );
    println!(
        "ARM listing    : {:>6} hosts  {:>5} requests  {:>8} ms",
        baseline.hosts,
        baseline.requests,
        baseline.wall.as_millis()
    );
    println!(
        "ratio          : {:.1}x fewer requests, {:.1}x faster",
        baseline.requests as f64 / graph.requests.max(1) as f64,
        baseline.wall.as_secs_f64() / graph.wall.as_secs_f64().max(1e-9)
    );
    println!(
        "{}",
        serde_json::json!({
            "hosts": graph.hosts,
            "requests": graph.requests,
            "wall_ms": graph.wall.as_millis() as u64,
            "baseline_requests": baseline.requests,
            "baseline_wall_ms": baseline.wall.as_millis() as u64,
        })
    );
    sim.shutdown();
    Ok(())
}

fn flag<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> anyhow::Result<T> {
    match args.iter().position(|a| a == name) {
        Some(i) => {
            args.get(i + 1).and_then(|v| v.parse().ok()).ok_or_else(|| anyhow::anyhow!("{name} needs a valid value"))
        }
        None => Ok(default),
    }
}

/// `rollout --hosts 1000 --cap 50`: the real executor replaces a pool of N hosts in the simulated tenant, whose
/// clock runs `--time-scale` times faster; figures are in tenant (simulated) seconds.
async fn rollout(args: &[String]) -> anyhow::Result<()> {
    let hosts: usize = flag(args, "--hosts", 1000)?;
    let cap: u32 = flag(args, "--cap", 50)?;
    let scale: f64 = flag(args, "--time-scale", 300.0)?;
    // The baseline for the request count: every long-running step polled from its start.
    let fixed_polling = args.iter().any(|a| a == "--fixed-polling");
    let sim =
        ringmaster_sim::start(SimConfig { seed: Seed::Rollout(hosts), time_scale: scale, ..SimConfig::default() })
            .await?;
    let r = sim.ready.clone();
    let ca = std::fs::read(&r.ca_cert)?;
    let client = azure_paced_client(&r, &ca, scale)?;
    let dir = tempfile::tempdir()?;
    let engine = engine_for(client.clone(), &r, &dir.path().join("rollout.db"), scale, !fixed_polling)?;
    engine.refresh(&|_| {}).await.map_err(|e| anyhow::anyhow!(e.to_string()))?;
    let pool = format!(
        "/subscriptions/{}/resourceGroups/rg-avd-prod/providers/Microsoft.DesktopVirtualization/hostPools/hp-prod-bench",
        r.subscriptions[0]
    );
    let policy = RolloutPolicy {
        capacity: CapacityLimit::Hosts { hosts: cap },
        drain_mode: DrainMode::ForceLogoff,
        logoff_delay_minutes: 0,
        message: "Benchmark rollout".into(),
        max_failures: 10,
        canary: false,
        standby: false,
        surge: false,
    };
    let requests_before = client.requests();
    let throttled_before = client.counters().throttled.load(std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let view = engine.start_rollout(&pool, "2026.1030.1", &policy).await.map_err(|e| anyhow::anyhow!(e.to_string()))?;
    let view = loop {
        let v = engine.rollout(&view.id).map_err(|e| anyhow::anyhow!(e.to_string()))?;
        if v.state != RolloutState::Running {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let makespan = started.elapsed().as_secs_f64() * scale;
    if view.state != RolloutState::Completed {
        bail!("the rollout ended {:?}: {:?}", view.state, view.reason);
    }
    let parse = |s: &Option<String>| {
        s.as_deref().and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
    };
    // Each host's own duration, in tenant seconds, in replacement order.
    let durations: Vec<f64> = view
        .hosts
        .iter()
        .filter_map(|h| Some((parse(&h.finished_at)? - parse(&h.started_at)?).as_seconds_f64() * scale))
        .collect();
    let k = cap.max(1) as usize;
    let longest = durations.iter().cloned().fold(0.0, f64::max);
    let lower_bound = longest.max(durations.iter().sum::<f64>() / k as f64);
    // The same hosts in lock-step batches of `cap`: each batch waits for its slowest host.
    let lockstep: f64 = durations.chunks(k).map(|c| c.iter().cloned().fold(0.0, f64::max)).sum();
    let requests = client.requests() - requests_before;
    let throttled = client.counters().throttled.load(std::sync::atomic::Ordering::Relaxed) - throttled_before;
    // Where the requests went, by operation, as the tenant counted them.
    let http = ringmaster_azure::http_client(Some(&ca))?;
    let stats: serde_json::Value = http.get(&r.stats).send().await?.json().await?;
    let mut by_op: Vec<(String, u64)> = stats["requestsByOperation"]
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0))).collect())
        .unwrap_or_default();
    by_op.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    for (op, n) in by_op.iter().take(12) {
        println!("  {op:<40} {n:>7}  ({:.1} per host)", *n as f64 / hosts as f64);
    }
    println!("{hosts} hosts, at most {cap} out of service, tenant clock {scale}x");
    println!("makespan        : {:>8.0} s (tenant time)", makespan);
    println!("lower bound     : {:>8.0} s (max(longest host, total work / cap))", lower_bound);
    println!("lock-step       : {:>8.0} s (same host durations, batches of {cap})", lockstep);
    // A message and a log-off per connected user: fixed by how many users there are, not by how the rollout runs.
    let user_calls: u64 = by_op
        .iter()
        .filter(|(op, _)| op == "UserSessions_SendMessage" || op == "UserSessions_Delete")
        .map(|(_, n)| n)
        .sum();
    let per_host = |n: u64| (n as f64 / hosts as f64 * 10.0).round() / 10.0;
    println!(
        "requests        : {requests} ({:.1} per host; {:.1} without the {:.1} per-user message and log-off calls), 429s received: {throttled}",
        per_host(requests),
        per_host(requests.saturating_sub(user_calls)),
        per_host(user_calls)
    );
    println!(
        "{}",
        serde_json::json!({
            "hosts": hosts,
            "cap": cap,
            "makespan_s": makespan.round(),
            "lower_bound_s": lower_bound.round(),
            "ratio": (makespan / lower_bound * 1000.0).round() / 1000.0,
            "lockstep_makespan_s": lockstep.round(),
            "requests_per_host": per_host(requests),
            "requests_per_host_without_user_calls": per_host(requests.saturating_sub(user_calls)),
            "user_calls_per_host": per_host(user_calls),
            "throttled": throttled,
        })
    );
    sim.shutdown();
    Ok(())
}

fn text_flag(args: &[String], name: &str) -> anyhow::Result<String> {
    flag::<String>(args, name, String::new()).and_then(
        |v| {
            if v.is_empty() {
                bail!("{name} is required")
            } else {
                Ok(v)
            }
        },
    )
}

/// `rollout-worker`: one "app process" for the crash tests. It connects to a running simulated tenant (from
/// `--ready FILE`, the sim's ready line; the client secret comes from it, never from argv), resumes whatever
/// the journal in `--db` holds, starts the rollout if there is none, and exits 0 when it completes.
async fn rollout_worker(args: &[String]) -> anyhow::Result<()> {
    let ready: ringmaster_sim::ReadyInfo =
        serde_json::from_str(&std::fs::read_to_string(text_flag(args, "--ready")?)?)?;
    let db = std::path::PathBuf::from(text_flag(args, "--db")?);
    let pool = text_flag(args, "--pool")?;
    let version = text_flag(args, "--version")?;
    let cap: u32 = flag(args, "--cap", 2)?;
    let scale: f64 = flag(args, "--time-scale", 1.0)?;
    let standby = args.iter().any(|a| a == "--standby");
    let surge = args.iter().any(|a| a == "--surge");
    let engine = engine_for(worker_client(&ready)?, &ready, &db, scale, true)?;
    let err = |e: ringmaster_engine::EngineError| anyhow::anyhow!(e.to_string());
    let id = match engine.store().rollouts()?.into_iter().next() {
        Some(r) => r.id,
        None => {
            engine.refresh(&|_| {}).await.map_err(err)?;
            // The kill test drives the executor on a Pilot pool, not the pipeline: no promotion out of Test first.
            engine.set_promotion_enforced(false).map_err(err)?;
            let policy = RolloutPolicy {
                capacity: CapacityLimit::Hosts { hosts: cap },
                drain_mode: DrainMode::ForceLogoff,
                logoff_delay_minutes: 1,
                message: "Updating this desktop".into(),
                max_failures: 3,
                canary: true,
                standby,
                surge,
            };
            engine.start_rollout(&pool, &version, &policy).await.map_err(err)?.id
        }
    };
    loop {
        let v = engine.rollout(&id).map_err(err)?;
        match v.state {
            RolloutState::Running => tokio::time::sleep(Duration::from_millis(100)).await,
            RolloutState::Completed => return Ok(()),
            other => {
                let failed: Vec<String> =
                    v.hosts.iter().filter_map(|h| h.error.as_ref().map(|e| format!("{}: {e}", h.name))).collect();
                bail!("the rollout ended {other:?}: {:?}; {}", v.reason, failed.join("; "))
            }
        }
    }
}

/// A client that polls as against Azure, whose Retry-After is typically 10-30 s: 15 to 60 tenant seconds
/// between polls, whatever the tenant's clock speed.
fn azure_paced_client(r: &ringmaster_sim::ReadyInfo, ca: &[u8], scale: f64) -> anyhow::Result<ArmClient> {
    let policy = RetryPolicy {
        min_poll: Duration::from_secs_f64(15.0 / scale),
        max_poll: Duration::from_secs_f64(60.0 / scale),
        ..RetryPolicy::default()
    };
    Ok(simulated_tenant_client(&r.arm, &r.login, ca, &r.tenant_id, &r.client_id, &r.client_secret, policy)?)
}

/// The client a crash-test worker uses: quick polls and retries, like the tests.
fn worker_client(ready: &ringmaster_sim::ReadyInfo) -> anyhow::Result<ArmClient> {
    let ca = std::fs::read(&ready.ca_cert)?;
    let policy = RetryPolicy {
        min_poll: Duration::from_millis(30),
        max_poll: Duration::from_millis(500),
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        ..RetryPolicy::default()
    };
    Ok(simulated_tenant_client(
        &ready.arm,
        &ready.login,
        &ca,
        &ready.tenant_id,
        &ready.client_id,
        &ready.client_secret,
        policy,
    )?)
}

fn engine_for(
    client: ArmClient,
    ready: &ringmaster_sim::ReadyInfo,
    db: &std::path::Path,
    scale: f64,
    learn_pace: bool,
) -> anyhow::Result<Engine> {
    let engine = Engine::new(Arc::new(Store::open(db)?));
    engine.connect(TenantConnection {
        client,
        mode: "bench".into(),
        tenant_id: ready.tenant_id.clone(),
        tenant_name: ready.tenant_name.clone(),
        cloud: "Simulated".into(),
        authority_host: ready.login.clone(),
        executor: ExecutorConfig { learn_pace, ..ExecutorConfig::for_time_scale(scale) },
        build: ringmaster_engine::BuildConfig::for_time_scale(scale),
        principal: "ringmaster-bench".into(),
        login_enterprise: None,
    });
    Ok(engine)
}

/// Register the seeded golden master (found by its tag) unless the journal already has it.
async fn ensure_master(engine: &Engine) -> anyhow::Result<String> {
    let err = |e: ringmaster_engine::EngineError| anyhow::anyhow!(e.to_string());
    let masters = engine.golden_masters().await.map_err(err)?;
    let m = masters.first().context("the tenant has no VM tagged ringmaster-golden-master")?;
    if m.registered_at.is_none() {
        engine
            .register_master(&ringmaster_engine::MasterRegistration {
                vm_id: m.vm_id.clone(),
                image_definition_id: m.image_definition_id.clone(),
                capture_subnet_id: m.capture_subnet_id.clone(),
            })
            .await
            .map_err(err)?;
    }
    Ok(m.vm_id.clone())
}

async fn wait_capture(engine: &Engine, id: &str) -> anyhow::Result<ringmaster_engine::CaptureView> {
    loop {
        let c = engine.capture(id).map_err(|e| anyhow::anyhow!(e.to_string()))?;
        if c.state != ringmaster_engine::CaptureState::Running {
            return Ok(c);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn sim_stats(http: &reqwest::Client, ready: &ringmaster_sim::ReadyInfo) -> anyhow::Result<serde_json::Value> {
    Ok(http.get(&ready.stats).send().await?.json().await?)
}

/// `capture`: the real capture executor against the simulated tenant (demo seed), whose clock runs
/// `--time-scale` times faster. Figures: the capture's duration in tenant time, the app's own overhead (wall
/// time not spent waiting on Azure), ARM requests, and temporary resources left behind (must be 0).
async fn capture(args: &[String]) -> anyhow::Result<()> {
    let scale: f64 = flag(args, "--time-scale", 600.0)?;
    let latency_ms: u64 = flag(args, "--latency-ms", 0)?;
    let sim =
        ringmaster_sim::start(SimConfig { seed: Seed::Demo, time_scale: scale, latency_ms, ..SimConfig::default() })
            .await?;
    let r = sim.ready.clone();
    let ca = std::fs::read(&r.ca_cert)?;
    let client = azure_paced_client(&r, &ca, scale)?;
    let http = ringmaster_azure::http_client(Some(&ca))?;
    let dir = tempfile::tempdir()?;
    let engine = engine_for(client.clone(), &r, &dir.path().join("capture.db"), scale, true)?;
    let err = |e: ringmaster_engine::EngineError| anyhow::anyhow!(e.to_string());
    engine.refresh(&|_| {}).await.map_err(err)?;
    let master = ensure_master(&engine).await?;
    let plan = engine.plan_capture(&master).await.map_err(err)?;

    let sim_start: String = sim_stats(&http, &r).await?["simNow"].as_str().unwrap_or_default().into();
    let requests_before = client.requests();
    let waiting_before = client.counters().waiting_us.load(std::sync::atomic::Ordering::Relaxed);
    let t0 = Instant::now();
    let started = engine.start_capture(&plan).await.map_err(err)?;
    let done = wait_capture(&engine, &started.id).await?;
    let wall = t0.elapsed();
    let waiting =
        Duration::from_micros(client.counters().waiting_us.load(std::sync::atomic::Ordering::Relaxed) - waiting_before);
    let requests = client.requests() - requests_before;
    let stats = sim_stats(&http, &r).await?;
    let parse = |s: &str| time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok();
    let sim_seconds = match (parse(&sim_start), stats["simNow"].as_str().and_then(parse)) {
        (Some(a), Some(b)) => (b - a).as_seconds_f64(),
        _ => wall.as_secs_f64() * scale,
    };
    // Wall time the executor was not waiting on Azure; the 100 ms watcher loop above is outside the engine.
    let overhead = wall.saturating_sub(waiting);
    let leftovers = stats["captureLeftovers"].as_array().map(Vec::len).unwrap_or(0);
    let violations = stats["masterViolations"].as_array().map(Vec::len).unwrap_or(0);
    println!("capture of {} into {}: {:?}", ringmaster_engine::build::name_of(&master), plan.version, done.state);
    for s in &done.stages {
        println!("  {:<40} {:?} .. {:?}", s.label, s.started_at, s.finished_at);
    }
    println!("simulated duration      {:.0} s ({:.1} min)", sim_seconds, sim_seconds / 60.0);
    println!("wall time               {:.2} s at time scale {scale}", wall.as_secs_f64());
    println!(
        "app overhead            {:.1} ms ({:.2}% of wall time)",
        overhead.as_secs_f64() * 1000.0,
        100.0 * overhead.as_secs_f64() / wall.as_secs_f64().max(1e-9)
    );
    println!("ARM requests            {requests}");
    println!("orphans                 {leftovers}");
    println!("master touched          {violations}");
    println!(
        "{}",
        serde_json::json!({
            "bench": "capture",
            "state": done.state,
            "simulatedSeconds": sim_seconds.round(),
            "wallMs": wall.as_millis() as u64,
            "appOverheadMs": (overhead.as_secs_f64() * 1000.0 * 10.0).round() / 10.0,
            "requests": requests,
            "orphans": leftovers,
            "masterViolations": violations,
            "specViolations": stats["specViolations"].as_array().map(Vec::len).unwrap_or(0),
        })
    );
    sim.shutdown();
    if done.state != ringmaster_engine::CaptureState::Succeeded {
        bail!("the capture ended {:?}: {:?}", done.state, done.reason);
    }
    Ok(())
}

/// `capture-worker`: one "app process" for the capture crash test. Connects to a running simulated tenant
/// (`--ready FILE`), resumes whatever the journal in `--db` holds, starts a capture if there is none, and
/// exits 0 when it has ended (succeeded, or failed with everything cleaned up).
async fn capture_worker(args: &[String]) -> anyhow::Result<()> {
    let ready: ringmaster_sim::ReadyInfo =
        serde_json::from_str(&std::fs::read_to_string(text_flag(args, "--ready")?)?)?;
    let db = std::path::PathBuf::from(text_flag(args, "--db")?);
    let scale: f64 = flag(args, "--time-scale", 1.0)?;
    let engine = engine_for(worker_client(&ready)?, &ready, &db, scale, true)?;
    let err = |e: ringmaster_engine::EngineError| anyhow::anyhow!(e.to_string());
    let id = match engine.store().captures()?.into_iter().next() {
        Some(c) => c.id,
        None => {
            engine.refresh(&|_| {}).await.map_err(err)?;
            let master = ensure_master(&engine).await?;
            let plan = engine.plan_capture(&master).await.map_err(err)?;
            engine.start_capture(&plan).await.map_err(err)?.id
        }
    };
    let done = wait_capture(&engine, &id).await?;
    let left: Vec<_> = done.resources.iter().filter(|r| r.state == "created" || r.state == "planned").collect();
    if !left.is_empty() {
        bail!("the capture ended {:?} with resources still there: {left:?}", done.state);
    }
    println!("{:?}", done.state);
    Ok(())
}
