//! Passwords and sessions: logging in, checking a password (every check shares one budget per account), and
//! changing one's own password. Shared by the REST API and the console.

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::rate_limit::password_rules;
use crate::secrets::{decoy_hash, hash_password, random_token, token_hash, verify_password};
use crate::state::{SESSION_LIFETIME_MS, SharedState, now_ms};
use herd_store::EndSessions;
use serde_json::json;
use std::net::IpAddr;
use std::time::Instant;

/// Checks an email and password and opens a session: the user and the session's token. Shared by the REST
/// API and the console. Limited per (address, account) and per account, with the attempt reserved before the
/// argon2 work (see `rate_limit`); unknown emails cost the same work as known ones (a decoy hash).
pub async fn log_in(
    state: &SharedState,
    client: std::net::IpAddr,
    email: &str,
    password: String,
) -> Result<(herd_store::UserRecord, String), ApiError> {
    let account = email.trim().to_lowercase();
    let Some(user) = check_password(state, client, &account, password).await? else {
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

/// The user whose email is `account` (normalised) when `password` is theirs, else None; 429 when the
/// attempt is over a budget. Every password check — login, console login, change_password, an email
/// change — goes through here, so all of them share one count per account.
pub async fn check_password(
    state: &SharedState,
    client: IpAddr,
    account: &str,
    password: String,
) -> Result<Option<herd_store::UserRecord>, ApiError> {
    let familiar = state.familiar_logins.knows(client, account, Instant::now());
    let attempt = state.login_limiter.begin(&password_rules(client, account, familiar), Instant::now())?;
    let user = match state.store.user_by_email(account).await {
        Ok(user) => user,
        Err(err) => {
            attempt.abandon();
            return Err(err.into());
        }
    };
    let hash = user.as_ref().map_or_else(|| decoy_hash().to_string(), |u| u.password_hash.clone());
    // argon2 is deliberately slow: keep it off the async workers.
    let verified = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    match user.filter(|_| verified) {
        Some(user) => {
            attempt.succeeded();
            state.familiar_logins.remember(client, account, Instant::now());
            Ok(Some(user))
        }
        None => {
            attempt.failed();
            Ok(None)
        }
    }
}

/// Saves the caller's new password, clears a required reset, and ends the caller's other sessions (those
/// opened with the old password) in the same transaction. Shared with the console.
pub async fn set_own_password(
    state: &SharedState,
    auth: &AuthUser,
    new_password: String,
) -> Result<herd_store::UserRecord, ApiError> {
    let new_hash = tokio::task::spawn_blocking(move || hash_password(&new_password))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("hashing password: {e}")))?;
    let mut user = auth.user.clone();
    user.password_hash = new_hash;
    user.force_password_reset = false;
    let keep = EndSessions::AllBut(&auth.token_hash);
    state.store.update_user_ending_sessions(&user, keep, now_ms()).await?;
    tracing::info!(user_id = user.id, "password changed; the user's other sessions ended");
    Ok(user)
}

/// Ends the session the actor is using (the REST logout, the console's button).
pub async fn log_out(state: &SharedState, auth: &AuthUser) -> Result<(), ApiError> {
    Ok(state.store.delete_session(&auth.token_hash).await?)
}
