//! The console's pages. Each reads through the store with the same role checks as the REST API (and the same
//! functions where the API has them: policy create/edit, script runs, host listing), and renders HTML.

use super::{ConsoleUser, error_page, layout};
use crate::api::my_device::{escape, urlencode};
use crate::error::ApiError;
use crate::state::{SharedState, now_ms};
use crate::wire::rfc3339;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use herd_core::roles::{Action, Scope};
use herd_proto::fleet::PolicyInput;
use herd_store::HostFilter;
use std::collections::HashMap;
use std::fmt::Write as _;

type Form = axum::Form<HashMap<String, String>>;
type Params = Query<HashMap<String, String>>;

fn time(at: Option<herd_core::Millis>) -> String {
    at.map(|t| rfc3339(t).replace('T', " ").trim_end_matches('Z').to_string() + " UTC").unwrap_or_else(|| "—".into())
}

fn result_badge(response: &str) -> String {
    match response {
        "pass" => "<span class=\"badge pass\">Passing</span>".into(),
        "fail" => "<span class=\"badge fail\">Failing</span>".into(),
        _ => "<span class=\"badge\">No answer</span>".into(),
    }
}

/// The team names the user may read: (id, name), for selects and labels.
async fn readable_teams(state: &SharedState, user: &ConsoleUser) -> Result<Vec<(i64, String)>, ApiError> {
    let teams = state.store.list_teams().await?;
    Ok(teams
        .into_iter()
        .filter(|t| user.auth.actor.may(Action::Read, Scope::Team(t.id)))
        .map(|t| (t.id, t.name))
        .collect())
}

fn team_label(teams: &[(i64, String)], team_id: Option<i64>) -> String {
    match team_id {
        None => "All hosts".into(),
        Some(id) => teams.iter().find(|(t, _)| *t == id).map_or_else(|| format!("team {id}"), |(_, n)| escape(n)),
    }
}

/// The sets a user may look at: the no-team set (or global), then each team they may read.
fn scopes_of(teams: &[(i64, String)]) -> Vec<Option<i64>> {
    std::iter::once(None).chain(teams.iter().map(|(id, _)| Some(*id))).collect()
}

/// A one-button form deleting `what` (its name in the button's accessible name) by posting to `action`.
fn delete_button(user: &ConsoleUser, action: &str, what: &str) -> String {
    format!(
        "<form method=\"post\" action=\"{action}\" class=\"inline\">{}<button type=\"submit\" class=\"secondary\" aria-label=\"Delete {}\">Delete</button></form>",
        user.csrf_field(),
        escape(what)
    )
}

/// The `<option>`s of the sets the user may add to (`none_label` for the no-team set), or None when there is
/// none: the page then shows no form.
fn writable_team_options(user: &ConsoleUser, teams: &[(i64, String)], none_label: &str) -> Option<String> {
    let mut options = String::new();
    if user.auth.actor.may(Action::Write, Scope::Global) {
        let _ = write!(options, "<option value=\"0\">{none_label}</option>");
    }
    for (id, name) in teams.iter().filter(|(id, _)| user.auth.actor.may(Action::Write, Scope::Team(*id))) {
        let _ = write!(options, "<option value=\"{id}\">{}</option>", escape(name));
    }
    (!options.is_empty()).then_some(options)
}

/// The team a form chose (`team_id`, 0 or absent: none).
fn form_team(form: &HashMap<String, String>) -> Option<i64> {
    form.get("team_id").and_then(|t| t.parse().ok()).filter(|t| *t != 0)
}

/// A text area's contents: browsers send CRLF line ends, files on hosts want LF.
fn form_file(form: &HashMap<String, String>, key: &str) -> String {
    form.get(key).cloned().unwrap_or_default().replace("\r\n", "\n")
}

/// Renders `f`'s page, or the error page for what went wrong.
fn page_or_error(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|e| error_page(&e))
}

// ---------------------------------------------------------------------------------------------------------------
// Dashboard

pub async fn dashboard(State(state): State<SharedState>, user: ConsoleUser) -> Response {
    page_or_error(dashboard_page(&state, &user).await)
}

async fn dashboard_page(state: &SharedState, user: &ConsoleUser) -> Result<Response, ApiError> {
    let now = now_ms();
    let visible = user.auth.actor.visible_teams();
    crate::app::seen::flush(state).await.map_err(ApiError::Internal)?;
    let filter = HostFilter { visible_teams: visible, ..Default::default() };
    let (total, online, offline) = state.store.host_status_counts(&filter, now).await?;
    let mut policies: Vec<_> = state
        .store
        .all_policies()
        .await?
        .into_iter()
        .filter(|p| user.auth.actor.may(Action::Read, Scope::of_team(p.team_id)))
        .collect();
    let remediating: i64 = policies.iter().map(|p| p.remediating_host_count).sum();
    policies.sort_by(|a, b| b.failing_host_count.cmp(&a.failing_host_count).then(a.name.cmp(&b.name)));
    let mut body = String::new();
    let _ = write!(
        body,
        "<section id=\"stats\" data-live aria-label=\"Hosts\"><div class=\"cards\">\
         <div class=\"card\"><div class=\"big\">{total}</div><a href=\"/console/hosts\">hosts</a></div>\
         <div class=\"card\"><div class=\"big\">{online}</div><a href=\"/console/hosts?status=online\">online</a></div>\
         <div class=\"card\"><div class=\"big\">{offline}</div><a href=\"/console/hosts?status=offline\">offline</a></div>\
         <div class=\"card\"><div class=\"big\">{remediating}</div>remediations in progress</div></div></section>"
    );
    body.push_str("<h2>Policies with the most failing hosts</h2><div id=\"top-failing\" data-live>");
    body.push_str("<table><thead><tr><th scope=\"col\">Policy</th><th scope=\"col\" class=\"num\">Failing</th><th scope=\"col\" class=\"num\">Passing</th><th scope=\"col\" class=\"num\">Fixing</th></tr></thead><tbody>");
    for p in policies.iter().filter(|p| p.failing_host_count > 0).take(10) {
        let _ = write!(
            body,
            "<tr><td><a href=\"/console/policies/{}\">{}</a></td><td class=\"num\"><a class=\"fail\" href=\"/console/hosts?policy_id={}&amp;policy_response=failing\">{}</a></td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            p.id,
            escape(&p.name),
            p.id,
            p.failing_host_count,
            p.passing_host_count,
            p.remediating_host_count
        );
    }
    if !policies.iter().any(|p| p.failing_host_count > 0) {
        body.push_str("<tr><td colspan=\"4\">No host fails a policy.</td></tr>");
    }
    body.push_str("</tbody></table></div>");
    body.push_str(&compliance_chart(state).await?);
    // The activity feed is for global readers, as in the REST API.
    if user.auth.actor.may(Action::Read, Scope::Global) {
        body.push_str("<h2>Recent activity</h2><div id=\"recent\" data-live>");
        activity_table(&mut body, &state.store.list_activities(0, 10).await?);
        body.push_str("<p><a href=\"/console/activity\">All activity</a></p></div>");
    }
    Ok(layout(user, "/console", "Dashboard", &body))
}

/// The last 30 days of the overall pass rate (and today's, kept by the compliance recorder), as an SVG line
/// with the same figures in a table for screen readers and copying.
async fn compliance_chart(state: &SharedState) -> Result<String, ApiError> {
    let now = now_ms();
    let today = rfc3339(now)[..10].to_string();
    let from = rfc3339(now - 29 * herd_core::DAY_MS)[..10].to_string();
    let mut history = state.store.compliance_history(&from).await?;
    if !history.iter().any(|d| d.day == today) {
        crate::app::compliance::record(state).await.map_err(ApiError::Internal)?;
        history = state.store.compliance_history(&from).await?;
    }
    let overall: Vec<_> = history.iter().filter(|d| d.policy_id == 0).collect();
    let rate = |passing: i64, failing: i64| {
        if passing + failing == 0 { None } else { Some(passing as f64 * 100.0 / (passing + failing) as f64) }
    };
    let (width, height, left, top) = (600.0, 200.0, 40.0, 10.0);
    let plot_w = width - left - 10.0;
    let plot_h = height - top - 30.0;
    let n = overall.len().max(1) as f64;
    let x = |i: usize| left + if n > 1.0 { plot_w * i as f64 / (n - 1.0) } else { plot_w / 2.0 };
    let y = |r: f64| top + plot_h * (1.0 - r / 100.0);
    let points: Vec<String> = overall
        .iter()
        .enumerate()
        .filter_map(|(i, d)| rate(d.passing, d.failing).map(|r| format!("{:.1},{:.1}", x(i), y(r))))
        .collect();
    let mut svg = format!(
        "<h2 id=\"compliance-title\">Compliance over time</h2><svg class=\"chart\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-labelledby=\"compliance-title\">"
    );
    for pct in [0.0, 50.0, 100.0] {
        let _ = write!(
            svg,
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#d0d0d0\"/><text x=\"4\" y=\"{:.1}\" font-size=\"11\" fill=\"#333\">{pct}%</text>",
            width - 10.0,
            y(pct) + 4.0,
            y = y(pct)
        );
    }
    if points.len() > 1 {
        let _ = write!(
            svg,
            "<polyline fill=\"none\" stroke=\"#1b6e2a\" stroke-width=\"2.5\" points=\"{}\"/>",
            points.join(" ")
        );
    }
    for p in &points {
        let (cx, cy) = p.split_once(',').unwrap_or(("0", "0"));
        let _ = write!(svg, "<circle cx=\"{cx}\" cy=\"{cy}\" r=\"3.5\" fill=\"#1b6e2a\"/>");
    }
    if let (Some(first), Some(last)) = (overall.first(), overall.last()) {
        let _ = write!(
            svg,
            "<text x=\"{left}\" y=\"{:.0}\" font-size=\"11\" fill=\"#333\">{}</text><text x=\"{:.0}\" y=\"{:.0}\" font-size=\"11\" fill=\"#333\" text-anchor=\"end\">{}</text>",
            height - 8.0,
            first.day,
            width - 10.0,
            height - 8.0,
            last.day
        );
    }
    svg.push_str("</svg><details><summary>Figures</summary><table><thead><tr><th scope=\"col\">Day</th><th scope=\"col\" class=\"num\">Passing</th><th scope=\"col\" class=\"num\">Failing</th><th scope=\"col\" class=\"num\">Pass rate</th></tr></thead><tbody>");
    for d in overall.iter().rev() {
        let shown = rate(d.passing, d.failing).map_or_else(|| "—".into(), |r| format!("{r:.1} %"));
        let _ = write!(
            svg,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{shown}</td></tr>",
            d.day, d.passing, d.failing
        );
    }
    svg.push_str("</tbody></table></details>");
    Ok(svg)
}

fn activity_table(out: &mut String, activities: &[herd_store::ActivityRecord]) {
    out.push_str("<table><thead><tr><th scope=\"col\">When</th><th scope=\"col\">Who</th><th scope=\"col\">What</th><th scope=\"col\">Details</th></tr></thead><tbody>");
    for a in activities {
        let who = a.actor_email.as_deref().map_or_else(|| "herd".to_string(), escape);
        let details = escape(&a.details.to_string());
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{who}</td><td>{}</td><td><code>{details}</code></td></tr>",
            time(Some(a.created_at)),
            escape(&a.kind.replace('_', " "))
        );
    }
    if activities.is_empty() {
        out.push_str("<tr><td colspan=\"4\">Nothing yet.</td></tr>");
    }
    out.push_str("</tbody></table>");
}

// ---------------------------------------------------------------------------------------------------------------
// Hosts

pub async fn hosts(State(state): State<SharedState>, user: ConsoleUser, Query(params): Params) -> Response {
    page_or_error(hosts_page(&state, &user, params).await)
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
    let listed = crate::app::hosts::list(state, &p).await?;
    let now = now_ms();
    let teams = readable_teams(state, user).await?;
    let value = |key: &str| escape(params.get(key).map(String::as_str).unwrap_or_default());
    let mut body = String::new();
    let _ = write!(
        body,
        "<form method=\"get\" action=\"/console/hosts\" class=\"inline\" role=\"search\">\
         <label for=\"q\">Search</label><input id=\"q\" name=\"query\" value=\"{}\" placeholder=\"hostname, serial, IP\">\
         <label for=\"team\">Team</label><select id=\"team\" name=\"team_id\"><option value=\"\">All</option>",
        value("query")
    );
    for (id, name) in &teams {
        let selected = if params.get("team_id") == Some(&id.to_string()) { " selected" } else { "" };
        let _ = write!(body, "<option value=\"{id}\"{selected}>{}</option>", escape(name));
    }
    body.push_str("</select><label for=\"status\">Status</label><select id=\"status\" name=\"status\"><option value=\"\">Any</option>");
    for s in ["online", "offline", "missing", "new"] {
        let selected = if params.get("status").map(String::as_str) == Some(s) { " selected" } else { "" };
        let _ = write!(body, "<option{selected}>{s}</option>");
    }
    body.push_str("</select><label for=\"policy\">Policy</label><select id=\"policy\" name=\"policy_id\"><option value=\"\">Any</option>");
    let policies = state.store.all_policies().await?;
    for policy in policies.iter().filter(|p| user.auth.actor.may(Action::Read, Scope::of_team(p.team_id))) {
        let selected = if params.get("policy_id") == Some(&policy.id.to_string()) { " selected" } else { "" };
        let _ = write!(body, "<option value=\"{}\"{selected}>{}</option>", policy.id, escape(&policy.name));
    }
    body.push_str("</select><label for=\"response\">Result</label><select id=\"response\" name=\"policy_response\">");
    for r in ["failing", "passing"] {
        let selected = if params.get("policy_response").map(String::as_str) == Some(r) { " selected" } else { "" };
        let _ = write!(body, "<option{selected}>{r}</option>");
    }
    body.push_str("</select><button type=\"submit\">Filter</button></form>");
    let _ = write!(body, "<p>{total} hosts.</p>");
    // Column headers sort (toggling direction).
    let link_for = |extra: &[(&str, String)]| {
        let mut q: Vec<(String, String)> = params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (k, v) in extra {
            q.retain(|(key, _)| key != k);
            q.push(((*k).to_string(), v.clone()));
        }
        q.sort();
        let query: Vec<String> = q.iter().map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v))).collect();
        format!("/console/hosts?{}", escape(&query.join("&")))
    };
    let sort = |key: &str, label: &str| {
        let current = params.get("order_key").map(String::as_str) == Some(key);
        let desc = current && params.get("order_direction").map(String::as_str) != Some("desc");
        let dir = if desc { "desc" } else { "asc" };
        let aria = if current {
            if p.descending { " aria-sort=\"descending\"" } else { " aria-sort=\"ascending\"" }
        } else {
            ""
        };
        format!(
            "<th scope=\"col\"{aria}><a href=\"{}\">{label}</a></th>",
            link_for(&[("order_key", key.to_string()), ("order_direction", dir.to_string()), ("page", "0".into())])
        )
    };
    let _ = write!(
        body,
        "<div id=\"host-table\" data-live><table><thead><tr>{}<th scope=\"col\">Team</th>{}{}<th scope=\"col\">Status</th><th scope=\"col\" class=\"num\">Failing policies</th>{}</tr></thead><tbody>",
        sort("hostname", "Host"),
        sort("platform", "Platform"),
        sort("os_version", "OS"),
        sort("seen_time", "Last seen")
    );
    for (r, count) in listed {
        let h = crate::wire::host(state, r, count, now);
        let failing_cell = if count > 0 { format!("<span class=\"fail\">{count}</span>") } else { "0".into() };
        let _ = write!(
            body,
            "<tr><td><a href=\"/console/hosts/{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"num\">{failing_cell}</td><td>{}</td></tr>",
            h.id,
            escape(&h.display_name),
            escape(h.team_name.as_deref().unwrap_or("—")),
            escape(&h.platform),
            escape(&h.os_version),
            escape(&h.status),
            escape(h.seen_time.as_deref().unwrap_or("never"))
        );
    }
    body.push_str("</tbody></table></div><nav class=\"pager\" aria-label=\"Pages\">");
    if p.page.has_previous() {
        let _ =
            write!(body, "<a href=\"{}\">Previous page</a>", link_for(&[("page", (p.page.page() - 1).to_string())]));
    }
    if p.page.has_next(total) {
        let _ = write!(body, "<a href=\"{}\">Next page</a>", link_for(&[("page", (p.page.page() + 1).to_string())]));
    }
    body.push_str("</nav>");
    Ok(layout(user, "/console/hosts", "Hosts", &body))
}

pub async fn host(State(state): State<SharedState>, user: ConsoleUser, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<i64>() else { return error_page(&ApiError::NotFound("host")) };
    page_or_error(host_page(&state, &user, id).await)
}

async fn host_page(state: &SharedState, user: &ConsoleUser, id: i64) -> Result<Response, ApiError> {
    let record = crate::access::host(state, &user.auth, id, Action::Read).await?;
    let team_id = record.team_id;
    let h = crate::app::hosts::view(state, record).await?;
    let mut body = String::new();
    let hardware = [h.hardware_vendor.as_str(), h.hardware_model.as_str()].join(" ").trim().to_string()
        + &if h.hardware_serial.is_empty() { String::new() } else { format!(" (serial {})", h.hardware_serial) };
    let hardware = if hardware.trim().is_empty() { "—".to_string() } else { hardware };
    let disk = h.percent_disk_space_available.map_or_else(|| "—".into(), |p| format!("{p:.0} % free"));
    let memory = h.memory.map_or_else(|| "—".into(), |m| format!("{:.1} GB", m as f64 / 1e9));
    let _ = write!(
        body,
        "<dl class=\"vitals\" id=\"vitals\" data-live><dt>Status</dt><dd>{}</dd><dt>Team</dt><dd>{}</dd><dt>Operating system</dt><dd>{}</dd>\
         <dt>Hardware</dt><dd>{}</dd><dt>CPU</dt><dd>{}</dd><dt>Memory</dt><dd>{memory}</dd><dt>Disk</dt><dd>{disk}</dd>\
         <dt>Address</dt><dd>{} {}</dd><dt>Agent</dt><dd>osquery {} {}</dd><dt>Last seen</dt><dd>{}</dd><dt>Vitals updated</dt><dd>{}</dd></dl>",
        escape(&h.status),
        escape(h.team_name.as_deref().unwrap_or("No team")),
        escape(&h.os_version),
        escape(&hardware),
        escape(&h.cpu_brand),
        escape(&h.primary_ip),
        escape(&h.primary_mac),
        escape(&h.osquery_version),
        if h.scripts_enabled == Some(true) { "(scripts on)" } else { "" },
        escape(h.seen_time.as_deref().unwrap_or("never")),
        escape(h.detail_updated_at.as_deref().unwrap_or("never"))
    );
    // Actions.
    let csrf = user.csrf_field();
    let action = format!("/console/hosts/{id}/action");
    let _ = write!(
        body,
        "<h2>Actions</h2><form method=\"post\" action=\"{action}\" class=\"inline\">{csrf}<input type=\"hidden\" name=\"do\" value=\"refetch\"><button type=\"submit\">Refetch</button></form>"
    );
    let scripts = state.store.list_scripts(team_id).await?;
    if !scripts.is_empty() && user.auth.actor.may(Action::Write, Scope::of_team(team_id)) {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"{action}\" class=\"inline\">{csrf}<input type=\"hidden\" name=\"do\" value=\"run_script\"><label for=\"script\">Script</label><select id=\"script\" name=\"script_id\">"
        );
        for s in &scripts {
            let _ = write!(body, "<option value=\"{}\">{}</option>", s.id, escape(&s.name));
        }
        body.push_str("</select><button type=\"submit\">Run script</button></form>");
    }
    if user.auth.actor.may(Action::Write, Scope::of_team(team_id)) {
        let teams = readable_teams(state, user).await?;
        let _ = write!(
            body,
            "<form method=\"post\" action=\"{action}\" class=\"inline\">{csrf}<input type=\"hidden\" name=\"do\" value=\"transfer\"><label for=\"to-team\">Move to team</label><select id=\"to-team\" name=\"team_id\"><option value=\"0\">No team</option>"
        );
        for (tid, name) in &teams {
            let selected = if Some(*tid) == team_id { " selected" } else { "" };
            let _ = write!(body, "<option value=\"{tid}\"{selected}>{}</option>", escape(name));
        }
        body.push_str("</select><button type=\"submit\" class=\"secondary\">Move</button></form>");
        let _ = write!(
            body,
            "<form method=\"post\" action=\"{action}\" class=\"inline\">{csrf}<input type=\"hidden\" name=\"do\" value=\"delete\"><input type=\"checkbox\" id=\"confirm-delete\" name=\"confirm\" value=\"yes\" required><label for=\"confirm-delete\">I want to delete this host</label><button type=\"submit\" class=\"danger\">Delete host</button></form>"
        );
    }
    // Policies, live.
    body.push_str("<h2>Policies</h2><div id=\"host-policies\" data-live><table><thead><tr><th scope=\"col\">Policy</th><th scope=\"col\">Result</th><th scope=\"col\">Resolution</th></tr></thead><tbody>");
    let mut policies = h.policies.clone().unwrap_or_default();
    policies.sort_by_key(|p| (p.response != "fail", p.name.clone()));
    for p in &policies {
        let fixing = if p.remediating { " <span class=\"badge info\">Fixing</span>" } else { "" };
        let _ = write!(
            body,
            "<tr><td><a href=\"/console/policies/{}\">{}</a></td><td>{}{fixing}</td><td>{}</td></tr>",
            p.id,
            escape(&p.name),
            result_badge(&p.response),
            escape(&p.resolution)
        );
    }
    if policies.is_empty() {
        body.push_str("<tr><td colspan=\"3\">No policy applies to this host.</td></tr>");
    }
    body.push_str("</tbody></table></div>");
    // Script runs, live: their output.
    body.push_str("<h2>Script runs</h2><div id=\"host-scripts\" data-live>");
    let runs = state.store.last_executions(id).await?;
    if runs.is_empty() {
        body.push_str("<p>No script has run on this host.</p>");
    }
    for e in &runs {
        let status = match (e.status.as_str(), e.exit_code) {
            ("pending", _) => "queued".to_string(),
            ("ran", Some(code)) => format!("exit code {code}"),
            (other, _) => other.to_string(),
        };
        let _ = write!(
            body,
            "<h3>{} <small>({}, {})</small></h3><pre>{}</pre>",
            escape(&e.script_name),
            escape(&status),
            time(Some(e.created_at)),
            escape(&e.output)
        );
    }
    body.push_str("</div>");
    // Profiles, deferrals, migration.
    body.push_str("<h2>Configuration profiles</h2><div id=\"host-profiles\" data-live><table><thead><tr><th scope=\"col\">Profile</th><th scope=\"col\">Operation</th><th scope=\"col\">Status</th><th scope=\"col\">Detail</th></tr></thead><tbody>");
    let profiles = h.mdm.as_ref().map(|m| m.profiles.clone()).unwrap_or_default();
    for p in &profiles {
        let _ = write!(
            body,
            "<tr><td>{} <small>{}</small></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&p.name),
            escape(&p.identifier),
            escape(&p.operation_type),
            escape(p.status.as_deref().unwrap_or("about to be sent")),
            escape(&p.detail)
        );
    }
    if profiles.is_empty() {
        body.push_str("<tr><td colspan=\"4\">None.</td></tr>");
    }
    body.push_str("</tbody></table></div><h2>Deferrals</h2><div id=\"host-deferrals\" data-live><table><thead><tr><th scope=\"col\">Policy</th><th scope=\"col\">State</th><th scope=\"col\">Deferred until</th><th scope=\"col\">Used</th><th scope=\"col\">Deadline</th><th scope=\"col\">Last choice</th></tr></thead><tbody>");
    let deferrals = h.deferrals.clone().unwrap_or_default();
    for d in &deferrals {
        let _ = write!(
            body,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{} of {}</td><td>{}</td><td>{}</td></tr>",
            escape(&d.policy_name),
            escape(&d.state),
            escape(d.deferred_until.as_deref().unwrap_or("—")),
            d.deferrals_used,
            d.max_deferrals,
            escape(d.deadline.as_deref().unwrap_or("—")),
            escape(&format!("{} {}", d.last_choice.as_deref().unwrap_or("—"), d.chosen_by.as_deref().unwrap_or("")))
        );
    }
    if deferrals.is_empty() {
        body.push_str("<tr><td colspan=\"6\">None.</td></tr>");
    }
    body.push_str("</tbody></table></div>");
    let m = &h.mdm_migration;
    let _ = write!(
        body,
        "<h2>Migration</h2><p>Managed by another system: {}. State: {}.</p>",
        match m.managed_by_other {
            Some(true) => "yes",
            Some(false) => "no",
            None => "not asked yet",
        },
        escape(if m.state.is_empty() { "not started" } else { &m.state })
    );
    let activities: Vec<_> = if !user.auth.actor.may(Action::Read, Scope::Global) {
        Vec::new()
    } else {
        body.push_str("<h2>Activity</h2>");
        state
            .store
            .list_activities(0, 500)
            .await?
            .into_iter()
            .filter(|a| a.details["host_id"].as_i64() == Some(id))
            .take(20)
            .collect()
    };
    if user.auth.actor.may(Action::Read, Scope::Global) {
        activity_table(&mut body, &activities);
    }
    Ok(layout(user, "/console/hosts", &h.display_name, &body))
}

pub async fn host_action(
    State(state): State<SharedState>,
    user: ConsoleUser,
    Path(id): Path<String>,
    axum::Form(form): Form,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form) {
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
    form: &HashMap<String, String>,
) -> Result<String, ApiError> {
    let auth = &user.auth;
    let back = format!("/console/hosts/{id}");
    match form.get("do").map(String::as_str) {
        Some("refetch") => {
            crate::app::hosts::refetch(state, auth, id).await?;
            Ok(back)
        }
        Some("run_script") => {
            let script_id = form
                .get("script_id")
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| ApiError::invalid("script_id", "choose a script"))?;
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
        Some("transfer") => {
            let target = form_team(form);
            crate::app::hosts::transfer(state, auth, target, &[id]).await?;
            Ok(back)
        }
        Some("delete") => {
            crate::access::host(state, auth, id, Action::Write).await?;
            if form.get("confirm").map(String::as_str) != Some("yes") {
                return Err(ApiError::invalid("confirm", "tick the box to confirm"));
            }
            crate::app::hosts::delete(state, auth, id).await?;
            Ok("/console/hosts".into())
        }
        _ => Err(ApiError::invalid("do", "unknown action")),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Policies

pub async fn policies(State(state): State<SharedState>, user: ConsoleUser, Query(params): Params) -> Response {
    page_or_error(policies_page(&state, &user, params).await)
}

async fn policies_page(
    state: &SharedState,
    user: &ConsoleUser,
    params: HashMap<String, String>,
) -> Result<Response, ApiError> {
    let teams = readable_teams(state, user).await?;
    let team: Option<i64> = params.get("team_id").and_then(|t| t.parse().ok()).filter(|t| *t != 0);
    let mut body = String::from(
        "<p><a href=\"/console/policies/new\">New policy</a></p><form method=\"get\" class=\"inline\"><label for=\"team\">Counts for</label><select id=\"team\" name=\"team_id\"><option value=\"\">All hosts</option>",
    );
    for (id, name) in &teams {
        let selected = if Some(*id) == team { " selected" } else { "" };
        let _ = write!(body, "<option value=\"{id}\"{selected}>{}</option>", escape(name));
    }
    body.push_str("</select><button type=\"submit\">Show</button></form>");
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
    let list: Vec<_> =
        list.into_iter().filter(|p| user.auth.actor.may(Action::Read, Scope::of_team(p.team_id))).collect();
    let _ = write!(
        body,
        "<div id=\"policy-table\" data-live><table><caption>Counts for {}</caption><thead><tr><th scope=\"col\">Policy</th><th scope=\"col\">Team</th><th scope=\"col\">Platform</th><th scope=\"col\">Automation</th><th scope=\"col\" class=\"num\">Passing</th><th scope=\"col\" class=\"num\">Failing</th><th scope=\"col\" class=\"num\">Fixing</th></tr></thead><tbody>",
        team_label(&teams, team)
    );
    for p in &list {
        let automation = match (&p.script_name, &p.webhook_url) {
            (Some(s), _) if p.deferral.is_some() => format!("{} (deferrable)", escape(s)),
            (Some(s), _) => escape(s),
            (None, Some(_)) => "webhook".into(),
            _ => "—".into(),
        };
        let _ = write!(
            body,
            "<tr><td><a href=\"/console/policies/{id}\">{}</a> {}</td><td>{}</td><td>{}</td><td>{automation}</td><td class=\"num\"><a class=\"pass\" href=\"/console/hosts?policy_id={id}&amp;policy_response=passing\">{}</a></td><td class=\"num\"><a class=\"fail\" href=\"/console/hosts?policy_id={id}&amp;policy_response=failing\">{}</a></td><td class=\"num\">{}</td></tr>",
            escape(&p.name),
            pass_bar(p.passing_host_count, p.failing_host_count),
            escape(&p.team_id.map_or_else(|| "All teams".into(), |t| team_label(&teams, Some(t)))),
            escape(if p.platform.is_empty() { "all" } else { &p.platform }),
            p.passing_host_count,
            p.failing_host_count,
            p.remediating_host_count,
            id = p.id
        );
    }
    if list.is_empty() {
        body.push_str("<tr><td colspan=\"7\">No policies yet.</td></tr>");
    }
    body.push_str("</tbody></table></div>");
    Ok(layout(user, "/console/policies", "Policies", &body))
}

/// A small bar: the share of answering hosts that pass (green) and fail (red), with the figure as its name.
fn pass_bar(passing: i64, failing: i64) -> String {
    let total = passing + failing;
    if total == 0 {
        return String::new();
    }
    let width = 80.0 * passing as f64 / total as f64;
    format!(
        "<svg width=\"80\" height=\"8\" role=\"img\" aria-label=\"{:.0} % passing\"><rect width=\"80\" height=\"8\" fill=\"#a4001d\"/><rect width=\"{width:.1}\" height=\"8\" fill=\"#1b6e2a\"/></svg>",
        passing as f64 * 100.0 / total as f64
    )
}

pub async fn policy_form(State(state): State<SharedState>, user: ConsoleUser, id: Option<Path<String>>) -> Response {
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
    let v = |f: &dyn Fn(&herd_store::PolicyRecord) -> String| existing.as_ref().map(f).unwrap_or_default();
    let action = existing
        .as_ref()
        .map_or_else(|| "/console/policies/new".to_string(), |p| format!("/console/policies/{}", p.id));
    let mut body = format!("<form method=\"post\" action=\"{action}\">{}", user.csrf_field());
    let _ = write!(
        body,
        "<label for=\"name\">Name</label><input id=\"name\" name=\"name\" required size=\"60\" value=\"{}\">",
        escape(&v(&|p| p.name.clone()))
    );
    let _ = write!(
        body,
        "<label for=\"query\">Query (one row or more: passing)</label><textarea id=\"query\" name=\"query\" rows=\"6\" required>{}</textarea>",
        escape(&v(&|p| p.query.clone()))
    );
    let _ = write!(
        body,
        "<label for=\"description\">Description</label><textarea id=\"description\" name=\"description\" rows=\"2\">{}</textarea>",
        escape(&v(&|p| p.description.clone()))
    );
    let _ = write!(
        body,
        "<label for=\"resolution\">Resolution (shown to users)</label><textarea id=\"resolution\" name=\"resolution\" rows=\"2\">{}</textarea>",
        escape(&v(&|p| p.resolution.clone()))
    );
    let _ = write!(
        body,
        "<label for=\"platform\">Platforms (comma-separated: darwin, windows, linux, chrome; empty: all)</label><input id=\"platform\" name=\"platform\" value=\"{}\">",
        escape(&v(&|p| p.platform.clone()))
    );
    if existing.is_none() {
        body.push_str("<label for=\"team\">Team</label><select id=\"team\" name=\"team_id\"><option value=\"0\">All teams (global)</option>");
        for (id, name) in &teams {
            let _ = write!(body, "<option value=\"{id}\">{}</option>", escape(name));
        }
        body.push_str("</select>");
    }
    let _ = write!(
        body,
        "<label for=\"interval\">Interval in seconds (empty: the default)</label><input id=\"interval\" name=\"interval\" inputmode=\"numeric\" value=\"{}\">",
        v(&|p| p.interval_seconds.map(|i| i.to_string()).unwrap_or_default())
    );
    let team_id = existing.as_ref().and_then(|p| p.team_id);
    let scripts = state.store.list_scripts(team_id).await?;
    body.push_str("<label for=\"script\">Script run on failing hosts</label><select id=\"script\" name=\"script_id\"><option value=\"0\">None</option>");
    for s in &scripts {
        let selected = if existing.as_ref().and_then(|p| p.script_id) == Some(s.id) { " selected" } else { "" };
        let _ = write!(body, "<option value=\"{}\"{selected}>{}</option>", s.id, escape(&s.name));
    }
    body.push_str("</select>");
    let _ = write!(
        body,
        "<label for=\"webhook\">Webhook URL (empty: none)</label><input id=\"webhook\" name=\"webhook_url\" type=\"url\" size=\"60\" value=\"{}\">",
        escape(&v(&|p| p.webhook_url.clone().unwrap_or_default()))
    );
    let _ = write!(
        body,
        "<label for=\"deferral\">Deferral settings (JSON; empty: the script runs without asking)</label><textarea id=\"deferral\" name=\"deferral\" rows=\"4\">{}</textarea>",
        escape(&v(&|p| p.deferral.clone().unwrap_or_default()))
    );
    let checked = if existing.as_ref().is_some_and(|p| p.critical) { " checked" } else { "" };
    let _ = write!(
        body,
        "<p><input type=\"checkbox\" id=\"critical\" name=\"critical\" value=\"true\"{checked}> <label for=\"critical\" style=\"display:inline\">Critical</label></p><button type=\"submit\">Save policy</button></form>"
    );
    if let Some(p) = &existing {
        let _ = write!(
            body,
            "<p><a href=\"/console/hosts?policy_id={id}&amp;policy_response=failing\">Hosts failing it ({})</a> · <a href=\"/console/hosts?policy_id={id}&amp;policy_response=passing\">Hosts passing it ({})</a></p>",
            p.failing_host_count,
            p.passing_host_count,
            id = p.id
        );
    }
    if let Some(p) = &existing
        && user.auth.actor.may(Action::Write, Scope::of_team(p.team_id))
    {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"/console/policies/{}/delete\" class=\"inline\">{}<input type=\"checkbox\" id=\"confirm-delete\" name=\"confirm\" value=\"yes\" required><label for=\"confirm-delete\">I want to delete this policy</label><button type=\"submit\" class=\"danger\">Delete policy</button></form>",
            p.id,
            user.csrf_field()
        );
    }
    if let Some(p) = &existing {
        let from = rfc3339(now_ms() - 29 * herd_core::DAY_MS)[..10].to_string();
        let days: Vec<_> =
            state.store.compliance_history(&from).await?.into_iter().filter(|d| d.policy_id == p.id).collect();
        body.push_str("<h2>Pass rate by day</h2><table><thead><tr><th scope=\"col\">Day</th><th scope=\"col\" class=\"num\">Passing</th><th scope=\"col\" class=\"num\">Failing</th><th scope=\"col\" class=\"num\">Pass rate</th></tr></thead><tbody>");
        for d in days.iter().rev() {
            let total = d.passing + d.failing;
            let rate = if total == 0 {
                "—".to_string()
            } else {
                format!("{:.1} %", d.passing as f64 * 100.0 / total as f64)
            };
            let _ = write!(
                body,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{rate}</td></tr>",
                d.day, d.passing, d.failing
            );
        }
        if days.is_empty() {
            body.push_str("<tr><td colspan=\"4\">Recorded from today on.</td></tr>");
        }
        body.push_str("</tbody></table>");
    }
    let title = existing.as_ref().map_or_else(|| "New policy".to_string(), |p| p.name.clone());
    Ok(layout(user, "/console/policies", &title, &body))
}

pub async fn policy_save(
    State(state): State<SharedState>,
    user: ConsoleUser,
    id: Option<Path<String>>,
    axum::Form(form): Form,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form) {
        return refused;
    }
    match save_policy(&state, &user, id.map(|Path(id)| id), &form).await {
        Ok(id) => Redirect::to(&format!("/console/policies/{id}")).into_response(),
        Err(e) => error_page(&e),
    }
}

async fn save_policy(
    state: &SharedState,
    user: &ConsoleUser,
    id: Option<String>,
    form: &HashMap<String, String>,
) -> Result<i64, ApiError> {
    let text = |k: &str| form.get(k).cloned().unwrap_or_default();
    let interval = match text("interval").trim() {
        "" => None,
        n => Some(n.parse::<i64>().map_err(|_| ApiError::invalid("interval", "a number of seconds"))?),
    };
    let deferral = match text("deferral").trim() {
        "" => None,
        json => Some(
            serde_json::from_str(json)
                .map_err(|e| ApiError::invalid("deferral", format!("not valid settings: {e}")))?,
        ),
    };
    let webhook = Some(text("webhook_url").trim().to_string()).filter(|w| !w.is_empty());
    let script: i64 = text("script_id").parse().unwrap_or(0);
    let input = PolicyInput {
        name: Some(text("name")),
        query: Some(text("query")),
        description: Some(text("description")),
        resolution: Some(text("resolution")),
        platform: Some(text("platform")),
        critical: Some(form.get("critical").is_some()),
        interval: Some(interval),
        team_id: None,
        script_id: Some(Some(script)),
        webhook_url: Some(webhook),
        continuous_automation: None,
        deferral: Some(deferral),
    };
    match id {
        None => {
            let team_id = form_team(form);
            let created = crate::app::policies::create(state, &user.auth, team_id, input).await?;
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
// Teams, scripts, profiles, users, settings, activity

pub async fn teams(State(state): State<SharedState>, user: ConsoleUser) -> Response {
    page_or_error(async {
        let mut body = String::from("<table><thead><tr><th scope=\"col\">Team</th><th scope=\"col\" class=\"num\">Hosts</th><th scope=\"col\" class=\"num\">Users</th><th scope=\"col\">Enroll secrets</th></tr></thead><tbody>");
        for t in state.store.list_teams().await? {
            if !user.auth.actor.may(Action::Read, Scope::Team(t.id)) {
                continue;
            }
            let secrets = if user.auth.actor.may(Action::Write, Scope::Team(t.id)) {
                t.secrets.iter().map(|s| format!("<code>{}</code>", escape(&s.secret))).collect::<Vec<_>>().join(" ")
            } else {
                "hidden".into()
            };
            let _ = write!(body, "<tr><td><a href=\"/console/hosts?team_id={}\">{}</a></td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{secrets}</td></tr>", t.id, escape(&t.name), t.host_count, t.user_count);
        }
        body.push_str("</tbody></table>");
        if user.auth.actor.may(Action::AdministerServer, Scope::Global) {
            let _ = write!(body, "<h2>New team</h2><form method=\"post\" action=\"/console/teams\" class=\"inline\">{}<label for=\"team-name\">Name</label><input id=\"team-name\" name=\"name\" required><button type=\"submit\">Create team</button></form>", user.csrf_field());
        }
        if user.auth.actor.may(Action::Write, Scope::Global) {
            let secrets = state.store.enroll_secrets(None).await?;
            body.push_str("<h2>Global enroll secrets</h2><ul>");
            for s in secrets {
                let _ = write!(body, "<li><code>{}</code></li>", escape(&s.secret));
            }
            body.push_str("</ul>");
        }
        Ok(layout(&user, "/console/teams", "Teams", &body))
    }
    .await)
}

pub async fn scripts(State(state): State<SharedState>, user: ConsoleUser) -> Response {
    page_or_error(async {
        let mut body = String::from("<table><thead><tr><th scope=\"col\">Script</th><th scope=\"col\">Team</th><th scope=\"col\">Uploaded</th><th scope=\"col\"><span class=\"note\">Actions</span></th></tr></thead><tbody>");
        let teams = readable_teams(&state, &user).await?;
        for scope in scopes_of(&teams) {
            if !user.auth.actor.may(Action::Read, Scope::of_team(scope)) {
                continue;
            }
            let may_delete = user.auth.actor.may(Action::Write, Scope::of_team(scope));
            for s in state.store.list_scripts(scope).await? {
                let delete = if may_delete {
                    delete_button(&user, &format!("/console/scripts/{}/delete", s.id), &s.name)
                } else {
                    String::new()
                };
                let _ = write!(body, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{delete}</td></tr>", escape(&s.name), scope.map_or_else(|| "All teams".into(), |t| team_label(&teams, Some(t))), time(Some(s.created_at)));
            }
        }
        body.push_str("</tbody></table><p class=\"note\">Run scripts from a host's page, or make them a policy's automation.</p>");
        if let Some(options) = writable_team_options(&user, &teams, "All teams") {
            let _ = write!(body, "<h2>New script</h2><form method=\"post\" action=\"/console/scripts\">{}<label for=\"script-name\">File name (.sh or .ps1)</label><input id=\"script-name\" name=\"name\" required placeholder=\"fix-firewall.sh\"><label for=\"script-team\">Team</label><select id=\"script-team\" name=\"team_id\">{options}", user.csrf_field());
            body.push_str("</select><label for=\"script-contents\">Contents</label><textarea id=\"script-contents\" name=\"contents\" rows=\"8\" required></textarea><p><button type=\"submit\">Save script</button></p></form>");
        }
        Ok(layout(&user, "/console/scripts", "Scripts", &body))
    }
    .await)
}

pub async fn profiles(State(state): State<SharedState>, user: ConsoleUser) -> Response {
    page_or_error(async {
        let teams = readable_teams(&state, &user).await?;
        let mut body = String::new();
        for scope in scopes_of(&teams) {
            if !user.auth.actor.may(Action::Read, Scope::of_team(scope)) {
                continue;
            }
            let summary = state.store.profiles_summary(scope).await?;
            let _ = write!(
                body,
                "<h2>{}</h2><p id=\"summary-{}\" data-live>Hosts: {} verified, {} verifying, {} pending, {} failed.</p><table><thead><tr><th scope=\"col\">Profile</th><th scope=\"col\">Identifier</th><th scope=\"col\">Platform</th><th scope=\"col\">Payloads</th><th scope=\"col\">Uploaded</th><th scope=\"col\"><span class=\"note\">Actions</span></th></tr></thead><tbody>",
                scope.map_or_else(|| "No team".into(), |t| team_label(&teams, Some(t))),
                scope.unwrap_or(0),
                summary.verified,
                summary.verifying,
                summary.pending,
                summary.failed
            );
            let may_delete = user.auth.actor.may(Action::Write, Scope::of_team(scope));
            for p in state.store.list_profiles(scope).await? {
                let delete = if may_delete {
                    delete_button(&user, &format!("/console/profiles/{}/delete", urlencode(&p.uuid)), &p.name)
                } else {
                    String::new()
                };
                let _ = write!(body, "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{delete}</td></tr>", escape(&p.name), escape(&p.identifier), escape(&p.platform), escape(&p.payload_types.join(", ")), time(Some(p.uploaded_at)));
            }
            body.push_str("</tbody></table>");
        }
        if let Some(options) = writable_team_options(&user, &teams, "No team") {
            let _ = write!(body, "<h2>New profile</h2><form method=\"post\" action=\"/console/profiles\">{}<label for=\"profile-name\">File name (.json, .yml or .mobileconfig)</label><input id=\"profile-name\" name=\"file_name\" required placeholder=\"hardening.yml\"><label for=\"profile-team\">Team</label><select id=\"profile-team\" name=\"team_id\">{options}", user.csrf_field());
            body.push_str("</select><label for=\"profile-contents\">Contents</label><textarea id=\"profile-contents\" name=\"contents\" rows=\"10\" required></textarea><p><button type=\"submit\">Save profile</button></p></form>");
        }
        Ok(layout(&user, "/console/profiles", "Configuration profiles", &body))
    }
    .await)
}

pub async fn users(State(state): State<SharedState>, user: ConsoleUser) -> Response {
    page_or_error(async {
        user.auth.require(Action::AdministerServer, Scope::Global)?;
        let mut body = String::from("<table><thead><tr><th scope=\"col\">Name</th><th scope=\"col\">Email</th><th scope=\"col\">Role</th></tr></thead><tbody>");
        for u in state.store.list_users(None).await? {
            let role = match u.global_role {
                Some(r) => format!("{} (global)", r.as_str()),
                None => u.team_roles.iter().map(|(_, team, r)| format!("{} of {}", r.as_str(), escape(team))).collect::<Vec<_>>().join(", "),
            };
            let _ = write!(body, "<tr><td>{}</td><td>{}</td><td>{role}</td></tr>", escape(&u.name), escape(&u.email));
        }
        body.push_str("</tbody></table>");
        let _ = write!(body, "<h2>New user</h2><form method=\"post\" action=\"/console/users\">{}<label for=\"user-name\">Name</label><input id=\"user-name\" name=\"name\" required><label for=\"user-email\">Email</label><input id=\"user-email\" name=\"email\" type=\"email\" required><label for=\"user-password\">Password (12+ characters, a number and a symbol)</label><input id=\"user-password\" name=\"password\" type=\"password\" autocomplete=\"new-password\" required><label for=\"user-role\">Global role</label><select id=\"user-role\" name=\"global_role\"><option>observer</option><option>maintainer</option><option>admin</option></select><p><button type=\"submit\">Create user</button></p></form>", user.csrf_field());
        Ok(layout(&user, "/console/users", "Users and roles", &body))
    }
    .await)
}

pub async fn settings(State(state): State<SharedState>, user: ConsoleUser) -> Response {
    page_or_error(async {
        user.auth.require(Action::AdministerServer, Scope::Global)?;
        let config = crate::app::config::stored_config(&state).await?;
        let mut body = format!("<form method=\"post\" action=\"/console/settings\">{}", user.csrf_field());
        let _ = write!(body, "<h2>Organization</h2><label for=\"org_name\">Organization name</label><input id=\"org_name\" name=\"org_name\" value=\"{}\" required>", escape(&config.org_info.org_name));
        let _ = write!(body, "<label for=\"contact_url\">Contact URL</label><input id=\"contact_url\" name=\"contact_url\" type=\"url\" size=\"50\" value=\"{}\">", escape(&config.org_info.contact_url));
        let _ = write!(body, "<h2>Hosts</h2><label for=\"policy_interval\">Policy interval (seconds)</label><input id=\"policy_interval\" name=\"policy_interval\" inputmode=\"numeric\" value=\"{}\">", config.host_settings.policy_interval);
        let _ = write!(body, "<label for=\"vitals_interval\">Vitals interval (seconds)</label><input id=\"vitals_interval\" name=\"vitals_interval\" inputmode=\"numeric\" value=\"{}\">", config.host_settings.vitals_interval);
        for (key, label, value) in [
            ("webhook_settings", "Webhooks (JSON)", serde_json::to_value(&config.webhook_settings).unwrap_or_default()),
            ("mdm", "Migration from a previous management system (JSON)", serde_json::to_value(&config.mdm).unwrap_or_default()),
            ("agent_options", "Agent options (JSON)", config.agent_options.clone()),
        ] {
            let _ = write!(body, "<label for=\"{key}\">{label}</label><textarea id=\"{key}\" name=\"{key}\" rows=\"8\">{}</textarea>", escape(&serde_json::to_string_pretty(&value).unwrap_or_default()));
        }
        body.push_str("<p><button type=\"submit\">Save settings</button></p></form>");
        Ok(layout(&user, "/console/settings", "Settings", &body))
    }
    .await)
}

pub async fn settings_save(State(state): State<SharedState>, user: ConsoleUser, axum::Form(form): Form) -> Response {
    if let Some(refused) = user.csrf_refusal(&form) {
        return refused;
    }
    let result = async {
        user.auth.require(Action::AdministerServer, Scope::Global)?;
        let number = |k: &str| -> Result<i64, ApiError> {
            form.get(k).map(|v| v.trim()).unwrap_or_default().parse().map_err(|_| ApiError::invalid(format!("host_settings.{k}"), "a number of seconds"))
        };
        let mut patch = serde_json::json!({
            "org_info": {"org_name": form.get("org_name").cloned().unwrap_or_default(), "contact_url": form.get("contact_url").cloned().unwrap_or_default()},
            "host_settings": {"policy_interval": number("policy_interval")?, "vitals_interval": number("vitals_interval")?},
        });
        for key in ["webhook_settings", "mdm", "agent_options"] {
            if let Some(text) = form.get(key).filter(|t| !t.trim().is_empty()) {
                patch[key] = serde_json::from_str(text).map_err(|e| ApiError::invalid(key, format!("not valid JSON: {e}")))?;
            }
        }
        crate::app::config::update(&state, &user.auth, &patch).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/console/settings").into_response(),
        Err(e) => error_page(&e),
    }
}

pub async fn activity(State(state): State<SharedState>, user: ConsoleUser, Query(params): Params) -> Response {
    page_or_error(
        async {
            // The feed covers every team: global users only, as `GET /activities`.
            user.auth.require(Action::Read, Scope::Global)?;
            let page = crate::paging::Page::new(
                params.get("page").map_or(Ok(0), |p| {
                    p.trim()
                        .parse()
                        .map_err(|_| ApiError::invalid("page", format!("must be a whole number, not {p:?}")))
                })?,
                50,
            )?;
            let list = state.store.list_activities(page.offset(), page.per_page() + 1).await?;
            let mut body = String::from("<div id=\"activity\" data-live>");
            activity_table(&mut body, &list[..list.len().min(50)]);
            body.push_str("</div><nav class=\"pager\" aria-label=\"Pages\">");
            if page.has_previous() {
                let _ = write!(body, "<a href=\"/console/activity?page={}\">Newer</a>", page.page() - 1);
            }
            if list.len() > 50 {
                let _ = write!(body, "<a href=\"/console/activity?page={}\">Older</a>", page.page() + 1);
            }
            body.push_str("</nav>");
            Ok(layout(&user, "/console/activity", "Activity", &body))
        }
        .await,
    )
}

// ---------------------------------------------------------------------------------------------------------------
// Creating teams, scripts and users (the REST API's own handlers and checks)

fn created_or_error(result: Result<(), ApiError>, back: &str) -> Response {
    match result {
        Ok(()) => Redirect::to(back).into_response(),
        Err(e) => error_page(&e),
    }
}

pub async fn create_team(State(state): State<SharedState>, user: ConsoleUser, axum::Form(form): Form) -> Response {
    if let Some(refused) = user.csrf_refusal(&form) {
        return refused;
    }
    let request = herd_proto::fleet::CreateTeamRequest {
        name: form.get("name").cloned().unwrap_or_default(),
        description: None,
        secrets: None,
    };
    let result = crate::app::teams::create(&state, &user.auth, request).await;
    created_or_error(result.map(|_| ()), "/console/teams")
}

pub async fn create_script(State(state): State<SharedState>, user: ConsoleUser, axum::Form(form): Form) -> Response {
    if let Some(refused) = user.csrf_refusal(&form) {
        return refused;
    }
    let name = form.get("name").map(|n| n.trim().to_string()).unwrap_or_default();
    let contents = form_file(&form, "contents");
    let added = crate::app::scripts::add(&state, &user.auth, form_team(&form), &name, &contents).await;
    created_or_error(added.map(|_| ()), "/console/scripts")
}

pub async fn create_user(State(state): State<SharedState>, user: ConsoleUser, axum::Form(form): Form) -> Response {
    if let Some(refused) = user.csrf_refusal(&form) {
        return refused;
    }
    let field = |k: &str| form.get(k).cloned().unwrap_or_default();
    let request = serde_json::from_value::<herd_proto::fleet::CreateUserRequest>(serde_json::json!({
        "name": field("name"), "email": field("email"), "password": field("password"), "global_role": field("global_role"),
    }));
    let result = match request {
        Ok(request) => crate::app::users::create(&state, &user.auth, request).await.map(|_| ()),
        Err(e) => Err(ApiError::invalid("user", e.to_string())),
    };
    created_or_error(result, "/console/users")
}

pub async fn create_profile(State(state): State<SharedState>, user: ConsoleUser, axum::Form(form): Form) -> Response {
    if let Some(refused) = user.csrf_refusal(&form) {
        return refused;
    }
    let file_name = form.get("file_name").map(|n| n.trim().to_string()).unwrap_or_default();
    let contents = form_file(&form, "contents");
    let added = crate::app::profiles::add(&state, &user.auth, form_team(&form), &file_name, contents.as_bytes());
    created_or_error(added.await.map(|_| ()), "/console/profiles")
}

// ---------------------------------------------------------------------------------------------------------------
// Deleting (the REST API's own handlers)

pub async fn delete_policy(
    State(state): State<SharedState>,
    user: ConsoleUser,
    Path(id): Path<String>,
    axum::Form(form): Form,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form) {
        return refused;
    }
    let result = async {
        let id: i64 = id.parse().map_err(|_| ApiError::NotFound("policy"))?;
        if form.get("confirm").map(String::as_str) != Some("yes") {
            return Err(ApiError::invalid("confirm", "tick the box to confirm"));
        }
        let policy = crate::access::policy(&state, &user.auth, id, Action::Read).await?;
        crate::app::policies::delete(&state, &user.auth, policy.team_id, vec![id]).await.map(|_| ())
    }
    .await;
    created_or_error(result, "/console/policies")
}

pub async fn delete_script(
    State(state): State<SharedState>,
    user: ConsoleUser,
    Path(id): Path<String>,
    axum::Form(form): Form,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form) {
        return refused;
    }
    let result = match id.parse::<i64>() {
        Ok(id) => crate::app::scripts::delete(&state, &user.auth, id).await,
        Err(_) => Err(ApiError::NotFound("script")),
    };
    created_or_error(result, "/console/scripts")
}

pub async fn delete_profile(
    State(state): State<SharedState>,
    user: ConsoleUser,
    Path(uuid): Path<String>,
    axum::Form(form): Form,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form) {
        return refused;
    }
    let result = crate::app::profiles::delete(&state, &user.auth, &uuid).await;
    created_or_error(result, "/console/profiles")
}
