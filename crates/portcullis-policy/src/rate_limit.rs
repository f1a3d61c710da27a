//! Cluster-wide rate limits (PRODUCT.md §11, docs/policies.md): a token
//! bucket per key value, whose refill rate is this member's share of the
//! service's limit. The share comes from the peer exchange (in
//! portcullis-member): a member's share of a key is its part of the
//! cluster's recent demand for that key, so that the members' buckets
//! together refill at the limit. Nothing here knows the network; the
//! exchange hands in the counts and the cluster's view ([`ClusterView`]).

use std::collections::HashMap;
use std::sync::Mutex;

use portcullis_config::RateLimitPolicy;
use tokio::time::Instant;

/// Distinct keys one limiter tracks. Past it, new keys share one overflow
/// bucket with the limit's share, so a flood of made-up keys costs at most
/// this many buckets and is itself held to the limit (never unlimited).
pub const MAX_KEYS: usize = 100_000;

/// Rounding slack in token arithmetic.
const TOLERANCE: f64 = 1e-6;

/// What the limiter answers for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Admitted,
    /// Over the limit; a token is expected back after this many whole
    /// seconds (at least one).
    Limited {
        retry_after_secs: u64,
    },
}

/// The cluster as the exchange last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClusterView {
    /// Members alive in the store's member list, this one included.
    pub live_members: usize,
    /// Peers whose counts arrived within the last two intervals.
    pub reachable_peers: usize,
}

impl ClusterView {
    pub const ALONE: ClusterView = ClusterView {
        live_members: 1,
        reachable_peers: 0,
    };

    /// This member's share of a key's limit, given its own recent demand
    /// for the key and the reachable peers' summed demand. Peers that
    /// cannot be reached are assumed to use their even share
    /// (1 ÷ live members) each, which is kept back; with no demand seen
    /// anywhere the share is the even one too.
    pub fn share(self, own: u64, peers: u64) -> f64 {
        let live = self.live_members.max(self.reachable_peers + 1).max(1);
        let unreachable = live - 1 - self.reachable_peers;
        let even = 1.0 / live as f64;
        let total = own + peers;
        if total == 0 {
            return even;
        }
        let available = 1.0 - unreachable as f64 * even;
        available * own as f64 / total as f64
    }

    /// The share of a key nobody reported demand for.
    pub fn even_share(self) -> f64 {
        self.share(0, 0)
    }
}

/// One key's bucket.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    updated: Instant,
    /// This member's part of the limit, 0..=1.
    share: f64,
    /// Requests seen (admitted or not) since the last exchange.
    seen: u64,
}

/// The buckets of one service's `[service.rate_limit]`.
pub struct RateLimiter {
    /// The cluster-wide refill rate, tokens per second.
    rate: f64,
    burst: f64,
    requests: u64,
    window_secs: u64,
    state: Mutex<Buckets>,
}

struct Buckets {
    keys: HashMap<Box<str>, Bucket>,
    /// Where keys past [`MAX_KEYS`] are counted.
    overflow: Bucket,
    /// The share a new key starts with.
    default_share: f64,
}

impl Bucket {
    fn new(share: f64, burst: f64, now: Instant) -> Bucket {
        Bucket {
            tokens: capacity(burst, share),
            updated: now,
            share,
            seen: 0,
        }
    }

    fn refill(&mut self, rate: f64, burst: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.updated = now;
        self.tokens = (self.tokens + elapsed * rate * self.share).min(capacity(burst, self.share));
    }

    fn is_full(&self, burst: f64) -> bool {
        self.tokens >= capacity(burst, self.share)
    }

    fn take(&mut self, rate: f64, burst: f64, now: Instant) -> Decision {
        self.refill(rate, burst, now);
        self.seen += 1;
        // The tolerance absorbs rounding (durations are whole nanoseconds):
        // six refills of a sixth of a second must make a whole token.
        if self.tokens >= 1.0 - TOLERANCE {
            self.tokens = (self.tokens - 1.0).max(0.0);
            return Decision::Admitted;
        }
        let refill = rate * self.share;
        let wait = if refill > 0.0 {
            ((1.0 - self.tokens) / refill).ceil()
        } else {
            // No share at all until the next exchange: a whole window is the
            // honest upper bound to announce.
            1.0 / rate.max(f64::MIN_POSITIVE)
        };
        Decision::Limited {
            retry_after_secs: (wait.ceil() as u64).max(1),
        }
    }
}

/// A bucket holds its share of the burst, and always one whole token: a
/// member whose share of the burst is below one must still admit.
fn capacity(burst: f64, share: f64) -> f64 {
    (burst * share).max(1.0)
}

impl RateLimiter {
    pub fn new(policy: &RateLimitPolicy) -> RateLimiter {
        let window_secs = policy.per.as_secs().max(1);
        let rate = policy.requests as f64 / window_secs as f64;
        let burst = policy.burst as f64;
        let now = Instant::now();
        RateLimiter {
            rate,
            burst,
            requests: policy.requests,
            window_secs,
            // A member alone admits the whole limit until the first exchange
            // tells it otherwise (that is at most one interval later).
            state: Mutex::new(Buckets {
                keys: HashMap::new(),
                overflow: Bucket::new(1.0, burst, now),
                default_share: 1.0,
            }),
        }
    }

    /// `requests` and the window in seconds, for `RateLimit-Policy`.
    pub fn quota(&self) -> (u64, u64) {
        (self.requests, self.window_secs)
    }

    /// Takes a token for `key`, or says how long until one is back.
    pub fn check(&self, key: &str) -> Decision {
        let now = Instant::now();
        let Ok(mut state) = self.state.lock() else {
            // A panic while holding the lock left it poisoned: refusing is
            // the answer that never exceeds the limit.
            return Decision::Limited {
                retry_after_secs: 1,
            };
        };
        let Buckets {
            keys,
            overflow,
            default_share,
        } = &mut *state;
        if let Some(bucket) = keys.get_mut(key) {
            return bucket.take(self.rate, self.burst, now);
        }
        if keys.len() >= MAX_KEYS {
            return overflow.take(self.rate, self.burst, now);
        }
        let mut bucket = Bucket::new(*default_share, self.burst, now);
        let decision = bucket.take(self.rate, self.burst, now);
        keys.insert(key.into(), bucket);
        decision
    }

    /// The requests seen per key since the last call, for the peers; the
    /// counters restart. Buckets idle since the last call and full again
    /// are dropped: a new bucket would be the same.
    pub fn take_demand(&self) -> Vec<(String, u64)> {
        let now = Instant::now();
        let Ok(mut state) = self.state.lock() else {
            return Vec::new();
        };
        let mut demand = Vec::new();
        let (rate, burst) = (self.rate, self.burst);
        state.keys.retain(|key, bucket| {
            bucket.refill(rate, burst, now);
            if bucket.seen == 0 {
                return !bucket.is_full(burst);
            }
            demand.push((key.to_string(), bucket.seen));
            bucket.seen = 0;
            true
        });
        state.overflow.seen = 0;
        demand
    }

    /// Sets every key's share from this member's demand (`own`, as
    /// [`RateLimiter::take_demand`] gave it) and the reachable peers'
    /// summed demand per key.
    pub fn apply_shares(
        &self,
        own: &[(String, u64)],
        peers: &HashMap<String, u64>,
        view: ClusterView,
    ) {
        let now = Instant::now();
        let own: HashMap<&str, u64> = own.iter().map(|(k, n)| (k.as_str(), *n)).collect();
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let (rate, burst) = (self.rate, self.burst);
        let even = view.even_share();
        for (key, bucket) in state.keys.iter_mut() {
            // Tokens earned so far were earned at the old share.
            bucket.refill(rate, burst, now);
            let mine = own.get(&**key).copied().unwrap_or(0);
            let theirs = peers.get(&**key).copied().unwrap_or(0);
            bucket.share = view.share(mine, theirs);
            bucket.tokens = bucket.tokens.min(capacity(burst, bucket.share));
        }
        state.overflow.refill(rate, burst, now);
        state.overflow.share = even;
        state.overflow.tokens = state.overflow.tokens.min(capacity(burst, even));
        state.default_share = even;
    }

    /// How many keys have a bucket (for tests and the admin API).
    pub fn tracked_keys(&self) -> usize {
        self.state.lock().map(|s| s.keys.len()).unwrap_or(0)
    }
}

#[cfg(test)]
#[path = "rate_limit_tests.rs"]
mod tests;
