//! What the crash tests share: start a worker process, SIGKILL it after a random short while, again and again.

use std::process::Child;
use std::time::{Duration, Instant};

use rand::Rng;

/// Kill `spawn()`ed workers `kills` times, each after a random wait in `wait_ms`; then start one more and let it
/// finish within `finish_within`. Returns how many kills happened (fewer when a worker finished on its own, which
/// must have succeeded).
pub async fn kill_repeatedly(
    spawn: impl Fn() -> Child,
    kills: usize,
    wait_ms: std::ops::Range<u64>,
    finish_within: Duration,
) -> usize {
    let mut done = 0;
    while done < kills {
        let mut child = spawn();
        tokio::time::sleep(Duration::from_millis(rand::rng().random_range(wait_ms.clone()))).await;
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "a worker failed on its own: {status}");
            eprintln!("killed {done} times; the work finished before the next kill");
            return done;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        done += 1;
    }
    let mut child = spawn();
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(started.elapsed() < finish_within, "the work did not finish after {done} kills");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(status.success(), "the last worker failed: {status}");
    eprintln!("killed {done} times");
    done
}
