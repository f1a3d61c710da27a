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
