//! What an operator touches: the admin API, the dashboard in a browser, the
//! CLI, secrets and the Knox importer.
//!
//! Fixtures come from the `portcullis-testkit` crate.

mod access_log;
mod admin_api;
mod admin_operations;
mod cli;
mod dashboard;
mod dashboard_auth;
mod dashboard_ops;
mod import_knox;
mod restart;
mod secrets;
