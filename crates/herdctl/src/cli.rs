//! The command line of `herdctl`.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "herdctl", version, about = "Manage a herd server: policies, labels, teams, configuration, hosts")]
pub struct Cli {
    /// Where the login is kept (default: $XDG_CONFIG_HOME/herd/herdctl.json or ~/.config/herd/herdctl.json).
    #[arg(long, global = true, env = "HERDCTL_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Log in and remember the server, its CA certificate and the session token.
    Login(LoginArgs),
    /// Forget the session (and end it on the server).
    Logout,
    /// Create or update what Fleet-format YAML files describe (kinds: policy, team, label, config).
    Apply {
        /// YAML file(s); `-` reads standard input.
        #[arg(short = 'f', long = "file", required = true)]
        files: Vec<PathBuf>,
    },
    /// Apply a Fleet GitOps repository (default.yml, teams/*.yml and the files they include by `path:`)
    /// declaratively: policies and scripts of a managed scope that the files no longer hold are deleted, and
    /// labels too when default.yml has `labels:`.
    Gitops {
        /// A GitOps file (default.yml, teams/NAME.yml), or a directory holding default.yml and teams/.
        #[arg(short = 'f', long = "file", required = true)]
        files: Vec<PathBuf>,
        /// Print what would change (+ added, ~ changed, - deleted) and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// List policies, hosts, teams or labels.
    Get {
        what: Listing,
        /// Only this team's (by name).
        #[arg(long)]
        team: Option<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete a policy or a label by name.
    Delete {
        what: Deletable,
        name: String,
        /// The policy's team (by name); default: global.
        #[arg(long)]
        team: Option<String>,
        /// Delete a label even while policies, profiles or other labels use it (they lose that scope).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Listing {
    Policies,
    Hosts,
    Teams,
    Labels,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Deletable {
    Policy,
    Label,
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The server's URL, e.g. https://herd.example.com:8080.
    #[arg(long, env = "HERD_SERVER_URL")]
    pub server: String,
    /// CA certificate (PEM) to trust for the server, e.g. herd-data/tls/cert.pem. Default: the system's roots.
    #[arg(long)]
    pub ca_cert: Option<PathBuf>,
    #[arg(long, env = "HERD_EMAIL")]
    pub email: String,
    /// Read the password from standard input (one line) instead of prompting.
    #[arg(long)]
    pub password_stdin: bool,
}
