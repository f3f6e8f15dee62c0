//! Scripts: the library (adding with the checks every way in shares, deleting) and queueing a run on a host.

use super::AfterCommit;
use crate::auth::AuthUser;
use crate::error::{ApiError, OsqueryError};
use crate::host_cache::CachedHost;
use crate::secrets::random_token;
use crate::state::{SharedState, now_ms};
use herd_core::Millis;
use herd_core::execution::ResultConvention;
use herd_core::roles::Action;
use herd_core::validate::NameKind;
use herd_proto::agent::{
    DeferralInfo, DeferralTrigger, PendingScript, PendingScriptsRequest, PendingScriptsResponse, ScriptResultRequest,
};
use herd_store::{ExecutionRecord, NewExecution, RunOutcome, ScriptRecord};
use serde::Deserialize;
use serde_json::json;
use std::time::{Duration, Instant};

/// Fleet's default: a run may take 5 minutes.
pub const DEFAULT_TIMEOUT_S: i64 = 300;

const MAX_SCRIPT_BYTES: usize = 500_000;

/// Fleet's default: output keeps the last 10,000 characters.
pub const OUTPUT_KEPT_CHARS: usize = 10_000;

/// Shell scripts for macOS and Linux, PowerShell for Windows, chosen by the file's extension. Returns the
/// name to store (trimmed): a file name, as hosts may write the script under it.
pub fn check_script<'a>(name: &'a str, contents: &str) -> Result<&'a str, ApiError> {
    let name = herd_core::validate::name(name, NameKind::File)
        .map_err(|r| ApiError::invalid("script", format!("file name {r}")))?;
    if !(name.ends_with(".sh") || name.ends_with(".ps1")) {
        return Err(ApiError::invalid("script", "the file name must end in .sh or .ps1"));
    }
    if contents.trim().is_empty() {
        return Err(ApiError::invalid("script", "the script is empty"));
    }
    if contents.len() > MAX_SCRIPT_BYTES {
        return Err(ApiError::invalid("script", format!("at most {MAX_SCRIPT_BYTES} bytes")));
    }
    Ok(name)
}

/// Adds a script to a team's library (None: global) after the checks every way in shares; records the
/// activity. Used by the REST upload and the console.
pub async fn add(
    state: &SharedState,
    auth: &AuthUser,
    team_id: Option<i64>,
    name: &str,
    contents: &str,
) -> Result<i64, ApiError> {
    crate::access::scope_field(state, auth, team_id, Action::Write, "team_id").await?;
    let name = check_script(name, contents)?;
    let id = state.store.create_script(team_id, name, contents, now_ms()).await.map_err(|e| match e {
        herd_store::StoreError::NotFound(_) => ApiError::invalid("team_id", "team does not exist"),
        herd_store::StoreError::Conflict(reason) => ApiError::Conflict(reason),
        other => other.into(),
    })?;
    let details = json!({"script_id": id, "script_name": name, "team_id": team_id});
    crate::activity::record(state, Some(auth), "added_script", details).await;
    Ok(id)
}

/// Deletes a script the actor may write.
pub async fn delete(state: &SharedState, auth: &AuthUser, id: i64) -> Result<(), ApiError> {
    crate::access::script(state, auth, id, Action::Write).await?;
    state.store.delete_script(id).await?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub host_id: i64,
    #[serde(default)]
    pub script_id: Option<i64>,
    #[serde(default)]
    pub script_contents: Option<String>,
    #[serde(default)]
    pub script_name: Option<String>,
    #[serde(default)]
    pub team_id: Option<i64>,
}

/// Validates a run request and queues it; returns the queued execution.
pub async fn queue(state: &SharedState, auth: &AuthUser, request: RunRequest) -> Result<NewExecution, ApiError> {
    if state.settings.get().config.server_settings.scripts_disabled {
        return Err(ApiError::Forbidden);
    }
    let host = crate::access::host(state, auth, request.host_id, Action::Write).await?;
    // A library script runs only on hosts of its own scope (a team's script on the team's hosts, a global
    // one on hosts in no team), as in Fleet; found by id or by name, it is looked up the same way, so a
    // script the user cannot read is "no such script" either way.
    let in_host_scope = |s: &ScriptRecord, field: &str| {
        if s.team_id == host.team_id {
            Ok(())
        } else {
            Err(ApiError::invalid(field, "the script does not belong to the host's team (or no team)"))
        }
    };
    let (script_id, name, contents) = match (request.script_id, request.script_contents, request.script_name) {
        (Some(id), None, None) => {
            let s = crate::access::script(state, auth, id, Action::Read).await?;
            in_host_scope(&s, "script_id")?;
            (Some(s.id), s.name, s.contents)
        }
        (None, Some(contents), None) => {
            check_script("anonymous.sh", &contents)
                .map_err(|_| ApiError::invalid("script_contents", "must be a non-empty script"))?;
            (None, String::new(), contents)
        }
        (None, None, Some(name)) => {
            let team = request.team_id.filter(|t| *t != 0);
            let s =
                crate::access::script_by_name(state, auth, team, &name, Action::Read).await.map_err(|e| match e {
                    ApiError::NotFound(_) => ApiError::invalid("script_name", "no such script in that team"),
                    other => other,
                })?;
            in_host_scope(&s, "script_name")?;
            (Some(s.id), s.name, s.contents)
        }
        _ => return Err(ApiError::invalid("script_id", "give exactly one of script_id, script_contents, script_name")),
    };
    let windows = host.platform == "windows";
    if !name.is_empty() && name.ends_with(".ps1") != windows {
        return Err(ApiError::invalid("script_id", "the script's kind does not match the host's platform"));
    }
    let execution = NewExecution {
        execution_id: random_token(16),
        host_id: host.id,
        script_id,
        script_name: name,
        contents,
        timeout_s: DEFAULT_TIMEOUT_S,
        policy_id: None,
    };
    state.store.queue_execution(&execution, now_ms()).await?;
    AfterCommit::new().evict([host.id]).apply(state, Some(auth)).await?;
    Ok(execution)
}

/// Fleet's synchronous run: queues it, then waits for its result until the run's timeout. Returns the
/// execution and whether it finished (false: still pending when the wait ended).
pub async fn run_and_wait(
    state: &SharedState,
    auth: &AuthUser,
    request: RunRequest,
) -> Result<(ExecutionRecord, bool), ApiError> {
    let queued = queue(state, auth, request).await?;
    let deadline = Instant::now() + Duration::from_secs(queued.timeout_s as u64);
    // The store is polled, not this server's memory: the host may report to another server.
    loop {
        let execution = state.store.execution(&queued.execution_id).await?.ok_or(ApiError::NotFound("execution"))?;
        if execution.status != "pending" {
            return Ok((execution, true));
        }
        if Instant::now() >= deadline {
            return Ok((execution, false));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A host's agent said whether it runs scripts (herd-agent when it asks for its runs, fleetd in its
/// `orbit_info` row): stored, and when it runs them again, what it refused is retried at once, not at the next
/// scheduled answer (the host evicted, since its policies came due). The effects are the caller's to apply.
pub(crate) async fn scripts_enabled_reported(
    state: &SharedState,
    host_id: i64,
    enabled: bool,
    now: Millis,
) -> Result<AfterCommit, OsqueryError> {
    let resumed = state.store.set_scripts_enabled(host_id, enabled, now).await?;
    if resumed.is_empty() {
        return Ok(AfterCommit::new());
    }
    Ok(AfterCommit::new()
        .evict([host_id])
        .record("resumed_policy_automations", json!({"host_id": host_id, "policy_ids": resumed})))
}

/// An agent asks for its queued runs (and says whether it runs scripts at all): what is due, each with the
/// policy to re-check after it and, for a deferred run, what the agent needs to ask its user.
pub async fn agent_pending(
    state: &SharedState,
    host: &CachedHost,
    request: &PendingScriptsRequest,
    now: Millis,
) -> Result<PendingScriptsResponse, OsqueryError> {
    let host_id = host.checkin.id;
    let effects = scripts_enabled_reported(state, host_id, request.scripts_enabled, now).await?;
    let work = state.store.agent_script_work(host_id, request.deferrals, now).await?;
    // The fetch may have cleared the host's "something new" flag.
    let effects = effects.evict([host_id]);
    let disabled_by_server = state.settings.get().config.server_settings.scripts_disabled;
    if !request.scripts_enabled || disabled_by_server {
        // Runs this host will never do are finished as errors rather than left pending forever.
        let why = if disabled_by_server {
            "scripts are disabled on the server"
        } else {
            "scripts are disabled on this host's agent"
        };
        for (execution, _) in &work {
            state
                .store
                .record_execution_result(host_id, &execution.execution_id, RunOutcome::Refused, None, why, None, now)
                .await?;
        }
        effects.apply(state, None).await?;
        return Ok(PendingScriptsResponse::default());
    }
    effects.apply(state, None).await?;
    let settings = state.settings.get();
    let scripts = work
        .iter()
        .map(|(e, deferral)| {
            // An automation's run carries its policy, so the agent can re-check it right after the fix.
            let policy = e.policy_id.and_then(|id| settings.policy(id));
            // A deferred run carries what the agent needs to ask its user and to run it on time on its own.
            let deferral = deferral.as_ref().and_then(|record| {
                let deferral_settings =
                    super::deferrals::stored_settings(record.policy_id, record.settings.as_deref())?;
                Some(DeferralInfo {
                    settings: deferral_settings,
                    policy_name: record.policy_name.clone(),
                    org_name: settings.config.org_info.org_name.clone(),
                    state: super::deferrals::agent_state(record),
                })
            });
            PendingScript {
                execution_id: e.execution_id.clone(),
                name: e.script_name.clone(),
                contents: e.contents.clone(),
                timeout_s: Some(e.timeout_s),
                policy_id: policy.map(|p| p.schedule.id),
                policy_query: policy.map(|p| p.query.clone()),
                // The agent names its re-check with it, so an answer to an edited policy's old query is
                // ignored rather than counted for the new one.
                policy_revision: policy.map(|p| p.schedule.revision),
                deferral,
            }
        })
        .collect();
    Ok(PendingScriptsResponse { scripts })
}

/// An agent reports a run's result: kept (output's tail), recorded as `ran_script` (and how a deferred run
/// came to run), and, for an automation's run by a runner that does not re-check on its own, the host asked to
/// answer the policy again at once. A result recorded already (the agent resending after a lost answer)
/// changes nothing.
pub async fn record_agent_result(
    state: &SharedState,
    host: &CachedHost,
    body: &ScriptResultRequest,
    now: Millis,
) -> Result<(), OsqueryError> {
    let host_id = host.checkin.id;
    // A result for a run this host was not given changes nothing, and says so.
    if state.store.execution(&body.execution_id).await?.is_none_or(|e| e.host_id != host_id) {
        return Err(OsqueryError::NotFound("no script execution of that id for this host"));
    }
    // Keep the tail: that is where a script says what went wrong (Fleet keeps the same 10,000 characters).
    let output = herd_core::text::tail_chars(&body.output, OUTPUT_KEPT_CHARS);
    // Fleet's fleetd sends its run time in seconds (`runtime`), herd-agent in milliseconds: only Fleet's body
    // has `runtime`, and its exit codes follow Fleet's conventions.
    let convention = if body.runtime.is_some() { ResultConvention::Fleet } else { ResultConvention::Herd };
    let (outcome, exit_code) = herd_core::execution::reported_outcome(convention, body.exit_code, body.timed_out);
    let runtime_ms = body.runtime_ms.or(body.runtime.map(|s| s.saturating_mul(1000)));
    let recorded = state
        .store
        .record_execution_result(host_id, &body.execution_id, outcome, exit_code, output, runtime_ms, now)
        .await?;
    let mut effects = AfterCommit::new().evict([host_id]);
    if recorded && let Some(execution) = state.store.execution(&body.execution_id).await? {
        let policy = match execution.policy_id {
            Some(id) => state.store.get_policy(id).await?,
            None => None,
        };
        let details = json!({
            "host_id": host_id,
            "script_execution_id": execution.execution_id,
            "script_name": execution.script_name,
            "async": true,
            "policy_id": execution.policy_id,
            "policy_name": policy.map(|p| p.name),
        });
        effects = effects.record("ran_script", details.clone());
        // Deferred runs are told apart: the user's schedule came due, or herd enforced the deadline.
        let kind = match body.deferral_trigger {
            Some(DeferralTrigger::Scheduled) => Some("ran_deferred_remediation"),
            Some(DeferralTrigger::Deadline) => Some("enforced_deferral_deadline"),
            Some(DeferralTrigger::NoUser) => Some("ran_remediation_without_user"),
            Some(DeferralTrigger::Unknown) | None => None,
        };
        if let Some(kind) = kind {
            effects = effects.record(kind, details);
        }
        if execution.policy_id.is_some() && !body.rechecks_locally {
            let policy_ids = state.store.request_automation_recheck(host_id, now).await?;
            if !policy_ids.is_empty() {
                effects =
                    effects.record("requested_policy_recheck", json!({"host_id": host_id, "policy_ids": policy_ids}));
            }
        }
    }
    // Automations act on their own: no user is the actor.
    effects.apply(state, None).await?;
    Ok(())
}
