//! The signals a process acts on: SIGTERM or SIGINT stop it; `serve` also
//! reloads its config on SIGHUP and restarts itself on SIGUSR2.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// Signal handlers registered at creation, so a signal that arrives before
/// anyone waits is still caught (instead of killing the process).
pub struct Shutdown {
    terminate: Option<Signal>,
    interrupt: Option<Signal>,
}

/// Registers a handler for `kind`; without one the signal keeps its default
/// action, which is logged.
fn register(kind: SignalKind) -> Option<Signal> {
    match signal(kind) {
        Ok(signal) => Some(signal),
        Err(err) => {
            tracing::warn!(error = %err, "cannot watch a signal");
            None
        }
    }
}

/// The next delivery of `signal`, or never when it has no handler.
async fn next(signal: &mut Option<Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

impl Shutdown {
    pub fn listen() -> Shutdown {
        Shutdown {
            terminate: register(SignalKind::terminate()),
            interrupt: register(SignalKind::interrupt()),
        }
    }

    pub async fn wait(&mut self) {
        tokio::select! {
            _ = next(&mut self.terminate) => {}
            _ = next(&mut self.interrupt) => {}
        }
    }
}

/// What an operator asked a serving member for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// SIGTERM or SIGINT.
    Stop,
    /// SIGHUP: re-read the config file.
    Reload,
    /// SIGUSR2: start the binary again and hand it the listeners.
    Restart,
}

/// The signals `serve` acts on, registered at creation.
pub struct ServeSignals {
    shutdown: Shutdown,
    hangup: Option<Signal>,
    restart: Option<Signal>,
}

impl ServeSignals {
    pub fn listen() -> ServeSignals {
        ServeSignals {
            shutdown: Shutdown::listen(),
            hangup: register(SignalKind::hangup()),
            restart: register(SignalKind::user_defined2()),
        }
    }

    /// Resolves on SIGTERM or SIGINT only; the other signals wait for the
    /// next [`ServeSignals::next`].
    pub async fn stop_requested(&mut self) {
        self.shutdown.wait().await
    }

    pub async fn next(&mut self) -> Request {
        tokio::select! {
            () = self.shutdown.wait() => Request::Stop,
            () = next(&mut self.hangup) => Request::Reload,
            () = next(&mut self.restart) => Request::Restart,
        }
    }
}
