//! `portcullis serve`: run a gateway member until SIGTERM or SIGINT.

use std::path::PathBuf;

use portcullis_member::Member;

#[derive(clap::Args)]
pub struct Args {
    #[arg(short, long, default_value = "portcullis.toml")]
    config: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = portcullis_config::load_node_config(&args.config)
        .map_err(|errors| anyhow::anyhow!("invalid configuration:\n{errors}"))?;
    without_huge_pages();
    // The gateway listener on one current-thread runtime per worker
    // (docs/benchmarks.md: more requests per second and more 1 MiB
    // throughput than the shared runtime).
    portcullis_member::serve_per_core_by_default(crate::workers());
    crate::runtime()?.block_on(serve(config))
}

async fn serve(config: portcullis_config::NodeConfig) -> anyhow::Result<()> {
    let mut shutdown = crate::signals::Shutdown::listen();
    let member = Member::start(config).await?;
    shutdown.wait().await;
    tracing::info!("shutting down");
    member.stop().await;
    tracing::info!("stopped");
    Ok(())
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
