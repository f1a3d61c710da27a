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
mod tests {
    use super::*;

    #[test]
    fn host_fields_keep_the_first_host_as_a_map_lookup_does() {
        let mut h = HeaderMap::new();
        assert_eq!(HostFields::of(&h), HostFields::Missing);
        h.append(header::HOST, HeaderValue::from_static("a"));
        assert_eq!(
            HostFields::of(&h).into_first(),
            h.get(header::HOST).map(HostValue::from)
        );
        h.append(header::HOST, HeaderValue::from_static("b"));
        let several = HostFields::of(&h);
        let a = HostValue::from(&HeaderValue::from_static("a"));
        assert_eq!(several, HostFields::Several(a));
        assert_eq!(
            several.into_first(),
            h.get(header::HOST).map(HostValue::from)
        );
    }

    /// A scanned value answers as the `HeaderValue` of its bytes would, for
    /// every byte value: bytes, text, and the map's value.
    #[test]
    fn a_scanned_host_answers_as_its_header_value() {
        for byte in 0u8..=255 {
            let bytes = vec![b'a', byte, b'b'];
            let scanned = HostValue::scanned(bytes::Bytes::from(bytes.clone()));
            assert_eq!(scanned.as_bytes(), &bytes[..]);
            let value = HeaderValue::from_bytes(&bytes).ok();
            assert_eq!(scanned.to_header_value(), value, "{byte:#x}");
            if let Some(value) = value {
                assert_eq!(scanned.to_str(), value.to_str().ok(), "{byte:#x}");
                assert_eq!(scanned, HostValue::from(&value));
            }
        }
    }

    #[test]
    fn path_rule_refuses_every_escape() {
        for bad in [
            "/a/../b",
            "/..",
            "/.",
            "/%2e%2e/x",
            "/%2E./x",
            "/..%2fsecret",
            "/..%2Fsecret",
            "/%2e%2e%2fsecret",
            "/%252e%252e/secret",
            "/%252E%252E%252Fsecret",
            "/..%5csecret",
            "/..%5Csecret",
            "/..\\..\\secret",
            "/a\\b",
            "/..;/secret",
            "/..;a=b/secret",
            "/.;/x",
            "/%2e%2e;x/secret",
            "/..%3bx/secret",
            "/a%2fb",
            "/a%252fb",
            "/a%00b",
            "/a%2500b",
            "/%255c",
        ] {
            assert!(check_path(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn path_rule_catches_every_dot_segment_of_the_old_rule() {
        // The rule before §9: a segment equal to `.` or `..` once `%2e` is
        // read as a dot. The new rule must refuse everything it refused.
        let reference = |rest: &str| {
            rest.split('/').any(|segment| {
                let lower = segment.to_ascii_lowercase().replace("%2e", ".");
                lower == "." || lower == ".."
            })
        };
        let pieces = [
            "", ".", "..", "...", "%2e", "%2E", "%2", "%", "2e", "a", "/", "%2e.", ".%2E", ";",
            "%25", "%3b",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    let rest = format!("{a}{b}{c}");
                    if reference(&rest) {
                        assert!(check_path(&rest).is_err(), "{rest:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn path_rule_keeps_ordinary_paths() {
        for good in [
            "",
            "/",
            "/a/b/c",
            "/a/.b/c..",
            "/...",
            "/a;b=c/d",
            "/%41%42",
            "/a%20b",
            "/100%",
            "/%zz",
            "/%2",
            "/file.tar.gz",
            "/a/..b",
        ] {
            assert!(check_path(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn host_rule_and_connect() {
        let mut h = HeaderMap::new();
        assert!(check_request_head(&Method::GET, Version::HTTP_11, &h, None).is_err());
        assert!(check_request_head(&Method::GET, Version::HTTP_10, &h, None).is_ok());
        h.append(header::HOST, HeaderValue::from_static("a"));
        assert!(check_request_head(&Method::GET, Version::HTTP_11, &h, None).is_ok());
        h.append(header::HOST, HeaderValue::from_static("a"));
        assert!(check_request_head(&Method::GET, Version::HTTP_11, &h, None).is_err());
        let one = HeaderMap::new();
        assert_eq!(
            check_request_head(&Method::CONNECT, Version::HTTP_2, &one, None)
                .unwrap_err()
                .status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[test]
    fn only_valid_websocket_handshakes_upgrade() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        h.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
        h.insert(
            SEC_WEBSOCKET_KEY,
            HeaderValue::from_static("dGhlIHNhbXBsZSBub25jZQ=="),
        );
        assert!(is_websocket_upgrade(&Method::GET, Version::HTTP_11, &h));
        assert!(!is_websocket_upgrade(&Method::POST, Version::HTTP_11, &h));
        let mut h2c = h.clone();
        h2c.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!is_websocket_upgrade(&Method::GET, Version::HTTP_11, &h2c));
        let mut bad_key = h.clone();
        bad_key.insert(SEC_WEBSOCKET_KEY, HeaderValue::from_static("short"));
        assert!(!is_websocket_upgrade(
            &Method::GET,
            Version::HTTP_11,
            &bad_key
        ));
        let mut two = h.clone();
        two.append(header::UPGRADE, HeaderValue::from_static("h2c"));
        assert!(!is_websocket_upgrade(&Method::GET, Version::HTTP_11, &two));
    }

    #[test]
    fn responses_outside_the_rules() {
        assert!(check_response_status(StatusCode::OK, false).is_ok());
        assert!(check_response_status(StatusCode::SWITCHING_PROTOCOLS, true).is_ok());
        assert!(check_response_status(StatusCode::SWITCHING_PROTOCOLS, false).is_err());
        let odd = StatusCode::from_u16(600).unwrap();
        assert!(check_response_status(odd, false).is_err());
    }

    #[test]
    fn cookies_are_joined() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1"));
        h.append(header::COOKIE, HeaderValue::from_static("b=2"));
        join_cookies(&mut h);
        assert_eq!(h.get_all(header::COOKIE).iter().count(), 1);
        assert_eq!(h[header::COOKIE], "a=1; b=2");
    }

    #[test]
    fn host_values_are_host_names_or_addresses_with_a_port() {
        for good in [
            "",
            "gw.test",
            "gw.test:8080",
            "GW-1.example.COM",
            "svc_a.internal",
            "~user.example",
            "127.0.0.1",
            "127.0.0.1:65535",
            "[::1]",
            "[2001:db8::1]:443",
            "1:0",
        ] {
            assert!(is_valid_host(good.as_bytes()), "{good}");
        }
        for bad in [
            "a b",
            "a,b",
            "gw.test, evil.example",
            "evil.example/path",
            "evil.example\\x",
            "x:1@y",
            "user@gw.test",
            "gw%2etest",
            "a;b=c",
            "h:",
            ":80",
            "gw.test:65536",
            "gw.test:123456",
            "gw.test:+80",
            "gw.test:80:80",
            "[::1",
            "[::1]x",
            "[v1.fe]",
            "[gw.test]",
            "::1",
            "é.example",
            "a\tb",
        ] {
            assert!(!is_valid_host(bad.as_bytes()), "{bad}");
        }
        assert!(!is_valid_host(&[b'a'; 254]));
        assert!(is_valid_host(&[b'a'; 253]));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2048))]
        /// The one-pass Host check reads every value as the general shape does.
        #[test]
        fn the_host_fast_path_agrees_with_the_general_shape(
            value in "[a-z0-9.:_~\\[\\]@,%/ -]{0,12}|[0-9:]{0,8}|[a]{250,256}(:[0-9]{0,6})?"
        ) {
            let general = value.is_empty()
                || authority_shape(value.as_bytes(), |b| HOST_NAME_BYTE[b as usize]);
            proptest::prop_assert_eq!(is_valid_host(value.as_bytes()), general, "{:?}", value);
        }
    }

    #[test]
    fn a_remembered_host_gives_every_value_its_own_verdict() {
        let long_valid = "a".repeat(REMEMBERED_HOST + 1);
        let values = [
            "gw.test",
            "gw.test",
            "a,b",
            "gw.test",
            "a,b",
            "",
            "",
            "h:",
            "[::1]",
            "[::1]x",
            &long_valid,
            "a b",
            &long_valid,
        ];
        for value in values {
            assert_eq!(
                is_valid_host_remembered(value.as_bytes()),
                is_valid_host(value.as_bytes()),
                "{value:?}"
            );
        }
        LAST_VALID_HOST.with(|last| assert_eq!(last.borrow().as_slice(), b"[::1]"));
    }

    #[test]
    fn an_invalid_host_is_refused_in_every_version_and_a_bad_authority_too() {
        for version in [Version::HTTP_10, Version::HTTP_11, Version::HTTP_2] {
            let mut h = HeaderMap::new();
            h.insert(header::HOST, HeaderValue::from_static("a,b"));
            assert_eq!(
                check_request_head(&Method::GET, version, &h, None),
                Err(Refusal::BadRequest(BAD_HOST)),
                "{version:?}"
            );
        }
        let mut valid_host = HeaderMap::new();
        valid_host.insert(header::HOST, HeaderValue::from_static("gw.test"));
        let check =
            |authority| check_request_head(&Method::GET, Version::HTTP_11, &valid_host, authority);
        assert!(check(None).is_ok());
        assert!(check(Some("gw.test:443")).is_ok());
        for bad in ["", "user@gw.test", "a,b"] {
            assert_eq!(
                check(Some(bad)),
                Err(Refusal::BadRequest(BAD_AUTHORITY)),
                "{bad}"
            );
        }
    }

    #[test]
    fn plain_authorities() {
        for good in [
            "gw.example",
            "gw.example:8443",
            "127.0.0.1:80",
            "[::1]:8443",
            "[::1]",
        ] {
            assert!(is_plain_authority(good), "{good}");
        }
        for bad in [
            "",
            "evil.example/path",
            "a b",
            "x:99999999",
            "::1",
            "a@b",
            "h:",
        ] {
            assert!(!is_plain_authority(bad), "{bad}");
        }
    }
}
