//! Daily compliance history: each policy's pass/fail host counts per UTC day (the console's chart). Today's
//! rows are rewritten as the counts move; earlier days keep their last value.

use crate::{Result, Store};
use herd_core::Millis;
use sqlx::Row;

/// One day's counts for a policy (0: every policy together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComplianceDay {
    pub day: String,
    pub policy_id: i64,
    pub passing: i64,
    pub failing: i64,
}

impl Store {
    /// Records today's counts (`day` is "YYYY-MM-DD", UTC), replacing earlier ones of the same day.
    pub async fn record_compliance(&self, day: &str, counts: &[(i64, i64, i64)], now: Millis) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = sqlx::Acquire::begin(&mut *conn).await?;
        for (policy_id, passing, failing) in counts {
            sqlx::query(
                "INSERT INTO compliance_daily (day, policy_id, passing, failing, updated_at) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (day, policy_id) DO UPDATE SET passing = excluded.passing, failing = excluded.failing, \
                 updated_at = excluded.updated_at",
            )
            .bind(day)
            .bind(policy_id)
            .bind(passing)
            .bind(failing)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The days since `from_day` (inclusive), oldest first.
    pub async fn compliance_history(&self, from_day: &str) -> Result<Vec<ComplianceDay>> {
        let rows = sqlx::query(
            "SELECT day, policy_id, passing, failing FROM compliance_daily WHERE day >= $1 ORDER BY day, policy_id",
        )
        .bind(from_day)
        .fetch_all(&self.reader)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(ComplianceDay {
                    day: r.try_get("day")?,
                    policy_id: r.try_get("policy_id")?,
                    passing: r.try_get("passing")?,
                    failing: r.try_get("failing")?,
                })
            })
            .collect()
    }
}
