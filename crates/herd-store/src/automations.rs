//! Policy automations: a failing host gets the policy's script, once per failure, retried with backoff while
//! it keeps failing, never with two runs pending for the same host and policy.

use crate::Result;
use crate::hosts::note_host_change;
use herd_core::Millis;
use herd_core::automation::{AutomationStep, RunHistory};
use herd_core::report::Remediation;
use sqlx::{AnyConnection, Row};

/// How a report's failing answers are remediated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutomationRules {
    pub origin: crate::ReportOrigin,
    /// Runs after the first, while the host keeps failing.
    pub script_retries: i64,
    /// Timeout of automation runs, in seconds.
    pub script_timeout_s: i64,
}

impl Default for AutomationRules {
    /// Fleet's: 3 retries, 5 minutes.
    fn default() -> Self {
        AutomationRules { origin: crate::ReportOrigin::Scheduled, script_retries: 3, script_timeout_s: 300 }
    }
}

fn execution_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A policy's script automation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PolicyScript {
    pub script_id: i64,
    /// The user is asked first (the run is queued `deferred`; see `crate::deferrals`).
    pub deferrable: bool,
}

/// Called in the report's transaction for a host failing a policy that has a script: reads the runs of this
/// failure and applies `herd_core::automation::next_step` (run, wait, or give up once per failure). Runs the
/// host refused (its agent had scripts disabled) are no attempts; while its agent says it runs no scripts,
/// nothing is queued (turning them on makes the policy due at once: `Store::set_scripts_enabled`).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn remediate(
    conn: &mut AnyConnection,
    host_id: i64,
    scripts_refused: bool,
    policy_id: i64,
    script: PolicyScript,
    mode: Remediation,
    rules: &AutomationRules,
    now: Millis,
) -> Result<()> {
    if scripts_refused {
        return Ok(());
    }
    let failing_since = match mode {
        Remediation::Retrying { failing_since } => failing_since,
        Remediation::Continuous => Millis::MIN,
        Remediation::AwaitSchedule => return Ok(()),
    };
    let row = sqlx::query(
        "SELECT COUNT(*), CAST(SUM(CASE WHEN status IN ('pending', 'deferred') THEN 1 ELSE 0 END) AS BIGINT), \
         MAX(finished_at), \
         (SELECT COUNT(*) FROM policy_automation_give_ups g \
          WHERE g.host_id = $1 AND g.policy_id = $2 AND g.failing_since = $3) \
         FROM script_executions WHERE host_id = $1 AND policy_id = $2 AND created_at >= $3 AND refused = 0",
    )
    .bind(host_id)
    .bind(policy_id)
    .bind(failing_since)
    .fetch_one(&mut *conn)
    .await?;
    let history = RunHistory {
        runs: row.try_get(0)?,
        pending: row.try_get::<Option<i64>, _>(1)?.unwrap_or(0) > 0,
        last_finished_at: row.try_get(2)?,
        gave_up: row.try_get::<i64, _>(3)? > 0,
    };
    match herd_core::automation::next_step(mode, history, rules.script_retries, policy_id ^ host_id, now) {
        AutomationStep::Wait => Ok(()),
        AutomationStep::Run { attempt } => {
            queue(conn, host_id, policy_id, script, attempt, rules.script_timeout_s, now).await
        }
        AutomationStep::GiveUp { runs } => {
            // The give-up is the host's state for this failure: a new failure (a later failing_since) replaces
            // it, and only the statement that records it says so in the feed.
            let recorded = sqlx::query(
                "INSERT INTO policy_automation_give_ups (host_id, policy_id, failing_since, gave_up_at) \
                 VALUES ($1, $2, $3, $4) ON CONFLICT (host_id, policy_id) DO UPDATE \
                 SET failing_since = excluded.failing_since, gave_up_at = excluded.gave_up_at \
                 WHERE policy_automation_give_ups.failing_since <> excluded.failing_since",
            )
            .bind(host_id)
            .bind(policy_id)
            .bind(failing_since)
            .bind(now)
            .execute(&mut *conn)
            .await?;
            if recorded.rows_affected() == 1 {
                let details = serde_json::json!({
                    "host_id": host_id, "policy_id": policy_id, "script_id": script.script_id, "runs": runs,
                });
                crate::activities::insert(conn, "policy_automation_gave_up", &details, now).await?;
            }
            Ok(())
        }
    }
}

/// Queues one automation run of the script on the host (attempt counts runs for this failure); a deferrable
/// one waits on the user.
async fn queue(
    conn: &mut AnyConnection,
    host_id: i64,
    policy_id: i64,
    script: PolicyScript,
    attempt: i64,
    timeout_s: i64,
    now: Millis,
) -> Result<()> {
    let execution = execution_id();
    let queued = sqlx::query(
        "INSERT INTO script_executions (execution_id, host_id, script_id, script_name, contents, status, timeout_s, \
         policy_id, created_at) SELECT $1, $2, s.id, s.name, s.contents, $7, $3, $4, $5 FROM scripts s WHERE s.id = $6",
    )
    .bind(&execution)
    .bind(host_id)
    .bind(timeout_s)
    .bind(policy_id)
    .bind(now)
    .bind(script.script_id)
    .bind(if script.deferrable { "deferred" } else { "pending" })
    .execute(&mut *conn)
    .await?;
    if queued.rows_affected() == 1 {
        if script.deferrable {
            crate::deferrals::open_for_run(conn, host_id, policy_id, &execution, now).await?;
        }
        note_host_change(conn, host_id, now).await?;
        let details = serde_json::json!({
            "host_id": host_id, "policy_id": policy_id, "script_id": script.script_id,
            "script_execution_id": execution, "attempt": attempt, "deferred": script.deferrable,
        });
        crate::activities::insert(conn, "policy_automation_fired", &details, now).await?;
    }
    Ok(())
}

/// Makes these policies due on the host at its next check-in (their run history dropped, the host flagged for
/// `accelerate`), and forgets give-ups of their current failures.
pub(crate) async fn make_due_now(store: &crate::Store, host_id: i64, policies: &[i64], now: Millis) -> Result<()> {
    let mut conn = store.writer.acquire().await?;
    let mut tx = sqlx::Acquire::begin(&mut *conn).await?;
    let host = match crate::hosts::lock_host(&mut tx, store.backend, host_id, crate::hosts::HostLock::Change).await {
        Ok(host) => host,
        Err(crate::StoreError::HostGone) => return Ok(()),
        Err(err) => return Err(err),
    };
    for policy in policies {
        sqlx::query("DELETE FROM policy_automation_give_ups WHERE host_id = $1 AND policy_id = $2")
            .bind(host_id)
            .bind(policy)
            .execute(&mut *tx)
            .await?;
    }
    flag_due(&mut tx, host_id, &host, policies, now).await?;
    tx.commit().await?;
    Ok(())
}

/// In the caller's transaction, on a locked host: drops these policies' run history and flags the host, so
/// its next distributed/read hands them out with `accelerate`.
async fn flag_due(
    conn: &mut AnyConnection,
    host_id: i64,
    host: &crate::hosts::LockedHost,
    policies: &[i64],
    now: Millis,
) -> Result<()> {
    let mut runs = crate::policies::parse_runs(&host.policy_runs);
    for policy in policies {
        runs.remove(policy);
    }
    sqlx::query("UPDATE hosts SET policy_runs = $1, recheck_requested_at = $2 WHERE id = $3")
        .bind(crate::policies::runs_text(&runs))
        .bind(now)
        .bind(host_id)
        .execute(&mut *conn)
        .await?;
    note_host_change(conn, host_id, now).await
}

impl crate::Store {
    /// For hosts whose agent does not re-check by itself (e.g. osqueryd beside another script runner): once
    /// the last automation run queued for the host has finished, the policies remediated since the host's
    /// last policy report are made due at once — their run history is dropped and the host is flagged, so the
    /// next distributed/read carries them, with `accelerate`. Returns those policies (empty while runs are
    /// still pending, or when there is nothing to re-check).
    pub async fn request_automation_recheck(&self, host_id: i64, now: Millis) -> Result<Vec<i64>> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = sqlx::Acquire::begin(&mut *conn).await?;
        let host = match crate::hosts::lock_host(&mut tx, self.backend, host_id, crate::hosts::HostLock::Change).await {
            Ok(host) => host,
            Err(crate::StoreError::HostGone) => return Ok(Vec::new()),
            Err(err) => return Err(err),
        };
        let pending: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM script_executions WHERE host_id = $1 AND policy_id IS NOT NULL \
             AND status IN ('pending', 'deferred')",
        )
        .bind(host_id)
        .fetch_one(&mut *tx)
        .await?;
        if pending > 0 {
            return Ok(Vec::new());
        }
        let last_report: Millis = host.policy_updated_at.unwrap_or(0);
        let policies: Vec<i64> = sqlx::query_scalar(
            "SELECT DISTINCT policy_id FROM script_executions WHERE host_id = $1 AND policy_id IS NOT NULL \
             AND finished_at >= $2 ORDER BY policy_id",
        )
        .bind(host_id)
        .bind(last_report)
        .fetch_all(&mut *tx)
        .await?;
        if policies.is_empty() {
            return Ok(policies);
        }
        flag_due(&mut tx, host_id, &host, &policies, now).await?;
        tx.commit().await?;
        Ok(policies)
    }
}
