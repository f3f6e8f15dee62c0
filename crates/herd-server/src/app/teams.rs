//! Teams: creating them, their enroll secrets, reloading what the server derives from them.

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::secrets::random_token;
use crate::state::{SharedState, now_ms};
use herd_core::roles::{Action, Scope};
use herd_core::validate;
use herd_proto::fleet::{CreateTeamRequest, SecretInput};

pub fn validated_secrets(secrets: &[SecretInput]) -> Result<Vec<String>, ApiError> {
    let mut out: Vec<String> = Vec::with_capacity(secrets.len());
    for (i, input) in secrets.iter().enumerate() {
        validate::enroll_secret(&input.secret).map_err(|r| ApiError::invalid(format!("secrets[{i}].secret"), r))?;
        if out.contains(&input.secret) {
            return Err(ApiError::invalid(format!("secrets[{i}].secret"), "listed twice"));
        }
        out.push(input.secret.clone());
    }
    if out.len() > 50 {
        return Err(ApiError::invalid("secrets", "at most 50 secrets per team"));
    }
    Ok(out)
}

pub async fn reload_settings(state: &SharedState) -> Result<(), ApiError> {
    state.settings.reload(&state.store).await.map_err(ApiError::from)
}

pub async fn team_or_404(state: &SharedState, id: i64) -> Result<herd_store::TeamRecord, ApiError> {
    state.store.get_team(id).await?.ok_or(ApiError::NotFound("team"))
}

/// A global admin creates a team (with a secret of its own unless given some), recorded as `created_team`.
pub async fn create(
    state: &SharedState,
    auth: &AuthUser,
    request: CreateTeamRequest,
) -> Result<herd_store::TeamRecord, ApiError> {
    auth.require(Action::AdministerServer, Scope::Global)?;
    validate::display_name(&request.name).map_err(|r| ApiError::invalid("name", format!("name {r}")))?;
    let description = request.description.unwrap_or_default();
    let secrets = match request.secrets {
        Some(secrets) => validated_secrets(&secrets)?,
        // Like Fleet, a new team gets a secret of its own, so its hosts can enroll right away.
        None => vec![random_token(24)],
    };
    let id = state.store.create_team(&request.name, &description, &secrets, now_ms()).await?;
    reload_settings(state).await?;
    let details = serde_json::json!({"team_id": id, "team_name": request.name.trim()});
    crate::activity::record(state, Some(auth), "created_team", details).await;
    team_or_404(state, id).await
}
