//! Fleet's orbit (fleetd's agent process) as Fleet's server answers it: enrollment into the host row it shares
//! with the host's osqueryd, its configuration (agent options, and notifications: queued scripts, the
//! migration offer), and the scripts it fetches. Its results go through `app::scripts::record_agent_result`,
//! which reads both Fleet's result body and herd-agent's.

use super::AfterCommit;
use crate::error::OsqueryError;
use crate::host_cache::CachedHost;
use crate::secrets::{random_token, token_hash};
use crate::state::{SharedState, now_ms};
use herd_core::Millis;
use herd_core::platform::PlatformFamily;
use herd_proto::orbit::{EnrollRequest, EnrollResponse, HostScript, OrbitConfig, OrbitNotifications, UpdateChannels};
use herd_store::{ExecutionStatus, OrbitEnroll, RunOutcome, StoreError};
use serde_json::{Map, Value, json};
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Longest identifier or name kept from an enroll request.
const MAX_FIELD: usize = 255;

/// Enrolls a host's orbit with an enroll secret: the host row of the same hardware UUID (or osquery
/// identifier) gets the orbit node key, whether osqueryd enrolled it first or not; without one, a new row
/// that osqueryd's enrollment joins. A second orbit enrollment of the machine (fleetd lost its key file, or
/// its host was deleted and it enrolls again) gets a new key for the row the hardware UUID names.
pub async fn enroll(
    state: &SharedState,
    client: IpAddr,
    request: EnrollRequest,
) -> Result<EnrollResponse, OsqueryError> {
    let team_id = super::osquery::team_of_secret(state, client, &request.enroll_secret)?;
    let hardware_uuid = request.hardware_uuid.trim();
    if hardware_uuid.is_empty() {
        return Err(OsqueryError::BadRequest("hardware_uuid is empty".into()));
    }
    let fields = [
        &request.hardware_uuid,
        &request.osquery_identifier,
        &request.hostname,
        &request.computer_name,
        &request.platform,
        &request.hardware_serial,
        &request.hardware_model,
    ];
    if fields.iter().any(|f| f.len() > MAX_FIELD) {
        return Err(OsqueryError::BadRequest(format!("enroll fields are at most {MAX_FIELD} characters")));
    }
    // As for osqueryd: everything above is in memory; the write below waits while the server is behind.
    state.enrollment_gate.admit(Instant::now()).map_err(|deferred| OsqueryError::Throttled {
        reason: deferred.to_string(),
        retry_after_s: deferred.retry_after_s,
    })?;
    let orbit_node_key = random_token(32);
    let host = OrbitEnroll {
        hardware_uuid: hardware_uuid.to_string(),
        osquery_identifier: request.osquery_identifier.trim().to_string(),
        orbit_node_key_hash: token_hash(&orbit_node_key),
        team_id,
        hostname: request.hostname.trim().to_string(),
        computer_name: request.computer_name.trim().to_string(),
        platform: request.platform.trim().to_string(),
        hardware_serial: request.hardware_serial.trim().to_string(),
        hardware_model: request.hardware_model.trim().to_string(),
    };
    let mark = state.hosts.eviction_mark();
    let enrolled = match state.store.enroll_orbit(&host, now_ms()).await {
        Ok(enrolled) => enrolled,
        Err(StoreError::NotFound("team")) => return Err(OsqueryError::NodeInvalid("invalid enroll secret")),
        Err(err) => return Err(err.into()),
    };
    let host_id = enrolled.checkin.id;
    let mut effects = AfterCommit::new();
    if enrolled.new_host {
        state.hosts.insert_unless_evicted_since(enrolled.checkin, mark);
    } else {
        // Its previous orbit key must stop working here at once (other servers: the change feed).
        effects = effects.evict([host_id]);
    }
    state.metrics.enrollments.fetch_add(1, Ordering::Relaxed);
    // Fleet's activity for an orbit enrollment.
    let display_name = if host.computer_name.is_empty() { &host.hostname } else { &host.computer_name };
    let details = json!({"host_id": host_id, "host_serial": host.hardware_serial, "host_display_name": display_name});
    effects.record("fleet_enrolled", details).apply(state, None).await?;
    tracing::info!(host_id, ?team_id, "orbit enrolled");
    Ok(EnrollResponse { orbit_node_key })
}

/// What orbit runs with: its team's agent options (or the global ones) as Fleet reads them, and what it
/// should do now.
pub async fn config(state: &SharedState, host: &CachedHost, now: Millis) -> Result<OrbitConfig, OsqueryError> {
    let settings = state.settings.get();
    let options = settings.agent_options(host.checkin.team_id);
    let family = PlatformFamily::of_host_platform(&host.checkin.platform, &host.checkin.platform_like);
    let mut notifications = OrbitNotifications::default();
    let host_id = host.checkin.id;
    // Read each time, as Fleet does: a run queued by a report on any server shows up at the next fetch.
    let queued = state.store.queued_executions(host_id).await?;
    let mut longest_queued_s = None;
    if !queued.is_empty() {
        if settings.config.server_settings.scripts_disabled {
            // Runs this host will never do are finished as errors rather than left pending forever.
            let why = "scripts are disabled on the server";
            for (execution_id, _) in &queued {
                state
                    .store
                    .record_execution_result(host_id, execution_id, RunOutcome::Refused, None, why, None, now)
                    .await?;
            }
            AfterCommit::new().evict([host_id]).apply(state, None).await?;
        } else {
            longest_queued_s = queued.iter().map(|(_, timeout_s)| *timeout_s).max();
            notifications.pending_script_execution_ids = queued.into_iter().map(|(id, _)| id).collect();
        }
    }
    if settings.config.mdm.macos_migration.enable
        && let Some(record) = state.store.get_host(host_id).await?
    {
        notifications.needs_mdm_migration = super::device::needs_migration(state, &record);
    }
    Ok(OrbitConfig {
        script_execution_timeout: script_timeout_s(options, longest_queued_s),
        command_line_startup_flags: options.get("command_line_startup_flags").filter(|v| !v.is_null()).cloned(),
        extensions: extensions_for(options.get("extensions"), family),
        nudge_config: None,
        notifications,
        update_channels: options
            .get("update_channels")
            .filter(|v| !v.is_null())
            .and_then(|v| serde_json::from_value::<UpdateChannels>(v.clone()).ok()),
    })
}

/// The seconds fleetd gives each script: the agent options' `script_execution_timeout` when the admin set
/// one; else the longest limit among the runs queued now (an automation's runs carry the limit configured for
/// them); else Fleet's default, 5 minutes.
fn script_timeout_s(options: &Value, longest_queued_s: Option<i64>) -> i64 {
    options
        .get("script_execution_timeout")
        .and_then(Value::as_i64)
        .filter(|s| *s > 0)
        .or(longest_queued_s.filter(|s| *s > 0))
        .unwrap_or(super::scripts::DEFAULT_TIMEOUT_S)
}

/// The agent options' osquery extensions that apply to a host of `family`, as Fleet filters them: by
/// `platform` (`macos`, `windows`, `linux`). Extensions limited to labels need label membership, which herd
/// does not have: they go to no host. None when nothing is left (orbit expects no field then).
fn extensions_for(extensions: Option<&Value>, family: Option<PlatformFamily>) -> Option<Value> {
    let wanted = match family? {
        PlatformFamily::Darwin => "macos",
        PlatformFamily::Windows => "windows",
        PlatformFamily::Linux => "linux",
        PlatformFamily::Chrome => return None,
    };
    let kept: Map<String, Value> = extensions?
        .as_object()?
        .iter()
        .filter(|(_, info)| info.get("platform").and_then(Value::as_str) == Some(wanted))
        .filter(|(_, info)| info.get("labels").and_then(Value::as_array).is_none_or(|labels| labels.is_empty()))
        .map(|(name, info)| (name.clone(), info.clone()))
        .collect();
    (!kept.is_empty()).then_some(Value::Object(kept))
}

/// `scripts/request`: one of this host's runs, as Fleet's `HostScriptResult`. A run of another host, or none,
/// is "not found" (existence does not leak across hosts). A run that has a result already carries its exit
/// code, so fleetd does not run it again.
pub async fn script(state: &SharedState, host: &CachedHost, execution_id: &str) -> Result<HostScript, OsqueryError> {
    let execution = state
        .store
        .execution(execution_id)
        .await?
        .filter(|e| e.host_id == host.checkin.id)
        .ok_or(OsqueryError::NotFound("no script execution of that id for this host"))?;
    let waiting = matches!(execution.status, ExecutionStatus::Pending | ExecutionStatus::Deferred);
    Ok(HostScript {
        host_id: execution.host_id,
        exit_code: if waiting {
            None
        } else {
            Some(execution.exit_code.unwrap_or(herd_proto::orbit::EXIT_CODE_NOT_TERMINATED))
        },
        execution_id: execution.execution_id,
        script_contents: execution.contents,
        output: execution.output,
        runtime: execution.runtime_ms.unwrap_or(0) / 1000,
        timeout: Some(execution.timeout_s),
        script_id: execution.script_id,
        policy_id: execution.policy_id,
        team_id: host.checkin.team_id,
        message: String::new(),
    })
}

/// Fleet's `orbit_info` detail query, asked with the vitals of hosts whose fleetd enrolled: its
/// `scripts_enabled` is whether fleetd runs scripts (`--enable-scripts`, or the agent options' `script_execution_enabled`).
pub const ORBIT_INFO_QUERY: &str = "fleet_detail_query_orbit_info";
/// Fleet's own query: every column, because orbit versions before `scripts_enabled` or `desktop_version` would
/// fail a query naming them (`server/service/osquery_utils/queries.go`, `orbit_info`). Only those two and
/// `version` are read; the device token in the row is not kept.
pub const ORBIT_INFO_SQL: &str = "SELECT * FROM orbit_info";
/// The table is fleetd's extension: osqueryd without orbit beside it has none.
pub const ORBIT_INFO_DISCOVERY: &str =
    "SELECT 1 FROM osquery_registry WHERE active = 1 AND registry = 'table' AND name = 'orbit_info'";

/// What an `orbit_info` row says about running scripts: Fleet reads "1" as enabled and anything else as
/// disabled; an orbit too old to have the column says nothing.
pub fn orbit_runs_scripts(rows: &[herd_core::vitals::Row]) -> Option<bool> {
    let row = rows.first()?;
    row.get("scripts_enabled").map(|value| value.trim() == "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orbit_info_says_whether_scripts_run() {
        let row = |pairs: &[(&str, &str)]| -> herd_core::vitals::Row {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        let cases = [
            (vec![row(&[("version", "1.32.0"), ("scripts_enabled", "1")])], Some(true)),
            (vec![row(&[("version", "1.32.0"), ("scripts_enabled", "0")])], Some(false)),
            (vec![row(&[("version", "1.32.0"), ("scripts_enabled", "")])], Some(false)),
            (vec![row(&[("version", "1.9.0")])], None),
            (vec![], None),
        ];
        for (rows, want) in cases {
            assert_eq!(orbit_runs_scripts(&rows), want, "{rows:?}");
        }
    }

    #[test]
    fn extensions_go_to_their_platform_only() {
        let extensions = json!({
            "hello_mac": {"platform": "macos", "channel": "stable"},
            "hello_win": {"platform": "windows", "channel": "stable"},
            "hello_linux": {"platform": "linux", "channel": "edge"},
            "labelled": {"platform": "macos", "channel": "stable", "labels": ["Engineering"]},
        });
        let cases = [
            (Some(PlatformFamily::Darwin), Some(json!({"hello_mac": {"platform": "macos", "channel": "stable"}}))),
            (Some(PlatformFamily::Windows), Some(json!({"hello_win": {"platform": "windows", "channel": "stable"}}))),
            (Some(PlatformFamily::Linux), Some(json!({"hello_linux": {"platform": "linux", "channel": "edge"}}))),
            (Some(PlatformFamily::Chrome), None),
            (None, None),
        ];
        for (family, expected) in cases {
            assert_eq!(extensions_for(Some(&extensions), family), expected, "{family:?}");
        }
        assert_eq!(extensions_for(None, Some(PlatformFamily::Darwin)), None);
        assert_eq!(extensions_for(Some(&json!("not a map")), Some(PlatformFamily::Darwin)), None);
    }

    #[test]
    fn script_timeouts() {
        let cases = [
            (json!({}), None, 300),
            (json!({}), Some(60), 60),
            (json!({"script_execution_timeout": 900}), Some(60), 900),
            (json!({"script_execution_timeout": 0}), Some(60), 60),
            (json!({"script_execution_timeout": "soon"}), None, 300),
        ];
        for (options, queued, expected) in cases {
            assert_eq!(script_timeout_s(&options, queued), expected, "{options} {queued:?}");
        }
    }
}
