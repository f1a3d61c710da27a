//! Where cluster state lives. For now the `dir:` store: topologies as files under
//! `<store>/topologies/NAME.toml`, watched by polling so that every member
//! sharing the directory converges without a restart.
#![forbid(unsafe_code)]

mod dir;
mod etcd;
pub mod members;
pub mod roles;
mod store;

pub use dir::{DirStore, TopologyEvent, TopologyWatcher};
pub use etcd::EtcdStore;
pub use members::{MemberRecord, RoleName};
pub use roles::{WriteError, Writer};
pub use store::{ClusterStore, DIR_POLL};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {location}: {action} failed: {source}")]
    Io {
        location: String,
        action: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid topology name {name:?}: {reason}")]
    BadName { name: String, reason: String },
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("store {location}: unreadable record {what}: {reason}")]
    BadRecord {
        location: String,
        what: String,
        reason: String,
    },
}

/// Names of records that become file names or key suffixes: aliases, members.
pub(crate) fn validate_record_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(StoreError::BadName {
            name: name.to_string(),
            reason: "use 1-128 letters, digits, '.', '_' or '-', not starting with '.'".to_string(),
        })
    }
}
