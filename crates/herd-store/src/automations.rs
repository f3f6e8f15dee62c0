//! Policy automations: a failing host gets the policy's script, once per failure, retried with backoff while
//! it keeps failing, never with two runs pending for the same host and policy.

use crate::Result;
use crate::hosts::note_host_change;
use herd_core::Millis;
use sqlx::{AnyConnection, Row};

/// Runs after the first, while the host keeps failing (Fleet retries 3 times too).
pub const RETRIES: i64 = 3;
/// Script timeout of automation runs (Fleet's default).
pub const TIMEOUT_S: i64 = 300;

fn execution_id() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Called in the report's transaction for a host failing a policy that has a script: queues the script when
/// this failure has not been remediated yet, or when the last run did not fix it and a retry is due.
pub(crate) async fn remediate(
    conn: &mut AnyConnection,
    host_id: i64,
    policy_id: i64,
    script_id: i64,
    failing_since: Millis,
    now: Millis,
) -> Result<()> {
    let row = sqlx::query(
        "SELECT COUNT(*), CAST(SUM(CASE WHEN status = 'pending' THEN 1 ELSE 0 END) AS BIGINT), MAX(finished_at) \
         FROM script_executions WHERE host_id = $1 AND policy_id = $2 AND created_at >= $3",
    )
    .bind(host_id)
    .bind(policy_id)
    .bind(failing_since)
    .fetch_one(&mut *conn)
    .await?;
    let runs: i64 = row.try_get(0)?;
    let pending: Option<i64> = row.try_get(1)?;
    let last_finished: Option<i64> = row.try_get(2)?;
    if pending.unwrap_or(0) > 0 {
        return Ok(());
    }
    if runs > RETRIES {
        // Out of retries and still failing: said once per failure (a done job is the marker).
        let marker = format!("automation-gave-up:{policy_id}:{host_id}:{failing_since}");
        let marked = sqlx::query(
            "INSERT INTO jobs (kind, idempotency_key, payload, state, max_attempts, run_at, created_at, updated_at, \
             finished_at) VALUES ('automation_gave_up', $1, '{}', 'done', 1, $2, $2, $2, $2) \
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&marker)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        if marked.rows_affected() == 1 {
            let details =
                serde_json::json!({"host_id": host_id, "policy_id": policy_id, "script_id": script_id, "runs": runs});
            crate::activities::insert(conn, "policy_automation_gave_up", &details, now).await?;
        }
        return Ok(());
    }
    if runs > 0 {
        let retry_at = last_finished.unwrap_or(now) + herd_core::jobs::retry_delay_ms(runs, policy_id ^ host_id);
        if now < retry_at {
            return Ok(());
        }
    }
    let execution = execution_id();
    let queued = sqlx::query(
        "INSERT INTO script_executions (execution_id, host_id, script_id, script_name, contents, status, timeout_s, \
         policy_id, created_at) SELECT $1, $2, s.id, s.name, s.contents, 'pending', $3, $4, $5 FROM scripts s WHERE s.id = $6",
    )
    .bind(&execution)
    .bind(host_id)
    .bind(TIMEOUT_S)
    .bind(policy_id)
    .bind(now)
    .bind(script_id)
    .execute(&mut *conn)
    .await?;
    if queued.rows_affected() == 1 {
        note_host_change(conn, host_id, now).await?;
        let details = serde_json::json!({
            "host_id": host_id, "policy_id": policy_id, "script_id": script_id,
            "script_execution_id": execution, "attempt": runs + 1,
        });
        crate::activities::insert(conn, "policy_automation_fired", &details, now).await?;
    }
    Ok(())
}
