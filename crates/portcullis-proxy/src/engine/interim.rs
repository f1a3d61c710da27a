//! Interim (1xx) responses on their way from a backend to an HTTP/1.1
//! client (PRODUCT.md §9 "Responses", RFC 9110 §15.2).
//!
//! The backend side ([`super::backend`]) reads every 1xx head as strictly as
//! a final one; one other than `100` and `101` has its hop-by-hop fields
//! removed and is queued here as the bytes the client gets. The client's
//! connection loop writes what is queued between its other steps, before
//! the final head. What is never relayed:
//!
//! - `100 Continue`: the engine answers a client's `Expect: 100-continue`
//!   itself, when the pipeline first wants the body (`request_body`). The
//!   backend's 100 answers the same expectation (the field is forwarded),
//!   so relaying it would give the client a second 100, or one before the
//!   engine's own, and a retry's body may go to a backend that never sent
//!   one. A 100 the client did not ask for means nothing to it either.
//! - anything to an HTTP/1.0 client, which has no interim responses.
//! - anything to an HTTP/2 client: its requests go through hyper's server,
//!   which cannot send them (a known gap, docs/security.md).
//!
//! A backend gets at most [`MAX_INTERIM`] interim heads and
//! [`MAX_INTERIM_BYTES`] of them per try; more makes the try a 502, so an
//! endless stream of 1xx neither holds the request nor fills memory.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::task::Poll;

use bytes::BytesMut;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use super::quick_io::{QuickRead, QuickWrite};

use http::{response, StatusCode};

use super::head::BadResponse;
use super::request_body::BodyPump;

/// Most interim heads a backend may send before its final head.
pub const MAX_INTERIM: u32 = 32;

/// Most bytes of interim heads a backend may send before its final head.
pub const MAX_INTERIM_BYTES: usize = 64 * 1024;

/// Interim heads waiting for the client's connection. The backend side
/// runs inside the pipeline's future, which the connection loop polls in
/// its own task: a head is queued during a poll of that future, and the
/// loop looks at the queue right after it, so no waker is needed.
#[derive(Debug, Default)]
pub struct InterimHeads {
    /// Set while bytes are queued: the loop's check costs one load.
    queued: AtomicBool,
    bytes: Mutex<Vec<u8>>,
}

impl InterimHeads {
    /// Queues `head` (a 1xx other than 100 and 101) as the client gets it.
    pub(super) fn push(&self, head: response::Parts) {
        let mut bytes = self.lock();
        super::respond::write_interim_head(&mut bytes, head);
        self.queued.store(true, Ordering::Release);
    }

    /// Whether heads wait to be written.
    pub(super) fn is_queued(&self) -> bool {
        self.queued.load(Ordering::Acquire)
    }

    /// The queued heads' bytes; the queue is empty after.
    pub(super) fn take(&self) -> Vec<u8> {
        let mut bytes = self.lock();
        self.queued.store(false, Ordering::Release);
        std::mem::take(&mut *bytes)
    }

    /// Runs the pipeline's future `serving` to its response while the
    /// request body is pumped from `io` (when there is one) and interim
    /// heads are written to `io` as they come. Heads still queued when the
    /// response is ready go out before it, unless the engine's own `100
    /// Continue` is half written (then they are dropped: a 1xx is advice,
    /// and interleaved bytes would break the connection).
    pub(super) async fn serve_beside<F, I>(
        &self,
        serving: &mut F,
        pump: Option<&mut BodyPump>,
        io: &mut I,
        buf: &mut BytesMut,
    ) -> F::Output
    where
        F: Future + Unpin,
        I: QuickRead + QuickWrite,
    {
        let response = match pump {
            None => loop {
                match self.beside(serving).await {
                    Some(response) => break response,
                    None => self.write_to(io).await,
                }
            },
            // Boxed: a body still arriving is rare, and this state was most
            // of the request's box, which stays within the allocator's
            // small-object path (`engine::server`'s size test).
            Some(pump) => {
                let pumping = async {
                    loop {
                        tokio::select! {
                            biased;
                            response = &mut *serving => break response,
                            () = self.queued(), if !pump.writing_continue() => self.write_to(io).await,
                            () = pump.step(io, buf), if !pump.done() => {}
                        }
                    }
                };
                let response = Box::pin(pumping).await;
                if pump.writing_continue() {
                    return response;
                }
                response
            }
        };
        // Heads queued by the poll that finished: checked here, so the
        // usual request (no heads) does not enter the write at all.
        if self.is_queued() {
            self.write_to(io).await;
        }
        response
    }

    /// Polls `serving` until it is done (`Some`) or has queued heads
    /// (`None`).
    async fn beside<F: Future + Unpin>(&self, serving: &mut F) -> Option<F::Output> {
        poll_fn(|cx| match Pin::new(&mut *serving).poll(cx) {
            Poll::Ready(output) => Poll::Ready(Some(output)),
            Poll::Pending if self.is_queued() => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        })
        .await
    }

    /// Ready while heads are queued. Registers no waker: only a poll of the
    /// pipeline's future queues heads, and the loop polls this right after
    /// that future in the same pass (see [`InterimHeads`]).
    async fn queued(&self) {
        poll_fn(|_| match self.is_queued() {
            true => Poll::Ready(()),
            false => Poll::Pending,
        })
        .await
    }

    /// Writes the queued heads to the client. A failed write is left to the
    /// final response's write to notice.
    async fn write_to<W: AsyncWrite + Unpin>(&self, io: &mut W) {
        if self.is_queued() {
            let bytes = self.take();
            let _ = io.write_all(&bytes).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u8>> {
        self.bytes.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What one try's backend has sent in interim heads so far.
#[derive(Debug, Default)]
pub(super) struct InterimCount {
    heads: u32,
    bytes: usize,
}

impl InterimCount {
    /// Counts one interim head of `len` bytes; a refusal past the bounds.
    pub(super) fn count(&mut self, len: usize) -> Result<(), BadResponse> {
        self.heads += 1;
        self.bytes += len;
        if self.heads > MAX_INTERIM {
            return Err(BadResponse("more than 32 interim (1xx) responses"));
        }
        if self.bytes > MAX_INTERIM_BYTES {
            return Err(BadResponse("interim (1xx) responses over 64 KiB"));
        }
        Ok(())
    }
}

/// Whether a 1xx head with `status` goes on to the client (see the module
/// docs for the 100 decision).
pub(super) fn is_relayed(status: StatusCode) -> bool {
    status.is_informational()
        && status != StatusCode::CONTINUE
        && status != StatusCode::SWITCHING_PROTOCOLS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(status: u16, fields: &[(&'static str, &'static str)]) -> response::Parts {
        let mut builder = http::Response::builder().status(status);
        for (name, value) in fields {
            builder = builder.header(*name, *value);
        }
        builder.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_queued_head_is_written_once_without_hop_by_hop_fields() {
        let heads = InterimHeads::default();
        assert!(!heads.is_queued());
        let hints = parts(
            103,
            &[
                ("link", "</a.css>; rel=preload"),
                ("connection", "x-private"),
                ("x-private", "1"),
                ("keep-alive", "timeout=5"),
                ("content-length", "3"),
            ],
        );
        heads.push(hints);
        heads.push(parts(102, &[]));
        assert!(heads.is_queued());
        let bytes = heads.take();
        assert_eq!(
            String::from_utf8(bytes).unwrap(),
            "HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\n\r\n\
             HTTP/1.1 102 Processing\r\n\r\n"
        );
        assert!(!heads.is_queued());
        assert!(heads.take().is_empty());
    }

    #[test]
    fn the_count_refuses_past_either_bound() {
        let mut count = InterimCount::default();
        for _ in 0..MAX_INTERIM {
            count.count(20).unwrap();
        }
        assert!(count.count(20).is_err(), "the 33rd head");
        let mut count = InterimCount::default();
        count.count(MAX_INTERIM_BYTES).unwrap();
        assert!(count.count(1).is_err(), "one byte over");
    }

    #[test]
    fn only_100_and_101_stay_behind() {
        assert!(is_relayed(StatusCode::EARLY_HINTS));
        assert!(is_relayed(StatusCode::PROCESSING));
        assert!(is_relayed(StatusCode::from_u16(199).unwrap()));
        assert!(!is_relayed(StatusCode::CONTINUE));
        assert!(!is_relayed(StatusCode::SWITCHING_PROTOCOLS));
        assert!(!is_relayed(StatusCode::OK));
    }
}
