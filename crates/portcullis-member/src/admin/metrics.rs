//! `/metrics`: a prometheus-client collector that reads the data plane's own
//! atomics at scrape time. Nothing is registered per request, so the request
//! path pays only its relaxed increments.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use portcullis_cluster::members::now_ms;
use portcullis_cluster::MemberState;
use portcullis_proxy::routing::{Backend, RoutingTable, ServiceRuntime};
use portcullis_proxy::stats::{ServiceStats, LATENCY_BOUNDS};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use super::{views, AdminContext};

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long a scrape waits for the store's member states; without them the
/// scrape leaves `portcullis_member_draining` out rather than be slow.
const MEMBER_STATES_WAIT: Duration = Duration::from_millis(300);

pub async fn scrape(State(context): State<Arc<AdminContext>>) -> Response {
    let now = now_ms();
    let live_members: Vec<String> = context
        .members
        .load()
        .iter()
        .filter(|m| m.is_alive(now))
        .map(|m| m.id.clone())
        .collect();
    let member_states = tokio::time::timeout(MEMBER_STATES_WAIT, context.store.member_states())
        .await
        .ok()
        .and_then(Result::ok);
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Snapshot {
        table: context.gateway.routes(),
        store_connected: context.store_connected(),
        live_members,
        member_states,
    }));
    let mut text = String::new();
    match prometheus_client::encoding::text::encode(&mut text, &registry) {
        Ok(()) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, "metrics encoding failed").into_response(),
    }
}

/// What one scrape reports, taken when the scrape starts.
struct Snapshot {
    table: Arc<RoutingTable>,
    store_connected: bool,
    /// Ids of the live members, as of this member's last heartbeat.
    live_members: Vec<String>,
    /// Operators' member states, when the store answered in time.
    member_states: Option<BTreeMap<String, MemberState>>,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot")
            .field("generation", &self.table.generation)
            .finish()
    }
}

impl Snapshot {
    /// Every service with its topology name, sorted for a stable output.
    fn services(&self) -> Vec<(&str, &ServiceRuntime)> {
        let mut services: Vec<(&str, &ServiceRuntime)> = self
            .table
            .topologies
            .values()
            .flat_map(|t| t.services.values().map(move |s| (t.name.as_str(), &**s)))
            .collect();
        services.sort_by(|a, b| (a.0, &a.1.config.name).cmp(&(b.0, &b.1.config.name)));
        services
    }
}

/// Every backend with the names of its topology and service.
fn backends<'a>(
    services: &[(&'a str, &'a ServiceRuntime)],
) -> Vec<(&'a str, &'a str, &'a Backend)> {
    services
        .iter()
        .flat_map(|(topology, service)| {
            service
                .backends
                .iter()
                .map(move |b| (*topology, service.config.name.as_str(), &**b))
        })
        .collect()
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// One counter per service, read from its stats.
fn service_counter(
    encoder: &mut DescriptorEncoder,
    (name, help): (&str, &str),
    services: &[(&str, &ServiceRuntime)],
    read: impl Fn(&ServiceStats) -> u64,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (topology, service) in services {
        let labels = [("topology", *topology), ("service", &service.config.name)];
        ConstCounter::new(read(&service.stats)).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// The counters kept per service.
fn service_counters(
    encoder: &mut DescriptorEncoder,
    services: &[(&str, &ServiceRuntime)],
) -> Result<(), std::fmt::Error> {
    service_counter(
        encoder,
        (
            "portcullis_failovers",
            "Tries after the first one of a request.",
        ),
        services,
        ServiceStats::failovers,
    )?;
    service_counter(
        encoder,
        (
            "portcullis_retry_budget_exhausted",
            "Retries the rules allowed but the service's retry budget refused.",
        ),
        services,
        ServiceStats::retry_budget_exhausted,
    )?;
    service_counter(
        encoder,
        (
            "portcullis_replay_overflow",
            "Request bodies too large for replay_buffer_bytes to be sent again.",
        ),
        services,
        ServiceStats::replay_overflows,
    )?;
    service_counter(
        encoder,
        (
            "portcullis_rate_limited",
            "Requests [service.rate_limit] answered with 429.",
        ),
        services,
        ServiceStats::rate_limited,
    )?;
    Ok(())
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let services = self.services();
        let backends = backends(&services);
        let now = tokio::time::Instant::now();

        encode_requests(&mut encoder, &services, &backends)?;
        encode_durations(&mut encoder, &services)?;
        encode_backend_up(&mut encoder, &backends, now)?;
        encode_backend_state(&mut encoder, &backends, now)?;
        encode_in_flight(&mut encoder, &backends)?;
        encode_tries(&mut encoder, &backends, now)?;
        service_counters(&mut encoder, &services)?;
        encode_auth(&mut encoder, &services)?;

        gauge(
            &mut encoder,
            "portcullis_cluster_members",
            "Live members of the cluster, as of this member's last heartbeat.",
            i64::try_from(self.live_members.len()).unwrap_or(i64::MAX),
        )?;
        if let Some(states) = &self.member_states {
            encode_member_draining(&mut encoder, &self.live_members, states)?;
        }
        gauge(
            &mut encoder,
            "portcullis_store_connected",
            "1 when this member reaches the cluster store.",
            i64::from(self.store_connected),
        )?;
        gauge(
            &mut encoder,
            "portcullis_config_generation",
            "Generation of the config this member serves; it grows with every change applied.",
            i64::try_from(self.table.generation).unwrap_or(i64::MAX),
        )?;
        Ok(())
    }
}

/// `portcullis_auth_total{topology,service,method,result}`: results of
/// `[service.auth]`, for the results seen so far.
fn encode_auth(
    encoder: &mut DescriptorEncoder,
    services: &[(&str, &ServiceRuntime)],
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "portcullis_auth",
        "Authentications of [service.auth], by method (none: no method found credentials) and result (ok, missing, invalid, expired).",
        None,
        MetricType::Counter,
    )?;
    for (topology, service) in services {
        for (method, result, count) in service.stats.auth.snapshot() {
            let labels = [
                ("topology", *topology),
                ("service", service.config.name.as_str()),
                ("method", method),
                ("result", result.as_str()),
            ];
            ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn encode_requests(
    encoder: &mut DescriptorEncoder,
    services: &[(&str, &ServiceRuntime)],
    backends: &[(&str, &str, &Backend)],
) -> Result<(), std::fmt::Error> {
    let mut requests = encoder.encode_descriptor(
        "portcullis_requests",
        "Responses sent to clients, by the backend that answered (\"\" when the gateway answered itself) and status code.",
        None,
        MetricType::Counter,
    )?;
    for (topology, service) in services {
        let name = service.config.name.as_str();
        for (code, count) in service.stats.gateway_answers().snapshot() {
            let code = code.to_string();
            let labels = [
                ("topology", *topology),
                ("service", name),
                ("backend", ""),
                ("code", code.as_str()),
            ];
            ConstCounter::new(count).encode(requests.encode_family(&labels)?)?;
        }
    }
    for (topology, service, backend) in backends {
        for (code, count) in backend.state.answers().snapshot() {
            let code = code.to_string();
            let labels = [
                ("topology", *topology),
                ("service", *service),
                ("backend", backend.id.as_str()),
                ("code", code.as_str()),
            ];
            ConstCounter::new(count).encode(requests.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn encode_durations(
    encoder: &mut DescriptorEncoder,
    services: &[(&str, &ServiceRuntime)],
) -> Result<(), std::fmt::Error> {
    let mut durations = encoder.encode_descriptor(
        "portcullis_request_duration",
        "Time from a request's arrival to its response head.",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    for (topology, service) in services {
        let snapshot = service.stats.latency();
        let buckets: Vec<(f64, u64)> = LATENCY_BOUNDS
            .iter()
            .copied()
            // prometheus-client writes f64::MAX as the `+Inf` bucket.
            .chain(std::iter::once(f64::MAX))
            .zip(snapshot.counts.iter().copied())
            .collect();
        let labels = [("topology", *topology), ("service", &service.config.name)];
        durations
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(snapshot.sum_seconds, snapshot.count, &buckets, None)?;
    }
    Ok(())
}

fn encode_backend_up(
    encoder: &mut DescriptorEncoder,
    backends: &[(&str, &str, &Backend)],
    now: tokio::time::Instant,
) -> Result<(), std::fmt::Error> {
    let mut up = encoder.encode_descriptor(
        "portcullis_backend_up",
        "1 when the backend takes traffic: healthy, not ejected, not disabled (a draining one still takes its sticky clients; see portcullis_backend_state).",
        None,
        MetricType::Gauge,
    )?;
    for (topology, service, backend) in backends {
        let labels = [
            ("topology", *topology),
            ("service", *service),
            ("backend", backend.id.as_str()),
            ("url", backend.url.as_str()),
        ];
        let value = i64::from(views::can_serve(backend, now));
        ConstGauge::new(value).encode(up.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Every state `portcullis_backend_state` reports, in the words of the API.
const BACKEND_STATES: [&str; 5] = ["up", "down", "ejected", "draining", "disabled"];

/// A state set (one series per state, 1 for the current one), so a draining
/// or disabled backend is told apart from a failing one.
fn encode_backend_state(
    encoder: &mut DescriptorEncoder,
    backends: &[(&str, &str, &Backend)],
    now: tokio::time::Instant,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "portcullis_backend_state",
        "1 for the backend's current state, 0 for the others: what an operator set (draining, disabled) wins, then health (up, down, ejected).",
        None,
        MetricType::Gauge,
    )?;
    for (topology, service, backend) in backends {
        let current = views::state_word(backend, now);
        for state in BACKEND_STATES {
            let labels = [
                ("topology", *topology),
                ("service", *service),
                ("backend", backend.id.as_str()),
                ("state", state),
            ];
            ConstGauge::new(i64::from(state == current)).encode(family.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn encode_member_draining(
    encoder: &mut DescriptorEncoder,
    live_members: &[String],
    states: &BTreeMap<String, MemberState>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(
        "portcullis_member_draining",
        "1 for a live member an operator is draining (balancers send it no new clients).",
        None,
        MetricType::Gauge,
    )?;
    for id in live_members {
        let draining = states.get(id) == Some(&MemberState::Draining);
        ConstGauge::new(i64::from(draining))
            .encode(family.encode_family(&[("member", id.as_str())])?)?;
    }
    Ok(())
}

fn encode_in_flight(
    encoder: &mut DescriptorEncoder,
    backends: &[(&str, &str, &Backend)],
) -> Result<(), std::fmt::Error> {
    let mut in_flight = encoder.encode_descriptor(
        "portcullis_backend_in_flight",
        "Requests in flight to the backend from this member.",
        None,
        MetricType::Gauge,
    )?;
    for (topology, service, backend) in backends {
        let labels = [
            ("topology", *topology),
            ("service", *service),
            ("backend", backend.id.as_str()),
        ];
        let value = backend.state.in_flight();
        ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX))
            .encode(in_flight.encode_family(&labels)?)?;
    }
    Ok(())
}

fn encode_tries(
    encoder: &mut DescriptorEncoder,
    backends: &[(&str, &str, &Backend)],
    now: tokio::time::Instant,
) -> Result<(), std::fmt::Error> {
    let mut tries = encoder.encode_descriptor(
        "portcullis_backend_tries",
        "Tries sent to the backend, by how they ended.",
        None,
        MetricType::Counter,
    )?;
    for (topology, service, backend) in backends {
        let outcomes = backend.state.snapshot(now).outcomes;
        for (outcome, count) in [
            ("answered", outcomes.answered),
            ("connect_failed", outcomes.connect_failed),
            ("failed", outcomes.failed),
            ("timed_out", outcomes.timed_out),
        ] {
            let labels = [
                ("topology", *topology),
                ("service", *service),
                ("backend", backend.id.as_str()),
                ("outcome", outcome),
            ];
            ConstCounter::new(count).encode(tries.encode_family(&labels)?)?;
        }
    }
    Ok(())
}
