//! Every table herd-agent offers, registered in [`all`]. Linux first; each module documents the columns it
//! cannot fill (NULL) and why.

mod accounts;
mod agent;
mod augeas;
mod browsers;
mod certs;
mod chrome_profiles;
mod command;
mod content;
mod cryptsetup;
mod curl;
mod dconf;
mod descriptors;
mod devices;
mod docker;
mod editors;
mod etc_files;
mod file;
mod firefox;
mod flatten;
mod flattened_command;
mod identity;
mod logins;
mod net;
mod network;
mod npm;
mod packages;
mod portage;
mod processes;
mod procfs;
mod resolvers;
mod security;
mod sntp;
mod storage;
mod suid;
mod system;
mod user_files;
mod yara;
mod yum;

use crate::table::Table;
use std::sync::Arc;

pub use agent::{SharedFacts, SharedFlags};
pub use augeas::Augeas;
pub use browsers::ChromeExtensions;
pub use chrome_profiles::GoogleChromeProfiles;
pub use cryptsetup::{CryptsetupLuksSalt, CryptsetupStatus};
pub use docker::{DockerContainerProcesses, DockerContainers};
pub use editors::VscodeExtensions;
pub use firefox::FirefoxAddons;
pub use logins::Last;
pub use portage::PortagePackages;
pub use resolvers::DnsResolvers;
pub use security::{ApparmorProfiles, Secureboot, SelinuxSettings};
pub use user_files::{KnownHosts, ShellHistory};
pub use yum::YumSources;

/// The tables of this platform, with osquery_flags showing `flags` and osquery_registry listing them all;
/// orbit_info knows no agent facts (they are NULL).
pub fn all(flags: SharedFlags) -> Vec<Arc<dyn Table>> {
    all_with_facts(flags, SharedFacts::default())
}

/// [`all`], with orbit_info showing the running agent's `facts`.
pub fn all_with_facts(flags: SharedFlags, facts: SharedFacts) -> Vec<Arc<dyn Table>> {
    let mut tables: Vec<Arc<dyn Table>> = vec![
        Arc::new(agent::OsqueryFlags(flags)),
        Arc::new(agent::OsquerySchedule),
        Arc::new(agent::OsqueryExtensions),
        Arc::new(agent::OrbitInfo(facts)),
        Arc::new(agent::PlatformInfo),
        Arc::new(identity::OsVersion),
        Arc::new(identity::SystemInfo),
        Arc::new(identity::OsqueryInfo),
        Arc::new(identity::KernelInfo),
        Arc::new(system::Uptime),
        Arc::new(system::Time),
        Arc::new(system::MemoryInfo),
        Arc::new(system::LoadAverage),
        Arc::new(system::Mounts),
        Arc::new(etc_files::Users),
        Arc::new(etc_files::Groups),
        Arc::new(etc_files::EtcHosts),
        Arc::new(processes::Processes),
        Arc::new(processes::ProcessEnvs),
        Arc::new(file::File),
        Arc::new(content::Hash),
        Arc::new(content::FileLines),
        Arc::new(accounts::UserGroups),
        Arc::new(accounts::Shadow),
        Arc::new(accounts::LoggedInUsers),
        Arc::new(accounts::Sudoers),
        Arc::new(accounts::AuthorizedKeys),
        Arc::new(accounts::UserSshKeys),
        Arc::new(accounts::SshConfigs),
        Arc::new(accounts::Crontab),
        Arc::new(user_files::KnownHosts::default()),
        Arc::new(user_files::ShellHistory::default()),
        Arc::new(packages::DebPackages),
        Arc::new(packages::RpmPackages),
        Arc::new(portage::PortagePackages::default()),
        Arc::new(packages::PythonPackages),
        Arc::new(packages::AptSources),
        Arc::new(packages::KernelModules),
        Arc::new(packages::SystemControls),
        Arc::new(network::InterfaceAddresses),
        Arc::new(network::InterfaceDetails),
        Arc::new(network::Routes),
        Arc::new(network::ListeningPorts),
        Arc::new(network::Iptables),
        Arc::new(devices::DiskEncryption),
        Arc::new(devices::CpuInfo),
        Arc::new(devices::SystemdUnits),
        Arc::new(augeas::Augeas::default()),
        Arc::new(dconf::DconfRead),
        Arc::new(npm::NpmPackages),
        Arc::new(browsers::ChromeExtensions::default()),
        Arc::new(curl::Curl),
        Arc::new(curl::CurlCertificate),
        Arc::new(sntp::SntpRequest),
        Arc::new(docker::DockerContainers::default()),
        Arc::new(docker::DockerContainerProcesses::default()),
        Arc::new(flatten::Flattened::JSON),
        Arc::new(flatten::Flattened::JSONL),
        Arc::new(flatten::Flattened::INI),
        Arc::new(flatten::Flattened::XML),
        Arc::new(storage::BlockDevices),
        Arc::new(flattened_command::FlattenedCommand::LSBLK),
        Arc::new(flattened_command::FlattenedCommand::NFTABLES),
        Arc::new(descriptors::ProcessOpenFiles),
        Arc::new(descriptors::ProcessOpenSockets),
        Arc::new(suid::SuidBin),
        Arc::new(logins::Last::default()),
        Arc::new(resolvers::DnsResolvers::default()),
        Arc::new(security::SelinuxSettings::default()),
        Arc::new(security::ApparmorProfiles::default()),
        Arc::new(security::Secureboot::default()),
        Arc::new(yum::YumSources::default()),
        Arc::new(certs::Certificates),
        Arc::new(editors::VscodeExtensions::default()),
        Arc::new(firefox::FirefoxAddons::default()),
        Arc::new(chrome_profiles::GoogleChromeProfiles::default()),
        Arc::new(cryptsetup::CryptsetupStatus::default()),
        Arc::new(cryptsetup::CryptsetupLuksSalt::default()),
        Arc::new(yara::Yara),
    ];
    let mut names: Vec<&'static str> = tables.iter().map(|t| t.name()).collect();
    names.push("osquery_registry");
    tables.push(Arc::new(agent::OsqueryRegistry(names)));
    tables
}

/// Flags as an agent that has not heard from a server runs with (osquery's own defaults).
pub fn default_flags() -> SharedFlags {
    let flags = [
        ("distributed_interval", "60"),
        ("config_tls_refresh", "0"),
        ("config_refresh", "0"),
        ("logger_tls_period", "4"),
        ("distributed_plugin", "tls"),
        ("host_identifier", "uuid"),
    ];
    std::sync::Arc::new(std::sync::RwLock::new(flags.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
}

/// The running agent's version, reported as osquery_info.version.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
