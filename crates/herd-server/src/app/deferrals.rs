//! Deferrals as admins and device users see them (the phase, the offered options, the deadline) and the device
//! user's choice, checked against the policy's rules and refused with a reason. The agent keeps the schedule
//! and runs the script; see `herd_store::deferrals` for the invariants.

use crate::error::ApiError;
use crate::state::{SharedState, now_ms};
use crate::wire::rfc3339;
use herd_core::Millis;
use herd_core::deferral::{DeferOption, DeferralRules, DeferralSettings, HostNow, MessageContext};
use herd_proto::fleet::{DeferralChoice, HostDeferral};
use herd_store::{ChoiceRefused, DeferralRecord};

/// The policy's deferral settings as stored (checked on the way in; unreadable ones are logged and shown
/// as none).
pub fn stored_settings(policy_id: i64, text: Option<&str>) -> Option<herd_proto::fleet::DeferralSettings> {
    let settings = herd_core::deferral::read_stored(text);
    if text.is_some() && settings.is_none() {
        tracing::error!(policy_id, "unreadable deferral settings: shown as none, deferring nothing");
    }
    settings
}

/// The settings and rules a record is judged by (the policy's current settings).
fn settings_of(record: &DeferralRecord) -> Option<(DeferralSettings, DeferralRules)> {
    let stored = herd_core::deferral::stored_rules(record.settings.as_deref());
    if record.settings.is_some() && stored.is_none() {
        tracing::error!(policy_id = record.policy_id, "unreadable deferral settings or rules");
    }
    stored
}

/// How the host's deferral reads (admin host view, device API, My Device page).
pub fn view(record: &DeferralRecord, org_name: &str, now: Millis) -> HostDeferral {
    let settings = settings_of(record);
    let state = record.state();
    let deadline = settings.as_ref().and_then(|(_, rules)| {
        // Before the first prompt, only an absolute deadline is known.
        if state.first_prompt_at.is_none() { rules.deadline_at } else { rules.deadline(&state, now) }
    });
    use herd_store::ExecutionStatus::{Cancelled, Deferred, Pending};
    let phase = match (record.open, record.execution_status) {
        (false, Some(Cancelled)) => "cancelled",
        (false, _) => "fixed",
        (true, Some(Deferred)) if record.scheduled_at.is_some() => "scheduled",
        (true, Some(Deferred)) if record.prompt_open => "prompting",
        (true, Some(Deferred)) if record.waiting_reason.is_some() => "waiting",
        (true, Some(Deferred)) => "awaiting_prompt",
        (true, Some(Pending)) => "running",
        (true, _) => "ran",
    };
    let tz = record.tz();
    let max_deferrals = settings.as_ref().map_or(0, |(s, _)| s.max_deferrals);
    let left = u32::try_from((max_deferrals - record.deferrals_used).max(0)).unwrap_or(0);
    let context = MessageContext { policy_name: &record.policy_name, org_name, deadline, deferrals_left: left, tz };
    let mut offered = Vec::new();
    if phase == "prompting"
        && let Some((_, rules)) = &settings
    {
        offered.push(DeferralChoice { choice: "now".into(), label: "Run now".into(), runs_at: None });
        let host = HostNow { now, tz, user_logged_in: true, blocking_process_running: false };
        let available = rules.offered(&state, &host);
        for (text, option) in settings.as_ref().map(|(s, _)| s.options.iter()).into_iter().flatten().zip(&rules.options)
        {
            if let Some((_, at)) = available.iter().find(|(o, _)| o == option) {
                offered.push(DeferralChoice {
                    choice: text.clone(),
                    label: option.label(),
                    runs_at: Some(rfc3339(*at)),
                });
            }
        }
    }
    HostDeferral {
        policy_id: record.policy_id,
        policy_name: record.policy_name.clone(),
        state: phase.into(),
        deferred_until: record.scheduled_at.map(rfc3339),
        deferrals_used: record.deferrals_used,
        max_deferrals,
        deadline: deadline.map(rfc3339),
        waiting_reason: record.waiting_reason.clone(),
        time_zone: record.time_zone.clone(),
        last_choice: record.last_choice.clone(),
        chosen_by: record.chosen_by.clone(),
        chosen_at: record.chosen_at.map(rfc3339),
        title: settings.as_ref().map(|(s, _)| s.render_title(&context)).unwrap_or_default(),
        message: settings.as_ref().map(|(s, _)| s.render_message(&context)).unwrap_or_default(),
        offered,
        script_execution_id: record.execution_id.clone(),
    }
}

/// Every deferral record of a host, as views show them.
pub async fn of_host(state: &SharedState, host_id: i64) -> Result<Vec<HostDeferral>, ApiError> {
    let org_name = state.settings.get().config.org_info.org_name.clone();
    let now = now_ms();
    Ok(state.store.host_deferrals(host_id).await?.iter().map(|r| view(r, &org_name, now)).collect())
}

/// The device user's choice (the device API, `herd-agent desktop` and the My Device page send one).
pub type ChoiceRequest = herd_proto::agent::DeferralChoiceRequest;

/// Records a device user's choice; the refused ones change nothing and say why (409: not now / already
/// chosen / past the deadline / no deferrals left; 422: not an offered option).
pub async fn choose(
    state: &SharedState,
    host_id: i64,
    policy_id: i64,
    request: &ChoiceRequest,
) -> Result<HostDeferral, ApiError> {
    let text = request.choice.trim();
    if text.is_empty() || text.len() > 64 {
        return Err(ApiError::invalid("choice", "say \"now\" or one of the offered options"));
    }
    let chosen_by = request.chosen_by.as_deref().map(str::trim).filter(|s| !s.is_empty());
    if chosen_by.is_some_and(|s| s.chars().count() > 100 || s.chars().any(char::is_control)) {
        return Err(ApiError::invalid("chosen_by", "at most 100 printable characters"));
    }
    let record = state.store.host_deferral(host_id, policy_id).await?.ok_or(ApiError::NotFound("deferral"))?;
    let Some((settings, rules)) = settings_of(&record) else {
        return Err(ApiError::Conflict("this policy's fix is no longer deferrable".into()));
    };
    let choice = if text.eq_ignore_ascii_case("now") {
        None
    } else {
        let option = DeferOption::parse(text).map_err(|reason| ApiError::invalid("choice", reason))?;
        if !rules.options.contains(&option) {
            let listed = settings.options.join(", ");
            return Err(ApiError::invalid(
                "choice",
                format!("{text:?} is not one of the options ({listed}) or \"now\""),
            ));
        }
        Some(option)
    };
    let outcome = state.store.choose_deferral(host_id, policy_id, &rules, choice, text, chosen_by, now_ms()).await?;
    match outcome {
        Ok(updated) => {
            state.hosts.evict(host_id);
            let org_name = state.settings.get().config.org_info.org_name.clone();
            Ok(view(&updated, &org_name, now_ms()))
        }
        Err(ChoiceRefused::Conflict(reason)) => Err(ApiError::Conflict(reason)),
        Err(ChoiceRefused::NotOffered(reason)) => Err(ApiError::invalid("choice", reason)),
    }
}

/// The part of a record the agent follows.
pub fn agent_state(record: &DeferralRecord) -> herd_proto::agent::DeferralProgress {
    herd_proto::agent::DeferralProgress {
        first_prompt_at: record.first_prompt_at,
        deferrals_used: record.deferrals_used,
        scheduled_at: record.scheduled_at,
    }
}

/// The agent's report on a deferred run (asking its user, or waiting and why). Answers the state the agent
/// must follow (`deferral: None` when the run is no longer deferred: the agent drops it and fetches its
/// scripts).
pub async fn record_agent_status(
    state: &SharedState,
    host: &crate::host_cache::CachedHost,
    body: &herd_proto::agent::DeferralStatusRequest,
    now: herd_core::Millis,
) -> Result<herd_proto::agent::DeferralStatusResponse, crate::error::OsqueryError> {
    use herd_proto::agent::{DeferralAgentStatus, DeferralStatusResponse};
    use herd_store::AgentDeferralStatus;
    let reason = body.reason.as_deref().map(|r| r.chars().take(500).collect::<String>());
    let status = match body.status {
        DeferralAgentStatus::Prompting => AgentDeferralStatus::Prompting,
        DeferralAgentStatus::Waiting => AgentDeferralStatus::Waiting(reason.as_deref().unwrap_or("waiting")),
    };
    // A zone the server cannot read is not recorded ("tomorrow 09:00" then reads as UTC).
    let zone = body.time_zone.as_deref().filter(|z| z.parse::<herd_core::deferral::Tz>().is_ok());
    let record =
        state.store.record_agent_deferral_status(host.checkin.id, &body.execution_id, status, zone, now).await?;
    Ok(DeferralStatusResponse { deferral: record.map(|r| agent_state(&r)) })
}
