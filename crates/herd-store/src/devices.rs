//! Device tokens: what a host's local user presents (in the URL of the device endpoints) to act on their
//! own device. The agent rotates its token hourly; the current and the previous one are accepted.

use crate::{Result, Store};
use herd_core::Millis;
use sqlx::Acquire;

impl Store {
    /// Makes `token_hash` the host's current token; the previous current one stays valid, older ones die.
    pub async fn register_device_token(&self, host_id: i64, token_hash: &str, now: Millis) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let already: Option<i64> =
            sqlx::query_scalar("SELECT host_id FROM device_tokens WHERE token_hash = $1 AND superseded_at IS NULL")
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await?;
        if already == Some(host_id) {
            return Ok(());
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
        // A token reused by another host (astronomically unlikely for random tokens) moves to this one.
        sqlx::query("DELETE FROM device_tokens WHERE token_hash = $1").bind(token_hash).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO device_tokens (token_hash, host_id, created_at) VALUES ($1, $2, $3)")
            .bind(token_hash)
            .bind(host_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
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
