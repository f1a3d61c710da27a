//! `ClusterStore`: the one interface the binary uses, over the `dir:` and
//! `etcd://` implementations, which behave the same way.

use std::collections::BTreeMap;

use portcullis_config::{AdminState, ClusterSection, StoreLocation};

use crate::diff::Snapshot;
use crate::etcd::EtcdSecurity;
use crate::members::{MemberRecord, MemberState};
use crate::{DirStore, EtcdStore, StoreError, StoreWatcher};

/// How often a `dir:` store is re-read (etcd pushes changes instead).
pub const DIR_POLL: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Debug, Clone)]
pub enum ClusterStore {
    Dir(DirStore),
    Etcd(EtcdStore),
}

/// Runs a blocking `dir:` operation off the async threads: a slow or hung
/// shared file system must not stall request handling.
async fn blocking<T: Send + 'static>(
    store: &DirStore,
    f: impl FnOnce(DirStore) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || f(store))
        .await
        .map_err(|e| StoreError::Io {
            location: "dir".to_string(),
            action: "blocking task".to_string(),
            cause: std::io::Error::other(e),
        })?
}

impl ClusterStore {
    pub fn open(location: &StoreLocation, cluster: &str) -> ClusterStore {
        match location {
            StoreLocation::Dir(path) => ClusterStore::Dir(DirStore::new(path)),
            StoreLocation::Etcd(endpoints) => {
                ClusterStore::Etcd(EtcdStore::new(endpoints.clone(), cluster))
            }
        }
    }

    /// The store of a member's `[cluster]` section, with its TLS files and
    /// etcd password read (an error names the store and the file).
    pub fn from_config(cluster: &ClusterSection) -> Result<ClusterStore, StoreError> {
        match &cluster.store {
            StoreLocation::Dir(path) => Ok(ClusterStore::Dir(DirStore::new(path))),
            StoreLocation::Etcd(endpoints) => {
                let location = crate::etcd::location(endpoints, cluster.tls.is_some());
                let security = EtcdSecurity::from_config(
                    &location,
                    cluster.tls.as_ref(),
                    cluster.auth.as_ref(),
                )?;
                Ok(ClusterStore::Etcd(EtcdStore::with_security(
                    endpoints.clone(),
                    &cluster.name,
                    security,
                )))
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            ClusterStore::Dir(d) => format!("dir:{}", d.root().display()),
            ClusterStore::Etcd(e) => e.location(),
        }
    }

    pub async fn prepare(&self) -> Result<(), StoreError> {
        match self {
            ClusterStore::Dir(d) => blocking(d, |d| d.ensure_layout()).await,
            ClusterStore::Etcd(_) => Ok(()),
        }
    }

    pub async fn list_topologies(&self) -> Result<BTreeMap<String, String>, StoreError> {
        match self {
            ClusterStore::Dir(d) => blocking(d, |d| d.list_topologies()).await,
            ClusterStore::Etcd(e) => e.list_topologies().await,
        }
    }

    pub async fn get_topology(&self, name: &str) -> Result<String, StoreError> {
        let name = name.to_string();
        match self {
            ClusterStore::Dir(d) => blocking(d, move |d| d.get_topology(&name)).await,
            ClusterStore::Etcd(e) => e.get_topology(&name).await,
        }
    }

    pub async fn put_topology(&self, name: &str, text: &str) -> Result<(), StoreError> {
        let (name, text) = (name.to_string(), text.to_string());
        match self {
            ClusterStore::Dir(d) => blocking(d, move |d| d.put_topology(&name, &text)).await,
            ClusterStore::Etcd(e) => e.put_topology(&name, &text).await,
        }
    }

    pub async fn delete_topology(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_string();
        match self {
            ClusterStore::Dir(d) => blocking(d, move |d| d.delete_topology(&name)).await,
            ClusterStore::Etcd(e) => e.delete_topology(&name).await,
        }
    }

    pub async fn backend_states(&self) -> Result<BTreeMap<String, AdminState>, StoreError> {
        match self {
            ClusterStore::Dir(d) => blocking(d, |d| d.backend_states()).await,
            ClusterStore::Etcd(e) => e.backend_states().await,
        }
    }

    pub async fn set_backend_state(
        &self,
        backend_id: &str,
        state: AdminState,
    ) -> Result<(), StoreError> {
        let id = backend_id.to_string();
        match self {
            ClusterStore::Dir(d) => blocking(d, move |d| d.set_backend_state(&id, state)).await,
            ClusterStore::Etcd(e) => e.set_backend_state(&id, state).await,
        }
    }

    /// Operators' member states that are not `enabled`, by member id. Kept
    /// apart from the member records, which members rewrite every heartbeat.
    pub async fn member_states(&self) -> Result<BTreeMap<String, MemberState>, StoreError> {
        match self {
            ClusterStore::Dir(d) => blocking(d, |d| d.member_states()).await,
            ClusterStore::Etcd(e) => e.member_states().await,
        }
    }

    pub async fn set_member_state(&self, id: &str, state: MemberState) -> Result<(), StoreError> {
        let id = id.to_string();
        match self {
            ClusterStore::Dir(d) => blocking(d, move |d| d.set_member_state(&id, state)).await,
            ClusterStore::Etcd(e) => e.set_member_state(&id, state).await,
        }
    }

    pub async fn cookie_key(&self) -> Result<[u8; 32], StoreError> {
        match self {
            ClusterStore::Dir(d) => blocking(d, |d| d.cookie_key()).await,
            ClusterStore::Etcd(e) => e.cookie_key().await,
        }
    }

    pub async fn aliases(&self) -> Result<BTreeMap<String, String>, StoreError> {
        match self {
            ClusterStore::Dir(d) => blocking(d, |d| d.aliases()).await,
            ClusterStore::Etcd(e) => e.aliases().await,
        }
    }

    pub async fn put_alias(&self, name: &str, sealed: &str) -> Result<(), StoreError> {
        let (name, sealed) = (name.to_string(), sealed.to_string());
        match self {
            ClusterStore::Dir(d) => blocking(d, move |d| d.put_alias(&name, &sealed)).await,
            ClusterStore::Etcd(e) => e.put_alias(&name, &sealed).await,
        }
    }

    pub async fn delete_alias(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_string();
        match self {
            ClusterStore::Dir(d) => blocking(d, move |d| d.delete_alias(&name)).await,
            ClusterStore::Etcd(e) => e.delete_alias(&name).await,
        }
    }

    pub async fn create_alias_if_absent(
        &self,
        name: &str,
        sealed: &str,
    ) -> Result<String, StoreError> {
        let (name, sealed) = (name.to_string(), sealed.to_string());
        match self {
            ClusterStore::Dir(d) => {
                blocking(d, move |d| d.create_alias_if_absent(&name, &sealed)).await
            }
            ClusterStore::Etcd(e) => e.create_alias_if_absent(&name, &sealed).await,
        }
    }

    /// Every API key record's text by name.
    pub async fn api_keys(&self) -> Result<BTreeMap<String, String>, StoreError> {
        match self {
            ClusterStore::Dir(d) => blocking(d, |d| d.api_keys()).await,
            ClusterStore::Etcd(e) => e.api_keys().await,
        }
    }

    /// Stores a new key record; [`StoreError::Exists`] when the name is in use.
    pub async fn create_api_key(&self, name: &str, record: &str) -> Result<(), StoreError> {
        let (name, record) = (name.to_string(), record.to_string());
        match self {
            ClusterStore::Dir(d) => blocking(d, move |d| d.create_api_key(&name, &record)).await,
            ClusterStore::Etcd(e) => e.create_api_key(&name, &record).await,
        }
    }

    pub async fn delete_api_key(&self, name: &str) -> Result<(), StoreError> {
        let name = name.to_string();
        match self {
            ClusterStore::Dir(d) => blocking(d, move |d| d.delete_api_key(&name)).await,
            ClusterStore::Etcd(e) => e.delete_api_key(&name).await,
        }
    }

    pub async fn put_member(&self, record: &MemberRecord) -> Result<(), StoreError> {
        match self {
            ClusterStore::Dir(d) => {
                let record = record.clone();
                blocking(d, move |d| d.put_member(&record)).await
            }
            ClusterStore::Etcd(e) => e.put_member(record).await,
        }
    }

    pub async fn remove_member(&self, id: &str) -> Result<(), StoreError> {
        let id = id.to_string();
        match self {
            ClusterStore::Dir(d) => blocking(d, move |d| d.remove_member(&id)).await,
            ClusterStore::Etcd(e) => e.remove_member(&id).await,
        }
    }

    /// Removes records of members silent for longer than `older_than`; a
    /// no-op on etcd, where leases expire them.
    pub async fn prune_members(
        &self,
        older_than: std::time::Duration,
    ) -> Result<Vec<String>, StoreError> {
        match self {
            ClusterStore::Dir(d) => blocking(d, move |d| d.prune_members(older_than)).await,
            ClusterStore::Etcd(_) => Ok(Vec::new()),
        }
    }

    pub async fn members(&self) -> Result<Vec<MemberRecord>, StoreError> {
        match self {
            ClusterStore::Dir(d) => blocking(d, |d| d.members()).await,
            ClusterStore::Etcd(e) => e.members().await,
        }
    }

    /// Follows the store's topologies, admin states and aliases (see
    /// [`crate::diff`] for which events come in which order).
    pub fn watch(&self) -> StoreWatcher {
        self.watch_from(None)
    }

    /// [`Self::watch`] for a member that already serves `known` (its cache):
    /// the first read reports only what differs, removals included.
    pub fn watch_from(&self, known: Option<Snapshot>) -> StoreWatcher {
        match self {
            ClusterStore::Dir(d) => d.watch(DIR_POLL, known),
            ClusterStore::Etcd(e) => e.watch(known),
        }
    }
}
