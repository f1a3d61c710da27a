//! The access log: one line per request, formatted in one pass into a
//! per-thread buffer and handed to [`crate::access_sink`].

use std::cell::RefCell;

use http::{Response, StatusCode};

use super::RequestContext;
use crate::access_sink;
use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::ha::TryOutcome;
use crate::routing::Gateway;

/// A buffer grown past this by an unusual line (a long path) is dropped
/// rather than kept for the thread's life.
const KEPT_CAPACITY: usize = 4096;

thread_local! {
    /// The line being formatted: reused, so a line costs no allocation.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

impl RequestContext {
    pub(super) fn name_from_error(&mut self, err: &ProxyError) {
        match err {
            ProxyError::UnknownTopology { topology } => self.topology.clone_from(topology),
            ProxyError::UnknownService { topology, service } => {
                self.topology.clone_from(topology);
                self.service.clone_from(service);
            }
            _ => {}
        }
    }

    /// One line per request. As ten `tracing` fields, the fmt layer's
    /// per-field visiting and styling cost about 18,000 instructions per
    /// request, and `format!` with the line as one message still about 4,500
    /// (callgrind): the fields are copied here with `push_str` and `itoa`.
    pub(super) fn access_log(&self, gateway: &Gateway, response: &Response<ProxyBody>) {
        let fields = AccessFields {
            member: &gateway.member_id,
            method: self.method.as_str(),
            path: self.uri.path(),
            topology: &self.topology,
            service: &self.service,
            backend: self.last_backend().map(|b| b.id.as_str()),
            status: response.status(),
            micros: self.started.elapsed().as_micros(),
            tries: self.tries.len(),
        };
        let tries = self
            .tries
            .iter()
            .map(|record| (record.backend.id.as_str(), record.outcome));
        LINE.with(|cell| {
            // A sink that logged through this same code would find the
            // buffer borrowed: it then gets a fresh one.
            let Ok(mut line) = cell.try_borrow_mut() else {
                let mut line = String::with_capacity(256);
                fields.push_to(&mut line, tries);
                access_sink::emit(&line);
                return;
            };
            line.clear();
            fields.push_to(&mut line, tries);
            access_sink::emit(&line);
            if line.capacity() > KEPT_CAPACITY {
                *line = String::new();
            }
        });
    }
}

/// What an access line says about a request, before its tries.
pub(super) struct AccessFields<'a> {
    pub member: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub topology: &'a str,
    pub service: &'a str,
    /// The last try's backend.
    pub backend: Option<&'a str>,
    pub status: StatusCode,
    pub micros: u128,
    pub tries: usize,
}

impl AccessFields<'_> {
    /// Appends `member=... outcomes="..."`: strings quoted as `{:?}` quotes
    /// them, the duration in milliseconds with three decimals, and each try
    /// as `backend:outcome` (`tries` lists them). No backend is `-`.
    pub(super) fn push_to<'t>(
        &self,
        line: &mut String,
        tries: impl Iterator<Item = (&'t str, TryOutcome)>,
    ) {
        let mut numbers = itoa::Buffer::new();
        line.push_str("member=");
        line.push_str(self.member);
        line.push_str(" method=");
        line.push_str(self.method);
        line.push_str(" path=");
        push_quoted(line, self.path);
        line.push_str(" topology=");
        push_quoted(line, self.topology);
        line.push_str(" service=");
        push_quoted(line, self.service);
        line.push_str(" backend=");
        push_quoted(line, self.backend.unwrap_or("-"));
        line.push_str(" status=");
        line.push_str(self.status.as_str());
        line.push_str(" duration_ms=");
        line.push_str(numbers.format(self.micros / 1000));
        line.push('.');
        push_three_digits(line, (self.micros % 1000) as u16);
        line.push_str(" tries=");
        line.push_str(numbers.format(self.tries));
        line.push_str(" outcomes=\"");
        for (i, (backend, outcome)) in tries.enumerate() {
            if i > 0 {
                line.push(',');
            }
            line.push_str(backend);
            line.push(':');
            push_outcome(line, outcome, &mut numbers);
        }
        line.push('"');
    }
}

/// `value` (below 1000) with leading zeros to three digits.
fn push_three_digits(line: &mut String, value: u16) {
    for digit in [value / 100, value / 10 % 10, value % 10] {
        line.push(char::from(b'0' + digit as u8));
    }
}

/// An outcome as [`TryOutcome`]'s `Display` writes it, without `fmt`.
fn push_outcome(line: &mut String, outcome: TryOutcome, numbers: &mut itoa::Buffer) {
    line.push_str(match outcome {
        TryOutcome::Answered(code) => numbers.format(code),
        TryOutcome::ConnectFailed => "connect-failed",
        TryOutcome::Failed => "failed",
        TryOutcome::TimedOut => "timeout",
        TryOutcome::Stalled => "stalled",
    });
}

/// `value` in double quotes, escaped exactly as `{:?}` escapes a `str`.
pub(super) fn push_quoted(line: &mut String, value: &str) {
    if is_plain(value.as_bytes()) {
        line.push('"');
        line.push_str(value);
        line.push('"');
    } else {
        use std::fmt::Write as _;
        let _ = write!(line, "{value:?}");
    }
}

/// True when `{:?}` would copy every byte as it is: printable ASCII other
/// than `"` and `\`. Eight bytes at a time, since every request's path is
/// checked; the word tests are exact for "some byte matches".
fn is_plain(bytes: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let has_zero_byte = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS != 0;
    let mut words = bytes.chunks_exact(8);
    for chunk in &mut words {
        let mut word_bytes = [0u8; 8];
        word_bytes.copy_from_slice(chunk);
        let word = u64::from_ne_bytes(word_bytes);
        let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0;
        // A byte of 0x7f or above: its high bit, or a carry into it.
        let high = (word.wrapping_add(ONES) | word) & HIGHS != 0;
        let quote = has_zero_byte(word ^ (ONES * u64::from(b'"')));
        let backslash = has_zero_byte(word ^ (ONES * u64::from(b'\\')));
        if control | high | quote | backslash {
            return false;
        }
    }
    words
        .remainder()
        .iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The line as the `write!`-based formatter before this one wrote it.
    fn reference(fields: &AccessFields<'_>, tries: &[(&str, TryOutcome)]) -> String {
        let backend = fields.backend.unwrap_or("-");
        let mut line = format!(
            "member={} method={} path={:?} topology={:?} service={:?} backend={:?}",
            fields.member, fields.method, fields.path, fields.topology, fields.service, backend
        );
        line += &format!(
            " status={} duration_ms={}.{:03} tries={} outcomes=\"",
            fields.status.as_u16(),
            fields.micros / 1000,
            fields.micros % 1000,
            fields.tries,
        );
        let outcomes: Vec<String> = tries.iter().map(|(b, o)| format!("{b}:{o}")).collect();
        line + &outcomes.join(",") + "\""
    }

    fn formatted(fields: &AccessFields<'_>, tries: &[(&str, TryOutcome)]) -> String {
        let mut line = String::from("kept ");
        fields.push_to(&mut line, tries.iter().copied());
        line.strip_prefix("kept ").unwrap().to_string()
    }

    /// The fields of a request that made `tries`.
    fn fields<'a>(
        path: &'a str,
        status: u16,
        micros: u128,
        tries: &[(&'a str, TryOutcome)],
    ) -> AccessFields<'a> {
        AccessFields {
            member: "gw-1",
            method: "GET",
            path,
            topology: "shop",
            service: "echo",
            backend: tries.last().map(|t| t.0),
            status: StatusCode::from_u16(status).unwrap(),
            micros,
            tries: tries.len(),
        }
    }

    #[test]
    fn a_line_is_what_the_fmt_based_formatter_wrote() {
        let several = [
            ("3efa3cdbc99d", TryOutcome::ConnectFailed),
            ("a1", TryOutcome::Failed),
            ("b2", TryOutcome::TimedOut),
            ("c3", TryOutcome::Stalled),
            ("d4", TryOutcome::Answered(503)),
            ("e5", TryOutcome::Answered(200)),
        ];
        let cases: [(&str, u16, u128, &[(&str, TryOutcome)]); 6] = [
            ("/gateway/shop/echo/", 200, 9_051, &several[5..]),
            ("/x", 502, 0, &several),
            ("/gateway/t/nope/x", 404, 1_000_001, &[]),
            ("/a\"b\\c\td\u{7f}é/ü", 200, 999, &several[4..]),
            ("/exactly-8/sixteen-bytes", 200, 12_345_678, &[]),
            ("", 101, u128::from(u64::MAX), &several[..1]),
        ];
        for (path, status, micros, tries) in cases {
            let fields = fields(path, status, micros, tries);
            assert_eq!(formatted(&fields, tries), reference(&fields, tries));
        }
        let line = formatted(&fields("/gateway/t/nope/x", 404, 1_000_001, &[]), &[]);
        assert!(line.contains(" backend=\"-\" status=404 "), "{line}");
        assert!(line.ends_with("tries=0 outcomes=\"\""), "{line}");
    }

    #[test]
    fn outcomes_are_written_as_their_display_writes_them() {
        let mut numbers = itoa::Buffer::new();
        for outcome in [
            TryOutcome::Answered(200),
            TryOutcome::Answered(99),
            TryOutcome::ConnectFailed,
            TryOutcome::Failed,
            TryOutcome::TimedOut,
            TryOutcome::Stalled,
        ] {
            let mut line = String::new();
            push_outcome(&mut line, outcome, &mut numbers);
            assert_eq!(line, outcome.to_string());
        }
    }

    #[test]
    fn the_word_check_finds_every_byte_debug_escapes_at_every_position() {
        for byte in 0u8..=255 {
            for position in 0..20 {
                let mut bytes = vec![b'a'; 20];
                bytes[position] = byte;
                let expected = (0x20..0x7f).contains(&byte) && byte != b'"' && byte != b'\\';
                assert_eq!(is_plain(&bytes), expected, "byte {byte:#x} at {position}");
            }
        }
        // Neighbours that could carry or borrow into each other.
        for pair in [[0xffu8, 0x20], [0x20, 0xff], [0x00, 0x7e], [0x7e, 0x1f]] {
            let mut bytes = [b'a'; 16];
            bytes[3..5].copy_from_slice(&pair);
            assert!(!is_plain(&bytes), "{pair:?}");
        }
    }
}
