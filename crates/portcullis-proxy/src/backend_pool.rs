//! Keep-alive connections to a service's plain HTTP/1.1 backends, for the
//! own engine (`crate::engine`).
//!
//! No task watches an idle connection. Before one is reused, its readiness
//! (as the reactor last saw it, no system call) says whether the backend
//! closed it or sent something unasked; such a connection is dropped. A
//! close that races with the reuse is the pipeline's stale-connection resend
//! (PRODUCT.md §9).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bytes::BytesMut;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Idle connections are closed after this long: under common backend
/// keep-alive timeouts, as for hyper's pool (`crate::client`).
const POOL_IDLE: Duration = Duration::from_secs(50);

/// Most idle connections kept per backend.
const MAX_IDLE_PER_BACKEND: usize = 1024;

/// A connection to one backend, with the bytes read ahead of the current
/// response.
#[derive(Debug)]
pub(crate) struct BackendConn {
    pub(crate) stream: TcpStream,
    pub(crate) buf: BytesMut,
    /// Requests sent on it so far (0 for a new connection).
    pub(crate) used: u32,
}

#[derive(Debug)]
struct Idle {
    conn: BackendConn,
    /// When the connection has been idle too long to be reused.
    expires: Instant,
}

/// One thread's idle connections, by backend authority (`host:port`). A
/// service has a handful of backends: a walk comparing a few bytes costs
/// less than hashing the authority twice per request (callgrind).
type ByAuthority = Vec<(Box<str>, Vec<Idle>)>;

/// Idle connections of one service, by backend authority, and by thread
/// when each thread runs its own runtime ([`keep_per_thread`]): a
/// connection's readiness is delivered by the runtime that registered it, so
/// there a connection stays with the runtime that opened it.
#[derive(Debug, Default)]
pub struct Pool {
    /// By [`owner`]: slot 0 for the shared runtime, else the thread's slot.
    idle: Mutex<Vec<ByAuthority>>,
}

impl Pool {
    /// The most recently used live connection to `authority` that has not
    /// been idle too long as of `now` (the caller's clock read: when its
    /// request arrived, microseconds earlier, saves a read), if any.
    pub(crate) fn take(&self, authority: &str, now: Instant) -> Option<BackendConn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = find(idle.get_mut(owner())?, authority)?;
        while let Some(entry) = list.pop() {
            if now < entry.expires && is_quiet(&entry.conn) {
                return Some(entry.conn);
            }
        }
        None
    }

    /// Keeps `conn` for the next request to `authority`. Only a connection
    /// whose last response was read completely may come back.
    pub(crate) fn put(&self, authority: &str, conn: BackendConn) {
        self.put_idle_since(authority, conn, Instant::now());
    }

    /// `put`, with the connection idle since `idle_since`. (Taking the time
    /// from the response's body instead of reading the clock made that
    /// body 16 bytes bigger, which moved its box to a slower allocator
    /// path: callgrind, issue 13, ninth session.)
    pub(crate) fn put_idle_since(
        &self,
        authority: &str,
        mut conn: BackendConn,
        idle_since: Instant,
    ) {
        if !conn.buf.is_empty() {
            // Bytes after a complete response: the backend is not speaking
            // HTTP/1.1 as we read it. Never reuse such a connection.
            return;
        }
        // An idle connection keeps no buffer: its block goes to the thread's
        // spares, where the next head read takes it once the last body
        // frame cut from it is written. (Keeping it in the connection saved
        // as much but raised the idle memory per client connection by about
        // 400 B in `bench/perf/idle.sh`; the spares are a few per thread.)
        drop(crate::spare::give_back_read(std::mem::take(&mut conn.buf)));
        let slot = owner();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() <= slot {
            idle.resize_with(slot + 1, Vec::new);
        }
        let by_authority = &mut idle[slot];
        let list = match by_authority.iter().position(|(a, _)| **a == *authority) {
            Some(at) => &mut by_authority[at].1,
            None => {
                by_authority.push((authority.into(), Vec::new()));
                &mut by_authority.last_mut().expect("just pushed").1
            }
        };
        if list.len() < MAX_IDLE_PER_BACKEND {
            list.push(Idle {
                conn,
                expires: idle_since + POOL_IDLE,
            });
        }
    }

    /// Idle connections held, for tests and the admin view.
    pub fn idle_count(&self) -> usize {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.iter().flatten().map(|(_, list)| list.len()).sum()
    }
}

fn find<'a>(by_authority: &'a mut ByAuthority, authority: &str) -> Option<&'a mut Vec<Idle>> {
    by_authority
        .iter_mut()
        .find(|(a, _)| **a == *authority)
        .map(|(_, list)| list)
}

static PER_THREAD: AtomicBool = AtomicBool::new(false);

/// Keeps idle connections per thread from now on: for processes that run a
/// current-thread runtime per core. With one shared runtime every worker may
/// use every connection.
pub fn keep_per_thread() {
    PER_THREAD.store(true, Ordering::Relaxed);
}

static NEXT_SLOT: AtomicUsize = AtomicUsize::new(1);

thread_local! {
    /// This thread's slot in every pool, handed out at its first use.
    static SLOT: usize = NEXT_SLOT.fetch_add(1, Ordering::Relaxed);
}

/// The pool slot of the calling thread: a thread-local read, where hashing
/// the thread's id took `thread::current()` (a reference count) and a hash.
fn owner() -> usize {
    if PER_THREAD.load(Ordering::Relaxed) {
        SLOT.with(|slot| *slot)
    } else {
        0
    }
}

/// True when the backend has neither closed the connection nor sent bytes
/// nobody asked for.
fn is_quiet(conn: &BackendConn) -> bool {
    // `try_read` answers "would block" without a system call when the
    // reactor has seen nothing readable (the last response's short read
    // cleared the readiness); otherwise it reads: end-of-file, an error or
    // stray bytes, unless the readiness was stale. A readiness poll first
    // cost about 100 instructions more (callgrind).
    let mut probe = [0u8; 1];
    matches!(conn.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn pair() -> (BackendConn, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let conn = BackendConn {
            stream: client.unwrap(),
            buf: BytesMut::new(),
            used: 1,
        };
        (conn, accepted.unwrap().0)
    }

    #[tokio::test]
    async fn a_live_connection_comes_back_and_a_closed_one_does_not() {
        let pool = Pool::default();
        let (live, _live_peer) = pair().await;
        let (closed, closed_peer) = pair().await;
        pool.put("a:1", live);
        pool.put("b:1", closed);
        drop(closed_peer);
        // Let the reactor see the FIN.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = Instant::now();
        assert!(
            pool.take("b:1", now).is_none(),
            "a closed connection is dropped"
        );
        assert!(pool.take("a:1", now).is_some());
        assert!(pool.take("a:1", now).is_none(), "taken once");
    }

    #[tokio::test]
    async fn a_connection_idle_too_long_is_not_taken() {
        let pool = Pool::default();
        let (old, _old_peer) = pair().await;
        let (fresh, _fresh_peer) = pair().await;
        let now = Instant::now();
        pool.put_idle_since("a:1", fresh, now - POOL_IDLE / 2);
        pool.put_idle_since("a:1", old, now - POOL_IDLE - Duration::from_millis(1));
        // The old one is on top (most recently put) but expired.
        assert!(pool.take("a:1", now).is_some());
        assert_eq!(pool.idle_count(), 0);
        assert!(pool.take("a:1", now).is_none());
    }

    #[tokio::test]
    async fn a_connection_with_stray_bytes_is_dropped() {
        let pool = Pool::default();
        let (conn, mut peer) = pair().await;
        pool.put("a:1", conn);
        peer.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(pool.take("a:1", Instant::now()).is_none());
    }

    #[tokio::test]
    async fn a_connection_with_unread_bytes_is_not_kept() {
        let pool = Pool::default();
        let (mut conn, _peer) = pair().await;
        conn.buf.extend_from_slice(b"x");
        pool.put("a:1", conn);
        assert_eq!(pool.idle_count(), 0);
    }
}
