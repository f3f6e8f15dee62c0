//! herd-agent: evaluates osquery SQL on this host (through herd-osquery) and talks to a herd server over the
//! osquery TLS API, so herd hands it queries exactly as it hands them to osqueryd.
//!
//! Depends on herd-core, herd-proto and herd-osquery only — never on the server or its store.

//!
//! Layers, each using only those above it: `client` (transport: typed calls, no feature knowledge),
//! `durable`/`spool` (state on disk), `host` (this host through the query engine), `session` (node key and
//! durable reports); one module per feature — `scripts`, `deferrals`, `profiles`, `device_token`, `checkin`
//! (which composes them into one check-in) — each planning with pure functions and applying separately;
//! `run` (the loop and backoff) on top. `desktop` is the separate `herd-agent desktop` command.

pub mod checkin;
pub mod cli;
pub mod client;
pub mod deferrals;
pub mod desktop;
pub mod device_token;
pub mod durable;
pub mod host;
pub mod output;
pub mod profiles;
pub mod run;
pub mod scripts;
pub mod session;
pub mod shell;
pub mod spool;
