//! Helpers shared by the policies' tests, and the tests of what every
//! policy shares: the candidates and HA switched off.

use std::sync::Arc;
use std::time::Duration;

use portcullis_config::{AdminState, HaPolicy, LoadBalancing};
use tokio::time::Instant;

use super::{Selector, Tried};
use crate::backend::Backend;
use crate::cookie_key::CookieKey;

pub const SEC: Duration = Duration::from_secs(1);

/// `primaries` urls, then `backups` backup urls.
pub fn backends(primaries: usize, backups: usize) -> Vec<Arc<Backend>> {
    let key = CookieKey::new([3; 32]);
    (0..primaries + backups)
        .map(|i| {
            let url = url::Url::parse(&format!("http://127.0.0.1:{}/", 9000 + i)).unwrap();
            Arc::new(Backend::new("t", "s", &url, i >= primaries, &key).unwrap())
        })
        .collect()
}

pub fn selector(
    policy: LoadBalancing,
    backends: &[Arc<Backend>],
    tweak: impl FnOnce(&mut HaPolicy),
) -> Selector {
    let mut ha = HaPolicy {
        load_balancing: policy,
        ..HaPolicy::default()
    };
    tweak(&mut ha);
    Selector::new(&ha, backends.len(), 0)
}

/// How many picks each of `n` backends got.
pub fn counts(picks: &[usize], n: usize) -> Vec<usize> {
    (0..n)
        .map(|i| picks.iter().filter(|&&p| p == i).count())
        .collect()
}

/// Ejects a backend for one second and lets the ejection end: it is up, at
/// the start of its slow-start ramp.
pub async fn eject_then_recover(backend: &Backend) {
    backend.state.record_failure(Instant::now(), 1, SEC);
    tokio::time::advance(SEC).await;
    assert!(backend.state.is_up(Instant::now()));
}

fn candidates(backends: &[Arc<Backend>], tried: Tried) -> Vec<usize> {
    let selector = selector(LoadBalancing::None, backends, |_| {});
    selector
        .pool(backends, Instant::now())
        .candidates(tried)
        .iter()
        .collect()
}

#[tokio::test(start_paused = true)]
async fn primaries_first_then_backups_once_primaries_are_tried_or_down() {
    let backends = backends(2, 2);
    assert_eq!(candidates(&backends, 0), vec![0, 1]);
    assert_eq!(candidates(&backends, 0b0001), vec![1]);
    assert_eq!(candidates(&backends, 0b0011), vec![2, 3]);
    backends[0].state.set_checked_up(false, Instant::now());
    assert_eq!(candidates(&backends, 0b0010), vec![2, 3]);
    assert_eq!(candidates(&backends, 0b1111), Vec::<usize>::new());
}

#[tokio::test(start_paused = true)]
async fn draining_and_disabled_backends_take_no_new_clients() {
    let backends = backends(3, 0);
    backends[0].state.set_admin(AdminState::Draining);
    backends[1].state.set_admin(AdminState::Disabled);
    assert_eq!(candidates(&backends, 0), vec![2]);
}

#[tokio::test(start_paused = true)]
async fn when_nothing_is_up_every_enabled_untried_backend_is_a_candidate() {
    let backends = backends(2, 1);
    for backend in &backends {
        backend.state.set_checked_up(false, Instant::now());
    }
    backends[1].state.set_admin(AdminState::Disabled);
    assert_eq!(candidates(&backends, 0), vec![0, 2]);
    assert_eq!(candidates(&backends, 0b001), vec![2]);
}

#[tokio::test(start_paused = true)]
async fn with_ha_off_only_the_first_url_is_used() {
    let backends = backends(3, 0);
    let selector = selector(LoadBalancing::RoundRobin, &backends, |ha| {
        ha.enabled = false
    });
    backends[0].state.set_checked_up(false, Instant::now());
    let pool = selector.pool(&backends, Instant::now());
    assert_eq!(selector.pick(&pool, 0, LoadBalancing::RoundRobin), Some(0));
    assert_eq!(selector.pick(&pool, 0b001, LoadBalancing::RoundRobin), None);
    backends[0].state.set_admin(AdminState::Disabled);
    assert_eq!(selector.pick(&pool, 0, LoadBalancing::RoundRobin), None);
}

#[tokio::test(start_paused = true)]
async fn excluded_clients_use_the_active_backend_whatever_the_policy() {
    let backends = backends(3, 0);
    let selector = selector(LoadBalancing::RoundRobin, &backends, |_| {});
    let pool = selector.pool(&backends, Instant::now());
    for _ in 0..5 {
        assert_eq!(selector.pick(&pool, 0, LoadBalancing::None), Some(0));
    }
    let balanced: Vec<usize> = (0..3)
        .map(|_| selector.pick(&pool, 0, LoadBalancing::RoundRobin).unwrap())
        .collect();
    assert_eq!(balanced, vec![0, 1, 2]);
}
