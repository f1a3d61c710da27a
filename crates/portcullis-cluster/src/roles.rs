//! Role enforcement for writes: topologies, aliases and admin state change only
//! through managers. The admin API and the CLI both write through `Writer`, so
//! a worker refuses in one place.

use std::path::Path;

use portcullis_config::{AdminState, Role};

use crate::members::{now_ms, MemberState, RoleName};
use crate::{ClusterStore, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// 403 in the admin API: names where writes are accepted.
    #[error("this member is a worker and only reads; send writes to a manager: {}", if managers.is_empty() { "no live manager found".to_string() } else { managers.join(", ") })]
    WorkerRefused { managers: Vec<String> },
    /// The topology failed validation; nothing was stored.
    #[error(transparent)]
    Topology(portcullis_config::ConfigErrors),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Writes to the cluster store on behalf of a member with `role`.
pub struct Writer<'a> {
    store: &'a ClusterStore,
    role: Role,
}

impl<'a> Writer<'a> {
    pub fn new(store: &'a ClusterStore, role: Role) -> Writer<'a> {
        Writer { store, role }
    }

    /// Admin URLs (or public URLs when a manager has no admin listener) of the
    /// live managers.
    pub async fn managers(&self) -> Vec<String> {
        let now = now_ms();
        self.store
            .members()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m.role == RoleName::Manager && m.is_alive(now))
            .map(|m| m.admin_url.unwrap_or(m.public_url))
            .collect()
    }

    async fn check(&self) -> Result<(), WriteError> {
        match self.role {
            Role::Manager => Ok(()),
            Role::Worker => Err(WriteError::WorkerRefused {
                managers: self.managers().await,
            }),
        }
    }

    /// Validates and stores a topology; an invalid one is never stored.
    /// Validation is what a member does before applying, files included
    /// (`tls_ca`, relative to `base_dir`, the writer's config directory), so
    /// what is stored here every member can apply. It runs on the blocking
    /// pool: a large document takes CPU that requests should not wait for.
    pub async fn put_topology(
        &self,
        name: &str,
        text: &str,
        base_dir: &Path,
    ) -> Result<(), WriteError> {
        self.check().await?;
        let (owned_name, owned_text, base_dir) =
            (name.to_string(), text.to_string(), base_dir.to_path_buf());
        tokio::task::spawn_blocking(move || {
            portcullis_config::load_stored_topology(&owned_name, &owned_text, &base_dir)
        })
        .await
        .map_err(|e| StoreError::Io {
            location: "validation".to_string(),
            action: "validate topology".to_string(),
            cause: std::io::Error::other(e),
        })?
        .map_err(WriteError::Topology)?;
        Ok(self.store.put_topology(name, text).await?)
    }

    pub async fn delete_topology(&self, name: &str) -> Result<(), WriteError> {
        self.check().await?;
        Ok(self.store.delete_topology(name).await?)
    }

    /// Stores an alias value that the caller already sealed.
    pub async fn put_alias(&self, name: &str, sealed: &str) -> Result<(), WriteError> {
        self.check().await?;
        Ok(self.store.put_alias(name, sealed).await?)
    }

    pub async fn delete_alias(&self, name: &str) -> Result<(), WriteError> {
        self.check().await?;
        Ok(self.store.delete_alias(name).await?)
    }

    /// Stores a new API key record (a keyed hash, never the key).
    pub async fn create_api_key(&self, name: &str, record: &str) -> Result<(), WriteError> {
        self.check().await?;
        Ok(self.store.create_api_key(name, record).await?)
    }

    /// Revokes a key: every member refuses it once it reads the change.
    pub async fn delete_api_key(&self, name: &str) -> Result<(), WriteError> {
        self.check().await?;
        Ok(self.store.delete_api_key(name).await?)
    }

    pub async fn set_backend_state(
        &self,
        backend_id: &str,
        state: AdminState,
    ) -> Result<(), WriteError> {
        self.check().await?;
        Ok(self.store.set_backend_state(backend_id, state).await?)
    }

    /// Drains or re-enables a member for every balancer.
    pub async fn set_member_state(&self, id: &str, state: MemberState) -> Result<(), WriteError> {
        self.check().await?;
        Ok(self.store.set_member_state(id, state).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::members::MemberRecord;

    const GOOD: &str = "[[service]]\nname = \"a\"\nurls = [\"http://127.0.0.1:1\"]\n";

    #[tokio::test]
    async fn workers_refuse_writes_and_name_the_managers() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::DirStore::new(dir.path());
        store.ensure_layout().unwrap();
        store
            .put_member(&MemberRecord {
                id: "boss".into(),
                role: RoleName::Manager,
                public_url: "http://127.0.0.1:8443".into(),
                admin_url: Some("http://127.0.0.1:9090".into()),
                version: "0".into(),
                generation: 0,
                config_hash: String::new(),
                in_flight: 0,
                requests: 0,
                errors: 0,
                heartbeat_ms: 1000,
                updated_at_ms: now_ms(),
            })
            .unwrap();
        let cluster = ClusterStore::Dir(store.clone());
        let worker = Writer::new(&cluster, Role::Worker);
        let err = worker
            .put_topology("t", GOOD, Path::new("."))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, WriteError::WorkerRefused { managers } if managers == &vec!["http://127.0.0.1:9090".to_string()])
        );
        assert!(err.to_string().contains("http://127.0.0.1:9090"));
        assert!(store.get_topology("t").is_err(), "nothing was written");
        assert!(matches!(
            worker.set_backend_state("ab", AdminState::Disabled).await,
            Err(WriteError::WorkerRefused { .. })
        ));

        let manager = Writer::new(&cluster, Role::Manager);
        manager
            .put_topology("t", GOOD, Path::new("."))
            .await
            .unwrap();
        assert_eq!(store.get_topology("t").unwrap(), GOOD);
        let err = manager
            .put_topology(
                "t",
                "[[service]]\nname = \"a\"\nurls = []\n",
                Path::new("."),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("service[0].urls"), "{err}");
        assert_eq!(
            store.get_topology("t").unwrap(),
            GOOD,
            "an invalid topology is not stored"
        );
    }
}
