//! The `dir:` store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use portcullis_config::AdminState;

use crate::diff::Snapshot;
use crate::members::MemberRecord;
use crate::watch::{ReceiverGone, Reporter, StoreWatcher};
use crate::StoreError;

mod api_keys;
mod member_states;

/// The file that marks a directory as a Portcullis store. When an NFS share
/// is unmounted its mount point usually stays, empty: without the marker an
/// empty (or emptied) directory would read as "every topology deleted" and
/// every member would undeploy everything. A store without it is an outage.
pub const STORE_MARKER: &str = ".portcullis-store";

/// A store kept in a directory, shared by members on one machine or on a
/// shared file system.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    pub fn new(root: impl Into<PathBuf>) -> DirStore {
        DirStore { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn topologies_dir(&self) -> PathBuf {
        self.root.join("topologies")
    }

    fn io(&self, action: impl Into<String>, source: std::io::Error) -> StoreError {
        StoreError::Io {
            location: self.root.display().to_string(),
            action: action.into(),
            cause: source,
        }
    }

    /// Creates the store layout and its marker when they are missing. Only a
    /// member starting and an operator's CLI command create the root; later
    /// writes never do (see `DirStore::subdir`).
    pub fn ensure_layout(&self) -> Result<(), StoreError> {
        std::fs::create_dir_all(self.topologies_dir())
            .map_err(|e| self.io("create topologies/", e))?;
        let marker = self.root.join(STORE_MARKER);
        if !marker.exists() {
            std::fs::write(&marker, "a Portcullis dir store; do not remove\n")
                .map_err(|e| self.io(format!("create {STORE_MARKER}"), e))?;
        }
        Ok(())
    }

    /// An outage unless the root holds the store's marker: an empty,
    /// emptied, unmounted or unreadable directory is never read as a store
    /// whose contents were all deleted.
    fn check_marker(&self) -> Result<(), StoreError> {
        match std::fs::metadata(self.root.join(STORE_MARKER)) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(self.io(
                format!("find {STORE_MARKER}"),
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "the store directory has no marker file (an unmounted share or an emptied directory?); treated as an outage, not as deleted contents. A member or CLI command recreates it when it starts",
                ),
            )),
            Err(e) => Err(self.io(format!("read {STORE_MARKER}"), e)),
        }
    }

    /// Creates a directory inside the store, but never the store's root, and
    /// only in a root that holds the marker: if the root vanished or was left
    /// empty (an unmounted share), writing would put files on the local disk
    /// under the mount point, or recreate an empty store that every member
    /// would read as "everything deleted".
    fn subdir(&self, dir: &Path, what: &str) -> Result<(), StoreError> {
        self.check_marker()?;
        std::fs::create_dir_all(dir).map_err(|e| self.io(format!("create {what}"), e))
    }

    fn topology_path(&self, name: &str) -> Result<PathBuf, StoreError> {
        portcullis_config::validate_topology_name(name).map_err(|reason| StoreError::BadName {
            name: name.to_string(),
            reason,
        })?;
        Ok(self.topologies_dir().join(format!("{name}.toml")))
    }

    /// Every topology file as (name -> text). A missing directory is an empty
    /// store; an unreadable one is an error, so callers never mistake an outage
    /// for "everything was deleted". A file that is not UTF-8 is logged with
    /// its name and left out: one bad file must not hide the others.
    pub fn list_topologies(&self) -> Result<BTreeMap<String, String>, StoreError> {
        let mut out = BTreeMap::new();
        for (name, bytes) in self.topology_files()? {
            match String::from_utf8(bytes) {
                Ok(text) => {
                    out.insert(name, text);
                }
                Err(_) => tracing::warn!(
                    file = %self.topologies_dir().join(format!("{name}.toml")).display(),
                    "skipping a topology file that is not UTF-8 text"
                ),
            }
        }
        Ok(out)
    }

    /// Every topology file as (name -> bytes), as stored.
    fn topology_files(&self) -> Result<BTreeMap<String, Vec<u8>>, StoreError> {
        let dir = self.topologies_dir();
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.root.is_dir() => {
                return Ok(BTreeMap::new())
            }
            Err(e) => return Err(self.io("list topologies", e)),
        };
        let mut out = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.io("list topologies", e))?;
            let path = entry.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".toml"))
            else {
                continue;
            };
            if portcullis_config::validate_topology_name(name).is_err() {
                continue;
            }
            match std::fs::read(&path) {
                Ok(bytes) => {
                    out.insert(name.to_string(), bytes);
                }
                // Removed between listing and reading: it is simply gone.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io(format!("read {}", path.display()), e)),
            }
        }
        Ok(out)
    }

    pub fn get_topology(&self, name: &str) -> Result<String, StoreError> {
        let path = self.topology_path(name)?;
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(format!("topology {name}")))
            }
            Err(e) => Err(self.io(format!("read {}", path.display()), e)),
        }
    }

    /// Writes atomically (temp file + rename) so a watcher never reads half a file.
    pub fn put_topology(&self, name: &str, text: &str) -> Result<(), StoreError> {
        let path = self.topology_path(name)?;
        self.subdir(&self.topologies_dir(), "topologies/")?;
        let tmp = self
            .topologies_dir()
            .join(format!(".{name}.toml.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text).map_err(|e| self.io(format!("write {}", tmp.display()), e))?;
        std::fs::rename(&tmp, &path)
            .map_err(|e| self.io(format!("rename to {}", path.display()), e))
    }

    pub fn delete_topology(&self, name: &str) -> Result<(), StoreError> {
        let path = self.topology_path(name)?;
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(format!("topology {name}")))
            }
            Err(e) => Err(self.io(format!("delete {}", path.display()), e)),
        }
    }

    fn admin_dir(&self) -> PathBuf {
        self.root.join("admin").join("backends")
    }

    /// The cluster's sticky-cookie key, created on first use. Creation is
    /// create-if-absent (a hard link cannot replace an existing file), so
    /// members starting at the same moment all end up with the first key.
    pub fn cookie_key(&self) -> Result<[u8; 32], StoreError> {
        let dir = self.root.join("cluster");
        let path = dir.join("cookie-key");
        if let Some(key) = self.read_key(&path)? {
            return Ok(key);
        }
        self.subdir(&dir, "cluster/")?;
        let key: [u8; 32] = rand::random();
        let tmp = dir.join(format!(
            ".cookie-key.{}.{}.tmp",
            std::process::id(),
            rand::random::<u32>()
        ));
        let text = base64::engine::general_purpose::STANDARD.encode(key);
        std::fs::write(&tmp, text).map_err(|e| self.io("write cookie key", e))?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(key),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self
                .read_key(&path)?
                .ok_or_else(|| self.io("read cookie key", std::io::Error::other("empty key file"))),
            Err(e) => Err(self.io("create cookie key", e)),
        }
    }

    fn read_key(&self, path: &Path) -> Result<Option<[u8; 32]>, StoreError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|e| self.io("decode cookie key", std::io::Error::other(e)))?;
                let key: [u8; 32] = bytes.try_into().map_err(|_| {
                    self.io(
                        "decode cookie key",
                        std::io::Error::other("expected 32 bytes"),
                    )
                })?;
                Ok(Some(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.io("read cookie key", e)),
        }
    }

    /// Sets the admin state of a backend for every member. `Enabled` removes
    /// the record, so the store only lists exceptions.
    pub fn set_backend_state(&self, backend_id: &str, state: AdminState) -> Result<(), StoreError> {
        if backend_id.is_empty() || !backend_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(StoreError::BadName {
                name: backend_id.to_string(),
                reason: "a backend id is hexadecimal".to_string(),
            });
        }
        let dir = self.admin_dir();
        let path = dir.join(backend_id);
        if state == AdminState::Enabled {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(self.io("clear backend state", e))
                }
                _ => Ok(()),
            };
        }
        self.subdir(&dir, "admin/backends/")?;
        let tmp = dir.join(format!(".{backend_id}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, state.as_str()).map_err(|e| self.io("write backend state", e))?;
        std::fs::rename(&tmp, &path).map_err(|e| self.io("write backend state", e))
    }

    /// Admin states that are not `enabled`, by backend id.
    pub fn backend_states(&self) -> Result<BTreeMap<String, AdminState>, StoreError> {
        let entries = match std::fs::read_dir(self.admin_dir()) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.root.is_dir() => {
                return Ok(BTreeMap::new())
            }
            Err(e) => return Err(self.io("list backend states", e)),
        };
        let mut states = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.io("list backend states", e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            match std::fs::read_to_string(entry.path()) {
                Ok(text) => match AdminState::parse(&text) {
                    Some(state) => {
                        states.insert(name, state);
                    }
                    None => {
                        tracing::warn!(backend = %name, "ignoring unreadable admin state {text:?}")
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io("read backend state", e)),
            }
        }
        Ok(states)
    }

    fn aliases_dir(&self) -> PathBuf {
        self.root.join("aliases")
    }

    fn alias_path(&self, name: &str) -> Result<PathBuf, StoreError> {
        crate::validate_record_name(name)?;
        Ok(self.aliases_dir().join(name))
    }

    /// Sealed alias values by name (the store never sees plaintext).
    pub fn aliases(&self) -> Result<BTreeMap<String, String>, StoreError> {
        self.read_records(&self.aliases_dir(), "aliases", "alias")
    }

    /// Every record file of `dir` (one value per file, named by its file;
    /// dot files are in-flight writes) by name, trimmed. A missing `dir`
    /// in an existing store holds none.
    pub(super) fn read_records(
        &self,
        dir: &std::path::Path,
        plural: &str,
        singular: &str,
    ) -> Result<BTreeMap<String, String>, StoreError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.root.is_dir() => {
                return Ok(BTreeMap::new())
            }
            Err(e) => return Err(self.io(format!("list {plural}"), e)),
        };
        let mut out = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.io(format!("list {plural}"), e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') {
                continue;
            }
            match std::fs::read_to_string(entry.path()) {
                Ok(text) => {
                    out.insert(name, text.trim().to_string());
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io(format!("read {singular}"), e)),
            }
        }
        Ok(out)
    }

    pub fn put_alias(&self, name: &str, sealed: &str) -> Result<(), StoreError> {
        let path = self.alias_path(name)?;
        self.subdir(&self.aliases_dir(), "aliases/")?;
        let tmp = self
            .aliases_dir()
            .join(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, sealed).map_err(|e| self.io("write alias", e))?;
        std::fs::rename(&tmp, &path).map_err(|e| self.io("write alias", e))
    }

    pub fn delete_alias(&self, name: &str) -> Result<(), StoreError> {
        match std::fs::remove_file(self.alias_path(name)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(format!("alias {name}")))
            }
            Err(e) => Err(self.io("delete alias", e)),
        }
    }

    /// Stores `sealed` under `name` unless the alias exists; returns the value
    /// that is stored afterwards (ours or the first writer's).
    pub fn create_alias_if_absent(&self, name: &str, sealed: &str) -> Result<String, StoreError> {
        let path = self.alias_path(name)?;
        self.subdir(&self.aliases_dir(), "aliases/")?;
        let tmp = self.aliases_dir().join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::write(&tmp, sealed).map_err(|e| self.io("write alias", e))?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(sealed.to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                std::fs::read_to_string(&path)
                    .map(|t| t.trim().to_string())
                    .map_err(|e| self.io("read alias", e))
            }
            Err(e) => Err(self.io("create alias", e)),
        }
    }

    fn members_dir(&self) -> PathBuf {
        self.root.join("members")
    }

    fn member_path(&self, id: &str) -> Result<PathBuf, StoreError> {
        if id.is_empty()
            || id.starts_with('.')
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(StoreError::BadName {
                name: id.to_string(),
                reason: "member ids use letters, digits, '.', '_' and '-'".to_string(),
            });
        }
        Ok(self.members_dir().join(format!("{id}.json")))
    }

    /// Writes this member's record (a heartbeat), atomically.
    pub fn put_member(&self, record: &MemberRecord) -> Result<(), StoreError> {
        let path = self.member_path(&record.id)?;
        self.subdir(&self.members_dir(), "members/")?;
        let tmp = self
            .members_dir()
            .join(format!(".{}.{}.tmp", record.id, std::process::id()));
        let text = serde_json::to_string_pretty(record)
            .map_err(|e| self.io("encode member", std::io::Error::other(e)))?;
        std::fs::write(&tmp, text).map_err(|e| self.io("write member record", e))?;
        std::fs::rename(&tmp, &path).map_err(|e| self.io("write member record", e))
    }

    /// Removes a member's record: it leaves the cluster at once.
    pub fn remove_member(&self, id: &str) -> Result<(), StoreError> {
        match std::fs::remove_file(self.member_path(id)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(self.io("remove member record", e))
            }
            _ => Ok(()),
        }
    }

    /// Every member record, alive or not (callers decide with `is_alive`).
    /// Removes the records of members silent for longer than `older_than`
    /// (killed members never remove their own), returning their ids. etcd
    /// needs no such thing: a dead member's lease expires its record.
    pub fn prune_members(&self, older_than: Duration) -> Result<Vec<String>, StoreError> {
        let now = crate::members::now_ms();
        let mut pruned = Vec::new();
        for record in self.members()? {
            if record.age(now) > older_than {
                self.remove_member(&record.id)?;
                pruned.push(record.id);
            }
        }
        Ok(pruned)
    }

    pub fn members(&self) -> Result<Vec<MemberRecord>, StoreError> {
        self.check_marker()?;
        let entries = match std::fs::read_dir(self.members_dir()) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.root.is_dir() => {
                return Ok(Vec::new())
            }
            Err(e) => return Err(self.io("list members", e)),
        };
        let mut members = Vec::new();
        for entry in entries {
            let path = entry.map_err(|e| self.io("list members", e))?.path();
            if path.extension().is_none_or(|e| e != "json")
                || path
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.io("read member record", e)),
            };
            match serde_json::from_str(&text) {
                Ok(record) => members.push(record),
                Err(e) => {
                    tracing::warn!(file = %path.display(), error = %e, "skipping an unreadable member record")
                }
            }
        }
        members.sort_by(|a: &MemberRecord, b| a.id.cmp(&b.id));
        Ok(members)
    }

    /// Everything a member follows, read now.
    fn snapshot(&self) -> Result<Snapshot, StoreError> {
        self.check_marker()?;
        Ok(Snapshot {
            topologies: self.topology_files()?,
            admin_states: self.backend_states()?,
            aliases: self.aliases()?,
            api_keys: self.api_keys()?,
            // Files have no store-wide revision.
            revision: None,
        })
    }

    /// Starts a task that reads the store every `poll` and reports what
    /// changed. The first events describe everything present at start.
    pub fn watch(&self, poll: Duration, known: Option<Snapshot>) -> StoreWatcher {
        let store = self.clone();
        StoreWatcher::spawn(known, move |reporter| store.poll_loop(poll, reporter))
    }

    async fn poll_loop(self, poll: Duration, mut reporter: Reporter) {
        while self.poll_once(&mut reporter).await.is_ok() {
            tokio::time::sleep(poll).await;
        }
    }

    async fn poll_once(&self, reporter: &mut Reporter) -> Result<(), ReceiverGone> {
        let store = self.clone();
        match tokio::task::spawn_blocking(move || store.snapshot()).await {
            Ok(Ok(snapshot)) => {
                if reporter.connection(true).await? {
                    tracing::info!(store = %self.root.display(), "store readable");
                }
                reporter
                    .snapshot(snapshot, &self.root.display().to_string())
                    .await
            }
            // Keep serving what we have: an unreadable store is an outage,
            // not a deletion.
            Ok(Err(err)) => {
                if reporter.connection(false).await? {
                    tracing::error!(error = %err, "store unreadable; keeping the last good config");
                }
                Ok(())
            }
            Err(join) => {
                tracing::error!(error = %join, "store poll task failed");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests;
