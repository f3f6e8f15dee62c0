//! Labels at Fleet's paths: list, create, read, edit, delete (by name, or by id), the summary, a label's hosts
//! (with the host list's filters and paging), and label specs.

use crate::app;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, PathId};
use crate::state::{SharedState, now_ms};
use crate::wire;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use herd_proto::fleet::{
    HostsResponse, LabelInput, LabelPatchInput, LabelResponseBody, LabelSpec, LabelSpecsRequest, LabelSummary,
    LabelSummaryResponse, LabelsResponse,
};
use serde_json::{Value, json};
use std::collections::HashMap;

pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route("/labels", get(list).post(create))
        .route("/labels/summary", get(summary))
        .route("/labels/{id}", get(get_one).patch(patch).delete(delete_by_name))
        .route("/labels/id/{id}", axum::routing::delete(delete_by_id))
        .route("/labels/{id}/hosts", get(hosts))
        .route("/spec/labels", get(get_specs).post(apply_specs))
        .route("/spec/labels/{name}", get(get_spec))
}

/// Fleet's listing parameters; the others are refused (a filter herd does not know must not be ignored).
fn check_list_params(params: &HashMap<String, String>) -> Result<crate::paging::Page, ApiError> {
    const KNOWN: &[&str] = &["page", "per_page", "order_key", "order_direction", "include_host_counts", "team_id"];
    if let Some(unknown) = params.keys().find(|k| !KNOWN.contains(&k.as_str())) {
        return Err(ApiError::invalid(unknown.clone(), format!("parameter '{unknown}' is not supported")));
    }
    if let Some(team) = params.get("team_id").map(String::as_str)
        && !matches!(team, "" | "global" | "0")
    {
        return Err(ApiError::invalid("team_id", "labels are global in herd: team_id may only be \"global\""));
    }
    crate::paging::Page::from_params(params, 10_000)
}

async fn list(
    State(state): State<SharedState>,
    auth: AuthUser,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<LabelsResponse>, ApiError> {
    let page = check_list_params(&params)?;
    let labels = app::labels::list(&state, &auth).await?;
    let range = page.range(labels.len());
    let labels = labels.into_iter().skip(range.start).take(range.len()).map(|l| wire::label(l, None)).collect();
    Ok(Json(LabelsResponse { labels }))
}

async fn summary(
    State(state): State<SharedState>,
    auth: AuthUser,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<LabelSummaryResponse>, ApiError> {
    check_list_params(&params)?;
    let labels = app::labels::list(&state, &auth).await?;
    let labels = labels
        .into_iter()
        .map(|l| LabelSummary {
            id: l.id,
            name: l.name,
            description: l.description,
            label_type: if l.builtin { "builtin" } else { "regular" }.to_string(),
            team_id: None,
        })
        .collect();
    Ok(Json(LabelSummaryResponse { labels }))
}

async fn create(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(input): ApiJson<LabelInput>,
) -> Result<Json<LabelResponseBody>, ApiError> {
    let label = app::labels::create(&state, &auth, input).await?;
    let (label, members) = app::labels::get(&state, &auth, label.id).await?;
    Ok(Json(LabelResponseBody { label: wire::label(label, members) }))
}

async fn get_one(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
) -> Result<Json<LabelResponseBody>, ApiError> {
    let (label, members) = app::labels::get(&state, &auth, id).await?;
    Ok(Json(LabelResponseBody { label: wire::label(label, members) }))
}

async fn patch(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
    ApiJson(input): ApiJson<LabelPatchInput>,
) -> Result<Json<LabelResponseBody>, ApiError> {
    app::labels::patch(&state, &auth, id, input).await?;
    let (label, members) = app::labels::get(&state, &auth, id).await?;
    Ok(Json(LabelResponseBody { label: wire::label(label, members) }))
}

/// `?force=true` deletes a label in use (its policies' answers are voided, profiles reconciled).
fn force_of(params: &HashMap<String, String>) -> Result<bool, ApiError> {
    match params.get("force").map(String::as_str) {
        None | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ApiError::invalid("force", format!("expected true or false, not {other:?}"))),
    }
}

/// Fleet's `DELETE /labels/{name}`.
async fn delete_by_name(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let force = force_of(&params)?;
    let label = app::labels::by_name(&state, &auth, &name).await?;
    app::labels::delete(&state, &auth, label.id, force).await?;
    Ok(Json(json!({})))
}

async fn delete_by_id(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    app::labels::delete(&state, &auth, id, force_of(&params)?).await?;
    Ok(Json(json!({})))
}

/// The label's members among the hosts the user may read, with the host list's filters and paging.
async fn hosts(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
    Query(mut params): Query<HashMap<String, String>>,
) -> Result<Json<HostsResponse>, ApiError> {
    app::labels::get(&state, &auth, id).await?;
    if params.contains_key("label_id") {
        return Err(ApiError::invalid("label_id", "the label is the one in the path"));
    }
    params.insert("label_id".into(), id.to_string());
    let query = app::hosts::ListQuery::parse(&params, &auth, true)?;
    let listed = app::hosts::list(&state, &query).await?;
    let now = now_ms();
    let hosts = listed.into_iter().map(|(record, failing)| wire::host(&state, record, failing, now)).collect();
    Ok(Json(HostsResponse { hosts }))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecParams {
    #[serde(default)]
    dry_run: Option<bool>,
}

async fn apply_specs(
    State(state): State<SharedState>,
    auth: AuthUser,
    Query(params): Query<SpecParams>,
    ApiJson(request): ApiJson<LabelSpecsRequest>,
) -> Result<Json<Value>, ApiError> {
    let dry_run = params.dry_run.unwrap_or(false);
    let outcomes = app::labels::apply_specs(&state, &auth, request.specs, dry_run).await?;
    let outcomes: Vec<Value> =
        outcomes.into_iter().map(|(name, outcome)| json!({"name": name, "outcome": outcome})).collect();
    Ok(Json(json!({"outcomes": outcomes})))
}

/// A label as Fleet's spec writes it (manual members by host id, as Fleet answers).
async fn spec_of(state: &SharedState, auth: &AuthUser, label: herd_store::LabelRecord) -> Result<LabelSpec, ApiError> {
    let members = app::labels::members_of(state, auth, &label).await?;
    Ok(LabelSpec {
        name: label.name,
        description: label.description,
        query: label.query,
        platform: label.platform,
        label_membership_type: Some(label.kind.as_str().to_string()),
        hosts: members.map(|ids| ids.into_iter().map(|id| id.to_string()).collect()),
        criteria: if label.builtin {
            None
        } else {
            label.criteria.as_deref().and_then(|t| serde_json::from_str(t).ok())
        },
        label_type: Some(if label.builtin { "builtin" } else { "regular" }.to_string()),
    })
}

async fn get_specs(State(state): State<SharedState>, auth: AuthUser) -> Result<Json<Value>, ApiError> {
    let mut specs = Vec::new();
    for label in app::labels::list(&state, &auth).await? {
        specs.push(spec_of(&state, &auth, label).await?);
    }
    Ok(Json(json!({"specs": specs})))
}

async fn get_spec(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let label = app::labels::by_name(&state, &auth, &name).await?;
    Ok(Json(json!({"specs": spec_of(&state, &auth, label).await?})))
}
