//! The `portcullis` command: parses the command line and runs one
//! subcommand (one file each under `cmd/`).
// The allocator shim (`allocator.rs`) is the one place with `unsafe`.
#![deny(unsafe_code)]

mod allocator;

mod cmd;
mod demo;
mod hot_restart;
mod reload;
mod signals;
mod store_cli;

use std::process::ExitCode;

/// mimalloc instead of the C library's malloc: a proxied request allocates
/// and frees a few dozen small objects and one large read buffer, and glibc's
/// malloc spent about a quarter of the instructions per request on them
/// (callgrind, `bench/perf/cg.sh`; figures in docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: allocator::Mimalloc = allocator::Mimalloc;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "portcullis", version, about = "A highly available API gateway")]
struct Cli {
    /// Log filter, e.g. "info" or "portcullis=debug" (RUST_LOG also works).
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a gateway member.
    Serve(cmd::serve::Args),
    /// Validate a member config and topology files; exits non-zero on any error.
    Check(cmd::check::Args),
    /// Run a local gateway with three demo backends on loopback.
    Demo,
    /// Run one demo backend (HTTP and WebSocket echo naming itself); used by
    /// the tests and benchmarks as a separate process they can stop or freeze.
    #[command(hide = true)]
    DemoBackend(cmd::demo::BackendArgs),
    /// Topologies in the cluster store.
    Topology(cmd::topology::Args),
    /// The cluster as the store sees it.
    Cluster(cmd::cluster::Args),
    /// The cluster master secret.
    Master(cmd::secrets::MasterArgs),
    /// Named secrets, sealed with the master secret, shared by every member.
    Alias(cmd::secrets::AliasArgs),
    /// API keys for services with `methods = ["api_key"]`.
    Key(cmd::keys::Args),
    /// The admin API.
    Admin(cmd::cluster::AdminArgs),
    /// Certificate helpers.
    Cert(cmd::cert::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    portcullis_member::logging::init(cli.log_level.as_deref());
    // One crypto provider for the whole process: ring, never aws-lc.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match run(cli.command) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve(args) => cmd::serve::run(args),
        Command::Check(args) => cmd::check::run(args),
        Command::Demo => cmd::demo::run(),
        Command::DemoBackend(args) => cmd::demo::run_backend(args),
        Command::Topology(args) => cmd::topology::run(args),
        Command::Cluster(args) => cmd::cluster::run(args),
        Command::Master(args) => cmd::secrets::run_master(args),
        Command::Alias(args) => cmd::secrets::run_alias(args),
        Command::Key(args) => cmd::keys::run(args),
        Command::Admin(args) => cmd::cluster::run_admin(args),
        Command::Cert(args) => cmd::cert::run(args),
    }
    .map(|()| ExitCode::SUCCESS)
    .or_else(|err| match err.downcast::<cmd::Failed>() {
        Ok(cmd::Failed) => Ok(ExitCode::FAILURE),
        Err(err) => Err(err),
    })
}

/// The async runtime of every command that needs one; `PORTCULLIS_WORKERS`
/// sets its worker threads.
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = configured_workers() {
        builder.worker_threads(workers);
    }
    builder
        .enable_all()
        .on_thread_park(portcullis_member::logging::flush_access_lines)
        .on_thread_stop(portcullis_member::logging::flush_access_lines)
        .build()
        .context("cannot start the async runtime")
}

/// `PORTCULLIS_WORKERS`, when set to a positive number.
fn configured_workers() -> Option<usize> {
    std::env::var("PORTCULLIS_WORKERS")
        .ok()
        .and_then(|w| w.parse::<usize>().ok())
        .filter(|w| *w > 0)
}

/// Worker threads of the runtime: `PORTCULLIS_WORKERS`, else one per core
/// (tokio's own default).
fn workers() -> usize {
    configured_workers().unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    })
}
