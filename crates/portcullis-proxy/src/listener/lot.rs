//! The parking lot: plain HTTP/1.1 connections of one listener that were
//! quiet for `engine::QUIET_BEFORE_PARKING` and left their tasks.
//!
//! A connection waiting in its own task costs the task (about 770 bytes:
//! tokio's header and trailer around the engine's idle state) and its
//! registration with tokio's reactor (a cache-aligned `ScheduledIo`, 256
//! bytes). Parked, it is an entry here: the socket, the peer's address, the
//! deadline of its wait and its hold on the listener (which keeps its
//! connection slot), 48 bytes. The socket is deregistered from tokio's
//! reactor and registered with the lot's own `mio::Poll`, whose descriptor
//! tokio watches (`AsyncFd`), so no task and no `ScheduledIo` remain; parking
//! and resuming cost two `epoll_ctl` calls each, paid only by connections
//! that were quiet that long.
//!
//! When a parked socket turns readable (bytes, or the client's close), it is
//! taken out and gets a fresh engine task, as after an accept but with the
//! deadline it had: its bytes are read by the engine's head path, a close
//! ends the task and frees the slot. A sweep every [`SWEEP_EVERY`] closes
//! the parked connections past their deadline, and shutdown closes them all
//! at once.

use std::io;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Interest, Token};
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Held;
use crate::engine::{self, Start};

/// How often the deadlines of parked connections are checked: a parked
/// connection is closed at most this long after its idle limit. The sweep
/// runs only while the lot holds connections.
pub const SWEEP_EVERY: Duration = Duration::from_millis(100);

/// Readiness events taken from the lot's poller per system call.
const EVENTS_AT_ONCE: usize = 256;

/// One listener's parked connections and the registry of its poller.
pub(super) struct Lot {
    registry: mio::Registry,
    parked: Mutex<Parked>,
    /// Wakes the watcher when the lot stops being empty, so that its sweep
    /// timer runs only while connections are parked.
    first_parked: Notify,
}

/// The lot's poller, watched in the listener's own task ([`Poller::watch`]).
pub(super) struct Poller(AsyncFd<mio::Poll>);

/// A parked connection: all it holds until its next bytes.
struct Entry {
    stream: std::net::TcpStream,
    peer: IpAddr,
    /// When its wait for a request head ends (the header timeout).
    deadline: Instant,
    /// Its connection slot and the listener it resumes on.
    held: Held,
}

/// Entries by key (the poller's token).
#[derive(Default)]
struct Parked {
    entries: slab::Slab<Entry>,
    /// Shutdown began: parked connections were closed, no more are taken.
    closed: bool,
    /// The poller failed: connections are given fresh tasks at once
    /// instead of being parked.
    failed: bool,
}

impl Parked {
    /// Takes out the entries whose deadline is at or before `now`.
    fn expired(&mut self, now: Instant) -> Vec<Entry> {
        let keys: Vec<usize> = (self.entries.iter())
            .filter(|(_, entry)| entry.deadline <= now)
            .map(|(key, _)| key)
            .collect();
        keys.into_iter()
            .filter_map(|key| self.entries.try_remove(key))
            .collect()
    }
}

/// A lot and its poller; the poller is registered with the current
/// runtime's reactor.
pub(super) fn open() -> io::Result<(Lot, Poller)> {
    let poll = mio::Poll::new()?;
    let registry = poll.registry().try_clone()?;
    // The safe constructor, deprecated because a type's descriptor could be
    // closed or replaced while tokio watches it; a `mio::Poll` owns its
    // descriptor until it drops, and `AsyncFd` deregisters before dropping
    // it, so that cannot happen here (and this crate forbids `unsafe`).
    #[allow(deprecated)]
    let poll = AsyncFd::with_interest(poll, tokio::io::Interest::READABLE)?;
    let lot = Lot {
        registry,
        parked: Mutex::default(),
        first_parked: Notify::new(),
    };
    Ok((lot, Poller(poll)))
}

impl Lot {
    /// Takes an idle connection out of tokio's reactor into the lot; it is
    /// closed instead when shutdown began or it cannot be registered.
    pub(super) fn park(&self, stream: TcpStream, peer: IpAddr, deadline: Instant, held: Held) {
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(err) => return tracing::debug!(error = %err, %peer, "cannot park; closed"),
        };
        let fd = stream.as_raw_fd();
        let mut parked = self.lock();
        if parked.closed {
            return;
        }
        if parked.failed {
            drop(parked);
            return serve_again(stream, peer, deadline, held);
        }
        let gateway = held.gateway.clone();
        let key = parked.entries.insert(Entry {
            stream,
            peer,
            deadline,
            held,
        });
        let interest = Interest::READABLE;
        if let Err(err) = self
            .registry
            .register(&mut SourceFd(&fd), Token(key), interest)
        {
            parked.entries.remove(key);
            return tracing::debug!(error = %err, %peer, "cannot park; closed");
        }
        if parked.entries.len() == 1 {
            self.first_parked.notify_one();
        }
        drop(parked);
        gateway.count_parked_connection();
    }

    /// How many connections are parked.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Gives a parked connection that turned readable a fresh engine task.
    fn resume(&self, key: usize) {
        // A key freed and taken again since its event was queued just
        // resumes a connection early; it parks again when quiet.
        let Some(entry) = self.lock().entries.try_remove(key) else {
            return;
        };
        let Entry {
            stream,
            peer,
            deadline,
            held,
        } = entry;
        if let Err(err) = self.registry.deregister(&mut SourceFd(&stream.as_raw_fd())) {
            return tracing::debug!(error = %err, %peer, "cannot resume a parked connection; closed");
        }
        serve_again(stream, peer, deadline, held);
    }

    /// Closes the connections parked past their deadline (their sockets
    /// leave the poller as they close); when to sweep next, while any remain.
    fn sweep(&self, now: Instant) -> Option<Instant> {
        let (expired, left) = {
            let mut parked = self.lock();
            (parked.expired(now), parked.entries.len())
        };
        // Closed outside the lock: each gives its slot back.
        drop(expired);
        (left > 0).then(|| now + SWEEP_EVERY)
    }

    /// Shutdown: closes every parked connection and takes no more.
    pub(super) fn close_all(&self) {
        self.take_all(|parked| parked.closed = true);
    }

    /// The poller failed: closes the parked connections (their wake-ups
    /// are lost) and gives the ones that go quiet later fresh tasks.
    fn fail(&self) {
        self.take_all(|parked| parked.failed = true);
    }

    fn take_all(&self, mark: impl FnOnce(&mut Parked)) {
        let closing = {
            let mut parked = self.lock();
            mark(&mut parked);
            std::mem::take(&mut parked.entries)
        };
        drop(closing);
    }

    fn lock(&self) -> MutexGuard<'_, Parked> {
        self.parked.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Poller {
    /// Resumes parked connections as their sockets turn readable and closes
    /// those past their deadline. Runs beside the accept loop, in the
    /// listener's task, until that ends; returns only if the poller fails
    /// (then the lot parks no more).
    pub(super) async fn watch(mut self, lot: &Lot) {
        let mut events = Events::with_capacity(EVENTS_AT_ONCE);
        let mut next_sweep: Option<Instant> = None;
        loop {
            let sweep = async {
                match next_sweep {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                ready = self.0.readable_mut() => {
                    let drained = ready.and_then(|mut guard| {
                        resume_readable(lot, guard.get_inner_mut(), &mut events)?;
                        guard.clear_ready();
                        Ok(())
                    });
                    if let Err(err) = drained {
                        tracing::error!(error = %err, "the parking lot's poller failed; idle connections are no longer parked");
                        lot.fail();
                        return;
                    }
                }
                () = sweep => next_sweep = lot.sweep(Instant::now()),
                () = lot.first_parked.notified() => {
                    next_sweep = next_sweep.or_else(|| Some(Instant::now() + SWEEP_EVERY));
                }
            }
        }
    }
}

/// A fresh engine task for a connection out of the lot (or one it could
/// not take), with the deadline its wait had.
fn serve_again(stream: std::net::TcpStream, peer: IpAddr, deadline: Instant, held: Held) {
    match TcpStream::from_std(stream) {
        Ok(stream) => {
            tokio::spawn(engine::serve(stream, held, peer, Start::Resumed(deadline)));
        }
        Err(err) => {
            tracing::debug!(error = %err, %peer, "cannot resume a parked connection; closed")
        }
    }
}

/// Resumes every connection the poller reports, until it reports none.
fn resume_readable(lot: &Lot, poll: &mut mio::Poll, events: &mut Events) -> io::Result<()> {
    loop {
        match poll.poll(events, Some(Duration::ZERO)) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        }
        if events.is_empty() {
            return Ok(());
        }
        for event in events.iter() {
            lot.resume(event.token().0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{serve, ListenerOptions};
    use super::*;
    use crate::cookie_key::CookieKey;
    use crate::engine::QUIET_BEFORE_PARKING;
    use crate::routing::Gateway;
    use portcullis_config::Engine;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::watch;
    use tokio::task::JoinHandle;

    const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";

    struct Listening {
        addr: std::net::SocketAddr,
        gateway: Arc<Gateway>,
        stop: watch::Sender<bool>,
        serving: JoinHandle<()>,
    }

    /// A listener on the own engine with no routes (every request gets a
    /// 404 from the gateway itself).
    async fn listening(header_read_timeout: Duration, max_connections: usize) -> Listening {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gateway = Arc::new(Gateway::new(
            "m1",
            "gateway",
            ".".into(),
            CookieKey::random(),
        ));
        let options = ListenerOptions {
            tls: None,
            max_connections,
            header_read_timeout,
            shutdown_grace: Duration::from_secs(30),
            engine: Engine::Portcullis,
        };
        let (stop, stopping) = watch::channel(false);
        let serving = tokio::spawn(serve(listener, gateway.clone(), options, stopping));
        Listening {
            addr,
            gateway,
            stop,
            serving,
        }
    }

    /// Reads one response head (the gateway's 404 has a small body, read
    /// with it or dropped with the next read's start check).
    async fn response(client: &mut TcpStream) -> String {
        let mut reply = vec![0u8; 4096];
        let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut reply)).await;
        let n = read.expect("a response within 5 s").unwrap();
        String::from_utf8_lossy(&reply[..n]).into_owned()
    }

    /// A client whose one request was answered (when: the instant) and whose
    /// connection then parked.
    async fn served_then_parked(listening: &Listening) -> (TcpStream, std::time::Instant) {
        let mut client = TcpStream::connect(listening.addr).await.unwrap();
        client.write_all(REQUEST).await.unwrap();
        assert!(response(&mut client).await.starts_with("HTTP/1.1 "));
        let answered = std::time::Instant::now();
        wait_parked(&listening.gateway, 1).await;
        (client, answered)
    }

    async fn wait_parked(gateway: &Gateway, parks: u64) {
        let started = std::time::Instant::now();
        while gateway.parked_connections() < parks {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "never parked ({} parks)",
                gateway.parked_connections()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(gateway.parked_connections(), parks);
    }

    /// Whether the server closed `client` within `limit`.
    async fn closed_within(client: &mut TcpStream, limit: Duration) -> bool {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(limit, client.read(&mut byte)).await;
        matches!(read, Ok(Ok(0)) | Ok(Err(_)))
    }

    #[tokio::test]
    async fn a_parked_connection_resumes_and_serves_requests_sent_in_pieces() {
        let listening = listening(Duration::from_secs(10), 8).await;
        let (mut client, _) = served_then_parked(&listening).await;
        // The next request arrives in pieces: the first wakes the
        // connection, the rest reach its fresh task.
        for piece in REQUEST.chunks(9) {
            client.write_all(piece).await.unwrap();
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        assert!(response(&mut client).await.starts_with("HTTP/1.1 "));
        // Quiet again: parked again, and serves again.
        wait_parked(&listening.gateway, 2).await;
        client.write_all(REQUEST).await.unwrap();
        assert!(response(&mut client).await.starts_with("HTTP/1.1 "));
        listening.stop.send(true).unwrap();
        listening.serving.await.unwrap();
    }

    #[tokio::test]
    async fn a_parked_connection_is_closed_at_its_idle_limit() {
        let limit = Duration::from_millis(700);
        let listening = listening(limit, 8).await;
        let (mut client, answered) = served_then_parked(&listening).await;
        assert!(closed_within(&mut client, Duration::from_secs(3)).await);
        let idle = answered.elapsed();
        // The limit counts from the wait's start (the response), parking
        // does not lengthen it, and the sweep closes it soon after.
        assert!(
            idle >= limit - Duration::from_millis(50) && idle < limit + SWEEP_EVERY * 3,
            "closed after {idle:?}"
        );
        listening.stop.send(true).unwrap();
        listening.serving.await.unwrap();
    }

    /// Woken by the start of a head, a parked connection keeps the deadline
    /// its wait began with: parking gives a slow client no extra time.
    #[tokio::test]
    async fn a_head_started_after_parking_keeps_the_first_deadline() {
        let limit = Duration::from_millis(800);
        let listening = listening(limit, 8).await;
        let (mut client, answered) = served_then_parked(&listening).await;
        tokio::time::sleep(Duration::from_millis(400).saturating_sub(answered.elapsed())).await;
        client.write_all(b"GET / HT").await.unwrap();
        assert!(closed_within(&mut client, Duration::from_secs(3)).await);
        let waited = answered.elapsed();
        // A fresh limit from the partial head would end at 1.2 s or later.
        assert!(
            waited >= limit - Duration::from_millis(50) && waited < Duration::from_millis(1100),
            "closed after {waited:?}"
        );
        listening.stop.send(true).unwrap();
        listening.serving.await.unwrap();
    }

    #[tokio::test]
    async fn shutdown_closes_parked_connections_at_once() {
        let listening = listening(Duration::from_secs(30), 8).await;
        let (mut client, _) = served_then_parked(&listening).await;
        let started = std::time::Instant::now();
        listening.stop.send(true).unwrap();
        assert!(closed_within(&mut client, Duration::from_secs(2)).await);
        tokio::time::timeout(Duration::from_secs(2), listening.serving)
            .await
            .expect("the listener returns once its parked connection closed")
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    /// A parked connection keeps its slot; the client closing it frees it.
    #[tokio::test]
    async fn a_client_closing_a_parked_connection_frees_its_slot() {
        let listening = listening(Duration::from_secs(30), 1).await;
        let mut first = TcpStream::connect(listening.addr).await.unwrap();
        first.write_all(REQUEST).await.unwrap();
        assert!(response(&mut first).await.starts_with("HTTP/1.1 "));
        wait_parked(&listening.gateway, 1).await;
        let mut second = TcpStream::connect(listening.addr).await.unwrap();
        second.write_all(REQUEST).await.unwrap();
        let mut byte = [0u8; 1];
        let early = tokio::time::timeout(Duration::from_millis(300), second.read(&mut byte)).await;
        assert!(
            early.is_err(),
            "served while the parked one holds the only slot"
        );
        drop(first);
        assert!(response(&mut second).await.starts_with("HTTP/1.1 "));
        listening.stop.send(true).unwrap();
        listening.serving.await.unwrap();
    }

    #[tokio::test]
    async fn connections_under_continuous_load_never_park() {
        let listening = listening(Duration::from_secs(10), 8).await;
        let mut client = TcpStream::connect(listening.addr).await.unwrap();
        let started = std::time::Instant::now();
        let mut served = 0;
        while started.elapsed() < QUIET_BEFORE_PARKING * 20 {
            client.write_all(REQUEST).await.unwrap();
            assert!(response(&mut client).await.starts_with("HTTP/1.1 "));
            served += 1;
            tokio::time::sleep(QUIET_BEFORE_PARKING / 10).await;
        }
        // A request every few milliseconds: no wait comes near the quiet
        // limit. One park is tolerated for a scheduling stall of a whole
        // limit on a loaded machine (as the hyper path's test does); the
        // connection kept serving either way.
        let parks = listening.gateway.parked_connections();
        assert!(parks <= 1, "{parks} parks during {served} requests");
        assert!(served >= 40, "{served}");
        listening.stop.send(true).unwrap();
        listening.serving.await.unwrap();
    }

    #[test]
    fn entries_reuse_freed_keys_and_expire_by_deadline() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (lot, _poller) = open().unwrap();
            assert_eq!(lot.len(), 0);
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (stream, peer) = listener.accept().unwrap();
            let now = Instant::now();
            let mut parked = Parked::default();
            let entry = |stream: std::net::TcpStream, deadline| Entry {
                stream,
                peer: peer.ip(),
                deadline,
                held: test_held(),
            };
            let a = parked
                .entries
                .insert(entry(stream.try_clone().unwrap(), now));
            let b = parked
                .entries
                .insert(entry(stream, now + Duration::from_secs(5)));
            assert_eq!((a, b, parked.entries.len()), (0, 1, 2));
            assert_eq!(parked.expired(now).len(), 1);
            assert_eq!(parked.entries.len(), 1);
            assert!(parked.entries.try_remove(a).is_none());
            assert!(parked.entries.try_remove(b).is_some());
            assert_eq!(parked.entries.len(), 0);
        });
    }

    /// A parked connection is its entry (and the kernel's socket): no task,
    /// no registration with tokio's reactor, no client context.
    #[test]
    fn a_parked_connection_is_a_small_entry() {
        let entry = std::mem::size_of::<Option<Entry>>();
        let context = std::mem::size_of::<crate::http::ClientContext>();
        eprintln!("parked entry: {entry} bytes; a task's client context: {context} bytes");
        assert!(entry <= 48, "{entry} bytes");
    }

    fn test_held() -> Held {
        Held(super::super::test_accepting(Engine::Portcullis))
    }
}
