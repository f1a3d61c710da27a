//! Client listeners: accept with a connection cap, optional TLS, HTTP/1.1 and
//! HTTP/2 (ALPN or h2c prior knowledge), and graceful shutdown. Every
//! connection has a bounded life without progress (see `conn.rs`).

mod conn;
mod frames;
mod generations;
mod lot;
mod own_engine;
mod park;
mod sources;
mod streams;
mod tls;
mod turns;

pub use conn::{Connections, MAX_CONCURRENT_STREAMS};
pub use frames::{
    CONTINUATIONS_PER_WINDOW, FRAME_WINDOW, OTHER_FRAMES_PER_WINDOW, PINGS_PER_WINDOW,
    RESETS_PER_WINDOW, SETTINGS_PER_WINDOW, WINDOW_UPDATES_PER_WINDOW,
};
pub use lot::SWEEP_EVERY;
pub use park::PARK_AFTER;
pub use sources::{COOL_OFF, SOURCE_RESETS_PER_WINDOW, SOURCE_WINDOW};

pub use generations::serve_reloadable;
pub use tls::{server_config, swappable_server_config, CertSwap, TlsSetupError};
pub use turns::{AcceptGroup, Turn};

use crate::h1gate::GateStatus;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::Request;
use tokio::net::TcpListener;
use tokio::net::TcpStream;
use tokio::sync::{watch, Semaphore};

use crate::engine::{EngineSetup, Start};
use crate::http::ClientContext;
use crate::hyper_edge::handle;
use crate::preface::{detect_tcp, Detected};
use crate::read_ahead::ReadAhead;
use crate::routing::Gateway;
use portcullis_config::Engine;

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

/// What every connection of one listener shares. A connection's task holds
/// one `Arc` of it, not copies of its parts: every byte a task captures stays
/// allocated for as long as the client keeps the connection open.
pub(crate) struct Accepting {
    gateway: Arc<Gateway>,
    connections: Connections,
    tls: Option<tokio_rustls::TlsAcceptor>,
    engine: Engine,
    /// Connection slots: one taken per accepted connection, given back by
    /// its [`Held`] when it ends. All of them back means no connection left.
    slots: Semaphore,
    slot_count: u32,
    /// For the hyper paths, which take their own receiver.
    shutdown: watch::Receiver<bool>,
    /// The own engine's setup, shared by all its connections.
    engine_setup: EngineSetup,
    /// This runtime's place among runtimes sharing the socket, if any.
    turn: Option<Turn>,
    /// Where the own engine's idle plain connections wait without a task
    /// (none if its poller could not be made: they then wait in their tasks).
    lot: Option<lot::Lot>,
}

/// A connection's hold on its listener: the shared state, and the
/// connection slot the accept loop took for it, given back when the
/// connection's task ends (drops this).
pub(crate) struct Held(Arc<Accepting>);

impl std::ops::Deref for Held {
    type Target = Accepting;

    fn deref(&self) -> &Accepting {
        &self.0
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.0.slots.add_permits(1);
        if let Some(turn) = &self.0.turn {
            turn.left();
        }
    }
}

/// Serves `listener` until `shutdown` turns true, then stops accepting, lets
/// in-flight requests finish within the grace period, and returns.
pub async fn serve(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    options: ListenerOptions,
    shutdown: watch::Receiver<bool>,
) {
    serve_taking_turns(listener, gateway, options, shutdown, None).await
}

/// [`serve`] for one of several runtimes polling descriptors of the same
/// socket: it accepts only on its `turn` (see [`AcceptGroup`]), so
/// connections spread evenly over the runtimes.
pub async fn serve_in_group(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    options: ListenerOptions,
    shutdown: watch::Receiver<bool>,
    turn: Turn,
) {
    serve_taking_turns(listener, gateway, options, shutdown, Some(turn)).await
}

async fn serve_taking_turns(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    options: ListenerOptions,
    shutdown: watch::Receiver<bool>,
    turn: Option<Turn>,
) {
    // Settings that never change: the sender goes, and with it any update.
    let options = watch::channel(options).1;
    serve_reloadable(listener, gateway, options, shutdown, turn, |options| {
        options
    })
    .await
}

/// What one generation of a listener shares with its connections (see
/// `generations.rs`): built from the options in force when it starts.
fn accepting_state(
    local_port: u16,
    gateway: Arc<Gateway>,
    options: &ListenerOptions,
    shutdown: watch::Receiver<bool>,
    turn: Option<Turn>,
) -> (Arc<Accepting>, Option<lot::Poller>) {
    let slot_count = u32::try_from(options.max_connections.max(1)).unwrap_or(u32::MAX);
    let tls = options.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    // Only the own engine's plain connections park.
    let parking = tls.is_none() && matches!(options.engine, Engine::Portcullis);
    let (lot, poller) = match parking.then(lot::open).transpose() {
        Ok(Some((lot, poller))) => (Some(lot), Some(poller)),
        Ok(None) => (None, None),
        Err(err) => {
            tracing::warn!(error = %err, port = local_port, "no parking lot; idle connections keep their tasks");
            (None, None)
        }
    };
    let accepting = Arc::new(Accepting {
        engine_setup: EngineSetup::new(
            gateway.clone(),
            options.header_read_timeout,
            local_port,
            tls.is_some(),
        )
        .parking(lot.is_some()),
        gateway,
        connections: match &turn {
            Some(turn) => Connections::sharing(options.header_read_timeout, turn.sources()),
            None => Connections::new(options.header_read_timeout),
        },
        tls,
        engine: options.engine,
        slots: Semaphore::new(slot_count as usize),
        slot_count,
        shutdown,
        turn,
        lot,
    });
    (accepting, poller)
}

/// Whether listeners stop gently (see [`drain_gently_on_shutdown`]).
static DRAIN_GENTLY: AtomicBool = AtomicBool::new(false);

/// Makes every listener of this process, when it is shut down from now on,
/// end each keep-alive connection only after answering its next request
/// (with `Connection: close`), instead of closing idle connections at once:
/// a client that sends on an idle connection just as it closes sees the
/// request fail. For a hot restart, where the accept queue is served by the
/// next process and no request may fail; idle connections that stay idle
/// end at their idle limit or when the grace period ends.
pub fn drain_gently_on_shutdown() {
    DRAIN_GENTLY.store(true, Ordering::Relaxed);
}

/// Accepts connections while slots are free, until shutdown.
async fn accept(
    listener: &TcpListener,
    accepting: &Arc<Accepting>,
    max_connections: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let local_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let at_cap_logged = AtomicBool::new(false);
    loop {
        if accepting.slots.available_permits() == 0 && !at_cap_logged.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                max = max_connections,
                port = local_port,
                "connection cap reached; new connections wait in the backlog"
            );
        }
        let permit = tokio::select! {
            permit = accepting.slots.acquire() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            _ = stopped(&mut shutdown) => break,
        };
        if let Some(turn) = &accepting.turn {
            tokio::select! {
                () = turn.wait() => {}
                _ = stopped(&mut shutdown) => break,
            }
        }
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
        if !accepting.connections.admits(peer.ip()) {
            // A source cooling off after HTTP/2 abuse: closed at once.
            continue;
        }
        let _ = stream.set_nodelay(true);
        // The slot goes with the connection (its `Held` gives it back), so
        // that the wait below sees every connection end.
        permit.forget();
        if let Some(turn) = &accepting.turn {
            turn.joined();
        }
        spawn_connection(stream, peer.ip(), Held(accepting.clone()));
    }
}

/// One task per connection, for its whole life.
fn spawn_connection(stream: TcpStream, peer: IpAddr, held: Held) {
    match (held.engine, &held.tls) {
        // The engine's own future is the task: nothing wraps it.
        (Engine::Portcullis, None) => {
            tokio::spawn(crate::engine::serve(stream, held, peer, Start::Accepted));
        }
        (Engine::Portcullis, Some(_)) => {
            tokio::spawn(own_engine::serve_tls(stream, held, peer));
        }
        _ => {
            tokio::spawn(serve_hyper(stream, peer, held));
        }
    }
}

/// Resolves once shutdown begins; the watch guard never crosses an await.
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// One connection on hyper, for its whole life (its task's future).
async fn serve_hyper(stream: TcpStream, peer: IpAddr, held: Held) {
    // Boxed: its room would otherwise be part of every parked connection's
    // task too.
    Box::pin(serve_hyper_inner(stream, peer, &held)).await
}

async fn serve_hyper_inner(stream: TcpStream, peer: IpAddr, accepting: &Accepting) {
    let client = accepting.engine_setup.client_context(peer);
    let (gateway, connections) = (accepting.gateway.clone(), &accepting.connections);
    let shutdown = accepting.shutdown.clone();
    let Some(acceptor) = &accepting.tls else {
        return Box::pin(serve_plain(stream, gateway, client, connections, shutdown)).await;
    };
    let gate = Arc::new(GateStatus::default());
    client.attach_gate(gate.clone());
    let client = Arc::new(client);
    let service =
        move |request: Request<Incoming>| handle(gateway.clone(), client.clone(), request);
    Box::pin(connections.serve_tls(stream, acceptor, peer, gate, service, shutdown)).await
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

/// A listener's shared state for unit tests: 4 slots, a 10 s header
/// timeout, no TLS, no lot and no accept group.
#[cfg(test)]
pub(super) fn test_accepting(engine: Engine) -> Arc<Accepting> {
    let gateway = Arc::new(Gateway::new(
        "m1",
        "gateway",
        ".".into(),
        crate::cookie_key::CookieKey::random(),
    ));
    let timeout = Duration::from_secs(10);
    Arc::new(Accepting {
        engine_setup: EngineSetup::new(gateway.clone(), timeout, 8080, false),
        gateway,
        connections: Connections::new(timeout),
        tls: None,
        engine,
        slots: Semaphore::new(4),
        slot_count: 4,
        shutdown: watch::channel(false).1,
        turn: None,
        lot: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cookie_key::CookieKey;

    fn accepting(engine: Engine) -> Arc<Accepting> {
        test_accepting(engine)
    }

    /// An idle connection costs its task (this future, in tokio's task cell),
    /// the socket's registration with the reactor, and its client context:
    /// nothing else is allocated for it. The future's size is that of its
    /// largest state, so this bounds the idle state too. At most 672 bytes
    /// keeps the task cell (128-byte steps, about 100 bytes of tokio's own)
    /// at 768.
    #[tokio::test]
    async fn a_connections_task_is_small() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (_client, (stream, peer)) = (client.unwrap(), accepted.unwrap());
        let held = Held(accepting(Engine::Portcullis));
        let future = crate::engine::serve(stream, held, peer.ip(), Start::Accepted);
        let size = std::mem::size_of_val(&future);
        eprintln!("connection task future: {size} bytes");
        assert!(size <= 672, "{size} bytes");
    }

    /// The slots are the connection count: each task gives its slot back
    /// when it ends, which is what shutdown waits for.
    #[tokio::test]
    async fn a_connection_gives_its_slot_back_when_it_ends() {
        let accepting = accepting(Engine::Portcullis);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let (client, (stream, peer)) = (client.unwrap(), accepted.unwrap());
        accepting.slots.acquire().await.unwrap().forget();
        let task = tokio::spawn(crate::engine::serve(
            stream,
            Held(accepting.clone()),
            peer.ip(),
            Start::Accepted,
        ));
        assert_eq!(accepting.slots.available_permits(), 3);
        drop(client);
        task.await.unwrap();
        assert_eq!(accepting.slots.available_permits(), 4);
    }

    /// An idle keep-alive connection on the own engine ends as soon as
    /// shutdown begins, and the listener's wait for its connections ends
    /// with it, long before the grace period.
    #[tokio::test]
    async fn shutdown_ends_idle_engine_connections_at_once() {
        shutdown_ends_an_idle_engine_connection(Duration::from_millis(50)).await;
    }

    /// One still in its quiet time before parking, which watches the
    /// shutdown flag only when that time ends, ends then.
    #[tokio::test]
    async fn shutdown_ends_a_connection_in_its_quiet_time_when_it_ends() {
        shutdown_ends_an_idle_engine_connection(Duration::ZERO).await;
    }

    /// Shutdown `idle_for` after a connection's first response.
    async fn shutdown_ends_an_idle_engine_connection(idle_for: Duration) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gateway = Arc::new(Gateway::new(
            "m1",
            "gateway",
            ".".into(),
            CookieKey::random(),
        ));
        let options = ListenerOptions {
            tls: None,
            max_connections: 8,
            header_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            engine: Engine::Portcullis,
        };
        let (stop, stopping) = watch::channel(false);
        let serving = tokio::spawn(serve(listener, gateway, options, stopping));
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut reply = vec![0u8; 4096];
        let n = client.read(&mut reply).await.unwrap();
        assert!(reply[..n].starts_with(b"HTTP/1.1 "), "a response first");
        // Now idle, waiting for its next request.
        tokio::time::sleep(idle_for).await;
        let started = std::time::Instant::now();
        stop.send(true).unwrap();
        let rest = tokio::time::timeout(Duration::from_secs(5), client.read(&mut reply)).await;
        assert!(matches!(rest, Ok(Ok(0)) | Ok(Err(_))), "closed: {rest:?}");
        tokio::time::timeout(Duration::from_secs(5), serving)
            .await
            .expect("the listener returns once its connections ended")
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
