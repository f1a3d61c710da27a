//! The `portcullis` command.
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

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
    Serve {
        #[arg(short, long, default_value = "portcullis.toml")]
        config: PathBuf,
    },
    /// Validate a member config and topology files; exits non-zero on any error.
    Check {
        #[arg(short, long)]
        config: Option<PathBuf>,
        topologies: Vec<PathBuf>,
    },
    /// Run a local gateway with three demo backends on loopback.
    Demo,
    /// Run one demo backend (HTTP and WebSocket echo naming itself); used by
    /// the tests and benchmarks as a separate process they can stop or freeze.
    #[command(hide = true)]
    DemoBackend {
        #[arg(long)]
        name: String,
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
    },
    /// Topologies in the cluster store.
    Topology {
        #[arg(short, long, default_value = "portcullis.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        command: TopologyCommand,
    },
    /// The cluster as the store sees it.
    Cluster {
        #[arg(short, long, default_value = "portcullis.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        command: ClusterCommand,
    },
    /// The cluster master secret.
    Master {
        #[command(subcommand)]
        command: MasterCommand,
    },
    /// Named secrets, sealed with the master secret, shared by every member.
    Alias {
        #[arg(short, long, default_value = "portcullis.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        command: AliasCommand,
    },
    /// The admin API.
    Admin {
        #[arg(short, long, default_value = "portcullis.toml", global = true)]
        config: PathBuf,
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Certificate helpers.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
}

#[derive(Subcommand)]
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

#[derive(Subcommand)]
enum ClusterCommand {
    /// Members: id, role, url, state, last seen, generation, in-flight.
    Status,
}

#[derive(Subcommand)]
enum MasterCommand {
    /// Write a new random 32-byte master secret (base64, mode 0600).
    Create {
        #[arg(long, default_value = "master.key")]
        file: PathBuf,
    },
}

#[derive(Subcommand)]
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

#[derive(Subcommand)]
enum AdminCommand {
    /// Print the cluster's admin API token (alias admin.token).
    Token,
}

#[derive(Subcommand)]
enum CertCommand {
    /// Write a CA and a server certificate and key (PEM) for the given hosts.
    Create {
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
        #[arg(long, default_value = "tls")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    portcullis::logging::init(cli.log_level.as_deref());
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = std::env::var("PORTCULLIS_WORKERS")
        .ok()
        .and_then(|w| w.parse::<usize>().ok())
        .filter(|w| *w > 0)
    {
        builder.worker_threads(workers);
    }
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { config } => {
            let config = portcullis_config::load_node_config(&config)
                .map_err(|errors| anyhow::anyhow!("invalid configuration:\n{errors}"))?;
            runtime()?.block_on(serve(config))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config, topologies } => {
            let report = portcullis::check::run_check(config.as_deref(), &topologies);
            for file in &report.checked {
                println!("ok: {file}");
            }
            for error in &report.errors {
                eprintln!("{error}");
            }
            Ok(if report.errors.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Demo => {
            let runtime = runtime()?;
            let result = runtime.block_on(portcullis::demo::run());
            // The stdin reader sits in a blocking thread that only a new line
            // would wake; do not let it hold the exit.
            runtime.shutdown_timeout(std::time::Duration::from_millis(200));
            result?;
            Ok(ExitCode::SUCCESS)
        }
        Command::DemoBackend { name, listen } => {
            runtime()?.block_on(async move {
                let mut shutdown = portcullis::signals::Shutdown::listen();
                let backend = portcullis::demo_backend::DemoBackend::spawn(&name, listen).await?;
                // Tests read this line to learn the port.
                println!("listening on {}", backend.addr());
                shutdown.wait().await;
                backend.shutdown().await;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Topology {
            command: TopologyCommand::ImportKnox { file },
            ..
        } => {
            let xml = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            let converted =
                portcullis::knox::convert_knox_topology_from(&xml, &file.display().to_string())
                    .with_context(|| format!("{}", file.display()))?;
            for warning in &converted.warnings {
                eprintln!("warning: {warning}");
            }
            print!("{}", converted.toml);
            Ok(ExitCode::SUCCESS)
        }
        Command::Topology { config, command } => {
            let config = portcullis::store_cli::load_config(&config)?;
            use portcullis::store_cli as cli;
            runtime()?.block_on(async {
                match command {
                    TopologyCommand::Put { file, name } => {
                        let name = cli::topology_put(&config, &file, name.as_deref()).await?;
                        println!("stored topology {name}");
                    }
                    TopologyCommand::List => {
                        for name in cli::topology_list(&config).await? {
                            println!("{name}");
                        }
                    }
                    TopologyCommand::Get { name } => {
                        print!("{}", cli::topology_get(&config, &name).await?)
                    }
                    TopologyCommand::Delete { name } => {
                        cli::topology_delete(&config, &name).await?;
                        println!("deleted topology {name}");
                    }
                    TopologyCommand::ImportKnox { .. } => unreachable!("handled above"),
                }
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cluster {
            config,
            command: ClusterCommand::Status,
        } => {
            let config = portcullis::store_cli::load_config(&config)?;
            let table = runtime()?.block_on(portcullis::store_cli::cluster_status(&config))?;
            print!("{table}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Admin {
            config,
            command: AdminCommand::Token,
        } => {
            let config = portcullis::store_cli::load_config(&config)?;
            let token = runtime()?.block_on(portcullis::store_cli::admin_token(&config))?;
            println!("{}", token.as_str());
            Ok(ExitCode::SUCCESS)
        }
        Command::Master {
            command: MasterCommand::Create { file },
        } => {
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
            Ok(ExitCode::SUCCESS)
        }
        Command::Alias { config, command } => {
            let config = portcullis::store_cli::load_config(&config)?;
            use portcullis::store_cli as cli;
            runtime()?.block_on(async {
                match command {
                    AliasCommand::Create { name, value } => {
                        let value = match value {
                            Some(value) => value.into_bytes(),
                            None => {
                                use std::io::Read;
                                let mut buf = Vec::new();
                                std::io::stdin().read_to_end(&mut buf)?;
                                // A value typed or piped with a final newline means the line.
                                if buf.ends_with(b"\n") {
                                    buf.pop();
                                }
                                buf
                            }
                        };
                        cli::alias_create(&config, &name, &value).await?;
                        println!("stored alias {name}");
                    }
                    AliasCommand::List => {
                        for name in cli::alias_list(&config).await? {
                            println!("{name}");
                        }
                    }
                    AliasCommand::Show { name } => {
                        let value = cli::alias_show(&config, &name).await?;
                        println!("{}", String::from_utf8_lossy(&value));
                    }
                    AliasCommand::Delete { name } => {
                        cli::alias_delete(&config, &name).await?;
                        println!("deleted alias {name}");
                    }
                }
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Cert {
            command: CertCommand::Create { hosts, out },
        } => {
            let created = portcullis::cert::create_certs(&hosts, &out)?;
            println!("CA certificate:     {}", created.ca_cert.display());
            println!("CA key:             {}", created.ca_key.display());
            println!("server certificate: {}", created.server_cert.display());
            println!("server key:         {}", created.server_key.display());
            println!(
                "use it with: [gateway] tls = {{ cert = \"{}\", key = \"{}\" }}",
                created.server_cert.display(),
                created.server_key.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn serve(config: portcullis_config::NodeConfig) -> anyhow::Result<()> {
    let mut shutdown = portcullis::signals::Shutdown::listen();
    let member = portcullis::app::Member::start(config).await?;
    shutdown.wait().await;
    tracing::info!("shutting down");
    member.stop().await;
    tracing::info!("stopped");
    Ok(())
}
