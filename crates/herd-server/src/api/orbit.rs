//! Fleet's orbit API (fleetd): enroll, config, ping and fetching a queued script, at Fleet's paths with
//! Fleet's bodies and statuses. A script's result (`scripts/result`) and the device token (`device_token`)
//! are the endpoints herd-agent already calls (`api/scripts`, `api/device`), which take fleetd's node key and
//! body too. Every answer carries the capabilities header fleetd reads (`with_capabilities`).

use crate::app;
use crate::error::OsqueryError;
use crate::extract::{Client, EnrollJson, OsqueryJson};
use crate::state::SharedState;
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{head, post};
use herd_proto::orbit::{
    CAPABILITIES_HEADER, EnrollRequest, EnrollResponse, HostScript, NodeKeyRequest, OrbitConfig, ScriptRequest,
};

/// At the root, where fleetd calls them.
pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route(herd_proto::orbit::ENROLL_PATH, post(enroll))
        .route(herd_proto::orbit::CONFIG_PATH, post(config))
        .route(herd_proto::orbit::PING_PATH, head(ping).post(ping))
        .route(herd_proto::orbit::SCRIPT_REQUEST_PATH, post(script))
}

/// What herd serves of what fleetd asks about: the orbit endpoints, and device tokens it may rotate. Not the
/// others (disk-encryption escrow, setup experience, end-user email…), so fleetd does not use them.
const CAPABILITIES: &str = "orbit_endpoints,token_rotation";

/// Adds the capabilities header to an answer (a response layer over the orbit and agent routes): fleetd
/// replaces its view of the server's capabilities with every answer's header.
pub async fn with_capabilities(mut response: Response) -> Response {
    response.headers_mut().insert(CAPABILITIES_HEADER, HeaderValue::from_static(CAPABILITIES));
    response
}

async fn enroll(
    State(state): State<SharedState>,
    Client(client): Client,
    EnrollJson(request): EnrollJson<EnrollRequest>,
) -> Result<Json<EnrollResponse>, OsqueryError> {
    Ok(Json(app::orbit::enroll(&state, client, request).await?))
}

impl crate::extract::NodeKeyed for NodeKeyRequest {
    const KEY: app::agent::AgentKey = app::agent::AgentKey::Orbit;
    fn node_key(&self) -> Option<&str> {
        self.orbit_node_key.as_deref()
    }
}

async fn config(
    State(state): State<SharedState>,
    request: OsqueryJson<NodeKeyRequest>,
) -> Result<Json<OrbitConfig>, OsqueryError> {
    let (host, now) = app::agent::check_in(&state, &request.host);
    Ok(Json(app::orbit::config(&state, &host, now).await?))
}

/// Unauthenticated, as Fleet's: fleetd asks it what the server supports before it enrolls.
async fn ping() -> StatusCode {
    StatusCode::OK
}

impl crate::extract::NodeKeyed for ScriptRequest {
    const KEY: app::agent::AgentKey = app::agent::AgentKey::Orbit;
    fn node_key(&self) -> Option<&str> {
        self.orbit_node_key.as_deref()
    }
}

async fn script(
    State(state): State<SharedState>,
    request: OsqueryJson<ScriptRequest>,
) -> Result<Json<HostScript>, OsqueryError> {
    let (host, _) = app::agent::check_in(&state, &request.host);
    Ok(Json(app::orbit::script(&state, &host, &request.body.execution_id).await?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn capabilities_are_fleets_names() {
        let names = [herd_proto::orbit::CAPABILITY_ORBIT_ENDPOINTS, herd_proto::orbit::CAPABILITY_TOKEN_ROTATION];
        assert_eq!(super::CAPABILITIES, names.join(","));
    }
}
