//! The `herd` binary: parses the command line, sets up logging and TLS, and runs the server — with
//! `--with-agent`, this machine's own agent beside it (the one place the server and the agent meet).

mod local_agent;

use clap::{Parser, Subcommand};
use herd_server::cli::ServeArgs;
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "herd", version, about = "Keeps a fleet of computers in their desired state")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        #[command(flatten)]
        server: ServeArgs,
        #[command(flatten)]
        local_agent: local_agent::LocalAgentArgs,
    },
    /// Give a user a new generated password (prints it) and end their sessions.
    ResetAdminPassword {
        #[command(flatten)]
        server: ServeArgs,
        /// The user's email.
        email: String,
    },
}

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
            Command::Serve { server, local_agent } => herd_server::serve_with(server, local_agent.companion()).await,
            Command::ResetAdminPassword { server, email } => herd_server::reset_password(&server, &email).await,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn with_agent_is_refused_with_plain_http_before_anything_starts() {
        let err = Cli::try_parse_from(["herd", "serve", "--plain-http", "--with-agent"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict, "{err}");
        let err = Cli::try_parse_from(["herd", "serve", "--with-agent-scripts"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument, "{err}");
        let parsed = Cli::try_parse_from(["herd", "serve", "--with-agent", "--with-agent-scripts"]).unwrap();
        let Command::Serve { local_agent, .. } = parsed.command else { panic!("serve") };
        assert!(local_agent.with_agent && local_agent.with_agent_scripts);
    }
}
