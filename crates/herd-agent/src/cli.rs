//! The command line of `herd-agent`.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// The agent's defaults, in one place: the flags' `default_value`s and `RunOptions::local` use them.
pub mod defaults {
    pub const DATA_DIR: &str = "/var/lib/herd-agent";
    /// Where `herd serve --with-agent` keeps its local agent's data, relative to where it was started.
    pub const QUICK_START_DATA_DIR: &str = "herd-data/agent";
    /// Where Fleet's agent (orbit) publishes the device token.
    pub const ORBIT_IDENTIFIER: &str = "/opt/orbit/identifier";
    pub const SYSCTL_DIR: &str = "/etc/sysctl.d";
    pub const PROC_SYS_DIR: &str = "/proc/sys";
    /// Seconds a script may run (Fleet's default).
    pub const SCRIPT_TIMEOUT_S: u64 = 300;
    /// Seconds between `herd-agent desktop`'s polls while all is well.
    pub const DESKTOP_INTERVAL_S: u64 = 300;
}

#[derive(Debug, Parser)]
#[command(name = "herd-agent", version, about = "herd's agent: osquery-compatible queries on this host")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one query and print its rows.
    Query {
        /// Print a JSON array of objects (values as strings or null), like `osqueryi --json`.
        #[arg(long)]
        json: bool,
        sql: String,
    },
    /// An interactive prompt like osqueryi (`.tables`, `.schema TABLE`, `.quit`).
    Shell,
    /// Enroll with a herd server and keep checking in.
    Run(RunOptions),
    /// In the user's desktop session: notify when policies fail or a migration is due; open My Device.
    Desktop(DesktopOptions),
}

#[derive(Debug, Clone, Args)]
pub struct DesktopOptions {
    /// The server's URL, e.g. https://herd.example.com:8080. Default: the one the agent publishes beside its
    /// device token (`desktop.json`).
    #[arg(long, env = "HERD_AGENT_SERVER")]
    pub server: Option<String>,
    /// CA certificate (PEM) to trust for the server. Default: the agent's (from `desktop.json`), else the
    /// system's roots.
    #[arg(long, env = "HERD_AGENT_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// The agent's data directory, where `herd-agent run` publishes the device token (`identifier`). Default:
    /// the first of /var/lib/herd-agent (the package) and ./herd-data/agent (`herd serve --with-agent` run
    /// here) that holds a token.
    #[arg(long, env = "HERD_AGENT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Print the current summary and exit (for scripts and tests).
    #[arg(long, conflicts_with = "open")]
    pub once: bool,
    /// Open the My Device page in the browser (prints its URL when no browser can be opened) and exit.
    #[arg(long)]
    pub open: bool,
    /// Seconds between polls while all is well (errors back off from 10 s, doubling, up to 30 minutes).
    #[arg(long, default_value_t = defaults::DESKTOP_INTERVAL_S)]
    pub interval: u64,
}

#[derive(Debug, Clone, Args)]
pub struct RunOptions {
    /// The server's URL, e.g. https://herd.example.com:8080.
    #[arg(long, env = "HERD_AGENT_SERVER")]
    pub server: String,
    /// File holding the enroll secret.
    #[arg(long, env = "HERD_AGENT_ENROLL_SECRET_FILE")]
    pub enroll_secret_file: PathBuf,
    /// CA certificate (PEM) to trust for the server (e.g. the server's DATA_DIR/tls/cert.pem). Default: the
    /// system's roots.
    #[arg(long, env = "HERD_AGENT_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Where the agent keeps its node key, unsent results and the device token.
    #[arg(long, env = "HERD_AGENT_DATA_DIR", default_value = defaults::DATA_DIR)]
    pub data_dir: PathBuf,
    /// Run scripts the server queues for this host (remediations). Off unless given: a host owner opts in.
    #[arg(long, env = "HERD_AGENT_ENABLE_SCRIPTS")]
    pub enable_scripts: bool,
    /// Apply the configuration profiles the server assigns this host (files and kernel parameters). Off
    /// unless given: a host owner opts in.
    #[arg(long, env = "HERD_AGENT_ENABLE_PROFILES")]
    pub enable_profiles: bool,
    /// Where profiles persist kernel parameters.
    #[arg(long, env = "HERD_AGENT_SYSCTL_DIR", default_value = defaults::SYSCTL_DIR)]
    pub sysctl_dir: PathBuf,
    /// Where kernel parameters are set (procfs; another directory in containers and tests).
    #[arg(long, env = "HERD_AGENT_PROC_SYS_DIR", default_value = defaults::PROC_SYS_DIR)]
    pub proc_sys_dir: PathBuf,
    /// Longest a script may run, in seconds (the server's limit applies when it is shorter).
    #[arg(long, env = "HERD_AGENT_SCRIPT_TIMEOUT", default_value_t = defaults::SCRIPT_TIMEOUT_S)]
    pub script_timeout: u64,
    /// The identifier this host enrolls with when it has no readable hardware UUID (default: /etc/machine-id,
    /// else the hostname).
    #[arg(long, env = "HERD_AGENT_HOST_IDENTIFIER")]
    pub host_identifier: Option<String>,
    /// Also publish the device token here, where Fleet's agent keeps it, so scripts written for Fleet find
    /// it; empty (`--orbit-identifier=`) turns it off.
    #[arg(
        long,
        env = "HERD_AGENT_ORBIT_IDENTIFIER",
        default_value = defaults::ORBIT_IDENTIFIER,
        value_parser = OptionalPath::parse
    )]
    pub orbit_identifier: OptionalPath,
}

/// A path that an empty value turns off (clap reads a plain `Option` as "absent unless given").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptionalPath(pub Option<PathBuf>);

impl OptionalPath {
    /// Reads a flag's value: empty (or blank) is "off".
    pub fn parse(text: &str) -> Result<OptionalPath, String> {
        Ok(OptionalPath(Some(text.trim()).filter(|t| !t.is_empty()).map(PathBuf::from)))
    }
}

impl RunOptions {
    /// The local agent of a herd server (`herd serve --with-agent`): enrolled with the server's own secret
    /// file, trusting its certificate, with the agent's defaults otherwise; scripts and profiles as the
    /// server's operator chose.
    pub fn local(
        server_url: String,
        enroll_secret_file: PathBuf,
        ca_cert: Option<PathBuf>,
        data_dir: PathBuf,
        enable_scripts: bool,
        enable_profiles: bool,
        orbit_identifier: OptionalPath,
    ) -> RunOptions {
        RunOptions {
            server: server_url,
            enroll_secret_file,
            ca_cert,
            data_dir,
            enable_scripts,
            enable_profiles,
            sysctl_dir: defaults::SYSCTL_DIR.into(),
            proc_sys_dir: defaults::PROC_SYS_DIR.into(),
            script_timeout: defaults::SCRIPT_TIMEOUT_S,
            host_identifier: None,
            orbit_identifier,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_local_agent_has_the_flags_defaults() {
        let Command::Run(parsed) =
            Cli::parse_from(["herd-agent", "run", "--server", "https://h:8080", "--enroll-secret-file", "/s"]).command
        else {
            panic!("not run");
        };
        let orbit_identifier = OptionalPath(Some(defaults::ORBIT_IDENTIFIER.into()));
        let local = RunOptions::local(
            "https://h:8080".into(),
            "/s".into(),
            None,
            defaults::DATA_DIR.into(),
            false,
            false,
            orbit_identifier,
        );
        assert_eq!(format!("{local:?}"), format!("{parsed:?}"));
    }

    #[test]
    fn fleet_s_token_path_is_published_unless_turned_off() {
        let orbit = |extra: &[&str]| {
            let args = ["herd-agent", "run", "--server", "https://h:8080", "--enroll-secret-file", "/s"];
            match Cli::parse_from(args.iter().chain(extra)).command {
                Command::Run(options) => options.orbit_identifier.0,
                _ => panic!("not run"),
            }
        };
        assert_eq!(orbit(&[]), Some(PathBuf::from("/opt/orbit/identifier")));
        assert_eq!(orbit(&["--orbit-identifier="]), None);
        assert_eq!(orbit(&["--orbit-identifier", "/tmp/x/identifier"]), Some(PathBuf::from("/tmp/x/identifier")));
    }
}
