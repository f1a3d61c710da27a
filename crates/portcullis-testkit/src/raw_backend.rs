//! A scripted raw HTTP/1.1 backend for the differential test of the two
//! HTTP/1.1 engines: it records the exact bytes of every request the gateway
//! sends and answers each one with exact bytes from a script, so a test can
//! compare what two gateways sent and make both face the same backend.
//!
//! Per accepted connection it reads one request at a time (the head up to
//! CRLF CRLF, then the body framed by Content-Length or chunked), records its
//! raw bytes, writes the next scripted reply verbatim and then keeps the
//! connection for the next request, closes it, or echoes everything that
//! follows (a tunnel after a `101`), as the reply says.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the backend does with the connection after writing a reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// Read the next request on the same connection.
    KeepAlive,
    /// Close the connection (a close-delimited body ends here).
    Close,
    /// Stop reading HTTP: echo every byte that follows and record it.
    Echo,
}

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Reply {
    /// Written verbatim; `{backend}` is replaced by the backend's own
    /// `127.0.0.1:port`, so a reply can name its address (for `Location`).
    pub bytes: Vec<u8>,
    pub after: After,
}

impl Reply {
    pub fn keep(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply {
            bytes: bytes.into(),
            after: After::KeepAlive,
        }
    }

    pub fn close(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply {
            bytes: bytes.into(),
            after: After::Close,
        }
    }

    pub fn echo(bytes: impl Into<Vec<u8>>) -> Reply {
        Reply {
            bytes: bytes.into(),
            after: After::Echo,
        }
    }
}

/// One request as the backend read it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// Which accepted connection (0, 1, ...) carried it.
    pub connection: usize,
    /// The exact bytes: head and body as framed on the wire.
    pub raw: Vec<u8>,
    /// False when the connection ended (or the framing broke) before the
    /// request was complete.
    pub complete: bool,
    /// The request's framing was broken (a bad chunk, an unreadable
    /// Content-Length, too large): a gateway sent what no parser should
    /// accept, as opposed to a connection that ended early.
    pub broken: bool,
    /// Bytes received after an [`After::Echo`] reply.
    pub tunnel: Vec<u8>,
}

/// The largest request the backend buffers; more is recorded as incomplete.
const MAX_REQUEST: usize = 4 * 1024 * 1024;

const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

#[derive(Default)]
struct State {
    script: VecDeque<Reply>,
    /// Answers every request after the script ran out (a retry gets the same
    /// answer as the try before it).
    last: Option<Reply>,
    received: Vec<Received>,
    connections: usize,
}

/// A backend on `127.0.0.1:0` answering from a script. See the module docs.
pub struct RawBackend {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl RawBackend {
    /// Starts a backend answering request N with `script[N]` and every
    /// request after the last with the last reply again.
    pub async fn start(script: Vec<Reply>) -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let own = addr.to_string();
        let script: VecDeque<Reply> = script
            .into_iter()
            .map(|reply| Reply {
                bytes: replace(&reply.bytes, b"{backend}", own.as_bytes()),
                after: reply.after,
            })
            .collect();
        let state = Arc::new(Mutex::new(State {
            script,
            ..State::default()
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let connection = {
                    let mut state = lock(&shared);
                    state.connections += 1;
                    state.connections - 1
                };
                tokio::spawn(serve_connection(stream, connection, shared.clone()));
            }
        });
        RawBackend { addr, state, task }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request read so far, in the order they were read.
    pub fn received(&self) -> Vec<Received> {
        lock(&self.state).received.clone()
    }

    /// How many connections the backend accepted.
    pub fn connections(&self) -> usize {
        lock(&self.state).connections
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

// A panic while holding the lock only happens in a failing test; the data is
// still what was recorded.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn next_reply(state: &Mutex<State>) -> Option<Reply> {
    let mut state = lock(state);
    match state.script.pop_front() {
        Some(reply) => {
            state.last = Some(reply.clone());
            Some(reply)
        }
        None => state.last.clone(),
    }
}

async fn serve_connection(mut stream: TcpStream, connection: usize, state: Arc<Mutex<State>>) {
    let mut pending = Vec::new();
    loop {
        let (raw, read) = read_request(&mut stream, &mut pending).await;
        if raw.is_empty() {
            return;
        }
        let complete = read == Read::Complete;
        let index = {
            let mut state = lock(&state);
            state.received.push(Received {
                connection,
                raw,
                complete,
                broken: read == Read::Broken,
                tunnel: Vec::new(),
            });
            state.received.len() - 1
        };
        if !complete {
            return;
        }
        let Some(reply) = next_reply(&state) else {
            return;
        };
        if stream.write_all(&reply.bytes).await.is_err() {
            return;
        }
        match reply.after {
            After::KeepAlive => continue,
            After::Close => {
                let _ = stream.shutdown().await;
                return;
            }
            After::Echo => return echo(stream, pending, index, &state).await,
        }
    }
}

/// Echoes every byte (starting with what was read past the request) and
/// records it as the request's tunnel bytes.
async fn echo(mut stream: TcpStream, pending: Vec<u8>, index: usize, state: &Mutex<State>) {
    let mut chunk = pending;
    let mut buf = [0u8; 16384];
    loop {
        if !chunk.is_empty() {
            lock(state).received[index].tunnel.extend_from_slice(&chunk);
            if stream.write_all(&chunk).await.is_err() {
                return;
            }
        }
        chunk = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf[..n].to_vec(),
        };
    }
}

/// How reading one request ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Read {
    Complete,
    /// The connection ended first.
    Cut,
    Broken,
}

/// Reads one request from `pending` plus the stream. Returns its raw bytes
/// and how the read ended; leaves bytes past it in `pending`. Answers
/// `Expect: 100-continue` with a 100 before waiting for the body, as a
/// server that wants the body would.
async fn read_request(stream: &mut TcpStream, pending: &mut Vec<u8>) -> (Vec<u8>, Read) {
    let mut continued = false;
    let mut buf = [0u8; 16384];
    loop {
        match request_length(pending) {
            Framed::Complete(length) => {
                let rest = pending.split_off(length);
                return (std::mem::replace(pending, rest), Read::Complete);
            }
            Framed::Broken => return (std::mem::take(pending), Read::Broken),
            Framed::NeedMore { head_done } => {
                if head_done && !continued && expects_continue(pending) {
                    continued = true;
                    if stream.write_all(CONTINUE).await.is_err() {
                        return (std::mem::take(pending), Read::Cut);
                    }
                }
            }
        }
        if pending.len() > MAX_REQUEST {
            return (std::mem::take(pending), Read::Broken);
        }
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return (std::mem::take(pending), Read::Cut),
            Ok(n) => pending.extend_from_slice(&buf[..n]),
        }
    }
}

enum Framed {
    Complete(usize),
    NeedMore { head_done: bool },
    Broken,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn replace(bytes: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(found) = find(&bytes[at..], from) {
        out.extend_from_slice(&bytes[at..at + found]);
        out.extend_from_slice(to);
        at += found + from.len();
    }
    out.extend_from_slice(&bytes[at..]);
    out
}

/// The header lines of a head, lowercased, without the request line.
fn header_lines(head: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(head)
        .to_ascii_lowercase()
        .split("\r\n")
        .skip(1)
        .map(str::to_string)
        .collect()
}

fn header_values(lines: &[String], name: &str) -> Vec<String> {
    lines
        .iter()
        .filter_map(|line| {
            let (n, v) = line.split_once(':')?;
            (n == name).then(|| v.trim().to_string())
        })
        .collect()
}

fn expects_continue(bytes: &[u8]) -> bool {
    let Some(head_end) = find(bytes, b"\r\n\r\n") else {
        return false;
    };
    header_values(&header_lines(&bytes[..head_end]), "expect")
        .iter()
        .any(|v| v == "100-continue")
}

/// Where the first request in `bytes` ends, by its own framing: chunked when
/// Transfer-Encoding names it, else Content-Length, else no body.
fn request_length(bytes: &[u8]) -> Framed {
    let Some(head_end) = find(bytes, b"\r\n\r\n").map(|at| at + 4) else {
        return Framed::NeedMore { head_done: false };
    };
    let lines = header_lines(&bytes[..head_end]);
    let chunked = header_values(&lines, "transfer-encoding")
        .iter()
        .any(|v| v.contains("chunked"));
    if chunked {
        return chunked_length(bytes, head_end);
    }
    let lengths = header_values(&lines, "content-length");
    let length = match lengths.first().map(|v| v.parse::<usize>()) {
        None => 0,
        Some(Ok(length)) => length,
        Some(Err(_)) => return Framed::Broken,
    };
    if bytes.len() >= head_end + length {
        Framed::Complete(head_end + length)
    } else {
        Framed::NeedMore { head_done: true }
    }
}

/// Walks the chunks from `at` to the last chunk and the trailer section.
fn chunked_length(bytes: &[u8], mut at: usize) -> Framed {
    let need_more = Framed::NeedMore { head_done: true };
    loop {
        let Some(line_end) = find(&bytes[at..], b"\r\n").map(|end| at + end) else {
            return need_more;
        };
        let line = String::from_utf8_lossy(&bytes[at..line_end]);
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return Framed::Broken;
        };
        at = line_end + 2;
        if size == 0 {
            return trailers_length(bytes, at);
        }
        let Some(data_end) = at.checked_add(size).filter(|&end| end <= MAX_REQUEST) else {
            return Framed::Broken;
        };
        if bytes.len() < data_end + 2 {
            return need_more;
        }
        if &bytes[data_end..data_end + 2] != b"\r\n" {
            return Framed::Broken;
        }
        at = data_end + 2;
    }
}

fn trailers_length(bytes: &[u8], mut at: usize) -> Framed {
    loop {
        let Some(end) = find(&bytes[at..], b"\r\n") else {
            return Framed::NeedMore { head_done: true };
        };
        at += end + 2;
        if end == 0 {
            return Framed::Complete(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn length(bytes: &[u8]) -> Option<usize> {
        match request_length(bytes) {
            Framed::Complete(n) => Some(n),
            _ => None,
        }
    }

    #[test]
    fn requests_are_framed_by_their_own_headers() {
        let get = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nNEXT";
        assert_eq!(length(get), Some(get.len() - 4));
        let post = b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcNEXT";
        assert_eq!(length(post), Some(post.len() - 4));
        let chunked =
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\nT: 1\r\n\r\nNEXT";
        assert_eq!(length(chunked), Some(chunked.len() - 4));
        assert_eq!(
            length(b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab"),
            None
        );
        assert!(matches!(
            request_length(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            Framed::Broken
        ));
    }

    #[test]
    fn the_backend_placeholder_is_replaced_everywhere() {
        assert_eq!(
            replace(b"a {backend} b {backend}", b"{backend}", b"X"),
            b"a X b X".to_vec()
        );
    }

    #[tokio::test]
    async fn a_backend_records_requests_and_answers_from_its_script() {
        let backend = RawBackend::start(vec![
            Reply::keep(&b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"[..]),
            Reply::close(&b"HTTP/1.1 201 Created\r\n\r\nb"[..]),
        ])
        .await;
        let mut stream = TcpStream::connect(backend.addr).await.expect("connect");
        let two =
            b"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nPOST /2 HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi";
        stream.write_all(two).await.expect("write");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("read");
        assert_eq!(
            answer,
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\naHTTP/1.1 201 Created\r\n\r\nb".to_vec()
        );
        let received = backend.received();
        assert_eq!(received.len(), 2);
        assert!(received.iter().all(|r| r.complete && r.connection == 0));
        assert!(received[1].raw.ends_with(b"\r\n\r\nhi"));
    }

    #[tokio::test]
    async fn broken_framing_is_told_apart_from_a_cut_connection() {
        let backend = RawBackend::start(vec![Reply::keep(&b"HTTP/1.1 200 OK\r\n\r\n"[..])]).await;
        for bytes in [
            &b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"[..],
            &b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc"[..],
        ] {
            let mut stream = TcpStream::connect(backend.addr).await.expect("connect");
            stream.write_all(bytes).await.expect("write");
            stream.shutdown().await.expect("shutdown");
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer).await;
            assert!(answer.is_empty());
        }
        let received = backend.received();
        assert_eq!(received.len(), 2);
        assert!(received[0].broken && !received[0].complete);
        assert!(!received[1].broken && !received[1].complete);
    }
}
