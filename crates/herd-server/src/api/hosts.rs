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
        .route("/hosts/delete", post(delete_many))
        .route("/hosts/report", get(report))
        .route("/host_summary", get(summary))
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
    let populate_policies = params.get("populate_policies").is_some_and(|v| v == "true");
    let now = now_ms();
    let mut hosts = Vec::with_capacity(listed.len());
    for (record, failing) in listed {
        let policies = if populate_policies { Some(app::hosts::policies_of(&state, &record).await?) } else { None };
        let mut host = wire::host(&state, record, failing, now);
        host.policies = policies;
        hosts.push(host);
    }
    Ok(Json(HostsResponse { hosts }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct DeleteHosts {
    ids: Option<Vec<i64>>,
    filters: Option<serde_json::Map<String, Value>>,
}

/// Fleet's `POST /hosts/delete`: by ids or by the host list's filters (as query-string values).
async fn delete_many(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(request): ApiJson<DeleteHosts>,
) -> Result<Json<Value>, ApiError> {
    let filters: Option<HashMap<String, String>> = request.filters.map(|map| {
        map.into_iter()
            .filter_map(|(key, value)| match value {
                Value::Null => None,
                Value::String(text) => Some((key, text)),
                other => Some((key, other.to_string())),
            })
            .collect()
    });
    app::hosts::delete_many(&state, &auth, request.ids.as_deref(), filters.as_ref()).await?;
    Ok(Json(json!({})))
}

/// Fleet's `GET /host_summary`.
async fn summary(
    State(state): State<SharedState>,
    auth: AuthUser,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let s = app::hosts::summary(&state, &auth, &params).await?;
    let all_linux: i64 = s
        .platforms
        .iter()
        .filter(|(platform, _)| {
            herd_core::platform::PlatformFamily::of_host_platform(platform, "")
                == Some(herd_core::platform::PlatformFamily::Linux)
        })
        .map(|(_, count)| count)
        .sum();
    let platforms: Vec<Value> =
        s.platforms.iter().map(|(platform, count)| json!({"platform": platform, "hosts_count": count})).collect();
    Ok(Json(json!({
        "team_id": s.team_id,
        "totals_hosts_count": s.totals,
        "online_count": s.online,
        "offline_count": s.offline,
        "mia_count": s.missing,
        "missing_30_days_count": s.missing,
        "new_count": s.new,
        "all_linux_count": all_linux,
        "low_disk_space_count": s.low_disk_space,
        "platforms": platforms,
    })))
}

/// Fleet's `GET /hosts/report?format=csv`: streamed a page of hosts at a time.
async fn report(
    State(state): State<SharedState>,
    auth: AuthUser,
    Query(params): Query<HashMap<String, String>>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let report = std::sync::Arc::new(app::hosts::HostReport::parse(&params, &auth)?);
    // The first page is read before answering, so a failure is a proper error rather than a cut-off body.
    let first = report.page(&state, 0).await?;
    let head = futures_util::stream::iter([Ok::<String, ApiError>(report.header()), Ok(first.clone())]);
    let more = !first.is_empty();
    let rest = futures_util::stream::unfold((more, app::hosts::HostReport::PAGE), move |(more, offset)| {
        let state = state.clone();
        let report = report.clone();
        async move {
            if !more {
                return None;
            }
            match report.page(&state, offset).await {
                Ok(page) if page.is_empty() => None,
                Ok(page) => Some((Ok(page), (true, offset + app::hosts::HostReport::PAGE))),
                Err(err) => Some((Err(err), (false, offset))),
            }
        }
    });
    let body = axum::body::Body::from_stream(futures_util::StreamExt::chain(head, rest));
    Ok((
        [
            (axum::http::header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (axum::http::header::CONTENT_DISPOSITION, "attachment; filename=\"hosts.csv\""),
        ],
        body,
    )
        .into_response())
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
