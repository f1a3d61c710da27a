//! Wiring of one member: config store -> validated topologies -> data plane,
//! the listeners, and the tasks that keep them fed, with one lifecycle: every
//! listener is bound before any task starts, and every task belongs to the
//! [`Member`], so dropping or stopping it stops them all.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use portcullis_cluster::{ClusterStore, StoreError, StoreEvent, StoreWatcher};
use portcullis_config::{AdminState, NodeConfig};
use portcullis_proxy::balancer::{BalancerOptions, MemberTable};
use portcullis_proxy::listener::CertSwap;
use portcullis_proxy::{Gateway, ListenerOptions};
use portcullis_secrets::AliasSealer;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::task::AbortOnDropHandle;
use zeroize::Zeroizing;

use crate::applied::AppliedConfig;
use crate::apply::{apply_change, TopologyChange};
use crate::cache::{Cache, CacheWriter, CachedState};
use crate::heartbeat::{advertised_url, heartbeat, member_record, Advertised};
use crate::inherit::{Inherited, ListeningSocket};
use crate::listeners::Listeners;
use crate::secrets::AdminToken;
use crate::MemberError;

/// How long a starting member waits for its store before giving up.
const STARTUP_STORE_WAIT: Duration = Duration::from_secs(30);

/// How long a starting member with a cache waits for its store before it
/// serves from the cache instead (and keeps trying the store).
const STARTUP_STORE_WAIT_WITH_CACHE: Duration = Duration::from_secs(3);

/// How long `stop` waits for the store to forget this member, and for the
/// admin listener to finish.
const STOP_STEP_TIMEOUT: Duration = Duration::from_secs(2);

/// A running member.
pub struct Member {
    pub gateway: Arc<Gateway>,
    pub gateway_addr: SocketAddr,
    pub balancer_addr: Option<SocketAddr>,
    /// Where the admin API listens, when `[admin]` is set.
    pub admin_addr: Option<SocketAddr>,
    admin_token: AdminToken,
    store: ClusterStore,
    /// Whether the store was reachable at the last attempt.
    pub store_connected: Arc<AtomicBool>,
    shutdown: watch::Sender<bool>,
    tasks: MemberTasks,
    /// Duplicates of the listening sockets, for a hot restart to hand over;
    /// closed first when the member stops, so a stopping member refuses new
    /// connections instead of queueing them.
    handover: Vec<ListeningSocket>,
    /// The gateway listener's certificate, renewed by a reload.
    gateway_cert: Option<Arc<CertSwap>>,
    /// The admin listener's certificate (`[admin] tls`), renewed likewise.
    admin_cert: Option<Arc<CertSwap>>,
    /// The gateway listener's settings; a new value applies to the
    /// connections accepted after it.
    listener_options: watch::Sender<ListenerOptions>,
    /// The balancer's settings, likewise.
    balancer_options: Option<watch::Sender<BalancerOptions>>,
}

/// Every task of a member. Each is aborted when this is dropped; `stop`
/// ends them in order instead.
struct MemberTasks {
    heartbeat: AbortOnDropHandle<()>,
    /// The store sync loop and the balancer: aborted, they hold no client.
    background: JoinSet<()>,
    /// The gateway listener, which drains its requests on shutdown.
    serve: AbortOnDropHandle<()>,
    admin: Option<AbortOnDropHandle<()>>,
}

/// What a member reads from the store before it serves anything.
struct StoreState {
    admin_states: BTreeMap<String, AdminState>,
    topologies: BTreeMap<String, String>,
    sealed_aliases: BTreeMap<String, String>,
}

impl StoreState {
    /// As the store watcher compares reads.
    fn snapshot(&self) -> portcullis_cluster::Snapshot {
        portcullis_cluster::Snapshot {
            topologies: self
                .topologies
                .iter()
                .map(|(name, text)| (name.clone(), text.as_bytes().to_vec()))
                .collect(),
            admin_states: self.admin_states.clone(),
            aliases: self.sealed_aliases.clone(),
            // Not read before listening: the watcher's first read reports
            // them, within one poll or at once on etcd.
            api_keys: Default::default(),
            revision: None,
        }
    }
}

/// What a starting member serves first: read from the store, or from its
/// cache when the store cannot be read.
struct Loaded {
    state: StoreState,
    secrets: Secrets,
    /// What the member serves from the start, as read: the store watcher's
    /// first read reports only what differs from it (removals included),
    /// so nothing is applied twice and no warning is logged twice.
    known: portcullis_cluster::Snapshot,
    /// The state came from the cache, not the store.
    from_cache: bool,
    cache: Option<Cache>,
}

/// The member's secrets, as read (or first created) in the store.
struct Secrets {
    sealer: Option<AliasSealer>,
    cookie_key: [u8; 32],
    /// The admin API's token; replaced when `admin token --rotate` writes a
    /// new `admin.token` alias.
    admin_token: AdminToken,
    /// Computes the stored form of API keys.
    api_key_hasher: portcullis_secrets::ApiKeyHasher,
}

impl Member {
    /// Loads the store, binds every listener, then starts serving.
    pub async fn start(config: NodeConfig) -> Result<Member, MemberError> {
        Self::start_inheriting(config, Inherited::none()).await
    }

    /// [`Member::start`], serving the `inherited` listening sockets (a hot
    /// restart) instead of binding those whose key and address still fit.
    pub async fn start_inheriting(
        config: NodeConfig,
        mut inherited: Inherited,
    ) -> Result<Member, MemberError> {
        let store = ClusterStore::from_config(&config.cluster)?;
        let Loaded {
            state,
            secrets,
            known,
            from_cache,
            cache,
        } = load_state(&config, &store).await?;
        // Bound before any config is applied or task started: a port in use
        // fails the start with nothing left running.
        let listeners = Listeners::bind(&config, &mut inherited).await?;
        drop(inherited);
        let gateway = build_gateway(&config, &secrets, &state);
        let applied = Arc::new(AppliedConfig::default());
        applied.admin_states(&state.admin_states);
        applied.aliases(&state.sealed_aliases);
        // Applied before serving so the first request already sees the config.
        let mut served = BTreeMap::new();
        for (name, text) in state.topologies {
            let change = TopologyChange::Upsert {
                name: name.clone(),
                text: text.clone(),
            };
            if apply_change(&gateway, change).await {
                applied.topology_applied(&name, &text);
                served.insert(name, text);
            }
        }
        let cache = cache.map(|cache| {
            let cached = CachedState {
                topologies: served,
                sealed_aliases: state.sealed_aliases,
                admin_states: state.admin_states,
                cookie_key: Zeroizing::new(secrets.cookie_key),
                admin_token: Zeroizing::new(secrets.admin_token.load().as_str().to_string()),
                revision: None,
            };
            CacheWriter::new(cache, store.describe(), cached)
        });
        let store_connected = !from_cache;
        let watcher = store.watch_from(Some(known));
        let advertised = Advertised {
            public_url: advertised_url(&config, listeners.gateway_addr),
            admin_url: listeners.admin.as_ref().map(|(_, a)| {
                let scheme = if listeners.admin_tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{a}")
            }),
        };
        // The first record is written before serving, so balancers and
        // `cluster status` know the member as soon as it answers (a member
        // serving from its cache writes it when the store returns).
        if store_connected {
            let record = member_record(&config, &gateway, &advertised, &applied);
            if let Err(err) = store.put_member(&record).await {
                tracing::error!(error = %err, "cannot write this member's record; retrying every heartbeat");
            }
        }
        let running = Running {
            config,
            store,
            gateway,
            secrets,
            store_connected: Arc::new(AtomicBool::new(store_connected)),
            applied,
            cache,
        };
        Ok(running.spawn(listeners, watcher, advertised).await)
    }

    /// Leaves the cluster first (so balancers stop sending clients here), then
    /// stops accepting and finishes in-flight requests within the grace period.
    pub async fn stop(self) {
        self.stop_leaving(true).await
    }

    /// Stops after a hot restart handed the listening sockets to a process
    /// that is now serving as `successor_id`: stops accepting and drains like
    /// [`Member::stop`], but leaves the member record alone when the
    /// successor has the same id (it has already rewritten the record; removing
    /// it would hide the new process from the balancers for a heartbeat).
    /// How gently connections end is the process's choice
    /// (`portcullis_proxy::listener::drain_gently_on_shutdown`).
    pub async fn stop_handed_over(self, successor_id: &str) {
        let leave = successor_id != self.gateway.member_id;
        self.stop_leaving(leave).await
    }

    /// Applies what of `config` can change while serving (a reload): the
    /// gateway's certificate, from the next TLS handshake on; its header
    /// timeout, connection cap and grace period, for the connections
    /// accepted from now on; and the `[gateway]` settings read per request
    /// (`min_body_rate`, `public_url`, `trusted_proxies`). No connection is closed. On error
    /// nothing changed.
    pub fn reload(&self, config: &NodeConfig) -> Result<(), MemberError> {
        if let (Some(swap), Some(files)) = (&self.gateway_cert, &config.gateway.tls) {
            swap.reload(&files.cert, &files.key)
                .map_err(MemberError::Tls)?;
        }
        let admin_tls = config.admin.as_ref().and_then(|a| a.tls.as_ref());
        if let (Some(swap), Some(files)) = (&self.admin_cert, admin_tls) {
            swap.reload(&files.cert, &files.key)
                .map_err(MemberError::AdminTls)?;
        }
        if let (Some(sender), Some(balancer)) = (&self.balancer_options, &config.balancer) {
            let mut options = crate::balancer::balancer_options(config, balancer)?;
            // A new mode needs a restart (it decides what a request is).
            options.mode = sender.borrow().mode;
            sender.send_replace(options);
        }
        let gateway = &config.gateway;
        self.listener_options.send_if_modified(|options| {
            let changed = options.header_read_timeout != gateway.header_read_timeout
                || options.max_connections != gateway.max_connections
                || options.shutdown_grace != gateway.shutdown_grace;
            options.header_read_timeout = gateway.header_read_timeout;
            options.max_connections = gateway.max_connections;
            options.shutdown_grace = gateway.shutdown_grace;
            changed
        });
        self.gateway.set_edge(edge_settings(config));
        Ok(())
    }

    /// The listening sockets, for a hot restart to hand over.
    pub fn listening_sockets(&self) -> &[ListeningSocket] {
        &self.handover
    }

    async fn stop_leaving(self, leave: bool) {
        let Member {
            gateway,
            store,
            shutdown,
            tasks,
            handover,
            ..
        } = self;
        drop(handover);
        let MemberTasks {
            heartbeat,
            mut background,
            serve,
            admin,
        } = tasks;
        heartbeat.abort();
        let _ = heartbeat.await;
        if leave {
            let leave =
                tokio::time::timeout(STOP_STEP_TIMEOUT, store.remove_member(&gateway.member_id));
            if let Ok(Err(err)) = leave.await {
                tracing::warn!(error = %err, "could not remove this member's record");
            }
        }
        background.shutdown().await;
        let _ = shutdown.send(true);
        let _ = serve.await;
        if let Some(admin) = admin {
            let _ = tokio::time::timeout(STOP_STEP_TIMEOUT, admin).await;
        }
    }

    /// The token the admin API expects now.
    pub fn admin_token(&self) -> Zeroizing<String> {
        Zeroizing::new(self.admin_token.load().as_str().to_string())
    }
}

/// A member whose store, secrets and data plane are ready, about to start its
/// tasks.
struct Running {
    config: NodeConfig,
    store: ClusterStore,
    gateway: Arc<Gateway>,
    secrets: Secrets,
    store_connected: Arc<AtomicBool>,
    /// What is served, hashed for the member record.
    applied: Arc<AppliedConfig>,
    /// Keeps `[cluster] cache` current, when the member keeps one.
    cache: Option<Arc<CacheWriter>>,
}

/// The gateway listener's serving: one runtime per core when
/// `PORTCULLIS_WORKERS` asks for them (per_core.rs), else on this runtime.
fn serve_gateway(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    options: watch::Receiver<ListenerOptions>,
    shutdown: watch::Receiver<bool>,
) -> AbortOnDropHandle<()> {
    match crate::per_core::cores() {
        0 => AbortOnDropHandle::new(tokio::spawn(portcullis_proxy::listener::serve_reloadable(
            listener,
            gateway,
            options,
            shutdown,
            None,
            |options| options,
        ))),
        cores => crate::per_core::spawn(cores, listener, gateway, options, shutdown),
    }
}

impl Running {
    /// Starts every task on listeners already bound; nothing here can fail.
    async fn spawn(
        self,
        listeners: Listeners,
        watcher: StoreWatcher,
        advertised: Advertised,
    ) -> Member {
        let (shutdown, shutdown_rx) = watch::channel(false);
        // A member serving from its cache does not wait on a store that
        // is known to be down; the heartbeat reads the members later.
        let known_members = if self.store_connected.load(Ordering::Relaxed) {
            self.store.members().await.unwrap_or_default()
        } else {
            Vec::new()
        };
        let members = Arc::new(ArcSwap::from_pointee(known_members));
        let mut background = JoinSet::new();
        background.spawn(sync_from_store(
            watcher,
            self.gateway.clone(),
            SyncSecrets {
                sealer: self.secrets.sealer.clone(),
                api_key_hasher: self.secrets.api_key_hasher.clone(),
            },
            self.store_connected.clone(),
            self.applied.clone(),
            self.secrets.admin_token.clone(),
            self.cache.clone(),
        ));
        let heartbeat = AbortOnDropHandle::new(tokio::spawn(heartbeat(
            self.store.clone(),
            self.gateway.clone(),
            self.config.clone(),
            advertised,
            members.clone(),
            self.applied.clone(),
        )));
        let rate_reports = Arc::new(crate::rate_exchange::PeerReports::default());
        background.spawn(crate::rate_exchange::exchange(
            self.gateway.clone(),
            members.clone(),
            self.config.node.id.clone(),
            self.secrets.admin_token.clone(),
            rate_reports.clone(),
        ));
        let admin_addr = listeners.admin.as_ref().map(|(_, addr)| *addr);
        let admin = listeners.admin.map(|(listener, _)| {
            let shared = (members, rate_reports);
            self.spawn_admin(listener, listeners.admin_tls, shared, &shutdown_rx)
        });
        let balancer_addr = listeners.balancer.as_ref().map(|(_, addr, _)| *addr);
        let balancer_options = match listeners.balancer {
            Some((listener, addr, options)) => Some(
                self.spawn_balancer(&mut background, listener, addr, options, &shutdown_rx)
                    .await,
            ),
            None => None,
        };
        let (listener_options, options_rx) = watch::channel(listeners.options);
        let serve = serve_gateway(
            listeners.gateway,
            self.gateway.clone(),
            options_rx,
            shutdown_rx,
        );
        tracing::info!(member = %self.config.node.id, listen = %listeners.gateway_addr, "gateway listening");
        let (handover, gateway_cert) = (listeners.handover, listeners.gateway_cert);
        let admin_cert = listeners.admin_cert;
        Member {
            gateway: self.gateway,
            gateway_addr: listeners.gateway_addr,
            balancer_addr,
            admin_addr,
            admin_token: self.secrets.admin_token,
            store: self.store,
            store_connected: self.store_connected,
            shutdown,
            tasks: MemberTasks {
                heartbeat,
                background,
                serve,
                admin,
            },
            handover,
            gateway_cert,
            admin_cert,
            listener_options,
            balancer_options,
        }
    }

    fn spawn_admin(
        &self,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
        (members, rate_reports): (
            Arc<ArcSwap<Vec<portcullis_cluster::MemberRecord>>>,
            Arc<crate::rate_exchange::PeerReports>,
        ),
        shutdown: &watch::Receiver<bool>,
    ) -> AbortOnDropHandle<()> {
        let context = Arc::new(crate::admin::AdminContext {
            gateway: self.gateway.clone(),
            store: self.store.clone(),
            cluster_name: self.config.cluster.name.clone(),
            role: self.config.cluster.role,
            sealer: self.secrets.sealer.clone(),
            api_key_hasher: self.secrets.api_key_hasher.clone(),
            token: self.secrets.admin_token.clone(),
            store_connected: self.store_connected.clone(),
            members,
            rate_reports,
        });
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(listen = %addr, tls = tls.is_some(), "admin API, /metrics and dashboard listening");
        }
        AbortOnDropHandle::new(tokio::spawn(crate::admin::serve(
            listener,
            context,
            tls,
            shutdown.clone(),
        )))
    }

    /// The balancer's listener and the task that keeps its member table
    /// current, both in `tasks`.
    async fn spawn_balancer(
        &self,
        tasks: &mut JoinSet<()>,
        listener: TcpListener,
        addr: SocketAddr,
        options: BalancerOptions,
        shutdown: &watch::Receiver<bool>,
    ) -> watch::Sender<BalancerOptions> {
        let key = portcullis_proxy::CookieKey::new(self.secrets.cookie_key);
        let table = Arc::new(MemberTable::new(key));
        let heartbeat = self.config.cluster.heartbeat;
        let view = Arc::new(crate::balancer::BalancerView::new(table.clone(), heartbeat));
        let read = crate::balancer::store_reader(self.store.clone());
        view.store_read(crate::balancer::read_once(&read, heartbeat).await);
        tasks.spawn(crate::balancer::read_members(view.clone(), heartbeat, read));
        tasks.spawn(crate::balancer::check_members(
            view,
            heartbeat,
            crate::balancer::check_timeout(heartbeat),
            crate::balancer::tcp_probe,
        ));
        let (mode, tls) = (options.mode, options.tls.is_some());
        let (reload, options) = watch::channel(options);
        tasks.spawn(portcullis_proxy::balancer::serve_reloadable(
            listener,
            table,
            options,
            shutdown.clone(),
        ));
        tracing::info!(listen = %addr, ?mode, tls, "balancer listening");
        reload
    }
}

/// What the sync loop opens or hashes with.
struct SyncSecrets {
    sealer: Option<AliasSealer>,
    api_key_hasher: portcullis_secrets::ApiKeyHasher,
}

/// The store sync loop: follows the store's events for the member's life, one
/// at a time and in order (a topology change is applied, off the async
/// threads, before the next event is looked at). What is applied is also
/// handed to the cache, whose writer runs as long as this loop.
async fn sync_from_store(
    mut watcher: StoreWatcher,
    gateway: Arc<Gateway>,
    secrets: SyncSecrets,
    store_connected: Arc<AtomicBool>,
    applied: Arc<AppliedConfig>,
    admin_token: AdminToken,
    cache: Option<Arc<CacheWriter>>,
) {
    let _cache_writer = cache
        .clone()
        .map(|writer| AbortOnDropHandle::new(tokio::spawn(writer.run())));
    let remember = |change: &dyn Fn(&mut CachedState)| {
        if let Some(cache) = &cache {
            cache.update(change);
        }
    };
    while let Some(event) = watcher.recv().await {
        match event {
            StoreEvent::Changed { name, text } => {
                let change = TopologyChange::Upsert {
                    name: name.clone(),
                    text: text.clone(),
                };
                if apply_change(&gateway, change).await {
                    applied.topology_applied(&name, &text);
                    remember(&|c| {
                        c.topologies.insert(name.clone(), text.clone());
                    });
                }
            }
            StoreEvent::AdminStates(states) => {
                applied.admin_states(&states);
                remember(&|c| c.admin_states = states.clone());
                gateway.set_admin_states(states.into_iter().collect())
            }
            StoreEvent::Aliases(sealed) => {
                applied.aliases(&sealed);
                let opened = crate::secrets::open_all(secrets.sealer.as_ref(), &sealed);
                crate::secrets::follow_admin_token(&admin_token, &opened);
                remember(&|c| {
                    c.sealed_aliases = sealed.clone();
                    c.admin_token = Zeroizing::new(admin_token.load().as_str().to_string());
                });
                gateway.set_credentials(opened)
            }
            StoreEvent::ApiKeys(records) => {
                crate::api_keys::follow(&gateway, &secrets.api_key_hasher, &records)
            }
            StoreEvent::Connection(up) => store_connected.store(up, Ordering::Relaxed),
            StoreEvent::Revision(revision) => remember(&|c| c.revision = Some(revision)),
            StoreEvent::Removed { name } => {
                if apply_change(&gateway, TopologyChange::Remove { name: name.clone() }).await {
                    applied.topology_removed(&name);
                    remember(&|c| {
                        c.topologies.remove(&name);
                    });
                }
            }
        }
    }
}

/// Reads the member's state and secrets from the store or, when the store
/// cannot be read within a few seconds and a cache exists, from the cache.
/// Without either the start fails, naming the store.
async fn load_state(config: &NodeConfig, store: &ClusterStore) -> Result<Loaded, MemberError> {
    let master = crate::secrets::load_master(config)?;
    let sealer = master
        .as_ref()
        .map(|m| AliasSealer::new(m, &config.cluster.name));
    let cache = Cache::for_config(config, master.as_ref());
    let cluster = config.cluster.name.as_str();
    // Derived now, so the master secret is dropped as soon as before.
    let from_master = master
        .as_ref()
        .map(|m| portcullis_secrets::ApiKeyHasher::from_master(m, cluster));
    drop(master);
    let api_key_hasher = |cookie_key: &[u8; 32]| {
        from_master
            .clone()
            .unwrap_or_else(|| crate::api_keys::hasher(None, cookie_key, cluster))
    };
    let fallback = cache.as_ref().filter(|cache| cache.exists());
    let wait = match fallback {
        Some(_) => STARTUP_STORE_WAIT_WITH_CACHE,
        None => STARTUP_STORE_WAIT,
    };
    let source = match initial_read(store, wait).await {
        Ok(state) => {
            let secrets = read_secrets(store, sealer, &api_key_hasher).await?;
            return Ok(Loaded {
                known: state.snapshot(),
                state,
                secrets,
                from_cache: false,
                cache,
            });
        }
        Err(source) => source,
    };
    // A store that refuses this member will refuse it after the cache too:
    // serving stale state without a word would hide the mistake.
    let fallback = fallback.filter(|_| !matches!(source, StoreError::Refused { .. }));
    let Some(fallback) = fallback else {
        return Err(MemberError::StoreUnreadable {
            store: store.describe(),
            source,
        });
    };
    let cached = fallback.load(&config.base_dir)?;
    tracing::warn!(
        store = %store.describe(),
        cache = %fallback.path().display(),
        error = %source,
        "store unreachable; serving the cached state until it returns"
    );
    let known = cached.snapshot();
    let secrets = Secrets {
        sealer,
        cookie_key: *cached.cookie_key,
        api_key_hasher: api_key_hasher(&cached.cookie_key),
        admin_token: Arc::new(ArcSwap::from_pointee(cached.admin_token)),
    };
    let state = StoreState {
        admin_states: cached.admin_states,
        topologies: cached.topologies,
        sealed_aliases: cached.sealed_aliases,
    };
    Ok(Loaded {
        state,
        secrets,
        known,
        from_cache: true,
        cache,
    })
}

/// Reads what a member needs before it listens, retrying with backoff while the
/// store is unreachable, for up to `wait`.
async fn initial_read(store: &ClusterStore, wait: Duration) -> Result<StoreState, StoreError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut backoff = Duration::from_millis(100);
    loop {
        let attempt = async {
            store.prepare().await?;
            Ok::<_, StoreError>(StoreState {
                admin_states: store.backend_states().await?,
                topologies: store.list_topologies().await?,
                sealed_aliases: store.aliases().await?,
            })
        };
        // A store that hangs rather than refuses must not hold the start
        // past the deadline either.
        let result = match tokio::time::timeout_at(deadline, attempt).await {
            Ok(result) => result,
            Err(_) => Err(StoreError::Io {
                location: store.describe(),
                action: "read".to_string(),
                cause: std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer"),
            }),
        };
        match result {
            Ok(state) => return Ok(state),
            Err(err @ StoreError::Refused { .. }) => return Err(err),
            Err(err) if tokio::time::Instant::now() + backoff < deadline => {
                tracing::warn!(error = %err, "store not ready; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(err) => return Err(err),
        }
    }
}

async fn read_secrets(
    store: &ClusterStore,
    sealer: Option<AliasSealer>,
    api_key_hasher: &dyn Fn(&[u8; 32]) -> portcullis_secrets::ApiKeyHasher,
) -> Result<Secrets, MemberError> {
    let cookie_key = crate::secrets::cookie_key(store, sealer.as_ref()).await?;
    let admin_token = crate::secrets::admin_token(store, sealer.as_ref(), &cookie_key).await?;
    Ok(Secrets {
        sealer,
        api_key_hasher: api_key_hasher(&cookie_key),
        cookie_key,
        admin_token: Arc::new(ArcSwap::from_pointee(admin_token)),
    })
}

/// The data plane with the store's admin states and credentials, and no
/// topology yet.
fn build_gateway(config: &NodeConfig, secrets: &Secrets, state: &StoreState) -> Arc<Gateway> {
    let gateway = Arc::new(Gateway::new(
        &config.node.id,
        &config.gateway.path,
        config.base_dir.clone(),
        portcullis_proxy::CookieKey::new(secrets.cookie_key),
    ));
    gateway.set_admin_states(state.admin_states.clone().into_iter().collect());
    gateway.set_edge(edge_settings(config));
    gateway.set_credentials(crate::secrets::open_all(
        secrets.sealer.as_ref(),
        &state.sealed_aliases,
    ));
    gateway
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
        trusted_proxies: config.gateway.trusted_proxies.clone(),
    }
}

#[cfg(test)]
#[path = "member_tests.rs"]
mod tests;
