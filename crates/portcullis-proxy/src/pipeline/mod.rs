//! The request pipeline: what happens to one client request, in phases, with
//! one per-request context ([`RequestContext`]) carried through them.
//!
//! 1. **prepare** (`prepare.rs`): the §9 head and path checks, routing, the
//!    sticky cookie, header edits, backend credentials and the replayable body.
//! 2. **try** (`attempt.rs`): one try on one backend, bounded by the request
//!    and stall timeouts.
//! 3. **classify** (`attempt.rs`): the try's outcome becomes an answer to relay,
//!    a resend, or a failure of a kind the retry rules (`ha::retry`) judge.
//! 4. **finish** (`finish.rs`): counters, promotion of the active backend, the
//!    sticky cookie, response header edits, then the access log (here).
//!
//! The phases know no HTTP engine: they take the request head
//! ([`ClientHead`]: the fields as hyper's map or as the own engine's raw
//! fields, `http::request_fields`),
//! a body source (any `http_body::Body`), a [`BackendConnector`] to send tries
//! on and a [`ClientUpgrade`] for accepted upgrades. hyper is one engine
//! (`crate::hyper_edge`); an own HTTP/1.1 engine drives the same pipeline.

mod access_log;
mod attempt;
mod auth;
mod connector;
mod finish;
mod prepare;
mod rate_limit;

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Response, StatusCode, Version};
use http_body::Body;

pub use connector::{
    BackendConnector, ClientUpgrade, ConnectionChoice, TryHost, TryRequest, TryTarget,
};
pub(crate) use prepare::ADDED_HEADERS;

use crate::body::ProxyBody;
use crate::error::{BoxError, ProxyError, Side};
use crate::ha::retry::FailureKind;
use crate::ha::TryOutcome;
use crate::http::strict::HostFields;
use crate::http::{ClientContext, ClientHead, ProxyResponse, RequestTarget};
use crate::routing::{Backend, Gateway, ServiceRuntime};
use attempt::Verdict;
use prepare::Forwarding;

/// A client request as an engine hands it to the pipeline.
pub struct ClientRequest<B, U> {
    /// Boxed, as the own engine parses it (`engine::head::RequestHead`).
    pub head: Box<ClientHead>,
    /// The head's Host fields (`HostFields::of(&map)`, or as the
    /// engine noted them while it parsed the head).
    pub hosts: HostFields,
    pub body: B,
    /// The client's side of a WebSocket upgrade, when the request asks for one.
    pub upgrade: Option<U>,
    /// False only when the engine saw no Upgrade field in the head: the
    /// pipeline then skips looking for one (a hash and a probe).
    pub may_upgrade: bool,
}

/// One try, for the access log and the counters.
struct TryRecord {
    backend: Arc<Backend>,
    outcome: TryOutcome,
}

/// What the pipeline keeps about one request from its arrival to its log line.
pub struct RequestContext {
    /// On tokio's clock, which is the clock the prepare phase and the HA
    /// state use (and the one tests may pause).
    started: tokio::time::Instant,
    /// How long the request took until its response was ready, once known:
    /// the latency histogram and the access line share one clock read.
    took: Option<std::time::Duration>,
    /// The access log is on; names are kept for it only then.
    logging: bool,
    method: Method,
    /// A clone shares the bytes: the path outlives the request head this way.
    target: RequestTarget,
    /// The service the request was routed to, for its names in the access
    /// log: sharing it cost less than copying both names (callgrind).
    routed: Option<Arc<ServiceRuntime>>,
    /// The names a routing error gave, when no service was found.
    topology: String,
    service: String,
    tries: Tries,
    /// Who `[service.auth]` found the caller to be (never the credential).
    principal: Option<std::sync::Arc<portcullis_policy::Principal>>,
}

/// The tries of one request, in order. Nearly every request makes one: it is
/// kept inline, so only a request that fails over allocates for its list.
#[derive(Default)]
struct Tries {
    first: Option<TryRecord>,
    later: Vec<TryRecord>,
}

impl Tries {
    fn push(&mut self, record: TryRecord) {
        if self.first.is_none() {
            self.first = Some(record);
        } else {
            self.later.push(record);
        }
    }

    fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.later.len()
    }

    fn iter(&self) -> impl Iterator<Item = &TryRecord> {
        self.first.iter().chain(&self.later)
    }

    fn last(&self) -> Option<&TryRecord> {
        self.later.last().or(self.first.as_ref())
    }
}

impl RequestContext {
    fn new(head: &ClientHead) -> RequestContext {
        RequestContext {
            started: tokio::time::Instant::now(),
            took: None,
            logging: crate::access_sink::wanted(),
            method: head.method.clone(),
            target: head.target.clone(),
            routed: None,
            topology: String::new(),
            service: String::new(),
            tries: Tries::default(),
            principal: None,
        }
    }

    /// Records a try in the request's list (for the access log) and in the
    /// backend's counters (for metrics).
    fn record_try(&mut self, backend: &Arc<Backend>, outcome: TryOutcome) {
        backend.state.count_outcome(outcome);
        self.tries.push(TryRecord {
            backend: backend.clone(),
            outcome,
        });
    }

    fn tries_so_far(&self) -> usize {
        self.tries.len()
    }

    /// True when no try got as far as a connection.
    fn nothing_connected(&self) -> bool {
        self.tries
            .iter()
            .all(|t| t.outcome == TryOutcome::ConnectFailed)
    }

    fn last_backend(&self) -> Option<&Arc<Backend>> {
        self.tries.last().map(|t| &t.backend)
    }

    /// How long the request has taken: as measured for its latency when the
    /// response was ready, else now.
    fn took(&self) -> std::time::Duration {
        self.took.unwrap_or_else(|| self.started.elapsed())
    }
}

/// Serves one request through every phase. Never fails: every error becomes
/// a JSON response here.
pub async fn serve<B, C, U>(
    gateway: &Gateway,
    client: &ClientContext,
    request: ClientRequest<B, U>,
    connector: &C,
) -> Response<ProxyBody>
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
    C: BackendConnector,
    U: ClientUpgrade,
{
    serve_raw(gateway, client, request, connector)
        .await
        .into_response()
}

/// `serve`, with the response head left raw when the connector kept it so
/// (`BackendConnector::take_raw_head`): for an engine that writes HTTP/1
/// heads itself.
///
/// An `async` block rather than an `async fn`: an `async fn` moves its
/// arguments into locals of its own, so the request (280 bytes) took its
/// room twice and was copied once more per request. The own engine boxes
/// this future per request; it is kept within the allocator's small-object
/// fast path (1 KiB, `docs/benchmarks.md`, fifth session).
// Not an `async fn`, on purpose (above).
#[allow(clippy::manual_async_fn)]
pub fn serve_raw<'a, B, C, U>(
    gateway: &'a Gateway,
    client: &'a ClientContext,
    mut request: ClientRequest<B, U>,
    connector: &'a C,
) -> impl Future<Output = ProxyResponse> + use<'a, B, C, U>
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
    C: BackendConnector,
    U: ClientUpgrade,
{
    async move {
        let _counted = gateway.request_started();
        let mut ctx = RequestContext::new(&request.head);
        let h1 = is_h1(request.head.version);
        // Destructured within this statement, so nothing of the result
        // keeps room in this future across the awaits below.
        let (service, rest_start) = match prepare::refuse(&request.head, &request.hosts)
            .and_then(|()| prepare::route(gateway, &ctx.target))
        {
            Ok(routed) => routed,
            Err(err) => {
                if ctx.logging {
                    ctx.name_from_error(&err);
                }
                let response = ProxyResponse::from(error_response(&err, h1));
                if ctx.logging {
                    ctx.access_log(gateway, response.status());
                }
                return response;
            }
        };
        if ctx.logging {
            ctx.routed = Some(service.clone());
        }
        // Behind trusted proxies, the address they vouch for (one atomic
        // load otherwise).
        let client_ip = gateway.client_ip(client.peer_ip, &request.head.headers);
        let authenticated = if service.auth.is_none() && service.config.authorize.is_none() {
            Ok(())
        } else {
            // Judged at once for nearly every request; boxed when a method
            // must wait, so that future adds nothing to this one.
            let admission =
                match auth::admit_now(&service, client_ip, &mut request.head, ctx.started) {
                    auth::AdmitNow::Judged(admission) => admission,
                    auth::AdmitNow::MustWait(authorization) => {
                        Box::pin(auth::admit(
                            &service,
                            client_ip,
                            &mut request.head,
                            authorization,
                        ))
                        .await
                    }
                };
            admission.map(|principal| ctx.principal = principal)
        };
        let asked_upgrade = h1 && request.may_upgrade && request.head.headers.is_upgrade_request();
        // The prepared request is boxed (`Forwarding::new` says why) and
        // `forward` borrows it: moved into `forward`'s future, it was copied
        // with that future. Matched within the statement, so the `Result`
        // (88 bytes) keeps no room across the await.
        let mut forwarding = match authenticated
            .and_then(|()| rate_limit::admit(&service, client_ip, &request.head, &ctx))
            .and_then(|()| {
                let principal = ctx.principal.clone();
                Forwarding::new(
                    gateway,
                    client,
                    &service,
                    request,
                    rest_start,
                    ctx.started,
                    principal,
                )
            }) {
            Ok(forwarding) => forwarding,
            Err(err) => {
                return finish_request(Err(err), gateway, &service, client, asked_upgrade, &mut ctx)
            }
        };
        let outcome = forward(&mut forwarding, connector, &mut ctx).await;
        // The next head on this thread is parsed into this map.
        std::mem::take(&mut forwarding.head.headers).recycle();
        drop(forwarding);
        finish_request(outcome, gateway, &service, client, asked_upgrade, &mut ctx)
    }
}

/// Phase 4 and the access line: the client's response from the outcome.
fn finish_request(
    outcome: Result<ProxyResponse, ProxyError>,
    gateway: &Gateway,
    service: &ServiceRuntime,
    client: &ClientContext,
    asked_upgrade: bool,
    ctx: &mut RequestContext,
) -> ProxyResponse {
    let response = finish::answer(outcome, service, client, asked_upgrade, ctx);
    if ctx.logging {
        ctx.access_log(gateway, response.status());
    }
    response
}

/// Runs tries until one answers or the retry rules allow no more.
async fn forward<C, U>(
    forwarding: &mut Forwarding<'_, U>,
    connector: &C,
    ctx: &mut RequestContext,
) -> Result<ProxyResponse, ProxyError>
where
    C: BackendConnector,
    U: ClientUpgrade,
{
    let mut next = forwarding.first_backend();
    while let Some(index) = next.take() {
        if let Some(pause) = forwarding.before_try(ctx) {
            tokio::time::sleep(pause).await;
        }
        let Some(attempt) = forwarding.start_try(index) else {
            break;
        };
        let (sent, waiting) = attempt.send(forwarding, connector);
        let waited = waiting.await;
        // The clock is read only when a try failed: an answer needs no time.
        match forwarding.classify(sent, waited, connector, ctx) {
            Verdict::Answer(answer) => return Ok(forwarding.relay(answer)),
            Verdict::RetryableStatus(answer) => {
                let now = tokio::time::Instant::now();
                match forwarding.next_backend(FailureKind::Status, now, ctx) {
                    Some(other) => next = Some(other),
                    None => return Ok(forwarding.relay(answer)),
                }
            }
            Verdict::Resend => next = Some(index),
            Verdict::ClientFailed(err) => return Err(err),
            Verdict::Failed(kind) => {
                let now = tokio::time::Instant::now();
                forwarding.record_failure(index, now);
                next = forwarding.next_backend(kind, now, ctx);
            }
        }
    }
    Err(forwarding.give_up(ctx))
}

fn is_h1(version: Version) -> bool {
    matches!(
        version,
        Version::HTTP_10 | Version::HTTP_11 | Version::HTTP_09
    )
}

/// The response for a request refused before routing finished.
fn error_response(err: &ProxyError, h1: bool) -> Response<ProxyBody> {
    let mut response = err.into_response();
    if err.side() == Side::Client && h1 {
        // The rest of this connection's bytes cannot be trusted.
        close_connection(&mut response);
    }
    response
}

fn close_connection(response: &mut Response<ProxyBody>) {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
}

/// Whether `status` ends an upgrade as accepted.
fn is_switching(status: StatusCode) -> bool {
    status == StatusCode::SWITCHING_PROTOCOLS
}

/// The part of the path after the service, sent to the backend below its base.
fn rest_of_path(target: &RequestTarget, rest_start: usize) -> &str {
    target.path().get(rest_start..).unwrap_or("")
}

#[cfg(test)]
mod tests;
