//! Where the data plane's access lines go, and whether they are wanted.
//!
//! By default every access line is a `tracing` event (target
//! `portcullis::access`), and each request asks `tracing::enabled!` whether
//! to log. Through `tracing` that cost about 3,000 instructions per request
//! (callgrind: the enabled check, the event's dispatch through the layers,
//! the message's formatting). A process that owns the log filter (the
//! member's `logging` module) may instead install an [`AccessLogSink`] and
//! keep [`AccessLogMode`] in step with its filter: the data plane then reads
//! one atomic per request and hands the formatted fields to the sink.
//!
//! The data plane does not depend on the member: the member installs the
//! sink here at start-up.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;

/// Target of access-log events, and of the filter directives that switch
/// access lines on and off (`portcullis::access=off`).
pub const ACCESS_TARGET: &str = "portcullis::access";

/// Writes access lines for the process.
pub trait AccessLogSink: Send + Sync {
    /// Appends what comes before the fields (the timestamp, level and
    /// target), so that the line is formatted in one buffer.
    fn push_prefix(&self, line: &mut Vec<u8>);
    /// Writes one whole line: the prefix, `member=... outcomes="..."` and
    /// the newline.
    fn write_line(&self, line: &[u8]);
}

/// How the data plane decides whether to log a request, and where the line
/// goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum AccessLogMode {
    /// Ask `tracing` for every request and emit the line as a `tracing`
    /// event. The default; also right for a filter whose answer depends on
    /// the spans a request runs in (span or field directives).
    Tracing = 0,
    /// No access lines.
    Off = 1,
    /// Access lines go to the installed sink, without asking `tracing`.
    Sink = 2,
}

static SINK: OnceLock<&'static dyn AccessLogSink> = OnceLock::new();
static MODE: AtomicU8 = AtomicU8::new(AccessLogMode::Tracing as u8);

/// Installs the process's sink; the first one stays. Returns whether this
/// one was installed. Lines go to it only in [`AccessLogMode::Sink`].
pub fn install_sink(sink: &'static dyn AccessLogSink) -> bool {
    SINK.set(sink).is_ok()
}

/// Switches access lines on, off or back to `tracing`; the owner of the log
/// filter calls this whenever the filter changes. [`AccessLogMode::Sink`]
/// without an installed sink behaves as [`AccessLogMode::Tracing`].
pub fn set_mode(mode: AccessLogMode) {
    MODE.store(mode as u8, Ordering::Relaxed);
}

/// The mode in force.
pub fn mode() -> AccessLogMode {
    match MODE.load(Ordering::Relaxed) {
        1 => AccessLogMode::Off,
        2 => AccessLogMode::Sink,
        _ => AccessLogMode::Tracing,
    }
}

/// Whether the request starting now gets an access line.
pub(crate) fn wanted() -> bool {
    match mode() {
        AccessLogMode::Off => false,
        AccessLogMode::Sink if SINK.get().is_some() => true,
        _ => tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO),
    }
}

/// Where a finished request's line goes. The mode is read again when the
/// request ends: a filter changed while it ran applies to its line, as it
/// would to a `tracing` event.
pub(crate) enum Destination {
    Off,
    Sink(&'static dyn AccessLogSink),
    Tracing,
}

pub(crate) fn destination() -> Destination {
    match (mode(), SINK.get()) {
        (AccessLogMode::Off, _) => Destination::Off,
        (AccessLogMode::Sink, Some(sink)) => Destination::Sink(*sink),
        _ => Destination::Tracing,
    }
}

/// Emits the line's fields as a `tracing` event, which filters it again.
pub(crate) fn emit_event(fields: &[u8]) {
    tracing::info!(target: ACCESS_TARGET, "{}", String::from_utf8_lossy(fields));
}
