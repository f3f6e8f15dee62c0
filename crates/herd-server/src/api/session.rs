//! Login, logout, the current user, and changing one's own password.

use crate::auth::{AuthUser, client_ip};
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::secrets::{decoy_hash, hash_password, random_token, token_hash, verify_password};
use crate::state::{SESSION_LIFETIME_MS, SharedState, now_ms};
use crate::wire;
use axum::Json;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::routing::{get, post};
use herd_proto::fleet::{LoginRequest, LoginResponse, UserResponse};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::Instant;

pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/me", get(me))
        .route("/change_password", post(change_password))
}

pub struct Client(IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Client(client_ip(parts)))
    }
}

async fn login(
    State(state): State<SharedState>,
    Client(client): Client,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Json<LoginResponse>, ApiError> {
    let (user, token) = password_login(&state, client, &request.email, request.password).await?;
    Ok(Json(LoginResponse { user: wire::user(&user), token }))
}

/// Checks an email and password (rate-limited per client address, constant work for unknown emails) and
/// opens a session: the user and the session's token. Shared by the REST API and the console.
pub(crate) async fn password_login(
    state: &SharedState,
    client: std::net::IpAddr,
    email: &str,
    password: String,
) -> Result<(herd_store::UserRecord, String), ApiError> {
    if let Err(retry_after_s) = state.login_limiter.check(client, Instant::now()) {
        return Err(ApiError::RateLimited { retry_after_s });
    }
    let user = state.store.user_by_email(email).await?;
    let hash = user.as_ref().map_or_else(|| decoy_hash().to_string(), |u| u.password_hash.clone());
    // argon2 is deliberately slow: keep it off the async workers.
    let verified = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let Some(user) = user.filter(|_| verified) else {
        state.login_limiter.record_failure(client, Instant::now());
        tracing::info!(%client, "failed login");
        return Err(ApiError::BadCredentials);
    };
    let token = random_token(32);
    let now = now_ms();
    let expires_at = (!user.api_only).then_some(now + SESSION_LIFETIME_MS);
    state.store.create_session(&token_hash(&token), user.id, expires_at, now).await?;
    tracing::info!(user_id = user.id, "user logged in");
    let actor = crate::auth::AuthUser { actor: user.actor(), user: user.clone(), token_hash: String::new() };
    crate::activity::record(state, Some(&actor), "user_logged_in", json!({"public_ip": client.to_string()})).await;
    Ok((user, token))
}

async fn logout(State(state): State<SharedState>, auth: AuthUser) -> Result<Json<Value>, ApiError> {
    state.store.delete_session(&auth.token_hash).await?;
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

async fn change_password(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(request): ApiJson<ChangePassword>,
) -> Result<Json<Value>, ApiError> {
    herd_core::validate::password(&request.new_password).map_err(|r| ApiError::invalid("new_password", r))?;
    let current = auth.user.password_hash.clone();
    let old = request.old_password;
    let new = request.new_password;
    let new_hash =
        tokio::task::spawn_blocking(
            move || {
                if verify_password(&old, &current) { Some(hash_password(&new)) } else { None }
            },
        )
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let Some(new_hash) = new_hash else {
        return Err(ApiError::invalid("old_password", "old password does not match"));
    };
    let mut user = auth.user;
    user.password_hash = new_hash.map_err(|e| ApiError::Internal(anyhow::anyhow!("hashing password: {e}")))?;
    user.force_password_reset = false;
    state.store.update_user(&user, now_ms()).await?;
    Ok(Json(json!({})))
}
