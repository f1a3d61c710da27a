//! Stall detection: a try stops waiting for response headers once its backend
//! has answered nobody for `stall_timeout`, instead of holding the client for
//! the whole `timeouts.request`.
//!
//! A frozen backend (SIGSTOP, a full GC pause, a dead disk) accepts
//! connections and requests but answers none. With only a request timeout,
//! every request sent to it waits the full timeout before it fails over. A
//! backend that is merely slow for one request still answers others, so the
//! rule looks at the backend's answers, not at this request's wait: as long as
//! some response headers came from the backend in the last `stall_timeout`,
//! the try keeps waiting up to `timeouts.request`.

use std::future::Future;
use std::task::Poll;
use std::time::Duration;

use tokio::time::Instant;

use super::try_timer::TryTimer;
use super::BackendState;

/// How a try's wait for response headers ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Waited<T> {
    Done(T),
    /// `timeouts.request` passed.
    TimedOut,
    /// The backend answered no request for `stall_timeout`.
    Stalled,
}

/// Awaits `send` for at most `request_timeout` from `start`, giving up
/// early when `backend` answers nothing for a whole `stall_timeout` (zero:
/// never). `start` is the caller's: a request's first try starts when the
/// request arrived, microseconds earlier, and saves a clock read.
pub async fn wait_for_head<F: Future>(
    send: F,
    start: Instant,
    backend: &BackendState,
    request_timeout: Duration,
    stall_timeout: Duration,
) -> Waited<F::Output> {
    let deadline = start + request_timeout;
    let watch_stall = !stall_timeout.is_zero() && stall_timeout < request_timeout;
    let (mut check_at, mut answers_seen) = match watch_stall {
        true => (start + stall_timeout, backend.answers_so_far()),
        false => (deadline, 0),
    };
    let mut send = std::pin::pin!(send);
    // One timer for every check of the try (`TryTimer` says why it is kept).
    let mut timer = TryTimer::until(check_at.min(deadline));
    loop {
        let answered = std::future::poll_fn(|cx| match send.as_mut().poll(cx) {
            Poll::Ready(output) => Poll::Ready(Some(output)),
            Poll::Pending => timer.poll_expired(cx).map(|()| None),
        })
        .await;
        if let Some(output) = answered {
            return Waited::Done(output);
        }
        if !watch_stall || Instant::now() >= deadline {
            return Waited::TimedOut;
        }
        let answers = backend.answers_so_far();
        if answers == answers_seen {
            return Waited::Stalled;
        }
        answers_seen = answers;
        check_at += stall_timeout;
        timer.set(check_at.min(deadline));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::TryOutcome;
    use std::sync::Arc;

    const REQUEST: Duration = Duration::from_secs(5);
    const STALL: Duration = Duration::from_millis(200);

    fn never() -> std::future::Pending<()> {
        std::future::pending()
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_in_time_is_returned() {
        let backend = BackendState::new();
        let send = async {
            tokio::time::sleep(Duration::from_millis(150)).await;
            7
        };
        assert_eq!(
            wait_for_head(send, Instant::now(), &backend, REQUEST, STALL).await,
            Waited::Done(7)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_backend_is_left_after_the_stall_timeout() {
        let backend = BackendState::new();
        let start = Instant::now();
        let waited = wait_for_head(never(), Instant::now(), &backend, REQUEST, STALL).await;
        assert_eq!(waited, Waited::Stalled);
        assert_eq!(start.elapsed(), STALL);
    }

    #[tokio::test(start_paused = true)]
    async fn a_backend_that_answers_others_keeps_a_slow_request_until_the_request_timeout() {
        let backend = Arc::new(BackendState::new());
        let answering = backend.clone();
        let others = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(150)).await;
                answering.count_outcome(TryOutcome::Answered(200));
            }
        });
        let start = Instant::now();
        let waited = wait_for_head(never(), Instant::now(), &backend, REQUEST, STALL).await;
        others.abort();
        assert_eq!(waited, Waited::TimedOut);
        assert_eq!(start.elapsed(), REQUEST);
    }

    #[tokio::test(start_paused = true)]
    async fn a_backend_that_stops_answering_midway_is_left_one_stall_timeout_later() {
        let backend = Arc::new(BackendState::new());
        let answering = backend.clone();
        // Answers every 90 ms until 0.9 s, then freezes.
        let others = tokio::spawn(async move {
            for _ in 0..10 {
                tokio::time::sleep(Duration::from_millis(90)).await;
                answering.count_outcome(TryOutcome::Answered(200));
            }
        });
        let start = Instant::now();
        let waited = wait_for_head(never(), Instant::now(), &backend, REQUEST, STALL).await;
        others.abort();
        assert_eq!(waited, Waited::Stalled);
        // Checks fall every 200 ms; the last answer came at 0.9 s, so the
        // check at 1.0 s still sees it and the one at 1.2 s does not.
        assert_eq!(start.elapsed(), Duration::from_millis(1200));
    }

    #[tokio::test(start_paused = true)]
    async fn off_or_not_shorter_than_the_request_timeout_means_the_request_timeout() {
        let backend = BackendState::new();
        for stall in [Duration::ZERO, REQUEST, REQUEST * 2] {
            let start = Instant::now();
            let waited = wait_for_head(never(), Instant::now(), &backend, REQUEST, stall).await;
            assert_eq!(waited, Waited::TimedOut);
            assert_eq!(start.elapsed(), REQUEST);
        }
    }
}
