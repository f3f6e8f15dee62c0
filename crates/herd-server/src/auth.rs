//! Who is calling: bearer-token sessions for the REST API.

use crate::error::ApiError;
use crate::secrets::token_hash;
use crate::state::{SharedState, now_ms};
use axum::extract::{ConnectInfo, FromRequestParts};
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

impl FromRequestParts<SharedState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        let client = client_ip(parts);
        if let Err(retry_after_s) = state.login_limiter.check(client, Instant::now()) {
            return Err(ApiError::RateLimited { retry_after_s });
        }
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthenticated)?;
        user_for_token(state, client, token).await
    }
}

/// The user of a session token (bearer header or the console's cookie); a bad token counts against the
/// client's address like a failed login.
pub async fn user_for_token(state: &SharedState, client: IpAddr, token: &str) -> Result<AuthUser, ApiError> {
    let hash = token_hash(token);
    match state.store.session_user(&hash, now_ms()).await? {
        Some(session) => {
            let actor = session.user.actor();
            Ok(AuthUser { user: session.user, actor, token_hash: hash })
        }
        None => {
            state.login_limiter.record_failure(client, Instant::now());
            Err(ApiError::Unauthenticated)
        }
    }
}
