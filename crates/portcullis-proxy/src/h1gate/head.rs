//! Checks of one complete request head or trailer section, and the framing
//! decision of RFC 9112 §6.3 for requests.

use super::scan::{all_values, find_cr_or_lf, is_target, is_token};
use super::{Body, Framing, Switch, Violation};

/// Largest request head (leading empty lines and final CRLF included), and
/// largest trailer section.
pub const MAX_HEAD: usize = 64 * 1024;

/// Checks one complete request head: at most 2 empty lines (CRLF), the request
/// line, field lines, and the blank line that ends it, with nothing after.
/// Returns how the request's body is framed and whether the connection may
/// switch protocols after it.
pub fn check_head(head: &[u8]) -> Result<Framing, Violation> {
    if head.len() > MAX_HEAD {
        return Err(Violation::HeadTooLarge);
    }
    let mut rest = head;
    let mut blanks = 0;
    while let Some(after) = rest.strip_prefix(b"\r\n") {
        blanks += 1;
        if blanks > 2 {
            return Err(Violation::TooManyEmptyLines);
        }
        rest = after;
    }
    let (line, mut rest) = next_line(rest)?;
    let request = request_line(line)?;
    let mut fields = Fields::default();
    loop {
        let (line, after) = next_line(rest)?;
        rest = after;
        if line.is_empty() {
            break;
        }
        let (name, value) = field_line(line)?;
        fields.note(name, value)?;
    }
    if !rest.is_empty() {
        return Err(Violation::NotOneHead);
    }
    fields.framing(request)
}

/// Checks a complete trailer section (field lines, then the blank line) with
/// the same field-line rules as a head.
pub(super) fn check_fields(section: &[u8]) -> Result<(), Violation> {
    let mut rest = section;
    loop {
        let (line, after) = next_line(rest)?;
        rest = after;
        if line.is_empty() {
            break;
        }
        field_line(line)?;
    }
    if rest.is_empty() {
        Ok(())
    } else {
        Err(Violation::NotOneHead)
    }
}

/// The framing decision of [`check_head`] for a head whose lines the
/// engine's own scan (`engine::scan`) has already checked: the same field
/// rules and the same decision, without a second pass over the bytes.
#[derive(Debug)]
pub(crate) struct HeadFields {
    request: RequestLine,
    fields: Fields,
}

impl HeadFields {
    /// For a request line with `method` (case-sensitive) in HTTP/1.0 or 1.1.
    pub(crate) fn new(method: &[u8], http10: bool) -> HeadFields {
        HeadFields {
            request: RequestLine {
                connect: method == b"CONNECT",
                http10,
            },
            fields: Fields::default(),
        }
    }

    /// One field line, its value without surrounding whitespace.
    pub(crate) fn note(&mut self, name: &[u8], value: &[u8]) -> Result<(), Violation> {
        self.fields.note(name, value)
    }

    pub(crate) fn framing(&self) -> Result<Framing, Violation> {
        self.fields.framing(self.request)
    }
}

/// Splits off one CRLF-terminated line.
fn next_line(bytes: &[u8]) -> Result<(&[u8], &[u8]), Violation> {
    let Some(end) = find_cr_or_lf(bytes) else {
        return Err(Violation::NotOneHead);
    };
    match bytes.get(end..end + 2) {
        Some(b"\r\n") => Ok((&bytes[..end], &bytes[end + 2..])),
        _ if bytes[end] == b'\n' => Err(Violation::BareLf),
        Some(_) => Err(Violation::BareCr),
        // A CR at the very end: the head was cut before its LF.
        None => Err(Violation::NotOneHead),
    }
}

#[derive(Debug, Clone, Copy)]
struct RequestLine {
    connect: bool,
    http10: bool,
}

/// `METHOD SP request-target SP HTTP/1.x` with single spaces, a token method,
/// visible-ASCII target, and version 1.0 or 1.1 (all httparse accepts).
fn request_line(line: &[u8]) -> Result<RequestLine, Violation> {
    let bad = Violation::InvalidRequestLine;
    let method_len = line.iter().position(|&b| !is_token(b)).ok_or(bad)?;
    if method_len == 0 || line[method_len] != b' ' {
        return Err(bad);
    }
    let method = &line[..method_len];
    let rest = &line[method_len + 1..];
    let target_len = rest.iter().position(|&b| !is_target(b)).ok_or(bad)?;
    if target_len == 0 || rest[target_len] != b' ' {
        return Err(bad);
    }
    let http10 = match &rest[target_len + 1..] {
        b"HTTP/1.1" => false,
        b"HTTP/1.0" => true,
        _ => return Err(bad),
    };
    Ok(RequestLine {
        // Methods are case-sensitive (RFC 9110 §9.1).
        connect: method == b"CONNECT",
        http10,
    })
}

/// Splits a field line into name and value (OWS trimmed), checking obs-fold,
/// the name's token syntax, whitespace before the colon, and value bytes.
fn field_line(line: &[u8]) -> Result<(&[u8], &[u8]), Violation> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(Violation::ObsFold);
    }
    let name_len = line
        .iter()
        .position(|&b| !is_token(b))
        .ok_or(Violation::InvalidFieldName)?;
    match line[name_len] {
        b':' if name_len > 0 => {}
        b' ' | b'\t' if name_len > 0 => {
            let after_ws = line[name_len..]
                .iter()
                .position(|&b| b != b' ' && b != b'\t');
            return Err(match after_ws.map(|k| line[name_len + k]) {
                Some(b':') => Violation::WhitespaceBeforeColon,
                _ => Violation::InvalidFieldName,
            });
        }
        _ => return Err(Violation::InvalidFieldName),
    }
    let value = &line[name_len + 1..];
    if !all_values(value) {
        return Err(Violation::InvalidFieldValue);
    }
    Ok((&line[..name_len], trim_ows(value)))
}

fn trim_ows(mut v: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = v {
        v = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = v {
        v = rest;
    }
    v
}

/// What the framing decision needs from the field lines.
#[derive(Debug, Default)]
struct Fields {
    length: Option<u64>,
    /// Transfer-Encoding seen (all its field lines form one list).
    te: bool,
    /// The last coding listed so far is `chunked`.
    te_chunked_last: bool,
    /// `chunked` already listed once.
    te_chunked_seen: bool,
    hosts: u8,
    upgrade: bool,
    connection_upgrade: bool,
}

impl Fields {
    fn note(&mut self, name: &[u8], value: &[u8]) -> Result<(), Violation> {
        // Dispatch on length first: most fields are none of these.
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                self.hosts += 1;
                if self.hosts > 1 {
                    return Err(Violation::DuplicateHost);
                }
            }
            7 if name.eq_ignore_ascii_case(b"upgrade") => self.upgrade = true,
            10 if name.eq_ignore_ascii_case(b"connection") => {
                self.connection_upgrade |= list(value).any(|t| t.eq_ignore_ascii_case(b"upgrade"));
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                if self.length.is_some() {
                    return Err(Violation::DuplicateContentLength);
                }
                self.length = Some(content_length(value)?);
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => self.transfer_coding(value)?,
            _ => {}
        }
        Ok(())
    }

    /// Every Transfer-Encoding field line extends one list (RFC 9110 §5.3).
    /// Each element must be a bare token: parameters are refused, as is an
    /// empty element, `chunked` twice, or anything after `chunked`.
    fn transfer_coding(&mut self, value: &[u8]) -> Result<(), Violation> {
        self.te = true;
        for coding in list(value) {
            if coding.is_empty() || !coding.iter().all(|&b| is_token(b)) || self.te_chunked_last {
                return Err(Violation::InvalidTransferEncoding);
            }
            if coding.eq_ignore_ascii_case(b"chunked") {
                if self.te_chunked_seen {
                    return Err(Violation::InvalidTransferEncoding);
                }
                self.te_chunked_seen = true;
                self.te_chunked_last = true;
            }
        }
        Ok(())
    }

    /// RFC 9112 §6.3 for requests, after the head-wide checks.
    fn framing(&self, request: RequestLine) -> Result<Framing, Violation> {
        if request.http10 && self.te {
            return Err(Violation::TransferEncodingInHttp10);
        }
        if !request.http10 && self.hosts == 0 {
            return Err(Violation::MissingHost);
        }
        let body = match (self.te, self.length) {
            (true, Some(_)) => return Err(Violation::LengthWithTransferEncoding),
            (true, None) if self.te_chunked_last => Body::Chunked,
            // A request whose last coding is not chunked has no knowable end.
            (true, None) => return Err(Violation::InvalidTransferEncoding),
            (false, Some(n)) => Body::Length(n),
            (false, None) => Body::Empty,
        };
        let switch = if request.connect {
            Some(Switch::Connect)
        } else if self.upgrade && self.connection_upgrade {
            Some(Switch::Upgrade)
        } else {
            None
        };
        Ok(Framing {
            body,
            switch,
            http10: request.http10,
        })
    }
}

/// Elements of a comma-separated list, OWS trimmed (empty ones included, so
/// callers can refuse them).
fn list(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(trim_ows)
}

/// Plain decimal digits that fit in u64. Lists (even of equal values), signs,
/// and empty values are refused.
fn content_length(value: &[u8]) -> Result<u64, Violation> {
    if value.is_empty() {
        return Err(Violation::InvalidContentLength);
    }
    value.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return Err(Violation::InvalidContentLength);
        }
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(Violation::InvalidContentLength)
    })
}
