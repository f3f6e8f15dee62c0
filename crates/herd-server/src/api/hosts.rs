//! Hosts: list, count, get (by id or identifier), delete, refetch, transfer between teams, status logs.

use crate::app;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, PathId};
use crate::paging::integer_param;
use crate::state::{SharedState, now_ms};
use crate::wire;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use herd_core::roles::Action;
use herd_proto::fleet::{
    CountResponse, HostResponse, HostsResponse, StatusLog, StatusLogsResponse, TransferHostsRequest,
};
use serde_json::{Value, json};
use std::collections::HashMap;

pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route("/hosts", get(list))
        .route("/hosts/count", get(count))
        .route("/hosts/transfer", post(transfer))
        .route("/hosts/identifier/{identifier}", get(by_identifier))
        .route("/hosts/{id}", get(get_one).delete(delete))
        .route("/hosts/{id}/refetch", post(refetch))
        .route("/hosts/{id}/status_logs", get(status_logs))
}

async fn list(
    State(state): State<SharedState>,
    auth: AuthUser,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<HostsResponse>, ApiError> {
    let query = app::hosts::ListQuery::parse(&params, &auth, true)?;
    let listed = app::hosts::list(&state, &query).await?;
    let now = now_ms();
    let hosts = listed.into_iter().map(|(record, failing)| wire::host(&state, record, failing, now)).collect();
    Ok(Json(HostsResponse { hosts }))
}

async fn count(
    State(state): State<SharedState>,
    auth: AuthUser,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<CountResponse>, ApiError> {
    let query = app::hosts::ListQuery::parse(&params, &auth, false)?;
    Ok(Json(CountResponse { count: app::hosts::count(&state, &query).await? }))
}

async fn get_one(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
) -> Result<Json<HostResponse>, ApiError> {
    let host = crate::access::host(&state, &auth, id, Action::Read).await?;
    Ok(Json(HostResponse { host: app::hosts::view(&state, host).await? }))
}

async fn by_identifier(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(identifier): Path<String>,
) -> Result<Json<HostResponse>, ApiError> {
    let host = crate::access::host_by_identifier(&state, &auth, &identifier, Action::Read).await?;
    Ok(Json(HostResponse { host: app::hosts::view(&state, host).await? }))
}

async fn delete(State(state): State<SharedState>, auth: AuthUser, PathId(id): PathId) -> Result<Json<Value>, ApiError> {
    app::hosts::delete(&state, &auth, id).await?;
    Ok(Json(json!({})))
}

async fn refetch(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
) -> Result<Json<Value>, ApiError> {
    app::hosts::refetch(&state, &auth, id).await?;
    Ok(Json(json!({})))
}

async fn transfer(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(request): ApiJson<TransferHostsRequest>,
) -> Result<Json<Value>, ApiError> {
    // team_id 0 means "no team", as in Fleet's other endpoints.
    let target = request.team_id.filter(|id| *id != 0);
    app::hosts::transfer(&state, &auth, target, &request.hosts).await?;
    Ok(Json(json!({})))
}

async fn status_logs(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<StatusLogsResponse>, ApiError> {
    crate::access::host(&state, &auth, id, Action::Read).await?;
    let limit = integer_param(&params, "per_page")?.unwrap_or(100).clamp(1, herd_store::STATUS_LOGS_KEPT);
    let logs = state.store.status_logs(id, limit).await?;
    Ok(Json(StatusLogsResponse {
        status_logs: logs
            .into_iter()
            .map(|l| StatusLog {
                unix_time: l.unix_time,
                received_at: wire::rfc3339(l.received_at),
                severity: l.severity,
                filename: l.filename,
                line: l.line,
                message: l.message,
                version: l.version,
            })
            .collect(),
    }))
}
