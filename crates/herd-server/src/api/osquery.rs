//! The osquery TLS remote API: what a stock `osqueryd --tls_hostname=...` and herd-agent speak.
//! Served at `/api/osquery/...` and `/api/v1/osquery/...` (Fleet's paths, so existing flag files work).

use crate::app;
use crate::auth::client_ip;
use crate::error::OsqueryError;
use crate::extract::{BodyLimits, EnrollJson, OsqueryJson, REPORT_LIMITS};
use crate::state::SharedState;
use axum::Json;
use axum::extract::State;
use axum::http::request::Parts;
use axum::routing::post;
use herd_proto::osquery::{
    Acknowledged, DistributedReadResponse, DistributedWriteRequest, EnrollRequest, EnrollResponse, LogRequest,
    NodeKeyRequest,
};
use serde_json::Value;

pub fn routes() -> crate::api::Routes {
    let mut router = crate::api::Routes::new();
    for prefix in ["/api/osquery", "/api/v1/osquery"] {
        router = router
            .route(&format!("{prefix}/enroll"), post(enroll))
            .route(&format!("{prefix}/config"), post(config))
            .route(&format!("{prefix}/distributed/read"), post(distributed_read))
            .route(&format!("{prefix}/distributed/write"), post(distributed_write))
            .route(&format!("{prefix}/log"), post(log));
    }
    router
}

/// The client's address, taken before the body is consumed.
pub struct ClientAddr(std::net::IpAddr);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_ip(parts)))
    }
}

async fn enroll(
    State(state): State<SharedState>,
    ClientAddr(client): ClientAddr,
    EnrollJson(request): EnrollJson<EnrollRequest>,
) -> Result<Json<EnrollResponse>, OsqueryError> {
    Ok(Json(app::osquery::enroll(&state, client, request).await?))
}

impl crate::extract::NodeKeyed for NodeKeyRequest {
    fn node_key(&self) -> Option<&str> {
        self.node_key.as_deref()
    }
}

impl crate::extract::NodeKeyed for DistributedWriteRequest {
    const LIMITS: BodyLimits = REPORT_LIMITS;
    fn node_key(&self) -> Option<&str> {
        self.node_key.as_deref()
    }
}

impl crate::extract::NodeKeyed for LogRequest {
    const LIMITS: BodyLimits = REPORT_LIMITS;
    fn node_key(&self) -> Option<&str> {
        self.node_key.as_deref()
    }
}

async fn config(
    State(state): State<SharedState>,
    request: OsqueryJson<NodeKeyRequest>,
) -> Result<Json<Value>, OsqueryError> {
    let (host, _) = app::agent::check_in(&state, &request.host);
    Ok(Json(app::osquery::agent_config(&state, &host)))
}

async fn distributed_read(
    State(state): State<SharedState>,
    request: OsqueryJson<NodeKeyRequest>,
) -> Result<Json<DistributedReadResponse>, OsqueryError> {
    let (host, now) = app::agent::check_in(&state, &request.host);
    Ok(Json(app::osquery::due_queries(&state, host, now).await?))
}

async fn distributed_write(
    State(state): State<SharedState>,
    request: OsqueryJson<DistributedWriteRequest>,
) -> Result<Json<Acknowledged>, OsqueryError> {
    let (host, now) = app::agent::check_in(&state, &request.host);
    app::osquery::record_report(&state, &host, request.body, now).await?;
    Ok(Json(Acknowledged {}))
}

async fn log(
    State(state): State<SharedState>,
    request: OsqueryJson<LogRequest>,
) -> Result<Json<Acknowledged>, OsqueryError> {
    let (host, now) = app::agent::check_in(&state, &request.host);
    app::osquery::record_log(&state, &host, request.body, now).await?;
    Ok(Json(Acknowledged {}))
}
