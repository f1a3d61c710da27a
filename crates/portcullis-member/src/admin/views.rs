//! JSON views of the live data plane, shared by the API and the dashboard.

use std::time::UNIX_EPOCH;

use portcullis_config::{AdminState, LoadBalancing};
use portcullis_proxy::ha::{Clients, Health};
use portcullis_proxy::routing::{Backend, RoutingTable, ServiceRuntime};
use portcullis_proxy::stats::LATENCY_BOUNDS;
use serde_json::{json, Value};
use tokio::time::Instant;

/// The one word an operator needs: what an operator set wins, then health.
pub fn state_word(backend: &Backend, now: Instant) -> &'static str {
    match backend.state.admin() {
        AdminState::Disabled => "disabled",
        AdminState::Draining => "draining",
        AdminState::Enabled => health_word(backend.state.health(now)),
    }
}

fn health_word(health: Health) -> &'static str {
    match health {
        Health::Up => "up",
        Health::Down => "down",
        Health::Ejected => "ejected",
    }
}

/// Whether a backend takes traffic for new clients or stickies at all.
pub fn can_serve(backend: &Backend, now: Instant) -> bool {
    backend.state.can_serve(now, Clients::Sticky)
}

fn millis_since_epoch(at: std::time::SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub fn backend_detail(backend: &Backend, now: Instant) -> Value {
    let state = &backend.state;
    let mut view = backend_summary(backend, now);
    view["admin_state"] = json!(state.admin().as_str());
    view["health"] = json!(health_word(state.health(now)));
    view["last_check"] = json!(state.last_check().map(|check| json!({
        "ok": check.ok,
        "detail": check.detail,
        "at_ms": millis_since_epoch(check.at),
    })));
    view
}

fn backend_summary(backend: &Backend, now: Instant) -> Value {
    let snapshot = backend.state.snapshot(now);
    json!({
        "id": backend.id,
        "url": backend.url.as_str(),
        "backup": backend.backup,
        "state": state_word(backend, now),
        "in_flight": snapshot.in_flight,
        "requests": snapshot.requests,
        "failures": snapshot.failures,
    })
}

fn balancing_word(mode: LoadBalancing) -> &'static str {
    match mode {
        LoadBalancing::None => "none",
        LoadBalancing::RoundRobin => "round-robin",
        LoadBalancing::LeastRequests => "least-requests",
        LoadBalancing::Random => "random",
    }
}

fn service_stats(service: &ServiceRuntime, now: Instant) -> Value {
    let (requests, errors) = service.answered_totals();
    let latency = service.stats.latency();
    json!({
        "name": service.config.name,
        "load_balancing": balancing_word(service.config.ha.load_balancing),
        "requests": requests,
        "errors": errors,
        "failovers": service.stats.failovers(),
        "latency": {
            "bounds": LATENCY_BOUNDS,
            "counts": latency.counts,
            "count": latency.count,
            "sum_seconds": latency.sum_seconds,
        },
        "backends": service.backends.iter().map(|b| backend_summary(b, now)).collect::<Vec<_>>(),
        "auth": auth_view(service),
    })
}

/// The service's gateway policies and the refusals they made so far (the
/// dashboard turns the counts into rates): 401 from `[service.auth]`, 403
/// from `[service.authorize]`, 429 from `[service.rate_limit]` once that
/// answers (its answers are counted with the gateway's own).
fn auth_view(service: &ServiceRuntime) -> Value {
    let methods: Vec<&str> = service
        .config
        .auth
        .iter()
        .flat_map(|a| a.methods.iter().map(|m| m.as_str()))
        .collect();
    let answers = service.stats.gateway_answers().snapshot();
    let count = |code: u16| {
        answers
            .iter()
            .find(|(c, _)| *c == code)
            .map_or(0, |(_, n)| *n)
    };
    json!({
        "methods": methods,
        "authorize": service.config.authorize.is_some(),
        "unauthorized": count(401),
        "forbidden": count(403),
        "rate_limited": count(429),
    })
}

/// Topologies sorted by name, services in config order.
pub fn stats(table: &RoutingTable) -> Vec<Value> {
    let now = Instant::now();
    let mut names: Vec<&String> = table.topologies.keys().collect();
    names.sort();
    names
        .into_iter()
        .filter_map(|name| table.topologies.get(name))
        .map(|topology| {
            let services: Vec<Value> = topology
                .source
                .services
                .iter()
                .filter_map(|s| topology.services.get(&s.name))
                .map(|s| service_stats(s, now))
                .collect();
            json!({ "name": topology.name, "services": services })
        })
        .collect()
}

/// Services of a topology in config order, as this member runs them.
pub fn live_services(table: &RoutingTable, topology: &str) -> Option<Vec<String>> {
    table
        .topologies
        .get(topology)
        .map(|t| t.source.services.iter().map(|s| s.name.clone()).collect())
}

/// Services where a new client finds no backend that is up and enabled
/// (draining ones keep only their sticky clients).
pub fn stranded_services(table: &RoutingTable) -> usize {
    table.stranded_services(Instant::now())
}

/// Requests this member answered and, of those, 5xx answers, over every
/// service it runs: the cumulative figures its record carries.
pub fn answered_totals(table: &RoutingTable) -> (u64, u64) {
    table
        .topologies
        .values()
        .flat_map(|t| t.services.values())
        .map(|s| s.answered_totals())
        .fold((0, 0), |(requests, errors), (r, e)| {
            (requests + r, errors + e)
        })
}
