//! Authorization by construction: every object a request names — by id, by name, by team, in a batch — is
//! looked up through this module, and comes back only if the user may act on it.
//!
//! The rule, the same for every kind of object: one the user cannot read is answered exactly as a missing
//! one (404, or the caller's own "no such …" for names in a body), so ids and names of other teams' objects
//! cannot be probed; one the user can read but not change is 403. Scopes come from the object itself (a
//! script's team, a host's team), never from what the request claims about it.

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::SharedState;
use herd_core::roles::{Action, Scope};
use herd_store::{ExecutionRecord, HostRecord, PolicyRecord, ProfileRecord, ScriptRecord, TeamRecord};

/// Something that lives in one scope (a team's, or the global one).
pub(crate) trait Scoped {
    /// What a 404 calls it.
    const KIND: &'static str;
    fn scope(&self) -> Scope;
}

impl Scoped for HostRecord {
    const KIND: &'static str = "host";
    fn scope(&self) -> Scope {
        Scope::of_team(self.team_id)
    }
}

impl Scoped for ScriptRecord {
    const KIND: &'static str = "script";
    fn scope(&self) -> Scope {
        Scope::of_team(self.team_id)
    }
}

impl Scoped for PolicyRecord {
    const KIND: &'static str = "policy";
    fn scope(&self) -> Scope {
        Scope::of_team(self.team_id)
    }
}

impl Scoped for ProfileRecord {
    const KIND: &'static str = "configuration profile";
    fn scope(&self) -> Scope {
        Scope::of_team(self.team_id)
    }
}

impl Scoped for TeamRecord {
    const KIND: &'static str = "team";
    fn scope(&self) -> Scope {
        Scope::Team(self.id)
    }
}

/// Whether the user may see `object` at all.
pub(crate) fn readable<T: Scoped>(auth: &AuthUser, object: &T) -> bool {
    auth.actor.may(Action::Read, object.scope())
}

/// The one rule: `found` (a lookup's result) comes back when the user may `action` it; unreadable is
/// reported as missing; readable but not allowed is 403.
pub(crate) fn in_reach<T: Scoped>(auth: &AuthUser, found: Option<T>, action: Action) -> Result<T, ApiError> {
    let object = found.filter(|o| readable(auth, o)).ok_or(ApiError::NotFound(T::KIND))?;
    auth.require(action, object.scope())?;
    Ok(object)
}

pub(crate) async fn host(
    state: &SharedState,
    auth: &AuthUser,
    id: i64,
    action: Action,
) -> Result<HostRecord, ApiError> {
    in_reach(auth, state.store.get_host(id).await?, action)
}

pub(crate) async fn host_by_identifier(
    state: &SharedState,
    auth: &AuthUser,
    identifier: &str,
    action: Action,
) -> Result<HostRecord, ApiError> {
    in_reach(auth, state.store.host_by_identifier(identifier).await?, action)
}

pub(crate) async fn script(
    state: &SharedState,
    auth: &AuthUser,
    id: i64,
    action: Action,
) -> Result<ScriptRecord, ApiError> {
    in_reach(auth, state.store.get_script(id).await?, action)
}

/// A script by name in `team`'s library (None: the global one).
pub(crate) async fn script_by_name(
    state: &SharedState,
    auth: &AuthUser,
    team: Option<i64>,
    name: &str,
    action: Action,
) -> Result<ScriptRecord, ApiError> {
    in_reach(auth, state.store.script_by_name(team, name).await?, action)
}

pub(crate) async fn policy(
    state: &SharedState,
    auth: &AuthUser,
    id: i64,
    action: Action,
) -> Result<PolicyRecord, ApiError> {
    in_reach(auth, state.store.get_policy(id).await?, action)
}

/// The policy `id` of scope `team` (a policy of another scope is not found there).
pub(crate) async fn policy_in(
    state: &SharedState,
    auth: &AuthUser,
    team: Option<i64>,
    id: i64,
    action: Action,
) -> Result<PolicyRecord, ApiError> {
    in_reach(auth, state.store.get_policy(id).await?.filter(|p| p.team_id == team), action)
}

pub(crate) async fn profile(
    state: &SharedState,
    auth: &AuthUser,
    uuid: &str,
    action: Action,
) -> Result<ProfileRecord, ApiError> {
    in_reach(auth, state.store.get_profile(uuid).await?, action)
}

pub(crate) async fn team(
    state: &SharedState,
    auth: &AuthUser,
    id: i64,
    action: Action,
) -> Result<TeamRecord, ApiError> {
    in_reach(auth, state.store.get_team(id).await?, action)
}

pub(crate) async fn team_by_name(
    state: &SharedState,
    auth: &AuthUser,
    name: &str,
    action: Action,
) -> Result<TeamRecord, ApiError> {
    let found = state.store.list_teams().await?.into_iter().find(|t| t.name == name);
    in_reach(auth, found, action)
}

/// The scope a request names (`team_id` in a query, a path or a body; None: global), checked for `action`.
/// The global scope always exists, so refusing it is 403; a team the user cannot read is 404 like a missing one.
pub(crate) async fn scope(
    state: &SharedState,
    auth: &AuthUser,
    team: Option<i64>,
    action: Action,
) -> Result<Scope, ApiError> {
    match team {
        None => {
            auth.require(action, Scope::Global)?;
            Ok(Scope::Global)
        }
        Some(id) => Ok(self::team(state, auth, id, action).await?.scope()),
    }
}

/// `scope`, for a team named in a body or form field: a missing or unreadable team is a mistake in `field`
/// (422), said the same way for both.
pub(crate) async fn scope_field(
    state: &SharedState,
    auth: &AuthUser,
    team: Option<i64>,
    action: Action,
    field: &str,
) -> Result<Scope, ApiError> {
    scope(state, auth, team, action).await.map_err(|e| match e {
        ApiError::NotFound("team") => ApiError::invalid(field, "team does not exist"),
        other => other,
    })
}

/// A script run and the host it ran on; visible to those who may read the host.
pub(crate) async fn execution(
    state: &SharedState,
    auth: &AuthUser,
    execution_id: &str,
) -> Result<(ExecutionRecord, HostRecord), ApiError> {
    let not_found = || ApiError::NotFound("execution");
    let execution = state.store.execution(execution_id).await?.ok_or_else(not_found)?;
    let host = host(state, auth, execution.host_id, Action::Read).await.map_err(|e| match e {
        ApiError::NotFound(_) => not_found(),
        other => other,
    })?;
    Ok((execution, host))
}
