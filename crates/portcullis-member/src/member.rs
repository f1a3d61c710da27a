//! Wiring of one member: config store -> validated topologies -> data plane, and
//! the listener with its graceful shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use arc_swap::ArcSwap;
use portcullis_cluster::{ClusterStore, MemberRecord, StoreError, TopologyEvent};
use portcullis_config::NodeConfig;
use portcullis_proxy::{ConfigChange, Gateway, ListenerOptions};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

/// A killed member's record stays listed as gone (in `cluster status` and
/// the dashboard) for this long, then any member removes it.
const FORGET_MEMBERS_AFTER: Duration = Duration::from_secs(15 * 60);

/// How long a starting member waits for its store before giving up.
const STARTUP_STORE_WAIT: Duration = Duration::from_secs(30);

/// A running member.
pub struct Member {
    pub gateway: Arc<Gateway>,
    pub gateway_addr: SocketAddr,
    pub balancer_addr: Option<SocketAddr>,
    /// Where the admin API listens, when `[admin]` is set.
    pub admin_addr: Option<SocketAddr>,
    admin_task: Option<JoinHandle<()>>,
    admin_token: Zeroizing<String>,
    balancer_tasks: Vec<JoinHandle<()>>,
    store: ClusterStore,
    /// Whether the store was reachable at the last attempt.
    pub store_connected: Arc<std::sync::atomic::AtomicBool>,
    shutdown: watch::Sender<bool>,
    serve_task: JoinHandle<()>,
    sync_task: JoinHandle<()>,
    heartbeat_task: JoinHandle<()>,
}

impl Member {
    /// Loads the store, binds the gateway listener and starts serving.
    pub async fn start(config: NodeConfig) -> anyhow::Result<Member> {
        let store = ClusterStore::open(&config.cluster.store, &config.cluster.name);
        let sealer = crate::secrets::sealer(&config)?;
        let (states, initial, sealed) = initial_read(&store)
            .await
            .with_context(|| format!("cluster.store: cannot read {}", store.describe()))?;
        let cookie_key = crate::secrets::cookie_key(&store, sealer.as_ref()).await?;
        let admin_token = crate::secrets::admin_token(&store, sealer.as_ref(), &cookie_key).await?;
        let gateway = Arc::new(Gateway::new(
            &config.node.id,
            &config.gateway.path,
            config.base_dir.clone(),
            portcullis_proxy::CookieKey::new(cookie_key),
        ));
        gateway.set_admin_states(states.into_iter().collect());
        gateway.set_edge(edge_settings(&config));
        gateway.set_credentials(crate::secrets::open_all(sealer.as_ref(), &sealed));
        // Applied before listening so the first request already sees the config.
        for (name, text) in initial {
            apply_change(&gateway, TopologyChange::Upsert { name, text }).await;
        }
        let store_connected = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let mut watcher = store.watch_topologies();
        let sync_gateway = gateway.clone();
        let sync_connected = store_connected.clone();
        let sync_sealer = sealer.clone();
        // One event at a time, in order: a topology change is applied (off
        // the async threads) before the next event is looked at.
        let sync_task = tokio::spawn(async move {
            while let Some(event) = watcher.events.recv().await {
                match event {
                    TopologyEvent::Changed { name, text } => {
                        apply_change(&sync_gateway, TopologyChange::Upsert { name, text }).await
                    }
                    TopologyEvent::AdminStates(states) => {
                        sync_gateway.set_admin_states(states.into_iter().collect())
                    }
                    TopologyEvent::Aliases(sealed) => sync_gateway
                        .set_credentials(crate::secrets::open_all(sync_sealer.as_ref(), &sealed)),
                    TopologyEvent::Connection(up) => {
                        sync_connected.store(up, std::sync::atomic::Ordering::Relaxed)
                    }
                    TopologyEvent::Removed { name } => {
                        apply_change(&sync_gateway, TopologyChange::Remove { name }).await
                    }
                }
            }
        });

        let tls = match &config.gateway.tls {
            Some(files) => Some(
                portcullis_proxy::listener::server_config(&files.cert, &files.key)
                    .context("gateway.tls")?,
            ),
            None => None,
        };
        let listener = TcpListener::bind(config.gateway.listen)
            .await
            .with_context(|| {
                format!("gateway.listen: cannot listen on {}", config.gateway.listen)
            })?;
        let gateway_addr = listener.local_addr()?;
        let options = ListenerOptions {
            tls,
            max_connections: config.gateway.max_connections,
            header_read_timeout: config.gateway.header_read_timeout,
            shutdown_grace: config.gateway.shutdown_grace,
        };
        // The first record is written before serving, so balancers and
        // `cluster status` know the member as soon as it answers.
        let admin_listener = match &config.admin {
            Some(admin) => Some(crate::admin::bind(admin.listen).await?),
            None => None,
        };
        let advertised = Advertised {
            public_url: advertised_url(&config, gateway_addr),
            admin_url: admin_listener
                .as_ref()
                .map(|(_, addr)| format!("http://{addr}")),
        };
        if let Err(err) = store
            .put_member(&member_record(&config, &gateway, &advertised))
            .await
        {
            tracing::error!(error = %err, "cannot write this member's record; retrying every heartbeat");
        }
        let members = Arc::new(ArcSwap::from_pointee(
            store.members().await.unwrap_or_default(),
        ));
        let heartbeat_task = tokio::spawn(heartbeat(
            store.clone(),
            gateway.clone(),
            config.clone(),
            advertised,
            members.clone(),
        ));
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut admin_addr = None;
        let mut admin_task = None;
        if let Some((listener, addr)) = admin_listener {
            let context = Arc::new(crate::admin::AdminContext {
                gateway: gateway.clone(),
                store: store.clone(),
                cluster_name: config.cluster.name.clone(),
                role: config.cluster.role,
                sealer,
                token: admin_token.clone(),
                store_connected: store_connected.clone(),
                members,
            });
            admin_task = Some(tokio::spawn(crate::admin::serve(
                listener,
                context,
                shutdown_rx.clone(),
            )));
            admin_addr = Some(addr);
            tracing::info!(listen = %addr, "admin API, /metrics and dashboard listening");
        }
        let mut balancer_addr = None;
        let mut balancer_tasks = Vec::new();
        if let Some(balancer) = &config.balancer {
            let listener = TcpListener::bind(balancer.listen).await.with_context(|| {
                format!("balancer.listen: cannot listen on {}", balancer.listen)
            })?;
            balancer_addr = Some(listener.local_addr()?);
            let table = Arc::new(crate::balancer::MemberTable::new(
                portcullis_proxy::CookieKey::new(cookie_key),
            ));
            table.replace(store.members().await.unwrap_or_default());
            balancer_tasks.push(tokio::spawn(crate::balancer::refresh_members(
                store.clone(),
                table.clone(),
                config.cluster.heartbeat,
            )));
            balancer_tasks.push(tokio::spawn(crate::balancer::serve(
                listener,
                table,
                balancer.mode,
                config.gateway.header_read_timeout,
                shutdown_rx.clone(),
            )));
            tracing::info!(listen = ?balancer_addr, mode = ?balancer.mode, "balancer listening");
        }
        let serve_task = tokio::spawn(portcullis_proxy::serve(
            listener,
            gateway.clone(),
            options,
            shutdown_rx,
        ));
        tracing::info!(member = %config.node.id, listen = %gateway_addr, "gateway listening");
        Ok(Member {
            gateway,
            gateway_addr,
            balancer_addr,
            admin_addr,
            admin_task,
            admin_token,
            balancer_tasks,
            store,
            store_connected,
            shutdown,
            serve_task,
            sync_task,
            heartbeat_task,
        })
    }

    /// Leaves the cluster first (so balancers stop sending clients here), then
    /// stops accepting and finishes in-flight requests within the grace period.
    pub async fn stop(self) {
        self.heartbeat_task.abort();
        let _ = self.heartbeat_task.await;
        let leave = tokio::time::timeout(
            Duration::from_secs(2),
            self.store.remove_member(&self.gateway.member_id),
        );
        if let Ok(Err(err)) = leave.await {
            tracing::warn!(error = %err, "could not remove this member's record");
        }
        self.sync_task.abort();
        for task in &self.balancer_tasks {
            task.abort();
        }
        let _ = self.shutdown.send(true);
        let _ = self.serve_task.await;
        if let Some(task) = self.admin_task {
            let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
        }
    }

    /// The token the admin API expects.
    pub fn admin_token(&self) -> &str {
        self.admin_token.as_str()
    }
}

/// Admin states, topologies and sealed aliases, as first read.
type InitialState = (
    std::collections::BTreeMap<String, portcullis_config::AdminState>,
    std::collections::BTreeMap<String, String>,
    std::collections::BTreeMap<String, String>,
);

/// Reads what a member needs before it listens, retrying with backoff while the
/// store is unreachable (up to `STARTUP_STORE_WAIT`).
async fn initial_read(store: &ClusterStore) -> Result<InitialState, StoreError> {
    let deadline = tokio::time::Instant::now() + STARTUP_STORE_WAIT;
    let mut backoff = Duration::from_millis(100);
    loop {
        let attempt = async {
            store.prepare().await?;
            Ok::<_, StoreError>((
                store.backend_states().await?,
                store.list_topologies().await?,
                store.aliases().await?,
            ))
        };
        match attempt.await {
            Ok(state) => return Ok(state),
            Err(err) if tokio::time::Instant::now() + backoff < deadline => {
                tracing::warn!(error = %err, "store not ready; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(err) => return Err(err),
        }
    }
}

/// Writes this member's record every heartbeat. Store errors are logged and
/// retried at the next beat; they never stop the member.
async fn heartbeat(
    store: ClusterStore,
    gateway: Arc<Gateway>,
    config: NodeConfig,
    advertised: Advertised,
    members: Arc<ArcSwap<Vec<MemberRecord>>>,
) {
    let mut ticker = tokio::time::interval(config.cluster.heartbeat);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticker.tick().await;
        let record = member_record(&config, &gateway, &advertised);
        match store.put_member(&record).await {
            Ok(()) if failing => {
                tracing::info!("member record written again");
                failing = false;
            }
            Ok(()) => {}
            Err(err) if !failing => {
                tracing::error!(error = %err, "cannot write this member's record; retrying every heartbeat");
                failing = true;
            }
            Err(_) => {}
        }
        match store.prune_members(FORGET_MEMBERS_AFTER).await {
            Ok(pruned) => {
                for id in pruned {
                    tracing::info!(member = %id, "forgot a member silent for over 15 minutes");
                }
            }
            Err(err) => tracing::debug!(error = %err, "cannot prune member records"),
        }
        if let Ok(records) = store.members().await {
            members.store(Arc::new(records));
        }
    }
}

/// The URL other members and balancers use for this member. With port 0 in
/// the config, the port actually bound.
fn advertised_url(config: &NodeConfig, gateway_addr: SocketAddr) -> String {
    let mut url = config.gateway.public_url.clone();
    if config.gateway.listen.port() == 0 {
        let _ = url.set_port(Some(gateway_addr.port()));
    }
    url.as_str().trim_end_matches('/').to_string()
}

/// How other members and balancers reach this member.
struct Advertised {
    public_url: String,
    /// The admin listener as bound (its real port when the config says 0).
    admin_url: Option<String>,
}

fn member_record(config: &NodeConfig, gateway: &Gateway, advertised: &Advertised) -> MemberRecord {
    MemberRecord {
        id: config.node.id.clone(),
        role: config.cluster.role.into(),
        public_url: advertised.public_url.clone(),
        admin_url: advertised.admin_url.clone(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        generation: gateway.generation(),
        in_flight: gateway.in_flight(),
        heartbeat_ms: config.cluster.heartbeat.as_millis() as u64,
        updated_at_ms: portcullis_cluster::members::now_ms(),
    }
}

/// A topology change read from the store.
pub enum TopologyChange {
    Upsert { name: String, text: String },
    Remove { name: String },
}

/// Applies one change on the member's apply thread and waits for it.
/// Parsing, validating and building a large topology (or dropping one) takes
/// CPU for a long time; on the async threads it stalled every request of the
/// member meanwhile (issue 11). Callers await each change before the next,
/// so changes still apply in the order they were read.
pub async fn apply_change(gateway: &Arc<Gateway>, change: TopologyChange) {
    let (done, applied) = tokio::sync::oneshot::channel();
    let job: ApplyJob = (
        tokio::runtime::Handle::current(),
        gateway.clone(),
        change,
        done,
    );
    if APPLIER.send(job).is_err() || applied.await.is_err() {
        tracing::error!("the topology apply thread is gone; change not applied");
    }
}

type ApplyJob = (
    tokio::runtime::Handle,
    Arc<Gateway>,
    TopologyChange,
    tokio::sync::oneshot::Sender<()>,
);

/// One thread for every apply of the process rather than the blocking pool:
/// the allocator keeps per-thread arenas, and builds spread over many
/// threads left each arena holding freed memory after a DELETE. Each change
/// runs inside its caller's runtime, for the health-check tasks it spawns.
static APPLIER: std::sync::LazyLock<std::sync::mpsc::Sender<ApplyJob>> =
    std::sync::LazyLock::new(|| {
        let (jobs, queue) = std::sync::mpsc::channel::<ApplyJob>();
        let spawned = std::thread::Builder::new()
            .name("portcullis-apply".to_string())
            .spawn(move || {
                for (runtime, gateway, change, done) in queue {
                    let _runtime = runtime.enter();
                    apply_now(&gateway, change);
                    let _ = done.send(());
                }
            });
        if let Err(err) = spawned {
            tracing::error!(error = %err, "cannot start the topology apply thread");
        }
        jobs
    });

/// At most this many errors of one topology are logged; the rest are counted.
const LOGGED_ERRORS: usize = 20;

/// Validates and applies one topology, on the calling thread. An invalid one
/// is logged and the last good version keeps serving.
fn apply_now(gateway: &Gateway, change: TopologyChange) {
    match change {
        TopologyChange::Upsert { name, text } => apply_topology(gateway, &name, &text),
        TopologyChange::Remove { name } => {
            if let Ok(generation) = gateway.apply(ConfigChange::RemoveTopology(name.clone())) {
                tracing::info!(topology = %name, generation, "topology removed");
            }
        }
    }
}

fn apply_topology(gateway: &Gateway, name: &str, text: &str) {
    let label = format!("topologies/{name}.toml");
    match portcullis_config::load_topology(name, &label, text, &gateway.base_dir) {
        Err(errors) => {
            for error in errors.0.iter().take(LOGGED_ERRORS) {
                tracing::error!(topology = name, "{error}; keeping the last good version");
            }
            if errors.0.len() > LOGGED_ERRORS {
                tracing::error!(
                    topology = name,
                    "{} more errors in {label}; `portcullis check` lists them all",
                    errors.0.len() - LOGGED_ERRORS
                );
            }
        }
        Ok(topology) => match gateway.apply(ConfigChange::UpsertTopology(topology)) {
            Ok(generation) => tracing::info!(topology = name, generation, "topology applied"),
            Err(err) => {
                tracing::error!(topology = name, error = %err, "topology not applied; keeping the last good version")
            }
        },
    }
}

/// The `[gateway]` settings the request path reads per request.
fn edge_settings(config: &NodeConfig) -> portcullis_proxy::routing::EdgeSettings {
    portcullis_proxy::routing::EdgeSettings {
        public_base: config.gateway.public_url_configured.then(|| {
            config
                .gateway
                .public_url
                .as_str()
                .trim_end_matches('/')
                .to_string()
        }),
        min_body_rate: config.gateway.min_body_rate,
    }
}
