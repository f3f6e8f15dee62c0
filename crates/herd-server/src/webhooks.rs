//! Failing-policy webhooks: a job per new failure, enqueued in the transaction of the report that showed it,
//! delivered within seconds by the `webhook_delivery` worker, retried with backoff for hours.

use crate::state::{SharedState, now_ms};
use crate::wire;
use herd_core::Millis;
use herd_proto::fleet::FailingPoliciesWebhook;
use herd_store::{Job, NewJob};
use serde_json::{Value, json};
use std::time::Duration;

pub const JOB_KIND: &str = "failing_policy_webhook";
/// 5 s doubling to an hour: about a day of retries before a delivery is given up.
pub const MAX_ATTEMPTS: i64 = 30;
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed delivery may take before another server may try it.
pub const LEASE_MS: Millis = 60_000;

/// The job for a host newly failing a policy, if the configuration asks for a webhook about that policy.
pub fn failing_policy_job(
    settings: &FailingPoliciesWebhook,
    policy_id: i64,
    host_id: i64,
    now: Millis,
) -> Option<NewJob> {
    let enabled = settings.enable_failing_policies_webhook
        && !settings.destination_url.is_empty()
        && settings.policy_ids.contains(&policy_id);
    enabled.then(|| NewJob {
        kind: JOB_KIND.into(),
        idempotency_key: format!("{JOB_KIND}:{policy_id}:{host_id}:{now}"),
        payload: json!({"policy_id": policy_id, "host_id": host_id, "failed_at": now, "destination_url": settings.destination_url}),
        max_attempts: MAX_ATTEMPTS,
        run_at: now,
    })
}

/// Fleet's payload: `{"timestamp", "policy": {...}, "hosts": [{"id", "hostname", "display_name", "url"}]}`,
/// one host per POST (herd does not wait to batch).
pub async fn payload(state: &SharedState, job: &Job) -> anyhow::Result<Value> {
    let policy_id = job.payload["policy_id"].as_i64().unwrap_or_default();
    let host_id = job.payload["host_id"].as_i64().unwrap_or_default();
    let failed_at = job.payload["failed_at"].as_i64().unwrap_or(job.created_at);
    let policy = match state.store.get_policy(policy_id).await? {
        Some(policy) => serde_json::to_value(wire::policy(policy))?,
        // Deleted since: the receiver still learns which policy failed.
        None => json!({"id": policy_id}),
    };
    let server_url = state.settings.get().config.server_settings.server_url.trim_end_matches('/').to_string();
    let host = match state.store.get_host(host_id).await? {
        Some(h) => {
            let display = if h.computer_name.is_empty() { h.hostname.clone() } else { h.computer_name.clone() };
            json!({"id": h.id, "hostname": h.hostname, "display_name": display, "url": format!("{server_url}/hosts/{}", h.id)})
        }
        None => json!({"id": host_id, "hostname": "", "display_name": "", "url": ""}),
    };
    Ok(json!({"timestamp": wire::rfc3339(failed_at), "policy": policy, "hosts": [host]}))
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("herd/", env!("CARGO_PKG_VERSION")))
        .build()
        .expect("an HTTP client with default settings")
}

/// Delivers one job; Err carries the reason to record.
pub async fn deliver(state: &SharedState, client: &reqwest::Client, job: &Job) -> Result<(), String> {
    let url = job.payload["destination_url"].as_str().unwrap_or_default();
    let body = payload(state, job).await.map_err(|e| format!("building the payload: {e:#}"))?;
    let response = client
        .post(url)
        .header("Idempotency-Key", &job.idempotency_key)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("{e}"))?;
    if response.status().is_success() { Ok(()) } else { Err(format!("{url} answered {}", response.status())) }
}

/// One round of deliveries by this server: claim what is due, deliver one at a time (one connection per
/// destination from this server), record each outcome.
pub async fn deliver_due(state: &SharedState, client: &reqwest::Client, owner: &str) -> anyhow::Result<()> {
    let jobs = state.store.claim_jobs(&[JOB_KIND], owner, 20, LEASE_MS, now_ms()).await?;
    for job in jobs {
        let outcome = deliver(state, client, &job).await;
        let now = now_ms();
        match outcome {
            Ok(()) => {
                state.store.complete_job(job.id, owner, now).await?;
            }
            Err(reason) => {
                let retry_at = now + herd_core::jobs::retry_delay_ms(job.attempts, job.id);
                let left = state.store.fail_job(job.id, owner, &reason, retry_at, now).await?;
                tracing::warn!(job = job.id, attempts = job.attempts, ?left, %reason, "webhook delivery failed");
            }
        }
    }
    Ok(())
}
