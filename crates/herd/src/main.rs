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
    fn a_flag_set_to_false_through_its_variable_conflicts_with_nothing() {
        // SAFETY: this test alone touches these variables, and the parse below reads them at once.
        unsafe {
            std::env::set_var("HERD_WITH_AGENT", "false");
            std::env::set_var("HERD_WITH_AGENT_SCRIPTS", "false");
        }
        let parsed = Cli::try_parse_from(["herd", "serve", "--plain-http"]).expect("starts behind a proxy");
        let Command::Serve { local_agent, server } = parsed.command else { panic!("serve") };
        assert!(server.plain_http && !local_agent.with_agent && !local_agent.with_agent_scripts);
        unsafe {
            std::env::remove_var("HERD_WITH_AGENT");
            std::env::remove_var("HERD_WITH_AGENT_SCRIPTS");
        }
        let parsed = Cli::try_parse_from(["herd", "serve", "--with-agent", "--with-agent-scripts"]).unwrap();
        let Command::Serve { local_agent, .. } = parsed.command else { panic!("serve") };
        assert!(local_agent.with_agent && local_agent.with_agent_scripts);
        // The quick start's agent runs scripts unless told not to; profiles only when asked.
        let cases: [(&[&str], bool, bool); 4] = [
            (&["--with-agent"], true, false),
            (&["--with-agent", "--with-agent-scripts=false"], false, false),
            (&["--with-agent", "--with-agent-profiles"], true, true),
            (&["--with-agent", "--with-agent-scripts=true", "--with-agent-profiles"], true, true),
        ];
        for (flags, scripts, profiles) in cases {
            let parsed = Cli::try_parse_from(["herd", "serve"].iter().chain(flags)).unwrap();
            let Command::Serve { local_agent, .. } = parsed.command else { panic!("serve") };
            assert_eq!(
                (local_agent.with_agent_scripts, local_agent.with_agent_profiles),
                (scripts, profiles),
                "{flags:?}"
            );
        }
        // It publishes the token at Fleet's path unless told not to (or told another path).
        let orbit = |flags: &[&str]| {
            let parsed = Cli::try_parse_from(["herd", "serve", "--with-agent"].iter().chain(flags)).unwrap();
            let Command::Serve { local_agent, .. } = parsed.command else { panic!("serve") };
            local_agent.with_agent_orbit_identifier.0
        };
        assert_eq!(orbit(&[]), Some("/opt/orbit/identifier".into()));
        assert_eq!(orbit(&["--with-agent-orbit-identifier="]), None);
        assert_eq!(orbit(&["--with-agent-orbit-identifier=/tmp/o/identifier"]), Some("/tmp/o/identifier".into()));
    }
}
