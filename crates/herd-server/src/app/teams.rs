//! Teams: creating them, their enroll secrets, reloading what the server derives from them.

use super::AfterCommit;
use crate::agent_options;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::secrets::random_token;
use crate::state::{SharedState, now_ms};
use herd_core::roles::{Action, Scope};
use herd_core::validate;
use herd_proto::fleet::{CreateTeamRequest, PatchTeamRequest, SecretInput};
use herd_store::StoredSecret;
use serde_json::{Value, json};

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
    let details = json!({"team_id": id, "team_name": request.name.trim()});
    AfterCommit::new().reload_settings().record("created_team", details).apply(state, Some(auth)).await?;
    team_or_404(state, id).await
}

/// A team admin edits the team's name, description, agent options or failing-policies webhook (Fleet's
/// `PATCH /teams/{id}`: absent fields keep their value; `agent_options: null` clears them).
pub async fn update(
    state: &SharedState,
    auth: &AuthUser,
    id: i64,
    request: PatchTeamRequest,
) -> Result<herd_store::TeamRecord, ApiError> {
    let team = crate::access::team(state, auth, id, Action::AdministerTeam).await?;
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
    AfterCommit::new().reload_settings().apply(state, Some(auth)).await?;
    team_or_404(state, id).await
}

/// Fleet's `POST /teams/{id}/agent_options`: replaces the team's agent options.
pub async fn set_agent_options(
    state: &SharedState,
    auth: &AuthUser,
    id: i64,
    options: Value,
) -> Result<herd_store::TeamRecord, ApiError> {
    let team = crate::access::team(state, auth, id, Action::AdministerTeam).await?;
    agent_options::validate("agent_options", &options)?;
    state
        .store
        .update_team(id, &team.name, &team.description, Some(&options), team.webhook_settings.as_ref(), now_ms())
        .await?;
    AfterCommit::new().reload_settings().apply(state, Some(auth)).await?;
    team_or_404(state, id).await
}

/// A global admin deletes a team; its hosts move to no team (their cached rows evicted), recorded as
/// `deleted_team`.
pub async fn delete(state: &SharedState, auth: &AuthUser, id: i64) -> Result<(), ApiError> {
    let team = crate::access::team(state, auth, id, Action::AdministerServer).await?;
    let moved = state.store.delete_team(id, now_ms()).await?.ok_or(ApiError::NotFound("team"))?;
    let details = json!({"team_id": id, "team_name": team.name});
    let effects = AfterCommit::new().evict(moved).reload_settings().record("deleted_team", details);
    Ok(effects.apply(state, Some(auth)).await?)
}

/// The enroll secrets of a team (None: the global ones), for those who may write there.
pub async fn secrets(state: &SharedState, auth: &AuthUser, team: Option<i64>) -> Result<Vec<StoredSecret>, ApiError> {
    match team {
        Some(id) => {
            crate::access::team(state, auth, id, Action::Write).await?;
        }
        None => auth.require(Action::Write, Scope::Global)?,
    }
    Ok(state.store.enroll_secrets(team).await?)
}

/// Replaces the enroll secrets of a team (None: the global ones); `field` prefixes the names of fields
/// refused (Fleet's global spec nests them under `spec`).
pub async fn replace_secrets(
    state: &SharedState,
    auth: &AuthUser,
    team: Option<i64>,
    given: &[SecretInput],
    field: &str,
) -> Result<Vec<StoredSecret>, ApiError> {
    match team {
        Some(id) => {
            crate::access::team(state, auth, id, Action::Write).await?;
        }
        None => auth.require(Action::Write, Scope::Global)?,
    }
    let secrets = validated_secrets(given).map_err(|e| match e {
        ApiError::Validation { field: inner, reason } => {
            ApiError::Validation { field: format!("{field}{inner}"), reason }
        }
        other => other,
    })?;
    state.store.replace_enroll_secrets(team, &secrets, now_ms()).await?;
    AfterCommit::new().reload_settings().apply(state, Some(auth)).await?;
    Ok(state.store.enroll_secrets(team).await?)
}

/// One team of Fleet's `kind: team` spec (`POST /spec/teams`, what `fleetctl apply` sends). Fleet's other team
/// settings are accepted only empty: herd has no such settings, and a spec that sets one is refused by name
/// rather than half-applied.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamSpec {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub agent_options: Option<Value>,
    #[serde(default)]
    pub secrets: Option<Vec<SecretInput>>,
    #[serde(default)]
    pub webhook_settings: Option<herd_proto::fleet::TeamWebhookSettings>,
    #[serde(default)]
    pub features: Option<Value>,
    #[serde(default)]
    pub mdm: Option<Value>,
    #[serde(default)]
    pub scripts: Option<Value>,
    #[serde(default)]
    pub software: Option<Value>,
    #[serde(default)]
    pub host_expiry_settings: Option<Value>,
    #[serde(default)]
    pub integrations: Option<Value>,
}

impl TeamSpec {
    /// Fleet's team settings herd does not have, each with what it is, when the spec gives a value.
    fn unsupported(&self) -> Option<(&'static str, &'static str)> {
        let set = |v: &Option<Value>| match v {
            None | Some(Value::Null) => false,
            Some(Value::Object(map)) => !map.is_empty(),
            Some(Value::Array(list)) => !list.is_empty(),
            Some(_) => true,
        };
        [
            (set(&self.features), "features", "team features (host users, software inventory) are not supported yet"),
            (
                set(&self.mdm),
                "mdm",
                "MDM settings are not supported; configuration profiles are at /configuration_profiles",
            ),
            (set(&self.scripts), "scripts", "team scripts in a spec are not supported yet; upload them at /scripts"),
            (set(&self.software), "software", "software installs are not supported yet"),
            (set(&self.host_expiry_settings), "host_expiry_settings", "host expiry is not supported yet"),
            (set(&self.integrations), "integrations", "integrations are not supported yet"),
        ]
        .into_iter()
        .find(|(given, _, _)| *given)
        .map(|(_, field, reason)| (field, reason))
    }
}

/// Fleet's `POST /spec/teams`: each spec creates its team or updates the team of that name (given fields
/// replace, absent ones keep their value). Every spec is checked before anything is written; `dry_run` stops
/// there. Records Fleet's `applied_spec_team`. Answers each team's id by name (for a dry run, the teams that
/// exist already).
pub async fn apply_specs(
    state: &SharedState,
    auth: &AuthUser,
    specs: Vec<TeamSpec>,
    dry_run: bool,
) -> Result<std::collections::BTreeMap<String, i64>, ApiError> {
    let existing = state.store.list_teams().await?;
    let mut plans = Vec::with_capacity(specs.len());
    for (i, spec) in specs.into_iter().enumerate() {
        let field = |name: &str| format!("specs[{i}].{name}");
        if let Some((name, reason)) = spec.unsupported() {
            return Err(ApiError::invalid(field(name), reason));
        }
        validate::display_name(&spec.name).map_err(|r| ApiError::invalid(field("name"), format!("name {r}")))?;
        let name = spec.name.trim().to_string();
        if plans.iter().any(|(_, n, _): &(Option<i64>, String, TeamSpec)| n == &name) {
            return Err(ApiError::invalid(field("name"), format!("team {name:?} is listed twice")));
        }
        let team = existing.iter().find(|t| t.name == name);
        match team {
            Some(team) => {
                crate::access::team(state, auth, team.id, Action::AdministerTeam).await?;
            }
            None => auth.require(Action::AdministerServer, Scope::Global)?,
        }
        if let Some(secrets) = &spec.secrets {
            validated_secrets(secrets).map_err(|e| match e {
                ApiError::Validation { field: inner, reason } => ApiError::invalid(field(&inner), reason),
                other => other,
            })?;
        }
        if let Some(options) = &spec.agent_options {
            agent_options::validate(&field("agent_options"), options)?;
        }
        if let Some(settings) = &spec.webhook_settings {
            let webhook = &settings.failing_policies_webhook;
            crate::webhooks::check_settings(
                &state.outbound,
                &field("webhook_settings.failing_policies_webhook"),
                webhook,
            )?;
            for policy_id in &webhook.policy_ids {
                let policy = state.store.get_policy(*policy_id).await?;
                if team.is_none() || policy.is_none_or(|p| p.team_id != team.map(|t| t.id)) {
                    return Err(ApiError::invalid(
                        field("webhook_settings.failing_policies_webhook.policy_ids"),
                        format!("policy {policy_id} is not a policy of this team"),
                    ));
                }
            }
        }
        plans.push((team.map(|t| t.id), name, spec));
    }
    let mut ids = std::collections::BTreeMap::new();
    if dry_run {
        for (id, name, _) in plans {
            if let Some(id) = id {
                ids.insert(name, id);
            }
        }
        return Ok(ids);
    }
    let now = now_ms();
    let mut applied = Vec::with_capacity(plans.len());
    for (id, name, spec) in plans {
        let secrets = spec.secrets.as_deref().map(validated_secrets).transpose()?;
        let id = match id {
            Some(id) => {
                if let Some(secrets) = &secrets {
                    state.store.replace_enroll_secrets(Some(id), secrets, now).await?;
                }
                id
            }
            None => {
                // Like `create`: a new team gets a secret of its own unless the spec gives some.
                let secrets = secrets.unwrap_or_else(|| vec![random_token(24)]);
                state.store.create_team(&name, spec.description.as_deref().unwrap_or(""), &secrets, now).await?
            }
        };
        let team = team_or_404(state, id).await?;
        let webhook_settings = match spec.webhook_settings {
            Some(settings) => Some(serde_json::to_value(settings).map_err(|e| ApiError::Internal(e.into()))?),
            None => team.webhook_settings,
        };
        let agent_options = spec.agent_options.or(team.agent_options);
        let description = spec.description.unwrap_or(team.description);
        state
            .store
            .update_team(id, &name, &description, agent_options.as_ref(), webhook_settings.as_ref(), now)
            .await?;
        applied.push(json!({"id": id, "name": name}));
        ids.insert(name, id);
    }
    let details = json!({"teams": applied});
    AfterCommit::new().reload_settings().record("applied_spec_team", details).apply(state, Some(auth)).await?;
    Ok(ids)
}
