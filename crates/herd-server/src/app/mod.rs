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
pub mod labels;
pub mod orbit;
pub mod osquery;
pub mod policies;
pub mod profiles;
pub mod scripts;
pub mod seen;
pub mod session;
pub mod teams;
pub mod users;

use crate::auth::AuthUser;
use crate::state::SharedState;
use herd_store::StoreError;
use serde_json::Value;

/// What a use case does once its change has committed, built from what the store call returned and applied
/// once, in one order for every use case: evict the hosts whose cached check-in row changed (so no request
/// on this server answers from the old row; other servers learn it from the change feed), forget seen times
/// of deleted hosts, reload the settings derived from what changed, then record the activity (last: it
/// describes a change every cache already reflects).
///
/// Nothing here runs inside the transaction: the store's transaction decides, these only follow it. A
/// settings reload that fails is reported after the rest has been done (the change is committed; the
/// periodic reload catches up).
#[must_use = "effects do nothing until applied"]
#[derive(Debug, Default)]
pub struct AfterCommit {
    evict: Vec<i64>,
    forget_seen: Vec<i64>,
    reload_settings: bool,
    activities: Vec<(&'static str, Value)>,
}

impl AfterCommit {
    pub fn new() -> Self {
        Self::default()
    }

    /// Hosts whose check-in row (team, flags, refetch, settings) the change altered.
    pub fn evict(mut self, hosts: impl IntoIterator<Item = i64>) -> Self {
        self.evict.extend(hosts);
        self
    }

    /// Deleted hosts: evicted, and their pending seen times dropped so no flush writes a row back.
    pub fn deleted(mut self, hosts: impl IntoIterator<Item = i64>) -> Self {
        let hosts: Vec<i64> = hosts.into_iter().collect();
        self.evict.extend(&hosts);
        self.forget_seen.extend(hosts);
        self
    }

    /// The change touched settings, teams or policies that the server derives state from.
    pub fn reload_settings(mut self) -> Self {
        self.reload_settings = true;
        self
    }

    /// An activity describing the change (several for a change of several things, recorded in order).
    pub fn record(mut self, kind: &'static str, details: Value) -> Self {
        self.activities.push((kind, details));
        self
    }

    /// Applies the effects; `by` is the actor recorded with the activity (None: herd itself).
    pub async fn apply(self, state: &SharedState, by: Option<&AuthUser>) -> Result<(), StoreError> {
        for host in self.evict {
            state.hosts.evict(host);
        }
        for host in self.forget_seen {
            state.seen.forget(host);
        }
        let reloaded = match self.reload_settings {
            true => state.settings.reload(&state.store).await,
            false => Ok(()),
        };
        for (kind, details) in self.activities {
            crate::activity::record(state, by, kind, details).await;
        }
        reloaded
    }
}
