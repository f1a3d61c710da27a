//! `Gateway` holds the live routing snapshot and applies typed config changes to
//! it, one at a time, each producing a new snapshot (as sozu's ConfigState does).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use http::HeaderValue;
use portcullis_config::{Service, Topology};

use super::{Backend, RoutingTable, ServiceRuntime, TopologyRuntime};
use crate::client::{build_client, ClientBuildError};

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
}

impl Gateway {
    pub fn new(member_id: &str, path_prefix: &str, base_dir: PathBuf) -> Gateway {
        Gateway {
            member_id: member_id.to_string(),
            member_id_header: HeaderValue::from_str(member_id)
                .unwrap_or_else(|_| HeaderValue::from_static("portcullis")),
            path_prefix: path_prefix.trim_matches('/').to_string(),
            base_dir,
            routes: ArcSwap::from_pointee(RoutingTable::default()),
            apply_lock: Mutex::new(()),
        }
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
        let mut services = HashMap::new();
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
                None => Arc::new(
                    Backend::new(topology, &service.name, url, backup).ok_or_else(|| {
                        ApplyError::BadUrl {
                            topology: topology.to_string(),
                            service: service.name.clone(),
                            url: url.to_string(),
                        }
                    })?,
                ),
            };
            backends.push(backend);
        }
        let client = build_client(service, &self.base_dir)?;
        let context = format!("/{}/{}", self.path_prefix, topology);
        let location_bases = backends
            .iter()
            .map(|b| b.url.as_str().trim_end_matches('/').to_string())
            .collect();
        Ok(ServiceRuntime {
            topology: topology.to_string(),
            config: service.clone(),
            backends,
            client,
            context: HeaderValue::from_str(&context)
                .unwrap_or_else(|_| HeaderValue::from_static("/")),
            location_bases,
            active: AtomicUsize::new(0),
        })
    }
}

pub enum Lookup {
    Found(Arc<ServiceRuntime>),
    NoTopology,
    NoService,
}
