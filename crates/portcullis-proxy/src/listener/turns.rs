//! Fair accepting among runtimes that share one listening socket.
//!
//! Per-core runtimes each poll their own descriptor of the same socket, and
//! every one of them is woken when a connection arrives. Left alone, the
//! first to wake accepts the whole burst: measured with 10 connections of
//! 1 MiB responses, one runtime served all ten and the other none, so one
//! core did the work of two. Here a runtime accepts only while no other
//! runtime of its group has fewer live connections (ties accept), so the
//! connections spread evenly and the least loaded runtime is always free to
//! accept, which means a connection never waits for a turn that no runtime
//! can take. A connection, once accepted, stays on its runtime.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

use super::sources::Sources;

/// The live connection counts of the runtimes sharing a socket.
#[derive(Debug)]
pub struct AcceptGroup {
    live: Box<[AtomicUsize]>,
    /// Signalled whenever a count changes, for runtimes waiting their turn.
    changed: Notify,
    /// Sources cooling off after HTTP/2 abuse, for every member.
    pub(crate) sources: Arc<Sources>,
}

impl AcceptGroup {
    /// A group of `members` runtimes (at least one).
    pub fn new(members: usize) -> Arc<AcceptGroup> {
        Arc::new(AcceptGroup {
            live: (0..members.max(1)).map(|_| AtomicUsize::new(0)).collect(),
            changed: Notify::new(),
            sources: Arc::default(),
        })
    }

    /// Member `index`'s handle (indexes past the end wrap around).
    pub fn turn(self: &Arc<Self>, index: usize) -> Turn {
        Turn {
            index: index % self.live.len(),
            group: self.clone(),
        }
    }

    /// Live connections of member `index`.
    pub fn live(&self, index: usize) -> usize {
        self.live[index % self.live.len()].load(Ordering::Relaxed)
    }
}

/// One runtime's place in its [`AcceptGroup`].
#[derive(Debug, Clone)]
pub struct Turn {
    group: Arc<AcceptGroup>,
    index: usize,
}

impl Turn {
    /// No other member has fewer live connections.
    fn is_mine(&self) -> bool {
        let live = &self.group.live;
        let mine = live[self.index].load(Ordering::Relaxed);
        live.iter()
            .all(|other| mine <= other.load(Ordering::Relaxed))
    }

    /// Resolves when this member may accept.
    pub(crate) async fn wait(&self) {
        loop {
            let changed = self.group.changed.notified();
            tokio::pin!(changed);
            // Registered before the check, so a change between the check and
            // the wait is not missed.
            changed.as_mut().enable();
            if self.is_mine() {
                return;
            }
            changed.await;
        }
    }

    /// The group's sources cooling off.
    pub(crate) fn sources(&self) -> Arc<Sources> {
        self.group.sources.clone()
    }

    /// A connection accepted by this member.
    pub(crate) fn joined(&self) {
        self.group.live[self.index].fetch_add(1, Ordering::Relaxed);
        self.group.changed.notify_waiters();
    }

    /// One of this member's connections ended.
    pub(crate) fn left(&self) {
        self.group.live[self.index].fetch_sub(1, Ordering::Relaxed);
        self.group.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn the_least_loaded_member_accepts_and_ties_both_may() {
        let group = AcceptGroup::new(2);
        let (first, second) = (group.turn(0), group.turn(1));
        assert!(first.is_mine() && second.is_mine(), "a tie");
        first.joined();
        assert!(!first.is_mine() && second.is_mine());
        second.joined();
        second.joined();
        assert!(first.is_mine() && !second.is_mine());
        assert_eq!((group.live(0), group.live(1)), (1, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_member_gets_its_turn_when_a_count_changes() {
        let group = AcceptGroup::new(2);
        let (first, second) = (group.turn(0), group.turn(1));
        first.joined();
        let waiting = tokio::spawn(async move { first.wait().await });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiting.is_finished(), "member 0 has more connections");
        second.joined();
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("a tie lets member 0 accept again")
            .unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_leaving_gives_its_member_the_turn_back() {
        let group = AcceptGroup::new(2);
        let (first, second) = (group.turn(0), group.turn(1));
        first.joined();
        first.joined();
        second.joined();
        let waiting = tokio::spawn({
            let first = first.clone();
            async move { first.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(!waiting.is_finished());
        first.left();
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("1 and 1: member 0's turn")
            .unwrap();
    }

    /// Two current-thread runtimes on one socket, as `PORTCULLIS_PER_CORE`
    /// runs them: a burst of connections opened at once ends up split
    /// evenly, not all on the runtime that woke first.
    #[test]
    fn two_runtimes_on_one_socket_split_a_burst_of_connections() {
        use crate::cookie_key::CookieKey;
        use crate::listener::{serve_in_group, ListenerOptions};
        use crate::routing::Gateway;
        use std::io::{Read, Write};

        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let gateway = Arc::new(Gateway::new(
            "m1",
            "gateway",
            ".".into(),
            CookieKey::random(),
        ));
        let options = ListenerOptions {
            tls: None,
            max_connections: 100,
            header_read_timeout: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(5),
            engine: portcullis_config::Engine::Portcullis,
        };
        let group = AcceptGroup::new(2);
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let runtimes: Vec<_> = (0..2)
            .map(|core| {
                let listener = listener.try_clone().unwrap();
                let (gateway, options) = (gateway.clone(), options.clone());
                let (stopping, turn) = (stopping.clone(), group.turn(core));
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    runtime.block_on(async move {
                        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                        serve_in_group(listener, gateway, options, stopping, turn).await
                    })
                })
            })
            .collect();
        let mut clients: Vec<std::net::TcpStream> = (0..20)
            .map(|_| std::net::TcpStream::connect(addr).unwrap())
            .collect();
        for client in &mut clients {
            client
                .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                .unwrap();
            let mut reply = [0u8; 12];
            client.read_exact(&mut reply).unwrap();
            assert!(reply.starts_with(b"HTTP/1.1 "));
        }
        let counts = (group.live(0), group.live(1));
        assert_eq!(counts.0 + counts.1, 20, "{counts:?}");
        assert!(counts.0.abs_diff(counts.1) <= 2, "{counts:?}");
        stop.send(true).unwrap();
        drop(clients);
        for runtime in runtimes {
            runtime.join().unwrap();
        }
        assert_eq!(
            (group.live(0), group.live(1)),
            (0, 0),
            "every connection left"
        );
    }
}
