//! The engine's one pass over a head's bytes: the start line and every
//! field line are found and checked together (PRODUCT.md §9: CRLF only, no
//! obs-fold, tchar names with the colon right after, HTAB / SP / VCHAR /
//! obs-text values), and field names are lowercased in place as they pass.
//!
//! Before, a head went through httparse and then the gate's own line check,
//! two passes over every byte, and a response's names were lowercased in a
//! third: 3,000 instructions for wrk's one-field request and 2,600 for
//! nginx's five-field response (callgrind). The sets here are httparse's
//! strict ones or narrower, never wider: the fuzz targets
//! (`fuzzing::engine`) check every head this accepts against httparse in
//! strict mode and against hyper.
//!
//! Every check refuses at the byte that breaks it, and running out of bytes
//! is never a refusal, so a head read in pieces gets the verdict it gets
//! whole.

use super::head::MAX_HEADERS;
use crate::h1gate::{first_non_value, is_token, LOWER_TOKEN};

/// Why a head is refused. Request heads are named again by the gate's own
/// check (`h1gate::check_head`), which knows every §9 rule by name; a
/// response's refusal is this reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flaw {
    BareLf,
    BareCr,
    StartLine,
    FieldName,
    FieldValue,
    ObsFold,
    TooManyFields,
}

impl Flaw {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Flaw::BareLf => "bare LF",
            Flaw::BareCr => "bare CR",
            Flaw::StartLine => "not an HTTP/1.1 response head",
            Flaw::FieldName => "bad field name",
            Flaw::FieldValue => "bad field value",
            Flaw::ObsFold => "obs-fold",
            Flaw::TooManyFields => "more than 100 header fields",
        }
    }
}

/// `Ok(None)`: the bytes so far are a valid beginning; more are needed.
pub(crate) type Scan<T> = Result<Option<T>, Flaw>;

/// A span of the head's bytes (a head is at most 64 KiB and a bit, so
/// `u32` offsets hold it).
pub(crate) type Span = (u32, u32);

fn span(start: usize, end: usize) -> Span {
    (start as u32, end as u32)
}

/// The line end at `at`: `Ok(Some(at + 2))` after a CRLF.
fn crlf(buf: &[u8], at: usize) -> Scan<usize> {
    match (buf.get(at), buf.get(at + 1)) {
        (None, _) | (Some(b'\r'), None) => Ok(None),
        (Some(b'\r'), Some(b'\n')) => Ok(Some(at + 2)),
        (Some(b'\r'), Some(_)) => Err(Flaw::BareCr),
        (Some(b'\n'), _) => Err(Flaw::BareLf),
        (Some(_), _) => Err(Flaw::FieldValue),
    }
}

/// How far `bytes` matches `HTTP/1.0` or `HTTP/1.1`: `Ok(Some(http10))`
/// when all eight bytes are there.
fn version(bytes: &[u8]) -> Scan<bool> {
    const PREFIX: &[u8; 7] = b"HTTP/1.";
    if let Some((prefix, [minor @ (b'0' | b'1'), ..])) = bytes.split_first_chunk::<7>() {
        if prefix == PREFIX {
            return Ok(Some(*minor == b'0'));
        }
    }
    for (i, &b) in bytes.iter().take(8).enumerate() {
        let fits = match PREFIX.get(i) {
            Some(&expected) => b == expected,
            None => b == b'0' || b == b'1',
        };
        if !fits {
            return Err(Flaw::StartLine);
        }
    }
    Ok(bytes.get(7).map(|&minor| minor == b'0'))
}

/// A request line: `METHOD SP target SP HTTP/1.x CRLF` with single spaces,
/// a tchar method and a visible-ASCII target (httparse also takes
/// obs-text there; the gate never does), after at most two empty lines.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestLine {
    pub method: Span,
    pub target: Span,
    pub http10: bool,
    /// Where the first field line starts.
    pub end: usize,
}

/// RFC 9112 §2.2: a server SHOULD ignore at least one empty line before
/// the request line; two cover clients that end a body with an extra CRLF
/// (the gate's own limit).
const MAX_BLANKS: usize = 2;

pub(crate) fn request_line(buf: &[u8]) -> Scan<RequestLine> {
    let mut at = 0;
    while buf.get(at) == Some(&b'\r') || buf.get(at) == Some(&b'\n') {
        let Some(next) = crlf(buf, at)? else {
            return Ok(None);
        };
        if next / 2 > MAX_BLANKS {
            return Err(Flaw::StartLine);
        }
        at = next;
    }
    let method_start = at;
    while buf.get(at).is_some_and(|&b| is_token(b)) {
        at += 1;
    }
    let method = span(method_start, at);
    let target_start = match buf.get(at) {
        None => return Ok(None),
        Some(b' ') if at > method_start => at + 1,
        Some(_) => return Err(Flaw::StartLine),
    };
    at = target_start;
    while buf.get(at).is_some_and(|b| (0x21..=0x7e).contains(b)) {
        at += 1;
    }
    let target = span(target_start, at);
    match buf.get(at) {
        None => return Ok(None),
        Some(b' ') if at > target_start => at += 1,
        Some(_) => return Err(Flaw::StartLine),
    }
    let Some(http10) = version(&buf[at..])? else {
        return Ok(None);
    };
    let Some(end) = crlf(buf, at + 8).map_err(|_| Flaw::StartLine)? else {
        return Ok(None);
    };
    Ok(Some(RequestLine {
        method,
        target,
        http10,
        end,
    }))
}

/// A status line: `HTTP/1.x SP 3DIGIT`, then CRLF or SP, a reason of value
/// bytes and CRLF (httparse's strict form). No empty line before it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StatusLine {
    pub code: u16,
    pub http10: bool,
    pub end: usize,
}

pub(crate) fn status_line(buf: &[u8]) -> Scan<StatusLine> {
    let Some(http10) = version(buf)? else {
        return Ok(None);
    };
    let mut code = 0u16;
    for at in 8..12 {
        let Some(&b) = buf.get(at) else {
            return Ok(None);
        };
        match (at, b) {
            (8, b' ') => {}
            (9..=11, b'0'..=b'9') => code = code * 10 + u16::from(b - b'0'),
            _ => return Err(Flaw::StartLine),
        }
    }
    let reason_end = match buf.get(12) {
        None => return Ok(None),
        Some(b' ') => match first_non_value(&buf[13..]) {
            None => return Ok(None),
            Some(k) => 13 + k,
        },
        Some(_) => 12,
    };
    let Some(end) = crlf(buf, reason_end).map_err(|flaw| match flaw {
        Flaw::FieldValue => Flaw::StartLine,
        other => other,
    })?
    else {
        return Ok(None);
    };
    Ok(Some(StatusLine { code, http10, end }))
}

/// How many bytes at the start of `bytes` are tchar, lowercased in place.
fn lowercase_token_run(bytes: &mut [u8]) -> usize {
    let mut run = 0;
    for b in bytes.iter_mut() {
        let lower = LOWER_TOKEN[*b as usize];
        if lower == 0 {
            break;
        }
        *b = lower;
        run += 1;
    }
    run
}

/// One field line as found: its name (lowercased in place) and its value
/// without surrounding whitespace.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FoundField {
    pub name: Span,
    pub value: Span,
}

impl FoundField {
    pub(crate) fn name_in(self, buf: &[u8]) -> &[u8] {
        in_buf(buf, self.name)
    }

    pub(crate) fn value_in(self, buf: &[u8]) -> &[u8] {
        in_buf(buf, self.value)
    }
}

/// The bytes of `buf` at `span`.
pub(crate) fn in_buf(buf: &[u8], (start, end): Span) -> &[u8] {
    &buf[start as usize..end as usize]
}

/// Scans the field lines from `at` to the blank line, handing each field
/// to `each` (with the buffer, names already lowercased); returns where the
/// head ends, just after the blank line. `each` may refuse the field with
/// an error of its own (a request's framing rules).
pub(crate) fn fields<E: From<Flaw>>(
    buf: &mut [u8],
    mut at: usize,
    mut each: impl FnMut(&[u8], FoundField) -> Result<(), E>,
) -> Result<Option<usize>, E> {
    let mut count = 0;
    loop {
        match buf.get(at) {
            None => return Ok(None),
            Some(b'\r' | b'\n') => return Ok(crlf(buf, at)?),
            Some(b' ' | b'\t') => return Err(Flaw::ObsFold.into()),
            Some(_) if count == MAX_HEADERS => return Err(Flaw::TooManyFields.into()),
            Some(_) => {}
        }
        let name_start = at;
        at += lowercase_token_run(&mut buf[at..]);
        match buf.get(at) {
            None => return Ok(None),
            Some(b':') if at > name_start => {}
            Some(_) => return Err(Flaw::FieldName.into()),
        }
        let name = span(name_start, at);
        at += 1;
        at += buf[at..]
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        let value_start = at;
        let Some(stop) = first_non_value(&buf[at..]) else {
            return Ok(None);
        };
        let mut value_end = at + stop;
        let Some(next) = crlf(buf, value_end)? else {
            return Ok(None);
        };
        while value_end > value_start && matches!(buf[value_end - 1], b' ' | b'\t') {
            value_end -= 1;
        }
        each(
            buf,
            FoundField {
                name,
                value: span(value_start, value_end),
            },
        )?;
        count += 1;
        at = next;
    }
}

#[cfg(test)]
#[path = "scan_tests.rs"]
mod tests;
