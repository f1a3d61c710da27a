//! The balancer (Kaazing's balancer service, without its flaws): a listener
//! that sends each client to a live member (see [`MemberTable`] for the
//! choice). `redirect` answers 307 to the member's public URL; `proxy`
//! forwards the request there.
//!
//! It shares the gateway listener's connection handling, error responses and
//! bodies; its members come as plain [`MemberTarget`]s from the control
//! plane, which reads them from the store.

mod forward;
#[doc(hidden)]
pub mod fuzzing;
mod table;

pub use table::{MemberTable, MemberTarget, AFFINITY_COOKIE};

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use portcullis_config::BalancerMode;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::body::ProxyBody;
use crate::error::ProxyError;
use crate::h1gate::GateStatus;
use crate::listener::{stopped, Connections};

/// Serves balancer clients until shutdown. Connections get the gateway
/// listener's bounded handling ([`Connections`]): `header_read_timeout`
/// bounds protocol detection, request heads and idle HTTP/2 connections, and
/// HTTP/2 abuse is refused per connection and source.
pub async fn serve(
    listener: TcpListener,
    table: Arc<MemberTable>,
    mode: BalancerMode,
    header_read_timeout: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let client: Client<HttpConnector, ProxyBody> = Client::builder(TokioExecutor::new())
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
                            forward::handle(&table, &client, mode, peer, request)
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
/// 405); a request body the framing gate cut short is the client's 400, not
/// a member's 502; and after an upgrade request (which the balancer never
/// forwards as one) or a refusal the connection closes, since the gate no
/// longer vouches for the bytes that follow.
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
    ) {
        let error = match refusal {
            crate::http::strict::Refusal::MethodNotAllowed(reason) => {
                ProxyError::MethodNotAllowed { reason }
            }
            crate::http::strict::Refusal::BadRequest(reason) => ProxyError::BadRequest { reason },
        };
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
    if asked_upgrade || closes(response.headers()) {
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
