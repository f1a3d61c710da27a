//! Choosing a backend for a try: candidates by health, admin state and tier
//! (urls, then backup_urls, then everything when all are down), then the
//! service's load-balancing policy among them.

use std::sync::atomic::Ordering;

use portcullis_config::{AdminState, LoadBalancing};
use rand::Rng;
use tokio::time::Instant;

use crate::routing::ServiceRuntime;

/// Bit set of backend indexes already tried by a request.
pub type Tried = u64;

/// Services have at most this many backends, so `Tried` can hold them all.
/// Validation refuses larger services with the same constant.
pub const MAX_BACKENDS: usize = portcullis_config::MAX_BACKENDS;
const _: () = assert!(MAX_BACKENDS <= Tried::BITS as usize);

fn is_tried(tried: Tried, index: usize) -> bool {
    tried & (1u64 << index) != 0
}

/// Backend indexes, in order, held on the stack: choosing a backend for a
/// try allocates nothing.
pub struct Candidates {
    len: usize,
    items: [usize; MAX_BACKENDS],
}

impl Candidates {
    /// The indexes in `first`, ascending, then those in `then`, ascending.
    fn from_masks(first: Tried, then: Tried) -> Candidates {
        let mut candidates = Candidates {
            len: 0,
            items: [0; MAX_BACKENDS],
        };
        for mut mask in [first, then] {
            while mask != 0 {
                candidates.items[candidates.len] = mask.trailing_zeros() as usize;
                candidates.len += 1;
                mask &= mask - 1;
            }
        }
        candidates
    }
}

impl std::ops::Deref for Candidates {
    type Target = [usize];

    fn deref(&self) -> &[usize] {
        &self.items[..self.len]
    }
}

impl ServiceRuntime {
    fn accepts_new_clients(&self, index: usize, now: Instant) -> bool {
        let state = &self.backends[index].state;
        state.admin() == AdminState::Enabled && state.is_up(now)
    }

    /// Candidates for the next try, in url order. Backups only when no primary
    /// is up or every primary that is up was already tried; when nothing at all
    /// is up, every enabled backend, so that a broken health check alone never
    /// takes the service offline.
    pub fn candidates(&self, now: Instant, tried: Tried) -> Candidates {
        let count = self.backends.len().min(MAX_BACKENDS);
        let mut up: Tried = 0;
        let mut backup: Tried = 0;
        for i in 0..count {
            if self.accepts_new_clients(i, now) {
                up |= 1 << i;
            }
            if self.backends[i].backup {
                backup |= 1 << i;
            }
        }
        let untried_up = up & !tried;
        if untried_up & !backup != 0 {
            return Candidates::from_masks(untried_up & !backup, 0);
        }
        if untried_up & backup != 0 {
            return Candidates::from_masks(untried_up & backup, 0);
        }
        if up == 0 {
            let mut enabled: Tried = 0;
            for i in 0..count {
                if self.backends[i].state.admin() == AdminState::Enabled && !is_tried(tried, i) {
                    enabled |= 1 << i;
                }
            }
            return Candidates::from_masks(enabled & !backup, enabled & backup);
        }
        Candidates::from_masks(0, 0)
    }

    /// The backend for the next try, or `None` when nothing is left to try.
    /// `policy` is the service's, or `None` for clients excluded from balancing.
    pub fn pick(&self, now: Instant, tried: Tried, policy: LoadBalancing) -> Option<usize> {
        if !self.config.ha.enabled {
            let first_enabled = self.backends.first()?.state.admin() != AdminState::Disabled;
            return (!is_tried(tried, 0) && first_enabled).then_some(0);
        }
        let candidates = self.candidates(now, tried);
        match candidates.len() {
            0 => None,
            1 => {
                if policy == LoadBalancing::None {
                    self.follow_active(now, candidates[0]);
                }
                Some(candidates[0])
            }
            _ => Some(match policy {
                LoadBalancing::None => self.pick_active(now, &candidates),
                LoadBalancing::RoundRobin => self.pick_round_robin(now, &candidates),
                LoadBalancing::LeastRequests => self.pick_least_requests(now, &candidates),
                LoadBalancing::Random => self.pick_random(now, &candidates),
            }),
        }
    }

    /// `none`: everyone uses the active backend; when it is not available the
    /// next one (in url order after it) becomes active for all clients. With
    /// `failback`, the first url takes over again as soon as it is up.
    fn pick_active(&self, now: Instant, candidates: &[usize]) -> usize {
        if self.config.ha.failback && candidates.contains(&0) {
            self.set_active(0);
            return 0;
        }
        let active = self.active_index();
        if candidates.contains(&active) {
            return active;
        }
        let count = self.backends.len();
        let next = candidates
            .iter()
            .copied()
            .min_by_key(|&i| (i + count - active) % count)
            .unwrap_or(candidates[0]);
        self.follow_active(now, next);
        next
    }

    /// Moves the active backend to `next` only when the active one cannot take
    /// new clients; a backend merely tried by this request stays active.
    fn follow_active(&self, now: Instant, next: usize) {
        let active = self.active_index();
        if active != next && !self.accepts_new_clients(active.min(self.backends.len() - 1), now) {
            self.promote(active, next);
        }
    }

    fn weight(&self, now: Instant, index: usize) -> f64 {
        self.backends[index]
            .state
            .weight(now, self.config.ha.slow_start)
    }

    /// Smooth weighted round robin (nginx's): even spreading, and slow-start
    /// weights shift the share without bursts.
    fn pick_round_robin(&self, now: Instant, candidates: &[usize]) -> usize {
        let mut current = self.round_robin.lock().unwrap_or_else(|p| p.into_inner());
        let mut total = 0i64;
        let mut best = candidates[0];
        let mut best_weight = i64::MIN;
        for &i in candidates {
            let weight = (self.weight(now, i) * 100.0).round() as i64;
            current[i] += weight;
            total += weight;
            if current[i] > best_weight {
                best_weight = current[i];
                best = i;
            }
        }
        current[best] -= total;
        best
    }

    /// Power of two choices on requests in flight, scaled by slow-start weight.
    fn pick_least_requests(&self, now: Instant, candidates: &[usize]) -> usize {
        let mut rng = rand::rng();
        let a = candidates[rng.random_range(0..candidates.len())];
        let mut b = candidates[rng.random_range(0..candidates.len() - 1)];
        if b == a {
            b = candidates[candidates.len() - 1];
        }
        let load = |i: usize| {
            (self.backends[i].state.in_flight.load(Ordering::Relaxed) as f64 + 1.0)
                / self.weight(now, i)
        };
        if load(b) < load(a) {
            b
        } else {
            a
        }
    }

    fn pick_random(&self, now: Instant, candidates: &[usize]) -> usize {
        let weights: Vec<f64> = candidates.iter().map(|&i| self.weight(now, i)).collect();
        let total: f64 = weights.iter().sum();
        let mut point = rand::rng().random_range(0.0..total);
        for (&i, w) in candidates.iter().zip(&weights) {
            if point < *w {
                return i;
            }
            point -= w;
        }
        candidates[candidates.len() - 1]
    }
}
