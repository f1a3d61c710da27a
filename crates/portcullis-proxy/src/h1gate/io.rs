//! [`GatedIo`]: the gate in front of hyper, as an `AsyncRead + AsyncWrite`.
//!
//! Every byte read from the client goes through the [`Gate`] before the reader
//! (hyper) sees it. On a violation the offending bytes are withheld and the
//! reader gets end-of-file from then on; the violation is recorded in a shared
//! [`GateStatus`] so the connection loop can answer `400 Bad Request` itself
//! ([`GateStatus::response`]) and close.
//!
//! What is still delivered from the read that broke a rule: the bytes before
//! the offending unit, that is, complete valid requests pipelined ahead of a
//! bad request head, or the chunk data before a bad chunk-size line (the body
//! then ends early, which the forwarder treats as a client error). Earlier
//! reads of a head split across reads were already delivered; hyper never acts
//! on them because it only sees the head's end together with the verdict.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::{Gate, Switch, Violation};

/// What the gate found, shared between the IO wrapper (inside hyper) and the
/// connection loop.
#[derive(Debug, Default)]
pub struct GateStatus {
    violation: OnceLock<Violation>,
    /// 0: HTTP, 1: switched by Upgrade, 2: switched by CONNECT.
    switched: AtomicU8,
    /// The request whose body broke a rule was answered with the refusal by
    /// the request path, so the connection loop must not answer again.
    answered: AtomicBool,
    /// The refusal was written (by the connection loop or at shutdown).
    refusal_taken: AtomicBool,
}

impl GateStatus {
    /// The violation that closed the client's stream, if any.
    pub fn violation(&self) -> Option<Violation> {
        self.violation.get().copied()
    }

    pub fn mark_answered(&self) {
        self.answered.store(true, Ordering::Release);
    }

    pub fn answered(&self) -> bool {
        self.answered.load(Ordering::Acquire)
    }

    /// The refusal to write for `violation`, once: `None` when the request
    /// path already answered it or it was taken before.
    pub fn take_refusal(&self, violation: Violation) -> Option<Vec<u8>> {
        if self.answered() || self.refusal_taken.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(Self::response(violation))
    }

    /// `Some` once the gate stopped checking after an upgrade or CONNECT.
    pub fn switched(&self) -> Option<Switch> {
        match self.switched.load(Ordering::Acquire) {
            1 => Some(Switch::Upgrade),
            2 => Some(Switch::Connect),
            _ => None,
        }
    }

    /// The complete `400 Bad Request` response for a violation:
    /// `Connection: close` and a JSON body naming the rule.
    pub fn response(violation: Violation) -> Vec<u8> {
        // Reasons are fixed ASCII without quotes or backslashes, so they need
        // no JSON escaping; serde_json keeps that true if one ever changes.
        let body = serde_json::json!({ "error": violation.reason() }).to_string();
        // PRODUCT.md §3: a header block over the limit is 431, not 400.
        let status = match violation {
            Violation::HeadTooLarge => "431 Request Header Fields Too Large",
            _ => "400 Bad Request",
        };
        format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

/// Wraps the client's stream: reads pass through the gate, writes pass straight
/// through.
#[derive(Debug)]
pub struct GatedIo<T> {
    io: T,
    gate: Gate,
    status: Arc<GateStatus>,
    /// The refusal being written at shutdown, and how much of it is out.
    closing_refusal: Option<(Vec<u8>, usize)>,
}

impl<T> GatedIo<T> {
    pub fn new(io: T) -> GatedIo<T> {
        GatedIo {
            io,
            gate: Gate::new(),
            status: Arc::new(GateStatus::default()),
            closing_refusal: None,
        }
    }

    /// As `new`, reporting into a status made beforehand (so the request
    /// path can hold it before the connection's protocol is known).
    pub fn with_status(io: T, status: Arc<GateStatus>) -> GatedIo<T> {
        GatedIo {
            io,
            gate: Gate::new(),
            status,
            closing_refusal: None,
        }
    }

    /// The shared status; clone it before handing the wrapper to hyper.
    pub fn status(&self) -> Arc<GateStatus> {
        Arc::clone(&self.status)
    }

    pub fn gate(&self) -> &Gate {
        &self.gate
    }

    /// For [`Gate::resume`] after a refused upgrade.
    pub fn gate_mut(&mut self) -> &mut Gate {
        &mut self.gate
    }

    pub fn get_ref(&self) -> &T {
        &self.io
    }

    pub fn into_inner(self) -> T {
        self.io
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GatedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.gate.violation().is_some() {
            // End of file for good: nothing after a violation reaches the reader.
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.io).poll_read(cx, buf))?;
        let fresh = &buf.filled()[before..];
        if fresh.is_empty() {
            return Poll::Ready(Ok(()));
        }
        match this.gate.feed_counted(fresh) {
            Ok(()) => {
                if let Some(switch) = this.gate.switched() {
                    let code = match switch {
                        Switch::Upgrade => 1,
                        Switch::Connect => 2,
                    };
                    this.status.switched.store(code, Ordering::Release);
                }
            }
            Err(refusal) => {
                // First (and only) violation: the slot cannot be full already.
                let _ = this.status.violation.set(refusal.violation);
                buf.set_filled(before + refusal.clean_len);
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GatedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    /// A server that saw end-of-file at the violation and finished its
    /// responses shuts the stream down: the refusal goes out just before.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.closing_refusal.is_none() {
            if let Some(violation) = this.status.violation() {
                if let Some(bytes) = this.status.take_refusal(violation) {
                    this.closing_refusal = Some((bytes, 0));
                }
            }
        }
        if let Some((bytes, written)) = this.closing_refusal.as_mut() {
            while *written < bytes.len() {
                match ready!(Pin::new(&mut this.io).poll_write(cx, &bytes[*written..])) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => *written += n,
                }
            }
            let _ = ready!(Pin::new(&mut this.io).poll_flush(cx));
        }
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn read_all_through_gate(chunks: &[&[u8]]) -> (Vec<u8>, Arc<GateStatus>) {
        let mut gated = GatedIo::new(Chunks {
            chunks: chunks.iter().map(|c| c.to_vec()).rev().collect(),
        });
        let status = gated.status();
        // Reads as large as hyper's, so each chunk arrives in one read.
        let mut out = Vec::new();
        let mut buf = vec![0; 8192];
        loop {
            let n = gated.read(&mut buf).await.expect("read");
            if n == 0 {
                return (out, status);
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    /// A reader that yields the given chunks one read at a time.
    struct Chunks {
        chunks: Vec<Vec<u8>>,
    }

    impl AsyncRead for Chunks {
        fn poll_read(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let chunks = &mut self.get_mut().chunks;
            if let Some(mut chunk) = chunks.pop() {
                let n = chunk.len().min(buf.remaining());
                buf.put_slice(&chunk[..n]);
                if n < chunk.len() {
                    chunks.push(chunk.split_off(n));
                }
            }
            Poll::Ready(Ok(()))
        }
    }

    const GOOD: &[u8] = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n";

    #[tokio::test]
    async fn valid_stream_passes_unchanged() {
        let (out, status) = read_all_through_gate(&[
            GOOD,
            b"POST /b HTTP/1.1\r\n",
            b"Host: x\r\nContent-Length: 3\r\n\r\nabc",
        ])
        .await;
        let mut want = GOOD.to_vec();
        want.extend_from_slice(b"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
        assert_eq!(out, want);
        assert_eq!(status.violation(), None);
    }

    #[tokio::test]
    async fn violation_withholds_offending_request_but_delivers_earlier_one() {
        let mut read = GOOD.to_vec();
        read.extend_from_slice(b"GET /b HTTP/1.1\nHost: x\r\n\r\n");
        let (out, status) = read_all_through_gate(&[&read, GOOD]).await;
        assert_eq!(out, GOOD, "only the complete earlier request is delivered");
        assert_eq!(status.violation(), Some(Violation::BareLf));
    }

    #[tokio::test]
    async fn bad_chunk_line_cuts_body_after_good_chunks() {
        let head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
        let mut read = head.to_vec();
        read.extend_from_slice(b"3\r\nabc\r\n");
        let good_len = read.len();
        read.extend_from_slice(b"0x5\r\nhello\r\n0\r\n\r\n");
        let (out, status) = read_all_through_gate(&[&read]).await;
        assert_eq!(out, &read[..good_len]);
        assert_eq!(status.violation(), Some(Violation::InvalidChunkSize));
    }

    #[tokio::test]
    async fn upgrade_switches_and_passes_anything() {
        let head =
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n";
        let junk = b"\x81\x05\nhello\r\x00";
        let (out, status) = read_all_through_gate(&[head, junk]).await;
        assert_eq!(out.len(), head.len() + junk.len());
        assert_eq!(status.switched(), Some(Switch::Upgrade));
        assert_eq!(status.violation(), None);
    }

    #[tokio::test]
    async fn writes_pass_through_and_response_is_json_400() {
        let (client, server) = tokio::io::duplex(4096);
        let mut gated = GatedIo::new(server);
        let response = GateStatus::response(Violation::ObsFold);
        gated.write_all(&response).await.expect("write");
        gated.shutdown().await.expect("shutdown");
        let mut got = Vec::new();
        let mut client = client;
        client.read_to_end(&mut got).await.expect("read");
        let text = String::from_utf8(got).expect("utf8");
        assert!(text.starts_with("HTTP/1.1 400 Bad Request\r\n"));
        assert!(text.contains("connection: close\r\n"));
        let body = text.split("\r\n\r\n").nth(1).expect("body");
        let json: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(json["error"], Violation::ObsFold.reason());
    }
}
