//! One HTTP/1.1 client connection on the own engine: read a head, serve it
//! through the pipeline while the body is pumped, write the response, and go
//! on with the next head (pipelined bytes are already in the buffer). A
//! connection waiting for its next request holds no buffer.

use std::future::poll_fn;
use std::io;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{Method, Response, StatusCode};
use std::pin::Pin;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use tokio::time::{Instant, Sleep};

use super::backend::{RelayingConnector, UpgradedBackend};
use super::head::{closes_after, parse_request, RequestHead, RequestHeadError};
use super::interim::InterimHeads;
use super::request_body::{request_body, BodyPump};
use super::respond::{write_response, Answering};
use super::response_body::{read_more, HEAD_READ};
use crate::backend_pool::BackendConn;
use crate::error::json_error;
use crate::h1gate::{GateStatus, Violation};
use crate::http::{strict, ClientContext};
use crate::pipeline::{self, ClientRequest, ClientUpgrade};
use crate::read_ahead::ReadAhead;
use crate::routing::Gateway;

/// A client stream the engine can serve.
pub trait EngineIo: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Ready when a read would not wait, without reading: a connection
    /// between requests waits here with no buffer. Streams that cannot tell
    /// (TLS, whose records are decrypted ahead) say ready at once.
    fn poll_idle(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl EngineIo for TcpStream {
    fn poll_idle(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_read_ready(cx)
    }
}

impl EngineIo for tokio_rustls::server::TlsStream<TcpStream> {}

/// What every request on one connection shares.
pub struct EngineSetup {
    pub gateway: Arc<Gateway>,
    pub client: Arc<ClientContext>,
    /// Longest wait for a request head (and between requests).
    pub header_timeout: Duration,
    pub shutdown: watch::Receiver<bool>,
}

/// Serves `io` until the client closes it, an error or a refusal ends it, it
/// waits past the header timeout, or shutdown. `read_ahead` holds bytes
/// already read from it.
pub async fn serve<I: EngineIo>(io: I, read_ahead: Bytes, mut setup: EngineSetup) {
    let mut conn = Conn {
        io,
        buf: BytesMut::from(&read_ahead[..]),
        out: Vec::new(),
        head_timer: Box::pin(tokio::time::sleep(setup.header_timeout)),
    };
    loop {
        let head = match conn.next_head(&mut setup).await {
            NextHead::Head(head) => head,
            NextHead::End => break,
            NextHead::Refused(err) => {
                Box::pin(conn.refuse_head(err)).await;
                break;
            }
        };
        // Boxed, like the tunnel: the state of a request in flight is
        // allocated per request, so a connection between requests is only
        // the small loop state.
        match Box::pin(conn.serve_request(head, &setup)).await {
            After::KeepAlive if !*setup.shutdown.borrow() => {}
            After::KeepAlive | After::Close => break,
            After::Tunnel(backend, idle) => return Box::pin(conn.tunnel(backend, idle)).await,
        }
    }
    let _ = conn.io.shutdown().await;
}

struct Conn<I> {
    io: I,
    /// Bytes read and not yet used; empty (no allocation) between requests.
    buf: BytesMut,
    /// The response being written.
    out: Vec<u8>,
    /// Bounds the wait for each head. One timer for the connection's life,
    /// moved later for each head: pushing a deadline later is an atomic
    /// update, where a new timer per request is a timer-wheel insert and
    /// removal.
    head_timer: Pin<Box<Sleep>>,
}

// The head is moved out at once, once per request: boxing it would cost an
// allocation per request to save stack space nobody holds on to.
#[allow(clippy::large_enum_variant)]
enum NextHead {
    Head(RequestHead),
    /// Closed, timed out, or shutting down: end quietly.
    End,
    Refused(RequestHeadError),
}

enum After {
    KeepAlive,
    Close,
    /// A `101` went out: the connection is a tunnel to this backend now.
    Tunnel(BackendConn, Duration),
}

impl<I: EngineIo> Conn<I> {
    async fn next_head(&mut self, setup: &mut EngineSetup) -> NextHead {
        let deadline = Instant::now() + setup.header_timeout;
        self.head_timer.as_mut().reset(deadline);
        loop {
            if !self.buf.is_empty() {
                match parse_request(&mut self.buf) {
                    Ok(Some(head)) => return NextHead::Head(head),
                    Ok(None) => {}
                    Err(err) => return NextHead::Refused(err),
                }
            } else if !self.wait_idle(setup).await {
                return NextHead::End;
            }
            let read = poll_fn(|cx| read_more(&mut self.io, &mut self.buf, HEAD_READ, cx));
            tokio::select! {
                biased;
                more = read => match more {
                    Ok(true) => {}
                    Ok(false) | Err(_) => return NextHead::End,
                },
                () = self.head_timer.as_mut() => return NextHead::End,
            }
        }
    }

    /// Waits, with no buffer held, until the next request's bytes arrive;
    /// false on timeout, shutdown or error.
    async fn wait_idle(&mut self, setup: &mut EngineSetup) -> bool {
        let now = {
            let mut cx = Context::from_waker(std::task::Waker::noop());
            self.io.poll_idle(&mut cx)
        };
        if let Poll::Ready(ready) = now {
            return ready.is_ok();
        }
        // Really idle: give the buffers back (counted as a park, as the
        // hyper path's parking loop counts dropping its connection state).
        self.buf = BytesMut::new();
        self.out = Vec::new();
        setup.gateway.count_parked_connection();
        let shutdown = &mut setup.shutdown;
        tokio::select! {
            ready = poll_fn(|cx| self.io.poll_idle(cx)) => ready.is_ok(),
            () = self.head_timer.as_mut() => false,
            _ = shutdown.wait_for(|stop| *stop) => false,
        }
    }

    async fn serve_request(&mut self, head: RequestHead, setup: &EngineSetup) -> After {
        let RequestHead {
            parts,
            framing,
            expects_continue,
        } = head;
        let http10 = framing.http10;
        let head_request = parts.method == Method::HEAD;
        let client_closes = closes_after(parts.version, &parts.headers);
        let upgrade = strict::is_websocket_upgrade(&parts.method, parts.version, &parts.headers)
            .then(EngineUpgrade::default);
        let tunnel_slot = upgrade.as_ref().map(|u| u.slot.clone());
        let (body, mut pump) = request_body(framing.body, expects_continue && !http10);
        let request = ClientRequest {
            head: parts,
            body,
            upgrade,
        };
        // 1xx heads of the tries, written before the final one (never to
        // an HTTP/1.0 client).
        let interim = InterimHeads::default();
        let connector = RelayingConnector((!http10).then_some(&interim));
        let mut serving = Box::pin(pipeline::serve(
            &setup.gateway,
            &setup.client,
            request,
            &connector,
        ));
        let response = interim
            .serve_beside(&mut serving, pump.as_mut(), &mut self.io, &mut self.buf)
            .await;
        drop(serving);
        if let Some(violation) = pump.as_ref().and_then(|p| p.violation) {
            // As the hyper path answers a body the gate refused: through the
            // request path, so with a Date.
            self.refuse(StatusCode::BAD_REQUEST, violation.reason())
                .await;
            return After::Close;
        }
        let body_read = pump.as_ref().is_none_or(BodyPump::complete);
        let answering = Answering {
            head_request,
            http10,
            close: client_closes || !body_read || *setup.shutdown.borrow(),
        };
        let pump = pump.filter(|p| !p.done());
        self.answer(response, answering, tunnel_slot, pump).await
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
        let _ = write_response(&mut self.io, &mut self.out, response, answering).await;
    }

    /// Writes the response; a body still arriving is pumped beside it.
    async fn answer(
        &mut self,
        response: Response<crate::body::ProxyBody>,
        answering: Answering,
        tunnel_slot: Option<TunnelSlot>,
        pump: Option<BodyPump>,
    ) -> After {
        let written = match pump {
            None => write_response(&mut self.io, &mut self.out, response, answering).await,
            Some(mut pump) => {
                let (mut reader, mut writer) = tokio::io::split(&mut self.io);
                let writing = write_response(&mut writer, &mut self.out, response, answering);
                tokio::pin!(writing);
                loop {
                    tokio::select! {
                        biased;
                        written = &mut writing => break written,
                        () = pump.step_beside_response(&mut reader, &mut self.buf), if !pump.done() => {}
                    }
                }
            }
        };
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
mod size_tests {
    use super::*;
    use crate::cookie_key::CookieKey;

    /// What a connection costs while it waits for its next request is the
    /// size of its task: the engine's future, whatever state it is in.
    #[tokio::test]
    async fn an_idle_connection_is_a_small_state() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (_client, (stream, peer)) = (client.unwrap(), accepted.unwrap());
        let gateway = Arc::new(Gateway::new(
            "m1",
            "gateway",
            ".".into(),
            CookieKey::random(),
        ));
        let setup = EngineSetup {
            gateway,
            client: Arc::new(ClientContext::new(peer.ip(), addr.port(), false)),
            header_timeout: Duration::from_secs(10),
            shutdown: watch::channel(false).1,
        };
        let future = serve(stream, Bytes::new(), setup);
        let size = std::mem::size_of_val(&future);
        eprintln!("engine connection future: {size} bytes");
        // About 920 bytes in a debug build (less in release). A request in
        // flight, a refusal and a tunnel are boxed, so they do not count.
        assert!(size <= 1024, "{size} bytes");
    }
}
