//! Policies: creating, changing and deleting them (checked, saved, settings reloaded, recorded), apply-by-name
//! specs, resetting automations, and the view of a policy an actor may see. Policy SQL is only stored and
//! handed to hosts; it never runs on the server.

use super::AfterCommit;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::outbound::OutboundPolicy;
use crate::state::{SharedState, now_ms};
use crate::wire;
use herd_core::policy::PolicyPlatforms;
use herd_core::roles::{Action, Scope};
use herd_proto::fleet::{PolicyInput, PolicySpec};
use herd_store::{PolicyAuthor, PolicyFields, PolicyRecord, StoreError};
use serde_json::json;

/// Longest policy query accepted (osquery's own limit on a distributed query is far above any real policy).
pub const MAX_QUERY_LEN: usize = 64 * 1024;

/// The first of `ids` that is not among `found`.
fn first_missing(ids: &[i64], found: &[PolicyRecord]) -> Option<i64> {
    let found: std::collections::HashSet<i64> = found.iter().map(|p| p.id).collect();
    ids.iter().copied().find(|id| !found.contains(id))
}

/// Checks a complete set of policy fields, naming the bad one.
fn validate(fields: &PolicyFields) -> Result<(), ApiError> {
    herd_core::validate::display_name(&fields.name).map_err(|r| ApiError::invalid("name", format!("name {r}")))?;
    if fields.query.trim().is_empty() {
        return Err(ApiError::invalid("query", "query must not be empty"));
    }
    if fields.query.len() > MAX_QUERY_LEN {
        return Err(ApiError::invalid("query", format!("query must be at most {MAX_QUERY_LEN} bytes")));
    }
    if fields.description.len() > MAX_QUERY_LEN || fields.resolution.len() > MAX_QUERY_LEN {
        return Err(ApiError::invalid("description", "description and resolution must be at most 64 KiB"));
    }
    if let Some(interval) = fields.interval_seconds
        && !(1..=7 * 86_400).contains(&interval)
    {
        return Err(ApiError::invalid("interval", "must be between 1 and 604800 seconds, or null"));
    }
    if fields.script_id.is_none() && deferral_enabled(fields.deferral.as_deref()) {
        return Err(ApiError::invalid("deferral", "users can only defer a script: set script_id too"));
    }
    Ok(())
}

/// Whether stored settings make runs wait on users (`enabled` defaults to true).
/// Whether the (already checked) document asks for deferral: read the one way every part of herd reads it.
fn deferral_enabled(text: Option<&str>) -> bool {
    herd_core::deferral::read_stored(text).is_some_and(|settings| settings.enabled)
}

fn canonical_platform(text: &str) -> Result<String, ApiError> {
    PolicyPlatforms::parse(text).map(|p| p.to_text()).map_err(|r| ApiError::invalid("platform", r))
}

/// The fields of a new policy, or of an existing one with `input` applied. A webhook URL is checked against
/// the outbound policy when it is set (one kept from `base` is checked again at each delivery).
fn fields_from(
    outbound: &OutboundPolicy,
    input: PolicyInput,
    base: Option<&PolicyRecord>,
    labels: herd_core::labels::LabelScope,
) -> Result<PolicyFields, ApiError> {
    let platform = match input.platform {
        Some(p) => canonical_platform(&p)?,
        None => base.map(|b| b.platform.clone()).unwrap_or_default(),
    };
    let fields = PolicyFields {
        name: input.name.or_else(|| base.map(|b| b.name.clone())).unwrap_or_default().trim().to_string(),
        query: input.query.or_else(|| base.map(|b| b.query.clone())).unwrap_or_default(),
        description: input.description.or_else(|| base.map(|b| b.description.clone())).unwrap_or_default(),
        resolution: input.resolution.or_else(|| base.map(|b| b.resolution.clone())).unwrap_or_default(),
        platform,
        critical: input.critical.or(base.map(|b| b.critical)).unwrap_or(false),
        interval_seconds: match input.interval {
            Some(interval) => interval,
            None => base.and_then(|b| b.interval_seconds),
        },
        script_id: match input.script_id {
            Some(None | Some(0)) => None,
            Some(Some(id)) => Some(id),
            None => base.and_then(|b| b.script_id),
        },
        webhook_url: match input.webhook_url {
            Some(url) => match url.filter(|u| !u.trim().is_empty()).map(|u| u.trim().to_string()) {
                Some(url) => {
                    crate::webhooks::check_destination(outbound, &url)
                        .map_err(|reason| ApiError::invalid("webhook_url", reason))?;
                    Some(url)
                }
                None => None,
            },
            None => base.and_then(|b| b.webhook_url.clone()),
        },
        continuous_automation: input.continuous_automation.or(base.map(|b| b.continuous_automation)).unwrap_or(false),
        deferral: match input.deferral {
            // Checked when set (a saved absolute deadline may pass later without making other edits fail).
            Some(Some(settings)) => {
                settings.check(now_ms()).map_err(|(field, reason)| ApiError::invalid(field, reason))?;
                Some(serde_json::to_string(&settings).expect("settings serialize"))
            }
            Some(None) => None,
            None => base.and_then(|b| b.deferral.clone()),
        },
        labels,
    };
    validate(&fields)?;
    Ok(fields)
}

/// A duplicate name is a mistake in the `name` field (422), not a conflict with some other resource.
fn name_taken(err: StoreError) -> ApiError {
    match err {
        StoreError::Conflict(reason) => ApiError::invalid("name", reason),
        StoreError::NotFound("team") => ApiError::invalid("team_id", "team does not exist"),
        other => other.into(),
    }
}

/// A policy as `auth` may see it: its own webhook URL (which often carries a token) only for those who may
/// change the policy, masked for the others.
pub fn view(auth: &AuthUser, record: PolicyRecord) -> herd_proto::fleet::Policy {
    let writable = auth.actor.may(Action::Write, Scope::of_team(record.team_id));
    let mut view = wire::policy(record);
    if !writable && view.webhook_url.as_deref().is_some_and(|u| !u.is_empty()) {
        view.webhook_url = Some(crate::app::config::WITHHELD.to_string());
    }
    view
}

fn author(auth: &AuthUser) -> PolicyAuthor {
    PolicyAuthor { id: auth.user.id, name: auth.user.name.clone(), email: auth.user.email.clone() }
}

/// A policy's script must exist in the policy's scope (a team's script for a team policy, a global one for a
/// global policy).
async fn check_script(
    state: &SharedState,
    auth: &AuthUser,
    team_id: Option<i64>,
    fields: &PolicyFields,
) -> Result<(), ApiError> {
    if let Some(id) = fields.script_id {
        let script = match crate::access::script(state, auth, id, Action::Read).await {
            Ok(script) => Some(script),
            Err(ApiError::NotFound(_)) => None,
            Err(other) => return Err(other),
        };
        if script.is_none_or(|s| s.team_id != team_id) {
            return Err(ApiError::invalid("script_id", "no such script in the policy's team"));
        }
    }
    Ok(())
}

/// The label scope an input names (by label names), over `base`'s where a list is absent.
async fn scope_of(
    state: &SharedState,
    input: &mut PolicyInput,
    base: Option<&PolicyRecord>,
) -> Result<herd_core::labels::LabelScope, ApiError> {
    super::labels::scope_from_names(
        state,
        input.labels_include_any.take(),
        input.labels_include_all.take(),
        input.labels_exclude_any.take(),
        base.map(|b| &b.labels),
    )
    .await
}

pub async fn create(
    state: &SharedState,
    auth: &AuthUser,
    team_id: Option<i64>,
    mut input: PolicyInput,
) -> Result<PolicyRecord, ApiError> {
    crate::access::scope(state, auth, team_id, Action::Write).await?;
    if input.team_id.is_some_and(|t| Some(t) != team_id && !(t == 0 && team_id.is_none())) {
        return Err(ApiError::invalid("team_id", "does not match the team of the path"));
    }
    if input.name.as_deref().is_none_or(|n| n.trim().is_empty()) {
        return Err(ApiError::invalid("name", "name must not be empty"));
    }
    if input.query.as_deref().is_none_or(|q| q.trim().is_empty()) {
        return Err(ApiError::invalid("query", "query must not be empty"));
    }
    let labels = scope_of(state, &mut input, None).await?;
    let fields = fields_from(&state.outbound, input, None, labels)?;
    check_script(state, auth, team_id, &fields).await?;
    let id = state.store.create_policy(&fields, team_id, Some(&author(auth)), now_ms()).await.map_err(name_taken)?;
    let details = json!({"policy_id": id, "policy_name": fields.name});
    AfterCommit::new().reload_settings().record("created_policy", details).apply(state, Some(auth)).await?;
    let policy = state.store.get_policy(id).await?.ok_or(ApiError::NotFound("policy"))?;
    Ok(policy)
}

pub async fn patch(
    state: &SharedState,
    auth: &AuthUser,
    team_id: Option<i64>,
    id: i64,
    mut input: PolicyInput,
) -> Result<PolicyRecord, ApiError> {
    crate::access::scope(state, auth, team_id, Action::Write).await?;
    let current = crate::access::policy_in(state, auth, team_id, id, Action::Write).await?;
    if input.team_id.is_some_and(|t| Some(t) != team_id) {
        return Err(ApiError::invalid("team_id", "a policy cannot move between teams"));
    }
    let labels = scope_of(state, &mut input, Some(&current)).await?;
    let fields = fields_from(&state.outbound, input, Some(&current), labels)?;
    check_script(state, auth, team_id, &fields).await?;
    let policy = state.store.update_policy(id, &fields, now_ms()).await.map_err(name_taken)?;
    let details = json!({"policy_id": id, "policy_name": policy.name});
    AfterCommit::new().reload_settings().record("edited_policy", details).apply(state, Some(auth)).await?;
    Ok(policy)
}

pub async fn delete(
    state: &SharedState,
    auth: &AuthUser,
    team_id: Option<i64>,
    ids: Vec<i64>,
) -> Result<u64, ApiError> {
    crate::access::scope(state, auth, team_id, Action::Write).await?;
    // Every id must be a policy of this scope: a typo deletes nothing rather than something else. All are
    // read at once, whatever the number of ids.
    let doomed: Vec<PolicyRecord> =
        state.store.get_policies(&ids).await?.into_iter().filter(|p| p.team_id == team_id).collect();
    if let Some(missing) = first_missing(&ids, &doomed) {
        return Err(ApiError::invalid("ids", format!("policy {missing} does not exist in this scope")));
    }
    let ids: Vec<i64> = doomed.iter().map(|p| p.id).collect();
    let deleted = state.store.delete_policies(&ids).await?;
    let mut effects = AfterCommit::new().reload_settings();
    for policy in doomed {
        effects = effects.record("deleted_policy", json!({"policy_id": policy.id, "policy_name": policy.name}));
    }
    effects.apply(state, Some(auth)).await?;
    Ok(deleted)
}

/// Fleet's `POST /automations/reset`: hosts failing these policies (or any policy of these teams) count as
/// newly failing at their next answer, so webhooks fire and scripts run again.
pub async fn reset_automations(
    state: &SharedState,
    auth: &AuthUser,
    policy_ids: &[i64],
    team_ids: &[i64],
) -> Result<(), ApiError> {
    // Every policy read at once, whatever the number of ids (one query, the ids one parameter); each goes
    // through the same scope check as a lookup by id (one the user cannot read is as missing).
    let named = state.store.get_policies(policy_ids).await?;
    let mut ids = Vec::with_capacity(named.len());
    let mut reachable = Vec::with_capacity(named.len());
    for policy in named {
        let policy = crate::access::in_reach(auth, Some(policy), Action::Write).map_err(|e| match e {
            ApiError::NotFound(_) => ApiError::invalid("policy_ids", "no such policy"),
            other => other,
        })?;
        ids.push(policy.id);
        reachable.push(policy);
    }
    if let Some(missing) = first_missing(policy_ids, &reachable) {
        return Err(ApiError::invalid("policy_ids", format!("no policy {missing}")));
    }
    let teams: std::collections::BTreeSet<i64> = team_ids.iter().copied().collect();
    for team in &teams {
        crate::access::team(state, auth, *team, Action::Write).await?;
        ids.extend(state.store.list_policies(Some(*team)).await?.into_iter().map(|p| p.id));
    }
    state.store.reset_automations(&ids, now_ms()).await?;
    Ok(())
}

/// What applying one spec did (or, in a dry run, would do).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpecOutcome {
    Created,
    Updated,
    Unchanged,
}

/// `POST /spec/policies`: creates or updates policies by name within their scope (`team` names a team,
/// "" = global). Everything is validated before anything is written; unchanged policies are left alone, and
/// when nothing changed nothing is recorded (applying the same files again leaves no trace). A dry run
/// validates and answers the outcomes without writing. Returns each spec's name and outcome, in order.
pub async fn apply_specs(
    state: &SharedState,
    auth: &AuthUser,
    specs: Vec<PolicySpec>,
    dry_run: bool,
) -> Result<Vec<(String, SpecOutcome)>, ApiError> {
    let mut planned = Vec::with_capacity(specs.len());
    let mut seen = std::collections::HashSet::new();
    for (i, spec) in specs.into_iter().enumerate() {
        let at = |field: &str| format!("specs[{i}].{field}");
        // A team the user cannot read is "no team named" exactly like a missing one (no probing names).
        let team_id = match spec.team.trim() {
            "" => {
                crate::access::scope(state, auth, None, Action::Write).await?;
                None
            }
            name => Some(
                crate::access::team_by_name(state, auth, name, Action::Write)
                    .await
                    .map_err(|e| match e {
                        ApiError::NotFound(_) => ApiError::invalid(at("team"), format!("no team named {name:?}")),
                        other => other,
                    })?
                    .id,
            ),
        };
        // The script automation by name, in the policy's scope ("" removes it; absent keeps the policy's).
        let script_id = match spec.script.as_deref().map(str::trim) {
            None => None,
            Some("") => Some(None),
            Some(name) => match crate::access::script_by_name(state, auth, team_id, name, Action::Read).await {
                Ok(script) => Some(Some(script.id)),
                Err(ApiError::NotFound(_)) => {
                    return Err(ApiError::invalid(at("script"), format!("no script named {name:?} in this scope")));
                }
                Err(other) => return Err(other),
            },
        };
        let existing = state.store.policy_by_name(team_id, spec.name.trim()).await?;
        // The file is the truth: a spec without label lists has no label scope.
        let labels = super::labels::scope_from_names(
            state,
            Some(spec.labels_include_any.unwrap_or_default()),
            Some(spec.labels_include_all.unwrap_or_default()),
            Some(spec.labels_exclude_any.unwrap_or_default()),
            None,
        )
        .await
        .map_err(|e| match e {
            ApiError::Validation { field, reason } => ApiError::Validation { field: at(&field), reason },
            other => other,
        })?;
        let input = PolicyInput {
            name: Some(spec.name),
            query: Some(spec.query),
            description: Some(spec.description),
            resolution: Some(spec.resolution),
            platform: Some(spec.platform),
            critical: Some(spec.critical),
            interval: Some(spec.interval),
            team_id: None,
            script_id,
            webhook_url: None,
            continuous_automation: None,
            deferral: spec.deferral.map(Some),
            labels_include_any: None,
            labels_include_all: None,
            labels_exclude_any: None,
        };
        // Specs name no webhook and no continuous mode: an existing policy keeps its own.
        let fields = fields_from(&state.outbound, input, existing.as_ref(), labels).map_err(|e| match e {
            ApiError::Validation { field, reason } => ApiError::Validation { field: at(&field), reason },
            other => other,
        })?;
        if !seen.insert((team_id, fields.name.clone())) {
            return Err(ApiError::invalid(at("name"), "listed twice in this scope"));
        }
        planned.push((team_id, fields));
    }
    let now = now_ms();
    let mut outcomes = Vec::new();
    for (team_id, fields) in planned {
        let outcome = match state.store.policy_by_name(team_id, &fields.name).await? {
            Some(existing) => {
                let unchanged = existing.query == fields.query
                    && existing.script_id == fields.script_id
                    && existing.deferral == fields.deferral
                    && existing.description == fields.description
                    && existing.resolution == fields.resolution
                    && existing.platform == fields.platform
                    && existing.critical == fields.critical
                    && existing.interval_seconds == fields.interval_seconds
                    && existing.labels == fields.labels;
                if unchanged {
                    SpecOutcome::Unchanged
                } else {
                    if !dry_run {
                        state.store.update_policy(existing.id, &fields, now).await.map_err(name_taken)?;
                    }
                    SpecOutcome::Updated
                }
            }
            None => {
                if !dry_run {
                    state.store.create_policy(&fields, team_id, Some(&author(auth)), now).await.map_err(name_taken)?;
                }
                SpecOutcome::Created
            }
        };
        outcomes.push((fields.name, outcome));
    }
    if !dry_run && outcomes.iter().any(|(_, outcome)| *outcome != SpecOutcome::Unchanged) {
        let names: Vec<&str> = outcomes.iter().map(|(name, _)| name.as_str()).collect();
        let effects = AfterCommit::new().reload_settings().record("applied_spec_policy", json!({"policies": names}));
        effects.apply(state, Some(auth)).await?;
    }
    Ok(outcomes)
}
