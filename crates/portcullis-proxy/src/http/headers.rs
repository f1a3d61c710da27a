//! Header rules of a reverse proxy: hop-by-hop removal, the X-Forwarded-* set,
//! and Location rewriting (what Apache calls ProxyPassReverse).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use super::response_head::FieldKind;
use super::ClientContext;

pub(crate) const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_SERVER: HeaderName = HeaderName::from_static("x-forwarded-server");
const X_FORWARDED_CONTEXT: HeaderName = HeaderName::from_static("x-forwarded-context");

/// True for a name `strip_hop_by_hop` may remove, given in lowercase: the
/// one rule for both forms of a head (`FieldKind::of`, which a raw head's
/// edits use). Names listed in Connection go too (`connection_listed`).
pub(crate) fn is_hop_by_hop_name(name: &[u8]) -> bool {
    FieldKind::of(name).is_hop_by_hop()
}

/// The names a Connection value lists for removal besides the fixed set:
/// its comma-separated tokens, trimmed, less `keep-alive` (the fixed set
/// removes it anyway) and, with `keep_upgrade`, `upgrade`. Only tokens that
/// are field names count, and a value that is not visible ASCII lists none
/// (what `HeaderValue::to_str` refuses).
pub(crate) fn connection_listed(
    value: &[u8],
    keep_upgrade: bool,
) -> impl Iterator<Item = &[u8]> + '_ {
    let readable = value
        .iter()
        .all(|&b| b == b'\t' || (b' '..0x7f).contains(&b));
    let tokens = readable.then(|| value.split(|&b| b == b','));
    tokens.into_iter().flatten().filter_map(move |token| {
        let token = token.trim_ascii();
        let is_name = !token.is_empty() && token.iter().all(|&b| is_tchar(b));
        let skipped = token.eq_ignore_ascii_case(b"keep-alive")
            || (keep_upgrade && token.eq_ignore_ascii_case(b"upgrade"));
        let named = is_name && !skipped;
        named.then_some(token)
    })
}

/// Whether a field value is `token` in any case, where `token` is lowercase
/// letters and `-`. One OR and compare per byte, no branch: `b | 0x20` is
/// the token's byte only for that byte in either case, or for CR where the
/// token has `-`, and no field value holds a CR (the scans and `HeaderValue`
/// refuse one). `eq_ignore_ascii_case` lowered both sides byte by byte, a
/// quarter of the instructions of a response head's Connection check
/// (callgrind).
pub(crate) fn is_in_any_case(value: &[u8], token: &[u8]) -> bool {
    debug_assert!(token.iter().all(|&b| b.is_ascii_lowercase() || b == b'-'));
    value.len() == token.len()
        && value
            .iter()
            .zip(token)
            .fold(0, |differ, (&v, &t)| differ | ((v | 0x20) ^ t))
            == 0
}

/// RFC 9110 §5.6.2 tchar: what a field name is made of (the gate's table).
pub(crate) fn is_tchar(b: u8) -> bool {
    crate::h1gate::is_token(b)
}

/// Removes hop-by-hop headers. With `keep_upgrade`, `Connection: upgrade` and
/// `Upgrade` survive so a WebSocket handshake can pass.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // One pass over the fields, without hashing, decides what has to go.
    // Most messages carry none of these, or only `Connection: keep-alive`
    // (or `close`), which names nothing else to remove.
    let (mut connection, mut more) = (false, false);
    for (name, value) in headers.iter() {
        if !is_hop_by_hop_name(name.as_str().as_bytes()) {
            continue;
        }
        if *name == header::CONNECTION && names_no_field(value.as_bytes()) {
            connection = true;
        } else {
            more = true;
        }
    }
    if more {
        remove_hop_by_hop(headers, keep_upgrade);
    } else if connection {
        headers.remove(header::CONNECTION);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// True when a Connection value lists only `keep-alive` and `close`, which
/// name no other field to remove.
pub(crate) fn names_no_field(value: &[u8]) -> bool {
    // Nearly every value is one of the two alone.
    if is_in_any_case(value, b"keep-alive") || is_in_any_case(value, b"close") {
        return true;
    }
    value.split(|&b| b == b',').all(|token| {
        let token = token.trim_ascii();
        token.eq_ignore_ascii_case(b"keep-alive") || token.eq_ignore_ascii_case(b"close")
    })
}

fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let kept = |name: &HeaderName| {
        keep_upgrade && (*name == header::UPGRADE || *name == header::CONNECTION)
    };
    let mut doomed = Doomed::default();
    for (name, value) in headers.iter() {
        if *name == header::CONNECTION {
            for token in connection_listed(value.as_bytes(), keep_upgrade) {
                if let Ok(listed) = HeaderName::from_bytes(token) {
                    doomed.push(listed);
                }
            }
        }
        if is_hop_by_hop_name(name.as_str().as_bytes()) && !kept(name) {
            doomed.push(name.clone());
        }
    }
    // In the order found: a removal moves the map's last entry into the
    // removed one's place, so the order decides the order of what is left.
    for name in doomed.in_order() {
        headers.remove(name);
    }
}

/// Names to remove, in the order found. The usual message has one or two
/// (`Connection` itself, `Keep-Alive`): they stay on the stack, and only a
/// longer list allocates.
#[derive(Default)]
struct Doomed {
    first: [Option<HeaderName>; 4],
    more: Vec<HeaderName>,
}

impl Doomed {
    fn push(&mut self, name: HeaderName) {
        match self.first.iter_mut().find(|slot| slot.is_none()) {
            Some(slot) => *slot = Some(name),
            None => self.more.push(name),
        }
    }

    fn contains(&self, name: &HeaderName) -> bool {
        self.first
            .iter()
            .flatten()
            .chain(&self.more)
            .any(|n| n == name)
    }

    fn in_order(self) -> impl Iterator<Item = HeaderName> {
        self.first.into_iter().flatten().chain(self.more)
    }
}

/// True when the request asks for a protocol upgrade (WebSocket) over HTTP/1.1.
pub fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
}

const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// True for the names whose client copies never reach a backend: the ones a
/// backend framework would trust as its proxy's (`Forwarded`, `X-Original-URL`,
/// ..., `strict::UNTRUSTED_CLIENT_HEADERS`, §9) and the ones the gateway sets
/// itself (X-Real-IP and X-Forwarded-*, §3). One match on the name: the
/// compiler dispatches on its length first.
fn is_gateway_owned(name: &HeaderName) -> bool {
    is_gateway_owned_name(name.as_str().as_bytes())
}

/// `is_gateway_owned` for a lowercase name's bytes (a raw head's).
pub(crate) fn is_gateway_owned_name(name: &[u8]) -> bool {
    matches!(
        name,
        b"forwarded"
            | b"x-original-url"
            | b"x-rewrite-url"
            | b"x-forwarded-prefix"
            | b"true-client-ip"
            | b"x-client-ip"
            | b"x-cluster-client-ip"
            | b"http2-settings"
            | b"x-real-ip"
            | b"x-forwarded-for"
            | b"x-forwarded-proto"
            | b"x-forwarded-port"
            | b"x-forwarded-host"
            | b"x-forwarded-server"
            | b"x-forwarded-context"
    )
}

/// Removes the client's copies of what the gateway owns (`is_gateway_owned`)
/// so nothing the client wrote contradicts the fields the gateway adds (§9).
/// Returns the client's X-Forwarded-For, its fields joined, when it names
/// anything: the gateway appends the peer to it.
pub fn remove_client_forwarding(headers: &mut HeaderMap) -> Option<HeaderValue> {
    // Most requests carry none: one pass over the names, without hashing,
    // decides whether anything has to be removed.
    if !headers.keys().any(is_gateway_owned) {
        return None;
    }
    let prior_for = client_forwarded_for(
        headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .map(HeaderValue::as_bytes),
    );
    let mut doomed = Doomed::default();
    for name in headers.keys().filter(|name| is_gateway_owned(name)) {
        if !doomed.contains(name) {
            doomed.push(name.clone());
        }
    }
    for name in doomed.in_order() {
        headers.remove(name);
    }
    prior_for
}

/// The client's X-Forwarded-For fields joined with `, `, blank ones left out;
/// `None` when none names anything or one is not visible ASCII.
pub(crate) fn client_forwarded_for<'a>(
    values: impl Iterator<Item = &'a [u8]>,
) -> Option<HeaderValue> {
    let mut joined: Option<String> = None;
    for value in values {
        let value = super::request_fields::visible_str(value)?.trim();
        if value.is_empty() {
            continue;
        }
        match &mut joined {
            None => joined = Some(value.to_owned()),
            Some(list) => {
                list.push_str(", ");
                list.push_str(value);
            }
        }
    }
    HeaderValue::from_str(&joined?).ok()
}

/// The fields the gateway adds to every request it forwards (§3): X-Real-IP
/// (the client's address), X-Forwarded-For (the client's list with the
/// peer appended), -Proto,
/// -Port, -Host, -Server and -Context. They are not inserted into the
/// client's header map: the connector writes them after the client's fields
/// (the own engine straight into the head it sends), where seven map inserts
/// cost about 2,400 instructions per request (callgrind).
pub struct ForwardedFields<'a> {
    pub client: &'a ClientContext,
    /// What the client side says of the chain of proxies.
    pub chain: &'a ClientChain,
    /// The client's Host (or authority); an HTTP/1.0 request may have none.
    pub host: Option<&'a super::strict::HostValue>,
    pub member_id: &'a HeaderValue,
    pub context: &'a HeaderValue,
    /// The signed-in principal in the service's identity header (§11),
    /// whose client copies the auth phase removed. Written here, not
    /// inserted into the map: an insert with a configured name hashes it,
    /// and a hop-by-hop strip could not remove it.
    pub identity: Option<(&'a HeaderName, &'a HeaderValue)>,
}

/// The client side of the chain of proxies, kept by the prepared request
/// for every try. One reference in `ForwardedFields`, not two: that struct
/// lives in every try's future, which must stay within 1 KiB
/// (`engine::backend`'s `the_try_future_is_bounded`).
#[derive(Debug, Default)]
pub struct ClientChain {
    /// The client's own X-Forwarded-For (`remove_client_forwarding`).
    pub prior_for: Option<HeaderValue>,
    /// X-Real-IP when it is not the peer: the client's address behind
    /// trusted proxies (`Gateway::client_ip`).
    pub real_ip: Option<HeaderValue>,
}

impl ForwardedFields<'_> {
    fn proto(&self) -> &'static str {
        if self.client.tls {
            "https"
        } else {
            "http"
        }
    }

    /// The Host's port when it names one other than the listener's.
    fn other_port(&self) -> Option<u16> {
        let host = self.host?.as_bytes();
        // Nearly every Host names the listener's port as its digits are
        // written here: a compare of the tail, not a parse (about 110
        // instructions a request less, callgrind). Any other spelling
        // (leading zeros) is parsed, with the same answer.
        let listener = self.client.local_port_header().as_bytes();
        if let Some(before) = host.len().checked_sub(listener.len() + 1) {
            if host[before] == b':' && host.ends_with(listener) {
                return None;
            }
        }
        let port = port_of_host(host)?;
        (port != self.client.local_port).then_some(port)
    }

    /// Writes the fields as HTTP/1.1 field lines (`name: value\r\n`). Each
    /// line's end and the next line's name are one constant: the pieces are
    /// few, and the buffer grows at most once.
    pub fn write_h1(&self, out: &mut Vec<u8>) {
        let peer = self.client.peer_ip_header().as_bytes();
        let prior = self
            .chain
            .prior_for
            .as_ref()
            .map_or(&[][..], |p| p.as_bytes());
        let host = self.host.map_or(&[][..], |h| h.as_bytes());
        let (member, context) = (self.member_id.as_bytes(), self.context.as_bytes());
        let identity = self
            .identity
            .map_or(0, |(name, value)| name.as_str().len() + value.len() + 4);
        let variable = prior.len() + host.len() + member.len() + context.len() + identity;
        let real_ip = self
            .chain
            .real_ip
            .as_ref()
            .map_or(peer, HeaderValue::as_bytes);
        out.reserve(192 + peer.len() + real_ip.len() + variable);
        out.extend_from_slice(b"x-real-ip: ");
        out.extend_from_slice(real_ip);
        out.extend_from_slice(b"\r\nx-forwarded-for: ");
        if !prior.is_empty() {
            out.extend_from_slice(prior);
            out.extend_from_slice(b", ");
        }
        out.extend_from_slice(peer);
        out.extend_from_slice(if self.client.tls {
            b"\r\nx-forwarded-proto: https\r\nx-forwarded-port: "
        } else {
            b"\r\nx-forwarded-proto: http\r\nx-forwarded-port: "
        });
        match self.other_port() {
            Some(port) => out.extend_from_slice(itoa::Buffer::new().format(port).as_bytes()),
            None => out.extend_from_slice(self.client.local_port_header().as_bytes()),
        }
        if let Some(host) = self.host {
            out.extend_from_slice(b"\r\nx-forwarded-host: ");
            out.extend_from_slice(host.as_bytes());
        }
        out.extend_from_slice(b"\r\nx-forwarded-server: ");
        out.extend_from_slice(member);
        out.extend_from_slice(b"\r\nx-forwarded-context: ");
        out.extend_from_slice(context);
        out.extend_from_slice(b"\r\n");
        if let Some((name, value)) = self.identity {
            out.extend_from_slice(name.as_str().as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }

    /// Inserts the fields into a header map, for engines that take one.
    pub fn insert_into(&self, headers: &mut HeaderMap) {
        let peer = self.client.peer_ip_header();
        headers.insert(
            X_REAL_IP,
            self.chain.real_ip.as_ref().unwrap_or(peer).clone(),
        );
        let for_value = self.chain.prior_for.as_ref().and_then(|prior| {
            let mut list = Vec::with_capacity(prior.len() + 2 + peer.len());
            list.extend_from_slice(prior.as_bytes());
            list.extend_from_slice(b", ");
            list.extend_from_slice(peer.as_bytes());
            HeaderValue::from_bytes(&list).ok()
        });
        headers.insert(X_FORWARDED_FOR, for_value.unwrap_or_else(|| peer.clone()));
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static(self.proto()));
        let port = match self.other_port() {
            Some(port) => HeaderValue::from(port),
            None => self.client.local_port_header().clone(),
        };
        headers.insert(X_FORWARDED_PORT, port);
        if let Some(host) = self.host.and_then(|host| host.to_header_value()) {
            headers.insert(X_FORWARDED_HOST, host);
        }
        headers.insert(X_FORWARDED_SERVER, self.member_id.clone());
        headers.insert(X_FORWARDED_CONTEXT, self.context.clone());
        if let Some((name, value)) = self.identity {
            headers.insert(name.clone(), value.clone());
        }
    }
}

/// The port of a Host header value, handling bracketed IPv6 literals; digits
/// only (RFC 3986 §3.2.3). On the value's bytes: no UTF-8 check and no
/// `str::parse`, as this runs for every forwarded request.
fn port_of_host(host: &[u8]) -> Option<u16> {
    // From the end: a port is the run of digits after the last colon, and a
    // colon before the run is the last one (no `]` can follow it). Two
    // reverse searches over the whole host cost twice as much (callgrind).
    let digits = host.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || digits > 5 || host.len() == digits || host[host.len() - digits - 1] != b':' {
        return None;
    }
    let port = host[host.len() - digits..]
        .iter()
        .fold(0u32, |port, &b| port * 10 + u32::from(b - b'0'));
    u16::try_from(port).ok()
}

/// Rewrites a Location-style value that points into one of the backend bases to
/// the same place under the gateway. `bases` are (backend base without trailing
/// slash) pairs; `gateway_base` has no trailing slash either.
pub fn rewrite_location(value: &str, bases: &[String], gateway_base: &str) -> Option<String> {
    for base in bases {
        if let Some(rest) = strip_prefix_ignore_ascii_case(value, base) {
            if rest.is_empty() || rest.starts_with('/') || rest.starts_with('?') {
                return Some(format!("{gateway_base}{rest}"));
            }
        }
    }
    None
}

/// Scheme and host compare case-insensitively; the path part of a base rarely
/// differs in case, so the whole prefix is compared that way.
fn strip_prefix_ignore_ascii_case<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against `eq_ignore_ascii_case` for every byte value at every place
    /// of each token, and for every value `HeaderValue` accepts of the
    /// token's length that differs in one byte.
    #[test]
    fn a_token_in_any_case_is_what_eq_ignore_ascii_case_says() {
        for token in [&b"keep-alive"[..], b"close", b"upgrade", b"chunked"] {
            assert!(is_in_any_case(token, token));
            assert!(is_in_any_case(&token.to_ascii_uppercase(), token));
            assert!(!is_in_any_case(&token[1..], token));
            for at in 0..token.len() {
                for b in 0..=255u8 {
                    let mut value = token.to_vec();
                    value[at] = b;
                    if HeaderValue::from_bytes(&value).is_err() {
                        continue;
                    }
                    assert_eq!(
                        is_in_any_case(&value, token),
                        value.eq_ignore_ascii_case(token),
                        "{value:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn strips_connection_named_and_fixed_hop_headers() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("te", HeaderValue::from_static("trailers"));
        h.insert("proxy-authorization", HeaderValue::from_static("x"));
        h.insert("proxy-foo", HeaderValue::from_static("x"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-kept"]);
    }

    #[test]
    fn plain_connection_values_are_removed_alone() {
        for value in ["keep-alive", "close", "Keep-Alive, close", " close "] {
            let mut h = HeaderMap::new();
            h.insert("connection", HeaderValue::from_static(value));
            h.insert("x-kept", HeaderValue::from_static("1"));
            h.insert("keep", HeaderValue::from_static("2"));
            strip_hop_by_hop(&mut h, false);
            assert_eq!(h.len(), 2, "{value}: {h:?}");
        }
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        strip_hop_by_hop(&mut h, false);
        assert!(h.is_empty(), "{h:?}");
    }

    #[test]
    fn connection_listed_names_match_case_insensitively() {
        let mut h = HeaderMap::new();
        h.append("connection", HeaderValue::from_static("X-One , close"));
        h.append("connection", HeaderValue::from_static("x-two"));
        h.insert("x-one", HeaderValue::from_static("1"));
        h.insert("x-two", HeaderValue::from_static("2"));
        h.insert("x-three", HeaderValue::from_static("3"));
        strip_hop_by_hop(&mut h, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-three"]);
    }

    #[test]
    fn upgrade_keeps_upgrade_but_drops_other_listed_names() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("upgrade, x-secret"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("trailers"));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        assert!(!h.contains_key("x-secret") && !h.contains_key("te"));
    }

    #[test]
    fn upgrade_survives_when_asked() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("Upgrade"));
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        assert!(is_upgrade_request(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    fn forwarded_map(client_headers: &mut HeaderMap, client: &ClientContext) -> HeaderMap {
        forwarded_map_with(client_headers, client, None)
    }

    fn forwarded_map_with(
        client_headers: &mut HeaderMap,
        client: &ClientContext,
        real_ip: Option<HeaderValue>,
    ) -> HeaderMap {
        let chain = ClientChain {
            prior_for: remove_client_forwarding(client_headers),
            real_ip,
        };
        let host = client_headers
            .get(header::HOST)
            .map(super::super::strict::HostValue::from);
        let fields = ForwardedFields {
            client,
            chain: &chain,
            host: host.as_ref(),
            member_id: &HeaderValue::from_static("m1"),
            context: &HeaderValue::from_static("/gateway/sales"),
            identity: Some((
                &HeaderName::from_static("x-user"),
                &HeaderValue::from_static("alice"),
            )),
        };
        let mut written = Vec::new();
        fields.write_h1(&mut written);
        let mut inserted = HeaderMap::new();
        fields.insert_into(&mut inserted);
        // Both ways of adding the fields give the same fields.
        let mut from_lines = HeaderMap::new();
        for field in String::from_utf8(written).unwrap().split_terminator("\r\n") {
            let (name, value) = field.split_once(": ").unwrap();
            from_lines.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        assert_eq!(from_lines, inserted);
        inserted
    }

    #[test]
    fn forwarded_headers_append_and_name_the_member() {
        let mut h = HeaderMap::new();
        h.insert("host", HeaderValue::from_static("gw.example:9443"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.9"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.0.0.10"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("gopher"));
        h.insert("x-real-ip", HeaderValue::from_static("1.2.3.4"));
        h.insert("forwarded", HeaderValue::from_static("for=evil"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        let client = ClientContext::new("127.0.0.7".parse().unwrap(), 8443, true);
        let added = forwarded_map(&mut h, &client);
        // The client's copies are gone; what is not the gateway's stays.
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h["accept"], "*/*");
        assert_eq!(added["x-forwarded-for"], "10.0.0.9, 10.0.0.10, 127.0.0.7");
        assert_eq!(added["x-real-ip"], "127.0.0.7");
        assert_eq!(added["x-forwarded-proto"], "https");
        assert_eq!(added["x-forwarded-host"], "gw.example:9443");
        assert_eq!(added["x-forwarded-port"], "9443");
        assert_eq!(added["x-forwarded-server"], "m1");
        assert_eq!(added["x-forwarded-context"], "/gateway/sales");
        assert_eq!(added["x-user"], "alice");
    }

    #[test]
    fn behind_trusted_proxies_x_real_ip_is_the_client_and_the_list_still_ends_with_the_peer() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.4"));
        let client = ClientContext::new("10.0.0.1".parse().unwrap(), 8080, false);
        let real = HeaderValue::from_static("198.51.100.4");
        let added = forwarded_map_with(&mut h, &client, Some(real));
        assert_eq!(added["x-real-ip"], "198.51.100.4");
        assert_eq!(added["x-forwarded-for"], "198.51.100.4, 10.0.0.1");
    }

    #[test]
    fn forwarded_headers_without_host_or_client_list() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-host", HeaderValue::from_static("evil.example"));
        h.insert("x-forwarded-for", HeaderValue::from_static("  "));
        let client = ClientContext::new("::1".parse().unwrap(), 8080, false);
        let added = forwarded_map(&mut h, &client);
        assert!(h.is_empty(), "{h:?}");
        assert_eq!(added["x-forwarded-for"], "::1");
        assert_eq!(added["x-forwarded-proto"], "http");
        assert_eq!(added["x-forwarded-port"], "8080");
        assert!(!added.contains_key("x-forwarded-host"));
    }

    #[test]
    fn the_forwarded_port_is_the_hosts_whether_or_not_it_ends_like_the_listeners() {
        // The listener is on 80: hosts whose tail is its digits but whose
        // port is another, and the listener's port spelled otherwise.
        let cases = [
            ("gw:80", "80"),
            ("gw:080", "80"),
            ("gw:180", "180"),
            ("gw:8080", "8080"),
            ("[::1]:80", "80"),
            ("[::1]:1080", "1080"),
            ("gw80", "80"),
            ("gw", "80"),
        ];
        let client = ClientContext::new("127.0.0.1".parse().unwrap(), 80, false);
        for (host, port) in cases {
            let mut h = HeaderMap::new();
            h.insert("host", HeaderValue::from_static(host));
            let added = forwarded_map(&mut h, &client);
            assert_eq!(added["x-forwarded-port"], port, "{host}");
        }
    }

    #[test]
    fn every_untrusted_name_is_removed() {
        for name in &crate::http::strict::UNTRUSTED_CLIENT_HEADERS {
            assert!(is_gateway_owned(name), "{name}");
        }
        assert!(!is_gateway_owned(&header::ACCEPT));
        assert!(!is_gateway_owned(&HeaderName::from_static(
            "x-forwarded-other"
        )));
    }

    #[test]
    fn port_of_host_takes_digits_after_the_last_colon() {
        let cases: [(&str, Option<u16>); 15] = [
            ("h", None),
            ("h:", None),
            ("h:80", Some(80)),
            ("h:080", Some(80)),
            ("h:65535", Some(65535)),
            ("h:65536", None),
            ("h:123456", None),
            ("h:8a", None),
            ("h:+80", None),
            ("h: 80", None),
            ("a:b:99", Some(99)),
            ("[::1]", None),
            ("[::1]:81", Some(81)),
            ("[::1]:", None),
            ("::1", Some(1)),
        ];
        for (host, port) in cases {
            assert_eq!(port_of_host(host.as_bytes()), port, "{host}");
        }
    }

    #[test]
    fn location_rewrite_only_for_backend_bases() {
        let bases = vec!["http://10.0.0.1:50070/webhdfs".to_string()];
        let gw = "https://gw:8443/gateway/t/webhdfs";
        assert_eq!(
            rewrite_location("http://10.0.0.1:50070/webhdfs/v1/x?op=OPEN", &bases, gw).as_deref(),
            Some("https://gw:8443/gateway/t/webhdfs/v1/x?op=OPEN")
        );
        assert_eq!(
            rewrite_location("http://10.0.0.1:50070/webhdfsX", &bases, gw),
            None
        );
        assert_eq!(rewrite_location("http://other/webhdfs", &bases, gw), None);
        assert_eq!(rewrite_location("/relative", &bases, gw), None);
    }
}
