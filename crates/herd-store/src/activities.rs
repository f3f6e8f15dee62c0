//! The activity feed: who did what, for audit and for Fleet's `GET /activities`.

use crate::{Result, Store, StoreError};
use herd_core::Millis;
use sqlx::Row;

#[derive(Debug, Clone, PartialEq)]
pub struct ActivityRecord {
    pub id: i64,
    pub created_at: Millis,
    /// None for activities made by herd itself (automations).
    pub actor_id: Option<i64>,
    pub actor_name: Option<String>,
    pub actor_email: Option<String>,
    pub kind: String,
    pub details: serde_json::Value,
}

#[derive(Debug, Clone)]
pub struct Actor {
    pub id: i64,
    pub name: String,
    pub email: String,
}

/// Records an activity of herd itself (no user) in the caller's transaction.
pub(crate) async fn insert(
    conn: &mut sqlx::AnyConnection,
    kind: &str,
    details: &serde_json::Value,
    now: Millis,
) -> Result<()> {
    sqlx::query("INSERT INTO activities (created_at, type, details) VALUES ($1, $2, $3)")
        .bind(now)
        .bind(kind)
        .bind(details.to_string())
        .execute(conn)
        .await?;
    Ok(())
}

impl Store {
    pub async fn record_activity(
        &self,
        actor: Option<&Actor>,
        kind: &str,
        details: &serde_json::Value,
        now: Millis,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO activities (created_at, actor_id, actor_name, actor_email, type, details) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(now)
        .bind(actor.map(|a| a.id))
        .bind(actor.map(|a| a.name.clone()))
        .bind(actor.map(|a| a.email.clone()))
        .bind(kind)
        .bind(details.to_string())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Newest first.
    pub async fn list_activities(&self, offset: i64, limit: i64) -> Result<Vec<ActivityRecord>> {
        let rows = sqlx::query("SELECT * FROM activities ORDER BY id DESC LIMIT $1 OFFSET $2")
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                let details: String = r.try_get("details")?;
                Ok(ActivityRecord {
                    id: r.try_get("id")?,
                    created_at: r.try_get("created_at")?,
                    actor_id: r.try_get("actor_id")?,
                    actor_name: r.try_get("actor_name")?,
                    actor_email: r.try_get("actor_email")?,
                    kind: r.try_get("type")?,
                    details: serde_json::from_str(&details).map_err(|e| StoreError::Corrupt(e.to_string()))?,
                })
            })
            .collect()
    }
}
