//! The balancer's wiring to the store: member records, judged together with
//! the balancer's own health checks of the members, become the plain targets
//! `portcullis_proxy::balancer` chooses from.
//!
//! Liveness rules (PRODUCT.md §10):
//! - while the store answers, a member is chosen when its record is fresh
//!   **and** the balancer's own check of it passes;
//! - while the store does not answer, the last member list is kept and only
//!   the own checks count (records are not aged out: nobody can renew them);
//! - when the store answers again, records are trusted only after they have
//!   had the time to be renewed ([`MISSED_HEARTBEATS`] heartbeats); until
//!   then the own checks alone decide, as during the outage;
//! - a record removed from a reachable store (a member leaving) is dropped at
//!   once.
//!
//! The check is a TCP connect to the member's `public_url` host and port: it
//! probes the very listener and address the balancer sends clients to, and
//! it works for every member, whereas the admin listener is optional and
//! often bound to loopback only. A member that accepts connections but does
//! not answer is caught by the `proxy` mode's timeouts instead (and its
//! idempotent requests go to another member).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_cluster::members::MISSED_HEARTBEATS;
use portcullis_cluster::{ClusterStore, MemberRecord, MemberState};
use portcullis_config::BalancerSection;
use portcullis_proxy::balancer::{members_tls, BalancerOptions, MemberTable, MemberTarget};
use tokio::time::Instant;

use crate::MemberError;

/// Consecutive failed checks after which a member counts as down.
const FAILURES_FOR_DOWN: u32 = 2;

/// How the balancer serves, from `[balancer]` (and the gateway's
/// `header_read_timeout`): its TLS files and members' CA are read here, so a
/// bad one stops the member from starting, naming its key.
pub fn balancer_options(
    config: &portcullis_config::NodeConfig,
    balancer: &BalancerSection,
) -> Result<BalancerOptions, MemberError> {
    let tls = match &balancer.tls {
        Some(files) => Some(
            portcullis_proxy::listener::server_config(&files.cert, &files.key)
                .map_err(MemberError::BalancerTls)?,
        ),
        None => None,
    };
    let roots = match &balancer.members_ca {
        Some(ca) => Some(
            portcullis_config::load_tls_ca(ca, &config.base_dir)
                .map_err(MemberError::BalancerMembersCa)?,
        ),
        None => None,
    };
    let members_tls = members_tls(roots).map_err(MemberError::BalancerMembersTls)?;
    Ok(BalancerOptions {
        tls,
        header_read_timeout: config.gateway.header_read_timeout,
        connect_timeout: balancer.connect_timeout,
        request_timeout: balancer.request_timeout,
        ..BalancerOptions::new(balancer.mode, members_tls)
    })
}

/// What the balancer needs of a member record, with the record's own
/// liveness deadline (the rule of `MemberRecord::is_alive`).
pub fn member_target(record: &MemberRecord) -> MemberTarget {
    MemberTarget {
        id: record.id.clone(),
        url: record.public_url.clone(),
        in_flight: record.in_flight,
        alive_until_ms: record_deadline(record),
        draining: false,
    }
}

/// [`member_target`] for each record (their own deadlines only, no checks).
pub fn member_targets(records: &[MemberRecord]) -> Vec<MemberTarget> {
    records.iter().map(member_target).collect()
}

/// One read of the store: the member records and the operators' member
/// states (`cluster drain`), which live under their own keys.
#[derive(Debug, Default)]
pub struct MemberListing {
    pub records: Vec<MemberRecord>,
    pub states: BTreeMap<String, MemberState>,
}

impl From<Vec<MemberRecord>> for MemberListing {
    fn from(records: Vec<MemberRecord>) -> MemberListing {
        MemberListing {
            records,
            states: BTreeMap::new(),
        }
    }
}

fn record_deadline(record: &MemberRecord) -> u64 {
    let allowance = record.heartbeat_ms.max(1) * u64::from(MISSED_HEARTBEATS);
    record.updated_at_ms.saturating_add(allowance)
}

/// One member's own health check results: down after
/// [`FAILURES_FOR_DOWN`] failures in a row, up again after one success.
/// A member not checked yet counts as up (its record vouches for it).
#[derive(Debug, Default, Clone, Copy)]
struct CheckState {
    failures: u32,
}

impl CheckState {
    fn observe(&mut self, passed: bool) {
        self.failures = if passed { 0 } else { self.failures + 1 };
    }

    fn is_up(self) -> bool {
        self.failures < FAILURES_FOR_DOWN
    }
}

/// Whether the member records can be believed right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Store {
    /// Never read yet, or not answering: only the own checks count.
    Away,
    /// Answering; records are trusted from `Instant` on.
    Answering(Instant),
}

struct ViewState {
    records: Vec<MemberRecord>,
    states: BTreeMap<String, MemberState>,
    store: Store,
    read_once: bool,
    checks: HashMap<String, CheckState>,
}

/// The balancer's view of the members: the last records read and its own
/// checks of them, published to the [`MemberTable`] on every change.
pub struct BalancerView {
    table: Arc<MemberTable>,
    /// How long records need after the store returns to be renewed.
    renewal: Duration,
    state: Mutex<ViewState>,
}

impl BalancerView {
    pub fn new(table: Arc<MemberTable>, heartbeat: Duration) -> BalancerView {
        BalancerView {
            table,
            renewal: heartbeat * MISSED_HEARTBEATS,
            state: Mutex::new(ViewState {
                records: Vec::new(),
                states: BTreeMap::new(),
                store: Store::Away,
                read_once: false,
                checks: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ViewState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The outcome of one read of the member list.
    pub fn store_read<L: Into<MemberListing>, E: std::fmt::Display>(&self, read: Result<L, E>) {
        let now = Instant::now();
        let mut state = self.lock();
        match read {
            Ok(listing) => {
                let MemberListing { records, states } = listing.into();
                if state.store == Store::Away {
                    // The first read is trusted at once; after an outage the
                    // members need a few heartbeats to renew their records.
                    let trusted_from = if state.read_once {
                        tracing::info!("balancer reads the member list again");
                        now + self.renewal
                    } else {
                        now
                    };
                    state.store = Store::Answering(trusted_from);
                }
                state.read_once = true;
                state
                    .checks
                    .retain(|id, _| records.iter().any(|r| &r.id == id));
                state.records = records;
                state.states = states;
            }
            Err(err) => {
                if matches!(state.store, Store::Answering(_)) {
                    tracing::warn!(error = %err, "balancer cannot read the member list; keeping the last one, judged by its own checks");
                }
                state.store = Store::Away;
            }
        }
        self.publish(&state, now);
    }

    /// The outcomes of one round of checks, by member id.
    pub fn checked(&self, results: &[(String, bool)]) {
        let mut state = self.lock();
        for (id, passed) in results {
            let check = state.checks.entry(id.clone()).or_default();
            let was_up = check.is_up();
            check.observe(*passed);
            if was_up != check.is_up() {
                tracing::warn!(member = %id, up = check.is_up(), "balancer's own check changed a member's state");
            }
        }
        self.publish(&state, Instant::now());
    }

    /// The members the checks must reach: `(id, public_url)`.
    pub fn check_targets(&self) -> Vec<(String, String)> {
        let state = self.lock();
        state
            .records
            .iter()
            .map(|r| (r.id.clone(), r.public_url.clone()))
            .collect()
    }

    fn publish(&self, state: &ViewState, now: Instant) {
        self.table.replace(targets(state, now));
    }

    #[cfg(test)]
    fn targets(&self, now: Instant) -> Vec<MemberTarget> {
        targets(&self.lock(), now)
    }
}

/// The liveness rules of the module comment, as deadlines: 0 for a member
/// its own checks found down, no deadline while records cannot be trusted.
fn targets(state: &ViewState, now: Instant) -> Vec<MemberTarget> {
    let records_trusted = matches!(state.store, Store::Answering(from) if now >= from);
    state
        .records
        .iter()
        .map(|record| {
            let mut target = member_target(record);
            target.draining = state.states.get(&record.id) == Some(&MemberState::Draining);
            let up = state.checks.get(&record.id).is_none_or(|c| c.is_up());
            target.alive_until_ms = match (up, records_trusted) {
                (false, _) => 0,
                (true, true) => target.alive_until_ms,
                (true, false) => u64::MAX,
            };
            target
        })
        .collect()
}

/// Keeps the member list current: re-read four times per heartbeat, so a
/// leaving member (its record removed) stops being chosen within that time.
/// A read that takes longer than a heartbeat counts as a failed one.
pub async fn read_members<R, Fut, L, E>(view: Arc<BalancerView>, heartbeat: Duration, read: R)
where
    R: Fn() -> Fut,
    Fut: Future<Output = Result<L, E>>,
    L: Into<MemberListing>,
    E: std::fmt::Display,
{
    let mut ticker = tokio::time::interval(heartbeat / 4);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        view.store_read(read_once(&read, heartbeat).await);
    }
}

/// One read of the member list; one that takes longer than a heartbeat
/// failed (a black-holed store must not stall the balancer's view).
pub async fn read_once<R, Fut, L, E>(read: &R, heartbeat: Duration) -> Result<MemberListing, String>
where
    R: Fn() -> Fut,
    Fut: Future<Output = Result<L, E>>,
    L: Into<MemberListing>,
    E: std::fmt::Display,
{
    match tokio::time::timeout(heartbeat, read()).await {
        Ok(read) => read.map(Into::into).map_err(|err| err.to_string()),
        Err(_) => Err("the store did not answer within a heartbeat".to_string()),
    }
}

/// One read of the store's member list and member states.
pub type MemberRead = std::pin::Pin<
    Box<dyn Future<Output = Result<MemberListing, portcullis_cluster::StoreError>> + Send>,
>;

/// The store's member list, for [`read_members`].
pub fn store_reader(store: ClusterStore) -> impl Fn() -> MemberRead {
    move || {
        let store = store.clone();
        Box::pin(async move {
            Ok(MemberListing {
                records: store.members().await?,
                states: store.member_states().await?,
            })
        })
    }
}

/// Checks every known member once per heartbeat, all at once, each within
/// `timeout`; a check that does not finish in time failed.
pub async fn check_members<P, Fut>(
    view: Arc<BalancerView>,
    heartbeat: Duration,
    timeout: Duration,
    probe: P,
) where
    P: Fn(String) -> Fut,
    Fut: Future<Output = bool> + Send + 'static,
{
    let mut ticker = tokio::time::interval(heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let mut round = tokio::task::JoinSet::new();
        for (id, url) in view.check_targets() {
            let check = tokio::time::timeout(timeout, probe(url));
            round.spawn(async move { (id, check.await.unwrap_or(false)) });
        }
        let results: Vec<(String, bool)> = round.join_all().await;
        view.checked(&results);
    }
}

/// How long one check may take: half a heartbeat (so a round ends before the
/// next), at least 50 ms and at most 1 s.
pub fn check_timeout(heartbeat: Duration) -> Duration {
    (heartbeat / 2).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

/// The check itself: a TCP connection to the public URL's host and port.
pub async fn tcp_probe(public_url: String) -> bool {
    let Some(address) = host_and_port(&public_url) else {
        return false;
    };
    tokio::net::TcpStream::connect(address).await.is_ok()
}

/// `host:port` of a member's public URL (the scheme's port when it has none).
fn host_and_port(url: &str) -> Option<String> {
    let uri: axum::http::Uri = url.parse().ok()?;
    let host = uri.host()?;
    let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
        Some("https") => 443,
        _ => 80,
    });
    Some(format!("{host}:{port}"))
}

#[cfg(test)]
#[path = "balancer_tests.rs"]
mod tests;
