//! Policies, hosts' answers to them, and the pass/fail counts kept exact by delta.
//!
//! Invariant (checked by the property test in `tests/policy_counts.rs`): for every policy and host team,
//! `policy_counts` equals a recount of `policy_membership` joined to hosts, after every committed change.

use crate::automations::{AutomationRules, Remediation};
use crate::hosts::note_host_change;
use crate::sql::{Arg, SqlBuilder};
use crate::{Backend, Result, Store, StoreError};
use herd_core::Millis;
use herd_core::due::PolicyRun;
use herd_core::policy::{PolicyResponse, count_delta};
use herd_core::vitals::VitalsPatch;
use sqlx::{Acquire, AnyConnection, Row};
use std::collections::{BTreeMap, HashMap, HashSet};

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
}

#[derive(Debug, Clone)]
pub struct PolicyAuthor {
    pub id: i64,
    pub name: String,
    pub email: String,
}

/// One answer of a host, to the revision of the policy it was handed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyAnswer {
    pub policy_id: i64,
    pub revision: i64,
    pub response: PolicyResponse,
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

/// Columns of a policy with its counts: over every host, or over one host team's (`team_key` bound as $1
/// when `for_team` is set).
fn policy_select(for_team: bool) -> String {
    let filter = if for_team { " AND c.team_key = $1" } else { "" };
    format!(
        "SELECT p.*, (SELECT s.name FROM scripts s WHERE s.id = p.script_id) AS script_name, \
         (SELECT COUNT(DISTINCT e.host_id) FROM script_executions e WHERE e.policy_id = p.id \
         AND e.status IN ('pending', 'deferred')) \
         AS remediating_host_count, \
         COALESCE((SELECT CAST(SUM(c.passing) AS BIGINT) FROM policy_counts c WHERE c.policy_id = p.id{filter}), 0) AS passing_host_count, \
         COALESCE((SELECT CAST(SUM(c.failing) AS BIGINT) FROM policy_counts c WHERE c.policy_id = p.id{filter}), 0) AS failing_host_count \
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
        revision: row.try_get("revision")?,
        passing_host_count: row.try_get("passing_host_count")?,
        failing_host_count: row.try_get("failing_host_count")?,
        remediating_host_count: row.try_get("remediating_host_count")?,
        host_count_updated_at: row.try_get("host_count_updated_at")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Adds a (passing, failing) delta to one policy's count for one host team, and stamps the policy.
async fn apply_delta(conn: &mut AnyConnection, policy_id: i64, key: i64, delta: (i64, i64), now: Millis) -> Result<()> {
    if delta == (0, 0) {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO policy_counts (policy_id, team_key, passing, failing) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (policy_id, team_key) DO UPDATE SET passing = policy_counts.passing + excluded.passing, \
         failing = policy_counts.failing + excluded.failing",
    )
    .bind(policy_id)
    .bind(key)
    .bind(delta.0)
    .bind(delta.1)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE policies SET host_count_updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(policy_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Moves a host's answers along with the host from `old_team` to `new_team` (None: no team, or the host is
/// being deleted when `deleting`): counts of global policies move between team keys; answers to team
/// policies the host leaves are dropped and uncounted.
pub(crate) async fn move_host_answers(
    conn: &mut AnyConnection,
    host_id: i64,
    old_team: Option<i64>,
    new_team: Option<i64>,
    deleting: bool,
    now: Millis,
) -> Result<()> {
    let rows = sqlx::query(
        "SELECT m.policy_id, m.passes, p.team_id FROM policy_membership m JOIN policies p ON p.id = m.policy_id \
         WHERE m.host_id = $1",
    )
    .bind(host_id)
    .fetch_all(&mut *conn)
    .await?;
    for row in rows {
        let policy_id: i64 = row.try_get(0)?;
        let answer = PolicyResponse::from_stored(row.try_get(1)?);
        let policy_team: Option<i64> = row.try_get(2)?;
        let stays_in_scope = !deleting && (policy_team.is_none() || policy_team == new_team);
        apply_delta(conn, policy_id, team_key(old_team), count_delta(answer, PolicyResponse::NoAnswer), now).await?;
        if stays_in_scope {
            apply_delta(conn, policy_id, team_key(new_team), count_delta(PolicyResponse::NoAnswer, answer), now)
                .await?;
        } else {
            sqlx::query("DELETE FROM policy_membership WHERE policy_id = $1 AND host_id = $2")
                .bind(policy_id)
                .bind(host_id)
                .execute(&mut *conn)
                .await?;
        }
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
        .fetch_one(&self.writer)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound("team"),
            _ => StoreError::conflict_on_unique(e, "a policy with this name already exists in this scope"),
        })?;
        Ok(id)
    }

    pub async fn get_policy(&self, id: i64) -> Result<Option<PolicyRecord>> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{} WHERE p.id = $1", policy_select(false))))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(policy_from_row).transpose()
    }

    /// The policies among `ids` that exist, in id order (ids may repeat; any number of them).
    pub async fn get_policies(&self, ids: &[i64]) -> Result<Vec<PolicyRecord>> {
        let mut sql = SqlBuilder::new(&format!("{} WHERE p.id IN ", policy_select(false)));
        sql.bind_id_set(self.backend, ids).push(" ORDER BY p.id");
        sql.query().fetch_all(&self.reader).await?.iter().map(policy_from_row).collect()
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
        row.as_ref().map(policy_from_row).transpose()
    }

    /// Policies of one scope (global when `team_id` is None), counts over every host.
    pub async fn list_policies(&self, team_id: Option<i64>) -> Result<Vec<PolicyRecord>> {
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(format!("{} WHERE p.scope_key = $1 ORDER BY p.id", policy_select(false))))
                .bind(team_key(team_id))
                .fetch_all(&self.reader)
                .await?;
        rows.iter().map(policy_from_row).collect()
    }

    /// Global policies with counts over one team's hosts only (a team's "inherited" policies).
    pub async fn global_policies_for_team(&self, team_id: i64) -> Result<Vec<PolicyRecord>> {
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(format!("{} WHERE p.scope_key = 0 ORDER BY p.id", policy_select(true))))
                .bind(team_id)
                .fetch_all(&self.reader)
                .await?;
        rows.iter().map(policy_from_row).collect()
    }

    /// Every policy of every scope (for the servers' schedule cache).
    pub async fn all_policies(&self) -> Result<Vec<PolicyRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{} ORDER BY p.id", policy_select(false))))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(policy_from_row).collect()
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
        let current = sqlx::query("SELECT query, platform FROM policies WHERE id = $1")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?
            .ok_or(StoreError::NotFound("policy"))?;
        let (query, platform): (String, String) = (current.try_get(0)?, current.try_get(1)?);
        let voids_answers = query != fields.query || platform != fields.platform;
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
        if voids_answers {
            sqlx::query("DELETE FROM policy_membership WHERE policy_id = $1").bind(id).execute(&mut *tx).await?;
            sqlx::query("DELETE FROM policy_counts WHERE policy_id = $1").bind(id).execute(&mut *tx).await?;
        }
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
        if ids.is_empty() {
            return Ok(0);
        }
        let mut sql = SqlBuilder::new("DELETE FROM policies WHERE id IN ");
        sql.bind_id_set(self.backend, ids);
        Ok(sql.query().execute(&self.writer).await?.rows_affected())
    }

    /// When a host last ran each policy (and which revision).
    pub async fn host_policy_runs(&self, host_id: i64) -> Result<HashMap<i64, PolicyRun>> {
        let text: Option<String> = sqlx::query_scalar("SELECT policy_runs FROM hosts WHERE id = $1")
            .bind(host_id)
            .fetch_optional(&self.reader)
            .await?;
        Ok(text.as_deref().map(parse_runs).unwrap_or_default())
    }

    /// Applies one report of policy answers in one transaction: only answers that changed are written, the
    /// counts move by delta, answers to a revision that is no longer current (the policy was edited after
    /// the query was handed out) or to deleted policies are ignored. Returns false when the host is gone.
    pub async fn record_policy_results(&self, host_id: i64, answers: &[PolicyAnswer], now: Millis) -> Result<bool> {
        self.record_report(host_id, answers, None, now, &AutomationRules::default(), &|_| Vec::new()).await
    }

    /// One distributed/write report — policy answers and vitals — in one transaction: both are applied or
    /// neither. `vitals` carries the patch and when its queries were handed out. For every policy the host
    /// newly fails (no answer or pass → fail) — or, for a policy in continuous mode, fails at a scheduled run —
    /// `on_new_failure` may return jobs (webhooks), enqueued in the same transaction. Returns false when the
    /// host is gone.
    pub async fn record_report(
        &self,
        host_id: i64,
        answers: &[PolicyAnswer],
        vitals: Option<(&VitalsPatch, Millis)>,
        now: Millis,
        rules: &AutomationRules,
        on_new_failure: &(dyn Fn(i64) -> Vec<crate::NewJob> + Send + Sync),
    ) -> Result<bool> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        if !answers.is_empty() {
            let Some(firing) = write_policy_answers(&mut tx, self.backend, host_id, answers, rules, now).await? else {
                return Ok(false);
            };
            for policy_id in firing {
                for job in on_new_failure(policy_id) {
                    crate::jobs::enqueue_in(&mut tx, &job, now).await?;
                }
            }
        }
        if let Some((patch, requested_at)) = vitals
            && !crate::hosts::write_vitals(&mut tx, host_id, patch, requested_at, now).await?
        {
            return Ok(false);
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// Why a host sent a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportOrigin {
    /// Queries the server handed out (scheduled policies, vitals, a refetch).
    Scheduled,
    /// The agent's own re-check of the policies it just remediated: it confirms a fix, so continuous
    /// automations do not fire on it (the next scheduled failing result does).
    Recheck,
}

/// The policy part of a report, in the caller's transaction (see `Store::record_report`). Returns the
/// policies whose automations fire (newly failing, or failing in continuous mode), or None when the host is
/// gone.
async fn write_policy_answers(
    tx: &mut AnyConnection,
    backend: Backend,
    host_id: i64,
    answers: &[PolicyAnswer],
    rules: &AutomationRules,
    now: Millis,
) -> Result<Option<Vec<i64>>> {
    {
        let lock = if backend == Backend::Postgres { " FOR UPDATE" } else { "" };
        let host =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT team_id, policy_runs FROM hosts WHERE id = $1{lock}")))
                .bind(host_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(host) = host else { return Ok(None) };
        let team: Option<i64> = host.try_get(0)?;
        let mut runs = parse_runs(&host.try_get::<String, _>(1)?);

        let ids: Vec<i64> = answers.iter().map(|a| a.policy_id).collect();
        let mut current = SqlBuilder::new(
            "SELECT id, revision, team_id, script_id, automations_reset_at, continuous_automation, deferral FROM policies \
                 WHERE id IN ",
        );
        current.bind_id_set(backend, &ids);
        let mut revisions: HashMap<i64, (i64, Option<i64>)> = HashMap::new();
        let mut scripts: HashMap<i64, crate::automations::PolicyScript> = HashMap::new();
        let mut reset_at: HashMap<i64, Millis> = HashMap::new();
        let mut continuous: HashSet<i64> = HashSet::new();
        for row in current.query().fetch_all(&mut *tx).await? {
            let id: i64 = row.try_get(0)?;
            revisions.insert(id, (row.try_get(1)?, row.try_get(2)?));
            if let Some(script_id) = row.try_get::<Option<i64>, _>(3)? {
                let deferrable = crate::deferrals::enabled(row.try_get::<Option<String>, _>(6)?.as_deref());
                scripts.insert(id, crate::automations::PolicyScript { script_id, deferrable });
            }
            if let Some(at) = row.try_get::<Option<i64>, _>(4)? {
                reset_at.insert(id, at);
            }
            if row.try_get::<i64, _>(5)? != 0 {
                continuous.insert(id);
            }
        }
        let mut existing =
            SqlBuilder::new("SELECT policy_id, passes, revision, updated_at FROM policy_membership WHERE host_id = ");
        existing.bind(Arg::Int(host_id)).push(" AND policy_id IN ").bind_id_set(backend, &ids);
        let mut previous: HashMap<i64, (PolicyResponse, i64)> = HashMap::new();
        let mut since: HashMap<i64, Millis> = HashMap::new();
        for row in existing.query().fetch_all(&mut *tx).await? {
            let policy: i64 = row.try_get(0)?;
            previous.insert(policy, (PolicyResponse::from_stored(row.try_get(1)?), row.try_get(2)?));
            since.insert(policy, row.try_get(3)?);
        }

        // What changed: (policy, stored answer, revision) rows to write and each policy's count delta.
        let mut changed_rows: Vec<(i64, Option<i64>, i64)> = Vec::new();
        let mut deltas: Vec<(i64, (i64, i64))> = Vec::new();
        let mut firing = Vec::new();
        for answer in answers {
            let Some((revision, policy_team)) = revisions.get(&answer.policy_id).copied() else {
                continue;
            };
            // Stale revision, or a team policy the host has left since it was handed out.
            if revision != answer.revision || (policy_team.is_some() && policy_team != team) {
                continue;
            }
            let last_answer_at = runs.get(&answer.policy_id).map(|run| run.ran_at);
            runs.insert(answer.policy_id, PolicyRun { ran_at: now, revision });
            let old = previous.get(&answer.policy_id).copied();
            let old_response = old.map_or(PolicyResponse::NoAnswer, |(response, _)| response);
            // The first answer after an automations reset: a failure that began before it counts as new.
            let reset = reset_at.get(&answer.policy_id).copied();
            let first_since_reset = reset.is_some_and(|at| last_answer_at.is_none_or(|last| last <= at));
            let every_failure = continuous.contains(&answer.policy_id) && rules.origin == ReportOrigin::Scheduled;
            if answer.response == PolicyResponse::Fail
                && (old_response != PolicyResponse::Fail || first_since_reset || every_failure)
            {
                firing.push(answer.policy_id);
            }
            if answer.response == PolicyResponse::Fail
                && let Some(script) = scripts.get(&answer.policy_id)
            {
                // Failing since the answer turned to fail (membership rows change only when answers do), or
                // since the automations were reset, when that came later.
                let failing_since = match old {
                    Some((PolicyResponse::Fail, r)) if r == revision => {
                        since.get(&answer.policy_id).copied().unwrap_or(now).max(reset.unwrap_or(Millis::MIN))
                    }
                    _ => now,
                };
                let mode = match (continuous.contains(&answer.policy_id), rules.origin) {
                    (false, _) => Remediation::Retrying { failing_since },
                    (true, ReportOrigin::Scheduled) => Remediation::Continuous,
                    (true, ReportOrigin::Recheck) => Remediation::AwaitSchedule,
                };
                crate::automations::remediate(tx, host_id, answer.policy_id, *script, mode, rules, now).await?;
            }
            if old_response == PolicyResponse::Fail && answer.response == PolicyResponse::Pass {
                crate::deferrals::close_on_pass(tx, host_id, answer.policy_id, now).await?;
            }
            if old == Some((answer.response, revision)) {
                continue;
            }
            changed_rows.push((answer.policy_id, answer.response.to_stored(), revision));
            let delta = count_delta(old_response, answer.response);
            if delta != (0, 0) {
                deltas.push((answer.policy_id, delta));
            }
        }
        // A few multi-row statements per report, however many answers changed.
        for chunk in changed_rows.chunks(200) {
            let mut sql = SqlBuilder::new(
                "INSERT INTO policy_membership (policy_id, host_id, passes, revision, updated_at) VALUES ",
            );
            for (i, (policy_id, passes, revision)) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(Arg::Int(*policy_id)).push(", ").bind(Arg::Int(host_id)).push(", ");
                sql.bind(Arg::OptInt(*passes)).push(", ").bind(Arg::Int(*revision)).push(", ");
                sql.bind(Arg::Int(now)).push(")");
            }
            sql.push(
                " ON CONFLICT (policy_id, host_id) DO UPDATE SET passes = excluded.passes, \
                 revision = excluded.revision, updated_at = excluded.updated_at",
            );
            sql.query().execute(&mut *tx).await?;
        }
        for chunk in deltas.chunks(200) {
            let mut sql = SqlBuilder::new("INSERT INTO policy_counts (policy_id, team_key, passing, failing) VALUES ");
            for (i, (policy_id, (passing, failing))) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind(Arg::Int(*policy_id)).push(", ").bind(Arg::Int(team_key(team))).push(", ");
                sql.bind(Arg::Int(*passing)).push(", ").bind(Arg::Int(*failing)).push(")");
            }
            sql.push(
                " ON CONFLICT (policy_id, team_key) DO UPDATE SET passing = policy_counts.passing + excluded.passing, \
                 failing = policy_counts.failing + excluded.failing",
            );
            sql.query().execute(&mut *tx).await?;
            let mut stamp = SqlBuilder::new("UPDATE policies SET host_count_updated_at = ");
            stamp.bind(Arg::Int(now)).push(" WHERE id IN ");
            stamp.bind_id_set(backend, &chunk.iter().map(|(id, _)| *id).collect::<Vec<_>>());
            stamp.query().execute(&mut *tx).await?;
        }
        // Forget runs of deleted policies: live policies' runs are refreshed at least every interval (at most
        // a week), so an entry older than that belongs to a policy that is gone (or to a host long offline,
        // for which re-running is right anyway).
        runs.retain(|_, run| now - run.ran_at <= RUNS_KEPT_MS);
        // Answers arrived: a re-check the server asked for is done.
        sqlx::query(
            "UPDATE hosts SET policy_runs = $1, policy_updated_at = $2, recheck_requested_at = NULL WHERE id = $3",
        )
        .bind(runs_text(&runs))
        .bind(now)
        .bind(host_id)
        .execute(&mut *tx)
        .await?;
        Ok(Some(firing))
    }
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
        let answers: HashMap<i64, Option<i64>> =
            sqlx::query("SELECT policy_id, passes FROM policy_membership WHERE host_id = $1")
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
        policies
            .iter()
            .map(|row| {
                let policy = policy_from_row(row)?;
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
        let mut sql =
            SqlBuilder::new("SELECT host_id, COUNT(*) FROM policy_membership WHERE passes = 0 AND host_id IN ");
        sql.bind_id_set(self.backend, host_ids).push(" GROUP BY host_id");
        sql.query().fetch_all(&self.reader).await?.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
    }

    /// Recounts answers from scratch (policy, team key) → (passing, failing): what the delta-maintained
    /// counts must always equal (the property test compares the two).
    pub async fn recount_policy_answers(&self) -> Result<BTreeMap<(i64, i64), (i64, i64)>> {
        let rows = sqlx::query(
            "SELECT m.policy_id, COALESCE(h.team_id, 0), \
             CAST(SUM(CASE WHEN m.passes = 1 THEN 1 ELSE 0 END) AS BIGINT), \
             CAST(SUM(CASE WHEN m.passes = 0 THEN 1 ELSE 0 END) AS BIGINT) \
             FROM policy_membership m JOIN hosts h ON h.id = m.host_id GROUP BY m.policy_id, COALESCE(h.team_id, 0)",
        )
        .fetch_all(&self.reader)
        .await?;
        counts_by_policy_and_team(&rows)
    }

    /// The delta-maintained counts, in the shape of [`Store::recount_policy_answers`].
    pub async fn stored_policy_counts(&self) -> Result<BTreeMap<(i64, i64), (i64, i64)>> {
        let rows = sqlx::query("SELECT policy_id, team_key, passing, failing FROM policy_counts")
            .fetch_all(&self.reader)
            .await?;
        counts_by_policy_and_team(&rows)
    }
}

/// Used by host deletion and team moves (hosts.rs, users.rs) so counts follow hosts.
pub(crate) async fn note_host_moved(
    conn: &mut AnyConnection,
    host_id: i64,
    old_team: Option<i64>,
    new_team: Option<i64>,
    now: Millis,
) -> Result<()> {
    move_host_answers(conn, host_id, old_team, new_team, false, now).await?;
    note_host_change(conn, host_id, now).await
}
