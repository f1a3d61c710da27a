//! `[cluster] cache`: the member's last good state on local disk, so that it
//! can start and serve while the store is unreachable (PRODUCT.md §10).
//!
//! One file, `state.json`, replaced atomically (written beside it, then
//! renamed) after every read from the store that changed something. It holds
//! the applied topologies as stored, the aliases still sealed exactly as in
//! the store, the backends' admin states, and the cookie key and admin token
//! sealed under a key of their own, derived from the master secret: nothing
//! in it is a secret in clear. Without `[secrets] master` there is no key to
//! seal those two with, so no cache is kept.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use portcullis_cluster::Snapshot;
use portcullis_config::{AdminState, NodeConfig};
use portcullis_secrets::{AliasSealer, MasterSecret};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use zeroize::Zeroizing;

const FILE_NAME: &str = "state.json";
/// Bumped when the layout changes; an older member refuses a newer file.
const FORMAT: u32 = 1;
/// Associated data of the two sealed secrets: a value cannot be moved from
/// one field to the other, nor to an alias of the store.
const COOKIE_KEY_LABEL: &str = "member-cache/cluster.cookie-key";
const ADMIN_TOKEN_LABEL: &str = "member-cache/admin.token";

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("cluster.cache: cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cluster.cache: {path} is corrupt: expected {expected}")]
    Corrupt { path: PathBuf, expected: String },
}

/// What a member needs to serve, as kept in the cache.
#[derive(Clone, Default)]
pub struct CachedState {
    /// Topology name -> its text as stored, for the topologies applied.
    pub topologies: BTreeMap<String, String>,
    /// Alias name -> its sealed value, as in the store.
    pub sealed_aliases: BTreeMap<String, String>,
    pub admin_states: BTreeMap<String, AdminState>,
    pub cookie_key: Zeroizing<[u8; 32]>,
    pub admin_token: Zeroizing<String>,
    /// The etcd revision read up to; `None` for a `dir:` store, or before
    /// the watcher's first read.
    pub revision: Option<i64>,
}

impl CachedState {
    /// What the store held when this was saved, for the watcher to report
    /// only what changed since (removals included).
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            topologies: self
                .topologies
                .iter()
                .map(|(name, text)| (name.clone(), text.as_bytes().to_vec()))
                .collect(),
            admin_states: self.admin_states.clone(),
            aliases: self.sealed_aliases.clone(),
            // Not cached: the store's first read reports them.
            api_keys: Default::default(),
            revision: self.revision,
        }
    }
}

/// The file's layout.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CacheFile {
    format: u32,
    cluster: String,
    /// The store it was read from, for the operator.
    store: String,
    /// The etcd revision it holds the state of, when known.
    revision: Option<i64>,
    /// Unix time in milliseconds of the save.
    saved_at_ms: u64,
    topologies: BTreeMap<String, String>,
    aliases: BTreeMap<String, String>,
    admin_states: BTreeMap<String, String>,
    cookie_key: String,
    admin_token: String,
}

/// Where and with which key a member keeps its cache.
#[derive(Clone)]
pub struct Cache {
    dir: PathBuf,
    cluster: String,
    sealer: AliasSealer,
}

impl Cache {
    /// The member's cache, or `None` when `cache = false` or there is no
    /// master secret to seal its secrets with.
    pub fn for_config(config: &NodeConfig, master: Option<&MasterSecret>) -> Option<Cache> {
        let dir = config.cluster.cache.clone()?;
        let Some(master) = master else {
            tracing::info!("no [secrets] master: no [cluster] cache is kept (it needs the master secret to seal the cookie key and admin token)");
            return None;
        };
        // Its own key: the cluster name cannot contain '/', so no cluster's
        // alias key is the same.
        let sealer = AliasSealer::new(master, &format!("{}/member-cache", config.cluster.name));
        Some(Cache {
            dir,
            cluster: config.cluster.name.clone(),
            sealer,
        })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    pub fn exists(&self) -> bool {
        self.path().is_file()
    }

    /// Reads and checks the cache: every topology must validate as when read
    /// from the store (relative paths against `base_dir`), and both secrets
    /// must open.
    pub fn load(&self, base_dir: &Path) -> Result<CachedState, CacheError> {
        let path = self.path();
        let text = std::fs::read(&path).map_err(|source| CacheError::Io {
            action: "read",
            path: path.clone(),
            source,
        })?;
        let corrupt = |expected: String| CacheError::Corrupt {
            path: path.clone(),
            expected,
        };
        let file: CacheFile = serde_json::from_slice(&text)
            .map_err(|e| corrupt(format!("the JSON of a member cache ({e})")))?;
        if file.format != FORMAT {
            return Err(corrupt(format!("format {FORMAT}, found {}", file.format)));
        }
        if file.cluster != self.cluster {
            return Err(corrupt(format!(
                "the cache of cluster {:?}, found one of {:?}",
                self.cluster, file.cluster
            )));
        }
        for (name, text) in &file.topologies {
            if let Err(errors) = portcullis_config::load_stored_topology(name, text, base_dir) {
                return Err(corrupt(format!("topology {name} to validate: {errors}")));
            }
        }
        let mut admin_states = BTreeMap::new();
        for (id, state) in &file.admin_states {
            let state = AdminState::parse(state)
                .ok_or_else(|| corrupt(format!("an admin state for {id}, found {state:?}")))?;
            admin_states.insert(id.clone(), state);
        }
        let cookie_key = self
            .sealer
            .open(COOKIE_KEY_LABEL, &file.cookie_key)
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes.as_slice()).ok())
            .ok_or_else(|| corrupt("a cookie key sealed with this master secret".into()))?;
        let admin_token = self
            .sealer
            .open(ADMIN_TOKEN_LABEL, &file.admin_token)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| corrupt("an admin token sealed with this master secret".into()))?;
        Ok(CachedState {
            topologies: file.topologies,
            sealed_aliases: file.aliases,
            admin_states,
            cookie_key: Zeroizing::new(cookie_key),
            admin_token: Zeroizing::new(admin_token),
            revision: file.revision,
        })
    }

    /// Replaces the cache with `state`: a reader sees the old file or the
    /// new one, never a part of either.
    pub fn save(&self, state: &CachedState, store: &str) -> Result<(), CacheError> {
        let file = CacheFile {
            format: FORMAT,
            cluster: self.cluster.clone(),
            store: store.to_string(),
            revision: state.revision,
            saved_at_ms: portcullis_cluster::members::now_ms(),
            topologies: state.topologies.clone(),
            aliases: state.sealed_aliases.clone(),
            admin_states: state
                .admin_states
                .iter()
                .map(|(id, s)| (id.clone(), s.as_str().to_string()))
                .collect(),
            cookie_key: self
                .sealer
                .seal(COOKIE_KEY_LABEL, state.cookie_key.as_ref()),
            admin_token: self
                .sealer
                .seal(ADMIN_TOKEN_LABEL, state.admin_token.as_bytes()),
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| CacheError::Io {
            action: "encode",
            path: self.path(),
            source: std::io::Error::other(e),
        })?;
        self.write_atomically(&bytes)
    }

    fn write_atomically(&self, bytes: &[u8]) -> Result<(), CacheError> {
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| CacheError::Io {
                action,
                path,
                source,
            }
        };
        create_private_dir(&self.dir).map_err(io("create", &self.dir))?;
        let path = self.path();
        let temp = self
            .dir
            .join(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let written = options.open(&temp).and_then(|mut file| {
            file.write_all(bytes)?;
            // On disk before the rename, so a crash leaves the old cache or
            // the whole new one.
            file.sync_all()
        });
        if let Err(source) = written.and_then(|()| std::fs::rename(&temp, &path)) {
            let _ = std::fs::remove_file(&temp);
            return Err(io("write", &path)(source));
        }
        Ok(())
    }
}

/// Creates `dir` readable by its owner only, or makes it so.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        builder.mode(0o700);
        builder.create(dir)?;
        // An existing directory keeps its mode through `create`.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
    }
    #[cfg(not(unix))]
    builder.create(dir)
}

/// Keeps the cache current as the member applies what it reads: updates are
/// taken at once, and written by one task, the latest state each time, so a
/// burst of events costs one write, not one per event.
pub struct CacheWriter {
    cache: Cache,
    store: String,
    state: Mutex<CachedState>,
    dirty: Notify,
}

impl CacheWriter {
    pub fn new(cache: Cache, store: String, state: CachedState) -> Arc<CacheWriter> {
        Arc::new(CacheWriter {
            cache,
            store,
            state: Mutex::new(state),
            dirty: Notify::new(),
        })
    }

    /// Changes the state to write and asks for a write.
    pub fn update(&self, change: impl FnOnce(&mut CachedState)) {
        change(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
        self.dirty.notify_one();
    }

    /// Writes the state now (off the async threads), then after each update,
    /// for as long as the member runs.
    pub async fn run(self: Arc<Self>) {
        loop {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner()).clone();
            let writer = self.clone();
            let saved =
                tokio::task::spawn_blocking(move || writer.cache.save(&state, &writer.store)).await;
            match saved {
                Ok(Ok(())) => tracing::debug!(cache = %self.cache.path().display(), "cache saved"),
                Ok(Err(err)) => tracing::warn!(error = %err, "cache not saved"),
                Err(err) => tracing::warn!(error = %err, "cache not saved"),
            }
            self.dirty.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPOLOGY: &str = "[[service]]\nname = \"s\"\nurls = [\"http://127.0.0.1:1\"]\n";

    fn config(dir: &Path, cluster: &str, cache: &str) -> NodeConfig {
        let text = format!(
            "[gateway]\nlisten = \"127.0.0.1:0\"\n[cluster]\nname = \"{cluster}\"\n{cache}"
        );
        portcullis_config::parse_node_config(&text, &dir.join("p.toml")).unwrap()
    }

    fn state(sealer: &AliasSealer) -> CachedState {
        CachedState {
            topologies: BTreeMap::from([("shop".to_string(), TOPOLOGY.to_string())]),
            sealed_aliases: BTreeMap::from([(
                "db.password".to_string(),
                sealer.seal("db.password", b"alias-value-in-clear"),
            )]),
            admin_states: BTreeMap::from([("ab12".to_string(), AdminState::Draining)]),
            cookie_key: Zeroizing::new([0x5a; 32]),
            admin_token: Zeroizing::new("admin-token-in-clear".to_string()),
            revision: Some(42),
        }
    }

    #[test]
    fn a_saved_state_loads_back_and_holds_no_secret_in_clear() {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterSecret::generate();
        let config = config(dir.path(), "prod", "");
        let cache = Cache::for_config(&config, Some(&master)).unwrap();
        assert_eq!(
            cache.path(),
            dir.path().join("./portcullis-cache/state.json")
        );
        let saved = state(&AliasSealer::new(&master, "prod"));
        cache.save(&saved, "dir:store").unwrap();
        let text = std::fs::read_to_string(cache.path()).unwrap();
        for secret in ["alias-value-in-clear", "admin-token-in-clear"] {
            assert!(!text.contains(secret), "{secret} in clear in {text}");
        }
        let key_b64 =
            base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [0x5a; 32]);
        assert!(!text.contains(&key_b64), "the cookie key in clear");
        assert!(
            text.contains(&saved.sealed_aliases["db.password"]),
            "aliases as stored"
        );
        let loaded = cache.load(dir.path()).unwrap();
        assert_eq!(loaded.topologies, saved.topologies);
        assert_eq!(loaded.sealed_aliases, saved.sealed_aliases);
        assert_eq!(loaded.admin_states, saved.admin_states);
        assert_eq!(*loaded.cookie_key, [0x5a; 32]);
        assert_eq!(loaded.admin_token.as_str(), "admin-token-in-clear");
        assert_eq!(loaded.revision, Some(42));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&cache.path()), 0o600);
            assert_eq!(mode(&cache.dir), 0o700);
        }
        let leftovers: Vec<_> = std::fs::read_dir(&cache.dir).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");
    }

    #[test]
    fn no_cache_without_a_master_secret_or_with_cache_false() {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterSecret::generate();
        assert!(Cache::for_config(&config(dir.path(), "prod", ""), None).is_none());
        let off = config(dir.path(), "prod", "cache = false\n");
        assert!(Cache::for_config(&off, Some(&master)).is_none());
        let elsewhere = config(dir.path(), "prod", "cache = \"state/here\"\n");
        let cache = Cache::for_config(&elsewhere, Some(&master)).unwrap();
        assert_eq!(cache.path(), dir.path().join("state/here/state.json"));
    }

    #[test]
    fn a_corrupt_or_foreign_cache_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterSecret::generate();
        let cache = Cache::for_config(&config(dir.path(), "prod", ""), Some(&master)).unwrap();
        let saved = state(&AliasSealer::new(&master, "prod"));
        cache.save(&saved, "dir:store").unwrap();
        let expect_corrupt = |cache: &Cache, wanted: &str| {
            let err = match cache.load(dir.path()) {
                Ok(_) => panic!("a bad cache loaded"),
                Err(err) => err.to_string(),
            };
            assert!(err.contains(&cache.path().display().to_string()), "{err}");
            assert!(err.contains(wanted), "{err}");
        };
        let other_master = MasterSecret::generate();
        let foreign = Cache::for_config(&config(dir.path(), "prod", ""), Some(&other_master));
        expect_corrupt(&foreign.unwrap(), "sealed with this master secret");
        let other_cluster = Cache::for_config(&config(dir.path(), "test", ""), Some(&master));
        expect_corrupt(&other_cluster.unwrap(), "cluster \"test\"");
        let mut bad_topology = saved.clone();
        bad_topology
            .topologies
            .insert("bad".to_string(), "[[service]]\n".to_string());
        cache.save(&bad_topology, "dir:store").unwrap();
        expect_corrupt(&cache, "topology bad to validate");
        std::fs::write(cache.path(), "{\"format\": 1").unwrap();
        expect_corrupt(&cache, "the JSON of a member cache");
    }

    #[tokio::test]
    async fn the_writer_saves_the_latest_state_after_updates() {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterSecret::generate();
        let cache = Cache::for_config(&config(dir.path(), "prod", ""), Some(&master)).unwrap();
        let writer = CacheWriter::new(cache.clone(), "dir:store".into(), CachedState::default());
        let task = tokio::spawn(writer.clone().run());
        for n in 0..5 {
            writer.update(|s| {
                s.topologies.insert(format!("t{n}"), TOPOLOGY.to_string());
            });
        }
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let loaded = cache.load(dir.path()).map(|s| s.topologies.len());
            if matches!(loaded, Ok(5)) {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never saved: {:?}",
                loaded.err()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        task.abort();
    }

    /// Waits up to 10 s for `done`.
    async fn eventually(what: &str, done: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while !done() {
            assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// The whole path in one member: the cache written while the store is
    /// readable, a start from it while the store is not, and the store
    /// winning when it returns (a topology gone meanwhile is removed).
    #[tokio::test]
    async fn a_member_starts_from_its_cache_and_resyncs_when_the_store_returns() {
        let dir = tempfile::tempdir().unwrap();
        MasterSecret::generate()
            .write_new_file(&dir.path().join("master.key"))
            .unwrap();
        let store_dir = dir.path().join("store");
        let extra = format!(
            "store = \"dir:{}\"\nheartbeat = \"100ms\"\n[secrets]\nmaster = \"file:master.key\"\n",
            store_dir.display()
        );
        let config = config(dir.path(), "prod", &extra);
        let store = portcullis_cluster::ClusterStore::from_config(&config.cluster).unwrap();
        store.prepare().await.unwrap();
        store.put_topology("shop", TOPOLOGY).await.unwrap();
        let member = crate::Member::start(config.clone()).await.unwrap();
        let cache_file = dir.path().join("portcullis-cache/state.json");
        eventually("the cache is written", || {
            std::fs::read_to_string(&cache_file).is_ok_and(|t| t.contains("shop"))
        })
        .await;
        member.stop().await;

        // The store's path becomes a file: neither readable nor creatable.
        std::fs::rename(&store_dir, dir.path().join("store.away")).unwrap();
        std::fs::write(&store_dir, "not a directory").unwrap();
        let started = std::time::Instant::now();
        let member = crate::Member::start(config).await.unwrap();
        assert!(started.elapsed() < std::time::Duration::from_secs(8));
        assert!(member.gateway.routes().topologies.contains_key("shop"));
        assert!(!member
            .store_connected
            .load(std::sync::atomic::Ordering::Relaxed));

        std::fs::remove_file(&store_dir).unwrap();
        std::fs::rename(dir.path().join("store.away"), &store_dir).unwrap();
        store.delete_topology("shop").await.unwrap();
        store.put_topology("sales", TOPOLOGY).await.unwrap();
        let routes = || member.gateway.routes();
        eventually("the store's change is served", || {
            routes().topologies.contains_key("sales") && !routes().topologies.contains_key("shop")
        })
        .await;
        assert!(member
            .store_connected
            .load(std::sync::atomic::Ordering::Relaxed));
        eventually("the cache follows the store", || {
            std::fs::read_to_string(&cache_file)
                .is_ok_and(|t| t.contains("sales") && !t.contains("shop"))
        })
        .await;
        member.stop().await;
    }
}
