//! Process-wide logging: a `tracing` subscriber whose filter can be replaced at
//! run time (`PUT /api/v1/log-level`) without a restart.

use std::sync::{Mutex, OnceLock};

use std::io::Write as _;

use portcullis_proxy::access_sink::{self, AccessLogMode, AccessLogSink, ACCESS_TARGET};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    /// The directive string of the filter in force.
    current: Mutex<String>,
    /// `--log-level` or `RUST_LOG` chose the filter: `[node] log_level`
    /// does not override them.
    explicit: bool,
}

static CONTROL: OnceLock<LogControl> = OnceLock::new();

/// Installs the subscriber: `level` (the `--log-level` flag) wins over
/// `RUST_LOG`, and `info` is the default.
pub fn init(level: Option<&str>) {
    let chosen = level
        .map(str::to_string)
        .or_else(|| std::env::var("RUST_LOG").ok());
    let explicit = chosen.is_some();
    let directives = chosen.unwrap_or_else(|| "info".to_string());
    let (filter, directives) = match EnvFilter::try_new(&directives) {
        Ok(filter) => (filter, directives),
        Err(err) => {
            eprintln!("warning: log filter {directives:?} is invalid ({err}); using info");
            (EnvFilter::new("info"), "info".to_string())
        }
    };
    let (filter, handle) = reload::Layer::new(filter);
    let installed = subscriber(filter).try_init();
    if installed.is_ok() {
        access_sink::install_sink(STDERR_SINK.get_or_init(StderrAccessSink::new));
        follow_filter(&directives);
        let _ = CONTROL.set(LogControl {
            handle,
            current: Mutex::new(directives),
            explicit,
        });
    }
}

/// Tells the data plane whether the filter now in force wants access lines,
/// so that it need not ask `tracing` per request. A filter that mentions
/// spans or fields (`[...]`) may answer differently inside different spans:
/// the data plane then asks `tracing` per request, as it always did.
fn follow_filter(directives: &str) {
    let mode = if directives.contains('[') {
        AccessLogMode::Tracing
    } else if tracing::enabled!(target: ACCESS_TARGET, tracing::Level::INFO) {
        AccessLogMode::Sink
    } else {
        AccessLogMode::Off
    };
    access_sink::set_mode(mode);
}

/// The adjustable filter, the fmt layer for everything but the access log,
/// and the access-log layer. Both layers carry their own filter: beside a
/// layer without one, a callsite the adjustable filter turns off would still
/// be asked about at every hit (tracing-subscriber then answers "sometimes"
/// for every callsite), which cost about 11,000 instructions per HTTP/2
/// request in h2's disabled `trace!` events (callgrind, `bench/perf/cg-tls.sh`).
fn subscriber(filter: reload::Layer<EnvFilter, Registry>) -> impl Subscriber + Send + Sync {
    use std::io::IsTerminal;
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_ansi(std::io::stderr().is_terminal())
                .with_writer(std::io::stderr)
                .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                    meta.target() != ACCESS_TARGET
                })),
        )
        .with(
            AccessLogLayer.with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.target() == ACCESS_TARGET
            })),
        )
}

/// Writes access-log events: the data plane formats the whole line (escaping
/// strings itself) as the event's message, so this layer only adds the
/// timestamp, level and target the fmt layer would, and skips the fmt
/// layer's per-character escaping, which cost about 14,000 instructions per
/// request (callgrind). The reloadable filter still decides whether the event
/// exists at all (`portcullis::access=off`).
struct AccessLogLayer;

struct MessageVisitor<'a>(&'a mut Vec<u8>);

impl Visit for MessageVisitor<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }
}

impl<S: Subscriber> Layer<S> for AccessLogLayer {
    fn on_event(&self, event: &Event<'_>, _context: Context<'_, S>) {
        if event.metadata().target() != ACCESS_TARGET {
            return;
        }
        let mut line = Vec::with_capacity(256);
        push_timestamp(&mut line, std::time::SystemTime::now());
        let _ = write!(line, " {:>5} {ACCESS_TARGET}: ", event.metadata().level());
        event.record(&mut MessageVisitor(&mut line));
        line.push(b'\n');
        let _ = std::io::stderr().lock().write_all(&line);
    }
}

/// The data plane's access lines without `tracing` (in
/// [`AccessLogMode::Sink`], which `follow_filter` sets when the filter
/// allows them): the same bytes [`AccessLogLayer`] writes for an access
/// event at `INFO`, in one `write` to stderr per line, as that layer does.
struct StderrAccessSink {
    /// A duplicate of stderr's descriptor: the same open file, so the same
    /// stream and offset. Writing to it skips std's re-entrant stderr lock,
    /// about 90 instructions a line (callgrind). `None` when stderr could
    /// not be duplicated (it is closed): std's stderr then ignores the line.
    stderr: Option<std::fs::File>,
}

/// Up to this length one `write` reaches a pipe whole, never interleaved
/// with another writer's bytes (POSIX `PIPE_BUF` on Linux); a longer line
/// takes std's stderr lock, as every line did before.
const ATOMIC_WRITE: usize = 4096;

static STDERR_SINK: OnceLock<StderrAccessSink> = OnceLock::new();

impl StderrAccessSink {
    fn new() -> StderrAccessSink {
        use std::os::fd::AsFd as _;
        let stderr = std::io::stderr().as_fd().try_clone_to_owned().ok();
        StderrAccessSink {
            stderr: stderr.map(std::fs::File::from),
        }
    }
}

/// What [`AccessLogLayer`] writes between the timestamp and the fields.
const ACCESS_PREFIX: &[u8] = b"  INFO portcullis::access: ";

impl AccessLogSink for StderrAccessSink {
    fn push_prefix(&self, line: &mut Vec<u8>) {
        push_access_prefix(line, std::time::SystemTime::now());
    }

    fn write_line(&self, line: &[u8]) {
        let held = PENDING.with(|cell| match cell.try_borrow_mut() {
            Ok(mut pending) if pending.batching && line.len() <= ATOMIC_WRITE => {
                if pending.bytes.len() + line.len() > ATOMIC_WRITE {
                    self.write_now(&pending.bytes);
                    pending.bytes.clear();
                }
                pending.bytes.extend_from_slice(line);
                true
            }
            _ => false,
        });
        if !held {
            self.write_now(line);
        }
    }
}

impl StderrAccessSink {
    /// One `write` of whole lines, without std's lock when it is atomic.
    fn write_now(&self, lines: &[u8]) {
        match &self.stderr {
            Some(stderr) if lines.len() <= ATOMIC_WRITE => {
                // `Write` is implemented for `&File`: no lock of ours.
                let mut stderr: &std::fs::File = stderr;
                let _ = stderr.write_all(lines);
            }
            _ => {
                let _ = std::io::stderr().lock().write_all(lines);
            }
        }
    }
}

/// Access lines a runtime thread has formatted since it last went idle.
struct PendingLines {
    bytes: Vec<u8>,
    /// Set once the thread's runtime has called [`flush_access_lines`]:
    /// only such a thread holds lines back, since only it is sure to flush
    /// them when it goes idle.
    batching: bool,
}

impl Drop for PendingLines {
    fn drop(&mut self) {
        if let Some(sink) = STDERR_SINK.get() {
            sink.write_pending(&mut self.bytes);
        }
    }
}

thread_local! {
    /// A busy worker writes its access lines a batch at a time (at most
    /// [`ATOMIC_WRITE`] bytes, so still whole in a pipe), not one `write`
    /// per request: a `write` was one of the five system calls a proxied
    /// request cost.
    static PENDING: std::cell::RefCell<PendingLines> = const {
        std::cell::RefCell::new(PendingLines {
            bytes: Vec::new(),
            batching: false,
        })
    };
}

impl StderrAccessSink {
    fn write_pending(&self, bytes: &mut Vec<u8>) {
        if !bytes.is_empty() {
            self.write_now(bytes);
            bytes.clear();
        }
    }

    /// [`flush_access_lines`] for this sink.
    fn flush_thread(&self) {
        PENDING.with(|cell| {
            if let Ok(mut pending) = cell.try_borrow_mut() {
                pending.batching = true;
                self.write_pending(&mut pending.bytes);
            }
        });
    }
}

/// Writes the access lines this thread holds, and from now on lets it hold
/// them while it is busy. For a runtime's `on_thread_park` (and its
/// `on_thread_stop`): a worker that parks has no request running, so every
/// line is out by the time the gateway is idle, and a line waits at most
/// while its worker stays busy.
pub fn flush_access_lines() {
    if let Some(sink) = STDERR_SINK.get() {
        sink.flush_thread();
    }
}

/// `2026-12-01T23:11:32.000000Z  INFO portcullis::access: `: the access
/// line's prefix, fraction digits at [`FRACTION`].
const PREFIX_LEN: usize = "2026-12-01T23:11:32.000000Z".len() + ACCESS_PREFIX.len();
const FRACTION: std::ops::Range<usize> = 20..26;

thread_local! {
    /// The access line's prefix for the second the thread's last line was
    /// in, to be copied whole with its six fraction digits patched: the
    /// prefix in pieces cost about 160 instructions a line (callgrind).
    static PREFIX: std::cell::Cell<(u64, [u8; PREFIX_LEN])> =
        const { std::cell::Cell::new((u64::MAX, [0; PREFIX_LEN])) };
}

/// What [`AccessLogLayer`] writes before an access event's message: the
/// timestamp, then `  INFO portcullis::access: `.
fn push_access_prefix(line: &mut Vec<u8>, now: std::time::SystemTime) {
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let second = since.as_secs();
    let (cached, mut prefix) = PREFIX.get();
    if cached != second {
        let Some(fresh) = prefix_template(second) else {
            // A date longer than the template (a year past 9999).
            push_timestamp(line, now);
            line.extend_from_slice(ACCESS_PREFIX);
            return;
        };
        prefix = fresh;
        PREFIX.set((second, prefix));
    }
    // Written out so that every divisor is a constant: a loop over the
    // divisors compiled to `div` instructions.
    let micros = since.subsec_micros();
    let digit = |value: u32| b'0' + (value % 10) as u8;
    prefix[FRACTION].copy_from_slice(&[
        digit(micros / 100_000),
        digit(micros / 10_000),
        digit(micros / 1_000),
        digit(micros / 100),
        digit(micros / 10),
        digit(micros),
    ]);
    line.extend_from_slice(&prefix);
}

/// The prefix of `second`, fraction zero, when its date has four-digit years.
fn prefix_template(second: u64) -> Option<[u8; PREFIX_LEN]> {
    let mut text = Vec::with_capacity(PREFIX_LEN);
    push_timestamp(
        &mut text,
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(second),
    );
    text.extend_from_slice(ACCESS_PREFIX);
    text.try_into().ok()
}

thread_local! {
    /// `YYYY-MM-DDTHH:MM:SS` of the second the last access line was in:
    /// formatting the date for every line cost about 2,000 instructions.
    static SECOND: std::cell::RefCell<(u64, String)> = const {
        std::cell::RefCell::new((u64::MAX, String::new()))
    };
}

/// `YYYY-MM-DDTHH:MM:SS` in UTC of `second` since the epoch.
fn push_second(out: &mut String, second: u64) {
    use std::fmt::Write as _;
    let at = time::OffsetDateTime::from_unix_timestamp(second as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    );
}

/// `now` as RFC 3339 in UTC with microseconds, as the fmt layer's
/// `SystemTime` timer writes it (`2026-12-01T23:11:32.123456Z`).
fn push_timestamp(line: &mut Vec<u8>, now: std::time::SystemTime) {
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let second = since.as_secs();
    SECOND.with(|cell| match cell.try_borrow_mut() {
        Ok(mut cached) => {
            if cached.0 != second {
                cached.1.clear();
                push_second(&mut cached.1, second);
                cached.0 = second;
            }
            line.extend_from_slice(cached.1.as_bytes());
        }
        Err(_) => {
            let mut fresh = String::new();
            push_second(&mut fresh, second);
            line.extend_from_slice(fresh.as_bytes());
        }
    });
    // The fraction in one fixed-size copy rather than a push per digit.
    let micros = since.subsec_micros();
    let digit = |divisor: u32| b'0' + ((micros / divisor) % 10) as u8;
    line.extend_from_slice(&[
        b'.',
        digit(100_000),
        digit(10_000),
        digit(1_000),
        digit(100),
        digit(10),
        digit(1),
        b'Z',
    ]);
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

/// Applies `[node] log_level` (`info` when unset), at start and when a
/// reload changes it, unless `--log-level` or `RUST_LOG` chose the filter.
pub fn set_from_config(level: Option<&str>) -> Result<(), LogLevelError> {
    let Some(control) = CONTROL.get() else {
        return Ok(());
    };
    if control.explicit {
        if level.is_some() {
            tracing::warn!(
                "[node] log_level is ignored: --log-level or RUST_LOG sets the log filter"
            );
        }
        return Ok(());
    }
    let wanted = level.unwrap_or("info");
    if current().as_deref() == Some(wanted) {
        return Ok(());
    }
    set(wanted)
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
    follow_filter(directives);
    *control.current.lock().unwrap_or_else(|p| p.into_inner()) = directives.to_string();
    tracing::info!(filter = directives, "log filter changed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_timestamps_are_rfc3339_utc_with_microseconds() {
        let at = |secs: u64, micros: u32| {
            let mut line = Vec::new();
            let when = std::time::UNIX_EPOCH + std::time::Duration::new(secs, micros * 1000);
            push_timestamp(&mut line, when);
            String::from_utf8(line).unwrap()
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000000Z");
        assert_eq!(at(1_000_000_000, 500_000), "2001-09-09T01:46:40.500000Z");
        // The cached second is replaced when the second changes.
        assert_eq!(at(1_000_000_001, 7), "2001-09-09T01:46:41.000007Z");
    }

    #[test]
    fn the_cached_prefix_is_the_timestamp_then_the_layers_prefix() {
        let times = [
            (1_000_000_000, 500_000),
            (1_000_000_000, 7),
            (1_000_000_001, 999_999),
            (0, 0),
            (1_000_000_000, 123_456),
            // Year 10000: past the date crate's range, written as 1970 by
            // both, as before.
            (253_402_300_800, 1),
        ];
        for (secs, micros) in times {
            let when = std::time::UNIX_EPOCH + std::time::Duration::new(secs, micros * 1000 + 999);
            let mut cached = b"kept".to_vec();
            push_access_prefix(&mut cached, when);
            let mut expected = b"kept".to_vec();
            push_timestamp(&mut expected, when);
            expected.extend_from_slice(ACCESS_PREFIX);
            assert_eq!(
                String::from_utf8(cached).unwrap(),
                String::from_utf8(expected).unwrap()
            );
        }
    }

    /// A thread whose runtime flushes it holds its lines until the next
    /// flush, a batch at most `ATOMIC_WRITE` long; any other thread writes
    /// each line at once.
    #[test]
    fn a_parking_thread_writes_its_lines_in_batches() {
        let path = std::env::temp_dir().join(format!("portcullis-access-{}", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        let sink = StderrAccessSink { stderr: Some(file) };
        let written = || std::fs::read(&path).unwrap();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                sink.write_line(b"first\n");
                assert_eq!(written(), b"first\n", "no flush yet: written at once");
                sink.flush_thread();
                sink.write_line(b"second\n");
                sink.write_line(b"third\n");
                assert_eq!(written(), b"first\n", "held until the worker parks");
                sink.flush_thread();
                assert_eq!(written(), b"first\nsecond\nthird\n");
                // A batch never passes the atomic size: a full one goes
                // out before the line that would overflow it.
                let line = vec![b'x'; ATOMIC_WRITE / 2];
                for _ in 0..3 {
                    sink.write_line(&line);
                }
                assert_eq!(written().len(), 19 + 2 * line.len());
                sink.flush_thread();
                assert_eq!(written().len(), 19 + 3 * line.len());
            });
        });
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn the_access_prefix_is_what_the_layer_writes_for_an_info_event() {
        let layer = format!(" {:>5} {ACCESS_TARGET}: ", tracing::Level::INFO);
        assert_eq!(ACCESS_PREFIX, layer.as_bytes());
    }

    /// The data plane's mode follows every filter change, as the filter
    /// itself would answer for an access event.
    #[test]
    fn the_access_mode_follows_the_filter() {
        let (filter, handle) = reload::Layer::new(EnvFilter::new("info"));
        let mode_after = |directives: &str| {
            handle.reload(EnvFilter::new(directives)).unwrap();
            follow_filter(directives);
            access_sink::mode()
        };
        tracing::subscriber::with_default(subscriber(filter), || {
            assert_eq!(mode_after("info"), AccessLogMode::Sink);
            assert_eq!(
                mode_after("debug,portcullis::access=off"),
                AccessLogMode::Off
            );
            assert_eq!(mode_after("warn"), AccessLogMode::Off);
            assert_eq!(
                mode_after("warn,portcullis::access=info"),
                AccessLogMode::Sink
            );
            assert_eq!(mode_after("portcullis=info"), AccessLogMode::Sink);
            assert_eq!(mode_after("info,[request]=debug"), AccessLogMode::Tracing);
        });
        access_sink::set_mode(AccessLogMode::Tracing);
    }

    #[test]
    fn a_callsite_the_filter_turns_off_is_never_asked_about_again() {
        let (filter, _handle) = reload::Layer::new(EnvFilter::new("warn"));
        let subscriber = subscriber(filter);
        // Built with no subscriber in force: a disabled span, metadata kept.
        let debug = tracing::debug_span!("debug work");
        let warn = tracing::warn_span!("warn work");
        let interest =
            |span: &tracing::Span| subscriber.register_callsite(span.metadata().unwrap());
        assert!(interest(&debug).is_never());
        assert!(!interest(&warn).is_never());
    }
}
