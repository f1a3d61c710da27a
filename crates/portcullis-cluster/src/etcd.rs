//! The `etcd://` store (etcd v3). Key layout, under `/portcullis/<cluster>/`:
//! `topologies/<name>`, `admin/backends/<backend-id>`, `members/<id>` (under a
//! lease, so a member that stops heartbeating disappears), `cluster/cookie-key`.
//! Reached over plain HTTP (`etcd://`) or TLS (`etcd+tls://`, with a client
//! certificate when etcd asks for one), as an etcd user when one is set.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::time::Duration;

use base64::Engine;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, EventType, GetOptions, Identity,
    PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use portcullis_config::{AdminState, StoreAuth, StoreTls};
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::diff::Snapshot;
use crate::members::{MemberRecord, MemberState};
use crate::watch::{ReceiverGone, Reporter, StoreWatcher};
use crate::StoreError;

#[path = "etcd_api_keys.rs"]
mod api_keys;

/// How long one etcd call may take before the store counts as unreachable.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct EtcdStore {
    endpoints: Vec<String>,
    prefix: String,
    /// TLS and login, read from their files once when the store is opened.
    security: std::sync::Arc<EtcdSecurity>,
    client: std::sync::Arc<Mutex<Option<Client>>>,
    lease: std::sync::Arc<Mutex<Option<i64>>>,
}

/// How a member proves itself to etcd and checks etcd's certificate.
#[derive(Default)]
pub struct EtcdSecurity {
    /// Set for `etcd+tls://`.
    pub tls: Option<TlsOptions>,
    /// The etcd user and its password.
    pub login: Option<(String, Zeroizing<String>)>,
}

impl EtcdSecurity {
    /// Reads `[cluster] tls` and the password file. Errors name the store,
    /// the config key and the file.
    pub fn from_config(
        store: &str,
        tls: Option<&StoreTls>,
        auth: Option<&StoreAuth>,
    ) -> Result<EtcdSecurity, StoreError> {
        let read = |key: &str, path: &std::path::Path| {
            std::fs::read(path).map_err(|source| StoreError::Io {
                location: store.to_string(),
                action: format!("reading {key} {}", path.display()),
                cause: source,
            })
        };
        let tls = match tls {
            None => None,
            Some(tls) => {
                let ca = Certificate::from_pem(read("cluster.tls.ca", &tls.ca)?);
                let mut options = TlsOptions::new().ca_certificate(ca);
                if let Some(client) = &tls.client {
                    let cert = read("cluster.tls.cert", &client.cert)?;
                    let key = Zeroizing::new(read("cluster.tls.key", &client.key)?);
                    options = options.identity(Identity::from_pem(cert, key.as_slice()));
                }
                Some(options)
            }
        };
        let login = match auth {
            None => None,
            Some(auth) => {
                portcullis_config::check_password_file(&auth.password_file).map_err(|reason| {
                    StoreError::Io {
                        location: store.to_string(),
                        action: "reading cluster.password_file".to_string(),
                        cause: std::io::Error::other(reason),
                    }
                })?;
                let bytes = Zeroizing::new(read("cluster.password_file", &auth.password_file)?);
                let text = String::from_utf8_lossy(&bytes);
                // A trailing newline from `echo pw > file` is not part of it.
                let password = Zeroizing::new(text.trim_end_matches(['\r', '\n']).to_string());
                Some((auth.user.clone(), password))
            }
        };
        Ok(EtcdSecurity { tls, login })
    }
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EtcdStore({})", self.endpoints.join(","))
    }
}

/// The store as the operator wrote it: `etcd://` or `etcd+tls://` endpoints.
pub(crate) fn location(endpoints: &[String], tls: bool) -> String {
    let scheme = if tls { "etcd+tls" } else { "etcd" };
    format!("{scheme}://{}", endpoints.join(","))
}

impl EtcdStore {
    /// Does not connect yet: the first call (or the watcher) does, so a member
    /// starts and serves its last config even while etcd is down.
    pub fn new(endpoints: Vec<String>, cluster: &str) -> EtcdStore {
        EtcdStore::with_security(endpoints, cluster, EtcdSecurity::default())
    }

    pub fn with_security(
        endpoints: Vec<String>,
        cluster: &str,
        security: EtcdSecurity,
    ) -> EtcdStore {
        EtcdStore {
            endpoints,
            prefix: format!("/portcullis/{cluster}/"),
            security: std::sync::Arc::new(security),
            client: Default::default(),
            lease: Default::default(),
        }
    }

    /// `etcd://HOST:PORT,...` or `etcd+tls://...`, for messages.
    pub fn location(&self) -> String {
        location(&self.endpoints, self.security.tls.is_some())
    }

    fn err(&self, action: &str, error: impl std::fmt::Display) -> StoreError {
        StoreError::Io {
            location: self.location(),
            action: action.to_string(),
            cause: std::io::Error::other(error.to_string()),
        }
    }

    async fn client(&self) -> Result<Client, StoreError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref() {
            return Ok(client.clone());
        }
        let scheme = if self.security.tls.is_some() {
            "https"
        } else {
            "http"
        };
        let endpoints: Vec<String> = self
            .endpoints
            .iter()
            .map(|e| format!("{scheme}://{e}"))
            .collect();
        let mut options = ConnectOptions::new()
            .with_connect_timeout(CALL_TIMEOUT)
            .with_timeout(CALL_TIMEOUT)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        if let Some(tls) = &self.security.tls {
            options = options.with_tls(tls.clone());
        }
        if let Some((user, password)) = &self.security.login {
            // Tokens expire (etcd's --auth-token-ttl): log in again then.
            options = options
                .with_user(user.clone(), password.as_str())
                .with_auto_token_refresh(true);
        }
        let client =
            tokio::time::timeout(CALL_TIMEOUT * 2, Client::connect(endpoints, Some(options)))
                .await
                .map_err(|_| self.err("connect", "timed out"))?
                .map_err(|e| self.connect_error(&e))?;
        *slot = Some(client.clone());
        Ok(client)
    }

    /// A failed connect: a refused login is final ([`StoreError::Refused`]);
    /// anything else may pass.
    fn connect_error(&self, error: &etcd_client::Error) -> StoreError {
        match error {
            etcd_client::Error::GRpcStatus(status)
                if status.message().contains("authentication failed") =>
            {
                StoreError::Refused {
                    location: self.location(),
                    reason: format!(
                        "{} (check [cluster] user and password_file)",
                        status.message()
                    ),
                }
            }
            _ => self.err("connect", self.explain_connect_error(error)),
        }
    }

    /// etcd closes a TLS connection without a word when it refuses the
    /// member's certificate (or its absence): say where to look.
    fn explain_connect_error(&self, error: &etcd_client::Error) -> String {
        let text = error.to_string();
        // etcd's refusal reaches us in several words (a fatal alert
        // "BadCertificate", a connection closed or a broken pipe during the
        // handshake), so anything but an unreachable endpoint gets the hint.
        let lower = text.to_ascii_lowercase();
        let unreachable = ["tcp connect", "connection refused", "timed out", "no route"]
            .iter()
            .any(|hint| lower.contains(hint));
        let tls_refused = !unreachable;
        if self.security.tls.is_some() && tls_refused {
            format!("{text} (if the TLS handshake failed: [cluster] tls must name the CA that signed etcd's certificate, and a client certificate and key when etcd runs with --client-cert-auth)")
        } else {
            text
        }
    }

    fn key(&self, suffix: &str) -> String {
        format!("{}{suffix}", self.prefix)
    }

    /// Every key under `suffix` (relative to the cluster's prefix) with its
    /// stored bytes, and the revision read.
    async fn get_prefix_bytes(
        &self,
        suffix: &str,
    ) -> Result<(BTreeMap<String, Vec<u8>>, i64), StoreError> {
        let mut client = self.client().await?;
        let response = client
            .get(self.key(suffix), Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| self.err("read", e))?;
        let revision = response.header().map(|h| h.revision()).unwrap_or(0);
        let keys = response
            .kvs()
            .iter()
            .filter_map(|kv| Some((relative_key(&self.prefix, kv.key())?, kv.value())))
            .map(|(key, value)| (key.to_string(), value.to_vec()))
            .collect();
        Ok((keys, revision))
    }

    /// [`Self::get_prefix_bytes`], leaving out values that are not UTF-8.
    async fn get_prefix(&self, suffix: &str) -> Result<BTreeMap<String, String>, StoreError> {
        let (keys, _) = self.get_prefix_bytes(suffix).await?;
        Ok(keys
            .into_iter()
            .filter_map(|(key, value)| Some((key, String::from_utf8(value).ok()?)))
            .collect())
    }

    pub async fn list_topologies(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let all = self.get_prefix("topologies/").await?;
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
        let (keys, _) = self.get_prefix_bytes("admin/backends/").await?;
        Ok(snapshot_of(&keys).admin_states)
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

    /// Member states that are not `enabled`, from `admin/members/<id>`.
    pub async fn member_states(&self) -> Result<BTreeMap<String, MemberState>, StoreError> {
        let all = self.get_prefix("admin/members/").await?;
        Ok(all
            .into_iter()
            .filter_map(|(key, value)| {
                let id = key.strip_prefix("admin/members/")?;
                Some((id.to_string(), MemberState::parse(&value)?))
            })
            .collect())
    }

    /// `Enabled` deletes the key, so the store lists only exceptions.
    pub async fn set_member_state(&self, id: &str, state: MemberState) -> Result<(), StoreError> {
        crate::validate_record_name(id)?;
        let key = self.key(&format!("admin/members/{id}"));
        let mut client = self.client().await?;
        let result = match state {
            MemberState::Enabled => client.delete(key, None).await.map(|_| ()),
            MemberState::Draining => client.put(key, state.as_str(), None).await.map(|_| ()),
        };
        result.map_err(|e| self.err("write member state", e))
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
        let (keys, _) = self.get_prefix_bytes("aliases/").await?;
        Ok(snapshot_of(&keys).aliases)
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
        let all = self.get_prefix("members/").await?;
        Ok(all
            .values()
            .filter_map(|v| serde_json::from_str(v).ok())
            .collect())
    }

    /// Watches everything a member follows: topologies, admin states and
    /// aliases. After any disconnect it reconnects with backoff, reads
    /// everything again and reports the differences, so no change made during
    /// an outage is missed; an outage itself changes nothing.
    pub fn watch(&self, known: Option<Snapshot>) -> StoreWatcher {
        let store = self.clone();
        StoreWatcher::spawn(known, move |reporter| store.watch_loop(reporter))
    }

    async fn watch_loop(self, mut reporter: Reporter) {
        let mut backoff = BACKOFF_MIN;
        loop {
            let Err(WatchStop::Store(err)) = self.watch_once(&mut reporter, &mut backoff).await
            else {
                return; // the member stopped listening
            };
            match reporter.connection(false).await {
                Err(ReceiverGone) => return,
                Ok(true) => {
                    tracing::error!(error = %err, "store disconnected; serving the last good config")
                }
                Ok(false) => {}
            }
            // A broken client may hold dead connections: start afresh.
            *self.client.lock().await = None;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Reads everything, reports it, then follows the changes from that
    /// revision on, until the store fails or the member stops listening.
    /// `backoff` starts again from its minimum once the store answered, so
    /// an outage long ago does not slow the reconnect after the next one.
    async fn watch_once(
        &self,
        reporter: &mut Reporter,
        backoff: &mut Duration,
    ) -> Result<Infallible, WatchStop> {
        let store = self.location();
        let (mut current, revision) = self.get_prefix_bytes("").await?;
        *backoff = BACKOFF_MIN;
        current.retain(|key, _| followed(key));
        if reporter.connection(true).await? {
            tracing::info!(store = %store, "store connected");
        }
        let read = Snapshot {
            revision: Some(revision),
            ..snapshot_of(&current)
        };
        reporter.snapshot(read, &store).await?;
        let mut client = self.client().await?;
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(revision + 1);
        let mut stream = client
            .watch(self.prefix.clone(), Some(options))
            .await
            .map_err(|e| self.err("watch", e))?;
        loop {
            let message = stream.message().await.map_err(|e| self.err("watch", e))?;
            let Some(response) = message else {
                return Err(self.err("watch", "stream ended").into());
            };
            if response.canceled() {
                return Err(self.err("watch", "canceled by the server").into());
            }
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let Some(key) = relative_key(&self.prefix, kv.key()).filter(|k| followed(k)) else {
                    continue;
                };
                let value = match event.event_type() {
                    EventType::Put => Some(kv.value()),
                    EventType::Delete => None,
                };
                apply_key_change(&mut current, key, value);
            }
            let watched = Snapshot {
                revision: response.header().map(|h| h.revision()),
                ..snapshot_of(&current)
            };
            reporter.snapshot(watched, &store).await?;
        }
    }
}

/// Why a watch ended: the store failed (reconnect), or nobody listens (stop).
enum WatchStop {
    Store(StoreError),
    ReceiverGone,
}

impl From<StoreError> for WatchStop {
    fn from(err: StoreError) -> Self {
        WatchStop::Store(err)
    }
}

impl From<ReceiverGone> for WatchStop {
    fn from(_: ReceiverGone) -> Self {
        WatchStop::ReceiverGone
    }
}

/// A key of this cluster relative to its `prefix`; `None` for other
/// clusters' keys and keys that are not UTF-8.
fn relative_key<'a>(prefix: &str, key: &'a [u8]) -> Option<&'a str> {
    std::str::from_utf8(key).ok()?.strip_prefix(prefix)
}

/// Whether a member follows changes of `key`: member records change with
/// every heartbeat and are read on demand instead.
fn followed(key: &str) -> bool {
    !key.starts_with("members/")
}

/// Applies one watched change (`None`: deleted) to the keys read so far.
fn apply_key_change(current: &mut BTreeMap<String, Vec<u8>>, key: &str, value: Option<&[u8]>) {
    match value {
        Some(value) => {
            current.insert(key.to_string(), value.to_vec());
        }
        None => {
            current.remove(key);
        }
    }
}

/// What a member follows, from the cluster's keys (relative to its prefix).
/// Records that cannot be read are left out, as if absent: an admin state
/// that is not one of the known words, an alias that is not UTF-8. A
/// topology is kept as bytes (see [`Snapshot::topologies`]).
fn snapshot_of(keys: &BTreeMap<String, Vec<u8>>) -> Snapshot {
    let mut snapshot = Snapshot::default();
    for (key, value) in keys {
        if let Some(name) = key.strip_prefix("topologies/") {
            snapshot.topologies.insert(name.to_string(), value.clone());
        } else if let Some(id) = key.strip_prefix("admin/backends/") {
            let state = std::str::from_utf8(value).ok().and_then(AdminState::parse);
            if let Some(state) = state {
                snapshot.admin_states.insert(id.to_string(), state);
            }
        } else if let Some(name) = key.strip_prefix("aliases/") {
            if let Ok(sealed) = std::str::from_utf8(value) {
                snapshot
                    .aliases
                    .insert(name.to_string(), sealed.to_string());
            }
        } else if let Some(name) = key.strip_prefix("keys/") {
            if let Ok(record) = std::str::from_utf8(value) {
                snapshot
                    .api_keys
                    .insert(name.to_string(), record.to_string());
            }
        }
    }
    snapshot
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::StoreEvent;

    const PREFIX: &str = "/portcullis/prod/";

    fn keys(entries: &[(&str, &[u8])]) -> BTreeMap<String, Vec<u8>> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect()
    }

    #[test]
    fn only_this_clusters_utf8_keys_are_read() {
        assert_eq!(
            relative_key(PREFIX, b"/portcullis/prod/topologies/t"),
            Some("topologies/t")
        );
        assert_eq!(relative_key(PREFIX, b"/portcullis/production/x"), None);
        assert_eq!(relative_key(PREFIX, b"/portcullis/test/topologies/t"), None);
        assert_eq!(relative_key(PREFIX, b"/portcullis/prod/\xff"), None);
    }

    #[test]
    fn member_records_are_not_followed() {
        assert!(!followed("members/m-1"));
        assert!(followed("topologies/members"));
        assert!(followed("aliases/a"));
        assert!(followed("admin/backends/ab12"));
    }

    #[test]
    fn a_snapshot_sorts_keys_into_what_members_follow() {
        let snapshot = snapshot_of(&keys(&[
            ("topologies/sales", b"a = 1"),
            ("topologies/broken", b"\xff"),
            ("admin/backends/ab12", b"draining"),
            ("admin/backends/cd34", b"disabled"),
            ("admin/backends/ef56", b"asleep"),
            ("aliases/db.password", b"sealed-1"),
            ("aliases/bad", b"\xc3"),
            ("cluster/cookie-key", b"key"),
            ("members/m-1", b"{}"),
        ]));
        assert_eq!(
            snapshot.topologies,
            keys(&[
                ("topologies/broken", b"\xff"),
                ("topologies/sales", b"a = 1")
            ])
            .into_iter()
            .map(|(k, v)| (k["topologies/".len()..].to_string(), v))
            .collect()
        );
        assert_eq!(
            snapshot.admin_states,
            BTreeMap::from([
                ("ab12".to_string(), AdminState::Draining),
                ("cd34".to_string(), AdminState::Disabled),
            ])
        );
        assert_eq!(
            snapshot.aliases,
            BTreeMap::from([("db.password".to_string(), "sealed-1".to_string())])
        );
    }

    #[test]
    fn watched_puts_and_deletes_update_the_keys_read() {
        let mut current = keys(&[("topologies/a", b"1"), ("topologies/b", b"1")]);
        apply_key_change(&mut current, "topologies/a", Some(b"2"));
        apply_key_change(&mut current, "topologies/b", None);
        apply_key_change(&mut current, "topologies/c", Some(b"1"));
        apply_key_change(&mut current, "topologies/never-there", None);
        assert_eq!(
            current,
            keys(&[("topologies/a", b"2"), ("topologies/c", b"1")])
        );
    }

    /// A watch response as the watcher handles it: changes applied to the
    /// keys read, then the snapshot diffed against the one reported before.
    #[test]
    fn a_watch_response_becomes_the_events_of_its_changes() {
        let mut current = keys(&[
            ("topologies/kept", b"1"),
            ("topologies/gone", b"1"),
            ("admin/backends/ab12", b"draining"),
        ]);
        let reported = snapshot_of(&current);
        apply_key_change(&mut current, "topologies/gone", None);
        apply_key_change(&mut current, "topologies/new", Some(b"2"));
        apply_key_change(&mut current, "admin/backends/ab12", None);
        // An unreadable admin state counts as absent, in a watch as on a read.
        apply_key_change(&mut current, "admin/backends/cd34", Some(b"asleep"));
        assert_eq!(
            crate::diff(Some(&reported), &snapshot_of(&current)),
            vec![
                StoreEvent::AdminStates(BTreeMap::new()),
                StoreEvent::Changed {
                    name: "new".into(),
                    text: "2".into()
                },
                StoreEvent::Removed {
                    name: "gone".into()
                },
            ]
        );
    }

    #[test]
    fn a_store_is_named_by_its_endpoints_without_connecting() {
        let store = EtcdStore::new(vec!["127.0.0.1:2379".into(), "[::1]:2379".into()], "prod");
        assert_eq!(store.key("topologies/t"), "/portcullis/prod/topologies/t");
        assert_eq!(format!("{store:?}"), "EtcdStore(127.0.0.1:2379,[::1]:2379)");
        assert_eq!(store.location(), "etcd://127.0.0.1:2379,[::1]:2379");
        assert_eq!(
            location(&store.endpoints, true),
            "etcd+tls://127.0.0.1:2379,[::1]:2379"
        );
    }
}
