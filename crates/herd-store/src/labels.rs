//! Labels: definitions, membership, and what a change of membership does to the scopes that name it.
//!
//! Invariants (checked by `tests/policy_counts.rs` on both backends):
//! - `hosts.label_ids` is exactly the host's `label_membership` rows with `member = 1`, written in the same
//!   transaction (so a check-in plans from the host row alone, and its cache learns of a change through
//!   `host_changes`, noted in that transaction too).
//! - Every membership change happens with the host's row locked (`hosts::lock_host`/`lock_hosts`), and in the
//!   same transaction its effects are applied: a policy whose label scope the host leaves loses the host's
//!   answer (uncounted, its run forgotten so it is asked again at once should the host come back); a profile
//!   whose scope names a changed label gets a reconcile job for the host.
//! - Criteria labels are decided by `herd_core::labels::Criterion::matches` from what the transaction reads,
//!   whenever one of their inputs changes in it (a report's vitals or answers, a team move, a label answer,
//!   a manual edit), and for every host by the `label_refresh` job when a definition changes.

use crate::hosts::{HostLock, lock_host, lock_hosts, note_host_change};
use crate::policies::{CountDeltas, CountKey, add_delta, apply_count_deltas, parse_runs, runs_text};
use crate::sql::{Arg, SqlBuilder};
use crate::{Backend, NewJob, Result, Store, StoreError};
use herd_core::Millis;
use herd_core::jobs::JobPayload;
use herd_core::labels::{
    BUILTINS, Criterion, HostFacts, LabelAnswer, LabelKind, LabelScope, Node, ProfileStatusTerm, ScopeMode, VitalValue,
    evaluation_order, find_cycle,
};
use herd_core::policy::{PolicyResponse, count_delta};
use sqlx::{Acquire, AnyConnection, AssertSqlSafe, Row};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A label as views show it.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelRecord {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub query: String,
    pub platform: String,
    pub builtin: bool,
    pub kind: LabelKind,
    /// A criteria label's condition (JSON text).
    pub criteria: Option<String>,
    /// Why a criteria label has no members (an input it names was deleted).
    pub broken_reason: Option<String>,
    pub author_id: Option<i64>,
    pub host_count: i64,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A new label, already validated (name rules, the criterion parsed, the kind's fields present).
#[derive(Debug, Clone, PartialEq)]
pub struct NewLabel {
    pub name: String,
    pub description: String,
    pub query: String,
    pub platform: String,
    pub kind: LabelKind,
    pub criteria: Option<Criterion>,
    /// A manual label's members.
    pub host_ids: Vec<i64>,
    pub author_id: Option<i64>,
}

/// An edit of a label: what is Some changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LabelPatch {
    pub name: Option<String>,
    pub description: Option<String>,
    /// A manual label's members, replaced whole.
    pub host_ids: Option<Vec<i64>>,
    pub criteria: Option<Criterion>,
}

/// A host's label as its view shows it: a member, or a dynamic label whose query failed there.
#[derive(Debug, Clone, PartialEq)]
pub struct HostLabel {
    pub label: LabelRecord,
    pub member: bool,
    pub error: Option<String>,
}

/// Something that names a label, which a delete would change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelUser {
    Policy { id: i64, name: String },
    Profile { uuid: String, name: String },
    Label { id: i64, name: String },
}

impl std::fmt::Display for LabelUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LabelUser::Policy { id, name } => write!(f, "policy {name:?} (id {id})"),
            LabelUser::Profile { uuid, name } => write!(f, "profile {name:?} ({uuid})"),
            LabelUser::Label { id, name } => write!(f, "label {name:?} (id {id})"),
        }
    }
}

const LABEL_COLUMNS: &str = "l.id, l.name, l.description, l.query, l.platform, l.label_type, l.membership_type, \
    l.criteria, l.broken_reason, l.author_id, l.created_at, l.updated_at, \
    (SELECT COUNT(*) FROM label_membership m WHERE m.label_id = l.id AND m.member = 1) AS host_count";

fn label_from_row(row: &sqlx::any::AnyRow) -> Result<LabelRecord> {
    let kind: String = row.try_get("membership_type")?;
    Ok(LabelRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        query: row.try_get("query")?,
        platform: row.try_get("platform")?,
        builtin: row.try_get::<String, _>("label_type")? == "builtin",
        kind: LabelKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("label kind {kind:?}")))?,
        criteria: row.try_get("criteria")?,
        broken_reason: row.try_get("broken_reason")?,
        author_id: row.try_get("author_id")?,
        host_count: row.try_get("host_count")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The stored form of `hosts.label_ids`.
pub(crate) fn label_ids_text(ids: &BTreeSet<i64>) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

pub(crate) fn parse_label_ids(text: &str) -> BTreeSet<i64> {
    text.split(',').filter_map(|id| id.trim().parse().ok()).collect()
}

/// The run-history key of a dynamic label's query: labels share the host's run history with policies
/// (`hosts.policy_runs`) under negative ids, so one column and one read serve both schedules.
pub use herd_core::due::label_run_key;

fn invalid(field: &'static str, reason: impl Into<String>) -> StoreError {
    StoreError::Invalid { field, reason: reason.into() }
}

/// What membership changes depend on, read once per transaction (nothing a report or a membership change
/// writes changes it).
#[derive(Debug, Default)]
pub(crate) struct LabelFacts {
    /// Criteria labels (built-in ones included), in evaluation order; a broken one has no criterion (no
    /// members).
    criteria: Vec<(i64, Option<Criterion>)>,
    /// Policies whose scope names labels.
    pub policy_scopes: HashMap<i64, LabelScope>,
    /// Labels some profile's scope names.
    profile_labels: BTreeSet<i64>,
    /// Policies and profiles the criteria name.
    referenced_policies: BTreeSet<i64>,
    referenced_profiles: BTreeSet<String>,
}

impl LabelFacts {
    pub(crate) async fn load(conn: &mut AnyConnection) -> Result<LabelFacts> {
        let mut facts = LabelFacts::default();
        let rows = sqlx::query(
            "SELECT id, criteria, broken_reason FROM labels WHERE membership_type = 'host_vitals' ORDER BY id",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut parsed = BTreeMap::new();
        let mut broken = Vec::new();
        for row in rows {
            let id: i64 = row.try_get(0)?;
            let text: Option<String> = row.try_get(1)?;
            let reason: Option<String> = row.try_get(2)?;
            let criterion =
                text.as_deref().and_then(|t| serde_json::from_str::<serde_json::Value>(t).ok()).and_then(|v| {
                    Criterion::parse(&v)
                        .map_err(|e| tracing::error!(label_id = id, error = %e, "unreadable criteria"))
                        .ok()
                });
            match (criterion, reason) {
                (Some(c), None) => {
                    let refs = c.refs();
                    facts.referenced_policies.extend(refs.policies);
                    facts.referenced_profiles.extend(refs.profiles);
                    parsed.insert(id, c);
                }
                _ => broken.push(id),
            }
        }
        let order = evaluation_order(&parsed);
        facts.criteria = broken.into_iter().map(|id| (id, None)).collect();
        facts.criteria.extend(order.into_iter().map(|id| (id, parsed.remove(&id))));
        let mut scopes: HashMap<i64, Vec<(i64, ScopeMode)>> = HashMap::new();
        for row in sqlx::query("SELECT policy_id, label_id, mode FROM policy_labels").fetch_all(&mut *conn).await? {
            let mode: String = row.try_get(2)?;
            let mode = ScopeMode::parse(&mode).ok_or_else(|| StoreError::Corrupt(format!("scope mode {mode:?}")))?;
            scopes.entry(row.try_get(0)?).or_default().push((row.try_get(1)?, mode));
        }
        facts.policy_scopes = scopes.into_iter().map(|(id, rows)| (id, LabelScope::from_rows(rows))).collect();
        facts.profile_labels = sqlx::query_scalar::<_, i64>("SELECT DISTINCT label_id FROM profile_labels")
            .fetch_all(&mut *conn)
            .await?
            .into_iter()
            .collect();
        Ok(facts)
    }

    /// Policies the host's labels keep it out of (their answers do not count).
    pub(crate) fn out_of_scope(&self, labels: &BTreeSet<i64>) -> std::collections::HashSet<i64> {
        self.policy_scopes
            .iter()
            .filter(|(_, scope)| !scope.admits(|l| labels.contains(&l)))
            .map(|(id, _)| *id)
            .collect()
    }
}

/// A membership the caller sets on a host: a dynamic label's answer, or a manual edit (None: not a member).
pub(crate) type SetMembership = (i64, Option<LabelAnswer>);

/// Re-decides a host's labels in the caller's transaction (the caller holds the host's row): applies `set`,
/// evaluates every criteria label, writes what changed and its effects on scopes (count changes into
/// `deltas`). Returns whether the host's labels changed.
pub(crate) async fn refresh_host_in(
    conn: &mut AnyConnection,
    backend: Backend,
    host_id: i64,
    facts: &LabelFacts,
    set: &[SetMembership],
    deltas: &mut CountDeltas,
    now: Millis,
) -> Result<bool> {
    let row = sqlx::query(
        "SELECT team_id, platform, platform_like, os_version, created_at, label_ids, policy_runs, hostname, \
         computer_name, hardware_model, hardware_vendor, hardware_serial, cpu_brand, osquery_version, primary_ip, \
         cpu_logical_cores, cpu_physical_cores, memory, gigs_disk_space_available, percent_disk_space_available, \
         gigs_total_disk_space FROM hosts WHERE id = $1",
    )
    .bind(host_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::HostGone)?;
    let team_id: Option<i64> = row.try_get("team_id")?;
    let old = parse_label_ids(&row.try_get::<String, _>("label_ids")?);
    let mut labels = old.clone();
    for (label_id, answer) in set {
        match answer {
            Some(LabelAnswer::Member) => {
                write_membership(conn, *label_id, host_id, true, None, now).await?;
                labels.insert(*label_id);
            }
            Some(LabelAnswer::Error(message)) => {
                let message: String = message.chars().take(1000).collect();
                write_membership(conn, *label_id, host_id, false, Some(&message), now).await?;
                labels.remove(label_id);
            }
            Some(LabelAnswer::NotMember) | None => {
                delete_membership(conn, *label_id, host_id).await?;
                labels.remove(label_id);
            }
        }
    }
    if !facts.criteria.is_empty() {
        let mut host = HostFacts {
            team_id,
            platform: row.try_get("platform")?,
            platform_like: row.try_get("platform_like")?,
            os_version: row.try_get("os_version")?,
            enrolled_at: row.try_get("created_at")?,
            ..HostFacts::default()
        };
        for field in [
            "hostname",
            "computer_name",
            "hardware_model",
            "hardware_vendor",
            "hardware_serial",
            "cpu_brand",
            "osquery_version",
            "primary_ip",
            "os_version",
            "platform",
            "platform_like",
        ] {
            let text: String = row.try_get(field)?;
            if !text.is_empty() {
                host.vitals.insert(field, VitalValue::Text(text));
            }
        }
        for field in ["cpu_logical_cores", "cpu_physical_cores", "memory"] {
            if let Some(n) = row.try_get::<Option<i64>, _>(field)? {
                host.vitals.insert(field, VitalValue::Number(n as f64));
            }
        }
        for field in ["gigs_disk_space_available", "percent_disk_space_available", "gigs_total_disk_space"] {
            if let Some(n) = row.try_get::<Option<f64>, _>(field)? {
                host.vitals.insert(field, VitalValue::Number(n));
            }
        }
        if !facts.referenced_policies.is_empty() {
            let ids: Vec<i64> = facts.referenced_policies.iter().copied().collect();
            let mut sql = SqlBuilder::new(
                "SELECT m.policy_id, m.passes FROM policy_membership m JOIN policies p ON p.id = m.policy_id \
                 AND p.revision = m.revision WHERE m.host_id = ",
            );
            sql.bind(Arg::Int(host_id)).push(" AND m.policy_id IN ").bind_id_set(backend, &ids);
            for r in sql.query().fetch_all(&mut *conn).await? {
                host.policies.insert(r.try_get(0)?, PolicyResponse::from_stored(r.try_get(1)?));
            }
        }
        if !facts.referenced_profiles.is_empty() {
            for r in
                sqlx::query("SELECT identifier, status FROM host_profiles WHERE host_id = $1 AND operation = 'install'")
                    .bind(host_id)
                    .fetch_all(&mut *conn)
                    .await?
            {
                let identifier: String = r.try_get(0)?;
                if facts.referenced_profiles.contains(&identifier) {
                    let status = match r.try_get::<String, _>(1)?.as_str() {
                        "pending" => ProfileStatusTerm::Pending,
                        "verifying" => ProfileStatusTerm::Verifying,
                        "verified" => ProfileStatusTerm::Verified,
                        "failed" => ProfileStatusTerm::Failed,
                        _ => ProfileStatusTerm::None,
                    };
                    host.profiles.insert(identifier, status);
                }
            }
        }
        for (label_id, criterion) in &facts.criteria {
            host.labels = labels.clone();
            let member = criterion.as_ref().is_some_and(|c| c.matches(&host));
            if member != labels.contains(label_id) {
                if member {
                    write_membership(conn, *label_id, host_id, true, None, now).await?;
                    labels.insert(*label_id);
                } else {
                    delete_membership(conn, *label_id, host_id).await?;
                    labels.remove(label_id);
                }
            }
        }
    }
    if labels == old {
        return Ok(false);
    }
    sqlx::query("UPDATE hosts SET label_ids = $1 WHERE id = $2")
        .bind(label_ids_text(&labels))
        .bind(host_id)
        .execute(&mut *conn)
        .await?;
    note_host_change(conn, host_id, now).await?;
    // Policies whose scope the host leaves: its answer goes (uncounted), and so does its run, so the policy
    // is asked at once should the host come back.
    let leaving: Vec<i64> = facts
        .policy_scopes
        .iter()
        .filter(|(_, scope)| scope.admits(|l| old.contains(&l)) && !scope.admits(|l| labels.contains(&l)))
        .map(|(id, _)| *id)
        .collect();
    if !leaving.is_empty() {
        drop_answers(conn, backend, host_id, team_id, &leaving, deltas).await?;
        let mut runs = parse_runs(&row.try_get::<String, _>("policy_runs")?);
        runs.retain(|id, _| !leaving.contains(id));
        sqlx::query("UPDATE hosts SET policy_runs = $1 WHERE id = $2")
            .bind(runs_text(&runs))
            .bind(host_id)
            .execute(&mut *conn)
            .await?;
        for policy_id in &leaving {
            // A run waiting on the user for a policy that no longer applies waits for nothing.
            crate::deferrals::close_on_pass(conn, host_id, *policy_id, now).await?;
        }
    }
    let changed: BTreeSet<i64> = old.symmetric_difference(&labels).copied().collect();
    if changed.iter().any(|l| facts.profile_labels.contains(l)) {
        crate::profiles::note_hosts_moved(conn, &[host_id], now).await?;
    }
    Ok(true)
}

/// Drops a host's answers to these policies and uncounts them (into `deltas`).
async fn drop_answers(
    conn: &mut AnyConnection,
    backend: Backend,
    host_id: i64,
    team_id: Option<i64>,
    policies: &[i64],
    deltas: &mut CountDeltas,
) -> Result<()> {
    let mut sql = SqlBuilder::new(
        "SELECT m.policy_id, m.passes, m.revision, p.revision FROM policy_membership m \
         LEFT JOIN policies p ON p.id = m.policy_id WHERE m.host_id = ",
    );
    sql.bind(Arg::Int(host_id)).push(" AND m.policy_id IN ").bind_id_set(backend, policies);
    for r in sql.query().fetch_all(&mut *conn).await? {
        let revision: i64 = r.try_get(2)?;
        if r.try_get::<Option<i64>, _>(3)? == Some(revision) {
            let answer = PolicyResponse::from_stored(r.try_get(1)?);
            let key = CountKey { backend, host_id, team: team_id };
            add_delta(deltas, r.try_get(0)?, revision, key, count_delta(answer, PolicyResponse::NoAnswer));
        }
    }
    let mut sql = SqlBuilder::new("DELETE FROM policy_membership WHERE host_id = ");
    sql.bind(Arg::Int(host_id)).push(" AND policy_id IN ").bind_id_set(backend, policies);
    sql.query().execute(&mut *conn).await?;
    Ok(())
}

async fn write_membership(
    conn: &mut AnyConnection,
    label_id: i64,
    host_id: i64,
    member: bool,
    error: Option<&str>,
    now: Millis,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO label_membership (label_id, host_id, member, error, updated_at) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (label_id, host_id) DO UPDATE SET member = excluded.member, error = excluded.error, \
         updated_at = excluded.updated_at",
    )
    .bind(label_id)
    .bind(host_id)
    .bind(member as i64)
    .bind(error)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn delete_membership(conn: &mut AnyConnection, label_id: i64, host_id: i64) -> Result<()> {
    sqlx::query("DELETE FROM label_membership WHERE label_id = $1 AND host_id = $2")
        .bind(label_id)
        .bind(host_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The dependency graph of labels, policies and profiles as stored, for [`find_cycle`].
async fn dependency_graph(conn: &mut AnyConnection) -> Result<BTreeMap<Node, BTreeSet<Node>>> {
    let mut edges: BTreeMap<Node, BTreeSet<Node>> = BTreeMap::new();
    for row in sqlx::query("SELECT id, criteria FROM labels WHERE criteria IS NOT NULL").fetch_all(&mut *conn).await? {
        let id: i64 = row.try_get(0)?;
        let text: String = row.try_get(1)?;
        if let Some(c) = serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| Criterion::parse(&v).ok()) {
            edges.insert(Node::Label(id), criterion_edges(&c));
        }
    }
    for row in sqlx::query("SELECT policy_id, label_id FROM policy_labels").fetch_all(&mut *conn).await? {
        edges.entry(Node::Policy(row.try_get(0)?)).or_default().insert(Node::Label(row.try_get(1)?));
    }
    for row in
        sqlx::query("SELECT p.identifier, l.label_id FROM profile_labels l JOIN profiles p ON p.id = l.profile_id")
            .fetch_all(&mut *conn)
            .await?
    {
        edges.entry(Node::Profile(row.try_get(0)?)).or_default().insert(Node::Label(row.try_get(1)?));
    }
    Ok(edges)
}

fn criterion_edges(c: &Criterion) -> BTreeSet<Node> {
    let refs = c.refs();
    refs.labels
        .into_iter()
        .map(Node::Label)
        .chain(refs.policies.into_iter().map(Node::Policy))
        .chain(refs.profiles.into_iter().map(Node::Profile))
        .collect()
}

fn describe_cycle(cycle: &[Node]) -> String {
    cycle
        .iter()
        .map(|n| match n {
            Node::Label(id) => format!("label {id}"),
            Node::Policy(id) => format!("policy {id}"),
            Node::Profile(identifier) => format!("profile {identifier}"),
        })
        .collect::<Vec<_>>()
        .join(" → ")
}

/// Refuses a graph with a cycle, naming it.
pub(crate) async fn check_no_cycle(
    conn: &mut AnyConnection,
    field: &'static str,
    change: impl FnOnce(&mut BTreeMap<Node, BTreeSet<Node>>),
) -> Result<()> {
    let mut edges = dependency_graph(conn).await?;
    change(&mut edges);
    match find_cycle(&edges) {
        Some(cycle) => Err(invalid(field, format!("would make a cycle: {}", describe_cycle(&cycle)))),
        None => Ok(()),
    }
}

/// Checks that what a criterion names exists.
async fn check_criterion_inputs(conn: &mut AnyConnection, c: &Criterion) -> Result<()> {
    let refs = c.refs();
    for id in &refs.policies {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM policies WHERE id = $1").bind(id).fetch_optional(&mut *conn).await?;
        if found.is_none() {
            return Err(invalid("criteria", format!("policy {id} does not exist")));
        }
    }
    for id in &refs.teams {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM teams WHERE id = $1").bind(id).fetch_optional(&mut *conn).await?;
        if found.is_none() {
            return Err(invalid("criteria", format!("team {id} does not exist")));
        }
    }
    for id in &refs.labels {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM labels WHERE id = $1").bind(id).fetch_optional(&mut *conn).await?;
        if found.is_none() {
            return Err(invalid("criteria", format!("label {id} does not exist")));
        }
    }
    Ok(())
}

/// An input criteria may name, being deleted.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Input {
    Policy(i64),
    Team(i64),
}

/// Criteria labels naming a deleted input become empty, with the reason shown (the refresh job empties them).
pub(crate) async fn break_labels_naming(conn: &mut AnyConnection, input: Input, now: Millis) -> Result<()> {
    let rows = sqlx::query("SELECT id, criteria FROM labels WHERE criteria IS NOT NULL AND broken_reason IS NULL")
        .fetch_all(&mut *conn)
        .await?;
    let mut broken = false;
    for row in rows {
        let id: i64 = row.try_get(0)?;
        let text: String = row.try_get(1)?;
        let Some(refs) = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| Criterion::parse(&v).ok())
            .map(|c| c.refs())
        else {
            continue;
        };
        let reason = match input {
            Input::Policy(p) if refs.policies.contains(&p) => format!("policy {p} it names was deleted"),
            Input::Team(t) if refs.teams.contains(&t) => format!("team {t} it names was deleted"),
            _ => continue,
        };
        sqlx::query("UPDATE labels SET broken_reason = $1, updated_at = $2 WHERE id = $3")
            .bind(reason)
            .bind(now)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        broken = true;
    }
    if broken {
        enqueue_refresh(conn, format!("{input:?} deleted"), now).await?;
    }
    Ok(())
}

/// A policy's answers were all voided (a new revision): criteria naming its result are decided again.
pub(crate) async fn policy_answers_voided(conn: &mut AnyConnection, policy_id: i64, now: Millis) -> Result<()> {
    let rows: Vec<String> =
        sqlx::query_scalar("SELECT criteria FROM labels WHERE criteria IS NOT NULL AND broken_reason IS NULL")
            .fetch_all(&mut *conn)
            .await?;
    let named = rows.iter().any(|text| {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| Criterion::parse(&v).ok())
            .is_some_and(|c| c.refs().policies.contains(&policy_id))
    });
    if named {
        enqueue_refresh(conn, format!("policy {policy_id} edited"), now).await?;
    }
    Ok(())
}

/// Records the policies a criteria label names (`label_policy_inputs`), replacing what it named before.
async fn write_policy_inputs(conn: &mut AnyConnection, label_id: i64, criterion: &Criterion) -> Result<()> {
    sqlx::query("DELETE FROM label_policy_inputs WHERE label_id = $1").bind(label_id).execute(&mut *conn).await?;
    for policy in criterion.refs().policies {
        sqlx::query("INSERT INTO label_policy_inputs (label_id, policy_id) VALUES ($1, $2)")
            .bind(label_id)
            .bind(policy)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Enqueues the job that re-decides every host's labels (a definition changed).
pub(crate) async fn enqueue_refresh(conn: &mut AnyConnection, reason: String, now: Millis) -> Result<()> {
    let job = NewJob {
        idempotency_key: format!("label_refresh:{now}:{}", crate::profiles::random_hex()),
        payload: JobPayload::LabelRefresh { reason },
        max_attempts: 20,
        run_at: now,
    };
    crate::jobs::enqueue_in(conn, &job, now).await?;
    Ok(())
}

/// Sets a manual label's members in the caller's transaction: hosts locked in id order, each refreshed.
async fn set_manual_members(
    conn: &mut AnyConnection,
    backend: Backend,
    label_id: i64,
    host_ids: &[i64],
    now: Millis,
) -> Result<()> {
    let current: Vec<i64> = sqlx::query_scalar("SELECT host_id FROM label_membership WHERE label_id = $1")
        .bind(label_id)
        .fetch_all(&mut *conn)
        .await?;
    let wanted: BTreeSet<i64> = host_ids.iter().copied().collect();
    let touched: Vec<i64> =
        current.iter().copied().chain(wanted.iter().copied()).collect::<BTreeSet<_>>().into_iter().collect();
    if touched.is_empty() {
        return Ok(());
    }
    let facts = LabelFacts::load(conn).await?;
    let mut deltas = CountDeltas::new();
    for (host_id, _) in lock_hosts(conn, backend, &touched).await? {
        let answer = wanted.contains(&host_id).then_some(LabelAnswer::Member);
        refresh_host_in(conn, backend, host_id, &facts, &[(label_id, answer)], &mut deltas, now).await?;
    }
    apply_count_deltas(conn, &deltas, now).await
}

impl Store {
    /// Creates the built-in labels that do not exist yet, and brings existing ones to their current
    /// definition; a change queues the refresh of every host. Idempotent; run at every start.
    pub async fn ensure_builtin_labels(&self, now: Millis) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let mut changed = false;
        for builtin in BUILTINS {
            let existing = sqlx::query("SELECT label_type, query, criteria, description FROM labels WHERE name = $1")
                .bind(builtin.name)
                .fetch_optional(&mut *tx)
                .await?;
            let criteria = serde_json::from_str::<serde_json::Value>(builtin.criteria)
                .map_err(|e| StoreError::Corrupt(format!("built-in label {}: {e}", builtin.name)))?
                .to_string();
            match existing {
                None => {
                    sqlx::query(
                        "INSERT INTO labels (name, description, query, platform, label_type, membership_type, criteria, \
                         created_at, updated_at) VALUES ($1, $2, $3, '', 'builtin', 'host_vitals', $4, $5, $5) \
                         ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(builtin.name)
                    .bind(builtin.description)
                    .bind(builtin.query)
                    .bind(&criteria)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                    // Servers starting together: one of them inserts.
                    changed = true;
                }
                Some(row) if row.try_get::<String, _>(0)? == "builtin" => {
                    let same = row.try_get::<String, _>(1)? == builtin.query
                        && row.try_get::<Option<String>, _>(2)?.as_deref() == Some(criteria.as_str())
                        && row.try_get::<String, _>(3)? == builtin.description;
                    if !same {
                        sqlx::query(
                            "UPDATE labels SET query = $1, criteria = $2, description = $3, updated_at = $4 \
                             WHERE name = $5 AND label_type = 'builtin'",
                        )
                        .bind(builtin.query)
                        .bind(&criteria)
                        .bind(builtin.description)
                        .bind(now)
                        .bind(builtin.name)
                        .execute(&mut *tx)
                        .await?;
                        changed = true;
                    }
                }
                // A label of an admin's under a name herd later reserved: it stays theirs.
                Some(_) => {}
            }
        }
        if changed {
            enqueue_refresh(&mut tx, "built-in labels defined".into(), now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn create_label(&self, label: &NewLabel, now: Millis) -> Result<LabelRecord> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        if BUILTINS.iter().any(|b| b.name.eq_ignore_ascii_case(label.name.trim())) {
            return Err(invalid(
                "name",
                format!(
                    "cannot add label '{}' because it conflicts with the name of a built-in label",
                    label.name.trim()
                ),
            ));
        }
        let criteria = match &label.criteria {
            Some(c) => {
                check_criterion_inputs(&mut tx, c).await?;
                Some(serde_json::to_string(c).map_err(|e| StoreError::Corrupt(e.to_string()))?)
            }
            None => None,
        };
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO labels (name, description, query, platform, label_type, membership_type, criteria, author_id, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, 'regular', $5, $6, $7, $8, $8) RETURNING id",
        )
        .bind(label.name.trim())
        .bind(&label.description)
        .bind(&label.query)
        .bind(&label.platform)
        .bind(label.kind.as_str())
        .bind(criteria)
        .bind(label.author_id)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, "a label with this name already exists"))?;
        if let Some(c) = &label.criteria {
            // A new label names nothing yet, but a criterion may name itself through another label.
            let edges = criterion_edges(c);
            check_no_cycle(&mut tx, "criteria", |graph| {
                graph.insert(Node::Label(id), edges);
            })
            .await?;
            write_policy_inputs(&mut tx, id, c).await?;
            enqueue_refresh(&mut tx, format!("label {id} created"), now).await?;
        }
        if label.kind == LabelKind::Manual {
            set_manual_members(&mut tx, self.backend, id, &label.host_ids, now).await?;
        }
        tx.commit().await?;
        self.get_label(id).await?.ok_or(StoreError::NotFound("label"))
    }

    pub async fn update_label(&self, id: i64, patch: &LabelPatch, now: Millis) -> Result<LabelRecord> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let lock = if self.backend == Backend::Postgres { " FOR UPDATE" } else { "" };
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT name, label_type, membership_type FROM labels WHERE id = $1{lock}"
        )))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("label"))?;
        let (name, label_type, kind): (String, String, String) = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        if label_type == "builtin" {
            return Err(StoreError::Conflict(format!("cannot modify built-in label '{name}'")));
        }
        let kind = LabelKind::parse(&kind).ok_or_else(|| StoreError::Corrupt(format!("label kind {kind:?}")))?;
        if patch.host_ids.is_some() && kind != LabelKind::Manual {
            return Err(invalid("hosts", format!("cannot provide a list of hosts for a {} label", kind.as_str())));
        }
        if patch.criteria.is_some() && kind != LabelKind::Criteria {
            return Err(invalid("criteria", format!("a {} label has no criteria", kind.as_str())));
        }
        if let Some(new_name) = &patch.name
            && BUILTINS.iter().any(|b| b.name.eq_ignore_ascii_case(new_name.trim()))
        {
            return Err(invalid(
                "name",
                format!(
                    "cannot rename label to '{}' because it conflicts with the name of a built-in label",
                    new_name.trim()
                ),
            ));
        }
        sqlx::query(
            "UPDATE labels SET name = COALESCE($1, name), description = COALESCE($2, description), updated_at = $3 \
             WHERE id = $4",
        )
        .bind(patch.name.as_ref().map(|n| n.trim().to_string()))
        .bind(patch.description.clone())
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, "a label with this name already exists"))?;
        if let Some(c) = &patch.criteria {
            check_criterion_inputs(&mut tx, c).await?;
            let edges = criterion_edges(c);
            check_no_cycle(&mut tx, "criteria", |graph| {
                graph.insert(Node::Label(id), edges);
            })
            .await?;
            let text = serde_json::to_string(c).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            sqlx::query("UPDATE labels SET criteria = $1, broken_reason = NULL WHERE id = $2")
                .bind(text)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            write_policy_inputs(&mut tx, id, c).await?;
            enqueue_refresh(&mut tx, format!("label {id} criteria edited"), now).await?;
        }
        if let Some(hosts) = &patch.host_ids {
            set_manual_members(&mut tx, self.backend, id, hosts, now).await?;
        }
        tx.commit().await?;
        self.get_label(id).await?.ok_or(StoreError::NotFound("label"))
    }

    /// What names a label: policies and profiles scoped by it, criteria labels naming it.
    pub async fn label_users(&self, id: i64) -> Result<Vec<LabelUser>> {
        let mut users = Vec::new();
        for row in sqlx::query("SELECT p.id, p.name FROM policy_labels l JOIN policies p ON p.id = l.policy_id WHERE l.label_id = $1 ORDER BY p.id")
            .bind(id)
            .fetch_all(&self.reader)
            .await?
        {
            users.push(LabelUser::Policy { id: row.try_get(0)?, name: row.try_get(1)? });
        }
        for row in sqlx::query("SELECT p.uuid, p.name FROM profile_labels l JOIN profiles p ON p.id = l.profile_id WHERE l.label_id = $1 ORDER BY p.id")
            .bind(id)
            .fetch_all(&self.reader)
            .await?
        {
            users.push(LabelUser::Profile { uuid: row.try_get(0)?, name: row.try_get(1)? });
        }
        for row in
            sqlx::query("SELECT id, name, criteria FROM labels WHERE criteria IS NOT NULL AND id <> $1 ORDER BY id")
                .bind(id)
                .fetch_all(&self.reader)
                .await?
        {
            let text: String = row.try_get(2)?;
            let names = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| Criterion::parse(&v).ok())
                .is_some_and(|c| c.refs().labels.contains(&id));
            if names {
                users.push(LabelUser::Label { id: row.try_get(0)?, name: row.try_get(1)? });
            }
        }
        Ok(users)
    }

    /// Deletes a label. A built-in one is a conflict; one that scopes policies or profiles or that criteria
    /// name is a conflict listing them, unless `force`: then those policies' answers are voided (their scope
    /// changed: a new revision), the profiles reconciled, and the naming labels become empty with a reason.
    /// Returns the deleted label.
    pub async fn delete_label(&self, id: i64, force: bool, now: Millis) -> Result<LabelRecord> {
        let label = self.get_label(id).await?.ok_or(StoreError::NotFound("label"))?;
        if label.builtin {
            return Err(StoreError::Conflict(format!("cannot delete built-in label '{}'", label.name)));
        }
        let users = self.label_users(id).await?;
        if !users.is_empty() && !force {
            let list: Vec<String> = users.iter().map(ToString::to_string).collect();
            return Err(StoreError::Conflict(format!(
                "label '{}' is in use by {}; remove it from them first, or delete with force",
                label.name,
                list.join(", ")
            )));
        }
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        for user in &users {
            match user {
                LabelUser::Policy { id: policy_id, .. } => {
                    sqlx::query("UPDATE policies SET revision = revision + 1, host_count_updated_at = $1, updated_at = $1 WHERE id = $2")
                        .bind(now)
                        .bind(policy_id)
                        .execute(&mut *tx)
                        .await?;
                }
                LabelUser::Profile { .. } => {}
                LabelUser::Label { id: label_id, .. } => {
                    sqlx::query("UPDATE labels SET broken_reason = $1, updated_at = $2 WHERE id = $3")
                        .bind(format!("label '{}' it names was deleted", label.name))
                        .bind(now)
                        .bind(label_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        let profile_sets: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT p.scope_key FROM profile_labels l JOIN profiles p ON p.id = l.profile_id WHERE l.label_id = $1",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        // Hosts that were members: their label_ids lose it in this transaction (a copy of the rows the delete
        // cascades away).
        let members: Vec<i64> =
            sqlx::query_scalar("SELECT host_id FROM label_membership WHERE label_id = $1 AND member = 1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?;
        let locked = lock_hosts(&mut tx, self.backend, &members).await?;
        sqlx::query("DELETE FROM labels WHERE id = $1").bind(id).execute(&mut *tx).await?;
        for (host_id, _) in locked {
            let text: String = sqlx::query_scalar("SELECT label_ids FROM hosts WHERE id = $1")
                .bind(host_id)
                .fetch_one(&mut *tx)
                .await?;
            let mut ids = parse_label_ids(&text);
            ids.remove(&id);
            sqlx::query("UPDATE hosts SET label_ids = $1 WHERE id = $2")
                .bind(label_ids_text(&ids))
                .bind(host_id)
                .execute(&mut *tx)
                .await?;
            note_host_change(&mut tx, host_id, now).await?;
        }
        for scope_key in profile_sets {
            crate::profiles::enqueue_set_reconcile(&mut tx, scope_key, now).await?;
        }
        if users.iter().any(|u| matches!(u, LabelUser::Label { .. })) {
            enqueue_refresh(&mut tx, format!("label {id} deleted"), now).await?;
        }
        tx.commit().await?;
        Ok(label)
    }

    pub async fn get_label(&self, id: i64) -> Result<Option<LabelRecord>> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {LABEL_COLUMNS} FROM labels l WHERE l.id = $1")))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(label_from_row).transpose()
    }

    pub async fn label_by_name(&self, name: &str) -> Result<Option<LabelRecord>> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {LABEL_COLUMNS} FROM labels l WHERE l.name = $1")))
            .bind(name.trim())
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(label_from_row).transpose()
    }

    /// Dynamic labels as the servers' schedule cache needs them: (id, platform, query), without counts (it is
    /// reloaded every 2 s on every server).
    pub async fn dynamic_labels_to_schedule(&self) -> Result<Vec<(i64, String, String)>> {
        Ok(sqlx::query_as("SELECT id, platform, query FROM labels WHERE membership_type = 'dynamic' ORDER BY id")
            .fetch_all(&self.reader)
            .await?)
    }

    /// Every label, built-in ones first, then by name; with `visible_teams`, host counts cover only those
    /// teams' hosts (a team user's view).
    pub async fn list_labels(&self, visible_teams: Option<&[i64]>) -> Result<Vec<LabelRecord>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {LABEL_COLUMNS} FROM labels l ORDER BY CASE WHEN l.label_type = 'builtin' THEN 0 ELSE 1 END, l.name"
        )))
        .fetch_all(&self.reader)
        .await?;
        let mut labels: Vec<LabelRecord> = rows.iter().map(label_from_row).collect::<Result<_>>()?;
        if let Some(teams) = visible_teams {
            for label in &mut labels {
                label.host_count = self.label_host_count(label.id, teams).await?;
            }
        }
        Ok(labels)
    }

    /// Members of a label among these teams' hosts.
    pub async fn label_host_count(&self, label_id: i64, teams: &[i64]) -> Result<i64> {
        let mut sql = SqlBuilder::new(
            "SELECT COUNT(*) FROM label_membership m JOIN hosts h ON h.id = m.host_id WHERE m.member = 1 AND m.label_id = ",
        );
        sql.bind(Arg::Int(label_id)).push(" AND h.team_id IN ").bind_id_set(self.backend, teams);
        Ok(sql.query().fetch_one(&self.reader).await?.try_get(0)?)
    }

    /// The host's labels (members) and the dynamic labels whose query failed there.
    pub async fn host_labels(&self, host_id: i64) -> Result<Vec<HostLabel>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {LABEL_COLUMNS}, hm.member AS is_member, hm.error AS member_error FROM label_membership hm \
             JOIN labels l ON l.id = hm.label_id WHERE hm.host_id = $1 ORDER BY l.name"
        )))
        .bind(host_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(HostLabel {
                    label: label_from_row(r)?,
                    member: r.try_get::<i64, _>("is_member")? == 1,
                    error: r.try_get("member_error")?,
                })
            })
            .collect()
    }

    /// Scopes of these policies (policy id → scope; policies without labels are absent).
    pub async fn policy_label_scopes(&self, policy_ids: &[i64]) -> Result<HashMap<i64, LabelScope>> {
        scopes_of(&self.reader, self.backend, "policy_labels", "policy_id", policy_ids).await
    }

    /// Label names by id, for views of scopes.
    pub async fn label_names(&self) -> Result<HashMap<i64, String>> {
        let rows: Vec<(i64, String)> = sqlx::query_as("SELECT id, name FROM labels").fetch_all(&self.reader).await?;
        Ok(rows.into_iter().collect())
    }

    /// Re-decides every host's labels, a page at a time, each page in its own transaction (the
    /// `label_refresh` job). Returns how many hosts' labels changed.
    pub async fn refresh_all_labels(&self, now: Millis) -> Result<u64> {
        let (mut after, mut changed) = (0i64, 0u64);
        loop {
            let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM hosts WHERE id > $1 ORDER BY id LIMIT 200")
                .bind(after)
                .fetch_all(&self.reader)
                .await?;
            let Some(last) = ids.last() else { break };
            after = *last;
            let mut conn = self.writer.acquire().await?;
            let mut tx = conn.begin().await?;
            let facts = LabelFacts::load(&mut tx).await?;
            let mut deltas = CountDeltas::new();
            for (host_id, _) in lock_hosts(&mut tx, self.backend, &ids).await? {
                if refresh_host_in(&mut tx, self.backend, host_id, &facts, &[], &mut deltas, now).await? {
                    changed += 1;
                }
            }
            apply_count_deltas(&mut tx, &deltas, now).await?;
            tx.commit().await?;
        }
        Ok(changed)
    }

    /// Re-decides one host's labels now (used after changes a criterion may watch outside a report).
    pub async fn refresh_host_labels(&self, host_id: i64, now: Millis) -> Result<bool> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        lock_host(&mut tx, self.backend, host_id, HostLock::Change).await?;
        let facts = LabelFacts::load(&mut tx).await?;
        let mut deltas = CountDeltas::new();
        let changed = refresh_host_in(&mut tx, self.backend, host_id, &facts, &[], &mut deltas, now).await?;
        apply_count_deltas(&mut tx, &deltas, now).await?;
        tx.commit().await?;
        Ok(changed)
    }

    /// Current answers of hosts outside their policy's label scope (policy, host): what scope changes must
    /// never leave behind (the property test's check).
    pub async fn answers_out_of_label_scope(&self) -> Result<Vec<(i64, i64)>> {
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(
            "SELECT m.policy_id, m.host_id, h.label_ids FROM policy_membership m JOIN hosts h ON h.id = m.host_id \
             JOIN policies p ON p.id = m.policy_id AND p.revision = m.revision",
        )
        .fetch_all(&self.reader)
        .await?;
        let ids: Vec<i64> = rows.iter().map(|r| r.0).collect::<BTreeSet<_>>().into_iter().collect();
        let scopes = scopes_of(&self.reader, self.backend, "policy_labels", "policy_id", &ids).await?;
        Ok(rows
            .into_iter()
            .filter(|(policy, _, labels)| {
                let labels = parse_label_ids(labels);
                scopes.get(policy).is_some_and(|s| !s.admits(|l| labels.contains(&l)))
            })
            .map(|(policy, host, _)| (policy, host))
            .collect())
    }

    /// Recounts label memberships from the rows, against each host's `label_ids` copy: (host, from rows,
    /// from the copy) for every host where they differ (the property test's check).
    pub async fn label_ids_disagreements(&self) -> Result<Vec<(i64, BTreeSet<i64>, BTreeSet<i64>)>> {
        let mut rows: BTreeMap<i64, BTreeSet<i64>> = BTreeMap::new();
        for (host, label) in
            sqlx::query_as::<_, (i64, i64)>("SELECT host_id, label_id FROM label_membership WHERE member = 1")
                .fetch_all(&self.reader)
                .await?
        {
            rows.entry(host).or_default().insert(label);
        }
        let mut out = Vec::new();
        for (host, text) in
            sqlx::query_as::<_, (i64, String)>("SELECT id, label_ids FROM hosts").fetch_all(&self.reader).await?
        {
            let copy = parse_label_ids(&text);
            let truth = rows.remove(&host).unwrap_or_default();
            if copy != truth {
                out.push((host, truth, copy));
            }
        }
        Ok(out)
    }
}

/// Scopes stored in `table` (policy_labels or profile_labels) of these owners.
pub(crate) async fn scopes_of<'c, E: sqlx::Executor<'c, Database = sqlx::Any>>(
    conn: E,
    backend: Backend,
    table: &str,
    owner: &str,
    ids: &[i64],
) -> Result<HashMap<i64, LabelScope>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let mut sql = SqlBuilder::new(&format!("SELECT {owner}, label_id, mode FROM {table} WHERE {owner} IN "));
    sql.bind_id_set(backend, ids);
    let mut rows: HashMap<i64, Vec<(i64, ScopeMode)>> = HashMap::new();
    for row in sql.query().fetch_all(conn).await? {
        let mode: String = row.try_get(2)?;
        let mode = ScopeMode::parse(&mode).ok_or_else(|| StoreError::Corrupt(format!("scope mode {mode:?}")))?;
        rows.entry(row.try_get(0)?).or_default().push((row.try_get(1)?, mode));
    }
    Ok(rows.into_iter().map(|(id, rows)| (id, LabelScope::from_rows(rows))).collect())
}

/// Replaces the label scope of a policy or profile in the caller's transaction, after checking its labels
/// exist and no cycle forms. Returns whether it changed.
pub(crate) async fn set_scope(
    conn: &mut AnyConnection,
    backend: Backend,
    table: &str,
    owner_column: &str,
    owner: i64,
    owner_node: Node,
    scope: &LabelScope,
) -> Result<bool> {
    let current =
        scopes_of(&mut *conn, backend, table, owner_column, &[owner]).await?.remove(&owner).unwrap_or_default();
    if current == *scope {
        return Ok(false);
    }
    for label in scope.labels() {
        let found: Option<i64> =
            sqlx::query_scalar("SELECT id FROM labels WHERE id = $1").bind(label).fetch_optional(&mut *conn).await?;
        if found.is_none() {
            return Err(invalid("labels", format!("label {label} does not exist")));
        }
    }
    let edges: BTreeSet<Node> = scope.labels().into_iter().map(Node::Label).collect();
    check_no_cycle(conn, "labels", |graph| {
        graph.insert(owner_node, edges);
    })
    .await?;
    sqlx::query(AssertSqlSafe(format!("DELETE FROM {table} WHERE {owner_column} = $1")))
        .bind(owner)
        .execute(&mut *conn)
        .await?;
    for (label, mode) in scope.rows() {
        sqlx::query(AssertSqlSafe(format!("INSERT INTO {table} ({owner_column}, label_id, mode) VALUES ($1, $2, $3)")))
            .bind(owner)
            .bind(label)
            .bind(mode.as_str())
            .execute(&mut *conn)
            .await?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_ids_round_trip() {
        let ids: BTreeSet<i64> = [3, 1, 20].into_iter().collect();
        assert_eq!(label_ids_text(&ids), "1,3,20");
        assert_eq!(parse_label_ids("1,3,20"), ids);
        assert!(parse_label_ids("").is_empty());
    }
}
