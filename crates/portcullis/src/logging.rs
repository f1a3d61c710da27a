//! Process-wide logging: a `tracing` subscriber whose filter can be replaced at
//! run time (`PUT /api/v1/log-level`) without a restart.

use std::sync::{Mutex, OnceLock};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Registry};

struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    /// The directive string of the filter in force.
    current: Mutex<String>,
}

static CONTROL: OnceLock<LogControl> = OnceLock::new();

/// Installs the subscriber: `level` (the `--log-level` flag) wins over
/// `RUST_LOG`, and `info` is the default.
pub fn init(level: Option<&str>) {
    let directives = match level {
        Some(level) => level.to_string(),
        None => std::env::var("RUST_LOG").unwrap_or_else(|_| "info".to_string()),
    };
    let (filter, directives) = match EnvFilter::try_new(&directives) {
        Ok(filter) => (filter, directives),
        Err(err) => {
            eprintln!("warning: log filter {directives:?} is invalid ({err}); using info");
            (EnvFilter::new("info"), "info".to_string())
        }
    };
    let (filter, handle) = reload::Layer::new(filter);
    use std::io::IsTerminal;
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr),
        )
        .try_init();
    if installed.is_ok() {
        let _ = CONTROL.set(LogControl {
            handle,
            current: Mutex::new(directives),
        });
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogLevelError {
    #[error("log filter {directives:?} does not parse: {reason}; expected a level such as \"debug\" or directives such as \"info,portcullis::access=off\"")]
    Invalid { directives: String, reason: String },
    #[error("this process has no adjustable log filter")]
    NotAdjustable,
}

/// The filter in force, when this process installed the adjustable subscriber.
pub fn current() -> Option<String> {
    CONTROL
        .get()
        .map(|c| c.current.lock().unwrap_or_else(|p| p.into_inner()).clone())
}

/// Replaces the filter; on error the old one stays.
pub fn set(directives: &str) -> Result<(), LogLevelError> {
    let filter = EnvFilter::try_new(directives).map_err(|err| LogLevelError::Invalid {
        directives: directives.to_string(),
        reason: err.to_string(),
    })?;
    let control = CONTROL.get().ok_or(LogLevelError::NotAdjustable)?;
    control
        .handle
        .reload(filter)
        .map_err(|_| LogLevelError::NotAdjustable)?;
    *control.current.lock().unwrap_or_else(|p| p.into_inner()) = directives.to_string();
    tracing::info!(filter = directives, "log filter changed");
    Ok(())
}
