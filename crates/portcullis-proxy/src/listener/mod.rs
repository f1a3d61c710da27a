//! Client listeners: accept with a connection cap, optional TLS, HTTP/1.1 and
//! HTTP/2 (ALPN or h2c prior knowledge), and graceful shutdown.

mod tls;

pub use tls::{server_config, TlsSetupError};

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
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
    let builder = http_builder(&options);
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
        let client = Arc::new(ClientContext::new(peer.ip(), local_port, tls.is_some()));
        let gateway = gateway.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
        let handshake_timeout = options.header_read_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let service =
                service_fn(move |request| handle(gateway.clone(), client.clone(), request));
            let result =
                match tls {
                    None => {
                        let connection =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        watcher.watch(connection.into_owned()).await
                    }
                    Some(acceptor) => {
                        let stream =
                            match tokio::time::timeout(handshake_timeout, acceptor.accept(stream))
                                .await
                            {
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
                        let connection =
                            builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                        watcher.watch(connection.into_owned()).await
                    }
                };
            if let Err(err) = result {
                tracing::debug!(error = %err, %peer, "client connection ended with an error");
            }
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
