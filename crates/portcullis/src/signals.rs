//! Waiting for SIGTERM or SIGINT.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// Signal handlers registered at creation, so a signal that arrives before
/// anyone waits is still caught (instead of killing the process).
pub struct Shutdown {
    terminate: Option<Signal>,
    interrupt: Option<Signal>,
}

impl Shutdown {
    pub fn listen() -> Shutdown {
        let register = |kind| match signal(kind) {
            Ok(signal) => Some(signal),
            Err(err) => {
                tracing::warn!(error = %err, "cannot watch a shutdown signal");
                None
            }
        };
        Shutdown {
            terminate: register(SignalKind::terminate()),
            interrupt: register(SignalKind::interrupt()),
        }
    }

    pub async fn wait(&mut self) {
        async fn next(signal: &mut Option<Signal>) {
            match signal {
                Some(signal) => {
                    signal.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = next(&mut self.terminate) => {}
            _ = next(&mut self.interrupt) => {}
        }
    }
}
