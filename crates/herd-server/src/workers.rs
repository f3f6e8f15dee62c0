//! Background workers: named types, registered in one place ([`spawn_all`]), each reporting its runs and
//! failures to the metrics (`herd_worker_*`).

use crate::state::{SharedState, now_ms};
use herd_core::jobs::{JobKind, JobPayload};
use herd_core::{HOUR_MS, Millis, SECOND_MS};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub trait Worker: Send + 'static {
    const NAME: &'static str;
    fn period(&self) -> Duration;
    fn run(&mut self, state: &SharedState) -> impl std::future::Future<Output = anyhow::Result<()>> + Send;
}

/// Writes last-seen times gathered in memory to the store.
pub struct SeenTimeFlusher;

impl Worker for SeenTimeFlusher {
    const NAME: &'static str = "seen_time_flusher";
    /// Every second: small flushes (15,000 rows at 150,000 hosts checking in every 10 s) rather than large
    /// ones every few seconds — a 75,000-row flush every 5 s showed as a periodic dip in check-in throughput.
    fn period(&self) -> Duration {
        Duration::from_secs(1)
    }
    async fn run(&mut self, state: &SharedState) -> anyhow::Result<()> {
        crate::app::seen::flush(state).await
    }
}

/// How far back each change-feed poll looks, beyond its previous poll: covers PostgreSQL transactions that
/// commit out of order and small clock differences between servers.
const CHANGE_FEED_OVERLAP_MS: Millis = 30 * SECOND_MS;

/// Evicts hosts whose cached check-in state another server (or this one) changed.
#[derive(Default)]
pub struct ChangeFeed {
    last_poll: Option<Millis>,
    /// Changes already acted on, by `seq`, with when they happened (to forget them once out of the window).
    handled: HashMap<i64, Millis>,
}

impl Worker for ChangeFeed {
    const NAME: &'static str = "host_change_feed";
    fn period(&self) -> Duration {
        Duration::from_secs(1)
    }
    async fn run(&mut self, state: &SharedState) -> anyhow::Result<()> {
        let now = now_ms();
        let since = self.last_poll.map_or(now - CHANGE_FEED_OVERLAP_MS, |last| last - CHANGE_FEED_OVERLAP_MS);
        let changes = state.store.changed_hosts_since(since).await?;
        for change in changes {
            if self.handled.insert(change.seq, change.changed_at).is_none() {
                state.hosts.evict(change.host_id);
            }
        }
        self.handled.retain(|_, at| *at >= since);
        self.last_poll = Some(now);
        Ok(())
    }
}

/// Reloads the configuration, team agent options and enroll secrets, so every server converges on them.
pub struct SettingsReloader;

impl Worker for SettingsReloader {
    const NAME: &'static str = "settings_reloader";
    fn period(&self) -> Duration {
        Duration::from_secs(2)
    }
    async fn run(&mut self, state: &SharedState) -> anyhow::Result<()> {
        Ok(state.settings.reload(&state.store).await?)
    }
}

/// Drops expired sessions and change-feed rows no server needs any more.
pub struct Housekeeping;

impl Worker for Housekeeping {
    const NAME: &'static str = "housekeeping";
    fn period(&self) -> Duration {
        Duration::from_secs(600)
    }
    async fn run(&mut self, state: &SharedState) -> anyhow::Result<()> {
        let now = now_ms();
        state.store.prune_expired_sessions(now).await?;
        state.store.prune_host_changes(now - HOUR_MS).await?;
        // Finished jobs stay visible for a week (delivery state), then go.
        state.store.prune_finished_jobs(now - 7 * herd_core::DAY_MS).await?;
        // Answers and counts voided by policy edits and deletions.
        state.store.prune_voided_answers(5_000).await?;
        Ok(())
    }
}

/// Closes the critical windows of migrations that timed out (the host still reports the old system), so those
/// hosts check in normally again.
pub struct MigrationWindows;

impl Worker for MigrationWindows {
    const NAME: &'static str = "migration_windows";
    fn period(&self) -> Duration {
        Duration::from_secs(2)
    }
    async fn run(&mut self, state: &SharedState) -> anyhow::Result<()> {
        for host in state.store.close_expired_migration_windows(crate::state::now_ms()).await? {
            state.hosts.evict(host);
            tracing::info!(host_id = host, "migration timed out");
        }
        Ok(())
    }
}

/// Keeps the daily compliance history (the console's chart): today's pass/fail counts per policy and overall,
/// from the live counts.
pub struct ComplianceRecorder;

impl Worker for ComplianceRecorder {
    const NAME: &'static str = "compliance_recorder";
    fn period(&self) -> Duration {
        Duration::from_secs(60)
    }
    async fn run(&mut self, state: &SharedState) -> anyhow::Result<()> {
        crate::app::compliance::record(state).await
    }
}

/// Turns changes to what hosts should have (profile uploads, edits, deletes, team moves) into install and
/// remove commands: claims `profile_reconcile` jobs from the job table, so a change committed is reconciled
/// even if this server stops (another takes the job when its lease ends).
pub struct ProfileReconciler {
    owner: String,
}

impl ProfileReconciler {
    fn new() -> Self {
        ProfileReconciler { owner: format!("herd-{}-{}", std::process::id(), crate::secrets::random_token(4)) }
    }
}

const RECONCILE_LEASE_MS: Millis = 60 * SECOND_MS;

/// Runs a claimed job's work while renewing its lease every third of it, so work that outlives one lease (a
/// team-wide reconcile, a slow webhook receiver) is not claimed by another server meanwhile. Should a renewal
/// find the lease lost (this server stalled past it and another took the job), the work is dropped — its
/// transaction rolls back — and None is returned: at most one server works on a job at a time.
pub async fn with_lease<T>(
    store: &herd_store::Store,
    job_id: i64,
    owner: &str,
    lease_ms: Millis,
    work: impl std::future::Future<Output = T>,
) -> Option<T> {
    let renew = async {
        let period = Duration::from_millis((lease_ms / 3).max(1) as u64);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        loop {
            ticker.tick().await;
            match store.heartbeat_job(job_id, owner, lease_ms, now_ms()).await {
                Ok(true) => {}
                Ok(false) => return,
                // The lease may still hold: try again at the next tick.
                Err(err) => tracing::warn!(job_id, error = %err, "renewing a job lease"),
            }
        }
    };
    tokio::select! {
        out = work => Some(out),
        () = renew => {
            tracing::warn!(job_id, "job lease lost to another server; its work here is abandoned");
            None
        }
    }
}

impl Worker for ProfileReconciler {
    const NAME: &'static str = "profile_reconciler";
    fn period(&self) -> Duration {
        Duration::from_secs(1)
    }
    async fn run(&mut self, state: &SharedState) -> anyhow::Result<()> {
        let kinds = [JobKind::ProfileReconcile];
        let jobs = state.store.claim_jobs(&kinds, &self.owner, 20, RECONCILE_LEASE_MS, now_ms()).await?;
        for job in jobs {
            let now = now_ms();
            let JobPayload::ProfileReconcile(scope) = &job.payload else {
                state.store.give_up_job(job.id, &self.owner, "not a profile reconcile", now).await?;
                continue;
            };
            let work = state.store.reconcile_profiles(scope, now);
            let Some(outcome) = with_lease(&state.store, job.id, &self.owner, RECONCILE_LEASE_MS, work).await else {
                continue;
            };
            match outcome {
                Ok(queued) => {
                    state.store.complete_job(job.id, &self.owner, now_ms()).await?;
                    if queued > 0 {
                        tracing::info!(job_id = job.id, commands = queued, "profiles reconciled");
                    }
                }
                Err(err) => {
                    let retry_at = now + herd_core::jobs::retry_delay_ms(job.attempts, job.id);
                    state.store.fail_job(job.id, &self.owner, &format!("{err:#}"), retry_at, now).await?;
                }
            }
        }
        Ok(())
    }
}

/// Re-decides every host's labels after a label definition changed (a criteria label created or edited, an
/// input it names deleted, the built-in labels defined): claims `label_refresh` jobs, so the change reaches
/// every host even if this server stops.
pub struct LabelRefresher {
    owner: String,
}

impl LabelRefresher {
    fn new() -> Self {
        LabelRefresher { owner: format!("herd-{}-{}", std::process::id(), crate::secrets::random_token(4)) }
    }
}

impl Worker for LabelRefresher {
    const NAME: &'static str = "label_refresher";
    fn period(&self) -> Duration {
        Duration::from_secs(1)
    }
    async fn run(&mut self, state: &SharedState) -> anyhow::Result<()> {
        let jobs =
            state.store.claim_jobs(&[JobKind::LabelRefresh], &self.owner, 5, RECONCILE_LEASE_MS, now_ms()).await?;
        for job in jobs {
            let now = now_ms();
            let work = state.store.refresh_all_labels(now);
            let Some(outcome) = with_lease(&state.store, job.id, &self.owner, RECONCILE_LEASE_MS, work).await else {
                continue;
            };
            match outcome {
                Ok(changed) => {
                    state.store.complete_job(job.id, &self.owner, now_ms()).await?;
                    if changed > 0 {
                        tracing::info!(job_id = job.id, hosts = changed, "labels refreshed");
                    }
                }
                Err(err) => {
                    let retry_at = now + herd_core::jobs::retry_delay_ms(job.attempts, job.id);
                    state.store.fail_job(job.id, &self.owner, &format!("{err:#}"), retry_at, now).await?;
                }
            }
        }
        Ok(())
    }
}

/// Delivers failing-policy webhooks from the job table.
pub struct WebhookDelivery {
    deliverer: crate::webhooks::Deliverer,
}

impl WebhookDelivery {
    fn new(state: &SharedState) -> Self {
        let owner = format!("herd-{}-{}", std::process::id(), crate::secrets::random_token(4));
        // The CA file was read at start; should it fail now, deliveries go on with the system's roots.
        let client = crate::webhooks::http_client(&state.outbound, state.webhook_ca_cert.as_deref())
            .or_else(|_| crate::webhooks::http_client(&state.outbound, None))
            .expect("an HTTP client with default settings");
        WebhookDelivery { deliverer: crate::webhooks::Deliverer::new(owner, client) }
    }
}

impl Worker for WebhookDelivery {
    const NAME: &'static str = "webhook_delivery";
    fn period(&self) -> Duration {
        Duration::from_secs(1)
    }
    async fn run(&mut self, state: &SharedState) -> anyhow::Result<()> {
        self.deliverer.start_due(state).await
    }
}

fn spawn<W: Worker>(mut worker: W, state: SharedState, mut shutdown: watch::Receiver<bool>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(worker.period());
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.changed() => break,
            }
            let result = worker.run(&state).await;
            if let Err(err) = &result {
                tracing::warn!(worker = W::NAME, error = format!("{err:#}"), "worker run failed");
            }
            state.metrics.worker_ran(W::NAME, result.map_err(|e| format!("{e:#}")));
        }
    })
}

/// Every background worker of the server. Add new workers here.
pub fn spawn_all(state: &SharedState, shutdown: &watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    vec![
        spawn(SeenTimeFlusher, state.clone(), shutdown.clone()),
        spawn(ChangeFeed::default(), state.clone(), shutdown.clone()),
        spawn(SettingsReloader, state.clone(), shutdown.clone()),
        spawn(Housekeeping, state.clone(), shutdown.clone()),
        spawn(WebhookDelivery::new(state), state.clone(), shutdown.clone()),
        spawn(MigrationWindows, state.clone(), shutdown.clone()),
        spawn(ProfileReconciler::new(), state.clone(), shutdown.clone()),
        spawn(LabelRefresher::new(), state.clone(), shutdown.clone()),
        spawn(ComplianceRecorder, state.clone(), shutdown.clone()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh SQLite store holding one job of kind "slow", claimed by owner "a" for `lease_ms`.
    async fn store_with_claimed_job(dir: &tempfile::TempDir, lease_ms: Millis) -> (herd_store::Store, i64) {
        let store = herd_store::Store::open(dir.path().join("herd.db").to_str().unwrap()).await.unwrap();
        let job = herd_store::NewJob {
            idempotency_key: "slow".into(),
            payload: JobPayload::ProfileReconcile(herd_core::jobs::ReconcileScope::Hosts { host_ids: vec![] }),
            max_attempts: 3,
            run_at: 0,
        };
        store.enqueue_job(&job, now_ms()).await.unwrap();
        let claimed = store.claim_jobs(&[JobKind::ProfileReconcile], "a", 1, lease_ms, now_ms()).await.unwrap();
        assert_eq!(claimed.len(), 1);
        (store, claimed[0].id)
    }

    /// Work that outlives several leases keeps its job: nobody else can claim it meanwhile, and it completes.
    #[tokio::test]
    async fn leases_are_renewed_while_the_work_runs() {
        const LEASE_MS: Millis = 1_500;
        let dir = tempfile::tempdir().unwrap();
        let (store, job) = store_with_claimed_job(&dir, LEASE_MS).await;
        let started = now_ms();
        // The work: another server tries to claim the job, every 10 ms, until three leases have passed.
        let rival = async {
            let mut taken = 0;
            while now_ms() < started + 3 * LEASE_MS {
                taken +=
                    store.claim_jobs(&[JobKind::ProfileReconcile], "b", 1, LEASE_MS, now_ms()).await.unwrap().len();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            taken
        };
        let taken = with_lease(&store, job, "a", LEASE_MS, rival).await;
        assert_eq!(taken, Some(0), "the job was never claimable while its lease was renewed");
        assert!(store.complete_job(job, "a", now_ms()).await.unwrap());
    }

    /// A lease lost while the work runs (another owner took the job) ends the work here.
    #[tokio::test]
    async fn work_stops_when_its_lease_is_lost() {
        let dir = tempfile::tempdir().unwrap();
        let (store, job) = store_with_claimed_job(&dir, 60_000).await;
        // Another owner holds it now (as after a stall past the lease).
        store.fail_job(job, "a", "simulated stall", 0, now_ms()).await.unwrap();
        assert_eq!(store.claim_jobs(&[JobKind::ProfileReconcile], "b", 1, 60_000, now_ms()).await.unwrap().len(), 1);
        let forever = std::future::pending::<()>();
        assert_eq!(with_lease(&store, job, "a", 30, forever).await, None);
    }
}
