//! herd-agent: evaluates osquery SQL on this host (through herd-osquery) and talks to a herd server over the
//! osquery TLS API, so herd hands it queries exactly as it hands them to osqueryd.
//!
//! Depends on herd-core, herd-proto and herd-osquery only — never on the server or its store.

pub mod cli;
pub mod client;
pub mod deferrals;
pub mod desktop;
pub mod durable;
pub mod output;
pub mod profiles;
pub mod run;
pub mod scripts;
pub mod shell;
pub mod spool;
