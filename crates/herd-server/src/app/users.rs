//! Users: creating them (roles checked, the password hashed off the async workers).

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::secrets::hash_password;
use crate::state::{SharedState, now_ms};
use herd_core::roles::{Action, Role, Scope};
use herd_core::validate;
use herd_proto::fleet::{CreateUserRequest, UserTeamRequest};
use herd_store::NewUser;

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
