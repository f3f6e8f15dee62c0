//! User management: global admins create, edit and delete users; everyone may read and edit themselves.

use crate::app;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::Client;
use crate::extract::{ApiJson, PathId};
use crate::state::SharedState;
use crate::wire;
use axum::Json;
use axum::extract::State;
use axum::routing::{get, post};
use herd_core::roles::{Action, Scope};
use herd_proto::fleet::{CreateUserRequest, UpdateUserRequest, UserResponse, UsersResponse};
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
    app::users::update(&state, client, &auth, id, request).await?;
    user_response(&state, id).await
}

async fn delete(State(state): State<SharedState>, auth: AuthUser, PathId(id): PathId) -> Result<Json<Value>, ApiError> {
    app::users::delete(&state, &auth, id).await?;
    Ok(Json(json!({})))
}
