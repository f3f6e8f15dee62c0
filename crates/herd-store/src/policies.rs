//! Policies, hosts' answers to them, and the pass/fail counts kept exact by delta.
//!
//! Invariant (checked by the property test in `tests/policy_counts.rs` and, with every writer at once, by
//! `tests/concurrent_counts.rs`): for every policy and host team, the current revision's `policy_counts`
//! shards sum to a recount of the current revision's `policy_membership` joined to hosts, after every
//! committed change.

use crate::automations::AutomationRules;
use crate::hosts::{HostLock, lock_host, note_host_change};
use crate::labels::LabelFacts;
use crate::sql::{Arg, SqlBuilder};
use crate::{Backend, Result, Store, StoreError};
use herd_core::Millis;
use herd_core::due::PolicyRun;
use herd_core::labels::{LabelAnswer, LabelScope, Node};
use herd_core::policy::{PolicyResponse, count_delta};
use herd_core::report::{CurrentPolicy, PriorAnswer, ReportInput, ReportedAnswer, decide};
use herd_core::vitals::VitalsPatch;
use sqlx::{Acquire, AnyConnection, Row};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

#[derive(Debug, Clone, PartialEq)]
pub struct PolicyRecord {
    pub id: i64,
    pub name: String,
    pub query: String,
    pub description: String,
    pub resolution: String,
    pub platform: String,
    pub critical: bool,
    pub team_id: Option<i64>,
    pub author_id: Option<i64>,
    pub author_name: String,
    pub author_email: String,
    pub interval_seconds: Option<i64>,
    /// The script run on a host that newly fails this policy (and retried while it keeps failing).
    pub script_id: Option<i64>,
    pub script_name: Option<String>,
    /// A webhook of this policy's own, posted to when a host newly fails it.
    pub webhook_url: Option<String>,
    /// Automations fire on every scheduled failing result, not only when a host newly fails.
    pub continuous_automation: bool,
    /// Deferral settings of the script automation (JSON, checked by the server); None: it runs without asking.
    pub deferral: Option<String>,
    /// The labels a host must (or must not) be a member of to be asked this policy.
    pub labels: LabelScope,
    /// The names of the labels in `labels`, for views.
    pub label_names: BTreeMap<i64, String>,
    pub revision: i64,
    pub passing_host_count: i64,
    pub failing_host_count: i64,
    /// Hosts with a remediation of this policy queued or running (they also count as failing until re-checked).
    pub remediating_host_count: i64,
    pub host_count_updated_at: Option<Millis>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// The editable fields of a policy, already validated.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyFields {
    pub name: String,
    pub query: String,
    pub description: String,
    pub resolution: String,
    /// Canonical platform text ("" or sorted comma list).
    pub platform: String,
    pub critical: bool,
    pub interval_seconds: Option<i64>,
    pub script_id: Option<i64>,
    pub webhook_url: Option<String>,
    pub continuous_automation: bool,
    /// Deferral settings (JSON); None: the script runs without asking.
    pub deferral: Option<String>,
    /// Label scope; a change voids every answer (a new revision), as a platform change does.
    pub labels: LabelScope,
}

impl PolicyFields {
    /// A policy for every platform with only a name and a query: no description, script, webhook or interval
    /// of its own (callers set what they need with struct update syntax).
    pub fn new(name: &str, query: &str) -> PolicyFields {
        PolicyFields {
            name: name.into(),
            query: query.into(),
            description: String::new(),
            resolution: String::new(),
            platform: String::new(),
            critical: false,
            interval_seconds: None,
            script_id: None,
            webhook_url: None,
            continuous_automation: false,
            deferral: None,
            labels: LabelScope::default(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct PolicyAuthor {
    pub id: i64,
    pub name: String,
    pub email: String,
}

/// A host's answer as host views show it.
#[derive(Debug, Clone, PartialEq)]
pub struct HostPolicyAnswer {
    pub policy: PolicyRecord,
    pub response: PolicyResponse,
    /// The policy's automation is running on the host: a fix is queued or under way, re-check to follow.
    pub remediating: bool,
}

/// How long a policy run is remembered (longer than the longest policy interval).
const RUNS_KEPT_MS: Millis = 8 * herd_core::DAY_MS;

fn team_key(team_id: Option<i64>) -> i64 {
    team_id.unwrap_or(0)
}

/// How many rows a policy's count for one team is spread over (by host id) on PostgreSQL: concurrent reports
/// of different hosts then rarely update the same row, so a burst of answers does not queue on one row lock.
/// Readers sum whatever shards there are.
pub(crate) const COUNT_SHARDS: i64 = 256;

/// The count row a host's answer moves. SQLite has one writer, so there is no row lock to spread: one row
/// per policy, revision and team, which lets a group commit fold a whole batch's answers into one update
/// per count (see `group_commit`).
fn shard_of(backend: Backend, host_id: i64) -> i64 {
    match backend {
        Backend::Postgres => host_id.rem_euclid(COUNT_SHARDS),
        Backend::Sqlite => 0,
    }
}

/// Columns of a policy with its counts: over every host, or over one host team's (`team_key` bound as $1
/// when `for_team` is set). Only count rows of the current revision count: rows of older revisions were
/// voided with their answers (a report racing an edit may still add to them; nobody reads them).
fn policy_select(for_team: bool) -> String {
    let filter = if for_team { " AND c.team_key = $1" } else { "" };
    let counts = format!("FROM policy_counts c WHERE c.policy_id = p.id AND c.revision = p.revision{filter}");
    format!(
        "SELECT p.id, p.name, p.query, p.description, p.resolution, p.platform, p.critical, p.team_id, \
         p.author_id, p.author_name, p.author_email, p.interval_seconds, p.script_id, p.webhook_url, \
         p.continuous_automation, p.deferral, p.revision, p.created_at, p.updated_at, \
         (SELECT s.name FROM scripts s WHERE s.id = p.script_id) AS script_name, \
         (SELECT COUNT(DISTINCT e.host_id) FROM script_executions e WHERE e.policy_id = p.id \
         AND e.status IN ('pending', 'deferred')) \
         AS remediating_host_count, \
         COALESCE((SELECT CAST(SUM(c.passing) AS BIGINT) {counts}), 0) AS passing_host_count, \
         COALESCE((SELECT CAST(SUM(c.failing) AS BIGINT) {counts}), 0) AS failing_host_count, \
         (SELECT MAX(c.updated_at) {counts}) AS counts_updated_at, p.host_count_updated_at \
         FROM policies p"
    )
}

fn policy_from_row(row: &sqlx::any::AnyRow) -> Result<PolicyRecord> {
    Ok(PolicyRecord {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        query: row.try_get("query")?,
        description: row.try_get("description")?,
        resolution: row.try_get("resolution")?,
        platform: row.try_get("platform")?,
        critical: row.try_get::<i64, _>("critical")? != 0,
        team_id: row.try_get("team_id")?,
        author_id: row.try_get("author_id")?,
        author_name: row.try_get("author_name")?,
        author_email: row.try_get("author_email")?,
        interval_seconds: row.try_get("interval_seconds")?,
        script_id: row.try_get("script_id")?,
        script_name: row.try_get("script_name")?,
        webhook_url: row.try_get("webhook_url")?,
        continuous_automation: row.try_get::<i64, _>("continuous_automation")? != 0,
        deferral: row.try_get("deferral")?,
        labels: LabelScope::default(),
        label_names: BTreeMap::new(),
        revision: row.try_get("revision")?,
        passing_host_count: row.try_get("passing_host_count")?,
        failing_host_count: row.try_get("failing_host_count")?,
        remediating_host_count: row.try_get("remediating_host_count")?,
        // The latest of the policy's own stamp (created, answers voided) and its count rows' moves.
        host_count_updated_at: row
            .try_get::<Option<i64>, _>("host_count_updated_at")?
            .max(row.try_get::<Option<i64>, _>("counts_updated_at")?),
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Count changes gathered by a transaction: (policy, revision, team key, shard) → (passing, failing). A
/// `BTreeMap`, so they are applied in one global order: two transactions taking the same count rows in
/// opposite orders (two reports answering in different orders, two transfers in opposite directions) would
/// deadlock on PostgreSQL.
pub(crate) type CountDeltas = BTreeMap<(i64, i64, i64, i64), (i64, i64)>;

/// Where a host's answer is counted, for [`add_delta`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct CountKey {
    pub backend: Backend,
    pub host_id: i64,
    pub team: Option<i64>,
}

pub(crate) fn add_delta(deltas: &mut CountDeltas, policy: i64, revision: i64, key: CountKey, delta: (i64, i64)) {
    if delta == (0, 0) {
        return;
    }
    let entry = deltas.entry((policy, revision, team_key(key.team), shard_of(key.backend, key.host_id))).or_default();
    entry.0 += delta.0;
    entry.1 += delta.1;
}

/// Applies gathered count changes: a few multi-row statements, however many rows moved.
pub(crate) async fn apply_count_deltas(conn: &mut AnyConnection, deltas: &CountDeltas, now: Millis) -> Result<()> {
    let rows: Vec<_> = deltas.iter().filter(|(_, delta)| **delta != (0, 0)).collect();
    for chunk in rows.chunks(200) {
        let mut sql = SqlBuilder::new(
            "INSERT INTO policy_counts (policy_id, revision, team_key, shard, passing, failing, updated_at) VALUES ",
        );
        // Integer literals, not parameters (see `SqlBuilder::push_int`): SQLite looks each `$n` up by name, so
        // binding a first report's hundreds of values cost n² (5 % of the server's CPU while a fleet enrolled).
        for (i, ((policy_id, revision, team_key, shard), (passing, failing))) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            for (j, value) in
                [*policy_id, *revision, *team_key, *shard, *passing, *failing, now].into_iter().enumerate()
            {
                if j > 0 {
                    sql.push(", ");
                }
                sql.push_int(value);
            }
            sql.push(")");
        }
        sql.push(
            " ON CONFLICT (policy_id, revision, team_key, shard) DO UPDATE SET \
             passing = policy_counts.passing + excluded.passing, failing = policy_counts.failing + excluded.failing, \
             updated_at = excluded.updated_at",
        );
        sql.one_off_query().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Moves a host's answers along with the host from `old_team` to `new_team` (None: no team, or the host is
/// being deleted when `deleting`): counts of global policies move between team keys (gathered into
/// `deltas`, for the caller to apply once for all its hosts); answers to team policies the host leaves are
/// dropped and uncounted. The caller holds the host's row lock.
pub(crate) async fn move_host_answers(
    conn: &mut AnyConnection,
    backend: Backend,
    host_id: i64,
    old_team: Option<i64>,
    new_team: Option<i64>,
    deleting: bool,
    deltas: &mut CountDeltas,
) -> Result<()> {
    // Answers to a revision that is no longer current (or to a deleted policy) count nowhere: they only go.
    let rows = sqlx::query(
        "SELECT m.policy_id, m.passes, m.revision, p.team_id, p.revision FROM policy_membership m \
         LEFT JOIN policies p ON p.id = m.policy_id WHERE m.host_id = $1",
    )
    .bind(host_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut leaving = Vec::new();
    for row in rows {
        let policy_id: i64 = row.try_get(0)?;
        let answer = PolicyResponse::from_stored(row.try_get(1)?);
        let revision: i64 = row.try_get(2)?;
        let policy_team: Option<i64> = row.try_get(3)?;
        let current = row.try_get::<Option<i64>, _>(4)? == Some(revision);
        let stays_in_scope = current && !deleting && (policy_team.is_none() || policy_team == new_team);
        if current {
            let key = CountKey { backend, host_id, team: old_team };
            add_delta(deltas, policy_id, revision, key, count_delta(answer, PolicyResponse::NoAnswer));
        }
        if stays_in_scope {
            let key = CountKey { backend, host_id, team: new_team };
            add_delta(deltas, policy_id, revision, key, count_delta(PolicyResponse::NoAnswer, answer));
        } else {
            leaving.push(policy_id);
        }
    }
    if !leaving.is_empty() {
        let mut sql = SqlBuilder::new("DELETE FROM policy_membership WHERE host_id = ");
        sql.bind(Arg::Int(host_id)).push(" AND policy_id IN ").bind_id_set(backend, &leaving);
        sql.query().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Rows of (policy id, team key, passing, failing) as a map, leaving out all-zero counts.
fn counts_by_policy_and_team(rows: &[sqlx::any::AnyRow]) -> Result<BTreeMap<(i64, i64), (i64, i64)>> {
    let mut out = BTreeMap::new();
    for r in rows {
        let counts: (i64, i64) = (r.try_get(2)?, r.try_get(3)?);
        if counts != (0, 0) {
            out.insert((r.try_get(0)?, r.try_get(1)?), counts);
        }
    }
    Ok(out)
}

pub(crate) fn parse_runs(text: &str) -> HashMap<i64, PolicyRun> {
    let raw: BTreeMap<String, (i64, i64)> = serde_json::from_str(text).unwrap_or_default();
    raw.into_iter()
        .filter_map(|(id, (ran_at, revision))| Some((id.parse().ok()?, PolicyRun { ran_at, revision })))
        .collect()
}

pub(crate) fn runs_text(runs: &HashMap<i64, PolicyRun>) -> String {
    let raw: BTreeMap<String, (i64, i64)> =
        runs.iter().map(|(id, run)| (id.to_string(), (run.ran_at, run.revision))).collect();
    serde_json::to_string(&raw).unwrap_or_else(|_| "{}".into())
}

impl Store {
    pub async fn create_policy(
        &self,
        fields: &PolicyFields,
        team_id: Option<i64>,
        author: Option<&PolicyAuthor>,
        now: Millis,
    ) -> Result<i64> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO policies (name, query, description, resolution, platform, critical, team_id, scope_key, \
             author_id, author_name, author_email, interval_seconds, created_at, updated_at, host_count_updated_at, script_id, \
             webhook_url, continuous_automation, deferral) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13, $13, $14, $15, $16, $17) RETURNING id",
        )
        .bind(fields.name.trim())
        .bind(&fields.query)
        .bind(&fields.description)
        .bind(&fields.resolution)
        .bind(&fields.platform)
        .bind(fields.critical as i64)
        .bind(team_id)
        .bind(team_key(team_id))
        .bind(author.map(|a| a.id))
        .bind(author.map(|a| a.name.clone()).unwrap_or_default())
        .bind(author.map(|a| a.email.clone()).unwrap_or_default())
        .bind(fields.interval_seconds)
        .bind(now)
        .bind(fields.script_id)
        .bind(fields.webhook_url.clone())
        .bind(fields.continuous_automation as i64)
        .bind(fields.deferral.clone())
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound("team"),
            _ => StoreError::conflict_on_unique(e, "a policy with this name already exists in this scope"),
        })?;
        crate::labels::set_scope(
            &mut tx,
            self.backend,
            "policy_labels",
            "policy_id",
            id,
            Node::Policy(id),
            &fields.labels,
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Fills in the label scopes of policies read without them.
    async fn with_scopes(&self, mut policies: Vec<PolicyRecord>) -> Result<Vec<PolicyRecord>> {
        let ids: Vec<i64> = policies.iter().map(|p| p.id).collect();
        let mut scopes =
            crate::labels::scopes_of(&self.reader, self.backend, "policy_labels", "policy_id", &ids).await?;
        if scopes.is_empty() {
            return Ok(policies);
        }
        let names = self.label_names().await?;
        for policy in &mut policies {
            policy.labels = scopes.remove(&policy.id).unwrap_or_default();
            policy.label_names =
                policy.labels.labels().into_iter().filter_map(|id| Some((id, names.get(&id)?.clone()))).collect();
        }
        Ok(policies)
    }

    async fn with_scope(&self, policy: Option<PolicyRecord>) -> Result<Option<PolicyRecord>> {
        Ok(self.with_scopes(policy.into_iter().collect()).await?.pop())
    }

    pub async fn get_policy(&self, id: i64) -> Result<Option<PolicyRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{} WHERE p.id = $1", policy_select(false))))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        self.with_scope(row.as_ref().map(policy_from_row).transpose()?).await
    }

    /// The policies among `ids` that exist, in id order (ids may repeat; any number of them).
    pub async fn get_policies(&self, ids: &[i64]) -> Result<Vec<PolicyRecord>> {
        let mut sql = SqlBuilder::new(&format!("{} WHERE p.id IN ", policy_select(false)));
        sql.bind_id_set(self.backend, ids).push(" ORDER BY p.id");
        let rows = sql.query().fetch_all(&self.reader).await?;
        self.with_scopes(rows.iter().map(policy_from_row).collect::<Result<_>>()?).await
    }

    pub async fn policy_by_name(&self, team_id: Option<i64>, name: &str) -> Result<Option<PolicyRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} WHERE p.scope_key = $1 AND p.name = $2",
            policy_select(false)
        )))
        .bind(team_key(team_id))
        .bind(name.trim())
        .fetch_optional(&self.reader)
        .await?;
        self.with_scope(row.as_ref().map(policy_from_row).transpose()?).await
    }

    /// Policies of one scope (global when `team_id` is None), counts over every host.
    pub async fn list_policies(&self, team_id: Option<i64>) -> Result<Vec<PolicyRecord>> {
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(format!("{} WHERE p.scope_key = $1 ORDER BY p.id", policy_select(false))))
                .bind(team_key(team_id))
                .fetch_all(&self.reader)
                .await?;
        self.with_scopes(rows.iter().map(policy_from_row).collect::<Result<_>>()?).await
    }

    /// Global policies with counts over one team's hosts only (a team's "inherited" policies).
    pub async fn global_policies_for_team(&self, team_id: i64) -> Result<Vec<PolicyRecord>> {
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(format!("{} WHERE p.scope_key = 0 ORDER BY p.id", policy_select(true))))
                .bind(team_id)
                .fetch_all(&self.reader)
                .await?;
        self.with_scopes(rows.iter().map(policy_from_row).collect::<Result<_>>()?).await
    }

    /// Every policy of every scope without its counts (they read 0): what the servers' schedule cache needs,
    /// reloaded every 2 s on every server — summing count shards for it would be wasted work.
    pub async fn policies_to_schedule(&self) -> Result<Vec<PolicyRecord>> {
        let rows = sqlx::query(
            "SELECT p.*, CAST(NULL AS TEXT) AS script_name, CAST(0 AS BIGINT) AS remediating_host_count, \
             CAST(0 AS BIGINT) AS passing_host_count, CAST(0 AS BIGINT) AS failing_host_count, \
             CAST(NULL AS BIGINT) AS counts_updated_at FROM policies p ORDER BY p.id",
        )
        .fetch_all(&self.reader)
        .await?;
        self.with_scopes(rows.iter().map(policy_from_row).collect::<Result<_>>()?).await
    }

    /// Every policy of every scope, with counts.
    pub async fn all_policies(&self) -> Result<Vec<PolicyRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{} ORDER BY p.id", policy_select(false))))
            .fetch_all(&self.reader)
            .await?;
        self.with_scopes(rows.iter().map(policy_from_row).collect::<Result<_>>()?).await
    }

    pub async fn count_policies(&self, team_id: Option<i64>) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM policies WHERE scope_key = $1")
            .bind(team_key(team_id))
            .fetch_one(&self.reader)
            .await?)
    }

    /// Saves a policy's fields. When the query or platform changes, every host's answer is void: answers and
    /// counts are cleared and the revision bumped, in one transaction, so no stale answer is ever counted.
    pub async fn update_policy(&self, id: i64, fields: &PolicyFields, now: Millis) -> Result<PolicyRecord> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        // Locked: of two edits at once, the second sees the first's query (and bumps the revision again if
        // it changes it back).
        let lock = if self.backend == Backend::Postgres { " FOR UPDATE" } else { "" };
        let current =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT query, platform FROM policies WHERE id = $1{lock}")))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
                .ok_or(StoreError::NotFound("policy"))?;
        let (query, platform): (String, String) = (current.try_get(0)?, current.try_get(1)?);
        let scope_changed = crate::labels::set_scope(
            &mut tx,
            self.backend,
            "policy_labels",
            "policy_id",
            id,
            Node::Policy(id),
            &fields.labels,
        )
        .await?;
        let voids_answers = query != fields.query || platform != fields.platform || scope_changed;
        if voids_answers {
            // Criteria naming this policy's result see every host's answer go.
            crate::labels::policy_answers_voided(&mut tx, id, now).await?;
        }
        sqlx::query(
            "UPDATE policies SET name = $1, query = $2, description = $3, resolution = $4, platform = $5, \
             critical = $6, interval_seconds = $7, updated_at = $8, \
             revision = revision + $9, host_count_updated_at = CASE WHEN $9 = 1 THEN $8 ELSE host_count_updated_at END, \
             script_id = $11, webhook_url = $12, continuous_automation = $13, deferral = $14 WHERE id = $10",
        )
        .bind(fields.name.trim())
        .bind(&fields.query)
        .bind(&fields.description)
        .bind(&fields.resolution)
        .bind(&fields.platform)
        .bind(fields.critical as i64)
        .bind(fields.interval_seconds)
        .bind(now)
        .bind(voids_answers as i64)
        .bind(id)
        .bind(fields.script_id)
        .bind(fields.webhook_url.clone())
        .bind(fields.continuous_automation as i64)
        .bind(fields.deferral.clone())
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, "a policy with this name already exists in this scope"))?;
        if !crate::deferrals::enabled(fields.deferral.as_deref()) {
            // No longer deferrable: runs waiting on users go ahead now.
            crate::deferrals::release_policy_runs(&mut tx, id, now).await?;
        }
        // A new revision voids every answer at once: answers and counts are keyed by revision and only the
        // current one is read. The old rows are not deleted here (an edit of a policy 150,000 hosts answered
        // would hold 150,000 row locks while reports wait on them); housekeeping prunes them
        // (`prune_voided_answers`).
        tx.commit().await?;
        self.get_policy(id).await?.ok_or(StoreError::NotFound("policy"))
    }

    /// Restarts the automations of these policies: hosts failing them now count as newly failing at their
    /// next answer (webhooks fire again, scripts run again with fresh retries). Returns how many policies.
    pub async fn reset_automations(&self, policy_ids: &[i64], now: Millis) -> Result<u64> {
        if policy_ids.is_empty() {
            return Ok(0);
        }
        let mut sql = SqlBuilder::new("UPDATE policies SET automations_reset_at = ");
        sql.bind(Arg::Int(now)).push(" WHERE id IN ").bind_id_set(self.backend, policy_ids);
        Ok(sql.query().execute(&self.writer).await?.rows_affected())
    }

    /// Deletes policies (answers and counts go with them). Returns how many existed.
    pub async fn delete_policies(&self, ids: &[i64]) -> Result<u64> {
        let now = crate::sql::now_ms();
        if ids.is_empty() {
            return Ok(0);
        }
        // Answers and counts do not reference policies by foreign key (every answer written would lock its
        // policy's row), and readers join policies: they count nowhere from this commit on, and housekeeping
        // prunes them (`prune_voided_answers`) — deleting 150,000 answer rows here would hold as many row
        // locks against the reports writing them. One policy per transaction: a report holds the rows of
        // several policies (its deferrals and runs reference them), and a delete holding several policy rows
        // while waiting on a report's row could close a cycle.
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let mut deleted = 0;
        for id in ids {
            let mut conn = self.writer.acquire().await?;
            let mut tx = conn.begin().await?;
            let gone =
                sqlx::query("DELETE FROM policies WHERE id = $1").bind(id).execute(&mut *tx).await?.rows_affected();
            if gone > 0 {
                crate::labels::break_labels_naming(&mut tx, crate::labels::Input::Policy(id), now).await?;
            }
            tx.commit().await?;
            deleted += gone;
        }
        Ok(deleted)
    }

    /// Deletes answers and count rows that no longer count — of an older revision of their policy, or of a
    /// deleted policy — at most `batch` rows per statement, policy by policy along the primary key (no scan
    /// of live rows). Returns how many rows went. A row a report rewrites to the current revision meanwhile
    /// is kept: the delete matches the revision too.
    pub async fn prune_voided_answers(&self, batch: i64) -> Result<u64> {
        // A first sort (the statement decides again): what is live now.
        let live: Vec<(i64, i64)> = sqlx::query_as("SELECT id, revision FROM policies").fetch_all(&self.reader).await?;
        let live: HashMap<i64, i64> = live.into_iter().collect();
        let mut pruned = 0;
        for (table, key) in [
            ("policy_membership", "policy_id, host_id, revision"),
            ("policy_counts", "policy_id, team_key, shard, revision"),
        ] {
            let present: Vec<(i64, i64)> =
                sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT DISTINCT policy_id, revision FROM {table}")))
                    .fetch_all(&self.reader)
                    .await?;
            for (policy, revision) in present {
                if live.get(&policy) == Some(&revision) {
                    continue;
                }
                // Decided again in the statement: the revision read above may have become current since
                // (revisions only grow, so once voided a revision stays voided). On PostgreSQL rows another
                // transaction holds are skipped (pruned another time): pruning never waits on a lock, so it
                // can never be part of a deadlock with the reports and moves writing these rows.
                let skip = if self.backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
                let sql = format!(
                    "DELETE FROM {table} WHERE policy_id = $1 AND revision = $2 AND ({key}) IN \
                     (SELECT {key} FROM {table} WHERE policy_id = $1 AND revision = $2 LIMIT $3{skip}) \
                     AND NOT EXISTS (SELECT 1 FROM policies p WHERE p.id = $1 AND p.revision = $2)"
                );
                loop {
                    let done = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
                        .bind(policy)
                        .bind(revision)
                        .bind(batch)
                        .execute(&self.writer)
                        .await?
                        .rows_affected();
                    pruned += done;
                    if done < batch as u64 {
                        break;
                    }
                }
            }
        }
        Ok(pruned)
    }

    /// Applies one report of policy answers in one transaction: only answers that changed are written, the
    /// counts move by delta, answers to a revision that is no longer current (the policy was edited after
    /// the query was handed out) or to deleted policies are ignored. Err [`StoreError::HostGone`] when the
    /// host is gone.
    pub async fn record_policy_results(&self, host_id: i64, answers: &[ReportedAnswer], now: Millis) -> Result<()> {
        self.record_report(host_id, answers, None, now, &AutomationRules::default(), |_| Vec::new()).await?;
        Ok(())
    }

    /// One distributed/write report — policy answers and vitals — in one transaction: both are applied or
    /// neither. `vitals` carries the patch and when its queries were handed out. Everything the answers mean
    /// is decided from what this transaction reads (`herd_core::report::decide`): the policies and their
    /// revisions, the host's team and prior answers, and — for every policy whose automations fire — the
    /// webhook settings in force, handed to `on_failure`, whose jobs are enqueued in the same transaction.
    /// Err [`StoreError::HostGone`] when the host is gone.
    ///
    /// On SQLite the report goes through group commit (`group_commit`): it shares a transaction, and its
    /// disk sync, with the other writes waiting at that moment, and this returns once that has committed.
    pub async fn record_report(
        &self,
        host_id: i64,
        answers: &[ReportedAnswer],
        vitals: Option<(&VitalsPatch, Millis)>,
        now: Millis,
        rules: &AutomationRules,
        on_failure: OnFailure,
    ) -> Result<ReportOutcome> {
        self.record_report_with_labels(host_id, answers, &[], vitals, now, rules, on_failure).await
    }

    /// [`Store::record_report`] with the host's answers to dynamic labels' queries: membership and what it
    /// changes (scopes, counts, criteria labels) in the same transaction.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_report_with_labels(
        &self,
        host_id: i64,
        answers: &[ReportedAnswer],
        label_answers: &[(i64, LabelAnswer)],
        vitals: Option<(&VitalsPatch, Millis)>,
        now: Millis,
        rules: &AutomationRules,
        on_failure: OnFailure,
    ) -> Result<ReportOutcome> {
        let in_flight = self.start_hot_write();
        let report = Report {
            host_id,
            answers: answers.to_vec(),
            label_answers: label_answers.to_vec(),
            vitals: vitals.map(|(patch, at)| (patch.clone(), at)),
            now,
            rules: *rules,
            on_failure,
        };
        if let Some(group) = &self.group_commit {
            return group.report(report).await;
        }
        let mut conn = self.writer.acquire().await?;
        in_flight.begins();
        let mut tx = conn.begin().await?;
        let mut deltas = CountDeltas::new();
        let mut facts = ReportFacts::default();
        let outcome = report_in(&mut tx, self.backend, &report, &mut facts, &mut deltas).await?;
        apply_count_deltas(&mut tx, &deltas, now).await?;
        tx.commit().await?;
        Ok(outcome)
    }
}

/// Turns a policy whose automations fire into the jobs to enqueue with the report (webhooks: see
/// `herd_server::webhooks::failing_policy_jobs`). A plain function: it runs in the report's transaction,
/// perhaps on the group-commit task, and may only look at what it is given.
pub type OnFailure = fn(&FiringPolicy<'_>) -> Vec<crate::NewJob>;

/// One distributed/write report (see `Store::record_report`), owned: it may cross to the group-commit task.
pub(crate) struct Report {
    pub host_id: i64,
    pub answers: Vec<ReportedAnswer>,
    /// Answers to dynamic labels' queries.
    pub label_answers: Vec<(i64, LabelAnswer)>,
    /// The vitals patch and when its queries were handed out.
    pub vitals: Option<(VitalsPatch, Millis)>,
    pub now: Millis,
    pub rules: AutomationRules,
    pub on_failure: OnFailure,
}

/// What reports depend on beyond the host — the policies and the webhook settings — as read in the current
/// transaction. No report writes them, so once read they stay the truth for the rest of the transaction: a
/// group commit reads them once per batch rather than once per report (on SQLite, reading a report's 50
/// policies was a quarter of the writer's time while a fleet enrolled).
#[derive(Debug, Default)]
pub(crate) struct ReportFacts {
    /// Policies that exist, as they are.
    policies: HashMap<i64, CurrentPolicy>,
    /// Every policy id looked up (the ones missing from `policies` do not exist).
    looked_up: HashSet<i64>,
    scripts: HashMap<i64, i64>,
    webhook_urls: HashMap<i64, String>,
    /// `webhook_settings` of the configuration document, once read.
    global_webhooks: Option<Option<serde_json::Value>>,
    team_webhooks: HashMap<i64, Option<serde_json::Value>>,
    /// Label definitions and scopes, once read (only when a report needs them).
    labels: Option<LabelFacts>,
    /// Policies (among those looked up) whose scope names labels.
    label_scoped: HashSet<i64>,
    /// Policies (among those looked up) a criteria label names.
    criteria_inputs: HashSet<i64>,
}

impl ReportFacts {
    async fn load_labels(&mut self, tx: &mut AnyConnection) -> Result<&LabelFacts> {
        if self.labels.is_none() {
            self.labels = Some(LabelFacts::load(tx).await?);
        }
        Ok(self.labels.as_ref().expect("just loaded"))
    }

    /// Reads the policies among `ids` not looked up yet in this transaction.
    async fn load_policies(&mut self, tx: &mut AnyConnection, backend: Backend, ids: &[i64]) -> Result<()> {
        let missing: Vec<i64> = ids.iter().copied().filter(|id| !self.looked_up.contains(id)).collect();
        if missing.is_empty() {
            return Ok(());
        }
        // No lock: an edit that commits meanwhile bumps the revision, and count rows are keyed by revision,
        // so a racing answer lands where nobody reads.
        // Whether labels scope each policy or watch its answers comes with it: a report about policies no
        // label touches reads nothing more.
        let mut current = SqlBuilder::new(
            "SELECT id, revision, team_id, script_id, automations_reset_at, continuous_automation, deferral, \
             webhook_url, \
             CASE WHEN EXISTS (SELECT 1 FROM policy_labels l WHERE l.policy_id = policies.id) THEN 1 ELSE 0 END, \
             CASE WHEN EXISTS (SELECT 1 FROM label_policy_inputs i WHERE i.policy_id = policies.id) THEN 1 ELSE 0 END \
             FROM policies WHERE id IN ",
        );
        current.bind_id_set(backend, &missing);
        for row in current.query().fetch_all(&mut *tx).await? {
            let id: i64 = row.try_get(0)?;
            let script_id: Option<i64> = row.try_get(3)?;
            if let Some(script_id) = script_id {
                self.scripts.insert(id, script_id);
            }
            if let Some(url) = row.try_get::<Option<String>, _>(7)? {
                self.webhook_urls.insert(id, url);
            }
            if row.try_get::<i64, _>(8)? == 1 {
                self.label_scoped.insert(id);
            }
            if row.try_get::<i64, _>(9)? == 1 {
                self.criteria_inputs.insert(id);
            }
            let deferrable = crate::deferrals::enabled(row.try_get::<Option<String>, _>(6)?.as_deref());
            self.policies.insert(
                id,
                CurrentPolicy {
                    revision: row.try_get(1)?,
                    team_id: row.try_get(2)?,
                    script_deferrable: script_id.map(|_| deferrable),
                    automations_reset_at: row.try_get(4)?,
                    continuous: row.try_get::<i64, _>(5)? != 0,
                },
            );
        }
        self.looked_up.extend(missing);
        Ok(())
    }

    /// `webhook_settings` of the configuration document.
    async fn load_global_webhooks(&mut self, tx: &mut AnyConnection) -> Result<()> {
        if self.global_webhooks.is_none() {
            let document: Option<String> =
                sqlx::query_scalar("SELECT document FROM app_config WHERE id = 1").fetch_optional(&mut *tx).await?;
            let settings = document
                .as_deref()
                .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
                .and_then(|mut doc| doc.get_mut("webhook_settings").map(serde_json::Value::take));
            self.global_webhooks = Some(settings);
        }
        Ok(())
    }

    /// `webhook_settings` of a team.
    async fn load_team_webhooks(&mut self, tx: &mut AnyConnection, team: i64) -> Result<()> {
        if let std::collections::hash_map::Entry::Vacant(entry) = self.team_webhooks.entry(team) {
            let text: Option<Option<String>> = sqlx::query_scalar("SELECT webhook_settings FROM teams WHERE id = $1")
                .bind(team)
                .fetch_optional(&mut *tx)
                .await?;
            entry.insert(text.flatten().and_then(|t| serde_json::from_str(&t).ok()));
        }
        Ok(())
    }
}

/// A report in the caller's transaction. Its count changes are added to `deltas`, which the caller applies
/// (`apply_count_deltas`) before committing: a group commit folds a whole batch's into one update per count.
/// `facts` are what the transaction has read so far of the policies and settings (see [`ReportFacts`]).
pub(crate) async fn report_in(
    conn: &mut AnyConnection,
    backend: Backend,
    report: &Report,
    facts: &mut ReportFacts,
    deltas: &mut CountDeltas,
) -> Result<ReportOutcome> {
    let (mut outcome, mut runs) = (ReportOutcome::default(), None);
    if !report.answers.is_empty() {
        let (answered, new_runs) = write_policy_answers(conn, backend, report, facts, deltas).await?;
        (outcome, runs) = (answered, Some(new_runs));
    }
    if !report.label_answers.is_empty() {
        // Label runs share the run history (under negative ids, `labels::label_run_key`).
        let text = match runs {
            Some(text) => text,
            None => lock_host(conn, backend, report.host_id, HostLock::Change).await?.policy_runs,
        };
        let mut label_runs = parse_runs(&text);
        for (label_id, _) in &report.label_answers {
            label_runs.insert(crate::labels::label_run_key(*label_id), PolicyRun { ran_at: report.now, revision: 0 });
        }
        runs = Some(runs_text(&label_runs));
    }
    // The host row is written once: with the vitals when there are any.
    match (&report.vitals, runs) {
        (Some((patch, requested_at)), runs) => {
            let written =
                crate::hosts::write_vitals(conn, report.host_id, patch, *requested_at, runs.as_deref(), report.now)
                    .await?;
            if !written {
                return Err(StoreError::HostGone);
            }
        }
        (None, Some(runs)) => write_policy_runs(conn, report.host_id, &runs, report.now).await?,
        (None, None) => {}
    }
    // Labels: the answers to dynamic ones, then every criteria label whose inputs this report may have moved.
    let watched = report.answers.iter().any(|a| facts.criteria_inputs.contains(&a.policy_id));
    if !report.label_answers.is_empty() || report.vitals.is_some() || watched {
        let labels = facts.load_labels(conn).await?;
        let set: Vec<crate::labels::SetMembership> =
            report.label_answers.iter().map(|(id, answer)| (*id, Some(answer.clone()))).collect();
        crate::labels::refresh_host_in(conn, backend, report.host_id, labels, &set, deltas, report.now).await?;
        if !report.label_answers.is_empty() {
            sqlx::query("UPDATE hosts SET label_updated_at = $1 WHERE id = $2")
                .bind(report.now)
                .bind(report.host_id)
                .execute(&mut *conn)
                .await?;
        }
    }
    Ok(outcome)
}

/// Stores a host's run history after a report. Answers arrived, so a re-check the server asked for is done.
async fn write_policy_runs(conn: &mut AnyConnection, host_id: i64, runs: &str, now: Millis) -> Result<()> {
    sqlx::query("UPDATE hosts SET policy_runs = $1, policy_updated_at = $2, recheck_requested_at = NULL WHERE id = $3")
        .bind(runs)
        .bind(now)
        .bind(host_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// What a committed report changed that the caller may need to act on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportOutcome {
    /// Policies answered at a revision that is no longer current (ignored), with their current revision:
    /// the host was asked an edited query. Every server has been told to plan the host again
    /// (`host_changes`); a server whose cached revision is older should reload its policies.
    pub stale_policies: Vec<(i64, i64)>,
}

/// A policy whose automations fire for a host, with the webhook settings in force in the report's
/// transaction (the caller turns them into jobs: see `herd_server::webhooks::failing_policy_jobs`).
#[derive(Debug)]
pub struct FiringPolicy<'a> {
    pub policy_id: i64,
    pub host_id: i64,
    pub now: Millis,
    /// The policy's own webhook.
    pub policy_webhook_url: Option<&'a str>,
    /// `webhook_settings` of the configuration document.
    pub global_webhook_settings: Option<&'a serde_json::Value>,
    /// `webhook_settings` of the policy's team, for a team policy that has them.
    pub team_webhook_settings: Option<&'a serde_json::Value>,
}

/// The policy part of a report, in the caller's transaction (see `Store::record_report`): loads what the
/// answers' meaning depends on, lets `herd_core::report::decide` decide, applies the effects. Returns the
/// host's new run history (as stored text) for the caller to write with the rest of the host row.
async fn write_policy_answers(
    tx: &mut AnyConnection,
    backend: Backend,
    report: &Report,
    facts: &mut ReportFacts,
    deltas: &mut CountDeltas,
) -> Result<(ReportOutcome, String)> {
    let Report { host_id, ref answers, now, ref rules, on_failure, .. } = *report;
    // The host row first: reports, transfers and deletion of one host serialise here.
    let host = lock_host(tx, backend, host_id, HostLock::Change).await?;
    let mut runs = parse_runs(&host.policy_runs);

    let ids: Vec<i64> = answers.iter().map(|a| a.policy_id).collect();
    facts.load_policies(tx, backend, &ids).await?;
    let mut prior: HashMap<i64, PriorAnswer> = HashMap::new();
    // Answers are only ever stored by a report, which also sets `policy_updated_at`: a host that never
    // reported (a fleet enrolling) has none to read.
    if host.policy_updated_at.is_some() {
        let mut existing =
            SqlBuilder::new("SELECT policy_id, passes, revision, updated_at FROM policy_membership WHERE host_id = ");
        existing.bind(Arg::Int(host_id)).push(" AND policy_id IN ").bind_id_set(backend, &ids);
        for row in existing.query().fetch_all(&mut *tx).await? {
            let answer = PriorAnswer {
                response: PolicyResponse::from_stored(row.try_get(1)?),
                revision: row.try_get(2)?,
                since: row.try_get(3)?,
            };
            prior.insert(row.try_get(0)?, answer);
        }
    }
    let last_answered_at: HashMap<i64, Millis> = runs.iter().map(|(id, run)| (*id, run.ran_at)).collect();
    let out_of_scope = if ids.iter().any(|id| facts.label_scoped.contains(id)) {
        facts.load_labels(tx).await?.out_of_scope(&host.label_ids)
    } else {
        HashSet::new()
    };
    let decision = decide(&ReportInput {
        host_team: host.team_id,
        out_of_label_scope: &out_of_scope,
        origin: rules.origin,
        answers,
        policies: &facts.policies,
        prior: &prior,
        last_answered_at: &last_answered_at,
        now,
    });

    for (policy_id, revision) in &decision.accepted {
        runs.insert(*policy_id, PolicyRun { ran_at: now, revision: *revision });
    }
    for (policy_id, mode, deferrable) in &decision.remediations {
        let script = crate::automations::PolicyScript { script_id: facts.scripts[policy_id], deferrable: *deferrable };
        let refused = host.scripts_enabled == Some(0);
        crate::automations::remediate(tx, host_id, refused, *policy_id, script, *mode, rules, now).await?;
    }
    for policy_id in &decision.fixed {
        crate::deferrals::close_on_pass(tx, host_id, *policy_id, now).await?;
    }
    if !decision.firing.is_empty() {
        fire_automations(tx, host_id, &decision.firing, facts, on_failure, now).await?;
    }
    // A few multi-row statements per report, however many answers changed.
    for chunk in decision.membership.chunks(200) {
        let mut sql =
            SqlBuilder::new("INSERT INTO policy_membership (policy_id, host_id, passes, revision, updated_at) VALUES ");
        // Integer literals (see `apply_count_deltas`).
        for (i, (policy_id, response, revision)) in chunk.iter().enumerate() {
            sql.push(if i == 0 { "(" } else { ", (" });
            sql.push_int(*policy_id).push(", ").push_int(host_id).push(", ");
            match response.to_stored() {
                Some(passes) => sql.push_int(passes),
                None => sql.push("NULL"),
            };
            sql.push(", ").push_int(*revision).push(", ").push_int(now).push(")");
        }
        sql.push(
            " ON CONFLICT (policy_id, host_id) DO UPDATE SET passes = excluded.passes, \
             revision = excluded.revision, updated_at = excluded.updated_at",
        );
        sql.one_off_query().execute(&mut *tx).await?;
    }
    let key = CountKey { backend, host_id, team: host.team_id };
    for (policy, revision, delta) in &decision.deltas {
        add_delta(deltas, *policy, *revision, key, *delta);
    }
    // Forget runs of deleted policies: live policies' runs are refreshed at least every interval (at most
    // a week), so an entry older than that belongs to a policy that is gone (or to a host long offline,
    // for which re-running is right anyway).
    runs.retain(|_, run| now - run.ran_at <= RUNS_KEPT_MS);
    if !decision.stale.is_empty() {
        // The host ran an edited policy's old query: whichever server it asks next must plan it again (a
        // server that handed out the old query still waits for its answer).
        note_host_change(tx, host_id, now).await?;
    }
    Ok((ReportOutcome { stale_policies: decision.stale }, runs_text(&runs)))
}

/// Enqueues the webhook jobs of policies whose automations fire, from the settings as they are in this
/// transaction (the configuration document and the teams' settings: never a server's cached copy, which
/// may be seconds behind an edit made through another server).
async fn fire_automations(
    tx: &mut AnyConnection,
    host_id: i64,
    firing: &[i64],
    facts: &mut ReportFacts,
    on_failure: OnFailure,
    now: Millis,
) -> Result<()> {
    let teams: BTreeSet<i64> = firing.iter().filter_map(|id| facts.policies.get(id)?.team_id).collect();
    for team in teams {
        facts.load_team_webhooks(tx, team).await?;
    }
    facts.load_global_webhooks(tx).await?;
    let global = facts.global_webhooks.as_ref().and_then(Option::as_ref);
    for policy_id in firing {
        let team = facts.policies.get(policy_id).and_then(|p| p.team_id);
        let firing = FiringPolicy {
            policy_id: *policy_id,
            host_id,
            now,
            policy_webhook_url: facts.webhook_urls.get(policy_id).map(String::as_str),
            global_webhook_settings: global,
            team_webhook_settings: team.and_then(|t| facts.team_webhooks.get(&t)).and_then(Option::as_ref),
        };
        for job in on_failure(&firing) {
            crate::jobs::enqueue_in(tx, &job, now).await?;
        }
    }
    Ok(())
}

impl Store {
    /// A host's answers to every policy in its scope (those not run yet as no answer), for host views.
    pub async fn host_policy_answers(&self, host_id: i64, team_id: Option<i64>) -> Result<Vec<HostPolicyAnswer>> {
        let policies = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{} WHERE p.team_id IS NULL OR p.team_id = $1 ORDER BY p.id",
            policy_select(false)
        )))
        .bind(team_id.unwrap_or(-1))
        .fetch_all(&self.reader)
        .await?;
        // Answers to the current revision only (an older revision's were voided).
        let answers: HashMap<i64, Option<i64>> = sqlx::query(
            "SELECT m.policy_id, m.passes FROM policy_membership m JOIN policies p ON p.id = m.policy_id \
             AND p.revision = m.revision WHERE m.host_id = $1",
        )
        .bind(host_id)
        .fetch_all(&self.reader)
        .await?
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_>>()?;
        let remediating: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT policy_id FROM script_executions WHERE host_id = $1 AND status = 'pending' AND policy_id IS NOT NULL",
        )
        .bind(host_id)
        .fetch_all(&self.reader)
        .await?;
        let label_ids: Option<String> = sqlx::query_scalar("SELECT label_ids FROM hosts WHERE id = $1")
            .bind(host_id)
            .fetch_optional(&self.reader)
            .await?;
        let labels = crate::labels::parse_label_ids(label_ids.as_deref().unwrap_or(""));
        let policies = self.with_scopes(policies.iter().map(policy_from_row).collect::<Result<_>>()?).await?;
        policies
            .into_iter()
            .filter(|policy| policy.labels.admits(|l| labels.contains(&l)))
            .map(|policy| {
                let response =
                    answers.get(&policy.id).map_or(PolicyResponse::NoAnswer, |p| PolicyResponse::from_stored(*p));
                let remediating = remediating.contains(&policy.id);
                Ok(HostPolicyAnswer { policy, response, remediating })
            })
            .collect()
    }

    /// Failing-policy counts of many hosts at once (host id → count), for host listings.
    pub async fn failing_policy_counts(&self, host_ids: &[i64]) -> Result<HashMap<i64, i64>> {
        if host_ids.is_empty() {
            return Ok(HashMap::new());
        }
        let mut sql = SqlBuilder::new(
            "SELECT m.host_id, COUNT(*) FROM policy_membership m JOIN policies p ON p.id = m.policy_id \
             AND p.revision = m.revision WHERE m.passes = 0 AND m.host_id IN ",
        );
        sql.bind_id_set(self.backend, host_ids).push(" GROUP BY m.host_id");
        sql.query().fetch_all(&self.reader).await?.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Recounts answers from scratch (policy, team key) → (passing, failing): what the delta-maintained
    /// counts must always equal (the property test compares the two).
    pub async fn recount_policy_answers(&self) -> Result<BTreeMap<(i64, i64), (i64, i64)>> {
        let rows = sqlx::query(
            "SELECT m.policy_id, COALESCE(h.team_id, 0), \
             CAST(SUM(CASE WHEN m.passes = 1 THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN m.passes = 0 THEN 1 ELSE 0 END) AS BIGINT) \
             FROM policy_membership m JOIN hosts h ON h.id = m.host_id \
             JOIN policies p ON p.id = m.policy_id AND p.revision = m.revision \
             GROUP BY m.policy_id, COALESCE(h.team_id, 0)",
        )
        .fetch_all(&self.reader)
        .await?;
        counts_by_policy_and_team(&rows)
    }

    /// The delta-maintained counts, in the shape of [`Store::recount_policy_answers`].
    pub async fn stored_policy_counts(&self) -> Result<BTreeMap<(i64, i64), (i64, i64)>> {
        let rows = sqlx::query(
            "SELECT c.policy_id, c.team_key, CAST(SUM(c.passing) AS BIGINT), CAST(SUM(c.failing) AS BIGINT) \
             FROM policy_counts c JOIN policies p ON p.id = c.policy_id AND p.revision = c.revision \
             GROUP BY c.policy_id, c.team_key",
        )
        .fetch_all(&self.reader)
        .await?;
        counts_by_policy_and_team(&rows)
    }
}

/// Used by host deletion and team moves (hosts.rs, users.rs) so counts follow hosts.
pub(crate) async fn note_host_moved(
    conn: &mut AnyConnection,
    backend: Backend,
    host_id: i64,
    old_team: Option<i64>,
    new_team: Option<i64>,
    deltas: &mut CountDeltas,
    now: Millis,
) -> Result<()> {
    move_host_answers(conn, backend, host_id, old_team, new_team, false, deltas).await?;
    note_host_change(conn, host_id, now).await
}
