//! Operators' member states in a `dir:` store: `admin/members/<id>` holds the
//! state word; a member without a file is `enabled`, so the store lists only
//! exceptions, as for backends.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::DirStore;
use crate::members::MemberState;
use crate::StoreError;

impl DirStore {
    fn member_states_dir(&self) -> PathBuf {
        self.root().join("admin").join("members")
    }

    /// Sets a member's state for every balancer. `Enabled` removes the file.
    pub fn set_member_state(&self, id: &str, state: MemberState) -> Result<(), StoreError> {
        crate::validate_record_name(id)?;
        let dir = self.member_states_dir();
        let path = dir.join(id);
        if state == MemberState::Enabled {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(self.io("clear member state", e))
                }
                _ => Ok(()),
            };
        }
        self.subdir(&dir, "admin/members/")?;
        let tmp = dir.join(format!(".{id}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, state.as_str()).map_err(|e| self.io("write member state", e))?;
        std::fs::rename(&tmp, &path).map_err(|e| self.io("write member state", e))
    }

    /// Member states that are not `enabled`, by member id.
    pub fn member_states(&self) -> Result<BTreeMap<String, MemberState>, StoreError> {
        self.check_marker()?;
        let entries = match std::fs::read_dir(self.member_states_dir()) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
            Err(e) => return Err(self.io("list member states", e)),
        };
        let mut states = BTreeMap::new();
        for entry in entries {
            let entry = entry.map_err(|e| self.io("list member states", e))?;
            let id = entry.file_name().to_string_lossy().to_string();
            if id.starts_with('.') {
                continue;
            }
            match std::fs::read_to_string(entry.path()) {
                Ok(text) => match MemberState::parse(&text) {
                    Some(state) => {
                        states.insert(id, state);
                    }
                    None => {
                        tracing::warn!(member = %id, "ignoring unreadable member state {text:?}")
                    }
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(self.io("read member state", e)),
            }
        }
        Ok(states)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_states_are_stored_listed_and_cleared() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path());
        store.ensure_layout().unwrap();
        assert!(store.member_states().unwrap().is_empty());
        store
            .set_member_state("m-1", MemberState::Draining)
            .unwrap();
        store.set_member_state("m-2", MemberState::Enabled).unwrap();
        assert_eq!(
            store.member_states().unwrap(),
            BTreeMap::from([("m-1".to_string(), MemberState::Draining)])
        );
        store.set_member_state("m-1", MemberState::Enabled).unwrap();
        assert!(store.member_states().unwrap().is_empty());
        assert!(store
            .set_member_state("../x", MemberState::Draining)
            .is_err());
    }

    #[test]
    fn a_store_without_its_marker_is_an_outage_not_all_enabled() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path());
        assert!(store.member_states().is_err());
        assert!(store
            .set_member_state("m-1", MemberState::Draining)
            .is_err());
    }
}
