//! Body types of the data plane: one boxed body type for both directions, an
//! idle-timeout wrapper, and a replay wrapper so a request can be re-sent after a
//! failed try without buffering more than the service allows.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use tokio::time::{Instant, Sleep};

/// The one boxed error type of the crate: bodies, backend sources, connections.
/// Defined here, with the bodies, so that `error` depends on `body` and not
/// the other way round.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The single body type used between client, proxy and backend. Its errors
/// are boxed: they come from hyper, from timers and from the client, and the
/// caller only logs them.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

pub fn empty() -> ProxyBody {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed()
}

pub fn full(bytes: impl Into<Bytes>) -> ProxyBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed()
}

/// Raised when a body has had no frame for the service's `timeouts.idle`.
#[derive(Debug, thiserror::Error)]
#[error("no body data for {0:?} (idle timeout)")]
pub struct IdleTimeout(pub Duration);

pin_project_lite::pin_project! {
    /// Fails the stream when no frame arrives within `idle`. The timer is armed
    /// only when the inner body has to wait, so bodies that are already in
    /// memory (most small responses) never touch the timer wheel.
    pub struct IdleTimeoutBody<B> {
        #[pin]
        inner: B,
        deadline: Option<Pin<Box<Sleep>>>,
        idle: Duration,
    }
}

impl<B> IdleTimeoutBody<B> {
    pub fn new(inner: B, idle: Duration) -> Self {
        Self {
            inner,
            deadline: None,
            idle,
        }
    }
}

impl<B> Body for IdleTimeoutBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(deadline) = this.deadline.as_mut() {
                    deadline.as_mut().reset(Instant::now() + *this.idle);
                }
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = *this.idle;
                let deadline = this
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match deadline.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(IdleTimeout(idle))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A body that keeps `guard` alive until the body is finished or dropped:
    /// a request stays "in flight" on its backend until its response ends.
    pub struct Guarded<B, G> {
        #[pin]
        inner: B,
        guard: G,
    }
}

impl<B, G> Guarded<B, G> {
    pub fn new(inner: B, guard: G) -> Self {
        Self { inner, guard }
    }
}

impl<B: Body, G> Body for Guarded<B, G> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// What every try of one request body needs: the client's body and the
/// prefix read from it so far. It lives in exactly one place at a time: in the
/// `ReplayBody` that is sending it, or parked in [`ReplayShared`] between
/// tries, so polling a frame takes no lock.
struct ReplayState {
    /// The client's body (kept after its end: a later try may not need it,
    /// but dropping it early would release the client's connection early).
    source: ProxyBody,
    /// Data frames already read from `source`, kept while they fit the cap.
    buffered: Vec<Bytes>,
    buffered_len: usize,
    /// Trailers, if the source ended with them.
    trailers: Option<http::HeaderMap>,
    /// True once more than the cap was read (mirrors `ReplayShared::overflowed`).
    overflowed: bool,
    /// True once any byte was pulled from the source (mirrors `ReplayShared::started`).
    started: bool,
    read_from_source: u64,
    source_done: bool,
}

/// The part of a replayable body that every try shares.
struct ReplayShared {
    /// The state while no try holds it. Locked only when a try takes the
    /// state (its first poll) or gives it back (its end or its drop).
    parked: Mutex<Option<ReplayState>>,
    /// Set once part of the body was dropped from the buffer; read by the
    /// retry rules without taking the state.
    overflowed: AtomicBool,
    /// Set once any byte of the body was read for a backend.
    started: AtomicBool,
    size_hint: SizeHint,
    end_of_stream_at_start: bool,
    cap: usize,
}

/// A request body that can be sent again on another backend.
///
/// Tries are sequential: the try being sent takes the state on its first
/// poll, replays the buffered prefix from its own cursor, then continues
/// reading the client's body, buffering while the total stays within
/// `replay_buffer_bytes`; it parks the state again when it ends or is dropped.
/// A try polled while an earlier one still holds the state (its backend kept
/// the body mid-stream) fails, as it could not have sent the whole body.
pub struct ReplayBody {
    shared: Arc<ReplayShared>,
    /// The state, while this try holds it.
    state: Option<ReplayState>,
    /// Index of the next buffered chunk this try must replay.
    cursor: usize,
    /// Bytes this try has produced so far.
    delivered: u64,
    /// This try has sent the body's trailers (or its end).
    finished: bool,
}

impl ReplayBody {
    pub fn new(body: ProxyBody, cap: usize) -> Self {
        let size_hint = body.size_hint();
        let end = body.is_end_stream();
        let state = ReplayState {
            source: body,
            buffered: Vec::new(),
            buffered_len: 0,
            trailers: None,
            overflowed: false,
            started: false,
            read_from_source: 0,
            source_done: end,
        };
        Self::with_shared(Arc::new(ReplayShared {
            parked: Mutex::new(Some(state)),
            overflowed: AtomicBool::new(false),
            started: AtomicBool::new(false),
            size_hint,
            end_of_stream_at_start: end,
            cap,
        }))
    }

    fn with_shared(shared: Arc<ReplayShared>) -> Self {
        Self {
            shared,
            state: None,
            cursor: 0,
            delivered: 0,
            finished: false,
        }
    }

    /// A fresh body for the next try, or `None` when part of the body was consumed
    /// and is no longer buffered.
    pub fn try_replay(&self) -> Option<ReplayBody> {
        if self.shared.overflowed.load(Ordering::Acquire) {
            return None;
        }
        Some(Self::with_shared(self.shared.clone()))
    }

    /// Whether a later try may send the body again: never once part of it was
    /// dropped from the buffer, nor once a body declared larger than the
    /// buffer has started to go out.
    pub fn can_replay(&self) -> bool {
        let shared = &self.shared;
        let declared_too_large = shared
            .size_hint
            .upper()
            .is_some_and(|upper| upper > shared.cap as u64);
        !(shared.overflowed.load(Ordering::Acquire)
            || (declared_too_large && shared.started.load(Ordering::Acquire)))
    }

    /// True once any byte of the body was read for a backend.
    pub fn started(&self) -> bool {
        self.shared.started.load(Ordering::Acquire)
    }

    /// Gives the state back for the next try.
    fn park(&mut self) {
        if let Some(state) = self.state.take() {
            let mut parked = self.shared.parked.lock().unwrap_or_else(|p| p.into_inner());
            *parked = Some(state);
        }
    }

    /// Takes the parked state, once per try.
    fn take_parked(&mut self) -> Option<&mut ReplayState> {
        if self.state.is_none() {
            let mut parked = self.shared.parked.lock().unwrap_or_else(|p| p.into_inner());
            self.state = parked.take();
        }
        self.state.as_mut()
    }

    /// Reads the next frame from the client's body, buffering its data.
    fn poll_source(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let (shared, Some(state)) = (&self.shared, self.state.as_mut()) else {
            return Poll::Ready(Some(Err("request body state is missing".into())));
        };
        if !state.started {
            state.started = true;
            shared.started.store(true, Ordering::Release);
        }
        let frame = match Pin::new(&mut state.source).poll_frame(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(None) => {
                state.source_done = true;
                self.finished = true;
                self.park();
                return Poll::Ready(None);
            }
            Poll::Ready(Some(Err(e))) => return Poll::Ready(Some(Err(e))),
            Poll::Ready(Some(Ok(frame))) => frame,
        };
        let data = match frame.into_data() {
            Ok(data) => data,
            Err(frame) => {
                if let Some(trailers) = frame.trailers_ref() {
                    state.trailers = Some(trailers.clone());
                    state.source_done = true;
                    self.finished = true;
                    self.park();
                }
                return Poll::Ready(Some(Ok(frame)));
            }
        };
        state.read_from_source += data.len() as u64;
        self.delivered += data.len() as u64;
        if !state.overflowed {
            if state.buffered_len + data.len() <= shared.cap {
                state.buffered_len += data.len();
                state.buffered.push(data.clone());
                self.cursor = state.buffered.len();
            } else {
                state.overflowed = true;
                shared.overflowed.store(true, Ordering::Release);
                state.buffered = Vec::new();
                state.buffered_len = 0;
            }
        }
        Poll::Ready(Some(Ok(Frame::data(data))))
    }
}

impl Drop for ReplayBody {
    fn drop(&mut self) {
        self.park();
    }
}

impl Body for ReplayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if this.finished {
            return Poll::Ready(None);
        }
        let delivered = this.delivered;
        let cursor = this.cursor;
        let Some(state) = this.take_parked() else {
            return Poll::Ready(Some(Err("request body is held by another try".into())));
        };
        if delivered < state.read_from_source {
            // This try is behind an earlier one: replay from the buffer, which is
            // only possible while nothing was dropped from it.
            if state.overflowed {
                return Poll::Ready(Some(Err("request body exceeded the replay buffer".into())));
            }
            let Some(chunk) = state.buffered.get(cursor).cloned() else {
                return Poll::Ready(Some(Err("replay buffer is out of step".into())));
            };
            this.cursor += 1;
            this.delivered += chunk.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if state.source_done {
            let trailers = state.trailers.clone();
            this.finished = true;
            // A finished body needs nothing more from this try: a later try
            // may replay it even while this one's backend still holds it.
            this.park();
            return Poll::Ready(trailers.map(|t| Ok(Frame::trailers(t))));
        }
        this.poll_source(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.shared.end_of_stream_at_start
    }

    fn size_hint(&self) -> SizeHint {
        self.shared.size_hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    fn chunks(parts: &[&'static [u8]]) -> ProxyBody {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames)).boxed()
    }

    async fn collect(body: ReplayBody) -> Result<Vec<u8>, BoxError> {
        Ok(body.collect().await?.to_bytes().to_vec())
    }

    #[tokio::test]
    async fn replays_a_body_within_the_cap() {
        let first = ReplayBody::new(chunks(&[b"hello ", b"world"]), 64);
        let second = first.try_replay().expect("replayable");
        assert!(!first.started());
        assert_eq!(collect(first).await.unwrap(), b"hello world");
        assert_eq!(collect(second).await.unwrap(), b"hello world");
    }

    #[tokio::test]
    async fn partial_read_then_replay_sends_everything_once() {
        let mut first = ReplayBody::new(chunks(&[b"ab", b"cd", b"ef"]), 64);
        let frame = first.frame().await.unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "ab");
        let second = first.try_replay().unwrap();
        drop(first);
        assert_eq!(collect(second).await.unwrap(), b"abcdef");
    }

    #[tokio::test]
    async fn a_body_larger_than_the_cap_cannot_be_replayed_once_read() {
        let first = ReplayBody::new(chunks(&[b"0123", b"4567", b"89"]), 5);
        let clone_before = first.try_replay().unwrap();
        assert_eq!(collect(first).await.unwrap(), b"0123456789");
        assert!(clone_before.try_replay().is_none());
        assert!(collect(clone_before).await.is_err());
    }

    #[tokio::test]
    async fn an_untouched_large_body_can_still_be_sent_by_the_next_try() {
        let first = ReplayBody::new(chunks(&[b"0123", b"4567"]), 2);
        let second = first.try_replay().unwrap();
        drop(first);
        assert_eq!(collect(second).await.unwrap(), b"01234567");
    }

    #[tokio::test]
    async fn a_clone_made_after_a_partial_read_replays_the_prefix_then_reads_on() {
        let mut first = ReplayBody::new(chunks(&[b"ab", b"cd", b"ef"]), 64);
        assert_eq!(
            first.frame().await.unwrap().unwrap().into_data().unwrap(),
            "ab"
        );
        assert_eq!(
            first.frame().await.unwrap().unwrap().into_data().unwrap(),
            "cd"
        );
        assert!(first.started());
        let second = first.try_replay().expect("the prefix is buffered");
        drop(first);
        let mut second = second;
        assert_eq!(
            second.frame().await.unwrap().unwrap().into_data().unwrap(),
            "ab"
        );
        // A third try made mid-way through the second replays what the second
        // read from the client too.
        let third = second.try_replay().unwrap();
        assert_eq!(collect(second).await.unwrap(), b"cdef");
        assert_eq!(collect(third).await.unwrap(), b"abcdef");
    }

    #[tokio::test]
    async fn a_try_cannot_send_while_an_earlier_one_holds_the_body_mid_stream() {
        let mut first = ReplayBody::new(chunks(&[b"ab", b"cd"]), 64);
        first.frame().await.unwrap().unwrap();
        let second = first.try_replay().unwrap();
        assert!(collect(second).await.is_err());
        // The earlier try is unharmed and finishes the body.
        assert_eq!(collect(first).await.unwrap(), b"cd");
    }

    #[tokio::test]
    async fn a_finished_try_hands_the_body_on_even_before_it_is_dropped() {
        let mut first = ReplayBody::new(chunks(&[b"ab", b"cd"]), 64);
        while first.frame().await.is_some() {}
        let second = first.try_replay().unwrap();
        assert_eq!(collect(second).await.unwrap(), b"abcd");
        assert!(first.frame().await.is_none());
    }

    #[tokio::test]
    async fn overflow_stops_replay_for_new_and_existing_clones() {
        let mut first = ReplayBody::new(chunks(&[b"012", b"345", b"6"]), 4);
        let early = first.try_replay().unwrap();
        assert_eq!(
            first.frame().await.unwrap().unwrap().into_data().unwrap(),
            "012"
        );
        assert!(first.can_replay());
        assert_eq!(
            first.frame().await.unwrap().unwrap().into_data().unwrap(),
            "345"
        );
        // 6 bytes read with room for 4: the buffer was dropped.
        assert!(!first.can_replay());
        assert!(first.try_replay().is_none());
        // The try that overflowed still sends the whole body.
        assert_eq!(collect(first).await.unwrap(), b"6");
        let err = collect(early).await.unwrap_err();
        assert!(err.to_string().contains("replay buffer"), "{err}");
    }

    #[tokio::test]
    async fn a_started_body_declared_over_the_cap_cannot_be_replayed() {
        let first = ReplayBody::new(full(&b"0123456789"[..]), 4);
        assert!(first.can_replay(), "nothing was read yet");
        let second = first.try_replay().unwrap();
        let mut second = second;
        second.frame().await.unwrap().unwrap();
        assert!(!first.can_replay());
    }

    #[tokio::test]
    async fn trailers_are_replayed_after_the_data() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-sum", http::HeaderValue::from_static("7"));
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = vec![
            Ok(Frame::data(Bytes::from_static(b"ab"))),
            Ok(Frame::trailers(trailers.clone())),
        ];
        let first = ReplayBody::new(
            StreamBody::new(futures_util::stream::iter(frames)).boxed(),
            64,
        );
        let second = first.try_replay().unwrap();
        for body in [first, second] {
            let collected = body.collect().await.unwrap();
            assert_eq!(collected.trailers(), Some(&trailers));
            assert_eq!(collected.to_bytes(), "ab");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_fires_only_without_progress() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(4);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        let mut body = Box::pin(IdleTimeoutBody::new(
            StreamBody::new(stream),
            Duration::from_secs(5),
        ));
        tokio::spawn(async move {
            for _ in 0..3 {
                tokio::time::sleep(Duration::from_secs(4)).await;
                let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"x")))).await;
            }
            tokio::time::sleep(Duration::from_secs(60)).await;
        });
        for _ in 0..3 {
            assert!(body.frame().await.unwrap().is_ok());
        }
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("idle timeout"));
    }
}

/// Why the client's body could not be read to its end.
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub enum ClientBodyError {
    #[error("the client closed the connection inside the request body")]
    Incomplete,
    #[error("bad chunked request body: {}", .0.reason())]
    Violation(crate::h1gate::Violation),
    #[error("reading the request body failed")]
    Io,
}

/// Why a client's request body failed a try, when `error` or one of its
/// sources says so (too slow, idle too long, or cut or malformed): the
/// client's fault, never the backend's.
pub fn body_failure_reason(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut source = Some(error);
    while let Some(cause) = source {
        if cause.is::<crate::slow_body::SlowBody>() {
            return Some("request body too slow");
        }
        if cause.is::<IdleTimeout>() {
            return Some("request body idle for too long");
        }
        if let Some(err) = cause.downcast_ref::<ClientBodyError>() {
            return Some(match err {
                ClientBodyError::Incomplete => "request body cut short",
                ClientBodyError::Violation(_) => "bad chunked request body",
                ClientBodyError::Io => "reading the request body failed",
            });
        }
        source = cause.source();
    }
    None
}
