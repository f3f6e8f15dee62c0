//! osquery status logs, kept per host (the newest [`STATUS_LOGS_KEPT`] of each).

use crate::{Result, Store};
use sqlx::Acquire;

/// Status logs kept per host; older lines are dropped as new ones arrive.
pub const STATUS_LOGS_KEPT: i64 = 1000;

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredStatusLog {
    pub received_at: i64,
    pub unix_time: Option<i64>,
    pub severity: i64,
    pub filename: String,
    pub line: i64,
    pub message: String,
    pub version: String,
}

impl Store {
    pub async fn append_status_logs(&self, host_id: i64, lines: &[StoredStatusLog]) -> Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        // Err HostGone when the host was deleted (perhaps through another server since it authenticated).
        crate::hosts::lock_host(&mut tx, self.backend, host_id, crate::hosts::HostLock::Exists).await?;
        for line in lines {
            sqlx::query(
                "INSERT INTO host_status_logs (host_id, received_at, unix_time, severity, filename, line, message, version) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(host_id)
            .bind(line.received_at)
            .bind(line.unix_time)
            .bind(line.severity)
            .bind(&line.filename)
            .bind(line.line)
            .bind(&line.message)
            .bind(&line.version)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "DELETE FROM host_status_logs WHERE host_id = $1 AND id <= (SELECT id FROM host_status_logs \
             WHERE host_id = $1 ORDER BY id DESC LIMIT 1 OFFSET $2)",
        )
        .bind(host_id)
        .bind(STATUS_LOGS_KEPT)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The newest `limit` status logs of a host, newest first.
    pub async fn status_logs(&self, host_id: i64, limit: i64) -> Result<Vec<StoredStatusLog>> {
        Ok(sqlx::query_as(
            "SELECT received_at, unix_time, severity, filename, line, message, version FROM host_status_logs \
             WHERE host_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(host_id)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?)
    }
}
