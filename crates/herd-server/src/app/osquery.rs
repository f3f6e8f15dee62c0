//! Agents over the osquery TLS API (a stock osqueryd, herd-agent): enrolling, their configuration, what a
//! check-in hands out, and ingesting what they report (policy answers, vitals, the management and profile
//! checks, logs). The check-in and the report are the hot path: most check-ins are answered from memory.

use super::AfterCommit;
use crate::error::OsqueryError;
use crate::host_cache::CachedHost;
use crate::secrets::{random_token, secrets_equal, token_hash};
use crate::state::{SharedState, now_ms};
use herd_core::Millis;
use herd_core::due::{DueSettings, HostScope, RESULTS_AWAITED_MS, due_work, plan_labels, plan_policies};
use herd_core::platform::{PlatformFamily, family_of_platform_mask};
use herd_core::policy::{self, PolicyResponse};
use herd_core::vitals::{DetailQuery, VitalsPatch};
use herd_proto::osquery::{
    DistributedReadResponse, DistributedWriteRequest, EnrollRequest, EnrollResponse, LogRequest, LogType, StatusLogLine,
};
use herd_store::{AutomationRules, EnrollHost, ReportOrigin, ReportedAnswer, StoreError, StoredStatusLog};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Enrolls a host with an enroll secret (its team): a new host gets a row, a known one (same hardware uuid)
/// a new node key. Bad secrets count against the client's address; the write waits its turn at the
/// enrollment gate.
pub async fn enroll(
    state: &SharedState,
    client: IpAddr,
    request: EnrollRequest,
) -> Result<EnrollResponse, OsqueryError> {
    let team_id = team_of_secret(state, client, &request.enroll_secret)?;

    let system_uuid = request.host_details.get("system_info").and_then(|row| row.get("uuid")).map(|u| u.trim());
    let uuid = match system_uuid.filter(|u| !u.is_empty()) {
        Some(uuid) => uuid.to_string(),
        None => request.host_identifier.trim().to_string(),
    };
    if uuid.is_empty() {
        return Err(OsqueryError::BadRequest(
            "host_identifier and host_details.system_info.uuid are both empty".into(),
        ));
    }
    if uuid.len() > 255 || request.host_identifier.len() > 255 {
        return Err(OsqueryError::BadRequest("host identifier longer than 255 characters".into()));
    }
    let platform_hint = request
        .platform_type
        .as_deref()
        .and_then(|mask| mask.trim().parse::<u32>().ok())
        .and_then(family_of_platform_mask)
        .map(|family| family.as_str().to_string())
        .unwrap_or_default();
    // Everything above is cheap and in memory; the write below is what a server behind cannot afford.
    state.enrollment_gate.admit(Instant::now()).map_err(|deferred| OsqueryError::Throttled {
        reason: deferred.to_string(),
        retry_after_s: deferred.retry_after_s,
    })?;
    let node_key = random_token(32);
    let host = EnrollHost {
        uuid,
        osquery_host_id: request.host_identifier.trim().to_string(),
        node_key_hash: token_hash(&node_key),
        team_id,
        platform_hint,
        details: VitalsPatch::from_host_details(&request.host_details),
    };
    let mark = state.hosts.eviction_mark();
    let enrolled = match state.store.enroll_host(&host, now_ms()).await {
        Ok(enrolled) => enrolled,
        // The secret's team was deleted since this server loaded its secrets: the secret no longer enrolls.
        Err(StoreError::NotFound("team")) => return Err(OsqueryError::NodeInvalid("invalid enroll secret")),
        Err(err) => return Err(err.into()),
    };
    // A re-enrolled host's old node key must stop working here at once (other servers: change feed). A new
    // host's row is cached, so its next requests need no read.
    let (host_id, team_id) = (enrolled.checkin.id, enrolled.checkin.team_id);
    if enrolled.new_host {
        state.hosts.insert_unless_evicted_since(enrolled.checkin, mark);
    } else {
        state.hosts.evict(host_id);
    }
    state.metrics.enrollments.fetch_add(1, Ordering::Relaxed);
    tracing::info!(host_id, team_id, "host enrolled");
    Ok(EnrollResponse { node_key })
}

/// The team an enroll secret enrolls into (None: no team), for osqueryd and Fleet's orbit alike. Bad secrets
/// count against the client's address.
pub(crate) fn team_of_secret(state: &SharedState, client: IpAddr, secret: &str) -> Result<Option<i64>, OsqueryError> {
    let settings = state.settings.get();
    // Compare against every secret, without stopping at the first match, so timing says nothing about which.
    let mut team_of_secret = None;
    for stored in &settings.enroll_secrets {
        if secrets_equal(&stored.secret, secret) {
            team_of_secret = Some(stored.team_id);
        }
    }
    let Some(team_id) = team_of_secret.filter(|_| !secret.is_empty()) else {
        // Secrets are compared in memory (cheap), so a valid one is never refused for others' failures; bad
        // ones beyond the address's budget get 429 instead of 401.
        state.metrics.failed_enrollments.fetch_add(1, Ordering::Relaxed);
        let rule = crate::rate_limit::address_rule(client, "too many bad enroll secrets from your address");
        state.enroll_limiter.record_failure(&[rule], Instant::now())?;
        return Err(OsqueryError::NodeInvalid("invalid enroll secret"));
    };
    Ok(team_id)
}

/// The osquery configuration a host gets: the `config` of its team's agent options (or the global ones), as the
/// admin wrote it.
pub fn agent_config(state: &SharedState, host: &CachedHost) -> Value {
    let settings = state.settings.get();
    // The admin's document, passed on as it is.
    settings
        .agent_options(host.checkin.team_id)
        .get("config")
        .cloned()
        .unwrap_or_else(|| Value::Object(Default::default()))
}

/// The query asking a herd-agent host which configuration profiles it has (its `herd_profiles` table).
pub const PROFILES_QUERY: &str = "fleet_detail_query_herd_profiles";
const PROFILES_SQL: &str = "SELECT identifier, checksum, installed_at FROM herd_profiles";

/// The installed profiles a host reported: (identifier, checksum of what is there, install time in ms).
fn installed_profiles(rows: &[herd_core::vitals::Row]) -> Vec<(String, String, Millis)> {
    rows.iter()
        .filter_map(|row| {
            let identifier = row.get("identifier")?.clone();
            let checksum = row.get("checksum")?.clone();
            let installed_s: i64 = row.get("installed_at")?.trim().parse().ok()?;
            Some((identifier, checksum, installed_s.saturating_mul(1000)))
        })
        .collect()
}

/// The query asking whether another management system manages the host (migration eligibility).
pub const MANAGEMENT_QUERY: &str = "fleet_detail_query_mdm_migration";

/// What the host is asked, when migration is enabled: osquery's `mdm` table on macOS; elsewhere the query the
/// admin configured (e.g. the old agent's marker file), whose rows mean "managed by the other system"; nothing
/// on a platform never offered the migration (`herd_core::migration::offered_on`).
fn management_query(mdm: &herd_proto::fleet::MdmSettings, family: Option<PlatformFamily>) -> Option<String> {
    if !mdm.macos_migration.enable || !herd_core::migration::offered_on(family) {
        return None;
    }
    match family {
        Some(PlatformFamily::Darwin) => Some("SELECT enrolled, server_url FROM mdm;".to_string()),
        _ => Some(mdm.migration_query.trim().to_string()).filter(|q| !q.is_empty()),
    }
}

fn reports_other_management(family: Option<PlatformFamily>, rows: &[herd_core::vitals::Row]) -> bool {
    match family {
        Some(PlatformFamily::Darwin) => {
            rows.iter().any(|r| matches!(r.get("enrolled").map(String::as_str), Some("true" | "1")))
        }
        _ => !rows.is_empty(),
    }
}

fn family_of(host: &CachedHost) -> Option<PlatformFamily> {
    PlatformFamily::of_host_platform(&host.checkin.platform, &host.checkin.platform_like)
}

/// A check-in (`distributed/read`): what the host should run now (vitals, policies, the management and
/// profile checks), planned from the cached row when nothing looks due, else from the database's.
pub async fn due_queries(
    state: &SharedState,
    mut host: CachedHost,
    now: Millis,
) -> Result<DistributedReadResponse, OsqueryError> {
    state.metrics.checkins.fetch_add(1, Ordering::Relaxed);
    let settings = state.settings.get();
    let due_settings = DueSettings {
        vitals_interval_ms: settings.vitals_interval_ms(),
        policies_changed_at: settings.policies_changed_at,
    };
    let mut work = due_work(&host.due_state(), &due_settings, now);
    if work.is_empty() {
        // The common case: no database round trip at all.
        let herd_pending_scripts = host.checkin.pending_scripts;
        let herd_pending_profiles = host.checkin.pending_profiles;
        return Ok(DistributedReadResponse { herd_pending_scripts, herd_pending_profiles, ..Default::default() });
    }
    // Something looks due. The cached row may be stale (another server may have ingested this host's
    // results), so confirm against the database before handing out work.
    let mark = state.hosts.eviction_mark();
    let runs = match state.store.host_checkin_and_runs(host.checkin.id).await? {
        Some((fresh, runs)) if fresh.node_key_hash == host.checkin.node_key_hash => {
            host = state.hosts.insert_unless_evicted_since(fresh, mark);
            work = due_work(&host.due_state(), &due_settings, now);
            runs
        }
        _ => {
            state.hosts.evict(host.checkin.id);
            return Err(OsqueryError::NodeInvalid("invalid node key"));
        }
    };
    let mut response = DistributedReadResponse {
        accelerate: work.accelerate_s,
        herd_pending_scripts: host.checkin.pending_scripts,
        herd_pending_profiles: host.checkin.pending_profiles,
        ..Default::default()
    };
    let family = family_of(&host);
    for query in work.vitals.iter().flat_map(|vital| vital.detail_queries(family)) {
        response.queries.insert(query.query_name(), query.sql.to_string());
        response.discovery.insert(query.query_name(), query.discovery());
    }
    if !work.vitals.is_empty() {
        state.hosts.mark_vitals_sent(host.checkin.id, now);
        if host.checkin.orbit_node_key_hash.is_some() {
            use super::orbit::{ORBIT_INFO_DISCOVERY, ORBIT_INFO_QUERY, ORBIT_INFO_SQL};
            response.queries.insert(ORBIT_INFO_QUERY.to_string(), ORBIT_INFO_SQL.to_string());
            response.discovery.insert(ORBIT_INFO_QUERY.to_string(), ORBIT_INFO_DISCOVERY.to_string());
        }
    }
    if work.management_check
        && let Some(sql) = management_query(&settings.config.mdm, family)
    {
        response.queries.insert(MANAGEMENT_QUERY.to_string(), sql);
    }
    if work.profiles_check {
        response.queries.insert(PROFILES_QUERY.to_string(), PROFILES_SQL.to_string());
        state.hosts.mark_profiles_sent(host.checkin.id, now);
    }
    if work.plan_policies {
        let scope = HostScope {
            host_id: host.checkin.id,
            team_id: host.checkin.team_id,
            family,
            platform: host.checkin.platform.clone(),
            labels: host.checkin.label_ids.clone(),
        };
        let refetch = host.checkin.refetch_requested_at.is_some();
        let mut plan = plan_policies(&scope, &settings.schedules(), &runs, refetch, now);
        let mut sent = false;
        // Dynamic labels ride on the policies' schedule (Fleet's `fleet_label_query_<id>`).
        let label_plan =
            plan_labels(&scope, &settings.label_schedules(), &runs, refetch, settings.label_interval_ms(), now);
        for id in &label_plan.due {
            if let Some(label) = settings.label(*id) {
                response.queries.insert(herd_core::labels::query_name(*id), label.query.clone());
                sent = true;
            }
        }
        if let Some(at) = label_plan.next_due_at {
            plan.next_due_at = Some(plan.next_due_at.map_or(at, |n| n.min(at)));
        }
        for id in &plan.due {
            if let Some(policy) = settings.policy(*id) {
                // The revision travels in the name: whichever server takes the answer counts it for exactly
                // the query the host ran.
                response.queries.insert(policy::query_name(*id, policy.schedule.revision), policy.query.clone());
                sent = true;
            }
        }
        // Policies handed out now come due again if their answers never arrive.
        let next_due_at = if !sent {
            plan.next_due_at
        } else {
            let retry_at = now + RESULTS_AWAITED_MS;
            Some(plan.next_due_at.map_or(retry_at, |at| at.min(retry_at)))
        };
        state.hosts.set_policy_plan(host.checkin.id, now, next_due_at);
        if sent {
            state.hosts.mark_policies_sent(host.checkin.id, now);
        }
    }
    if !response.queries.is_empty() {
        state.metrics.checkins_with_work.fetch_add(1, Ordering::Relaxed);
    }
    Ok(response)
}

/// A report (`distributed/write`): policy answers judged and stored with their automations in one
/// transaction, vitals, the management and profile checks; acknowledged only once committed.
pub async fn record_report(
    state: &SharedState,
    host: &CachedHost,
    report: DistributedWriteRequest,
    now: Millis,
) -> Result<(), OsqueryError> {
    state.metrics.distributed_writes.fetch_add(1, Ordering::Relaxed);
    let settings = state.settings.get();
    let mut patch = VitalsPatch::default();
    let mut vitals_answered = false;
    let mut answers = Vec::new();
    let mut label_answers = Vec::new();
    let mut managed_by_other = None;
    let mut profiles_reported = None;
    let mut orbit_runs_scripts = None;
    for (name, rows) in &report.queries {
        let status = report.statuses.get(name).copied().unwrap_or(0);
        if name == super::orbit::ORBIT_INFO_QUERY {
            if status == 0 {
                orbit_runs_scripts = super::orbit::orbit_runs_scripts(rows);
            }
            continue;
        }
        if name == PROFILES_QUERY {
            // A failed query (no such table: not herd-agent) tells nothing.
            if status == 0 {
                profiles_reported = Some(installed_profiles(rows));
            }
            continue;
        }
        if name == MANAGEMENT_QUERY {
            if status == 0 {
                managed_by_other = Some(reports_other_management(family_of(host), rows));
            }
            continue;
        }
        if status != 0 {
            let message = report.messages.get(name).map(Value::to_string).unwrap_or_default();
            tracing::debug!(host_id = host.checkin.id, query = %name, status, %message, "query failed on host");
        }
        if let Some(label_id) = herd_core::labels::label_of_query(name) {
            let message = report.messages.get(name).and_then(Value::as_str).unwrap_or_default();
            label_answers.push((label_id, herd_core::labels::LabelAnswer::from_result(status, rows.len(), message)));
            continue;
        }
        if let Some((policy_id, revision)) = policy::policy_of_query(name) {
            // Judged in the report's transaction against the policy as it is in the database (this server
            // may not have loaded it yet, or may hold an older revision).
            answers.push(ReportedAnswer {
                policy_id,
                revision,
                response: PolicyResponse::from_result(status, rows.len()),
            });
            continue;
        }
        let Some(query) = DetailQuery::from_query_name(name) else {
            tracing::debug!(host_id = host.checkin.id, query = %name, "result for a query herd did not send");
            continue;
        };
        vitals_answered = true;
        // A failed query tells nothing about the host: its columns stay as they were.
        if status == 0 {
            patch.absorb_answer(query, rows);
        }
    }
    if let Some(managed) = managed_by_other
        && state.store.record_management_status(host.checkin.id, managed, now).await?
    {
        // Migrated: the window is closed; the host checks in normally from now on.
        AfterCommit::new().evict([host.checkin.id]).apply(state, None).await?;
    }
    if let Some(installed) = profiles_reported {
        state.store.verify_host_profiles(host.checkin.id, &installed, &settings.profile_limits(), now).await?;
    }
    // Before the answers: a failing answer in this same report queues no run fleetd would refuse.
    if let Some(enabled) = orbit_runs_scripts {
        super::scripts::scripts_enabled_reported(state, host.checkin.id, enabled, now)
            .await?
            .apply(state, None)
            .await?;
    }
    if answers.is_empty() && label_answers.is_empty() && !vitals_answered {
        return Ok(());
    }
    // One transaction for the whole report; 200 only once it is committed.
    let requested_at = host.vitals_sent_at.unwrap_or(now);
    let vitals = vitals_answered.then_some((&patch, requested_at));
    let host_id = host.checkin.id;
    let on_failure: herd_store::OnFailure = crate::webhooks::failing_policy_jobs;
    let rules = AutomationRules {
        origin: if report.herd_recheck { ReportOrigin::Recheck } else { ReportOrigin::Scheduled },
        script_retries: settings.config.host_settings.automation_retries,
        script_timeout_s: settings.config.host_settings.automation_script_timeout,
    };
    match state
        .store
        .record_report_with_labels(host_id, &answers, &label_answers, vitals, now, &rules, on_failure)
        .await
    {
        Ok(outcome) if !outcome.stale_policies.is_empty() => {
            // The host ran a query edited since it was handed out. If this server's copy of the policies is
            // the stale one, load the current ones now rather than hand out the old query again.
            for (policy_id, revision) in &outcome.stale_policies {
                if let Err(err) = state.settings.catch_up(&state.store, *policy_id, *revision).await {
                    tracing::warn!(error = %err, "reloading settings after a stale answer");
                }
            }
        }
        Ok(_) => {}
        Err(StoreError::HostGone) => {
            state.hosts.evict(host_id);
            return Err(OsqueryError::NodeInvalid("host was deleted"));
        }
        Err(err) => return Err(err.into()),
    }
    if !answers.is_empty() || !label_answers.is_empty() {
        state.hosts.policies_recorded(host.checkin.id);
    }
    if report.herd_recheck {
        let policy_ids: Vec<i64> = answers.iter().map(|a| a.policy_id).collect();
        let details = json!({"host_id": host.checkin.id, "policy_ids": policy_ids});
        AfterCommit::new().record("rechecked_policies", details).apply(state, None).await?;
    }
    if vitals_answered {
        state.hosts.vitals_recorded(host.checkin.id, requested_at, now, patch.platform.as_deref());
    }
    Ok(())
}

/// A log batch (`log`): status lines stored, result lines appended to the result log (charged to the host's
/// budget).
pub async fn record_log(
    state: &SharedState,
    host: &CachedHost,
    request: LogRequest,
    now: Millis,
) -> Result<(), OsqueryError> {
    let LogRequest { log_type, data, .. } = request;
    match log_type {
        LogType::Status => {
            let lines: Vec<StoredStatusLog> = data
                .iter()
                .filter_map(StatusLogLine::from_value)
                .map(|line| StoredStatusLog {
                    received_at: now,
                    unix_time: line.unix_time,
                    severity: line.severity,
                    filename: line.filename,
                    line: line.line,
                    message: line.message,
                    version: line.version,
                })
                .collect();
            if lines.len() != data.len() {
                return Err(OsqueryError::BadRequest("every status log line must be a json object".into()));
            }
            state.store.append_status_logs(host.checkin.id, &lines).await?;
            state.metrics.status_log_lines.fetch_add(lines.len() as u64, Ordering::Relaxed);
        }
        LogType::Result => {
            let result_log = &state.result_log;
            let count = data.len() as u64;
            let annotated: Vec<Value> = data
                .into_iter()
                .map(|mut line| {
                    if let Value::Object(map) = &mut line {
                        map.insert("herd_host_id".into(), Value::from(host.checkin.id));
                    }
                    line
                })
                .collect();
            let batch = crate::result_log::encode(&annotated).map_err(|e| OsqueryError::Internal(e.into()))?;
            result_log.charge(host.checkin.id, batch.len() as u64, Instant::now()).map_err(|over| {
                state.metrics.result_log_refused_batches.fetch_add(1, Ordering::Relaxed);
                OsqueryError::Throttled { reason: over.to_string(), retry_after_s: over.retry_after_s }
            })?;
            tokio::task::block_in_place(|| result_log.append_encoded(&batch))
                .map_err(|e| OsqueryError::Internal(anyhow::anyhow!("writing {}: {e}", result_log.path().display())))?;
            state.metrics.result_log_lines.fetch_add(count, Ordering::Relaxed);
        }
    }
    Ok(())
}
