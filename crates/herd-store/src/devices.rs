//! Device tokens: what a host's local user presents (in the URL of the device endpoints) to act on their
//! own device. The agent rotates its token hourly; the current and the previous one are accepted.

use crate::{Backend, Result, Store, StoreError};
use herd_core::Millis;
use sqlx::Acquire;

const TAKEN: &str = "this device token is registered to another host";

fn taken() -> StoreError {
    StoreError::Conflict(TAKEN.to_string())
}

impl Store {
    /// Makes `token_hash` the host's current token; the previous current one stays valid, older ones die.
    /// A token belongs to the host that registered it: another host presenting it gets
    /// [`StoreError::Conflict`] and the owner keeps it (else any enrolled host could take over another's My
    /// Device page and deferral choices by registering its token).
    pub async fn register_device_token(&self, host_id: i64, token_hash: &str, now: Millis) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        // Err HostGone when the host was deleted meanwhile (on any server).
        crate::hosts::lock_host(&mut tx, self.backend, host_id, crate::hosts::HostLock::Exists).await?;
        let lock = if self.backend == Backend::Postgres { " FOR UPDATE" } else { "" };
        let owner: Option<(i64, Option<i64>)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT host_id, superseded_at FROM device_tokens WHERE token_hash = $1{lock}"
        )))
        .bind(token_hash)
        .fetch_optional(&mut *tx)
        .await?;
        match owner {
            Some((owner, _)) if owner != host_id => return Err(taken()),
            Some((_, None)) => return Ok(()), // already this host's current token
            _ => {}
        }
        sqlx::query("DELETE FROM device_tokens WHERE host_id = $1 AND superseded_at IS NOT NULL")
            .bind(host_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE device_tokens SET superseded_at = $1 WHERE host_id = $2")
            .bind(now)
            .bind(host_id)
            .execute(&mut *tx)
            .await?;
        // Two hosts registering one new token at once: the primary key lets one in, the other is refused.
        sqlx::query("INSERT INTO device_tokens (token_hash, host_id, created_at) VALUES ($1, $2, $3)")
            .bind(token_hash)
            .bind(host_id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::conflict_on_unique(e, TAKEN))?;
        tx.commit().await?;
        Ok(())
    }

    /// The host a device token belongs to (current or previous token).
    pub async fn host_by_device_token(&self, token_hash: &str) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT host_id FROM device_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.reader)
            .await?)
    }
}
