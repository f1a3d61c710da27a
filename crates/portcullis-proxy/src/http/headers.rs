//! Header rules of a reverse proxy: hop-by-hop removal, the X-Forwarded-* set,
//! and Location rewriting (what Apache calls ProxyPassReverse).

use http::header::{self, Entry, HeaderMap, HeaderName, HeaderValue};

use super::ClientContext;

/// Headers that describe one connection and must not be forwarded (RFC 9110 §7.6.1).
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::PROXY_AUTHORIZATION,
];

const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_SERVER: HeaderName = HeaderName::from_static("x-forwarded-server");
const X_FORWARDED_CONTEXT: HeaderName = HeaderName::from_static("x-forwarded-context");

/// True for a name `strip_hop_by_hop` may remove: the fixed hop-by-hop set,
/// Keep-Alive and `proxy-*`. Names listed in Connection only matter when a
/// Connection header is present, which this also reports.
fn is_hop_by_hop_name(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name) || *name == KEEP_ALIVE || name.as_str().starts_with("proxy-")
}

/// Removes hop-by-hop headers. With `keep_upgrade`, `Connection: upgrade` and
/// `Upgrade` survive so a WebSocket handshake can pass.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none of these: one pass over the names, without
    // hashing, decides whether anything has to be removed.
    if headers.keys().any(is_hop_by_hop_name) {
        remove_hop_by_hop(headers, keep_upgrade);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

fn remove_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let kept = |name: &HeaderName| {
        keep_upgrade && (*name == header::UPGRADE || *name == header::CONNECTION)
    };
    let mut doomed = Doomed::default();
    for (name, value) in headers.iter() {
        if *name == header::CONNECTION {
            let tokens = value.to_str().ok().into_iter().flat_map(|v| v.split(','));
            for token in tokens.map(str::trim) {
                // The usual token; the fixed set removes Keep-Alive anyway.
                if token.eq_ignore_ascii_case("keep-alive") {
                    continue;
                }
                if let Ok(listed) = HeaderName::from_bytes(token.as_bytes()) {
                    if !(keep_upgrade && listed == header::UPGRADE) {
                        doomed.push(listed);
                    }
                }
            }
        }
        if is_hop_by_hop_name(name) && !kept(name) {
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

/// Removes the headers a backend framework would trust as its proxy's
/// (`Forwarded`, `X-Original-URL`, ...) and sets `X-Real-IP` to the peer, so
/// nothing the client wrote contradicts the X-Forwarded-* set here (§9).
pub fn remove_untrusted(headers: &mut HeaderMap, client: &ClientContext) {
    // One pass over the names, without hashing, decides whether any must go.
    let untrusted = &super::strict::UNTRUSTED_CLIENT_HEADERS;
    if headers.keys().any(|name| untrusted.contains(name)) {
        for name in untrusted {
            headers.remove(name);
        }
    }
    headers.insert(X_REAL_IP, client.peer_ip_header().clone());
}

/// Adds X-Forwarded-For (appended), -Proto, -Host, -Port, -Server and -Context.
pub fn add_forwarded(
    headers: &mut HeaderMap,
    client: &ClientContext,
    original_host: Option<&HeaderValue>,
    member_id: &HeaderValue,
    context: &HeaderValue,
) {
    // One lookup for reading and replacing: the name is hashed once.
    match headers.entry(X_FORWARDED_FOR) {
        Entry::Occupied(mut entry) => {
            let appended = entry
                .get()
                .to_str()
                .ok()
                .filter(|existing| !existing.trim().is_empty())
                .map(|existing| format!("{existing}, {}", client.peer_ip));
            match appended {
                Some(value) => {
                    if let Ok(value) = HeaderValue::from_str(&value) {
                        entry.insert(value);
                    }
                }
                None => {
                    entry.insert(client.peer_ip_header().clone());
                }
            }
        }
        Entry::Vacant(entry) => {
            entry.insert(client.peer_ip_header().clone());
        }
    }
    headers.insert(
        X_FORWARDED_PROTO,
        HeaderValue::from_static(if client.tls { "https" } else { "http" }),
    );
    let host_port = original_host
        .and_then(|h| h.to_str().ok())
        .and_then(port_of_host);
    // The Host's port is usually the listener's: its value, built once per
    // connection, is shared instead of formatting the number again.
    match host_port {
        Some(port) if port != client.local_port => {
            headers.insert(X_FORWARDED_PORT, HeaderValue::from(port))
        }
        _ => headers.insert(X_FORWARDED_PORT, client.local_port_header().clone()),
    };
    match original_host {
        Some(host) => {
            headers.insert(X_FORWARDED_HOST, host.clone());
        }
        // An HTTP/1.0 request may carry no host at all; the client's own
        // X-Forwarded-Host must not pass for the gateway's.
        None => {
            headers.remove(X_FORWARDED_HOST);
        }
    }
    headers.insert(X_FORWARDED_SERVER, member_id.clone());
    headers.insert(X_FORWARDED_CONTEXT, context.clone());
}

/// The port of a Host header value, handling bracketed IPv6 literals.
fn port_of_host(host: &str) -> Option<u16> {
    let after_bracket = match host.rfind(']') {
        Some(i) => &host[i + 1..],
        None => host,
    };
    after_bracket.rsplit_once(':')?.1.parse().ok()
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

    #[test]
    fn forwarded_headers_append_and_name_the_member() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.9"));
        let client = ClientContext::new("127.0.0.7".parse().unwrap(), 8443, true);
        add_forwarded(
            &mut h,
            &client,
            Some(&HeaderValue::from_static("gw.example:9443")),
            &HeaderValue::from_static("m1"),
            &HeaderValue::from_static("/gateway/sales"),
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.9, 127.0.0.7");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "gw.example:9443");
        assert_eq!(h["x-forwarded-port"], "9443");
        assert_eq!(h["x-forwarded-server"], "m1");
        assert_eq!(h["x-forwarded-context"], "/gateway/sales");
    }

    #[test]
    fn port_defaults_to_listener_port() {
        assert_eq!(port_of_host("[::1]:81"), Some(81));
        assert_eq!(port_of_host("[::1]"), None);
        assert_eq!(port_of_host("host"), None);
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
