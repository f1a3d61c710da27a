//! The peer exchange behind cluster-wide rate limits (PRODUCT.md §11,
//! docs/policies.md). Every [`INTERVAL`] each member takes the requests
//! its limiters saw per key, posts them to every live peer's admin
//! listener (`POST /api/v1/rate-limits/exchange`, with the cluster's admin
//! token), and sets each key's share from its own and the peers' latest
//! counts. Peers whose counts have not arrived for two intervals are
//! unreachable: their even share is kept back, so a member cut off from
//! all the others enforces limit ÷ live members, never more.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::http::{header, Method, Request};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use portcullis_cluster::MemberRecord;
use portcullis_policy::rate_limit::ClusterView;
use portcullis_proxy::Gateway;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::secrets::AdminToken;

/// How often members exchange their counts: four times within the second
/// PRODUCT.md allows.
pub const INTERVAL: Duration = Duration::from_millis(250);

/// Counts older than this are from a peer that cannot be reached.
const STALE_AFTER: Duration = Duration::from_millis(500);

/// The admin API path the counts are posted to.
pub const EXCHANGE_PATH: &str = "/api/v1/rate-limits/exchange";

/// Keys reported per service and interval, the busiest first: bounds the
/// message (well under the admin API's 2 MB body limit). A key left out
/// counts as no demand at the peers for that interval.
const MAX_REPORTED_KEYS: usize = 20_000;

/// What one member saw in one interval.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemandReport {
    pub member: String,
    pub services: Vec<ServiceDemand>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ServiceDemand {
    pub topology: String,
    pub service: String,
    /// Requests seen per key value.
    pub demand: Vec<(String, u64)>,
}

/// The latest report of each peer, with when it arrived.
#[derive(Default)]
pub struct PeerReports {
    latest: Mutex<HashMap<String, (Instant, DemandReport)>>,
}

/// Peer demand summed per (topology, service), then per key.
type Summed = HashMap<(String, String), HashMap<String, u64>>;

impl PeerReports {
    pub fn store(&self, report: DemandReport) {
        if let Ok(mut latest) = self.latest.lock() {
            latest.insert(report.member.clone(), (Instant::now(), report));
        }
    }

    /// How many of `peers` reported recently, and their summed demand.
    fn fresh(&self, peers: &HashSet<&str>) -> (usize, Summed) {
        let now = Instant::now();
        let mut summed = Summed::new();
        let Ok(mut latest) = self.latest.lock() else {
            return (0, summed);
        };
        latest.retain(|_, (at, _)| now.duration_since(*at) <= STALE_AFTER);
        let mut reachable = 0;
        for (member, (_, report)) in latest.iter() {
            if !peers.contains(member.as_str()) {
                continue;
            }
            reachable += 1;
            for service in &report.services {
                let keys = summed
                    .entry((service.topology.clone(), service.service.clone()))
                    .or_default();
                for (key, count) in &service.demand {
                    *keys.entry(key.clone()).or_default() += count;
                }
            }
        }
        (reachable, summed)
    }
}

/// The live peers (id and admin URL) and the live member count, this
/// member included, from the member list of the last heartbeat. Liveness
/// is judged as of the newest record in the list, not the clock: when the
/// store cannot be read the list stops changing, and the member keeps the
/// count it last knew instead of seeing every peer age out and taking the
/// whole limit for itself.
fn live_peers(members: &[MemberRecord], own_id: &str) -> (Vec<(String, String)>, usize) {
    let as_of_ms = members
        .iter()
        .map(|m| m.updated_at_ms)
        .max()
        .unwrap_or_else(portcullis_cluster::members::now_ms);
    let alive: Vec<&MemberRecord> = members.iter().filter(|m| m.is_alive(as_of_ms)).collect();
    let live = alive.iter().filter(|m| m.id != own_id).count() + 1;
    let peers = alive
        .into_iter()
        .filter(|m| m.id != own_id)
        .filter_map(|m| Some((m.id.clone(), m.admin_url.clone()?)))
        .collect();
    (peers, live)
}

/// Runs the exchange until the task is aborted with the member.
pub async fn exchange(
    gateway: Arc<Gateway>,
    members: Arc<ArcSwap<Vec<MemberRecord>>>,
    own_id: String,
    token: AdminToken,
    reports: Arc<PeerReports>,
) {
    let client: Client<HttpConnector, Body> = Client::builder(TokioExecutor::new()).build_http();
    let mut ticker = tokio::time::interval(INTERVAL);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let table = gateway.routes();
        let limited: Vec<_> = table
            .services()
            .filter(|(_, service)| service.rate_limit.is_some())
            .collect();
        if limited.is_empty() {
            continue;
        }
        let (peers, live_members) = live_peers(&members.load(), &own_id);
        let own: Vec<ServiceDemand> = limited
            .iter()
            .filter_map(|(topology, service)| {
                Some(ServiceDemand {
                    topology: topology.name.clone(),
                    service: service.config.name.clone(),
                    demand: service.rate_limit.as_ref()?.take_demand(),
                })
            })
            .collect();
        let report = DemandReport {
            member: own_id.clone(),
            services: own.iter().cloned().map(busiest).collect(),
        };
        send(&client, &peers, &report, &token);
        let peer_ids: HashSet<&str> = peers.iter().map(|(id, _)| id.as_str()).collect();
        let (reachable_peers, summed) = reports.fresh(&peer_ids);
        let view = ClusterView {
            live_members,
            reachable_peers,
        };
        let none = HashMap::new();
        for ((topology, service), demand) in limited.iter().zip(&own) {
            let peers = summed
                .get(&(topology.name.clone(), service.config.name.clone()))
                .unwrap_or(&none);
            if let Some(limiter) = &service.rate_limit {
                limiter.apply_shares(&demand.demand, peers, view);
            }
        }
    }
}

/// The report with at most [`MAX_REPORTED_KEYS`] keys, the busiest.
fn busiest(mut service: ServiceDemand) -> ServiceDemand {
    if service.demand.len() > MAX_REPORTED_KEYS {
        service
            .demand
            .sort_unstable_by_key(|(_, count)| std::cmp::Reverse(*count));
        service.demand.truncate(MAX_REPORTED_KEYS);
    }
    service
}

/// Posts the report to every peer at once, without waiting: a slow or
/// unreachable peer shows as stale counts at the receiving end, and one
/// post must not hold up the next interval. Each post is cut off after an
/// interval.
fn send(
    client: &Client<HttpConnector, Body>,
    peers: &[(String, String)],
    report: &DemandReport,
    token: &AdminToken,
) {
    let Ok(body) = serde_json::to_vec(report) else {
        return;
    };
    let bearer = format!("Bearer {}", token.load().as_str());
    for (id, admin_url) in peers {
        // The exchange client speaks plain HTTP; a peer whose admin
        // listener is TLS-only is unreachable to it (its share is kept back).
        if !admin_url.starts_with("http://") {
            continue;
        }
        let uri = format!("{}{EXCHANGE_PATH}", admin_url.trim_end_matches('/'));
        let request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, bearer.as_str())
            .body(Body::from(body.clone()));
        let Ok(request) = request else {
            continue;
        };
        let posted = tokio::time::timeout(INTERVAL, client.request(request));
        let id = id.clone();
        tokio::spawn(async move {
            match posted.await {
                Ok(Ok(response)) if response.status().is_success() => {}
                Ok(Ok(response)) => {
                    tracing::debug!(peer = %id, status = %response.status(), "rate-limit exchange refused")
                }
                Ok(Err(err)) => {
                    tracing::debug!(peer = %id, error = %err, "rate-limit exchange failed")
                }
                Err(_) => tracing::debug!(peer = %id, "rate-limit exchange timed out"),
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(member: &str, key: &str, count: u64) -> DemandReport {
        DemandReport {
            member: member.into(),
            services: vec![ServiceDemand {
                topology: "t".into(),
                service: "s".into(),
                demand: vec![(key.into(), count)],
            }],
        }
    }

    #[tokio::test(start_paused = true)]
    async fn only_recent_reports_of_live_peers_count() {
        let reports = PeerReports::default();
        reports.store(report("b", "k", 3));
        reports.store(report("c", "k", 4));
        reports.store(report("gone", "k", 100));
        let peers: HashSet<&str> = ["b", "c"].into();
        let (reachable, summed) = reports.fresh(&peers);
        assert_eq!(reachable, 2);
        assert_eq!(summed[&("t".into(), "s".into())]["k"], 7);
        tokio::time::advance(Duration::from_millis(300)).await;
        reports.store(report("b", "k", 5));
        tokio::time::advance(Duration::from_millis(300)).await;
        let (reachable, summed) = reports.fresh(&peers);
        assert_eq!(reachable, 1, "c is silent for two intervals");
        assert_eq!(summed[&("t".into(), "s".into())]["k"], 5);
    }

    fn record(id: &str, admin_url: Option<&str>, updated_at_ms: u64) -> MemberRecord {
        MemberRecord {
            id: id.into(),
            role: portcullis_cluster::RoleName::Manager,
            public_url: "http://127.0.0.1:1".into(),
            admin_url: admin_url.map(str::to_string),
            version: "test".into(),
            generation: 0,
            config_hash: String::new(),
            in_flight: 0,
            requests: 0,
            errors: 0,
            heartbeat_ms: 200,
            updated_at_ms,
        }
    }

    #[test]
    fn live_members_are_counted_as_of_the_newest_record() {
        // A list read long ago (the store away since): still three live.
        let members = [
            record("a", Some("http://10.0.0.1:9443"), 1_000),
            record("b", Some("http://10.0.0.2:9443"), 1_100),
            record("c", None, 1_200),
            record("dead", Some("http://10.0.0.4:9443"), 100),
        ];
        let (peers, live) = live_peers(&members, "a");
        assert_eq!(live, 3, "a, b and c; dead missed three heartbeats");
        assert_eq!(
            peers,
            [("b".to_string(), "http://10.0.0.2:9443".to_string())]
        );
        let (_, alone) = live_peers(&[], "a");
        assert_eq!(alone, 1);
    }

    #[test]
    fn a_report_keeps_the_busiest_keys() {
        let demand = (0..MAX_REPORTED_KEYS as u64 + 5)
            .map(|i| (i.to_string(), i))
            .collect();
        let kept = busiest(ServiceDemand {
            topology: "t".into(),
            service: "s".into(),
            demand,
        });
        assert_eq!(kept.demand.len(), MAX_REPORTED_KEYS);
        assert!(kept.demand.iter().all(|(_, n)| *n >= 5));
    }
}
