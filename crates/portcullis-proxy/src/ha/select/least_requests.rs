//! `least-requests`: power of two choices. Two distinct candidates at
//! random, the one with fewer requests in flight (scaled by its slow-start
//! weight) wins; cheaper than a scan and free of the herd a strict minimum
//! causes.

use rand::Rng;

use super::{Candidates, Pool};

pub fn pick(pool: &Pool, candidates: &Candidates) -> usize {
    let mut rng = rand::rng();
    let a = candidates.get(rng.random_range(0..candidates.len()));
    let mut b = candidates.get(rng.random_range(0..candidates.len() - 1));
    if b == a {
        b = candidates.last();
    }
    let load = |i: usize| (pool.backends[i].state.in_flight() as f64 + 1.0) / pool.weight(i);
    if load(b) < load(a) {
        b
    } else {
        a
    }
}

#[cfg(test)]
mod tests {
    use portcullis_config::LoadBalancing;
    use tokio::time::Instant;

    use crate::backend::InFlight;
    use crate::ha::select::tests::{backends, counts, eject_then_recover, selector, SEC};

    #[tokio::test(start_paused = true)]
    async fn the_most_loaded_backend_is_never_chosen() {
        let backends = backends(3, 0);
        let selector = selector(LoadBalancing::LeastRequests, &backends, |_| {});
        let _busy: Vec<InFlight> = (0..5)
            .map(|_| InFlight::start(backends[2].clone()))
            .collect();
        let _one = InFlight::start(backends[1].clone());
        let pool = selector.pool(&backends, Instant::now());
        let picks: Vec<usize> = (0..3000)
            .map(|_| {
                selector
                    .pick(&pool, 0, LoadBalancing::LeastRequests)
                    .unwrap()
            })
            .collect();
        let counts = counts(&picks, 3);
        assert_eq!(counts[2], 0, "{counts:?}");
        // 0 wins every pair it is in (2 of 3 pairs), 1 only the pair {1, 2}.
        assert!(counts[0] > counts[1] * 3 / 2, "{counts:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn equal_loads_spread_over_every_candidate() {
        let backends = backends(4, 0);
        let selector = selector(LoadBalancing::LeastRequests, &backends, |_| {});
        let pool = selector.pool(&backends, Instant::now());
        let picks: Vec<usize> = (0..8000)
            .map(|_| {
                selector
                    .pick(&pool, 0, LoadBalancing::LeastRequests)
                    .unwrap()
            })
            .collect();
        for count in counts(&picks, 4) {
            assert!((1600..=2400).contains(&count), "{count}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_starting_backend_counts_as_loaded() {
        let backends = backends(2, 0);
        let selector = selector(LoadBalancing::LeastRequests, &backends, |ha| {
            ha.slow_start = 10 * SEC
        });
        eject_then_recover(&backends[1]).await;
        // 0 has 5 in flight: load 6; idle 1 at weight 0.1: load 10.
        let _busy: Vec<InFlight> = (0..5)
            .map(|_| InFlight::start(backends[0].clone()))
            .collect();
        let pool = selector.pool(&backends, Instant::now());
        for _ in 0..100 {
            assert_eq!(
                selector.pick(&pool, 0, LoadBalancing::LeastRequests),
                Some(0)
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn tried_backends_are_skipped() {
        let backends = backends(3, 0);
        let selector = selector(LoadBalancing::LeastRequests, &backends, |_| {});
        let pool = selector.pool(&backends, Instant::now());
        for _ in 0..100 {
            let pick = selector.pick(&pool, 0b011, LoadBalancing::LeastRequests);
            assert_eq!(pick, Some(2));
        }
        assert_eq!(
            selector.pick(&pool, 0b111, LoadBalancing::LeastRequests),
            None
        );
    }
}
