//! Responses towards the client: the head from the pipeline's response, and
//! the body framed by Content-Length, chunked, or the connection's close.
//! Small frames are gathered into one write with the head.

use std::cell::RefCell;
use std::io;
use std::time::{Duration, SystemTime};

use bytes::Buf;
use futures_util::FutureExt;
use http::header::{HeaderMap, CONNECTION, CONTENT_LENGTH, DATE, TRANSFER_ENCODING};
use http::StatusCode;
use http_body::Body;
use http_body_util::BodyExt;
use tokio::io::AsyncWriteExt;

use super::head::{connection_says, parse_length};
use super::quick_io::{self, QuickWrite};
use crate::body::ProxyBody;
use crate::http::{FieldKind, ProxyResponse, RawResponseHead};

/// Frames at least this large are written on their own, not copied.
const COPY_LIMIT: usize = 16 * 1024;

/// What the connection knows about the request being answered.
#[derive(Debug, Clone, Copy)]
pub(super) struct Answering {
    pub(super) head_request: bool,
    pub(super) http10: bool,
    /// The connection closes after this response (decided before writing).
    pub(super) close: bool,
}

/// How the response went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Written {
    pub(super) status: StatusCode,
    /// The connection must close: asked for, close-delimited, or the body
    /// ended early or ran long.
    pub(super) close: bool,
}

/// Writes `response` to `io`; `out` is the connection's write buffer (left
/// empty). A raw head's kept fields go out as received (names in lowercase,
/// as a map would give them), then the map's.
pub(super) async fn write_response<W: QuickWrite>(
    io: &mut W,
    out: &mut Vec<u8>,
    response: ProxyResponse,
    answering: Answering,
) -> io::Result<Written> {
    let started = start_response(out, response, answering);
    finish_response(io, out, started).await
}

/// A response whose head is in the write buffer, and its body.
pub(super) struct Started {
    head: HeadWritten,
    body: ProxyBody,
}

/// Writes the response's head into `out`, by a plain function: the
/// response's parts and raw head are gone before any future holds them, so
/// they are neither kept in one nor copied into it (callgrind: memcpy).
pub(super) fn start_response(
    out: &mut Vec<u8>,
    response: ProxyResponse,
    answering: Answering,
) -> Started {
    let (head, body) = write_head(out, response, answering);
    Started { head, body }
}

/// Sends the head `start_response` wrote, then the body.
pub(super) async fn finish_response<W: QuickWrite>(
    io: &mut W,
    out: &mut Vec<u8>,
    started: Started,
) -> io::Result<Written> {
    let Started { head, body } = started;
    let written = Written {
        status: head.status,
        close: head.close,
    };
    match head.body {
        BodyFraming::None | BodyFraming::Written => {
            flush(io, out).await?;
            Ok(written)
        }
        BodyFraming::Tunnel => {
            flush(io, out).await?;
            Ok(Written {
                close: false,
                ..written
            })
        }
        BodyFraming::Framed { length, chunked } => {
            // Boxed: a body that came whole with its head (nearly every
            // small response) goes out with it, and this state was most of
            // the request's box, which must stay within the allocator's
            // small-object path (`engine::server`'s size test).
            let complete = Box::pin(write_body(io, out, body, length, chunked)).await?;
            Ok(Written {
                close: written.close || !complete,
                ..written
            })
        }
    }
}

/// What the head said about the body that follows it.
enum BodyFraming {
    /// None (HEAD, 1xx, 204, 304).
    None,
    /// All of it, already in the buffer after the head.
    Written,
    /// An accepted upgrade: the connection is a tunnel after the head.
    Tunnel,
    /// The body, with its length if one was written, else chunked or until
    /// the close.
    Framed { length: Option<u64>, chunked: bool },
}

/// The head `write_head` wrote.
struct HeadWritten {
    status: StatusCode,
    close: bool,
    body: BodyFraming,
}

/// Writes the status line and fields into `out`. A raw head's kept fields
/// go out as received (names in lowercase, as a map would give them), then
/// the map's.
fn write_head(
    out: &mut Vec<u8>,
    response: ProxyResponse,
    answering: Answering,
) -> (HeadWritten, ProxyBody) {
    let status = response.status();
    let (response, raw_head) = match response.raw_head {
        // A `101` is written from a map (the connector never keeps its head
        // raw): the two forms are merged should one come here.
        Some(_) if status == StatusCode::SWITCHING_PROTOCOLS => (response.into_response(), None),
        raw_head => (response.response, raw_head),
    };
    let (parts, mut body) = response.into_parts();
    // One allocation for the head and small bodies, not one per growth.
    out.reserve(1024);
    // A raw head's map is usually empty: no lookups in it then.
    let refused = !parts.headers.is_empty() && connection_says(&parts.headers, b"close");
    let mut close = answering.close || refused;
    let no_body = answering.head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    write_status_line(out, status, answering.http10);
    if status == StatusCode::SWITCHING_PROTOCOLS {
        write_switching_fields(out, &parts.headers);
        let head = HeadWritten {
            status,
            close: false,
            body: BodyFraming::Tunnel,
        };
        return (head, body);
    }
    let mut fields = FieldsWritten::default();
    let mut whole_body = None;
    if let Some(mut raw) = raw_head {
        fields.write_raw(out, &raw, answering.head_request);
        whole_body = raw.take_whole_body();
        raw.recycle();
    }
    fields.write_map(out, &parts.headers, status, answering.head_request);
    let mut length = fields.length;
    let mut chunked = false;
    if !no_body && length.is_none() {
        match body.size_hint().exact() {
            Some(n) => {
                write_length(out, n);
                length = Some(n);
            }
            None if answering.http10 => close = true,
            None => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                chunked = true;
            }
        }
    }
    if !fields.date {
        write_date(out);
    }
    // HTTP/1.0 closes unless keep-alive is said; HTTP/1.1 keeps unless close
    // is. A refusal says close either way, as hyper's path does.
    match (answering.http10, close) {
        (false, true) => out.extend_from_slice(b"connection: close\r\n"),
        (true, true) if refused => out.extend_from_slice(b"connection: close\r\n"),
        (true, false) => out.extend_from_slice(b"connection: keep-alive\r\n"),
        _ => {}
    }
    out.extend_from_slice(b"\r\n");
    let body_framing = match (no_body, whole_body) {
        (true, _) => BodyFraming::None,
        // A small body that came whole with the head goes out with it.
        (false, Some(whole))
            if !chunked && whole.len() < COPY_LIMIT && length == Some(whole.len() as u64) =>
        {
            out.extend_from_slice(&whole);
            BodyFraming::Written
        }
        (false, whole) => {
            if let Some(whole) = whole {
                body = crate::body::full(whole);
            }
            BodyFraming::Framed { length, chunked }
        }
    };
    let head = HeadWritten {
        status,
        close,
        body: body_framing,
    };
    (head, body)
}

/// An accepted upgrade's fields: its Connection and Upgrade fields go as
/// they are, and the connection is a tunnel from here on.
fn write_switching_fields(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        write_field(out, name.as_str(), value.as_bytes());
    }
    if !headers.contains_key(DATE) {
        write_date(out);
    }
    out.extend_from_slice(b"\r\n");
}

/// What the fields written so far said about the head's end.
#[derive(Default)]
struct FieldsWritten {
    /// The Content-Length written, if one was.
    length: Option<u64>,
    /// A Date was written.
    date: bool,
}

impl FieldsWritten {
    /// The fields of a map, less the framing ones the engine writes itself.
    fn write_map(
        &mut self,
        out: &mut Vec<u8>,
        headers: &HeaderMap,
        status: StatusCode,
        head_request: bool,
    ) {
        for (name, value) in headers {
            if name == CONNECTION || name == TRANSFER_ENCODING {
                continue;
            }
            if name == CONTENT_LENGTH {
                if length_dropped(status, head_request) {
                    continue;
                }
                self.length = parse_length(value.as_bytes());
            }
            write_field(out, name.as_str(), value.as_bytes());
        }
        self.date |= !headers.is_empty() && headers.contains_key(DATE);
    }

    /// The kept fields of a raw head, by the rules of `write_map`. Lines
    /// the head holds as the client gets them are copied, a run of
    /// adjacent ones at once.
    fn write_raw(&mut self, out: &mut Vec<u8>, raw: &RawResponseHead, head_request: bool) {
        let bytes = raw.bytes();
        let mut run: Option<(usize, usize)> = None;
        for field in raw.kept() {
            match field.kind {
                FieldKind::Connection | FieldKind::TransferEncoding => continue,
                FieldKind::ContentLength if length_dropped(raw.status, head_request) => continue,
                FieldKind::ContentLength => self.length = parse_length(field.value),
                FieldKind::Date => self.date = true,
                _ => {}
            }
            match (field.line, &mut run) {
                (Some((start, end)), Some((_, run_end))) if *run_end == start => *run_end = end,
                (line, _) => {
                    if let Some((start, end)) = run.take() {
                        out.extend_from_slice(&bytes[start..end]);
                    }
                    match line {
                        Some(line) => run = Some(line),
                        None => write_field(out, field.name, field.value),
                    }
                }
            }
        }
        if let Some((start, end)) = run {
            out.extend_from_slice(&bytes[start..end]);
        }
    }
}

/// Content-Length is not in a 204 (RFC 9110 §8.6) or a 1xx, and is dropped
/// from a 304 as hyper does (but for a HEAD request's).
fn length_dropped(status: StatusCode, head_request: bool) -> bool {
    status == StatusCode::NO_CONTENT
        || (status == StatusCode::NOT_MODIFIED && !head_request)
        || status.is_informational()
}

/// Relays the body; `Ok(false)` when it failed or did not match its length
/// (the client then sees the connection close, never a complete-looking
/// response).
async fn write_body<W: QuickWrite>(
    io: &mut W,
    out: &mut Vec<u8>,
    mut body: ProxyBody,
    length: Option<u64>,
    chunked: bool,
) -> io::Result<bool> {
    let mut sent: u64 = 0;
    loop {
        let next = match body.frame().now_or_never() {
            Some(next) => next,
            None => {
                flush(io, out).await?;
                body.frame().await
            }
        };
        let Some(frame) = next else { break };
        let Ok(frame) = frame else {
            flush(io, out).await?;
            return Ok(false);
        };
        let Ok(mut data) = frame.into_data() else {
            // Trailers are dropped (PRODUCT.md §9).
            continue;
        };
        let len = data.remaining();
        if len == 0 {
            continue;
        }
        sent += len as u64;
        if length.is_some_and(|l| sent > l) {
            flush(io, out).await?;
            return Ok(false);
        }
        if chunked {
            out.extend_from_slice(ChunkSizeLine::new(len).as_bytes());
        }
        if len >= COPY_LIMIT {
            flush(io, out).await?;
            io.write_all_buf(&mut data).await?;
        } else {
            out.extend_from_slice(data.chunk());
        }
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
        // A body that knows it is done (a backend body whose last bytes
        // were in this frame) is not polled once more for its end: that
        // poll went through every layer of it for nothing, about 300
        // instructions for a small response.
        if body.is_end_stream() {
            break;
        }
    }
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    flush(io, out).await?;
    Ok(length.is_none_or(|l| sent == l))
}

async fn flush<W: QuickWrite>(io: &mut W, out: &mut Vec<u8>) -> io::Result<()> {
    if !out.is_empty() {
        let at_once = quick_io::write_now(io, out)?;
        if at_once < out.len() {
            io.write_all(&out[at_once..]).await?;
        }
        out.clear();
    }
    Ok(())
}

/// An HTTP/1.0 client is answered in HTTP/1.0, as hyper answers it.
fn write_status_line(out: &mut Vec<u8>, status: StatusCode, http10: bool) {
    // Nearly every response: one copy, no reason lookup (about 80
    // instructions less, callgrind).
    if status == StatusCode::OK && !http10 {
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
        return;
    }
    out.extend_from_slice(if http10 { b"HTTP/1.0 " } else { b"HTTP/1.1 " });
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    if let Some(reason) = status.canonical_reason() {
        out.extend_from_slice(reason.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// An interim (1xx) head as the client gets it: HTTP/1.1, the backend's
/// fields without hop-by-hop ones (RFC 9110 §7.6.1) and without any
/// Content-Length (a 1xx has no content, RFC 9110 §8.6).
pub(super) fn write_interim_head(out: &mut Vec<u8>, mut head: http::response::Parts) {
    crate::http::headers::strip_hop_by_hop(&mut head.headers, false);
    write_status_line(out, head.status, false);
    for (name, value) in &head.headers {
        if name != CONTENT_LENGTH {
            write_field(out, name.as_str(), value.as_bytes());
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// `name: value` and CRLF.
pub(super) fn write_field(out: &mut Vec<u8>, name: impl AsRef<[u8]>, value: &[u8]) {
    out.extend_from_slice(name.as_ref());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

pub(super) fn write_length(out: &mut Vec<u8>, length: u64) {
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(itoa::Buffer::new().format(length).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// A chunk-size line (`{len:x}` and CRLF), built on the stack.
pub(super) struct ChunkSizeLine {
    bytes: [u8; 18],
    start: usize,
}

impl ChunkSizeLine {
    pub(super) fn new(mut len: usize) -> Self {
        let mut line = ChunkSizeLine {
            bytes: [0; 18],
            start: 16,
        };
        line.bytes[16..].copy_from_slice(b"\r\n");
        loop {
            line.start -= 1;
            line.bytes[line.start] = b"0123456789abcdef"[len & 0xf];
            len >>= 4;
            if len == 0 {
                return line;
            }
        }
    }

    pub(super) fn as_bytes(&self) -> &[u8] {
        &self.bytes[self.start..]
    }
}

thread_local! {
    /// `date: ...\r\n` for the current second, formatted once per second.
    static DATE_LINE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

fn write_date(out: &mut Vec<u8>) {
    let now = SystemTime::now();
    let second = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    DATE_LINE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != second {
            cached.0 = second;
            cached.1.clear();
            cached.1.extend_from_slice(b"date: ");
            cached
                .1
                .extend_from_slice(httpdate::fmt_http_date(now).as_bytes());
            cached.1.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(&cached.1);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::body;
    use http::header::CONTENT_LENGTH;
    use http::Response;

    async fn written(response: Response<ProxyBody>, answering: Answering) -> (String, Written) {
        let mut io = Vec::new();
        let mut out = Vec::new();
        let w = write_response(&mut io, &mut out, response.into(), answering)
            .await
            .unwrap();
        (String::from_utf8(io).unwrap(), w)
    }

    async fn written_proxy(response: ProxyResponse, answering: Answering) -> String {
        let mut io = Vec::new();
        let mut out = Vec::new();
        write_response(&mut io, &mut out, response, answering)
            .await
            .unwrap();
        String::from_utf8(io).unwrap()
    }

    fn sorted_lines(text: &str) -> Vec<&str> {
        let mut lines: Vec<&str> = text.split("\r\n").collect();
        lines[1..].sort();
        lines
    }

    /// The own engine's path (raw head, edits recorded) and the map path
    /// (the same head as a map, edited as `pipeline::finish` edits a map)
    /// give the client the same status line and the same field lines.
    #[tokio::test]
    async fn a_raw_head_is_written_as_its_map_would_be() {
        use crate::engine::head::parse_response;
        use crate::http::headers::strip_hop_by_hop;
        use http::header::TRANSFER_ENCODING;
        let date = "Date: Wed, 02 Dec 2026 04:00:00 GMT\r\n";
        let heads = [
            "HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: keep-alive\r\nETag: \"x\"\r\n",
            "HTTP/1.1 200 OK\r\nX-A:   spaced  \r\nX-B:\r\nX-C: \r\nContent-Length: 05\r\ncontent-length: 5\r\nConnection: x-a, close\r\nKeep-Alive: 5\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a=1\r\nX-Y:z\r\nSet-Cookie: b=2\r\nProxy-Foo: 1\r\nTE: x\r\n",
            "HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\nETag: \"y\"\r\nUpgrade: h2c\r\n",
            "HTTP/1.0 404 Not Found\r\nLocation: /a\r\nlocation: /b\r\nTrailer: x\r\n",
        ];
        for head in heads {
            let text = format!("{head}{date}\r\n");
            let mut buf = bytes::BytesMut::from(text.as_str());
            let parsed = parse_response(&mut buf, &http::Method::GET)
                .unwrap()
                .unwrap();
            let mut parts = parsed.to_parts(0).unwrap();
            if parts.headers.contains_key(TRANSFER_ENCODING) {
                parts.headers.remove(CONTENT_LENGTH);
            }
            strip_hop_by_hop(&mut parts.headers, false);
            let mut raw = parsed.raw;
            if raw.has(FieldKind::TransferEncoding) {
                raw.drop_kind(FieldKind::ContentLength);
            }
            raw.strip_hop_by_hop();
            raw.set(FieldKind::Location, http::HeaderValue::from_static("/c"));
            if parts.headers.contains_key("location") {
                parts
                    .headers
                    .insert("location", http::HeaderValue::from_static("/c"));
            }
            let from_map = written(Response::from_parts(parts, body::full("hello")), PLAIN).await;
            let mut bare = Response::new(body::full("hello"));
            *bare.status_mut() = raw.status;
            let raw_head = Some(raw);
            let from_raw = written_proxy(
                ProxyResponse {
                    response: bare,
                    raw_head,
                },
                PLAIN,
            )
            .await;
            assert_eq!(sorted_lines(&from_raw), sorted_lines(&from_map.0), "{text}");
        }
    }

    /// A body that came whole with its head (`engine::backend`) goes out
    /// with the head, in the very bytes a body stream gives; where no body
    /// may go (a HEAD request's answer, a 304) it is left out, and a body
    /// its head's length does not describe goes out as a stream, framed as
    /// the head says.
    #[tokio::test]
    async fn a_whole_body_goes_out_as_its_stream_would() {
        use crate::engine::head::parse_response;
        let date = "Date: Wed, 02 Dec 2026 04:00:00 GMT\r\n";
        let cases = [
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", "hello", PLAIN),
            ("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n", "", PLAIN),
            ("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", "hello", HEAD),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n",
                "hello",
                PLAIN,
            ),
            ("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n", "hello", PLAIN),
        ];
        for (head, body_text, answering) in cases {
            let parse = || {
                let text = format!("{head}{date}\r\n");
                let mut buf = bytes::BytesMut::from(text.as_str());
                parse_response(&mut buf, &http::Method::GET)
                    .unwrap()
                    .unwrap()
                    .raw
            };
            let bare = |body| {
                let mut bare = Response::new(body);
                *bare.status_mut() = parse().status;
                bare
            };
            let streamed = ProxyResponse {
                response: bare(body::full(body_text)),
                raw_head: Some(parse()),
            };
            let mut raw = parse();
            raw.set_whole_body(bytes::Bytes::from_static(body_text.as_bytes()));
            let whole = ProxyResponse {
                response: bare(body::empty()),
                raw_head: Some(raw),
            };
            let mut io = (Vec::new(), Vec::new());
            let mut out = Vec::new();
            let from_stream = write_response(&mut io.0, &mut out, streamed, answering).await;
            let from_whole = write_response(&mut io.1, &mut out, whole, answering).await;
            assert_eq!(from_whole.unwrap(), from_stream.unwrap(), "{head}");
            assert_eq!(io.1, io.0, "{head}");
        }
    }

    const HEAD: Answering = Answering {
        head_request: true,
        http10: false,
        close: false,
    };

    const PLAIN: Answering = Answering {
        head_request: false,
        http10: false,
        close: false,
    };

    #[test]
    fn every_status_line_is_version_code_and_reason() {
        for code in 100..=999u16 {
            let status = StatusCode::from_u16(code).unwrap();
            for http10 in [false, true] {
                let mut out = Vec::new();
                write_status_line(&mut out, status, http10);
                let reason = status.canonical_reason().unwrap_or("");
                let minor = if http10 { 0 } else { 1 };
                let expected = format!("HTTP/1.{minor} {code} {reason}\r\n");
                assert_eq!(String::from_utf8(out).unwrap(), expected);
            }
        }
    }

    #[test]
    fn chunk_size_lines_are_lowercase_hex() {
        for len in [1usize, 15, 16, 255, 4096, usize::MAX] {
            let line = ChunkSizeLine::new(len);
            assert_eq!(line.as_bytes(), format!("{len:x}\r\n").as_bytes());
        }
    }

    #[tokio::test]
    async fn a_full_body_gets_its_length_and_one_write() {
        let (text, w) = written(Response::new(body::full("hello")), PLAIN).await;
        assert!(text.starts_with("HTTP/1.1 200 OK\r\ncontent-length: 5\r\ndate: "));
        assert!(text.ends_with("\r\n\r\nhello"));
        assert!(!w.close);
    }

    #[tokio::test]
    async fn an_unknown_length_is_chunked_for_http11_and_closes_for_http10() {
        let stream = || {
            let frames = futures_util::stream::iter(vec![Ok::<_, crate::error::BoxError>(
                http_body::Frame::data(bytes::Bytes::from_static(b"abc")),
            )]);
            http_body_util::StreamBody::new(frames).boxed()
        };
        let (text, w) = written(Response::new(stream()), PLAIN).await;
        assert!(text.contains("transfer-encoding: chunked\r\n"));
        assert!(text.ends_with("\r\n\r\n3\r\nabc\r\n0\r\n\r\n"), "{text}");
        assert!(!w.close);
        let http10 = Answering {
            http10: true,
            ..PLAIN
        };
        let (text, w) = written(Response::new(stream()), http10).await;
        assert!(text.starts_with("HTTP/1.0 200 OK\r\n"), "{text}");
        assert!(!text.contains("connection:"), "{text}");
        assert!(text.ends_with("\r\n\r\nabc"));
        assert!(w.close);
    }

    #[tokio::test]
    async fn a_body_shorter_than_its_length_closes() {
        let mut response = Response::new(body::full("abc"));
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, http::HeaderValue::from_static("10"));
        let (_, w) = written(response, PLAIN).await;
        assert!(w.close);
    }

    #[tokio::test]
    async fn head_and_204_have_no_body() {
        let head = Answering {
            head_request: true,
            ..PLAIN
        };
        let mut response = Response::new(body::empty());
        response
            .headers_mut()
            .insert(CONTENT_LENGTH, http::HeaderValue::from_static("10"));
        let (text, w) = written(response, head).await;
        assert!(text.contains("content-length: 10\r\n"));
        assert!(text.ends_with("\r\n\r\n"));
        assert!(!w.close);
        let mut response = Response::new(body::empty());
        *response.status_mut() = StatusCode::NO_CONTENT;
        let (text, _) = written(response, PLAIN).await;
        assert!(!text.contains("content-length"), "{text}");
    }
}
