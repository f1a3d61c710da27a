//! Waits on a condition with a deadline. Tests poll what they need to see
//! rather than sleeping a fixed time and hoping the system got there: fast
//! when the machine is idle, still correct when it is loaded, and a clear
//! message naming the condition when it never holds.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often conditions are polled.
const POLL: Duration = Duration::from_millis(20);

/// Polls `check` until it returns true; panics naming `what` after `timeout`.
/// Returns how long it took.
pub async fn wait_until(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) -> Duration {
    wait_for(what, timeout, || std::future::ready(check())).await
}

/// [`wait_until`] with an async check (for example an HTTP request).
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_until`] for synchronous tests: blocks the thread between polls.
pub fn wait_until_blocking(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    while !check() {
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL);
    }
    started.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_once_the_condition_holds() {
        let mut polls = 0;
        wait_until("three polls", Duration::from_secs(5), || {
            polls += 1;
            polls == 3
        })
        .await;
        assert_eq!(polls, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "timed out after 50ms waiting for the impossible")]
    async fn names_the_condition_when_it_never_holds() {
        wait_until("the impossible", Duration::from_millis(50), || false).await;
    }

    #[test]
    #[should_panic(expected = "timed out after 50ms waiting for nothing")]
    fn the_blocking_wait_names_the_condition_too() {
        wait_until_blocking("nothing", Duration::from_millis(50), || false);
    }
}
