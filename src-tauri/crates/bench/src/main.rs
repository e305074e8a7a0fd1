//! `ringmaster-bench inventory --seed large --latency-ms 30`: a full inventory refresh (fetch + write to SQLite)
//! through Resource Graph, and the same through per-pool ARM listing (what the portal and `az` do), against the
//! simulated tenant in the same run. Prints the figures; the last line is JSON.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use ringmaster_azure::{simulated_tenant_client, ArmClient, RetryPolicy};
use ringmaster_engine::{snapshot_of, Engine};
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
    if args.first().map(String::as_str) != Some("inventory") {
        bail!("usage: ringmaster-bench inventory [--seed demo|large] [--latency-ms N]");
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
