//! A hash of the configuration a member serves, for its record, so that
//! `cluster status` and the dashboard can flag members that drifted apart.
//!
//! `generation` counts the changes a member applied, so two members with
//! the same configuration show different numbers after different histories.
//! This hash depends only on what is served now: the text of every topology
//! applied (a member that refused an invalid new version still serves, and
//! hashes, the old one), the backends' admin states and the sealed alias
//! values, as read from the store. Members that read the same store and
//! applied everything give the same hash.

use std::collections::BTreeMap;
use std::sync::Mutex;

use portcullis_config::AdminState;
use sha2::{Digest, Sha256};

/// The served configuration's parts, hashed per part.
#[derive(Debug, Default)]
pub(crate) struct AppliedConfig {
    parts: Mutex<Parts>,
}

#[derive(Debug, Default)]
struct Parts {
    topologies: BTreeMap<String, [u8; 32]>,
    admin_states: [u8; 32],
    aliases: [u8; 32],
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Name and value pairs hashed so that no two different maps give the same
/// input (lengths before each string).
fn hash_pairs<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for (name, value) in pairs {
        for part in [name, value] {
            hasher.update((part.len() as u64).to_le_bytes());
            hasher.update(part.as_bytes());
        }
    }
    hasher.finalize().into()
}

impl AppliedConfig {
    fn parts(&self) -> std::sync::MutexGuard<'_, Parts> {
        self.parts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Topology `name` now serves from `text`.
    pub(crate) fn topology_applied(&self, name: &str, text: &str) {
        self.parts()
            .topologies
            .insert(name.to_string(), sha256(text.as_bytes()));
    }

    pub(crate) fn topology_removed(&self, name: &str) {
        self.parts().topologies.remove(name);
    }

    pub(crate) fn admin_states(&self, states: &BTreeMap<String, AdminState>) {
        self.parts().admin_states = hash_pairs(
            states
                .iter()
                .map(|(id, state)| (id.as_str(), state.as_str())),
        );
    }

    pub(crate) fn aliases(&self, sealed: &BTreeMap<String, String>) {
        self.parts().aliases = hash_pairs(sealed.iter().map(|(n, v)| (n.as_str(), v.as_str())));
    }

    /// The first 16 hex digits of a SHA-256 over every part.
    pub(crate) fn hash(&self) -> String {
        let parts = self.parts();
        let mut hasher = Sha256::new();
        for (name, digest) in &parts.topologies {
            hasher.update((name.len() as u64).to_le_bytes());
            hasher.update(name.as_bytes());
            hasher.update(digest);
        }
        hasher.update(b"admin");
        hasher.update(parts.admin_states);
        hasher.update(b"aliases");
        hasher.update(parts.aliases);
        hex::encode(&hasher.finalize()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(topologies: &[(&str, &str)], states: &[(&str, AdminState)]) -> String {
        let applied = AppliedConfig::default();
        for (name, text) in topologies {
            applied.topology_applied(name, text);
        }
        applied.admin_states(&states.iter().map(|(id, s)| (id.to_string(), *s)).collect());
        applied.aliases(&BTreeMap::new());
        applied.hash()
    }

    #[test]
    fn the_same_config_gives_the_same_hash_whatever_the_order() {
        let a = config(&[("a", "x"), ("b", "y")], &[("b1", AdminState::Draining)]);
        let b = config(&[("b", "y"), ("a", "x")], &[("b1", AdminState::Draining)]);
        assert_eq!(a, b);
        assert_eq!(a.len(), 16);
    }

    #[test]
    fn any_difference_changes_the_hash() {
        let base = config(&[("a", "x")], &[]);
        assert_ne!(base, config(&[("a", "x2")], &[]));
        assert_ne!(base, config(&[("a2", "x")], &[]));
        assert_ne!(base, config(&[("a", "x"), ("b", "")], &[]));
        assert_ne!(base, config(&[("a", "x")], &[("b1", AdminState::Disabled)]));
        // name and text boundaries are not confused
        assert_ne!(config(&[("ab", "c")], &[]), config(&[("a", "bc")], &[]));
    }

    #[test]
    fn a_removed_topology_leaves_the_hash_of_the_rest() {
        let applied = AppliedConfig::default();
        applied.topology_applied("a", "x");
        let only_a = applied.hash();
        applied.topology_applied("b", "y");
        assert_ne!(applied.hash(), only_a);
        applied.topology_removed("b");
        assert_eq!(applied.hash(), only_a);
    }
}
