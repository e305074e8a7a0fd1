//! `ringmaster-sim`: the simulated Azure tenant as a process. Prints one JSON line when ready (endpoints, CA, the
//! automation app's client credentials, the public client id and test user for interactive sign-in, the second
//! tenant), runs until killed.

use std::path::PathBuf;

use ringmaster_sim::{start, Seed, SimConfig};

const USAGE: &str = "usage: ringmaster-sim [--listen 127.0.0.1:0] [--seed demo|large] [--latency-ms N] \
[--time-scale X] [--state-dir DIR] [--page-size N] [--token-lifetime-s N] [--device-code-interval-s N] \
[--device-code-lifetime-s N] [--validate-specs [DIR]]";

fn parse(args: &[String]) -> Result<SimConfig, String> {
    let mut c = SimConfig::default();
    let mut i = 0;
    while i < args.len() {
        let flag = args[i].as_str();
        let mut value = || -> Result<String, String> {
            i += 1;
            args.get(i).cloned().ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag {
            "--listen" => c.listen = value()?.parse().map_err(|e| format!("--listen: {e}"))?,
            "--seed" => c.seed = value()?.parse::<Seed>()?,
            "--latency-ms" => c.latency_ms = value()?.parse().map_err(|e| format!("--latency-ms: {e}"))?,
            "--time-scale" => {
                c.time_scale = value()?.parse().map_err(|e| format!("--time-scale: {e}"))?;
                if !(c.time_scale > 0.0 && c.time_scale.is_finite()) {
                    return Err("--time-scale must be a positive number".into());
                }
            }
            "--state-dir" => c.state_dir = Some(PathBuf::from(value()?)),
            "--page-size" => {
                c.page_size = value()?.parse().map_err(|e| format!("--page-size: {e}"))?;
                if c.page_size == 0 {
                    return Err("--page-size must be at least 1".into());
                }
            }
            "--token-lifetime-s" => {
                c.token_lifetime_s = value()?.parse().map_err(|e| format!("--token-lifetime-s: {e}"))?
            }
            "--device-code-interval-s" => {
                c.device_code_interval_s = value()?.parse().map_err(|e| format!("--device-code-interval-s: {e}"))?;
                if c.device_code_interval_s == 0 {
                    return Err("--device-code-interval-s must be at least 1".into());
                }
            }
            "--device-code-lifetime-s" => {
                c.device_code_lifetime_s = value()?.parse().map_err(|e| format!("--device-code-lifetime-s: {e}"))?
            }
            "--validate-specs" => {
                let dir = match args.get(i + 1) {
                    Some(next) if !next.starts_with("--") => {
                        i += 1;
                        PathBuf::from(next)
                    }
                    _ => ringmaster_sim::spec::default_spec_dir(),
                };
                c.validate_specs = Some(dir);
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument '{other}'\n{USAGE}")),
        }
        i += 1;
    }
    Ok(c)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = match parse(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let sim = match start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ringmaster-sim: {e}");
            std::process::exit(1);
        }
    };
    println!("{}", serde_json::to_string(&sim.ready).expect("ready info serializes"));
    let _ = tokio::signal::ctrl_c().await;
    sim.shutdown();
}
