//! A strict, sans-IO framing gate for HTTP/1.1 requests (PRODUCT.md §9).
//!
//! hyper (httparse underneath) is more lenient than §9 allows: it accepts bare LF
//! line endings and reports bad chunk sizes only as a body error mid-stream. The
//! gate sees the client's raw bytes *before* hyper does, follows where each
//! request head and body begins and ends (RFC 9112 §6.3), and reports the first
//! violation. Anything two parsers could read differently is refused.
//!
//! Shape of the work, per state:
//! - **Head**: a line-ending scan ([`scan::LineScan`]) runs over every byte as it
//!   arrives, so a bare CR or LF is refused in the very read that carries it
//!   (before hyper could take a bare LF as the end of a head). When the blank line
//!   is seen, [`check_head`] validates the complete head. A head that arrives in
//!   one read is checked in place; only a head split across reads is copied into a
//!   reusable buffer, so the common case allocates nothing.
//! - **Content-Length body**: a countdown; body bytes are never scanned.
//! - **Chunked body**: a byte state machine for size lines (split anywhere), a
//!   countdown for data, and the trailer section checked like a head.
//! - **Switched**: after an `Upgrade` (with `Connection: upgrade`) or `CONNECT`
//!   head and its body, the bytes may be another protocol, so the gate stops
//!   checking; the caller decides what happens next.
//!
//! After a violation the gate stays failed and repeats the same violation.

mod chunked;
mod decode;
mod head;
mod io;
mod scan;

#[cfg(test)]
mod prop_tests;
#[cfg(test)]
mod tests;

pub(crate) use chunked::hex_digit;
pub use decode::{ChunkedDecoder, Decoded};
pub(crate) use head::HeadFields;
pub use head::{check_head, MAX_HEAD};
pub use io::{GateStatus, GatedIo};
pub(crate) use scan::{first_non_value, is_token, LOWER_TOKEN};

use chunked::{ChunkScan, ChunkStep};
use scan::LineScan;

/// The first rule a client's bytes broke. Each variant's [`Violation::reason`]
/// names the rule; it is what the 400 body carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Violation {
    #[error("bare LF: every line must end in CRLF")]
    BareLf,
    #[error("bare CR: a CR must be followed by LF")]
    BareCr,
    #[error("more than 2 empty lines before the request line")]
    TooManyEmptyLines,
    #[error("obs-fold: a field line starts with whitespace")]
    ObsFold,
    #[error("whitespace between field name and colon")]
    WhitespaceBeforeColon,
    #[error("field name is empty, not a token, or has no colon")]
    InvalidFieldName,
    #[error("control character or NUL in a field value")]
    InvalidFieldValue,
    #[error("request line is not METHOD SP target SP HTTP/1.0 or HTTP/1.1")]
    InvalidRequestLine,
    #[error("Content-Length together with Transfer-Encoding")]
    LengthWithTransferEncoding,
    #[error("Content-Length is not plain decimal digits")]
    InvalidContentLength,
    #[error("more than one Content-Length")]
    DuplicateContentLength,
    #[error("Transfer-Encoding must list chunked exactly once, last")]
    InvalidTransferEncoding,
    #[error("Transfer-Encoding in an HTTP/1.0 request")]
    TransferEncodingInHttp10,
    #[error("HTTP/1.1 request without Host")]
    MissingHost,
    #[error("more than one Host")]
    DuplicateHost,
    #[error("request head over 64 KiB")]
    HeadTooLarge,
    #[error("input is not exactly one complete request head")]
    NotOneHead,
    #[error("chunk size is not 1 to 16 hex digits")]
    InvalidChunkSize,
    #[error("chunk size over 16 hex digits")]
    ChunkSizeTooLong,
    #[error("chunk extension with a control character or over 4 KiB")]
    InvalidChunkExtension,
    #[error("chunk data not followed by CRLF")]
    ChunkDataNotTerminated,
    #[error("trailer section over 64 KiB")]
    TrailersTooLarge,
}

impl Violation {
    /// The rule, as a short static string for logs and the 400 body.
    pub fn reason(&self) -> &'static str {
        use Violation::*;
        match self {
            BareLf => "bare LF: every line must end in CRLF",
            BareCr => "bare CR: a CR must be followed by LF",
            TooManyEmptyLines => "more than 2 empty lines before the request line",
            ObsFold => "obs-fold: a field line starts with whitespace",
            WhitespaceBeforeColon => "whitespace between field name and colon",
            InvalidFieldName => "field name is empty, not a token, or has no colon",
            InvalidFieldValue => "control character or NUL in a field value",
            InvalidRequestLine => "request line is not METHOD SP target SP HTTP/1.0 or HTTP/1.1",
            LengthWithTransferEncoding => "Content-Length together with Transfer-Encoding",
            InvalidContentLength => "Content-Length is not plain decimal digits",
            DuplicateContentLength => "more than one Content-Length",
            InvalidTransferEncoding => "Transfer-Encoding must list chunked exactly once, last",
            TransferEncodingInHttp10 => "Transfer-Encoding in an HTTP/1.0 request",
            MissingHost => "HTTP/1.1 request without Host",
            DuplicateHost => "more than one Host",
            HeadTooLarge => "request head over 64 KiB",
            NotOneHead => "input is not exactly one complete request head",
            InvalidChunkSize => "chunk size is not 1 to 16 hex digits",
            ChunkSizeTooLong => "chunk size over 16 hex digits",
            InvalidChunkExtension => "chunk extension with a control character or over 4 KiB",
            ChunkDataNotTerminated => "chunk data not followed by CRLF",
            TrailersTooLarge => "trailer section over 64 KiB",
        }
    }
}

/// How a request's body is framed (RFC 9112 §6.3, request rules only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Neither Transfer-Encoding nor Content-Length: no body.
    Empty,
    /// `Content-Length: n`.
    Length(u64),
    /// Transfer-Encoding whose last coding is `chunked`.
    Chunked,
}

/// Why the connection may leave HTTP/1.1 after this request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// `Upgrade` together with `Connection: upgrade`.
    Upgrade,
    /// Method `CONNECT`.
    Connect,
}

/// What a valid request head says about the bytes that follow it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framing {
    pub body: Body,
    /// `Some` when, after the body, the bytes may be another protocol.
    pub switch: Option<Switch>,
    /// `true` for HTTP/1.0, `false` for HTTP/1.1.
    pub http10: bool,
}

/// Where the gate is in the client's stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Between requests: no byte of the next head seen yet (a clean place for
    /// the stream to end).
    Idle,
    /// Inside a request head (or its leading empty lines).
    Head,
    /// Inside a request body (Content-Length or chunked, trailers included).
    Body,
    /// After an upgrade or CONNECT request: the gate no longer checks.
    Switched(Switch),
    /// A violation was found; the gate refuses everything from now on.
    Failed(Violation),
}

/// A refused feed: the violation, and how many bytes at the start of that feed
/// belong to requests (or chunk lines) that were complete and valid before the
/// offending one began. Those may still be handed on; the rest must not be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub violation: Violation,
    pub clean_len: usize,
}

#[derive(Debug)]
enum State {
    Head(LineScan),
    Length { left: u64 },
    Chunked(ChunkScan),
    Switched(Switch),
    Failed(Violation),
}

/// The framing gate: feed it the client's bytes in order, split anywhere.
#[derive(Debug)]
pub struct Gate {
    state: State,
    /// Where the stream goes after the current body: back to heads, or switched.
    after_body: Option<Switch>,
    /// Head or trailer bytes from earlier feeds while that section is incomplete.
    /// Reused, so heads split across reads allocate only until it has grown.
    buf: Vec<u8>,
    /// Number of complete, valid request heads seen.
    heads: u64,
    /// Bytes passed through since the gate switched (see [`Gate::resume`]).
    switched_bytes: u64,
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

/// A buffer that grew past this for one huge head is dropped afterwards, so an
/// idle keep-alive connection does not hold up to 64 KiB.
const KEEP_BUF: usize = 8 * 1024;

impl Gate {
    pub fn new() -> Gate {
        Gate {
            state: State::Head(LineScan::head()),
            after_body: None,
            buf: Vec::new(),
            heads: 0,
            switched_bytes: 0,
        }
    }

    /// Consumes the next client bytes. `Err` is the first violation, and stays.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), Violation> {
        self.feed_counted(bytes).map_err(|r| r.violation)
    }

    /// Like [`Gate::feed`], but a refusal also says how much of this feed came
    /// before the offending request head (or chunk line, or trailer section).
    pub fn feed_counted(&mut self, bytes: &[u8]) -> Result<(), Refusal> {
        // Offset in `bytes` where the unit in progress began; a unit that began
        // in an earlier feed makes it 0, which is what the caller should deliver.
        let mut unit_start = 0;
        let mut pos = 0;
        while pos < bytes.len() {
            let (used, boundary) = match self.step(&bytes[pos..]) {
                Ok(step) => step,
                Err(violation) => {
                    self.state = State::Failed(violation);
                    self.buf = Vec::new();
                    return Err(Refusal {
                        violation,
                        clean_len: unit_start,
                    });
                }
            };
            pos += used;
            if boundary {
                unit_start = pos;
            }
        }
        match self.state {
            State::Failed(violation) => Err(Refusal {
                violation,
                clean_len: 0,
            }),
            _ => Ok(()),
        }
    }

    /// One step of the state machine over `rest` (non-empty): bytes used, and
    /// whether a new unit (head, chunk line, trailer section) begins after them.
    fn step(&mut self, rest: &[u8]) -> Result<(usize, bool), Violation> {
        match &mut self.state {
            State::Head(_) => self.step_head(rest),
            State::Length { left } => {
                let used = usize::try_from(*left).map_or(rest.len(), |l| l.min(rest.len()));
                *left -= used as u64;
                if *left == 0 {
                    self.end_body();
                    return Ok((used, true));
                }
                Ok((used, false))
            }
            State::Chunked(chunks) => match chunks.step(rest)? {
                ChunkStep::Partial { used, trailer } => {
                    if trailer {
                        self.buf.extend_from_slice(&rest[..used]);
                    }
                    Ok((used, false))
                }
                ChunkStep::Boundary(used) => Ok((used, true)),
                ChunkStep::Trailers(used) => {
                    self.finish_trailers(&rest[..used])?;
                    Ok((used, true))
                }
            },
            State::Switched(_) => {
                self.switched_bytes += rest.len() as u64;
                Ok((rest.len(), false))
            }
            State::Failed(v) => Err(*v),
        }
    }

    fn step_head(&mut self, rest: &[u8]) -> Result<(usize, bool), Violation> {
        // Only called from `step` in the head state; the scan is borrowed here
        // rather than passed in so `self.buf` stays usable below.
        let State::Head(scan) = &mut self.state else {
            return Ok((0, true));
        };
        let (used, complete) = scan.step(rest)?;
        if !complete {
            self.buf.extend_from_slice(&rest[..used]);
            return Ok((used, false));
        }
        let framing = if self.buf.is_empty() {
            check_head(&rest[..used])
        } else {
            self.buf.extend_from_slice(&rest[..used]);
            let framing = check_head(&self.buf);
            self.release_buf();
            framing
        }?;
        self.heads += 1;
        self.after_body = framing.switch;
        self.state = match framing.body {
            Body::Length(n) if n > 0 => State::Length { left: n },
            Body::Chunked => State::Chunked(ChunkScan::new()),
            Body::Empty | Body::Length(_) => self.after_body_state(),
        };
        Ok((used, true))
    }

    fn finish_trailers(&mut self, last: &[u8]) -> Result<(), Violation> {
        let checked = if self.buf.is_empty() {
            head::check_fields(last)
        } else {
            self.buf.extend_from_slice(last);
            let checked = head::check_fields(&self.buf);
            self.release_buf();
            checked
        };
        checked?;
        self.end_body();
        Ok(())
    }

    fn end_body(&mut self) {
        self.state = self.after_body_state();
    }

    fn after_body_state(&self) -> State {
        match self.after_body {
            Some(switch) => State::Switched(switch),
            None => State::Head(LineScan::head()),
        }
    }

    /// Gives back the buffer of split heads when no head is in progress: a
    /// parked keep-alive connection keeps no memory for its next request.
    pub fn release_idle_memory(&mut self) {
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
    }

    fn release_buf(&mut self) {
        if self.buf.capacity() > KEEP_BUF {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }

    /// Where the gate is in the stream.
    pub fn phase(&self) -> Phase {
        match &self.state {
            State::Head(scan) if scan.is_fresh() => Phase::Idle,
            State::Head(_) => Phase::Head,
            State::Length { .. } | State::Chunked(_) => Phase::Body,
            State::Switched(s) => Phase::Switched(*s),
            State::Failed(v) => Phase::Failed(*v),
        }
    }

    /// `Some` once the gate has stopped checking after an upgrade or CONNECT.
    pub fn switched(&self) -> Option<Switch> {
        match self.state {
            State::Switched(s) => Some(s),
            _ => None,
        }
    }

    /// The violation that failed the gate, if any.
    pub fn violation(&self) -> Option<Violation> {
        match self.state {
            State::Failed(v) => Some(v),
            _ => None,
        }
    }

    /// Number of complete, valid request heads seen so far.
    pub fn heads(&self) -> u64 {
        self.heads
    }

    /// After the backend refused an upgrade, the connection stays HTTP/1.1 and
    /// the gate should check again. That is only sound if no byte passed while
    /// switched (those were never checked); then this returns `true` and the gate
    /// expects a new request head. Otherwise it returns `false`, changes nothing,
    /// and the caller must close the connection.
    pub fn resume(&mut self) -> bool {
        if self.switched().is_none() || self.switched_bytes > 0 {
            return false;
        }
        self.after_body = None;
        self.state = State::Head(LineScan::head());
        true
    }
}
