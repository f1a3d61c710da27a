//! Client listeners: accept with a connection cap, optional TLS, HTTP/1.1 and
//! HTTP/2 (ALPN or h2c prior knowledge), and graceful shutdown.

mod park;
mod tls;

pub use park::PARK_AFTER;

pub use tls::{server_config, TlsSetupError};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};

use crate::http::{handle, ClientContext};
use crate::routing::Gateway;

/// Largest request header block accepted; larger ones get 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct ListenerOptions {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub max_connections: usize,
    /// Time allowed to receive a request's headers (and the TLS handshake).
    pub header_read_timeout: Duration,
    /// Time in-flight requests get to finish after shutdown begins.
    pub shutdown_grace: Duration,
}

/// Serves `listener` until `shutdown` turns true, then stops accepting, lets
/// in-flight requests finish within the grace period, and returns.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    options: ListenerOptions,
    mut shutdown: watch::Receiver<bool>,
) {
    let local_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    // Shared, not cloned per connection: every byte a connection's task
    // captures stays allocated for as long as the client keeps it open.
    let builder = Arc::new(http_builder(&options));
    let http1_builder = Arc::new(http1_builder(&options));
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let at_cap_logged = AtomicBool::new(false);
    let tls = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);

    loop {
        if slots.available_permits() == 0 && !at_cap_logged.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                max = options.max_connections,
                port = local_port,
                "connection cap reached; new connections wait in the backlog"
            );
        }
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stopped(&mut shutdown) => break,
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut shutdown) => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Usually EMFILE or a connection reset during accept: log and go on,
                // after a pause so a full fd table does not spin the loop.
                tracing::error!(error = %err, port = local_port, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        at_cap_logged.store(false, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let handshake_timeout = options.header_read_timeout;
        let (http1_builder, shutdown) = (http1_builder.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if tls.is_none() {
                match sniff(&stream, handshake_timeout).await {
                    Sniffed::Http1 => {
                        let client = ClientContext::new(peer.ip(), local_port, false);
                        let setup = park::Parking {
                            gateway,
                            client: Arc::new(client.with_tunnel_slot()),
                            builder: http1_builder,
                            idle_limit: handshake_timeout,
                            shutdown,
                        };
                        park::serve(stream, setup).await;
                        // Held until here so that `graceful.shutdown()` also
                        // waits for connections hyper does not hold.
                        drop(watcher);
                        return;
                    }
                    Sniffed::Closed => return,
                    Sniffed::MaybeHttp2 => {}
                }
            }
            // Boxed: its room would otherwise be part of every parked
            // connection's task too.
            Box::pin(serve_with_hyper_util(
                stream,
                tls,
                builder,
                watcher,
                gateway,
                peer,
                local_port,
                handshake_timeout,
            ))
            .await;
        });
    }
    drop(listener);
    tracing::info!(
        port = local_port,
        "listener closed; finishing in-flight requests"
    );
    if tokio::time::timeout(options.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?options.shutdown_grace, "shutdown grace expired with requests still in flight");
    }
}

/// Resolves once shutdown begins; the watch guard never crosses an await.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// TLS connections and plain ones that may be HTTP/2: hyper-util detects the
/// protocol and serves the connection for its whole life.
#[allow(clippy::too_many_arguments)]
async fn serve_with_hyper_util(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    watcher: hyper_util::server::graceful::Watcher,
    gateway: Arc<Gateway>,
    peer: std::net::SocketAddr,
    local_port: u16,
    handshake_timeout: Duration,
) {
    let client = Arc::new(ClientContext::new(peer.ip(), local_port, tls.is_some()));
    let service = service_fn(move |request| handle(gateway.clone(), client.clone(), request));
    let result = match tls {
        None => {
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            watcher.watch(connection.into_owned()).await
        }
        Some(acceptor) => {
            let stream =
                match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => stream,
                    Ok(Err(err)) => {
                        tracing::debug!(error = %err, %peer, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            watcher.watch(connection.into_owned()).await
        }
    };
    if let Err(err) = result {
        tracing::debug!(error = %err, %peer, "client connection ended with an error");
    }
}

enum Sniffed {
    Http1,
    /// The HTTP/2 preface, or too few bytes to tell: hyper-util decides.
    MaybeHttp2,
    Closed,
}

/// Looks at the first bytes of a plain connection without consuming them.
/// A client that sends nothing within the header timeout is closed, as hyper
/// would close it.
async fn sniff(stream: &TcpStream, timeout: Duration) -> Sniffed {
    const PREFACE_START: &[u8] = b"PRI ";
    let mut first = [0u8; 4];
    match tokio::time::timeout(timeout, stream.peek(&mut first)).await {
        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => Sniffed::Closed,
        Ok(Ok(n)) if first[..n] == PREFACE_START[..n] => Sniffed::MaybeHttp2,
        Ok(Ok(_)) => Sniffed::Http1,
    }
}

fn http1_builder(options: &ListenerOptions) -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    // `max_buf_size` alone is not an exact limit: a head that arrives in one
    // large read is parsed before the buffer size is checked.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .max_header_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    builder
}

fn http_builder(options: &ListenerOptions) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_read_timeout)
        .max_buf_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(256);
    builder
}
