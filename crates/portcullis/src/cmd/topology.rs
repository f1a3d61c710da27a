//! `portcullis topology`: topologies in the cluster store, and the Knox
//! importer.

use std::path::PathBuf;

use anyhow::Context;

use crate::store_cli;

#[derive(clap::Args)]
pub struct Args {
    #[arg(short, long, default_value = "portcullis.toml", global = true)]
    config: PathBuf,
    #[command(subcommand)]
    command: TopologyCommand,
}

#[derive(clap::Subcommand)]
enum TopologyCommand {
    /// Validate FILE and store it (every member applies it).
    Put {
        file: PathBuf,
        /// Topology name; default: the file name without .toml.
        #[arg(long)]
        name: Option<String>,
    },
    /// Names of the stored topologies.
    List,
    /// Print a stored topology.
    Get { name: String },
    /// Remove a topology from every member.
    Delete { name: String },
    /// Print the TOML equivalent of an Apache Knox topology XML file; what
    /// cannot be carried over is listed as warnings on stderr.
    ImportKnox { file: PathBuf },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    if let TopologyCommand::ImportKnox { file } = &args.command {
        // Needs neither the config nor the store.
        return import_knox(file);
    }
    let config = store_cli::load_config(&args.config)?;
    crate::runtime()?.block_on(async {
        match args.command {
            TopologyCommand::Put { file, name } => {
                let name = store_cli::topology_put(&config, &file, name.as_deref()).await?;
                println!("stored topology {name}");
            }
            TopologyCommand::List => {
                for name in store_cli::topology_list(&config).await? {
                    println!("{name}");
                }
            }
            TopologyCommand::Get { name } => {
                print!("{}", store_cli::topology_get(&config, &name).await?)
            }
            TopologyCommand::Delete { name } => {
                store_cli::topology_delete(&config, &name).await?;
                println!("deleted topology {name}");
            }
            TopologyCommand::ImportKnox { file } => import_knox(&file)?,
        }
        Ok(())
    })
}

fn import_knox(file: &std::path::Path) -> anyhow::Result<()> {
    let xml =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let label = file.display().to_string();
    let converted =
        portcullis_knox::convert_knox_topology_from(&xml, &label).with_context(|| label.clone())?;
    for warning in &converted.warnings {
        eprintln!("warning: {warning}");
    }
    print!("{}", converted.toml);
    Ok(())
}
