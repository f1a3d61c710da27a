//! The routing snapshot: topologies, their services and backends, swapped
//! atomically on every config change. Requests hold an `Arc` of the service they
//! started on, so a swap never disturbs them.

mod edge;
mod state;

pub use edge::EdgeSettings;
pub use state::{ApplyError, ConfigChange, Gateway, Lookup};

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use http::uri::{Authority, Scheme};
use http::HeaderValue;
use portcullis_config::Service;
use sha2::{Digest, Sha256};

use crate::client::BackendClient;
use crate::ha::health::TaskGuard;
use crate::ha::{sticky, BackendState, CookieKey, RetryBudget};
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
    /// `/gateway/TOPOLOGY`, sent as X-Forwarded-Context.
    pub context: HeaderValue,
    /// Backend bases that Location headers are rewritten from.
    pub location_bases: Vec<String>,
    /// Index into `backends` of the backend every client uses first (HA "none").
    active: AtomicUsize,
    /// Current weights of smooth weighted round robin, by backend index.
    pub(crate) round_robin: Mutex<Vec<i64>>,
    pub budget: RetryBudget,
    /// Counters for the admin API and metrics; kept across reloads.
    pub stats: Arc<ServiceStats>,
    /// Name of the sticky cookie, `<sticky_session_cookie_name>-<service>`.
    pub sticky_cookie: String,
    /// The active health checker; dropping the service stops it.
    pub(crate) _checker: Option<TaskGuard>,
}

impl ServiceRuntime {
    pub fn active_index(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// Records that `index` answered after the active backend failed, so every
    /// later request starts there (Knox's "active URL").
    pub fn promote(&self, failed: usize, index: usize) {
        let _ = self
            .active
            .compare_exchange(failed, index, Ordering::Relaxed, Ordering::Relaxed);
    }

    pub(crate) fn set_active(&self, index: usize) {
        self.active.store(index, Ordering::Relaxed);
    }

    /// The backend a valid sticky cookie value names.
    pub fn backend_for_tag(&self, tag: &str) -> Option<usize> {
        self.backends.iter().position(|b| b.sticky_tag == tag)
    }
}

/// One backend url of a service.
pub struct Backend {
    pub id: String,
    pub url: url::Url,
    pub scheme: Scheme,
    pub authority: Authority,
    /// Path of the url without its trailing slash ("" for the root).
    pub base_path: String,
    pub backup: bool,
    /// `Host` sent to this backend (its authority, without a default port).
    pub host_header: HeaderValue,
    /// Sticky cookie value for this backend (a MAC of its id).
    pub sticky_tag: String,
    /// Health, ejection, admin state and counters; kept across reloads while
    /// the url stays the same.
    pub state: BackendState,
}

/// Short stable id of (topology, service, url), used in the API, metrics and logs.
pub fn backend_id(topology: &str, service: &str, url: &url::Url) -> String {
    let mut hasher = Sha256::new();
    for part in [topology, service, url.as_str()] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(&hasher.finalize()[..6])
}

impl Backend {
    pub fn new(
        topology: &str,
        service: &str,
        url: &url::Url,
        backup: bool,
        key: &CookieKey,
    ) -> Option<Backend> {
        let scheme = Scheme::try_from(url.scheme()).ok()?;
        let host = url.host_str()?;
        let port = url.port_or_known_default()?;
        let authority = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let id = backend_id(topology, service, url);
        let host_header = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str()?),
            None => url.host_str()?.to_string(),
        };
        Some(Backend {
            host_header: HeaderValue::from_str(&host_header).ok()?,
            sticky_tag: sticky::backend_tag(key, &id),
            state: BackendState::new(),
            id,
            url: url.clone(),
            scheme,
            authority: Authority::try_from(authority).ok()?,
            base_path: url.path().trim_end_matches('/').to_string(),
            backup,
        })
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
    let (topology, after_topology) = after_prefix.split_once('/')?;
    let (service, rest) = match after_topology.find('/') {
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

    #[test]
    fn backend_ids_are_stable_and_distinct() {
        let u1 = url::Url::parse("http://h1:80/a").unwrap();
        let u10 = url::Url::parse("http://h10:80/a").unwrap();
        assert_eq!(backend_id("t", "s", &u1), backend_id("t", "s", &u1));
        assert_ne!(backend_id("t", "s", &u1), backend_id("t", "s", &u10));
        assert_ne!(backend_id("t", "s", &u1), backend_id("t", "s2", &u1));
        assert_eq!(backend_id("t", "s", &u1).len(), 12);
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
