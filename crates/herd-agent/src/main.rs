//! The `herd-agent` binary: thin glue over the library.

use clap::Parser;
use herd_agent::cli::{Cli, Command};
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let outcome = match cli.command {
        Command::Query { json, sql } => herd_agent::output::run_query(&sql, json),
        Command::Shell => herd_agent::shell::run(),
        Command::Run(options) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(herd_agent::run::run(options))),
        Command::Desktop(options) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(herd_agent::desktop::run(options))),
    };
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("herd-agent: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
