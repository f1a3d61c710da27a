//! The strict-edge rules of PRODUCT.md §9 that apply to a parsed request or
//! response head: what the gateway refuses rather than repairs. Each rule is a
//! pure function so that the attack suite, the fuzz targets and both HTTP
//! engines share one definition.

use std::cell::RefCell;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode, Version};

use crate::h1gate::hex_digit;

/// Why a request is refused before it is routed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 400: the request could be read two ways.
    BadRequest(&'static str),
    /// 405: a method the gateway never forwards.
    MethodNotAllowed(&'static str),
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::BadRequest(_) => StatusCode::BAD_REQUEST,
            Refusal::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Refusal::BadRequest(reason) | Refusal::MethodNotAllowed(reason) => reason,
        }
    }
}

/// Checks of a parsed request head, for every protocol: CONNECT, the Host
/// count rule of RFC 9112 §3.2 for HTTP/1.1 (the framing gate enforces it on
/// the raw bytes first; this holds whatever engine parsed the head), and in
/// every version the shape of a Host value and of the target's `authority`
/// (absolute-form or HTTP/2), [`is_valid_host`]. Framing
/// rules such as Content-Length beside Transfer-Encoding live in the gate
/// only: hyper drops one of the two before a head gets here.
pub fn check_request_head(
    method: &Method,
    version: Version,
    headers: &HeaderMap,
    authority: Option<&str>,
) -> Result<(), Refusal> {
    check_request_start(method, version, &HostFields::of(headers), authority)
}

/// Why a Host value is refused.
pub const BAD_HOST: &str = "Host is not a host name or address with an optional port";

/// Why an absolute-form or HTTP/2 target's authority is refused.
pub const BAD_AUTHORITY: &str =
    "target authority is not a host name or address with an optional port";

/// A target's authority, when there is one, is held to the Host rule and
/// may not be empty.
fn check_target_authority(authority: Option<&str>) -> Result<(), Refusal> {
    match authority {
        Some(text) if text.is_empty() || !is_valid_host(text.as_bytes()) => {
            Err(Refusal::BadRequest(BAD_AUTHORITY))
        }
        _ => Ok(()),
    }
}

/// [`check_request_head`] with the head's Host fields already found.
pub fn check_request_start(
    method: &Method,
    version: Version,
    hosts: &HostFields,
    authority: Option<&str>,
) -> Result<(), Refusal> {
    if method == Method::CONNECT {
        return Err(Refusal::MethodNotAllowed("CONNECT is not allowed"));
    }
    if version == Version::HTTP_11 {
        match hosts {
            HostFields::One(_) => {}
            HostFields::Missing => return Err(Refusal::BadRequest("missing Host header")),
            HostFields::Several(_) => return Err(Refusal::BadRequest("more than one Host header")),
        }
    }
    if let HostFields::One(host) | HostFields::Several(host) = hosts {
        if !is_valid_host_remembered(host.as_bytes()) {
            return Err(Refusal::BadRequest(BAD_HOST));
        }
    }
    check_target_authority(authority)
}

/// A request head's Host fields, as its edge found them. The own engine
/// notes them while it builds the head's map, so the pipeline looks them up
/// in no map (two lookups, about 200 instructions a request, callgrind).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum HostFields {
    #[default]
    Missing,
    One(HostValue),
    /// More than one, with the first: HTTP/1.1 refuses them, other
    /// versions go on with the first.
    Several(HostValue),
}

/// A Host field's value: a map's, or the bytes of a head the own engine
/// scanned, whose field-value check is `HeaderValue`'s own byte rule
/// (HTAB, SP, VCHAR, obs-text). Building a `HeaderValue` from those bytes
/// checked each of them again, about 150 instructions a request
/// (callgrind); most requests only copy the bytes into the backend's head.
#[derive(Debug, Clone)]
pub struct HostValue(HostBytes);

#[derive(Debug, Clone)]
enum HostBytes {
    Value(HeaderValue),
    Scanned(bytes::Bytes),
}

impl HostValue {
    /// A value from a head scan that checked every byte as a field value.
    pub(crate) fn scanned(bytes: bytes::Bytes) -> HostValue {
        HostValue(HostBytes::Scanned(bytes))
    }

    pub fn as_bytes(&self) -> &[u8] {
        match &self.0 {
            HostBytes::Value(value) => value.as_bytes(),
            HostBytes::Scanned(bytes) => bytes,
        }
    }

    /// The value for a header map (checked again when it came from a scan,
    /// so a byte outside `HeaderValue`'s rule could never reach one).
    pub fn to_header_value(&self) -> Option<HeaderValue> {
        match &self.0 {
            HostBytes::Value(value) => Some(value.clone()),
            HostBytes::Scanned(bytes) => HeaderValue::from_maybe_shared(bytes.clone()).ok(),
        }
    }

    /// The value as text when it is all visible ASCII (SP and HTAB too),
    /// as `HeaderValue::to_str` answers.
    pub fn to_str(&self) -> Option<&str> {
        let bytes = self.as_bytes();
        let visible = bytes
            .iter()
            .all(|&b| b == b'\t' || (0x20..0x7f).contains(&b));
        visible.then(|| std::str::from_utf8(bytes).ok()).flatten()
    }
}

impl From<&HeaderValue> for HostValue {
    fn from(value: &HeaderValue) -> HostValue {
        HostValue(HostBytes::Value(value.clone()))
    }
}

/// Values are equal when their bytes are, whichever edge found them.
impl PartialEq for HostValue {
    fn eq(&self, other: &HostValue) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for HostValue {}

impl HostFields {
    pub fn of(headers: &HeaderMap) -> HostFields {
        let mut hosts = HostFields::Missing;
        for value in headers.get_all(header::HOST).iter().take(2) {
            hosts.note(value);
        }
        hosts
    }

    /// One more Host field, with this value.
    pub fn note(&mut self, value: &HeaderValue) {
        *self = match std::mem::take(self) {
            HostFields::Missing => HostFields::One(HostValue::from(value)),
            HostFields::One(first) | HostFields::Several(first) => HostFields::Several(first),
        };
    }

    /// The first Host, as a map's `get` gives it.
    pub fn into_first(self) -> Option<HostValue> {
        match self {
            HostFields::Missing => None,
            HostFields::One(first) | HostFields::Several(first) => Some(first),
        }
    }
}

/// The §9 path rule for the part of the path that is forwarded: no segment
/// may be `.` or `..` after percent-decoding once or twice (matrix parameters
/// after `;` ignored), and no `\`, encoded `/` or `\`, or encoded NUL may
/// appear at any of those decoding levels. Allocates only when the path holds
/// a `%`.
pub fn check_path(path: &str) -> Result<(), &'static str> {
    let raw = path.as_bytes();
    // Most paths hold none of the bytes any rule is about: one pass decides.
    if !raw.iter().any(|&b| matches!(b, b'.' | b'%' | b'\\')) {
        return Ok(());
    }
    if raw.contains(&b'\\') {
        return Err("path must not contain a backslash");
    }
    if !raw.contains(&b'%') {
        // Nothing encoded: only literal dot segments to look for.
        return if path.split('/').any(|s| is_dot(s.as_bytes())) {
            Err("path must not contain dot segments")
        } else {
            Ok(())
        };
    }
    let once = percent_decode(raw);
    let twice = percent_decode(&once);
    for level in [raw, &once[..], &twice[..]] {
        if level.contains(&b'\\') || level.contains(&0) {
            return Err("path must not contain an encoded backslash or NUL");
        }
    }
    // A `/` that appears only after decoding was encoded in the request.
    if count(&once, b'/') != count(raw, b'/') || count(&twice, b'/') != count(raw, b'/') {
        return Err("path must not contain an encoded slash");
    }
    // Slashes are the same at every level, so segments line up.
    for segment in raw.split(|&b| b == b'/') {
        let once = percent_decode(segment);
        if is_dot(segment) || is_dot(&once) || is_dot(&percent_decode(&once)) {
            return Err("path must not contain dot segments");
        }
    }
    Ok(())
}

fn count(bytes: &[u8], byte: u8) -> usize {
    bytes.iter().filter(|&&b| b == byte).count()
}

/// `.` or `..`, with any matrix parameters (`;...`) ignored, as Tomcat and
/// Jetty read `..;a=b`.
fn is_dot(segment: &[u8]) -> bool {
    let name = match segment.iter().position(|&b| b == b';') {
        Some(i) => &segment[..i],
        None => segment,
    };
    name == b"." || name == b".."
}

/// One round of percent-decoding; malformed escapes are kept as they are.
fn percent_decode(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(hi), Some(lo)) = (hex_digit(bytes[i + 1]), hex_digit(bytes[i + 2])) {
                out.push(hi << 4 | lo);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

const SEC_WEBSOCKET_KEY: HeaderName = HeaderName::from_static("sec-websocket-key");
const SEC_WEBSOCKET_VERSION: HeaderName = HeaderName::from_static("sec-websocket-version");

/// True when the request is a WebSocket handshake that may be forwarded as
/// an upgrade (RFC 6455 §4.1): HTTP/1.1 GET, `Connection` listing `upgrade`,
/// `Upgrade` exactly `websocket`, version 13 and a key that is base64 of 16
/// bytes. Every other upgrade (notably `h2c`) is not forwarded as one.
pub fn is_websocket_upgrade(method: &Method, version: Version, headers: &HeaderMap) -> bool {
    if method != Method::GET
        || version != Version::HTTP_11
        || !headers.contains_key(header::UPGRADE)
    {
        return false;
    }
    let connection_upgrade = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"));
    let mut upgrades = headers.get_all(header::UPGRADE).iter();
    let websocket = match (upgrades.next(), upgrades.next()) {
        (Some(value), None) => value.as_bytes().eq_ignore_ascii_case(b"websocket"),
        _ => false,
    };
    let version_13 = headers
        .get(SEC_WEBSOCKET_VERSION)
        .is_some_and(|v| v.as_bytes() == b"13");
    let mut keys = headers.get_all(SEC_WEBSOCKET_KEY).iter();
    let key_ok = match (keys.next(), keys.next()) {
        (Some(key), None) => is_websocket_key(key),
        _ => false,
    };
    connection_upgrade && websocket && version_13 && key_ok
}

/// Base64 of exactly 16 bytes: 22 alphabet characters and `==`.
fn is_websocket_key(key: &HeaderValue) -> bool {
    let bytes = key.as_bytes();
    bytes.len() == 24
        && bytes.ends_with(b"==")
        && bytes[..22]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/')
}

/// Why a backend's response head cannot be relayed (§9 "Responses").
pub fn check_response_status(
    status: StatusCode,
    upgrade_forwarded: bool,
) -> Result<(), &'static str> {
    let code = status.as_u16();
    if !(100..=599).contains(&code) {
        return Err("backend answered with a status outside 100-599");
    }
    if code == 101 && !upgrade_forwarded {
        return Err("backend switched protocols without a WebSocket upgrade");
    }
    Ok(())
}

/// Headers a client may send that a backend framework would trust as set by
/// its proxy; the gateway removes them (X-Forwarded-* are overwritten).
pub const UNTRUSTED_CLIENT_HEADERS: [HeaderName; 8] = [
    header::FORWARDED,
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-forwarded-prefix"),
    HeaderName::from_static("true-client-ip"),
    HeaderName::from_static("x-client-ip"),
    HeaderName::from_static("x-cluster-client-ip"),
    HeaderName::from_static("http2-settings"),
];

/// Cookie split over several fields (allowed in HTTP/2, RFC 9113 §8.2.3) is
/// joined into one with `; ` before it goes to an HTTP/1.1 backend.
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut values = headers.get_all(header::COOKIE).iter();
    if values.next().is_none() || values.next().is_none() {
        return;
    }
    let mut joined = Vec::new();
    for value in headers.get_all(header::COOKIE) {
        if !joined.is_empty() {
            joined.extend_from_slice(b"; ");
        }
        joined.extend_from_slice(value.as_bytes());
    }
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, value);
    }
}

/// A Host value that may be written into a rewritten `Location`: a host name
/// of letters, digits, `-` and `.`, or an IP literal, with an optional port,
/// nothing else.
pub fn is_plain_authority(host: &str) -> bool {
    authority_shape(host.as_bytes(), |b| {
        b.is_ascii_alphanumeric() || b == b'-' || b == b'.'
    })
}

/// The bytes of a host name in a Host value or a target's authority:
/// RFC 3986's unreserved set. Its other reg-name bytes (sub-delims such as
/// `,` `;` `=`, percent-encoding) and userinfo are valid URI syntax that
/// backends, caches and `X-Forwarded-Host` readers split or decode in
/// different ways, so the gateway refuses them (PRODUCT.md §9).
const HOST_NAME_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~');
        b += 1;
    }
    table
};

/// RFC 9112 §3.2's `Host = uri-host [ ":" port ]`, read strictly: a host
/// name of [`HOST_NAME_BYTE`]s (an IPv4 address is one), or a bracketed IPv6
/// literal, then optionally `:` and a port of 1 to 5 digits up to 65535. An
/// empty value is valid: §3.2 has a client send one when the target has no
/// authority.
pub fn is_valid_host(value: &[u8]) -> bool {
    if value.first() == Some(&b'[') {
        return authority_shape(value, |b| HOST_NAME_BYTE[b as usize]);
    }
    // Every request checks its Host: one pass over the name, then the port
    // (the general shape cost about 215 instructions for `127.0.0.1:PORT`,
    // callgrind).
    let name = value
        .iter()
        .position(|&b| !HOST_NAME_BYTE[b as usize])
        .unwrap_or(value.len());
    match value.get(name) {
        None => name <= 253,
        Some(b':') => (1..=253).contains(&name) && is_port(&value[name + 1..]),
        Some(_) => false,
    }
}

thread_local! {
    /// The last Host value this thread found valid (at most
    /// [`REMEMBERED_HOST`] bytes).
    static LAST_VALID_HOST: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Longest Host value [`is_valid_host_remembered`] keeps.
const REMEMBERED_HOST: usize = 64;

/// [`is_valid_host`], answered from the last value this thread found valid
/// when the value is the same. A client sends the same Host on every request
/// of a connection, and most clients of a gateway name it alike: the
/// comparison costs about a third of the check (callgrind). Only a valid
/// value is kept, and a pure check gives equal bytes the same verdict.
fn is_valid_host_remembered(value: &[u8]) -> bool {
    LAST_VALID_HOST.with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else {
            return is_valid_host(value);
        };
        if !last.is_empty() && last.as_slice() == value {
            return true;
        }
        let valid = is_valid_host(value);
        if valid && value.len() <= REMEMBERED_HOST {
            last.clear();
            last.extend_from_slice(value);
        }
        valid
    })
}

/// `host [":" port]` where host is a bracketed IPv6 literal or a name of
/// 1 to 253 bytes that `name_byte` accepts.
fn authority_shape(value: &[u8], name_byte: impl Fn(u8) -> bool) -> bool {
    let (host, port) = match value.strip_prefix(b"[") {
        Some(bracketed) => {
            let Some(close) = bracketed.iter().position(|&b| b == b']') else {
                return false;
            };
            let literal = std::str::from_utf8(&bracketed[..close]);
            if literal.map_or(true, |text| text.parse::<std::net::Ipv6Addr>().is_err()) {
                return false;
            }
            match &bracketed[close + 1..] {
                [] => (None, None),
                [b':', port @ ..] => (None, Some(port)),
                _ => return false,
            }
        }
        None => match value.iter().position(|&b| b == b':') {
            Some(colon) => (Some(&value[..colon]), Some(&value[colon + 1..])),
            None => (Some(value), None),
        },
    };
    let name_ok = host.is_none_or(|name| {
        !name.is_empty() && name.len() <= 253 && name.iter().all(|&b| name_byte(b))
    });
    name_ok && port.is_none_or(is_port)
}

/// 1 to 5 digits, at most 65535: a parser that wraps a longer number and
/// one that refuses it would reach different ports.
fn is_port(port: &[u8]) -> bool {
    if !(1..=5).contains(&port.len()) {
        return false;
    }
    let mut number = 0u32;
    for &b in port {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return false;
        }
        number = number * 10 + u32::from(digit);
    }
    number <= 65535
}

#[cfg(test)]
#[path = "strict_tests.rs"]
mod tests;
