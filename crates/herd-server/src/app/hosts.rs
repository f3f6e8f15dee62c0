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
    &["device_mapping", "populate_software", "populate_policies", "disable_failing_policies"];

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
        ];
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
            Some("missing") => Some(StatusCondition::Missing),
            Some("new") => Some(StatusCondition::New),
            Some(other) => {
                return Err(ApiError::invalid(
                    "status",
                    format!("unknown status {other:?}; expected online, offline, missing or new"),
                ));
            }
        };
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
    let mut host = view_with(state, record, &answers);
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
