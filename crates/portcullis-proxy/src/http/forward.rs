//! Forwarding one client request to a service's backends.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use portcullis_config::{AdminState, LoadBalancing};

use super::headers::{self, ClientContext};
use super::strict;
use super::upgrade;
use crate::body::{self, Guarded, IdleTimeoutBody, ProxyBody, ReplayBody};
use crate::error::ProxyError;
use crate::ha::{sticky, wait_for_head, InFlight, Tried, TryOutcome, Waited};
use crate::routing::{match_path, Backend, Gateway, Lookup, ServiceRuntime};
use crate::slow_body::{MinRateBody, SlowBody};

struct TryRecord {
    backend: Arc<Backend>,
    outcome: TryOutcome,
}

/// Records a try in the request's list (for the access log) and in the
/// backend's counters (for metrics).
fn record_try(tries: &mut Vec<TryRecord>, backend: &Arc<Backend>, outcome: TryOutcome) {
    backend.state.count_outcome(outcome);
    tries.push(TryRecord {
        backend: backend.clone(),
        outcome,
    });
}

/// Serves one request. Never fails: every error becomes a JSON response here.
pub async fn handle(
    gateway: Arc<Gateway>,
    client: Arc<ClientContext>,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, std::convert::Infallible> {
    let started = Instant::now();
    let _counted = gateway.request_started();
    let logging = tracing::enabled!(target: "portcullis::access", tracing::Level::INFO);
    let method = request.method().clone();
    let request_version = request.version();
    // A Uri clone shares its bytes; the path outlives the request this way.
    let uri = request.uri().clone();
    let path = uri.path();
    let mut tries = Vec::new();
    let mut names = (String::new(), String::new());
    let refused = refuse(&request, path);
    let asked_upgrade =
        request_version_is_h1(&request_version) && headers::is_upgrade_request(request.headers());
    let response = match refused.and_then(|()| route(&gateway, path)) {
        Err(err) => {
            if logging {
                if let Some((t, s)) = err_names(&err) {
                    names = (t, s);
                }
            }
            let mut response = err.into_response();
            if err.side() == crate::error::Side::Client && request_version_is_h1(&request_version) {
                // The rest of this connection's bytes cannot be trusted.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            response
        }
        Ok((service, rest_start)) => {
            if logging {
                names = (service.topology.clone(), service.config.name.clone());
            }
            let rest = &path[rest_start..];
            let outcome = forward(&gateway, &client, &service, request, rest, &mut tries).await;
            let (mut response, answered_by) = match outcome {
                Ok(response) => (response, tries.last().map(|t| &t.backend)),
                Err(err) => {
                    tracing::debug!(error = %err, side = ?err.side(), "request failed");
                    // A body cut short by the framing gate is the client's fault.
                    let err = match client.take_gate_violation() {
                        Some(reason) => ProxyError::BadRequest { reason },
                        None => err,
                    };
                    let mut response = err.into_response();
                    if err.side() == crate::error::Side::Client {
                        response
                            .headers_mut()
                            .insert(header::CONNECTION, HeaderValue::from_static("close"));
                    }
                    (response, None)
                }
            };
            if asked_upgrade && response.status() != StatusCode::SWITCHING_PROTOCOLS {
                // The framing gate stopped reading this connection as HTTP at
                // the upgrade request; nothing after it may be trusted.
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            let code = response.status().as_u16();
            match answered_by {
                Some(backend) => backend.state.answers.add(code),
                None => service.stats.gateway_answers.add(code),
            }
            service.stats.latency.observe(started.elapsed());
            response
        }
    };
    if logging {
        access_log(&gateway, &method, path, &names, &response, &tries, started);
    }
    Ok(response)
}

/// The §9 checks that come before routing: head rules and the path rule.
fn refuse(request: &Request<Incoming>, path: &str) -> Result<(), ProxyError> {
    strict::check_request_head(request.method(), request.version(), request.headers()).map_err(
        |refusal| match refusal {
            strict::Refusal::MethodNotAllowed(reason) => ProxyError::MethodNotAllowed { reason },
            strict::Refusal::BadRequest(reason) => ProxyError::BadRequest { reason },
        },
    )?;
    strict::check_path(path).map_err(|reason| ProxyError::BadRequest { reason })
}

fn request_version_is_h1(version: &Version) -> bool {
    matches!(
        *version,
        Version::HTTP_10 | Version::HTTP_11 | Version::HTTP_09
    )
}

fn err_names(err: &ProxyError) -> Option<(String, String)> {
    match err {
        ProxyError::UnknownTopology { topology } => Some((topology.clone(), String::new())),
        ProxyError::UnknownService { topology, service } => {
            Some((topology.clone(), service.clone()))
        }
        _ => None,
    }
}

/// Finds the service and where the backend-relative part of the path starts.
fn route(gateway: &Gateway, path: &str) -> Result<(Arc<ServiceRuntime>, usize), ProxyError> {
    let matched = match_path(&gateway.path_prefix, path).ok_or(ProxyError::NoRoute)?;
    let rest_start = path.len() - matched.rest.len();
    match gateway.service(matched.topology, matched.service) {
        Lookup::Found(service) => Ok((service, rest_start)),
        Lookup::NoTopology => Err(ProxyError::UnknownTopology {
            topology: matched.topology.to_string(),
        }),
        Lookup::NoService => Err(ProxyError::UnknownService {
            topology: matched.topology.to_string(),
            service: matched.service.to_string(),
        }),
    }
}

/// Methods that may be sent twice without changing the outcome (RFC 9110 §9.2.2).
fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// How a try failed, which decides whether another backend may be tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FailureKind {
    /// Nothing reached the backend: any method may go elsewhere, unbudgeted.
    Connect,
    /// The backend took the request and failed before answering.
    Reset,
    Timeout,
    /// The backend answered with a status in `retry_on_status`.
    Status,
}

/// What sticky sessions mean for this request.
struct Stickiness {
    /// Cookies are in use for this request (sticky service, balanced client).
    active: bool,
    /// The backend a valid cookie names, whatever its state.
    cookie_backend: Option<usize>,
    /// `cookie_backend` when it may serve the request (up or draining).
    honoured: Option<usize>,
}

fn stickiness(
    service: &ServiceRuntime,
    headers: &http::HeaderMap,
    now: tokio::time::Instant,
) -> (Stickiness, LoadBalancing) {
    let ha = &service.config.ha;
    let excluded = !ha.disable_load_balancing_for_user_agents.is_empty()
        && headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ua| {
                ha.disable_load_balancing_for_user_agents
                    .iter()
                    .any(|entry| ua.contains(entry.as_str()))
            });
    let policy = if excluded {
        LoadBalancing::None
    } else {
        ha.load_balancing
    };
    let active = ha.enabled && ha.sticky_session && policy != LoadBalancing::None;
    if !active {
        return (
            Stickiness {
                active,
                cookie_backend: None,
                honoured: None,
            },
            policy,
        );
    }
    let cookie_backend = sticky::request_cookie(headers, &service.sticky_cookie)
        .into_iter()
        .find_map(|tag| service.backend_for_tag(tag));
    let honoured = cookie_backend.filter(|&i| {
        let state = &service.backends[i].state;
        state.admin() != AdminState::Disabled && state.is_up(now)
    });
    (
        Stickiness {
            active,
            cookie_backend,
            honoured,
        },
        policy,
    )
}

async fn forward(
    gateway: &Gateway,
    client: &ClientContext,
    service: &Arc<ServiceRuntime>,
    mut request: Request<Incoming>,
    rest: &str,
    tries: &mut Vec<TryRecord>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let is_upgrade =
        strict::is_websocket_upgrade(request.method(), request.version(), request.headers());
    let mut client_upgrade = is_upgrade.then(|| hyper::upgrade::on(&mut request));
    let (mut parts, incoming) = request.into_parts();
    // A clone of the header value shares its bytes: no copy per request.
    let original_host = parts.headers.get(header::HOST).cloned().or_else(|| {
        parts
            .uri
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    });
    let query = parts.uri.query();
    let config = &service.config;
    let ha = &config.ha;
    let now = tokio::time::Instant::now();
    service.budget.record_request(now);
    let (sticky, policy) = stickiness(service, &parts.headers, now);
    if sticky.active
        && ha.no_fallback
        && sticky.cookie_backend.is_some()
        && sticky.honoured.is_none()
    {
        // The client's backend is gone and the service forbids moving it.
        return Err(ProxyError::NoBackend {
            topology: service.topology.clone(),
            service: config.name.clone(),
        });
    }

    headers::strip_hop_by_hop(&mut parts.headers, is_upgrade);
    headers::remove_untrusted(&mut parts.headers, client);
    if parts.version == Version::HTTP_2 {
        strict::join_cookies(&mut parts.headers);
    }
    headers::add_forwarded(
        &mut parts.headers,
        client,
        original_host.as_ref(),
        &gateway.member_id_header,
        &service.context,
    );
    if config.preserve_host {
        if let Some(host) = &original_host {
            parts.headers.insert(header::HOST, host.clone());
        }
    } else {
        // Set per try to the chosen backend's authority.
        parts.headers.remove(header::HOST);
    }
    if let Some(auth) = &config.backend_auth {
        // Fail closed: a backend must never get an anonymous request where the
        // operator configured credentials.
        let Some(password) = gateway.credential(&auth.password_alias) else {
            tracing::error!(topology = %service.topology, service = %config.name, alias = %auth.password_alias, "backend_auth alias is missing or cannot be opened");
            return Err(ProxyError::MissingCredentials {
                topology: service.topology.clone(),
                service: config.name.clone(),
            });
        };
        use base64::Engine;
        let token =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{password}", auth.user));
        if let Ok(value) = HeaderValue::from_str(&format!("Basic {token}")) {
            parts.headers.insert(header::AUTHORIZATION, value);
        }
    }
    let version = match config.protocol {
        portcullis_config::BackendProtocol::Http1 => Version::HTTP_11,
        portcullis_config::BackendProtocol::H2 => Version::HTTP_2,
    };
    let may_repeat = is_idempotent(&parts.method) || ha.failover_non_idempotent;

    let mut replay = if incoming.is_end_stream() {
        None
    } else {
        let rate = gateway.min_body_rate();
        let idle = if rate > 0 {
            IdleTimeoutBody::new(MinRateBody::new(incoming, rate), config.timeouts.idle).boxed()
        } else {
            IdleTimeoutBody::new(incoming, config.timeouts.idle).boxed()
        };
        Some(ReplayBody::new(idle, ha.replay_buffer_bytes))
    };

    let (max_tries, stall_timeout) = if ha.enabled {
        (1 + ha.max_failover_attempts as usize, ha.stall_timeout)
    } else {
        (1, Duration::ZERO)
    };
    let plan = RetryPlan {
        service,
        max_tries,
        may_repeat,
        sticky: &sticky,
        policy,
    };
    let first = sticky.honoured.or_else(|| service.pick(now, 0, policy));
    let active_at_start = service.active_index();
    let mut next = first;
    let mut tried: Tried = 0;
    let mut last_error = None;
    let mut stale_retries = 0;
    let mut resend = false;
    while let Some(index) = next.take() {
        let backend = &service.backends[index];
        tried |= 1u64 << index;
        let resending = std::mem::take(&mut resend);
        if !tries.is_empty() && !resending {
            service.stats.failovers.fetch_add(1, Ordering::Relaxed);
            if !ha.failover_sleep.is_zero() {
                tokio::time::sleep(ha.failover_sleep).await;
            }
        }
        let body = match &replay {
            None => body::empty(),
            Some(replay) => match replay.try_replay() {
                Some(body) => body.boxed(),
                None => break,
            },
        };
        let uri = backend_uri(backend, rest, query)?;
        let mut backend_request = Request::new(body);
        *backend_request.method_mut() = parts.method.clone();
        *backend_request.uri_mut() = uri;
        *backend_request.version_mut() = version;
        // A later try needs the headers again unless this is the last try the
        // rules allow (tries used up, or every backend tried): then they move.
        // A GET or HEAD may be sent again on a fresh connection (see
        // `closed_before_answer`), so it keeps its headers until then.
        let may_resend = stale_retries < MAX_STALE_RETRIES
            && replay.is_none()
            && matches!(parts.method, Method::GET | Method::HEAD);
        let last_try = !may_resend
            && (tries.len() + 1 >= max_tries
                || tried.count_ones() as usize >= service.backends.len());
        *backend_request.headers_mut() = if last_try {
            std::mem::take(&mut parts.headers)
        } else {
            parts.headers.clone()
        };
        if !config.preserve_host && version == Version::HTTP_11 {
            backend_request
                .headers_mut()
                .insert(header::HOST, backend.host_header.clone());
        }

        let in_flight = InFlight::start(backend.clone());
        let sent = wait_for_head(
            service.client.request(backend_request),
            &backend.state,
            config.timeouts.request,
            stall_timeout,
        )
        .await;
        let now = tokio::time::Instant::now();
        // Decided once, before the outcome is taken apart below.
        let (refused_response, client_failure) = match &sent {
            Waited::Done(Ok(response)) => (
                strict::check_response_status(response.status(), client_upgrade.is_some()).err(),
                None,
            ),
            Waited::Done(Err(err)) => (None, client_body_failure(err)),
            _ => (None, None),
        };
        let kind = match sent {
            Waited::Done(Ok(response)) if refused_response.is_some() => {
                let reason = refused_response.unwrap_or("invalid response");
                tracing::warn!(topology = %service.topology, service = %config.name, backend = %backend.id, status = response.status().as_u16(), reason, "backend response refused");
                record_try(tries, backend, TryOutcome::Failed);
                last_error = Some(ProxyError::BadResponse {
                    topology: service.topology.clone(),
                    service: config.name.clone(),
                    reason,
                });
                FailureKind::Reset
            }
            Waited::Done(Ok(response)) => {
                let status = response.status().as_u16();
                if ha.retry_on_status.contains(&status) {
                    record_failure(service, backend, now);
                    record_try(tries, backend, TryOutcome::Answered(status));
                    let retry = plan.next(
                        FailureKind::Status,
                        tries.len(),
                        tried,
                        replay.as_ref(),
                        now,
                    );
                    if retry.is_some() {
                        next = retry;
                        continue;
                    }
                } else {
                    backend.state.record_success();
                    record_try(tries, backend, TryOutcome::Answered(status));
                }
                if policy == LoadBalancing::None && index != active_at_start {
                    service.promote(active_at_start, index);
                }
                let cookie = (sticky.active && sticky.cookie_backend != Some(index))
                    .then(|| {
                        sticky::set_cookie(
                            &service.sticky_cookie,
                            &backend.sticky_tag,
                            service.context.to_str().unwrap_or("/"),
                            client.tls,
                        )
                    })
                    .flatten();
                return Ok(finish_response(
                    response,
                    service,
                    client,
                    || gateway.location_base(original_host.as_ref(), client.tls),
                    client_upgrade.take(),
                    cookie,
                    in_flight,
                ));
            }
            Waited::Done(Err(err)) if err.is_connect() => {
                record_try(tries, backend, TryOutcome::ConnectFailed);
                last_error = Some(ProxyError::Connect {
                    topology: service.topology.clone(),
                    service: config.name.clone(),
                    source: Box::new(err),
                });
                FailureKind::Connect
            }
            Waited::Done(Err(err)) if may_resend && closed_before_answer(&err) => {
                // A pooled connection the backend closed while it was idle
                // (§9): the request never got an answer, so it goes again on
                // another connection without costing a try or the client.
                stale_retries += 1;
                tracing::debug!(backend = %backend.id, "pooled connection was closed by the backend; sending again");
                drop(in_flight);
                next = Some(index);
                resend = true;
                continue;
            }
            Waited::Done(Err(_)) if client_failure.is_some() => {
                // The client, not the backend, failed: no failover, no
                // ejection, and the backend connection is closed with it.
                record_try(tries, backend, TryOutcome::Failed);
                let reason = client_failure.unwrap_or("request body failed");
                return Err(ProxyError::ClientBody { reason });
            }
            Waited::Done(Err(err)) => {
                record_try(tries, backend, TryOutcome::Failed);
                last_error = Some(ProxyError::Backend {
                    topology: service.topology.clone(),
                    service: config.name.clone(),
                    source: Box::new(err),
                });
                FailureKind::Reset
            }
            waited @ (Waited::TimedOut | Waited::Stalled) => {
                let (outcome, timeout) = match waited {
                    Waited::Stalled => (TryOutcome::Stalled, stall_timeout),
                    _ => (TryOutcome::TimedOut, config.timeouts.request),
                };
                record_try(tries, backend, outcome);
                last_error = Some(ProxyError::Timeout {
                    topology: service.topology.clone(),
                    service: config.name.clone(),
                    timeout,
                });
                FailureKind::Timeout
            }
        };
        drop(in_flight);
        record_failure(service, backend, now);
        next = plan.next(kind, tries.len(), tried, replay.as_ref(), now);
    }
    // Drop the replay state before answering so a large unread body is released.
    replay.take();
    // When no try got as far as a connection, no backend could be tried at all:
    // that is 503, as HAProxy answers; a backend that failed mid-request is 502.
    let nothing_connected = tries.iter().all(|t| t.outcome == TryOutcome::ConnectFailed);
    match last_error {
        Some(err) if !nothing_connected => Err(err),
        _ => Err(ProxyError::NoBackend {
            topology: service.topology.clone(),
            service: config.name.clone(),
        }),
    }
}

/// Sends of one request again after a pooled connection turned out closed.
const MAX_STALE_RETRIES: u32 = 2;

/// The backend closed the connection before any byte of an answer: what a
/// pooled connection closed while idle looks like once a request is on it.
fn closed_before_answer(err: &hyper_util::client::legacy::Error) -> bool {
    use std::io::ErrorKind;
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(hyper_err) = cause.downcast_ref::<hyper::Error>() {
            if hyper_err.is_incomplete_message() {
                return true;
            }
        }
        // A close with our request unread in the backend's buffer is a reset.
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
            );
        }
        source = cause.source();
    }
    false
}

/// Why the client's request body failed a try, when it did: too slow for
/// `min_body_rate`, or silent for `timeouts.idle`.
fn client_body_failure(err: &hyper_util::client::legacy::Error) -> Option<&'static str> {
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.is::<SlowBody>() {
            return Some("request body too slow");
        }
        if cause.is::<crate::body::IdleTimeout>() {
            return Some("request body idle for too long");
        }
        source = cause.source();
    }
    None
}

fn record_failure(service: &ServiceRuntime, backend: &Backend, now: tokio::time::Instant) {
    let ha = &service.config.ha;
    if let Some(duration) = backend
        .state
        .record_failure(now, ha.eject_after, ha.eject_for)
    {
        tracing::warn!(
            topology = %service.topology,
            service = %service.config.name,
            backend = %backend.id,
            ?duration,
            "backend ejected after {} failed tries in a row",
            ha.eject_after
        );
    }
}

/// What decides whether a failed try may be followed by another, fixed for
/// the whole request.
struct RetryPlan<'a> {
    service: &'a ServiceRuntime,
    max_tries: usize,
    /// The method may be sent twice (or `failover_non_idempotent`).
    may_repeat: bool,
    sticky: &'a Stickiness,
    policy: LoadBalancing,
}

impl RetryPlan<'_> {
    /// The backend for the next try after a failure, if the rules allow one:
    /// tries left, a method that may be repeated (unless nothing reached the
    /// backend), a body that can be replayed, no `no_fallback` pin, an untried
    /// candidate, and for timeouts and statuses, room in the retry budget.
    fn next(
        &self,
        kind: FailureKind,
        tries_so_far: usize,
        tried: Tried,
        replay: Option<&ReplayBody>,
        now: tokio::time::Instant,
    ) -> Option<usize> {
        let service = self.service;
        if tries_so_far >= self.max_tries
            || (kind != FailureKind::Connect && !self.may_repeat)
            || replay.is_some_and(|r| !r.can_replay())
            || (service.config.ha.no_fallback && self.sticky.honoured.is_some())
        {
            return None;
        }
        let target = service.pick(now, tried, self.policy)?;
        if matches!(kind, FailureKind::Timeout | FailureKind::Status)
            && !service.budget.try_retry(now)
        {
            tracing::debug!(topology = %service.topology, service = %service.config.name, "retry budget exhausted");
            return None;
        }
        Some(target)
    }
}

fn backend_uri(backend: &Backend, rest: &str, query: Option<&str>) -> Result<Uri, ProxyError> {
    let query_len = query.map_or(0, |q| q.len() + 1);
    let mut path_and_query =
        String::with_capacity(backend.base_path.len() + rest.len() + 1 + query_len);
    path_and_query.push_str(&backend.base_path);
    path_and_query.push_str(rest);
    if path_and_query.is_empty() {
        path_and_query.push('/');
    }
    if let Some(query) = query {
        path_and_query.push('?');
        path_and_query.push_str(query);
    }
    Uri::builder()
        .scheme(backend.scheme.clone())
        .authority(backend.authority.clone())
        .path_and_query(path_and_query)
        .build()
        .map_err(|_| ProxyError::BadRequest {
            reason: "request path cannot be forwarded",
        })
}

fn finish_response(
    mut response: Response<Incoming>,
    service: &ServiceRuntime,
    client: &ClientContext,
    // Called only when a header needs rewriting: it formats a string.
    location_base: impl FnOnce() -> Option<String>,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    set_cookie: Option<HeaderValue>,
    in_flight: InFlight,
) -> Response<ProxyBody> {
    let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching {
        if let Some(client_upgrade) = client_upgrade {
            let backend_upgrade = hyper::upgrade::on(&mut response);
            let pending = (backend_upgrade, service.config.timeouts.idle);
            if let Some((backend_upgrade, idle)) = client.hand_over_tunnel(pending) {
                upgrade::spawn_tunnel(client_upgrade, backend_upgrade, idle);
            }
        }
    }
    let (mut parts, incoming) = response.into_parts();
    if parts.headers.contains_key(header::TRANSFER_ENCODING) {
        // The body was decoded by its chunks; a Content-Length beside them is
        // stale and would frame the relayed body wrongly (RFC 9112 §6.3).
        parts.headers.remove(header::CONTENT_LENGTH);
    }
    headers::strip_hop_by_hop(&mut parts.headers, switching);
    if parts.headers.contains_key(header::LOCATION)
        || parts.headers.contains_key(header::CONTENT_LOCATION)
    {
        let base = location_base().unwrap_or_else(|| {
            let scheme = if client.tls { "https" } else { "http" };
            format!("{scheme}://localhost")
        });
        let gateway_base = format!(
            "{base}{}/{}",
            service.context.to_str().unwrap_or(""),
            service.config.name
        );
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            let rewritten = parts
                .headers
                .get(&name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| headers::rewrite_location(v, &service.location_bases, &gateway_base))
                .and_then(|v| HeaderValue::from_str(&v).ok());
            if let Some(value) = rewritten {
                parts.headers.insert(name, value);
            }
        }
    }
    if let Some(cookie) = set_cookie {
        parts.headers.append(header::SET_COOKIE, cookie);
    }
    let body = if switching {
        body::empty()
    } else {
        Guarded::new(
            IdleTimeoutBody::new(incoming, service.config.timeouts.idle),
            in_flight,
        )
        .boxed()
    };
    Response::from_parts(parts, body)
}

/// One line per request. It is formatted here, in one pass, and handed to
/// `tracing` as the event's message: as ten separate fields, the fmt layer's
/// per-field visiting and styling cost about 18,000 instructions per request
/// (callgrind). Strings use `{:?}`, as `tracing` does, so quotes and control
/// characters in a path are escaped.
fn access_log(
    gateway: &Gateway,
    method: &Method,
    path: &str,
    (topology, service): &(String, String),
    response: &Response<ProxyBody>,
    tries: &[TryRecord],
    started: Instant,
) {
    let mut line = String::with_capacity(192);
    let backend = tries.last().map(|t| t.backend.id.as_str()).unwrap_or("-");
    let _ = write!(
        line,
        "member={} method={} path={:?} topology={:?} service={:?} backend={:?} status={} duration_ms={:.3} tries={} outcomes=\"",
        gateway.member_id,
        method,
        path,
        topology,
        service,
        backend,
        response.status().as_u16(),
        started.elapsed().as_secs_f64() * 1000.0,
        tries.len(),
    );
    for (i, record) in tries.iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        let _ = write!(line, "{}:{}", record.backend.id, record.outcome);
    }
    line.push('"');
    tracing::info!(target: "portcullis::access", "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_uri_joins_base_and_rest() {
        let url = url::Url::parse("http://127.0.0.1:9/base/").unwrap();
        let backend = Backend::new("t", "s", &url, false, &crate::CookieKey::random()).unwrap();
        assert_eq!(
            backend_uri(&backend, "/x/y", Some("a=1"))
                .unwrap()
                .to_string(),
            "http://127.0.0.1:9/base/x/y?a=1"
        );
        assert_eq!(
            backend_uri(&backend, "", None).unwrap().to_string(),
            "http://127.0.0.1:9/base"
        );
        let root = Backend::new(
            "t",
            "s",
            &url::Url::parse("http://h:1").unwrap(),
            false,
            &crate::CookieKey::random(),
        )
        .unwrap();
        assert_eq!(backend_uri(&root, "", None).unwrap().path(), "/");
    }
}
