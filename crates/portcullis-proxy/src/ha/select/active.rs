//! `none`: every client uses the service's active backend (Knox's "active
//! URL"). When it cannot take new clients, the next candidate in url order
//! after it becomes active for all; with `failback`, the first url takes over
//! again as soon as it is up.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Candidates, Pool};

pub struct Active {
    index: AtomicUsize,
    failback: bool,
}

impl Active {
    pub fn new(index: usize, failback: bool) -> Active {
        Active {
            index: AtomicUsize::new(index),
            failback,
        }
    }

    pub fn index(&self) -> usize {
        self.index.load(Ordering::Relaxed)
    }

    /// Records that `index` answered after `failed` (the active backend)
    /// failed, so every later request starts there. A no-op when another
    /// request already moved the active backend.
    pub fn promote(&self, failed: usize, index: usize) {
        let _ = self
            .index
            .compare_exchange(failed, index, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub(super) fn pick(&self, pool: &Pool, candidates: &Candidates) -> usize {
        if self.failback && candidates.contains(0) {
            self.index.store(0, Ordering::Relaxed);
            return 0;
        }
        let active = self.index();
        if candidates.contains(active) {
            return active;
        }
        let count = pool.backends.len();
        let next = candidates
            .iter()
            .min_by_key(|&i| (i + count - active) % count)
            .unwrap_or(candidates.get(0));
        self.follow(pool, next);
        next
    }

    /// Moves the active backend to `next` only when the active one cannot take
    /// new clients; a backend merely tried by this request stays active.
    pub(super) fn follow(&self, pool: &Pool, next: usize) {
        let active = self.index();
        let last = pool.backends.len().saturating_sub(1);
        if active != next && !pool.accepts_new_clients(active.min(last)) {
            self.promote(active, next);
        }
    }
}

#[cfg(test)]
mod tests {
    use portcullis_config::{AdminState, LoadBalancing};

    use crate::ha::select::tests::{backends, selector, SEC};
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn everyone_stays_on_the_active_backend() {
        let backends = backends(3, 0);
        let selector = selector(LoadBalancing::None, &backends, |_| {});
        let pool = selector.pool(&backends, Instant::now());
        for _ in 0..10 {
            assert_eq!(selector.pick(&pool, 0, LoadBalancing::None), Some(0));
        }
        // A failed try moves on in url order, without moving the active one
        // while it still takes clients.
        assert_eq!(selector.pick(&pool, 0b001, LoadBalancing::None), Some(1));
        assert_eq!(selector.active().index(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_down_active_backend_hands_over_to_the_next_in_url_order() {
        let backends = backends(3, 0);
        let selector = selector(LoadBalancing::None, &backends, |_| {});
        selector.active().promote(0, 1);
        backends[1].state.set_checked_up(false, Instant::now());
        let pool = selector.pool(&backends, Instant::now());
        assert_eq!(selector.pick(&pool, 0, LoadBalancing::None), Some(2));
        assert_eq!(selector.active().index(), 2, "the next after 1 wraps to 2");
        // The old active one coming back does not take over without failback.
        backends[1].state.set_checked_up(true, Instant::now());
        let pool = selector.pool(&backends, Instant::now());
        assert_eq!(selector.pick(&pool, 0, LoadBalancing::None), Some(2));
    }

    #[tokio::test(start_paused = true)]
    async fn failback_returns_to_the_first_url_once_it_is_up() {
        let backends = backends(2, 0);
        let selector = selector(LoadBalancing::None, &backends, |ha| ha.failback = true);
        backends[0].state.set_checked_up(false, Instant::now());
        let pool = selector.pool(&backends, Instant::now());
        assert_eq!(selector.pick(&pool, 0, LoadBalancing::None), Some(1));
        assert_eq!(selector.active().index(), 1);
        tokio::time::advance(SEC).await;
        backends[0].state.set_checked_up(true, Instant::now());
        let pool = selector.pool(&backends, Instant::now());
        assert_eq!(selector.pick(&pool, 0, LoadBalancing::None), Some(0));
        assert_eq!(selector.active().index(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn promote_moves_only_from_the_backend_that_failed() {
        let backends = backends(3, 0);
        let selector = selector(LoadBalancing::None, &backends, |_| {});
        selector.active().promote(0, 2);
        assert_eq!(selector.active().index(), 2);
        // A request that saw 0 fail, late: the active one already moved.
        selector.active().promote(0, 1);
        assert_eq!(selector.active().index(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_draining_active_backend_hands_over_too() {
        let backends = backends(2, 0);
        let selector = selector(LoadBalancing::None, &backends, |_| {});
        backends[0].state.set_admin(AdminState::Draining);
        let pool = selector.pool(&backends, Instant::now());
        assert_eq!(selector.pick(&pool, 0, LoadBalancing::None), Some(1));
        assert_eq!(selector.active().index(), 1);
    }
}
