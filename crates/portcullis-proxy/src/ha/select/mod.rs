//! Choosing a backend for a try. Two steps: the candidates, by admin state,
//! health and tier (urls, then backup_urls, then everything when all are
//! down), then the service's load-balancing policy among them, one file per
//! policy. The service owns one [`Selector`]; nothing here locks or
//! allocates.

mod active;
mod least_requests;
mod random;
mod round_robin;

use std::sync::Arc;
use std::time::Duration;

use portcullis_config::{AdminState, HaPolicy, LoadBalancing};
use tokio::time::Instant;

use crate::backend::{Backend, Clients};
pub use active::Active;
use round_robin::SmoothRoundRobin;

/// Bit set of backend indexes already tried by a request.
pub type Tried = u64;

/// Services have at most this many backends, so `Tried` can hold them all.
/// Validation refuses larger services with the same constant.
pub const MAX_BACKENDS: usize = portcullis_config::MAX_BACKENDS;
const _: () = assert!(MAX_BACKENDS <= Tried::BITS as usize);

fn is_tried(tried: Tried, index: usize) -> bool {
    tried & (1u64 << index) != 0
}

/// The backends of a service as one pick sees them: at one instant, with
/// the service's slow-start ramp.
pub struct Pool<'a> {
    pub backends: &'a [Arc<Backend>],
    pub now: Instant,
    pub slow_start: Duration,
}

impl Pool<'_> {
    /// Share of traffic of a backend, in (0, 1]: below 1 during slow start.
    pub fn weight(&self, index: usize) -> f64 {
        self.backends[index].state.weight(self.now, self.slow_start)
    }

    fn accepts_new_clients(&self, index: usize) -> bool {
        self.backends[index].state.can_serve(self.now, Clients::New)
    }

    /// Candidates for the next try, in url order. Backups only when no
    /// primary is up or every primary that is up was already tried; when
    /// nothing at all is up, every enabled backend, so that a broken health
    /// check alone never takes the service offline.
    pub fn candidates(&self, tried: Tried) -> Candidates {
        let count = self.backends.len().min(MAX_BACKENDS);
        let mut up: Tried = 0;
        let mut backup: Tried = 0;
        for i in 0..count {
            if self.accepts_new_clients(i) {
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
}

/// Backend indexes, in order, held on the stack: choosing a backend for a
/// try allocates nothing. Bytes, not `usize`s: zeroing room for
/// `MAX_BACKENDS` of them is then a few stores, not a 512-byte `memset` per
/// pick (callgrind).
pub struct Candidates {
    len: usize,
    items: [u8; MAX_BACKENDS],
}

const _: () = assert!(MAX_BACKENDS <= u8::MAX as usize + 1);

impl Candidates {
    /// The indexes in `first`, ascending, then those in `then`, ascending.
    fn from_masks(first: Tried, then: Tried) -> Candidates {
        let mut candidates = Candidates {
            len: 0,
            items: [0; MAX_BACKENDS],
        };
        for mut mask in [first, then] {
            while mask != 0 {
                // Below `Tried::BITS`, so it fits a byte.
                candidates.items[candidates.len] = mask.trailing_zeros() as u8;
                candidates.len += 1;
                mask &= mask - 1;
            }
        }
        candidates
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The `n`th candidate; `n` must be below `len()`.
    pub fn get(&self, n: usize) -> usize {
        usize::from(self.items[..self.len][n])
    }

    pub fn last(&self) -> usize {
        self.get(self.len - 1)
    }

    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.items[..self.len].iter().map(|&i| usize::from(i))
    }

    pub fn contains(&self, index: usize) -> bool {
        self.iter().any(|i| i == index)
    }
}

/// The policy a service balances with, and its state.
enum Balancer {
    /// Everyone on the active backend (the `Active` of the selector).
    Active,
    RoundRobin(SmoothRoundRobin),
    LeastRequests,
    Random,
}

/// How one service chooses backends: its active backend (used by `none` and
/// by clients excluded from balancing) and its balancing policy's state.
pub struct Selector {
    ha_enabled: bool,
    /// The service's configured policy, whose state `balancer` holds.
    policy: LoadBalancing,
    slow_start: Duration,
    active: Active,
    balancer: Balancer,
}

impl Selector {
    /// `active` is the backend every client of `none` uses first (kept across
    /// reloads by the caller); `backends` is how many the service has.
    pub fn new(ha: &HaPolicy, backends: usize, active: usize) -> Selector {
        let balancer = match ha.load_balancing {
            LoadBalancing::None => Balancer::Active,
            LoadBalancing::RoundRobin => Balancer::RoundRobin(SmoothRoundRobin::new(backends)),
            LoadBalancing::LeastRequests => Balancer::LeastRequests,
            LoadBalancing::Random => Balancer::Random,
        };
        Selector {
            ha_enabled: ha.enabled,
            policy: ha.load_balancing,
            slow_start: ha.slow_start,
            active: Active::new(active, ha.failback),
            balancer,
        }
    }

    pub fn active(&self) -> &Active {
        &self.active
    }

    pub fn pool<'a>(&self, backends: &'a [Arc<Backend>], now: Instant) -> Pool<'a> {
        Pool {
            backends,
            now,
            slow_start: self.slow_start,
        }
    }

    /// The backend for the next try, or `None` when nothing is left to try.
    /// `policy` is `None` for clients excluded from balancing, else the
    /// service's own policy (whose state this selector holds).
    pub fn pick(&self, pool: &Pool, tried: Tried, policy: LoadBalancing) -> Option<usize> {
        debug_assert!(
            policy == LoadBalancing::None || policy == self.policy,
            "a selector balances only with its service's policy"
        );
        if !self.ha_enabled {
            let first_enabled = pool.backends.first()?.state.admin() != AdminState::Disabled;
            return (!is_tried(tried, 0) && first_enabled).then_some(0);
        }
        let candidates = pool.candidates(tried);
        match candidates.len() {
            0 => None,
            1 => {
                if policy == LoadBalancing::None {
                    self.active.follow(pool, candidates.get(0));
                }
                Some(candidates.get(0))
            }
            _ if policy == LoadBalancing::None => Some(self.active.pick(pool, &candidates)),
            _ => Some(match &self.balancer {
                Balancer::Active => self.active.pick(pool, &candidates),
                Balancer::RoundRobin(round_robin) => round_robin.pick(pool, &candidates),
                Balancer::LeastRequests => least_requests::pick(pool, &candidates),
                Balancer::Random => random::pick(pool, &candidates),
            }),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
