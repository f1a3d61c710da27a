//! The `etcd://` store (etcd v3). Key layout, under `/portcullis/<cluster>/`:
//! `topologies/<name>`, `admin/backends/<backend-id>`, `members/<id>` (under a
//! lease, so a member that stops heartbeating disappears), `cluster/cookie-key`.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, PutOptions, Txn, TxnOp,
    TxnOpResponse, WatchOptions,
};
use portcullis_config::AdminState;
use tokio::sync::{mpsc, Mutex};

use crate::dir::{TopologyEvent, TopologyWatcher};
use crate::members::MemberRecord;
use crate::StoreError;

/// How long one etcd call may take before the store counts as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct EtcdStore {
    endpoints: Vec<String>,
    prefix: String,
    client: std::sync::Arc<Mutex<Option<Client>>>,
    lease: std::sync::Arc<Mutex<Option<i64>>>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EtcdStore({})", self.endpoints.join(","))
    }
}

fn location(endpoints: &[String]) -> String {
    format!("etcd://{}", endpoints.join(","))
}

impl EtcdStore {
    /// Does not connect yet: the first call (or the watcher) does, so a member
    /// starts and serves its last config even while etcd is down.
    pub fn new(endpoints: Vec<String>, cluster: &str) -> EtcdStore {
        EtcdStore {
            endpoints,
            prefix: format!("/portcullis/{cluster}/"),
            client: Default::default(),
            lease: Default::default(),
        }
    }

    fn err(&self, action: &str, error: impl std::fmt::Display) -> StoreError {
        StoreError::Io {
            location: location(&self.endpoints),
            action: action.to_string(),
            source: std::io::Error::other(error.to_string()),
        }
    }

    async fn client(&self) -> Result<Client, StoreError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let endpoints: Vec<String> = self
            .endpoints
            .iter()
            .map(|e| format!("http://{e}"))
            .collect();
        let options = ConnectOptions::new()
            .with_connect_timeout(CALL_TIMEOUT)
            .with_timeout(CALL_TIMEOUT)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        let client =
            tokio::time::timeout(CALL_TIMEOUT * 2, Client::connect(endpoints, Some(options)))
                .await
                .map_err(|_| self.err("connect", "timed out"))?
                .map_err(|e| self.err("connect", e))?;
        *slot = Some(client.clone());
        Ok(client)
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    async fn get_prefix(
        &self,
        suffix: &str,
    ) -> Result<(BTreeMap<String, String>, i64), StoreError> {
        let mut client = self.client().await?;
        let response = client
            .get(self.key(suffix), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| self.err("read", e))?;
        let revision = response.header().map(|h| h.revision()).unwrap_or(0);
        let mut out = BTreeMap::new();
        for kv in response.kvs() {
            if let (Ok(key), Ok(value)) = (kv.key_str(), kv.value_str()) {
                if let Some(rest) = key.strip_prefix(&self.prefix) {
                    out.insert(rest.to_string(), value.to_string());
                }
            }
        }
        Ok((out, revision))
    }

    pub async fn list_topologies(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let (all, _) = self.get_prefix("topologies/").await?;
        Ok(all
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix("topologies/").map(|n| (n.to_string(), v)))
            .collect())
    }

    pub async fn get_topology(&self, name: &str) -> Result<String, StoreError> {
        self.list_topologies()
            .await?
            .remove(name)
            .ok_or_else(|| StoreError::NotFound(format!("topology {name}")))
    }

    pub async fn put_topology(&self, name: &str, text: &str) -> Result<(), StoreError> {
        portcullis_config::validate_topology_name(name).map_err(|reason| StoreError::BadName {
            name: name.to_string(),
            reason,
        })?;
        let mut client = self.client().await?;
        client
            .put(self.key(&format!("topologies/{name}")), text, None)
            .await
            .map_err(|e| self.err("write topology", e))?;
        Ok(())
    }

    pub async fn delete_topology(&self, name: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let response = client
            .delete(self.key(&format!("topologies/{name}")), None)
            .await
            .map_err(|e| self.err("delete topology", e))?;
        if response.deleted() == 0 {
            return Err(StoreError::NotFound(format!("topology {name}")));
        }
        Ok(())
    }

    pub async fn backend_states(&self) -> Result<BTreeMap<String, AdminState>, StoreError> {
        let (all, _) = self.get_prefix("admin/backends/").await?;
        Ok(admin_states(&all))
    }

    pub async fn set_backend_state(
        &self,
        backend_id: &str,
        state: AdminState,
    ) -> Result<(), StoreError> {
        let key = self.key(&format!("admin/backends/{backend_id}"));
        let mut client = self.client().await?;
        let result = if state == AdminState::Enabled {
            client.delete(key, None).await.map(|_| ())
        } else {
            client.put(key, state.as_str(), None).await.map(|_| ())
        };
        result.map_err(|e| self.err("write backend state", e))
    }

    /// The cluster cookie key: a transaction creates it only if absent, so
    /// members starting together all read the first one written.
    pub async fn cookie_key(&self) -> Result<[u8; 32], StoreError> {
        let key = self.key("cluster/cookie-key");
        let fresh: [u8; 32] = rand::random();
        let encoded = base64::engine::general_purpose::STANDARD.encode(fresh);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), encoded, None)])
            .or_else([TxnOp::get(key, None)]);
        let mut client = self.client().await?;
        let response = client
            .txn(txn)
            .await
            .map_err(|e| self.err("create cookie key", e))?;
        if response.succeeded() {
            return Ok(fresh);
        }
        let stored = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get
                .kvs()
                .first()
                .and_then(|kv| kv.value_str().ok().map(str::to_string)),
            _ => None,
        });
        let stored =
            stored.ok_or_else(|| self.err("read cookie key", "missing after create-if-absent"))?;
        base64::engine::general_purpose::STANDARD
            .decode(stored.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| self.err("read cookie key", "not 32 base64 bytes"))
    }

    pub async fn aliases(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let (all, _) = self.get_prefix("aliases/").await?;
        Ok(aliases(&all))
    }

    pub async fn put_alias(&self, name: &str, sealed: &str) -> Result<(), StoreError> {
        crate::validate_record_name(name)?;
        let mut client = self.client().await?;
        client
            .put(self.key(&format!("aliases/{name}")), sealed, None)
            .await
            .map_err(|e| self.err("write alias", e))?;
        Ok(())
    }

    pub async fn delete_alias(&self, name: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let response = client
            .delete(self.key(&format!("aliases/{name}")), None)
            .await
            .map_err(|e| self.err("delete alias", e))?;
        if response.deleted() == 0 {
            return Err(StoreError::NotFound(format!("alias {name}")));
        }
        Ok(())
    }

    /// Create-if-absent in one transaction; returns the value stored afterwards.
    pub async fn create_alias_if_absent(
        &self,
        name: &str,
        sealed: &str,
    ) -> Result<String, StoreError> {
        crate::validate_record_name(name)?;
        let key = self.key(&format!("aliases/{name}"));
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.clone(), sealed, None)])
            .or_else([TxnOp::get(key, None)]);
        let mut client = self.client().await?;
        let response = client
            .txn(txn)
            .await
            .map_err(|e| self.err("create alias", e))?;
        if response.succeeded() {
            return Ok(sealed.to_string());
        }
        response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Get(get) => get
                    .kvs()
                    .first()
                    .and_then(|kv| kv.value_str().ok().map(str::to_string)),
                _ => None,
            })
            .ok_or_else(|| self.err("read alias", "missing after create-if-absent"))
    }

    /// Writes the member record under a lease of three heartbeats, renewing it
    /// (or taking a new one after an outage) on every call.
    pub async fn put_member(&self, record: &MemberRecord) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let ttl = ((record.heartbeat_ms * 3).div_ceil(1000)).max(1) as i64;
        let mut lease = self.lease.lock().await;
        let id = match *lease {
            Some(id) => {
                let alive = match client.lease_keep_alive(id).await {
                    Ok((mut keeper, mut stream)) => {
                        keeper.keep_alive().await.is_ok()
                            && matches!(stream.message().await, Ok(Some(r)) if r.ttl() > 0)
                    }
                    Err(_) => false,
                };
                if alive {
                    id
                } else {
                    self.grant(&mut client, ttl).await?
                }
            }
            None => self.grant(&mut client, ttl).await?,
        };
        *lease = Some(id);
        let text = serde_json::to_string(record).map_err(|e| self.err("encode member", e))?;
        client
            .put(
                self.key(&format!("members/{}", record.id)),
                text,
                Some(PutOptions::new().with_lease(id)),
            )
            .await
            .map_err(|e| self.err("write member record", e))?;
        Ok(())
    }

    async fn grant(&self, client: &mut Client, ttl: i64) -> Result<i64, StoreError> {
        Ok(client
            .lease_grant(ttl, None)
            .await
            .map_err(|e| self.err("grant lease", e))?
            .id())
    }

    pub async fn remove_member(&self, id: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        client
            .delete(self.key(&format!("members/{id}")), None)
            .await
            .map_err(|e| self.err("remove member record", e))?;
        if let Some(lease) = self.lease.lock().await.take() {
            let _ = client.lease_revoke(lease).await;
        }
        Ok(())
    }

    pub async fn members(&self) -> Result<Vec<MemberRecord>, StoreError> {
        let (all, _) = self.get_prefix("members/").await?;
        Ok(all
            .values()
            .filter_map(|v| serde_json::from_str(v).ok())
            .collect())
    }

    /// Watches topologies and admin states. After any disconnect it reconnects
    /// with backoff, reads everything again and reports the differences, so no
    /// change made during an outage is missed; an outage itself changes nothing.
    pub fn watch_topologies(&self) -> TopologyWatcher {
        let (tx, rx) = mpsc::channel(64);
        let store = self.clone();
        let task = tokio::spawn(async move { store.watch_loop(tx).await });
        TopologyWatcher::new(rx, task)
    }

    async fn watch_loop(self, tx: mpsc::Sender<TopologyEvent>) {
        let mut known: BTreeMap<String, String> = BTreeMap::new();
        let mut known_states: Option<BTreeMap<String, AdminState>> = None;
        let mut known_aliases: Option<BTreeMap<String, String>> = None;
        let mut backoff = Duration::from_millis(100);
        let mut connected: Option<bool> = None;
        loop {
            let mut seen = Seen {
                topologies: &mut known,
                states: &mut known_states,
                aliases: &mut known_aliases,
            };
            match self.watch_once(&tx, &mut seen, &mut connected).await {
                Ok(()) => return, // receiver gone
                Err(err) => {
                    if connected != Some(false) {
                        tracing::error!(error = %err, "store disconnected; serving the last good config");
                        connected = Some(false);
                        if tx.send(TopologyEvent::Connection(false)).await.is_err() {
                            return;
                        }
                    }
                    // A broken client may hold dead connections: start afresh.
                    *self.client.lock().await = None;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    async fn watch_once(
        &self,
        tx: &mpsc::Sender<TopologyEvent>,
        seen: &mut Seen<'_>,
        connected: &mut Option<bool>,
    ) -> Result<(), StoreError> {
        let (snapshot, revision) = self.get_prefix("").await?;
        if *connected != Some(true) {
            tracing::info!(store = %location(&self.endpoints), "store connected");
            *connected = Some(true);
            if tx.send(TopologyEvent::Connection(true)).await.is_err() {
                return Ok(());
            }
        }
        let mut current: BTreeMap<String, String> = snapshot
            .into_iter()
            .filter(|(k, _)| !k.starts_with("members/"))
            .collect();
        if !emit_differences(tx, seen, &current).await {
            return Ok(());
        }
        let mut client = self.client().await?;
        let mut stream = client
            .watch(
                self.prefix.clone(),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision + 1),
                ),
            )
            .await
            .map_err(|e| self.err("watch", e))?;
        loop {
            let message = stream.message().await.map_err(|e| self.err("watch", e))?;
            let Some(response) = message else {
                return Err(self.err("watch", "stream ended"));
            };
            if response.canceled() {
                return Err(self.err("watch", "canceled by the server"));
            }
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let Some(key) = kv.key_str().ok().and_then(|k| k.strip_prefix(&self.prefix)) else {
                    continue;
                };
                if key.starts_with("members/") {
                    continue;
                }
                match event.event_type() {
                    EventType::Put => {
                        current.insert(
                            key.to_string(),
                            kv.value_str().unwrap_or_default().to_string(),
                        );
                    }
                    EventType::Delete => {
                        current.remove(key);
                    }
                }
            }
            if !emit_differences(tx, seen, &current).await {
                return Ok(());
            }
        }
    }
}

/// What the watcher has reported so far.
struct Seen<'a> {
    topologies: &'a mut BTreeMap<String, String>,
    states: &'a mut Option<BTreeMap<String, AdminState>>,
    aliases: &'a mut Option<BTreeMap<String, String>>,
}

/// Sends what changed between what was reported and `current`; false when
/// the receiver is gone.
async fn emit_differences(
    tx: &mpsc::Sender<TopologyEvent>,
    seen: &mut Seen<'_>,
    current: &BTreeMap<String, String>,
) -> bool {
    let states = admin_states(current);
    if seen.states.as_ref() != Some(&states) {
        *seen.states = Some(states.clone());
        if tx.send(TopologyEvent::AdminStates(states)).await.is_err() {
            return false;
        }
    }
    let sealed = aliases(current);
    if seen.aliases.as_ref() != Some(&sealed) {
        *seen.aliases = Some(sealed.clone());
        if tx.send(TopologyEvent::Aliases(sealed)).await.is_err() {
            return false;
        }
    }
    for (key, text) in current {
        let Some(name) = key.strip_prefix("topologies/") else {
            continue;
        };
        if seen.topologies.get(key) != Some(text) {
            seen.topologies.insert(key.clone(), text.clone());
            let event = TopologyEvent::Changed {
                name: name.to_string(),
                text: text.clone(),
            };
            if tx.send(event).await.is_err() {
                return false;
            }
        }
    }
    let removed: Vec<String> = seen
        .topologies
        .keys()
        .filter(|k| !current.contains_key(*k))
        .cloned()
        .collect();
    for key in removed {
        seen.topologies.remove(&key);
        if let Some(name) = key.strip_prefix("topologies/") {
            if tx
                .send(TopologyEvent::Removed {
                    name: name.to_string(),
                })
                .await
                .is_err()
            {
                return false;
            }
        }
    }
    true
}

fn aliases(all: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    all.iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("aliases/")?.to_string(), v.clone())))
        .collect()
}

fn admin_states(all: &BTreeMap<String, String>) -> BTreeMap<String, AdminState> {
    all.iter()
        .filter_map(|(k, v)| {
            let id = k.strip_prefix("admin/backends/")?;
            Some((id.to_string(), AdminState::parse(v)?))
        })
        .collect()
}
