//! Wire types of every protocol herd speaks. Shared by the server, the agent, the CLI and the load generator.
//!
//! These types describe JSON as it travels, field names and all; they are not domain types. Parsing into them
//! is the first step at every edge; validation into domain types is the second.

pub mod agent;
pub mod fleet;
pub mod orbit;
pub mod osquery;
