//! Raw-socket tools for the attack suite: a client that writes exact bytes and
//! reads whatever comes back, and backends that record the exact bytes they
//! receive or answer with exact bytes of their own.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use portcullis_testkit::{topology, TestMember};

/// What a raw exchange with the gateway produced.
#[derive(Debug)]
pub struct RawReply {
    pub bytes: Vec<u8>,
    /// The peer closed the connection (as opposed to the read timing out).
    pub closed: bool,
}

impl RawReply {
    /// Status code of the first response in the bytes, if any.
    pub fn status(&self) -> Option<u16> {
        status_of(&self.bytes)
    }

    /// Every status line's code, in order (pipelined or interim responses).
    pub fn statuses(&self) -> Vec<u16> {
        let text = String::from_utf8_lossy(&self.bytes);
        text.match_indices("HTTP/1.")
            .filter_map(|(i, _)| status_of(&self.bytes[i..]))
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).to_string()
    }

    /// The value of `name` in the first response head (case-insensitive).
    pub fn header(&self, name: &str) -> Option<String> {
        let text = self.text();
        let head = text.split("\r\n\r\n").next()?;
        head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

pub fn status_of(bytes: &[u8]) -> Option<u16> {
    let line = bytes.split(|&b| b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/") {
        return None;
    }
    parts.next()?.trim().parse().ok()
}

/// Writes `request` to `addr` and reads until the peer closes or nothing
/// arrives for `quiet`.
pub async fn exchange(addr: SocketAddr, request: &[u8], quiet: Duration) -> RawReply {
    let mut stream = TcpStream::connect(addr).await.expect("connect to gateway");
    // A peer that refuses early may close before everything is written.
    let _ = stream.write_all(request).await;
    read_reply(&mut stream, quiet).await
}

/// Reads until the peer closes or nothing arrives for `quiet`.
pub async fn read_reply(stream: &mut TcpStream, quiet: Duration) -> RawReply {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match tokio::time::timeout(quiet, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return RawReply {
                    bytes,
                    closed: true,
                }
            }
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Err(_) => {
                return RawReply {
                    bytes,
                    closed: false,
                }
            }
        }
    }
}

/// The usual quiet time for an exchange: long enough for a loopback
/// round trip through the gateway, short enough for hundreds of cases.
pub const QUIET: Duration = Duration::from_millis(400);

/// A backend that records every byte it receives, per connection, and
/// answers each request head it sees with `200 ok`. It frames request bodies
/// by Content-Length or chunked, as a strict server would.
pub struct RecordingBackend {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl RecordingBackend {
    pub async fn start() -> RecordingBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let log = log.clone();
                tokio::spawn(record_connection(stream, log));
            }
        });
        RecordingBackend {
            addr,
            received,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Everything received so far, one entry per connection.
    pub fn received(&self) -> Vec<Vec<u8>> {
        self.received.lock().unwrap().clone()
    }

    /// Everything received so far, all connections joined, as text.
    pub fn received_text(&self) -> String {
        self.received()
            .iter()
            .map(|c| String::from_utf8_lossy(c).to_string())
            .collect::<Vec<_>>()
            .join("\n--- next connection ---\n")
    }

    /// Request heads received so far (the request line and headers).
    pub fn heads(&self) -> Vec<String> {
        let mut heads = Vec::new();
        for conn in self.received() {
            let text = String::from_utf8_lossy(&conn).to_string();
            for part in text.split("\r\n\r\n") {
                let part = part
                    .trim_start_matches(|c: char| c.is_ascii_hexdigit() || c == '\r' || c == '\n');
                if part.contains(" HTTP/1.") {
                    heads.push(part.to_string());
                }
            }
        }
        heads
    }

    /// How many complete requests (head and framed body) arrived in all.
    pub fn complete_requests(&self) -> usize {
        let mut count = 0;
        for mut conn in self.received() {
            while let Some(used) = complete_request(&conn) {
                conn.drain(..used);
                count += 1;
            }
        }
        count
    }

    pub fn connections(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

impl Drop for RecordingBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record_connection(mut stream: TcpStream, log: Arc<Mutex<Vec<Vec<u8>>>>) {
    let index = {
        let mut log = log.lock().unwrap();
        log.push(Vec::new());
        log.len() - 1
    };
    let mut pending = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        log.lock().unwrap()[index].extend_from_slice(&buf[..n]);
        pending.extend_from_slice(&buf[..n]);
        while let Some(consumed) = complete_request(&pending) {
            pending.drain(..consumed);
            let reply =
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";
            if stream.write_all(reply).await.is_err() {
                return;
            }
        }
    }
}

/// Length of the first complete request in `bytes` (head and framed body).
pub fn complete_request(bytes: &[u8]) -> Option<usize> {
    let head_end = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&bytes[..head_end]).to_ascii_lowercase();
    let chunked = head
        .lines()
        .any(|l| l.starts_with("transfer-encoding:") && l.contains("chunked"));
    if chunked {
        // Walk the chunks to the zero chunk and the final CRLF.
        let mut at = head_end;
        loop {
            let line_end = at + bytes[at..].windows(2).position(|w| w == b"\r\n")?;
            let size_text = String::from_utf8_lossy(&bytes[at..line_end]);
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                // Trailers, then an empty line.
                loop {
                    let end = at + bytes[at..].windows(2).position(|w| w == b"\r\n")?;
                    let empty = end == at;
                    at = end + 2;
                    if empty {
                        return Some(at);
                    }
                }
            }
            at += size + 2;
            if at > bytes.len() {
                return None;
            }
        }
    }
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    (bytes.len() >= head_end + length).then_some(head_end + length)
}

/// A backend that reads one request head per connection and answers with
/// exactly `reply`, then keeps the connection open for `hold` before closing
/// it. It records every request head it read.
pub struct ScriptedBackend {
    pub addr: SocketAddr,
    received: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl ScriptedBackend {
    pub async fn start(reply: Vec<u8>, hold: Duration) -> ScriptedBackend {
        Self::start_with(move |_| reply, hold).await
    }

    /// As `start`, with a reply that may name the backend's own address.
    pub async fn start_with(
        reply: impl FnOnce(SocketAddr) -> Vec<u8>,
        hold: Duration,
    ) -> ScriptedBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let reply = reply(addr);
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = received.clone();
        let reply = Arc::new(reply);
        let task = tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let (log, reply) = (log.clone(), reply.clone());
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 16384];
                    while complete_request(&got).is_none() {
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    log.lock().unwrap().push(got);
                    let _ = stream.write_all(&reply).await;
                    tokio::time::sleep(hold).await;
                });
            }
        });
        ScriptedBackend {
            addr,
            received,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

impl Drop for ScriptedBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A member serving topology `t` with service `svc` over `url`, with `extra`
/// appended to the service table and `gateway_extra` to `[gateway]`.
pub async fn member_for(url: &str, extra: &str, gateway_extra: &str) -> TestMember {
    TestMember::start_with(
        &[("t", &topology("svc", &[url.to_string()], extra))],
        gateway_extra,
    )
    .await
}

/// A request head for `target` on the test service, with `headers` (each
/// ending in CRLF) and `body` as given.
pub fn request(method: &str, target: &str, headers: &str, body: &str) -> Vec<u8> {
    format!("{method} {target} HTTP/1.1\r\nHost: gw.test\r\n{headers}\r\n{body}").into_bytes()
}
