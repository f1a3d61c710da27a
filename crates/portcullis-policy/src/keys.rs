//! The key set a verifier checks signatures with: swapped whole (an
//! `ArcSwap`, so a request only loads a pointer), its decoding keys
//! prepared once per set. A URL set is refreshed every
//! [`REFRESH_EVERY`] in the background and at most once per
//! [`UNKNOWN_KEY_REFRESH`] for a token whose key it lacks; a failed fetch
//! keeps the last good set.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use jsonwebtoken::Algorithm;
use portcullis_config::JwtKey;
use tokio::time::Instant;

pub const REFRESH_EVERY: Duration = Duration::from_secs(300);
pub const UNKNOWN_KEY_REFRESH: Duration = Duration::from_secs(10);

/// Why a key set could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Http(String),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("answered {0}")]
    Status(http::StatusCode),
    #[error(transparent)]
    Jwks(#[from] portcullis_config::JwksError),
}

pub type FetchFuture<'a> =
    Pin<Box<dyn Future<Output = Result<Vec<JwtKey>, FetchError>> + Send + 'a>>;

/// Where a refreshed key set comes from: the URL fetcher, or a test's.
pub trait KeySource: Send + Sync + 'static {
    fn fetch(&self) -> FetchFuture<'_>;
    /// For log lines: the URL.
    fn describe(&self) -> String;
}

#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<JwtKey>,
}

impl KeySet {
    pub fn new(keys: Vec<JwtKey>) -> KeySet {
        KeySet { keys }
    }

    /// The keys a token with header `kid` and `alg` may be verified with:
    /// those with that kid (and algorithm) when it names one, else every
    /// key of the algorithm.
    pub fn candidates<'s>(
        &'s self,
        kid: Option<&'s str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'s JwtKey> + 's {
        self.keys
            .iter()
            .filter(move |k| k.algorithm == alg && (kid.is_none() || k.kid.as_deref() == kid))
    }

    pub fn key_count(&self) -> usize {
        self.keys.len()
    }
}

pub struct KeyStore {
    current: ArcSwap<KeySet>,
    /// Counts the sets stored: the token cache binds an entry to the
    /// generation it verified under, which is cheaper to compare on every
    /// request than the set itself. Raised after each store (Release); read
    /// before loading the set (Acquire), so an entry is never bound to a
    /// newer generation than the set it verified with.
    generation: AtomicU64,
    source: Option<Box<dyn KeySource>>,
    /// When a token with an unknown key last caused a fetch.
    last_unknown_refresh: tokio::sync::Mutex<Option<Instant>>,
}

impl KeyStore {
    pub fn fixed(keys: Vec<JwtKey>) -> KeyStore {
        KeyStore {
            current: ArcSwap::from_pointee(KeySet::new(keys)),
            generation: AtomicU64::new(0),
            source: None,
            last_unknown_refresh: tokio::sync::Mutex::new(None),
        }
    }

    /// Starts empty: the first fetch fills it.
    pub fn fetched(source: Box<dyn KeySource>) -> KeyStore {
        KeyStore {
            current: ArcSwap::from_pointee(KeySet::default()),
            generation: AtomicU64::new(0),
            source: Some(source),
            last_unknown_refresh: tokio::sync::Mutex::new(None),
        }
    }

    /// A set fetched from a URL can gain keys; a file set cannot.
    pub fn refreshes(&self) -> bool {
        self.source.is_some()
    }

    pub fn current(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.current.load()
    }

    /// Which set is current, as a number that changes with every store.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Fetches the set once; on failure the last good set stays.
    pub async fn refresh(&self) -> bool {
        let Some(source) = &self.source else {
            return false;
        };
        match source.fetch().await {
            Ok(keys) => {
                tracing::debug!(jwks = %source.describe(), keys = keys.len(), "JWT key set fetched");
                self.current.store(Arc::new(KeySet::new(keys)));
                self.generation.fetch_add(1, Ordering::Release);
                true
            }
            Err(err) => {
                let kept = self.current.load().key_count();
                tracing::warn!(jwks = %source.describe(), error = %err, kept, "JWT key set fetch failed; the last good set stays");
                false
            }
        }
    }

    /// A token named a key the set lacks (`has_key` tells whether the set
    /// has it now): refreshes unless a refresh for this reason ran in the
    /// last [`UNKNOWN_KEY_REFRESH`]. Requests arriving during the refresh
    /// wait for it rather than start their own. True when the set has the
    /// key afterwards.
    pub async fn refresh_for_unknown(&self, has_key: impl Fn(&KeySet) -> bool) -> bool {
        if self.source.is_none() {
            return false;
        }
        let mut last = self.last_unknown_refresh.lock().await;
        if has_key(&self.current.load()) {
            return true;
        }
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < UNKNOWN_KEY_REFRESH) {
            return false;
        }
        *last = Some(now);
        self.refresh().await && has_key(&self.current.load())
    }

    /// The background refresher of a URL set: now, then every
    /// [`REFRESH_EVERY`].
    pub async fn run_refresher(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(REFRESH_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            self.refresh().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_keys::TestKey;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// A source that serves what the test put in it, or fails.
    #[derive(Clone, Default)]
    struct Scripted {
        fetches: Arc<AtomicUsize>,
        serve: Arc<Mutex<Option<String>>>,
    }

    impl KeySource for Scripted {
        fn fetch(&self) -> FetchFuture<'_> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            let served = self.serve.lock().unwrap().clone();
            Box::pin(async move {
                match served {
                    Some(json) => Ok(portcullis_config::parse_jwks(json.as_bytes())?),
                    None => Err(FetchError::Http("connection refused".into())),
                }
            })
        }
        fn describe(&self) -> String {
            "scripted".into()
        }
    }

    fn kids(store: &KeyStore) -> Vec<String> {
        let set = store.current();
        set.keys.iter().filter_map(|k| k.kid.clone()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_keys_refresh_at_most_once_per_ten_seconds() {
        let a = TestKey::ed25519("a");
        let b = TestKey::ed25519("b");
        let source = Scripted::default();
        *source.serve.lock().unwrap() = Some(TestKey::jwks(&[&a]));
        let store = KeyStore::fetched(Box::new(source.clone()));
        let has_b = |set: &KeySet| set.candidates(Some("b"), Algorithm::EdDSA).next().is_some();
        assert!(
            !store.refresh_for_unknown(has_b).await,
            "b is not served yet"
        );
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
        assert_eq!(kids(&store), ["a"]);
        *source.serve.lock().unwrap() = Some(TestKey::jwks(&[&a, &b]));
        tokio::time::advance(Duration::from_secs(9)).await;
        assert!(
            !store.refresh_for_unknown(has_b).await,
            "within 10 s: no fetch"
        );
        assert_eq!(source.fetches.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(
            store.refresh_for_unknown(has_b).await,
            "10 s later: fetched"
        );
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
        // Known now: no fetch however soon.
        assert!(store.refresh_for_unknown(has_b).await);
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_background_refresh_runs_every_five_minutes_and_keeps_the_last_good_set() {
        let a = TestKey::ed25519("a");
        let b = TestKey::ed25519("b");
        let source = Scripted::default();
        *source.serve.lock().unwrap() = Some(TestKey::jwks(&[&a]));
        let store = Arc::new(KeyStore::fetched(Box::new(source.clone())));
        let task = tokio::spawn(store.clone().run_refresher());
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(kids(&store), ["a"]);
        // The source fails: the set stays.
        *source.serve.lock().unwrap() = None;
        tokio::time::sleep(REFRESH_EVERY).await;
        assert_eq!(source.fetches.load(Ordering::SeqCst), 2);
        assert_eq!(kids(&store), ["a"]);
        // A set without a usable key is a failure too.
        *source.serve.lock().unwrap() = Some(r#"{"keys":[]}"#.into());
        tokio::time::sleep(REFRESH_EVERY).await;
        assert_eq!(kids(&store), ["a"]);
        *source.serve.lock().unwrap() = Some(TestKey::jwks(&[&b]));
        tokio::time::sleep(Duration::from_secs(299)).await;
        assert_eq!(kids(&store), ["a"], "not before five minutes");
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(kids(&store), ["b"]);
        assert_eq!(source.fetches.load(Ordering::SeqCst), 4);
        task.abort();
    }
}
