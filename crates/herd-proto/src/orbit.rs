//! Fleet's orbit API: what fleetd (Fleet's agent: orbit + osqueryd + Fleet Desktop) calls beside osqueryd's
//! TLS API. Field names, types and paths are Fleet's (`server/service/orbit.go`, `server/service/orbit_client.go`,
//! `server/fleet/orbit.go`, `server/fleet/api_orbit.go`, `server/fleet/scripts.go`, `server/fleet/capabilities.go`),
//! so a stock fleetd enrolls, fetches its configuration and runs scripts against herd unchanged.
//!
//! Every authenticated request carries `orbit_node_key` in its JSON body; a bad or missing one is answered
//! 401, on which fleetd deletes its node key file and enrolls again.

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub const ENROLL_PATH: &str = "/api/fleet/orbit/enroll";
pub const CONFIG_PATH: &str = "/api/fleet/orbit/config";
pub const PING_PATH: &str = "/api/fleet/orbit/ping";
pub const SCRIPT_REQUEST_PATH: &str = "/api/fleet/orbit/scripts/request";
/// Shared with herd-agent (`crate::agent::SCRIPTS_RESULT_PATH`): either body is accepted.
pub const SCRIPT_RESULT_PATH: &str = "/api/fleet/orbit/scripts/result";
/// Shared with herd-agent (`crate::agent::DEVICE_TOKEN_PATH`).
pub const DEVICE_TOKEN_PATH: &str = "/api/fleet/orbit/device_token";

/// The header in which Fleet's server lists what it supports (`fleet.CapabilitiesHeader`), comma-separated,
/// on the enroll and ping answers and every authenticated orbit answer; fleetd replaces its view of the
/// server's capabilities with each answer's.
pub const CAPABILITIES_HEADER: &str = "X-Fleet-Capabilities";
/// `orbit_endpoints`: the `/api/fleet/orbit` endpoints exist (enroll through orbit).
pub const CAPABILITY_ORBIT_ENDPOINTS: &str = "orbit_endpoints";
/// `token_rotation`: device tokens may be rotated (fleetd registers a new one hourly).
pub const CAPABILITY_TOKEN_ROTATION: &str = "token_rotation";

/// `POST /api/fleet/orbit/enroll` (Fleet's `EnrollOrbitRequest`). Unknown fields are accepted: newer fleetd
/// versions send more.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EnrollRequest {
    pub enroll_secret: String,
    pub hardware_uuid: String,
    pub hardware_serial: String,
    pub hostname: String,
    /// osquery's platform name (`darwin`, `windows`, `ubuntu`, …).
    pub platform: String,
    /// The identifier osqueryd enrolls with, when not the hardware UUID (`--host-identifier=instance`).
    pub osquery_identifier: String,
    pub computer_name: String,
    pub hardware_model: String,
}

/// Fleet's `EnrollOrbitResponse`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub orbit_node_key: String,
}

/// The body of `config` (and the node key of every authenticated request).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeKeyRequest {
    #[serde(default)]
    pub orbit_node_key: Option<String>,
}

/// `POST /api/fleet/orbit/config`: Fleet's `OrbitConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OrbitConfig {
    /// Seconds a script may run before fleetd kills it (Fleet's agent option `script_execution_timeout`).
    #[serde(default)]
    pub script_execution_timeout: i64,
    /// osqueryd's command-line flags (agent options `command_line_startup_flags`), as the admin wrote them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_line_startup_flags: Option<Value>,
    /// osquery extensions for this host's platform (agent options `extensions`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nudge_config: Option<Value>,
    #[serde(default)]
    pub notifications: OrbitNotifications,
    /// TUF channels of fleetd's components (agent options `update_channels`); absent: not set here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_channels: Option<UpdateChannels>,
}

/// Fleet's `OrbitConfigNotifications`: what fleetd should do now. Every field is sent, with its neutral value
/// when there is nothing to do.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OrbitNotifications {
    pub renew_enrollment_profile: bool,
    pub rotate_disk_encryption_key: bool,
    pub needs_mdm_migration: bool,
    pub needs_programmatic_windows_mdm_enrollment: bool,
    pub windows_mdm_discovery_endpoint: String,
    pub needs_programmatic_windows_mdm_unenrollment: bool,
    /// Script runs queued for this host: fleetd fetches each (`scripts/request`), runs it, posts its result.
    pub pending_script_execution_ids: Vec<String>,
    pub enforce_bitlocker_encryption: bool,
    pub pending_software_installer_ids: Vec<String>,
    pub run_setup_experience: bool,
    pub run_disk_encryption_escrow: bool,
}

/// Fleet's `OrbitUpdateChannels`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UpdateChannels {
    pub orbit: String,
    pub osqueryd: String,
    pub desktop: String,
}

/// `POST /api/fleet/orbit/scripts/request` (Fleet's `orbitGetScriptRequest`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScriptRequest {
    #[serde(default)]
    pub orbit_node_key: Option<String>,
    pub execution_id: String,
}

/// The answer to `scripts/request`: Fleet's `HostScriptResult` as JSON. fleetd runs the script when
/// `exit_code` is null (no result yet) and skips it otherwise.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HostScript {
    pub host_id: i64,
    pub execution_id: String,
    pub script_contents: String,
    pub output: String,
    /// Seconds, rounded.
    pub runtime: i64,
    pub exit_code: Option<i64>,
    pub timeout: Option<i64>,
    pub script_id: Option<i64>,
    pub policy_id: Option<i64>,
    pub team_id: Option<i64>,
    pub message: String,
}

/// The exit code fleetd reports for a script that did not end by itself (killed at its timeout, or could
/// not start); Fleet shows it as a timeout.
pub const EXIT_CODE_NOT_TERMINATED: i64 = -1;
/// The exit code fleetd reports when scripts are disabled on the host (output "Scripts are disabled").
pub const EXIT_CODE_SCRIPTS_DISABLED: i64 = -2;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn enroll_reads_what_fleetd_sends() {
        // orbit_client.go's enroll(): every field of EnrollOrbitRequest, empty strings included.
        let body = json!({"enroll_secret": "s", "hardware_uuid": "U", "hardware_serial": "C02", "hostname": "mac",
            "platform": "darwin", "osquery_identifier": "", "computer_name": "Mac", "hardware_model": "MacBookPro18,3"});
        let request: EnrollRequest = serde_json::from_value(body).unwrap();
        assert_eq!((request.hardware_uuid.as_str(), request.platform.as_str()), ("U", "darwin"));
        // An older fleetd sends fewer fields; a newer one more.
        let old: EnrollRequest = serde_json::from_value(json!({"enroll_secret": "s", "hardware_uuid": "U"})).unwrap();
        assert_eq!(old.hostname, "");
        assert!(serde_json::from_value::<EnrollRequest>(json!({"enroll_secret": "s", "future": 1})).is_ok());
        assert_eq!(
            serde_json::to_value(EnrollResponse { orbit_node_key: "k".into() }).unwrap(),
            json!({"orbit_node_key": "k"})
        );
    }

    #[test]
    fn config_has_every_notification_with_its_neutral_value() {
        let config = OrbitConfig { script_execution_timeout: 300, ..Default::default() };
        assert_eq!(
            serde_json::to_value(&config).unwrap(),
            json!({"script_execution_timeout": 300, "notifications": {
                "renew_enrollment_profile": false, "rotate_disk_encryption_key": false, "needs_mdm_migration": false,
                "needs_programmatic_windows_mdm_enrollment": false, "windows_mdm_discovery_endpoint": "",
                "needs_programmatic_windows_mdm_unenrollment": false, "pending_script_execution_ids": [],
                "enforce_bitlocker_encryption": false, "pending_software_installer_ids": [],
                "run_setup_experience": false, "run_disk_encryption_escrow": false}})
        );
        // Fleet omits what is empty: a body without them reads as nothing to do.
        let fleet: OrbitConfig =
            serde_json::from_value(json!({"notifications": {"pending_script_execution_ids": ["e1"]}})).unwrap();
        assert_eq!(fleet.notifications.pending_script_execution_ids, vec!["e1".to_string()]);
        assert!(!fleet.notifications.needs_mdm_migration);
    }

    #[test]
    fn host_script_is_fleets_host_script_result() {
        let script = HostScript {
            host_id: 7,
            execution_id: "e".into(),
            script_contents: "echo hi".into(),
            timeout: Some(300),
            policy_id: Some(3),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&script).unwrap(),
            json!({"host_id": 7, "execution_id": "e", "script_contents": "echo hi", "output": "", "runtime": 0,
                "exit_code": null, "timeout": 300, "script_id": null, "policy_id": 3, "team_id": null, "message": ""})
        );
    }
}
