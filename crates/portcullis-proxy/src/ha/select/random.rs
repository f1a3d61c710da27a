//! `random`: a candidate at random, each with its slow-start weight. The
//! weights are computed twice rather than kept in a vector: a pick
//! allocates nothing.

use rand::Rng;

use super::{Candidates, Pool};

pub fn pick(pool: &Pool, candidates: &Candidates) -> usize {
    let total: f64 = candidates.iter().map(|i| pool.weight(i)).sum();
    let mut point = rand::rng().random_range(0.0..total);
    for i in candidates.iter() {
        let weight = pool.weight(i);
        if point < weight {
            return i;
        }
        point -= weight;
    }
    candidates.last()
}

#[cfg(test)]
mod tests {
    use portcullis_config::LoadBalancing;
    use tokio::time::Instant;

    use crate::ha::select::tests::{backends, counts, eject_then_recover, selector, SEC};

    #[tokio::test(start_paused = true)]
    async fn equal_weights_spread_evenly() {
        let backends = backends(4, 0);
        let selector = selector(LoadBalancing::Random, &backends, |_| {});
        let pool = selector.pool(&backends, Instant::now());
        let picks: Vec<usize> = (0..8000)
            .map(|_| selector.pick(&pool, 0, LoadBalancing::Random).unwrap())
            .collect();
        for count in counts(&picks, 4) {
            assert!((1700..=2300).contains(&count), "{count}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_starting_backend_gets_its_weight_share() {
        let backends = backends(2, 0);
        let selector = selector(LoadBalancing::Random, &backends, |ha| {
            ha.slow_start = 10 * SEC
        });
        eject_then_recover(&backends[1]).await;
        let pool = selector.pool(&backends, Instant::now());
        let picks: Vec<usize> = (0..11_000)
            .map(|_| selector.pick(&pool, 0, LoadBalancing::Random).unwrap())
            .collect();
        // Weights 1 and 0.1: 1 in 11 picks, 1,000 expected.
        let slow = counts(&picks, 2)[1];
        assert!((700..=1300).contains(&slow), "{slow}");
    }

    #[tokio::test(start_paused = true)]
    async fn tried_and_disabled_backends_are_skipped() {
        let backends = backends(3, 0);
        let selector = selector(LoadBalancing::Random, &backends, |_| {});
        backends[1]
            .state
            .set_admin(portcullis_config::AdminState::Disabled);
        let pool = selector.pool(&backends, Instant::now());
        for _ in 0..100 {
            assert_eq!(selector.pick(&pool, 0b001, LoadBalancing::Random), Some(2));
        }
    }
}
