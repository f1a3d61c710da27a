//! Request counters read by the admin API and `/metrics`. Each is a plain
//! atomic owned by the service or backend it counts, so the request path adds
//! a few relaxed increments and takes no lock; readers take snapshots.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Upper bounds, in seconds, of the request duration histogram buckets.
pub const LATENCY_BOUNDS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Lowest and highest status codes counted one by one.
const FIRST_CODE: u16 = 100;
const LAST_CODE: u16 = 599;

/// Codes per class (1xx, 2xx, ...).
const CLASS: usize = 100;

/// Responses by status code, one counter per code from 100 to 599. A class's
/// counters are allocated when its first code is counted: every backend and
/// service has one of these, and 500 counters each (4 KB) made a topology of
/// thousands of services cost megabytes for codes never seen (issue 11).
#[derive(Default)]
pub struct StatusCounts {
    classes: [OnceLock<Box<[AtomicU64; CLASS]>>; 5],
}

impl StatusCounts {
    pub(crate) fn add(&self, code: u16) {
        // Codes outside 100..=599 cannot come out of hyper; clamp anyway.
        let index = usize::from(code.clamp(FIRST_CODE, LAST_CODE) - FIRST_CODE);
        if let Some(class) = self.classes.get(index / CLASS) {
            let counters =
                class.get_or_init(|| Box::new(std::array::from_fn(|_| AtomicU64::new(0))));
            counters[index % CLASS].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Every counter with its code, for the classes allocated so far.
    fn counters(&self) -> impl Iterator<Item = (u16, &AtomicU64)> {
        self.classes
            .iter()
            .zip((FIRST_CODE..).step_by(CLASS))
            .filter_map(|(class, first)| class.get().map(|counters| (first, counters)))
            .flat_map(|(first, counters)| (first..).zip(counters.iter()))
    }

    /// The codes seen so far with their counts, in code order.
    pub fn snapshot(&self) -> Vec<(u16, u64)> {
        self.counters()
            .filter_map(|(code, counter)| {
                let count = counter.load(Ordering::Relaxed);
                (count > 0).then_some((code, count))
            })
            .collect()
    }

    pub fn total(&self) -> u64 {
        self.counters()
            .map(|(_, c)| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Responses with a 5xx status.
    pub fn server_errors(&self) -> u64 {
        self.snapshot()
            .iter()
            .filter(|(code, _)| *code >= 500)
            .map(|(_, count)| count)
            .sum()
    }
}

/// Request durations in the buckets of [`LATENCY_BOUNDS`], plus one above.
#[derive(Default)]
pub struct LatencyHistogram {
    buckets: [AtomicU64; LATENCY_BOUNDS.len() + 1],
    sum_micros: AtomicU64,
}

/// A read of a [`LatencyHistogram`]; `counts[i]` is per bucket, not cumulative.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramSnapshot {
    pub counts: Vec<u64>,
    pub count: u64,
    pub sum_seconds: f64,
}

impl LatencyHistogram {
    pub(crate) fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let bucket = LATENCY_BOUNDS.partition_point(|bound| *bound < seconds);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        HistogramSnapshot {
            count: counts.iter().sum(),
            counts,
            sum_seconds: self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

/// Counters of one service, kept across reloads of its config. The request
/// path writes them (crate-private); readers use the methods below.
#[derive(Default)]
pub struct ServiceStats {
    /// Responses the gateway made itself, without a backend's answer (every
    /// backend failed or none was available).
    pub(crate) gateway_answers: StatusCounts,
    /// Time from the request's arrival to its response head.
    pub(crate) latency: LatencyHistogram,
    /// Tries after the first.
    pub(crate) failovers: AtomicU64,
    /// Retries the retry budget refused (shared with the service's budget).
    pub(crate) retry_budget_exhausted: std::sync::Arc<AtomicU64>,
    /// Request bodies that outgrew `replay_buffer_bytes`, so no later try
    /// could have sent them again.
    replay_overflows: AtomicU64,
    /// `[service.auth]` results, for `portcullis_auth_total`.
    pub auth: portcullis_policy::AuthCounts,
    /// Requests `[service.rate_limit]` answered with 429, for
    /// `portcullis_rate_limited_total`.
    pub(crate) rate_limited: AtomicU64,
}

impl ServiceStats {
    /// Responses the gateway made itself, by status code.
    pub fn gateway_answers(&self) -> &StatusCounts {
        &self.gateway_answers
    }

    pub fn latency(&self) -> HistogramSnapshot {
        self.latency.snapshot()
    }

    /// Requests refused with 429 by the service's rate limit.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    /// Tries after the first, over the service's life.
    pub fn failovers(&self) -> u64 {
        self.failovers.load(Ordering::Relaxed)
    }

    /// Retries refused because the service's retry budget was spent.
    pub fn retry_budget_exhausted(&self) -> u64 {
        self.retry_budget_exhausted.load(Ordering::Relaxed)
    }

    pub fn count_replay_overflow(&self) {
        self.replay_overflows.fetch_add(1, Ordering::Relaxed);
    }

    /// Request bodies too large to replay so far.
    pub fn replay_overflows(&self) -> u64 {
        self.replay_overflows.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_upper_bounds() {
        let histogram = LatencyHistogram::default();
        histogram.observe(Duration::from_micros(500)); // exactly the first bound
        histogram.observe(Duration::from_micros(501));
        histogram.observe(Duration::from_secs(11));
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.counts[0], 1);
        assert_eq!(snapshot.counts[1], 1);
        assert_eq!(snapshot.counts[LATENCY_BOUNDS.len()], 1);
        assert_eq!(snapshot.count, 3);
        assert!((snapshot.sum_seconds - 11.001001).abs() < 1e-9);
    }

    #[test]
    fn status_counts_keep_each_code() {
        let counts = StatusCounts::default();
        counts.add(200);
        counts.add(200);
        counts.add(503);
        counts.add(42); // clamped, never lost
        assert_eq!(counts.snapshot(), vec![(100, 1), (200, 2), (503, 1)]);
        assert_eq!(counts.total(), 4);
        assert_eq!(counts.server_errors(), 1);
    }

    #[test]
    fn status_counts_allocate_only_the_classes_seen() {
        let counts = StatusCounts::default();
        assert_eq!(counts.total(), 0);
        counts.add(599);
        counts.add(404);
        assert_eq!(counts.snapshot(), vec![(404, 1), (599, 1)]);
        let allocated: Vec<bool> = counts.classes.iter().map(|c| c.get().is_some()).collect();
        assert_eq!(allocated, vec![false, false, false, true, true]);
    }
}
