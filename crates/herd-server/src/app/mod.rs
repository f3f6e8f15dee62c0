//! The application layer: one function per use case, shared by every way in (the REST API, the console, the
//! device pages, the agent endpoints). A use case takes the actor (`AuthUser`, or the host a device token or
//! node key names) and a typed input, and owns what every entry point must do the same way: authorization,
//! the store call, cache invalidation after the commit, the activity record, reloading derived settings.
//!
//! Adapters (`api/*`, `console/*`) parse a request, call use cases and render; they never import one another
//! (`tests/layering.rs` fails the build's tests otherwise). Use cases never see HTTP types.

pub mod agent;
pub mod compliance;
pub mod config;
pub mod deferrals;
pub mod device;
pub mod hosts;
pub mod policies;
pub mod profiles;
pub mod scripts;
pub mod seen;
pub mod session;
pub mod teams;
pub mod users;
