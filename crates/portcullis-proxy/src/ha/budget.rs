//! The retry budget of a service: retries caused by timeouts or by
//! `retry_on_status` may add at most 20% to the service's requests over the
//! last 10 s, with a floor of 10 retries per second, so a slow or failing
//! backend pool is not buried under retries (Envoy's retry budget, simplified).

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

const WINDOW_SECONDS: usize = 10;
const RATIO: f64 = 0.2;
const FLOOR_PER_SECOND: u64 = 10;

#[derive(Clone, Copy, Default)]
struct Bucket {
    second: u64,
    requests: u64,
    retries: u64,
}

pub struct RetryBudget {
    epoch: Instant,
    buckets: Mutex<[Bucket; WINDOW_SECONDS]>,
}

impl Default for RetryBudget {
    fn default() -> Self {
        Self::new()
    }
}

impl RetryBudget {
    pub fn new() -> RetryBudget {
        RetryBudget {
            epoch: Instant::now(),
            buckets: Mutex::new([Bucket::default(); WINDOW_SECONDS]),
        }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    fn with_bucket<T>(
        &self,
        now: Instant,
        f: impl FnOnce(&mut [Bucket; WINDOW_SECONDS], usize) -> T,
    ) -> T {
        let second = self.second(now);
        let slot = (second % WINDOW_SECONDS as u64) as usize;
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets[slot].second != second {
            buckets[slot] = Bucket {
                second,
                ..Bucket::default()
            };
        }
        f(&mut buckets, slot)
    }

    /// Counts one client request of the service.
    pub fn record_request(&self, now: Instant) {
        self.with_bucket(now, |buckets, slot| buckets[slot].requests += 1);
    }

    /// Takes one budgeted retry if the budget allows it.
    pub fn try_retry(&self, now: Instant) -> bool {
        let current = self.second(now);
        self.with_bucket(now, |buckets, slot| {
            let live = buckets
                .iter()
                .filter(|b| current.saturating_sub(b.second) < WINDOW_SECONDS as u64);
            let (requests, retries) =
                live.fold((0, 0), |(r, t), b| (r + b.requests, t + b.retries));
            let allowed =
                ((requests as f64 * RATIO) as u64).max(FLOOR_PER_SECOND * WINDOW_SECONDS as u64);
            if retries < allowed {
                buckets[slot].retries += 1;
                true
            } else {
                false
            }
        })
    }

    pub fn window() -> Duration {
        Duration::from_secs(WINDOW_SECONDS as u64)
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
}
