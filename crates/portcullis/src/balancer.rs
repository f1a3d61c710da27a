//! The balancer (Kaazing's balancer service, without its flaws): a listener
//! that sends each client to a live member — the one its `PORTCULLIS_MEMBER`
//! affinity cookie names while that member is alive, otherwise the member with
//! the fewest requests in flight, ties broken at random. `redirect` answers 307
//! to the member's public URL; `proxy` forwards the request there.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use portcullis_cluster::members::now_ms;
use portcullis_cluster::{ClusterStore, MemberRecord};
use portcullis_config::BalancerMode;
use portcullis_proxy::h1gate::GateStatus;
use portcullis_proxy::listener::Connections;
use portcullis_proxy::CookieKey;
use rand::Rng;
use tokio::net::TcpListener;
use tokio::sync::watch;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

pub const AFFINITY_COOKIE: &str = "PORTCULLIS_MEMBER";
const AFFINITY_LABEL: &str = "portcullis-member";

/// The live view of the cluster the balancer chooses from.
pub struct MemberTable {
    members: ArcSwap<Vec<MemberRecord>>,
    /// Requests this balancer is proxying to each member right now; added to
    /// the members' own (heartbeat-old) figures.
    local_in_flight: Mutex<HashMap<String, Arc<AtomicU64>>>,
    key: CookieKey,
}

impl MemberTable {
    pub fn new(key: CookieKey) -> MemberTable {
        MemberTable {
            members: ArcSwap::from_pointee(Vec::new()),
            local_in_flight: Mutex::new(HashMap::new()),
            key,
        }
    }

    pub fn replace(&self, members: Vec<MemberRecord>) {
        self.members.store(Arc::new(members));
    }

    fn local(&self, id: &str) -> Arc<AtomicU64> {
        let mut map = self
            .local_in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        map.entry(id.to_string()).or_default().clone()
    }

    /// The affinity cookie value for member `id`.
    pub(crate) fn tag(&self, id: &str) -> String {
        self.key.tag(AFFINITY_LABEL, id)
    }

    /// The member for a request carrying `cookie_values`, and whether the
    /// affinity cookie must be (re)set.
    pub fn choose(&self, cookie_values: &[&str], now_ms: u64) -> Option<(MemberRecord, bool)> {
        self.choose_except(cookie_values, now_ms, &[])
    }

    /// As [`MemberTable::choose`], leaving out the members in `excluded`
    /// (ones this request could not reach).
    pub fn choose_except(
        &self,
        cookie_values: &[&str],
        now_ms: u64,
        excluded: &[String],
    ) -> Option<(MemberRecord, bool)> {
        let members = self.members.load();
        let alive: Vec<&MemberRecord> = members
            .iter()
            .filter(|m| m.is_alive(now_ms) && !excluded.contains(&m.id))
            .collect();
        if let Some(member) = alive
            .iter()
            .find(|m| cookie_values.iter().any(|v| *v == self.tag(&m.id)))
        {
            return Some(((*member).clone(), false));
        }
        let load = |m: &MemberRecord| m.in_flight + self.local(&m.id).load(Ordering::Relaxed);
        let least = alive.iter().map(|m| load(m)).min()?;
        let tied: Vec<&&MemberRecord> = alive.iter().filter(|m| load(m) == least).collect();
        let pick = tied[rand::rng().random_range(0..tied.len())];
        Some(((*pick).clone(), true))
    }
}

/// Keeps the member table current: members are re-read four times per
/// heartbeat, so a dead member (gone after 3 heartbeats) or a leaving one (its
/// record removed) stops being chosen within that time.
pub async fn refresh_members(store: ClusterStore, table: Arc<MemberTable>, heartbeat: Duration) {
    let mut ticker = tokio::time::interval(heartbeat / 4);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match store.members().await {
            Ok(members) => table.replace(members),
            // Keep the last view: the liveness check ages it out by itself.
            Err(err) => tracing::debug!(error = %err, "balancer cannot read members"),
        }
    }
}

/// Serves balancer clients until shutdown. Connections get the gateway
/// listener's bounded handling (`portcullis_proxy::listener::Connections`):
/// `header_read_timeout` bounds protocol detection, request heads and idle
/// HTTP/2 connections, and HTTP/2 abuse is refused per connection and source.
pub async fn serve(
    listener: TcpListener,
    table: Arc<MemberTable>,
    mode: BalancerMode,
    header_read_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new())
        .pool_timer(TokioTimer::new())
        .build(HttpConnector::new());
    let connections = Arc::new(Connections::new(header_read_timeout));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped(&mut shutdown) => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                tracing::error!(error = %err, "balancer accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if !connections.admits(peer.ip()) {
            continue;
        }
        let (table, client, connections) = (table.clone(), client.clone(), connections.clone());
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            // The strict HTTP/1 framing gate's verdict for this connection.
            let gate = Arc::new(GateStatus::default());
            let service_gate = gate.clone();
            let service = move |request: Request<Incoming>| {
                let (table, client, gate) = (table.clone(), client.clone(), service_gate.clone());
                async move {
                    Ok::<_, Infallible>(
                        strict_edge(&gate, request, |request| {
                            handle(&table, &client, mode, peer, request)
                        })
                        .await,
                    )
                }
            };
            connections
                .serve_plain(stream, peer.ip(), gate, service, shutdown)
                .await;
        });
    }
}

/// The strict-edge rules the balancer applies itself (PRODUCT.md §9), around
/// `handle`: the head rules of `strict::check_request_head` (CONNECT is
/// 405); a request body the framing gate cut short is
/// the client's 400, not a member's 502; and after an upgrade request (which
/// the balancer never forwards as one) or a refusal the connection closes,
/// since the gate no longer vouches for the bytes that follow.
async fn strict_edge<F, Fut>(
    gate: &GateStatus,
    request: Request<Incoming>,
    handle: F,
) -> Response<Body>
where
    F: FnOnce(Request<Incoming>) -> Fut,
    Fut: std::future::Future<Output = Response<Body>>,
{
    if let Err(refusal) = portcullis_proxy::http::strict::check_request_head(
        request.method(),
        request.version(),
        request.headers(),
    ) {
        return closing(json_error(refusal.status(), refusal.reason()));
    }
    let asked_upgrade = portcullis_proxy::http::headers::is_upgrade_request(request.headers());
    let response = handle(request).await;
    if response.status() == StatusCode::BAD_GATEWAY {
        if let Some(violation) = gate.violation() {
            gate.mark_answered();
            return closing(json_error(StatusCode::BAD_REQUEST, violation.reason()));
        }
    }
    let member_closed = response
        .headers()
        .get(header::CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
    if asked_upgrade || member_closed {
        return closing(response);
    }
    response
}

fn closing(mut response: Response<Body>) -> Response<Body> {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Resolves once shutdown begins; the watch guard never crosses an await.
async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|s| *s).await;
}

fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(
            serde_json::json!({ "error": message }).to_string(),
        ))
        .map_err(|never| match never {})
        .boxed(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

fn member_target(member: &MemberRecord, path_and_query: &str) -> String {
    format!(
        "{}{}",
        member.public_url.trim_end_matches('/'),
        path_and_query
    )
}

fn empty_body() -> Body {
    http_body_util::Empty::new()
        .map_err(|never| match never {})
        .boxed()
}

/// Members tried for one request before the balancer answers 502.
const MAX_MEMBER_TRIES: usize = 3;

async fn handle(
    table: &MemberTable,
    client: &Client<HttpConnector, Body>,
    mode: BalancerMode,
    peer: SocketAddr,
    mut request: Request<Incoming>,
) -> Response<Body> {
    let cookies = portcullis_proxy::ha::sticky::request_cookie(request.headers(), AFFINITY_COOKIE);
    let Some((mut member, mut set_cookie)) = table.choose(&cookies, now_ms()) else {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "no live member");
    };
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    let mut response = match mode {
        BalancerMode::Redirect => {
            let target = member_target(&member, &path_and_query);
            let mut response = json_error(StatusCode::TEMPORARY_REDIRECT, "see Location");
            match HeaderValue::from_str(&target) {
                Ok(location) => {
                    response.headers_mut().insert(header::LOCATION, location);
                }
                Err(_) => return json_error(StatusCode::BAD_REQUEST, "unusable request path"),
            }
            response
        }
        BalancerMode::Proxy => {
            portcullis_proxy::http::headers::strip_hop_by_hop(request.headers_mut(), false);
            let forwarded = match request
                .headers()
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
            {
                Some(existing) => format!("{existing}, {}", peer.ip()),
                None => peer.ip().to_string(),
            };
            if let Ok(value) = HeaderValue::from_str(&forwarded) {
                request.headers_mut().insert("x-forwarded-for", value);
            }
            let (parts, body) = request.into_parts();
            // A request without a body can be sent again, whole, to another
            // member when the chosen one cannot be reached (a member killed
            // within its liveness window): the client never sees that member.
            let replayable = hyper::body::Body::is_end_stream(&body);
            let mut body = Some(body.map_err(BoxError::from).boxed());
            let mut tried: Vec<String> = Vec::new();
            loop {
                let Ok(uri) = member_target(&member, &path_and_query).parse::<Uri>() else {
                    return json_error(StatusCode::BAD_REQUEST, "unusable request path");
                };
                let mut attempt =
                    Request::from_parts(parts.clone(), body.take().unwrap_or_else(empty_body));
                *attempt.uri_mut() = uri;
                let counter = table.local(&member.id);
                counter.fetch_add(1, Ordering::Relaxed);
                let result = client.request(attempt).await;
                counter.fetch_sub(1, Ordering::Relaxed);
                match result {
                    Ok(response) => {
                        let (mut parts, body) = response.into_parts();
                        // A member that refused the request closes; so does
                        // the balancer (see `strict_edge`).
                        let member_closes = parts
                            .headers
                            .get(header::CONNECTION)
                            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));
                        portcullis_proxy::http::headers::strip_hop_by_hop(
                            &mut parts.headers,
                            false,
                        );
                        if member_closes {
                            parts
                                .headers
                                .insert(header::CONNECTION, HeaderValue::from_static("close"));
                        }
                        break Response::from_parts(parts, body.map_err(BoxError::from).boxed());
                    }
                    Err(err) => {
                        tracing::warn!(member = %member.id, error = %err, "balancer could not reach a member");
                        tried.push(member.id.clone());
                        let next =
                            (err.is_connect() && replayable && tried.len() < MAX_MEMBER_TRIES)
                                .then(|| table.choose_except(&[], now_ms(), &tried))
                                .flatten();
                        match next {
                            Some((other, _)) => {
                                member = other;
                                // The client moves for good: its cookie names the new member.
                                set_cookie = true;
                            }
                            None => {
                                return json_error(StatusCode::BAD_GATEWAY, "member unavailable")
                            }
                        }
                    }
                }
            }
        }
    };
    if set_cookie {
        let cookie = format!(
            "{AFFINITY_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax",
            table.tag(&member.id)
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_cluster::RoleName;

    fn record(id: &str, in_flight: u64, updated_at_ms: u64) -> MemberRecord {
        MemberRecord {
            id: id.into(),
            role: RoleName::Manager,
            public_url: format!("http://{id}:8443"),
            admin_url: None,
            version: "0".into(),
            generation: 1,
            in_flight,
            heartbeat_ms: 1000,
            updated_at_ms,
        }
    }

    #[test]
    fn affinity_then_least_in_flight_among_the_living() {
        let table = MemberTable::new(CookieKey::new([1; 32]));
        let now = 100_000;
        table.replace(vec![
            record("a", 5, now),
            record("b", 1, now),
            record("dead", 0, now - 5_000),
        ]);
        let (first, set) = table.choose(&[], now).unwrap();
        assert_eq!(first.id, "b", "fewest in flight, never the dead one");
        assert!(set);
        let tag_a = table.tag("a");
        let (sticky, set) = table.choose(&[tag_a.as_str()], now).unwrap();
        assert_eq!(
            (sticky.id.as_str(), set),
            ("a", false),
            "a valid cookie wins while its member lives"
        );
        let tag_dead = table.tag("dead");
        let (moved, set) = table.choose(&[tag_dead.as_str()], now).unwrap();
        assert_eq!(
            (moved.id.as_str(), set),
            ("b", true),
            "a dead member's cookie is replaced"
        );
        assert!(table.choose(&["forged"], now).unwrap().1);
        table.replace(vec![record("dead", 0, now - 5_000)]);
        assert!(table.choose(&[], now).is_none(), "no live member: 503");
    }

    #[test]
    fn ties_are_broken_at_random() {
        let table = MemberTable::new(CookieKey::new([2; 32]));
        let now = 100_000;
        table.replace(vec![record("a", 0, now), record("b", 0, now)]);
        let picks: std::collections::BTreeSet<String> = (0..64)
            .map(|_| table.choose(&[], now).unwrap().0.id)
            .collect();
        assert_eq!(picks.len(), 2);
    }
}
