//! `herdctl`: thin glue over [`herdctl::run`].

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = herdctl::cli::Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("herdctl: {err}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(herdctl::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("herdctl: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
