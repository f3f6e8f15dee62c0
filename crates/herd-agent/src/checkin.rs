//! One check-in and the config it follows: enroll when needed, refresh the config every minute, keep the
//! device token, deliver what waits, read the work, run queued scripts and profile commands, report. The
//! features do their part; this module composes them. The loop around it is `run`.

use crate::cli::RunOptions;
use crate::client::{CallError, OsqueryClient};
use crate::deferrals::Deferrals;
use crate::device_token::DeviceToken;
use crate::host::LocalHost;
use crate::profiles::Profiles;
use crate::scripts::{Ledger, Scripts, plan_fetched};
use crate::session::Session;
use anyhow::{Context, Result};
use herd_osquery::Engine;
use herd_proto::agent::PendingScriptsRequest;
use herd_proto::osquery::{ConfigOptions, DistributedWriteRequest, EnrollRequest};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// Check-in interval until the server's config says otherwise (Fleet's default).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Polling while the server asks to accelerate.
const ACCELERATED_INTERVAL: Duration = Duration::from_secs(5);
const CONFIG_REFRESH: Duration = Duration::from_secs(60);

/// The check-in interval the config asks for.
pub fn interval_of(options: &ConfigOptions) -> Duration {
    options.distributed_interval.filter(|s| *s > 0).map_or(DEFAULT_INTERVAL, Duration::from_secs)
}

/// The wait after a successful check-in: faster while the server asked to accelerate.
pub fn next_wait(interval: Duration, accelerate_until: Option<Instant>, now: Instant) -> Duration {
    match accelerate_until {
        Some(until) if now < until => ACCELERATED_INTERVAL.min(interval),
        _ => interval,
    }
}

/// Whether a report answers some policy with "fail" (the query ran and returned no row).
pub fn reports_a_failing_policy(report: &DistributedWriteRequest) -> bool {
    report.queries.iter().any(|(name, rows)| {
        name.starts_with(herd_core::policy::QUERY_PREFIX) && rows.is_empty() && report.statuses.get(name) == Some(&0)
    })
}

pub struct Agent {
    pub session: Session,
    pub host: LocalHost,
    pub scripts: Scripts,
    pub deferrals: Deferrals,
    token: DeviceToken,
    /// Configuration profiles (None: not enabled on this host).
    profiles: Option<Profiles>,
    /// Ask for profile commands at the next check-in (at start: tells the server profiles are applied here).
    fetch_profiles: bool,
    enroll_secret_file: PathBuf,
    host_identifier: String,
    interval: Duration,
    accelerate_until: Option<Instant>,
    next_config: Instant,
}

impl Agent {
    pub fn open(options: &RunOptions) -> Result<Agent> {
        let data_dir = &options.data_dir;
        std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        {
            use std::os::unix::fs::PermissionsExt;
            // The identifier file inside must be readable by local users; everything else is private.
            std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o755))?;
        }
        crate::desktop::publish_connection(data_dir, &options.server, options.ca_cert.as_deref())?;
        let flags = herd_osquery::tables::default_flags();
        flags
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert("distributed_interval".into(), DEFAULT_INTERVAL.as_secs().to_string());
        let roots = crate::profiles::Roots {
            sysctl_conf_dir: options.sysctl_dir.clone(),
            proc_sys: options.proc_sys_dir.clone(),
        };
        // Fleet's orbit_info answers with this agent's own facts, so Fleet's queries about the agent run.
        let facts = herd_osquery::tables::SharedFacts::default();
        let scripts_enabled = if options.enable_scripts { "1" } else { "0" };
        facts.write().unwrap_or_else(|e| e.into_inner()).insert("scripts_enabled".into(), scripts_enabled.into());
        let mut tables = herd_osquery::tables::all_with_facts(flags.clone(), facts.clone());
        tables.push(Arc::new(crate::profiles::HerdProfilesTable { data_dir: data_dir.clone(), roots: roots.clone() }));
        let profiles = if options.enable_profiles { Some(Profiles::open(data_dir, roots)?) } else { None };
        Ok(Agent {
            session: Session::open(
                OsqueryClient::new(&options.server, options.ca_cert.as_deref())?,
                data_dir,
                facts.clone(),
            )?,
            host: LocalHost::new(Engine::with_tables(tables)?, flags),
            scripts: Scripts {
                ledger: Ledger::open(&data_dir.join("scripts"))?,
                enabled: options.enable_scripts,
                timeout: Duration::from_secs(options.script_timeout.max(1)),
            },
            deferrals: Deferrals::open(data_dir)?,
            token: DeviceToken::new(data_dir, options.orbit_identifier.0.iter().cloned().collect(), facts),
            fetch_profiles: profiles.is_some(),
            profiles,
            enroll_secret_file: options.enroll_secret_file.clone(),
            host_identifier: options.host_identifier.clone().unwrap_or_else(crate::host::default_identifier),
            interval: DEFAULT_INTERVAL,
            accelerate_until: None,
            next_config: Instant::now(),
        })
    }

    pub fn next_wait(&self) -> Duration {
        next_wait(self.interval, self.accelerate_until, Instant::now())
    }

    /// Deferred runs keep their times whether or not the server answers. Returns when to look again.
    pub async fn tick_deferrals(&mut self) -> Option<Duration> {
        self.deferrals.tick(&self.session, &self.host, &self.scripts).await
    }

    async fn enroll(&mut self) -> Result<(), CallError> {
        let secret = std::fs::read_to_string(&self.enroll_secret_file)
            .map_err(|e| CallError::Failed(anyhow::anyhow!("reading {}: {e}", self.enroll_secret_file.display())))?;
        let mut host_details = BTreeMap::new();
        for table in ["os_version", "osquery_info", "system_info", "platform_info"] {
            host_details.insert(table.to_string(), self.host.detail(table).await);
        }
        let request = EnrollRequest {
            enroll_secret: secret.trim().to_string(),
            host_identifier: self.host_identifier.clone(),
            platform_type: Some("9".into()),
            host_details,
        };
        let node_key = self.session.client.enroll(&request).await?;
        self.session.enrolled_as(node_key).map_err(CallError::Failed)?;
        tracing::info!("enrolled");
        self.token.forget();
        Ok(())
    }

    async fn refresh_config(&mut self) -> Result<(), CallError> {
        let options = self.session.client.config(self.session.key()?).await?;
        self.interval = interval_of(&options);
        let mut flags = self.host.flags.write().unwrap_or_else(|e| e.into_inner());
        flags.insert("distributed_interval".into(), self.interval.as_secs().to_string());
        flags.insert("config_tls_refresh".into(), CONFIG_REFRESH.as_secs().to_string());
        if let Some(period) = options.logger_tls_period {
            flags.insert("logger_tls_period".into(), period.to_string());
        }
        self.next_config = Instant::now() + CONFIG_REFRESH;
        Ok(())
    }

    /// One check-in. Err means: wait (backoff) and try again.
    pub async fn check_in(&mut self) -> Result<(), CallError> {
        if !self.session.enrolled() {
            self.enroll().await?;
        }
        if Instant::now() >= self.next_config {
            self.refresh_config().await?;
        }
        if let Err(err) = self.token.keep_fresh(&self.session).await {
            // The device token is a convenience for local users: check-ins go on without it.
            if matches!(err, CallError::NodeInvalid) {
                return Err(err);
            }
            tracing::warn!(%err, "could not register the device token");
        }
        // A deferred run's result before the reports that re-checked its policy.
        self.deferrals.deliver_results(&self.session).await?;
        self.session.flush().await?;
        let work = self.session.client.read(self.session.key()?).await?;
        if let Some(seconds) = work.accelerate {
            self.accelerate_until = Some(Instant::now() + Duration::from_secs(seconds.into()));
        }
        if work.herd_pending_scripts || std::mem::take(&mut self.deferrals.fetch_scripts) {
            self.run_pending_scripts().await?;
        }
        if self.profiles.is_some() && (work.herd_pending_profiles || self.fetch_profiles) {
            self.apply_profile_commands().await?;
            self.fetch_profiles = false;
        }
        if work.queries.is_empty() {
            return Ok(());
        }
        let report = self.host.execute(&work).await;
        let failing = reports_a_failing_policy(&report);
        self.session.report(report).await?;
        // A failing policy may have queued its remediation just now: ask at once rather than at the next
        // check-in, so detection, fix and re-check happen in one round.
        if self.scripts.enabled && failing {
            self.run_pending_scripts().await?;
        }
        Ok(())
    }

    /// Applies the server's profile commands in order and answers each (acknowledged, or the error).
    async fn apply_profile_commands(&mut self) -> Result<(), CallError> {
        let commands = self.session.client.profile_commands(self.session.key()?).await?;
        let Some(profiles) = self.profiles.as_mut() else { return Ok(()) };
        if commands.is_empty() {
            return Ok(());
        }
        let results = profiles.apply_commands(commands, unix_seconds());
        self.session.client.profile_results(self.session.key()?, results).await
    }

    /// Runs the queued scripts one at a time, in order, each at most once (see `scripts::Ledger`); deferred
    /// runs go to the schedule instead. The policies they remediate are re-checked after the last of them.
    async fn run_pending_scripts(&mut self) -> Result<(), CallError> {
        // This agent keeps deferred runs itself and asks its user (see `crate::deferrals`).
        let request = PendingScriptsRequest { node_key: None, scripts_enabled: self.scripts.enabled, deferrals: true };
        let fetched = self.session.client.pending_scripts(self.session.key()?, request).await?;
        let plan = plan_fetched(fetched, |id| self.scripts.ledger.get(id).is_some());
        self.deferrals.merge(plan.deferred).map_err(CallError::Failed)?;
        for script in plan.run {
            let result = self.scripts.run_at_most_once(&script).await.map_err(CallError::Failed)?;
            let rechecks_locally = script.policy_id.is_some() && script.policy_query.is_some();
            self.session.client.script_result(self.session.key()?, result.request(rechecks_locally, None)).await?;
        }
        self.scripts.ledger.prune();
        if !plan.recheck.is_empty() {
            self.session.recheck(&self.host, plan.recheck).await?;
        }
        Ok(())
    }
}

fn unix_seconds() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_proto::osquery::Row;

    #[test]
    fn wait_table() {
        let now = Instant::now();
        let s = Duration::from_secs;
        let cases = [
            ("no acceleration", s(10), None, s(10)),
            ("accelerating", s(10), Some(now + s(60)), s(5)),
            ("accelerating, already faster", s(2), Some(now + s(60)), s(2)),
            ("acceleration over", s(10), Some(now - s(1)), s(10)),
        ];
        for (what, interval, until, want) in cases {
            assert_eq!(next_wait(interval, until, now), want, "{what}");
        }
        let options = |seconds| ConfigOptions { distributed_interval: seconds, logger_tls_period: None };
        assert_eq!(interval_of(&options(Some(30))), s(30));
        assert_eq!(interval_of(&options(Some(0))), DEFAULT_INTERVAL, "0 is no interval");
        assert_eq!(interval_of(&options(None)), DEFAULT_INTERVAL);
    }

    #[test]
    fn failing_policy_table() {
        let policy = herd_core::policy::query_name(1, 1);
        let report = |name: &str, rows: Vec<Row>, status: i64| {
            let mut report = DistributedWriteRequest::default();
            report.queries.insert(name.to_string(), rows);
            report.statuses.insert(name.to_string(), status);
            report
        };
        let row = || vec![Row::from([("1".to_string(), "1".to_string())])];
        let cases = [
            ("a policy with no row: fails", report(&policy, vec![], 0), true),
            ("a policy with a row: passes", report(&policy, row(), 0), false),
            ("a policy whose query failed: no answer", report(&policy, vec![], 1), false),
            ("not a policy", report("fleet_detail_query_os_version", vec![], 0), false),
        ];
        for (what, report, want) in cases {
            assert_eq!(reports_a_failing_policy(&report), want, "{what}");
        }
    }
}
