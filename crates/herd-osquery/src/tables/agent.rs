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
