//! Scripts: the library (upload, list, get, delete — global or per team), runs on hosts (async: 202 + id;
//! sync: waits, 408 after the timeout), results, a host's scripts with their last run; and the agent's side:
//! fetching its queued runs and reporting their results.

use crate::app;
use crate::auth::AuthUser;
use crate::error::{ApiError, OsqueryError};
use crate::extract::{ApiJson, OsqueryJson, PathId};
use crate::state::SharedState;
use crate::wire::rfc3339;
use axum::Json;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use herd_core::roles::Action;
use herd_proto::agent::{Acknowledged, PendingScriptsRequest, PendingScriptsResponse, ScriptResultRequest};
use herd_store::{ExecutionRecord, ScriptRecord};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Under `/api/v1/fleet` and `/api/latest/fleet`.
pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route("/scripts", get(list).post(upload))
        .route("/scripts/{id}", get(get_one).delete(delete))
        .route("/scripts/run", post(run_async))
        .route("/scripts/run/sync", post(run_sync))
        .route("/scripts/results/{execution_id}", get(result))
        .route("/hosts/{id}/scripts", get(host_scripts))
}

/// At the root: what herd-agent calls (authenticated by its node key).
pub fn agent_routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route(herd_proto::agent::SCRIPTS_PENDING_PATH, post(agent_pending))
        .route(herd_proto::agent::SCRIPTS_RESULT_PATH, post(agent_result))
}

fn script_json(s: &ScriptRecord) -> Value {
    json!({"id": s.id, "team_id": s.team_id, "name": s.name, "created_at": rfc3339(s.created_at), "updated_at": rfc3339(s.updated_at)})
}

fn team_param(params: &HashMap<String, String>) -> Result<Option<i64>, ApiError> {
    crate::extract::team_id_value(params.get("team_id").map(String::as_str))
}

async fn upload(State(state): State<SharedState>, auth: AuthUser, form: Multipart) -> Result<Json<Value>, ApiError> {
    let upload = crate::extract::team_upload(form, "script").await?;
    let contents = String::from_utf8(upload.bytes).map_err(|_| ApiError::invalid("script", "must be UTF-8 text"))?;
    let id = app::scripts::add(&state, &auth, upload.team_id, &upload.file_name, &contents).await?;
    Ok(Json(json!({"script_id": id})))
}

/// Fleet answers a script's deletion with 204 and no body (`deleteScriptResponse.Status`).
async fn delete(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
) -> Result<axum::http::StatusCode, ApiError> {
    app::scripts::delete(&state, &auth, id).await?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

async fn list(
    State(state): State<SharedState>,
    auth: AuthUser,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let team = team_param(&params)?;
    crate::access::scope(&state, &auth, team, Action::Read).await?;
    let scripts = state.store.list_scripts(team).await?;
    Ok(Json(json!({"scripts": scripts.iter().map(script_json).collect::<Vec<_>>()})))
}

async fn get_one(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
    Query(params): Query<HashMap<String, String>>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let script = crate::access::script(&state, &auth, id, Action::Read).await?;
    // Fleet's `?alt=media` downloads the script itself.
    if params.get("alt").is_some_and(|v| v == "media") {
        return Ok(script.contents.into_response());
    }
    Ok(Json(script_json(&script)).into_response())
}

async fn run_async(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(request): ApiJson<app::scripts::RunRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let execution = app::scripts::queue(&state, &auth, request).await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"host_id": execution.host_id, "execution_id": execution.execution_id}))))
}

fn result_json(e: &ExecutionRecord, hostname: &str) -> Value {
    json!({
        "execution_id": e.execution_id,
        "host_id": e.host_id,
        "hostname": hostname,
        "script_contents": e.contents,
        "script_id": e.script_id,
        "exit_code": e.exit_code,
        "output": e.output,
        "runtime": e.runtime_ms.map(|ms| ms / 1000),
        "host_timeout": e.timed_out,
        "message": match e.status.as_str() {
            "pending" => "The script is queued; the host runs it at its next check-in.".to_string(),
            "error" => e.output.lines().last().unwrap_or("the script could not run").to_string(),
            _ => format!("The script ran and exited with {}.", e.exit_code.unwrap_or(-1)),
        },
        "status": e.status,
        "created_at": rfc3339(e.created_at),
    })
}

async fn run_sync(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(request): ApiJson<app::scripts::RunRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let (execution, finished) = app::scripts::run_and_wait(&state, &auth, request).await?;
    let status = if finished { StatusCode::OK } else { StatusCode::REQUEST_TIMEOUT };
    Ok((status, Json(result_json(&execution, ""))))
}

async fn result(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(execution_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (execution, host) = crate::access::execution(&state, &auth, &execution_id).await?;
    Ok(Json(result_json(&execution, &host.hostname)))
}

async fn host_scripts(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
) -> Result<Json<Value>, ApiError> {
    let host = crate::access::host(&state, &auth, id, Action::Read).await?;
    let last: HashMap<i64, ExecutionRecord> =
        state.store.last_executions(id).await?.into_iter().filter_map(|e| Some((e.script_id?, e))).collect();
    let scripts: Vec<Value> = state
        .store
        .list_scripts(host.team_id)
        .await?
        .iter()
        .map(|s| {
            let last_execution = last.get(&s.id).map(
                |e| json!({"execution_id": e.execution_id, "executed_at": rfc3339(e.created_at), "status": e.status}),
            );
            json!({"script_id": s.id, "name": s.name, "last_execution": last_execution})
        })
        .collect();
    Ok(Json(json!({"scripts": scripts})))
}

impl crate::extract::NodeKeyed for PendingScriptsRequest {
    fn node_key(&self) -> Option<&str> {
        self.node_key.as_deref()
    }
}

async fn agent_pending(
    State(state): State<SharedState>,
    request: OsqueryJson<PendingScriptsRequest>,
) -> Result<Json<PendingScriptsResponse>, OsqueryError> {
    let (host, now) = app::agent::check_in(&state, &request.host);
    Ok(Json(app::scripts::agent_pending(&state, &host, &request.body, now).await?))
}

impl crate::extract::NodeKeyed for ScriptResultRequest {
    /// A script may print far more than the 10,000 characters kept (runners other than herd-agent may send it
    /// all): a report's limits, and the server keeps the tail.
    const LIMITS: crate::extract::BodyLimits = crate::extract::REPORT_LIMITS;
    /// herd-agent's and fleetd's results alike.
    const KEY: app::agent::AgentKey = app::agent::AgentKey::Either;
    fn node_key(&self) -> Option<&str> {
        self.node_key.as_deref()
    }
}

async fn agent_result(
    State(state): State<SharedState>,
    request: OsqueryJson<ScriptResultRequest>,
) -> Result<Json<Acknowledged>, OsqueryError> {
    let (host, now) = app::agent::check_in(&state, &request.host);
    app::scripts::record_agent_result(&state, &host, &request.body, now).await?;
    Ok(Json(Acknowledged {}))
}
