//! Applies what `plan` decides: gathers who is there and which blocking apps run, publishes the notices,
//! tells the server what changed, makes the runs that came due — without the server when it is away.

use super::{Notices, Schedule, USER_PRESENT_QUERIES, Undelivered, blocking_query, local_zone, plan};
use crate::client::CallError;
use crate::host::LocalHost;
use crate::scripts::{Scripts, recheck_query};
use crate::session::Session;
use anyhow::Result;
use herd_proto::agent::{DeferralStatusRequest, DeferralTrigger, PendingScript};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The deferred runs the agent holds, and what it last published for local users.
pub struct Deferrals {
    schedule: Schedule,
    data_dir: PathBuf,
    /// What DATA_DIR/notices.json says now (rewritten only when it changes).
    published: Option<Notices>,
    /// The server no longer knows a deferred run the agent holds: fetch the scripts at the next check-in.
    pub fetch_scripts: bool,
}

fn now_ms() -> herd_core::Millis {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as herd_core::Millis)
}

impl Deferrals {
    pub fn open(data_dir: &Path) -> Result<Deferrals> {
        Ok(Deferrals {
            schedule: Schedule::open(data_dir)?,
            data_dir: data_dir.to_path_buf(),
            published: None,
            fetch_scripts: false,
        })
    }

    /// Takes the server's list of deferred runs (see `Schedule::merge`), on disk before anything depends on it.
    pub fn merge(&mut self, deferred: Vec<PendingScript>) -> Result<()> {
        self.schedule.merge(deferred);
        self.schedule.save()
    }

    /// Looks at every deferred run (see `plan::plan_tick`) and does what the plan says. Returns when to look
    /// again (None: nothing is deferred).
    pub async fn tick(&mut self, session: &Session, host: &LocalHost, scripts: &Scripts) -> Option<Duration> {
        if self.schedule.entries.is_empty() {
            if self.published.as_ref().is_none_or(|n| *n != Notices::default()) {
                self.publish(Notices::default());
            }
            return None;
        }
        let tz = local_zone();
        let mut user = false;
        for sql in USER_PRESENT_QUERIES {
            if host.any_row(sql).await {
                user = true;
                break;
            }
        }
        let mut blocking = Vec::with_capacity(self.schedule.entries.len());
        for entry in &self.schedule.entries {
            let names = match blocking_query(&entry.info.settings.blocking_processes)
                .filter(|_| entry.notice_until.is_none())
            {
                Some(sql) => host.query(sql).await.unwrap_or_default(),
                None => Vec::new(),
            };
            blocking.push(names.into_iter().filter_map(|row| row.get("name").cloned().flatten()).collect());
        }
        let plan = plan::plan_tick(&mut self.schedule.entries, &blocking, now_ms(), tz, user);
        if let Ok(key) = session.key() {
            for report in plan.reports {
                let request = DeferralStatusRequest {
                    node_key: None,
                    execution_id: report.execution_id.clone(),
                    status: report.status,
                    reason: report.reason.clone(),
                    time_zone: Some(tz.name().to_string()),
                };
                match session.client.deferral_status(key, request).await {
                    Ok(Some(state)) => {
                        let id = &report.execution_id;
                        if let Some(entry) = self.schedule.entries.iter_mut().find(|e| e.script.execution_id == *id) {
                            entry.info.state = state;
                            entry.reported = Some(report.said());
                        }
                    }
                    Ok(None) => {
                        // The server no longer defers it (run now, cancelled): the next fetch says what to do.
                        self.schedule.remove(&report.execution_id);
                        self.fetch_scripts = true;
                    }
                    Err(err) => tracing::debug!(%err, "could not report a deferral; said again at the next look"),
                }
            }
        }
        if let Err(err) = self.schedule.save() {
            tracing::error!(error = format!("{err:#}"), "could not save the deferral schedule");
        }
        self.publish(plan.notices);
        for (id, trigger) in plan.due {
            self.run_deferred(session, host, scripts, &id, trigger).await;
        }
        Some(Duration::from_millis(plan::wait_ms(plan.wake, now_ms()) as u64))
    }

    fn publish(&mut self, notices: Notices) {
        if self.published.as_ref() == Some(&notices) {
            return;
        }
        match notices.write(&self.data_dir) {
            Ok(()) => self.published = Some(notices),
            Err(err) => tracing::warn!(error = format!("{err:#}"), "could not publish notices"),
        }
    }

    /// Runs a deferred run that came due — unless the policy passes now (fixed meanwhile, perhaps while the
    /// machine was off): then it is dropped and the passing answer reported, which cancels it on the server.
    /// The server need not be reachable: the result waits in the schedule and the re-check in the spool.
    async fn run_deferred(
        &mut self,
        session: &Session,
        host: &LocalHost,
        scripts: &Scripts,
        execution_id: &str,
        trigger: DeferralTrigger,
    ) {
        let Some(entry) = self.schedule.entries.iter().find(|e| e.script.execution_id == execution_id).cloned() else {
            return;
        };
        let policy = recheck_query(&entry.script);
        if scripts.ledger.get(execution_id).is_none()
            && let Some((_, query)) = &policy
            && host.any_row(query).await
        {
            tracing::info!(execution = execution_id, "the policy passes again: the deferred run is not needed");
            self.drop_deferred(execution_id);
            if let Err(err) = session.recheck(host, policy.into_iter().collect()).await {
                tracing::info!(%err, "the re-check is sent later");
            }
            return;
        }
        let result = match scripts.run_at_most_once(&entry.script).await {
            Ok(result) => result,
            Err(err) => {
                tracing::error!(error = format!("{err:#}"), "could not run a deferred script");
                return;
            }
        };
        self.drop_deferred(execution_id);
        tracing::info!(execution = execution_id, ?trigger, "deferred run made");
        self.schedule.undelivered.push(Undelivered { result, trigger, rechecks_locally: policy.is_some() });
        if let Err(err) = self.schedule.save() {
            tracing::error!(error = format!("{err:#}"), "could not save the deferral schedule");
        }
        if let Err(err) = self.deliver_results(session).await {
            tracing::info!(%err, "the result is sent when the server answers again");
        }
        if let Some(policy) = policy
            && let Err(err) = session.recheck(host, vec![policy]).await
        {
            tracing::info!(%err, "the re-check is sent later");
        }
    }

    /// Sends the results of deferred runs made while the server was away, oldest first.
    pub async fn deliver_results(&mut self, session: &Session) -> Result<(), CallError> {
        while let Some(first) = self.schedule.undelivered.first() {
            let request = first.result.request(first.rechecks_locally, Some(first.trigger));
            match session.client.script_result(session.key()?, request).await {
                Ok(()) => {}
                // The run is no longer the server's (its host was deleted and this one enrolled again): a
                // result it will never take must not hold back the ones behind it.
                Err(CallError::Unknown(reason)) => {
                    tracing::warn!(execution_id = %first.result.execution_id, %reason, "dropping a result the server does not know");
                }
                Err(other) => return Err(other),
            }
            self.schedule.undelivered.remove(0);
            self.schedule.save().map_err(CallError::Failed)?;
        }
        Ok(())
    }

    fn drop_deferred(&mut self, execution_id: &str) {
        self.schedule.remove(execution_id);
        if let Err(err) = self.schedule.save() {
            tracing::error!(error = format!("{err:#}"), "could not save the deferral schedule");
        }
    }
}
