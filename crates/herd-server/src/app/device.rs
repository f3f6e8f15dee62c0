//! What a host's local user sees and may do, authenticated by the host's device token: the host and its
//! policies, and starting the migration off a previous management system.

use crate::error::{ApiError, OsqueryError};
use crate::secrets::token_hash;
use crate::state::{SharedState, now_ms};
use herd_proto::fleet::DevicePolicy;
use std::net::IpAddr;
use std::time::Instant;

/// Why a device token was refused, with where a good one is: the agent publishes the current token (rotated
/// hourly) in its data directory and, as Fleet's agent does, in /opt/orbit/identifier.
pub fn rejected(token: &str) -> ApiError {
    if token.trim().is_empty() {
        ApiError::DeviceTokenRejected(
            "no device token in the URL: put the host's token there (cat /opt/orbit/identifier, or \
             /var/lib/herd-agent/identifier)",
        )
    } else {
        ApiError::DeviceTokenRejected(
            "this device token is not (or no longer) valid: the agent replaces it every hour; read the current \
             one from /opt/orbit/identifier or /var/lib/herd-agent/identifier",
        )
    }
}

/// The host a device token belongs to; a bad token is 401 and counts against the client's failure budget.
pub async fn host_id(state: &SharedState, client: IpAddr, token: &str) -> Result<i64, ApiError> {
    // The lookup is a hash lookup: a valid token is never refused for others' failures.
    let host = if token.len() > 256 { None } else { state.store.host_by_device_token(&token_hash(token)).await? };
    if let Some(host) = host {
        return Ok(host);
    }
    let rule = crate::rate_limit::address_rule(client, "too many bad device tokens from your address");
    state.device_limiter.record_failure(&[rule], Instant::now())?;
    Err(rejected(token))
}

/// The host's policies as its user sees them: failing first, then no answer yet, then passing.
pub async fn policies(state: &SharedState, host: &herd_store::HostRecord) -> Result<Vec<DevicePolicy>, ApiError> {
    Ok(device_policies_of(&state.store.host_policy_answers(host.id, host.team_id).await?))
}

/// The host view (as the admin API shows it) and the device's policies, from one read of its answers.
pub async fn view(
    state: &SharedState,
    record: herd_store::HostRecord,
) -> Result<(herd_proto::fleet::Host, Vec<DevicePolicy>), ApiError> {
    let answers = state.store.host_policy_answers(record.id, record.team_id).await?;
    let policies = device_policies_of(&answers);
    let deferrals = super::deferrals::of_host(state, record.id).await?;
    let mut host = super::hosts::view_with(state, record, &answers);
    host.deferrals = Some(deferrals);
    Ok((host, policies))
}

fn device_policies_of(answers: &[herd_store::HostPolicyAnswer]) -> Vec<DevicePolicy> {
    use herd_core::policy::PolicyResponse;
    let rank = |r: PolicyResponse| match r {
        PolicyResponse::Fail => 0,
        PolicyResponse::NoAnswer => 1,
        PolicyResponse::Pass => 2,
    };
    let mut sorted: Vec<&herd_store::HostPolicyAnswer> = answers.iter().collect();
    sorted.sort_by(|a, b| rank(a.response).cmp(&rank(b.response)).then_with(|| a.policy.name.cmp(&b.policy.name)));
    sorted
        .into_iter()
        .map(|a| DevicePolicy {
            id: a.policy.id,
            name: a.policy.name.clone(),
            description: a.policy.description.clone(),
            resolution: a.policy.resolution.clone(),
            critical: a.policy.critical,
            response: a.response.as_wire().to_string(),
            remediating: a.remediating,
        })
        .collect()
}

pub async fn host(state: &SharedState, client: IpAddr, token: &str) -> Result<herd_store::HostRecord, ApiError> {
    let host_id = host_id(state, client, token).await?;
    state.store.get_host(host_id).await?.ok_or(rejected(token))
}

/// Whether the host should move off its previous management system: migration is enabled, offered on its
/// platform (never Windows: `herd_core::migration::offered_on`), and the host last reported the old system
/// managing it. The orbit config's `needs_mdm_migration` and every device view read it here.
pub fn needs_migration(state: &SharedState, host: &herd_store::HostRecord) -> bool {
    let family = herd_core::platform::PlatformFamily::of_host_platform(&host.platform, &host.platform_like);
    state.settings.get().config.mdm.macos_migration.enable
        && herd_core::migration::offered_on(family)
        && host.managed_by_other == Some(1)
}

/// `voluntary` (the default) or `forced`.
pub fn migration_mode(state: &SharedState) -> String {
    let mode = state.settings.get().config.mdm.macos_migration.mode.clone();
    if mode.is_empty() { "voluntary".to_string() } else { mode }
}

/// Starts the host's migration (the device user asked): the webhook goes out through the job table and the
/// critical window opens; a second request inside the window sends nothing.
pub async fn start_migration(state: &SharedState, host: &herd_store::HostRecord) -> Result<(), ApiError> {
    let settings = state.settings.get();
    let mdm = &settings.config.mdm;
    if !mdm.macos_migration.enable {
        return Err(ApiError::invalid("mdm.macos_migration.enable", "migration is not enabled on this server"));
    }
    let now = now_ms();
    let job = crate::webhooks::migration_job(&mdm.macos_migration.webhook_url, host, now);
    let window_ms = mdm.migration_window_seconds.saturating_mul(1000);
    match state.store.start_migration(host.id, window_ms, &job, now).await? {
        herd_store::MigrationStart::Started => {
            state.hosts.evict(host.id);
            Ok(())
        }
        herd_store::MigrationStart::AlreadyOpen => Ok(()),
        herd_store::MigrationStart::NotEligible => {
            Err(ApiError::invalid("host", "this device does not report another management system"))
        }
    }
}

/// The device's user asks for every vital and policy at the next check-in (seed 000's curl line, the My
/// Device page's button).
pub async fn refetch(state: &SharedState, client: IpAddr, token: &str) -> Result<(), ApiError> {
    let host_id = host_id(state, client, token).await?;
    if !state.store.request_refetch(host_id, now_ms()).await? {
        return Err(ApiError::NotFound("host"));
    }
    Ok(super::AfterCommit::new().evict([host_id]).apply(state, None).await?)
}

/// An agent registers the device token its user's links carry (a token already another host's stays theirs).
pub async fn register_token(
    state: &SharedState,
    host: &crate::host_cache::CachedHost,
    token: &str,
    now: herd_core::Millis,
) -> Result<(), OsqueryError> {
    let token = token.trim();
    herd_core::validate::device_token(token)
        .map_err(|reason| OsqueryError::BadRequest(format!("device_auth_token: {reason}")))?;
    state.store.register_device_token(host.checkin.id, &token_hash(token), now).await.map_err(|e| match e {
        herd_store::StoreError::Conflict(reason) => OsqueryError::Conflict(reason),
        other => other.into(),
    })
}
