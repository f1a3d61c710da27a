//! Upgraded connections (WebSocket): once both sides have switched protocols the
//! bytes are copied both ways until either side closes or nothing moves for the
//! service's idle timeout.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Runs the tunnel in a task of its own once both sides have upgraded.
pub fn spawn_tunnel(client: OnUpgrade, backend: OnUpgrade, idle: Duration) {
    tokio::spawn(async move {
        let client = match client.await {
            Ok(client) => client,
            Err(err) => {
                tracing::debug!(error = %err, "client upgrade did not complete");
                return;
            }
        };
        tunnel(TokioIo::new(client), backend, idle).await;
    });
}

/// Copies bytes between `client` and the backend's upgraded connection until
/// either side closes or nothing moves for `idle`.
pub async fn tunnel<C>(client: C, backend: OnUpgrade, idle: Duration)
where
    C: AsyncRead + AsyncWrite + Unpin,
{
    let backend = match backend.await {
        Ok(backend) => backend,
        Err(err) => {
            tracing::debug!(error = %err, "backend upgrade did not complete");
            return;
        }
    };
    relay(client, TokioIo::new(backend), idle).await;
}

/// Relays bytes both ways between two upgraded streams until either side
/// closes or `idle` passes without traffic in either direction.
pub async fn relay<C, B>(client: C, backend: B, idle: Duration)
where
    C: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let epoch = Instant::now();
    let last_activity = Arc::new(AtomicU64::new(0));
    let mut client = TunnelSide::new(client, last_activity.clone(), epoch);
    let mut backend = TunnelSide::new(backend, last_activity.clone(), epoch);
    let copy = tokio::io::copy_bidirectional(&mut client, &mut backend);
    tokio::pin!(copy);
    loop {
        let since_start = Duration::from_millis(last_activity.load(Ordering::Relaxed));
        let deadline = epoch + since_start + idle;
        tokio::select! {
            result = &mut copy => {
                if let Err(err) = result {
                    tracing::debug!(error = %err, "tunnel closed with an error");
                }
                return;
            }
            _ = tokio::time::sleep_until(deadline) => {
                let idle_for = Instant::now() - (epoch + Duration::from_millis(last_activity.load(Ordering::Relaxed)));
                if idle_for >= idle {
                    tracing::debug!(?idle, "tunnel idle timeout");
                    return;
                }
            }
        }
    }
}

/// One side of a tunnel, recording the time of its last byte read (shared
/// with the other side): the watchdog ends a tunnel idle on both. A relaxed atomic is
/// enough: the watchdog only needs an approximate time, never ordering.
struct TunnelSide<T> {
    inner: T,
    last: Arc<AtomicU64>,
    epoch: Instant,
}

impl<T> TunnelSide<T> {
    fn new(inner: T, last: Arc<AtomicU64>, epoch: Instant) -> Self {
        Self { inner, last, epoch }
    }

    fn touch(&self) {
        let millis = self.epoch.elapsed().as_millis() as u64;
        self.last.store(millis, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for TunnelSide<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for TunnelSide<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
