//! herd's own agent protocol: what herd-agent calls beside the osquery TLS API (at Fleet's orbit paths) —
//! queued script runs and their results, deferred runs' status, configuration profile commands and their
//! answers, the device token — and what `herd-agent desktop` calls on the device API. The server's handlers
//! and the agent both use these types, so a renamed field fails to compile instead of breaking enrolled hosts.
//!
//! Every agent request carries the node key as `node_key` (Fleet's orbit clients send `orbit_node_key`,
//! accepted too). Options the agent always sends travel as `null` when empty, as they always have; states and
//! operations are enums whose serde names are the strings on the wire.

use herd_core::Millis;
use serde::{Deserialize, Serialize};

pub use crate::osquery::Acknowledged;

pub const SCRIPTS_PENDING_PATH: &str = "/api/fleet/orbit/scripts/pending";
pub const SCRIPTS_RESULT_PATH: &str = "/api/fleet/orbit/scripts/result";
pub const DEFERRALS_STATUS_PATH: &str = "/api/fleet/orbit/deferrals/status";
pub const PROFILES_COMMANDS_PATH: &str = "/api/fleet/orbit/profiles/commands";
pub const PROFILES_RESULTS_PATH: &str = "/api/fleet/orbit/profiles/results";
pub const DEVICE_TOKEN_PATH: &str = "/api/fleet/orbit/device_token";

/// `POST /api/fleet/orbit/scripts/pending`: the runs queued for this host.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PendingScriptsRequest {
    #[serde(default, alias = "orbit_node_key", skip_serializing_if = "Option::is_none")]
    pub node_key: Option<String>,
    /// Whether the agent was started with scripts enabled (when not, the server fails the queued runs).
    #[serde(default)]
    pub scripts_enabled: bool,
    /// The agent keeps deferred runs itself and asks its user (herd-agent does); any other runner gets them
    /// as ordinary runs.
    #[serde(default)]
    pub deferrals: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PendingScriptsResponse {
    pub scripts: Vec<PendingScript>,
}

/// One queued run. Every field is sent, `null` when empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingScript {
    pub execution_id: String,
    #[serde(default)]
    pub name: String,
    pub contents: String,
    #[serde(default)]
    pub timeout_s: Option<i64>,
    /// Set when an automation queued the run: the policy to re-check once the host's runs are done.
    #[serde(default)]
    pub policy_id: Option<i64>,
    #[serde(default)]
    pub policy_query: Option<String>,
    /// The revision of `policy_query` (servers before revisions in query names send none).
    #[serde(default)]
    pub policy_revision: Option<i64>,
    /// Set when the run waits on the user (a deferrable remediation): the agent holds it in its schedule.
    #[serde(default)]
    pub deferral: Option<DeferralInfo>,
}

/// What the server sends with a deferred run: the rules, the words, and the choices made so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeferralInfo {
    pub settings: crate::fleet::DeferralSettings,
    #[serde(default)]
    pub policy_name: String,
    #[serde(default)]
    pub org_name: String,
    pub state: DeferralProgress,
}

/// The server's record of a deferral's choices (the agent follows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeferralProgress {
    pub first_prompt_at: Option<Millis>,
    #[serde(default)]
    pub deferrals_used: i64,
    pub scheduled_at: Option<Millis>,
}

impl DeferralProgress {
    /// The state the deferral rules decide from.
    pub fn core(&self) -> herd_core::deferral::DeferralState {
        herd_core::deferral::DeferralState {
            first_prompt_at: self.first_prompt_at,
            deferrals_used: u32::try_from(self.deferrals_used.max(0)).unwrap_or(u32::MAX),
            scheduled_at: self.scheduled_at,
        }
    }
}

/// `POST /api/fleet/orbit/scripts/result`: a run's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptResultRequest {
    #[serde(default, alias = "orbit_node_key", skip_serializing_if = "Option::is_none")]
    pub node_key: Option<String>,
    pub execution_id: String,
    /// None: the script could not run, was killed at its timeout, or the agent stopped during it.
    pub exit_code: Option<i64>,
    #[serde(default)]
    pub output: String,
    #[serde(default)]
    pub runtime_ms: Option<i64>,
    /// Fleet's fleetd reports its body (`HostScriptResultPayload`) here too: the run time in whole seconds
    /// instead of `runtime_ms`. Its presence marks Fleet's body, whose exit codes -1 (did not end by itself)
    /// and -2 (scripts disabled) carry meaning (`crate::orbit`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<i64>,
    /// Fleet's body: the time limit the run had, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// The script was killed at its time limit (older agents do not say: false).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timed_out: bool,
    /// The agent re-runs the remediated policy itself after the round (herd-agent does); otherwise the server
    /// hands the policy out again once the host's last automation run has finished.
    #[serde(default)]
    pub rechecks_locally: bool,
    /// A deferred run: what made it run.
    #[serde(default)]
    pub deferral_trigger: Option<DeferralTrigger>,
}

/// What made a deferred run run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeferralTrigger {
    /// The time the user chose came.
    Scheduled,
    /// herd enforced the deadline.
    Deadline,
    /// Nobody was there to ask (or the rules could not be read): the fix ran without a prompt.
    NoUser,
    /// A trigger this server does not know (a newer agent): the result counts, without a deferral activity.
    #[serde(other)]
    Unknown,
}

/// `POST /api/fleet/orbit/deferrals/status`: what the agent does about a deferred run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeferralStatusRequest {
    #[serde(default, alias = "orbit_node_key", skip_serializing_if = "Option::is_none")]
    pub node_key: Option<String>,
    pub execution_id: String,
    pub status: DeferralAgentStatus,
    /// Why it waits (`waiting`); `null` otherwise.
    #[serde(default)]
    pub reason: Option<String>,
    /// The host's IANA time zone.
    #[serde(default)]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeferralAgentStatus {
    /// The user is being asked.
    Prompting,
    /// The run waits (a blocking app, nobody logged in, the notice before the deadline): `reason` says why.
    Waiting,
}

impl DeferralAgentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeferralAgentStatus::Prompting => "prompting",
            DeferralAgentStatus::Waiting => "waiting",
        }
    }
}

/// The state the agent must follow; `deferral: null` when the run is no longer deferred (the agent drops it
/// and fetches its scripts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DeferralStatusResponse {
    pub deferral: Option<DeferralProgress>,
}

// `POST /api/fleet/orbit/profiles/commands` takes `crate::osquery::NodeKeyRequest` (asking also tells the
// server this agent applies profiles).

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileCommandsResponse {
    pub commands: Vec<ProfileCommand>,
}

/// A profile command, in the order the agent must apply them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileCommand {
    pub command_uuid: String,
    pub operation: ProfileOperation,
    pub identifier: String,
    #[serde(default)]
    pub name: String,
    /// The document to install (`herd_core::profiles::ProfileDocument`), as the admin uploaded it; `null`
    /// for removes. Passed through unparsed, so a document one agent cannot read fails that command alone
    /// (answered with the reason), not the whole list.
    #[serde(default)]
    pub profile: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileOperation {
    Install,
    Remove,
    /// An operation this agent does not know (a newer server): answered as an error, the others still apply.
    #[serde(other)]
    Unknown,
}

impl ProfileOperation {
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileOperation::Install => "install",
            ProfileOperation::Remove => "remove",
            ProfileOperation::Unknown => "unknown",
        }
    }
}

/// `POST /api/fleet/orbit/profiles/results`: the answers to commands.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProfileResultsRequest {
    #[serde(default, alias = "orbit_node_key", skip_serializing_if = "Option::is_none")]
    pub node_key: Option<String>,
    pub results: Vec<ProfileCommandResult>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProfileCommandResult {
    pub command_uuid: String,
    pub status: ProfileCommandStatus,
    /// Why the command failed (`error` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ProfileCommandResult {
    /// Applied (None) or the reason it was not.
    pub fn new(command_uuid: String, error: Option<String>) -> ProfileCommandResult {
        let status = if error.is_some() { ProfileCommandStatus::Error } else { ProfileCommandStatus::Acknowledged };
        ProfileCommandResult { command_uuid, status, detail: error }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileCommandStatus {
    Acknowledged,
    Error,
}

/// `POST /api/fleet/orbit/device_token` (also under `/api/v1`): registers the token local users present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceTokenRequest {
    /// Fleet's orbit sends `orbit_node_key`, accepted under either name.
    #[serde(default, alias = "orbit_node_key", skip_serializing_if = "Option::is_none")]
    pub node_key: Option<String>,
    pub device_auth_token: String,
}

/// `GET /api/latest/fleet/device/{token}/desktop` (Fleet's shape, plus herd's deferral count): what
/// `herd-agent desktop` polls. Read leniently: a missing part reads as nothing to say.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DesktopSummary {
    pub failing_policies_count: u64,
    /// Fleet's: whether the self-service page exists. Fleet Desktop shows its "Self-service" item unless this
    /// is `false` (null included), so herd, which has no self-service page, says `false`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_service: Option<bool>,
    /// herd's own: fixes waiting on the user's choice.
    pub deferrals_waiting_count: u64,
    pub notifications: DesktopNotifications,
    pub config: DeviceConfig,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DesktopNotifications {
    pub needs_mdm_migration: bool,
    pub renew_enrollment_profile: bool,
}

/// What the desktop notifier and the My Device page show of the organisation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceConfig {
    pub org_info: crate::fleet::OrgInfo,
    pub mdm: DeviceMdm,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceMdm {
    pub macos_migration: DeviceMigration,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct DeviceMigration {
    /// voluntary | forced (empty when migration is off)
    pub mode: String,
}

/// `POST /api/latest/fleet/device/{token}/deferrals/{policy_id}`: the device user's choice.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeferralChoiceRequest {
    /// "now", or one of the offered options as the admin wrote it.
    pub choice: String,
    /// Who chose: the desktop notifier sends the login name; the My Device page, which cannot know who sits
    /// at the computer, says "My Device page"; other callers may leave it out (stored as NULL).
    #[serde(default)]
    pub chosen_by: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeferralChoiceResponse {
    pub deferral: crate::fleet::HostDeferral,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn settings() -> crate::fleet::DeferralSettings {
        serde_json::from_value(json!({"options": ["1h"], "max_deferrals": 1, "deadline_after": "1d"})).unwrap()
    }

    /// Serializes `value` and compares with the JSON sent today; parses that JSON back into the same value.
    fn round_trip<T>(what: &str, value: &T, today: Value)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        assert_eq!(serde_json::to_value(value).unwrap(), today, "{what}: serialized");
        assert_eq!(&serde_json::from_value::<T>(today).unwrap(), value, "{what}: parsed");
    }

    fn pending(deferral: Option<DeferralInfo>) -> PendingScript {
        PendingScript {
            execution_id: "e1".into(),
            name: "fix.sh".into(),
            contents: "true".into(),
            timeout_s: Some(300),
            policy_id: Some(7),
            policy_query: Some("SELECT 1".into()),
            policy_revision: Some(2),
            deferral,
        }
    }

    #[test]
    fn script_bodies_are_todays() {
        round_trip(
            "pending request",
            &PendingScriptsRequest { node_key: Some("k".into()), scripts_enabled: true, deferrals: true },
            json!({"node_key": "k", "scripts_enabled": true, "deferrals": true}),
        );
        let info = DeferralInfo {
            settings: settings(),
            policy_name: "Disk encrypted".into(),
            org_name: "Acme".into(),
            state: DeferralProgress { first_prompt_at: Some(5), deferrals_used: 1, scheduled_at: None },
        };
        let settings_json = serde_json::to_value(settings()).unwrap();
        round_trip(
            "pending response",
            &PendingScriptsResponse { scripts: vec![pending(Some(info))] },
            json!({"scripts": [{
                "execution_id": "e1", "name": "fix.sh", "contents": "true", "timeout_s": 300, "policy_id": 7,
                "policy_query": "SELECT 1", "policy_revision": 2,
                "deferral": {"settings": settings_json, "policy_name": "Disk encrypted", "org_name": "Acme",
                    "state": {"first_prompt_at": 5, "deferrals_used": 1, "scheduled_at": null}},
            }]}),
        );
        let plain = PendingScript { policy_id: None, policy_query: None, policy_revision: None, ..pending(None) };
        round_trip(
            "a manual run: every field sent, null when empty",
            &plain,
            json!({"execution_id": "e1", "name": "fix.sh", "contents": "true", "timeout_s": 300, "policy_id": null,
                "policy_query": null, "policy_revision": null, "deferral": null}),
        );
        let result = ScriptResultRequest {
            node_key: Some("k".into()),
            execution_id: "e1".into(),
            exit_code: Some(0),
            output: "ok\n".into(),
            runtime_ms: Some(12),
            runtime: None,
            timeout: None,
            timed_out: false,
            rechecks_locally: true,
            deferral_trigger: None,
        };
        round_trip(
            "result",
            &result,
            json!({"node_key": "k", "rechecks_locally": true, "deferral_trigger": null, "execution_id": "e1",
                "exit_code": 0, "output": "ok\n", "runtime_ms": 12}),
        );
        let killed = ScriptResultRequest { exit_code: None, timed_out: true, ..result.clone() };
        round_trip(
            "a run killed at its time limit says so",
            &killed,
            json!({"node_key": "k", "rechecks_locally": true, "deferral_trigger": null, "execution_id": "e1",
                "exit_code": null, "output": "ok\n", "runtime_ms": 12, "timed_out": true}),
        );
        for (trigger, text) in [
            (DeferralTrigger::Scheduled, "scheduled"),
            (DeferralTrigger::Deadline, "deadline"),
            (DeferralTrigger::NoUser, "no_user"),
        ] {
            let with = ScriptResultRequest { deferral_trigger: Some(trigger), exit_code: None, ..result.clone() };
            round_trip(
                text,
                &with,
                json!({"node_key": "k", "rechecks_locally": true, "deferral_trigger": text, "execution_id": "e1",
                    "exit_code": null, "output": "ok\n", "runtime_ms": 12}),
            );
        }
    }

    #[test]
    fn other_runners_results_parse() {
        // A runner other than herd-agent: Fleet's key name, no runtime, no herd fields, an unknown trigger.
        let body = json!({"orbit_node_key": "k", "execution_id": "e", "exit_code": null, "deferral_trigger": "later"});
        let parsed: ScriptResultRequest = serde_json::from_value(body).unwrap();
        assert_eq!(parsed.node_key.as_deref(), Some("k"));
        assert_eq!((parsed.output.as_str(), parsed.runtime_ms, parsed.rechecks_locally), ("", None, false));
        assert_eq!(parsed.deferral_trigger, Some(DeferralTrigger::Unknown));
        let pending: PendingScriptsRequest = serde_json::from_value(json!({"node_key": "k"})).unwrap();
        assert_eq!((pending.scripts_enabled, pending.deferrals), (false, false));
        // An older server: no policy or deferral fields at all.
        let old: PendingScript = serde_json::from_value(json!({"execution_id": "e", "contents": "true"})).unwrap();
        assert_eq!((old.name.as_str(), old.timeout_s, old.deferral), ("", None, None));
    }

    #[test]
    fn deferral_bodies_are_todays() {
        let waiting = DeferralStatusRequest {
            node_key: Some("k".into()),
            execution_id: "e1".into(),
            status: DeferralAgentStatus::Waiting,
            reason: Some("waiting for zoom to close".into()),
            time_zone: Some("Europe/Paris".into()),
        };
        round_trip(
            "waiting",
            &waiting,
            json!({"node_key": "k", "execution_id": "e1", "status": "waiting",
                "reason": "waiting for zoom to close", "time_zone": "Europe/Paris"}),
        );
        let prompting = DeferralStatusRequest { status: DeferralAgentStatus::Prompting, reason: None, ..waiting };
        round_trip(
            "prompting",
            &prompting,
            json!({"node_key": "k", "execution_id": "e1", "status": "prompting", "reason": null,
                "time_zone": "Europe/Paris"}),
        );
        let state = DeferralProgress { first_prompt_at: Some(1), deferrals_used: 0, scheduled_at: Some(9) };
        round_trip(
            "followed",
            &DeferralStatusResponse { deferral: Some(state) },
            json!({"deferral": {"first_prompt_at": 1, "deferrals_used": 0, "scheduled_at": 9}}),
        );
        round_trip("no longer deferred", &DeferralStatusResponse { deferral: None }, json!({"deferral": null}));
        assert!(
            serde_json::from_value::<DeferralStatusRequest>(json!({"execution_id": "e", "status": "asleep"})).is_err()
        );
        round_trip(
            "a choice",
            &DeferralChoiceRequest { choice: "4h".into(), chosen_by: Some("ada".into()) },
            json!({"choice": "4h", "chosen_by": "ada"}),
        );
        assert!(
            serde_json::from_value::<DeferralChoiceRequest>(json!({"choice": "4h", "extra": 1})).is_err(),
            "an admin-facing body: unknown fields refused"
        );
    }

    #[test]
    fn profile_bodies_are_todays() {
        let install = ProfileCommand {
            command_uuid: "c1".into(),
            operation: ProfileOperation::Install,
            identifier: "com.example.motd".into(),
            name: "MOTD".into(),
            profile: Some(json!({"identifier": "com.example.motd", "payloads": []})),
        };
        let remove = ProfileCommand {
            command_uuid: "c2".into(),
            operation: ProfileOperation::Remove,
            identifier: "old".into(),
            name: "Old".into(),
            profile: None,
        };
        round_trip(
            "commands",
            &ProfileCommandsResponse { commands: vec![install, remove] },
            json!({"commands": [
                {"command_uuid": "c1", "operation": "install", "identifier": "com.example.motd", "name": "MOTD",
                    "profile": {"identifier": "com.example.motd", "payloads": []}},
                {"command_uuid": "c2", "operation": "remove", "identifier": "old", "name": "Old", "profile": null},
            ]}),
        );
        let unknown: ProfileCommand = serde_json::from_value(
            json!({"command_uuid": "c3", "operation": "quarantine", "identifier": "x", "profile": null}),
        )
        .unwrap();
        assert_eq!(unknown.operation, ProfileOperation::Unknown, "a newer server's operation fails that command only");
        round_trip(
            "results",
            &ProfileResultsRequest {
                node_key: Some("k".into()),
                results: vec![
                    ProfileCommandResult::new("c1".into(), None),
                    ProfileCommandResult::new("c2".into(), Some("no user \"web\" on this host".into())),
                ],
            },
            json!({"node_key": "k", "results": [
                {"command_uuid": "c1", "status": "acknowledged"},
                {"command_uuid": "c2", "status": "error", "detail": "no user \"web\" on this host"},
            ]}),
        );
        assert!(
            serde_json::from_value::<ProfileResultsRequest>(
                json!({"node_key": "k", "results": [{"command_uuid": "c", "status": "done"}]})
            )
            .is_err()
        );
    }

    #[test]
    fn device_bodies_are_todays() {
        round_trip(
            "token",
            &DeviceTokenRequest { node_key: Some("k".into()), device_auth_token: "t".repeat(32) },
            json!({"node_key": "k", "device_auth_token": "t".repeat(32)}),
        );
        let orbit: DeviceTokenRequest =
            serde_json::from_value(json!({"orbit_node_key": "k", "device_auth_token": "t"})).unwrap();
        assert_eq!(orbit.node_key.as_deref(), Some("k"));
        assert!(serde_json::from_value::<DeviceTokenRequest>(json!({"device_auth_token": "t", "x": 1})).is_err());
        round_trip("acknowledged", &Acknowledged {}, json!({}));
        let summary = DesktopSummary {
            failing_policies_count: 2,
            self_service: None,
            deferrals_waiting_count: 1,
            notifications: DesktopNotifications { needs_mdm_migration: true, renew_enrollment_profile: false },
            config: DeviceConfig {
                org_info: crate::fleet::OrgInfo {
                    org_name: "Acme".into(),
                    org_logo_url: "https://acme.example/logo.png".into(),
                    org_logo_url_light_background: String::new(),
                    contact_url: "https://acme.example/help".into(),
                },
                mdm: DeviceMdm { macos_migration: DeviceMigration { mode: "forced".into() } },
            },
        };
        round_trip(
            "desktop",
            &summary,
            json!({
                "failing_policies_count": 2,
                "deferrals_waiting_count": 1,
                "notifications": {"needs_mdm_migration": true, "renew_enrollment_profile": false},
                "config": {
                    "org_info": {"org_name": "Acme", "org_logo_url": "https://acme.example/logo.png",
                        "org_logo_url_light_background": "", "contact_url": "https://acme.example/help"},
                    "mdm": {"macos_migration": {"mode": "forced"}},
                },
            }),
        );
        let sparse: DesktopSummary = serde_json::from_value(json!({"failing_policies_count": 3})).unwrap();
        assert_eq!(sparse, DesktopSummary { failing_policies_count: 3, ..Default::default() }, "read leniently");
    }
}
