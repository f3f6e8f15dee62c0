//! Every table herd-agent offers, registered in [`all`]. Linux first; each module documents the columns it
//! cannot fill (NULL) and why.

mod etc_files;
mod file;
mod identity;
mod processes;
mod procfs;
mod system;

use crate::table::Table;
use std::sync::Arc;

/// The tables of this platform.
pub fn all() -> Vec<Arc<dyn Table>> {
    vec![
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
        Arc::new(file::File),
    ]
}

/// The running agent's version, reported as osquery_info.version.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");
