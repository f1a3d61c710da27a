//! The life of a connection hyper serves: its HTTP/2 streams counted in and
//! out, and a driver that ends the connection when shutdown begins or, for
//! HTTP/2, when it has had no open stream for the idle limit.
//!
//! hyper's HTTP/2 server has no idle timeout of its own: a client that sent
//! the preface (or a request) and then nothing kept its connection, and its
//! slot under the connection cap, forever.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::watch;
use tokio::time::Instant;

/// What a connection's streams and its frame guard share. Updated from the
/// stream tasks and read by the connection's own task: relaxed is enough.
pub(crate) struct ConnShared {
    epoch: Instant,
    open: AtomicU64,
    /// Streams dropped before their response head: reset by the client or
    /// ended by an error before any work was answered.
    unanswered: AtomicU64,
    /// RST_STREAM frames the client sent.
    rst_frames: AtomicU64,
    /// Milliseconds after `epoch` when a stream last opened or closed.
    last_change_ms: AtomicU64,
    abusive: AtomicBool,
}

impl ConnShared {
    pub(crate) fn new() -> Self {
        Self {
            epoch: Instant::now(),
            open: AtomicU64::new(0),
            unanswered: AtomicU64::new(0),
            rst_frames: AtomicU64::new(0),
            last_change_ms: AtomicU64::new(0),
            abusive: AtomicBool::new(false),
        }
    }

    pub(crate) fn unanswered(&self) -> u64 {
        self.unanswered.load(Ordering::Relaxed)
    }

    pub(crate) fn count_rst_frame(&self) {
        self.rst_frames.fetch_add(1, Ordering::Relaxed);
    }

    /// Streams this connection had reset, however they were counted.
    pub(crate) fn resets(&self) -> u64 {
        self.unanswered()
            .max(self.rst_frames.load(Ordering::Relaxed))
    }

    pub(crate) fn mark_abusive(&self) {
        self.abusive.store(true, Ordering::Relaxed);
    }

    pub(crate) fn abusive(&self) -> bool {
        self.abusive.load(Ordering::Relaxed)
    }

    fn touch(&self) {
        let ms = self.epoch.elapsed().as_millis() as u64;
        self.last_change_ms.store(ms, Ordering::Relaxed);
    }

    /// How long the connection has had no open stream; None while one is open.
    fn idle_for(&self, now: Instant) -> Option<Duration> {
        if self.open.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.last_change_ms.load(Ordering::Relaxed));
        Some(now.duration_since(self.epoch).saturating_sub(since))
    }
}

/// One stream, open from its request until its response body is done.
pub(crate) struct StreamGuard {
    shared: Arc<ConnShared>,
    answered: bool,
}

impl StreamGuard {
    pub(crate) fn open(shared: Arc<ConnShared>) -> Self {
        shared.open.fetch_add(1, Ordering::Relaxed);
        shared.touch();
        Self {
            shared,
            answered: false,
        }
    }

    pub(crate) fn answered(mut self) -> Self {
        self.answered = true;
        self
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.shared.open.fetch_sub(1, Ordering::Relaxed);
        self.shared.touch();
        if !self.answered {
            self.shared.unanswered.fetch_add(1, Ordering::Relaxed);
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its stream counted as open until it is
    /// done: a long download is not an idle connection.
    pub(crate) struct GuardedBody<B> {
        #[pin]
        inner: B,
        guard: StreamGuard,
    }
}

impl<B> GuardedBody<B> {
    pub(crate) fn new(inner: B, guard: StreamGuard) -> Self {
        Self { inner, guard }
    }
}

impl<B: Body> Body for GuardedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// An HTTP/2 connection's idle watch: the limit, and the counts to judge by.
pub(crate) struct IdleWatch<'a> {
    pub shared: &'a ConnShared,
    pub limit: Duration,
}

/// Polls `conn` to its end. When shutdown begins, `shut` asks it to end
/// gracefully (in-flight requests finish; an HTTP/2 connection with no open
/// stream is dropped at the next check). With an idle watch, a connection
/// with no open stream for the limit is asked to end too (GOAWAY), and is
/// dropped if it has not ended one more limit later: a client that never
/// acknowledges the GOAWAY's PING must not keep it open. Returns None when
/// the connection was dropped rather than ended.
pub(crate) async fn drive<C, E>(
    mut conn: Pin<Box<C>>,
    shut: fn(Pin<&mut C>),
    idle: Option<IdleWatch<'_>>,
    mut shutdown: watch::Receiver<bool>,
) -> Option<Result<(), E>>
where
    C: Future<Output = Result<(), E>>,
{
    let period = idle
        .as_ref()
        .map(|w| (w.limit / 4).clamp(Duration::from_millis(10), Duration::from_secs(1)))
        .unwrap_or(Duration::from_secs(3600));
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stop = Box::pin(super::stopped(&mut shutdown));
    let mut stopping = false;
    let mut drop_at: Option<Instant> = None;
    poll_fn(|cx| {
        if !stopping && drop_at.is_none() && stop.as_mut().poll(cx).is_ready() {
            shut(conn.as_mut());
            stopping = true;
        }
        while tick.poll_tick(cx).is_ready() {
            let Some(watch) = &idle else { break };
            let now = Instant::now();
            let idle_for = watch.shared.idle_for(now);
            if drop_at.is_some_and(|at| now >= at) || (stopping && idle_for.is_some()) {
                return Poll::Ready(None);
            }
            if !stopping && drop_at.is_none() && idle_for.is_some_and(|d| d >= watch.limit) {
                shut(conn.as_mut());
                drop_at = Some(now + watch.limit);
            }
        }
        conn.as_mut().poll(cx).map(Some)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn streams_are_counted_until_their_body_is_done() {
        let shared = Arc::new(ConnShared::new());
        let answered = StreamGuard::open(shared.clone()).answered();
        let reset = StreamGuard::open(shared.clone());
        assert_eq!(shared.idle_for(Instant::now()), None);
        drop(reset);
        assert_eq!(shared.unanswered(), 1, "dropped before its answer");
        let body = GuardedBody::new(http_body_util::Empty::<bytes::Bytes>::new(), answered);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            shared.idle_for(Instant::now()),
            None,
            "the body is still open"
        );
        drop(body);
        assert_eq!(shared.unanswered(), 1);
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(
            shared.idle_for(Instant::now()),
            Some(Duration::from_secs(3))
        );
    }
}
