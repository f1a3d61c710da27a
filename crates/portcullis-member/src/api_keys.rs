//! API keys at a member (PRODUCT.md §11, docs/policies.md "API keys"):
//! creating and revoking them in the store (for the CLI and the admin API
//! alike) and following the store's `keys/` into the data plane's key
//! table. The store holds only keyed hashes; a key is shown once, when it
//! is created.
//!
//! Last use is kept in each member (never written to the store per
//! request) and reported by that member's admin API.

use std::collections::BTreeMap;
use std::time::Duration;

use portcullis_cluster::members::now_ms;
use portcullis_cluster::{ApiKeyRecord, WriteError, Writer};
use portcullis_policy::{ApiKeyEntry, ApiKeyTable};
use portcullis_proxy::Gateway;
use portcullis_secrets::{ApiKeyHasher, MasterSecret};
use serde::Serialize;
use zeroize::Zeroizing;

/// The hasher every member of a cluster agrees on: from the master secret
/// when the member has one, else from the cluster's cookie key (as the
/// admin token is derived without one).
pub fn hasher(master: Option<&MasterSecret>, cookie_key: &[u8; 32], cluster: &str) -> ApiKeyHasher {
    match master {
        Some(master) => ApiKeyHasher::from_master(master, cluster),
        None => ApiKeyHasher::from_cookie_key(cookie_key, cluster),
    }
}

/// What `key create` is asked for.
pub struct NewKey<'a> {
    pub name: &'a str,
    pub topology: &'a str,
    pub service: Option<&'a str>,
    pub expires_in: Option<Duration>,
}

/// Why a key was not created.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key name {0:?}: use 1-128 letters, digits, '.', '_' or '-', not starting with '.'")]
    BadName(String),
    #[error("topology {0:?}: {1}")]
    BadTopology(String, String),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// Creates a key and stores its record; the key itself is returned, once,
/// and kept nowhere.
pub async fn create(
    writer: &Writer<'_>,
    hasher: &ApiKeyHasher,
    new: &NewKey<'_>,
) -> Result<Zeroizing<String>, KeyError> {
    if !valid_name(new.name) {
        return Err(KeyError::BadName(new.name.to_string()));
    }
    portcullis_config::validate_topology_name(new.topology)
        .map_err(|reason| KeyError::BadTopology(new.topology.to_string(), reason))?;
    let key = portcullis_secrets::generate_api_key();
    let now = now_ms();
    let expires_at_ms = new
        .expires_in
        .map(|d| now.saturating_add(d.as_millis() as u64));
    let record = ApiKeyRecord::new(
        &hasher.hash(key.as_bytes()),
        new.topology,
        new.service,
        expires_at_ms,
        now,
    );
    writer.create_api_key(new.name, &record.to_text()).await?;
    Ok(key)
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// One line of `key list`: never the hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyListing {
    pub name: String,
    pub topology: String,
    pub service: Option<String>,
    pub expires_at_ms: Option<u64>,
    pub created_at_ms: u64,
    /// As this member saw it; `None` never (or not since it started).
    pub last_used_ms: Option<u64>,
}

/// The store's key records as listings; unreadable records are left out
/// and logged. `table` supplies this member's last-use times.
pub fn listings(
    records: &BTreeMap<String, String>,
    table: Option<&ApiKeyTable>,
) -> Vec<KeyListing> {
    records
        .iter()
        .filter_map(|(name, text)| {
            let record = parse_logged(name, text)?;
            let last_used_ms = table.and_then(|t| {
                t.entries()
                    .find(|e| &e.name == name)
                    .and_then(ApiKeyEntry::last_used_ms)
            });
            Some(KeyListing {
                name: name.clone(),
                topology: record.topology,
                service: record.service,
                expires_at_ms: record.expires_at_ms,
                created_at_ms: record.created_at_ms,
                last_used_ms,
            })
        })
        .collect()
}

fn parse_logged(name: &str, text: &str) -> Option<ApiKeyRecord> {
    match ApiKeyRecord::parse(text) {
        Ok(record) => Some(record),
        Err(reason) => {
            tracing::error!(
                key = name,
                "unreadable API key record ({reason}); the key is refused"
            );
            None
        }
    }
}

/// Replaces the data plane's key table with the store's records.
pub fn follow(gateway: &Gateway, hasher: &ApiKeyHasher, records: &BTreeMap<String, String>) {
    let keys = gateway.api_keys();
    let entries: Vec<([u8; 32], ApiKeyEntry)> = records
        .iter()
        .filter_map(|(name, text)| {
            let record = parse_logged(name, text)?;
            let hash = record.hash_bytes().ok()?;
            Some((
                hash,
                ApiKeyEntry::new(
                    name.clone(),
                    record.topology,
                    record.service,
                    record.expires_at_ms,
                ),
            ))
        })
        .collect();
    let table = ApiKeyTable::new(hasher.clone(), entries, &keys.load());
    tracing::info!(keys = table.len(), "API keys applied");
    keys.store(std::sync::Arc::new(table));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_never_carry_the_hash_and_skip_bad_records() {
        let record = ApiKeyRecord::new(&[1; 32], "t", Some("s"), Some(9), 3);
        let records = BTreeMap::from([
            ("ci".to_string(), record.to_text()),
            ("broken".to_string(), "{".to_string()),
        ]);
        let listed = listings(&records, None);
        assert_eq!(
            listed,
            vec![KeyListing {
                name: "ci".into(),
                topology: "t".into(),
                service: Some("s".into()),
                expires_at_ms: Some(9),
                created_at_ms: 3,
                last_used_ms: None,
            }]
        );
        let json = serde_json::to_string(&listed).unwrap();
        assert!(!json.contains(&record.hash), "{json}");
    }

    #[test]
    fn key_names_are_record_names() {
        assert!(valid_name("ci-2026.orders_ro"));
        for bad in ["", ".hidden", "a/b", "a b", &"x".repeat(129)] {
            assert!(!valid_name(bad), "{bad:?}");
        }
    }
}
