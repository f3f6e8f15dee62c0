//! `herdctl`: thin glue over [`herdctl::run`].

#![deny(clippy::disallowed_macros)]

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = herdctl::cli::Cli::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            herdctl::out::warn(format_args!("herdctl: {err}"));
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(herdctl::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The reader of our output has all it wanted (`herdctl get hosts | head`): not a failure.
        Err(err) if herdctl::out::is_broken_pipe(&err) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            herdctl::out::warn(format_args!("herdctl: {err:#}"));
            std::process::ExitCode::FAILURE
        }
    }
}
