//! Device endpoints (a host's local user, authenticated by the device token in the URL) and the agent
//! endpoint that registers device tokens (modelled on Fleet's orbit `device_token` endpoint).

use crate::auth::client_ip;
use crate::error::{ApiError, OsqueryError};
use crate::extract::OsqueryJson;
use crate::secrets::token_hash;
use crate::state::{SharedState, now_ms};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::Instant;

/// Under `/api/v1/fleet` and `/api/latest/fleet`.
pub fn routes() -> Router<SharedState> {
    Router::new().route("/device/{token}/refetch", post(refetch))
}

/// At the root: what herd-agent calls.
pub fn agent_routes() -> Router<SharedState> {
    Router::new()
        .route("/api/fleet/orbit/device_token", post(register_token))
        .route("/api/v1/fleet/orbit/device_token", post(register_token))
}

pub struct Client(IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Client(client_ip(parts)))
    }
}

/// The host a device token belongs to; a bad token is 401 and counts against the client's failure budget.
pub async fn device_host(state: &SharedState, client: IpAddr, token: &str) -> Result<i64, ApiError> {
    if let Err(retry_after_s) = state.device_limiter.check(client, Instant::now()) {
        return Err(ApiError::RateLimited { retry_after_s });
    }
    let host = if token.len() > 256 { None } else { state.store.host_by_device_token(&token_hash(token)).await? };
    host.ok_or_else(|| {
        state.device_limiter.record_failure(client, Instant::now());
        ApiError::Unauthenticated
    })
}

/// Seed 000's line: `curl -X POST "$URL/api/latest/fleet/device/$TOKEN/refetch"` — no body needed. The host
/// runs all its vitals and policies at its next check-in.
async fn refetch(
    State(state): State<SharedState>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let host_id = device_host(&state, client, &token).await?;
    if !state.store.request_refetch(host_id, now_ms()).await? {
        return Err(ApiError::NotFound("host"));
    }
    state.hosts.evict(host_id);
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterToken {
    /// The host's osquery node key (herd-agent enrolls over the osquery TLS API); Fleet's orbit sends
    /// `orbit_node_key`, accepted under either name.
    #[serde(alias = "orbit_node_key")]
    node_key: Option<String>,
    device_auth_token: String,
}

impl crate::api::osquery::NodeKeyed for RegisterToken {
    fn node_key(&self) -> Option<&str> {
        self.node_key.as_deref()
    }
}

async fn register_token(
    State(state): State<SharedState>,
    request: OsqueryJson<RegisterToken>,
) -> Result<Json<Value>, OsqueryError> {
    let (host, now) = crate::api::osquery::check_in(&state, &request).await?;
    let token = request.body.device_auth_token.trim();
    if !(16..=256).contains(&token.len()) || !token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
        return Err(OsqueryError::BadRequest(
            "device_auth_token must be 16 to 256 characters of letters, digits, - and _".into(),
        ));
    }
    state.store.register_device_token(host.checkin.id, &token_hash(token), now).await?;
    Ok(Json(json!({})))
}
