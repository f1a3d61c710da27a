//! The reload rules of `apply.rs`, on the pure step, and its effects as
//! `Gateway::apply` runs them.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use portcullis_config::{AdminState, Topology};
use tokio::time::Instant;

use super::apply::{apply, Effect, NextService, Outcome, ServiceKey, Settings};
use super::state::assemble;
use super::{backend_id, ApplyError, ConfigChange, Gateway, Lookup, RoutingTable, ServiceRuntime};
use crate::cookie_key::CookieKey;

const HEALTH: &str = "[service.health]\npath = \"/health\"\ninterval = \"1h\"";

fn key() -> CookieKey {
    CookieKey::new([5; 32])
}

/// A topology from `(service, urls, extra)` triples.
fn topology(name: &str, services: &[(&str, &[&str], &str)]) -> Topology {
    let mut text = String::new();
    for (service, urls, extra) in services {
        let urls: Vec<String> = urls.iter().map(|u| format!("{u:?}")).collect();
        text.push_str(&format!(
            "[[service]]\nname = \"{service}\"\nurls = [{}]\n{extra}\n",
            urls.join(", ")
        ));
    }
    portcullis_config::load_topology(name, "test.toml", &text, Path::new("."))
        .unwrap_or_else(|errors| panic!("{errors:?}"))
}

/// The pure step, then the table the effects would assemble.
fn step(table: &RoutingTable, change: ConfigChange) -> (Option<RoutingTable>, Vec<Effect>) {
    let key = key();
    let settings = Settings {
        cookie_key: &key,
        path_prefix: "gateway",
    };
    let Outcome {
        table: next,
        effects,
    } = apply(table, change, &settings).unwrap();
    let next = next.map(|next| {
        assemble(next, Path::new("."), &portcullis_policy::ApiKeys::default()).unwrap()
    });
    if let Some(next) = &next {
        super::apply::check_invariants(next, None);
    }
    (next, effects)
}

fn service<'a>(table: &'a RoutingTable, topology: &str, name: &str) -> &'a Arc<ServiceRuntime> {
    &table.topologies[topology].services[name]
}

fn service_key(topology: &str, service: &str) -> ServiceKey {
    ServiceKey {
        topology: topology.to_string(),
        service: service.to_string(),
    }
}

fn upsert(table: &RoutingTable, topology: Topology) -> (RoutingTable, Vec<Effect>) {
    let (next, effects) = step(table, ConfigChange::UpsertTopology(topology));
    (next.expect("a change"), effects)
}

const A: &str = "http://127.0.0.1:9001/";
const B: &str = "http://127.0.0.1:9002/";
const C: &str = "http://127.0.0.1:9003/";

#[test]
fn a_new_topology_is_built_and_its_checks_started() {
    let empty = RoutingTable::default();
    let (table, effects) = upsert(
        &empty,
        topology("t", &[("s", &[A, B], HEALTH), ("plain", &[C], "")]),
    );
    assert_eq!(table.generation, 1);
    assert_eq!(service(&table, "t", "s").backends.len(), 2);
    assert_eq!(effects, vec![Effect::StartHealth(service_key("t", "s"))]);
    assert_eq!(
        service(&table, "t", "s").context,
        "/gateway/t",
        "X-Forwarded-Context"
    );
}

#[test]
fn the_same_topology_again_changes_nothing() {
    let (table, _) = upsert(
        &RoutingTable::default(),
        topology("t", &[("s", &[A], HEALTH)]),
    );
    let (next, effects) = step(
        &table,
        ConfigChange::UpsertTopology(topology("t", &[("s", &[A], HEALTH)])),
    );
    assert!(next.is_none());
    assert!(effects.is_empty(), "the running checks go on");
}

#[tokio::test(start_paused = true)]
async fn a_backend_whose_url_stays_keeps_its_state_object_and_health() {
    let (table, _) = upsert(
        &RoutingTable::default(),
        topology("t", &[("s", &[A, B], "")]),
    );
    let old = service(&table, "t", "s").clone();
    old.backends[1].state.set_checked_up(false, Instant::now());
    // A is replaced by C; B stays, as the second url still.
    let (next, _) = upsert(&table, topology("t", &[("s", &[C, B], "")]));
    let new = service(&next, "t", "s");
    assert!(Arc::ptr_eq(&new.backends[1], &old.backends[1]), "B kept");
    assert!(
        !new.backends[1].state.is_up(Instant::now()),
        "with its health"
    );
    assert!(!Arc::ptr_eq(&new.backends[0], &old.backends[0]));
    assert_eq!(new.backends[0].url.as_str(), C);
    assert!(Arc::ptr_eq(&new.stats, &old.stats), "counters carry over");
}

#[test]
fn a_backend_moved_to_the_backup_tier_is_a_new_backend() {
    let (table, _) = upsert(
        &RoutingTable::default(),
        topology("t", &[("s", &[A, B], "")]),
    );
    let moved = format!("backup_urls = [{B:?}]");
    let (next, _) = upsert(&table, topology("t", &[("s", &[A], &moved)]));
    let (old, new) = (service(&table, "t", "s"), service(&next, "t", "s"));
    assert!(Arc::ptr_eq(&new.backends[0], &old.backends[0]));
    assert!(new.backends[1].backup);
    assert!(!Arc::ptr_eq(&new.backends[1], &old.backends[1]));
}

#[test]
fn the_active_backend_stays_active_while_its_url_is_there() {
    let (table, _) = upsert(
        &RoutingTable::default(),
        topology("t", &[("s", &[A, B], "")]),
    );
    service(&table, "t", "s").promote(0, 1);
    // B moves to index 0: it stays the active one.
    let (next, _) = upsert(&table, topology("t", &[("s", &[B, C], "")]));
    assert_eq!(service(&next, "t", "s").active_index(), 0);
    assert_eq!(service(&next, "t", "s").backends[0].url.as_str(), B);
    // B moves back to index 1, still active; then it goes away and the
    // first url is active.
    let (last, _) = upsert(&next, topology("t", &[("s", &[A, B], "")]));
    assert_eq!(service(&last, "t", "s").active_index(), 1, "B is back at 1");
    let (gone, _) = upsert(&last, topology("t", &[("s", &[A, C], "")]));
    assert_eq!(service(&gone, "t", "s").active_index(), 0);
}

#[test]
fn an_unchanged_service_is_kept_whole_beside_a_changed_one() {
    let (table, _) = upsert(
        &RoutingTable::default(),
        topology("t", &[("same", &[A], HEALTH), ("edited", &[B], HEALTH)]),
    );
    let (next, effects) = upsert(
        &table,
        topology("t", &[("same", &[A], HEALTH), ("edited", &[C], HEALTH)]),
    );
    assert!(Arc::ptr_eq(
        service(&next, "t", "same"),
        service(&table, "t", "same")
    ));
    assert!(!Arc::ptr_eq(
        service(&next, "t", "edited"),
        service(&table, "t", "edited")
    ));
    assert_eq!(
        effects,
        vec![
            Effect::StopHealth(service_key("t", "edited")),
            Effect::StartHealth(service_key("t", "edited")),
        ]
    );
}

#[test]
fn removed_services_and_topologies_stop_their_checks() {
    let (table, _) = upsert(
        &RoutingTable::default(),
        topology(
            "t",
            &[("a", &[A], HEALTH), ("b", &[B], HEALTH), ("c", &[C], "")],
        ),
    );
    let (next, effects) = upsert(&table, topology("t", &[("a", &[A], HEALTH)]));
    assert_eq!(effects, vec![Effect::StopHealth(service_key("t", "b"))]);
    let (gone, effects) = step(&next, ConfigChange::RemoveTopology("t".to_string()));
    let gone = gone.expect("a change");
    assert!(gone.topologies.is_empty());
    assert_eq!(gone.generation, next.generation + 1);
    assert_eq!(effects, vec![Effect::StopHealth(service_key("t", "a"))]);
    let (again, effects) = step(&gone, ConfigChange::RemoveTopology("t".to_string()));
    assert!(again.is_none() && effects.is_empty());
}

#[test]
fn other_topologies_are_shared_not_copied() {
    let (table, _) = upsert(
        &RoutingTable::default(),
        topology("one", &[("s", &[A], "")]),
    );
    let (next, _) = upsert(&table, topology("two", &[("s", &[B], "")]));
    assert!(Arc::ptr_eq(
        &next.topologies["one"],
        &table.topologies["one"]
    ));
}

#[test]
fn admin_states_bump_the_generation_and_reach_new_backends() {
    let (table, _) = upsert(&RoutingTable::default(), topology("t", &[("s", &[A], "")]));
    let id_c = backend_id("t", "s", &url::Url::parse(C).unwrap());
    let states = HashMap::from([(id_c.clone(), AdminState::Draining)]);
    let (next, effects) = step(&table, ConfigChange::SetAdminStates(states.clone()));
    let next = next.expect("a change");
    assert_eq!(next.generation, table.generation + 1);
    assert_eq!(effects, vec![Effect::SyncAdminStates]);
    // The same map again: no new table, but the live states are synced.
    let (same, effects) = step(&next, ConfigChange::SetAdminStates(states));
    assert!(same.is_none());
    assert_eq!(effects, vec![Effect::SyncAdminStates]);
    // A backend built later starts in the state the store gave its id.
    let (later, _) = upsert(&next, topology("t", &[("s", &[A, C], "")]));
    let backends = &service(&later, "t", "s").backends;
    assert_eq!(backends[0].state.admin(), AdminState::Enabled);
    assert_eq!(backends[1].state.admin(), AdminState::Draining);
}

#[test]
fn credentials_bump_the_generation_when_they_change() {
    let table = RoutingTable::default();
    let values = HashMap::from([("alias".to_string(), "secret".to_string())]);
    let (next, effects) = step(&table, ConfigChange::SetCredentials(values.clone()));
    let next = next.expect("a change");
    assert_eq!(next.generation, 1);
    assert_eq!(
        next.credentials.get("alias").map(String::as_str),
        Some("secret")
    );
    assert!(effects.is_empty());
    let (same, _) = step(&next, ConfigChange::SetCredentials(values));
    assert!(same.is_none());
}

#[test]
fn refused_changes_name_what_is_wrong() {
    let key = key();
    let settings = Settings {
        cookie_key: &key,
        path_prefix: "gateway",
    };
    let mut too_many = topology("t", &[("s", &[A], "")]);
    too_many.services[0].urls = (0..=crate::ha::MAX_BACKENDS)
        .map(|i| url::Url::parse(&format!("http://127.0.0.1:{}/", 10_000 + i)).unwrap())
        .collect();
    let refused = apply(
        &RoutingTable::default(),
        ConfigChange::UpsertTopology(too_many),
        &settings,
    );
    assert!(matches!(refused, Err(ApplyError::TooManyBackends { .. })));
    let mut no_host = topology("t", &[("s", &[A], "")]);
    no_host.services[0].urls = vec![url::Url::parse("unix:/run/socket").unwrap()];
    let refused = apply(
        &RoutingTable::default(),
        ConfigChange::UpsertTopology(no_host),
        &settings,
    );
    assert!(matches!(refused, Err(ApplyError::BadUrl { .. })));
}

#[test]
fn a_service_being_built_is_a_draft_until_its_client_exists() {
    let key = key();
    let settings = Settings {
        cookie_key: &key,
        path_prefix: "gateway",
    };
    let change = ConfigChange::UpsertTopology(topology("t", &[("s", &[A], "")]));
    let outcome = apply(&RoutingTable::default(), change, &settings).unwrap();
    let built = outcome
        .table
        .and_then(|t| t.built)
        .expect("a built topology");
    assert!(matches!(built.services["s"], NextService::Build(_)));
}

fn gateway() -> Gateway {
    Gateway::new("m1", "/gateway/", ".".into(), key())
}

fn found(gateway: &Gateway, topology: &str, service: &str) -> Arc<ServiceRuntime> {
    match gateway.service(topology, service) {
        Lookup::Found(service) => service,
        _ => panic!("no {topology}/{service}"),
    }
}

#[tokio::test(start_paused = true)]
async fn the_gateway_starts_and_stops_checks_as_services_come_and_go() {
    let gateway = gateway();
    let first = topology("t", &[("a", &[A], HEALTH), ("b", &[B], "")]);
    assert_eq!(
        gateway
            .apply(ConfigChange::UpsertTopology(first.clone()))
            .unwrap(),
        1
    );
    assert_eq!(gateway.running_checkers(), vec![service_key("t", "a")]);
    assert_eq!(
        gateway.apply(ConfigChange::UpsertTopology(first)).unwrap(),
        1,
        "unchanged"
    );
    let second = topology("t", &[("b", &[B], HEALTH)]);
    assert_eq!(
        gateway.apply(ConfigChange::UpsertTopology(second)).unwrap(),
        2
    );
    assert_eq!(gateway.running_checkers(), vec![service_key("t", "b")]);
    assert_eq!(
        gateway
            .apply(ConfigChange::RemoveTopology("t".into()))
            .unwrap(),
        3
    );
    assert!(gateway.running_checkers().is_empty());
}

#[test]
fn outside_a_runtime_a_checked_service_still_applies_without_checks() {
    let gateway = gateway();
    let checked = topology("t", &[("a", &[A], HEALTH)]);
    assert_eq!(
        gateway
            .apply(ConfigChange::UpsertTopology(checked))
            .unwrap(),
        1
    );
    assert!(gateway.running_checkers().is_empty());
    assert_eq!(found(&gateway, "t", "a").backends.len(), 1);
}

#[test]
fn the_gateway_applies_admin_states_to_live_backends_and_keeps_credentials() {
    let gateway = gateway();
    gateway
        .apply(ConfigChange::UpsertTopology(topology(
            "t",
            &[("s", &[A, B], "")],
        )))
        .unwrap();
    let service = found(&gateway, "t", "s");
    let id_b = service.backends[1].id.clone();
    gateway.set_admin_states(HashMap::from([(id_b, AdminState::Disabled)]));
    assert_eq!(gateway.generation(), 2);
    assert_eq!(service.backends[0].state.admin(), AdminState::Enabled);
    assert_eq!(service.backends[1].state.admin(), AdminState::Disabled);
    // A state set directly (the admin API does) is brought back in line by
    // the next map, even an unchanged one.
    service.backends[0].state.set_admin(AdminState::Draining);
    let unchanged = gateway.routes().admin_states.as_ref().clone();
    gateway.set_admin_states(unchanged);
    assert_eq!(service.backends[0].state.admin(), AdminState::Enabled);
    assert_eq!(gateway.generation(), 2);
    gateway.set_credentials(HashMap::from([("a".to_string(), "v".to_string())]));
    assert_eq!(gateway.credential("a").as_deref(), Some("v"));
    assert_eq!(gateway.generation(), 3);
}

#[test]
fn a_service_whose_client_cannot_be_built_changes_nothing() {
    let gateway = gateway();
    gateway
        .apply(ConfigChange::UpsertTopology(topology(
            "t",
            &[("s", &[A], "")],
        )))
        .unwrap();
    let mut broken = topology("t", &[("s", &[B], "")]);
    broken.services[0].tls_ca = Some("no/such/ca.pem".to_string());
    let refused = gateway.apply(ConfigChange::UpsertTopology(broken));
    assert!(matches!(refused, Err(ApplyError::Client(_))), "{refused:?}");
    assert_eq!(gateway.generation(), 1);
    assert_eq!(found(&gateway, "t", "s").backends[0].url.as_str(), A);
}

/// Makes `gateway` serve topology `t` with one service `s` at `url`.
fn serve_one(gateway: &Gateway, url: &str) {
    let change = ConfigChange::UpsertTopology(topology("t", &[("s", &[url], "")]));
    gateway.apply(change).unwrap();
}

/// The thread's route cache never answers with what a change replaced or
/// removed, nor with another gateway's service of the same names.
#[test]
fn a_lookup_after_a_change_finds_the_changed_table() {
    let url = |gateway: &Gateway| found(gateway, "t", "s").backends[0].url.to_string();
    let gateway = gateway();
    serve_one(&gateway, A);
    let first = found(&gateway, "t", "s");
    // Cached now: the same runtime again.
    assert!(Arc::ptr_eq(&found(&gateway, "t", "s"), &first));
    serve_one(&gateway, B);
    assert_eq!(url(&gateway), B);
    let other = Gateway::new("m2", "/gateway/", ".".into(), key());
    serve_one(&other, C);
    assert_eq!(url(&other), C);
    assert_eq!(url(&gateway), B);
    let remove = || ConfigChange::RemoveTopology("t".into());
    gateway.apply(remove()).unwrap();
    assert!(matches!(gateway.service("t", "s"), Lookup::NoTopology));
    // An idle thread's entry does not keep a removed service alive.
    let weak = Arc::downgrade(&found(&other, "t", "s"));
    other.apply(remove()).unwrap();
    assert!(weak.upgrade().is_none());
}
