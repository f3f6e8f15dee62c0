//! Login, logout, the current user, and changing one's own password.

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::extract::Client;
use crate::state::SharedState;
use crate::wire;
use axum::Json;
use axum::extract::State;
use axum::routing::{get, post};
use herd_proto::fleet::{LoginRequest, LoginResponse, UserResponse};
use serde::Deserialize;
use serde_json::{Value, json};

pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/change_password", post(change_password))
        .route("/perform_required_password_reset", post(perform_required_password_reset))
}

async fn login(
    State(state): State<SharedState>,
    Client(client): Client,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let (user, token) = crate::app::session::log_in(&state, client, &request.email, request.password).await?;
    Ok(Json(LoginResponse { user: wire::user(&user), token }))
}

async fn logout(State(state): State<SharedState>, auth: AuthUser) -> Result<Json<Value>, ApiError> {
    crate::app::session::log_out(&state, &auth).await?;
    Ok(Json(json!({})))
}

async fn me(auth: AuthUser) -> Json<UserResponse> {
    Json(UserResponse { user: wire::user(&auth.user) })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ChangePassword {
    old_password: String,
    new_password: String,
}

/// Changes one's own password, knowing the old one (limited like a login: a stolen session cannot be used to
/// guess the password). The session that made the change stays; every other session of the user ends.
async fn change_password(
    State(state): State<SharedState>,
    Client(client): Client,
    auth: AuthUser,
    ApiJson(request): ApiJson<ChangePassword>,
) -> Result<Json<Value>, ApiError> {
    herd_core::validate::password(&request.new_password).map_err(|r| ApiError::invalid("new_password", r))?;
    if crate::app::session::check_password(&state, client, &auth.user.email, request.old_password).await?.is_none() {
        return Err(ApiError::invalid("old_password", "old password does not match"));
    }
    crate::app::session::set_own_password(&state, &auth, request.new_password).await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RequiredPasswordReset {
    new_password: String,
}

/// Fleet's way out of a forced reset: a user whose password an admin set chooses their own, without typing
/// the admin's again (the session proves who they are). Only while a reset is required.
async fn perform_required_password_reset(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(request): ApiJson<RequiredPasswordReset>,
) -> Result<Json<UserResponse>, ApiError> {
    if !auth.user.force_password_reset {
        return Err(ApiError::invalid("new_password", "no password reset is required for this user"));
    }
    herd_core::validate::password(&request.new_password).map_err(|r| ApiError::invalid("new_password", r))?;
    let user = crate::app::session::set_own_password(&state, &auth, request.new_password).await?;
    Ok(Json(UserResponse { user: wire::user(&user) }))
}
