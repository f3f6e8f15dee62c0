//! Policies: global and team policies, counts, apply-by-name specs. Policy SQL is only stored and handed to
//! hosts; it never runs on the server.

use crate::app;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, PathId};
use crate::state::SharedState;
use crate::wire;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use herd_core::roles::{Action, Scope};
use herd_proto::fleet::{
    CountResponse, DeletePoliciesRequest, DeletedResponse, PoliciesResponse, PolicyInput, PolicyResponseBody,
    PolicySpecsRequest,
};
use serde_json::{Value, json};
use std::collections::HashMap;

/// Routes both of Fleet's API versions serve.
pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route("/policies/count", get(count_global))
        .route("/teams/{team_id}/policies", get(list_team).post(create_team))
        .route("/teams/{team_id}/policies/delete", post(delete_team))
        .route("/teams/{team_id}/policies/count", get(count_team))
        .route("/teams/{team_id}/policies/{id}", get(get_team).patch(patch_team))
        .route("/spec/policies", post(apply_specs))
        .route("/automations/reset", post(reset_automations))
}

/// Global policies as `/api/v1/fleet` names them: Fleet registers these `EndingAtVersion("v1")`.
pub fn v1_routes() -> crate::api::Routes {
    global_routes("/global/policies")
}

/// Global policies as `/api/latest/fleet` names them: Fleet registers these `StartingAtVersion("2022-04")`, the
/// version `latest` stands for.
pub fn latest_routes() -> crate::api::Routes {
    global_routes("/policies")
}

fn global_routes(base: &str) -> crate::api::Routes {
    crate::api::Routes::new()
        .route(base, get(list_global).post(create_global))
        .route(&format!("{base}/delete"), post(delete_global))
        .route(&format!("{base}/{{id}}"), get(get_global).patch(patch_global))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetAutomations {
    #[serde(default)]
    policy_ids: Vec<i64>,
    #[serde(default)]
    team_ids: Vec<i64>,
}

/// Fleet's `POST /automations/reset`: hosts failing these policies (or any policy of these teams) count as
/// newly failing at their next answer, so webhooks fire and scripts run again.
async fn reset_automations(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(request): ApiJson<ResetAutomations>,
) -> Result<Json<Value>, ApiError> {
    app::policies::reset_automations(&state, &auth, &request.policy_ids, &request.team_ids).await?;
    Ok(Json(json!({})))
}

async fn list_global(State(state): State<SharedState>, auth: AuthUser) -> Result<Json<PoliciesResponse>, ApiError> {
    auth.require(Action::Read, Scope::Global)?;
    let policies = state.store.list_policies(None).await?;
    let policies = policies.into_iter().map(|p| app::policies::view(&auth, p)).collect();
    Ok(Json(PoliciesResponse { policies, inherited_policies: None }))
}

async fn create_global(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(input): ApiJson<PolicyInput>,
) -> Result<Json<PolicyResponseBody>, ApiError> {
    let policy = app::policies::create(&state, &auth, None, input).await?;
    Ok(Json(PolicyResponseBody { policy: wire::policy(policy) }))
}

async fn get_global(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
) -> Result<Json<PolicyResponseBody>, ApiError> {
    crate::access::scope(&state, &auth, None, Action::Read).await?;
    let policy = crate::access::policy_in(&state, &auth, None, id, Action::Read).await?;
    Ok(Json(PolicyResponseBody { policy: app::policies::view(&auth, policy) }))
}

async fn patch_global(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
    ApiJson(input): ApiJson<PolicyInput>,
) -> Result<Json<PolicyResponseBody>, ApiError> {
    let policy = app::policies::patch(&state, &auth, None, id, input).await?;
    Ok(Json(PolicyResponseBody { policy: wire::policy(policy) }))
}

async fn delete_global(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(request): ApiJson<DeletePoliciesRequest>,
) -> Result<Json<DeletedResponse>, ApiError> {
    Ok(Json(DeletedResponse { deleted: app::policies::delete(&state, &auth, None, request.ids).await? }))
}

async fn count_global(State(state): State<SharedState>, auth: AuthUser) -> Result<Json<CountResponse>, ApiError> {
    auth.require(Action::Read, Scope::Global)?;
    Ok(Json(CountResponse { count: state.store.count_policies(None).await? }))
}

/// The team id from the path, checked to be a number.
fn team_of(raw: &str) -> Result<i64, ApiError> {
    raw.parse().map_err(|_| ApiError::invalid("team_id", format!("must be an integer, not {raw:?}")))
}

async fn list_team(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(team): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<PoliciesResponse>, ApiError> {
    let team = team_of(&team)?;
    crate::access::scope(&state, &auth, Some(team), Action::Read).await?;
    let own: Vec<_> =
        state.store.list_policies(Some(team)).await?.into_iter().map(|p| app::policies::view(&auth, p)).collect();
    // Global policies as they apply to this team: counts over the team's hosts only.
    let inherited: Vec<_> =
        state.store.global_policies_for_team(team).await?.into_iter().map(|p| app::policies::view(&auth, p)).collect();
    let merge = match params.get("merge_inherited").map(String::as_str) {
        None | Some("false") => false,
        Some("true") => true,
        Some(other) => {
            return Err(ApiError::invalid("merge_inherited", format!("expected true or false, not {other:?}")));
        }
    };
    Ok(Json(if merge {
        PoliciesResponse { policies: inherited.into_iter().chain(own).collect(), inherited_policies: None }
    } else {
        PoliciesResponse { policies: own, inherited_policies: Some(inherited) }
    }))
}

async fn create_team(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(team): Path<String>,
    ApiJson(input): ApiJson<PolicyInput>,
) -> Result<Json<PolicyResponseBody>, ApiError> {
    let policy = app::policies::create(&state, &auth, Some(team_of(&team)?), input).await?;
    Ok(Json(PolicyResponseBody { policy: wire::policy(policy) }))
}

async fn get_team(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path((team, id)): Path<(String, String)>,
) -> Result<Json<PolicyResponseBody>, ApiError> {
    let team = team_of(&team)?;
    let id: i64 = id.parse().map_err(|_| ApiError::invalid("id", format!("must be an integer, not {id:?}")))?;
    crate::access::scope(&state, &auth, Some(team), Action::Read).await?;
    let policy = crate::access::policy_in(&state, &auth, Some(team), id, Action::Read).await?;
    Ok(Json(PolicyResponseBody { policy: app::policies::view(&auth, policy) }))
}

async fn patch_team(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path((team, id)): Path<(String, String)>,
    ApiJson(input): ApiJson<PolicyInput>,
) -> Result<Json<PolicyResponseBody>, ApiError> {
    let team = team_of(&team)?;
    let id: i64 = id.parse().map_err(|_| ApiError::invalid("id", format!("must be an integer, not {id:?}")))?;
    let policy = app::policies::patch(&state, &auth, Some(team), id, input).await?;
    Ok(Json(PolicyResponseBody { policy: wire::policy(policy) }))
}

async fn delete_team(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(team): Path<String>,
    ApiJson(request): ApiJson<DeletePoliciesRequest>,
) -> Result<Json<DeletedResponse>, ApiError> {
    Ok(Json(DeletedResponse {
        deleted: app::policies::delete(&state, &auth, Some(team_of(&team)?), request.ids).await?,
    }))
}

async fn count_team(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(team): Path<String>,
) -> Result<Json<CountResponse>, ApiError> {
    let team = team_of(&team)?;
    crate::access::scope(&state, &auth, Some(team), Action::Read).await?;
    Ok(Json(CountResponse { count: state.store.count_policies(Some(team)).await? }))
}

/// `POST /spec/policies`: creates or updates policies by name within their scope (`team` names a team,
/// "" = global). Everything is validated before anything is written. Fleet answers `{}`; herd adds what
/// happened to each spec (`policies`: name and `created`, `updated` or `unchanged`), which `?dry_run=true`
/// answers without writing anything.
async fn apply_specs(
    State(state): State<SharedState>,
    auth: AuthUser,
    Query(params): Query<HashMap<String, String>>,
    ApiJson(request): ApiJson<PolicySpecsRequest>,
) -> Result<Json<Value>, ApiError> {
    let dry_run = match params.get("dry_run").map(String::as_str) {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") | Some("") => true,
        Some(_) => return Err(ApiError::invalid("dry_run", "must be true or false")),
    };
    let outcomes = app::policies::apply_specs(&state, &auth, request.specs, dry_run).await?;
    let policies: Vec<Value> =
        outcomes.into_iter().map(|(name, outcome)| json!({"name": name, "outcome": outcome})).collect();
    Ok(Json(json!({"policies": policies})))
}
