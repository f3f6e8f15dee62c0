//! Tables about the agent itself: osquery_flags (the settings the agent runs with) and osquery_registry
//! (which tables exist — what the server's discovery queries ask before sending a query).

use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// The agent's settings in osquery's flag names (`distributed_interval`, `config_tls_refresh`, ...),
/// shared with the agent, which updates them when the server's config changes.
pub type SharedFlags = Arc<RwLock<BTreeMap<String, String>>>;

pub struct OsqueryFlags(pub SharedFlags);

impl Table for OsqueryFlags {
    fn name(&self) -> &'static str {
        "osquery_flags"
    }
    fn description(&self) -> &'static str {
        "Configurable flags that modify the agent's behavior."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("name"),
            Column::text("type"),
            Column::text("description"),
            Column::text("default_value"),
            Column::text("value"),
            Column::int("shell_only"),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let flags = self.0.read().unwrap_or_else(|e| e.into_inner());
        Ok(flags
            .iter()
            .map(|(name, value)| {
                Row::from([
                    ("name", Value::text(name.as_str())),
                    ("value", Value::text(value.as_str())),
                    ("shell_only", Value::Int(0)),
                ])
            })
            .collect())
    }
}

pub struct OsqueryRegistry(pub Vec<&'static str>);

impl Table for OsqueryRegistry {
    fn name(&self) -> &'static str {
        "osquery_registry"
    }
    fn description(&self) -> &'static str {
        "The tables this agent offers (registry 'table')."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("registry"),
            Column::text("name"),
            Column::int("owner_uuid"),
            Column::int("internal"),
            Column::int("active"),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        Ok(self
            .0
            .iter()
            .map(|name| {
                Row::from([
                    ("registry", Value::text("table")),
                    ("name", Value::text(*name)),
                    ("owner_uuid", Value::Int(0)),
                    ("internal", Value::Int(0)),
                    ("active", Value::Int(1)),
                ])
            })
            .collect())
    }
}

/// platform_info: firmware facts from DMI. NULL when the firmware does not expose them (or they are root-only).
pub struct PlatformInfo;

impl Table for PlatformInfo {
    fn name(&self) -> &'static str {
        "platform_info"
    }
    fn description(&self) -> &'static str {
        "Information about EFI/UEFI/ROM and platform/boot."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("vendor"),
            Column::text("version"),
            Column::text("date"),
            Column::text("revision"),
            Column::text("extra"),
            Column::text("firmware_type"),
            Column::text("address"),
            Column::text("size"),
            Column::int("volume_size"),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let dmi = |f: &str| super::procfs::read_trimmed(format!("/sys/class/dmi/id/{f}"));
        let firmware = if std::path::Path::new("/sys/firmware/efi").exists() { "uefi" } else { "bios" };
        Ok(vec![Row::from([
            ("vendor", Value::opt_text(dmi("bios_vendor"))),
            ("version", Value::opt_text(dmi("bios_version"))),
            ("date", Value::opt_text(dmi("bios_date"))),
            ("revision", Value::opt_text(dmi("bios_release"))),
            ("firmware_type", Value::text(firmware)),
        ])])
    }
}

/// Facts the running agent knows about itself, by orbit_info's column names (`enrolled`: `true`/`false`,
/// `scripts_enabled`: `1`/`0`, `device_auth_token`), shared with the agent, which sets them as they change.
/// A fact it has not set is NULL.
pub type SharedFacts = Arc<RwLock<BTreeMap<String, String>>>;

/// osquery_schedule: empty. herd-agent runs no scheduled queries: it answers the server's distributed queries
/// (live queries, policies, host details) only, so there is no schedule to list; the server's config
/// `schedule` and `packs` are not run.
pub struct OsquerySchedule;

impl Table for OsquerySchedule {
    fn name(&self) -> &'static str {
        "osquery_schedule"
    }
    fn description(&self) -> &'static str {
        "Information about the current queries that are scheduled in osquery."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("name"),
            Column::text("query"),
            Column::int("interval"),
            Column::bigint("executions"),
            Column::bigint("last_executed"),
            Column::int("denylisted"),
            Column::bigint("output_size"),
            Column::bigint("wall_time"),
            Column::bigint("wall_time_ms"),
            Column::bigint("last_wall_time_ms"),
            Column::bigint("user_time"),
            Column::bigint("last_user_time"),
            Column::bigint("system_time"),
            Column::bigint("last_system_time"),
            Column::bigint("average_memory"),
            Column::bigint("last_memory"),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        Ok(Vec::new())
    }
}

/// osquery_extensions: herd-agent loads no extensions, so, like osquery without any, it lists its core
/// alone: `uuid` 0, `name` `core`, `version` the agent's version, `type` `core`. `sdk_version` and `path` are
/// NULL: there is no extension SDK and no extensions socket.
pub struct OsqueryExtensions;

impl Table for OsqueryExtensions {
    fn name(&self) -> &'static str {
        "osquery_extensions"
    }
    fn description(&self) -> &'static str {
        "List of active osquery extensions."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::bigint("uuid"),
            Column::text("name"),
            Column::text("version"),
            Column::text("sdk_version"),
            Column::text("path"),
            Column::text("type"),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        Ok(vec![Row::from([
            ("uuid", Value::Int(0)),
            ("name", Value::text("core")),
            ("version", Value::text(super::AGENT_VERSION)),
            ("type", Value::text("core")),
        ])])
    }
}

/// orbit_info: Fleet's agent table, answered with herd-agent's own facts so Fleet's queries about the agent
/// run. One row:
/// - `version`: herd-agent's version; `uptime`: seconds since this process started (/proc/self/stat).
/// - `enrolled`, `scripts_enabled`, `device_auth_token`: what the agent has told [`SharedFacts`]; NULL until it
///   does (and always, in a process that is not the agent, such as tests).
/// - NULL, because herd-agent has no such thing: `orbit_channel`, `osqueryd_channel`, `desktop_channel` and
///   `update_url` (it does not update itself through TUF), `desktop_version` (no separate Fleet Desktop
///   program), `last_recorded_error` (it keeps no such record).
pub struct OrbitInfo(pub SharedFacts);

impl Table for OrbitInfo {
    fn name(&self) -> &'static str {
        "orbit_info"
    }
    fn description(&self) -> &'static str {
        "Returns information about the orbit instance."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("version"),
            Column::text("device_auth_token"),
            Column::text("enrolled"),
            Column::text("last_recorded_error"),
            Column::text("orbit_channel"),
            Column::text("osqueryd_channel"),
            Column::text("desktop_channel"),
            Column::text("desktop_version"),
            Column::bigint("uptime"),
            Column::int("scripts_enabled"),
            Column::text("update_url"),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let facts = self.0.read().unwrap_or_else(|e| e.into_inner());
        let started = super::identity::process_start_time(std::process::id() as i64);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).ok();
        let uptime = started.zip(now).map(|(started, now)| (now - started).max(0));
        Ok(vec![Row::from([
            ("version", Value::text(super::AGENT_VERSION)),
            ("uptime", Value::opt_int(uptime)),
            ("enrolled", Value::opt_text(facts.get("enrolled").cloned())),
            ("device_auth_token", Value::opt_text(facts.get("device_auth_token").cloned())),
            ("scripts_enabled", Value::opt_int(facts.get("scripts_enabled").and_then(|v| v.parse().ok()))),
        ])])
    }
}
