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
use http::{Method, Response};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{sleep_until, Instant};

use super::backend::{OwnConnector, UpgradedBackend};
use super::head::{closes_after, parse_request, RequestHead, RequestHeadError};
use crate::backend_pool::BackendConn;
use super::request_body::{request_body, BodyPump};
use super::respond::{write_response, Answering};
use super::response_body::read_more;
use crate::h1gate::{GateStatus, Violation};
use crate::http::{strict, ClientContext};
use crate::listener::ReadAhead;
use crate::pipeline::{self, ClientRequest, ClientUpgrade};
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
    };
    loop {
        let head = match conn.next_head(&mut setup).await {
            NextHead::Head(head) => head,
            NextHead::End => break,
            NextHead::Refused(err) => {
                let violation = match err {
                    RequestHeadError::Violation(v) => v,
                    RequestHeadError::TooLarge => Violation::HeadTooLarge,
                };
                let _ = conn.io.write_all(&GateStatus::response(violation)).await;
                break;
            }
        };
        match conn.serve_request(head, &setup).await {
            After::KeepAlive if !*setup.shutdown.borrow() => {}
            After::KeepAlive | After::Close => break,
            After::Tunnel(backend, idle) => return conn.tunnel(backend, idle).await,
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
}

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
        loop {
            if !self.buf.is_empty() {
                match parse_request(&mut self.buf) {
                    Ok(Some(head)) => return NextHead::Head(head),
                    Ok(None) => {}
                    Err(err) => return NextHead::Refused(err),
                }
            } else if !self.wait_idle(setup, deadline).await {
                return NextHead::End;
            }
            let read = poll_fn(|cx| read_more(&mut self.io, &mut self.buf, cx));
            tokio::select! {
                biased;
                more = read => match more {
                    Ok(true) => {}
                    Ok(false) | Err(_) => return NextHead::End,
                },
                () = sleep_until(deadline) => return NextHead::End,
            }
        }
    }

    /// Waits, with no buffer held, until the next request's bytes arrive;
    /// false on timeout, shutdown or error.
    async fn wait_idle(&mut self, setup: &mut EngineSetup, deadline: Instant) -> bool {
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
            () = sleep_until(deadline) => false,
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
        let mut serving = Box::pin(pipeline::serve(
            &setup.gateway,
            &setup.client,
            request,
            &OwnConnector,
        ));
        let response = match pump.as_mut() {
            None => (&mut serving).await,
            Some(pump) => loop {
                tokio::select! {
                    biased;
                    response = &mut serving => break response,
                    () = pump.step(&mut self.io, &mut self.buf), if !pump.done() => {}
                }
            },
        };
        drop(serving);
        if let Some(violation) = pump.as_ref().and_then(|p| p.violation) {
            let _ = self.io.write_all(&GateStatus::response(violation)).await;
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
        let Some(upgraded) = backend_response.extensions_mut().remove::<UpgradedBackend>() else {
            return;
        };
        let conn = lock(&upgraded.0).take();
        if let Some(conn) = conn {
            *lock(&self.slot) = Some((conn, idle));
        }
    }
}
