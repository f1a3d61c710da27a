//! One HTTP/1.1 client connection on the own engine: read a head, serve it
//! through the pipeline while the body is pumped, write the response, and go
//! on with the next head (pipelined bytes are already in the buffer). A
//! connection waiting for its next request holds no buffer, and a plain one
//! quiet for [`QUIET_BEFORE_PARKING`] leaves its task for the listener's
//! parking lot (`listener::lot`), which gives it a fresh task when its next
//! bytes arrive.

use std::future::{poll_fn, Future};
use std::io;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::HeaderValue;
use http::{Method, Response, StatusCode};
use std::pin::Pin;
use tokio::io::{AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use tokio::time::{Instant, Sleep};

use super::backend::{OwnConnector, UpgradedBackend};
use super::build_boxed;
use super::head::{closes_after_seen, parse_request, RequestHead, RequestHeadError};
use super::interim::InterimHeads;
use super::quick_io::{QuickRead, QuickWrite};
use super::request_body::{request_body, BodyPump};
use super::respond::{finish_response, start_response, write_response, Answering, Started};
use super::response_body::{read_more, HEAD_READ};
use crate::backend_pool::BackendConn;
use crate::error::json_error;
use crate::h1gate::{GateStatus, Violation};
use crate::http::{strict, ClientContext};
use crate::pipeline::{self, ClientRequest, ClientUpgrade};
use crate::preface::{detect, Detected, PREFACE};
use crate::read_ahead::ReadAhead;
use crate::routing::Gateway;
use crate::spare;

/// How long a plain keep-alive connection waits for its next request in its
/// own task before it is parked. Under load a connection waits well under a
/// millisecond between requests (a few under callgrind), and a browser sends
/// a page's requests within a few milliseconds of each other; a connection
/// quiet for 50 ms is between pages or done. Parking and resuming cost four
/// `epoll_ctl` calls and a task spawn (a few microseconds, at most once per
/// request), and memory freed by parking is only reused, not given back to
/// the system, so parking late costs memory: 5,000 connections opened in
/// half a second held 320-440 bytes each parked after 50 ms, 510-550 after
/// 100 ms and 890-1,350 after 250 ms (docs/benchmarks.md). The hyper path
/// parks after 10-20 ms.
pub const QUIET_BEFORE_PARKING: Duration = Duration::from_millis(50);

/// A client stream the engine can serve.
pub(crate) trait EngineIo: QuickRead + QuickWrite + Send + 'static {
    /// Ready when a read would not wait, without reading: a connection
    /// between requests waits here with no buffer. Streams that cannot tell
    /// (TLS, whose records are decrypted ahead) say ready at once.
    fn poll_idle(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// What the first bytes say (HTTP/1.1 or the HTTP/2 preface), before
    /// `timer` fires. Streams whose protocol is already known (TLS, after
    /// ALPN or the same check during the handshake) are HTTP/1.1 at once.
    fn detect(&mut self, _timer: Pin<&mut Sleep>) -> impl Future<Output = Detected> + Send {
        std::future::ready(Detected::Http1(Bytes::new()))
    }

    /// Whether an idle connection on this stream may leave its task for the
    /// listener's parking lot: only a plain socket can be watched there.
    const PARKS: bool = false;

    /// The plain socket, for the parking lot (asked only when `PARKS`).
    fn into_tcp(self) -> Option<TcpStream>
    where
        Self: Sized,
    {
        None
    }
}

impl EngineIo for TcpStream {
    const PARKS: bool = true;

    fn into_tcp(self) -> Option<TcpStream> {
        Some(self)
    }

    fn poll_idle(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }

    /// Looks without consuming (so HTTP/1.1 bytes stay for the engine's
    /// buffer); only a start that matches the preface is read, by
    /// `listener::detect`, boxed. Polled by hand on the connection's own
    /// head timer: `peek` and `timeout` futures would make this the largest
    /// state of every plain connection's task.
    async fn detect(&mut self, mut timer: Pin<&mut Sleep>) -> Detected {
        let mut first = [0u8; PREFACE.len()];
        let mut peeked = ReadBuf::new(&mut first);
        let ready = poll_fn(|cx| match self.poll_peek(cx, &mut peeked) {
            Poll::Ready(result) => Poll::Ready(result.ok()),
            Poll::Pending => timer.as_mut().poll(cx).map(|()| None),
        })
        .await;
        let read = peeked.filled();
        match ready {
            None | Some(0) => Detected::Closed,
            Some(_) if read != &PREFACE[..read.len()] => Detected::Http1(Bytes::new()),
            Some(_) => Box::pin(detect(self, timer.deadline())).await,
        }
    }
}

/// TLS, with the bytes the handshake's protocol check read.
impl EngineIo for ReadAhead<tokio_rustls::server::TlsStream<TcpStream>> {}

/// The listener's side of an engine connection: the shared setup, HTTP/2
/// for a connection that starts with the preface, and whatever the
/// connection holds until it ends (its connection slot). The engine's future
/// owns it, so a connection's task holds nothing else of the listener.
pub(crate) trait EngineHost: Send + Sync {
    fn setup(&self) -> &EngineSetup;

    /// Serves a connection whose first bytes were the HTTP/2 preface
    /// (`read`, consumed).
    fn serve_h2<I: EngineIo>(
        &self,
        io: I,
        read: Bytes,
        peer: IpAddr,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;

    /// Takes an idle connection (no byte buffered, none readable) into the
    /// parking lot until its next bytes, `deadline` or shutdown; the
    /// connection's task ends. A lot that cannot take it closes it, as a
    /// server may close any idle keep-alive connection.
    fn park(self, stream: TcpStream, _peer: IpAddr, _deadline: Instant)
    where
        Self: Sized,
    {
        drop(stream);
    }
}

/// How a connection's task begins.
#[derive(Clone, Copy)]
pub(crate) enum Start {
    /// Just accepted: the first bytes decide between HTTP/1.1 and HTTP/2.
    Accepted,
    /// Back from the parking lot, readable: HTTP/1.1, and the wait for its
    /// head keeps the deadline it had when it was parked, so parking never
    /// lengthens the idle limit.
    Resumed(Instant),
}

/// What every connection of one listener shares; each connection borrows
/// it, so none holds a copy of it while it idles.
pub struct EngineSetup {
    gateway: Arc<Gateway>,
    /// Longest wait for a request head (and between requests).
    header_timeout: Duration,
    local_port: u16,
    /// The local port as a header value, built once for all connections.
    local_port_header: Arc<HeaderValue>,
    tls: bool,
    stopping: Stopping,
    /// Idle plain connections leave their tasks for the listener's parking
    /// lot (see [`EngineSetup::parking`]).
    parks: bool,
}

impl EngineSetup {
    pub fn new(
        gateway: Arc<Gateway>,
        header_timeout: Duration,
        local_port: u16,
        tls: bool,
    ) -> Self {
        EngineSetup {
            gateway,
            header_timeout,
            local_port,
            local_port_header: Arc::new(HeaderValue::from(local_port)),
            tls,
            stopping: Stopping::default(),
            parks: false,
        }
    }

    /// Lets idle plain connections be parked, when the listener has a
    /// parking lot (its host's `park` takes them) and the quiet limit comes
    /// before the header timeout.
    pub(crate) fn parking(mut self, lot: bool) -> Self {
        self.parks = lot && QUIET_BEFORE_PARKING < self.header_timeout;
        self
    }

    /// Shutdown as this listener's connections see it.
    pub fn stopping(&self) -> &Stopping {
        &self.stopping
    }

    /// What the pipeline knows about a client of this listener.
    pub fn client_context(&self, peer: IpAddr) -> ClientContext {
        ClientContext::with_port_header(
            peer,
            self.local_port,
            self.local_port_header.clone(),
            self.tls,
        )
    }
}

/// Shutdown for the engine's connections: a flag checked after each
/// response, and a wake-up for the connections waiting for their next
/// request. One per listener, so an idle connection holds no receiver of its
/// own, only a waiter in the listener's list while it waits.
#[derive(Default)]
pub struct Stopping {
    /// `RUNNING`, `GENTLY` or `NOW`.
    state: AtomicU8,
    wake: Notify,
}

const RUNNING: u8 = 0;
/// Responses say `Connection: close`, but a connection whose last response
/// promised keep-alive stays open for its next request (answered with
/// close): closing it while idle races a request the client may be sending.
const GENTLY: u8 = 1;
/// Idle connections end at once, the others after their current response.
const NOW: u8 = 2;

impl Stopping {
    /// Ends every idle connection and every connection after its current
    /// response.
    pub fn begin(&self) {
        self.state.store(NOW, Ordering::SeqCst);
        self.wake.notify_waiters();
    }

    /// Ends every connection after its next response, which says so; idle
    /// connections wait for that request (or their idle limit). For a hot
    /// restart, where a new process serves the clients that come back.
    pub fn begin_gently(&self) {
        let _ = self
            .state
            .compare_exchange(RUNNING, GENTLY, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Whether responses now say `Connection: close`.
    pub fn has_begun(&self) -> bool {
        self.state.load(Ordering::SeqCst) != RUNNING
    }

    /// Whether connections end without waiting for another request.
    fn ends_kept_alive(&self) -> bool {
        self.state.load(Ordering::SeqCst) == NOW
    }
}

/// Serves `io` from `peer` until the client closes it, an error or a
/// refusal ends it, it waits past the header timeout, or shutdown. This is
/// the whole of a plain connection's task: what it holds while the
/// connection waits for its next request is what an idle connection costs.
pub(crate) async fn serve<I: EngineIo, H: EngineHost>(
    mut io: I,
    host: H,
    peer: IpAddr,
    start: Start,
) {
    let setup = host.setup();
    // One timer for the connection's life, moved later for each head:
    // pushing a deadline later is an atomic update, where a new timer per
    // request is a timer-wheel insert and removal. Part of this future, not
    // boxed: an allocation of its own would cost an idle connection more.
    // It bounds the wait for the first bytes too; a resumed connection's
    // first head keeps the deadline it was parked with (only the byte
    // `timer_holds` lives on, not `start`).
    let (deadline, mut timer_holds) = match start {
        Start::Accepted => (Instant::now() + setup.header_timeout, TimerHolds::Deadline),
        Start::Resumed(deadline) => (deadline, TimerHolds::KeptDeadline),
    };
    let head_timer = tokio::time::sleep_until(deadline);
    tokio::pin!(head_timer);
    // The connection borrows the stream: moved into it, the stream would
    // keep its room in this future twice. The first bytes are matched
    // straight into the buffer, for the same reason.
    let mut conn = Conn {
        buf: match timer_holds {
            // Back from the lot: known to be HTTP/1.1.
            TimerHolds::KeptDeadline => BytesMut::new(),
            _ => match io.detect(head_timer.as_mut()).await {
                Detected::Http1(read_ahead) => BytesMut::from(&read_ahead[..]),
                Detected::Http2(read) => return host.serve_h2(io, read, peer).await,
                Detected::Closed => return,
            },
        },
        io: &mut io,
    };
    // Built with the first head: a connection that never sends one does
    // not pay for it.
    let mut client: Option<Box<ClientContext>> = None;
    let mut refused = None;
    loop {
        // The head is consumed inside this block, and only the boxed
        // request state lives on across the await below: a value still in
        // scope at an await (even moved out) keeps its room in this future,
        // so no await may happen while the match holds the head.
        let serving = match conn
            .next_head(setup, head_timer.as_mut(), timer_holds)
            .await
        {
            NextHead::Head(head) => {
                // Only a resumed connection's first head keeps its deadline.
                timer_holds = TimerHolds::Deadline;
                let client = client.get_or_insert_with(|| Box::new(setup.client_context(peer)));
                // Boxed, like the tunnel: the state of a request in flight
                // is allocated per request, so a connection between requests
                // is only the small loop state.
                build_boxed(|| conn.serve_request(head, setup, client))
            }
            NextHead::End => break,
            NextHead::Refused(err) => {
                refused = Some(err);
                break;
            }
            // Shutdown began while it was quiet (see `wait_idle`): closed
            // now rather than parked.
            NextHead::Park if setup.stopping.ends_kept_alive() => break,
            NextHead::Park => {
                // The quiet limit fired: the head's own deadline is the
                // header timeout after the wait began.
                let waited_since = head_timer.deadline() - QUIET_BEFORE_PARKING;
                let deadline = waited_since + setup.header_timeout;
                return park(io, host, peer, deadline);
            }
        };
        match serving.await {
            After::KeepAlive if !setup.stopping.ends_kept_alive() => {}
            After::KeepAlive | After::Close => break,
            After::Tunnel(backend, idle) => {
                let tunnel = Box::pin(conn.tunnel(backend, idle));
                return tunnel.await;
            }
        }
    }
    if let Some(err) = refused {
        let refusing = Box::pin(conn.refuse_head(err));
        refusing.await;
    }
    let _ = io.shutdown().await;
}

/// Hands an idle connection to its host's parking lot; its task ends.
fn park<I: EngineIo, H: EngineHost>(io: I, host: H, peer: IpAddr, deadline: Instant) {
    if let Some(stream) = io.into_tcp() {
        host.park(stream, peer, deadline);
    }
}

struct Conn<'a, I> {
    io: &'a mut I,
    /// Bytes read and not yet used; empty (no allocation) between requests.
    buf: BytesMut,
}

/// The head timer's meaning. One timer for both limits: moved later by
/// every request it costs an atomic update, where setting it earlier would
/// take the timer wheel's lock every time.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TimerHolds {
    /// The head's deadline.
    Deadline,
    /// A resumed connection's deadline, kept for its first head.
    KeptDeadline,
    /// The quiet limit: the wait's start plus `QUIET_BEFORE_PARKING`.
    QuietLimit,
}

// The head is moved out at once, once per request: boxing it would cost an
// allocation per request to save stack space nobody holds on to.
#[allow(clippy::large_enum_variant)]
enum NextHead {
    Head(RequestHead),
    /// Closed, timed out, or shutting down: end quietly.
    End,
    Refused(RequestHeadError),
    /// Quiet past the limit with nothing buffered: to the parking lot.
    Park,
}

/// How an idle wait ended.
enum Idle {
    /// Bytes (or the end of the stream) to read.
    Readable,
    /// Shutting down, or an error.
    End,
    /// The head timer fired: the quiet limit or the deadline.
    TimerFired,
}

enum After {
    KeepAlive,
    Close,
    /// A `101` went out: the connection is a tunnel to this backend now.
    Tunnel(BackendConn, Duration),
}

impl<'c, I: EngineIo> Conn<'c, I> {
    /// Reads until a whole head is buffered. `holds`: what `timer` was set
    /// to (`KeptDeadline` for a resumed connection's first head). Passed in,
    /// not a field of `Conn`: a byte there costs every task a 128-byte step.
    async fn next_head(
        &mut self,
        setup: &EngineSetup,
        mut timer: Pin<&mut Sleep>,
        mut holds: TimerHolds,
    ) -> NextHead {
        // Whether this connection leaves its task when quiet (see `serve`).
        let parks = I::PARKS && setup.parks;
        holds = match (holds, parks) {
            (TimerHolds::KeptDeadline, _) => TimerHolds::Deadline,
            (_, true) => {
                timer.as_mut().reset(Instant::now() + QUIET_BEFORE_PARKING);
                TimerHolds::QuietLimit
            }
            (_, false) => {
                timer.as_mut().reset(Instant::now() + setup.header_timeout);
                TimerHolds::Deadline
            }
        };
        loop {
            if !self.buf.is_empty() {
                match parse_request(&mut self.buf) {
                    Ok(Some(head)) => return NextHead::Head(head),
                    Ok(None) => {}
                    Err(err) => return NextHead::Refused(err),
                }
            } else {
                let quiet_limit = holds == TimerHolds::QuietLimit;
                match self.wait_idle(setup, timer.as_mut(), quiet_limit).await {
                    Idle::Readable => {}
                    Idle::End => return NextHead::End,
                    // Quiet past the limit with nothing buffered: parked
                    // (only connections that park watch the quiet limit).
                    Idle::TimerFired if holds == TimerHolds::QuietLimit => return NextHead::Park,
                    Idle::TimerFired => return NextHead::End,
                }
            }
            // By hand rather than `select!`: no random branch order drawn
            // per read, and the timer is checked again after the quiet limit.
            let more = poll_fn(|cx| {
                if let Poll::Ready(more) = read_more(&mut *self.io, &mut self.buf, HEAD_READ, cx) {
                    return Poll::Ready(more.unwrap_or(false));
                }
                while timer.as_mut().poll(cx).is_ready() {
                    // A head arriving slowly past the quiet limit: from now
                    // on the timer is its deadline.
                    if !head_deadline_from_quiet(&mut holds, setup, timer.as_mut()) {
                        return Poll::Ready(false);
                    }
                }
                Poll::Pending
            })
            .await;
            if !more {
                return NextHead::End;
            }
        }
    }

    /// Waits, with no buffer held, until the next request's bytes arrive,
    /// or until the connection has been quiet long enough to be parked.
    /// `quiet_limit`: the timer fires after [`QUIET_BEFORE_PARKING`], and
    /// shutdown is then seen when it fires (at most that late: the
    /// connection is closed instead of parked) rather than through the
    /// listener's waiter list, whose lock and list insertion and removal
    /// cost about 370 instructions per wait (callgrind), paid by nearly
    /// every request under load.
    async fn wait_idle(
        &mut self,
        setup: &EngineSetup,
        mut timer: Pin<&mut Sleep>,
        quiet_limit: bool,
    ) -> Idle {
        if quiet_limit {
            if setup.stopping.ends_kept_alive() {
                return Idle::End;
            }
            // The first poll registers with the reactor as it looks: one
            // readiness check per wait rather than a look and then a wait.
            let mut idle = false;
            return poll_fn(|cx| {
                if let Poll::Ready(ready) = self.io.poll_idle(cx) {
                    return Poll::Ready(readable_or_end(ready));
                }
                if !idle {
                    // Really idle: give the buffers back.
                    idle = true;
                    spare::give_back_read(std::mem::take(&mut self.buf));
                }
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Idle::TimerFired),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
        }
        let now = {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            self.io.poll_idle(&mut cx)
        };
        if let Poll::Ready(ready) = now {
            return readable_or_end(ready);
        }
        // Really idle: give the buffers back.
        spare::give_back_read(std::mem::take(&mut self.buf));
        let stopping = setup.stopping.wake.notified();
        tokio::pin!(stopping);
        // Listed as a waiter before the flag is read, so a `begin` between
        // the two still wakes this connection.
        stopping.as_mut().enable();
        if setup.stopping.ends_kept_alive() {
            return Idle::End;
        }
        // One poll by hand rather than `select!`: the shutdown waiter is the
        // only state it keeps, and no random branch order is drawn.
        poll_fn(|cx| {
            if let Poll::Ready(ready) = self.io.poll_idle(cx) {
                return Poll::Ready(readable_or_end(ready));
            }
            if stopping.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Idle::End);
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Idle::TimerFired);
            }
            Poll::Pending
        })
        .await
    }

    /// Serves one request. Its head is taken apart before the future
    /// exists: held in it, the head kept its room there for the whole
    /// request and was copied into it (callgrind: memcpy).
    fn serve_request<'s>(
        &'s mut self,
        head: RequestHead,
        setup: &'s EngineSetup,
        client: &'s ClientContext,
    ) -> impl std::future::Future<Output = After> + use<'s, 'c, I> {
        let RequestHead {
            parts,
            framing,
            expects_continue,
            seen,
            hosts,
        } = head;
        let http10 = framing.http10;
        let head_request = parts.method == Method::HEAD;
        let client_closes = closes_after_seen(parts.version, &parts.headers, seen.connection);
        // A map only for a head with an Upgrade field, which is rare.
        let upgrade = (seen.upgrade
            && strict::is_websocket_upgrade(
                &parts.method,
                parts.version,
                &parts.headers.to_map(0),
            ))
        .then(EngineUpgrade::default);
        let tunnel_slot = upgrade.as_ref().map(|u| u.slot.clone());
        let (body, mut pump) = request_body(framing.body, expects_continue && !http10);
        let request = ClientRequest {
            head: parts,
            hosts,
            body,
            upgrade,
            may_upgrade: seen.upgrade,
        };
        async move {
            // 1xx heads of the tries, written before the final one (never
            // to an HTTP/1.0 client).
            let interim = InterimHeads::default();
            let connector = OwnConnector::relaying((!http10).then_some(&interim));
            let mut serving =
                build_boxed(|| pipeline::serve_raw(&setup.gateway, client, request, &connector));
            let response = interim
                .serve_beside(&mut serving, pump.as_mut(), &mut *self.io, &mut self.buf)
                .await;
            drop(serving);
            if let Some(violation) = pump.as_ref().and_then(|p| p.violation) {
                // As the hyper path answers a body the gate refused: through
                // the request path, so with a Date. Boxed: rare, and its
                // state would size every request's box.
                Box::pin(self.refuse(StatusCode::BAD_REQUEST, violation.reason())).await;
                return After::Close;
            }
            let body_read = pump.as_ref().is_none_or(BodyPump::complete);
            let answering = Answering {
                head_request,
                http10,
                close: client_closes || !body_read || setup.stopping.has_begun(),
            };
            let pump = pump.filter(|p| !p.done());
            self.answer(response, answering, tunnel_slot, pump).await
        }
    }

    /// Answers a head the §9 rules refuse, in the very bytes the hyper
    /// path's framing gate writes (PRODUCT.md §3 JSON body, no Date).
    async fn refuse_head(&mut self, err: RequestHeadError) {
        let violation = match err {
            RequestHeadError::Violation(v) => v,
            RequestHeadError::TooLarge => Violation::HeadTooLarge,
            RequestHeadError::TooManyFields => {
                return self.refuse(err.status(), err.reason()).await;
            }
        };
        let _ = self.io.write_all(&GateStatus::response(violation)).await;
    }

    /// Answers a request the §9 rules refuse (JSON body naming the rule);
    /// the connection closes after it.
    async fn refuse(&mut self, status: StatusCode, reason: &'static str) {
        let answering = Answering {
            head_request: false,
            http10: false,
            close: true,
        };
        let response = json_error(status, reason);
        let _ = write_response(&mut *self.io, &mut Vec::new(), response.into(), answering).await;
    }

    /// Writes the response; a body still arriving is pumped beside it. The
    /// head is written into the buffer before the future exists: the
    /// response is not held in it (see `start_response`).
    fn answer<'s>(
        &'s mut self,
        response: crate::http::ProxyResponse,
        answering: Answering,
        tunnel_slot: Option<TunnelSlot>,
        pump: Option<BodyPump>,
    ) -> impl std::future::Future<Output = After> + use<'s, 'c, I> {
        // The response's bytes: a buffer of the thread's, so a connection
        // between requests holds none and a request allocates none.
        let mut out = spare::take_write();
        let started = start_response(&mut out, response, answering);
        async move {
            let written = match pump {
                None => finish_response(&mut *self.io, &mut out, started).await,
                // Boxed: a body still arriving is rare, and this state was
                // most of the request's box (1,472 of 2,264 bytes).
                Some(pump) => Box::pin(self.write_beside(&mut out, started, pump)).await,
            };
            spare::give_back_write(out);
            let Ok(written) = written else {
                return After::Close;
            };
            if written.status == http::StatusCode::SWITCHING_PROTOCOLS {
                let pending = tunnel_slot.and_then(|slot| lock(&slot).take());
                return match pending {
                    Some((backend, idle)) => After::Tunnel(backend, idle),
                    None => After::Close,
                };
            }
            if written.close {
                After::Close
            } else {
                After::KeepAlive
            }
        }
    }

    /// `finish_response` while the rest of the request body is pumped.
    async fn write_beside(
        &mut self,
        out: &mut Vec<u8>,
        started: Started,
        mut pump: BodyPump,
    ) -> io::Result<super::respond::Written> {
        let (mut reader, mut writer) = tokio::io::split(&mut *self.io);
        let writing = finish_response(&mut writer, out, started);
        tokio::pin!(writing);
        loop {
            tokio::select! {
                biased;
                written = &mut writing => break written,
                () = pump.step_beside_response(&mut reader, &mut self.buf), if !pump.done() => {}
            }
        }
    }

    /// Relays bytes both ways until either side closes or `idle` passes
    /// without traffic. Bytes either side sent early are relayed first.
    async fn tunnel(self, backend: BackendConn, idle: Duration) {
        let Conn { io, buf, .. } = self;
        let client = ReadAhead::new(buf.freeze(), io);
        let BackendConn { stream, buf, .. } = backend;
        let backend = ReadAhead::new(buf.freeze(), stream);
        crate::hyper_edge::upgrade::relay(client, backend, idle).await;
    }
}

/// When the timer that fired was the quiet limit, moves it to the head's
/// deadline and says true; false when it was the deadline itself.
fn head_deadline_from_quiet(
    holds: &mut TimerHolds,
    setup: &EngineSetup,
    timer: Pin<&mut Sleep>,
) -> bool {
    if *holds != TimerHolds::QuietLimit {
        return false;
    }
    *holds = TimerHolds::Deadline;
    let began = timer.deadline() - QUIET_BEFORE_PARKING;
    timer.reset(began + setup.header_timeout);
    true
}

fn readable_or_end(ready: io::Result<()>) -> Idle {
    match ready {
        Ok(()) => Idle::Readable,
        Err(_) => Idle::End,
    }
}

type TunnelSlot = Arc<Mutex<Option<(BackendConn, Duration)>>>;

fn lock<T>(slot: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    slot.lock().unwrap_or_else(|p| p.into_inner())
}

/// The client's side of a WebSocket upgrade on the own engine: the backend's
/// connection is left here, and the connection loop runs the tunnel once
/// the `101` is written.
#[derive(Default)]
pub(super) struct EngineUpgrade {
    slot: TunnelSlot,
}

impl ClientUpgrade for EngineUpgrade {
    fn join<R>(self, backend_response: &mut Response<R>, idle: Duration, _: &ClientContext) {
        let Some(upgraded) = backend_response
            .extensions_mut()
            .remove::<UpgradedBackend>()
        else {
            return;
        };
        let conn = lock(&upgraded.0).take();
        if let Some(conn) = conn {
            *lock(&self.slot) = Some((conn, idle));
        }
    }
}

#[cfg(test)]
#[path = "server_tests.rs"]
mod size_tests;
