//! A hand-written HTTP/2 client for the attack suite: exact frames (preface,
//! SETTINGS, HEADERS with a literal HPACK block, RST_STREAM, floods), a
//! chosen loopback source address, and a reader that records what the
//! gateway sent back and whether it closed the connection.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const PRIORITY: u8 = 0x2;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

pub const END_STREAM: u8 = 0x1;
pub const END_HEADERS: u8 = 0x4;
pub const ACK: u8 = 0x1;

/// One frame: 9-byte header and payload.
pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = Vec::with_capacity(9 + payload.len());
    out.extend_from_slice(&len.to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// HPACK string literal without Huffman coding (lengths under 127).
fn literal(out: &mut Vec<u8>, value: &str) {
    assert!(value.len() < 127);
    out.push(value.len() as u8);
    out.extend_from_slice(value.as_bytes());
}

/// A request header block: indexed `:method` and `:scheme`, literal `:path`
/// and `:authority` (literal without indexing, indexed name).
pub fn header_block(method: &str, path: &str) -> Vec<u8> {
    let mut block = vec![if method == "POST" { 0x83 } else { 0x82 }, 0x86];
    block.push(0x04);
    literal(&mut block, path);
    block.push(0x01);
    literal(&mut block, "gw.test");
    block
}

pub fn get_headers(stream: u32, path: &str) -> Vec<u8> {
    frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        stream,
        &header_block("GET", path),
    )
}

pub fn rst(stream: u32, code: u32) -> Vec<u8> {
    frame(RST_STREAM, 0, stream, &code.to_be_bytes())
}

pub fn settings() -> Vec<u8> {
    frame(SETTINGS, 0, 0, &[])
}

pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

pub fn ping(flags: u8) -> Vec<u8> {
    frame(PING, flags, 0, &[7; 8])
}

/// The client preface and an empty SETTINGS frame.
pub fn hello() -> Vec<u8> {
    let mut out = PREFACE.to_vec();
    out.extend(settings());
    out
}

/// A TCP connection to `addr` from `source` (any loopback address).
pub async fn connect_from(source: IpAddr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    socket.connect(addr).await
}

/// What the gateway has sent on a connection so far.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// (type, flags, stream) of each frame.
    pub frames: Vec<(u8, u8, u32)>,
    pub goaway: Option<u32>,
    pub closed: bool,
    pub bytes: usize,
}

impl Seen {
    /// Response HEADERS frames received.
    pub fn responses(&self) -> usize {
        self.frames.iter().filter(|f| f.0 == HEADERS).count()
    }

    /// The gateway ended the connection or announced that it would.
    pub fn ended(&self) -> bool {
        self.closed || self.goaway.is_some()
    }
}

/// Reads frames from the gateway in a task of its own, so that a client
/// flooding the gateway never stops it by leaving its answers unread.
pub struct Reader {
    seen: Arc<Mutex<Seen>>,
    task: tokio::task::JoinHandle<()>,
}

impl Reader {
    pub fn spawn<R: AsyncRead + Unpin + Send + 'static>(mut read: R) -> Reader {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let log = seen.clone();
        let task = tokio::spawn(async move {
            let mut pending = Vec::new();
            let mut buf = vec![0u8; 65536];
            loop {
                let n = match read.read(&mut buf).await {
                    Ok(0) | Err(_) => {
                        log.lock().unwrap().closed = true;
                        return;
                    }
                    Ok(n) => n,
                };
                pending.extend_from_slice(&buf[..n]);
                let mut seen = log.lock().unwrap();
                seen.bytes += n;
                while pending.len() >= 9 {
                    let len = u32::from_be_bytes([0, pending[0], pending[1], pending[2]]) as usize;
                    if pending.len() < 9 + len {
                        break;
                    }
                    let kind = pending[3];
                    let stream =
                        u32::from_be_bytes([pending[5], pending[6], pending[7], pending[8]]);
                    if kind == GOAWAY && len >= 8 {
                        seen.goaway = Some(u32::from_be_bytes([
                            pending[13],
                            pending[14],
                            pending[15],
                            pending[16],
                        ]));
                    }
                    // Keep the log small under floods of answers (PING acks).
                    if seen.frames.len() < 10_000 {
                        seen.frames.push((kind, pending[4], stream));
                    }
                    pending.drain(..9 + len);
                }
            }
        });
        Reader { seen, task }
    }

    pub fn seen(&self) -> Seen {
        self.seen.lock().unwrap().clone()
    }

    /// Waits up to `limit` for `check`; returns what was seen then.
    pub async fn wait_for(&self, limit: Duration, check: impl Fn(&Seen) -> bool) -> Seen {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let seen = self.seen();
            if check(&seen) || tokio::time::Instant::now() >= deadline {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Writes chunks `make(0)`, `make(1)`, ... until the peer stops taking
/// bytes, `stop` says so, or `limit` passes. Returns how many were written.
pub async fn flood<W: AsyncWrite + Unpin>(
    write: &mut W,
    mut make: impl FnMut(usize) -> Vec<u8>,
    limit: Duration,
    stop: impl Fn() -> bool,
) -> usize {
    let deadline = tokio::time::Instant::now() + limit;
    let mut written = 0;
    while tokio::time::Instant::now() < deadline && !stop() {
        let chunk = make(written);
        match tokio::time::timeout(Duration::from_millis(200), write.write_all(&chunk)).await {
            Ok(Ok(())) => written += 1,
            Ok(Err(_)) => break,
            // The gateway stopped reading: let the check decide.
            Err(_) => continue,
        }
    }
    written
}

/// Reads until the peer closes (true) or `limit` passes (false).
pub async fn closed_within<R: AsyncRead + Unpin>(read: &mut R, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, read.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}
