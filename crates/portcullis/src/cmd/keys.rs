//! `portcullis key`: API keys (PRODUCT.md §11, docs/admin.md). Talks to the
//! cluster store as `alias` does; every member follows the change through
//! its watch. The key is printed once, at creation, and kept nowhere.

use std::path::PathBuf;

use anyhow::Context;
use portcullis_cluster::{ClusterStore, Writer};
use portcullis_config::NodeConfig;
use portcullis_member::api_keys::{KeyListing, NewKey};

use crate::store_cli;

#[derive(clap::Args)]
pub struct Args {
    #[arg(short, long, default_value = "portcullis.toml", global = true)]
    config: PathBuf,
    #[command(subcommand)]
    command: KeyCommand,
}

#[derive(clap::Subcommand)]
enum KeyCommand {
    /// Create a key for a topology (or one of its services); prints the key
    /// once.
    Create {
        name: String,
        #[arg(long)]
        topology: String,
        #[arg(long)]
        service: Option<String>,
        /// Lifetime, such as "90d" or "12h"; none: the key does not expire.
        #[arg(long)]
        expires: Option<String>,
    },
    /// Keys with their scope, expiry and creation time (never a key or hash).
    List,
    /// Revoke a key: every member refuses it from its next store read.
    Revoke { name: String },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = store_cli::load_config(&args.config)?;
    crate::runtime()?.block_on(async {
        let store = store_cli::open_store(&config)?;
        store.prepare().await?;
        match args.command {
            KeyCommand::Create {
                name,
                topology,
                service,
                expires,
            } => {
                create(
                    &config,
                    &store,
                    &name,
                    &topology,
                    service.as_deref(),
                    expires.as_deref(),
                )
                .await
            }
            KeyCommand::List => {
                let records = store.api_keys().await?;
                print!(
                    "{}",
                    table(&portcullis_member::api_keys::listings(&records, None))
                );
                Ok(())
            }
            KeyCommand::Revoke { name } => {
                Writer::new(&store, config.cluster.role)
                    .delete_api_key(&name)
                    .await?;
                println!("revoked key {name}");
                Ok(())
            }
        }
    })
}

async fn create(
    config: &NodeConfig,
    store: &ClusterStore,
    name: &str,
    topology: &str,
    service: Option<&str>,
    expires: Option<&str>,
) -> anyhow::Result<()> {
    let expires_in = expires
        .map(portcullis_config::parse_duration)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--expires: {e}"))?;
    let master = portcullis_member::secrets::load_master(config)?;
    let sealer = portcullis_member::secrets::sealer(config)?;
    let cookie_key = portcullis_member::secrets::cookie_key(store, sealer.as_ref()).await?;
    let hasher =
        portcullis_member::api_keys::hasher(master.as_ref(), &cookie_key, &config.cluster.name);
    let new = NewKey {
        name,
        topology,
        service,
        expires_in,
    };
    let writer = Writer::new(store, config.cluster.role);
    let key = portcullis_member::api_keys::create(&writer, &hasher, &new)
        .await
        .with_context(|| format!("key {name} not created"))?;
    eprintln!("created key {name}; it is shown this once and cannot be shown again:");
    println!("{}", key.as_str());
    Ok(())
}

/// `key list` output: one line per key; times in UTC. Last use is kept by
/// each member and shown by its admin API (`GET /api/v1/keys`).
fn table(keys: &[KeyListing]) -> String {
    let mut out = String::from("NAME\tTOPOLOGY\tSERVICE\tEXPIRES\tCREATED\n");
    for key in keys {
        out.push_str(&format!(
            "{}\t{}\t{}\t{}\t{}\n",
            key.name,
            key.topology,
            key.service.as_deref().unwrap_or("*"),
            key.expires_at_ms.map_or("never".to_string(), utc),
            utc(key.created_at_ms),
        ));
    }
    out
}

fn utc(ms: u64) -> String {
    let at = time::OffsetDateTime::UNIX_EPOCH + time::Duration::milliseconds(ms as i64);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_shows_scope_and_times_in_utc() {
        let listed = table(&[KeyListing {
            name: "ci".into(),
            topology: "t".into(),
            service: None,
            expires_at_ms: None,
            created_at_ms: 1_796_169_600_000,
            last_used_ms: None,
        }]);
        assert_eq!(
            listed,
            "NAME\tTOPOLOGY\tSERVICE\tEXPIRES\tCREATED\nci\tt\t*\tnever\t2026-12-02T00:00:00Z\n"
        );
    }
}
