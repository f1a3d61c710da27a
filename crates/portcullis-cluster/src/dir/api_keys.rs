//! API key records in a `dir:` store: `<store>/keys/NAME`, one JSON
//! document each (see [`crate::api_keys`]).

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::DirStore;
use crate::StoreError;

impl DirStore {
    fn keys_dir(&self) -> PathBuf {
        self.root.join("keys")
    }

    fn key_path(&self, name: &str) -> Result<PathBuf, StoreError> {
        crate::validate_record_name(name)?;
        Ok(self.keys_dir().join(name))
    }

    /// Every key record's text by name.
    pub fn api_keys(&self) -> Result<BTreeMap<String, String>, StoreError> {
        self.read_records(&self.keys_dir(), "keys", "key")
    }

    /// Stores a new key record; a name in use is refused, never replaced
    /// (a hard link does not overwrite, so two creators cannot both win).
    pub fn create_api_key(&self, name: &str, record: &str) -> Result<(), StoreError> {
        let path = self.key_path(name)?;
        self.subdir(&self.keys_dir(), "keys/")?;
        let tmp = self.keys_dir().join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::write(&tmp, record).map_err(|e| self.io("write key", e))?;
        let linked = std::fs::hard_link(&tmp, &path);
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(StoreError::Exists(format!("key {name}")))
            }
            Err(e) => Err(self.io("create key", e)),
        }
    }

    pub fn delete_api_key(&self, name: &str) -> Result<(), StoreError> {
        match std::fs::remove_file(self.key_path(name)?) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(StoreError::NotFound(format!("key {name}")))
            }
            Err(e) => Err(self.io("delete key", e)),
        }
    }
}
