//! One current-thread runtime per core, each polling its own descriptor of
//! the gateway's listening socket (the nginx and Pingora model), instead of
//! the process's multi-thread runtime. Turned on with `PORTCULLIS_PER_CORE=N`.
//! Not the default: it serves about 10% more small requests per second but
//! about 25% less 1 MiB throughput than the shared runtime
//! (docs/benchmarks.md).

use std::sync::Arc;

use portcullis_proxy::{Gateway, ListenerOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;

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
        Err(_) => 0,
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
    options: ListenerOptions,
    shutdown: watch::Receiver<bool>,
) -> AbortOnDropHandle<()> {
    let descriptors: std::io::Result<Vec<std::net::TcpListener>> = (0..cores)
        .map(|_| socket2::SockRef::from(&first).try_clone().map(Into::into))
        .collect();
    let listeners = match descriptors {
        Ok(listeners) => listeners,
        Err(err) => {
            tracing::error!(error = %err, "per-core listeners failed; serving on the shared runtime");
            let serving = portcullis_proxy::serve(first, gateway, options, shutdown);
            return AbortOnDropHandle::new(tokio::spawn(serving));
        }
    };
    // The socket stays open through the other descriptors.
    drop(first);
    portcullis_proxy::backend_pool::keep_per_thread();
    let mut threads = Vec::new();
    for (core, listener) in listeners.into_iter().enumerate() {
        let (gateway, options, shutdown) = (gateway.clone(), options.clone(), shutdown.clone());
        let thread = std::thread::Builder::new()
            .name(format!("gateway-{core}"))
            .spawn(move || serve_on_own_runtime(listener, gateway, options, shutdown));
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

fn serve_on_own_runtime(
    listener: std::net::TcpListener,
    gateway: Arc<Gateway>,
    options: ListenerOptions,
    shutdown: watch::Receiver<bool>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return tracing::error!(error = %err, "cannot start a gateway runtime"),
    };
    runtime.block_on(async move {
        match TcpListener::from_std(listener) {
            Ok(listener) => portcullis_proxy::serve(listener, gateway, options, shutdown).await,
            Err(err) => tracing::error!(error = %err, "cannot register a gateway listener"),
        }
    });
}
