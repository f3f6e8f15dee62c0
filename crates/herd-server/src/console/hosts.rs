//! Hosts: the filtered, sortable list, one host's page (vitals, actions, policies, script runs, profiles,
//! deferrals, migration, activity) and its actions (refetch, run a script, move, delete).

use super::forms::{lenient, team_choice, ticked_yes};
use super::layout::{Frame, page_or_error, render};
use super::shared::{ActivityRow, Choice, readable_teams, time};
use super::{ConsoleUser, error_page};
use crate::error::ApiError;
use crate::html::url_component;
use crate::state::{SharedState, now_ms};
use askama::Template;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use herd_core::roles::{Action, Scope};
use herd_proto::fleet::{Host, HostDeferral, HostPolicy, HostProfile};
use serde::Deserialize;
use std::collections::HashMap;

// ---------------------------------------------------------------------------------------------------------------
// The list

#[derive(Template)]
#[template(path = "console/hosts.html")]
struct HostsPage<'a> {
    frame: Frame<'a>,
    /// The search box's text.
    query: String,
    teams: Vec<Choice>,
    statuses: Vec<Choice>,
    policies: Vec<Choice>,
    responses: Vec<Choice>,
    labels: Vec<Choice>,
    total: i64,
    by_host: SortHeader,
    by_platform: SortHeader,
    by_os: SortHeader,
    by_seen: SortHeader,
    rows: Vec<(Host, i64)>,
    previous: Option<String>,
    next: Option<String>,
}

/// A column header that sorts by its column (again: the other direction).
struct SortHeader {
    label: &'static str,
    href: String,
    /// "ascending" or "descending" on the column the list is sorted by.
    aria_sort: Option<&'static str>,
}

/// The list's filters arrive as the REST API's `GET /hosts` parameters and go to its parser unchanged
/// (`api::hosts::parse_list_params`), so the query stays a map; the pager and sort links carry it along.
pub async fn list(
    State(state): State<SharedState>,
    user: ConsoleUser,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    page_or_error(hosts_page(&state, &user, params).await)
}

/// The list's URL with `params`, `extra` replacing what it names; keys sorted, so links are stable.
fn list_link(params: &HashMap<String, String>, extra: &[(&str, String)]) -> String {
    let mut q: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for (k, v) in extra {
        q.retain(|(key, _)| key != k);
        q.push((k, v));
    }
    q.sort();
    let query: Vec<String> = q.iter().map(|(k, v)| format!("{}={}", url_component(k), url_component(v))).collect();
    format!("/console/hosts?{}", query.join("&"))
}

async fn hosts_page(
    state: &SharedState,
    user: &ConsoleUser,
    mut params: HashMap<String, String>,
) -> Result<Response, ApiError> {
    params.retain(|_, v| !v.trim().is_empty());
    params.entry("per_page".into()).or_insert_with(|| "50".into());
    // The result filter means something only with a policy chosen.
    if !params.contains_key("policy_id") {
        params.remove("policy_response");
    }
    let p = crate::app::hosts::ListQuery::parse(&params, &user.auth, true)?;
    let total = crate::app::hosts::count(state, &p).await?;
    let hosts = crate::app::hosts::list(state, &p).await?;
    let now = now_ms();
    let teams = readable_teams(state, user).await?;
    let policies = state.store.all_policies().await?;
    let param = |key: &str| params.get(key).map(String::as_str);
    let listed =
        |values: &[&str], key: &str| values.iter().map(|v| Choice::new(v, *v, param(key) == Some(v))).collect();
    let sort = |key: &str, label: &'static str| {
        let current = param("order_key") == Some(key);
        let desc = current && param("order_direction") != Some("desc");
        let dir = if desc { "desc" } else { "asc" };
        let extra = [("order_key", key.to_string()), ("order_direction", dir.to_string()), ("page", "0".into())];
        let aria_sort = current.then_some(if p.descending { "descending" } else { "ascending" });
        SortHeader { label, href: list_link(&params, &extra), aria_sort }
    };
    let rows = hosts.into_iter().map(|(r, count)| (crate::wire::host(state, r, count, now), count)).collect();
    let page = HostsPage {
        frame: Frame::new(user, "/console/hosts", "Hosts"),
        query: param("query").unwrap_or_default().to_string(),
        teams: Choice::teams(&teams, |id| param("team_id") == Some(&id.to_string())),
        statuses: listed(&["online", "offline", "missing", "new"], "status"),
        policies: policies
            .iter()
            .filter(|p| user.auth.actor.may(Action::Read, Scope::of_team(p.team_id)))
            .map(|policy| Choice::new(policy.id, &policy.name, param("policy_id") == Some(&policy.id.to_string())))
            .collect(),
        responses: listed(&["failing", "passing"], "policy_response"),
        labels: crate::app::labels::list(state, &user.auth)
            .await?
            .into_iter()
            .map(|label| Choice::new(label.id, &label.name, param("label_id") == Some(&label.id.to_string())))
            .collect(),
        total,
        by_host: sort("hostname", "Host"),
        by_platform: sort("platform", "Platform"),
        by_os: sort("os_version", "OS"),
        by_seen: sort("seen_time", "Last seen"),
        rows,
        previous: p.page.has_previous().then(|| list_link(&params, &[("page", (p.page.page() - 1).to_string())])),
        next: p.page.has_next(total).then(|| list_link(&params, &[("page", (p.page.page() + 1).to_string())])),
    };
    Ok(render(&page))
}

// ---------------------------------------------------------------------------------------------------------------
// One host

#[derive(Template)]
#[template(path = "console/host.html")]
struct HostPage<'a> {
    frame: Frame<'a>,
    host: Host,
    hardware: String,
    disk: String,
    memory: String,
    /// Where its forms post.
    action: String,
    /// The scripts the user may run on it (None: no form).
    scripts: Option<Vec<herd_store::ScriptRecord>>,
    /// The teams it may move to (None: the user may not change it, so no move or delete form).
    move_to: Option<Vec<Choice>>,
    /// Failing first, then by name.
    policies: Vec<HostPolicy>,
    /// Its labels, and dynamic labels whose query failed on it (with the error).
    labels: Vec<herd_proto::fleet::HostLabel>,
    runs: Vec<RunView>,
    profiles: Vec<HostProfile>,
    deferrals: Vec<HostDeferral>,
    managed_by_other: &'static str,
    migration_state: String,
    /// For global readers only.
    activities: Option<Vec<ActivityRow>>,
}

/// A script run as the host's page lists it.
struct RunView {
    script_name: String,
    /// "queued", "exit code 0", or its state.
    status: String,
    when: String,
    output: String,
}

impl HostPage<'_> {
    /// A profile's status, or what happens next when it has none yet.
    fn profile_status(profile: &HostProfile) -> &str {
        profile.status.as_deref().unwrap_or("about to be sent")
    }

    fn last_choice(deferral: &HostDeferral) -> String {
        format!("{} {}", deferral.last_choice.as_deref().unwrap_or("—"), deferral.chosen_by.as_deref().unwrap_or(""))
    }
}

/// `/hosts/{id}`, where Fleet's UI shows a host and where Fleet-shaped links point (the failing-policy
/// webhook's host `url`): the console's host page. Only a numeric id is sent on, so this never redirects
/// elsewhere; the console page itself asks for a login (and returns here after it).
pub async fn fleet_host_link(Path(id): Path<String>) -> Response {
    match id.parse::<i64>() {
        Ok(id) => Redirect::to(&format!("/console/hosts/{id}")).into_response(),
        Err(_) => error_page(&ApiError::NotFound("host")),
    }
}

pub async fn page(State(state): State<SharedState>, user: ConsoleUser, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else { return error_page(&ApiError::NotFound("host")) };
    page_or_error(host_page(&state, &user, id).await)
}

/// The host's My Device page as its user sees it, for a reader of the host: herd keeps only a hash of the
/// device's token, so the console cannot link the device's own address; the preview's buttons are inert.
pub async fn my_device(State(state): State<SharedState>, user: ConsoleUser, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else { return error_page(&ApiError::NotFound("host")) };
    page_or_error(
        async {
            let record = crate::access::host(&state, &user.auth, id, Action::Read).await?;
            let html = crate::html::my_device::render(&state, record, None).await?;
            Ok(axum::response::Html(html).into_response())
        }
        .await,
    )
}

async fn host_page(state: &SharedState, user: &ConsoleUser, id: i64) -> Result<Response, ApiError> {
    let record = crate::access::host(state, &user.auth, id, Action::Read).await?;
    let team_id = record.team_id;
    let h = crate::app::hosts::view(state, record).await?;
    let hardware = [h.hardware_vendor.as_str(), h.hardware_model.as_str()].join(" ").trim().to_string()
        + &if h.hardware_serial.is_empty() { String::new() } else { format!(" (serial {})", h.hardware_serial) };
    let hardware = if hardware.trim().is_empty() { "—".to_string() } else { hardware };
    let disk = h.percent_disk_space_available.map_or_else(|| "—".into(), |p| format!("{p:.0} % free"));
    let memory = h.memory.map_or_else(|| "—".into(), |m| format!("{:.1} GB", m as f64 / 1e9));
    let may_write = user.auth.actor.may(Action::Write, Scope::of_team(team_id));
    let scripts = state.store.list_scripts(team_id).await?;
    let scripts = (!scripts.is_empty() && may_write).then_some(scripts);
    let move_to = if may_write {
        let teams = readable_teams(state, user).await?;
        let no_team = Choice::new(0, "No team", false);
        Some(std::iter::once(no_team).chain(Choice::teams(&teams, |tid| Some(tid) == team_id)).collect())
    } else {
        None
    };
    let mut policies = h.policies.clone().unwrap_or_default();
    policies.sort_by_key(|p| (p.response != "fail", p.name.clone()));
    let runs = state
        .store
        .last_executions(id)
        .await?
        .into_iter()
        .map(|e| RunView {
            status: match (e.status.as_str(), e.exit_code) {
                ("pending", _) => "queued".to_string(),
                ("ran", Some(code)) => format!("exit code {code}"),
                (other, _) => other.to_string(),
            },
            when: time(Some(e.created_at)),
            script_name: e.script_name,
            output: e.output,
        })
        .collect();
    let profiles = h.mdm.as_ref().map(|m| m.profiles.clone()).unwrap_or_default();
    let deferrals = h.deferrals.clone().unwrap_or_default();
    let m = &h.mdm_migration;
    let managed_by_other = match m.managed_by_other {
        Some(true) => "yes",
        Some(false) => "no",
        None => "not asked yet",
    };
    let migration_state = if m.state.is_empty() { "not started".to_string() } else { m.state.clone() };
    let activities = if user.auth.actor.may(Action::Read, Scope::Global) {
        let all = state.store.list_activities(0, 500).await?;
        let of_host: Vec<_> = all.into_iter().filter(|a| a.details["host_id"].as_i64() == Some(id)).take(20).collect();
        Some(ActivityRow::all(&of_host))
    } else {
        None
    };
    let labels = state.store.host_labels(id).await?.into_iter().map(crate::wire::host_label).collect();
    let page = HostPage {
        labels,
        frame: Frame::new(user, "/console/hosts", h.display_name.clone()),
        hardware,
        disk,
        memory,
        action: format!("/console/hosts/{id}/action"),
        scripts,
        move_to,
        policies,
        runs,
        profiles,
        deferrals,
        managed_by_other,
        migration_state,
        activities,
        host: h,
    };
    Ok(render(&page))
}

// ---------------------------------------------------------------------------------------------------------------
// Actions

/// What a host page's form asks for (`do`).
#[derive(Debug, PartialEq)]
enum HostAction {
    Refetch,
    RunScript,
    Transfer,
    Delete,
}

impl std::str::FromStr for HostAction {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        match text {
            "refetch" => Ok(HostAction::Refetch),
            "run_script" => Ok(HostAction::RunScript),
            "transfer" => Ok(HostAction::Transfer),
            "delete" => Ok(HostAction::Delete),
            _ => Err(()),
        }
    }
}

#[derive(Deserialize)]
pub struct HostActionForm {
    #[serde(default)]
    csrf: String,
    /// None when missing or unknown.
    #[serde(rename = "do", default, deserialize_with = "lenient")]
    action: Option<HostAction>,
    #[serde(default, deserialize_with = "lenient")]
    script_id: Option<i64>,
    /// Where to move it (none: no team).
    #[serde(default, deserialize_with = "team_choice")]
    team_id: Option<i64>,
    #[serde(default, deserialize_with = "ticked_yes")]
    confirm: bool,
}

pub async fn action(
    State(state): State<SharedState>,
    user: ConsoleUser,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<HostActionForm>,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form.csrf) {
        return refused;
    }
    let Ok(id) = id.parse::<i64>() else { return error_page(&ApiError::NotFound("host")) };
    match do_host_action(&state, &user, id, &form).await {
        Ok(to) => Redirect::to(&to).into_response(),
        Err(e) => error_page(&e),
    }
}

async fn do_host_action(
    state: &SharedState,
    user: &ConsoleUser,
    id: i64,
    form: &HostActionForm,
) -> Result<String, ApiError> {
    let auth = &user.auth;
    let back = format!("/console/hosts/{id}");
    match form.action {
        Some(HostAction::Refetch) => {
            crate::app::hosts::refetch(state, auth, id).await?;
            Ok(back)
        }
        Some(HostAction::RunScript) => {
            let script_id = form.script_id.ok_or_else(|| ApiError::invalid("script_id", "choose a script"))?;
            let request = crate::app::scripts::RunRequest {
                host_id: id,
                script_id: Some(script_id),
                script_contents: None,
                script_name: None,
                team_id: None,
            };
            crate::app::scripts::queue(state, auth, request).await?;
            Ok(back)
        }
        Some(HostAction::Transfer) => {
            crate::access::host(state, auth, id, Action::Write).await?;
            crate::app::hosts::transfer(state, auth, form.team_id, &[id]).await?;
            Ok(back)
        }
        Some(HostAction::Delete) => {
            crate::access::host(state, auth, id, Action::Write).await?;
            if !form.confirm {
                return Err(ApiError::invalid("confirm", "tick the box to confirm"));
            }
            crate::app::hosts::delete(state, auth, id).await?;
            Ok("/console/hosts".into())
        }
        None => Err(ApiError::invalid("do", "unknown action")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_links_keep_the_filters_and_replace_what_they_change() {
        let params: HashMap<String, String> =
            [("status", "online"), ("query", "a b&c"), ("page", "2")].map(|(k, v)| (k.into(), v.into())).into();
        for (extra, link) in [
            (vec![], "/console/hosts?page=2&query=a%20b%26c&status=online"),
            (vec![("page", "3".to_string())], "/console/hosts?page=3&query=a%20b%26c&status=online"),
            (
                vec![("order_key", "hostname".to_string()), ("page", "0".into())],
                "/console/hosts?order_key=hostname&page=0&query=a%20b%26c&status=online",
            ),
        ] {
            assert_eq!(list_link(&params, &extra), link);
        }
    }

    #[test]
    fn host_actions_read_from_the_form() {
        for (body, action) in [
            ("do=refetch", Some(HostAction::Refetch)),
            ("do=run_script&script_id=4", Some(HostAction::RunScript)),
            ("do=transfer&team_id=0", Some(HostAction::Transfer)),
            ("do=delete&confirm=yes", Some(HostAction::Delete)),
            ("do=reboot", None),
            ("", None),
        ] {
            let form: HostActionForm = serde_urlencoded::from_str(body).unwrap();
            assert_eq!(form.action, action, "{body}");
        }
    }
}
