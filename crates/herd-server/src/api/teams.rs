//! Teams, their enroll secrets and agent options; the global enroll secrets.

use crate::agent_options;
use crate::app;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::{ApiJson, PathId};
use crate::state::{SharedState, now_ms};
use crate::wire;
use axum::Json;
use axum::extract::State;
use axum::routing::{get, post};
use herd_core::roles::{Action, Scope};
use herd_core::validate;
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
    let team = crate::access::team(&state, &auth, id, Action::AdministerTeam).await?;
    let name = match request.name {
        Some(name) => {
            validate::display_name(&name).map_err(|r| ApiError::invalid("name", format!("name {r}")))?;
            name
        }
        None => team.name,
    };
    let description = request.description.unwrap_or(team.description);
    let agent_options = match request.agent_options {
        Some(Some(options)) => {
            agent_options::validate("agent_options", &options)?;
            Some(options)
        }
        Some(None) => None,
        None => team.agent_options,
    };
    let webhook_settings = match request.webhook_settings {
        Some(settings) => {
            crate::webhooks::check_settings(
                &state.outbound,
                "webhook_settings.failing_policies_webhook",
                &settings.failing_policies_webhook,
            )?;
            // Fleet's rule: a team webhook covers the team's own policies.
            for policy_id in &settings.failing_policies_webhook.policy_ids {
                let policy = state.store.get_policy(*policy_id).await?;
                if policy.is_none_or(|p| p.team_id != Some(id)) {
                    return Err(ApiError::invalid(
                        "webhook_settings.failing_policies_webhook.policy_ids",
                        format!("policy {policy_id} is not a policy of this team"),
                    ));
                }
            }
            Some(serde_json::to_value(settings).map_err(|e| ApiError::Internal(e.into()))?)
        }
        None => team.webhook_settings,
    };
    state
        .store
        .update_team(id, &name, &description, agent_options.as_ref(), webhook_settings.as_ref(), now_ms())
        .await?;
    app::teams::reload_settings(&state).await?;
    Ok(Json(TeamResponse { team: wire::team(app::teams::team_or_404(&state, id).await?) }))
}

/// Fleet's `POST /teams/{id}/agent_options`: the body is the options themselves.
async fn set_agent_options(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
    ApiJson(options): ApiJson<Value>,
) -> Result<Json<TeamResponse>, ApiError> {
    let team = crate::access::team(&state, &auth, id, Action::AdministerTeam).await?;
    agent_options::validate("agent_options", &options)?;
    state
        .store
        .update_team(id, &team.name, &team.description, Some(&options), team.webhook_settings.as_ref(), now_ms())
        .await?;
    app::teams::reload_settings(&state).await?;
    Ok(Json(TeamResponse { team: wire::team(app::teams::team_or_404(&state, id).await?) }))
}

async fn delete(State(state): State<SharedState>, auth: AuthUser, PathId(id): PathId) -> Result<Json<Value>, ApiError> {
    let team = crate::access::team(&state, &auth, id, Action::AdministerServer).await?;
    let moved = state.store.delete_team(id, now_ms()).await?.ok_or(ApiError::NotFound("team"))?;
    crate::activity::record(&state, Some(&auth), "deleted_team", json!({"team_id": id, "team_name": team.name})).await;
    for host in moved {
        state.hosts.evict(host);
    }
    app::teams::reload_settings(&state).await?;
    Ok(Json(json!({})))
}

async fn team_secrets(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
) -> Result<Json<SecretsResponse>, ApiError> {
    crate::access::team(&state, &auth, id, Action::Write).await?;
    let secrets = state.store.enroll_secrets(Some(id)).await?;
    Ok(Json(SecretsResponse { secrets: secrets.into_iter().map(wire::secret).collect() }))
}

async fn replace_team_secrets(
    State(state): State<SharedState>,
    auth: AuthUser,
    PathId(id): PathId,
    ApiJson(request): ApiJson<SecretsInput>,
) -> Result<Json<SecretsResponse>, ApiError> {
    crate::access::team(&state, &auth, id, Action::Write).await?;
    let secrets = app::teams::validated_secrets(&request.secrets)?;
    state.store.replace_enroll_secrets(Some(id), &secrets, now_ms()).await?;
    app::teams::reload_settings(&state).await?;
    let secrets = state.store.enroll_secrets(Some(id)).await?;
    Ok(Json(SecretsResponse { secrets: secrets.into_iter().map(wire::secret).collect() }))
}

async fn global_secrets(
    State(state): State<SharedState>,
    auth: AuthUser,
) -> Result<Json<EnrollSecretSpecResponse>, ApiError> {
    auth.require(Action::Write, Scope::Global)?;
    let secrets = state.store.enroll_secrets(None).await?;
    Ok(Json(EnrollSecretSpecResponse {
        spec: SecretsResponse { secrets: secrets.into_iter().map(wire::secret).collect() },
    }))
}

async fn replace_global_secrets(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(request): ApiJson<EnrollSecretSpec>,
) -> Result<Json<Value>, ApiError> {
    auth.require(Action::Write, Scope::Global)?;
    let secrets = app::teams::validated_secrets(&request.spec.secrets).map_err(|e| match e {
        ApiError::Validation { field, reason } => ApiError::Validation { field: format!("spec.{field}"), reason },
        other => other,
    })?;
    state.store.replace_enroll_secrets(None, &secrets, now_ms()).await?;
    app::teams::reload_settings(&state).await?;
    Ok(Json(json!({})))
}
