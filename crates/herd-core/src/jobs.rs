//! The durable job table's contents and rules: what each kind of job carries (one typed payload per kind),
//! and when a failed job is tried again.

use crate::{HOUR_MS, Millis, SECOND_MS};
use serde::{Deserialize, Serialize};

/// What a job does, with what it needs. The table's `kind` column is the tag and its `payload` column the
/// content (serde's adjacent tagging, so the JSON of each variant is exactly what rows held before this type
/// existed, and rows already queued read back unchanged).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
pub enum JobPayload {
    /// Fleet's failing-policy webhook for one host that started failing one policy, to one destination.
    #[serde(rename = "failing_policy_webhook")]
    FailingPolicyWebhook { policy_id: i64, host_id: i64, failed_at: Millis, destination_url: String },
    /// Fleet's migration webhook: its body is fixed when the migration starts.
    #[serde(rename = "mdm_migration_webhook")]
    MigrationWebhook { destination_url: String, host_id: i64, body: serde_json::Value },
    /// Bringing hosts' configuration profiles in line with what they should have.
    #[serde(rename = "profile_reconcile")]
    ProfileReconcile(ReconcileScope),
    /// Re-deciding every host's labels after a definition changed (`reason` says which, for the job view).
    #[serde(rename = "label_refresh")]
    LabelRefresh { reason: String },
}

/// Which hosts a profile reconcile covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ReconcileScope {
    /// Every host of a profile set (`scope_key`: the team's id, 0 for hosts in no team).
    Set { scope_key: i64 },
    /// These hosts (they moved between teams).
    Hosts { host_ids: Vec<i64> },
}

/// The kinds of job, as the `kind` column spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    FailingPolicyWebhook,
    MigrationWebhook,
    ProfileReconcile,
    LabelRefresh,
}

impl JobKind {
    pub const ALL: [JobKind; 4] =
        [JobKind::FailingPolicyWebhook, JobKind::MigrationWebhook, JobKind::ProfileReconcile, JobKind::LabelRefresh];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::FailingPolicyWebhook => "failing_policy_webhook",
            JobKind::MigrationWebhook => "mdm_migration_webhook",
            JobKind::ProfileReconcile => "profile_reconcile",
            JobKind::LabelRefresh => "label_refresh",
        }
    }
}

impl JobPayload {
    pub fn kind(&self) -> JobKind {
        match self {
            JobPayload::FailingPolicyWebhook { .. } => JobKind::FailingPolicyWebhook,
            JobPayload::MigrationWebhook { .. } => JobKind::MigrationWebhook,
            JobPayload::ProfileReconcile(_) => JobKind::ProfileReconcile,
            JobPayload::LabelRefresh { .. } => JobKind::LabelRefresh,
        }
    }

    /// Where a webhook job delivers (None for work done inside herd).
    pub fn destination_url(&self) -> Option<&str> {
        match self {
            JobPayload::FailingPolicyWebhook { destination_url, .. }
            | JobPayload::MigrationWebhook { destination_url, .. } => Some(destination_url),
            JobPayload::ProfileReconcile(_) | JobPayload::LabelRefresh { .. } => None,
        }
    }

    /// The `payload` column's text.
    pub fn payload_json(&self) -> String {
        let mut tagged = serde_json::to_value(self).expect("a job payload serializes");
        tagged.get_mut("payload").map(serde_json::Value::take).unwrap_or_default().to_string()
    }

    /// Reads a row's `kind` and `payload` columns; the reason when they do not make a job herd knows.
    pub fn from_columns(kind: &str, payload: &str) -> Result<JobPayload, String> {
        let payload: serde_json::Value =
            serde_json::from_str(payload).map_err(|e| format!("{kind} job: payload is not JSON: {e}"))?;
        serde_json::from_value(serde_json::json!({"kind": kind, "payload": payload}))
            .map_err(|e| format!("{kind} job: unreadable payload: {e}"))
    }
}

/// First retry after this; each further retry waits twice as long, up to [`MAX_RETRY_DELAY_MS`].
pub const FIRST_RETRY_DELAY_MS: Millis = 5 * SECOND_MS;
pub const MAX_RETRY_DELAY_MS: Millis = HOUR_MS;

/// How long to wait before attempt `attempts + 1`, after `attempts` failed ones (≥ 1): 5 s, 10 s, 20 s, ...
/// capped at an hour. Jitter (up to 10 %, stable per job) spreads retries of jobs that failed together.
pub fn retry_delay_ms(attempts: i64, job_id: i64) -> Millis {
    let exponent = attempts.saturating_sub(1).clamp(0, 30) as u32;
    let base = FIRST_RETRY_DELAY_MS.saturating_mul(1 << exponent).min(MAX_RETRY_DELAY_MS);
    base + crate::jitter::stable_jitter_ms(job_id, "job-retry", base)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind's columns are what rows held before the type existed; they read back to the same job, and a
    /// row herd cannot read says why.
    #[test]
    fn payloads_keep_their_columns() {
        let cases = [
            (
                JobPayload::FailingPolicyWebhook {
                    policy_id: 3,
                    host_id: 7,
                    failed_at: 1_000,
                    destination_url: "https://hooks.example/x".into(),
                },
                "failing_policy_webhook",
                r#"{"destination_url":"https://hooks.example/x","failed_at":1000,"host_id":7,"policy_id":3}"#,
            ),
            (
                JobPayload::MigrationWebhook {
                    destination_url: "https://hooks.example/m".into(),
                    host_id: 7,
                    body: serde_json::json!({"timestamp": "t"}),
                },
                "mdm_migration_webhook",
                r#"{"body":{"timestamp":"t"},"destination_url":"https://hooks.example/m","host_id":7}"#,
            ),
            (
                JobPayload::ProfileReconcile(ReconcileScope::Set { scope_key: 0 }),
                "profile_reconcile",
                r#"{"scope_key":0}"#,
            ),
            (
                JobPayload::ProfileReconcile(ReconcileScope::Hosts { host_ids: vec![1, 2] }),
                "profile_reconcile",
                r#"{"host_ids":[1,2]}"#,
            ),
        ];
        for (job, kind, columns) in cases {
            assert_eq!(job.kind().as_str(), kind);
            let written: serde_json::Value = serde_json::from_str(&job.payload_json()).unwrap();
            assert_eq!(written, serde_json::from_str::<serde_json::Value>(columns).unwrap(), "{kind}");
            assert_eq!(JobPayload::from_columns(kind, columns).unwrap(), job);
        }
        for (kind, payload) in
            [("failing_policy_webhook", "{}"), ("no_such_kind", "{}"), ("profile_reconcile", "not json")]
        {
            let error = JobPayload::from_columns(kind, payload).unwrap_err();
            assert!(error.starts_with(kind), "{error}");
        }
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let cases = [(1, 5_000), (2, 10_000), (3, 20_000), (4, 40_000), (11, 3_600_000), (500, 3_600_000)];
        for (attempts, want) in cases {
            let delay = retry_delay_ms(attempts, 1);
            assert!((want..=want + want / 10).contains(&delay), "attempt {attempts}: {delay}");
        }
        assert_eq!(retry_delay_ms(0, 1), retry_delay_ms(1, 1), "no attempt yet counts as the first");
    }
}
