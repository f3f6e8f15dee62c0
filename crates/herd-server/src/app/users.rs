//! Users: creating them (roles checked, the password hashed off the async workers).

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::secrets::hash_password;
use crate::state::{SharedState, now_ms};
use herd_core::roles::{Action, Role, Scope};
use herd_core::validate;
use herd_proto::fleet::{CreateUserRequest, UpdateUserRequest, UserTeamRequest};
use herd_store::{EndSessions, NewUser};
use std::net::IpAddr;

pub fn parse_global_role(role: Option<&str>) -> Result<Option<Role>, ApiError> {
    role.map(|r| {
        Role::parse(r).ok_or_else(|| {
            ApiError::invalid("global_role", format!("unknown role {r:?}; expected admin, maintainer or observer"))
        })
    })
    .transpose()
}

pub fn parse_team_roles(teams: &[UserTeamRequest]) -> Result<Vec<(i64, Role)>, ApiError> {
    teams
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let role = Role::parse(&t.role)
                .ok_or_else(|| ApiError::invalid(format!("teams[{i}].role"), format!("unknown role {:?}", t.role)))?;
            Ok((t.id, role))
        })
        .collect()
}

/// A role in a team that does not exist is a mistake in the request, not a missing resource.
pub fn unknown_team_is_invalid(err: herd_store::StoreError) -> ApiError {
    match err {
        herd_store::StoreError::NotFound("team") => ApiError::invalid("teams", "team does not exist"),
        other => other.into(),
    }
}

/// argon2 is deliberately slow: hash on the blocking pool, not on the async workers.
pub async fn hash_off_runtime(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("hashing password: {e}")))
}

/// A global admin creates a user with a global role or team roles (never both); returns the new user's id.
pub async fn create(state: &SharedState, auth: &AuthUser, request: CreateUserRequest) -> Result<i64, ApiError> {
    auth.require(Action::AdministerServer, Scope::Global)?;
    validate::display_name(&request.name).map_err(|r| ApiError::invalid("name", format!("name {r}")))?;
    validate::email(&request.email).map_err(|r| ApiError::invalid("email", r))?;
    validate::password(&request.password).map_err(|r| ApiError::invalid("password", r))?;
    let global_role = parse_global_role(request.global_role.as_deref())?;
    let team_roles = parse_team_roles(&request.teams)?;
    if global_role.is_some() && !team_roles.is_empty() {
        return Err(ApiError::invalid("teams", "a user has either a global role or team roles, not both"));
    }
    if global_role.is_none() && team_roles.is_empty() {
        return Err(ApiError::invalid("global_role", "a user needs a global role or at least one team role"));
    }
    let password = request.password;
    let password_hash = hash_off_runtime(password).await?;
    let new_user = NewUser {
        name: request.name.trim().to_string(),
        email: request.email,
        password_hash,
        global_role,
        team_roles,
        api_only: request.api_only,
        force_password_reset: request.admin_forced_password_reset,
    };
    let id = state.store.create_user(&new_user, now_ms()).await.map_err(unknown_team_is_invalid)?;
    Ok(id)
}

/// Edits a user: anyone their own name and email (the current password asked for an email change), global
/// admins everything else, including roles and a new password (which ends the user's sessions and makes them
/// choose their own at next login).
pub async fn update(
    state: &SharedState,
    client: IpAddr,
    auth: &AuthUser,
    id: i64,
    request: UpdateUserRequest,
) -> Result<(), ApiError> {
    let is_admin = auth.actor.may(Action::AdministerServer, Scope::Global);
    if id != auth.user.id && !is_admin {
        return Err(ApiError::Forbidden);
    }
    let changes_roles = request.global_role.is_some() || request.teams.is_some();
    if changes_roles && !is_admin {
        return Err(ApiError::Forbidden);
    }
    let own = id == auth.user.id;
    let mut user = state.store.get_user(id).await?.ok_or(ApiError::NotFound("user"))?;
    if let Some(name) = request.name {
        validate::display_name(&name).map_err(|r| ApiError::invalid("name", format!("name {r}")))?;
        user.name = name.trim().to_string();
    }
    // For one's own record `password` is the current password (Fleet's meaning), asked for an email change;
    // an admin editing someone else may send the new password as `password` or `new_password`.
    let (current_password, new_password) =
        if own { (request.password, request.new_password) } else { (None, request.new_password.or(request.password)) };
    if let Some(email) = request.email {
        validate::email(&email).map_err(|r| ApiError::invalid("email", r))?;
        if own && email.trim().to_lowercase() != user.email {
            // Whoever holds a session must not be able to take the account over by moving its email (and
            // with it the password reset) elsewhere: the password is asked for, limited like a login.
            let Some(password) = current_password else {
                return Err(ApiError::invalid("password", "your current password is required to change your email"));
            };
            if super::session::check_password(state, client, &user.email, password).await?.is_none() {
                return Err(ApiError::invalid("password", "does not match your current password"));
            }
        }
        user.email = email;
    }
    let mut end_sessions = EndSessions::None;
    if let Some(password) = new_password {
        if own {
            return Err(ApiError::invalid(
                "new_password",
                "change your own password with POST /api/v1/fleet/change_password",
            ));
        }
        validate::password(&password).map_err(|r| ApiError::invalid("password", r))?;
        user.password_hash = hash_off_runtime(password).await?;
        // The user must choose their own password, and no session opened with the old one survives.
        user.force_password_reset = true;
        end_sessions = EndSessions::All;
    }
    if let Some(global_role) = request.global_role {
        // Taking the role from the last global admin is refused by the store, inside the write's transaction.
        let role = parse_global_role(global_role.as_deref())?;
        user.global_role = role;
        if role.is_some() {
            user.team_roles.clear();
        }
    }
    if let Some(teams) = request.teams {
        let roles = parse_team_roles(&teams)?;
        if !roles.is_empty() && user.global_role.is_some() {
            return Err(ApiError::invalid("teams", "a user has either a global role or team roles, not both"));
        }
        user.team_roles = roles.into_iter().map(|(id, role)| (id, String::new(), role)).collect();
    }
    if user.global_role.is_none() && user.team_roles.is_empty() {
        return Err(ApiError::invalid("global_role", "a user needs a global role or at least one team role"));
    }
    state.store.update_user_ending_sessions(&user, end_sessions, now_ms()).await.map_err(unknown_team_is_invalid)?;
    Ok(())
}

/// A global admin deletes a user (the last global admin is refused by the store, inside the delete's
/// transaction).
pub async fn delete(state: &SharedState, auth: &AuthUser, id: i64) -> Result<(), ApiError> {
    auth.require(Action::AdministerServer, Scope::Global)?;
    if !state.store.delete_user(id).await? {
        return Err(ApiError::NotFound("user"));
    }
    Ok(())
}
