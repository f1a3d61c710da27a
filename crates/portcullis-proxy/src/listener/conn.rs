//! Serving one client connection with a bounded life in every state: TLS
//! handshake, protocol detection, HTTP/1.1 (hyper's header timeout) and
//! HTTP/2 (idle watch, frame guard, reset accounting). Shared by the gateway
//! listener and the balancer, so both refuse the same abuse.

use crate::h1gate::{GateStatus, GatedIo};
use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Incoming};
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::{timeout_at, Instant};

use super::frames::FrameGuard;
use super::sources::Sources;
use super::streams::{drive, ConnShared, GuardedBody, IdleWatch, StreamGuard};
use super::MAX_HEADER_BYTES;
use crate::preface::{detect, detect_tcp, Detected};
use crate::read_ahead::ReadAhead;

use crate::error::BoxError;

/// Most concurrent streams one HTTP/2 client may open.
pub const MAX_CONCURRENT_STREAMS: u32 = 256;

/// What every connection of one listener shares: protocol settings, the
/// time limit without progress, and per-source abuse accounting.
pub struct Connections {
    http1: Arc<http1::Builder>,
    http2: http2::Builder<TokioExecutor>,
    header_read_timeout: Duration,
    sources: Arc<Sources>,
}

impl Connections {
    /// `header_read_timeout` bounds the TLS handshake, protocol detection,
    /// an HTTP/1.1 request head (and keep-alive wait), and an HTTP/2
    /// connection with no open stream.
    pub fn new(header_read_timeout: Duration) -> Self {
        let mut h1 = http1::Builder::new();
        // `max_buf_size` alone is not an exact limit: a head that arrives in
        // one large read is parsed before the buffer size is checked.
        h1.timer(TokioTimer::new())
            .header_read_timeout(header_read_timeout)
            .max_buf_size(MAX_HEADER_BYTES)
            .max_header_size(MAX_HEADER_BYTES)
            .keep_alive(true);
        let mut h2 = http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_header_list_size(MAX_HEADER_BYTES as u32)
            .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
        Self {
            http1: Arc::new(h1),
            http2: h2,
            header_read_timeout,
            sources: Arc::default(),
        }
    }

    /// Connections whose sources' cool-off is `sources`, shared with other
    /// listeners on the same socket (per-core runtimes), so an abusive source
    /// is refused by all of them.
    pub(crate) fn sharing(header_read_timeout: Duration, sources: Arc<Sources>) -> Self {
        Self {
            sources,
            ..Self::new(header_read_timeout)
        }
    }

    /// Whether a new connection from `ip` may be served: false while the
    /// source is cooling off after HTTP/2 abuse. Close such a connection at once.
    pub fn admits(&self, ip: IpAddr) -> bool {
        self.sources.admits(ip)
    }

    pub(crate) fn http1(&self) -> Arc<http1::Builder> {
        self.http1.clone()
    }

    pub(crate) fn header_read_timeout(&self) -> Duration {
        self.header_read_timeout
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.header_read_timeout
    }

    /// Plain TCP: HTTP/2 with prior knowledge when the whole preface arrives
    /// in time, HTTP/1.1 otherwise (without parking).
    pub async fn serve_plain<S, F, B>(
        &self,
        mut stream: TcpStream,
        peer: IpAddr,
        gate: Arc<GateStatus>,
        service: S,
        shutdown: watch::Receiver<bool>,
    ) where
        S: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
        F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        match detect_tcp(&mut stream, self.deadline()).await {
            Detected::Http1(read) => {
                self.serve_h1(ReadAhead::new(read, stream), gate, service, shutdown)
                    .await
            }
            Detected::Http2(read) => {
                self.serve_h2(ReadAhead::new(read, stream), peer, service, shutdown)
                    .await
            }
            Detected::Closed => {}
        }
    }

    /// TLS: the handshake within the time limit, then the protocol ALPN
    /// chose; without ALPN, the first bytes decide as on plain TCP.
    /// `gate` is the status of the strict HTTP/1 framing gate the connection
    /// gets if ALPN or its first bytes make it HTTP/1.1.
    pub async fn serve_tls<S, F, B>(
        &self,
        stream: TcpStream,
        acceptor: &tokio_rustls::TlsAcceptor,
        peer: IpAddr,
        gate: Arc<GateStatus>,
        service: S,
        shutdown: watch::Receiver<bool>,
    ) where
        S: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
        F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let Some((tls, detected)) = self.handshake(stream, acceptor, peer).await else {
            return;
        };
        match detected {
            Detected::Http1(read) => {
                self.serve_h1(ReadAhead::new(read, tls), gate, service, shutdown)
                    .await
            }
            Detected::Http2(read) => {
                self.serve_h2(ReadAhead::new(read, tls), peer, service, shutdown)
                    .await
            }
            Detected::Closed => {}
        }
    }

    /// The TLS handshake within the time limit, then the protocol ALPN chose;
    /// without ALPN, the first bytes decide as on plain TCP.
    pub(crate) async fn handshake(
        &self,
        stream: TcpStream,
        acceptor: &tokio_rustls::TlsAcceptor,
        peer: IpAddr,
    ) -> Option<(tokio_rustls::server::TlsStream<TcpStream>, Detected)> {
        let mut tls = match timeout_at(self.deadline(), acceptor.accept(stream)).await {
            Ok(Ok(tls)) => tls,
            Ok(Err(err)) => {
                tracing::debug!(error = %err, %peer, "TLS handshake failed");
                return None;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return None;
            }
        };
        let detected = match tls.get_ref().1.alpn_protocol() {
            Some(b"h2") => Detected::Http2(Bytes::new()),
            Some(_) => Detected::Http1(Bytes::new()),
            None => detect(&mut tls, self.deadline()).await,
        };
        Some((tls, detected))
    }

    /// HTTP/1.1 with hyper's upgrades; hyper's header timeout bounds the wait
    /// for every request head, the first and each keep-alive one.
    async fn serve_h1<I, S, F, B>(
        &self,
        io: I,
        gate: Arc<GateStatus>,
        service: S,
        shutdown: watch::Receiver<bool>,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
        F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        // The strict framing gate (PRODUCT.md §9) reads every byte first; a
        // refusal is written when hyper, having seen end-of-file where the
        // bad bytes began, shuts the stream down.
        let conn = self
            .http1
            .serve_connection(
                TokioIo::new(GatedIo::with_status(io, gate)),
                service_fn(service),
            )
            .with_upgrades();
        let ended = drive(Box::pin(conn), |c| c.graceful_shutdown(), None, shutdown).await;
        if let Some(Err(err)) = ended {
            tracing::debug!(error = %err, "client connection ended with an error");
        }
    }

    /// HTTP/2 from the preface on (`io` yields it first).
    pub(crate) async fn serve_h2<I, S, F, B>(
        &self,
        io: I,
        peer: IpAddr,
        service: S,
        shutdown: watch::Receiver<bool>,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
        S: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
        F: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
        B: Body + Send + 'static,
        B::Data: Send,
        B::Error: Into<BoxError>,
    {
        let shared = Arc::new(ConnShared::new());
        let streams = shared.clone();
        let counted = service_fn(move |request: Request<Incoming>| {
            let guard = StreamGuard::open(streams.clone());
            let service = service.clone();
            async move {
                // hyper polls a new stream's service future once before it
                // looks for the client's RST_STREAM: yielding first means a
                // stream reset in the same read is dropped before any work
                // (no backend connection for a rapid reset).
                tokio::task::yield_now().await;
                let response = match service(request).await {
                    Ok(response) => response,
                    Err(never) => match never {},
                };
                let guard = guard.answered();
                Ok::<_, Infallible>(response.map(|body| GuardedBody::new(body, guard)))
            }
        });
        let io = TokioIo::new(FrameGuard::new(io, shared.clone()));
        let conn = self.http2.serve_connection(io, counted);
        let watch = IdleWatch {
            shared: &shared,
            limit: self.header_read_timeout,
        };
        let ended = drive(
            Box::pin(conn),
            |c| c.graceful_shutdown(),
            Some(watch),
            shutdown,
        )
        .await;
        match ended {
            Some(Err(err)) => {
                tracing::debug!(error = %err, %peer, "HTTP/2 connection ended with an error")
            }
            None => tracing::debug!(%peer, "HTTP/2 connection idle past the limit; closed"),
            Some(Ok(())) => {}
        }
        self.sources.record(peer, shared.resets(), shared.abusive());
    }
}
