//! `round-robin`: smooth weighted round robin (nginx's). Backends are spread
//! evenly, and slow-start weights shift the share without bursts.
//!
//! The current weights are atomics, not a locked vector. Each pick adds
//! every candidate's weight to its current weight and takes the total off
//! the one it chose, so a pick changes the sum of current weights by zero
//! whatever other picks run beside it: concurrent picks may see each other's
//! adds late and choose a little off the sequential order, but the weights
//! never drift and the long-run shares stay those of the weights.

use std::sync::atomic::{AtomicI64, Ordering};

use super::{Candidates, Pool};

/// Slow-start weights, in (0, 1], become integers in 1..=100.
const SCALE: f64 = 100.0;

pub struct SmoothRoundRobin {
    current: Box<[AtomicI64]>,
}

impl SmoothRoundRobin {
    pub fn new(backends: usize) -> SmoothRoundRobin {
        SmoothRoundRobin {
            current: (0..backends).map(|_| AtomicI64::new(0)).collect(),
        }
    }

    pub fn pick(&self, pool: &Pool, candidates: &Candidates) -> usize {
        let mut total = 0i64;
        let mut best = candidates.get(0);
        let mut best_weight = i64::MIN;
        for i in candidates.iter() {
            let Some(current) = self.current.get(i) else {
                continue;
            };
            let weight = scaled(pool.weight(i));
            let now = current.fetch_add(weight, Ordering::Relaxed) + weight;
            total += weight;
            if now > best_weight {
                best_weight = now;
                best = i;
            }
        }
        if let Some(current) = self.current.get(best) {
            current.fetch_sub(total, Ordering::Relaxed);
        }
        best
    }
}

/// A weight in (0, 1] as an integer in 1..=100, rounded half up: the same
/// as `f64::round` for positive numbers, without its call (two a pick).
fn scaled(weight: f64) -> i64 {
    (weight * SCALE + 0.5) as i64
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use portcullis_config::LoadBalancing;
    use tokio::time::Instant;

    use super::*;
    use crate::ha::select::tests::{backends, counts, eject_then_recover, selector, SEC};

    #[test]
    fn scaled_weights_round_as_f64_round_does() {
        for step in 0..=100_000 {
            let weight = f64::from(step) / 100_000.0;
            assert_eq!(scaled(weight), (weight * SCALE).round() as i64, "{weight}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn equal_weights_take_turns() {
        let backends = backends(3, 0);
        let selector = selector(LoadBalancing::RoundRobin, &backends, |_| {});
        let pool = selector.pool(&backends, Instant::now());
        let order: Vec<usize> = (0..6)
            .map(|_| selector.pick(&pool, 0, LoadBalancing::RoundRobin).unwrap())
            .collect();
        assert_eq!(order, vec![0, 1, 2, 0, 1, 2]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_starting_backend_gets_its_weight_share_spread_out() {
        let backends = backends(2, 0);
        let selector = selector(LoadBalancing::RoundRobin, &backends, |ha| {
            ha.slow_start = 10 * SEC
        });
        eject_then_recover(&backends[1]).await;
        let pool = selector.pool(&backends, Instant::now());
        assert!((pool.weight(1) - 0.1).abs() < 1e-9, "at the floor");
        let picks: Vec<usize> = (0..110)
            .map(|_| selector.pick(&pool, 0, LoadBalancing::RoundRobin).unwrap())
            .collect();
        assert_eq!(counts(&picks, 2), vec![100, 10], "weights 100 and 10");
        // Smooth: the slow starter's picks are spread, never two in a row.
        assert!(picks.windows(2).all(|w| w != [1, 1]));
    }

    #[tokio::test(start_paused = true)]
    async fn tried_and_unavailable_backends_are_skipped() {
        let backends = backends(3, 0);
        let selector = selector(LoadBalancing::RoundRobin, &backends, |_| {});
        backends[2].state.set_checked_up(false, Instant::now());
        let pool = selector.pool(&backends, Instant::now());
        for _ in 0..10 {
            assert_eq!(
                selector.pick(&pool, 0b001, LoadBalancing::RoundRobin),
                Some(1)
            );
        }
    }

    #[test]
    fn concurrent_picks_keep_the_shares_and_the_weights_balanced() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        let _entered = runtime.enter();
        let backends = backends(4, 0);
        let round_robin = Arc::new(SmoothRoundRobin::new(4));
        let now = Instant::now();
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (backends, round_robin) = (backends.clone(), round_robin.clone());
                std::thread::spawn(move || {
                    let pool = Pool {
                        backends: &backends,
                        now,
                        slow_start: std::time::Duration::ZERO,
                    };
                    let all = Candidates::from_masks(0b1111, 0);
                    (0..10_000)
                        .map(|_| round_robin.pick(&pool, &all))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let picks: Vec<usize> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        for count in counts(&picks, 4) {
            assert!((9_000..=11_000).contains(&count), "{count}");
        }
        let sum: i64 = round_robin
            .current
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum();
        assert_eq!(sum, 0, "every pick adds and removes the same total");
    }
}
