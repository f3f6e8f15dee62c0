//! Teams, their enroll secrets and agent options; the global enroll secrets.

use crate::app;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, PathId};
use crate::state::SharedState;
use crate::wire;
use axum::Json;
use axum::extract::State;
use axum::routing::{get, post};
use herd_core::roles::{Action, Scope};
use herd_proto::fleet::{
    CreateTeamRequest, EnrollSecretSpec, EnrollSecretSpecResponse, PatchTeamRequest, SecretsInput, SecretsResponse,
    TeamResponse, TeamsResponse,
};
use serde_json::{Value, json};

pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route("/teams", get(list).post(create))
        .route("/teams/{id}", get(get_one).patch(update).delete(delete))
        .route("/teams/{id}/secrets", get(team_secrets).patch(replace_team_secrets))
        .route("/teams/{id}/agent_options", post(set_agent_options))
        .route("/spec/enroll_secret", get(global_secrets).post(replace_global_secrets))
        .route("/spec/teams", post(apply_specs))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamSpecs {
    specs: Vec<app::teams::TeamSpec>,
    /// Fleet takes it in the query string; herd also reads it from the body.
    #[serde(default)]
    dry_run: bool,
}

/// Fleet's `POST /spec/teams` (fleetctl's `kind: team`), `?dry_run=true` to check without writing.
async fn apply_specs(
    State(state): State<SharedState>,
    auth: AuthUser,
    axum::extract::Query(params): axum::extract::Query<std::collections::HashMap<String, String>>,
    ApiJson(request): ApiJson<TeamSpecs>,
) -> Result<Json<Value>, ApiError> {
    let dry_run = request.dry_run || params.get("dry_run").is_some_and(|v| v == "true" || v == "1");
    let ids = app::teams::apply_specs(&state, &auth, request.specs, dry_run).await?;
    Ok(Json(json!({"team_ids_by_name": ids})))
}

/// A team as `auth` may see it: enroll secrets for maintainers and up; the webhook URL (which often carries a
/// token) for those who may change it (team admins and global admins), masked for the others.
fn team_view(auth: &AuthUser, mut team: herd_store::TeamRecord) -> herd_proto::fleet::Team {
    if !auth.actor.may(Action::Write, Scope::Team(team.id)) {
        team.secrets.clear();
    }
    let mut view = wire::team(team);
    if !auth.actor.may(Action::AdministerTeam, Scope::Team(view.id)) {
        let url = &mut view.webhook_settings.failing_policies_webhook.destination_url;
        if !url.is_empty() {
            *url = crate::app::config::WITHHELD.to_string();
        }
    }
    view
}

async fn list(State(state): State<SharedState>, auth: AuthUser) -> Result<Json<TeamsResponse>, ApiError> {
    let teams = state.store.list_teams().await?;
    let visible = auth.actor.visible_teams();
    let teams = teams
        .into_iter()
        .filter(|t| visible.as_ref().is_none_or(|ids| ids.contains(&t.id)))
        .map(|t| team_view(&auth, t))
        .collect();
    Ok(Json(TeamsResponse { teams }))
}

async fn create(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(request): ApiJson<CreateTeamRequest>,
) -> Result<Json<TeamResponse>, ApiError> {
    Ok(Json(TeamResponse { team: wire::team(app::teams::create(&state, &auth, request).await?) }))
}

async fn get_one(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
) -> Result<Json<TeamResponse>, ApiError> {
    let team = crate::access::team(&state, &auth, id, Action::Read).await?;
    Ok(Json(TeamResponse { team: team_view(&auth, team) }))
}

async fn update(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
    ApiJson(request): ApiJson<PatchTeamRequest>,
) -> Result<Json<TeamResponse>, ApiError> {
    Ok(Json(TeamResponse { team: wire::team(app::teams::update(&state, &auth, id, request).await?) }))
}

/// Fleet's `POST /teams/{id}/agent_options`: the body is the options themselves.
async fn set_agent_options(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
    ApiJson(options): ApiJson<Value>,
) -> Result<Json<TeamResponse>, ApiError> {
    Ok(Json(TeamResponse { team: wire::team(app::teams::set_agent_options(&state, &auth, id, options).await?) }))
}

async fn delete(State(state): State<SharedState>, auth: AuthUser, PathId(id): PathId) -> Result<Json<Value>, ApiError> {
    app::teams::delete(&state, &auth, id).await?;
    Ok(Json(json!({})))
}

fn secrets_response(secrets: Vec<herd_store::StoredSecret>) -> SecretsResponse {
    SecretsResponse { secrets: secrets.into_iter().map(wire::secret).collect() }
}

async fn team_secrets(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
) -> Result<Json<SecretsResponse>, ApiError> {
    Ok(Json(secrets_response(app::teams::secrets(&state, &auth, Some(id)).await?)))
}

async fn replace_team_secrets(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
    ApiJson(request): ApiJson<SecretsInput>,
) -> Result<Json<SecretsResponse>, ApiError> {
    Ok(Json(secrets_response(app::teams::replace_secrets(&state, &auth, Some(id), &request.secrets, "").await?)))
}

async fn global_secrets(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<EnrollSecretSpecResponse>, ApiError> {
    Ok(Json(EnrollSecretSpecResponse { spec: secrets_response(app::teams::secrets(&state, &auth, None).await?) }))
}

async fn replace_global_secrets(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(request): ApiJson<EnrollSecretSpec>,
) -> Result<Json<Value>, ApiError> {
    app::teams::replace_secrets(&state, &auth, None, &request.spec.secrets, "spec.").await?;
    Ok(Json(json!({})))
}
