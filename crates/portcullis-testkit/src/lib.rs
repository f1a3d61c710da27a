//! Fixtures for Portcullis end-to-end tests, shared by every test binary of
//! `crates/portcullis` so they are compiled once.
//!
//! - [`member`]: members started in-process on loopback port 0 with their own
//!   store directory, and topology helpers;
//! - [`process`]: the built `portcullis` binary as child processes (demo
//!   backends that can be killed or frozen, `serve`, the CLI);
//! - [`requests`]: plain hyper clients, bodies and replies;
//! - [`ldap`]: a real OpenLDAP `slapd` seeded with users and groups;
//! - [`load`]: the one load generator;
//! - [`raw_backend`]: a scripted raw HTTP/1.1 backend that records exact bytes;
//! - [`wait`]: waits on a condition with a deadline, instead of fixed sleeps.
#![forbid(unsafe_code)]

pub mod ldap;
pub mod load;
pub mod member;
pub mod process;
pub mod raw_backend;
pub mod requests;
pub mod tls;
pub mod wait;

pub use crate::ldap::{LdapSeed, Slapd, LDAP_GROUPS, LDAP_PEOPLE, LDAP_SUFFIX};
pub use crate::load::{Load, LoadResult};
pub use crate::member::*;
pub use crate::process::*;
pub use crate::requests::*;
pub use crate::tls::{https_client, HttpsTestClient};
pub use crate::wait::*;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Installs the TLS crypto provider once per test binary.
pub fn init() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
