//! Hosts: listing and counting with Fleet's filters, the single-host view, delete, refetch, transfer.

use super::AfterCommit;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::paging::{Page, integer_param};
use crate::state::{SharedState, now_ms};
use crate::wire;
use herd_core::roles::{Action, Scope};
use herd_store::{HostFilter, HostOrder, HostRecord, StatusCondition};
use std::collections::HashMap;

/// Parameters Fleet clients send that change only what Fleet adds to each host, not which hosts match:
/// accepted and ignored. Any other unknown parameter is refused, so a filter herd does not know never
/// silently widens a listing (a script deleting "failing hosts" must not get every host).
const IGNORED_PARAMS: &[&str] =
    &["device_mapping", "populate_software", "populate_policies", "disable_failing_policies", "populate_labels"];

/// Fleet's host-list filters for data herd does not have: refused with the feature they need, so a script
/// learns why rather than seeing "unsupported parameter" (and never gets a wider listing than it asked for).
const UNSUPPORTED_FILTERS: &[(&str, &str)] = &[
    ("os_id", "the operating system inventory (os_id) is not supported yet; use os_name with os_version"),
    (
        "os_version_id",
        "the operating system inventory (os_version_id) is not supported yet; use os_name with os_version",
    ),
    ("mdm_id", "MDM solutions are not supported"),
    ("mdm_enrollment_status", "MDM enrollment is not supported"),
    ("connected_to_dep", "Apple Business Manager (DEP) is not supported"),
    ("munki_issue_id", "Munki is not supported"),
    ("software_id", "the software inventory is not supported yet"),
    ("software_version_id", "the software inventory is not supported yet"),
    ("software_title_id", "the software inventory is not supported yet"),
    ("software_status", "software installs are not supported yet"),
    ("vulnerability", "vulnerability detection is not supported yet"),
    ("bootstrap_package", "bootstrap packages (macOS MDM) are not supported"),
    ("macos_settings_disk_encryption", "disk encryption settings are not supported yet"),
    ("os_settings_disk_encryption", "disk encryption settings are not supported yet"),
];

/// A host listing's filter, order and page, parsed from Fleet's query parameters and narrowed to what the
/// actor may read.
pub struct ListQuery {
    pub filter: HostFilter,
    pub order: HostOrder,
    pub descending: bool,
    pub page: Page,
}

impl ListQuery {
    /// Parses Fleet's host-list parameters (the REST list and count, and the console's hosts page). Counts take
    /// the listing's filters and ignore its paging (`with_paging` false).
    pub fn parse(params: &HashMap<String, String>, auth: &AuthUser, with_paging: bool) -> Result<ListQuery, ApiError> {
        const KNOWN: &[&str] = &[
            "page",
            "per_page",
            "order_key",
            "order_direction",
            "query",
            "status",
            "team_id",
            "policy_id",
            "policy_response",
            "os_settings",
            "macos_settings",
            "profile_uuid",
            "profile_status",
            "os_name",
            "os_version",
            "low_disk_space",
            "label_id",
        ];
        if let Some((name, feature)) = UNSUPPORTED_FILTERS.iter().find(|(name, _)| params.contains_key(*name)) {
            return Err(ApiError::invalid(*name, format!("{name}: {feature}")));
        }
        if let Some(unknown) =
            params.keys().find(|k| !KNOWN.contains(&k.as_str()) && !IGNORED_PARAMS.contains(&k.as_str()))
        {
            return Err(ApiError::invalid(unknown.clone(), "unsupported parameter"));
        }
        let mut filter = HostFilter { visible_teams: auth.actor.visible_teams(), ..Default::default() };
        if let Some(team) = integer_param(params, "team_id")? {
            // Fleet's convention: team_id=0 means "hosts in no team".
            if team == 0 {
                auth.require(Action::Read, Scope::Global)?;
                filter.team = Some(None);
            } else {
                auth.require(Action::Read, Scope::Team(team))?;
                filter.team = Some(Some(team));
            }
        }
        filter.status = match params.get("status").map(String::as_str) {
            None | Some("") => None,
            Some("online") => Some(StatusCondition::Online),
            Some("offline") => Some(StatusCondition::Offline),
            // Fleet's "mia" (missing in action) is its older name for missing: not seen for 30 days.
            Some("missing") | Some("mia") => Some(StatusCondition::Missing),
            Some("new") => Some(StatusCondition::New),
            Some(other) => {
                return Err(ApiError::invalid(
                    "status",
                    format!("unknown status {other:?}; expected online, offline, missing, mia or new"),
                ));
            }
        };
        let non_empty = |name: &str| params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        // As in Fleet, the two go together: herd keeps one label per host ("Ubuntu 22.04.3").
        filter.os_version = match (non_empty("os_name"), non_empty("os_version")) {
            (None, None) => None,
            (Some(name), Some(version)) => Some(format!("{name} {version}")),
            (Some(_), None) => return Err(ApiError::invalid("os_version", "required with os_name")),
            (None, Some(_)) => return Err(ApiError::invalid("os_name", "required with os_version")),
        };
        filter.low_disk_space_gb = match integer_param(params, "low_disk_space")? {
            None => None,
            Some(gb) if (1..=100).contains(&gb) => Some(gb),
            Some(_) => return Err(ApiError::invalid("low_disk_space", "a number of GB from 1 to 100")),
        };
        filter.label_id = integer_param(params, "label_id")?;
        let policy_id = integer_param(params, "policy_id")?;
        filter.policy_response = match (policy_id, params.get("policy_response").map(String::as_str)) {
            (None, None) => None,
            (Some(id), Some("passing")) => Some((id, true)),
            (Some(id), Some("failing")) => Some((id, false)),
            (Some(_), Some(other)) => {
                return Err(ApiError::invalid(
                    "policy_response",
                    format!("expected passing or failing, not {other:?}"),
                ));
            }
            (Some(_), None) => return Err(ApiError::invalid("policy_response", "required with policy_id")),
            (None, Some(_)) => return Err(ApiError::invalid("policy_id", "required with policy_response")),
        };
        let profile_state = |name: &str| -> Result<Option<herd_core::profiles::Status>, ApiError> {
            match params.get(name).map(String::as_str) {
                None | Some("") => Ok(None),
                Some(v) => herd_core::profiles::Status::parse(v).map(Some).ok_or_else(|| {
                    ApiError::invalid(name, format!("expected verified, verifying, pending or failed, not {v:?}"))
                }),
            }
        };
        filter.profiles_status = match profile_state("os_settings")? {
            Some(status) => Some(status),
            None => profile_state("macos_settings")?,
        };
        filter.profile_status =
            match (params.get("profile_uuid").filter(|u| !u.is_empty()), profile_state("profile_status")?) {
                (None, None) => None,
                (Some(uuid), Some(status)) => Some((uuid.clone(), status)),
                (Some(_), None) => return Err(ApiError::invalid("profile_status", "required with profile_uuid")),
                (None, Some(_)) => return Err(ApiError::invalid("profile_uuid", "required with profile_status")),
            };
        filter.query = params.get("query").filter(|q| !q.trim().is_empty()).cloned();
        if filter.query.as_ref().is_some_and(|q| q.len() > 255) {
            return Err(ApiError::invalid("query", "at most 255 characters"));
        }
        let order = match params.get("order_key").map(String::as_str) {
            None | Some("") => HostOrder::Id,
            Some(key) => HostOrder::parse(key)
                .ok_or_else(|| ApiError::invalid("order_key", format!("cannot order hosts by {key:?}")))?,
        };
        let descending = match params.get("order_direction").map(String::as_str) {
            None | Some("") | Some("asc") => false,
            Some("desc") => true,
            Some(other) => {
                return Err(ApiError::invalid("order_direction", format!("expected asc or desc, not {other:?}")));
            }
        };
        // Counts take the listing's filters and ignore its paging.
        let page =
            if with_paging { Page::from_params(params, crate::paging::DEFAULT_PER_PAGE)? } else { Page::default() };
        Ok(ListQuery { filter, order, descending, page })
    }
}

/// Status filters run in SQL on last-seen times; write this server's pending ones first so a host that just
/// checked in here is online in the listing too. (Other servers' pending times are at most one flush period
/// old, well inside the one-minute grace of the online rule.)
async fn flush_before_status_filter(state: &SharedState, filter: &HostFilter) -> Result<(), ApiError> {
    if filter.status.is_some() {
        super::seen::flush(state).await.map_err(ApiError::Internal)?;
    }
    Ok(())
}

/// The hosts of a listing's page, each with its number of failing policies.
pub async fn list(state: &SharedState, query: &ListQuery) -> Result<Vec<(HostRecord, i64)>, ApiError> {
    flush_before_status_filter(state, &query.filter).await?;
    let page = query.page;
    let records = state
        .store
        .list_hosts(&query.filter, query.order, query.descending, page.offset(), page.per_page(), now_ms())
        .await?;
    let ids: Vec<i64> = records.iter().map(|r| r.id).collect();
    let failing = state.store.failing_policy_counts(&ids).await?;
    Ok(records
        .into_iter()
        .map(|record| {
            let count = failing.get(&record.id).copied().unwrap_or(0);
            (record, count)
        })
        .collect())
}

/// How many hosts a listing matches, paging aside.
pub async fn count(state: &SharedState, query: &ListQuery) -> Result<i64, ApiError> {
    flush_before_status_filter(state, &query.filter).await?;
    Ok(state.store.count_hosts(&query.filter, now_ms()).await?)
}

/// A single host with every policy in its scope and its answers.
pub async fn view(state: &SharedState, record: HostRecord) -> Result<herd_proto::fleet::Host, ApiError> {
    let answers = state.store.host_policy_answers(record.id, record.team_id).await?;
    let deferrals = super::deferrals::of_host(state, record.id).await?;
    let profiles = super::profiles::of_host(state, record.id).await?;
    let labels = state.store.host_labels(record.id).await?;
    let mut host = view_with(state, record, &answers);
    host.labels = Some(labels.into_iter().map(wire::host_label).collect());
    host.deferrals = Some(deferrals);
    host.mdm = Some(herd_proto::fleet::HostMdm { profiles });
    Ok(host)
}

/// The single-host view from answers already read.
pub fn view_with(
    state: &SharedState,
    record: HostRecord,
    answers: &[herd_store::HostPolicyAnswer],
) -> herd_proto::fleet::Host {
    let failing = answers.iter().filter(|a| a.response == herd_core::policy::PolicyResponse::Fail).count() as i64;
    let mut host = wire::host(state, record, failing, now_ms());
    host.policies = Some(answers.iter().cloned().map(wire::host_policy).collect());
    host
}

/// Deletes a host the actor may write. Its cached identity and pending seen time go with it.
pub async fn delete(state: &SharedState, auth: &AuthUser, id: i64) -> Result<(), ApiError> {
    crate::access::host(state, auth, id, Action::Write).await?;
    if !state.store.delete_host(id, now_ms()).await? {
        return Err(ApiError::NotFound("host"));
    }
    tracing::info!(host_id = id, user_id = auth.user.id, "host deleted");
    Ok(AfterCommit::new().deleted([id]).apply(state, Some(auth)).await?)
}

/// Asks a host to send its vitals again at its next check-in.
pub async fn refetch(state: &SharedState, auth: &AuthUser, id: i64) -> Result<(), ApiError> {
    crate::access::host(state, auth, id, Action::Refetch).await?;
    if !state.store.request_refetch(id, now_ms()).await? {
        return Err(ApiError::NotFound("host"));
    }
    Ok(AfterCommit::new().evict([id]).apply(state, Some(auth)).await?)
}

/// Most hosts one transfer may move.
const MOST_HOSTS_PER_TRANSFER: usize = 100_000;

/// Moves hosts to a team (None: no team) and records `transferred_hosts` with the hosts that moved. Unknown ids
/// are ignored (as in Fleet), and so are hosts the actor cannot read: the same answer either way; a readable
/// host the actor may not write refuses the whole transfer.
pub async fn transfer(state: &SharedState, auth: &AuthUser, target: Option<i64>, ids: &[i64]) -> Result<(), ApiError> {
    crate::access::scope_field(state, auth, target, Action::Write, "team_id").await?;
    if ids.len() > MOST_HOSTS_PER_TRANSFER {
        return Err(ApiError::invalid("hosts", format!("at most {MOST_HOSTS_PER_TRANSFER} hosts per request")));
    }
    let now = now_ms();
    let filter = HostFilter { ids: Some(ids.to_vec()), ..Default::default() };
    let hosts = state.store.list_hosts(&filter, HostOrder::Id, false, 0, ids.len() as i64 + 1, now).await?;
    let hosts: Vec<HostRecord> = hosts.into_iter().filter(|h| crate::access::readable(auth, h)).collect();
    for host in &hosts {
        auth.require(Action::Write, Scope::of_team(host.team_id))?;
    }
    let moved: Vec<i64> = hosts.iter().map(|h| h.id).collect();
    state.store.transfer_hosts(target, &moved, now).await.map_err(|e| match e {
        herd_store::StoreError::NotFound("team") => ApiError::invalid("team_id", "team does not exist"),
        other => other.into(),
    })?;
    if moved.is_empty() {
        return Ok(());
    }
    let details = serde_json::json!({"team_id": target, "host_ids": moved});
    Ok(AfterCommit::new().evict(moved).record("transferred_hosts", details).apply(state, Some(auth)).await?)
}

/// Each host's policies with its answers (Fleet's `populate_policies` on a listing).
pub async fn policies_of(
    state: &SharedState,
    record: &HostRecord,
) -> Result<Vec<herd_proto::fleet::HostPolicy>, ApiError> {
    let answers = state.store.host_policy_answers(record.id, record.team_id).await?;
    Ok(answers.into_iter().map(wire::host_policy).collect())
}

/// Fleet's `POST /hosts/delete`: the hosts named by id, or matching a listing's filters (never both, never
/// neither: an empty body must not delete every host). Filters match only hosts the actor can read; an id
/// naming none (missing or hidden) refuses the request (404), and so does a readable host the actor may not
/// write (403). Answers how many were deleted.
pub async fn delete_many(
    state: &SharedState,
    auth: &AuthUser,
    ids: Option<&[i64]>,
    filters: Option<&HashMap<String, String>>,
) -> Result<usize, ApiError> {
    let now = now_ms();
    let filter = match (ids, filters) {
        (Some(_), Some(_)) => return Err(ApiError::invalid("filters", "give ids or filters, not both")),
        (None, None) => return Err(ApiError::invalid("ids", "give ids or filters")),
        (Some(ids), None) => {
            if ids.len() > MOST_HOSTS_PER_TRANSFER {
                return Err(ApiError::invalid("ids", format!("at most {MOST_HOSTS_PER_TRANSFER} hosts per request")));
            }
            HostFilter { ids: Some(ids.to_vec()), visible_teams: auth.actor.visible_teams(), ..Default::default() }
        }
        (None, Some(params)) => {
            if params.is_empty() {
                return Err(ApiError::invalid(
                    "filters",
                    "at least one filter; to delete every host, say so with status or team_id",
                ));
            }
            let query = ListQuery::parse(params, auth, false).map_err(|e| match e {
                ApiError::Validation { field, reason } => ApiError::invalid(format!("filters.{field}"), reason),
                other => other,
            })?;
            flush_before_status_filter(state, &query.filter).await?;
            query.filter
        }
    };
    let limit = MOST_HOSTS_PER_TRANSFER as i64 + 1;
    let hosts = state.store.list_hosts(&filter, HostOrder::Id, false, 0, limit, now).await?;
    if hosts.len() > MOST_HOSTS_PER_TRANSFER {
        return Err(ApiError::invalid("filters", format!("matches more than {MOST_HOSTS_PER_TRANSFER} hosts")));
    }
    let hosts: Vec<HostRecord> = hosts.into_iter().filter(|h| crate::access::readable(auth, h)).collect();
    if let Some(ids) = ids {
        // Unlike a transfer, a deletion by ids is all or nothing: an id that names no host the actor can read
        // (missing or hidden, the same answer) refuses the request rather than deleting the rest.
        let named: std::collections::BTreeSet<i64> = ids.iter().copied().collect();
        if named.len() != hosts.len() {
            return Err(ApiError::NotFound("host"));
        }
    }
    for host in &hosts {
        auth.require(Action::Write, Scope::of_team(host.team_id))?;
    }
    let mut deleted = Vec::with_capacity(hosts.len());
    for host in &hosts {
        if state.store.delete_host(host.id, now).await? {
            deleted.push(host.id);
        }
    }
    tracing::info!(hosts = deleted.len(), user_id = auth.user.id, "hosts deleted");
    let count = deleted.len();
    AfterCommit::new().deleted(deleted).apply(state, Some(auth)).await?;
    Ok(count)
}

/// Fleet's host summary: the listing's hosts by status and platform.
pub struct HostSummary {
    pub team_id: Option<i64>,
    pub totals: i64,
    pub online: i64,
    pub offline: i64,
    pub missing: i64,
    pub new: i64,
    pub low_disk_space: Option<i64>,
    pub platforms: Vec<(String, i64)>,
}

/// Fleet's `GET /host_summary`: `team_id`, `low_disk_space`, and `platform` (a family: `darwin`, `windows`,
/// `linux`, `chrome`; Fleet's `ios` and `ipados` are valid and have no hosts here, as herd manages none).
pub async fn summary(
    state: &SharedState,
    auth: &AuthUser,
    params: &HashMap<String, String>,
) -> Result<HostSummary, ApiError> {
    use herd_core::platform::PlatformFamily;
    if let Some(unknown) = params.keys().find(|k| !["team_id", "low_disk_space", "platform"].contains(&k.as_str())) {
        return Err(ApiError::invalid(unknown.clone(), "unsupported parameter"));
    }
    // None: every platform; Some(None): a platform herd has no hosts of.
    let family: Option<Option<PlatformFamily>> = match params.get("platform").map(|p| p.trim().to_ascii_lowercase()) {
        None => None,
        Some(p) if p.is_empty() => None,
        Some(p) if p == "ios" || p == "ipados" => Some(None),
        Some(p) => Some(Some(
            PlatformFamily::parse(&p)
                .ok_or_else(|| ApiError::invalid("platform", "one of darwin, windows, linux, chrome, ios, ipados"))?,
        )),
    };
    let team_only: HashMap<String, String> =
        params.iter().filter(|(k, _)| *k == "team_id").map(|(k, v)| (k.clone(), v.clone())).collect();
    let base = ListQuery::parse(&team_only, auth, false)?.filter;
    super::seen::flush(state).await.map_err(ApiError::Internal)?;
    let now = now_ms();
    // A family is decided from each host's platform as `all_linux_count` decides it, so the filtered counts
    // are per-platform counts of that family, summed.
    let in_family = |platform: &str| match family {
        None => true,
        Some(family) => family.is_some() && PlatformFamily::of_host_platform(platform, "") == family,
    };
    let platforms_of = |filter: HostFilter| async move {
        let counts = state.store.host_platform_counts(&filter, now).await?;
        Ok::<_, ApiError>(counts.into_iter().filter(|(platform, _)| in_family(platform)).collect::<Vec<_>>())
    };
    let count = |status: Option<StatusCondition>| {
        let filter = HostFilter { status, ..base.clone() };
        async move {
            match family {
                None => Ok(state.store.count_hosts(&filter, now).await?),
                Some(_) => Ok::<_, ApiError>(platforms_of(filter).await?.iter().map(|(_, n)| n).sum()),
            }
        }
    };
    let without_platform: HashMap<String, String> =
        params.iter().filter(|(k, _)| *k != "platform").map(|(k, v)| (k.clone(), v.clone())).collect();
    let low_disk_space = match ListQuery::parse(&without_platform, auth, false)?.filter.low_disk_space_gb {
        Some(gb) => Some(
            platforms_of(HostFilter { low_disk_space_gb: Some(gb), ..base.clone() })
                .await?
                .iter()
                .map(|(_, n)| n)
                .sum(),
        ),
        None => None,
    };
    Ok(HostSummary {
        team_id: base.team.flatten(),
        totals: count(None).await?,
        online: count(Some(StatusCondition::Online)).await?,
        offline: count(Some(StatusCondition::Offline)).await?,
        missing: count(Some(StatusCondition::Missing)).await?,
        new: count(Some(StatusCondition::New)).await?,
        low_disk_space,
        platforms: platforms_of(base.clone()).await?,
    })
}

/// The host fields a report may have as columns, in the order Fleet's host objects list them.
pub const REPORT_COLUMNS: &[&str] = &[
    "id",
    "uuid",
    "osquery_host_id",
    "hostname",
    "display_name",
    "computer_name",
    "platform",
    "platform_like",
    "os_version",
    "build",
    "osquery_version",
    "hardware_serial",
    "hardware_model",
    "hardware_vendor",
    "cpu_brand",
    "cpu_type",
    "cpu_physical_cores",
    "cpu_logical_cores",
    "memory",
    "uptime",
    "primary_ip",
    "primary_mac",
    "gigs_disk_space_available",
    "percent_disk_space_available",
    "gigs_total_disk_space",
    "distributed_interval",
    "config_tls_refresh",
    "logger_tls_period",
    "team_id",
    "team_name",
    "status",
    "seen_time",
    "created_at",
    "last_enrolled_at",
    "detail_updated_at",
    "refetch_requested",
    "policy_updated_at",
    "scripts_enabled",
];

/// Hosts read per query while a report streams: memory stays bounded however many hosts match.
const REPORT_PAGE: i64 = 1000;

/// A host report's rows: Fleet's `GET /hosts/report?format=csv` (its `columns`, the listing's filters and
/// order). The header is checked before anything is sent; the rows then stream a page of hosts at a time.
pub struct HostReport {
    pub columns: Vec<&'static str>,
    query: ListQuery,
}

impl HostReport {
    pub fn parse(params: &HashMap<String, String>, auth: &AuthUser) -> Result<HostReport, ApiError> {
        match params.get("format").map(String::as_str) {
            None | Some("csv") => {}
            Some(other) => return Err(ApiError::invalid("format", format!("only csv is supported, not {other:?}"))),
        }
        let columns = match params.get("columns").map(|c| c.trim()).filter(|c| !c.is_empty()) {
            None => REPORT_COLUMNS.to_vec(),
            Some(list) => list
                .split(',')
                .map(|name| {
                    let name = name.trim();
                    REPORT_COLUMNS
                        .iter()
                        .find(|c| **c == name)
                        .copied()
                        .ok_or_else(|| ApiError::invalid("columns", format!("no host column {name:?}")))
                })
                .collect::<Result<_, _>>()?,
        };
        let listing: HashMap<String, String> = params
            .iter()
            .filter(|(k, _)| !["format", "columns", "page", "per_page"].contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(HostReport { columns, query: ListQuery::parse(&listing, auth, false)? })
    }

    /// The CSV header line.
    pub fn header(&self) -> String {
        csv_line(self.columns.iter().map(|c| c.to_string()))
    }

    /// The CSV lines of the hosts from `offset`, one page of them; empty when the listing is done.
    pub async fn page(&self, state: &SharedState, offset: i64) -> Result<String, ApiError> {
        if offset == 0 {
            flush_before_status_filter(state, &self.query.filter).await?;
        }
        let now = now_ms();
        let records = state
            .store
            .list_hosts(&self.query.filter, self.query.order, self.query.descending, offset, REPORT_PAGE, now)
            .await?;
        let ids: Vec<i64> = records.iter().map(|r| r.id).collect();
        let failing = state.store.failing_policy_counts(&ids).await?;
        let mut out = String::new();
        for record in records {
            let count = failing.get(&record.id).copied().unwrap_or(0);
            let host = serde_json::to_value(wire::host(state, record, count, now))
                .map_err(|e| ApiError::Internal(e.into()))?;
            out.push_str(&csv_line(self.columns.iter().map(|c| csv_value(&host[*c]))));
        }
        Ok(out)
    }

    pub const PAGE: i64 = REPORT_PAGE;
}

fn csv_value(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// One CSV record (RFC 4180): a field with a comma, quote or line break is quoted, its quotes doubled.
fn csv_line(fields: impl Iterator<Item = String>) -> String {
    let mut line = String::new();
    for (i, field) in fields.enumerate() {
        if i > 0 {
            line.push(',');
        }
        if field.contains([',', '"', '\n', '\r']) {
            line.push('"');
            line.push_str(&field.replace('"', "\"\""));
            line.push('"');
        } else {
            line.push_str(&field);
        }
    }
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod report_tests {
    use super::*;

    #[test]
    fn csv_lines_quote_what_needs_it() {
        let cases: &[(&[&str], &str)] = &[
            (&["a", "b"], "a,b\r\n"),
            (&["", ""], ",\r\n"),
            (&["a,b"], "\"a,b\"\r\n"),
            (&["say \"hi\""], "\"say \"\"hi\"\"\"\r\n"),
            (&["two\nlines", "x"], "\"two\nlines\",x\r\n"),
        ];
        for (fields, expected) in cases {
            assert_eq!(csv_line(fields.iter().map(|f| f.to_string())), *expected, "{fields:?}");
        }
    }

    #[test]
    fn every_report_column_is_a_scalar_host_field() {
        let host = serde_json::to_value(herd_proto::fleet::Host::default()).unwrap();
        for column in REPORT_COLUMNS {
            let value = host.get(*column).unwrap_or_else(|| panic!("{column} is not a host field"));
            assert!(!value.is_object() && !value.is_array(), "{column} is not a scalar");
        }
    }
}
