//! A minimum rate for request bodies (PRODUCT.md §9, `[gateway]
//! min_body_rate`): a client that trickles its body would otherwise hold a
//! backend worker for as long as `timeouts.idle` allows between bytes.
//!
//! The body must deliver `rate × 10 s` bytes within every 10 s window; a
//! window starts when the previous one was satisfied. Time the consumer (the
//! backend connection) spends not asking for data is not counted against the
//! client, so a slow backend never makes a fast client look slow.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

use crate::error::BoxError;

/// The span over which the rate is averaged.
pub const RATE_WINDOW: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
#[error("request body slower than {rate} bytes/s over {window:?}")]
pub struct SlowBody {
    pub rate: u64,
    pub window: Duration,
}

pin_project_lite::pin_project! {
    pub struct MinRateBody<B> {
        #[pin]
        inner: B,
        rate: u64,
        window_start: Instant,
        window_bytes: u64,
        // Set when a frame was handed out: until the next poll, the
        // consumer, not the client, is the one taking time.
        handed_out_at: Option<Instant>,
        timer: Option<Pin<Box<Sleep>>>,
    }
}

impl<B> MinRateBody<B> {
    pub fn new(inner: B, rate: u64) -> Self {
        Self {
            inner,
            rate,
            window_start: Instant::now(),
            window_bytes: 0,
            handed_out_at: None,
            timer: None,
        }
    }
}

impl<B> Body for MinRateBody<B>
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
        let window_needs = this.rate.saturating_mul(RATE_WINDOW.as_secs());
        if let Some(handed_out_at) = this.handed_out_at.take() {
            *this.window_start += handed_out_at.elapsed();
            if let Some(timer) = this.timer.as_mut() {
                timer.as_mut().reset(*this.window_start + RATE_WINDOW);
            }
        }
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                let now = Instant::now();
                if let Some(data) = frame.data_ref() {
                    *this.window_bytes += data.len() as u64;
                }
                if *this.window_bytes >= window_needs {
                    *this.window_start = now;
                    *this.window_bytes = 0;
                    if let Some(timer) = this.timer.as_mut() {
                        timer.as_mut().reset(now + RATE_WINDOW);
                    }
                }
                *this.handed_out_at = Some(now);
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => Poll::Ready(other.map(|r| r.map_err(Into::into))),
            Poll::Pending => {
                let deadline = *this.window_start + RATE_WINDOW;
                let timer = this
                    .timer
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(SlowBody {
                        rate: *this.rate,
                        window: RATE_WINDOW,
                    })))),
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};
    use std::convert::Infallible;

    /// A body that yields `chunk` bytes every `every`, `count` times.
    fn trickle(
        chunk: usize,
        every: Duration,
        count: usize,
    ) -> impl Body<Data = Bytes, Error = Infallible> {
        let stream = futures_util::stream::unfold(0, move |sent| async move {
            if sent == count {
                return None;
            }
            tokio::time::sleep(every).await;
            Some((Ok(Frame::data(Bytes::from(vec![b'x'; chunk]))), sent + 1))
        });
        StreamBody::new(stream)
    }

    #[tokio::test(start_paused = true)]
    async fn a_trickling_body_is_cut_after_one_window() {
        let started = Instant::now();
        let body = MinRateBody::new(trickle(1, Duration::from_secs(1), 100), 1024);
        let err = body.collect().await.expect_err("cut");
        assert!(err.is::<SlowBody>(), "{err}");
        assert_eq!(started.elapsed(), RATE_WINDOW);
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_at_the_rate_passes() {
        // 2 KiB every second for 30 s against 1 KiB/s.
        let body = MinRateBody::new(trickle(2048, Duration::from_secs(1), 30), 1024);
        let bytes = body.collect().await.expect("passes").to_bytes();
        assert_eq!(bytes.len(), 2048 * 30);
    }

    #[tokio::test(start_paused = true)]
    async fn a_consumer_that_waits_does_not_count_against_the_client() {
        // The client sends fast; the consumer reads a frame every 30 s.
        let mut body = std::pin::pin!(MinRateBody::new(
            trickle(64, Duration::from_millis(1), 5),
            1024
        ));
        for _ in 0..5 {
            let frame = body.frame().await.expect("frame").expect("no error");
            assert!(frame.is_data());
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        assert!(body.frame().await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn silence_is_cut_too() {
        let body = MinRateBody::new(trickle(1, Duration::from_secs(60), 1), 1024);
        let started = Instant::now();
        assert!(body.collect().await.is_err());
        assert_eq!(started.elapsed(), RATE_WINDOW);
    }
}
