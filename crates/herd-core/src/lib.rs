//! herd-core: domain types and pure decisions.
//!
//! Everything here is a function of its arguments: no IO, no clock (callers pass `now_ms`), no async, no SQL,
//! no HTTP. That keeps every rule testable as a table of cases and lets the server, the agent and the load
//! generator share the same decisions.

pub mod automation;
pub mod deferral;
pub mod due;
pub mod execution;
pub mod host_status;
pub mod jitter;
pub mod jobs;
pub mod labels;
pub mod migration;
pub mod platform;
pub mod policy;
pub mod profiles;
pub mod report;
pub mod roles;
pub mod text;
pub mod validate;
pub mod vitals;

/// Milliseconds since the Unix epoch. herd stores and compares every instant in this unit.
pub type Millis = i64;

pub const SECOND_MS: Millis = 1_000;
pub const MINUTE_MS: Millis = 60 * SECOND_MS;
pub const HOUR_MS: Millis = 60 * MINUTE_MS;
pub const DAY_MS: Millis = 24 * HOUR_MS;
