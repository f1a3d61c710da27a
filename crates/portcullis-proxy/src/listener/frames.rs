//! A guard on the bytes an HTTP/2 client sends: it reads the 9-byte frame
//! headers as they pass (offsets only, nothing copied) and counts the frames
//! that cost the server work without being requests. hyper and h2 answer
//! every PING and SETTINGS and apply every WINDOW_UPDATE and PRIORITY, so a
//! flood of them on one connection burns CPU without end; over a budget the
//! read fails and hyper ends the connection.
//!
//! Budgets are per 10 s window and generous for real clients, which send a
//! handful of these per connection. WINDOW_UPDATE and PING are also allowed
//! in proportion to the bytes the gateway wrote (a client acknowledges what it
//! receives), counted over this window and the one before so updates for
//! data written just before a window ends are not held against the client.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use super::streams::ConnShared;
use crate::preface::PREFACE;

/// The window every budget below is counted over.
pub const FRAME_WINDOW: Duration = Duration::from_secs(10);
/// RST_STREAM frames per window (also the limit on streams the client had
/// reset before they were answered, counted by the stream guard).
pub const RESETS_PER_WINDOW: u64 = 256;
pub const PINGS_PER_WINDOW: u64 = 200;
/// One more PING allowed per this many bytes written.
pub const PING_BYTES: u64 = 16 * 1024;
pub const SETTINGS_PER_WINDOW: u64 = 100;
pub const WINDOW_UPDATES_PER_WINDOW: u64 = 1000;
/// One more WINDOW_UPDATE allowed per this many bytes written.
pub const WINDOW_UPDATE_BYTES: u64 = 64;
pub const CONTINUATIONS_PER_WINDOW: u64 = 512;
/// PRIORITY, empty DATA without END_STREAM, and frame types a server ignores.
pub const OTHER_FRAMES_PER_WINDOW: u64 = 1000;

const DATA: u8 = 0x0;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const WINDOW_UPDATE: u8 = 0x8;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;

#[derive(Debug, thiserror::Error)]
#[error("HTTP/2 {0} flood")]
pub struct Flood(&'static str);

#[derive(Default)]
struct Counts {
    resets: u64,
    pings: u64,
    settings: u64,
    window_updates: u64,
    continuations: u64,
    other: u64,
}

struct Budget {
    window_start: Instant,
    written_now: u64,
    written_before: u64,
    /// Streams dropped unanswered at the start of this window.
    unanswered_at_start: u64,
    counts: Counts,
}

impl Budget {
    fn roll(&mut self, now: Instant, shared: &ConnShared) {
        if now.duration_since(self.window_start) < FRAME_WINDOW {
            return;
        }
        self.window_start = now;
        self.written_before = self.written_now;
        self.written_now = 0;
        self.unanswered_at_start = shared.unanswered();
        self.counts = Counts::default();
    }

    fn count(&mut self, kind: u8, flags: u8, len: usize) -> Result<(), Flood> {
        let written = self.written_now + self.written_before;
        let c = &mut self.counts;
        let (count, limit, name) = match kind {
            RST_STREAM => (&mut c.resets, RESETS_PER_WINDOW, "RST_STREAM"),
            PING => (
                &mut c.pings,
                PINGS_PER_WINDOW + written / PING_BYTES,
                "PING",
            ),
            SETTINGS => (&mut c.settings, SETTINGS_PER_WINDOW, "SETTINGS"),
            WINDOW_UPDATE => (
                &mut c.window_updates,
                WINDOW_UPDATES_PER_WINDOW + written / WINDOW_UPDATE_BYTES,
                "WINDOW_UPDATE",
            ),
            CONTINUATION => (
                &mut c.continuations,
                CONTINUATIONS_PER_WINDOW,
                "CONTINUATION",
            ),
            DATA if len == 0 && flags & END_STREAM == 0 => {
                (&mut c.other, OTHER_FRAMES_PER_WINDOW, "empty DATA")
            }
            PRIORITY => (&mut c.other, OTHER_FRAMES_PER_WINDOW, "PRIORITY"),
            k if k > CONTINUATION => (&mut c.other, OTHER_FRAMES_PER_WINDOW, "unknown frame"),
            _ => return Ok(()),
        };
        *count += 1;
        if *count > limit {
            return Err(Flood(name));
        }
        Ok(())
    }
}

/// Where the reader is in the client's byte stream.
struct Position {
    preface_left: usize,
    head: [u8; 9],
    head_len: usize,
    payload_left: usize,
}

/// Wraps the client side of an HTTP/2 connection; see the module docs.
pub(crate) struct FrameGuard<T> {
    inner: T,
    shared: Arc<ConnShared>,
    position: Position,
    budget: Budget,
}

impl<T> FrameGuard<T> {
    /// `inner` yields the client's bytes from the very first (the preface).
    pub(crate) fn new(inner: T, shared: Arc<ConnShared>) -> Self {
        Self {
            inner,
            shared,
            position: Position {
                preface_left: PREFACE.len(),
                head: [0; 9],
                head_len: 0,
                payload_left: 0,
            },
            budget: Budget {
                window_start: Instant::now(),
                written_now: 0,
                written_before: 0,
                unanswered_at_start: 0,
                counts: Counts::default(),
            },
        }
    }

    /// Counts the frames that begin in `bytes`.
    fn scan(&mut self, mut bytes: &[u8]) -> Result<(), Flood> {
        let p = &mut self.position;
        let skip = p.preface_left.min(bytes.len());
        p.preface_left -= skip;
        bytes = &bytes[skip..];
        while !bytes.is_empty() {
            if p.payload_left > 0 {
                let skip = p.payload_left.min(bytes.len());
                p.payload_left -= skip;
                bytes = &bytes[skip..];
                continue;
            }
            let take = (9 - p.head_len).min(bytes.len());
            p.head[p.head_len..p.head_len + take].copy_from_slice(&bytes[..take]);
            p.head_len += take;
            bytes = &bytes[take..];
            if p.head_len == 9 {
                p.head_len = 0;
                let len = u32::from_be_bytes([0, p.head[0], p.head[1], p.head[2]]) as usize;
                p.payload_left = len;
                self.budget.count(p.head[3], p.head[4], len)?;
                if p.head[3] == RST_STREAM {
                    self.shared.count_rst_frame();
                }
            }
        }
        let unanswered = self.shared.unanswered() - self.budget.unanswered_at_start;
        if unanswered > RESETS_PER_WINDOW {
            return Err(Flood("reset stream"));
        }
        Ok(())
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FrameGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {}
            other => return other,
        }
        this.budget.roll(Instant::now(), &this.shared);
        if let Err(flood) = this.scan(&buf.filled()[before..]) {
            this.shared.mark_abusive();
            tracing::warn!(error = %flood, "ending an HTTP/2 connection");
            // The bytes of this read are not handed on: hyper sees the
            // error first and ends the connection.
            buf.set_filled(before);
            return Poll::Ready(Err(std::io::Error::other(flood)));
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FrameGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = written {
            self.budget.written_now += n as u64;
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written {
            self.budget.written_now += n as u64;
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, len: usize) -> Vec<u8> {
        let mut out = (len as u32).to_be_bytes()[1..].to_vec();
        out.extend([kind, flags, 0, 0, 0, 0]);
        out.extend(std::iter::repeat_n(0u8, len));
        out
    }

    fn guard() -> FrameGuard<()> {
        FrameGuard::new((), Arc::new(ConnShared::new()))
    }

    #[tokio::test]
    async fn frames_split_anywhere_are_counted_once() {
        let mut guard = guard();
        let mut bytes = PREFACE.to_vec();
        for _ in 0..PINGS_PER_WINDOW {
            bytes.extend(frame(PING, 0, 8));
        }
        // DATA whose payload looks like PING headers is not counted.
        let mut data = frame(DATA, 0, 100);
        data[9..].fill(PING);
        bytes.extend(data);
        for piece in bytes.chunks(7) {
            guard.scan(piece).expect("within budget");
        }
        assert_eq!(guard.budget.counts.pings, PINGS_PER_WINDOW);
        assert!(
            guard.scan(&frame(PING, 0, 8)).is_err(),
            "one more is a flood"
        );
    }

    #[tokio::test]
    async fn window_updates_grow_with_bytes_written() {
        let mut guard = guard();
        guard.scan(PREFACE).unwrap();
        for _ in 0..WINDOW_UPDATES_PER_WINDOW {
            guard.scan(&frame(WINDOW_UPDATE, 0, 4)).unwrap();
        }
        guard.budget.written_now = 64 * 1024;
        for _ in 0..1024 {
            guard.scan(&frame(WINDOW_UPDATE, 0, 4)).unwrap();
        }
        assert!(guard.scan(&frame(WINDOW_UPDATE, 0, 4)).is_err());
    }

    #[tokio::test]
    async fn requests_and_their_bodies_cost_nothing() {
        let mut guard = guard();
        guard.scan(PREFACE).unwrap();
        for _ in 0..10_000 {
            guard.scan(&frame(0x1, 0x4, 30)).unwrap();
            guard.scan(&frame(DATA, END_STREAM, 0)).unwrap();
        }
    }
}
