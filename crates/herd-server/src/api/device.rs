//! Device endpoints (a host's local user, authenticated by the device token in the URL) and the agent
//! endpoint that registers device tokens (modelled on Fleet's orbit `device_token` endpoint).

use crate::auth::client_ip;
use crate::error::{ApiError, OsqueryError};
use crate::extract::OsqueryJson;
use crate::secrets::token_hash;
use crate::state::{SharedState, now_ms};
use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{get, head, post};
use herd_proto::agent::{
    Acknowledged, DesktopNotifications, DesktopSummary, DeviceConfig, DeviceMdm, DeviceMigration, DeviceTokenRequest,
};
use herd_proto::fleet::DevicePolicy;
use herd_store::StoreError;
use serde_json::{Value, json};
use std::net::IpAddr;
use std::time::Instant;

/// Under `/api/v1/fleet` and `/api/latest/fleet`.
pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route("/device/{token}", get(summary))
        .route("/device/{token}/desktop", get(desktop))
        .route("/device/{token}/policies", get(policies))
        .route("/device/{token}/refetch", post(refetch))
        .route("/device/{token}/ping", head(ping))
        .route("/device/{token}/migrate_mdm", post(migrate_mdm))
}

/// At the root: what herd-agent calls.
pub fn agent_routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route(herd_proto::agent::DEVICE_TOKEN_PATH, post(register_token))
        .route("/api/v1/fleet/orbit/device_token", post(register_token))
}

pub struct Client(pub IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for Client {
    type Rejection = std::convert::Infallible;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Client(client_ip(parts)))
    }
}

/// The host a device token belongs to; a bad token is 401 and counts against the client's failure budget.
pub async fn device_host(state: &SharedState, client: IpAddr, token: &str) -> Result<i64, ApiError> {
    // The lookup is a hash lookup: a valid token is never refused for others' failures.
    let host = if token.len() > 256 { None } else { state.store.host_by_device_token(&token_hash(token)).await? };
    if let Some(host) = host {
        return Ok(host);
    }
    let rule = crate::rate_limit::address_rule(client, "too many bad device tokens from your address");
    state.device_limiter.record_failure(&[rule], Instant::now())?;
    Err(ApiError::Unauthenticated)
}

/// The host's policies as its user sees them: failing first, then no answer yet, then passing.
pub(crate) async fn device_policies(
    state: &SharedState,
    host: &herd_store::HostRecord,
) -> Result<Vec<DevicePolicy>, ApiError> {
    Ok(device_policies_of(&state.store.host_policy_answers(host.id, host.team_id).await?))
}

/// The host view (as the admin API shows it) and the device's policies, from one read of its answers.
pub(crate) async fn device_view(
    state: &SharedState,
    record: herd_store::HostRecord,
) -> Result<(herd_proto::fleet::Host, Vec<DevicePolicy>), ApiError> {
    let answers = state.store.host_policy_answers(record.id, record.team_id).await?;
    let policies = device_policies_of(&answers);
    let deferrals = crate::api::deferrals::host_deferrals(state, record.id).await?;
    let mut host = crate::api::hosts::host_view_with(state, record, &answers);
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

pub(crate) async fn device_record(
    state: &SharedState,
    client: IpAddr,
    token: &str,
) -> Result<herd_store::HostRecord, ApiError> {
    let host_id = device_host(state, client, token).await?;
    state.store.get_host(host_id).await?.ok_or(ApiError::Unauthenticated)
}

/// Whether the host should move off its previous management system: migration is enabled and the host last
/// reported the old system managing it.
pub(crate) fn needs_migration(state: &SharedState, host: &herd_store::HostRecord) -> bool {
    state.settings.get().config.mdm.macos_migration.enable && host.managed_by_other == Some(1)
}

/// `voluntary` (the default) or `forced`.
pub(crate) fn migration_mode(state: &SharedState) -> String {
    let mode = state.settings.get().config.mdm.macos_migration.mode.clone();
    if mode.is_empty() { "voluntary".to_string() } else { mode }
}

/// Starts the host's migration (the device user asked): the webhook goes out through the job table and the
/// critical window opens; a second request inside the window sends nothing.
pub(crate) async fn start_migration(state: &SharedState, host: &herd_store::HostRecord) -> Result<(), ApiError> {
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

/// Fleet's `POST /device/{token}/migrate_mdm` → 204.
async fn migrate_mdm(
    State(state): State<SharedState>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<StatusCode, ApiError> {
    let record = device_record(&state, client, &token).await?;
    start_migration(&state, &record).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What the desktop notifier and the My Device page show of the organisation.
fn org_config(state: &SharedState) -> DeviceConfig {
    let mode = migration_mode(state);
    let settings = state.settings.get();
    DeviceConfig {
        org_info: settings.config.org_info.clone(),
        mdm: DeviceMdm { macos_migration: DeviceMigration { mode } },
    }
}

/// Fleet's `GET /device/{token}`: the host (its policies without SQL or authors) and the organisation.
async fn summary(
    State(state): State<SharedState>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = device_record(&state, client, &token).await?;
    let (host, policies) = device_view(&state, record).await?;
    let mut host = serde_json::to_value(host).map_err(|e| ApiError::Internal(e.into()))?;
    host["policies"] = json!(policies);
    let config = org_config(&state);
    Ok(Json(json!({
        "host": host,
        "org_logo_url": config.org_info.org_logo_url,
        "org_logo_url_light_background": config.org_info.org_logo_url_light_background,
        "org_contact_url": config.org_info.contact_url,
        "global_config": config,
    })))
}

/// What `herd-agent desktop` polls: how many policies fail and whether the user has something to do.
async fn desktop(
    State(state): State<SharedState>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<Json<DesktopSummary>, ApiError> {
    let record = device_record(&state, client, &token).await?;
    let failing = device_policies(&state, &record).await?.iter().filter(|p| p.response == "fail").count();
    let deferrals = crate::api::deferrals::host_deferrals(&state, record.id).await?;
    let asking = deferrals.iter().filter(|d| d.state == "prompting").count();
    Ok(Json(DesktopSummary {
        failing_policies_count: failing as u64,
        deferrals_waiting_count: asking as u64,
        notifications: DesktopNotifications {
            needs_mdm_migration: needs_migration(&state, &record),
            // Apple enrollment profiles await an Apple MDM transport: never due here.
            renew_enrollment_profile: false,
        },
        config: org_config(&state),
    }))
}

async fn policies(
    State(state): State<SharedState>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let record = device_record(&state, client, &token).await?;
    Ok(Json(json!({"policies": device_policies(&state, &record).await?})))
}

/// `HEAD /device/{token}/ping`: 200 while the token is good (the agent checks its token with it).
async fn ping(
    State(state): State<SharedState>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<StatusCode, ApiError> {
    device_host(&state, client, &token).await?;
    Ok(StatusCode::OK)
}

/// Seed 000's line: `curl -X POST "$URL/api/latest/fleet/device/$TOKEN/refetch"` — no body needed. The host
/// runs all its vitals and policies at its next check-in.
async fn refetch(
    State(state): State<SharedState>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let host_id = device_host(&state, client, &token).await?;
    if !state.store.request_refetch(host_id, now_ms()).await? {
        return Err(ApiError::NotFound("host"));
    }
    state.hosts.evict(host_id);
    Ok(Json(json!({})))
}

impl crate::api::osquery::NodeKeyed for DeviceTokenRequest {
    fn node_key(&self) -> Option<&str> {
        self.node_key.as_deref()
    }
}

async fn register_token(
    State(state): State<SharedState>,
    request: OsqueryJson<DeviceTokenRequest>,
) -> Result<Json<Acknowledged>, OsqueryError> {
    let (host, now) = crate::api::osquery::check_in(&state, &request).await?;
    let token = request.body.device_auth_token.trim();
    herd_core::validate::device_token(token)
        .map_err(|reason| OsqueryError::BadRequest(format!("device_auth_token: {reason}")))?;
    state.store.register_device_token(host.checkin.id, &token_hash(token), now).await.map_err(|e| match e {
        // Another host's token: it stays theirs.
        StoreError::Conflict(reason) => OsqueryError::Conflict(reason),
        other => other.into(),
    })?;
    Ok(Json(Acknowledged {}))
}
