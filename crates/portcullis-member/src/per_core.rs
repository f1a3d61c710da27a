//! One current-thread runtime per core, each polling its own descriptor of
//! the gateway's listening socket (the nginx and Pingora model), instead of
//! the process's multi-thread runtime. The runtimes take turns to accept
//! (`portcullis_proxy::AcceptGroup`), so connections spread evenly, and each
//! has its share of `max_connections`. `portcullis serve` uses it by default
//! with one runtime per worker (measured in docs/benchmarks.md);
//! `PORTCULLIS_PER_CORE=N` sets the count, and `0` turns it off. Members
//! started in-process (the tests') keep the caller's runtime unless the
//! binary's default is set, so a paused test clock still drives them.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use portcullis_proxy::{AcceptGroup, Gateway, ListenerOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;

/// The count used when `PORTCULLIS_PER_CORE` is not set (0: off).
static DEFAULT_CORES: AtomicUsize = AtomicUsize::new(0);

/// Serves the gateway listener of members started from now on from `cores`
/// per-core runtimes, unless `PORTCULLIS_PER_CORE` says otherwise. The
/// binary's `serve` sets it once, before starting its member.
pub fn serve_per_core_by_default(cores: usize) {
    DEFAULT_CORES.store(cores, Ordering::Relaxed);
}

/// How many per-core runtimes to start (0: serve on the shared runtime).
pub(crate) fn cores() -> usize {
    match std::env::var("PORTCULLIS_PER_CORE") {
        Ok(value) => value.trim().parse().unwrap_or_else(|_| {
            tracing::warn!(
                value,
                "PORTCULLIS_PER_CORE is not a number; serving on the shared runtime"
            );
            0
        }),
        Err(_) => DEFAULT_CORES.load(Ordering::Relaxed),
    }
}

/// Serves the gateway from `cores` threads, each a current-thread runtime
/// polling its own descriptor of `first`'s socket. One socket, not one per
/// core with SO_REUSEPORT: each of those would have its own accept queue, so
/// connections queued on one that closes (the start-up listener, a runtime
/// that ends) would be reset, and a second process on the same port would
/// silently get half the connections instead of "address in use". If the
/// descriptors cannot be made, `first` is served here as usual. The threads
/// end when `shutdown` turns true or its sender is dropped.
pub(crate) fn spawn(
    cores: usize,
    first: TcpListener,
    gateway: Arc<Gateway>,
    options: watch::Receiver<ListenerOptions>,
    shutdown: watch::Receiver<bool>,
) -> AbortOnDropHandle<()> {
    let descriptors: std::io::Result<Vec<std::net::TcpListener>> = (0..cores)
        .map(|_| socket2::SockRef::from(&first).try_clone().map(Into::into))
        .collect();
    let listeners = match descriptors {
        Ok(listeners) => listeners,
        Err(err) => {
            tracing::error!(error = %err, "per-core listeners failed; serving on the shared runtime");
            let serving = portcullis_proxy::listener::serve_reloadable(
                first,
                gateway,
                options,
                shutdown,
                None,
                |options| options,
            );
            return AbortOnDropHandle::new(tokio::spawn(serving));
        }
    };
    // The socket stays open through the other descriptors.
    drop(first);
    portcullis_proxy::backend_pool::keep_per_thread();
    let group = AcceptGroup::new(cores);
    let mut threads = Vec::new();
    for (core, listener) in listeners.into_iter().enumerate() {
        let (gateway, shutdown) = (gateway.clone(), shutdown.clone());
        let options = options.clone();
        let turn = group.turn(core);
        let thread = std::thread::Builder::new()
            .name(format!("gateway-{core}"))
            .spawn(move || {
                serve_on_own_runtime(listener, gateway, options, shutdown, turn, (core, cores))
            });
        match thread {
            Ok(thread) => threads.push(thread),
            Err(err) => tracing::error!(error = %err, core, "cannot start a gateway thread"),
        }
    }
    AbortOnDropHandle::new(tokio::task::spawn_blocking(move || {
        for thread in threads {
            let _ = thread.join();
        }
    }))
}

/// Runtime `core`'s part of the connection cap: the shares add up to
/// `max`, and none is zero (a listener with no slot would never accept).
fn share(max: usize, cores: usize, core: usize) -> usize {
    let cores = cores.max(1);
    (max / cores + usize::from(core < max % cores)).max(1)
}

fn serve_on_own_runtime(
    listener: std::net::TcpListener,
    gateway: Arc<Gateway>,
    options: watch::Receiver<ListenerOptions>,
    shutdown: watch::Receiver<bool>,
    turn: portcullis_proxy::listener::Turn,
    (core, cores): (usize, usize),
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .on_thread_park(crate::logging::flush_access_lines)
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return tracing::error!(error = %err, "cannot start a gateway runtime"),
    };
    runtime.block_on(async move {
        match TcpListener::from_std(listener) {
            Ok(listener) => {
                // This runtime's share of the cap, whatever the cap becomes.
                let share_of = move |options: ListenerOptions| ListenerOptions {
                    max_connections: share(options.max_connections, cores, core),
                    ..options
                };
                let turn = Some(turn);
                portcullis_proxy::listener::serve_reloadable(
                    listener, gateway, options, shutdown, turn, share_of,
                )
                .await
            }
            Err(err) => tracing::error!(error = %err, "cannot register a gateway listener"),
        }
    });
    // The last requests' lines, before the member's exit can end this
    // thread without its destructors.
    crate::logging::flush_access_lines();
}

#[cfg(test)]
mod tests {
    use super::share;

    #[test]
    fn the_shares_add_up_to_the_cap() {
        for (max, cores) in [(30_000, 2), (7, 3), (1, 4), (10, 1)] {
            let shares: Vec<usize> = (0..cores).map(|core| share(max, cores, core)).collect();
            assert!(shares.iter().all(|&s| s >= 1), "{shares:?}");
            if max >= cores {
                assert_eq!(shares.iter().sum::<usize>(), max, "{shares:?}");
            }
        }
        assert_eq!(share(7, 3, 0), 3);
        assert_eq!(share(7, 3, 2), 2);
    }
}
