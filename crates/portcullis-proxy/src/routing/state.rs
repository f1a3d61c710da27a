//! `Gateway` holds the live routing snapshot and applies typed config changes to
//! it, one at a time, each producing a new snapshot (as sozu's ConfigState does).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use http::HeaderValue;
use portcullis_config::{AdminState, BackendProtocol, Service, Topology};

use super::{Backend, NameMap, RoutingTable, ServiceRuntime, TopologyRuntime};
use crate::client::{build_client, ClientBuildError};
use crate::ha::health::{spawn_checker, CheckTarget};
use crate::ha::{CookieKey, MAX_BACKENDS};

/// A change to what the gateway serves.
#[derive(Debug, Clone)]
pub enum ConfigChange {
    /// Add a topology or replace the one with the same name.
    UpsertTopology(Topology),
    RemoveTopology(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Client(#[from] ClientBuildError),
    #[error("topology {topology}, service {service}: more than {MAX_BACKENDS} backends")]
    TooManyBackends { topology: String, service: String },
    #[error("topology {topology}, service {service}: url {url} has no usable host")]
    BadUrl {
        topology: String,
        service: String,
        url: String,
    },
}

/// The data plane's shared state: who this member is and what it routes.
pub struct Gateway {
    pub member_id: String,
    pub member_id_header: HeaderValue,
    /// URL prefix without slashes, "gateway" by default.
    pub path_prefix: String,
    /// Directory that relative paths in topologies (tls_ca) resolve against.
    pub base_dir: PathBuf,
    routes: ArcSwap<RoutingTable>,
    /// Serialises writers so two changes never build from the same old snapshot.
    apply_lock: Mutex<()>,
    cookie_key: CookieKey,
    /// Admin states by backend id, as last read from the store; applied to
    /// backends built later too.
    admin_states: Mutex<HashMap<String, AdminState>>,
    /// Requests being handled by this member, for its member record.
    in_flight: AtomicU64,
    /// Client connections whose hyper state was dropped while idle.
    parked_connections: AtomicU64,
    /// Opened alias values by alias name, for `[service.backend_auth]`.
    credentials: ArcSwap<HashMap<String, String>>,
    pub(super) edge: ArcSwap<super::EdgeSettings>,
}

impl Gateway {
    pub fn new(
        member_id: &str,
        path_prefix: &str,
        base_dir: PathBuf,
        cookie_key: CookieKey,
    ) -> Gateway {
        Gateway {
            member_id: member_id.to_string(),
            member_id_header: HeaderValue::from_str(member_id)
                .unwrap_or_else(|_| HeaderValue::from_static("portcullis")),
            path_prefix: path_prefix.trim_matches('/').to_string(),
            base_dir,
            routes: ArcSwap::from_pointee(RoutingTable::default()),
            apply_lock: Mutex::new(()),
            cookie_key,
            admin_states: Mutex::new(HashMap::new()),
            in_flight: AtomicU64::new(0),
            parked_connections: AtomicU64::new(0),
            credentials: ArcSwap::from_pointee(HashMap::new()),
            edge: ArcSwap::from_pointee(super::EdgeSettings::default()),
        }
    }

    /// Replaces the alias values services may use as backend credentials.
    pub fn set_credentials(&self, values: HashMap<String, String>) {
        self.credentials.store(Arc::new(values));
    }

    /// The value of an alias, if this member could open it.
    pub fn credential(&self, alias: &str) -> Option<String> {
        self.credentials.load().get(alias).cloned()
    }

    /// How many times an idle client connection was parked (see
    /// `listener::park`).
    pub fn parked_connections(&self) -> u64 {
        self.parked_connections.load(Ordering::Relaxed)
    }

    pub(crate) fn count_parked_connection(&self) {
        self.parked_connections.fetch_add(1, Ordering::Relaxed);
    }

    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request until the returned guard drops.
    pub fn request_started(&self) -> RequestGuard<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        RequestGuard(&self.in_flight)
    }

    pub fn cookie_key(&self) -> &CookieKey {
        &self.cookie_key
    }

    /// Replaces every admin state with `states` (backend id -> state); backends
    /// not named are enabled. Takes effect at once on the live snapshot.
    pub fn set_admin_states(&self, states: HashMap<String, AdminState>) {
        let table = self.routes.load();
        for topology in table.topologies.values() {
            for service in topology.services.values() {
                for backend in &service.backends {
                    let state = states.get(&backend.id).copied().unwrap_or_default();
                    if backend.state.admin() != state {
                        tracing::info!(backend = %backend.id, topology = %topology.name, service = %service.config.name, state = state.as_str(), "backend admin state");
                        backend.state.set_admin(state);
                    }
                }
            }
        }
        *self.admin_states.lock().unwrap_or_else(|p| p.into_inner()) = states;
    }

    pub fn routes(&self) -> Arc<RoutingTable> {
        self.routes.load_full()
    }

    /// Cheap lookup for the request path: no clone of the whole table.
    pub fn service(&self, topology: &str, service: &str) -> Lookup {
        let table = self.routes.load();
        match table.topologies.get(topology) {
            None => Lookup::NoTopology,
            Some(t) => match t.services.get(service) {
                None => Lookup::NoService,
                Some(s) => Lookup::Found(s.clone()),
            },
        }
    }

    pub fn generation(&self) -> u64 {
        self.routes.load().generation
    }

    /// Applies one change and swaps in the new snapshot. On error nothing changes.
    pub fn apply(&self, change: ConfigChange) -> Result<u64, ApplyError> {
        let _guard = self.apply_lock.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.routes.load_full();
        let mut topologies = current.topologies.clone();
        match change {
            ConfigChange::UpsertTopology(topology) => {
                let previous = topologies.get(&topology.name).cloned();
                if previous.as_ref().is_some_and(|p| p.source == topology) {
                    return Ok(current.generation);
                }
                let runtime = self.build_topology(topology, previous.as_deref())?;
                topologies.insert(runtime.name.clone(), Arc::new(runtime));
            }
            ConfigChange::RemoveTopology(name) => {
                if topologies.remove(&name).is_none() {
                    return Ok(current.generation);
                }
            }
        }
        let generation = current.generation + 1;
        self.routes.store(Arc::new(RoutingTable {
            generation,
            topologies,
        }));
        Ok(generation)
    }

    fn build_topology(
        &self,
        topology: Topology,
        previous: Option<&TopologyRuntime>,
    ) -> Result<TopologyRuntime, ApplyError> {
        let mut services = NameMap::default();
        for service in &topology.services {
            let old = previous.and_then(|p| p.services.get(&service.name));
            let runtime = match old {
                // Unchanged service: keep its pool, active backend and state.
                Some(old) if old.config == *service => old.clone(),
                _ => Arc::new(self.build_service(&topology.name, service, old.map(|o| &**o))?),
            };
            services.insert(service.name.clone(), runtime);
        }
        Ok(TopologyRuntime {
            name: topology.name.clone(),
            source: topology,
            services,
        })
    }

    fn build_service(
        &self,
        topology: &str,
        service: &Service,
        previous: Option<&ServiceRuntime>,
    ) -> Result<ServiceRuntime, ApplyError> {
        // Checked before any work: validation refuses such a service, but a
        // caller may hand one over without validating.
        if service.urls.len() + service.backup_urls.len() > MAX_BACKENDS {
            return Err(ApplyError::TooManyBackends {
                topology: topology.to_string(),
                service: service.name.clone(),
            });
        }
        let mut backends = Vec::new();
        let all_urls = service
            .urls
            .iter()
            .map(|u| (u, false))
            .chain(service.backup_urls.iter().map(|u| (u, true)));
        for (url, backup) in all_urls {
            // Backends whose url did not change keep their state across reloads.
            let reused = previous.and_then(|p| {
                p.backends
                    .iter()
                    .find(|b| b.url == *url && b.backup == backup)
                    .cloned()
            });
            let backend = match reused {
                Some(b) => b,
                None => {
                    let backend =
                        Backend::new(topology, &service.name, url, backup, &self.cookie_key)
                            .ok_or_else(|| ApplyError::BadUrl {
                                topology: topology.to_string(),
                                service: service.name.clone(),
                                url: url.to_string(),
                            })?;
                    let admin = self.admin_states.lock().unwrap_or_else(|p| p.into_inner());
                    backend
                        .state
                        .set_admin(admin.get(&backend.id).copied().unwrap_or_default());
                    Arc::new(backend)
                }
            };
            backends.push(backend);
        }
        let client = build_client(service, &self.base_dir)?;
        let context = format!("/{}/{}", self.path_prefix, topology);
        let location_bases = backends
            .iter()
            .map(|b| b.url.as_str().trim_end_matches('/').to_string())
            .collect();
        let checker = service.health.as_ref().and_then(|check| {
            spawn_checker(CheckTarget {
                topology: topology.to_string(),
                service: service.name.clone(),
                check: check.clone(),
                backends: backends.clone(),
                client: client.clone(),
                protocol_h2: service.protocol == BackendProtocol::H2,
            })
        });
        // Keep the active backend across a reload when its url is still there.
        let active = previous
            .and_then(|p| p.backends.get(p.active_index()))
            .and_then(|b| backends.iter().position(|n| Arc::ptr_eq(n, b)))
            .unwrap_or(0);
        Ok(ServiceRuntime {
            topology: topology.to_string(),
            config: service.clone(),
            round_robin: Mutex::new(vec![0; backends.len()]),
            backends,
            client,
            context: HeaderValue::from_str(&context)
                .unwrap_or_else(|_| HeaderValue::from_static("/")),
            location_bases,
            active: AtomicUsize::new(active),
            budget: Default::default(),
            stats: previous.map(|p| p.stats.clone()).unwrap_or_default(),
            sticky_cookie: format!("{}-{}", service.ha.sticky_session_cookie_name, service.name),
            _checker: checker,
        })
    }
}

pub enum Lookup {
    Found(Arc<ServiceRuntime>),
    NoTopology,
    NoService,
}

pub struct RequestGuard<'a>(&'a AtomicU64);

impl Drop for RequestGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
