//! The retry budget of a service: retries caused by timeouts or by
//! `retry_on_status` may add at most 20% to the service's requests over the
//! last 10 s, with a floor of 10 retries per second, so a slow or failing
//! backend pool is not buried under retries (Envoy's retry budget, simplified).
//!
//! Every request touches it, so it takes no lock: the window is ten
//! one-second buckets, and each count is one atomic word holding the second
//! it belongs to (high half) and the count (low half). A count from an older
//! second is replaced, not added to, so rolling a bucket over and counting in
//! it is one compare-and-swap, and no reader ever sees a count beside the
//! wrong second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

const WINDOW_SECONDS: u32 = 10;
const RATIO: f64 = 0.2;
const FLOOR_PER_SECOND: u64 = 10;

/// A count for one second of the window, packed as `second << 32 | count`.
#[derive(Default)]
struct Bucket(AtomicU64);

fn pack(second: u32, count: u32) -> u64 {
    (u64::from(second) << 32) | u64::from(count)
}

fn unpack(word: u64) -> (u32, u32) {
    ((word >> 32) as u32, word as u32)
}

/// `second` is later than `current`: a caller whose `now` was read a
/// moment before another's. Its count is kept, never reset.
fn is_later(second: u32, current: u32) -> bool {
    second != current && second.wrapping_sub(current) < u32::MAX / 2
}

impl Bucket {
    /// The count, if it belongs to a second still inside the window.
    fn live_count(&self, current: u32) -> u64 {
        let (second, count) = unpack(self.0.load(Ordering::Relaxed));
        if current.wrapping_sub(second) < WINDOW_SECONDS || is_later(second, current) {
            u64::from(count)
        } else {
            0
        }
    }

    /// Adds one to the count of `current` if `allow` accepts the count so
    /// far (0 when the bucket still holds an older second).
    fn add_if(&self, current: u32, allow: impl Fn(u64) -> bool) -> bool {
        let mut word = self.0.load(Ordering::Relaxed);
        loop {
            let (second, count) = unpack(word);
            let (second, count) = if second == current || is_later(second, current) {
                (second, count)
            } else {
                (current, 0)
            };
            if !allow(u64::from(count)) {
                return false;
            }
            let next = pack(second, count.saturating_add(1));
            match self
                .0
                .compare_exchange_weak(word, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return true,
                Err(actual) => word = actual,
            }
        }
    }
}

pub struct RetryBudget {
    epoch: Instant,
    requests: [Bucket; WINDOW_SECONDS as usize],
    retries: [Bucket; WINDOW_SECONDS as usize],
    /// Retries refused because the budget was spent; shared with the
    /// service's stats, which outlive a rebuilt budget.
    exhausted: Arc<AtomicU64>,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryBudget {
    pub fn new() -> RetryBudget {
        RetryBudget::counting_into(Arc::default())
    }

    /// A budget that counts its refusals into `exhausted`.
    pub fn counting_into(exhausted: Arc<AtomicU64>) -> RetryBudget {
        RetryBudget {
            epoch: Instant::now(),
            requests: Default::default(),
            retries: Default::default(),
            exhausted,
        }
    }

    /// Seconds since the budget was made; wraps after 136 years, which the
    /// window arithmetic tolerates.
    fn second(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_secs() as u32
    }

    fn slot(second: u32) -> usize {
        (second % WINDOW_SECONDS) as usize
    }

    /// Counts one client request of the service.
    pub fn record_request(&self, now: Instant) {
        let second = self.second(now);
        self.requests[Self::slot(second)].add_if(second, |_| true);
    }

    /// Takes one budgeted retry if the budget allows it.
    pub fn try_retry(&self, now: Instant) -> bool {
        let current = self.second(now);
        let slot = Self::slot(current);
        let sum = |buckets: &[Bucket; WINDOW_SECONDS as usize], skip: Option<usize>| -> u64 {
            let live = buckets.iter().enumerate().filter(|(i, _)| Some(*i) != skip);
            live.map(|(_, b)| b.live_count(current)).sum()
        };
        let requests = sum(&self.requests, None);
        let allowed =
            ((requests as f64 * RATIO) as u64).max(FLOOR_PER_SECOND * u64::from(WINDOW_SECONDS));
        // The other seconds change only when the window moves on; the check
        // and the count of this second are one compare-and-swap, so
        // concurrent retries never overspend the budget.
        let earlier = sum(&self.retries, Some(slot));
        let granted = self.retries[slot].add_if(current, |count| earlier + count < allowed);
        if !granted {
            self.exhausted.fetch_add(1, Ordering::Relaxed);
        }
        granted
    }

    /// Retries refused because the budget was spent.
    pub fn exhausted(&self) -> u64 {
        self.exhausted.load(Ordering::Relaxed)
    }

    pub fn window() -> Duration {
        Duration::from_secs(u64::from(WINDOW_SECONDS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_floor_allows_ten_per_second_over_the_window() {
        let budget = RetryBudget::new();
        let granted = (0..150)
            .filter(|_| budget.try_retry(Instant::now()))
            .count();
        assert_eq!(granted, 100, "floor: 10/s over 10 s");
        assert_eq!(budget.exhausted(), 50);
        tokio::time::advance(RetryBudget::window()).await;
        assert!(budget.try_retry(Instant::now()), "the window moved on");
    }

    #[tokio::test(start_paused = true)]
    async fn twenty_percent_of_requests_above_the_floor() {
        let budget = RetryBudget::new();
        for _ in 0..1000 {
            budget.record_request(Instant::now());
        }
        let granted = (0..1000)
            .filter(|_| budget.try_retry(Instant::now()))
            .count();
        assert_eq!(granted, 200);
    }

    #[tokio::test(start_paused = true)]
    async fn old_seconds_leave_the_window() {
        let budget = RetryBudget::new();
        for _ in 0..100 {
            assert!(budget.try_retry(Instant::now()));
        }
        assert!(!budget.try_retry(Instant::now()));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(!budget.try_retry(Instant::now()), "still inside 10 s");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(budget.try_retry(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn requests_spread_over_the_window_all_count() {
        let budget = RetryBudget::new();
        // 100 requests a second for 10 s: 1,000 in the window, 200 retries.
        for _ in 0..10 {
            for _ in 0..100 {
                budget.record_request(Instant::now());
            }
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        tokio::time::advance(Duration::from_millis(500)).await;
        // The first second has left the window: 900 requests, 180 retries.
        let granted = (0..1000)
            .filter(|_| budget.try_retry(Instant::now()))
            .count();
        assert_eq!(granted, 180);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_reused_a_window_later_starts_from_zero() {
        let budget = RetryBudget::new();
        for _ in 0..1000 {
            budget.record_request(Instant::now());
        }
        // Same slot, ten seconds later: the old 1,000 requests are gone.
        tokio::time::advance(RetryBudget::window()).await;
        budget.record_request(Instant::now());
        let granted = (0..1000)
            .filter(|_| budget.try_retry(Instant::now()))
            .count();
        assert_eq!(granted, 100, "back to the floor");
    }

    #[test]
    fn concurrent_retries_never_overspend() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let _entered = runtime.enter();
        let budget = Arc::new(RetryBudget::new());
        let now = Instant::now();
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let budget = budget.clone();
                std::thread::spawn(move || (0..50).filter(|_| budget.try_retry(now)).count())
            })
            .collect();
        let granted: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(granted, 100);
        assert_eq!(budget.exhausted(), 300);
    }
}
