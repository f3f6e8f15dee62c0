//! `GET /webhook_deliveries`: the state of every webhook delivery (pending, running, done, failed), with
//! attempts and the last error, newest first.

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::SharedState;
use crate::wire::rfc3339;
use axum::Json;
use axum::extract::{Query, State};
use axum::routing::get;
use herd_core::jobs::{JobKind, JobPayload};
use herd_core::roles::{Action, Scope};
use herd_store::JobState;
use serde_json::{Value, json};
use std::collections::HashMap;

pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new().route("/webhook_deliveries", get(list))
}

async fn list(
    State(state): State<SharedState>,
    auth: AuthUser,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    auth.require(Action::AdministerServer, Scope::Global)?;
    let filter = match params.get("state").map(String::as_str) {
        None | Some("") => None,
        Some("pending") => Some(JobState::Pending),
        Some("running") => Some(JobState::Running),
        Some("done" | "delivered") => Some(JobState::Done),
        Some("failed") => Some(JobState::Failed),
        Some(other) => return Err(ApiError::invalid("state", format!("unknown state {other:?}"))),
    };
    let mut jobs = state.store.list_jobs(JobKind::FailingPolicyWebhook, filter, 1000).await?;
    jobs.extend(state.store.list_jobs(JobKind::MigrationWebhook, filter, 1000).await?);
    jobs.sort_by_key(|job| std::cmp::Reverse(job.id));
    jobs.truncate(1000);
    let deliveries: Vec<Value> = jobs
        .into_iter()
        .map(|job| {
            let status = match job.state {
                JobState::Done => "delivered",
                other => other.as_str(),
            };
            let (kind, policy_id, host_id) = match &job.payload {
                JobPayload::FailingPolicyWebhook { policy_id, host_id, .. } => {
                    ("failing_policy", Some(*policy_id), *host_id)
                }
                JobPayload::MigrationWebhook { host_id, .. } => ("mdm_migration", None, *host_id),
                JobPayload::ProfileReconcile(_) | JobPayload::LabelRefresh { .. } => {
                    unreachable!("only webhook jobs are listed")
                }
            };
            json!({
                "id": job.id,
                "kind": kind,
                "idempotency_key": job.idempotency_key,
                "status": status,
                "destination_url": job.payload.destination_url(),
                "policy_id": policy_id,
                "host_id": host_id,
                "attempts": job.attempts,
                "max_attempts": job.max_attempts,
                "next_attempt_at": (job.state == JobState::Pending).then(|| rfc3339(job.run_at)),
                "last_error": job.last_error,
                "created_at": rfc3339(job.created_at),
                "finished_at": job.finished_at.map(rfc3339),
            })
        })
        .collect();
    Ok(Json(json!({"webhook_deliveries": deliveries})))
}
