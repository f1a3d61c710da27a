//! Client listeners: accept with a connection cap, optional TLS, HTTP/1.1 and
//! HTTP/2 (ALPN or h2c prior knowledge), and graceful shutdown. Every
//! connection has a bounded life without progress (see `conn.rs`).

mod conn;
mod frames;
mod own_engine;
mod park;
mod preface;
mod sources;
mod streams;
mod tls;

pub use conn::{Connections, MAX_CONCURRENT_STREAMS};
pub use frames::{
    CONTINUATIONS_PER_WINDOW, FRAME_WINDOW, OTHER_FRAMES_PER_WINDOW, PINGS_PER_WINDOW,
    RESETS_PER_WINDOW, SETTINGS_PER_WINDOW, WINDOW_UPDATES_PER_WINDOW,
};
pub use park::PARK_AFTER;
pub(crate) use park::ReadAhead;
pub use sources::{COOL_OFF, SOURCE_RESETS_PER_WINDOW, SOURCE_WINDOW};

pub use tls::{server_config, TlsSetupError};

use crate::h1gate::GateStatus;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};

use crate::http::ClientContext;
use crate::hyper_edge::handle;
use crate::routing::Gateway;
use portcullis_config::Engine;
use preface::{detect_tcp, Detected};

/// Largest request header block accepted; larger ones get 431.
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub struct ListenerOptions {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub max_connections: usize,
    /// Time allowed to receive a request's headers, the TLS handshake, the
    /// HTTP/2 preface, and the longest an idle connection is kept.
    pub header_read_timeout: Duration,
    /// Time in-flight requests get to finish after shutdown begins.
    pub shutdown_grace: Duration,
    /// What serves HTTP/1.1 clients (`[gateway] engine`).
    pub engine: portcullis_config::Engine,
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
    let connections = Arc::new(Connections::new(options.header_read_timeout));
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let at_cap_logged = AtomicBool::new(false);
    let tls = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let engine = options.engine;

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
        if !connections.admits(peer.ip()) {
            // A source cooling off after HTTP/2 abuse: closed at once.
            continue;
        }
        let _ = stream.set_nodelay(true);
        let client = ClientContext::new(peer.ip(), local_port, tls.is_some());
        let (gateway, connections) = (gateway.clone(), connections.clone());
        let (tls, shutdown) = (tls.clone(), shutdown.clone());
        // Held until the connection ends, so that `graceful.shutdown()` waits
        // for every connection; each one watches `shutdown` itself.
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _permit = permit;
            serve_client(stream, tls, gateway, client, &connections, shutdown, engine).await;
            drop(watcher);
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
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn serve_client(
    stream: TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    gateway: Arc<Gateway>,
    client: ClientContext,
    connections: &Connections,
    shutdown: watch::Receiver<bool>,
    engine: Engine,
) {
    if engine == Engine::Portcullis {
        // Boxed: the engine's state is not part of the accept loop's task.
        return Box::pin(own_engine::serve_client(
            stream,
            tls,
            gateway,
            client,
            connections,
            shutdown,
        ))
        .await;
    }
    let Some(acceptor) = tls else {
        return serve_plain(stream, gateway, client, connections, shutdown).await;
    };
    let peer = client.peer_ip;
    let gate = Arc::new(GateStatus::default());
    client.attach_gate(gate.clone());
    let client = Arc::new(client);
    let service =
        move |request: Request<Incoming>| handle(gateway.clone(), client.clone(), request);
    // Boxed: its room would otherwise be part of every parked connection's
    // task too.
    Box::pin(connections.serve_tls(stream, &acceptor, peer, gate, service, shutdown)).await
}

/// A plain connection: HTTP/1.1 goes to the parking loop, HTTP/2 prior
/// knowledge (the whole preface, within the header timeout) to hyper's
/// HTTP/2 server; anything slower is closed.
async fn serve_plain(
    mut stream: TcpStream,
    gateway: Arc<Gateway>,
    client: ClientContext,
    connections: &Connections,
    shutdown: watch::Receiver<bool>,
) {
    let deadline = tokio::time::Instant::now() + connections.header_read_timeout();
    match detect_tcp(&mut stream, deadline).await {
        Detected::Http1(read_ahead) => {
            let setup = park::Parking {
                gateway,
                client: Arc::new(client.with_tunnel_slot()),
                builder: connections.http1(),
                idle_limit: connections.header_read_timeout(),
                shutdown,
                read_ahead,
            };
            park::serve(stream, setup).await;
        }
        Detected::Http2(read) => {
            let peer = client.peer_ip;
            let client = Arc::new(client);
            let service =
                move |request: Request<Incoming>| handle(gateway.clone(), client.clone(), request);
            let io = ReadAhead::new(read, stream);
            Box::pin(connections.serve_h2(io, peer, service, shutdown)).await
        }
        Detected::Closed => {}
    }
}
