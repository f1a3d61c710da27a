//! Body types of the data plane: one boxed body type for both directions, an
//! idle-timeout wrapper, and a replay wrapper so a request can be re-sent after a
//! failed try without buffering more than the service allows.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use tokio::time::{Instant, Sleep};

/// Errors that travel inside bodies. Boxed because they come from hyper, from
/// timers and from the client, and the caller only logs them.
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The single body type used between client, proxy and backend.
pub type ProxyBody = BoxBody<Bytes, BodyError>;

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
    B::Error: Into<BodyError>,
{
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
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

/// State shared by every try of one request body.
struct ReplayState {
    /// The client's body, held by whichever try is polling it, else parked here.
    source: Option<ProxyBody>,
    /// Data frames already read from `source`, kept while they fit the cap.
    buffered: Vec<Bytes>,
    buffered_len: usize,
    /// Trailers, if the source ended with them.
    trailers: Option<http::HeaderMap>,
    /// True once more than the cap was read: the body can no longer be replayed.
    overflowed: bool,
    /// True once any byte was pulled from the client body for a backend.
    started: bool,
    read_from_source: u64,
    source_done: bool,
    cap: usize,
}

/// A request body that can be sent again on another backend.
///
/// Tries are sequential, so only one `ReplayBody` polls at a time; each replays the
/// buffered prefix from its own cursor and then continues reading the client's
/// body, buffering while the total stays within `replay_buffer_bytes`.
pub struct ReplayBody {
    state: Arc<Mutex<ReplayState>>,
    /// Index of the next buffered chunk this try must replay.
    cursor: usize,
    /// Bytes this try has produced so far.
    delivered: u64,
    /// Whether this try currently owns the source body.
    holds_source: Option<ProxyBody>,
    size_hint: SizeHint,
    end_of_stream_at_start: bool,
    cap: usize,
}

impl ReplayBody {
    pub fn new(body: ProxyBody, cap: usize) -> Self {
        let size_hint = body.size_hint();
        let end = body.is_end_stream();
        Self {
            state: Arc::new(Mutex::new(ReplayState {
                source: Some(body),
                buffered: Vec::new(),
                buffered_len: 0,
                trailers: None,
                overflowed: false,
                started: false,
                read_from_source: 0,
                source_done: end,
                cap,
            })),
            cursor: 0,
            delivered: 0,
            holds_source: None,
            size_hint,
            end_of_stream_at_start: end,
            cap,
        }
    }

    /// A fresh body for the next try, or `None` when part of the body was consumed
    /// and is no longer buffered.
    pub fn try_replay(&self) -> Option<ReplayBody> {
        let state = self.state.lock().ok()?;
        if state.overflowed {
            return None;
        }
        Some(ReplayBody {
            state: self.state.clone(),
            cursor: 0,
            delivered: 0,
            holds_source: None,
            size_hint: self.size_hint,
            end_of_stream_at_start: self.end_of_stream_at_start,
            cap: self.cap,
        })
    }

    /// Whether a later try may send the body again: never once part of it was
    /// dropped from the buffer, nor once a body declared larger than the
    /// buffer has started to go out.
    pub fn can_replay(&self) -> bool {
        let declared_too_large = self
            .size_hint
            .upper()
            .is_some_and(|upper| upper > self.cap as u64);
        self.state
            .lock()
            .map(|s| !(s.overflowed || (s.started && declared_too_large)))
            .unwrap_or(false)
    }

    /// True once any byte of the body was read for a backend.
    pub fn started(&self) -> bool {
        self.state.lock().map(|s| s.started).unwrap_or(true)
    }
}

impl Drop for ReplayBody {
    fn drop(&mut self) {
        if let Some(source) = self.holds_source.take() {
            if let Ok(mut state) = self.state.lock() {
                state.source = Some(source);
            }
        }
    }
}

impl Body for ReplayBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = &mut *self;
        let mut state = match this.state.lock() {
            Ok(state) => state,
            Err(_) => return Poll::Ready(Some(Err("replay state poisoned".into()))),
        };
        if this.delivered < state.read_from_source {
            // This try is behind an earlier one: replay from the buffer, which is
            // only possible while nothing was dropped from it.
            if state.overflowed {
                return Poll::Ready(Some(Err("request body exceeded the replay buffer".into())));
            }
            let chunk = state.buffered[this.cursor].clone();
            this.cursor += 1;
            this.delivered += chunk.len() as u64;
            return Poll::Ready(Some(Ok(Frame::data(chunk))));
        }
        if state.source_done {
            return Poll::Ready(state.trailers.clone().map(|t| Ok(Frame::trailers(t))));
        }
        if this.holds_source.is_none() {
            this.holds_source = state.source.take();
        }
        let Some(source) = this.holds_source.as_mut() else {
            return Poll::Ready(Some(Err("request body is held by another try".into())));
        };
        state.started = true;
        match Pin::new(source).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                state.source_done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Some(Ok(frame))) => {
                let frame = match frame.into_data() {
                    Ok(data) => {
                        state.read_from_source += data.len() as u64;
                        this.delivered += data.len() as u64;
                        if !state.overflowed {
                            if state.buffered_len + data.len() <= state.cap {
                                state.buffered_len += data.len();
                                state.buffered.push(data.clone());
                                this.cursor = state.buffered.len();
                            } else {
                                state.overflowed = true;
                                state.buffered = Vec::new();
                                state.buffered_len = 0;
                            }
                        }
                        Frame::data(data)
                    }
                    Err(frame) => {
                        if let Some(trailers) = frame.trailers_ref() {
                            state.trailers = Some(trailers.clone());
                            state.source_done = true;
                        }
                        frame
                    }
                };
                Poll::Ready(Some(Ok(frame)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.end_of_stream_at_start
    }

    fn size_hint(&self) -> SizeHint {
        self.size_hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;

    fn chunks(parts: &[&'static [u8]]) -> ProxyBody {
        let frames: Vec<Result<Frame<Bytes>, BodyError>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames)).boxed()
    }

    async fn collect(body: ReplayBody) -> Result<Vec<u8>, BodyError> {
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

    #[tokio::test(start_paused = true)]
    async fn idle_timeout_fires_only_without_progress() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BodyError>>(4);
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
