//! Who is calling: bearer-token sessions for the REST API.

use crate::error::ApiError;
use crate::rate_limit::address_rule;
use crate::secrets::token_hash;
use crate::state::{SharedState, now_ms};
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath};
use axum::http::header;
use axum::http::request::Parts;
use herd_core::roles::{Action, Actor, Scope};
use herd_store::UserRecord;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

/// The client's address (the TCP peer). Behind a proxy this is the proxy; limits then apply to it as a whole.
pub fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// A request made by a logged-in user.
#[derive(Clone)]
pub struct AuthUser {
    pub user: UserRecord,
    pub actor: Actor,
    pub token_hash: String,
}

impl AuthUser {
    /// Ok when the user may do `action` in `scope`, else 403.
    pub fn require(&self, action: Action, scope: Scope) -> Result<(), ApiError> {
        if self.actor.may(action, scope) { Ok(()) } else { Err(ApiError::Forbidden) }
    }
}

/// What a user whose password an admin set (`force_password_reset`) may still do through the REST API: see
/// who they are, change the password, log out (Fleet allows the same).
const ALLOWED_DURING_PASSWORD_RESET: &[&str] =
    &["/me", "/change_password", "/perform_required_password_reset", "/logout"];

/// Whether the route `matched` (axum's template, with its `/api/v1/fleet` or `/api/latest/fleet` prefix) is one
/// of [`ALLOWED_DURING_PASSWORD_RESET`].
fn allowed_during_password_reset(matched: &str) -> bool {
    let route = matched.strip_prefix("/api/v1/fleet").or_else(|| matched.strip_prefix("/api/latest/fleet"));
    route.is_some_and(|route| ALLOWED_DURING_PASSWORD_RESET.contains(&route))
}

impl FromRequestParts<SharedState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        let client = client_ip(parts);
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthenticated)?;
        let auth = user_for_token(state, client, token).await?;
        if auth.user.force_password_reset {
            let matched = parts.extensions.get::<MatchedPath>().map(MatchedPath::as_str).unwrap_or_default();
            if !allowed_during_password_reset(matched) {
                return Err(ApiError::PasswordResetRequired);
            }
        }
        Ok(auth)
    }
}

/// The user of a session token (bearer header or the console's cookie). The token is looked up first (a hash
/// lookup, cheap), so a valid token is never refused for others' failures; a bad one counts against the
/// client's address, and beyond the budget the answer is 429 instead of 401.
pub async fn user_for_token(state: &SharedState, client: IpAddr, token: &str) -> Result<AuthUser, ApiError> {
    let hash = token_hash(token);
    match state.store.session_user(&hash, now_ms()).await? {
        Some(session) => {
            let actor = session.user.actor();
            Ok(AuthUser { user: session.user, actor, token_hash: hash })
        }
        None => {
            let rule = address_rule(client, "too many bad session tokens from your address");
            state.token_limiter.record_failure(&[rule], Instant::now())?;
            Err(ApiError::Unauthenticated)
        }
    }
}
