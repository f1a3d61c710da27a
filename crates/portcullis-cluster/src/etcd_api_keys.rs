//! API key records in etcd: `/portcullis/<cluster>/keys/NAME`, one JSON
//! document each (see [`crate::api_keys`]), followed by the same watch as
//! topologies, so every member learns a new or revoked key at once.

use std::collections::BTreeMap;

use etcd_client::{Compare, CompareOp, Txn, TxnOp};

use super::{snapshot_of, EtcdStore};
use crate::StoreError;

impl EtcdStore {
    pub async fn api_keys(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let (keys, _) = self.get_prefix_bytes("keys/").await?;
        Ok(snapshot_of(&keys).api_keys)
    }

    /// Stores a new key record in one transaction; a name in use is
    /// refused, never replaced.
    pub async fn create_api_key(&self, name: &str, record: &str) -> Result<(), StoreError> {
        crate::validate_record_name(name)?;
        let key = self.key(&format!("keys/{name}"));
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key, record, None)]);
        let mut client = self.client().await?;
        let response = client
            .txn(txn)
            .await
            .map_err(|e| self.err("create key", e))?;
        if !response.succeeded() {
            return Err(StoreError::Exists(format!("key {name}")));
        }
        Ok(())
    }

    pub async fn delete_api_key(&self, name: &str) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let response = client
            .delete(self.key(&format!("keys/{name}")), None)
            .await
            .map_err(|e| self.err("delete key", e))?;
        if response.deleted() == 0 {
            return Err(StoreError::NotFound(format!("key {name}")));
        }
        Ok(())
    }
}
