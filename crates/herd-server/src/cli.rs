//! Command line of the `herd` binary. Every flag can also come from a `HERD_*` environment variable.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "herd", version, about = "Keeps a fleet of computers in their desired state")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Give a user a new generated password (prints it) and end their sessions.
    ResetAdminPassword {
        #[command(flatten)]
        server: ServeArgs,
        /// The user's email.
        email: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Where herd keeps its database (SQLite), TLS certificate, enroll secret and result logs.
    #[arg(long, env = "HERD_DATA_DIR", default_value = "./herd-data")]
    pub data_dir: PathBuf,
    /// Address to listen on. Port 0 picks a free port (printed at start).
    #[arg(long, env = "HERD_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Database URL: a `postgres://` URL selects PostgreSQL (for several servers); default: SQLite in the data dir.
    #[arg(long, env = "HERD_DATABASE_URL")]
    pub database_url: Option<String>,
    /// TLS certificate (PEM). Default: a self-signed one generated at DATA_DIR/tls/cert.pem.
    #[arg(long, env = "HERD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, env = "HERD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP, for running behind a TLS-terminating proxy.
    #[arg(long, env = "HERD_PLAIN_HTTP", conflicts_with_all = ["tls_cert", "tls_key"])]
    pub plain_http: bool,
    /// The URL hosts and users reach this server at (default: the listen address). Shown in enroll flags.
    #[arg(long, env = "HERD_SERVER_URL")]
    pub server_url: Option<String>,
    /// Also run an agent in this process, enrolling this machine as a host (data in DATA_DIR/agent).
    #[arg(long, env = "HERD_WITH_AGENT")]
    pub with_agent: bool,
    /// Let the local agent of --with-agent run scripts queued for this machine.
    #[arg(long, env = "HERD_WITH_AGENT_SCRIPTS", requires = "with_agent")]
    pub with_agent_scripts: bool,
    /// A CA certificate (PEM) to trust for outgoing webhooks besides the system's roots (an internal CA).
    #[arg(long, env = "HERD_WEBHOOK_CA_CERT")]
    pub webhook_ca_cert: Option<PathBuf>,
    /// Email of the admin created on first start.
    #[arg(long, env = "HERD_BOOTSTRAP_ADMIN_EMAIL", default_value = "admin@herd.local")]
    pub bootstrap_admin_email: String,
    /// Password of the admin created on first start (default: generated and printed once).
    #[arg(long, env = "HERD_BOOTSTRAP_ADMIN_PASSWORD", hide_env_values = true)]
    pub bootstrap_admin_password: Option<String>,
    /// Global enroll secret created on first start (default: generated).
    #[arg(long, env = "HERD_BOOTSTRAP_ENROLL_SECRET", hide_env_values = true)]
    pub bootstrap_enroll_secret: Option<String>,
}
