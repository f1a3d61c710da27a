//! The `portcullis` binary's library: what the end-to-end tests call besides
//! the member and data-plane crates. The commands themselves live in the
//! binary (`main.rs`, `cmd/`).
#![forbid(unsafe_code)]

pub mod cert;
