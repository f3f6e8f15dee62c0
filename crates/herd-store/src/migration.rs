//! Moving hosts off a previous management system (seed 002): a user starts the migration from their device;
//! the webhook that unenrolls the host from the old system is queued in the same transaction that opens the
//! critical window; the window closes when the host reports itself unmanaged, or times out.

use crate::hosts::note_host_change;
use crate::{Backend, Result, Store, StoreError};
use herd_core::Millis;
use herd_core::migration::MigrationState;
use sqlx::{Acquire, Row};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MigrationStart {
    /// The window is open and the webhook queued.
    Started,
    /// A migration started moments ago is still in its window: nothing more is sent.
    AlreadyOpen,
    /// The host does not report another management system.
    NotEligible,
}

impl Store {
    /// Starts the host's migration: opens its critical window until `now + window_ms` and enqueues `webhook`,
    /// in one transaction. A second start while the window is open sends nothing.
    pub async fn start_migration(
        &self,
        host_id: i64,
        window_ms: Millis,
        webhook: &crate::NewJob,
        now: Millis,
    ) -> Result<MigrationStart> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let lock = if self.backend == Backend::Postgres { " FOR UPDATE" } else { "" };
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT managed_by_other, migration_window_until FROM hosts WHERE id = $1{lock}"
        )))
        .bind(host_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(StoreError::NotFound("host"))?;
        let managed: Option<i64> = row.try_get(0)?;
        let window_until: Option<i64> = row.try_get(1)?;
        if window_until.is_some_and(|until| until > now) {
            return Ok(MigrationStart::AlreadyOpen);
        }
        if managed != Some(1) {
            return Ok(MigrationStart::NotEligible);
        }
        sqlx::query(
            "UPDATE hosts SET migration_state = $4, migration_started_at = $1, migration_window_until = $2 \
             WHERE id = $3",
        )
        .bind(now)
        .bind(now + window_ms)
        .bind(host_id)
        .bind(MigrationState::Started.as_str())
        .execute(&mut *tx)
        .await?;
        crate::jobs::enqueue_in(&mut tx, webhook, now).await?;
        let details = serde_json::json!({"host_id": host_id});
        crate::activities::insert(&mut tx, "mdm_migration_started", &details, now).await?;
        note_host_change(&mut tx, host_id, now).await?;
        tx.commit().await?;
        Ok(MigrationStart::Started)
    }

    /// Records whether another management system manages the host, as it just reported. A host in a started
    /// migration that reports itself unmanaged has migrated: its window closes. Returns true then.
    pub async fn record_management_status(&self, host_id: i64, managed: bool, now: Millis) -> Result<bool> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let row = sqlx::query("SELECT migration_state, managed_by_other FROM hosts WHERE id = $1")
            .bind(host_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(false) };
        let state: String = row.try_get(0)?;
        let state = MigrationState::try_from(state).map_err(|e| crate::StoreError::Corrupt(e.to_string()))?;
        let known: Option<i64> = row.try_get(1)?;
        let migrated = state.completed_by(managed);
        if !migrated && known == Some(managed as i64) {
            // Asked with every vitals refresh and every check-in of a window: unchanged answers write nothing.
            return Ok(false);
        }
        if migrated {
            sqlx::query(
                "UPDATE hosts SET managed_by_other = 0, migration_state = $2, migration_window_until = NULL \
                 WHERE id = $1",
            )
            .bind(host_id)
            .bind(MigrationState::Migrated.as_str())
            .execute(&mut *tx)
            .await?;
            let details = serde_json::json!({"host_id": host_id});
            crate::activities::insert(&mut tx, "mdm_migration_completed", &details, now).await?;
            note_host_change(&mut tx, host_id, now).await?;
        } else {
            sqlx::query("UPDATE hosts SET managed_by_other = $1 WHERE id = $2")
                .bind(managed as i64)
                .bind(host_id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(migrated)
    }

    /// Closes the windows of migrations that did not finish in time (the host still reports the old system):
    /// they are marked timed out, with an activity, and the hosts check in normally again. Returns the hosts.
    pub async fn close_expired_migration_windows(&self, now: Millis) -> Result<Vec<i64>> {
        const EXPIRED: &str = "SELECT id FROM hosts WHERE migration_window_until IS NOT NULL AND migration_window_until <= $1 ORDER BY id";
        // Almost always none: look on the reader first, so the worker does not take the writer every 2 s.
        let expired: Vec<i64> = sqlx::query_scalar(EXPIRED).bind(now).fetch_all(&self.reader).await?;
        if expired.is_empty() {
            return Ok(expired);
        }
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let hosts: Vec<i64> = sqlx::query_scalar(EXPIRED).bind(now).fetch_all(&mut *tx).await?;
        for host in &hosts {
            sqlx::query("UPDATE hosts SET migration_state = $2, migration_window_until = NULL WHERE id = $1")
                .bind(host)
                .bind(MigrationState::TimedOut.as_str())
                .execute(&mut *tx)
                .await?;
            let details = serde_json::json!({"host_id": host, "reason": "migration timed out"});
            crate::activities::insert(&mut tx, "mdm_migration_timed_out", &details, now).await?;
            note_host_change(&mut tx, *host, now).await?;
        }
        tx.commit().await?;
        Ok(hosts)
    }
}
