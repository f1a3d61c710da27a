//! `portcullis demo` (see `demo.rs`) and the hidden `demo-backend`.

use portcullis_demo::DemoBackend;

#[derive(clap::Args)]
pub struct BackendArgs {
    #[arg(long)]
    name: String,
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: std::net::SocketAddr,
}

pub fn run() -> anyhow::Result<()> {
    let runtime = crate::runtime()?;
    let result = runtime.block_on(crate::demo::run());
    // The stdin reader sits in a blocking thread that only a new line
    // would wake; do not let it hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(200));
    result
}

pub fn run_backend(args: BackendArgs) -> anyhow::Result<()> {
    crate::runtime()?.block_on(async move {
        let mut shutdown = crate::signals::Shutdown::listen();
        let backend = DemoBackend::spawn(&args.name, args.listen).await?;
        // Tests read this line to learn the port.
        println!("listening on {}", backend.addr());
        shutdown.wait().await;
        backend.shutdown().await;
        Ok(())
    })
}
