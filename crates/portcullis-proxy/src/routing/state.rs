//! `Gateway` holds the live routing snapshot and applies typed config changes
//! to it, one at a time: the pure step (`apply.rs`) computes the next table
//! and its effects, then this file runs the effects (build the clients of new
//! services, swap the table in, start and stop health checks), as sozu's
//! ConfigState and its workers do.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use http::HeaderValue;
use portcullis_config::{AdminState, BackendProtocol, Topology};

use super::apply::{self, Effect, NextService, NextTable, ServiceKey, Settings};
use super::{NameMap, RoutingTable, ServiceRuntime, TopologyRuntime};
use crate::client::{build_client, ClientBuildError};
use crate::cookie_key::CookieKey;
use crate::ha::health::{spawn_checker, CheckTarget, Checker};
use crate::ha::MAX_BACKENDS;

/// A change to what the gateway serves.
#[derive(Debug, Clone)]
pub enum ConfigChange {
    /// Add a topology or replace the one with the same name.
    UpsertTopology(Topology),
    RemoveTopology(String),
    /// Every backend's admin state, by backend id; backends not named are
    /// enabled.
    SetAdminStates(HashMap<String, AdminState>),
    /// The alias values services may use as backend credentials.
    SetCredentials(HashMap<String, String>),
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Client(#[from] ClientBuildError),
    #[error("topology {topology}, service {service}: more than {MAX_BACKENDS} backends")]
    TooManyBackends { topology: String, service: String },
    #[error("topology {topology}, service {service}: {source}")]
    Auth {
        topology: String,
        service: String,
        source: portcullis_policy::PolicyError,
    },
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
    /// This gateway's id in the threads' route caches (`route_cache`).
    id: u64,
    /// Bumped after every store of `routes`: a route cache entry filled
    /// under an older count is stale.
    changes: AtomicU64,
    /// Serialises writers so two changes never build from the same old
    /// snapshot, and holds the health checkers, which only writers touch.
    applying: Mutex<Checkers>,
    cookie_key: CookieKey,
    /// Requests being handled by this member, for its member record.
    in_flight: AtomicU64,
    /// Client connections whose hyper state was dropped while idle.
    parked_connections: AtomicU64,
    pub(super) edge: ArcSwap<super::EdgeSettings>,
    /// `edge` lists trusted proxies: the per-request check reads this flag
    /// only, unless it is set.
    pub(super) trusts_proxies: std::sync::atomic::AtomicBool,
    /// The applied alias values, shared with the health checkers.
    health_credentials: crate::backend_auth::Credentials,
    /// The cluster's API keys, read by every service with the `api_key`
    /// method; the member replaces the table when the store's keys change.
    api_keys: portcullis_policy::ApiKeys,
}

/// The running health checkers, by service; dropping one stops it.
type Checkers = HashMap<ServiceKey, Checker>;

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
            id: super::route_cache::gateway_id(),
            changes: AtomicU64::new(0),
            applying: Mutex::new(HashMap::new()),
            cookie_key,
            in_flight: AtomicU64::new(0),
            parked_connections: AtomicU64::new(0),
            edge: ArcSwap::from_pointee(super::EdgeSettings::default()),
            trusts_proxies: std::sync::atomic::AtomicBool::new(false),
            health_credentials: Arc::default(),
            api_keys: portcullis_policy::ApiKeys::default(),
        }
    }

    /// The API key table every service of this member reads.
    pub fn api_keys(&self) -> &portcullis_policy::ApiKeys {
        &self.api_keys
    }

    /// Replaces the alias values services may use as backend credentials.
    pub fn set_credentials(&self, values: HashMap<String, String>) {
        // Infallible: no service is built for it.
        let _ = self.apply(ConfigChange::SetCredentials(values));
    }

    /// The value of an alias, if this member could open it.
    pub fn credential(&self, alias: &str) -> Option<String> {
        self.routes.load().credentials.get(alias).cloned()
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
        // Infallible: no service is built for it.
        let _ = self.apply(ConfigChange::SetAdminStates(states));
    }

    pub fn routes(&self) -> Arc<RoutingTable> {
        self.routes.load_full()
    }

    /// Cheap lookup for the request path: no clone of the whole table.
    pub fn service(&self, topology: &str, service: &str) -> Lookup {
        // Read before the table: an entry is never newer than its count.
        let changes = self.changes.load(Ordering::Acquire);
        if let Some(found) = super::route_cache::get(self.id, changes, topology, service) {
            return Lookup::Found(found);
        }
        let table = self.routes.load();
        match table.topologies.get(topology) {
            None => Lookup::NoTopology,
            Some(t) => match t.services.get(service) {
                None => Lookup::NoService,
                Some(s) => {
                    super::route_cache::put(self.id, changes, topology, service, s);
                    Lookup::Found(s.clone())
                }
            },
        }
    }

    pub fn generation(&self) -> u64 {
        self.routes.load().generation
    }

    /// Applies one change and swaps in the new snapshot; returns the
    /// generation served afterwards. On error nothing changes.
    pub fn apply(&self, change: ConfigChange) -> Result<u64, ApplyError> {
        let mut checkers = self.applying.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.routes.load_full();
        let settings = Settings {
            cookie_key: &self.cookie_key,
            path_prefix: &self.path_prefix,
        };
        let outcome = apply::apply(&current, change, &settings)?;
        let table = match outcome.table {
            Some(next) => {
                let built = next.built.as_ref().map(|b| b.name.clone());
                let table = Arc::new(assemble(next, &self.base_dir, &self.api_keys)?);
                if cfg!(debug_assertions) {
                    if let Some(name) = &built {
                        apply::check_invariants(&table, Some(name));
                    }
                }
                self.routes.store(table.clone());
                // After the store: a lookup that reads the new count finds
                // the new table (release here, acquire in `service`).
                self.changes.fetch_add(1, Ordering::Release);
                // The checkers read credentials from here, so they follow
                // every applied change, whichever way it came.
                self.health_credentials.store(table.credentials.clone());
                table
            }
            None => current,
        };
        for effect in outcome.effects {
            run_effect(&table, effect, &mut checkers, &self.health_credentials);
        }
        Ok(table.generation)
    }

    /// Services whose health checks run now.
    #[cfg(test)]
    pub(super) fn running_checkers(&self) -> Vec<ServiceKey> {
        let checkers = self.applying.lock().unwrap_or_else(|p| p.into_inner());
        let mut keys: Vec<ServiceKey> = checkers.keys().cloned().collect();
        keys.sort_by(|a, b| (&a.topology, &a.service).cmp(&(&b.topology, &b.service)));
        keys
    }
}

/// Runs the effects that must precede the swap: builds the clients of the
/// services the change built (reading their `tls_ca`), and assembles the
/// table. Fails, with nothing changed, when a client cannot be built.
pub(super) fn assemble(
    next: NextTable,
    base_dir: &Path,
    api_keys: &portcullis_policy::ApiKeys,
) -> Result<RoutingTable, ApplyError> {
    let mut topologies = next.kept;
    if let Some(built) = next.built {
        let mut services = NameMap::default();
        for (name, service) in built.services {
            let runtime = match service {
                NextService::Kept(runtime) => runtime,
                NextService::Build(draft) => {
                    let client = build_client(&draft.config, base_dir)?;
                    let auth = build_auth(&draft, base_dir, api_keys)?;
                    Arc::new(ServiceRuntime::new(*draft, client, auth))
                }
            };
            services.insert(name, runtime);
        }
        let topology = TopologyRuntime {
            name: built.name,
            source: built.source,
            services,
        };
        topologies.insert(topology.name.clone(), Arc::new(topology));
    }
    Ok(RoutingTable {
        generation: next.generation,
        topologies,
        admin_states: next.admin_states,
        credentials: next.credentials,
    })
}

/// The service's `[service.auth]`, its `file:` key set read now.
fn build_auth(
    draft: &super::ServiceDraft,
    base_dir: &Path,
    api_keys: &portcullis_policy::ApiKeys,
) -> Result<Option<portcullis_policy::Authenticator>, ApplyError> {
    let Some(policy) = &draft.config.auth else {
        return Ok(None);
    };
    let scope = portcullis_policy::ServiceScope {
        topology: &draft.topology,
        service: &draft.config.name,
        api_keys,
    };
    portcullis_policy::Authenticator::build(policy, base_dir, &scope)
        .map(Some)
        .map_err(|source| ApplyError::Auth {
            topology: draft.topology.clone(),
            service: draft.config.name.clone(),
            source,
        })
}

/// Runs one effect of an applied change against the table now served.
fn run_effect(
    table: &RoutingTable,
    effect: Effect,
    checkers: &mut Checkers,
    credentials: &crate::backend_auth::Credentials,
) {
    match effect {
        Effect::StopHealth(key) => {
            checkers.remove(&key);
        }
        Effect::StartHealth(key) => {
            let service = table
                .topologies
                .get(&key.topology)
                .and_then(|t| t.services.get(&key.service));
            let Some((service, check)) = service.and_then(|s| Some((s, s.config.health.clone()?)))
            else {
                return;
            };
            let target = CheckTarget {
                topology: key.topology.clone(),
                service: key.service.clone(),
                check,
                backends: service.backends.clone(),
                client: service.client.clone(),
                protocol_h2: service.config.protocol == BackendProtocol::H2,
                auth: service.config.backend_auth.as_ref().map(|auth| {
                    crate::backend_auth::CheckAuth {
                        user: auth.user.clone(),
                        password_alias: auth.password_alias.clone(),
                        credentials: credentials.clone(),
                    }
                }),
            };
            match spawn_checker(target) {
                Ok(checker) => {
                    checkers.insert(key, checker);
                }
                Err(err) => tracing::warn!("{err}; its backends count as up"),
            }
        }
        Effect::SyncAdminStates => sync_admin_states(table),
    }
}

fn sync_admin_states(table: &RoutingTable) {
    for (topology, service) in table.services() {
        for backend in &service.backends {
            let state = table
                .admin_states
                .get(&backend.id)
                .copied()
                .unwrap_or_default();
            if backend.state.admin() != state {
                tracing::info!(backend = %backend.id, topology = %topology.name, service = %service.config.name, state = state.as_str(), "backend admin state");
                backend.state.set_admin(state);
            }
        }
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
