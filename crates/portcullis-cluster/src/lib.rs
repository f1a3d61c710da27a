//! Where cluster state lives: topologies, backend admin states, sealed
//! aliases, API key records (hashes only), member records and the cookie key. Two stores behave the same
//! way behind [`ClusterStore`]: the `dir:` store (files under a directory,
//! e.g. `<store>/topologies/NAME.toml`, polled) and the `etcd://` store
//! (keys under `/portcullis/<cluster>/`, watched). Each turns what it reads
//! into a [`Snapshot`] and reports [`diff`] of it as [`StoreEvent`]s, so every
//! member sharing a store converges without a restart.
#![forbid(unsafe_code)]

pub mod api_keys;
mod diff;
mod dir;
mod etcd;
pub mod members;
pub mod roles;
mod store;
mod watch;

pub use api_keys::ApiKeyRecord;
pub use diff::{diff, Snapshot};
pub use dir::DirStore;
pub use etcd::{EtcdSecurity, EtcdStore};
pub use members::{MemberRecord, MemberState, RoleName};
pub use roles::{WriteError, Writer};
pub use store::{ClusterStore, DIR_POLL};
pub use watch::{StoreEvent, StoreWatcher};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    // The cause is part of the message and not also given as `source()`:
    // error chains (`{:#}`, the CLI's output) would print it twice.
    #[error("store {location}: {action} failed: {cause}")]
    Io {
        location: String,
        action: String,
        cause: std::io::Error,
    },
    #[error("invalid topology name {name:?}: {reason}")]
    BadName { name: String, reason: String },
    #[error("{0} does not exist")]
    NotFound(String),
    #[error("{0} exists already")]
    Exists(String),
    /// The store answered and refused this member (a wrong etcd user or
    /// password): trying again will not help.
    #[error("store {location}: refused: {reason}")]
    Refused { location: String, reason: String },
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
