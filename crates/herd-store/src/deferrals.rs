//! Deferrable remediations (see `herd_core::deferral`): the server's record of each host's deferral state,
//! per policy, for the current failure. The agent holds the schedule and runs the script at the chosen time
//! even when the server is unreachable; the server is where choices are made (My Device, the desktop) and
//! checked, and where admins see who chose what.
//!
//! Invariants: a deferrable automation run is a script execution with status `deferred` until the user
//! chooses "run now" (→ `pending`), the agent runs it (→ `ran`/`error`), or the policy passes again
//! (→ `cancelled`). Every change the agent must learn sets `agent_synced = 0`, which makes the host's next
//! check-in fetch its scripts; the fetch sets it back.

use crate::hosts::note_host_change;
use crate::scripts::{ExecutionRecord, execution_from_row};
use crate::{Backend, Result, Store};
use herd_core::Millis;
use herd_core::deferral::{DeferOption, DeferralRules, DeferralState, HostNow, Tz};
use herd_core::execution::ExecutionStatus;
use sqlx::{Acquire, AnyConnection, Row};

/// A host's deferral state for one policy, as host views and the agent need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferralRecord {
    pub host_id: i64,
    pub policy_id: i64,
    pub policy_name: String,
    /// The policy's deferral settings (JSON) as they are now.
    pub settings: Option<String>,
    /// The host fails the policy (false once it passes again).
    pub open: bool,
    pub execution_id: Option<String>,
    /// deferred | pending | ran | error | cancelled
    pub execution_status: Option<ExecutionStatus>,
    pub first_prompt_at: Option<Millis>,
    pub deferrals_used: i64,
    pub scheduled_at: Option<Millis>,
    pub prompt_open: bool,
    pub waiting_reason: Option<String>,
    pub time_zone: Option<String>,
    pub last_choice: Option<String>,
    pub chosen_by: Option<String>,
    pub chosen_at: Option<Millis>,
    pub updated_at: Millis,
}

impl DeferralRecord {
    pub fn state(&self) -> DeferralState {
        DeferralState {
            first_prompt_at: self.first_prompt_at,
            deferrals_used: u32::try_from(self.deferrals_used).unwrap_or(u32::MAX),
            scheduled_at: self.scheduled_at,
        }
    }

    /// The host's time zone ("tomorrow 09:00" is its local time); UTC when the agent has not said.
    pub fn tz(&self) -> Tz {
        self.time_zone.as_deref().and_then(|name| name.parse().ok()).unwrap_or(Tz::UTC)
    }

    /// Waiting on the user: a prompt is due or open, or a run is scheduled.
    pub fn awaiting_run(&self) -> bool {
        self.open && self.execution_status == Some(ExecutionStatus::Deferred)
    }
}

const RECORD_SELECT: &str = "SELECT d.*, p.name AS policy_name, p.deferral AS settings, \
     (SELECT e.status FROM script_executions e WHERE e.execution_id = d.execution_id) AS execution_status \
     FROM deferrals d JOIN policies p ON p.id = d.policy_id";

fn record_from_row(row: &sqlx::any::AnyRow) -> Result<DeferralRecord> {
    Ok(DeferralRecord {
        host_id: row.try_get("host_id")?,
        policy_id: row.try_get("policy_id")?,
        policy_name: row.try_get("policy_name")?,
        settings: row.try_get("settings")?,
        open: row.try_get::<i64, _>("open")? != 0,
        execution_id: row.try_get("execution_id")?,
        execution_status: row
            .try_get::<Option<String>, _>("execution_status")?
            .map(|text| crate::scripts::execution_status(&text))
            .transpose()?,
        first_prompt_at: row.try_get("first_prompt_at")?,
        deferrals_used: row.try_get("deferrals_used")?,
        scheduled_at: row.try_get("scheduled_at")?,
        prompt_open: row.try_get::<i64, _>("prompt_open")? != 0,
        waiting_reason: row.try_get("waiting_reason")?,
        time_zone: row.try_get("time_zone")?,
        last_choice: row.try_get("last_choice")?,
        chosen_by: row.try_get("chosen_by")?,
        chosen_at: row.try_get("chosen_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// Whether stored deferral settings make a policy's runs wait on the user: the one reading the server's views
/// and the device choice use too (`herd_core::deferral::defers_runs`).
pub(crate) fn enabled(settings: Option<&str>) -> bool {
    herd_core::deferral::defers_runs(settings)
}

/// A deferrable automation run was queued (status `deferred`): the host's state for this failure carries
/// on (a retry keeps the deferrals used and the deadline), or starts fresh when the last failure had ended.
pub(crate) async fn open_for_run(
    conn: &mut AnyConnection,
    host_id: i64,
    policy_id: i64,
    execution_id: &str,
    now: Millis,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO deferrals (host_id, policy_id, open, execution_id, agent_synced, updated_at) \
         VALUES ($1, $2, 1, $3, 0, $4) ON CONFLICT (host_id, policy_id) DO UPDATE SET \
         first_prompt_at = CASE WHEN deferrals.open = 1 THEN deferrals.first_prompt_at ELSE NULL END, \
         deferrals_used = CASE WHEN deferrals.open = 1 THEN deferrals.deferrals_used ELSE 0 END, \
         last_choice = CASE WHEN deferrals.open = 1 THEN deferrals.last_choice ELSE NULL END, \
         chosen_by = CASE WHEN deferrals.open = 1 THEN deferrals.chosen_by ELSE NULL END, \
         chosen_at = CASE WHEN deferrals.open = 1 THEN deferrals.chosen_at ELSE NULL END, \
         open = 1, execution_id = excluded.execution_id, scheduled_at = NULL, prompt_open = 0, \
         waiting_reason = NULL, agent_synced = 0, updated_at = excluded.updated_at",
    )
    .bind(host_id)
    .bind(policy_id)
    .bind(execution_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The host passes the policy again: a deferred run not yet made is cancelled (someone fixed it), and the
/// failure's deferral state ends. Called only when an answer turns from fail to pass.
pub(crate) async fn close_on_pass(conn: &mut AnyConnection, host_id: i64, policy_id: i64, now: Millis) -> Result<()> {
    let cancelled = sqlx::query(
        "UPDATE script_executions SET status = 'cancelled', finished_at = $3, \
         output = 'not run: the policy passes again' \
         WHERE host_id = $1 AND policy_id = $2 AND status = 'deferred'",
    )
    .bind(host_id)
    .bind(policy_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if cancelled.rows_affected() > 0 {
        let details = serde_json::json!({"host_id": host_id, "policy_id": policy_id});
        crate::activities::insert(conn, "cancelled_deferred_run", &details, now).await?;
    }
    let closed = sqlx::query(
        "UPDATE deferrals SET open = 0, scheduled_at = NULL, prompt_open = 0, waiting_reason = NULL, \
         agent_synced = 0, updated_at = $3 WHERE host_id = $1 AND policy_id = $2 AND open = 1",
    )
    .bind(host_id)
    .bind(policy_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if closed.rows_affected() > 0 {
        note_host_change(conn, host_id, now).await?;
    }
    Ok(())
}

/// The policy is no longer deferrable: runs waiting on users go ahead at their hosts' next check-in.
pub(crate) async fn release_policy_runs(conn: &mut AnyConnection, policy_id: i64, now: Millis) -> Result<()> {
    let hosts: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT host_id FROM script_executions WHERE policy_id = $1 AND status = 'deferred'",
    )
    .bind(policy_id)
    .fetch_all(&mut *conn)
    .await?;
    if hosts.is_empty() {
        return Ok(());
    }
    sqlx::query("UPDATE script_executions SET status = 'pending' WHERE policy_id = $1 AND status = 'deferred'")
        .bind(policy_id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "UPDATE deferrals SET scheduled_at = NULL, prompt_open = 0, agent_synced = 0, updated_at = $2 \
         WHERE policy_id = $1 AND open = 1",
    )
    .bind(policy_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    for host in hosts {
        note_host_change(conn, host, now).await?;
    }
    Ok(())
}

/// A run has a result: the schedule it was waiting on is done (deferrals used stay counted).
pub(crate) async fn run_finished(conn: &mut AnyConnection, execution_id: &str, now: Millis) -> Result<()> {
    sqlx::query(
        "UPDATE deferrals SET scheduled_at = NULL, prompt_open = 0, waiting_reason = NULL, updated_at = $2 \
         WHERE execution_id = $1",
    )
    .bind(execution_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// What the agent says it is doing about a deferred run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentDeferralStatus<'a> {
    /// Showing the prompt (the floating deadline counts from the first one).
    Prompting,
    /// Not prompting, and why (a blocking process, nobody logged in, the deadline notice).
    Waiting(&'a str),
}

/// Why a user's choice was refused (the state is unchanged).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChoiceRefused {
    /// Nothing to choose now, or the choice was made already, or the deadline has passed.
    Conflict(String),
    /// An option that is not offered.
    NotOffered(String),
}

impl Store {
    /// A host's deferral records, policies by name.
    pub async fn host_deferrals(&self, host_id: i64) -> Result<Vec<DeferralRecord>> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RECORD_SELECT} WHERE d.host_id = $1 ORDER BY p.name, d.policy_id"
        )))
        .bind(host_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(record_from_row).collect()
    }

    pub async fn host_deferral(&self, host_id: i64, policy_id: i64) -> Result<Option<DeferralRecord>> {
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("{RECORD_SELECT} WHERE d.host_id = $1 AND d.policy_id = $2")))
                .bind(host_id)
                .bind(policy_id)
                .fetch_optional(&self.writer)
                .await?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// What the host's agent has to do: runs to make now (`pending`) and, for agents that handle deferrals,
    /// runs waiting on the user (`deferred`, with their state), oldest first. Marks the host's deferral
    /// changes as seen by the agent. An agent that cannot defer gets deferred runs as ordinary ones.
    pub async fn agent_script_work(
        &self,
        host_id: i64,
        handles_deferrals: bool,
        now: Millis,
    ) -> Result<Vec<(ExecutionRecord, Option<DeferralRecord>)>> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let rows = sqlx::query(
            "SELECT * FROM script_executions WHERE host_id = $1 AND status IN ('pending', 'deferred') ORDER BY id",
        )
        .bind(host_id)
        .fetch_all(&mut *tx)
        .await?;
        let executions = rows.iter().map(execution_from_row).collect::<Result<Vec<_>>>()?;
        let records = if executions.iter().any(|e| e.status == ExecutionStatus::Deferred) {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!("{RECORD_SELECT} WHERE d.host_id = $1")))
                .bind(host_id)
                .fetch_all(&mut *tx)
                .await?;
            rows.iter().map(record_from_row).collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let synced = sqlx::query("UPDATE deferrals SET agent_synced = 1 WHERE host_id = $1 AND agent_synced = 0")
            .bind(host_id)
            .execute(&mut *tx)
            .await?;
        if synced.rows_affected() > 0 {
            note_host_change(&mut tx, host_id, now).await?;
        }
        tx.commit().await?;
        Ok(executions
            .into_iter()
            .map(|e| {
                let record = (handles_deferrals && e.status == ExecutionStatus::Deferred)
                    .then(|| records.iter().find(|r| r.execution_id.as_deref() == Some(&e.execution_id)).cloned())
                    .flatten();
                (e, record)
            })
            .collect())
    }

    /// The agent's report on a deferred run; None when the run is no longer deferred (the agent drops it).
    /// The first report — a prompt shown, or one postponed by a blocking app or nobody's presence — starts
    /// the floating deadline (a blocking app cannot stop the clock).
    pub async fn record_agent_deferral_status(
        &self,
        host_id: i64,
        execution_id: &str,
        status: AgentDeferralStatus<'_>,
        time_zone: Option<&str>,
        now: Millis,
    ) -> Result<Option<DeferralRecord>> {
        let (prompting, reason) = match status {
            AgentDeferralStatus::Prompting => (1i64, None),
            AgentDeferralStatus::Waiting(reason) => (0, Some(reason)),
        };
        let updated = sqlx::query(
            "UPDATE deferrals SET prompt_open = $1, waiting_reason = $2, time_zone = COALESCE($3, time_zone), \
             first_prompt_at = COALESCE(first_prompt_at, $4), \
             updated_at = $4 WHERE host_id = $5 AND execution_id = $6 AND open = 1 AND EXISTS \
             (SELECT 1 FROM script_executions e WHERE e.execution_id = $6 AND e.status = 'deferred')",
        )
        .bind(prompting)
        .bind(reason)
        .bind(time_zone)
        .bind(now)
        .bind(host_id)
        .bind(execution_id)
        .execute(&self.writer)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(None);
        }
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("{RECORD_SELECT} WHERE d.host_id = $1 AND d.execution_id = $2")))
                .bind(host_id)
                .bind(execution_id)
                .fetch_optional(&self.writer)
                .await?;
        row.as_ref().map(record_from_row).transpose()
    }

    /// The user's choice for the host's deferred run of `policy_id`: `None` runs it now, `Some` defers it.
    /// Checked against the rules and the state in one transaction; a refused choice changes nothing.
    /// `choice_text` is what the user picked, as recorded; `chosen_by` who (when known).
    #[allow(clippy::too_many_arguments)]
    pub async fn choose_deferral(
        &self,
        host_id: i64,
        policy_id: i64,
        rules: &DeferralRules,
        choice: Option<DeferOption>,
        choice_text: &str,
        chosen_by: Option<&str>,
        now: Millis,
    ) -> Result<std::result::Result<DeferralRecord, ChoiceRefused>> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let lock = if self.backend == Backend::Postgres { " FOR UPDATE OF d" } else { "" };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{RECORD_SELECT} WHERE d.host_id = $1 AND d.policy_id = $2{lock}"
        )))
        .bind(host_id)
        .bind(policy_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(record) = row.as_ref().map(record_from_row).transpose()? else {
            return Ok(Err(ChoiceRefused::Conflict("no fix of this policy is waiting on this device".into())));
        };
        if !record.awaiting_run() {
            return Ok(Err(ChoiceRefused::Conflict("no fix of this policy is waiting on this device".into())));
        }
        let host = HostNow { now, tz: record.tz(), user_logged_in: true, blocking_process_running: false };
        if record.scheduled_at.is_none() && !record.prompt_open {
            return Ok(Err(ChoiceRefused::Conflict(
                "the device is not asking now (it waits for a blocking app to close or for a user)".into(),
            )));
        }
        let next = match rules.choose(&record.state(), choice, &host) {
            Ok((next, _)) => next,
            Err(reason) if reason.contains("not offered") => {
                return Ok(Err(ChoiceRefused::NotOffered(reason.to_string())));
            }
            Err(reason) => return Ok(Err(ChoiceRefused::Conflict(reason.to_string()))),
        };
        sqlx::query(
            "UPDATE deferrals SET first_prompt_at = $1, deferrals_used = $2, scheduled_at = $3, prompt_open = 0, \
             waiting_reason = NULL, last_choice = $4, chosen_by = $5, chosen_at = $6, agent_synced = 0, \
             updated_at = $6 WHERE host_id = $7 AND policy_id = $8",
        )
        .bind(next.first_prompt_at)
        .bind(i64::from(next.deferrals_used))
        .bind(next.scheduled_at)
        .bind(choice_text)
        .bind(chosen_by)
        .bind(now)
        .bind(host_id)
        .bind(policy_id)
        .execute(&mut *tx)
        .await?;
        if choice.is_none() {
            sqlx::query(
                "UPDATE script_executions SET status = 'pending' WHERE execution_id = $1 AND status = 'deferred'",
            )
            .bind(&record.execution_id)
            .execute(&mut *tx)
            .await?;
        }
        let details = serde_json::json!({
            "host_id": host_id,
            "policy_id": policy_id,
            "policy_name": record.policy_name,
            "choice": choice_text,
            "scheduled_at": next.scheduled_at,
            "deferrals_used": next.deferrals_used,
            "max_deferrals": rules.max_deferrals,
            "chosen_by": chosen_by,
            "script_execution_id": record.execution_id,
        });
        crate::activities::insert(&mut tx, "chose_deferral", &details, now).await?;
        note_host_change(&mut tx, host_id, now).await?;
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("{RECORD_SELECT} WHERE d.host_id = $1 AND d.policy_id = $2")))
                .bind(host_id)
                .bind(policy_id)
                .fetch_one(&mut *tx)
                .await?;
        let updated = record_from_row(&row)?;
        tx.commit().await?;
        Ok(Ok(updated))
    }
}
