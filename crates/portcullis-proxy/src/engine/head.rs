//! Request and response heads: found and checked in one pass
//! (`engine::scan`, with the framing gate's field rules, PRODUCT.md §9), and
//! turned into the pipeline's `ClientHead`: the target (`http::target`) and
//! the fields (`http::request_fields`) kept raw, both sharing the read
//! buffer's bytes (no copy, no header map, no `Uri`).

use bytes::{Bytes, BytesMut};
use http::header::HeaderValue;
use http::{response, HeaderMap, Method, StatusCode, Version};

use super::scan::{self, Flaw};
use crate::h1gate::{check_head, Body, Framing, HeadFields, Violation, MAX_HEAD};
use crate::http::headers::{is_in_any_case, is_tchar};
use crate::http::request_fields::{self, ClientHead, RawField, RawFields, RequestFields};
use crate::http::response_head::{self, FieldKind, RawResponseHead};
use crate::http::strict::{HostFields, HostValue};
use crate::http::RequestTarget;

/// Most header fields in a head; more gets 431 (hyper's limit too).
pub const MAX_HEADERS: usize = 100;

/// Largest request Content-Length: what a signed 64-bit offset holds, as
/// most backends count (hyper refuses the top of the u64 range itself).
pub const MAX_CONTENT_LENGTH: u64 = i64::MAX as u64;

/// Why a request head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RequestHeadError {
    /// A §9 rule: 400 and the connection closed.
    #[error("{}", .0.reason())]
    Violation(Violation),
    /// Over 64 KiB: 431.
    #[error("request head over 64 KiB")]
    TooLarge,
    /// Over [`MAX_HEADERS`] fields: 431.
    #[error("more than 100 header fields")]
    TooManyFields,
}

impl RequestHeadError {
    pub fn status(&self) -> StatusCode {
        match self {
            RequestHeadError::Violation(_) => StatusCode::BAD_REQUEST,
            RequestHeadError::TooLarge | RequestHeadError::TooManyFields => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
        }
    }

    pub fn reason(&self) -> &'static str {
        match self {
            RequestHeadError::Violation(v) => v.reason(),
            RequestHeadError::TooLarge => Violation::HeadTooLarge.reason(),
            RequestHeadError::TooManyFields => "more than 100 header fields",
        }
    }
}

/// A complete, valid request head.
#[derive(Debug)]
pub struct RequestHead {
    /// Boxed: the head is moved from the parse to the request's phases,
    /// and each move copied its 168 bytes (callgrind: memcpy).
    pub parts: Box<ClientHead>,
    pub framing: Framing,
    /// `Expect: 100-continue` was sent.
    pub expects_continue: bool,
    pub seen: SeenFields,
    /// The Host fields, noted as the head was scanned.
    pub hosts: HostFields,
}

/// Which of the fields the engine asks about later a head carries, noted
/// while its names pass: most requests carry none of these, and a look for
/// one costs a pass over the fields.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeenFields {
    pub connection: bool,
    pub upgrade: bool,
    pub expect: bool,
}

impl SeenFields {
    fn note(&mut self, name: &[u8]) {
        self.connection |= name == b"connection";
        self.upgrade |= name == b"upgrade";
        self.expect |= name == b"expect";
    }
}

/// Parses the request head at the start of `buf`. `Ok(None)`: more bytes are
/// needed. On success the head's bytes are split off `buf`; what follows it
/// (a body, or the next pipelined request) stays.
pub fn parse_request(buf: &mut BytesMut) -> Result<Option<RequestHead>, RequestHeadError> {
    // Never look further than a head may be long: a flood of head bytes is
    // refused at 64 KiB, not after the whole read.
    let window = buf.len().min(MAX_HEAD);
    let mut fields = request_fields::take_fields();
    let found = match scan_request(&mut buf[..window], &mut fields) {
        Ok(Some(found)) => found,
        not_whole => {
            // A head read in pieces is scanned again with each read: the
            // list goes back for the next look.
            request_fields::give_back_fields(fields);
            return no_head(not_whole.map(|_| ()), buf);
        }
    };
    if matches!(found.framing.body, Body::Length(n) if n > MAX_CONTENT_LENGTH) {
        return Err(RequestHeadError::Violation(Violation::InvalidContentLength));
    }
    let method =
        Method::from_bytes(scan::in_buf(buf, found.line.method)).map_err(|_| bad_line())?;
    let version = if found.framing.http10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let head = buf.split_to(found.len).freeze();
    let (target_start, target_end) = found.line.target;
    let target = RequestTarget::parse(head.slice(target_start as usize..target_end as usize))
        .map_err(|_| bad_line())?;
    let hosts = found.hosts.fields(&head);
    let headers = RawFields::new(head, fields);
    let headers = RequestFields::Raw(headers);
    // Answered here (100 Continue when the body is wanted), as hyper's
    // server does; the field still goes to the backend, as with hyper.
    let expects_continue = found.seen.expect
        && headers
            .values(&http::header::EXPECT)
            .any(|v| v.eq_ignore_ascii_case(b"100-continue"));
    Ok(Some(RequestHead {
        parts: Box::new(ClientHead {
            method,
            target,
            version,
            headers,
        }),
        framing: found.framing,
        expects_continue,
        seen: found.seen,
        hosts,
    }))
}

/// What `parse_request` answers when the scan found no whole head: more
/// bytes needed, or the refusal.
fn no_head(
    scanned: Result<(), Refused>,
    buf: &[u8],
) -> Result<Option<RequestHead>, RequestHeadError> {
    match scanned {
        Ok(()) if buf.len() > MAX_HEAD => Err(RequestHeadError::TooLarge),
        Ok(()) => Ok(None),
        Err(Refused::Violation(violation)) => Err(RequestHeadError::Violation(violation)),
        Err(Refused::Flaw(Flaw::TooManyFields)) => Err(RequestHeadError::TooManyFields),
        // The gate's check names the rule (a bare LF, whitespace before a
        // colon, ...).
        Err(Refused::Flaw(_)) => Err(head_violation(buf)),
    }
}

/// Why the scan of a request head stopped: a line the scan refused (named
/// again by the gate's check), or a field rule of the gate's.
enum Refused {
    Flaw(Flaw),
    Violation(Violation),
}

impl From<Flaw> for Refused {
    fn from(flaw: Flaw) -> Refused {
        Refused::Flaw(flaw)
    }
}

/// A request head the scan found whole.
struct FoundRequest {
    line: scan::RequestLine,
    /// The head's length, blank line included.
    len: usize,
    framing: Framing,
    seen: SeenFields,
    hosts: HostSpans,
}

/// Where the first Host value lies, and how many Host fields there are.
#[derive(Default)]
struct HostSpans {
    first: Option<scan::Span>,
    several: bool,
}

impl HostSpans {
    fn note(&mut self, value: scan::Span) {
        match self.first {
            None => self.first = Some(value),
            Some(_) => self.several = true,
        }
    }

    /// The Host fields, the first one's value sharing `head`'s bytes (the
    /// scan checked them as field-value bytes).
    fn fields(&self, head: &Bytes) -> HostFields {
        let Some((start, end)) = self.first else {
            return HostFields::Missing;
        };
        let value = HostValue::scanned(head.slice(start as usize..end as usize));
        match self.several {
            false => HostFields::One(value),
            true => HostFields::Several(value),
        }
    }
}

/// One pass over the head: its lines checked (`engine::scan`), each field
/// noted for the framing decision (`h1gate::HeadFields`, the gate's own
/// rules) and its place kept in `fields`.
fn scan_request(
    buf: &mut [u8],
    fields: &mut Vec<RawField>,
) -> Result<Option<FoundRequest>, Refused> {
    let Some(line) = scan::request_line(buf)? else {
        return Ok(None);
    };
    let mut framing = HeadFields::new(scan::in_buf(buf, line.method), line.http10);
    let mut seen = SeenFields::default();
    let mut hosts = HostSpans::default();
    fields.clear();
    let len = scan::fields(buf, line.end, |buf, field| -> Result<(), Refused> {
        let name = field.name_in(buf);
        framing
            .note(name, field.value_in(buf))
            .map_err(Refused::Violation)?;
        seen.note(name);
        if name == b"host" {
            hosts.note(field.value);
        }
        fields.push(RawField::new(field.name, field.value));
        Ok(())
    })?;
    let Some(len) = len else {
        return Ok(None);
    };
    let framing = framing.framing().map_err(Refused::Violation)?;
    Ok(Some(FoundRequest {
        line,
        len,
        framing,
        seen,
        hosts,
    }))
}

/// The rule a head the scan refused breaks, as the gate names it.
fn head_violation(buf: &[u8]) -> RequestHeadError {
    // The head ends at the first blank line if there is one; the gate checks
    // a complete head only, so a cut head is closed off for the check.
    let end = find_blank_line(buf).unwrap_or(buf.len());
    let mut head = buf[..end].to_vec();
    if !head.ends_with(b"\r\n\r\n") {
        head.extend_from_slice(b"\r\n\r\n");
    }
    match check_head(&head) {
        Err(violation) => RequestHeadError::Violation(violation),
        // Whatever httparse refused that the gate has no name for.
        Ok(_) => bad_line(),
    }
}

/// The end of the blank line that ends the head, past the empty lines
/// that may come before the request line.
fn find_blank_line(buf: &[u8]) -> Option<usize> {
    let mut leading = 0;
    while buf[leading..].starts_with(b"\r\n") {
        leading += 2;
    }
    buf[leading..]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| leading + i + 4)
}

fn bad_line() -> RequestHeadError {
    RequestHeadError::Violation(Violation::InvalidRequestLine)
}

/// How a backend's response body is framed (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// No body: 1xx, 204, 304, or an answer to HEAD.
    Empty,
    Length(u64),
    Chunked,
    /// Neither: the body runs until the backend closes.
    UntilClose,
}

/// A complete, valid response head from a backend.
#[derive(Debug)]
pub struct ResponseHead {
    /// The head as received, with the framing's edits (a repeated
    /// Content-Length collapsed, one beside chunked dropped).
    /// In a kept box from the parse on (`RawResponseHead::boxed`): moved
    /// from the read to the response, it was copied at each step.
    pub raw: Box<RawResponseHead>,
    pub framing: ResponseFraming,
    /// The backend will close the connection after this response.
    pub closes: bool,
}

impl ResponseHead {
    pub fn status(&self) -> StatusCode {
        self.raw.status
    }

    /// The head as `http` parts, for where a map is needed (an interim
    /// head, a `101`, a client on hyper's server).
    pub fn to_parts(&self, room: usize) -> Result<response::Parts, BadResponse> {
        let headers = self
            .raw
            .to_header_map(room)
            .map_err(|_| BadResponse("bad field"))?;
        let (mut parts, ()) = http::Response::new(()).into_parts();
        parts.status = self.raw.status;
        parts.version = self.raw.version;
        parts.headers = headers;
        Ok(parts)
    }
}

/// Why a backend's response head is refused: the try fails (502).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed response head from the backend: {0}")]
pub struct BadResponse(pub &'static str);

/// Parses the response head at the start of `buf` for a request with
/// `method`. `Ok(None)`: more bytes are needed. On success the head's bytes
/// are split off `buf`. The fields stay where they are: the scan's name and
/// value sets are `http`'s (tchar; HTAB, SP, VCHAR, obs-text), so every
/// field converts to a map entry where one is needed.
pub fn parse_response(
    buf: &mut BytesMut,
    method: &Method,
) -> Result<Option<ResponseHead>, BadResponse> {
    let window = buf.len().min(MAX_HEAD);
    let (line, fields, len) = match scan_response(&mut buf[..window]) {
        Ok(Some(found)) => found,
        Ok(None) if buf.len() > MAX_HEAD => return Err(BadResponse("head over 64 KiB")),
        Ok(None) => return Ok(None),
        Err(flaw) => return Err(BadResponse(flaw.reason())),
    };
    let status = StatusCode::from_u16(line.code)
        .ok()
        .filter(|s| (100..=599).contains(&s.as_u16()))
        .ok_or(BadResponse("status outside 100-599"))?;
    let version = if line.http10 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let bytes = buf.split_to(len).freeze();
    let mut raw = RawResponseHead::new(status, version, bytes, fields).boxed();
    let framing = response_framing(method, &mut raw)?;
    let closes = closes_after_raw(&raw) || framing == ResponseFraming::UntilClose;
    Ok(Some(ResponseHead {
        raw,
        framing,
        closes,
    }))
}

/// The status line and the fields, lowercased and classified, in one pass.
fn scan_response(
    buf: &mut [u8],
) -> scan::Scan<(scan::StatusLine, Vec<response_head::RawField>, usize)> {
    let Some(line) = scan::status_line(buf)? else {
        return Ok(None);
    };
    // A kept list, or one with room for most responses' fields.
    let mut fields = response_head::take_fields();
    let end = scan::fields(buf, line.end, |buf, field| -> Result<(), Flaw> {
        let kind = FieldKind::of(field.name_in(buf));
        fields.push(response_head::RawField::new(field.name, field.value, kind));
        Ok(())
    })?;
    Ok(end.map(|len| (line, fields, len)))
}

/// RFC 9112 §6.3 for responses. Content-Length next to Transfer-Encoding is
/// removed (§9); a Transfer-Encoding that does not end in chunked or comes
/// in an HTTP/1.0 response (§6.1: faulty framing), or differing or
/// malformed lengths, refuse the response.
fn response_framing(
    method: &Method,
    raw: &mut RawResponseHead,
) -> Result<ResponseFraming, BadResponse> {
    let status = raw.status;
    // Checked even where there is no body: a HEAD answer's length is
    // relayed, and a bad one would reach the client.
    let length = content_length(raw)?;
    if let Some(n) = length.filter(|_| raw.values(FieldKind::ContentLength).nth(1).is_some()) {
        // Identical repeats (RFC 9112 §6.3) go on as one field: a client
        // as strict as this gateway would refuse the repeats.
        raw.set(FieldKind::ContentLength, HeaderValue::from(n));
    }
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || method == Method::HEAD
    {
        return Ok(ResponseFraming::Empty);
    }
    if raw.has(FieldKind::TransferEncoding) {
        if raw.version == Version::HTTP_10 {
            return Err(BadResponse("Transfer-Encoding in an HTTP/1.0 response"));
        }
        if !ends_in_chunked(raw.values(FieldKind::TransferEncoding)) {
            return Err(BadResponse("Transfer-Encoding does not end in chunked"));
        }
        raw.drop_kind(FieldKind::ContentLength);
        return Ok(ResponseFraming::Chunked);
    }
    Ok(length.map_or(ResponseFraming::UntilClose, ResponseFraming::Length))
}

/// The one length all Content-Length fields agree on, if any.
fn content_length(raw: &RawResponseHead) -> Result<Option<u64>, BadResponse> {
    let mut length = None;
    for value in raw.values(FieldKind::ContentLength) {
        let parsed = parse_length(value).ok_or(BadResponse("bad Content-Length"))?;
        if length.is_some_and(|l| l != parsed) {
            return Err(BadResponse("differing Content-Length values"));
        }
        length = Some(parsed);
    }
    Ok(length)
}

/// Every coding of every Transfer-Encoding line is a token, and `chunked`
/// is the last and only there. hyper's client reads only the last element
/// of the last line, so an empty element (`chunked,`, an empty last line)
/// or a byte outside the token set would make it read the body until close
/// where skipping them would read it chunked: such lists are refused.
fn ends_in_chunked<'a>(values: impl Iterator<Item = &'a [u8]>) -> bool {
    let mut chunked_last = false;
    for value in values {
        for coding in value.split(|&b| b == b',') {
            let coding = trim_ows(coding);
            if chunked_last || coding.is_empty() || !coding.iter().all(|&b| is_tchar(b)) {
                return false;
            }
            chunked_last = coding.eq_ignore_ascii_case(b"chunked");
        }
    }
    chunked_last
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// Plain decimal digits only (no sign, no spaces), at most 19 of them.
pub fn parse_length(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        digits
            .iter()
            .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0')),
    )
}

/// `closes_after` for a head known to have no Connection field when
/// `has_connection` is false (no lookup then).
pub fn closes_after_seen(version: Version, headers: &RequestFields, has_connection: bool) -> bool {
    if !has_connection {
        return version == Version::HTTP_10;
    }
    let says = |token: &[u8]| {
        headers
            .values(&http::header::CONNECTION)
            .any(|v| lists_token(v, token))
    };
    says(b"close") || (version == Version::HTTP_10 && !says(b"keep-alive"))
}

/// HTTP/1.0 without `Connection: keep-alive`, or any `Connection: close`.
pub fn closes_after(version: Version, headers: &HeaderMap) -> bool {
    connection_says(headers, b"close")
        || (version == Version::HTTP_10 && !connection_says(headers, b"keep-alive"))
}

/// `closes_after` for a raw response head.
fn closes_after_raw(raw: &RawResponseHead) -> bool {
    let says = |token: &[u8]| {
        raw.values(FieldKind::Connection)
            .any(|v| lists_token(v, token))
    };
    says(b"close") || (raw.version == Version::HTTP_10 && !says(b"keep-alive"))
}

/// Whether a Connection value lists `token`.
// `contains` calls memchr, which costs more than the loop on values of a
// few bytes (callgrind).
#[allow(clippy::manual_contains)]
fn lists_token(value: &[u8], token: &[u8]) -> bool {
    // Nearly every value is exactly one token (`keep-alive`, `close`).
    if is_in_any_case(value, token) {
        return true;
    }
    // Else a few bytes: a plain loop, not `contains`'s call to memchr.
    if !value.iter().any(|&b| b == b',') {
        return value.trim_ascii().eq_ignore_ascii_case(token);
    }
    value
        .split(|&b| b == b',')
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(token))
}

/// Whether a `Connection` field lists `token`.
pub(super) fn connection_says(headers: &HeaderMap, token: &[u8]) -> bool {
    headers
        .get_all(http::header::CONNECTION)
        .iter()
        .any(|value| lists_token(value.as_bytes(), token))
}

#[cfg(test)]
#[path = "head_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "head_prop_tests.rs"]
mod prop_tests;
