//! The backend side of the own engine: a try on a plain HTTP/1.1 backend is
//! written on a pooled (or new) connection, and the response head is read
//! and checked strictly. Backends over TLS or HTTP/2 stay on the service's
//! hyper client.

use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http::{Method, Response, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use super::head::{parse_response, BadResponse, ResponseFraming, ResponseHead};
use super::interim::{is_relayed, InterimCount, InterimHeads};
use super::respond::ChunkSizeLine;
use super::response_body::{read_more, BackendBody, ReturnTo, Upload, Wire, HEAD_READ};
use crate::backend_pool::BackendConn;
use crate::body::ProxyBody;
use crate::error::BoxError;
use crate::http::RawResponseHead;
use crate::hyper_edge::ServiceClient;
use crate::pipeline::{BackendConnector, ConnectionChoice, TryHost, TryRequest};
use crate::routing::ServiceRuntime;

/// Why a try on the own engine's backend side failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("connecting to the backend failed: {0}")]
    Connect(io::Error),
    #[error("connecting to the backend timed out")]
    ConnectTimeout,
    #[error("the backend closed the connection before answering")]
    ClosedBeforeAnswer,
    #[error("talking to the backend failed: {0}")]
    Io(io::Error),
    #[error(transparent)]
    BadResponse(#[from] BadResponse),
    #[error("the request body failed: {0}")]
    RequestBody(BoxError),
    #[error(transparent)]
    Hyper(#[from] hyper_util::client::legacy::Error),
}

/// A response body from either side of the connector. The own side's
/// carries the response head when it was kept raw, until the pipeline takes
/// it (`BackendConnector::take_raw_head`).
///
/// Every variant is one box: the response (with its 112-byte parts) is
/// moved from phase to phase, and at 128 bytes a move is a few stores, where
/// a larger one was a `memcpy` call, and the body's 192 bytes were copied
/// with it (callgrind).
pub enum EngineResponseBody {
    /// A body read from the connection as the client side asks for it.
    Own(Box<OwnBody>),
    /// Nothing left to read: no body, or all of it in the raw head.
    Done(Option<Box<RawResponseHead>>),
    Hyper(Box<Incoming>),
}

/// The own engine's body still to read, and the raw head until the
/// pipeline takes it.
pub struct OwnBody {
    body: BackendBody,
    raw: Option<Box<RawResponseHead>>,
}

impl Body for EngineResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            EngineResponseBody::Own(own) => {
                Pin::new(&mut own.body).poll_frame(cx).map_err(Into::into)
            }
            EngineResponseBody::Done(_) => Poll::Ready(None),
            EngineResponseBody::Hyper(body) => {
                Pin::new(&mut **body).poll_frame(cx).map_err(Into::into)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            EngineResponseBody::Own(own) => own.body.is_end_stream(),
            EngineResponseBody::Done(_) => true,
            EngineResponseBody::Hyper(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            EngineResponseBody::Own(own) => own.body.size_hint(),
            EngineResponseBody::Done(_) => SizeHint::with_exact(0),
            EngineResponseBody::Hyper(body) => body.size_hint(),
        }
    }
}

/// The backend connection of an accepted upgrade, in the `101` response's
/// extensions until the client side takes it.
#[derive(Debug, Clone)]
pub struct UpgradedBackend(pub(crate) Arc<std::sync::Mutex<Option<BackendConn>>>);

/// Sends tries on the own engine where it can, on hyper where it cannot.
/// Interim (1xx) responses of the tries are queued for the client's
/// connection when there is a queue: none for clients that cannot take them
/// (HTTP/2 through hyper's server, HTTP/1.0).
///
/// For the engine's own HTTP/1 client side, response heads stay raw
/// (`RawResponseHead`): the pipeline edits them in place and the client's
/// head is written from their bytes. Other clients get an `http` map.
pub struct OwnConnector<'a> {
    interim: Option<&'a InterimHeads>,
    raw_heads: bool,
}

impl OwnConnector<'static> {
    /// A connector that relays no interim response and hands on maps.
    pub const PLAIN: OwnConnector<'static> = OwnConnector {
        interim: None,
        raw_heads: false,
    };
}

impl<'a> OwnConnector<'a> {
    /// The connector of the engine's HTTP/1 client side: raw heads.
    pub(super) fn relaying(interim: Option<&'a InterimHeads>) -> OwnConnector<'a> {
        OwnConnector {
            interim,
            raw_heads: true,
        }
    }
}

impl BackendConnector for OwnConnector<'_> {
    type ResponseBody = EngineResponseBody;
    type Error = EngineError;

    fn send(
        &self,
        service: &ServiceRuntime,
        request: TryRequest<'_>,
        connection: ConnectionChoice,
    ) -> impl Future<Output = Result<Response<EngineResponseBody>, EngineError>> + Send {
        // Boxed: every future that awaits the exchange would otherwise hold
        // and copy its state (callgrind: memcpy). Its rare states are boxed
        // apart inside it, so the box stays within the allocator's
        // small-object fast path (1 KiB; over it, mimalloc takes its generic
        // path, about 200 instructions more per request).
        super::build_boxed(|| send(service, request, connection, self))
    }

    fn take_raw_head(&self, body: &mut EngineResponseBody) -> Option<Box<RawResponseHead>> {
        match body {
            EngineResponseBody::Own(own) => own.raw.take(),
            EngineResponseBody::Done(head) => head.take(),
            EngineResponseBody::Hyper(_) => None,
        }
    }

    fn is_connect(&self, error: &EngineError) -> bool {
        match error {
            EngineError::Connect(_) | EngineError::ConnectTimeout => true,
            EngineError::Hyper(err) => ServiceClient.is_connect(err),
            _ => false,
        }
    }

    fn closed_before_answer(&self, error: &EngineError) -> bool {
        match error {
            EngineError::ClosedBeforeAnswer => true,
            EngineError::Hyper(err) => ServiceClient.closed_before_answer(err),
            _ => false,
        }
    }

    fn client_body_failure(&self, error: &EngineError) -> Option<&'static str> {
        match error {
            EngineError::RequestBody(err) => crate::body::body_failure_reason(err.as_ref()),
            EngineError::Hyper(err) => ServiceClient.client_body_failure(err),
            _ => None,
        }
    }
}

/// A plain HTTP/1.1 backend on the own engine, anything else on the
/// service's hyper client (boxed: its state would size every try's box).
async fn send(
    service: &ServiceRuntime,
    request: TryRequest<'_>,
    connection: ConnectionChoice,
    connector: &OwnConnector<'_>,
) -> Result<Response<EngineResponseBody>, EngineError> {
    let own = request.version == Version::HTTP_11 && request.target.is_plain_http();
    if own {
        send_own(service, request, connection, connector).await
    } else {
        Box::pin(send_hyper(service, request, connection)).await
    }
}

/// Backends the own engine does not speak to (TLS, HTTP/2) go on the
/// service's hyper client, whose pool cannot be bypassed for one request,
/// so there a resend may take a pooled connection again.
async fn send_hyper(
    service: &ServiceRuntime,
    request: TryRequest<'_>,
    connection: ConnectionChoice,
) -> Result<Response<EngineResponseBody>, EngineError> {
    let response = ServiceClient.send(service, request, connection).await?;
    Ok(response.map(|body| EngineResponseBody::Hyper(Box::new(body))))
}

/// A plain HTTP/1.1 backend on the own engine. An `async` block rather than
/// an `async fn`, which would hold the request twice (its argument and its
/// local), 128 bytes of the try's box.
// Not an `async fn`, on purpose (above).
#[allow(clippy::manual_async_fn)]
fn send_own<'a>(
    service: &'a ServiceRuntime,
    request: TryRequest<'a>,
    connection: ConnectionChoice,
    connector: &'a OwnConnector<'a>,
) -> impl Future<Output = Result<Response<EngineResponseBody>, EngineError>> + Send + 'a {
    async move {
        let authority = &request.target.backend.authority;
        // A resend after a pooled connection turned out closed goes on a new
        // one: the next pooled connection may be just as dead (§9).
        let pooled = match connection {
            ConnectionChoice::Pooled => service.pool.take(authority.as_str(), request.sent_at),
            ConnectionChoice::New => None,
        };
        let mut conn = match pooled {
            Some(conn) => conn,
            // Boxed, as the exchange with a body below: rare states that would
            // otherwise size every request's box (see `OwnConnector::send`).
            None => Box::pin(connect(authority.as_str(), service.config.timeouts.connect)).await?,
        };
        let reused = conn.used > 0;
        conn.used += 1;
        // The head is borrowed for the whole try: no copy of the method.
        let client_head = request.head;
        // The thread's write buffer, given back once the head is written (the
        // response's head takes it later): no allocation per request.
        let mut head = crate::spare::take_write();
        let chunked = write_request_head(&mut head, &request);
        let body = request.body;
        let reading = HeadReading {
            method: &client_head.method,
            interim: connector.interim,
        };
        let exchanged = if body.is_end_stream() {
            exchange_head_only(conn, head, &reading).await
        } else {
            Box::pin(exchange_with_body(conn, head, body, chunked, &reading)).await
        };
        let (response_head, wire, body_sent) = exchanged.map_err(|err| err.into_engine(reused))?;
        let switched = response_head.status() == http::StatusCode::SWITCHING_PROTOCOLS;
        // Looked up only for a 101: most responses are not one.
        if switched && client_head.headers.contains(&http::header::UPGRADE) {
            let mut response = Response::from_parts(response_head.to_parts(0)?, ());
            if let Wire::Whole(conn) = wire {
                let slot = Arc::new(std::sync::Mutex::new(Some(conn)));
                response.extensions_mut().insert(UpgradedBackend(slot));
            }
            return Ok(response.map(|()| EngineResponseBody::Done(None)));
        }
        response_after(
            service,
            authority,
            request.sent_at,
            connector.raw_heads,
            response_head,
            wire,
            body_sent,
        )
    }
}

/// The response for the pipeline from a backend's head (not an accepted
/// upgrade's): its head raw or as a map, and its body whole in the raw
/// head, or to be read from `wire`.
fn response_after(
    service: &ServiceRuntime,
    authority: &http::uri::Authority,
    sent_at: tokio::time::Instant,
    raw_heads: bool,
    response_head: ResponseHead,
    wire: Wire,
    body_sent: bool,
) -> Result<Response<EngineResponseBody>, EngineError> {
    let switched = response_head.status() == http::StatusCode::SWITCHING_PROTOCOLS;
    let ResponseHead {
        raw,
        framing,
        closes,
    } = response_head;
    // A `101` nobody asked for still goes on as a map: the pipeline's
    // upgrade handling reads maps.
    let (parts, raw) = if raw_heads && !switched {
        (bare_parts(&raw), Some(raw))
    } else {
        let head = ResponseHead {
            raw,
            framing,
            closes,
        };
        let parts = head.to_parts(2);
        // Its box goes back to the thread's kept heads.
        head.raw.recycle();
        (parts?, None)
    };
    // After a 101 the connection speaks another protocol, asked or not.
    let reusable = body_sent && !closes && !switched;
    let (wire, raw) = match (wire, raw) {
        (Wire::Whole(mut conn), Some(mut raw)) if is_whole(&conn, framing) => {
            // All of the body came with the head: it travels in the raw
            // head and the connection is done with now. A body stream cost
            // about 500 instructions a response (callgrind).
            raw.set_whole_body(conn.buf.split().freeze());
            if reusable {
                service
                    .pool
                    .put_idle_since(authority.as_str(), conn, sent_at);
            }
            return Ok(Response::from_parts(
                parts,
                EngineResponseBody::Done(Some(raw)),
            ));
        }
        kept => kept,
    };
    let return_to = ReturnTo {
        pool: service.pool.clone(),
        authority: authority.clone(),
        reusable,
    };
    let body = BackendBody::new(wire, framing, return_to);
    Ok(Response::from_parts(
        parts,
        EngineResponseBody::Own(Box::new(OwnBody { body, raw })),
    ))
}

/// Whether the bytes read after the head are exactly the body its length
/// says: nothing more to read, and nothing after it.
fn is_whole(conn: &BackendConn, framing: ResponseFraming) -> bool {
    matches!(framing, ResponseFraming::Length(n) if conn.buf.len() as u64 == n)
}

/// Status and version without fields: the fields travel in the raw head.
fn bare_parts(raw: &RawResponseHead) -> http::response::Parts {
    let (mut parts, ()) = Response::new(()).into_parts();
    parts.status = raw.status;
    parts.version = raw.version;
    parts
}

/// A failed exchange, and whether any byte of an answer came.
struct Failed {
    kind: ReadError,
    got_bytes: bool,
}

impl Failed {
    fn into_engine(self, reused: bool) -> EngineError {
        match self.kind {
            ReadError::Io(err) => io_error(err, reused, self.got_bytes),
            // On a pooled connection, a close before a whole head is the
            // idle close racing the request (hyper's incomplete message).
            ReadError::Eof if !self.got_bytes || reused => EngineError::ClosedBeforeAnswer,
            ReadError::Eof => EngineError::Io(io::ErrorKind::UnexpectedEof.into()),
            ReadError::Bad(bad) => EngineError::BadResponse(bad),
            ReadError::Body(err) => EngineError::RequestBody(err),
        }
    }
}

type Exchanged = Result<(ResponseHead, Wire, bool), Failed>;

/// A request without a body: write the head, read the response head.
async fn exchange_head_only(
    mut conn: BackendConn,
    head: Vec<u8>,
    reading: &HeadReading<'_>,
) -> Exchanged {
    let mut got_bytes = false;
    let failed = |kind, got_bytes| Failed { kind, got_bytes };
    let wrote = match super::quick_io::write_now(&mut conn.stream, &head) {
        Ok(at_once) if at_once < head.len() => conn.stream.write_all(&head[at_once..]).await,
        done => done.map(drop),
    };
    crate::spare::give_back_write(head);
    if let Err(err) = wrote {
        return Err(failed(ReadError::Io(err), false));
    }
    // The answer is awaited before a read buffer is taken: the first read
    // would otherwise find nothing, and lend a block only to give it back.
    if conn.buf.is_empty() {
        // The first poll registers for the answer; the wake-up after it is
        // taken as the answer's arrival, since a second readiness poll cost
        // about as much as the read (callgrind). A wake-up from elsewhere
        // (the try's timer) finds nothing to read, and the read then waits
        // for the reactor as this did.
        let mut registered = false;
        let ready = poll_fn(|cx| {
            if std::mem::replace(&mut registered, true) {
                return Poll::Ready(Ok(()));
            }
            conn.stream.poll_read_ready(cx)
        })
        .await;
        ready.map_err(|err| failed(ReadError::Io(err), false))?;
    }
    match read_head(&mut conn.stream, &mut conn.buf, reading, &mut got_bytes).await {
        Ok(response) => Ok((response, Wire::Whole(conn), true)),
        Err(kind) => Err(failed(kind, got_bytes)),
    }
}

/// A request with a body: the body is sent while the response head is
/// awaited. A response that comes first is relayed while the rest of the
/// body still goes up (`Wire::Split`); the connection is then not reused.
async fn exchange_with_body(
    conn: BackendConn,
    head: Vec<u8>,
    body: ProxyBody,
    chunked: bool,
    reading: &HeadReading<'_>,
) -> Exchanged {
    let BackendConn {
        stream,
        mut buf,
        used,
    } = conn;
    let (mut read, mut write) = stream.into_split();
    let mut got_bytes = false;
    let failed = |kind, got_bytes| Failed { kind, got_bytes };
    let wrote = write.write_all(&head).await;
    crate::spare::give_back_write(head);
    if let Err(err) = wrote {
        return Err(failed(ReadError::Io(err), false));
    }
    let mut upload: Upload = Box::pin(async move {
        send_body(&mut write, body, chunked).await?;
        Ok(write)
    });
    let early = tokio::select! {
        biased;
        response = read_head(&mut read, &mut buf, reading, &mut got_bytes) => Some(response),
        sent = &mut upload => match sent {
            Ok(write) => {
                let response = read_head(&mut read, &mut buf, reading, &mut got_bytes).await;
                let response = response.map_err(|kind| failed(kind, got_bytes))?;
                let stream = read.reunite(write).map_err(|_| failed(ReadError::Eof, got_bytes))?;
                let conn = BackendConn { stream, buf, used };
                return Ok((response, Wire::Whole(conn), true));
            }
            Err(err) => return Err(failed(ReadError::Body(err), got_bytes)),
        },
    };
    match early {
        Some(Ok(response)) => {
            let wire = Wire::Split {
                read,
                buf,
                upload: Some(std::sync::Mutex::new(upload)),
                write: None,
            };
            Ok((response, wire, false))
        }
        Some(Err(kind)) => Err(failed(kind, got_bytes)),
        None => Err(failed(ReadError::Eof, got_bytes)),
    }
}

async fn connect(
    authority: &str,
    timeout: std::time::Duration,
) -> Result<BackendConn, EngineError> {
    let connecting = TcpStream::connect(authority);
    let stream = match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => return Err(EngineError::Connect(err)),
        Err(_) => return Err(EngineError::ConnectTimeout),
    };
    let _ = stream.set_nodelay(true);
    Ok(BackendConn {
        stream,
        buf: bytes::BytesMut::new(),
        used: 0,
    })
}

/// Writes the request line and fields: the try's Host first (RFC 9112 §3.2),
/// the client's edited fields, then the forwarded set. Returns whether the
/// body goes chunked.
fn write_request_head(out: &mut Vec<u8>, request: &TryRequest<'_>) -> bool {
    let (parts, body) = (request.head, &request.body);
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    request.target.write_path_and_query(out);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    if let TryHost::Backend(host) = request.host {
        super::respond::write_field(out, "host", host.as_bytes());
    }
    let client_host = request.host.keeps_client();
    let mut has_length = false;
    for (name, value) in parts.headers.iter() {
        if name == b"transfer-encoding" || (name == b"host" && !client_host) {
            continue;
        }
        has_length |= name == b"content-length";
        super::respond::write_field(out, name, value);
    }
    request.forwarded.write_h1(out);
    let mut chunked = false;
    if !has_length {
        match body.size_hint().exact() {
            Some(0) if body.is_end_stream() && !sends_empty_length(&parts.method) => {}
            Some(n) => super::respond::write_length(out, n),
            None => {
                out.extend_from_slice(b"transfer-encoding: chunked\r\n");
                chunked = true;
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    chunked
}

/// Methods whose empty body is still announced with `content-length: 0`.
fn sends_empty_length(method: &Method) -> bool {
    matches!(*method, Method::POST | Method::PUT | Method::PATCH)
}

/// A failed read or write: on a reused connection with no answer yet, the
/// backend closed it while it was idle.
fn io_error(err: io::Error, reused: bool, got_bytes: bool) -> EngineError {
    use io::ErrorKind::*;
    let closed = matches!(
        err.kind(),
        ConnectionReset | BrokenPipe | ConnectionAborted | UnexpectedEof
    );
    if closed && !got_bytes && reused {
        EngineError::ClosedBeforeAnswer
    } else {
        EngineError::Io(err)
    }
}

enum ReadError {
    Io(io::Error),
    Eof,
    Bad(BadResponse),
    /// The client's request body failed (too slow, cut, malformed).
    Body(BoxError),
}

/// What reading a response head needs besides the bytes.
struct HeadReading<'a> {
    /// The request's method (a HEAD answer has no body).
    method: &'a Method,
    /// Where interim responses go when the client takes them.
    interim: Option<&'a InterimHeads>,
}

/// Reads until a final response head. Interim 1xx heads (other than 101)
/// are checked like any head, counted against their bounds, and queued for
/// the client when it takes them (`super::interim`).
async fn read_head<R: super::quick_io::QuickRead>(
    reader: &mut R,
    buf: &mut bytes::BytesMut,
    reading: &HeadReading<'_>,
    got_bytes: &mut bool,
) -> Result<ResponseHead, ReadError> {
    let mut interim = InterimCount::default();
    loop {
        if !buf.is_empty() {
            let before = buf.len();
            if let Some(head) = parse_response(buf, reading.method).map_err(ReadError::Bad)? {
                let status = head.status();
                if !status.is_informational() || status == http::StatusCode::SWITCHING_PROTOCOLS {
                    return Ok(head);
                }
                interim.count(before - buf.len()).map_err(ReadError::Bad)?;
                match reading.interim {
                    Some(heads) if is_relayed(status) => {
                        heads.push(head.to_parts(0).map_err(ReadError::Bad)?)
                    }
                    _ => {}
                }
                continue;
            }
        }
        let more = poll_fn(|cx| read_more(reader, buf, HEAD_READ, cx))
            .await
            .map_err(ReadError::Io)?;
        if !more {
            return Err(ReadError::Eof);
        }
        *got_bytes = true;
    }
}

/// Writes the request body, chunk-framed when `chunked`. Trailers are not
/// sent (PRODUCT.md §9). Errors are the body's own or the write's.
async fn send_body<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut W,
    mut body: ProxyBody,
    chunked: bool,
) -> Result<(), BoxError> {
    use http_body_util::BodyExt;
    while let Some(frame) = body.frame().await {
        let Ok(mut data) = frame?.into_data() else {
            continue;
        };
        if !data.has_remaining() {
            continue;
        }
        if chunked {
            let size = ChunkSizeLine::new(data.len());
            writer.write_all(size.as_bytes()).await?;
        }
        writer.write_all_buf(&mut data).await?;
        if chunked {
            writer.write_all(b"\r\n").await?;
        }
    }
    if chunked {
        writer.write_all(b"0\r\n\r\n").await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future an `async fn` of `send`'s signature returns.
    fn try_future_size<'a, F>(
        _: fn(&'a ServiceRuntime, TryRequest<'a>, ConnectionChoice, &'a OwnConnector<'a>) -> F,
    ) -> usize {
        std::mem::size_of::<F>()
    }

    /// Every try's box (`OwnConnector::send`) stays within mimalloc's
    /// small-object fast path, 1 KiB: 16 bytes over it cost about 170
    /// instructions per request (callgrind, issue 13, ninth session).
    #[test]
    fn the_try_future_is_bounded() {
        let size = try_future_size(send);
        eprintln!("try future: {size} bytes");
        assert!(size <= 1024, "{size} bytes");
    }

    async fn read_from(
        bytes: &[u8],
        interim: Option<&InterimHeads>,
    ) -> Result<ResponseHead, ReadError> {
        let mut reader = bytes;
        let mut buf = bytes::BytesMut::new();
        let reading = HeadReading {
            method: &Method::GET,
            interim,
        };
        read_head(&mut reader, &mut buf, &reading, &mut false).await
    }

    const FINAL: &str = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

    #[tokio::test]
    async fn interim_heads_are_queued_but_not_the_100() {
        let heads = InterimHeads::default();
        let bytes = format!(
            "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n{FINAL}"
        );
        let head = read_from(bytes.as_bytes(), Some(&heads))
            .await
            .ok()
            .unwrap();
        assert_eq!(head.status(), 200);
        let queued = String::from_utf8(heads.take()).unwrap();
        assert_eq!(queued, "HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n");
    }

    #[tokio::test]
    async fn without_a_client_that_takes_them_interim_heads_are_skipped() {
        let bytes = format!("HTTP/1.1 102 Processing\r\n\r\n{FINAL}");
        let head = read_from(bytes.as_bytes(), None).await.ok().unwrap();
        assert_eq!(head.status(), 200);
    }

    #[tokio::test]
    async fn a_101_is_final_and_a_33rd_interim_head_or_a_bad_one_refused() {
        let switching = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        let head = read_from(switching.as_bytes(), None).await.ok().unwrap();
        assert_eq!(head.status(), 101);
        let heads = InterimHeads::default();
        let too_many = format!("{}{FINAL}", "HTTP/1.1 100 Continue\r\n\r\n".repeat(33));
        let refused = read_from(too_many.as_bytes(), Some(&heads)).await;
        assert!(matches!(refused, Err(ReadError::Bad(_))));
        let most = format!("{}{FINAL}", "HTTP/1.1 100 Continue\r\n\r\n".repeat(32));
        assert!(read_from(most.as_bytes(), Some(&heads)).await.is_ok());
        let big = format!(
            "HTTP/1.1 103 Early Hints\r\nLink: {}\r\n\r\n",
            "x".repeat(30_000)
        );
        let too_big = format!("{}{FINAL}", big.repeat(3));
        let refused = read_from(too_big.as_bytes(), Some(&heads)).await;
        assert!(matches!(refused, Err(ReadError::Bad(_))), "over 64 KiB");
        let bare_lf = format!("HTTP/1.1 103 Early Hints\nLink: </a>\n\n{FINAL}");
        let refused = read_from(bare_lf.as_bytes(), Some(&heads)).await;
        assert!(matches!(refused, Err(ReadError::Bad(_))), "bare LF");
    }
}
