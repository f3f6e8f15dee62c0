//! User management: global admins create, edit and delete users; everyone may read and edit themselves.

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, PathId};
use crate::secrets::hash_password;
use crate::state::{SharedState, now_ms};
use crate::wire;
use axum::Json;
use axum::extract::State;
use axum::routing::{get, post};
use herd_core::roles::{Action, Role, Scope};
use herd_core::validate;
use herd_proto::fleet::{CreateUserRequest, UpdateUserRequest, UserResponse, UserTeamRequest, UsersResponse};
use herd_store::NewUser;
use serde_json::{Value, json};

pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route("/users", get(list))
        .route("/users/admin", post(create))
        .route("/users/{id}", get(get_one).patch(update).delete(delete))
}

fn parse_global_role(role: Option<&str>) -> Result<Option<Role>, ApiError> {
    role.map(|r| {
        Role::parse(r).ok_or_else(|| {
            ApiError::invalid("global_role", format!("unknown role {r:?}; expected admin, maintainer or observer"))
        })
    })
    .transpose()
}

fn parse_team_roles(teams: &[UserTeamRequest]) -> Result<Vec<(i64, Role)>, ApiError> {
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
fn unknown_team_is_invalid(err: herd_store::StoreError) -> ApiError {
    match err {
        herd_store::StoreError::NotFound("team") => ApiError::invalid("teams", "team does not exist"),
        other => other.into(),
    }
}

/// argon2 is deliberately slow: hash on the blocking pool, not on the async workers.
async fn hash_off_runtime(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("hashing password: {e}")))
}

async fn user_response(state: &SharedState, id: i64) -> Result<Json<UserResponse>, ApiError> {
    let user = state.store.get_user(id).await?.ok_or(ApiError::NotFound("user"))?;
    Ok(Json(UserResponse { user: wire::user(&user) }))
}

async fn list(State(state): State<SharedState>, auth: AuthUser) -> Result<Json<UsersResponse>, ApiError> {
    auth.require(Action::AdministerServer, Scope::Global)?;
    let users = state.store.list_users(None).await?;
    Ok(Json(UsersResponse { users: users.iter().map(wire::user).collect() }))
}

pub(crate) async fn create(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(request): ApiJson<CreateUserRequest>,
) -> Result<Json<UserResponse>, ApiError> {
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
    user_response(&state, id).await
}

async fn get_one(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
) -> Result<Json<UserResponse>, ApiError> {
    if id != auth.user.id {
        auth.require(Action::AdministerServer, Scope::Global)?;
    }
    user_response(&state, id).await
}

/// Refuses changes that would leave the server without a global admin.
async fn ensure_other_admin_remains(state: &SharedState, user_id: i64) -> Result<(), ApiError> {
    let admins = state.store.list_users(None).await?;
    let others = admins.iter().filter(|u| u.id != user_id && u.global_role == Some(Role::Admin)).count();
    if others == 0 {
        return Err(ApiError::Conflict("this is the last global admin; make another user admin first".into()));
    }
    Ok(())
}

async fn update(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
    ApiJson(request): ApiJson<UpdateUserRequest>,
) -> Result<Json<UserResponse>, ApiError> {
    let is_admin = auth.actor.may(Action::AdministerServer, Scope::Global);
    if id != auth.user.id && !is_admin {
        return Err(ApiError::Forbidden);
    }
    let changes_roles = request.global_role.is_some() || request.teams.is_some();
    if changes_roles && !is_admin {
        return Err(ApiError::Forbidden);
    }
    let mut user = state.store.get_user(id).await?.ok_or(ApiError::NotFound("user"))?;
    if let Some(name) = request.name {
        validate::display_name(&name).map_err(|r| ApiError::invalid("name", format!("name {r}")))?;
        user.name = name.trim().to_string();
    }
    if let Some(email) = request.email {
        validate::email(&email).map_err(|r| ApiError::invalid("email", r))?;
        user.email = email;
    }
    let new_password = request.new_password.or(request.password);
    if let Some(password) = new_password {
        if id == auth.user.id {
            return Err(ApiError::invalid(
                "password",
                "change your own password with POST /api/v1/fleet/change_password",
            ));
        }
        validate::password(&password).map_err(|r| ApiError::invalid("password", r))?;
        user.password_hash = hash_off_runtime(password).await?;
        user.force_password_reset = true;
    }
    if let Some(global_role) = request.global_role {
        let role = parse_global_role(global_role.as_deref())?;
        if user.global_role == Some(Role::Admin) && role != Some(Role::Admin) {
            ensure_other_admin_remains(&state, id).await?;
        }
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
    state.store.update_user(&user, now_ms()).await.map_err(unknown_team_is_invalid)?;
    user_response(&state, id).await
}

async fn delete(State(state): State<SharedState>, auth: AuthUser, PathId(id): PathId) -> Result<Json<Value>, ApiError> {
    auth.require(Action::AdministerServer, Scope::Global)?;
    let user = state.store.get_user(id).await?.ok_or(ApiError::NotFound("user"))?;
    if user.global_role == Some(Role::Admin) {
        ensure_other_admin_remains(&state, id).await?;
    }
    state.store.delete_user(id).await?;
    Ok(Json(json!({})))
}
