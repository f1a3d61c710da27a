//! One balancer request: choose a member, then redirect the client to it or
//! proxy the request there (moving to another member when the chosen one
//! fails before answering), and set the affinity cookie when the choice
//! changed. In `proxy` mode a WebSocket upgrade is carried to the member and,
//! once it answers 101, tunnelled both ways.

use std::net::SocketAddr;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use portcullis_config::BalancerMode;

use super::client::MemberClient;
use super::table::InFlight;
use super::{closes, Balancer, MemberTable, MemberTarget, AFFINITY_COOKIE};
use crate::body::{self, BoxError, ProxyBody};
use crate::error::{json_error, ProxyError};
use crate::http::headers::strip_hop_by_hop;
use crate::pipeline::BackendConnector;

/// Members tried for one request before the balancer answers 502.
const MAX_MEMBER_TRIES: usize = 3;

/// How long a WebSocket tunnel may stay silent both ways. The member applies
/// its service's own idle timeout; this only bounds tunnels whose member went
/// away without closing.
const TUNNEL_IDLE: Duration = Duration::from_secs(3600);

/// What `redirect` and `proxy` answer: the way to the chosen member (which
/// may set the affinity cookie), or the balancer's own refusal (which never
/// does).
enum Answer {
    Member(Response<ProxyBody>),
    Refused(Response<ProxyBody>),
}

/// Where a request went, and whether its client must get a new cookie.
struct Chosen {
    member: MemberTarget,
    set_cookie: bool,
}

/// How a try at a member failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// Not connected (refused, unreachable, or over `connect_timeout`): the
    /// request never reached the member.
    Connect,
    /// The member closed or reset the connection before a response head.
    ClosedBeforeAnswer,
    /// No response head within `request_timeout`.
    TimedOut,
    Other,
}

impl Failure {
    fn of(error: &hyper_util::client::legacy::Error) -> Failure {
        if error.is_connect() {
            Failure::Connect
        } else if crate::hyper_edge::ServiceClient.closed_before_answer(error) {
            Failure::ClosedBeforeAnswer
        } else {
            Failure::Other
        }
    }

    /// Whether the same (bodyless) request may go to another member: always
    /// when the member never got it, for idempotent methods when it may have
    /// started on it.
    fn may_retry(self, idempotent: bool) -> bool {
        match self {
            Failure::Connect => true,
            Failure::ClosedBeforeAnswer => idempotent,
            Failure::TimedOut | Failure::Other => false,
        }
    }

    fn response(self) -> Response<ProxyBody> {
        match self {
            Failure::TimedOut => {
                json_error(StatusCode::GATEWAY_TIMEOUT, "member did not answer in time")
            }
            _ => json_error(StatusCode::BAD_GATEWAY, "member unavailable"),
        }
    }
}

/// RFC 9110 §9.2.2: methods whose repetition has the effect of one request.
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

pub(super) async fn handle(
    balancer: &Balancer,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let table = &balancer.table;
    let cookies = crate::ha::sticky::request_cookie(request.headers(), AFFINITY_COOKIE);
    let Some((member, set_cookie)) = table.choose(&cookies, now_ms()) else {
        return json_error(StatusCode::SERVICE_UNAVAILABLE, "no live member");
    };
    let mut chosen = Chosen { member, set_cookie };
    let path_and_query = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/")
        .to_string();
    let answer = match balancer.mode {
        BalancerMode::Redirect => redirect(&chosen.member, &path_and_query),
        BalancerMode::Proxy => proxy(balancer, peer, request, &path_and_query, &mut chosen).await,
    };
    let mut response = match answer {
        Answer::Member(response) => response,
        Answer::Refused(response) => return response,
    };
    if chosen.set_cookie {
        let cookie = format!(
            "{AFFINITY_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax",
            table.tag(&chosen.member.id)
        );
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// 307 to the member's public URL.
fn redirect(member: &MemberTarget, path_and_query: &str) -> Answer {
    let Ok(location) = HeaderValue::from_str(&member_target(member, path_and_query)) else {
        return Answer::Refused(unusable_path());
    };
    let mut response = json_error(StatusCode::TEMPORARY_REDIRECT, "see Location");
    response.headers_mut().insert(header::LOCATION, location);
    Answer::Member(response)
}

/// Forwards the request to `chosen`'s member. A request without a body can be
/// sent again, whole, to another member when the chosen one fails before
/// answering (see [`Failure::may_retry`]): the client never sees that member,
/// and moves to the new one for good.
async fn proxy(
    balancer: &Balancer,
    peer: SocketAddr,
    mut request: Request<Incoming>,
    path_and_query: &str,
    chosen: &mut Chosen,
) -> Answer {
    let mut upgrade = crate::http::strict::is_websocket_upgrade(
        request.method(),
        request.version(),
        request.headers(),
    )
    .then(|| hyper::upgrade::on(&mut request));
    strip_hop_by_hop(request.headers_mut(), upgrade.is_some());
    append_forwarded_for(request.headers_mut(), peer);
    let (parts, body) = request.into_parts();
    let replayable = hyper::body::Body::is_end_stream(&body);
    let idempotent = is_idempotent(&parts.method);
    let mut body = Some(body.map_err(BoxError::from).boxed());
    let mut tried: Vec<String> = Vec::new();
    loop {
        let Ok(uri) = member_target(&chosen.member, path_and_query).parse::<Uri>() else {
            return Answer::Refused(unusable_path());
        };
        let mut attempt =
            Request::from_parts(parts.clone(), body.take().unwrap_or_else(body::empty));
        *attempt.uri_mut() = uri;
        let failure = match balancer.try_member(&chosen.member, attempt).await {
            Ok((response, in_flight)) => {
                return Answer::Member(respond(response, in_flight, upgrade.take()))
            }
            Err(failure) => failure,
        };
        tracing::warn!(member = %chosen.member.id, ?failure, "balancer could not get an answer from a member");
        tried.push(chosen.member.id.clone());
        let retry = replayable && tried.len() < MAX_MEMBER_TRIES && failure.may_retry(idempotent);
        let next = retry
            .then(|| balancer.table.choose_except(&[], now_ms(), &tried))
            .flatten();
        let Some((other, _)) = next else {
            return Answer::Refused(failure.response());
        };
        // The client moves for good: its cookie names the new member.
        *chosen = Chosen {
            member: other,
            set_cookie: true,
        };
    }
}

impl Balancer {
    /// One try at one member, bounded by `request_timeout` up to the
    /// response head.
    async fn try_member(
        &self,
        member: &MemberTarget,
        request: Request<ProxyBody>,
    ) -> Result<(Response<Incoming>, InFlight), Failure> {
        let sent = send_to_member(&self.table, &self.client, member, request);
        match tokio::time::timeout(self.request_timeout, sent).await {
            Ok(Ok(answered)) => Ok(answered),
            Ok(Err(error)) => {
                tracing::debug!(member = %member.id, %error, "member try failed");
                Err(Failure::of(&error))
            }
            Err(_) => Err(Failure::TimedOut),
        }
    }
}

/// One try at one member, counted in this balancer's in-flight figure for
/// that member from now until the returned guard is dropped (with the
/// response body) or, on failure, at once.
async fn send_to_member(
    table: &MemberTable,
    client: &MemberClient,
    member: &MemberTarget,
    request: Request<ProxyBody>,
) -> Result<(Response<Incoming>, InFlight), hyper_util::client::legacy::Error> {
    let in_flight = table.begin(&member.id);
    Ok((client.request(request).await?, in_flight))
}

/// The member's answer as the client gets it: a 101 to a WebSocket upgrade
/// keeps its `Upgrade` and joins both upgraded connections in a tunnel (no
/// longer counted in flight: a tunnel may last for hours); any other answer
/// is counted until its body ends.
fn respond(
    mut response: Response<Incoming>,
    in_flight: InFlight,
    upgrade: Option<OnUpgrade>,
) -> Response<ProxyBody> {
    let Some(client_side) =
        upgrade.filter(|_| response.status() == StatusCode::SWITCHING_PROTOCOLS)
    else {
        return relay(response, in_flight);
    };
    let member_side = hyper::upgrade::on(&mut response);
    crate::hyper_edge::upgrade::spawn_tunnel(client_side, member_side, TUNNEL_IDLE);
    let (mut parts, _) = response.into_parts();
    strip_hop_by_hop(&mut parts.headers, true);
    Response::from_parts(parts, body::empty())
}

/// A member's response as the client gets it. A member that refused the
/// request closes; so does the balancer (see `strict_edge`).
fn relay(response: Response<Incoming>, in_flight: InFlight) -> Response<ProxyBody> {
    let (mut parts, body) = response.into_parts();
    let member_closes = closes(&parts.headers);
    strip_hop_by_hop(&mut parts.headers, false);
    if member_closes {
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    let body = crate::body::Guarded::new(body, in_flight);
    Response::from_parts(parts, body.map_err(BoxError::from).boxed())
}

/// The client's X-Forwarded-For fields, all of them joined as the gateway
/// joins them (`headers::client_forwarded_for`), with the peer appended: a
/// member that trusts this balancer (`[gateway] trusted_proxies`) finds the
/// client's address as the rightmost entry.
fn append_forwarded_for(headers: &mut http::HeaderMap, peer: SocketAddr) {
    let prior = crate::http::headers::client_forwarded_for(
        headers
            .get_all("x-forwarded-for")
            .iter()
            .map(HeaderValue::as_bytes),
    );
    let forwarded = match prior.as_ref().and_then(|p| p.to_str().ok()) {
        Some(existing) => format!("{existing}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    if let Ok(value) = HeaderValue::from_str(&forwarded) {
        headers.insert("x-forwarded-for", value);
    }
}

fn member_target(member: &MemberTarget, path_and_query: &str) -> String {
    format!("{}{}", member.url.trim_end_matches('/'), path_and_query)
}

fn unusable_path() -> Response<ProxyBody> {
    ProxyError::BadRequest {
        reason: "unusable request path",
    }
    .into_response()
}

/// Wall-clock milliseconds, the clock member records are written in.
fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    #[test]
    fn every_forwarded_for_field_is_kept_and_the_peer_appended() {
        let peer: SocketAddr = "192.0.2.1:5000".parse().unwrap();
        let mut headers = http::HeaderMap::new();
        append_forwarded_for(&mut headers, peer);
        assert_eq!(headers["x-forwarded-for"], "192.0.2.1");
        headers.append("x-forwarded-for", HeaderValue::from_static("203.0.113.5"));
        append_forwarded_for(&mut headers, peer);
        assert_eq!(
            headers["x-forwarded-for"],
            "192.0.2.1, 203.0.113.5, 192.0.2.1"
        );
        assert_eq!(headers.get_all("x-forwarded-for").iter().count(), 1);
    }

    /// A client that goes away while its request waits at a member (which
    /// accepted the connection and never answers) gives its in-flight count
    /// back: the member does not look busier for ever.
    #[tokio::test]
    async fn a_dropped_request_gives_back_its_in_flight_count() {
        let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = silent.local_addr().unwrap();
        let table = Arc::new(MemberTable::new(crate::ha::CookieKey::new([7; 32])));
        let member = MemberTarget {
            id: "m".into(),
            url: format!("http://{addr}"),
            in_flight: 0,
            alive_until_ms: u64::MAX,
            draining: false,
        };
        let client = super::super::client::member_client(
            std::time::Duration::from_secs(1),
            super::super::members_tls(None).unwrap(),
        );
        let request = Request::get(format!("http://{addr}/x"))
            .body(body::empty())
            .unwrap();
        let counted = table.clone();
        let pending = tokio::spawn(async move {
            let _ = send_to_member(&counted, &client, &member, request).await;
        });
        let (_held, _) = silent.accept().await.unwrap();
        let counter = table.local("m");
        let started = std::time::Instant::now();
        while counter.load(Ordering::Relaxed) != 1 {
            assert!(started.elapsed() < std::time::Duration::from_secs(5));
            tokio::task::yield_now().await;
        }
        pending.abort();
        assert!(pending.await.unwrap_err().is_cancelled());
        assert_eq!(counter.load(Ordering::Relaxed), 0, "the count came back");
    }

    /// A response counts as in flight until its body is over: a client that
    /// goes away mid-body gives the count back with the body.
    #[tokio::test]
    async fn a_response_counts_until_its_body_is_dropped() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let member_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = member_listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut socket, _) = member_listener.accept().await.unwrap();
            let mut head = [0u8; 1024];
            let _ = socket.read(&mut head).await;
            // Half the promised body, then silence.
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhalf!")
                .await;
            std::future::pending::<()>().await;
        });
        let table = MemberTable::new(crate::ha::CookieKey::new([8; 32]));
        let member = MemberTarget {
            id: "m".into(),
            url: format!("http://{addr}"),
            in_flight: 0,
            alive_until_ms: u64::MAX,
            draining: false,
        };
        let client = super::super::client::member_client(
            std::time::Duration::from_secs(1),
            super::super::members_tls(None).unwrap(),
        );
        let request = Request::get(format!("http://{addr}/x"))
            .body(body::empty())
            .unwrap();
        let (response, in_flight) = send_to_member(&table, &client, &member, request)
            .await
            .unwrap();
        let relayed = relay(response, in_flight);
        let counter = table.local("m");
        assert_eq!(
            counter.load(Ordering::Relaxed),
            1,
            "the body is still coming"
        );
        drop(relayed);
        assert_eq!(counter.load(Ordering::Relaxed), 0);
    }
}
