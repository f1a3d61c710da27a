//! Two guarantees of the own HTTP/1.1 engine (`engine = "portcullis"`,
//! PRODUCT.md §9), against raw backends on loopback:
//!
//! - `interim`: 1xx responses reach HTTP/1.1 clients before the final one,
//!   checked as strictly as any head and bounded; a backend's `100` is not
//!   relayed, HTTP/1.0 clients get none;
//! - `stale`: a GET on a pooled connection the backend closed is resent on
//!   a new connection, once, however many dead connections the pool holds;
//! - `whole`: a body that arrives whole with its head is relayed from the
//!   head's read, and its connection reused; bytes after it are never
//!   relayed and the connection is not reused.

mod interim;
mod stale;
mod whole;

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use portcullis_testkit::{topology, TestMember};

/// A member on the own engine in front of one service `svc` at `url`.
pub async fn own_member(url: &str) -> TestMember {
    TestMember::start_with(
        &[("t", &topology("svc", &[url.to_string()], ""))],
        "engine = \"portcullis\"",
    )
    .await
}

/// Where the head at the start of `bytes` ends (after its blank line).
pub fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// The Content-Length of the head at the start of `bytes` (0 without one).
pub fn content_length(head: &[u8]) -> usize {
    String::from_utf8_lossy(head)
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0)
}

/// Reads one request (head and Content-Length body) from `stream`, with
/// `pending` holding bytes read before; `None` when the stream ends first.
pub async fn read_request(stream: &mut TcpStream, pending: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = head_end(pending) {
            let total = end + content_length(&pending[..end]);
            if pending.len() >= total {
                let rest = pending.split_off(total);
                return Some(std::mem::replace(pending, rest));
            }
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads from `stream` until `done` says the bytes are complete, the peer
/// closes, or 5 s pass; returns the bytes.
pub async fn read_until(stream: &mut TcpStream, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16384];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !done(&bytes) {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => bytes.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    bytes
}

/// Status codes of every response head in `bytes`, in order.
pub fn statuses(bytes: &[u8]) -> Vec<u16> {
    let text = String::from_utf8_lossy(bytes);
    text.match_indices("HTTP/1.")
        .filter_map(|(at, _)| text.get(at + 9..at + 12)?.parse().ok())
        .collect()
}
