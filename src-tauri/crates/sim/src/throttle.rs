//! ARM's token buckets (per principal, per subscription or tenant, per kind of operation) and Resource Graph's
//! per-user quota window.

use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Read,
    Write,
    Delete,
}

impl Kind {
    /// Bucket size and refill per second, as ARM publishes them.
    fn limits(self) -> (f64, f64) {
        match self {
            Kind::Read => (250.0, 25.0),
            Kind::Write => (200.0, 10.0),
            Kind::Delete => (200.0, 10.0),
        }
    }
    pub fn header_word(self) -> &'static str {
        match self {
            Kind::Read => "reads",
            Kind::Write => "writes",
            Kind::Delete => "deletes",
        }
    }
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct Throttle {
    buckets: HashMap<(String, String, Kind), Bucket>,
    graph: HashMap<String, (Instant, u32)>,
    /// The tenant's clock speed: buckets refill in tenant time, so a fast-clocked rollout meets ARM's limits
    /// as a real one would (and `Retry-After` is given in real seconds).
    time_scale: f64,
}

impl Throttle {
    pub fn new(time_scale: f64) -> Throttle {
        Throttle { buckets: HashMap::new(), graph: HashMap::new(), time_scale: time_scale.max(1e-9) }
    }
}

/// Resource Graph: 15 queries per 5-second window per user.
pub const GRAPH_QUOTA: u32 = 15;
pub const GRAPH_WINDOW: Duration = Duration::from_secs(5);

pub enum Outcome {
    Allowed { remaining: u32 },
    Throttled { retry_after_s: u64 },
}

impl Throttle {
    pub fn take(&mut self, principal: &str, scope: &str, kind: Kind) -> Outcome {
        let (size, rate) = kind.limits();
        let now = Instant::now();
        let b = self
            .buckets
            .entry((principal.to_string(), scope.to_string(), kind))
            .or_insert(Bucket { tokens: size, at: now });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.time_scale * rate).min(size);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Outcome::Allowed { remaining: b.tokens as u32 }
        } else {
            let wait = ((1.0 - b.tokens) / rate / self.time_scale).ceil().max(1.0);
            Outcome::Throttled { retry_after_s: wait as u64 }
        }
    }

    /// Returns (allowed, remaining, resets_after).
    pub fn take_graph(&mut self, principal: &str) -> (bool, u32, Duration) {
        let now = Instant::now();
        let w = self.graph.entry(principal.to_string()).or_insert((now, 0));
        if now.duration_since(w.0) >= GRAPH_WINDOW {
            *w = (now, 0);
        }
        let resets = GRAPH_WINDOW.saturating_sub(now.duration_since(w.0));
        if w.1 >= GRAPH_QUOTA {
            return (false, 0, resets);
        }
        w.1 += 1;
        (true, GRAPH_QUOTA - w.1, resets)
    }
}
