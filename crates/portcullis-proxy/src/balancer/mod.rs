//! The balancer (Kaazing's balancer service, without its flaws): a listener
//! that sends each client to a live member (see [`MemberTable`] for the
//! choice). `redirect` answers 307 to the member's public URL; `proxy`
//! forwards the request there.
//!
//! It shares the gateway listener's connection handling, error responses and
//! bodies; its members come as plain [`MemberTarget`]s from the control
//! plane, which reads them from the store.

mod client;
pub use client::{members_tls, MembersTlsError};
mod forward;
#[doc(hidden)]
pub mod fuzzing;
mod table;

pub use table::{MemberTable, MemberTarget, AFFINITY_COOKIE};

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use portcullis_config::BalancerMode;
use rustls::{ClientConfig, ServerConfig};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::h1gate::GateStatus;
use crate::listener::{stopped, Connections};

/// How the balancer serves (`[balancer]`, with the gateway's
/// `header_read_timeout`).
#[derive(Clone)]
pub struct BalancerOptions {
    pub mode: BalancerMode,
    pub header_read_timeout: Duration,
    /// `proxy` mode: connecting to a member.
    pub connect_timeout: Duration,
    /// `proxy` mode: a member's response head.
    pub request_timeout: Duration,
    /// Terminates TLS on the listener when set.
    pub tls: Option<Arc<ServerConfig>>,
    /// `proxy` mode: how `https://` members are verified ([`members_tls`]).
    pub members_tls: Arc<ClientConfig>,
}

impl BalancerOptions {
    /// `mode` with the defaults of `[balancer]`, no TLS listener, members
    /// verified against `members_tls`.
    pub fn new(mode: BalancerMode, members_tls: Arc<ClientConfig>) -> BalancerOptions {
        BalancerOptions {
            mode,
            header_read_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(60),
            tls: None,
            members_tls,
        }
    }
}

/// What every balancer request needs.
pub(crate) struct Balancer {
    table: Arc<MemberTable>,
    client: client::MemberClient,
    mode: BalancerMode,
    request_timeout: Duration,
}

/// Serves balancer clients until shutdown. Connections get the gateway
/// listener's bounded handling ([`Connections`]): `header_read_timeout`
/// bounds protocol detection, TLS handshakes, request heads and idle HTTP/2
/// connections, and HTTP/2 abuse is refused per connection and source.
pub async fn serve(
    listener: TcpListener,
    table: Arc<MemberTable>,
    options: BalancerOptions,
    shutdown: watch::Receiver<bool>,
) {
    // Nobody sends: the options stay as they are.
    let (_fixed, options) = watch::channel(options);
    serve_reloadable(listener, table, options, shutdown).await
}

/// [`serve`] with options that may change (a reload): connections accepted
/// after a change are served with the new ones (timeouts, members' CA, the
/// listener's certificate); those already open keep theirs until they end.
pub async fn serve_reloadable(
    listener: TcpListener,
    table: Arc<MemberTable>,
    mut options: watch::Receiver<BalancerOptions>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut serving = Serving::new(&options.borrow_and_update(), &table, None);
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
        // One atomic load per accepted connection; nothing per request.
        if options.has_changed().unwrap_or(false) {
            let renewed = Serving::new(&options.borrow_and_update(), &table, Some(&serving));
            serving = renewed;
        }
        if !serving.connections.admits(peer.ip()) {
            continue;
        }
        let connection = Connection {
            balancer: serving.balancer.clone(),
            connections: serving.connections.clone(),
            acceptor: serving.acceptor.clone(),
            shutdown: shutdown.clone(),
        };
        tokio::spawn(connection.serve(stream, peer));
    }
}

/// What new connections are served with, built from one set of options.
struct Serving {
    balancer: Arc<Balancer>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    connections: Arc<Connections>,
    header_read_timeout: Duration,
}

impl Serving {
    /// The per-source abuse limits (`Connections`) carry over from
    /// `previous` unless `header_read_timeout` changed.
    fn new(
        options: &BalancerOptions,
        table: &Arc<MemberTable>,
        previous: Option<&Serving>,
    ) -> Serving {
        let connections = match previous {
            Some(previous) if previous.header_read_timeout == options.header_read_timeout => {
                previous.connections.clone()
            }
            _ => Arc::new(Connections::new(options.header_read_timeout)),
        };
        Serving {
            balancer: Arc::new(Balancer {
                table: table.clone(),
                client: client::member_client(options.connect_timeout, options.members_tls.clone()),
                mode: options.mode,
                request_timeout: options.request_timeout,
            }),
            acceptor: options.tls.clone().map(tokio_rustls::TlsAcceptor::from),
            connections,
            header_read_timeout: options.header_read_timeout,
        }
    }
}

/// One client connection, plain or TLS.
struct Connection {
    balancer: Arc<Balancer>,
    connections: Arc<Connections>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    shutdown: watch::Receiver<bool>,
}

impl Connection {
    async fn serve(self, stream: TcpStream, peer: SocketAddr) {
        // The strict HTTP/1 framing gate's verdict for this connection.
        let gate = Arc::new(GateStatus::default());
        let service_gate = gate.clone();
        let balancer = self.balancer;
        let service = move |request: Request<Incoming>| {
            let (balancer, gate) = (balancer.clone(), service_gate.clone());
            async move {
                Ok::<_, Infallible>(
                    strict_edge(&gate, request, |request| async move {
                        forward::handle(&balancer, peer, request).await
                    })
                    .await,
                )
            }
        };
        match &self.acceptor {
            Some(acceptor) => {
                self.connections
                    .serve_tls(stream, acceptor, peer.ip(), gate, service, self.shutdown)
                    .await
            }
            None => {
                self.connections
                    .serve_plain(stream, peer.ip(), gate, service, self.shutdown)
                    .await
            }
        }
    }
}

/// The strict-edge rules the balancer applies itself (PRODUCT.md §9), around
/// `handle`: the head rules of `strict::check_request_head` (CONNECT is
/// 405); a request body the framing gate cut short is the client's 400, not
/// a member's 502; and after an upgrade request that did not switch
/// protocols (`redirect` mode never forwards one) or a refusal the
/// connection closes, since the gate no longer vouches for the bytes that
/// follow.
async fn strict_edge<F, Fut>(
    gate: &GateStatus,
    request: Request<Incoming>,
    handle: F,
) -> Response<ProxyBody>
where
    F: FnOnce(Request<Incoming>) -> Fut,
    Fut: std::future::Future<Output = Response<ProxyBody>>,
{
    if let Err(refusal) = crate::http::strict::check_request_head(
        request.method(),
        request.version(),
        request.headers(),
        request.uri().authority().map(|a| a.as_str()),
    ) {
        let error = ProxyError::from(refusal);
        return closing(error.into_response());
    }
    let asked_upgrade = crate::http::headers::is_upgrade_request(request.headers());
    let response = handle(request).await;
    if response.status() == StatusCode::BAD_GATEWAY {
        if let Some(violation) = gate.violation() {
            gate.mark_answered();
            let error = ProxyError::BadRequest {
                reason: violation.reason(),
            };
            return closing(error.into_response());
        }
    }
    // A member's 101 hands the connection to the tunnel; anything else
    // after an upgrade request closes it.
    let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if (asked_upgrade && !switched) || closes(response.headers()) {
        return closing(response);
    }
    response
}

/// Whether a head says `Connection: close`.
fn closes(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::CONNECTION)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"))
}

fn closing(mut response: Response<ProxyBody>) -> Response<ProxyBody> {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Sends one GET on a new connection and returns the status line.
    async fn status_line(addr: SocketAddr) -> String {
        let mut client = TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET /x HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = client.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer).to_string();
        answer.lines().next().unwrap_or_default().to_string()
    }

    /// A reload's options serve the connections accepted after it: a
    /// request timeout shortened while the balancer runs ends the next
    /// request at a silent member in 504, where the old one would wait.
    #[tokio::test]
    async fn new_options_apply_to_connections_accepted_after_them() {
        let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let member_addr = silent.local_addr().unwrap();
        let _held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                held.push(socket);
            }
        });
        let table = Arc::new(MemberTable::new(crate::ha::CookieKey::new([9; 32])));
        table.replace(vec![MemberTarget {
            id: "m".into(),
            url: format!("http://{member_addr}"),
            in_flight: 0,
            alive_until_ms: u64::MAX,
            draining: false,
        }]);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut options =
            BalancerOptions::new(BalancerMode::Proxy, members_tls(None).expect("roots"));
        options.request_timeout = Duration::from_secs(60);
        let (reload, options_rx) = watch::channel(options.clone());
        let (_stop, shutdown) = watch::channel(false);
        tokio::spawn(serve_reloadable(listener, table, options_rx, shutdown));
        // Under the old options the request is still waiting after 300 ms.
        let waiting = tokio::spawn(status_line(addr));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!waiting.is_finished(), "60 s timeout: still waiting");
        options.request_timeout = Duration::from_millis(100);
        reload.send(options).unwrap();
        let started = std::time::Instant::now();
        let line = tokio::time::timeout(Duration::from_secs(5), status_line(addr))
            .await
            .expect("the new timeout ends the request");
        assert!(line.contains("504"), "{line}");
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            !waiting.is_finished(),
            "the old connection keeps its options"
        );
        waiting.abort();
    }
}
