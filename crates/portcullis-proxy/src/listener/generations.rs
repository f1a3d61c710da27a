//! A listener's generations: the settings a connection is served with
//! (header timeout, connection cap, grace period) are fixed when it is
//! accepted, in its listener's shared state. A reload that changes them
//! starts a new generation on the same socket: the old one stops accepting
//! but keeps its connections, with the settings they were accepted under,
//! until they end or the listener shuts down. Nothing per request changes,
//! and no connection is closed by a reload.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{accept, accepting_state, stopped, Accepting, ListenerOptions, Turn, DRAIN_GENTLY};
use crate::routing::Gateway;

/// [`super::serve`] with settings that may change while it serves: each new
/// value of `options` (passed through `adjust`, e.g. to take a runtime's
/// share of the connection cap) applies to the connections accepted from
/// then on. Returns when `shutdown` turns true and every generation has
/// drained within its grace period.
pub async fn serve_reloadable(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    mut options: watch::Receiver<ListenerOptions>,
    shutdown: watch::Receiver<bool>,
    turn: Option<Turn>,
    adjust: impl Fn(ListenerOptions) -> ListenerOptions,
) {
    let local_port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    let mut retired = JoinSet::new();
    let current = loop {
        let settings = adjust(options.borrow_and_update().clone());
        let mut generation = Generation::start(
            local_port,
            gateway.clone(),
            settings,
            shutdown.clone(),
            turn.clone(),
        );
        tokio::select! {
            // A new setting wins over a connection waiting to be accepted.
            biased;
            () = updated(&mut options) => {
                tracing::info!(port = local_port, "listener settings changed; new connections get them");
                retired.spawn(generation.retire(shutdown.clone()));
            }
            () = generation.accept(&listener, shutdown.clone()) => break generation,
        }
    };
    // Closed before draining, so new clients are refused (or, after a hot
    // restart, served by the process that holds the socket now).
    drop(listener);
    current.drain().await;
    while retired.join_next().await.is_some() {}
}

/// Resolves when `options` holds a new value; never once its sender is gone.
async fn updated(options: &mut watch::Receiver<ListenerOptions>) {
    if options.changed().await.is_err() {
        std::future::pending::<()>().await
    }
}

/// One generation: its shared state and the watch over its parking lot.
struct Generation {
    accepting: Arc<Accepting>,
    /// The lot's poller, for as long as the generation has connections; it
    /// never resolves (if the poller fails, the lot is closed and this
    /// waits for ever).
    watching: Pin<Box<dyn Future<Output = ()> + Send>>,
    max_connections: usize,
    shutdown_grace: Duration,
    local_port: u16,
}

impl Generation {
    fn start(
        local_port: u16,
        gateway: Arc<Gateway>,
        options: ListenerOptions,
        shutdown: watch::Receiver<bool>,
        turn: Option<Turn>,
    ) -> Generation {
        let (accepting, poller) = accepting_state(local_port, gateway, &options, shutdown, turn);
        let watched = accepting.clone();
        let watching = Box::pin(async move {
            if let (Some(poller), Some(lot)) = (poller, &watched.lot) {
                poller.watch(lot).await;
            }
            std::future::pending::<()>().await
        });
        Generation {
            accepting,
            watching,
            max_connections: options.max_connections,
            shutdown_grace: options.shutdown_grace,
            local_port,
        }
    }

    /// Accepts until shutdown, watching the lot meanwhile.
    async fn accept(&mut self, listener: &TcpListener, shutdown: watch::Receiver<bool>) {
        tokio::select! {
            () = accept(listener, &self.accepting, self.max_connections, shutdown) => {}
            () = &mut self.watching => {}
        }
    }

    /// A replaced generation: serves its connections until they end, or
    /// drains them when the listener shuts down.
    async fn retire(mut self, mut shutdown: watch::Receiver<bool>) {
        let accepting = &self.accepting;
        let all_ended = accepting.slots.acquire_many(accepting.slot_count);
        tokio::select! {
            _ = all_ended => return,
            () = stopped(&mut shutdown) => {}
            () = &mut self.watching => {}
        }
        self.drain().await
    }

    /// Ends the generation's connections as shutdown asks (gently after a
    /// hot restart, else idle ones at once), within the grace period.
    async fn drain(mut self) {
        let gently = DRAIN_GENTLY.load(Ordering::Relaxed);
        let stopping = self.accepting.engine_setup.stopping();
        if gently {
            stopping.begin_gently();
        } else {
            stopping.begin();
            self.close_lot();
        }
        tracing::info!(
            port = self.local_port,
            parked = self.accepting.gateway.parked_connections(),
            gently,
            "listener closed; finishing in-flight requests"
        );
        let accepting = &self.accepting;
        // Every slot back: every connection has ended.
        let all_ended = accepting.slots.acquire_many(accepting.slot_count);
        let drained = async {
            tokio::select! {
                _ = all_ended => {}
                () = &mut self.watching => {}
            }
        };
        if tokio::time::timeout(self.shutdown_grace, drained)
            .await
            .is_err()
        {
            tracing::warn!(grace = ?self.shutdown_grace, "shutdown grace expired with requests still in flight");
        }
    }

    fn close_lot(&self) {
        if let Some(lot) = &self.accepting.lot {
            lot.close_all();
        }
    }
}

/// Parked entries hold the generation's state, so they must not outlive
/// it, however its task ends.
impl Drop for Generation {
    fn drop(&mut self) {
        self.close_lot();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cookie_key::CookieKey;
    use portcullis_config::Engine;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    fn options(header_read_timeout: Duration) -> ListenerOptions {
        ListenerOptions {
            tls: None,
            max_connections: 8,
            header_read_timeout,
            shutdown_grace: Duration::from_secs(5),
            engine: Engine::Portcullis,
        }
    }

    async fn answered(client: &mut TcpStream) -> bool {
        let request = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
        if client.write_all(request).await.is_err() {
            return false;
        }
        let mut reply = vec![0u8; 4096];
        let n = client.read(&mut reply).await.unwrap_or(0);
        reply[..n].starts_with(b"HTTP/1.1 ")
    }

    /// After a settings change, a connection accepted before keeps its
    /// settings and stays open; one accepted after gets the new ones.
    #[tokio::test]
    async fn new_settings_apply_to_new_connections_and_close_none() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let gateway = Arc::new(Gateway::new(
            "m1",
            "gateway",
            ".".into(),
            CookieKey::random(),
        ));
        let (update, updates) = watch::channel(options(Duration::from_secs(30)));
        let (stop, stopping) = watch::channel(false);
        let serving = tokio::spawn(serve_reloadable(
            listener,
            gateway,
            updates,
            stopping,
            None,
            |options| options,
        ));
        let mut before = TcpStream::connect(addr).await.unwrap();
        assert!(answered(&mut before).await);
        update.send(options(Duration::from_millis(300))).unwrap();
        // A connection that sends nothing meets the new header timeout.
        let mut after = TcpStream::connect(addr).await.unwrap();
        let started = std::time::Instant::now();
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(Duration::from_secs(10), after.read(&mut buf)).await;
        assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // The earlier connection, idle for longer than that, still serves.
        assert!(
            answered(&mut before).await,
            "the old generation's connection"
        );
        stop.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(10), serving)
            .await
            .expect("every generation drains")
            .unwrap();
    }
}
