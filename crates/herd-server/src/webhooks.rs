//! Failing-policy webhooks: a job per new failure, enqueued in the transaction of the report that showed it,
//! delivered within seconds by the `webhook_delivery` worker, retried with backoff for hours.

use crate::outbound::OutboundPolicy;
use crate::state::{SharedState, now_ms};
use crate::wire;
use herd_core::Millis;
use herd_core::jobs::{JobKind, JobPayload};
use herd_proto::fleet::FailingPoliciesWebhook;
use herd_store::{FiringPolicy, Job, NewJob};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::Semaphore;

const DELIVERED_KINDS: &[JobKind] = &[JobKind::FailingPolicyWebhook, JobKind::MigrationWebhook];
/// 5 s doubling to an hour: about a day of retries before a delivery is given up.
pub const MAX_ATTEMPTS: i64 = 30;
const TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claimed delivery may take before another server may try it.
pub const LEASE_MS: Millis = 60_000;

/// Checks a webhook destination when it is written: an absolute http(s) URL with a host, not a literal address
/// the outbound policy forbids (host names are checked on their addresses at delivery).
pub fn check_destination(policy: &OutboundPolicy, url: &str) -> Result<(), String> {
    policy.check_url(url)
}

/// Checks Fleet's `failing_policies_webhook` settings, naming the bad field under `prefix`.
pub fn check_settings(
    policy: &OutboundPolicy,
    prefix: &str,
    webhook: &FailingPoliciesWebhook,
) -> Result<(), crate::error::ApiError> {
    use crate::error::ApiError;
    let destination = format!("{prefix}.destination_url");
    if !webhook.destination_url.is_empty() {
        check_destination(policy, &webhook.destination_url)
            .map_err(|reason| ApiError::invalid(&destination, reason))?;
    } else if webhook.enable_failing_policies_webhook {
        return Err(ApiError::invalid(&destination, "required when the webhook is enabled"));
    }
    if webhook.host_batch_size < 0 {
        return Err(ApiError::invalid(format!("{prefix}.host_batch_size"), "must not be negative"));
    }
    Ok(())
}

/// The webhook jobs for a host whose failure of a policy fires its automations: the global Fleet webhook
/// when it lists the policy, the policy's team's Fleet webhook when it lists it, and the policy's own
/// webhook — each destination once. Called in the report's transaction with the settings read there, so an
/// edit made through any server applies to the next report on every server.
pub fn failing_policy_jobs(firing: &FiringPolicy<'_>) -> Vec<NewJob> {
    let policy_id = firing.policy_id;
    // Validated on the way in; settings that no longer read send nothing.
    let webhook_of = |settings: Option<&Value>| -> Option<FailingPoliciesWebhook> {
        serde_json::from_value(settings?.get("failing_policies_webhook")?.clone())
            .map_err(|e| tracing::error!(policy_id, error = %e, "unreadable failing-policies webhook settings"))
            .ok()
    };
    let listed = |webhook: Option<FailingPoliciesWebhook>| {
        webhook
            .filter(|w| {
                w.enable_failing_policies_webhook && !w.destination_url.is_empty() && w.policy_ids.contains(&policy_id)
            })
            .map(|w| w.destination_url)
    };
    let mut destinations: Vec<String> = Vec::new();
    let candidates = [
        listed(webhook_of(firing.global_webhook_settings)),
        listed(webhook_of(firing.team_webhook_settings)),
        firing.policy_webhook_url.map(str::to_string),
    ];
    for url in candidates.into_iter().flatten() {
        if !destinations.contains(&url) {
            destinations.push(url);
        }
    }
    let (host_id, now) = (firing.host_id, firing.now);
    destinations
        .into_iter()
        .enumerate()
        .map(|(n, destination_url)| NewJob {
            idempotency_key: format!("{}:{policy_id}:{host_id}:{now}:{n}", JobKind::FailingPolicyWebhook.as_str()),
            payload: JobPayload::FailingPolicyWebhook { policy_id, host_id, failed_at: now, destination_url },
            max_attempts: MAX_ATTEMPTS,
            run_at: now,
        })
        .collect()
}

/// The webhook a started migration sends: Fleet's `{"timestamp", "host": {"id", "uuid", "hardware_serial"}}`.
pub fn migration_job(url: &str, host: &herd_store::HostRecord, now: Millis) -> NewJob {
    NewJob {
        idempotency_key: format!("{}:{}:{now}", JobKind::MigrationWebhook.as_str(), host.id),
        payload: JobPayload::MigrationWebhook {
            destination_url: url.to_string(),
            host_id: host.id,
            body: json!({
                "timestamp": wire::rfc3339(now),
                "host": {"id": host.id, "uuid": host.uuid, "hardware_serial": host.hardware_serial},
            }),
        },
        max_attempts: MAX_ATTEMPTS,
        run_at: now,
    }
}

/// Fleet's payload: `{"timestamp", "policy": {...}, "hosts": [{"id", "hostname", "display_name", "url"}]}`,
/// one host per POST (herd does not wait to batch).
pub async fn failing_policy_body(
    state: &SharedState,
    policy_id: i64,
    host_id: i64,
    failed_at: Millis,
) -> anyhow::Result<Value> {
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

/// The client for outgoing webhooks: the system's roots, plus `extra_ca` when given; every address it connects
/// to passes `policy` (its DNS resolver filters them); no proxy (it would connect on our behalf, unchecked); no
/// redirects (a 3xx is a failed delivery, so a receiver cannot bounce the request to a forbidden address).
pub fn http_client(policy: &OutboundPolicy, extra_ca: Option<&std::path::Path>) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .user_agent(concat!("herd/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(policy.resolver())
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = extra_ca {
        let pem = std::fs::read(path)?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)? {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder.build()?)
}

/// Why a delivery did not succeed.
#[derive(Debug, PartialEq, Eq)]
pub enum DeliveryError {
    /// The outbound policy forbids the destination: recorded as failed at once, never retried (only the
    /// operator's flags or the admin's URL can change that).
    Refused(String),
    /// Anything else (receiver down, slow, answering an error): retried with backoff.
    Failed(String),
}

/// Delivers one job.
pub async fn deliver(state: &SharedState, client: &reqwest::Client, job: &Job) -> Result<(), DeliveryError> {
    let (url, body) = match &job.payload {
        JobPayload::FailingPolicyWebhook { policy_id, host_id, failed_at, destination_url } => {
            let body = failing_policy_body(state, *policy_id, *host_id, *failed_at)
                .await
                .map_err(|e| DeliveryError::Failed(format!("building the payload: {e:#}")))?;
            (destination_url.as_str(), body)
        }
        JobPayload::MigrationWebhook { destination_url, body, .. } => (destination_url.as_str(), body.clone()),
        JobPayload::ProfileReconcile(_) | JobPayload::LabelRefresh { .. } => {
            return Err(DeliveryError::Refused("not a webhook job".into()));
        }
    };
    // Literal addresses never reach the resolver: check them here (the URL may predate the policy).
    state.outbound.check_url(url).map_err(|reason| DeliveryError::Refused(format!("refused: {reason}")))?;
    let response =
        client.post(url).header("Idempotency-Key", &job.idempotency_key).json(&body).send().await.map_err(|e| {
            match crate::outbound::refusal_in(&e) {
                Some(refused) => DeliveryError::Refused(format!("refused: {refused}")),
                None => DeliveryError::Failed(format!("{e}")),
            }
        })?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else if status.is_redirection() {
        Err(DeliveryError::Failed(format!("{url} answered {status} (redirects are not followed)")))
    } else {
        Err(DeliveryError::Failed(format!("{url} answered {status}")))
    }
}

/// Deliveries in flight to one destination (scheme, host and port) from one server: enough to keep up with a
/// burst, few enough not to overwhelm a small receiver.
pub const PER_DESTINATION: usize = 4;
/// Deliveries claimed and not yet finished by one server, over all destinations.
const MAX_IN_FLIGHT: usize = 256;

/// Where a job goes, for the per-destination cap: the URL's origin.
fn destination_of(job: &Job) -> String {
    let url = job.payload.destination_url().unwrap_or_default();
    reqwest::Url::parse(url).map(|u| u.origin().ascii_serialization()).unwrap_or_else(|_| url.to_string())
}

/// This server's deliveries: each claimed job runs as its own task, at most `PER_DESTINATION` at a time per
/// destination, so a receiver that is slow or hangs delays only its own deliveries — not other destinations,
/// and not the next round of claims.
pub struct Deliverer {
    client: reqwest::Client,
    /// Lease owner name: unique per server process.
    owner: String,
    destinations: HashMap<String, Arc<Semaphore>>,
    in_flight: Arc<AtomicUsize>,
}

impl Deliverer {
    pub fn new(owner: String, client: reqwest::Client) -> Self {
        Deliverer { client, owner, destinations: HashMap::new(), in_flight: Arc::default() }
    }

    /// One round: claims what is due (as much as there is room for) and starts delivering it.
    pub async fn start_due(&mut self, state: &SharedState) -> anyhow::Result<()> {
        let room = MAX_IN_FLIGHT.saturating_sub(self.in_flight.load(Ordering::Acquire));
        if room == 0 {
            return Ok(());
        }
        let jobs = state.store.claim_jobs(DELIVERED_KINDS, &self.owner, room as i64, LEASE_MS, now_ms()).await?;
        // Destinations with nothing in flight are forgotten, so the map does not grow without bound.
        self.destinations.retain(|_, gate| gate.available_permits() < PER_DESTINATION);
        for job in jobs {
            let gate = self
                .destinations
                .entry(destination_of(&job))
                .or_insert_with(|| Arc::new(Semaphore::new(PER_DESTINATION)));
            let gate = gate.clone();
            let (state, client, owner, in_flight) =
                (state.clone(), self.client.clone(), self.owner.clone(), self.in_flight.clone());
            in_flight.fetch_add(1, Ordering::AcqRel);
            tokio::spawn(async move {
                if let Ok(_permit) = gate.acquire_owned().await
                    && let Err(e) = deliver_and_record(&state, &client, &owner, job).await
                {
                    tracing::error!(error = %format!("{e:#}"), "recording a webhook delivery");
                }
                in_flight.fetch_sub(1, Ordering::AcqRel);
            });
        }
        Ok(())
    }
}

async fn deliver_and_record(
    state: &SharedState,
    client: &reqwest::Client,
    owner: &str,
    job: Job,
) -> anyhow::Result<()> {
    // It may have waited for its destination: renew the lease, or leave it to whoever holds it now.
    if !state.store.heartbeat_job(job.id, owner, LEASE_MS, now_ms()).await? {
        return Ok(());
    }
    let Some(outcome) =
        crate::workers::with_lease(&state.store, job.id, owner, LEASE_MS, deliver(state, client, &job)).await
    else {
        return Ok(());
    };
    let now = now_ms();
    match outcome {
        Ok(()) => {
            state.store.complete_job(job.id, owner, now).await?;
        }
        Err(DeliveryError::Refused(reason)) => {
            state.store.give_up_job(job.id, owner, &reason, now).await?;
            tracing::warn!(job = job.id, %reason, "webhook delivery refused by the outbound policy");
        }
        Err(DeliveryError::Failed(reason)) => {
            let retry_at = now + herd_core::jobs::retry_delay_ms(job.attempts, job.id);
            let left = state.store.fail_job(job.id, owner, &reason, retry_at, now).await?;
            tracing::warn!(job = job.id, attempts = job.attempts, ?left, %reason, "webhook delivery failed");
        }
    }
    Ok(())
}
