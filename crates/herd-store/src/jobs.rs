//! The durable job table: enqueue (idempotent), claim with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL;
//! SQLite's single writer serialises claims), heartbeat, complete, fail with retry. A job whose worker died
//! is claimed again when its lease runs out: delivery is at least once.

use crate::sql::{Arg, SqlBuilder};
use crate::{Backend, Result, Store, StoreError};
use herd_core::Millis;
use sqlx::{AnyConnection, Row};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Running,
    Done,
    Failed,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Result<JobState> {
        Ok(match text {
            "pending" => JobState::Pending,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            other => return Err(StoreError::Corrupt(format!("unknown job state {other:?}"))),
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewJob {
    pub kind: String,
    /// Enqueueing the same key again does nothing; the key also goes out with the side effect.
    pub idempotency_key: String,
    pub payload: serde_json::Value,
    pub max_attempts: i64,
    pub run_at: Millis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub kind: String,
    pub idempotency_key: String,
    pub payload: serde_json::Value,
    pub state: JobState,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: Millis,
    pub lease_owner: Option<String>,
    pub lease_until: Option<Millis>,
    pub last_error: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub finished_at: Option<Millis>,
}

fn job_from_row(row: &sqlx::any::AnyRow) -> Result<Job> {
    let payload: String = row.try_get("payload")?;
    Ok(Job {
        id: row.try_get("id")?,
        kind: row.try_get("kind")?,
        idempotency_key: row.try_get("idempotency_key")?,
        payload: serde_json::from_str(&payload).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        state: JobState::parse(&row.try_get::<String, _>("state")?)?,
        attempts: row.try_get("attempts")?,
        max_attempts: row.try_get("max_attempts")?,
        run_at: row.try_get("run_at")?,
        lease_owner: row.try_get("lease_owner")?,
        lease_until: row.try_get("lease_until")?,
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

/// Enqueues in the caller's transaction, so a job exists exactly when the change that caused it committed.
/// Returns false when a job with that idempotency key exists already.
pub(crate) async fn enqueue_in(conn: &mut AnyConnection, job: &NewJob, now: Millis) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO jobs (kind, idempotency_key, payload, state, max_attempts, run_at, created_at, updated_at) \
         VALUES ($1, $2, $3, 'pending', $4, $5, $6, $6) ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(&job.kind)
    .bind(&job.idempotency_key)
    .bind(job.payload.to_string())
    .bind(job.max_attempts.max(1))
    .bind(job.run_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

impl Store {
    pub async fn enqueue_job(&self, job: &NewJob, now: Millis) -> Result<bool> {
        let mut conn = self.writer.acquire().await?;
        enqueue_in(&mut conn, job, now).await
    }

    /// Leases up to `limit` due jobs of these kinds to `owner` until `now + lease_ms`: pending jobs whose time
    /// has come, and running jobs whose lease ran out (their worker died or stalled) while attempts remain.
    /// Each claim counts as an attempt. A job whose lease ran out on its last attempt is failed for good
    /// ("lease expired"), as `fail_job` would have: `max_attempts` bounds every job, however its attempts end.
    pub async fn claim_jobs(
        &self,
        kinds: &[&str],
        owner: &str,
        limit: i64,
        lease_ms: Millis,
        now: Millis,
    ) -> Result<Vec<Job>> {
        let kind_list = |sql: &mut SqlBuilder| {
            for (i, kind) in kinds.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.bind(Arg::Text(kind.to_string()));
            }
        };
        let mut exhausted = SqlBuilder::new(
            "UPDATE jobs SET state = 'failed', lease_owner = NULL, lease_until = NULL, \
             last_error = 'the lease of its last attempt expired without an outcome', finished_at = ",
        );
        exhausted.bind(Arg::Int(now)).push(", updated_at = ").bind(Arg::Int(now));
        exhausted.push(" WHERE state = 'running' AND attempts >= max_attempts AND lease_until < ").bind(Arg::Int(now));
        exhausted.push(" AND kind IN (");
        kind_list(&mut exhausted);
        exhausted.push(")");
        exhausted.query().execute(&self.writer).await?;

        let mut sql = SqlBuilder::new("UPDATE jobs SET state = 'running', attempts = attempts + 1, lease_owner = ");
        sql.bind(Arg::Text(owner.to_string()))
            .push(", lease_until = ")
            .bind(Arg::Int(now + lease_ms))
            .push(", updated_at = ")
            .bind(Arg::Int(now))
            .push(" WHERE id IN (SELECT id FROM jobs WHERE kind IN (");
        kind_list(&mut sql);
        sql.push(") AND ((state = 'pending' AND run_at <= ")
            .bind(Arg::Int(now))
            .push(") OR (state = 'running' AND attempts < max_attempts AND lease_until < ")
            .bind(Arg::Int(now))
            .push(")) ORDER BY run_at, id LIMIT ")
            .bind(Arg::Int(limit));
        // Several servers claim at once on PostgreSQL: each skips rows another is claiming. SQLite has one
        // writer, so claims are serialised anyway.
        if self.backend == Backend::Postgres {
            sql.push(" FOR UPDATE SKIP LOCKED");
        }
        sql.push(") RETURNING *");
        let rows = sql.query().fetch_all(&self.writer).await?;
        let mut jobs: Vec<Job> = rows.iter().map(job_from_row).collect::<Result<_>>()?;
        jobs.sort_by_key(|j| (j.run_at, j.id));
        Ok(jobs)
    }

    /// Extends a lease the owner still holds; false when it lost the job (lease expired and reclaimed).
    pub async fn heartbeat_job(&self, id: i64, owner: &str, lease_ms: Millis, now: Millis) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = $1, updated_at = $2 WHERE id = $3 AND lease_owner = $4 AND state = 'running'",
        )
        .bind(now + lease_ms)
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn complete_job(&self, id: i64, owner: &str, now: Millis) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE jobs SET state = 'done', lease_owner = NULL, lease_until = NULL, last_error = NULL, \
             finished_at = $1, updated_at = $1 WHERE id = $2 AND lease_owner = $3 AND state = 'running'",
        )
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records a failed attempt: the job is tried again at `retry_at` while attempts remain, else it is
    /// failed for good. Returns the state it is left in (None when the owner had lost it).
    pub async fn fail_job(
        &self,
        id: i64,
        owner: &str,
        error: &str,
        retry_at: Millis,
        now: Millis,
    ) -> Result<Option<JobState>> {
        let error: String = error.chars().take(2000).collect();
        let row = sqlx::query(
            "UPDATE jobs SET state = CASE WHEN attempts >= max_attempts THEN 'failed' ELSE 'pending' END, \
             run_at = $1, lease_owner = NULL, lease_until = NULL, last_error = $2, updated_at = $3, \
             finished_at = CASE WHEN attempts >= max_attempts THEN $3 ELSE NULL END \
             WHERE id = $4 AND lease_owner = $5 AND state = 'running' RETURNING state",
        )
        .bind(retry_at)
        .bind(error)
        .bind(now)
        .bind(id)
        .bind(owner)
        .fetch_optional(&self.writer)
        .await?;
        row.map(|r| JobState::parse(&r.try_get::<String, _>(0)?)).transpose()
    }

    /// Fails a running job for good, whatever attempts remain (a failure no retry can fix). Returns whether
    /// this owner still held it.
    pub async fn give_up_job(&self, id: i64, owner: &str, error: &str, now: Millis) -> Result<bool> {
        let error: String = error.chars().take(2000).collect();
        let done = sqlx::query(
            "UPDATE jobs SET state = 'failed', lease_owner = NULL, lease_until = NULL, last_error = $1, \
             finished_at = $2, updated_at = $2 WHERE id = $3 AND lease_owner = $4 AND state = 'running'",
        )
        .bind(error)
        .bind(now)
        .bind(id)
        .bind(owner)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn get_job(&self, id: i64) -> Result<Option<Job>> {
        let row = sqlx::query("SELECT * FROM jobs WHERE id = $1").bind(id).fetch_optional(&self.reader).await?;
        row.as_ref().map(job_from_row).transpose()
    }

    pub async fn job_by_key(&self, idempotency_key: &str) -> Result<Option<Job>> {
        let row = sqlx::query("SELECT * FROM jobs WHERE idempotency_key = $1")
            .bind(idempotency_key)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(job_from_row).transpose()
    }

    /// Jobs of a kind, newest first, optionally in one state.
    pub async fn list_jobs(&self, kind: &str, state: Option<JobState>, limit: i64) -> Result<Vec<Job>> {
        let mut sql = SqlBuilder::new("SELECT * FROM jobs WHERE kind = ");
        sql.bind(Arg::Text(kind.to_string()));
        if let Some(state) = state {
            sql.push(" AND state = ").bind(Arg::Text(state.as_str().to_string()));
        }
        sql.push(" ORDER BY id DESC LIMIT ").bind(Arg::Int(limit));
        sql.query().fetch_all(&self.reader).await?.iter().map(job_from_row).collect()
    }

    /// Drops finished jobs older than `before` (their record served its purpose).
    pub async fn prune_finished_jobs(&self, before: Millis) -> Result<u64> {
        let done = sqlx::query("DELETE FROM jobs WHERE state IN ('done', 'failed') AND finished_at < $1")
            .bind(before)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }
}
