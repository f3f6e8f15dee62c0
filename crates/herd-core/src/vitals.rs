//! Vitals: the host facts herd keeps on every host row (OS, hardware, network, disk, the agent's own flags),
//! the osquery queries that read them, and how their result rows become host columns.
//!
//! Queries go to hosts as `fleet_detail_query_<name>` (Fleet's naming, so tools that read Fleet's traffic keep
//! working), each with a discovery query that checks its tables exist on that host's osquery.

use crate::platform::PlatformFamily;
use std::collections::BTreeMap;

/// Prefix of every vitals query name in distributed/read and distributed/write.
pub const QUERY_PREFIX: &str = "fleet_detail_query_";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Vital {
    OsVersion,
    OsqueryInfo,
    SystemInfo,
    Uptime,
    NetworkInterface,
    DiskSpace,
    OsqueryFlags,
}

impl Vital {
    pub const ALL: [Vital; 7] = [
        Vital::OsVersion,
        Vital::OsqueryInfo,
        Vital::SystemInfo,
        Vital::Uptime,
        Vital::NetworkInterface,
        Vital::DiskSpace,
        Vital::OsqueryFlags,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Vital::OsVersion => "os_version",
            Vital::OsqueryInfo => "osquery_info",
            Vital::SystemInfo => "system_info",
            Vital::Uptime => "uptime",
            Vital::NetworkInterface => "network_interface",
            Vital::DiskSpace => "disk_space",
            Vital::OsqueryFlags => "osquery_flags",
        }
    }

    pub fn query_name(self) -> String {
        format!("{QUERY_PREFIX}{}", self.name())
    }

    /// The vital a distributed/write result name refers to, if it is one of ours.
    pub fn from_query_name(query_name: &str) -> Option<Vital> {
        let name = query_name.strip_prefix(QUERY_PREFIX)?;
        Vital::ALL.into_iter().find(|vital| vital.name() == name)
    }

    /// The osquery tables the query reads on a host of `family`.
    fn tables(self, family: Option<PlatformFamily>) -> &'static [&'static str] {
        match (self, family) {
            (Vital::OsVersion, _) => &["os_version"],
            (Vital::OsqueryInfo, _) => &["osquery_info"],
            (Vital::SystemInfo, _) => &["system_info"],
            (Vital::Uptime, _) => &["uptime"],
            (Vital::NetworkInterface, _) => &["interface_addresses", "interface_details", "routes"],
            (Vital::DiskSpace, Some(PlatformFamily::Windows)) => &["logical_drives"],
            (Vital::DiskSpace, _) => &["mounts"],
            (Vital::OsqueryFlags, _) => &["osquery_flags"],
        }
    }

    /// The SQL for a host of `family` (None: platform not reported yet, the Unix variant is used).
    pub fn sql(self, family: Option<PlatformFamily>) -> &'static str {
        match (self, family) {
            (Vital::OsVersion, _) => "SELECT * FROM os_version LIMIT 1",
            (Vital::OsqueryInfo, _) => "SELECT * FROM osquery_info LIMIT 1",
            (Vital::SystemInfo, _) => "SELECT * FROM system_info LIMIT 1",
            (Vital::Uptime, _) => "SELECT * FROM uptime LIMIT 1",
            // The address on the interface that carries the default route: the one the host talks out of.
            (Vital::NetworkInterface, Some(PlatformFamily::Windows)) => {
                "SELECT ia.address, id.mac FROM interface_addresses ia \
                 JOIN interface_details id ON id.interface = ia.interface \
                 JOIN routes r ON r.interface = ia.address \
                 WHERE (r.destination = '0.0.0.0' OR r.destination = '::') AND r.netmask = 0 \
                 ORDER BY r.metric ASC, ia.address NOT LIKE '%:%' DESC LIMIT 1"
            }
            (Vital::NetworkInterface, _) => {
                "SELECT ia.address, id.mac FROM interface_addresses ia \
                 JOIN interface_details id ON id.interface = ia.interface \
                 JOIN routes r ON r.interface = ia.interface \
                 WHERE (r.destination = '0.0.0.0' OR r.destination = '::') AND r.netmask = 0 \
                 AND r.type = 'gateway' \
                 ORDER BY r.metric ASC, ia.address NOT LIKE '%:%' DESC LIMIT 1"
            }
            (Vital::DiskSpace, Some(PlatformFamily::Windows)) => {
                "SELECT ROUND((SUM(free_space) * 100.0) / SUM(size), 2) AS percent_disk_space_available, \
                 ROUND(SUM(free_space) / 1e9, 2) AS gigs_disk_space_available, \
                 ROUND(SUM(size) / 1e9, 2) AS gigs_total_disk_space \
                 FROM logical_drives WHERE file_system = 'NTFS' LIMIT 1"
            }
            (Vital::DiskSpace, _) => {
                "SELECT ROUND((blocks_available * 100.0) / blocks, 2) AS percent_disk_space_available, \
                 ROUND((blocks_available * blocks_size) / 1e9, 2) AS gigs_disk_space_available, \
                 ROUND((blocks * blocks_size) / 1e9, 2) AS gigs_total_disk_space \
                 FROM mounts WHERE path = '/' LIMIT 1"
            }
            (Vital::OsqueryFlags, _) => {
                "SELECT name, value FROM osquery_flags WHERE name IN \
                 ('distributed_interval', 'config_tls_refresh', 'config_refresh', 'logger_tls_period')"
            }
        }
    }

    /// Discovery SQL: returns a row only when every table the query reads exists on the host.
    pub fn discovery(self, family: Option<PlatformFamily>) -> String {
        let tables = self.tables(family);
        let names = tables.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        format!(
            "SELECT 1 FROM (SELECT COUNT(*) AS present FROM osquery_registry \
             WHERE active = 1 AND registry = 'table' AND name IN ({names})) WHERE present = {}",
            tables.len()
        )
    }
}

/// One result row as osquery sends it: column → value (osquery sends every value as a string).
pub type Row = BTreeMap<String, String>;

/// Host columns learnt from vitals. `None` leaves a column as it is; a vital that was asked for but returned
/// nothing leaves its columns alone too (a host that cannot read `routes` keeps its last known address).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct VitalsPatch {
    pub hostname: Option<String>,
    pub computer_name: Option<String>,
    pub uuid: Option<String>,
    pub platform: Option<String>,
    pub platform_like: Option<String>,
    pub os_version: Option<String>,
    pub os_build: Option<String>,
    pub osquery_version: Option<String>,
    pub hardware_serial: Option<String>,
    pub hardware_model: Option<String>,
    pub hardware_vendor: Option<String>,
    pub cpu_brand: Option<String>,
    pub cpu_type: Option<String>,
    pub cpu_physical_cores: Option<i64>,
    pub cpu_logical_cores: Option<i64>,
    pub memory: Option<i64>,
    pub uptime_seconds: Option<i64>,
    pub primary_ip: Option<String>,
    pub primary_mac: Option<String>,
    pub percent_disk_space_available: Option<f64>,
    pub gigs_disk_space_available: Option<f64>,
    pub gigs_total_disk_space: Option<f64>,
    pub distributed_interval: Option<i64>,
    pub config_tls_refresh: Option<i64>,
    pub logger_tls_period: Option<i64>,
}

fn text(row: &Row, column: &str) -> Option<String> {
    row.get(column).map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

fn integer(row: &Row, column: &str) -> Option<i64> {
    row.get(column).and_then(|v| v.trim().parse::<i64>().ok())
}

fn real(row: &Row, column: &str) -> Option<f64> {
    row.get(column).and_then(|v| v.trim().parse::<f64>().ok()).filter(|v| v.is_finite())
}

/// "Ubuntu 22.04.3" from an os_version row: the product name and its numeric version when osquery has one,
/// else the free-text version.
fn os_version_label(row: &Row) -> Option<String> {
    let name = text(row, "name")?;
    let numeric = match (text(row, "major"), text(row, "minor"), text(row, "patch")) {
        (Some(major), minor, patch) if major != "0" || minor.as_deref().is_some_and(|m| m != "0") => {
            let mut v = major;
            if let Some(minor) = minor {
                v = format!("{v}.{minor}");
                if let Some(patch) = patch.filter(|p| p != "0") {
                    v = format!("{v}.{patch}");
                }
            }
            Some(v)
        }
        _ => text(row, "version"),
    };
    Some(match numeric {
        Some(version) => format!("{name} {version}"),
        None => name,
    })
}

impl VitalsPatch {
    /// Folds one vital's result rows into the patch.
    pub fn absorb(&mut self, vital: Vital, rows: &[Row]) {
        if vital == Vital::OsqueryFlags {
            for row in rows {
                let value = integer(row, "value");
                match row.get("name").map(String::as_str) {
                    Some("distributed_interval") => self.distributed_interval = value,
                    Some("config_tls_refresh") => self.config_tls_refresh = value.or(self.config_tls_refresh),
                    // osquery reads config_refresh when the TLS-specific flag is unset.
                    Some("config_refresh") if self.config_tls_refresh.is_none() => self.config_tls_refresh = value,
                    Some("logger_tls_period") => self.logger_tls_period = value,
                    _ => {}
                }
            }
            return;
        }
        let Some(row) = rows.first() else { return };
        match vital {
            Vital::OsVersion => {
                self.os_version = os_version_label(row);
                self.os_build = text(row, "build");
                self.platform = text(row, "platform").map(|p| p.to_ascii_lowercase());
                self.platform_like = text(row, "platform_like");
            }
            Vital::OsqueryInfo => self.osquery_version = text(row, "version"),
            Vital::SystemInfo => {
                self.hostname = text(row, "hostname");
                self.computer_name = text(row, "computer_name");
                self.uuid = text(row, "uuid");
                self.hardware_serial = text(row, "hardware_serial");
                self.hardware_model = text(row, "hardware_model");
                self.hardware_vendor = text(row, "hardware_vendor");
                self.cpu_brand = text(row, "cpu_brand");
                self.cpu_type = text(row, "cpu_type");
                self.cpu_physical_cores = integer(row, "cpu_physical_cores");
                self.cpu_logical_cores = integer(row, "cpu_logical_cores");
                self.memory = integer(row, "physical_memory");
            }
            Vital::Uptime => self.uptime_seconds = integer(row, "total_seconds"),
            Vital::NetworkInterface => {
                self.primary_ip = text(row, "address");
                self.primary_mac = text(row, "mac");
            }
            Vital::DiskSpace => {
                self.percent_disk_space_available = real(row, "percent_disk_space_available");
                self.gigs_disk_space_available = real(row, "gigs_disk_space_available");
                self.gigs_total_disk_space = real(row, "gigs_total_disk_space");
            }
            Vital::OsqueryFlags => unreachable!("handled above"),
        }
    }

    /// The patch an enroll request's `host_details` gives (first rows of os_version, osquery_info,
    /// system_info), so a host is recognisable before its first vitals report.
    pub fn from_host_details(details: &BTreeMap<String, Row>) -> VitalsPatch {
        let mut patch = VitalsPatch::default();
        for (table, vital) in
            [("os_version", Vital::OsVersion), ("osquery_info", Vital::OsqueryInfo), ("system_info", Vital::SystemInfo)]
        {
            if let Some(row) = details.get(table) {
                patch.absorb(vital, std::slice::from_ref(row));
            }
        }
        patch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pairs: &[(&str, &str)]) -> Row {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn query_names_round_trip() {
        for vital in Vital::ALL {
            assert_eq!(Vital::from_query_name(&vital.query_name()), Some(vital));
        }
        assert_eq!(Vital::from_query_name("fleet_detail_query_nope"), None);
        assert_eq!(Vital::from_query_name("fleet_policy_query_1"), None);
    }

    #[test]
    fn discovery_counts_every_table() {
        let sql = Vital::NetworkInterface.discovery(Some(PlatformFamily::Linux));
        assert!(sql.contains("'interface_addresses', 'interface_details', 'routes'"), "{sql}");
        assert!(sql.ends_with("present = 3"), "{sql}");
        assert!(Vital::DiskSpace.discovery(Some(PlatformFamily::Windows)).contains("'logical_drives'"));
    }

    #[test]
    fn os_version_labels() {
        let cases = [
            (
                row(&[
                    ("name", "Ubuntu"),
                    ("version", "22.04.3 LTS (Jammy)"),
                    ("major", "22"),
                    ("minor", "4"),
                    ("patch", "0"),
                ]),
                "Ubuntu 22.4",
            ),
            (row(&[("name", "macOS"), ("major", "14"), ("minor", "2"), ("patch", "1")]), "macOS 14.2.1"),
            (
                row(&[("name", "Arch Linux"), ("version", "rolling"), ("major", "0"), ("minor", "0")]),
                "Arch Linux rolling",
            ),
            (row(&[("name", "Debian GNU/Linux")]), "Debian GNU/Linux"),
        ];
        for (r, want) in cases {
            assert_eq!(os_version_label(&r).as_deref(), Some(want));
        }
    }

    #[test]
    fn absorbs_rows() {
        let mut patch = VitalsPatch::default();
        patch.absorb(
            Vital::SystemInfo,
            &[row(&[("hostname", "web-1"), ("physical_memory", "17179869184"), ("cpu_logical_cores", "x")])],
        );
        patch.absorb(
            Vital::DiskSpace,
            &[row(&[("percent_disk_space_available", "41.5"), ("gigs_disk_space_available", "NaN")])],
        );
        patch.absorb(
            Vital::OsqueryFlags,
            &[
                row(&[("name", "config_refresh"), ("value", "60")]),
                row(&[("name", "distributed_interval"), ("value", "10")]),
            ],
        );
        patch.absorb(Vital::Uptime, &[]);
        assert_eq!(patch.hostname.as_deref(), Some("web-1"));
        assert_eq!(patch.memory, Some(17_179_869_184));
        assert_eq!(patch.cpu_logical_cores, None, "unparseable numbers are unknown, not zero");
        assert_eq!(patch.percent_disk_space_available, Some(41.5));
        assert_eq!(patch.gigs_disk_space_available, None);
        assert_eq!(patch.distributed_interval, Some(10));
        assert_eq!(patch.config_tls_refresh, Some(60));
        assert_eq!(patch.uptime_seconds, None);
    }
}
