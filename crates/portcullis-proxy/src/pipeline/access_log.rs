//! The access log: one line per request, formatted in one pass into a
//! per-thread buffer and handed to [`crate::access_sink`].

use std::cell::RefCell;

use http::StatusCode;

use super::RequestContext;
use crate::access_sink::{self, Destination};
use crate::error::ProxyError;
use crate::ha::TryOutcome;
use crate::routing::Gateway;

/// A buffer grown past this by an unusual line (a long path) is dropped
/// rather than kept for the thread's life.
const KEPT_CAPACITY: usize = 4096;

thread_local! {
    /// The line being formatted, reused so a line costs no allocation, and
    /// the last names segment.
    static LINE: RefCell<(Vec<u8>, NamesSegment)> =
        const { RefCell::new((Vec::new(), NamesSegment::new())) };
}

/// `" topology="T" service="S" backend="` as last written on this thread,
/// with the names it was written for. Nearly every line of a thread names
/// one of a few services, and checking and quoting both names cost about
/// 250 instructions a line; comparing them with the last ones about 40
/// (callgrind). The names are the key, so a hit writes exactly what quoting
/// them would. Backends are left out: a balanced service alternates them.
pub(super) struct NamesSegment {
    topology: String,
    service: String,
    bytes: Vec<u8>,
}

impl NamesSegment {
    pub(super) const fn new() -> NamesSegment {
        NamesSegment {
            topology: String::new(),
            service: String::new(),
            bytes: Vec::new(),
        }
    }

    fn push(&mut self, line: &mut Vec<u8>, topology: &str, service: &str) {
        let hit = !self.bytes.is_empty() && self.service == service && self.topology == topology;
        if !hit {
            self.rebuild(topology, service);
        }
        line.extend_from_slice(&self.bytes);
    }

    fn rebuild(&mut self, topology: &str, service: &str) {
        if self.bytes.capacity() > KEPT_CAPACITY {
            *self = NamesSegment::new();
        }
        self.topology.clear();
        self.topology.push_str(topology);
        self.service.clear();
        self.service.push_str(service);
        self.bytes.clear();
        self.bytes.extend_from_slice(b"\" topology=\"");
        push_escaped(&mut self.bytes, topology);
        self.bytes.extend_from_slice(b"\" service=\"");
        push_escaped(&mut self.bytes, service);
        self.bytes.extend_from_slice(b"\" backend=\"");
    }
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
    /// request, and with the line as one `format!`ted `tracing` message
    /// still about 4,500 (callgrind): the fields are copied here as bytes
    /// into a reused buffer, numbers with `itoa`, and the line goes to the
    /// member's sink in one buffer with its prefix.
    pub(super) fn access_log(&self, gateway: &Gateway, status: StatusCode) {
        let (topology, service) = match &self.routed {
            Some(routed) => (routed.topology.as_str(), routed.config.name.as_str()),
            None => (self.topology.as_str(), self.service.as_str()),
        };
        let fields = AccessFields {
            member: &gateway.member_id,
            method: self.method.as_str(),
            path: self.target.path(),
            topology,
            service,
            backend: self.last_backend().map(|b| b.id.as_str()),
            status,
            micros: micros(self.took()),
            tries: self.tries.len(),
            principal: self.principal.as_ref().map(|p| p.name.as_str()),
        };
        let tries = self
            .tries
            .iter()
            .map(|record| (record.backend.id.as_str(), record.outcome));
        LINE.with(|cell| match cell.try_borrow_mut() {
            Ok(mut state) => {
                let (line, names) = &mut *state;
                line.clear();
                write_line(line, names, &fields, tries);
                if line.capacity() > KEPT_CAPACITY {
                    *line = Vec::new();
                }
            }
            // Only a sink that logged through this code again would find
            // the buffer taken: it gets a buffer of its own.
            Err(_) => write_line(&mut Vec::new(), &mut NamesSegment::new(), &fields, tries),
        });
    }
}

/// Whole microseconds in `duration`, in `u64` arithmetic (`as_micros` is
/// `u128`).
fn micros(duration: std::time::Duration) -> u64 {
    duration
        .as_secs()
        .saturating_mul(1_000_000)
        .saturating_add(u64::from(duration.subsec_micros()))
}

fn write_line<'t>(
    line: &mut Vec<u8>,
    names: &mut NamesSegment,
    fields: &AccessFields<'_>,
    tries: impl Iterator<Item = (&'t str, TryOutcome)>,
) {
    match access_sink::destination() {
        Destination::Off => {}
        Destination::Sink(sink) => {
            sink.push_prefix(line);
            fields.push_to(line, names, tries);
            line.push(b'\n');
            sink.write_line(line);
        }
        Destination::Tracing => {
            fields.push_to(line, names, tries);
            access_sink::emit_event(line);
        }
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
    pub micros: u64,
    pub tries: usize,
    /// The authenticated caller, for services with `[service.auth]`.
    pub principal: Option<&'a str>,
}

impl AccessFields<'_> {
    /// Appends `member=... outcomes="..."`: strings quoted as `{:?}` quotes
    /// them, the duration in milliseconds with three decimals, and each try
    /// as `backend:outcome` (`tries` lists them). No backend is `-`. The
    /// quotes travel with the constant text around them: fewer copies.
    pub(super) fn push_to<'t>(
        &self,
        line: &mut Vec<u8>,
        names: &mut NamesSegment,
        tries: impl Iterator<Item = (&'t str, TryOutcome)>,
    ) {
        let mut numbers = itoa::Buffer::new();
        line.extend_from_slice(b"member=");
        line.extend_from_slice(self.member.as_bytes());
        line.extend_from_slice(b" method=");
        line.extend_from_slice(self.method.as_bytes());
        line.extend_from_slice(b" path=\"");
        push_escaped(line, self.path);
        names.push(line, self.topology, self.service);
        push_escaped(line, self.backend.unwrap_or("-"));
        // Fixed-size pieces with their digits patched in: one copy each. A
        // `StatusCode` is 100 to 999, so always three digits.
        let mut status = *b"\" status=000 duration_ms=";
        status[9..12].copy_from_slice(&three_digits(self.status.as_u16()));
        line.extend_from_slice(&status);
        line.extend_from_slice(numbers.format(self.micros / 1000).as_bytes());
        let mut fraction = *b".000 tries=";
        fraction[1..4].copy_from_slice(&three_digits((self.micros % 1000) as u16));
        line.extend_from_slice(&fraction);
        // Nearly every request makes one try: its count goes with the
        // constant after it, in one copy.
        if self.tries == 1 {
            line.extend_from_slice(b"1 outcomes=\"");
        } else {
            line.extend_from_slice(numbers.format(self.tries).as_bytes());
            line.extend_from_slice(b" outcomes=\"");
        }
        for (i, (backend, outcome)) in tries.enumerate() {
            if i > 0 {
                line.push(b',');
            }
            line.extend_from_slice(backend.as_bytes());
            line.push(b':');
            push_outcome(line, outcome, &mut numbers);
        }
        line.push(b'"');
        if let Some(principal) = self.principal {
            line.extend_from_slice(b" principal=\"");
            push_escaped(line, principal);
            line.push(b'"');
        }
    }
}

/// The last three decimal digits of `value` (a status code, or a
/// fraction below 1000), as ASCII. Written out so that every divisor is a
/// constant (a loop over divisors compiled to `div` instructions).
fn three_digits(value: u16) -> [u8; 3] {
    [
        b'0' + (value / 100 % 10) as u8,
        b'0' + (value / 10 % 10) as u8,
        b'0' + (value % 10) as u8,
    ]
}

/// An outcome as [`TryOutcome`]'s `Display` writes it, without `fmt`. A
/// status (nearly every outcome) is three digits, written as such.
fn push_outcome(line: &mut Vec<u8>, outcome: TryOutcome, numbers: &mut itoa::Buffer) {
    let text = match outcome {
        TryOutcome::Answered(code @ 100..=999) => {
            line.extend_from_slice(&three_digits(code));
            return;
        }
        TryOutcome::Answered(code) => numbers.format(code),
        TryOutcome::ConnectFailed => "connect-failed",
        TryOutcome::Failed => "failed",
        TryOutcome::TimedOut => "timeout",
        TryOutcome::Stalled => "stalled",
    };
    line.extend_from_slice(text.as_bytes());
}

/// `value` as `{:?}` writes it between its quotes (the caller writes the
/// quotes): plain strings are copied as they are, since `{:?}` walks every
/// character. Inlined: a call per string cost about 30 instructions.
#[inline(always)]
fn push_escaped(line: &mut Vec<u8>, value: &str) {
    if is_plain(value.as_bytes()) {
        line.extend_from_slice(value.as_bytes());
    } else {
        push_debug_escaped(line, value);
    }
}

#[cold]
#[inline(never)]
fn push_debug_escaped(line: &mut Vec<u8>, value: &str) {
    use std::io::Write as _;
    let start = line.len();
    let _ = write!(line, "{value:?}");
    // `{:?}` wrote the quotes too: drop them.
    line.pop();
    line.remove(start);
}

/// `value` in double quotes, escaped exactly as `{:?}` escapes a `str`.
#[cfg(test)]
pub(super) fn push_quoted(line: &mut String, value: &str) {
    let mut bytes = vec![b'"'];
    push_escaped(&mut bytes, value);
    bytes.push(b'"');
    line.push_str(&String::from_utf8(bytes).unwrap());
}

/// True when `{:?}` would copy every byte as it is: printable ASCII other
/// than `"` and `\`. Eight bytes at a time, since every request's path is
/// checked: the last word overlaps the one before it rather than leaving a
/// tail to check byte by byte, and a string shorter than a word is padded
/// with a plain byte.
#[inline(always)]
fn is_plain(bytes: &[u8]) -> bool {
    if bytes.len() < 8 {
        let mut word = [b'a'; 8];
        word[..bytes.len()].copy_from_slice(bytes);
        return is_plain_word(word);
    }
    let mut words = bytes.chunks_exact(8);
    let all_plain = words.all(|chunk| {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        is_plain_word(word)
    });
    let mut last = [0u8; 8];
    last.copy_from_slice(&bytes[bytes.len() - 8..]);
    all_plain && is_plain_word(last)
}

/// [`is_plain`] for eight bytes; the word tests are exact for "some byte
/// matches".
fn is_plain_word(bytes: [u8; 8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let has_zero_byte = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS != 0;
    let word = u64::from_ne_bytes(bytes);
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS != 0;
    // A byte of 0x7f or above: its high bit, or a carry into it.
    let high = (word.wrapping_add(ONES) | word) & HIGHS != 0;
    let quote = has_zero_byte(word ^ (ONES * u64::from(b'"')));
    let backslash = has_zero_byte(word ^ (ONES * u64::from(b'\\')));
    !(control | high | quote | backslash)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each try as (backend id, outcome).
    type TriesList<'a> = &'a [(&'a str, TryOutcome)];

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
        formatted_with(&mut NamesSegment::new(), fields, tries)
    }

    fn formatted_with(
        names: &mut NamesSegment,
        fields: &AccessFields<'_>,
        tries: &[(&str, TryOutcome)],
    ) -> String {
        let mut line = b"kept ".to_vec();
        fields.push_to(&mut line, names, tries.iter().copied());
        String::from_utf8(line)
            .unwrap()
            .strip_prefix("kept ")
            .unwrap()
            .to_string()
    }

    /// The fields of a request that made `tries`.
    fn fields<'a>(
        path: &'a str,
        status: u16,
        micros: u64,
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
            principal: None,
        }
    }

    #[test]
    fn the_principal_ends_the_line_escaped_and_only_when_there_is_one() {
        let mut with = fields("/gateway/shop/echo/", 200, 1, &[]);
        with.principal = Some("bob \"the\" admin");
        let line = formatted(&with, &[]);
        assert!(
            line.ends_with(r#"outcomes="" principal="bob \"the\" admin""#),
            "{line}"
        );
        let without = formatted(&fields("/gateway/shop/echo/", 200, 1, &[]), &[]);
        assert!(!without.contains("principal"), "{without}");
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
        let cases: [(&str, u16, u64, TriesList<'_>); 6] = [
            ("/gateway/shop/echo/", 200, 9_051, &several[5..]),
            ("/x", 502, 0, &several),
            ("/gateway/t/nope/x", 404, 1_000_001, &[]),
            ("/a\"b\\c\td\u{7f}é/ü", 200, 999, &several[4..]),
            ("/exactly-8/sixteen-bytes", 200, 12_345_678, &[]),
            ("", 101, u64::MAX, &several[..1]),
        ];
        for (path, status, micros, tries) in cases {
            let fields = fields(path, status, micros, tries);
            assert_eq!(formatted(&fields, tries), reference(&fields, tries));
        }
        let line = formatted(&fields("/gateway/t/nope/x", 404, 1_000_001, &[]), &[]);
        assert!(line.contains(" backend=\"-\" status=404 "), "{line}");
        assert!(line.ends_with("tries=0 outcomes=\"\""), "{line}");
    }

    /// One segment reused over lines whose names and backends repeat and
    /// change, each alone: every line is still what quoting its own names
    /// writes.
    #[test]
    fn the_names_segment_is_rebuilt_whenever_a_name_changes() {
        let mut names = NamesSegment::new();
        let variants = [
            ("shop", "echo", Some("b1")),
            ("shop", "echo", Some("b1")),
            ("shop", "echo", Some("b2")),
            ("shop", "echo2", Some("b2")),
            ("shop2", "echo2", Some("b2")),
            ("shop2", "echo2", None),
            ("", "", None),
            ("we\"ird", "t\tab", Some("b2")),
            ("shop", "echo", Some("b1")),
            ("sho", "pecho", Some("b1")),
        ];
        for (topology, service, backend) in variants {
            let tries = backend.map(|b| [(b, TryOutcome::Answered(200))]);
            let tries: &[(&str, TryOutcome)] = tries.as_ref().map_or(&[], |t| t);
            let mut fields = fields("/p", 200, 1, tries);
            fields.topology = topology;
            fields.service = service;
            assert_eq!(
                formatted_with(&mut names, &fields, tries),
                reference(&fields, tries)
            );
        }
    }

    #[test]
    fn microseconds_are_counted_as_as_micros_counts_them() {
        for duration in [
            std::time::Duration::ZERO,
            std::time::Duration::from_nanos(1_999),
            std::time::Duration::new(3, 999_999_999),
            std::time::Duration::new(1 << 40, 5_000),
        ] {
            assert_eq!(u128::from(micros(duration)), duration.as_micros());
        }
        assert_eq!(micros(std::time::Duration::MAX), u64::MAX);
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
            let mut line = Vec::new();
            push_outcome(&mut line, outcome, &mut numbers);
            assert_eq!(line, outcome.to_string().as_bytes());
        }
    }

    #[test]
    fn the_word_check_finds_every_byte_debug_escapes_at_every_position() {
        for byte in 0u8..=255 {
            let expected = (0x20..0x7f).contains(&byte) && byte != b'"' && byte != b'\\';
            for len in 1..=20 {
                for position in 0..len {
                    let mut bytes = vec![b'a'; len];
                    bytes[position] = byte;
                    assert_eq!(
                        is_plain(&bytes),
                        expected,
                        "byte {byte:#x} at {position} of {len}"
                    );
                }
            }
        }
        assert!(is_plain(b""));
        // Neighbours that could carry or borrow into each other.
        for pair in [[0xffu8, 0x20], [0x20, 0xff], [0x00, 0x7e], [0x7e, 0x1f]] {
            let mut bytes = [b'a'; 16];
            bytes[3..5].copy_from_slice(&pair);
            assert!(!is_plain(&bytes), "{pair:?}");
        }
    }
}
