//! Agents (osqueryd, herd-agent): which host a node key names, and recording that it checked in.

use crate::error::OsqueryError;
use crate::host_cache::CachedHost;
use crate::secrets::token_hash;
use crate::state::{SharedState, now_ms};
use herd_core::Millis;

/// The host a node key belongs to: from memory, else from the store (then remembered). Called by
/// `OsqueryJson`'s extraction, before the body is parsed.
pub async fn authenticate(state: &SharedState, node_key: &str) -> Result<CachedHost, OsqueryError> {
    let hash = token_hash(node_key);
    if let Some(host) = state.hosts.by_node_key(&hash) {
        return Ok(host);
    }
    let mark = state.hosts.eviction_mark();
    match state.store.host_checkin_by_node_key(&hash).await? {
        Some(checkin) => Ok(state.hosts.insert_unless_evicted_since(checkin, mark)),
        None => Err(OsqueryError::NodeInvalid("invalid node key")),
    }
}

/// The host an orbit (fleetd) node key belongs to: from memory, else from the store (then remembered). An
/// unknown key is `node_invalid` (401), on which fleetd enrolls again.
pub async fn authenticate_orbit(state: &SharedState, orbit_node_key: &str) -> Result<CachedHost, OsqueryError> {
    let hash = token_hash(orbit_node_key);
    if let Some(host) = state.hosts.by_orbit_node_key(&hash) {
        return Ok(host);
    }
    let mark = state.hosts.eviction_mark();
    match state.store.host_checkin_by_orbit_node_key(&hash).await? {
        Some(checkin) => Ok(state.hosts.insert_unless_evicted_since(checkin, mark)),
        None => Err(OsqueryError::NodeInvalid("invalid orbit node key")),
    }
}

/// Which agent's node key a request may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentKey {
    /// osqueryd's (and herd-agent's, which enrolls as osqueryd does).
    Osquery,
    /// Fleet's orbit (fleetd).
    Orbit,
    /// Either: the endpoints herd-agent and fleetd share (a device token, a script's result).
    Either,
}

/// The host of a node key of the kinds `accepted`.
pub async fn authenticate_as(state: &SharedState, key: &str, accepted: AgentKey) -> Result<CachedHost, OsqueryError> {
    match accepted {
        AgentKey::Osquery => authenticate(state, key).await,
        AgentKey::Orbit => authenticate_orbit(state, key).await,
        AgentKey::Either => match authenticate(state, key).await {
            Err(OsqueryError::NodeInvalid(_)) => authenticate_orbit(state, key).await,
            other => other,
        },
    }
}

/// The host of an (already authenticated) agent request, recorded as seen now.
pub fn check_in(state: &SharedState, host: &CachedHost) -> (CachedHost, Millis) {
    let now = now_ms();
    state.seen.record(host.checkin.id, now);
    (host.clone(), now)
}
