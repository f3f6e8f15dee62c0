//! Policies: the list with live counts (for all hosts or one team's), the form that creates or edits one (with
//! its pass rate by day), and deleting one.

use super::dashboard::DayRow;
use super::forms::{lenient, present, team_choice, ticked_yes};
use super::layout::{Frame, page_or_error, render};
use super::shared::{Choice, readable_teams, team_label};
use super::{ConsoleUser, error_page};
use crate::error::ApiError;
use crate::state::{SharedState, now_ms};
use crate::wire::rfc3339;
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use herd_core::roles::{Action, Scope};
use herd_proto::fleet::PolicyInput;
use herd_store::PolicyRecord;
use serde::Deserialize;

// ---------------------------------------------------------------------------------------------------------------
// The list

#[derive(Template)]
#[template(path = "console/policies.html")]
struct PoliciesPage<'a> {
    frame: Frame<'a>,
    teams: Vec<Choice>,
    /// Whose hosts the counts are for: "All hosts" or a team's name.
    counts_for: String,
    rows: Vec<PolicyRow>,
}

struct PolicyRow {
    policy: PolicyRecord,
    team: String,
    automation: String,
    /// The share of answering hosts that pass, in percent, and the green part's width in the 80-unit bar.
    bar: Option<(f64, f64)>,
}

#[derive(Deserialize)]
pub struct PoliciesQuery {
    /// The team whose hosts the counts are for (none: all hosts).
    #[serde(default, deserialize_with = "team_choice")]
    team_id: Option<i64>,
}

pub async fn list(State(state): State<SharedState>, user: ConsoleUser, Query(query): Query<PoliciesQuery>) -> Response {
    page_or_error(policies_page(&state, &user, query.team_id).await)
}

/// A policy's automation as the list shows it.
fn automation(policy: &PolicyRecord) -> String {
    match (&policy.script_name, &policy.webhook_url) {
        (Some(s), _) if policy.deferral.is_some() => format!("{s} (deferrable)"),
        (Some(s), _) => s.clone(),
        (None, Some(_)) => "webhook".into(),
        _ => "—".into(),
    }
}

/// The pass bar's figures: (percent passing, width of the passing part out of 80); None when none answered.
fn pass_bar(passing: i64, failing: i64) -> Option<(f64, f64)> {
    let total = passing + failing;
    (total != 0).then(|| (passing as f64 * 100.0 / total as f64, 80.0 * passing as f64 / total as f64))
}

async fn policies_page(state: &SharedState, user: &ConsoleUser, team: Option<i64>) -> Result<Response, ApiError> {
    let teams = readable_teams(state, user).await?;
    // Counts over all hosts, or one team's hosts (global policies' counts within that team).
    let list = match team {
        None => state.store.all_policies().await?,
        Some(t) => {
            crate::access::scope(state, &user.auth, Some(t), Action::Read).await?;
            let mut both = state.store.global_policies_for_team(t).await?;
            both.extend(state.store.list_policies(Some(t)).await?);
            both
        }
    };
    let rows = list
        .into_iter()
        .filter(|p| user.auth.actor.may(Action::Read, Scope::of_team(p.team_id)))
        .map(|policy| PolicyRow {
            team: policy.team_id.map_or_else(|| "All teams".into(), |t| team_label(&teams, Some(t))),
            automation: automation(&policy),
            bar: pass_bar(policy.passing_host_count, policy.failing_host_count),
            policy,
        })
        .collect();
    let page = PoliciesPage {
        frame: Frame::new(user, "/console/policies", "Policies"),
        teams: Choice::teams(&teams, |id| Some(id) == team),
        counts_for: team_label(&teams, team),
        rows,
    };
    Ok(render(&page))
}

// ---------------------------------------------------------------------------------------------------------------
// The form

#[derive(Template)]
#[template(path = "console/policy_form.html")]
struct PolicyFormPage<'a> {
    frame: Frame<'a>,
    /// The policy edited (None: a new one).
    existing: Option<PolicyRecord>,
    /// What the fields show: the policy edited, or empty.
    values: FormValues,
    /// Where the form posts.
    action: String,
    /// For a new policy: the teams it may go to (the global set first).
    teams: Vec<Choice>,
    scripts: Vec<Choice>,
    /// The user may delete it.
    may_delete: bool,
    /// Its pass rate by day, newest first (an existing policy only).
    days: Vec<DayRow>,
    /// Every label's name, offered by the scope fields.
    label_names: Vec<String>,
}

/// The form's fields as the policy edited has them (all empty for a new one).
#[derive(Default)]
struct FormValues {
    name: String,
    query: String,
    description: String,
    resolution: String,
    platform: String,
    interval: String,
    webhook_url: String,
    deferral: String,
    critical: bool,
    /// The label scope: label names, comma-separated.
    labels_include_any: String,
    labels_include_all: String,
    labels_exclude_any: String,
}

impl FormValues {
    fn of(policy: &PolicyRecord) -> Self {
        FormValues {
            name: policy.name.clone(),
            query: policy.query.clone(),
            description: policy.description.clone(),
            resolution: policy.resolution.clone(),
            platform: policy.platform.clone(),
            interval: policy.interval_seconds.map(|i| i.to_string()).unwrap_or_default(),
            webhook_url: policy.webhook_url.clone().unwrap_or_default(),
            deferral: policy.deferral.clone().unwrap_or_default(),
            critical: policy.critical,
            labels_include_any: names(&policy.labels.include_any, &policy.label_names),
            labels_include_all: names(&policy.labels.include_all, &policy.label_names),
            labels_exclude_any: names(&policy.labels.exclude_any, &policy.label_names),
        }
    }
}

/// A scope list as the form shows it: label names, comma-separated.
fn names(ids: &[i64], names: &std::collections::BTreeMap<i64, String>) -> String {
    ids.iter().filter_map(|id| names.get(id).map(String::as_str)).collect::<Vec<_>>().join(", ")
}

/// A scope field as posted: label names, comma-separated (empty: none).
fn name_list(text: &str) -> Option<Vec<String>> {
    Some(text.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string).collect())
}

pub async fn form(State(state): State<SharedState>, user: ConsoleUser, id: Option<Path<String>>) -> Response {
    page_or_error(policy_form_page(&state, &user, id.map(|Path(id)| id)).await)
}

async fn policy_form_page(state: &SharedState, user: &ConsoleUser, id: Option<String>) -> Result<Response, ApiError> {
    let existing = match id {
        Some(id) => {
            let id: i64 = id.parse().map_err(|_| ApiError::NotFound("policy"))?;
            let mut policy = crate::access::policy(state, &user.auth, id, Action::Read).await?;
            // Its webhook URL (often carrying a token) only for those who may change it.
            if !user.auth.actor.may(Action::Write, Scope::of_team(policy.team_id)) && policy.webhook_url.is_some() {
                policy.webhook_url = Some(crate::app::config::WITHHELD.to_string());
            }
            Some(policy)
        }
        None => None,
    };
    let teams = readable_teams(state, user).await?;
    let team_id = existing.as_ref().and_then(|p| p.team_id);
    let scripts = state.store.list_scripts(team_id).await?;
    let chosen_script = existing.as_ref().and_then(|p| p.script_id);
    let days = match &existing {
        Some(p) => {
            let from = rfc3339(now_ms() - 29 * herd_core::DAY_MS)[..10].to_string();
            let history = state.store.compliance_history(&from).await?;
            history.iter().filter(|d| d.policy_id == p.id).rev().map(DayRow::new).collect()
        }
        None => Vec::new(),
    };
    let page = PolicyFormPage {
        frame: Frame::new(
            user,
            "/console/policies",
            existing.as_ref().map_or_else(|| "New policy".to_string(), |p| p.name.clone()),
        ),
        action: existing
            .as_ref()
            .map_or_else(|| "/console/policies/new".to_string(), |p| format!("/console/policies/{}", p.id)),
        teams: std::iter::once(Choice::new(0, "All teams (global)", false))
            .chain(Choice::teams(&teams, |_| false))
            .collect(),
        scripts: std::iter::once(Choice::new(0, "None", false))
            .chain(scripts.iter().map(|s| Choice::new(s.id, &s.name, chosen_script == Some(s.id))))
            .collect(),
        may_delete: existing.as_ref().is_some_and(|p| user.auth.actor.may(Action::Write, Scope::of_team(p.team_id))),
        days,
        label_names: crate::app::labels::list(state, &user.auth).await?.into_iter().map(|l| l.name).collect(),
        values: existing.as_ref().map(FormValues::of).unwrap_or_default(),
        existing,
    };
    Ok(render(&page))
}

#[derive(Deserialize)]
pub struct PolicyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    query: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    resolution: String,
    #[serde(default)]
    platform: String,
    #[serde(default, deserialize_with = "present")]
    critical: bool,
    /// Seconds; empty for the default (checked in `save_policy`, which names the field).
    #[serde(default)]
    interval: String,
    /// A new policy's team (none: global).
    #[serde(default, deserialize_with = "team_choice")]
    team_id: Option<i64>,
    /// 0 or absent: no script.
    #[serde(default, deserialize_with = "lenient")]
    script_id: Option<i64>,
    #[serde(default)]
    webhook_url: String,
    /// Deferral settings as JSON; empty for none.
    #[serde(default)]
    deferral: String,
    /// The label scope: label names, comma-separated.
    #[serde(default)]
    labels_include_any: String,
    #[serde(default)]
    labels_include_all: String,
    #[serde(default)]
    labels_exclude_any: String,
}

pub async fn save(
    State(state): State<SharedState>,
    user: ConsoleUser,
    id: Option<Path<String>>,
    axum::Form(form): axum::Form<PolicyForm>,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form.csrf) {
        return refused;
    }
    match save_policy(&state, &user, id.map(|Path(id)| id), form).await {
        Ok(id) => Redirect::to(&format!("/console/policies/{id}")).into_response(),
        Err(e) => error_page(&e),
    }
}

async fn save_policy(
    state: &SharedState,
    user: &ConsoleUser,
    id: Option<String>,
    form: PolicyForm,
) -> Result<i64, ApiError> {
    let interval = match form.interval.trim() {
        "" => None,
        n => Some(n.parse::<i64>().map_err(|_| ApiError::invalid("interval", "a number of seconds"))?),
    };
    let deferral = match form.deferral.trim() {
        "" => None,
        json => Some(
            serde_json::from_str(json)
                .map_err(|e| ApiError::invalid("deferral", format!("not valid settings: {e}")))?,
        ),
    };
    let webhook = Some(form.webhook_url.trim().to_string()).filter(|w| !w.is_empty());
    let input = PolicyInput {
        name: Some(form.name),
        query: Some(form.query),
        description: Some(form.description),
        resolution: Some(form.resolution),
        platform: Some(form.platform),
        critical: Some(form.critical),
        interval: Some(interval),
        team_id: None,
        script_id: Some(Some(form.script_id.unwrap_or(0))),
        webhook_url: Some(webhook),
        continuous_automation: None,
        deferral: Some(deferral),
        // The form's scope pickers (absent on forms that predate them: keep the policy's).
        labels_include_any: name_list(&form.labels_include_any),
        labels_include_all: name_list(&form.labels_include_all),
        labels_exclude_any: name_list(&form.labels_exclude_any),
    };
    match id {
        None => {
            let created = crate::app::policies::create(state, &user.auth, form.team_id, input).await?;
            Ok(created.id)
        }
        Some(id) => {
            let id: i64 = id.parse().map_err(|_| ApiError::NotFound("policy"))?;
            let current = crate::access::policy(state, &user.auth, id, Action::Read).await?;
            let _updated = crate::app::policies::patch(state, &user.auth, current.team_id, id, input).await?;
            Ok(id)
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Deleting (the REST API's own function)

#[derive(Deserialize)]
pub struct DeletePolicyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default, deserialize_with = "ticked_yes")]
    confirm: bool,
}

pub async fn delete(
    State(state): State<SharedState>,
    user: ConsoleUser,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<DeletePolicyForm>,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form.csrf) {
        return refused;
    }
    let result = async {
        let id: i64 = id.parse().map_err(|_| ApiError::NotFound("policy"))?;
        if !form.confirm {
            return Err(ApiError::invalid("confirm", "tick the box to confirm"));
        }
        let policy = crate::access::policy(&state, &user.auth, id, Action::Read).await?;
        crate::app::policies::delete(&state, &user.auth, policy.team_id, vec![id]).await.map(|_| ())
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/console/policies").into_response(),
        Err(e) => error_page(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pass_bars() {
        for (passing, failing, bar) in
            [(0, 0, None), (1, 0, Some((100.0, 80.0))), (1, 3, Some((25.0, 20.0))), (0, 2, Some((0.0, 0.0)))]
        {
            assert_eq!(pass_bar(passing, failing), bar, "{passing}/{failing}");
        }
    }

    #[test]
    fn policy_forms_read_as_the_old_forms_did() {
        let form: PolicyForm =
            serde_urlencoded::from_str("name=n&query=q&team_id=0&script_id=x&critical=&interval=+60").unwrap();
        assert_eq!((form.name.as_str(), form.query.as_str()), ("n", "q"));
        assert_eq!((form.team_id, form.script_id, form.critical), (None, None, true));
        assert_eq!(form.interval, " 60");
        let bare: PolicyForm = serde_urlencoded::from_str("").unwrap();
        assert_eq!((bare.critical, bare.csrf.as_str(), bare.script_id), (false, "", None));
    }
}
