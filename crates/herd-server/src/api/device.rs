//! Device endpoints (a host's local user, authenticated by the device token in the URL) and the agent
//! endpoint that registers device tokens (modelled on Fleet's orbit `device_token` endpoint).

use crate::app;
use crate::error::{ApiError, OsqueryError};
use crate::extract::Client;
use crate::extract::OsqueryJson;
use crate::state::SharedState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, head, post};
use herd_proto::agent::{
    Acknowledged, DesktopNotifications, DesktopSummary, DeviceConfig, DeviceMdm, DeviceMigration, DeviceTokenRequest,
};
use serde_json::{Value, json};

/// Under `/api/v1/fleet` and `/api/latest/fleet`.
pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route("/device/{token}", get(summary))
        .route("/device/{token}/desktop", get(desktop))
        .route("/device/{token}/policies", get(policies))
        .route("/device/{token}/refetch", post(refetch))
        .route("/device/{token}/ping", head(ping))
        .route("/device/{token}/migrate_mdm", post(migrate_mdm))
        .route("/device/{token}/transparency", get(transparency))
}

/// What Fleet's free tier links Fleet Desktop's "About Fleet" item to: what fleetd collects and why.
const FLEET_TRANSPARENCY_URL: &str = "https://fleetdm.com/transparency";

/// Fleet's `GET /device/{token}/transparency` (Fleet Desktop's "About Fleet"): a temporary redirect to the
/// page about the agent, for a valid token.
async fn transparency(
    State(state): State<SharedState>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<axum::response::Redirect, ApiError> {
    app::device::host_id(&state, client, &token).await?;
    Ok(axum::response::Redirect::temporary(FLEET_TRANSPARENCY_URL))
}

/// At the root: what herd-agent calls.
pub fn agent_routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route(herd_proto::agent::DEVICE_TOKEN_PATH, post(register_token))
        .route("/api/v1/fleet/orbit/device_token", post(register_token))
}

/// Fleet's `POST /device/{token}/migrate_mdm` → 204.
async fn migrate_mdm(
    State(state): State<SharedState>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<StatusCode, ApiError> {
    let record = app::device::host(&state, client, &token).await?;
    app::device::start_migration(&state, &record).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the desktop notifier and the My Device page show of the organisation.
fn org_config(state: &SharedState) -> DeviceConfig {
    let mode = app::device::migration_mode(state);
    let settings = state.settings.get();
    DeviceConfig {
        org_info: settings.config.org_info.clone(),
        mdm: DeviceMdm { macos_migration: DeviceMigration { mode } },
    }
}

/// Fleet's `GET /device/{token}`: the host (its policies without SQL or authors) and the organisation.
async fn summary(
    State(state): State<SharedState>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = app::device::host(&state, client, &token).await?;
    let (host, policies) = app::device::view(&state, record).await?;
    let mut host = serde_json::to_value(host).map_err(|e| ApiError::Internal(e.into()))?;
    host["policies"] = json!(policies);
    let config = org_config(&state);
    Ok(Json(json!({
        "host": host,
        "org_logo_url": config.org_info.org_logo_url,
        "org_logo_url_light_background": config.org_info.org_logo_url_light_background,
        "org_contact_url": config.org_info.contact_url,
        "global_config": config,
    })))
}

/// What `herd-agent desktop` polls: how many policies fail and whether the user has something to do.
async fn desktop(
    State(state): State<SharedState>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<Json<DesktopSummary>, ApiError> {
    let record = app::device::host(&state, client, &token).await?;
    let failing = app::device::policies(&state, &record).await?.iter().filter(|p| p.response == "fail").count();
    let deferrals = crate::app::deferrals::of_host(&state, record.id).await?;
    let asking = deferrals.iter().filter(|d| d.state == "prompting").count();
    Ok(Json(DesktopSummary {
        failing_policies_count: failing as u64,
        self_service: Some(false),
        deferrals_waiting_count: asking as u64,
        notifications: DesktopNotifications {
            needs_mdm_migration: app::device::needs_migration(&state, &record),
            // Apple enrollment profiles await an Apple MDM transport: never due here.
            renew_enrollment_profile: false,
        },
        config: org_config(&state),
    }))
}

async fn policies(
    State(state): State<SharedState>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = app::device::host(&state, client, &token).await?;
    Ok(Json(json!({"policies": app::device::policies(&state, &record).await?})))
}

/// `HEAD /device/{token}/ping`: 200 while the token is good (the agent checks its token with it).
async fn ping(
    State(state): State<SharedState>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<StatusCode, ApiError> {
    app::device::host_id(&state, client, &token).await?;
    Ok(StatusCode::OK)
}

/// Seed 000's line: `curl -X POST "$URL/api/latest/fleet/device/$TOKEN/refetch"` — no body needed. The host
/// runs all its vitals and policies at its next check-in.
async fn refetch(
    State(state): State<SharedState>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    app::device::refetch(&state, client, &token).await?;
    Ok(Json(json!({})))
}

impl crate::extract::NodeKeyed for DeviceTokenRequest {
    /// herd-agent's node key, or fleetd's orbit node key.
    const KEY: app::agent::AgentKey = app::agent::AgentKey::Either;
    fn node_key(&self) -> Option<&str> {
        self.node_key.as_deref()
    }
}

async fn register_token(
    State(state): State<SharedState>,
    request: OsqueryJson<DeviceTokenRequest>,
) -> Result<Json<Acknowledged>, OsqueryError> {
    let (host, now) = app::agent::check_in(&state, &request.host);
    app::device::register_token(&state, &host, &request.body.device_auth_token, now).await?;
    Ok(Json(Acknowledged {}))
}
