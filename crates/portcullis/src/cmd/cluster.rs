//! `portcullis cluster status|drain|enable` and `portcullis admin token`: what the store
//! holds about the cluster.

use std::path::PathBuf;

use portcullis_cluster::MemberState;

use crate::store_cli;

#[derive(clap::Args)]
pub struct Args {
    #[arg(short, long, default_value = "portcullis.toml", global = true)]
    config: PathBuf,
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(clap::Subcommand)]
enum ClusterCommand {
    /// Members: id, role, url, state, last seen, generation, in-flight.
    Status,
    /// Stop sending new clients to member ID: balancers keep only the
    /// clients whose affinity cookie names it, and it keeps serving.
    Drain { id: String },
    /// Undo `drain`: balancers send member ID new clients again.
    Enable { id: String },
}

#[derive(clap::Args)]
pub struct AdminArgs {
    #[arg(short, long, default_value = "portcullis.toml", global = true)]
    config: PathBuf,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(clap::Subcommand)]
enum AdminCommand {
    /// Print the cluster's admin API token (alias admin.token).
    Token {
        /// Replace it with a new random token first (needs [secrets] master);
        /// every member accepts the new one, and refuses the old one, once it
        /// has read the store's aliases.
        #[arg(long)]
        rotate: bool,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = store_cli::load_config(&args.config)?;
    let runtime = crate::runtime()?;
    let (id, state) = match args.command {
        ClusterCommand::Status => {
            print!("{}", runtime.block_on(store_cli::cluster_status(&config))?);
            return Ok(());
        }
        ClusterCommand::Drain { id } => (id, MemberState::Draining),
        ClusterCommand::Enable { id } => (id, MemberState::Enabled),
    };
    runtime.block_on(store_cli::set_member_state(&config, &id, state))?;
    println!("member {id} is now {}", state.as_str());
    Ok(())
}

pub fn run_admin(args: AdminArgs) -> anyhow::Result<()> {
    let AdminCommand::Token { rotate } = args.command;
    let config = store_cli::load_config(&args.config)?;
    let token = if rotate {
        crate::runtime()?.block_on(store_cli::rotate_admin_token(&config))?
    } else {
        crate::runtime()?.block_on(store_cli::admin_token(&config))?
    };
    println!("{}", token.as_str());
    Ok(())
}
