//! Deferrals on the server: the host's state as admins and device users see it, the device user's choice
//! (checked against the rules, refused with a reason), and what the agent reports (prompting, or waiting and
//! why). The agent keeps the schedule and runs the script; see `herd_store::deferrals` for the invariants.

use crate::app;
use crate::error::{ApiError, OsqueryError};
use crate::extract::Client;
use crate::extract::{ApiJson, OsqueryJson};
use crate::state::SharedState;
use axum::Json;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use herd_proto::agent::{DeferralChoiceResponse, DeferralStatusRequest, DeferralStatusResponse};
use serde_json::{Value, json};

/// Under `/api/v1/fleet` and `/api/latest/fleet`.
pub fn device_routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route("/device/{token}/deferrals", get(device_list))
        .route("/device/{token}/deferrals/{policy_id}", post(device_choose))
}

/// At the root: what herd-agent calls.
pub fn agent_routes() -> crate::api::Routes {
    crate::api::Routes::new().route(herd_proto::agent::DEFERRALS_STATUS_PATH, post(agent_status))
}

async fn device_list(
    State(state): State<SharedState>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let host_id = app::device::host_id(&state, client, &token).await?;
    Ok(Json(json!({"deferrals": app::deferrals::of_host(&state, host_id).await?})))
}

async fn device_choose(
    State(state): State<SharedState>,
    Client(client): Client,
    Path((token, policy_id)): Path<(String, String)>,
    ApiJson(request): ApiJson<app::deferrals::ChoiceRequest>,
) -> Result<Json<DeferralChoiceResponse>, ApiError> {
    let host_id = app::device::host_id(&state, client, &token).await?;
    let policy_id: i64 = policy_id.parse().map_err(|_| ApiError::invalid("policy_id", "must be a policy id"))?;
    let deferral = app::deferrals::choose(&state, host_id, policy_id, &request).await?;
    Ok(Json(DeferralChoiceResponse { deferral }))
}

impl crate::extract::NodeKeyed for DeferralStatusRequest {
    fn node_key(&self) -> Option<&str> {
        self.node_key.as_deref()
    }
}

/// The agent's report on a deferred run. Answers the state the agent must follow (`deferral: null` when the
/// run is no longer deferred: the agent drops it and fetches its scripts).
async fn agent_status(
    State(state): State<SharedState>,
    request: OsqueryJson<DeferralStatusRequest>,
) -> Result<Json<DeferralStatusResponse>, OsqueryError> {
    let (host, now) = app::agent::check_in(&state, &request.host);
    Ok(Json(app::deferrals::record_agent_status(&state, &host, &request.body, now).await?))
}
