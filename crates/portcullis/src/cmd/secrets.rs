//! `portcullis master create` and `portcullis alias`: the cluster's master
//! secret and the aliases sealed with it.

use std::io::Read;
use std::path::PathBuf;

use crate::store_cli;

#[derive(clap::Args)]
pub struct MasterArgs {
    #[command(subcommand)]
    command: MasterCommand,
}

#[derive(clap::Subcommand)]
enum MasterCommand {
    /// Write a new random 32-byte master secret (base64, mode 0600).
    Create {
        #[arg(long, default_value = "master.key")]
        file: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct AliasArgs {
    #[arg(short, long, default_value = "portcullis.toml", global = true)]
    config: PathBuf,
    #[command(subcommand)]
    command: AliasCommand,
}

#[derive(clap::Subcommand)]
enum AliasCommand {
    /// Store a secret; the value is read from stdin unless --value is given.
    Create {
        name: String,
        #[arg(long)]
        value: Option<String>,
    },
    /// Alias names (never values).
    List,
    /// Print an alias value (needs the master secret).
    Show {
        name: String,
    },
    Delete {
        name: String,
    },
}

pub fn run_master(args: MasterArgs) -> anyhow::Result<()> {
    let MasterCommand::Create { file } = args.command;
    let master = portcullis_secrets::MasterSecret::generate();
    master.write_new_file(&file)?;
    println!(
        "wrote {} (fingerprint {})",
        file.display(),
        master.fingerprint()
    );
    println!(
        "give every member the same file, like a TLS key: [secrets] master = \"file:{}\"",
        file.display()
    );
    Ok(())
}

pub fn run_alias(args: AliasArgs) -> anyhow::Result<()> {
    let config = store_cli::load_config(&args.config)?;
    crate::runtime()?.block_on(async {
        match args.command {
            AliasCommand::Create { name, value } => {
                let value = match value {
                    Some(value) => value.into_bytes(),
                    None => read_stdin_value()?,
                };
                store_cli::alias_create(&config, &name, &value).await?;
                println!("stored alias {name}");
            }
            AliasCommand::List => {
                for name in store_cli::alias_list(&config).await? {
                    println!("{name}");
                }
            }
            AliasCommand::Show { name } => {
                let value = store_cli::alias_show(&config, &name).await?;
                println!("{}", String::from_utf8_lossy(&value));
            }
            AliasCommand::Delete { name } => {
                store_cli::alias_delete(&config, &name).await?;
                println!("deleted alias {name}");
            }
        }
        Ok(())
    })
}

/// An alias value from stdin. A value typed or piped with a final newline
/// means the line.
fn read_stdin_value() -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::io::stdin().read_to_end(&mut buf)?;
    if buf.ends_with(b"\n") {
        buf.pop();
    }
    Ok(buf)
}
