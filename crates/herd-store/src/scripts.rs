//! The script library and script runs on hosts.

use crate::hosts::note_host_change;
use crate::{Result, Store, StoreError};
use herd_core::Millis;
use herd_core::execution::{ExecutionStatus, RunOutcome};
use sqlx::{Acquire, Row};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptRecord {
    pub id: i64,
    pub team_id: Option<i64>,
    pub name: String,
    pub contents: String,
    pub created_at: Millis,
    pub updated_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewExecution {
    pub execution_id: String,
    pub host_id: i64,
    pub script_id: Option<i64>,
    pub script_name: String,
    pub contents: String,
    pub timeout_s: i64,
    pub policy_id: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutionRecord {
    pub execution_id: String,
    pub host_id: i64,
    pub script_id: Option<i64>,
    pub script_name: String,
    pub contents: String,
    pub status: ExecutionStatus,
    pub exit_code: Option<i64>,
    pub output: String,
    pub runtime_ms: Option<i64>,
    /// Killed at its time limit on the host (Fleet's `host_timeout`).
    pub timed_out: bool,
    pub timeout_s: i64,
    pub policy_id: Option<i64>,
    pub created_at: Millis,
    pub finished_at: Option<Millis>,
}

/// A stored status, converted at the row boundary.
pub(crate) fn execution_status(text: &str) -> Result<ExecutionStatus> {
    ExecutionStatus::parse(text).ok_or_else(|| crate::StoreError::Corrupt(format!("script execution status {text:?}")))
}

fn script_from_row(r: &sqlx::any::AnyRow) -> Result<ScriptRecord> {
    Ok(ScriptRecord {
        id: r.try_get("id")?,
        team_id: r.try_get("team_id")?,
        name: r.try_get("name")?,
        contents: r.try_get("contents")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

pub(crate) fn execution_from_row(r: &sqlx::any::AnyRow) -> Result<ExecutionRecord> {
    Ok(ExecutionRecord {
        execution_id: r.try_get("execution_id")?,
        host_id: r.try_get("host_id")?,
        script_id: r.try_get("script_id")?,
        script_name: r.try_get("script_name")?,
        contents: r.try_get("contents")?,
        status: execution_status(&r.try_get::<String, _>("status")?)?,
        exit_code: r.try_get("exit_code")?,
        output: r.try_get("output")?,
        runtime_ms: r.try_get("runtime_ms")?,
        timed_out: r.try_get::<i64, _>("timed_out")? != 0,
        timeout_s: r.try_get("timeout_s")?,
        policy_id: r.try_get("policy_id")?,
        created_at: r.try_get("created_at")?,
        finished_at: r.try_get("finished_at")?,
    })
}

impl Store {
    pub async fn create_script(&self, team_id: Option<i64>, name: &str, contents: &str, now: Millis) -> Result<i64> {
        sqlx::query_scalar(
            "INSERT INTO scripts (team_id, scope_key, name, contents, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
        )
        .bind(team_id)
        .bind(team_id.unwrap_or(0))
        .bind(name)
        .bind(contents)
        .bind(now)
        .fetch_one(&self.writer)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound("team"),
            _ => StoreError::conflict_on_unique(e, "a script with this name already exists in this scope"),
        })
    }

    pub async fn get_script(&self, id: i64) -> Result<Option<ScriptRecord>> {
        let row = sqlx::query("SELECT * FROM scripts WHERE id = $1").bind(id).fetch_optional(&self.reader).await?;
        row.as_ref().map(script_from_row).transpose()
    }

    pub async fn script_by_name(&self, team_id: Option<i64>, name: &str) -> Result<Option<ScriptRecord>> {
        let row = sqlx::query("SELECT * FROM scripts WHERE scope_key = $1 AND name = $2")
            .bind(team_id.unwrap_or(0))
            .bind(name)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(script_from_row).transpose()
    }

    pub async fn list_scripts(&self, team_id: Option<i64>) -> Result<Vec<ScriptRecord>> {
        let rows = sqlx::query("SELECT * FROM scripts WHERE scope_key = $1 ORDER BY name")
            .bind(team_id.unwrap_or(0))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(script_from_row).collect()
    }

    pub async fn delete_script(&self, id: i64) -> Result<bool> {
        let done = sqlx::query("DELETE FROM scripts WHERE id = $1").bind(id).execute(&self.writer).await?;
        Ok(done.rows_affected() == 1)
    }

    /// Queues a run; the host's cached check-in state goes stale so its next check-in learns of it.
    pub async fn queue_execution(&self, execution: &NewExecution, now: Millis) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        sqlx::query(
            "INSERT INTO script_executions (execution_id, host_id, script_id, script_name, contents, status, \
             timeout_s, policy_id, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', $6, $7, $8)",
        )
        .bind(&execution.execution_id)
        .bind(execution.host_id)
        .bind(execution.script_id)
        .bind(&execution.script_name)
        .bind(&execution.contents)
        .bind(execution.timeout_s)
        .bind(execution.policy_id)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound("host"),
            _ => StoreError::Database(e),
        })?;
        note_host_change(&mut tx, execution.host_id, now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn execution(&self, execution_id: &str) -> Result<Option<ExecutionRecord>> {
        let row = sqlx::query("SELECT * FROM script_executions WHERE execution_id = $1")
            .bind(execution_id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(execution_from_row).transpose()
    }

    /// A host's queued runs, oldest first (the order it must run them in).
    pub async fn pending_executions(&self, host_id: i64) -> Result<Vec<ExecutionRecord>> {
        let rows = sqlx::query("SELECT * FROM script_executions WHERE host_id = $1 AND status = 'pending' ORDER BY id")
            .bind(host_id)
            .fetch_all(&self.writer)
            .await?;
        rows.iter().map(execution_from_row).collect()
    }

    /// Records a run's outcome, once: false when the execution is not this host's pending one (unknown, or its
    /// result arrived already — the agent may resend after a lost answer).
    #[allow(clippy::too_many_arguments)]
    pub async fn record_execution_result(
        &self,
        host_id: i64,
        execution_id: &str,
        outcome: RunOutcome,
        exit_code: Option<i64>,
        output: &str,
        runtime_ms: Option<i64>,
        now: Millis,
    ) -> Result<bool> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let done = sqlx::query(
            "UPDATE script_executions SET status = $1, exit_code = $2, output = $3, runtime_ms = $4, finished_at = $5, \
             timed_out = $8, refused = $9 WHERE execution_id = $6 AND host_id = $7 AND status IN ('pending', 'deferred')",
        )
        .bind(ExecutionStatus::from(outcome).as_str())
        .bind(exit_code)
        .bind(output)
        .bind(runtime_ms)
        .bind(now)
        .bind(execution_id)
        .bind(host_id)
        .bind((outcome == RunOutcome::TimedOut) as i64)
        .bind((outcome == RunOutcome::Refused) as i64)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            crate::deferrals::run_finished(&mut tx, execution_id, now).await?;
            note_host_change(&mut tx, host_id, now).await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// The latest run of each script on a host (script id → run).
    pub async fn last_executions(&self, host_id: i64) -> Result<Vec<ExecutionRecord>> {
        let rows = sqlx::query(
            "SELECT e.* FROM script_executions e WHERE e.host_id = $1 AND e.script_id IS NOT NULL AND e.id = \
             (SELECT MAX(id) FROM script_executions x WHERE x.host_id = e.host_id AND x.script_id = e.script_id)",
        )
        .bind(host_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(execution_from_row).collect()
    }

    /// What the host's agent said about running scripts. When it runs them now after saying it did not, the
    /// policies the host fails that have a script automation are made due at once (their run history dropped,
    /// the host flagged, as a re-check is), so the automation runs within a check-in or two rather than at the
    /// next scheduled answer; runs refused meanwhile were no attempts. Returns those policies. (An agent saying
    /// so for the first time resumes nothing: nothing was refused.)
    pub async fn set_scripts_enabled(&self, host_id: i64, enabled: bool, now: Millis) -> Result<Vec<i64>> {
        // One statement decides "resumed": of agents reporting at once, exactly one sees its row change from
        // refused (0) to enabled, whichever server takes it.
        let set = |sql: &'static str| sqlx::query(sql).bind(host_id).execute(&self.writer);
        let resumed = enabled
            && set("UPDATE hosts SET scripts_enabled = 1 WHERE id = $1 AND scripts_enabled = 0").await?.rows_affected()
                == 1;
        if !resumed {
            if enabled {
                set("UPDATE hosts SET scripts_enabled = 1 WHERE id = $1 AND scripts_enabled IS NULL").await?;
            } else {
                set("UPDATE hosts SET scripts_enabled = 0 WHERE id = $1 AND (scripts_enabled IS NULL OR scripts_enabled <> 0)")
                    .await?;
            }
            return Ok(Vec::new());
        }
        let Some(host) = self.get_host(host_id).await? else { return Ok(Vec::new()) };
        let answers = self.host_policy_answers(host_id, host.team_id).await?;
        let automated: Vec<i64> = answers
            .iter()
            .filter(|a| a.response == herd_core::policy::PolicyResponse::Fail && a.policy.script_id.is_some())
            .map(|a| a.policy.id)
            .collect();
        if automated.is_empty() {
            return Ok(automated);
        }
        crate::automations::make_due_now(self, host_id, &automated, now).await?;
        Ok(automated)
    }
}
