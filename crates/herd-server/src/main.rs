//! The `herd` binary: parse the command line, set up logging and TLS, hand over to the library.

use clap::Parser;
use herd_server::cli::{Cli, Command};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    // One TLS crypto provider for the whole process (ring), installed before anything uses rustls.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => herd_server::serve(args).await,
            Command::ResetAdminPassword { server, email } => herd_server::reset_password(&server, &email).await,
        }
    })
}
