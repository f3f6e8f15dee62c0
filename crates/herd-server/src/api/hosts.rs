//! Hosts: list, count, get (by id or identifier), delete, refetch, transfer between teams, status logs.

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, PathId};
use crate::paging::Page;
use crate::state::{SharedState, now_ms};
use crate::wire;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use herd_core::roles::{Action, Scope};
use herd_proto::fleet::{
    CountResponse, HostResponse, HostsResponse, StatusLog, StatusLogsResponse, TransferHostsRequest,
};
use herd_store::{HostFilter, HostOrder, HostRecord, StatusCondition};
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

/// Parameters Fleet clients send that change only what Fleet adds to each host, not which hosts match:
/// accepted and ignored. Any other unknown parameter is refused, so a filter herd does not know never
/// silently widens a listing (a script deleting "failing hosts" must not get every host).
const IGNORED_PARAMS: &[&str] =
    &["device_mapping", "populate_software", "populate_policies", "disable_failing_policies"];

pub(crate) struct ListParams {
    pub filter: HostFilter,
    pub order: HostOrder,
    pub descending: bool,
    pub page: Page,
}

fn integer_param(params: &HashMap<String, String>, name: &str) -> Result<Option<i64>, ApiError> {
    params
        .get(name)
        .map(|v| v.trim().parse::<i64>().map_err(|_| ApiError::invalid(name, format!("must be an integer, not {v:?}"))))
        .transpose()
}

pub(crate) fn parse_list_params(
    params: &HashMap<String, String>,
    auth: &AuthUser,
    with_paging: bool,
) -> Result<ListParams, ApiError> {
    const KNOWN: &[&str] = &[
        "page",
        "per_page",
        "order_key",
        "order_direction",
        "query",
        "status",
        "team_id",
        "policy_id",
        "policy_response",
        "os_settings",
        "macos_settings",
        "profile_uuid",
        "profile_status",
    ];
    if let Some(unknown) = params.keys().find(|k| !KNOWN.contains(&k.as_str()) && !IGNORED_PARAMS.contains(&k.as_str()))
    {
        return Err(ApiError::invalid(unknown.clone(), "unsupported parameter"));
    }
    let mut filter = HostFilter { visible_teams: auth.actor.visible_teams(), ..Default::default() };
    if let Some(team) = integer_param(params, "team_id")? {
        // Fleet's convention: team_id=0 means "hosts in no team".
        if team == 0 {
            auth.require(Action::Read, Scope::Global)?;
            filter.team = Some(None);
        } else {
            auth.require(Action::Read, Scope::Team(team))?;
            filter.team = Some(Some(team));
        }
    }
    filter.status = match params.get("status").map(String::as_str) {
        None | Some("") => None,
        Some("online") => Some(StatusCondition::Online),
        Some("offline") => Some(StatusCondition::Offline),
        Some("missing") => Some(StatusCondition::Missing),
        Some("new") => Some(StatusCondition::New),
        Some(other) => {
            return Err(ApiError::invalid(
                "status",
                format!("unknown status {other:?}; expected online, offline, missing or new"),
            ));
        }
    };
    let policy_id = integer_param(params, "policy_id")?;
    filter.policy_response = match (policy_id, params.get("policy_response").map(String::as_str)) {
        (None, None) => None,
        (Some(id), Some("passing")) => Some((id, true)),
        (Some(id), Some("failing")) => Some((id, false)),
        (Some(_), Some(other)) => {
            return Err(ApiError::invalid("policy_response", format!("expected passing or failing, not {other:?}")));
        }
        (Some(_), None) => return Err(ApiError::invalid("policy_response", "required with policy_id")),
        (None, Some(_)) => return Err(ApiError::invalid("policy_id", "required with policy_response")),
    };
    let profile_state = |name: &str| -> Result<Option<herd_core::profiles::Status>, ApiError> {
        match params.get(name).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(v) => herd_core::profiles::Status::parse(v).map(Some).ok_or_else(|| {
                ApiError::invalid(name, format!("expected verified, verifying, pending or failed, not {v:?}"))
            }),
        }
    };
    filter.profiles_status = match profile_state("os_settings")? {
        Some(status) => Some(status),
        None => profile_state("macos_settings")?,
    };
    filter.profile_status =
        match (params.get("profile_uuid").filter(|u| !u.is_empty()), profile_state("profile_status")?) {
            (None, None) => None,
            (Some(uuid), Some(status)) => Some((uuid.clone(), status)),
            (Some(_), None) => return Err(ApiError::invalid("profile_status", "required with profile_uuid")),
            (None, Some(_)) => return Err(ApiError::invalid("profile_uuid", "required with profile_status")),
        };
    filter.query = params.get("query").filter(|q| !q.trim().is_empty()).cloned();
    if filter.query.as_ref().is_some_and(|q| q.len() > 255) {
        return Err(ApiError::invalid("query", "at most 255 characters"));
    }
    let order = match params.get("order_key").map(String::as_str) {
        None | Some("") => HostOrder::Id,
        Some(key) => HostOrder::parse(key)
            .ok_or_else(|| ApiError::invalid("order_key", format!("cannot order hosts by {key:?}")))?,
    };
    let descending = match params.get("order_direction").map(String::as_str) {
        None | Some("") | Some("asc") => false,
        Some("desc") => true,
        Some(other) => {
            return Err(ApiError::invalid("order_direction", format!("expected asc or desc, not {other:?}")));
        }
    };
    // Counts take the listing's filters and ignore its paging.
    let page = if with_paging { Page::from_params(params, crate::paging::DEFAULT_PER_PAGE)? } else { Page::default() };
    Ok(ListParams { filter, order, descending, page })
}

/// Status filters run in SQL on last-seen times; write this server's pending ones first so a host that just
/// checked in here is online in the listing too. (Other servers' pending times are at most one flush period
/// old, well inside the one-minute grace of the online rule.)
pub(crate) async fn flush_before_status_filter(state: &SharedState, filter: &HostFilter) -> Result<(), ApiError> {
    if filter.status.is_some() {
        crate::workers::flush_seen_times(state).await.map_err(ApiError::Internal)?;
    }
    Ok(())
}

async fn list(
    State(state): State<SharedState>,
    auth: AuthUser,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<HostsResponse>, ApiError> {
    let p = parse_list_params(&params, &auth, true)?;
    flush_before_status_filter(&state, &p.filter).await?;
    let now = now_ms();
    let records =
        state.store.list_hosts(&p.filter, p.order, p.descending, p.page.offset(), p.page.per_page(), now).await?;
    let ids: Vec<i64> = records.iter().map(|r| r.id).collect();
    let failing = state.store.failing_policy_counts(&ids).await?;
    let hosts = records
        .into_iter()
        .map(|r| {
            let count = failing.get(&r.id).copied().unwrap_or(0);
            wire::host(&state, r, count, now)
        })
        .collect();
    Ok(Json(HostsResponse { hosts }))
}

async fn count(
    State(state): State<SharedState>,
    auth: AuthUser,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<CountResponse>, ApiError> {
    let p = parse_list_params(&params, &auth, false)?;
    flush_before_status_filter(&state, &p.filter).await?;
    Ok(Json(CountResponse { count: state.store.count_hosts(&p.filter, now_ms()).await? }))
}

/// A single host with every policy in its scope and its answers.
pub(crate) async fn host_view(state: &SharedState, record: HostRecord) -> Result<herd_proto::fleet::Host, ApiError> {
    let answers = state.store.host_policy_answers(record.id, record.team_id).await?;
    let deferrals = crate::api::deferrals::host_deferrals(state, record.id).await?;
    let profiles = crate::api::profiles::host_profiles(state, record.id).await?;
    let mut host = host_view_with(state, record, &answers);
    host.deferrals = Some(deferrals);
    host.mdm = Some(herd_proto::fleet::HostMdm { profiles });
    Ok(host)
}

/// The single-host view from answers already read.
pub(crate) fn host_view_with(
    state: &SharedState,
    record: HostRecord,
    answers: &[herd_store::HostPolicyAnswer],
) -> herd_proto::fleet::Host {
    let failing = answers.iter().filter(|a| a.response == herd_core::policy::PolicyResponse::Fail).count() as i64;
    let mut host = wire::host(state, record, failing, now_ms());
    host.policies = Some(answers.iter().cloned().map(wire::host_policy).collect());
    host
}

async fn get_one(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
) -> Result<Json<HostResponse>, ApiError> {
    let host = crate::access::host(&state, &auth, id, Action::Read).await?;
    Ok(Json(HostResponse { host: host_view(&state, host).await? }))
}

async fn by_identifier(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(identifier): Path<String>,
) -> Result<Json<HostResponse>, ApiError> {
    let host = crate::access::host_by_identifier(&state, &auth, &identifier, Action::Read).await?;
    Ok(Json(HostResponse { host: host_view(&state, host).await? }))
}

async fn delete(State(state): State<SharedState>, auth: AuthUser, PathId(id): PathId) -> Result<Json<Value>, ApiError> {
    crate::access::host(&state, &auth, id, Action::Write).await?;
    if !state.store.delete_host(id, now_ms()).await? {
        return Err(ApiError::NotFound("host"));
    }
    state.hosts.evict(id);
    state.seen.forget(id);
    tracing::info!(host_id = id, user_id = auth.user.id, "host deleted");
    Ok(Json(json!({})))
}

async fn refetch(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
) -> Result<Json<Value>, ApiError> {
    crate::access::host(&state, &auth, id, Action::Refetch).await?;
    if !state.store.request_refetch(id, now_ms()).await? {
        return Err(ApiError::NotFound("host"));
    }
    state.hosts.evict(id);
    Ok(Json(json!({})))
}

async fn transfer(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(request): ApiJson<TransferHostsRequest>,
) -> Result<Json<Value>, ApiError> {
    // team_id 0 means "no team", as in Fleet's other endpoints.
    let target = request.team_id.filter(|id| *id != 0);
    crate::access::scope_field(&state, &auth, target, Action::Write, "team_id").await?;
    if request.hosts.len() > 100_000 {
        return Err(ApiError::invalid("hosts", "at most 100000 hosts per request"));
    }
    let now = now_ms();
    let filter = HostFilter { ids: Some(request.hosts.clone()), ..Default::default() };
    let hosts = state.store.list_hosts(&filter, HostOrder::Id, false, 0, request.hosts.len() as i64 + 1, now).await?;
    // Unknown ids are ignored (as in Fleet), and so are hosts the user cannot read: the same answer either way.
    let hosts: Vec<HostRecord> = hosts.into_iter().filter(|h| crate::access::readable(&auth, h)).collect();
    for host in &hosts {
        auth.require(Action::Write, Scope::of_team(host.team_id))?;
    }
    let ids: Vec<i64> = hosts.iter().map(|h| h.id).collect();
    state.store.transfer_hosts(target, &ids, now).await.map_err(|e| match e {
        herd_store::StoreError::NotFound("team") => ApiError::invalid("team_id", "team does not exist"),
        other => other.into(),
    })?;
    for host in &hosts {
        state.hosts.evict(host.id);
    }
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
