//! `portcullis cert create`: see `portcullis::cert`.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: CertCommand,
}

#[derive(clap::Subcommand)]
enum CertCommand {
    /// Write a CA and a server certificate and key (PEM) for the given hosts.
    Create {
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        /// Also write a client certificate `client-NAME.crt`/`.key` (e.g.
        /// for a member connecting to etcd with client-cert-auth).
        #[arg(long = "client")]
        clients: Vec<String>,
        #[arg(long, default_value = "tls")]
        out: PathBuf,
    },
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let CertCommand::Create {
        hosts,
        clients,
        out,
    } = args.command;
    let created = portcullis::cert::create_certs_with_clients(&hosts, &clients, &out)?;
    println!("CA certificate:     {}", created.ca_cert.display());
    println!("CA key:             {}", created.ca_key.display());
    println!("server certificate: {}", created.server_cert.display());
    println!("server key:         {}", created.server_key.display());
    println!(
        "use it with: [gateway] tls = {{ cert = \"{}\", key = \"{}\" }}",
        created.server_cert.display(),
        created.server_key.display()
    );
    for (cert, key) in &created.clients {
        println!("client certificate: {}", cert.display());
        println!("client key:         {}", key.display());
    }
    Ok(())
}
