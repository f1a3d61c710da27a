//! Phase 1, prepare: the checks before routing, routing itself, and
//! everything fixed for all of a request's tries (stickiness, header edits,
//! backend credentials, the replayable body, the retry plan).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::Version;
use http_body::Body;
use http_body_util::BodyExt;
use portcullis_config::{BackendProtocol, LoadBalancing};
use portcullis_policy::Principal;
use tokio::time::Instant;

use super::ClientRequest;
use crate::backend::Clients;
use crate::body::{IdleTimeoutBody, ReplayBody};
use crate::error::{BoxError, ProxyError};
use crate::ha::retry::RetryPlan;
use crate::ha::{sticky, Tried};
use crate::http::headers::{ClientChain, ForwardedFields};
use crate::http::request_fields::visible_str;
use crate::http::{strict, ClientContext, ClientHead, RequestFields, RequestTarget};
use crate::routing::{match_path, Gateway, Lookup, ServiceRuntime};
use crate::slow_body::MinRateBody;

/// The §9 checks that come before routing: head rules and the path rule.
pub(super) fn refuse(head: &ClientHead, hosts: &strict::HostFields) -> Result<(), ProxyError> {
    let authority = head.target.authority().map(|a| a.as_str());
    strict::check_request_start(&head.method, head.version, hosts, authority)?;
    // The target's parse already saw whether the rule has anything to do.
    if head.target.path_needs_no_rule() {
        return Ok(());
    }
    strict::check_path(head.target.path()).map_err(|reason| ProxyError::BadRequest { reason })
}

/// Finds the service and where the backend-relative part of the path starts.
pub(super) fn route(
    gateway: &Gateway,
    target: &RequestTarget,
) -> Result<(Arc<ServiceRuntime>, usize), ProxyError> {
    let path = target.path();
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

/// What sticky sessions mean for this request.
pub(super) struct Stickiness {
    /// Cookies are in use for this request (sticky service, balanced client).
    pub(super) active: bool,
    /// The backend a valid cookie names, whatever its state.
    pub(super) cookie_backend: Option<usize>,
    /// `cookie_backend` when it may serve the request (up or draining).
    pub(super) honoured: Option<usize>,
}

/// The balancing policy for this client (some user agents are never
/// balanced) and what its sticky cookie asks for.
fn stickiness(
    service: &ServiceRuntime,
    headers: &RequestFields,
    now: Instant,
) -> (Stickiness, LoadBalancing) {
    let ha = &service.config.ha;
    let excluded = !ha.disable_load_balancing_for_user_agents.is_empty()
        && headers
            .get(&header::USER_AGENT)
            .and_then(visible_str)
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
    let mut sticky = Stickiness {
        active,
        cookie_backend: None,
        honoured: None,
    };
    if active {
        sticky.cookie_backend =
            sticky::cookies_named(headers.values(&header::COOKIE), &service.sticky_cookie)
                .into_iter()
                .find_map(|tag| service.backend_for_tag(tag));
        sticky.honoured = sticky
            .cookie_backend
            .filter(|&i| service.backends[i].state.can_serve(now, Clients::Sticky));
    }
    (sticky, policy)
}

/// A routed request on its way to the service's backends: what every try
/// shares, and what the tries so far have left behind.
pub(super) struct Forwarding<'r, U> {
    pub(super) gateway: &'r Gateway,
    pub(super) client: &'r ClientContext,
    pub(super) service: &'r Arc<ServiceRuntime>,
    /// The client's head with the headers edited for backends; the uri and
    /// method are the client's.
    pub(super) head: Box<ClientHead>,
    /// Where the backend-relative part of the path starts.
    pub(super) rest_start: usize,
    /// The client's Host (or authority), for `preserve_host` and Location.
    pub(super) original_host: Option<strict::HostValue>,
    /// The client's own X-Forwarded-For, which the gateway's extends, and
    /// X-Real-IP when the client is not the peer (trusted proxies).
    pub(super) chain: ClientChain,
    /// Who signed in (`[service.auth]`), asserted in the identity header.
    pub(super) principal: Option<Arc<Principal>>,
    pub(super) backend_version: Version,
    pub(super) replay: Option<ReplayBody>,
    /// The client's side of a WebSocket upgrade, until a backend accepts it.
    pub(super) client_upgrade: Option<U>,
    pub(super) sticky: Stickiness,
    pub(super) policy: LoadBalancing,
    pub(super) plan: RetryPlan,
    pub(super) stall_timeout: Duration,
    /// When the request was prepared: the first backend is chosen as of then.
    pub(super) prepared_at: Instant,
    pub(super) active_at_start: usize,
    /// Backends tried so far, as a bit set.
    pub(super) tried: Tried,
    pub(super) last_error: Option<ProxyError>,
    /// Sends again after a pooled connection turned out closed.
    pub(super) stale_retries: u32,
    /// The next try sends the same request again on a fresh connection.
    pub(super) resend: bool,
}

impl<'r, U> Forwarding<'r, U> {
    /// Prepares a routed request: refuses a cookie-pinned client whose backend
    /// is gone (`no_fallback`), edits the headers once for every try, adds the
    /// backend credentials and makes the body replayable. `now` is when the
    /// request arrived: microseconds earlier, it saves reading the clock again.
    ///
    /// Boxed, and built in its box: held in the pipeline's future, its 736
    /// bytes put that future over the allocator's 1 KiB fast path, and built
    /// on the stack first it was copied into the box (callgrind: memcpy).
    pub(super) fn new<B>(
        gateway: &'r Gateway,
        client: &'r ClientContext,
        service: &'r Arc<ServiceRuntime>,
        request: ClientRequest<B, U>,
        rest_start: usize,
        now: Instant,
        principal: Option<Arc<Principal>>,
    ) -> Result<Box<Self>, ProxyError>
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        let ClientRequest {
            head: mut parts,
            hosts,
            body,
            upgrade,
            ..
        } = request;
        let ha = &service.config.ha;
        service.budget.record_request(now);
        let (sticky, policy) = stickiness(service, &parts.headers, now);
        if sticky.active
            && ha.no_fallback
            && sticky.cookie_backend.is_some()
            && sticky.honoured.is_none()
        {
            // The client's backend is gone and the service forbids moving it.
            return Err(no_backend(service));
        }
        // An absolute-form (or HTTP/2) target's authority names the host,
        // not a Host field beside it (RFC 9112 §3.2.2): forwarding the field
        // would let the two name different hosts to different readers.
        // Otherwise the Host value, sharing the head's bytes: no copy.
        let original_host = match parts.target.authority() {
            Some(authority) => HeaderValue::from_str(authority.as_str())
                .ok()
                .map(|value| strict::HostValue::from(&value)),
            None => hosts.into_first(),
        };
        let edits = HeaderEdits {
            gateway,
            service,
            original_host: original_host.as_ref(),
            keep_upgrade: upgrade.is_some(),
        };
        let prior_for = edits.apply(&mut parts)?;
        let real_ip = gateway.real_ip_header(client.peer_ip, prior_for.as_ref());
        let replay = (!body.is_end_stream()).then(|| replayable(gateway, service, body));
        Ok(Box::write(
            Box::new_uninit(),
            Forwarding {
                gateway,
                client,
                service,
                plan: RetryPlan::new(ha, &parts.method, sticky.honoured.is_some()),
                head: parts,
                rest_start,
                original_host,
                chain: ClientChain { prior_for, real_ip },
                principal,
                backend_version: match service.config.protocol {
                    BackendProtocol::Http1 => Version::HTTP_11,
                    BackendProtocol::H2 => Version::HTTP_2,
                },
                replay,
                client_upgrade: upgrade,
                sticky,
                policy,
                stall_timeout: if ha.enabled {
                    ha.stall_timeout
                } else {
                    Duration::ZERO
                },
                prepared_at: now,
                active_at_start: service.active_index(),
                tried: 0,
                last_error: None,
                stale_retries: 0,
                resend: false,
            },
        ))
    }

    /// The X-Real-IP and X-Forwarded-* fields every try carries.
    pub(super) fn forwarded_fields(&self) -> ForwardedFields<'_> {
        ForwardedFields {
            client: self.client,
            chain: &self.chain,
            host: self.original_host.as_ref(),
            member_id: &self.gateway.member_id_header,
            context: &self.service.context,
            identity: self.identity(),
        }
    }

    /// The identity header and the principal's value (the auth phase
    /// refused a principal whose name cannot be a field value).
    fn identity(&self) -> Option<(&HeaderName, &HeaderValue)> {
        let header = self.service.auth.as_ref()?.identity_header();
        Some((header, self.principal.as_ref()?.header_value()?))
    }

    /// The backend of the first try: the cookie's, else the policy's choice.
    pub(super) fn first_backend(&self) -> Option<usize> {
        let service = self.service;
        self.sticky
            .honoured
            .or_else(|| service.pick(self.prepared_at, 0, self.policy))
    }
}

/// The client's body, cut when too slow or idle, made replayable within the
/// service's `replay_buffer_bytes`.
fn replayable<B>(gateway: &Gateway, service: &ServiceRuntime, body: B) -> ReplayBody
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    let config = &service.config;
    let rate = gateway.min_body_rate();
    let guarded = if rate > 0 {
        IdleTimeoutBody::new(MinRateBody::new(body, rate), config.timeouts.idle).boxed()
    } else {
        IdleTimeoutBody::new(body, config.timeouts.idle).boxed()
    };
    ReplayBody::new(guarded, config.ha.replay_buffer_bytes)
}

/// Fields the pipeline may insert into a request's fields: Host,
/// Authorization and `Connection: upgrade` (the room a map made from raw
/// fields gets, `RequestFields::map_mut`). X-Real-IP and X-Forwarded-* are
/// not inserted: the connector writes them (`headers::ForwardedFields`).
pub(crate) const ADDED_HEADERS: usize = 3;

/// The header edits every try shares.
struct HeaderEdits<'a> {
    gateway: &'a Gateway,
    service: &'a ServiceRuntime,
    original_host: Option<&'a strict::HostValue>,
    /// The request is a WebSocket upgrade: Connection and Upgrade stay.
    keep_upgrade: bool,
}

impl HeaderEdits<'_> {
    /// Hop-by-hop fields and the client's copies of the gateway's own out,
    /// the Host rule, and the backend credentials (fail closed when they
    /// cannot be read). Returns the client's X-Forwarded-For, which the
    /// forwarded fields extend.
    fn apply(&self, parts: &mut ClientHead) -> Result<Option<HeaderValue>, ProxyError> {
        let config = &self.service.config;
        let headers = &mut parts.headers;
        headers.strip_hop_by_hop(self.keep_upgrade);
        let prior_for = headers.remove_client_forwarding();
        if parts.version == Version::HTTP_2 {
            strict::join_cookies(headers.map_mut(ADDED_HEADERS));
        }
        // Without `preserve_host` each try replaces the Host (`TryHost`).
        if config.preserve_host {
            if let Some(host) = self.original_host {
                if headers.get(&header::HOST) != Some(host.as_bytes()) {
                    if let Some(value) = host.to_header_value() {
                        headers.insert(header::HOST, value);
                    }
                }
            }
        }
        self.add_backend_auth(headers)?;
        Ok(prior_for)
    }

    /// A backend must never get an anonymous request where the operator
    /// configured credentials.
    fn add_backend_auth(&self, headers: &mut RequestFields) -> Result<(), ProxyError> {
        let service = self.service;
        let Some(auth) = &service.config.backend_auth else {
            return Ok(());
        };
        let Some(password) = self.gateway.credential(&auth.password_alias) else {
            tracing::error!(topology = %service.topology, service = %service.config.name, alias = %auth.password_alias, "backend_auth alias is missing or cannot be opened");
            return Err(ProxyError::MissingCredentials {
                topology: service.topology.clone(),
                service: service.config.name.clone(),
            });
        };
        if let Some(value) = crate::backend_auth::basic_authorization(&auth.user, &password) {
            headers.insert(header::AUTHORIZATION, value);
        }
        Ok(())
    }
}

/// 503: no backend could be tried.
pub(super) fn no_backend(service: &ServiceRuntime) -> ProxyError {
    ProxyError::NoBackend {
        topology: service.topology.clone(),
        service: service.config.name.clone(),
    }
}
