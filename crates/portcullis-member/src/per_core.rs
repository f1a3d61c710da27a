//! Experimental (issue 13): one current-thread runtime per core, each with
//! its own SO_REUSEPORT listener on the gateway's address (the nginx and
//! Pingora model), instead of the process's multi-thread runtime. Turned on
//! with `PORTCULLIS_PER_CORE=N`; measured in docs/benchmarks.md. Not the
//! default yet: see the notes there.

use std::net::SocketAddr;
use std::sync::Arc;

use portcullis_proxy::{Gateway, ListenerOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;

/// How many per-core runtimes `PORTCULLIS_PER_CORE` asks for (0: off).
pub(crate) fn cores() -> usize {
    std::env::var("PORTCULLIS_PER_CORE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A listener with SO_REUSEPORT, so several can share the address.
pub(crate) fn reuse_port_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Serves the gateway from `cores` threads, each a current-thread runtime
/// with its own listener on `first`'s address; `first` is closed once they
/// listen. If they cannot be set up, `first` is served here as usual. The
/// threads end when `shutdown` turns true or its sender is dropped.
pub(crate) fn spawn(
    cores: usize,
    first: TcpListener,
    gateway: Arc<Gateway>,
    options: ListenerOptions,
    shutdown: watch::Receiver<bool>,
) -> AbortOnDropHandle<()> {
    let started = first
        .local_addr()
        .and_then(|addr| (0..cores).map(|_| reuse_port_listener(addr)).collect());
    let listeners: Vec<std::net::TcpListener> = match started {
        Ok(listeners) => listeners,
        Err(err) => {
            tracing::error!(error = %err, "per-core listeners failed; serving on the shared runtime");
            let serving = portcullis_proxy::serve(first, gateway, options, shutdown);
            return AbortOnDropHandle::new(tokio::spawn(serving));
        }
    };
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
