//! The durable job table: enqueue (idempotent), claim with a lease (`FOR UPDATE SKIP LOCKED` on PostgreSQL;
//! SQLite's single writer serialises claims), heartbeat, complete, fail with retry. A job whose worker died
//! is claimed again when its lease runs out: delivery is at least once.

use crate::sql::{Arg, SqlBuilder};
use crate::{Backend, Result, Store, StoreError};
use herd_core::Millis;
use herd_core::jobs::{JobKind, JobPayload};
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
    /// What the job does (its kind is the variant).
    pub payload: JobPayload,
    /// Enqueueing the same key again does nothing; the key also goes out with the side effect.
    pub idempotency_key: String,
    pub max_attempts: i64,
    pub run_at: Millis,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub id: i64,
    pub idempotency_key: String,
    pub payload: JobPayload,
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

impl Job {
    pub fn kind(&self) -> JobKind {
        self.payload.kind()
    }
}

fn job_from_row(row: &sqlx::any::AnyRow) -> Result<Job> {
    let kind: String = row.try_get("kind")?;
    let payload: String = row.try_get("payload")?;
    Ok(Job {
        id: row.try_get("id")?,
        idempotency_key: row.try_get("idempotency_key")?,
        payload: JobPayload::from_columns(&kind, &payload).map_err(StoreError::Corrupt)?,
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
    .bind(job.payload.kind().as_str())
    .bind(&job.idempotency_key)
    .bind(job.payload.payload_json())
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
    /// A claimed row whose payload herd cannot read (written by a newer herd, or damaged) is failed for good
    /// with the reason, rather than failing every claim after it.
    pub async fn claim_jobs(
        &self,
        kinds: &[JobKind],
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
                sql.bind(Arg::Text(kind.as_str().to_string()));
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
        let mut jobs = Vec::with_capacity(rows.len());
        for row in &rows {
            match job_from_row(row) {
                Ok(job) => jobs.push(job),
                Err(StoreError::Corrupt(reason)) => {
                    let id: i64 = row.try_get("id")?;
                    tracing::error!(job_id = id, %reason, "a claimed job is unreadable; failed for good");
                    self.give_up_job(id, owner, &reason, now).await?;
                }
                Err(other) => return Err(other),
            }
        }
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

    /// Jobs of a kind, newest first, optionally in one state. Rows herd cannot read are left out (and logged).
    pub async fn list_jobs(&self, kind: JobKind, state: Option<JobState>, limit: i64) -> Result<Vec<Job>> {
        let mut sql = SqlBuilder::new("SELECT * FROM jobs WHERE kind = ");
        sql.bind(Arg::Text(kind.as_str().to_string()));
        if let Some(state) = state {
            sql.push(" AND state = ").bind(Arg::Text(state.as_str().to_string()));
        }
        sql.push(" ORDER BY id DESC LIMIT ").bind(Arg::Int(limit));
        let mut jobs = Vec::new();
        for row in sql.query().fetch_all(&self.reader).await? {
            match job_from_row(&row) {
                Ok(job) => jobs.push(job),
                Err(StoreError::Corrupt(reason)) => tracing::warn!(%reason, "an unreadable job left out of a listing"),
                Err(other) => return Err(other),
            }
        }
        Ok(jobs)
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

#[cfg(test)]
mod tests {
    use super::*;
    use herd_core::jobs::ReconcileScope;

    /// A row herd cannot read (a newer herd's kind of payload, or a damaged one) is failed for good with the
    /// reason when claimed; the jobs beside it are still handed out, now and at every later claim.
    #[tokio::test]
    async fn an_unreadable_job_is_failed_not_a_poison_for_every_claim() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("herd.db").to_str().unwrap()).await.unwrap();
        sqlx::query(
            "INSERT INTO jobs (kind, idempotency_key, payload, state, max_attempts, run_at, created_at, updated_at) \
             VALUES ('profile_reconcile', 'damaged', '{\"scope\": \"everything\"}', 'pending', 5, 0, 0, 0)",
        )
        .execute(&store.writer)
        .await
        .unwrap();
        let good = NewJob {
            payload: JobPayload::ProfileReconcile(ReconcileScope::Hosts { host_ids: vec![7] }),
            idempotency_key: "good".into(),
            max_attempts: 5,
            run_at: 0,
        };
        store.enqueue_job(&good, 0).await.unwrap();
        let claimed = store.claim_jobs(&[JobKind::ProfileReconcile], "a", 10, 60_000, 1).await.unwrap();
        assert_eq!(claimed.iter().map(|j| j.idempotency_key.as_str()).collect::<Vec<_>>(), ["good"]);
        assert_eq!(claimed[0].payload, good.payload);
        let listed = store.list_jobs(JobKind::ProfileReconcile, None, 10).await.unwrap();
        assert_eq!(listed.len(), 1, "the listing leaves the unreadable row out");
        let (state, error): (String, Option<String>) =
            sqlx::query_as("SELECT state, last_error FROM jobs WHERE idempotency_key = 'damaged'")
                .fetch_one(&store.reader)
                .await
                .unwrap();
        assert_eq!(state, "failed");
        assert!(error.is_some_and(|e| e.contains("unreadable payload")));
        assert!(store.claim_jobs(&[JobKind::ProfileReconcile], "b", 10, 60_000, 120_000).await.unwrap().len() <= 1);
    }
}
