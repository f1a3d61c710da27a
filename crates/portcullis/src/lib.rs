//! The `portcullis` binary's library: member wiring, CLI commands and the demo.
//! The binary in main.rs is a thin layer over it, and end-to-end tests use it.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod balancer;
pub mod cert;
pub mod check;
pub mod demo;
pub mod demo_backend;
#[doc(hidden)]
pub mod fuzzing;
pub mod knox;
pub mod logging;
pub mod secrets;
pub mod signals;
pub mod store_cli;
