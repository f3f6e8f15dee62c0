//! Labels: listing, creating (dynamic, manual, criteria), editing, deleting, Fleet's label specs, and turning
//! the label names of a policy's or profile's scope into a checked scope. Membership itself is decided by
//! the store, in the transactions that change its inputs.

use super::AfterCommit;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::{SharedState, now_ms};
use herd_core::labels::{Criterion, LabelKind, LabelScope};
use herd_core::roles::{Action, Scope};
use herd_proto::fleet::{LabelInput, LabelPatchInput, LabelSpec};
use herd_store::{LabelPatch, LabelRecord, NewLabel};
use serde_json::json;

/// Longest dynamic label query accepted (as for policies).
const MAX_QUERY_LEN: usize = super::policies::MAX_QUERY_LEN;

/// Most hosts named in one manual label write.
const MOST_HOSTS: usize = 100_000;

/// Platforms Fleet accepts for a label.
const PLATFORMS: &[&str] = &["", "darwin", "windows", "linux", "ubuntu", "centos"];

/// Any signed-in user may read labels (a team maintainer scopes the team's policies with them); only global
/// maintainers and admins write them (a label groups hosts of every team).
fn may_read(auth: &AuthUser) -> Result<(), ApiError> {
    if auth.actor.global_role.is_some() || !auth.actor.team_roles.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// Every label; host counts over the hosts the user may read.
pub async fn list(state: &SharedState, auth: &AuthUser) -> Result<Vec<LabelRecord>, ApiError> {
    may_read(auth)?;
    Ok(state.store.list_labels(auth.actor.visible_teams().as_deref()).await?)
}

/// A label by id, with a manual label's members (those the user may read).
pub async fn get(state: &SharedState, auth: &AuthUser, id: i64) -> Result<(LabelRecord, Option<Vec<i64>>), ApiError> {
    may_read(auth)?;
    let mut label = state.store.get_label(id).await?.ok_or(ApiError::NotFound("label"))?;
    if let Some(teams) = auth.actor.visible_teams() {
        label.host_count = state.store.label_host_count(id, &teams).await?;
    }
    let members = members_of(state, auth, &label).await?;
    Ok((label, members))
}

/// A manual label's members the user may read (None for other kinds).
pub async fn members_of(
    state: &SharedState,
    auth: &AuthUser,
    label: &LabelRecord,
) -> Result<Option<Vec<i64>>, ApiError> {
    if label.kind == LabelKind::Manual { Ok(Some(members(state, auth, label.id).await?)) } else { Ok(None) }
}

pub async fn by_name(state: &SharedState, auth: &AuthUser, name: &str) -> Result<LabelRecord, ApiError> {
    may_read(auth)?;
    state.store.label_by_name(name).await?.ok_or(ApiError::NotFound("label"))
}

/// Ids of the label's members the user may read.
async fn members(state: &SharedState, auth: &AuthUser, id: i64) -> Result<Vec<i64>, ApiError> {
    let filter =
        herd_store::HostFilter { label_id: Some(id), visible_teams: auth.actor.visible_teams(), ..Default::default() };
    let hosts =
        state.store.list_hosts(&filter, herd_store::HostOrder::Id, false, 0, MOST_HOSTS as i64, now_ms()).await?;
    Ok(hosts.into_iter().map(|h| h.id).collect())
}

fn check_common(name: &str, description: &str) -> Result<(), ApiError> {
    herd_core::validate::display_name(name).map_err(|r| ApiError::invalid("name", format!("name {r}")))?;
    if description.len() > MAX_QUERY_LEN {
        return Err(ApiError::invalid("description", "must be at most 64 KiB"));
    }
    Ok(())
}

fn parse_criteria(value: &serde_json::Value) -> Result<Criterion, ApiError> {
    Criterion::parse(value).map_err(|reason| ApiError::invalid("criteria", reason))
}

/// Host ids of the hosts named by identifier (hostname, uuid, hardware serial, osquery host id or id), or
/// given by id. Names matching no host are left out, as Fleet does (a manual label may list machines not
/// enrolled yet).
async fn resolve_hosts(
    state: &SharedState,
    identifiers: Option<Vec<String>>,
    ids: Option<Vec<i64>>,
) -> Result<Option<Vec<i64>>, ApiError> {
    match (identifiers, ids) {
        (Some(_), Some(_)) => Err(ApiError::invalid(
            "hosts",
            "Only one of either \"hosts\" or \"host_ids\" can be included in the request.",
        )),
        (Some(names), None) => {
            if names.len() > MOST_HOSTS {
                return Err(ApiError::invalid("hosts", format!("at most {MOST_HOSTS} hosts at once")));
            }
            Ok(Some(state.store.host_ids_by_identifiers(&names).await?))
        }
        (None, Some(ids)) => {
            if ids.len() > MOST_HOSTS {
                return Err(ApiError::invalid("host_ids", format!("at most {MOST_HOSTS} hosts at once")));
            }
            Ok(Some(state.store.existing_host_ids(&ids).await?))
        }
        (None, None) => Ok(None),
    }
}

/// The label a create asks for, checked (Fleet's rules: `criteria`, `query` and `hosts` exclude one another).
async fn new_label(state: &SharedState, auth: &AuthUser, input: LabelInput) -> Result<NewLabel, ApiError> {
    let description = input.description.unwrap_or_default();
    check_common(&input.name, &description)?;
    let platform = input.platform.unwrap_or_default().trim().to_string();
    if !PLATFORMS.contains(&platform.as_str()) {
        return Err(ApiError::invalid("platform", format!("invalid platform: {platform}")));
    }
    let query = input.query.unwrap_or_default();
    let names_hosts = input.hosts.is_some() || input.host_ids.is_some();
    let kind = match (&input.criteria, query.trim().is_empty(), names_hosts) {
        (Some(_), true, false) => LabelKind::Criteria,
        (Some(_), _, _) => {
            return Err(ApiError::invalid(
                "criteria",
                "Only one of \"criteria\", \"query\" or \"hosts/host_ids\" can be included in the request.",
            ));
        }
        (None, false, true) => {
            return Err(ApiError::invalid(
                "query",
                "Only one of \"criteria\", \"query\" or \"hosts/host_ids\" can be included in the request.",
            ));
        }
        (None, false, false) => LabelKind::Dynamic,
        (None, true, _) => LabelKind::Manual,
    };
    if let Some(named) = input.label_membership_type.as_deref()
        && LabelKind::parse(named) != Some(kind)
    {
        return Err(ApiError::invalid(
            "label_membership_type",
            format!("{named:?} does not match the label's fields (they make a {} label)", kind.as_str()),
        ));
    }
    if query.len() > MAX_QUERY_LEN {
        return Err(ApiError::invalid("query", format!("query must be at most {MAX_QUERY_LEN} bytes")));
    }
    let criteria = input.criteria.as_ref().map(parse_criteria).transpose()?;
    let host_ids = resolve_hosts(state, input.hosts, input.host_ids).await?.unwrap_or_default();
    Ok(NewLabel {
        name: input.name.trim().to_string(),
        description,
        query,
        platform,
        kind,
        criteria,
        host_ids,
        author_id: Some(auth.user.id),
    })
}

pub async fn create(state: &SharedState, auth: &AuthUser, input: LabelInput) -> Result<LabelRecord, ApiError> {
    auth.require(Action::Write, Scope::Global)?;
    let label = new_label(state, auth, input).await?;
    let created = state.store.create_label(&label, now_ms()).await.map_err(name_taken)?;
    let details = json!({"label_id": created.id, "label_name": created.name});
    AfterCommit::new().reload_settings().record("created_label", details).apply(state, Some(auth)).await?;
    Ok(created)
}

/// A duplicate name is a mistake in the `name` field.
fn name_taken(err: herd_store::StoreError) -> ApiError {
    match err {
        herd_store::StoreError::Conflict(reason) if reason.contains("name already exists") => {
            ApiError::invalid("name", reason)
        }
        other => other.into(),
    }
}

pub async fn patch(
    state: &SharedState,
    auth: &AuthUser,
    id: i64,
    input: LabelPatchInput,
) -> Result<LabelRecord, ApiError> {
    auth.require(Action::Write, Scope::Global)?;
    let current = state.store.get_label(id).await?.ok_or(ApiError::NotFound("label"))?;
    if current.builtin {
        return Err(ApiError::invalid("label_type", format!("cannot modify built-in label '{}'", current.name)));
    }
    let name = input.name.map(|n| n.trim().to_string());
    check_common(name.as_deref().unwrap_or(&current.name), input.description.as_deref().unwrap_or(""))?;
    let patch = LabelPatch {
        name,
        description: input.description,
        host_ids: resolve_hosts(state, input.hosts, input.host_ids).await?,
        criteria: input.criteria.as_ref().map(parse_criteria).transpose()?,
    };
    let label = state.store.update_label(id, &patch, now_ms()).await.map_err(name_taken)?;
    let details = json!({"label_id": id, "label_name": label.name});
    AfterCommit::new().reload_settings().record("edited_label", details).apply(state, Some(auth)).await?;
    Ok(label)
}

/// Deletes a label; one in use is refused (409, listing its users) unless `force`.
pub async fn delete(state: &SharedState, auth: &AuthUser, id: i64, force: bool) -> Result<(), ApiError> {
    auth.require(Action::Write, Scope::Global)?;
    let label = state.store.get_label(id).await?.ok_or(ApiError::NotFound("label"))?;
    if label.builtin {
        return Err(ApiError::invalid("name", format!("cannot delete built-in label '{}'", label.name)));
    }
    let deleted = state.store.delete_label(id, force, now_ms()).await?;
    let details = json!({"label_id": id, "label_name": deleted.name});
    AfterCommit::new().reload_settings().record("deleted_label", details).apply(state, Some(auth)).await?;
    Ok(())
}

/// Fleet's `POST /spec/labels`: creates or updates labels by name. Everything is checked before anything is
/// written; an unchanged label is left alone. Returns each spec's name and whether it changed anything.
pub async fn apply_specs(
    state: &SharedState,
    auth: &AuthUser,
    specs: Vec<LabelSpec>,
    dry_run: bool,
) -> Result<Vec<(String, super::policies::SpecOutcome)>, ApiError> {
    use super::policies::SpecOutcome;
    auth.require(Action::Write, Scope::Global)?;
    let mut planned = Vec::with_capacity(specs.len());
    let mut seen = std::collections::HashSet::new();
    for (i, spec) in specs.into_iter().enumerate() {
        let at = |field: &str| format!("specs[{i}].{field}");
        let prefix = |e: ApiError| match e {
            ApiError::Validation { field, reason } => ApiError::Validation { field: at(&field), reason },
            other => other,
        };
        if spec.label_type.as_deref() == Some("builtin") {
            // Fleet's `get labels` output lists the built-in ones; applying it back changes nothing.
            continue;
        }
        let kind = spec.label_membership_type.clone();
        if kind.as_deref() == Some("dynamic") && spec.hosts.is_some() {
            return Err(ApiError::invalid(
                at("hosts"),
                format!("label {} is declared as dynamic but contains `hosts` key", spec.name),
            ));
        }
        if matches!(kind.as_deref(), Some("host_vitals" | "criteria")) && spec.criteria.is_none() {
            return Err(ApiError::invalid(
                at("criteria"),
                format!("label {} is declared as host vitals but contains no `criteria` key", spec.name),
            ));
        }
        if kind.as_deref() == Some("manual") && !spec.query.trim().is_empty() {
            return Err(ApiError::invalid(
                at("query"),
                format!("label {} is declared as manual but has a query", spec.name),
            ));
        }
        // A manual label without `hosts` has no members.
        let hosts = match (kind.as_deref(), spec.hosts) {
            (Some("manual"), None) => Some(Vec::new()),
            (_, hosts) => hosts,
        };
        let input = LabelInput {
            name: spec.name,
            description: Some(spec.description),
            query: Some(spec.query),
            platform: Some(spec.platform),
            criteria: spec.criteria,
            hosts,
            host_ids: None,
            label_membership_type: kind,
        };
        let label = new_label(state, auth, input).await.map_err(prefix)?;
        if !seen.insert(label.name.to_lowercase()) {
            return Err(ApiError::invalid(at("name"), "listed twice"));
        }
        planned.push(label);
    }
    let now = now_ms();
    let mut outcomes = Vec::new();
    for label in planned {
        let outcome = match state.store.label_by_name(&label.name).await? {
            Some(existing) if existing.builtin => {
                return Err(ApiError::invalid(
                    "specs",
                    format!("cannot modify or add built-in label '{}'", label.name),
                ));
            }
            Some(existing) => {
                if existing.kind != label.kind || existing.query != label.query || existing.platform != label.platform {
                    return Err(ApiError::invalid(
                        "specs",
                        format!(
                            "label '{}' exists as a {} label with another query or platform; delete it first to change \
                             its kind, query or platform",
                            label.name,
                            existing.kind.as_str()
                        ),
                    ));
                }
                let criteria = label.criteria.as_ref().map(|c| serde_json::to_value(c).unwrap_or_default());
                let stored =
                    existing.criteria.as_deref().and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok());
                let members = if label.kind == LabelKind::Manual {
                    let mut now_members = members(state, auth, existing.id).await?;
                    now_members.sort_unstable();
                    let mut wanted = label.host_ids.clone();
                    wanted.sort_unstable();
                    wanted.dedup();
                    (now_members != wanted).then_some(wanted)
                } else {
                    None
                };
                let patch = LabelPatch {
                    name: None,
                    description: (existing.description != label.description).then(|| label.description.clone()),
                    host_ids: members,
                    criteria: if criteria != stored { label.criteria.clone() } else { None },
                };
                if patch == LabelPatch::default() {
                    SpecOutcome::Unchanged
                } else {
                    if !dry_run {
                        state.store.update_label(existing.id, &patch, now).await?;
                    }
                    SpecOutcome::Updated
                }
            }
            None => {
                if !dry_run {
                    state.store.create_label(&label, now).await.map_err(name_taken)?;
                }
                SpecOutcome::Created
            }
        };
        outcomes.push((label.name, outcome));
    }
    if !dry_run && outcomes.iter().any(|(_, outcome)| *outcome != SpecOutcome::Unchanged) {
        let names: Vec<&str> = outcomes.iter().map(|(name, _)| name.as_str()).collect();
        let effects = AfterCommit::new().reload_settings().record("applied_spec_label", json!({"labels": names}));
        effects.apply(state, Some(auth)).await?;
    }
    Ok(outcomes)
}

/// Label names of a scope (Fleet's `labels_include_any`, `labels_include_all`, `labels_exclude_any`) turned
/// into label ids. A list that is None keeps `base`'s. Unknown names are refused naming the field; at most one
/// include list (Fleet's rule), and no label both included and excluded.
pub async fn scope_from_names(
    state: &SharedState,
    include_any: Option<Vec<String>>,
    include_all: Option<Vec<String>>,
    exclude_any: Option<Vec<String>>,
    base: Option<&LabelScope>,
) -> Result<LabelScope, ApiError> {
    if include_any.is_none() && include_all.is_none() && exclude_any.is_none() {
        return Ok(base.cloned().unwrap_or_default());
    }
    let names = state.store.label_names().await?;
    let by_name: std::collections::HashMap<&str, i64> = names.iter().map(|(id, name)| (name.as_str(), *id)).collect();
    let resolve =
        |field: &'static str, list: Option<Vec<String>>, kept: Option<&Vec<i64>>| -> Result<Vec<i64>, ApiError> {
            match list {
                None => Ok(kept.cloned().unwrap_or_default()),
                Some(list) => {
                    let mut ids = Vec::with_capacity(list.len());
                    for name in list {
                        let id = by_name
                            .get(name.trim())
                            .ok_or_else(|| ApiError::invalid(field, format!("no label named {:?}", name.trim())))?;
                        ids.push(*id);
                    }
                    ids.sort_unstable();
                    ids.dedup();
                    Ok(ids)
                }
            }
        };
    let scope = LabelScope {
        include_any: resolve("labels_include_any", include_any, base.map(|b| &b.include_any))?,
        include_all: resolve("labels_include_all", include_all, base.map(|b| &b.include_all))?,
        exclude_any: resolve("labels_exclude_any", exclude_any, base.map(|b| &b.exclude_any))?,
    };
    if !scope.include_any.is_empty() && !scope.include_all.is_empty() {
        return Err(ApiError::invalid(
            "labels_include_all",
            "can include at most one of labels_include_any or labels_include_all",
        ));
    }
    if let Some(both) =
        scope.exclude_any.iter().find(|id| scope.include_any.contains(id) || scope.include_all.contains(id))
    {
        let name = names.get(both).cloned().unwrap_or_default();
        return Err(ApiError::invalid(
            "labels_exclude_any",
            format!("label {name:?} cannot appear in both an include and an exclude list"),
        ));
    }
    Ok(scope)
}
