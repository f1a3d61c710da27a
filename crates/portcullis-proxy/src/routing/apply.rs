//! The pure half of a config change: from the current table and one change,
//! the next table and the effects that must run around the swap. Nothing
//! here reads a file, builds a client, spawns a task or writes to a state
//! another request can see; `Gateway::apply` (state.rs) runs the effects.
//! The model is sozu's `ConfigState::dispatch` and `diff`.
//!
//! Reload rules:
//! - a topology equal to the one served changes nothing (same generation);
//! - a service whose config is unchanged is kept whole (pool, active
//!   backend, budget, checker);
//! - in a changed service, a backend whose url (and tier) is unchanged is
//!   the same object, so its health, ejection and counters carry over, and
//!   the active backend stays active while its url is still there;
//! - new backends start in the admin state the store gives their id;
//! - a change of admin states or of credentials is a change: it bumps the
//!   generation.

use std::collections::HashMap;
use std::sync::Arc;

use http::HeaderValue;
use portcullis_config::{AdminState, Service, Topology};

use super::state::{ApplyError, ConfigChange};
use super::{Backend, NameMap, RoutingTable, ServiceDraft, ServiceRuntime, TopologyRuntime};
use crate::cookie_key::CookieKey;
use crate::ha::MAX_BACKENDS;

/// What the pure step needs besides the table: fixed for a gateway's life.
pub(crate) struct Settings<'a> {
    pub cookie_key: &'a CookieKey,
    pub path_prefix: &'a str,
}

/// A service of the next table: kept from the current one, or to be built
/// (its client is an effect: it reads the service's `tls_ca`).
pub(crate) enum NextService {
    Kept(Arc<ServiceRuntime>),
    Build(Box<ServiceDraft>),
}

pub(crate) struct NextTopology {
    pub name: String,
    pub source: Topology,
    pub services: NameMap<NextService>,
}

/// The next table: the topologies kept from the current one, and at most one
/// built by this change, whose `Build` services still need their client.
pub(crate) struct NextTable {
    pub generation: u64,
    pub kept: NameMap<Arc<TopologyRuntime>>,
    pub built: Option<NextTopology>,
    pub admin_states: Arc<HashMap<String, AdminState>>,
    pub credentials: Arc<HashMap<String, String>>,
}

/// Which service an effect is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct ServiceKey {
    pub topology: String,
    pub service: String,
}

/// What must happen once the new table is in place.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Start (or restart) the health checks of a built service.
    StartHealth(ServiceKey),
    /// Stop the checks of a service that is gone, changed or no longer checked.
    StopHealth(ServiceKey),
    /// Bring every backend's admin state in line with the table's map.
    SyncAdminStates,
}

/// The result of the pure step: the next table (`None` when the change is
/// already in place) and the effects to run after it.
pub(crate) struct Outcome {
    pub table: Option<NextTable>,
    pub effects: Vec<Effect>,
}

/// Computes the next table and its effects, or the reason the change is
/// refused. The current table is not modified.
pub(crate) fn apply(
    current: &RoutingTable,
    change: ConfigChange,
    settings: &Settings,
) -> Result<Outcome, ApplyError> {
    let mut effects = Vec::new();
    let mut next = NextTable {
        generation: current.generation + 1,
        kept: current.topologies.clone(),
        built: None,
        admin_states: current.admin_states.clone(),
        credentials: current.credentials.clone(),
    };
    let unchanged = |effects| {
        Ok(Outcome {
            table: None,
            effects,
        })
    };
    match change {
        ConfigChange::UpsertTopology(topology) => {
            let previous = next.kept.remove(&topology.name);
            if previous.as_ref().is_some_and(|p| p.source == topology) {
                return unchanged(effects);
            }
            let built = build_topology(current, topology, previous.as_deref(), settings)?;
            health_effects(previous.as_deref(), Some(&built), &mut effects);
            next.built = Some(built);
        }
        ConfigChange::RemoveTopology(name) => {
            let Some(previous) = next.kept.remove(&name) else {
                return unchanged(effects);
            };
            health_effects(Some(&previous), None, &mut effects);
        }
        ConfigChange::SetAdminStates(states) => {
            // Applied to the live backends even when the map is the same: a
            // state set through the admin API may differ from the store's.
            effects.push(Effect::SyncAdminStates);
            if *next.admin_states == states {
                return unchanged(effects);
            }
            next.admin_states = Arc::new(states);
        }
        ConfigChange::SetCredentials(values) => {
            if *next.credentials == values {
                return unchanged(effects);
            }
            next.credentials = Arc::new(values);
        }
    }
    Ok(Outcome {
        table: Some(next),
        effects,
    })
}

/// Stops the checks of services that are gone, changed or no longer
/// checked; starts those of services built with a check.
fn health_effects(
    previous: Option<&TopologyRuntime>,
    next: Option<&NextTopology>,
    effects: &mut Vec<Effect>,
) {
    let key = |topology: &str, service: &str| ServiceKey {
        topology: topology.to_string(),
        service: service.to_string(),
    };
    if let Some(previous) = previous {
        for (name, old) in &previous.services {
            let kept = next
                .and_then(|n| n.services.get(name))
                .is_some_and(|s| matches!(s, NextService::Kept(_)));
            if old.config.health.is_some() && !kept {
                effects.push(Effect::StopHealth(key(&previous.name, name)));
            }
        }
    }
    if let Some(next) = next {
        for (name, service) in &next.services {
            if let NextService::Build(draft) = service {
                if draft.config.health.is_some() {
                    effects.push(Effect::StartHealth(key(&next.name, name)));
                }
            }
        }
    }
}

fn build_topology(
    current: &RoutingTable,
    topology: Topology,
    previous: Option<&TopologyRuntime>,
    settings: &Settings,
) -> Result<NextTopology, ApplyError> {
    let mut services = NameMap::default();
    for service in &topology.services {
        let old = previous.and_then(|p| p.services.get(&service.name));
        let next = match old {
            // Unchanged service: keep its pool, active backend and state.
            Some(old) if old.config == *service => NextService::Kept(old.clone()),
            _ => NextService::Build(Box::new(draft_service(
                &topology.name,
                service,
                old.map(|o| &**o),
                &current.admin_states,
                settings,
            )?)),
        };
        services.insert(service.name.clone(), next);
    }
    Ok(NextTopology {
        name: topology.name.clone(),
        source: topology,
        services,
    })
}

fn draft_service(
    topology: &str,
    service: &Service,
    previous: Option<&ServiceRuntime>,
    admin_states: &HashMap<String, AdminState>,
    settings: &Settings,
) -> Result<ServiceDraft, ApplyError> {
    // Checked before any work: validation refuses such a service, but a
    // caller may hand one over without validating.
    if service.urls.len() + service.backup_urls.len() > MAX_BACKENDS {
        return Err(ApplyError::TooManyBackends {
            topology: topology.to_string(),
            service: service.name.clone(),
        });
    }
    let all_urls = service
        .urls
        .iter()
        .map(|u| (u, false))
        .chain(service.backup_urls.iter().map(|u| (u, true)));
    let mut backends = Vec::with_capacity(service.urls.len() + service.backup_urls.len());
    for (url, backup) in all_urls {
        // Backends whose url did not change keep their state across reloads.
        let reused = previous.and_then(|p| {
            p.backends
                .iter()
                .find(|b| b.url == *url && b.backup == backup)
                .cloned()
        });
        let backend = match reused {
            Some(backend) => backend,
            None => Arc::new(new_backend(
                topology,
                service,
                url,
                backup,
                admin_states,
                settings,
            )?),
        };
        backends.push(backend);
    }
    // Keep the active backend across a reload when its url is still there.
    let active = previous
        .and_then(|p| p.backends.get(p.active_index()))
        .and_then(|b| backends.iter().position(|n| Arc::ptr_eq(n, b)))
        .unwrap_or(0);
    let context = format!("/{}/{}", settings.path_prefix, topology);
    Ok(ServiceDraft {
        topology: topology.to_string(),
        config: service.clone(),
        location_bases: backends
            .iter()
            .map(|b| b.url.as_str().trim_end_matches('/').to_string())
            .collect(),
        backends,
        context: HeaderValue::from_str(&context).unwrap_or_else(|_| HeaderValue::from_static("/")),
        active,
        stats: previous.map(|p| p.stats.clone()).unwrap_or_default(),
        sticky_cookie: format!("{}-{}", service.ha.sticky_session_cookie_name, service.name),
    })
}

/// A backend not seen before, in the admin state the store gives its id. It
/// is not shared yet, so setting its state here is no side effect.
fn new_backend(
    topology: &str,
    service: &Service,
    url: &url::Url,
    backup: bool,
    admin_states: &HashMap<String, AdminState>,
    settings: &Settings,
) -> Result<Backend, ApplyError> {
    let backend = Backend::new(topology, &service.name, url, backup, settings.cookie_key)
        .ok_or_else(|| ApplyError::BadUrl {
            topology: topology.to_string(),
            service: service.name.clone(),
            url: url.to_string(),
        })?;
    let admin = admin_states.get(&backend.id).copied().unwrap_or_default();
    backend.state.set_admin(admin);
    Ok(backend)
}

/// What every table the gateway serves must satisfy, checked after each
/// apply in debug builds: for the topology the change built (`Some`), or for
/// every topology (`None`). Only the built one can have changed, so checking
/// it alone keeps an apply's cost proportional to its change.
pub(crate) fn check_invariants(table: &RoutingTable, only: Option<&str>) {
    let checked = table
        .topologies
        .iter()
        .filter(|(name, _)| only.is_none_or(|only| only == name.as_str()));
    for (name, topology) in checked {
        assert_eq!(*name, topology.name, "topology keyed by its name");
        assert_eq!(topology.services.len(), topology.source.services.len());
        for source in &topology.source.services {
            let service = topology.services.get(&source.name);
            let Some(service) = service else {
                panic!("service {} of {name} has no runtime", source.name);
            };
            assert_eq!(service.config, *source, "runtime of {}", source.name);
            assert_eq!(service.topology, *name);
            let urls = source.urls.iter().chain(&source.backup_urls);
            assert!(service.backends.len() <= MAX_BACKENDS);
            assert!(service.backends.iter().map(|b| &b.url).eq(urls));
            assert!(service.backends.is_empty() || service.active_index() < service.backends.len());
        }
    }
}
