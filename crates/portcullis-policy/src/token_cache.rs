//! Tokens that verified, remembered until they expire, so a client that
//! sends the same bearer token on every request pays for its signature
//! once: an Ed25519 check costs about 25 times a whole proxied request
//! (bench/perf/cg-jwt.sh).
//!
//! - Only tokens that verified are kept; a refused token is checked again
//!   each time (so a flood of bad tokens cannot fill the cache).
//! - An entry is bound to the key set it verified with: once the set is
//!   replaced (a refresh that dropped or rotated a key), every older entry
//!   is checked again.
//! - An entry lives until the token's `exp` plus the leeway, and never
//!   longer than [`MAX_TTL`].
//! - A hit compares the whole token, not a hash of it, so no collision can
//!   stand in for a token that verified. The table is hashed on the
//!   token's tail, which holds the signature and so differs between any
//!   two tokens that verified; the hasher is keyed per process.
//! - Bounded: [`SHARDS`] × [`SHARD_CAPACITY`] entries of tokens up to
//!   [`MAX_CACHED_TOKEN`] bytes. A full shard first
//!   drops its expired entries, then, if still full, everything (the next
//!   requests verify again; nothing is refused because of the cache).

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hashbrown::HashTable;
use tokio::time::Instant;

use crate::Principal;

/// The longest a verified token is trusted without a new signature check.
pub const MAX_TTL: Duration = Duration::from_secs(300);
/// Shards, each behind its own lock, so worker threads rarely wait.
pub const SHARDS: usize = 8;
pub const SHARD_CAPACITY: usize = 512;
/// Longer tokens are verified every time: with the capacity above, this
/// bounds the cache at about 16 MiB whatever clients send.
pub const MAX_CACHED_TOKEN: usize = 4096;
/// Bytes of the token's end that are hashed.
const HASHED_TAIL: usize = 32;

struct Entry {
    token: Box<[u8]>,
    principal: Arc<Principal>,
    /// The key set generation the signature verified under
    /// (`KeyStore::generation`).
    generation: u64,
    valid_until: Instant,
}

pub struct TokenCache {
    shards: [Mutex<HashTable<Entry>>; SHARDS],
    /// Keyed per process; foldhash rather than SipHash, which cost about
    /// 250 instructions a lookup here (callgrind).
    hasher: foldhash::fast::RandomState,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache {
            shards: std::array::from_fn(|_| Mutex::new(HashTable::new())),
            hasher: foldhash::fast::RandomState::default(),
        }
    }
}

impl TokenCache {
    fn hash(&self, token: &[u8]) -> u64 {
        let tail = &token[token.len().saturating_sub(HASHED_TAIL)..];
        self.hasher.hash_one(tail)
    }

    fn shard(&self, hash: u64) -> &Mutex<HashTable<Entry>> {
        // The low bits pick the bucket inside a table; the high ones the shard.
        &self.shards[(hash >> 60) as usize % SHARDS]
    }

    /// The principal of `token` if it verified under key set `generation`
    /// and has not expired.
    pub fn get(&self, token: &[u8], generation: u64, now: Instant) -> Option<Arc<Principal>> {
        let hash = self.hash(token);
        // A poisoned lock only means another request panicked mid-insert;
        // the table itself is still consistent.
        let table = self.shard(hash).lock().unwrap_or_else(|e| e.into_inner());
        let entry = table.find(hash, |e| *e.token == *token)?;
        let fresh = entry.valid_until > now && entry.generation == generation;
        fresh.then(|| entry.principal.clone())
    }

    /// Remembers a token that verified under `generation`, for `ttl` (capped at
    /// [`MAX_TTL`]).
    pub fn insert(
        &self,
        token: &[u8],
        principal: &Arc<Principal>,
        generation: u64,
        now: Instant,
        ttl: Duration,
    ) {
        let ttl = ttl.min(MAX_TTL);
        if ttl.is_zero() || token.len() > MAX_CACHED_TOKEN {
            return;
        }
        let entry = Entry {
            token: token.into(),
            principal: principal.clone(),
            generation,
            valid_until: now + ttl,
        };
        let hash = self.hash(token);
        let mut table = self.shard(hash).lock().unwrap_or_else(|e| e.into_inner());
        if let Ok(old) = table.find_entry(hash, |e| *e.token == *token) {
            old.remove();
        } else if table.len() >= SHARD_CAPACITY {
            table.retain(|e| e.valid_until > now);
            if table.len() >= SHARD_CAPACITY {
                table.clear();
            }
        }
        let hasher = |e: &Entry| self.hash(&e.token);
        table.insert_unique(hash, entry, hasher);
    }

    /// Entries held, expired ones included (for tests).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(name: &str) -> Arc<Principal> {
        Arc::new(Principal {
            groups: vec!["g".into()],
            ..Principal::named(name)
        })
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_is_served_until_it_expires_and_only_for_its_key_set() {
        let cache = TokenCache::default();
        let keys = 7;
        let now = Instant::now();
        cache.insert(
            b"a.b.sig1",
            &principal("ann"),
            keys,
            now,
            Duration::from_secs(60),
        );
        assert_eq!(cache.get(b"a.b.sig1", keys, now), Some(principal("ann")));
        // Another token, even one differing only before the tail, misses.
        assert_eq!(cache.get(b"x.b.sig1", keys, now), None);
        assert_eq!(cache.get(b"a.b.sig2", keys, now), None);
        // A replaced key set makes the entry stale.
        assert_eq!(cache.get(b"a.b.sig1", 8, now), None);
        tokio::time::advance(Duration::from_secs(59)).await;
        assert!(cache.get(b"a.b.sig1", keys, Instant::now()).is_some());
        tokio::time::advance(Duration::from_secs(1)).await;
        assert_eq!(cache.get(b"a.b.sig1", keys, Instant::now()), None);
    }

    #[tokio::test(start_paused = true)]
    async fn the_lifetime_is_capped_and_a_zero_one_is_not_kept() {
        let cache = TokenCache::default();
        let keys = 7;
        let now = Instant::now();
        cache.insert(
            b"t1",
            &principal("a"),
            keys,
            now,
            Duration::from_secs(86_400),
        );
        cache.insert(b"t2", &principal("b"), keys, now, Duration::ZERO);
        let huge = "x".repeat(MAX_CACHED_TOKEN + 1);
        cache.insert(
            huge.as_bytes(),
            &principal("c"),
            keys,
            now,
            Duration::from_secs(60),
        );
        assert_eq!(cache.len(), 1);
        assert!(cache
            .get(b"t1", keys, now + MAX_TTL - Duration::from_millis(1))
            .is_some());
        assert!(cache.get(b"t1", keys, now + MAX_TTL).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_inserted_twice_is_held_once() {
        let cache = TokenCache::default();
        let keys = 7;
        let now = Instant::now();
        cache.insert(b"tok", &principal("a"), keys, now, Duration::from_secs(10));
        cache.insert(b"tok", &principal("a"), keys, now, Duration::from_secs(20));
        assert_eq!(cache.len(), 1);
        assert!(cache
            .get(b"tok", keys, now + Duration::from_secs(15))
            .is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_never_holds_more_than_its_bound() {
        let cache = TokenCache::default();
        let keys = 7;
        let now = Instant::now();
        let total = SHARDS * SHARD_CAPACITY * 3;
        for i in 0..total {
            let token = format!("header.claims.signature-{i:08}");
            cache.insert(
                token.as_bytes(),
                &principal("a"),
                keys,
                now,
                Duration::from_secs(60),
            );
        }
        assert!(cache.len() <= SHARDS * SHARD_CAPACITY, "{}", cache.len());
        // The most recent token is always there.
        let last = format!("header.claims.signature-{:08}", total - 1);
        assert!(cache.get(last.as_bytes(), keys, now).is_some());
    }
}
