//! The admin listener over TLS (`[admin] tls`): the same router, served by
//! hyper's HTTP/1.1-or-HTTP/2 connection builder over tokio-rustls. `axum::serve`
//! takes plain TCP only, so the accept loop is ours.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

/// A client that has not finished its handshake by then is dropped, so
/// half-open connections cannot pile up on the admin port.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open admin connections (a dashboard's keep-alive, a slow
/// scrape) may finish after shutdown before they are closed.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Serves `app` over TLS until `shutdown` turns true.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Arc<rustls::ServerConfig>,
    mut shutdown: watch::Receiver<bool>,
) {
    let acceptor = TlsAcceptor::from(tls);
    let graceful = GracefulShutdown::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Out of file descriptors, usually: wait rather than spin.
                    tracing::warn!(error = %err, "admin listener cannot accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            // The watch guard is dropped at once: it must not live across
            // the awaits in the accept arm's branch.
            _ = async { shutdown.wait_for(|stop| *stop).await.map(|_| ()) } => break,
        };
        tokio::spawn(serve_connection(
            stream,
            acceptor.clone(),
            app.clone(),
            graceful.watcher(),
        ));
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::debug!("admin connections still open after the shutdown grace");
    }
}

async fn serve_connection(
    stream: TcpStream,
    acceptor: TlsAcceptor,
    app: Router,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        // Plain HTTP, a wrong certificate on the client side, a scanner:
        // nothing to answer over TLS, the connection just closes.
        Ok(Err(err)) => {
            tracing::debug!(error = %err, "admin TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    let builder = auto::Builder::new(TokioExecutor::new());
    let connection =
        builder.serve_connection_with_upgrades(TokioIo::new(tls), TowerToHyperService::new(app));
    if let Err(err) = watcher.watch(connection.into_owned()).await {
        tracing::debug!(error = %err, "admin connection ended with an error");
    }
}
