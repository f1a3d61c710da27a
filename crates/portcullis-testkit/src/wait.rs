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
