//! The outcome of recent Basic logins, so that a burst of requests with the
//! same credentials costs one directory round trip (or one bcrypt run), not
//! one per request (PRODUCT.md §11).
//!
//! Keyed by SHA-256 of a per-process random salt and the credentials: the
//! map never holds a password, and its keys cannot be matched against a
//! table of precomputed hashes.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use crate::{AuthResult, Principal};

/// How long a good login is trusted without asking again, including while
/// the directory is down.
pub const POSITIVE_TTL: Duration = Duration::from_secs(60);
/// How long a refused login is answered from memory: short, so that a user
/// who just fixed their password is not kept out.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(5);
/// Bound on remembered logins per method; one entry is ~100 bytes.
pub const MAX_ENTRIES: usize = 10_000;

static SALT: LazyLock<[u8; 32]> = LazyLock::new(rand::random);

pub type CacheKey = [u8; 32];

/// The cache key of `user` with `password`. The user's length goes in first
/// so that `a:bc` and `ab:c` cannot collide.
pub fn cache_key(user: &str, password: &str) -> CacheKey {
    let mut hash = Sha256::new();
    hash.update(*SALT);
    hash.update((user.len() as u64).to_le_bytes());
    hash.update(user.as_bytes());
    hash.update(password.as_bytes());
    hash.finalize().into()
}

struct Entry {
    expires: Instant,
    outcome: Result<Principal, AuthResult>,
}

type Outcome = Result<Principal, AuthResult>;

#[derive(Default)]
pub struct CredentialCache {
    entries: Mutex<HashMap<CacheKey, Entry>>,
    /// Checks under way: requests with the same credentials that arrive
    /// while one is being checked (a browser opening a page) wait for that
    /// check instead of starting their own.
    in_flight: Mutex<HashMap<CacheKey, Arc<OnceCell<Outcome>>>>,
}

/// A check under way, in [`CredentialCache::in_flight`] while it lives.
struct InFlight<'a> {
    cache: &'a CredentialCache,
    key: CacheKey,
    cell: &'a Arc<OnceCell<Outcome>>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut in_flight = self
            .cache
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if in_flight
            .get(&self.key)
            .is_some_and(|c| Arc::ptr_eq(c, self.cell))
        {
            in_flight.remove(&self.key);
        }
    }
}

impl CredentialCache {
    /// The remembered outcome for `key`, or the outcome of `check`, run
    /// once for all the callers with this key that arrive while it runs.
    /// If the caller running it goes away (its client hung up), a caller
    /// still waiting runs its own check.
    pub async fn outcome<F: Future<Output = Outcome>>(&self, key: CacheKey, check: F) -> Outcome {
        if let Some(outcome) = self.get(&key) {
            return outcome;
        }
        let cell = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_default()
            .clone();
        cell.get_or_init(|| async {
            // Dropped when the check ends or is abandoned, so that no
            // finished or orphaned check stays in the map.
            let _guard = InFlight {
                cache: self,
                key,
                cell: &cell,
            };
            let outcome = check.await;
            self.put(key, &outcome);
            outcome
        })
        .await
        .clone()
    }

    /// The remembered outcome, if still fresh.
    pub fn get(&self, key: &CacheKey) -> Option<Result<Principal, AuthResult>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.get(key)?;
        (Instant::now() < entry.expires).then(|| entry.outcome.clone())
    }

    /// Remembers a verdict: a principal for [`POSITIVE_TTL`], a refusal
    /// ([`AuthResult::Invalid`]) for [`NEGATIVE_TTL`]. Anything else (the
    /// directory unreachable) is not a verdict on the credentials and is
    /// not remembered.
    pub fn put(&self, key: CacheKey, outcome: &Result<Principal, AuthResult>) {
        let ttl = match outcome {
            Ok(_) => POSITIVE_TTL,
            Err(AuthResult::Invalid) => NEGATIVE_TTL,
            Err(_) => return,
        };
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= MAX_ENTRIES && !entries.contains_key(&key) {
            entries.retain(|_, e| now < e.expires);
            // Still full of fresh entries (many distinct logins within a
            // minute): forget one; the cost is one more directory call.
            if entries.len() >= MAX_ENTRIES {
                if let Some(victim) = entries.keys().next().copied() {
                    entries.remove(&victim);
                }
            }
        }
        let outcome = outcome.clone();
        entries.insert(
            key,
            Entry {
                expires: now + ttl,
                outcome,
            },
        );
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ann() -> Result<Principal, AuthResult> {
        Ok(Principal {
            groups: vec!["staff".into()],
            ..Principal::named("ann")
        })
    }

    #[test]
    fn keys_depend_on_both_parts_and_hide_the_password() {
        assert_eq!(cache_key("ann", "pw"), cache_key("ann", "pw"));
        assert_ne!(cache_key("ann", "pw"), cache_key("ann", "px"));
        assert_ne!(cache_key("a", "bc"), cache_key("ab", "c"));
        let key = cache_key("ann", "secret-password");
        assert!(!key.windows(6).any(|w| w == b"secret"));
    }

    #[tokio::test(start_paused = true)]
    async fn good_logins_last_a_minute_refusals_five_seconds_outages_not_at_all() {
        let cache = CredentialCache::default();
        let (good, bad, down) = (
            cache_key("ann", "1"),
            cache_key("ann", "2"),
            cache_key("bob", "3"),
        );
        cache.put(good, &ann());
        cache.put(bad, &Err(AuthResult::Invalid));
        cache.put(down, &Err(AuthResult::Unavailable));
        assert_eq!(cache.get(&good), Some(ann()));
        assert_eq!(cache.get(&bad), Some(Err(AuthResult::Invalid)));
        assert_eq!(cache.get(&down), None);
        tokio::time::advance(NEGATIVE_TTL).await;
        assert_eq!(cache.get(&bad), None);
        assert_eq!(cache.get(&good), Some(ann()));
        tokio::time::advance(POSITIVE_TTL - NEGATIVE_TTL).await;
        assert_eq!(cache.get(&good), None);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_logins_with_the_same_credentials_share_one_check() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let cache = Arc::new(CredentialCache::default());
        let checks = Arc::new(AtomicUsize::new(0));
        let logins = (0..8).map(|_| {
            let (cache, checks) = (cache.clone(), checks.clone());
            tokio::spawn(async move {
                cache
                    .outcome(cache_key("ann", "pw"), async {
                        checks.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        ann()
                    })
                    .await
            })
        });
        for login in logins.collect::<Vec<_>>() {
            assert_eq!(login.await.unwrap(), ann());
        }
        assert_eq!(checks.load(Ordering::SeqCst), 1);
        assert!(cache.in_flight.lock().unwrap().is_empty());
        // An outage is shared by the waiting callers but not remembered.
        let down = cache
            .outcome(cache_key("bob", "pw"), async {
                Err(AuthResult::Unavailable)
            })
            .await;
        assert_eq!(down, Err(AuthResult::Unavailable));
        let again = cache
            .outcome(cache_key("bob", "pw"), async { Err(AuthResult::Invalid) })
            .await;
        assert_eq!(again, Err(AuthResult::Invalid), "checked again");
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_check_leaves_nothing_behind() {
        let cache = Arc::new(CredentialCache::default());
        let running = cache.clone();
        let login = tokio::spawn(async move {
            running
                .outcome(cache_key("ann", "pw"), std::future::pending())
                .await
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(cache.in_flight.lock().unwrap().len(), 1);
        login.abort();
        let _ = login.await;
        assert!(cache.in_flight.lock().unwrap().is_empty());
        let next = cache.outcome(cache_key("ann", "pw"), async { ann() }).await;
        assert_eq!(next, ann());
    }

    #[tokio::test(start_paused = true)]
    async fn the_cache_is_bounded() {
        let cache = CredentialCache::default();
        for i in 0..MAX_ENTRIES + 10 {
            cache.put(cache_key(&i.to_string(), "x"), &ann());
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
        // Expired entries go first, all of them.
        tokio::time::advance(POSITIVE_TTL).await;
        cache.put(cache_key("new", "x"), &ann());
        assert_eq!(cache.len(), 1);
    }
}
