//! Configuration profiles at Fleet's paths: upload (multipart, with team), list, get (and `?alt=media`),
//! delete, batch (a team's whole set, Fleet's GitOps endpoint), the status summary per team, a host's
//! profiles and resend; and herd-agent's side: fetching its commands and answering them.
//!
//! Two formats: herd profiles (`.json`, `.yml`/`.yaml`: `herd_core::profiles::ProfileDocument`, applied by
//! herd-agent on Linux) and Apple `.mobileconfig` files (parsed for identifier, name and payload types,
//! validated, stored and listed; their delivery needs an Apple MDM transport herd does not have yet, which
//! every view says in `delivery`, and no host status is invented for them).

use crate::app;
use crate::auth::AuthUser;
use crate::error::{ApiError, OsqueryError};
use crate::extract::{ApiJson, OsqueryJson, PathId};
use crate::state::SharedState;
use crate::wire::rfc3339;
use axum::Json;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use herd_core::roles::Action;
use herd_proto::agent::{Acknowledged, ProfileCommandsResponse, ProfileResultsRequest};
use herd_store::ProfileRecord;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;

/// What a view says about delivery: herd profiles are delivered by herd-agent; Apple profiles wait for an
/// Apple MDM transport.
const APPLE_DELIVERY: &str = "not delivered: herd has no Apple MDM transport yet; the profile is stored and shown only";

/// Under `/api/v1/fleet` and `/api/latest/fleet`.
pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route("/configuration_profiles", get(list).post(upload))
        .route("/configuration_profiles/summary", get(summary))
        .route("/configuration_profiles/{uuid}", get(get_one).delete(delete))
        .route("/mdm/profiles/batch", post(batch))
        .route("/hosts/{id}/configuration_profiles", get(host_list))
        .route("/hosts/{id}/configuration_profiles/{uuid}/resend", post(resend))
        .route("/hosts/{id}/configuration_profiles/resend/{uuid}", post(resend))
}

/// At the root: what herd-agent calls (authenticated by its node key).
pub fn agent_routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route(herd_proto::agent::PROFILES_COMMANDS_PATH, post(agent_commands))
        .route(herd_proto::agent::PROFILES_RESULTS_PATH, post(agent_results))
}

fn profile_json(p: &ProfileRecord) -> Value {
    let delivery = if p.format == "mobileconfig" { APPLE_DELIVERY } else { "herd-agent (Linux)" };
    let idents = |ids: &[i64]| crate::wire::label_idents(ids, &p.label_names);
    let mut body = json!({
        "profile_uuid": p.uuid,
        "team_id": p.team_id.unwrap_or(0),
        "name": p.name,
        "identifier": p.identifier,
        "platform": p.platform,
        "format": p.format,
        "payload_types": p.payload_types,
        "checksum": p.checksum,
        "delivery": delivery,
        "created_at": rfc3339(p.created_at),
        "updated_at": rfc3339(p.uploaded_at),
    });
    // Fleet's fields, present only when the profile has them.
    for (field, ids) in [
        ("labels_include_any", &p.labels.include_any),
        ("labels_include_all", &p.labels.include_all),
        ("labels_exclude_any", &p.labels.exclude_any),
    ] {
        if !ids.is_empty() {
            body[field] = json!(idents(ids));
        }
    }
    body
}

fn team_param(params: &HashMap<String, String>) -> Result<Option<i64>, ApiError> {
    crate::extract::team_id_value(params.get("team_id").map(String::as_str))
}

async fn upload(State(state): State<SharedState>, auth: AuthUser, form: Multipart) -> Result<Json<Value>, ApiError> {
    let upload = crate::extract::team_upload(form, "profile").await?;
    let record =
        app::profiles::add(&state, &auth, upload.team_id, &upload.file_name, &upload.bytes, upload.labels).await?;
    Ok(Json(json!({"profile_uuid": record.uuid})))
}

async fn delete(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(uuid): Path<String>,
) -> Result<Json<Value>, ApiError> {
    app::profiles::delete(&state, &auth, &uuid).await?;
    Ok(Json(json!({})))
}

async fn list(
    State(state): State<SharedState>,
    auth: AuthUser,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let team = team_param(&params)?;
    crate::access::scope(&state, &auth, team, Action::Read).await?;
    let page = crate::paging::Page::from_params(&params, 100)?;
    let all = state.store.list_profiles(team).await?;
    let shown: Vec<Value> = all[page.range(all.len())].iter().map(profile_json).collect();
    Ok(Json(json!({
        "profiles": shown,
        "meta": {"has_next_results": page.has_next(all.len() as i64), "has_previous_results": page.has_previous()},
    })))
}

async fn get_one(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path(uuid): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let profile = crate::access::profile(&state, &auth, &uuid, Action::Read).await?;
    if params.get("alt").map(String::as_str) == Some("media") {
        let (extension, content_type) = if profile.format == "mobileconfig" {
            ("mobileconfig", "application/x-apple-aspen-config")
        } else {
            ("json", "application/json")
        };
        let day = rfc3339(profile.uploaded_at).chars().take(10).collect::<String>();
        let safe: String =
            profile.name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
        let disposition = format!("attachment; filename=\"{day}_{safe}.{extension}\"");
        let mut response = profile.contents.into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        return Ok(response);
    }
    Ok(Json(profile_json(&profile)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    profiles: Vec<BatchProfile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchProfile {
    /// The file name (its extension says the format), as fleetctl sends it.
    name: String,
    /// The file, base64.
    contents: String,
    /// Fleet's label scope, by label names (`labels` is Fleet's older name for `labels_include_all`).
    #[serde(default)]
    labels: Option<Vec<String>>,
    #[serde(default)]
    labels_include_all: Option<Vec<String>>,
    #[serde(default)]
    labels_include_any: Option<Vec<String>>,
    #[serde(default)]
    labels_exclude_any: Option<Vec<String>>,
}

/// Fleet's `POST /mdm/profiles/batch?team_id=|team_name=&dry_run=`: the team's whole set, replaced in one
/// transaction (profiles matched by identifier are updated in place; this is how profiles are edited).
async fn batch(
    State(state): State<SharedState>,
    auth: AuthUser,
    Query(params): Query<HashMap<String, String>>,
    ApiJson(request): ApiJson<BatchRequest>,
) -> Result<StatusCode, ApiError> {
    use base64::Engine;
    // A team named that the user cannot read is "no team named" exactly like a missing one.
    let team_id = match params.get("team_name").map(|n| n.trim()).filter(|n| !n.is_empty()) {
        Some(name) => Some(
            crate::access::team_by_name(&state, &auth, name, Action::Write)
                .await
                .map_err(|e| match e {
                    ApiError::NotFound(_) => ApiError::invalid("team_name", format!("no team named {name:?}")),
                    other => other,
                })?
                .id,
        ),
        None => {
            let team_id = team_param(&params)?;
            crate::access::scope_field(&state, &auth, team_id, Action::Write, "team_id").await?;
            team_id
        }
    };
    let mut files = Vec::with_capacity(request.profiles.len());
    for (i, entry) in request.profiles.into_iter().enumerate() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(entry.contents.trim())
            .map_err(|e| ApiError::invalid(format!("profiles[{i}].contents"), format!("not base64: {e}")))?;
        if entry.labels.is_some() && entry.labels_include_all.is_some() {
            return Err(ApiError::invalid(
                format!("profiles[{i}].labels"),
                "give labels_include_all, or its older name labels, not both",
            ));
        }
        let scope = [entry.labels_include_any, entry.labels_include_all.or(entry.labels), entry.labels_exclude_any];
        files.push(app::profiles::ProfileFile { name: entry.name, bytes, labels: scope });
    }
    let dry_run = params.get("dry_run").is_some_and(|v| v == "true" || v == "1");
    app::profiles::replace_set(&state, &auth, team_id, files, dry_run).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn summary(
    State(state): State<SharedState>,
    auth: AuthUser,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let team = team_param(&params)?;
    crate::access::scope(&state, &auth, team, Action::Read).await?;
    let s = state.store.profiles_summary(team).await?;
    Ok(Json(json!({"verified": s.verified, "verifying": s.verifying, "pending": s.pending, "failed": s.failed})))
}

async fn host_list(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
) -> Result<Json<Value>, ApiError> {
    let host = crate::access::host(&state, &auth, id, Action::Read).await?;
    let profiles = crate::app::profiles::of_host(&state, host.id).await?;
    Ok(Json(json!({"host_id": host.id, "profiles": profiles})))
}

async fn resend(
    State(state): State<SharedState>,
    auth: AuthUser,
    Path((id, uuid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let id: i64 = id.parse().map_err(|_| ApiError::NotFound("host"))?;
    app::profiles::resend(&state, &auth, id, &uuid).await?;
    Ok(StatusCode::ACCEPTED)
}

/// The agent asks for its profile commands (and so says it applies profiles): in order, each with the
/// document to install.
async fn agent_commands(
    State(state): State<SharedState>,
    request: OsqueryJson<herd_proto::osquery::NodeKeyRequest>,
) -> Result<Json<ProfileCommandsResponse>, OsqueryError> {
    let (host, now) = app::agent::check_in(&state, &request.host);
    Ok(Json(app::profiles::agent_commands(&state, &host, now).await?))
}

impl crate::extract::NodeKeyed for ProfileResultsRequest {
    fn node_key(&self) -> Option<&str> {
        self.node_key.as_deref()
    }
}

async fn agent_results(
    State(state): State<SharedState>,
    request: OsqueryJson<ProfileResultsRequest>,
) -> Result<Json<Acknowledged>, OsqueryError> {
    let (host, now) = app::agent::check_in(&state, &request.host);
    app::profiles::record_agent_results(&state, &host, &request.body, now).await?;
    Ok(Json(Acknowledged {}))
}
