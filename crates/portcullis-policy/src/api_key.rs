//! The API key method (PRODUCT.md §11, docs/policies.md "API keys"): a key
//! from `portcullis key create` in one request header. The member keeps a
//! table of the store's keys, by their keyed hash, shared by every service
//! and replaced whole when the store's `keys/` change; a request costs one
//! HMAC and one map lookup.
//!
//! A presented key that is unknown, revoked (gone from the table), expired
//! or scoped to another topology or service gets one answer, `invalid`, so
//! a caller learns nothing about which keys exist.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use http::header::{HeaderMap, HeaderName, HeaderValue};
use portcullis_secrets::ApiKeyHasher;

use crate::{AuthResult, Principal};

/// The prefix of the principal an API key signs in as, so a key's name is
/// never mistaken for a user's in the identity header or in authorization.
pub const PRINCIPAL_PREFIX: &str = "key:";

/// One stored key, as the member knows it.
#[derive(Debug)]
pub struct ApiKeyEntry {
    pub name: String,
    pub topology: String,
    /// `None`: every service of the topology.
    pub service: Option<String>,
    /// Milliseconds since the Unix epoch; `None` never expires.
    pub expires_at_ms: Option<u64>,
    /// When this member last accepted the key, in milliseconds since the
    /// Unix epoch; 0 never. Kept in the member, never written to the store
    /// per request; the admin API reports it.
    last_used_ms: AtomicU64,
    /// `key:NAME`, made once: a request signed in by the key shares it.
    principal: Arc<Principal>,
}

impl ApiKeyEntry {
    pub fn new(
        name: String,
        topology: String,
        service: Option<String>,
        expires_at_ms: Option<u64>,
    ) -> Self {
        let principal = Arc::new(Principal::named(format!("{PRINCIPAL_PREFIX}{name}")));
        ApiKeyEntry {
            name,
            principal,
            topology,
            service,
            expires_at_ms,
            last_used_ms: AtomicU64::new(0),
        }
    }

    pub fn last_used_ms(&self) -> Option<u64> {
        Some(self.last_used_ms.load(Ordering::Relaxed)).filter(|ms| *ms > 0)
    }

    fn admits(&self, topology: &str, service: &str, now_ms: u64) -> bool {
        self.topology == topology
            && self.service.as_deref().is_none_or(|s| s == service)
            && self.expires_at_ms.is_none_or(|expires| now_ms < expires)
    }

    fn used_at(&self, now_ms: u64) {
        // At most one write a second: a hot key's entry is read by every
        // core, and a store per request would bounce its cache line.
        if now_ms.saturating_sub(self.last_used_ms.load(Ordering::Relaxed)) >= 1000 {
            self.last_used_ms.store(now_ms, Ordering::Relaxed);
        }
    }
}

/// Every key a member knows, by keyed hash.
#[derive(Debug, Default)]
pub struct ApiKeyTable {
    /// `None` only for the empty table a member starts with.
    hasher: Option<ApiKeyHasher>,
    by_hash: HashMap<[u8; 32], Arc<ApiKeyEntry>>,
}

/// The table every service of a member reads; the member swaps in a new
/// one when the store's keys change.
pub type ApiKeys = Arc<ArcSwap<ApiKeyTable>>;

impl ApiKeyTable {
    /// A table of `entries` (keyed hash, key). The last-used times of keys
    /// that `previous` also held (by name and hash) carry over.
    pub fn new(
        hasher: ApiKeyHasher,
        entries: impl IntoIterator<Item = ([u8; 32], ApiKeyEntry)>,
        previous: &ApiKeyTable,
    ) -> Self {
        let by_hash = entries
            .into_iter()
            .map(|(hash, entry)| {
                if let Some(old) = previous.by_hash.get(&hash).filter(|o| o.name == entry.name) {
                    let used = old.last_used_ms.load(Ordering::Relaxed);
                    entry.last_used_ms.store(used, Ordering::Relaxed);
                }
                (hash, Arc::new(entry))
            })
            .collect();
        ApiKeyTable {
            hasher: Some(hasher),
            by_hash,
        }
    }

    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }

    /// Every key, for the admin API's last-used times.
    pub fn entries(&self) -> impl Iterator<Item = &ApiKeyEntry> {
        self.by_hash.values().map(Arc::as_ref)
    }

    /// The key `presented` if it admits a request to `topology`/`service`
    /// at `now_ms`; no hint why not. The lookup is by the keyed hash, so
    /// no comparison with a secret happens that could leak by its timing.
    pub fn check(
        &self,
        presented: &[u8],
        topology: &str,
        service: &str,
        now_ms: u64,
    ) -> Option<&ApiKeyEntry> {
        let hash = self.hasher.as_ref()?.hash(presented);
        let entry = self.by_hash.get(&hash)?;
        entry
            .admits(topology, service, now_ms)
            .then_some(entry.as_ref())
    }
}

/// The API key method of one service.
pub(crate) struct ApiKeyVerifier {
    header: HeaderName,
    topology: String,
    service: String,
    keys: ApiKeys,
    challenge: HeaderValue,
}

/// What the API key method made of a request.
pub(crate) enum KeyAttempt {
    /// The header is absent.
    Absent,
    Judged(Result<Arc<Principal>, AuthResult>),
}

impl ApiKeyVerifier {
    pub(crate) fn new(header: HeaderName, topology: &str, service: &str, keys: ApiKeys) -> Self {
        // `header` is a valid name, so the value is valid too; the fallback
        // is never used.
        let challenge = HeaderValue::from_str(&format!(
            "ApiKey realm=\"portcullis\", header=\"{}\"",
            header.as_str()
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("ApiKey realm=\"portcullis\""));
        ApiKeyVerifier {
            header,
            topology: topology.to_string(),
            service: service.to_string(),
            keys,
            challenge,
        }
    }

    pub(crate) fn header(&self) -> &HeaderName {
        &self.header
    }

    /// The `WWW-Authenticate` value (not a registered scheme: it tells a
    /// client which header to send).
    pub(crate) fn challenge(&self) -> &HeaderValue {
        &self.challenge
    }

    pub(crate) fn attempt(&self, headers: &HeaderMap) -> KeyAttempt {
        self.attempt_at(headers, now_ms())
    }

    fn attempt_at(&self, headers: &HeaderMap, now_ms: u64) -> KeyAttempt {
        let mut values = headers.get_all(&self.header).iter();
        let Some(value) = values.next() else {
            return KeyAttempt::Absent;
        };
        if values.next().is_some() || value.is_empty() {
            return KeyAttempt::Judged(Err(AuthResult::Invalid));
        }
        let table = self.keys.load();
        let judged = match table.check(value.as_bytes(), &self.topology, &self.service, now_ms) {
            Some(entry) => {
                entry.used_at(now_ms);
                Ok(entry.principal.clone())
            }
            None => Err(AuthResult::Invalid),
        };
        KeyAttempt::Judged(judged)
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000_000;

    fn hasher() -> ApiKeyHasher {
        ApiKeyHasher::from_cookie_key(&[9; 32], "test")
    }

    /// (key, name, topology, service, expires at).
    type KeySpec<'a> = (&'a str, &'a str, &'a str, Option<&'a str>, Option<u64>);

    fn table(keys: &[KeySpec<'_>]) -> ApiKeyTable {
        let hasher = hasher();
        let entries = keys.iter().map(|(key, name, topology, service, expires)| {
            (
                hasher.hash(key.as_bytes()),
                ApiKeyEntry::new(
                    name.to_string(),
                    topology.to_string(),
                    service.map(str::to_string),
                    *expires,
                ),
            )
        });
        ApiKeyTable::new(hasher.clone(), entries, &ApiKeyTable::default())
    }

    fn verifier(table: ApiKeyTable, service: &str) -> ApiKeyVerifier {
        let keys: ApiKeys = Arc::new(ArcSwap::from_pointee(table));
        ApiKeyVerifier::new(HeaderName::from_static("x-api-key"), "t", service, keys)
    }

    fn with_key(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append("x-api-key", HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    fn judged(verifier: &ApiKeyVerifier, values: &[&str], now: u64) -> Result<String, AuthResult> {
        match verifier.attempt_at(&with_key(values), now) {
            KeyAttempt::Absent => panic!("the header was sent"),
            KeyAttempt::Judged(result) => result.map(|p| p.name.clone()),
        }
    }

    #[test]
    fn a_known_key_in_scope_signs_in_as_its_name() {
        let keys = table(&[
            ("pcl_all", "ci", "t", None, None),
            ("pcl_one", "orders-only", "t", Some("orders"), Some(NOW + 1)),
        ]);
        let orders = verifier(keys, "orders");
        assert_eq!(judged(&orders, &["pcl_all"], NOW), Ok("key:ci".into()));
        assert_eq!(
            judged(&orders, &["pcl_one"], NOW),
            Ok("key:orders-only".into())
        );
    }

    #[test]
    fn unknown_expired_and_out_of_scope_keys_get_one_answer() {
        let keys = || {
            table(&[
                ("pcl_other_topology", "a", "u", None, None),
                ("pcl_other_service", "b", "t", Some("billing"), None),
                ("pcl_expired", "c", "t", None, Some(NOW)),
            ])
        };
        let orders = verifier(keys(), "orders");
        for key in [
            "pcl_unknown",
            "pcl_other_topology",
            "pcl_other_service",
            "pcl_expired",
        ] {
            assert_eq!(
                judged(&orders, &[key], NOW),
                Err(AuthResult::Invalid),
                "{key}"
            );
        }
        // The expiry is exclusive and follows the clock given.
        assert_eq!(
            judged(&orders, &["pcl_expired"], NOW - 1),
            Ok("key:c".into())
        );
        let billing = verifier(keys(), "billing");
        assert_eq!(
            judged(&billing, &["pcl_other_service"], NOW),
            Ok("key:b".into())
        );
    }

    #[test]
    fn no_header_is_not_mine_and_odd_headers_are_invalid() {
        let v = verifier(table(&[("pcl_k", "k", "t", None, None)]), "s");
        assert!(matches!(
            v.attempt_at(&HeaderMap::new(), NOW),
            KeyAttempt::Absent
        ));
        assert_eq!(judged(&v, &[""], NOW), Err(AuthResult::Invalid));
        assert_eq!(
            judged(&v, &["pcl_k", "pcl_k"], NOW),
            Err(AuthResult::Invalid)
        );
        // The empty table a member starts with refuses everything.
        let empty = verifier(ApiKeyTable::default(), "s");
        assert_eq!(judged(&empty, &["pcl_k"], NOW), Err(AuthResult::Invalid));
        assert_eq!(
            v.challenge(),
            "ApiKey realm=\"portcullis\", header=\"x-api-key\""
        );
    }

    #[test]
    fn last_use_is_recorded_and_survives_a_new_table() {
        let first = table(&[
            ("pcl_k", "k", "t", None, None),
            ("pcl_j", "j", "t", None, None),
        ]);
        let v = verifier(first, "s");
        assert_eq!(judged(&v, &["pcl_k"], NOW), Ok("key:k".into()));
        let used = |table: &ApiKeyTable, name: &str| {
            table
                .entries()
                .find(|e| e.name == name)
                .and_then(ApiKeyEntry::last_used_ms)
        };
        assert_eq!(used(&v.keys.load(), "k"), Some(NOW));
        assert_eq!(used(&v.keys.load(), "j"), None);
        let hasher = hasher();
        let next = ApiKeyTable::new(
            hasher.clone(),
            [(
                hasher.hash(b"pcl_k"),
                ApiKeyEntry::new("k".into(), "t".into(), None, None),
            )],
            &v.keys.load(),
        );
        assert_eq!(used(&next, "k"), Some(NOW));
        assert_eq!(next.len(), 1);
    }
}
