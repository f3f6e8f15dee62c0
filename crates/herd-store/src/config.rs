//! The server configuration document and enroll secrets.

use crate::{Backend, Result, Store, StoreError};
use herd_core::Millis;
use sqlx::{Acquire, Row};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSecret {
    pub secret: String,
    pub team_id: Option<i64>,
    pub created_at: Millis,
}

/// Replaces the secrets of one scope (global when `team_id` is None) in the caller's transaction.
/// PostgreSQL advisory lock taken (for the transaction) by every replacement of enroll secrets.
const PG_ENROLL_SECRETS_LOCK: i64 = 0x6865_7264_5345_4352; // "herdSECR"

/// Replaces one scope's enroll secrets inside the caller's transaction. Replacements run one after the other
/// (an advisory lock on PostgreSQL; SQLite has one writer): otherwise two at once would each delete the rows
/// their snapshot saw and insert the same secrets, and the second would fail on the first's new rows.
pub(crate) async fn replace_secrets(
    conn: &mut sqlx::AnyConnection,
    backend: Backend,
    team_id: Option<i64>,
    secrets: &[String],
    now: Millis,
) -> Result<()> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_xact_lock($1)").bind(PG_ENROLL_SECRETS_LOCK).execute(&mut *conn).await?;
    }
    match team_id {
        Some(team) => {
            sqlx::query("DELETE FROM enroll_secrets WHERE team_id = $1").bind(team).execute(&mut *conn).await?
        }
        None => sqlx::query("DELETE FROM enroll_secrets WHERE team_id IS NULL").execute(&mut *conn).await?,
    };
    for secret in secrets {
        sqlx::query("INSERT INTO enroll_secrets (secret, team_id, created_at) VALUES ($1, $2, $3)")
            .bind(secret)
            .bind(team_id)
            .bind(now)
            .execute(&mut *conn)
            .await
            .map_err(|e| StoreError::conflict_on_unique(e, "this enroll secret is already in use"))?;
    }
    Ok(())
}

fn secret_from_row(row: &sqlx::any::AnyRow) -> Result<StoredSecret> {
    Ok(StoredSecret { secret: row.try_get(0)?, team_id: row.try_get(1)?, created_at: row.try_get(2)? })
}

impl Store {
    /// The stored configuration document, or None before the first save.
    pub async fn app_config(&self) -> Result<Option<serde_json::Value>> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT document FROM app_config WHERE id = 1").fetch_optional(&self.reader).await?;
        let document = text.map(|t| serde_json::from_str(&t).map_err(|e| StoreError::Corrupt(e.to_string())));
        Ok(document.transpose()?.filter(|d: &serde_json::Value| !d.is_null()))
    }

    pub async fn save_app_config(&self, document: &serde_json::Value, now: Millis) -> Result<()> {
        sqlx::query(
            "INSERT INTO app_config (id, document, updated_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO UPDATE SET document = excluded.document, updated_at = excluded.updated_at",
        )
        .bind(document.to_string())
        .bind(now)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Read-modify-write of the configuration document: `update` gets the stored document (None before the
    /// first save) and returns the new one, which is saved in the same transaction. The row is locked for the
    /// whole of it (`FOR UPDATE` on PostgreSQL; SQLite has one writer connection), so concurrent updates —
    /// from this server or another — apply one after the other and none is lost. An `Err` from `update`
    /// changes nothing.
    pub async fn update_app_config<E: From<StoreError>>(
        &self,
        now: Millis,
        update: impl FnOnce(Option<serde_json::Value>) -> Result<serde_json::Value, E>,
    ) -> Result<serde_json::Value, E> {
        let mut conn = self.writer.acquire().await.map_err(StoreError::from)?;
        let mut tx = conn.begin().await.map_err(StoreError::from)?;
        // A placeholder row (JSON null: "none yet") when there is none, so there is always a row to lock; two
        // servers inserting it at once wait for each other here. Rolled back unless `update` succeeds.
        sqlx::query(
            "INSERT INTO app_config (id, document, updated_at) VALUES (1, 'null', $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        let lock = if self.backend == Backend::Postgres { " FOR UPDATE" } else { "" };
        let text: String =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT document FROM app_config WHERE id = 1{lock}")))
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from)?;
        let current: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("configuration document: {e}")))?;
        let document = update((!current.is_null()).then_some(current))?;
        sqlx::query("UPDATE app_config SET document = $1, updated_at = $2 WHERE id = 1")
            .bind(document.to_string())
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(StoreError::from)?;
        tx.commit().await.map_err(StoreError::from)?;
        Ok(document)
    }

    /// First start: saves the configuration and the first global enroll secret, in one transaction, only if
    /// no configuration exists yet; returns whether this call did it. Safe when several servers start at once
    /// on one database: the others wait for the first one's commit, then find the configuration (and the
    /// secret with it — never a configuration without its secret).
    pub async fn init_app_config(&self, document: &serde_json::Value, first_secret: &str, now: Millis) -> Result<bool> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let done = sqlx::query(
            "INSERT INTO app_config (id, document, updated_at) VALUES (1, $1, $2) ON CONFLICT (id) DO NOTHING",
        )
        .bind(document.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let first = done.rows_affected() == 1;
        if first {
            replace_secrets(&mut tx, self.backend, None, &[first_secret.to_string()], now).await?;
        }
        tx.commit().await?;
        Ok(first)
    }

    /// Secrets of one scope: global (None) or a team's.
    pub async fn enroll_secrets(&self, team_id: Option<i64>) -> Result<Vec<StoredSecret>> {
        let rows = match team_id {
            Some(team) => {
                sqlx::query("SELECT secret, team_id, created_at FROM enroll_secrets WHERE team_id = $1 ORDER BY created_at, secret")
                    .bind(team)
                    .fetch_all(&self.reader)
                    .await?
            }
            None => {
                sqlx::query("SELECT secret, team_id, created_at FROM enroll_secrets WHERE team_id IS NULL ORDER BY created_at, secret")
                    .fetch_all(&self.reader)
                    .await?
            }
        };
        rows.iter().map(secret_from_row).collect()
    }

    /// Every secret of every scope, for enrollment (compared in constant time by the caller).
    pub async fn all_enroll_secrets(&self) -> Result<Vec<StoredSecret>> {
        let rows =
            sqlx::query("SELECT secret, team_id, created_at FROM enroll_secrets").fetch_all(&self.reader).await?;
        rows.iter().map(secret_from_row).collect()
    }

    pub async fn replace_enroll_secrets(&self, team_id: Option<i64>, secrets: &[String], now: Millis) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        if let Some(team) = team_id {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT id FROM teams WHERE id = $1").bind(team).fetch_optional(&mut *tx).await?;
            if exists.is_none() {
                return Err(StoreError::NotFound("team"));
            }
        }
        replace_secrets(&mut tx, self.backend, team_id, secrets, now).await?;
        tx.commit().await?;
        Ok(())
    }
}
