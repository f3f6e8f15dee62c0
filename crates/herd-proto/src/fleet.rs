//! Fleet's REST API shapes (`/api/v1/fleet/...`), kept so scripts and tools written for Fleet keep working.
//! Timestamps are RFC 3339 strings, as Fleet sends them.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Fleet's error body: `{"message": ..., "errors": [{"name": "base" | field, "reason": ...}]}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub message: String,
    pub errors: Vec<ErrorDetail>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorDetail {
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub email: String,
    pub password: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginResponse {
    pub user: User,
    pub token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserTeam {
    pub id: i64,
    #[serde(default)]
    pub name: String,
    pub role: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct User {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub global_role: Option<String>,
    pub teams: Vec<UserTeam>,
    pub api_only: bool,
    pub sso_enabled: bool,
    pub force_password_reset: bool,
    pub gravatar_url: String,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UserResponse {
    pub user: User,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsersResponse {
    pub users: Vec<User>,
}

/// `POST /api/v1/fleet/users/admin`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub name: String,
    pub email: String,
    pub password: String,
    #[serde(default)]
    pub global_role: Option<String>,
    #[serde(default)]
    pub teams: Vec<UserTeamRequest>,
    #[serde(default)]
    pub api_only: bool,
    #[serde(default)]
    pub sso_enabled: bool,
    #[serde(default)]
    pub admin_forced_password_reset: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserTeamRequest {
    pub id: i64,
    #[serde(default)]
    pub name: Option<String>,
    pub role: String,
}

/// `PATCH /api/v1/fleet/users/{id}`: every field optional.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateUserRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub new_password: Option<String>,
    #[serde(default, with = "double_option")]
    pub global_role: Option<Option<String>>,
    #[serde(default)]
    pub teams: Option<Vec<UserTeamRequest>>,
}

/// Tells "absent" (outer None) from "null" (Some(None)), for fields where null means "remove".
pub mod double_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(de: D) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(de).map(Some)
    }

    pub fn serialize<T: Serialize, S: Serializer>(value: &Option<Option<T>>, ser: S) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(ser),
            None => ser.serialize_none(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnrollSecret {
    pub secret: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    #[serde(default)]
    pub team_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SecretsResponse {
    pub secrets: Vec<EnrollSecret>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecretInput {
    pub secret: String,
}

/// `PATCH /teams/{id}/secrets` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsInput {
    pub secrets: Vec<SecretInput>,
}

/// `GET|POST /api/v1/fleet/spec/enroll_secret` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollSecretSpec {
    pub spec: SecretsInput,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollSecretSpecResponse {
    pub spec: SecretsResponse,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Team {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub host_count: i64,
    pub user_count: i64,
    /// null: the team uses the global agent options.
    pub agent_options: Option<Value>,
    /// Fleet's team webhook settings: the failing-policies webhook for this team's policies.
    #[serde(default)]
    pub webhook_settings: TeamWebhookSettings,
    pub secrets: Vec<EnrollSecret>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeamResponse {
    pub team: Team,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TeamsResponse {
    pub teams: Vec<Team>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateTeamRequest {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub secrets: Option<Vec<SecretInput>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchTeamRequest {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// null removes the team's own options (it falls back to the global ones).
    #[serde(default, with = "double_option")]
    pub agent_options: Option<Option<Value>>,
    #[serde(default)]
    pub webhook_settings: Option<TeamWebhookSettings>,
}

/// A team's `webhook_settings` (Fleet's shape; policy_ids name the team's own policies).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct TeamWebhookSettings {
    #[serde(default)]
    pub failing_policies_webhook: FailingPoliciesWebhook,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferHostsRequest {
    pub team_id: Option<i64>,
    pub hosts: Vec<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct HostIssues {
    pub failing_policies_count: i64,
    pub total_issues_count: i64,
}

/// A host as Fleet's API shows it. Values herd has not learnt yet are null (or "" where Fleet's clients
/// expect a string), never invented.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Host {
    pub id: i64,
    pub uuid: String,
    pub osquery_host_id: String,
    pub hostname: String,
    pub display_name: String,
    pub computer_name: String,
    pub platform: String,
    pub platform_like: String,
    pub os_version: String,
    pub build: String,
    pub osquery_version: String,
    pub hardware_serial: String,
    pub hardware_model: String,
    pub hardware_vendor: String,
    pub cpu_brand: String,
    pub cpu_type: String,
    pub cpu_physical_cores: Option<i64>,
    pub cpu_logical_cores: Option<i64>,
    /// Bytes.
    pub memory: Option<i64>,
    /// Nanoseconds, as Fleet reports it.
    pub uptime: Option<i64>,
    pub primary_ip: String,
    pub primary_mac: String,
    pub gigs_disk_space_available: Option<f64>,
    pub percent_disk_space_available: Option<f64>,
    pub gigs_total_disk_space: Option<f64>,
    pub distributed_interval: Option<i64>,
    pub config_tls_refresh: Option<i64>,
    pub logger_tls_period: Option<i64>,
    pub team_id: Option<i64>,
    pub team_name: Option<String>,
    pub status: String,
    pub seen_time: Option<String>,
    pub created_at: String,
    pub last_enrolled_at: String,
    pub detail_updated_at: Option<String>,
    pub refetch_requested: bool,
    pub policy_updated_at: Option<String>,
    /// Whether the host's agent runs scripts; null when it never said.
    pub scripts_enabled: Option<bool>,
    /// herd's own: moving off a previous management system.
    pub mdm_migration: HostMigration,
    pub issues: HostIssues,
    /// In single-host views only: every policy in the host's scope with its answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policies: Option<Vec<HostPolicy>>,
    /// The host's labels (host views only), and dynamic labels whose query failed on it (`error` set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<Vec<HostLabel>>,
    /// herd's own, in single-host views only: the host's deferrable remediations and who chose what.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferrals: Option<Vec<HostDeferral>>,
    /// In single-host views only: configuration profiles (Fleet's `mdm.profiles`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mdm: Option<HostMdm>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct HostMdm {
    pub profiles: Vec<HostProfile>,
}

/// One configuration profile on a host, as Fleet shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostProfile {
    /// None once the profile was deleted (its remove is in progress).
    pub profile_uuid: Option<String>,
    pub identifier: String,
    pub name: String,
    pub platform: String,
    /// install | remove
    pub operation_type: String,
    /// pending | verifying | verified | failed; null: about to be sent.
    pub status: Option<String>,
    pub detail: String,
    /// herd's own: times sent again so far.
    pub retries: i64,
    pub updated_at: String,
}

/// A host's deferral state for one policy.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostDeferral {
    pub policy_id: i64,
    pub policy_name: String,
    /// awaiting_prompt (the agent has not asked yet) | prompting | waiting (see `waiting_reason`) |
    /// scheduled | running | ran (awaiting the re-check) | fixed | cancelled (the policy passed before the run)
    pub state: String,
    pub deferred_until: Option<String>,
    pub deferrals_used: i64,
    pub max_deferrals: i64,
    /// The earlier of `deadline_at` and first prompt + `deadline_after`; null before the first prompt when
    /// only a floating deadline is set.
    pub deadline: Option<String>,
    pub waiting_reason: Option<String>,
    pub time_zone: Option<String>,
    pub last_choice: Option<String>,
    pub chosen_by: Option<String>,
    pub chosen_at: Option<String>,
    pub title: String,
    pub message: String,
    /// What the user may pick now ("now" first), only while the device is asking.
    pub offered: Vec<DeferralChoice>,
    pub script_execution_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeferralChoice {
    /// What to post back: "now", or the option as the admin wrote it ("1h", "tomorrow 09:00").
    pub choice: String,
    pub label: String,
    /// When the script would run; null for "now".
    pub runs_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostResponse {
    pub host: Host,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostsResponse {
    pub hosts: Vec<Host>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CountResponse {
    pub count: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusLog {
    pub unix_time: Option<i64>,
    pub received_at: String,
    pub severity: i64,
    pub filename: String,
    pub line: i64,
    pub message: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusLogsResponse {
    pub status_logs: Vec<StatusLog>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct OrgInfo {
    #[serde(default)]
    pub org_name: String,
    #[serde(default)]
    pub org_logo_url: String,
    #[serde(default)]
    pub org_logo_url_light_background: String,
    #[serde(default)]
    pub contact_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    /// The URL hosts and users reach this server at; shown in enroll instructions and links.
    #[serde(default)]
    pub server_url: String,
    #[serde(default)]
    pub scripts_disabled: bool,
}

/// Fleet's `features` section as herd honours it: herd collects neither host users nor software yet and runs
/// no additional queries, so the values say so (false, null); the server refuses a change that asks for
/// them rather than storing a setting nothing acts on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct Features {
    #[serde(default)]
    pub enable_host_users: bool,
    #[serde(default)]
    pub enable_software_inventory: bool,
    #[serde(default)]
    pub additional_queries: Option<Value>,
}

/// herd's own host settings (Fleet has them as server flags; herd keeps them in the shared config so every
/// server of a cluster agrees).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HostSettings {
    /// Seconds between vitals refreshes of a host (plus up to 10 % jitter).
    #[serde(default = "default_interval")]
    pub vitals_interval: i64,
    /// Seconds between runs of a policy on a host, for policies without an interval of their own.
    #[serde(default = "default_interval")]
    pub policy_interval: i64,
    /// Seconds between runs of the dynamic labels' queries on a host (Fleet's `label_update_interval`).
    #[serde(default = "default_interval")]
    pub label_interval: i64,
    /// Runs of a policy's script after the first while a host keeps failing (with backoff).
    #[serde(default = "default_automation_retries")]
    pub automation_retries: i64,
    /// Seconds an automation's script may run before it is killed.
    #[serde(default = "default_automation_timeout")]
    pub automation_script_timeout: i64,
    /// Seconds after a host acknowledges a profile before its absence from the host's report counts.
    #[serde(default = "default_profile_grace_period")]
    pub profile_grace_period: i64,
    /// Times a profile is sent again (missing, outdated, drifted or refused) before it is marked failed.
    #[serde(default = "default_profile_retries")]
    pub profile_retries: i64,
}

/// Fleet's: an hour.
fn default_profile_grace_period() -> i64 {
    3600
}

/// Fleet's newer limit for Apple profiles.
fn default_profile_retries() -> i64 {
    3
}

fn default_interval() -> i64 {
    3600
}

/// Fleet retries a policy's script 3 times too.
fn default_automation_retries() -> i64 {
    3
}

/// Fleet's default script timeout.
fn default_automation_timeout() -> i64 {
    300
}

impl Default for HostSettings {
    fn default() -> Self {
        HostSettings {
            vitals_interval: default_interval(),
            policy_interval: default_interval(),
            label_interval: default_interval(),
            automation_retries: default_automation_retries(),
            automation_script_timeout: default_automation_timeout(),
            profile_grace_period: default_profile_grace_period(),
            profile_retries: default_profile_retries(),
        }
    }
}

/// `GET|PATCH /api/v1/fleet/config`. PATCH takes any subset; objects merge, `agent_options` is replaced whole.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    #[serde(default)]
    pub org_info: OrgInfo,
    #[serde(default)]
    pub server_settings: ServerSettings,
    #[serde(default)]
    pub host_settings: HostSettings,
    /// Fleet's `features` (older Fleet also took them under `host_settings`, which herd's `merge` honours).
    #[serde(default)]
    pub features: Features,
    #[serde(default)]
    pub webhook_settings: WebhookSettings,
    #[serde(default = "default_agent_options")]
    pub agent_options: Value,
    #[serde(default)]
    pub mdm: MdmSettings,
}

/// Moving hosts off a previous management system (seed 002).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MdmSettings {
    #[serde(default)]
    pub macos_migration: MacosMigration,
    /// herd's own: on Linux, the query whose rows mean "another management system manages this host" (e.g.
    /// `SELECT 1 FROM file WHERE path = '/opt/oldagent/enrolled';`). macOS hosts answer from osquery's `mdm`
    /// table. Empty: Linux hosts are never eligible.
    #[serde(default)]
    pub migration_query: String,
    /// herd's own: how long after a user starts a migration the host's check-ins carry only the management
    /// status, accelerated (Fleet: 3 minutes).
    #[serde(default = "default_migration_window")]
    pub migration_window_seconds: i64,
}

fn default_migration_window() -> i64 {
    180
}

impl Default for MdmSettings {
    fn default() -> Self {
        MdmSettings {
            macos_migration: MacosMigration::default(),
            migration_query: String::new(),
            migration_window_seconds: default_migration_window(),
        }
    }
}

/// Fleet's `mdm.macos_migration`: `mode` is `voluntary` (the user starts it) or `forced` (prompted every 15
/// minutes until done); `webhook_url` is told when a user starts it, and unenrolls the host from the old system.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct MacosMigration {
    #[serde(default)]
    pub enable: bool,
    #[serde(default)]
    pub mode: String,
    #[serde(default)]
    pub webhook_url: String,
}

/// Fleet's `webhook_settings`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    #[serde(default)]
    pub failing_policies_webhook: FailingPoliciesWebhook,
    /// Fleet's batching interval (e.g. "24h"). herd delivers each new failure within seconds, so it is kept
    /// only so Fleet-format configurations apply unchanged.
    #[serde(default)]
    pub interval: String,
}

/// A POST to `destination_url` when a host newly fails one of `policy_ids`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct FailingPoliciesWebhook {
    #[serde(default)]
    pub enable_failing_policies_webhook: bool,
    #[serde(default)]
    pub destination_url: String,
    #[serde(default)]
    pub policy_ids: Vec<i64>,
    /// Hosts per POST (0: all). herd posts each new failure as it happens, one host per POST.
    #[serde(default)]
    pub host_batch_size: i64,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            org_info: OrgInfo::default(),
            server_settings: ServerSettings::default(),
            host_settings: HostSettings::default(),
            features: Features::default(),
            webhook_settings: WebhookSettings::default(),
            agent_options: default_agent_options(),
            mdm: MdmSettings::default(),
        }
    }
}

/// Fleet's default agent options: check in every 10 s, send logs every 10 s, over TLS to this server.
pub fn default_agent_options() -> Value {
    serde_json::json!({
        "config": {
            "options": {
                "pack_delimiter": "/",
                "logger_tls_period": 10,
                "distributed_plugin": "tls",
                "disable_distributed": false,
                "logger_tls_endpoint": "/api/osquery/log",
                "distributed_interval": 10,
                "distributed_tls_max_attempts": 3
            },
            "decorators": {
                "load": [
                    "SELECT uuid AS host_uuid FROM system_info;",
                    "SELECT hostname AS hostname FROM system_info;"
                ]
            }
        },
        "overrides": {}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_strictness() {
        let cfg: AppConfig = serde_json::from_str("{}").unwrap();
        assert_eq!(cfg, AppConfig::default());
        let err = serde_json::from_str::<AppConfig>(r#"{"org_info":{"org_nam":"x"}}"#).unwrap_err();
        assert!(err.to_string().contains("org_nam"), "{err}");
    }

    #[test]
    fn patch_user_tells_null_from_absent() {
        let absent: UpdateUserRequest = serde_json::from_str("{}").unwrap();
        assert_eq!(absent.global_role, None);
        let null: UpdateUserRequest = serde_json::from_str(r#"{"global_role":null}"#).unwrap();
        assert_eq!(null.global_role, Some(None));
        let set: UpdateUserRequest = serde_json::from_str(r#"{"global_role":"admin"}"#).unwrap();
        assert_eq!(set.global_role, Some(Some("admin".into())));
    }
}

/// A policy as Fleet's API shows it, with herd's own `interval`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Policy {
    pub id: i64,
    pub name: String,
    pub query: String,
    pub description: String,
    pub resolution: String,
    pub platform: String,
    pub critical: bool,
    pub team_id: Option<i64>,
    pub author_id: Option<i64>,
    pub author_name: String,
    pub author_email: String,
    /// Seconds between runs on a host; null: the global `host_settings.policy_interval`.
    pub interval: Option<i64>,
    pub created_at: String,
    pub updated_at: String,
    pub passing_host_count: i64,
    pub failing_host_count: i64,
    pub host_count_updated_at: Option<String>,
    /// herd's own: hosts whose remediation of this policy is queued or running (counted as failing too).
    pub remediating_host_count: i64,
    /// The automation: the script run on hosts that newly fail the policy.
    pub run_script: Option<RunScript>,
    /// herd's own: a webhook of this policy's own, posted to when a host newly fails it.
    pub webhook_url: Option<String>,
    /// herd's own: automations fire on every scheduled failing result, not only on a new failure.
    pub continuous_automation: bool,
    /// herd's own: users may defer the script within these limits (see `herd_core::deferral`).
    pub deferral: Option<DeferralSettings>,
    /// Hosts in at least one of these labels are asked the policy (Fleet's field; omitted when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels_include_any: Vec<LabelIdent>,
    /// Hosts in every one of these labels are asked the policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels_include_all: Vec<LabelIdent>,
    /// Hosts in any of these labels are not asked the policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels_exclude_any: Vec<LabelIdent>,
}

pub use herd_core::deferral::DeferralSettings;
/// A criteria label's condition (`LabelSpec::criteria`), so clients can check one before sending it.
pub use herd_core::labels::Criterion;

/// A label named in a scope, as Fleet shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LabelIdent {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunScript {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyResponseBody {
    pub policy: Policy,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PoliciesResponse {
    pub policies: Vec<Policy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inherited_policies: Option<Vec<Policy>>,
}

/// Create (every field but name and query optional) or patch (every field optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub resolution: Option<String>,
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub critical: Option<bool>,
    #[serde(default, with = "double_option")]
    pub interval: Option<Option<i64>>,
    /// Fleet's clients send the team in the body of team-policy creates; it must match the path.
    #[serde(default)]
    pub team_id: Option<i64>,
    /// The script to run on hosts that newly fail the policy; null or 0 removes it.
    #[serde(default, with = "double_option")]
    pub script_id: Option<Option<i64>>,
    /// A webhook of the policy's own (http or https URL); null or "" removes it.
    #[serde(default, with = "double_option")]
    pub webhook_url: Option<Option<String>>,
    #[serde(default)]
    pub continuous_automation: Option<bool>,
    /// Deferral of the script by users; null removes it.
    #[serde(default, with = "double_option")]
    pub deferral: Option<Option<DeferralSettings>>,
    /// Label scope by label names (Fleet's fields); absent keeps the policy's, `[]` clears that list.
    #[serde(default)]
    pub labels_include_any: Option<Vec<String>>,
    #[serde(default)]
    pub labels_include_all: Option<Vec<String>>,
    #[serde(default)]
    pub labels_exclude_any: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeletePoliciesRequest {
    pub ids: Vec<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeletedResponse {
    pub deleted: u64,
}

/// One policy of `POST /spec/policies` or a `kind: policy` YAML document; `team` is a team name.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PolicySpec {
    pub name: String,
    pub query: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub resolution: String,
    #[serde(default)]
    pub platform: String,
    #[serde(default)]
    pub team: String,
    #[serde(default)]
    pub critical: bool,
    #[serde(default)]
    pub interval: Option<i64>,
    /// herd's own: the script automation, by the name of a script in the policy's scope ("" removes it;
    /// absent keeps what the policy has).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// herd's own: deferral of that script by users (absent keeps what the policy has).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deferral: Option<DeferralSettings>,
    /// Label scope by label names (Fleet's spec fields); absent: no scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_include_any: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_include_all: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels_exclude_any: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicySpecsRequest {
    pub specs: Vec<PolicySpec>,
}

/// A policy in a host view, with that host's answer ("pass", "fail", or "" when not run or errored).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostPolicy {
    pub id: i64,
    pub name: String,
    pub query: String,
    pub description: String,
    pub resolution: String,
    pub platform: String,
    pub critical: bool,
    pub team_id: Option<i64>,
    pub response: String,
    /// herd's own: a remediation of this policy is queued or running on the host; a re-check follows it.
    pub remediating: bool,
}

/// A host's migration off its previous management system.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct HostMigration {
    /// Whether the host last reported another management system managing it; null when never asked.
    pub managed_by_other: Option<bool>,
    /// "" (never started), "started", "migrated" or "timed_out".
    pub state: String,
    pub started_at: Option<String>,
    /// While the critical window is open: when it closes.
    pub window_closes_at: Option<String>,
}

/// A policy as the host's own user sees it (device API): no SQL, no authors.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DevicePolicy {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub resolution: String,
    pub critical: bool,
    /// "pass", "fail", or "" (no answer yet).
    pub response: String,
    /// A fix is queued or running on this device; the policy is re-checked right after it.
    pub remediating: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Activity {
    pub id: i64,
    pub created_at: String,
    pub actor_full_name: Option<String>,
    pub actor_id: Option<i64>,
    pub actor_email: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub details: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActivitiesMeta {
    pub has_next_results: bool,
    pub has_previous_results: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActivitiesResponse {
    pub activities: Vec<Activity>,
    pub meta: ActivitiesMeta,
}

/// A label as Fleet's API shows it (`label_membership_type`: dynamic, manual, or host_vitals — herd's criteria
/// labels, with `criteria`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Label {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub query: String,
    pub platform: String,
    /// builtin or regular.
    pub label_type: String,
    pub label_membership_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criteria: Option<serde_json::Value>,
    /// herd's own: why a criteria label has no members (an input it names was deleted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub broken_reason: Option<String>,
    pub author_id: Option<i64>,
    pub team_id: Option<i64>,
    pub host_count: i64,
    pub count: i64,
    pub display_text: String,
    pub created_at: String,
    pub updated_at: String,
    /// A manual label's members (single-label views).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ids: Option<Vec<i64>>,
}

/// A label in a host view.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HostLabel {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub query: String,
    pub platform: String,
    pub label_type: String,
    pub label_membership_type: String,
    pub created_at: String,
    pub updated_at: String,
    /// herd's own: the error of this dynamic label's query on the host (then it is no member).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `POST /labels`: `query` makes a dynamic label, `criteria` a criteria (host_vitals) label, `hosts` or
/// `host_ids` (or none of them) a manual one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelInput {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub platform: Option<String>,
    #[serde(default)]
    pub criteria: Option<serde_json::Value>,
    /// Hosts by identifier: hostname, uuid, hardware serial, osquery host id, or id.
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
    #[serde(default)]
    pub host_ids: Option<Vec<i64>>,
    /// Fleet's clients may name the kind; it must agree with the fields given.
    #[serde(default)]
    pub label_membership_type: Option<String>,
}

/// `PATCH /labels/{id}`: a manual label's `hosts`/`host_ids` replace its members (`[]` clears them).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelPatchInput {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub hosts: Option<Vec<String>>,
    #[serde(default)]
    pub host_ids: Option<Vec<i64>>,
    #[serde(default)]
    pub criteria: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabelResponseBody {
    pub label: Label,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabelsResponse {
    pub labels: Vec<Label>,
}

/// `GET /labels/summary`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LabelSummary {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub label_type: String,
    pub team_id: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LabelSummaryResponse {
    pub labels: Vec<LabelSummary>,
}

/// A label in Fleet's spec (`POST /spec/labels`, fleetctl's `kind: label`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LabelSpec {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub query: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub platform: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_membership_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hosts: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub criteria: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_type: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpecsRequest {
    pub specs: Vec<LabelSpec>,
}
