//! `herd-agent run`: enroll, then check in forever — run what the server hands out, report it durably,
//! follow the server's config, keep the device token fresh.

use crate::cli::RunOptions;
use crate::client::{CallError, OsqueryClient};
use crate::spool::Spool;
use anyhow::{Context, Result};
use herd_osquery::tables::SharedFlags;
use herd_osquery::{Engine, Limits};
use herd_proto::osquery::{DistributedReadResponse, EnrollRequest};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Check-in interval until the server's config says otherwise (Fleet's default).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Polling while the server asks to accelerate.
const ACCELERATED_INTERVAL: Duration = Duration::from_secs(5);
const CONFIG_REFRESH: Duration = Duration::from_secs(60);
const DEVICE_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Longest wait between attempts while the server is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

struct Agent {
    client: OsqueryClient,
    engine: Arc<Mutex<Engine>>,
    flags: SharedFlags,
    spool: Spool,
    data_dir: PathBuf,
    enroll_secret_file: PathBuf,
    host_identifier: String,
    node_key: Option<String>,
    interval: Duration,
    accelerate_until: Option<Instant>,
    next_config: Instant,
    device_token: Option<(String, Instant)>,
    enable_scripts: bool,
    script_timeout: Duration,
    ledger: crate::scripts::Ledger,
    /// Deferred runs, on disk (see `crate::deferrals`).
    schedule: crate::deferrals::Schedule,
    /// What DATA_DIR/notices.json says now (rewritten only when it changes).
    notices: Option<crate::deferrals::Notices>,
    /// The server no longer knows a deferred run the agent holds: fetch the scripts at the next check-in.
    fetch_scripts: bool,
    /// Configuration profiles (None: not enabled on this host).
    profiles: Option<crate::profiles::Profiles>,
    /// Ask for profile commands at the next check-in (at start: tells the server profiles are applied here).
    fetch_profiles: bool,
}

/// Longest wait between looks at the deferred runs (blocking apps close, users log in).
const DEFERRAL_LOOK: Duration = Duration::from_secs(30);

fn now_ms() -> herd_core::Millis {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as herd_core::Millis)
}

fn default_identifier() -> String {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    read("/sys/class/dmi/id/product_uuid")
        .or_else(|| read("/etc/machine-id"))
        .or_else(hostname)
        .unwrap_or_else(|| "unknown-host".into())
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl Agent {
    async fn query(&self, sql: String) -> Result<Vec<BTreeMap<String, Option<String>>>, String> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || {
            let engine = engine.lock().unwrap_or_else(|e| e.into_inner());
            engine.query(&sql, Limits::default()).map(|out| out.records()).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("query task failed: {e}")))
    }

    /// The first row of a table as osquery sends it in host_details (every value a string).
    async fn detail(&self, table: &str) -> BTreeMap<String, String> {
        match self.query(format!("SELECT * FROM {table}")).await {
            Ok(rows) => rows
                .into_iter()
                .next()
                .map(|row| row.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect())
                .unwrap_or_default(),
            Err(err) => {
                tracing::warn!(table, %err, "could not read host detail");
                BTreeMap::new()
            }
        }
    }

    async fn enroll(&mut self) -> Result<(), CallError> {
        let secret = std::fs::read_to_string(&self.enroll_secret_file)
            .map_err(|e| CallError::Failed(anyhow::anyhow!("reading {}: {e}", self.enroll_secret_file.display())))?;
        let mut host_details = BTreeMap::new();
        for table in ["os_version", "osquery_info", "system_info", "platform_info"] {
            host_details.insert(table.to_string(), self.detail(table).await);
        }
        let request = EnrollRequest {
            enroll_secret: secret.trim().to_string(),
            host_identifier: self.host_identifier.clone(),
            platform_type: Some("9".into()),
            host_details,
        };
        let node_key = self.client.enroll(&request).await?;
        crate::durable::write_atomically(&self.data_dir.join("node_key"), node_key.as_bytes(), 0o600, None)
            .map_err(CallError::Failed)?;
        tracing::info!("enrolled");
        self.node_key = Some(node_key);
        self.device_token = None;
        Ok(())
    }

    fn key(&self) -> Result<&str, CallError> {
        self.node_key.as_deref().ok_or(CallError::NodeInvalid)
    }

    async fn refresh_config(&mut self) -> Result<(), CallError> {
        let config = self.client.config(self.key()?).await?;
        let options = config.get("options").cloned().unwrap_or(Value::Null);
        let seconds = options.get("distributed_interval").and_then(Value::as_u64).filter(|s| *s > 0);
        self.interval = seconds.map_or(DEFAULT_INTERVAL, Duration::from_secs);
        let mut flags = self.flags.write().unwrap_or_else(|e| e.into_inner());
        flags.insert("distributed_interval".into(), self.interval.as_secs().to_string());
        flags.insert("config_tls_refresh".into(), CONFIG_REFRESH.as_secs().to_string());
        if let Some(period) = options.get("logger_tls_period").and_then(Value::as_u64) {
            flags.insert("logger_tls_period".into(), period.to_string());
        }
        self.next_config = Instant::now() + CONFIG_REFRESH;
        Ok(())
    }

    /// Registers a new device token (or re-registers the current one after a restart) and publishes it in
    /// DATA_DIR/identifier for local users (scripts, the desktop) to present to the server.
    async fn keep_device_token(&mut self) -> Result<(), CallError> {
        if self.device_token.as_ref().is_some_and(|(_, at)| at.elapsed() < DEVICE_TOKEN_LIFETIME) {
            return Ok(());
        }
        let path = self.data_dir.join("identifier");
        let reusable = self.device_token.is_none()
            && std::fs::metadata(&path)
                .and_then(|m| m.modified())
                .is_ok_and(|t| SystemTime::now().duration_since(t).unwrap_or(Duration::MAX) < DEVICE_TOKEN_LIFETIME);
        let token = match reusable.then(|| std::fs::read_to_string(&path).ok()).flatten() {
            Some(existing) if existing.trim().len() >= 32 => existing.trim().to_string(),
            _ => {
                let mut bytes = [0u8; 32];
                getrandom::fill(&mut bytes).map_err(|e| CallError::Failed(anyhow::anyhow!("random source: {e}")))?;
                hex::encode(bytes)
            }
        };
        // Register first: the file never holds a token the server does not know.
        self.client.register_device_token(self.key()?, &token).await?;
        crate::durable::write_atomically(&path, token.as_bytes(), 0o644, None).map_err(CallError::Failed)?;
        self.device_token = Some((token, Instant::now()));
        Ok(())
    }

    /// Sends every pending report, oldest first. Stops at the first failure (kept for the next attempt).
    async fn flush(&mut self) -> Result<(), CallError> {
        for path in self.spool.pending().map_err(CallError::Failed)? {
            let report = Spool::load(&path).map_err(CallError::Failed)?;
            self.client.write(self.key()?, &report).await?;
            Spool::remove(&path).map_err(CallError::Failed)?;
        }
        Ok(())
    }

    /// Runs what a distributed/read handed out and builds the write body (without node key). A query with a
    /// discovery query runs only when its discovery returns a row.
    async fn execute(&self, work: &DistributedReadResponse) -> Value {
        let mut queries = Map::new();
        let mut statuses = Map::new();
        let mut messages = Map::new();
        for (name, sql) in &work.queries {
            if let Some(discovery) = work.discovery.get(name) {
                match self.query(discovery.clone()).await {
                    Ok(rows) if !rows.is_empty() => {}
                    _ => continue,
                }
            }
            match self.query(sql.clone()).await {
                Ok(rows) => {
                    let rows: Vec<Value> = rows
                        .into_iter()
                        .map(|row| {
                            Value::Object(
                                row.into_iter().map(|(k, v)| (k, Value::String(v.unwrap_or_default()))).collect(),
                            )
                        })
                        .collect();
                    queries.insert(name.clone(), Value::Array(rows));
                    statuses.insert(name.clone(), json!(0));
                }
                Err(err) => {
                    queries.insert(name.clone(), json!([]));
                    statuses.insert(name.clone(), json!(1));
                    messages.insert(name.clone(), Value::String(err));
                }
            }
        }
        json!({"queries": queries, "statuses": statuses, "messages": messages, "stats": {}})
    }

    /// One check-in. Err means: wait (backoff) and try again.
    async fn check_in(&mut self) -> Result<(), CallError> {
        if self.node_key.is_none() {
            self.enroll().await?;
        }
        if Instant::now() >= self.next_config {
            self.refresh_config().await?;
        }
        if let Err(err) = self.keep_device_token().await {
            // The device token is a convenience for local users: check-ins go on without it.
            if matches!(err, CallError::NodeInvalid) {
                return Err(err);
            }
            tracing::warn!(%err, "could not register the device token");
        }
        // A deferred run's result before the reports that re-checked its policy.
        self.deliver_results().await?;
        self.flush().await?;
        let work = self.client.read(self.key()?).await?;
        if let Some(seconds) = work.accelerate {
            self.accelerate_until = Some(Instant::now() + Duration::from_secs(seconds.into()));
        }
        if work.herd_pending_scripts || std::mem::take(&mut self.fetch_scripts) {
            self.run_pending_scripts().await?;
        }
        if self.profiles.is_some() && (work.herd_pending_profiles || self.fetch_profiles) {
            self.apply_profile_commands().await?;
            self.fetch_profiles = false;
        }
        if work.queries.is_empty() {
            return Ok(());
        }
        let report = self.execute(&work).await;
        // On disk before it is sent: if the server or this process goes away now, it is sent later.
        let path = self.spool.push(&report).map_err(CallError::Failed)?;
        self.client.write(self.key()?, &report).await?;
        Spool::remove(&path).map_err(CallError::Failed)?;
        // A failing policy may have queued its remediation just now: ask at once rather than at the next
        // check-in, so detection, fix and re-check happen in one round.
        if self.enable_scripts && reports_a_failing_policy(&report) {
            self.run_pending_scripts().await?;
        }
        Ok(())
    }

    /// Applies the server's profile commands in order and answers each (acknowledged, or the error).
    async fn apply_profile_commands(&mut self) -> Result<(), CallError> {
        let commands = self.client.profile_commands(self.key()?).await?;
        if commands.is_empty() {
            return Ok(());
        }
        let Some(profiles) = self.profiles.as_mut() else { return Ok(()) };
        let now_s = now_ms() / 1000;
        let mut results = Vec::with_capacity(commands.len());
        for command in commands {
            let outcome = match command.operation.as_str() {
                "install" => {
                    match command.profile.map(serde_json::from_value::<herd_core::profiles::ProfileDocument>) {
                        Some(Ok(document)) => profiles.install(document, now_s),
                        Some(Err(err)) => Err(format!("unreadable profile: {err}")),
                        None => Err("the install command has no profile".to_string()),
                    }
                }
                "remove" => profiles.remove(&command.identifier),
                other => Err(format!("unknown operation {other:?}")),
            };
            match &outcome {
                Ok(()) => {
                    tracing::info!(profile = %command.identifier, operation = %command.operation, "profile applied")
                }
                Err(err) => {
                    tracing::warn!(profile = %command.identifier, operation = %command.operation, %err, "profile not applied")
                }
            }
            results.push((command.command_uuid, outcome.err()));
        }
        self.client.profile_results(self.key()?, &results).await
    }

    /// Runs the queued scripts one at a time, in order, each at most once (see `scripts::Ledger`). Deferred
    /// runs go to the schedule instead (see `tick_deferrals`).
    async fn run_pending_scripts(&mut self) -> Result<(), CallError> {
        let fetched = self.client.pending_scripts(self.key()?, self.enable_scripts).await?;
        // A deferred run that already ran (its result not yet delivered) is answered from the ledger.
        let (deferred, pending): (Vec<_>, Vec<_>) =
            fetched.into_iter().partition(|s| s.deferral.is_some() && self.ledger.get(&s.execution_id).is_none());
        self.schedule.merge(deferred);
        self.schedule.save().map_err(CallError::Failed)?;
        // The policies these runs remediate, re-checked once, after the last of them.
        let mut recheck: Vec<(String, String)> = Vec::new();
        for script in &pending {
            if let Some((name, query)) = script.recheck_query()
                && !recheck.iter().any(|(known, _)| *known == name)
            {
                recheck.push((name, query));
            }
        }
        for script in pending {
            let result = self.run_at_most_once(&script).await?;
            let rechecks_locally = script.policy_id.is_some() && script.policy_query.is_some();
            self.client.script_result(self.key()?, &result, rechecks_locally, None).await?;
        }
        self.ledger.prune();
        if !recheck.is_empty() {
            self.send_recheck(recheck).await?;
        }
        Ok(())
    }

    /// Runs a script unless the ledger says it ran (or began) before; the result either way.
    async fn run_at_most_once(
        &self,
        script: &crate::scripts::PendingScript,
    ) -> Result<crate::scripts::ScriptResult, CallError> {
        use crate::scripts::{LedgerEntry, ScriptResult, run_script};
        Ok(match self.ledger.get(&script.execution_id) {
            // Ran before, but the server never got the result: send it again, do not run again.
            Some(LedgerEntry::Finished(result)) => result,
            // The agent stopped during the run: its outcome is unknown, and it must not run twice.
            Some(LedgerEntry::Started) => ScriptResult {
                execution_id: script.execution_id.clone(),
                exit_code: None,
                output: "the agent stopped while the script was running; not run again".into(),
                runtime_ms: 0,
            },
            None => {
                self.ledger.put(&script.execution_id, &LedgerEntry::Started).map_err(CallError::Failed)?;
                let limit =
                    script.timeout_s.map_or(self.script_timeout, |s| self.script_timeout.min(Duration::from_secs(s)));
                let result = run_script(script, limit).await;
                self.ledger
                    .put(&script.execution_id, &LedgerEntry::Finished(result.clone()))
                    .map_err(CallError::Failed)?;
                tracing::info!(execution = %script.execution_id, exit_code = ?result.exit_code, "script ran");
                result
            }
        })
    }

    /// Runs these policies now and reports them as the agent's own re-check (on disk first: a report the
    /// server does not take now is sent with the next check-in).
    /// `policies`: (query name, SQL).
    async fn send_recheck(&mut self, policies: Vec<(String, String)>) -> Result<(), CallError> {
        let work = DistributedReadResponse { queries: policies.into_iter().collect(), ..Default::default() };
        let mut report = self.execute(&work).await;
        report["herd_recheck"] = json!(true);
        let path = self.spool.push(&report).map_err(CallError::Failed)?;
        self.client.write(self.key()?, &report).await?;
        Spool::remove(&path).map_err(CallError::Failed)?;
        Ok(())
    }

    /// Whether someone can be asked (see `deferrals::USER_PRESENT_QUERIES`).
    async fn user_present(&self) -> bool {
        for sql in crate::deferrals::USER_PRESENT_QUERIES {
            if self.query(sql.to_string()).await.is_ok_and(|rows| !rows.is_empty()) {
                return true;
            }
        }
        false
    }

    /// Looks at every deferred run: prompts (published for the desktop, reported to the server), waits
    /// quietly while a blocking app runs or nobody is there, reminds before a scheduled run, gives notice at
    /// the deadline, and runs what is due — without the server when it is away. Returns when to look again.
    async fn tick_deferrals(&mut self) -> Option<Duration> {
        use crate::deferrals::{Notice, NoticeChoice, Notices, blocking_query, local_zone, notice};
        use herd_core::deferral::{Decision, HostNow, local_time};
        if self.schedule.entries.is_empty() {
            if self.notices.as_ref().is_none_or(|n| *n != Notices::default()) {
                self.publish(Notices::default());
            }
            return None;
        }
        let now = now_ms();
        let tz = local_zone();
        let user = self.user_present().await;
        let mut notices = Notices::default();
        let mut wake = now + DEFERRAL_LOOK.as_millis() as herd_core::Millis;
        let mut due: Vec<(String, &'static str)> = Vec::new();
        let mut reports: Vec<(String, &'static str, Option<String>)> = Vec::new();
        let mut entries = std::mem::take(&mut self.schedule.entries);
        for entry in &mut entries {
            let id = entry.script.execution_id.clone();
            let Ok(rules) = entry.info.settings.rules() else {
                // Unreadable rules cannot hold a fix back.
                due.push((id, "no_user"));
                continue;
            };
            let state = entry.info.state.core();
            let deadline = rules.deadline(&state, now);
            let notice_ms = entry.info.settings.notice_ms();
            if let Some(until) = entry.notice_until {
                if now >= until {
                    due.push((id, "deadline"));
                } else {
                    wake = wake.min(until);
                    notices.deadline_notices.push(notice(entry, deadline, tz, Some(until)));
                }
                continue;
            }
            let blocking = match blocking_query(&entry.info.settings.blocking_processes) {
                Some(sql) => self.query(sql).await.unwrap_or_default(),
                None => Vec::new(),
            };
            let blocking: Vec<String> =
                blocking.into_iter().filter_map(|row| row.get("name").cloned().flatten()).collect();
            let host = HostNow { now, tz, user_logged_in: user, blocking_process_running: !blocking.is_empty() };
            match rules.decide(&state, &host) {
                Decision::Run => due.push((id, if state.scheduled_at.is_some() { "scheduled" } else { "no_user" })),
                Decision::RunAfterNotice => {
                    let until = now + notice_ms;
                    entry.notice_until = Some(until);
                    if notice_ms == 0 {
                        due.push((id, "deadline"));
                    } else {
                        wake = wake.min(until);
                        notices.deadline_notices.push(notice(entry, deadline, tz, Some(until)));
                        let reason = format!("the deadline has come: the fix runs at {}", local_time(until, tz));
                        reports.push((id, "waiting", Some(reason)));
                    }
                }
                Decision::Prompt { offered, deadline } => {
                    if entry.reported.as_deref() != Some("prompting") {
                        reports.push((id, "prompting", None));
                    }
                    let mut prompt: Notice = notice(entry, deadline, tz, None);
                    prompt.choices.push(NoticeChoice { choice: "now".into(), label: "Run now".into() });
                    for (option, _) in offered {
                        let text = entry
                            .info
                            .settings
                            .options
                            .iter()
                            .find(|t| herd_core::deferral::DeferOption::parse(t).ok() == Some(option));
                        if let Some(text) = text {
                            prompt.choices.push(NoticeChoice { choice: text.clone(), label: option.label() });
                        }
                    }
                    notices.prompts.push(prompt);
                    if let Some(deadline) = deadline {
                        wake = wake.min(deadline);
                    }
                }
                Decision::Later => match state.scheduled_at {
                    Some(at) => {
                        let remind_at = at - notice_ms;
                        if now >= remind_at {
                            notices.reminders.push(notice(entry, deadline, tz, Some(at)));
                            entry.reminded_for = Some(at);
                        } else {
                            wake = wake.min(remind_at);
                        }
                        wake = wake.min(at);
                    }
                    None => {
                        let reason = if !user {
                            "nobody is logged in".to_string()
                        } else {
                            format!("waiting for {} to close", blocking.join(", "))
                        };
                        if entry.reported.as_deref() != Some(reason.as_str()) {
                            reports.push((id, "waiting", Some(reason)));
                        }
                        if let Some(deadline) = deadline {
                            wake = wake.min(deadline);
                        }
                    }
                },
            }
        }
        self.schedule.entries = entries;
        if let Ok(key) = self.key().map(str::to_string) {
            for (id, status, reason) in reports {
                match self.client.deferral_status(&key, &id, status, reason.as_deref(), tz.name()).await {
                    Ok(Some(state)) => {
                        if let Some(entry) = self.schedule.entries.iter_mut().find(|e| e.script.execution_id == id) {
                            entry.info.state = state;
                            entry.reported = Some(reason.unwrap_or_else(|| status.to_string()));
                        }
                    }
                    Ok(None) => {
                        // The server no longer defers it (run now, cancelled): the next fetch says what to do.
                        self.schedule.remove(&id);
                        self.fetch_scripts = true;
                    }
                    Err(err) => tracing::debug!(%err, "could not report a deferral; said again at the next look"),
                }
            }
        }
        if let Err(err) = self.schedule.save() {
            tracing::error!(error = format!("{err:#}"), "could not save the deferral schedule");
        }
        self.publish(notices);
        for (id, trigger) in due {
            self.run_deferred(&id, trigger).await;
        }
        let left = (wake - now_ms()).clamp(200, DEFERRAL_LOOK.as_millis() as herd_core::Millis);
        Some(Duration::from_millis(left as u64))
    }

    fn publish(&mut self, notices: crate::deferrals::Notices) {
        if self.notices.as_ref() == Some(&notices) {
            return;
        }
        match notices.write(&self.data_dir) {
            Ok(()) => self.notices = Some(notices),
            Err(err) => tracing::warn!(error = format!("{err:#}"), "could not publish notices"),
        }
    }

    /// Runs a deferred run that came due — unless the policy passes now (fixed meanwhile, perhaps while the
    /// machine was off): then it is dropped and the passing answer reported, which cancels it on the server.
    /// The server need not be reachable: the result waits in the ledger and the re-check in the spool.
    async fn run_deferred(&mut self, execution_id: &str, trigger: &'static str) {
        let Some(entry) = self.schedule.entries.iter().find(|e| e.script.execution_id == execution_id).cloned() else {
            return;
        };
        let policy = entry.script.recheck_query();
        if self.ledger.get(execution_id).is_none()
            && let Some((_, query)) = &policy
            && self.query(query.clone()).await.is_ok_and(|rows| !rows.is_empty())
        {
            tracing::info!(execution = execution_id, "the policy passes again: the deferred run is not needed");
            self.drop_deferred(execution_id);
            if let Err(err) = self.send_recheck(policy.into_iter().collect()).await {
                tracing::info!(%err, "the re-check is sent later");
            }
            return;
        }
        let result = match self.run_at_most_once(&entry.script).await {
            Ok(result) => result,
            Err(err) => {
                tracing::error!(%err, "could not run a deferred script");
                return;
            }
        };
        self.drop_deferred(execution_id);
        tracing::info!(execution = execution_id, trigger, "deferred run made");
        self.schedule.undelivered.push(crate::deferrals::Undelivered {
            result,
            trigger: trigger.to_string(),
            rechecks_locally: policy.is_some(),
        });
        if let Err(err) = self.schedule.save() {
            tracing::error!(error = format!("{err:#}"), "could not save the deferral schedule");
        }
        if let Err(err) = self.deliver_results().await {
            tracing::info!(%err, "the result is sent when the server answers again");
        }
        if let Some(policy) = policy
            && let Err(err) = self.send_recheck(vec![policy]).await
        {
            tracing::info!(%err, "the re-check is sent later");
        }
    }

    /// Sends the results of deferred runs made while the server was away, oldest first.
    async fn deliver_results(&mut self) -> Result<(), CallError> {
        while let Some(first) = self.schedule.undelivered.first().cloned() {
            let key = self.key()?.to_string();
            self.client.script_result(&key, &first.result, first.rechecks_locally, Some(&first.trigger)).await?;
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

    fn next_wait(&self) -> Duration {
        match self.accelerate_until {
            Some(until) if Instant::now() < until => ACCELERATED_INTERVAL.min(self.interval),
            _ => self.interval,
        }
    }
}

/// Whether a report answers some policy with "fail" (the query ran and returned no row).
fn reports_a_failing_policy(report: &Value) -> bool {
    let Some(queries) = report["queries"].as_object() else { return false };
    queries.iter().any(|(name, rows)| {
        name.starts_with(herd_core::policy::QUERY_PREFIX)
            && rows.as_array().is_some_and(Vec::is_empty)
            && report["statuses"][name] == json!(0)
    })
}

pub async fn run(options: RunOptions) -> Result<()> {
    run_until(options, shutdown_signal()).await
}

/// Runs the agent until `shutdown` completes (the server's `--with-agent` passes its own shutdown).
pub async fn run_until(options: RunOptions, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    std::fs::create_dir_all(&options.data_dir).with_context(|| format!("creating {}", options.data_dir.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // The identifier file inside must be readable by local users; everything else is private.
        std::fs::set_permissions(&options.data_dir, std::fs::Permissions::from_mode(0o755))?;
    }
    let flags = herd_osquery::tables::default_flags();
    flags
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert("distributed_interval".into(), DEFAULT_INTERVAL.as_secs().to_string());
    let roots =
        crate::profiles::Roots { sysctl_conf_dir: options.sysctl_dir.clone(), proc_sys: options.proc_sys_dir.clone() };
    let mut tables = herd_osquery::tables::all(flags.clone());
    tables.push(Arc::new(crate::profiles::HerdProfilesTable {
        data_dir: options.data_dir.clone(),
        roots: roots.clone(),
    }));
    let engine = Engine::with_tables(tables)?;
    let profiles =
        if options.enable_profiles { Some(crate::profiles::Profiles::open(&options.data_dir, roots)?) } else { None };
    let node_key = std::fs::read_to_string(options.data_dir.join("node_key"))
        .ok()
        .map(|k| k.trim().to_string())
        .filter(|k| !k.is_empty());
    let mut agent = Agent {
        client: OsqueryClient::new(&options.server, options.ca_cert.as_deref())?,
        engine: Arc::new(Mutex::new(engine)),
        flags,
        spool: Spool::open(&options.data_dir.join("spool"))?,
        data_dir: options.data_dir.clone(),
        enroll_secret_file: options.enroll_secret_file.clone(),
        host_identifier: options.host_identifier.clone().unwrap_or_else(default_identifier),
        node_key,
        interval: DEFAULT_INTERVAL,
        accelerate_until: None,
        next_config: Instant::now(),
        device_token: None,
        enable_scripts: options.enable_scripts,
        script_timeout: Duration::from_secs(options.script_timeout.max(1)),
        ledger: crate::scripts::Ledger::open(&options.data_dir.join("scripts"))?,
        schedule: crate::deferrals::Schedule::open(&options.data_dir)?,
        notices: None,
        fetch_scripts: false,
        fetch_profiles: profiles.is_some(),
        profiles,
    };
    tracing::info!(server = %options.server, data_dir = %options.data_dir.display(), "herd-agent running");
    let mut backoff = Duration::from_secs(1);
    let mut next_checkin = Instant::now();
    tokio::pin!(shutdown);
    loop {
        // Deferred runs keep their times whether or not the server answers; at start this runs what came due
        // while the machine was off.
        let mut look_again = agent.tick_deferrals().await;
        if Instant::now() < next_checkin {
            let wait = next_checkin.saturating_duration_since(Instant::now()).min(look_again.unwrap_or(Duration::MAX));
            tokio::select! {
                _ = tokio::time::sleep(wait) => continue,
                _ = &mut shutdown => {
                    tracing::info!("herd-agent stopping");
                    return Ok(());
                }
            }
        }
        let wait = match agent.check_in().await {
            Ok(()) => {
                backoff = Duration::from_secs(1);
                agent.next_wait()
            }
            Err(CallError::NodeInvalid) => {
                tracing::warn!("the server no longer knows this host; enrolling again");
                agent.node_key = None;
                let _ = std::fs::remove_file(agent.data_dir.join("node_key"));
                backoff
            }
            Err(CallError::Later { retry_after, reason }) => {
                // The server said when (and spread its answers): that, plus up to a second of our own so
                // agents told the same second do not return in step. Our backoff is for failures, not this.
                let wait = retry_after + Duration::from_millis(u64::from(jitter_ms()));
                tracing::info!(%reason, retry_in_ms = wait.as_millis() as u64, "the server is busy");
                wait
            }
            Err(CallError::Failed(err)) => {
                tracing::warn!(error = format!("{err:#}"), retry_in_s = backoff.as_secs(), "check-in failed");
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
        };
        next_checkin = Instant::now() + wait;
        // The check-in may have brought deferred runs or the user's choices.
        look_again = agent.tick_deferrals().await.or(look_again);
        tokio::select! {
            _ = tokio::time::sleep(wait.min(look_again.unwrap_or(Duration::MAX))) => {}
            _ = &mut shutdown => {
                tracing::info!("herd-agent stopping");
                return Ok(());
            }
        }
    }
}

/// Up to a second, at random (a wait that would otherwise line agents up).
fn jitter_ms() -> u16 {
    let mut bytes = [0u8; 2];
    // Without randomness there is no spread, which is no worse than no jitter.
    let _ = getrandom::fill(&mut bytes);
    u16::from_le_bytes(bytes) % 1000
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
