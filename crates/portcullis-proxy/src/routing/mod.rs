//! The routing snapshot: topologies, their services and backends, swapped
//! atomically on every config change. Requests hold an `Arc` of the service they
//! started on, so a swap never disturbs them.

mod apply;
#[cfg(test)]
mod apply_tests;
mod edge;
mod route_cache;
mod state;

pub use edge::EdgeSettings;
pub use state::{ApplyError, ConfigChange, Gateway, Lookup};

pub use crate::backend::{backend_id, Backend};

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderValue;
use portcullis_config::{AdminState, LoadBalancing, Service};
use tokio::time::Instant;

use crate::backend::Clients;
use crate::client::BackendClient;
use crate::ha::select::{Selector, Tried};
use crate::ha::RetryBudget;
use crate::stats::ServiceStats;

/// Topology or service name to its runtime. The names come from the
/// configuration, never from clients (a request path only looks them up), so a
/// keyless FNV-1a hash is safe here and far cheaper than SipHash per request.
pub type NameMap<V> = HashMap<String, V, fnv::FnvBuildHasher>;

/// One immutable view of everything the gateway serves.
#[derive(Default)]
pub struct RoutingTable {
    pub generation: u64,
    pub topologies: NameMap<Arc<TopologyRuntime>>,
    /// Admin states by backend id, as last read from the store; backends
    /// built later start in theirs.
    pub(crate) admin_states: Arc<HashMap<String, AdminState>>,
    /// Opened alias values by alias name, for `[service.backend_auth]`.
    pub(crate) credentials: Arc<HashMap<String, String>>,
}

impl RoutingTable {
    /// Every service with its topology.
    pub fn services(&self) -> impl Iterator<Item = (&TopologyRuntime, &Arc<ServiceRuntime>)> {
        self.topologies
            .values()
            .flat_map(|t| t.services.values().map(move |s| (&**t, s)))
    }

    /// Services where a new client finds no backend that is up and enabled
    /// (draining ones keep only their sticky clients).
    pub fn stranded_services(&self, now: Instant) -> usize {
        self.services()
            .filter(|(_, s)| {
                !s.backends
                    .iter()
                    .any(|b| b.state.can_serve(now, Clients::New))
            })
            .count()
    }
}

pub struct TopologyRuntime {
    pub name: String,
    pub source: portcullis_config::Topology,
    pub services: NameMap<Arc<ServiceRuntime>>,
}

pub struct ServiceRuntime {
    pub topology: String,
    pub config: Service,
    /// `urls` first, then `backup_urls`.
    pub backends: Vec<Arc<Backend>>,
    pub client: BackendClient,
    /// Keep-alive connections of the own HTTP/1.1 engine.
    pub pool: Arc<crate::backend_pool::Pool>,
    /// `/gateway/TOPOLOGY`, sent as X-Forwarded-Context.
    pub context: HeaderValue,
    /// Backend bases that Location headers are rewritten from.
    pub location_bases: Vec<String>,
    /// How backends are chosen: the active backend and the policy's state.
    pub(crate) selector: Selector,
    pub budget: RetryBudget,
    /// Counters for the admin API and metrics; kept across reloads.
    pub stats: Arc<ServiceStats>,
    /// Name of the sticky cookie, `<sticky_session_cookie_name>-<service>`.
    pub sticky_cookie: String,
    /// `[service.auth]`, built with the client; `None`: no authentication.
    pub auth: Option<portcullis_policy::Authenticator>,
    /// `[service.rate_limit]`'s buckets; the member's peer exchange sets
    /// their shares. `None`: unlimited.
    pub rate_limit: Option<portcullis_policy::rate_limit::RateLimiter>,
}

/// Everything a service runtime holds but its client, decided by the pure
/// apply step (see `apply.rs`); the client is built afterwards, as an effect.
pub(crate) struct ServiceDraft {
    pub topology: String,
    pub config: Service,
    pub backends: Vec<Arc<Backend>>,
    pub context: HeaderValue,
    pub location_bases: Vec<String>,
    pub active: usize,
    pub stats: Arc<ServiceStats>,
    pub sticky_cookie: String,
}

impl ServiceRuntime {
    pub(crate) fn new(
        draft: ServiceDraft,
        client: BackendClient,
        auth: Option<portcullis_policy::Authenticator>,
    ) -> ServiceRuntime {
        let rate_limit = draft
            .config
            .rate_limit
            .as_ref()
            .map(portcullis_policy::rate_limit::RateLimiter::new);
        ServiceRuntime {
            selector: Selector::new(&draft.config.ha, draft.backends.len(), draft.active),
            topology: draft.topology,
            config: draft.config,
            backends: draft.backends,
            client,
            pool: Arc::default(),
            context: draft.context,
            location_bases: draft.location_bases,
            budget: RetryBudget::counting_into(draft.stats.retry_budget_exhausted.clone()),
            stats: draft.stats,
            sticky_cookie: draft.sticky_cookie,
            auth,
            rate_limit,
        }
    }

    pub fn active_index(&self) -> usize {
        self.selector.active().index()
    }

    /// Records that `index` answered after the active backend failed, so every
    /// later request starts there (Knox's "active URL").
    pub fn promote(&self, failed: usize, index: usize) {
        self.selector.active().promote(failed, index);
    }

    /// The backend for the next try, or `None` when nothing is left to try.
    /// `policy` is the service's, or `None` for clients excluded from balancing.
    pub fn pick(&self, now: Instant, tried: Tried, policy: LoadBalancing) -> Option<usize> {
        let pool = self.selector.pool(&self.backends, now);
        self.selector.pick(&pool, tried, policy)
    }

    /// The backend a valid sticky cookie value names.
    pub fn backend_for_tag(&self, tag: &str) -> Option<usize> {
        self.backends.iter().position(|b| b.sticky_tag == tag)
    }

    /// Responses sent to clients, and those with a 5xx status: the gateway's
    /// own answers plus every backend's.
    pub fn answered_totals(&self) -> (u64, u64) {
        let own = self.stats.gateway_answers();
        let mut requests = own.total();
        let mut errors = own.server_errors();
        for backend in &self.backends {
            requests += backend.state.answers().total();
            errors += backend.state.answers().server_errors();
        }
        (requests, errors)
    }
}

/// The parts of a gateway path: `/{prefix}/{topology}/{service}{rest}`.
#[derive(Debug, PartialEq, Eq)]
pub struct RouteMatch<'a> {
    pub topology: &'a str,
    pub service: &'a str,
    /// Everything after the service segment, starting with '/' or empty.
    pub rest: &'a str,
}

pub fn match_path<'a>(prefix: &str, path: &'a str) -> Option<RouteMatch<'a>> {
    let after_prefix = path
        .strip_prefix('/')?
        .strip_prefix(prefix)?
        .strip_prefix('/')?;
    // A byte search: the pattern machinery of `split_once` and `find` costs
    // more to set up than these few bytes take to scan. `/` is ASCII, so
    // every index found is a char boundary.
    let slash = |s: &str| s.bytes().position(|b| b == b'/');
    let i = slash(after_prefix)?;
    let (topology, after_topology) = (&after_prefix[..i], &after_prefix[i + 1..]);
    let (service, rest) = match slash(after_topology) {
        Some(i) => (&after_topology[..i], &after_topology[i..]),
        None => (after_topology, ""),
    };
    if topology.is_empty() || service.is_empty() {
        return None;
    }
    Some(RouteMatch {
        topology,
        service,
        rest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn matches_gateway_paths() {
        assert_eq!(
            match_path("gateway", "/gateway/sales/webhdfs/v1/x"),
            Some(RouteMatch {
                topology: "sales",
                service: "webhdfs",
                rest: "/v1/x"
            })
        );
        assert_eq!(
            match_path("gateway", "/gateway/sales/webhdfs").map(|m| m.rest),
            Some("")
        );
        assert_eq!(match_path("gateway", "/gateway/sales/"), None);
        assert_eq!(match_path("gateway", "/gateway/sales"), None);
        assert_eq!(match_path("gateway", "/gatewayx/sales/s"), None);
        assert_eq!(match_path("gateway", "/other/sales/s"), None);
    }

    proptest! {
        #[test]
        fn matched_parts_reassemble_the_path(path in "[/a-z0-9.%-]{0,40}") {
            if let Some(m) = match_path("gateway", &path) {
                prop_assert_eq!(format!("/gateway/{}/{}{}", m.topology, m.service, m.rest), path.clone());
                prop_assert!(!m.topology.contains('/') && !m.service.contains('/'));
            }
        }
    }
}
