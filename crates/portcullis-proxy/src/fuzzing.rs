//! Fuzz targets for the parsers at the gateway's hostile edge (docs/fuzzing.md).
//! Each function panics only when an invariant is broken: the cargo-fuzz
//! targets in `fuzz/` call them, and `tests/fuzz_corpus.rs` runs them over the
//! committed corpus in every ordinary `cargo test`.
//!
//! Inputs are plain bytes; where a target needs structure (several headers, a
//! peer address) it reads lines, so corpus files stay readable and editable.

use std::net::IpAddr;

mod chunked;
mod client_address;
mod engine;
mod hyper_peer;

pub use chunked::{engine_chunked, engine_chunked_rfc_extensions};
pub use client_address::client_address;
pub use engine::{engine_request_head, engine_response_head};

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Version};

use crate::h1gate::{self, Gate, Phase, Violation};
use crate::ha::sticky::{backend_tag, request_cookie};
use crate::ha::CookieKey;
use crate::http::headers::{remove_client_forwarding, ClientChain, ForwardedFields};
use crate::http::strict::{check_path, check_request_head, UNTRUSTED_CLIENT_HEADERS};
use crate::http::ClientContext;

/// The lines of `data`: split on `\n`, a trailing `\r` removed.
fn lines(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    data.split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
}

/// A cookie name made of the token characters of `raw`, or the default one.
fn cookie_name(raw: &[u8]) -> String {
    let name: String = raw
        .iter()
        .filter(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b))
        .map(|&b| char::from(b))
        .collect();
    if name.is_empty() {
        "KNOX_BACKEND-web".to_string()
    } else {
        name
    }
}

// ---------------------------------------------------------------- sticky_cookie

/// `request_cookie` over Cookie headers from the input never panics, and the
/// sticky tag of a backend is always found again when it is sent back among
/// the client's other cookies.
///
/// Input: line 1 is the cookie name (its token characters) and the backend id;
/// every further line is one Cookie header value (lines that are not a valid
/// header value are dropped). The tag is placed in the header chosen by the
/// first byte, before or after its cookies.
///
/// The tag must be found even in a header that also holds bytes outside
/// visible ASCII (browsers send UTF-8 cookie values as they are); this target
/// found that `request_cookie` once skipped such headers whole.
pub fn sticky_cookie(data: &[u8]) {
    sticky_cookie_checked(data);
}

/// The same target; kept under this name for the regression test that
/// reproduced the bug.
pub fn sticky_cookie_strict(data: &[u8]) {
    sticky_cookie_checked(data);
}

/// What the fuzz input asks for: a name, a backend id, the client's cookie
/// headers and where the tag goes. Shared with the balancer's target.
#[doc(hidden)]
pub struct CookieCase {
    pub name: String,
    pub id: String,
    pub headers: Vec<HeaderValue>,
    pub key: CookieKey,
    /// Index of the header that gets the tag (== headers.len(): a new header).
    pub slot: usize,
    pub tag_first: bool,
}

impl CookieCase {
    pub fn parse(data: &[u8], default_name: &str) -> CookieCase {
        let mut it = lines(data);
        let first = it.next().unwrap_or_default();
        let (name_part, id_part) = match first.iter().position(|&b| b == b' ') {
            Some(i) => (&first[..i], &first[i + 1..]),
            None => (first, &[][..]),
        };
        let name = if name_part.is_empty() {
            default_name.to_string()
        } else {
            cookie_name(name_part)
        };
        let id = String::from_utf8_lossy(id_part).into_owned();
        let headers: Vec<HeaderValue> = it
            .filter_map(|line| HeaderValue::from_bytes(line).ok())
            .collect();
        let selector = usize::from(data.first().copied().unwrap_or(0));
        let slot = selector % (headers.len() + 1);
        let mut key = [0u8; 32];
        for (k, b) in key.iter_mut().zip(data.iter().rev()) {
            *k = *b;
        }
        CookieCase {
            name,
            id,
            headers,
            key: CookieKey::new(key),
            slot,
            tag_first: selector & 0x80 != 0,
        }
    }

    /// The client's headers with `name=tag` added where the case says.
    pub fn headers_with(&self, tag: &str) -> HeaderMap {
        let pair = format!("{}={tag}", self.name);
        let mut map = HeaderMap::new();
        for (i, value) in self.headers.iter().enumerate() {
            if i == self.slot {
                let mut joined = Vec::new();
                if self.tag_first {
                    joined.extend_from_slice(pair.as_bytes());
                    joined.extend_from_slice(b"; ");
                    joined.extend_from_slice(value.as_bytes());
                } else {
                    joined.extend_from_slice(value.as_bytes());
                    joined.extend_from_slice(b"; ");
                    joined.extend_from_slice(pair.as_bytes());
                }
                let joined = HeaderValue::from_bytes(&joined).expect("joined cookie header");
                map.append(header::COOKIE, joined);
            } else {
                map.append(header::COOKIE, value.clone());
            }
        }
        if self.slot == self.headers.len() {
            let pair = HeaderValue::from_str(&pair).expect("name=tag is a header value");
            map.append(header::COOKIE, pair);
        }
        map
    }
}

fn sticky_cookie_checked(data: &[u8]) {
    let case = CookieCase::parse(data, "KNOX_BACKEND-web");
    // The client's own headers: whatever is found is a piece of one of them.
    let mut plain = HeaderMap::new();
    for value in &case.headers {
        plain.append(header::COOKIE, value.clone());
    }
    let found = request_cookie(&plain, &case.name);
    for value in &found {
        assert!(!value.contains(';'), "a cookie value with ';': {value:?}");
        assert!(
            value.is_empty()
                || plain.get_all(header::COOKIE).iter().any(|h| h
                    .as_bytes()
                    .windows(value.len())
                    .any(|w| w == value.as_bytes())),
            "{value:?} is in no header"
        );
    }

    let tag = backend_tag(&case.key, &case.id);
    assert_eq!(tag.len(), 22, "tag {tag:?}");
    assert!(
        tag.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
        "tag {tag:?} is not cookie-safe"
    );
    let headers = case.headers_with(&tag);
    let found = request_cookie(&headers, &case.name);
    assert!(
        found.contains(&tag.as_str()),
        "tag {tag:?} of cookie {:?} lost among {headers:?}: found {found:?}",
        case.name
    );
    // Everything found before is still found: adding a cookie hides none.
    let before = request_cookie(&plain, &case.name);
    for value in before {
        assert!(found.contains(&value), "{value:?} hidden by the tag");
    }
}

// ------------------------------------------------------------------- host_value

/// The Host rule (PRODUCT.md §9) against the `http` crate's authority
/// parser: a value the gateway accepts must read the same to both, host and
/// port alike, and hold only the bytes the rule names.
pub fn host_value(data: &[u8]) {
    if !crate::http::strict::is_valid_host(data) || data.is_empty() {
        return;
    }
    let text = std::str::from_utf8(data).expect("an accepted Host is ASCII");
    let authority: http::uri::Authority = text
        .parse()
        .unwrap_or_else(|e| panic!("accepted {text:?}, which http reads as no authority: {e}"));
    assert_eq!(authority.as_str(), text);
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => {
            let close = rest.find(']').expect("a bracketed literal closes");
            (&text[..close + 2], rest[close + 1..].strip_prefix(':'))
        }
        None => match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        },
    };
    assert_eq!(authority.host(), host, "host of {text:?}");
    let port: Option<u16> = port.map(|p| p.parse().expect("an accepted port fits 16 bits"));
    assert_eq!(authority.port_u16(), port, "port of {text:?}");
    assert!(
        !text.contains(['@', ',', ';', '%', '/', '\\', ' ']),
        "accepted {text:?}"
    );
}

// -------------------------------------------------------------------- path_rule

/// `check_path` never panics; when it accepts a path, decoding it once or
/// twice (an independent decoder) shows no dot segment, no backslash, no NUL
/// that was not written literally, and no `/` that was encoded. It also
/// refuses everything the rule before §9 refused.
pub fn path_rule(data: &[u8]) {
    let path = String::from_utf8_lossy(data);
    let verdict = check_path(&path);
    if let Err(reason) = verdict {
        assert!(!reason.is_empty());
        return;
    }
    let raw = path.as_bytes();
    let once = decode(raw);
    let twice = decode(&once);
    let slashes = |b: &[u8]| b.iter().filter(|&&c| c == b'/').count();
    let raw_nul = raw.contains(&0);
    for (level, bytes) in [("raw", raw), ("once", &once[..]), ("twice", &twice[..])] {
        assert!(
            !bytes.contains(&b'\\'),
            "accepted {path:?}: backslash when decoded {level}"
        );
        assert!(
            raw_nul || !bytes.contains(&0),
            "accepted {path:?}: NUL when decoded {level}"
        );
        assert_eq!(
            slashes(bytes),
            slashes(raw),
            "accepted {path:?}: an encoded '/' when decoded {level}"
        );
        for segment in bytes.split(|&b| b == b'/') {
            let name = segment.split(|&b| b == b';').next().unwrap_or_default();
            assert!(
                name != b"." && name != b"..",
                "accepted {path:?}: dot segment {:?} when decoded {level}",
                String::from_utf8_lossy(segment)
            );
        }
    }
    // The rule before §9: `%2e` read as a dot.
    let old_rule_refuses = path.split('/').any(|segment| {
        let lower = segment.to_ascii_lowercase().replace("%2e", ".");
        lower == "." || lower == ".."
    });
    assert!(
        !old_rule_refuses,
        "accepted {path:?}, refused by the old rule"
    );
}

/// Percent-decoding as a server would do it once: `%` and two hex digits is a
/// byte, anything else stays as it is.
fn decode(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some((&first, tail)) = rest.split_first() {
        let escaped = match tail {
            [hi, lo, ..] if first == b'%' => {
                let hex = |c: u8| char::from(c).to_digit(16);
                hex(*hi).zip(hex(*lo)).map(|(h, l)| (h * 16 + l) as u8)
            }
            _ => None,
        };
        match escaped {
            Some(byte) => {
                out.push(byte);
                rest = &tail[2..];
            }
            None => {
                out.push(first);
                rest = tail;
            }
        }
    }
    out
}

// ------------------------------------------------------------ forwarded_headers

/// Header names a short input can name by one byte, so the fuzzer reaches
/// the interesting ones without spelling them.
const NAMED: [&str; 20] = [
    "host",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-forwarded-context",
    "x-forwarded-prefix",
    "forwarded",
    "x-original-url",
    "x-rewrite-url",
    "true-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "http2-settings",
    "x-real-ip",
    "cookie",
    "connection",
    "content-length",
    "transfer-encoding",
];

/// Headers from lines `name: value` (or `N: value`, N a digit string naming
/// an entry of `NAMED`); lines that are not a valid name and value are dropped.
fn header_lines<'a>(lines: impl Iterator<Item = &'a [u8]>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        let name = match std::str::from_utf8(name)
            .ok()
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(i) => HeaderName::from_static(NAMED[i % NAMED.len()]),
            None => match HeaderName::from_bytes(name) {
                Ok(name) => name,
                Err(_) => continue,
            },
        };
        if let Ok(value) = HeaderValue::from_bytes(value) {
            map.append(name, value);
        }
    }
    map
}

/// The peer, port and TLS flag from a line such as `10.0.0.7 8443 tls`.
fn client_line(line: &[u8]) -> ClientContext {
    let text = String::from_utf8_lossy(line);
    let mut words = text.split_whitespace();
    let ip = words
        .next()
        .and_then(|w| w.parse::<IpAddr>().ok())
        .unwrap_or_else(|| {
            // Any bytes still give some address, v4 or v6 by the length.
            let mut octets = [0u8; 16];
            for (o, b) in octets.iter_mut().zip(line) {
                *o = *b;
            }
            if line.len().is_multiple_of(2) {
                IpAddr::from([octets[0], octets[1], octets[2], octets[3]])
            } else {
                IpAddr::from(octets)
            }
        });
    let port = words.next().and_then(|w| w.parse().ok()).unwrap_or(8443);
    let tls = words.next().is_some_and(|w| w == "tls");
    ClientContext::new(ip, port, tls)
}

/// `remove_client_forwarding` then `ForwardedFields` (as the forwarding path
/// uses them)
/// never panic, and leave one X-Forwarded-Proto, -Port, -Server, -Context,
/// -Host (when the request named a host), X-Real-IP and X-Forwarded-For
/// ending with the peer; none of the untrusted headers; every other header
/// as the client sent it.
///
/// Input: line 1 `IP PORT [tls]`, line 2 `MEMBER-ID CONTEXT`, then headers.
/// Without a Host header the forwarded fields get no host, and a client's own
/// X-Forwarded-Host must not survive (this target found that it once did).
pub fn forwarded_headers(data: &[u8]) {
    forwarded_headers_checked(data, true);
}

/// The same target; kept under this name for the regression test that
/// reproduced the bug.
pub fn forwarded_headers_strict(data: &[u8]) {
    forwarded_headers_checked(data, true);
}

/// The engine's lines are the map's fields, one per name.
fn check_written_fields(fields: &ForwardedFields<'_>, has_host: bool) {
    let mut lines = Vec::new();
    fields.write_h1(&mut lines);
    let written = lines
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .count();
    assert_eq!(written, if has_host { 7 } else { 6 });
}

fn forwarded_headers_checked(data: &[u8], strict: bool) {
    let mut it = lines(data);
    let client = client_line(it.next().unwrap_or_default());
    let second = String::from_utf8_lossy(it.next().unwrap_or_default()).into_owned();
    let (member, context) = second.split_once(' ').unwrap_or((&second, "/gateway/t"));
    let member = HeaderValue::from_str(member).unwrap_or(HeaderValue::from_static("member-1"));
    let context = HeaderValue::from_str(context).unwrap_or(HeaderValue::from_static("/gateway/t"));
    let mut headers = header_lines(it);
    let before = headers.clone();
    let original_host = headers
        .get(header::HOST)
        .map(crate::http::strict::HostValue::from);

    let chain = ClientChain {
        prior_for: remove_client_forwarding(&mut headers),
        real_ip: None,
    };
    let fields = ForwardedFields {
        client: &client,
        chain: &chain,
        host: original_host.as_ref(),
        member_id: &member,
        context: &context,
        identity: None,
    };
    fields.insert_into(&mut headers);
    check_written_fields(&fields, original_host.is_some());

    let one = |name: &str| -> HeaderValue {
        let mut values = headers.get_all(name).iter();
        match (values.next(), values.next()) {
            (Some(v), None) => v.clone(),
            (None, _) => panic!("no {name} in {headers:?}"),
            (Some(_), Some(_)) => panic!("more than one {name} in {headers:?}"),
        }
    };
    let proto = one("x-forwarded-proto");
    assert_eq!(proto, if client.tls { "https" } else { "http" });
    assert_eq!(one("x-forwarded-server"), member);
    assert_eq!(one("x-forwarded-context"), context);
    assert_eq!(one("x-real-ip"), client.peer_ip.to_string().as_str());
    let port = one("x-forwarded-port");
    let port: u16 = port
        .to_str()
        .ok()
        .and_then(|p| p.parse().ok())
        .expect("X-Forwarded-Port is a number");
    match &original_host {
        Some(host) => {
            assert_eq!(one("x-forwarded-host").as_bytes(), host.as_bytes());
            // The port is read from the bytes: a Host with obs-text before
            // its port still names that port (the regression
            // `obs-text-host-names-its-port`).
            let host = String::from_utf8_lossy(host.as_bytes());
            let after = host.rfind(']').map_or(&host[..], |i| &host[i + 1..]);
            let host_port = after
                .rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok());
            assert_eq!(port, host_port.unwrap_or(client.local_port));
        }
        None => {
            assert_eq!(port, client.local_port);
            if strict {
                assert!(
                    !headers.contains_key("x-forwarded-host"),
                    "the client's X-Forwarded-Host reaches the backend: {headers:?}"
                );
            }
        }
    }
    let xff = one("x-forwarded-for");
    let xff = xff.to_str().expect("X-Forwarded-For is text");
    let last = xff.rsplit(',').next().unwrap_or_default().trim();
    assert_eq!(last, client.peer_ip.to_string(), "X-Forwarded-For {xff:?}");
    for name in &UNTRUSTED_CLIENT_HEADERS {
        assert!(!headers.contains_key(name), "{name} survived: {headers:?}");
    }
    check_untouched(&before, &headers);
}

/// Every field the gateway neither manages nor removes as untrusted is as
/// the client sent it, and no other field appeared.
fn check_untouched(before: &HeaderMap, headers: &HeaderMap) {
    let managed = [
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-server",
        "x-forwarded-context",
        "x-real-ip",
    ];
    let untrusted = |name: &HeaderName| UNTRUSTED_CLIENT_HEADERS.contains(name);
    for name in before.keys() {
        if managed.contains(&name.as_str()) || untrusted(name) {
            continue;
        }
        let was: Vec<_> = before.get_all(name).iter().collect();
        let is: Vec<_> = headers.get_all(name).iter().collect();
        assert_eq!(was, is, "{name} changed");
    }
    for name in headers.keys() {
        assert!(
            before.contains_key(name) || managed.contains(&name.as_str()),
            "{name} appeared"
        );
    }
}

// ------------------------------------------------------------- request_head

/// The framing gate (`h1gate`) on any client bytes: fed whole, byte by byte
/// and at cuts drawn from the input, it reaches the same verdict, head count
/// and phase; each head it accepts is accepted by `check_head` and, whole and
/// as one request, by httparse (the gate is never more lenient than the parser
/// behind it); `check_head` accepting the input means the gate accepts it as
/// one head. A head the gate accepts also has names, values and method the
/// `http` crate takes, and `strict::check_request_head` on it (as parsed by
/// httparse) does not panic and refuses nothing but CONNECT and a Host value
/// that is no authority (the value rule is the pipeline's; the gate enforces
/// the Host count and the Content-Length rules).
pub fn request_head(data: &[u8]) {
    let whole = gate_verdict(data, &[]);
    let bytewise: Vec<usize> = (1..data.len()).collect();
    assert_eq!(
        gate_verdict(data, &bytewise),
        whole,
        "byte-by-byte feeding changed the verdict"
    );
    let cuts = cuts_from(data);
    assert_eq!(
        gate_verdict(data, &cuts),
        whole,
        "feeding at {cuts:?} changed the verdict"
    );

    if h1gate::check_head(data).is_ok() {
        let mut gate = Gate::new();
        assert_eq!(
            gate.feed(data),
            Ok(()),
            "check_head accepts, the gate refuses"
        );
        assert_eq!(gate.heads(), 1);
    }

    // Every head the gate accepts, found by feeding one byte at a time: a
    // head starts at the last byte fed while the gate was idle.
    let mut gate = Gate::new();
    let mut start = 0;
    for end in 1..=data.len() {
        if gate.phase() == Phase::Idle {
            start = end - 1;
        }
        let heads = gate.heads();
        if gate.feed(&data[end - 1..end]).is_err() || gate.switched().is_some() {
            if gate.heads() > heads {
                check_accepted_head(&data[start..end]);
            }
            break;
        }
        if gate.heads() > heads {
            check_accepted_head(&data[start..end]);
        }
    }
}

/// The gate's verdict over `data` fed in pieces ending at `cuts`.
fn gate_verdict(data: &[u8], cuts: &[usize]) -> (Result<(), Violation>, u64, Phase) {
    let mut gate = Gate::new();
    let mut start = 0;
    let mut result = Ok(());
    for &cut in cuts.iter().chain(std::iter::once(&data.len())) {
        let cut = cut.clamp(start, data.len());
        result = gate.feed(&data[start..cut]);
        start = cut;
        if result.is_err() {
            break;
        }
    }
    (result, gate.heads(), gate.phase())
}

/// Up to 8 sorted cut offsets, drawn from the input's own bytes (FNV-1a).
fn cuts_from(data: &[u8]) -> Vec<usize> {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let count = (hash % 9) as usize;
    let mut cuts: Vec<usize> = (0..count)
        .map(|i| {
            hash = hash.rotate_left(17).wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ i as u64;
            (hash % (data.len() as u64 + 1)) as usize
        })
        .collect();
    cuts.sort_unstable();
    cuts
}

/// One head (leading empty lines included) the gate accepted.
fn check_accepted_head(head: &[u8]) {
    let shown = || String::from_utf8_lossy(head).into_owned();
    assert!(
        h1gate::check_head(head).is_ok(),
        "the gate accepted {:?}, check_head refuses it: {:?}",
        shown(),
        h1gate::check_head(head)
    );
    // As many header slots as lines: a capacity limit is not leniency.
    let lines = head.iter().filter(|&&b| b == b'\n').count();
    let mut slots = vec![httparse::EMPTY_HEADER; lines + 1];
    let mut request = httparse::Request::new(&mut slots);
    match request.parse(head) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        other => panic!("the gate accepted {:?}, httparse: {other:?}", shown()),
    }
    let (Some(method), Some(minor)) = (request.method, request.version) else {
        panic!("httparse gave no method or version for {:?}", shown());
    };
    let method = Method::from_bytes(method.as_bytes()).expect("gate-accepted method");
    let version = if minor == 0 {
        Version::HTTP_10
    } else {
        Version::HTTP_11
    };
    let mut headers = HeaderMap::new();
    for h in request.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes());
        let value = HeaderValue::from_bytes(h.value);
        let (Ok(name), Ok(value)) = (name, value) else {
            panic!(
                "the gate accepted a field http cannot hold in {:?}",
                shown()
            );
        };
        headers.append(name, value);
    }
    let host_is_valid = headers
        .get(header::HOST)
        .is_none_or(|host| crate::http::strict::is_valid_host(host.as_bytes()));
    match check_request_head(&method, version, &headers, None) {
        Ok(()) => {
            assert!(method != Method::CONNECT, "CONNECT passed");
            assert!(host_is_valid, "an invalid Host passed: {:?}", shown());
        }
        Err(refusal) if method != Method::CONNECT && !host_is_valid => {
            assert_eq!(refusal.reason(), crate::http::strict::BAD_HOST);
        }
        Err(refusal) => {
            assert_eq!(
                (method, refusal.status().as_u16()),
                (Method::CONNECT, 405),
                "the gate accepted {:?}, check_request_head refuses it: {}",
                shown(),
                refusal.reason()
            );
        }
    }
}
