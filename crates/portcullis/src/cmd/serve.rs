//! `portcullis serve`: run a gateway member until SIGTERM or SIGINT;
//! SIGHUP reloads `portcullis.toml`, SIGUSR2 hands the listeners to a new
//! process started from the same path (docs/operations.md).

use std::path::PathBuf;

use portcullis_config::NodeConfig;
use portcullis_member::{Inherited, Member};

use crate::hot_restart::{Restarter, Successor};
use crate::signals::{Request, ServeSignals};

#[derive(clap::Args)]
pub struct Args {
    #[arg(short, long, default_value = "portcullis.toml")]
    config: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    // Read before anything can fail: a predecessor waiting for this process
    // learns of a failure by the pair closing when it exits.
    let (inherited, successor) = crate::hot_restart::receive();
    let config = portcullis_config::load_node_config(&args.config)
        .map_err(|errors| anyhow::anyhow!("invalid configuration:\n{errors}"))?;
    portcullis_member::logging::set_from_config(config.node.log_level.as_deref())?;
    without_huge_pages();
    // The gateway listener on one current-thread runtime per worker
    // (docs/benchmarks.md: more requests per second and more 1 MiB
    // throughput than the shared runtime).
    portcullis_member::serve_per_core_by_default(crate::workers());
    let started = Started {
        config_path: args.config,
        inherited,
        successor,
    };
    crate::runtime()?.block_on(serve(config, started))
}

/// How this process came to serve: its config file, and what a
/// predecessor handed it, if a hot restart started it.
struct Started {
    config_path: PathBuf,
    inherited: Inherited,
    successor: Option<Successor>,
}

async fn serve(config: NodeConfig, started: Started) -> anyhow::Result<()> {
    // Registered before the member starts: a signal during start-up must
    // not kill the process with the default action.
    let mut signals = ServeSignals::listen();
    let restarter = Restarter::capture();
    let mut live = crate::reload::LiveConfig::new(started.config_path, config.clone());
    let member = Member::start_inheriting(config, started.inherited).await?;
    if let Some(successor) = started.successor {
        successor.ready(&member.gateway.member_id);
    }
    loop {
        match signals.next().await {
            Request::Stop => break,
            Request::Reload => live.reload(&member),
            Request::Restart => {
                // A stop asked for meanwhile abandons the new process (it is
                // stopped) and stops this one as usual.
                let successor = tokio::select! {
                    successor = restart(&restarter, &member) => successor,
                    () = signals.stop_requested() => {
                        tracing::warn!("stop requested during a hot restart; abandoning the new process");
                        break;
                    }
                };
                let Some(successor_id) = successor else {
                    continue;
                };
                tracing::info!(successor = %successor_id, "hot restart: the new process serves; draining this one");
                // Keep-alive clients move to the new process one by one, each
                // after its next answer, so none sends on a connection as it
                // closes.
                portcullis_proxy::listener::drain_gently_on_shutdown();
                member.stop_handed_over(&successor_id).await;
                tracing::info!("stopped after a hot restart");
                return Ok(());
            }
        }
    }
    tracing::info!("shutting down");
    member.stop().await;
    tracing::info!("stopped");
    Ok(())
}

/// Starts the successor; its member id once it serves, or `None` (logged)
/// when this process must keep serving.
async fn restart(restarter: &std::io::Result<Restarter>, member: &Member) -> Option<String> {
    let restarter = match restarter {
        Ok(restarter) => restarter,
        Err(err) => {
            tracing::error!(error = %err, "hot restart impossible: the binary's path was unknown at start; still serving");
            return None;
        }
    };
    tracing::info!("hot restart requested (SIGUSR2)");
    match restarter.hand_over(member.listening_sockets()).await {
        Ok(id) => Some(id),
        Err(err) => {
            tracing::error!(error = %err, "hot restart failed; this process keeps serving");
            None
        }
    }
}

/// Turns transparent huge pages off for this process unless
/// `PORTCULLIS_THP=on`. The allocator asks for huge pages where the kernel
/// allows it (`madvise` mode, Debian's default), so memory grows in 2 MiB
/// steps: measured with 5,000 idle connections, 378 to 1,307 bytes each
/// from run to run with them, 436 to 490 without (docs/benchmarks.md). A
/// gateway's heap is small and churns; the steady-load figures did not
/// move (docs/benchmarks.md, issue 13's third session).
fn without_huge_pages() {
    if std::env::var("PORTCULLIS_THP").is_ok_and(|v| v == "on") {
        return;
    }
    if let Err(err) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!(error = %err, "cannot turn transparent huge pages off");
    }
}
