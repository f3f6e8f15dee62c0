//! User management: global admins create, edit and delete users; everyone may read and edit themselves.

use crate::app;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::Client;
use crate::extract::{ApiJson, PathId};
use crate::state::{SharedState, now_ms};
use crate::wire;
use axum::Json;
use axum::extract::State;
use axum::routing::{get, post};
use herd_core::roles::{Action, Scope};
use herd_core::validate;
use herd_proto::fleet::{CreateUserRequest, UpdateUserRequest, UserResponse, UsersResponse};
use herd_store::EndSessions;
use serde_json::{Value, json};

pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route("/users", get(list))
        .route("/users/admin", post(create))
        .route("/users/{id}", get(get_one).patch(update).delete(delete))
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

async fn create(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(request): ApiJson<CreateUserRequest>,
) -> Result<Json<UserResponse>, ApiError> {
    let id = app::users::create(&state, &auth, request).await?;
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

async fn update(
    State(state): State<SharedState>,
    Client(client): Client,
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
            if crate::app::session::check_password(&state, client, &user.email, password).await?.is_none() {
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
        user.password_hash = app::users::hash_off_runtime(password).await?;
        // The user must choose their own password, and no session opened with the old one survives.
        user.force_password_reset = true;
        end_sessions = EndSessions::All;
    }
    if let Some(global_role) = request.global_role {
        // Taking the role from the last global admin is refused by the store, inside the write's transaction.
        let role = app::users::parse_global_role(global_role.as_deref())?;
        user.global_role = role;
        if role.is_some() {
            user.team_roles.clear();
        }
    }
    if let Some(teams) = request.teams {
        let roles = app::users::parse_team_roles(&teams)?;
        if !roles.is_empty() && user.global_role.is_some() {
            return Err(ApiError::invalid("teams", "a user has either a global role or team roles, not both"));
        }
        user.team_roles = roles.into_iter().map(|(id, role)| (id, String::new(), role)).collect();
    }
    if user.global_role.is_none() && user.team_roles.is_empty() {
        return Err(ApiError::invalid("global_role", "a user needs a global role or at least one team role"));
    }
    state
        .store
        .update_user_ending_sessions(&user, end_sessions, now_ms())
        .await
        .map_err(app::users::unknown_team_is_invalid)?;
    user_response(&state, id).await
}

async fn delete(State(state): State<SharedState>, auth: AuthUser, PathId(id): PathId) -> Result<Json<Value>, ApiError> {
    auth.require(Action::AdministerServer, Scope::Global)?;
    // The last global admin is refused by the store, inside the delete's transaction.
    if !state.store.delete_user(id).await? {
        return Err(ApiError::NotFound("user"));
    }
    Ok(Json(json!({})))
}
