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

    /// The detail queries a host of `family` is sent for this vital (None: platform not reported yet, the
    /// Linux ones are used). Most vitals are one query everywhere; where osquery's tables differ by platform,
    /// each platform gets Fleet's variant, and a Mac gets two disk queries of which its discovery lets exactly
    /// one run (fleetd's `disk_space` table where it exists, `mounts` elsewhere).
    pub fn detail_queries(self, family: Option<PlatformFamily>) -> impl Iterator<Item = &'static DetailQuery> {
        let family = family.unwrap_or(PlatformFamily::Linux);
        DETAIL_QUERIES.iter().filter(move |query| query.vital == self && query.platforms.includes(family))
    }
}

/// Which platform families a detail query goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Platforms {
    All,
    Only(PlatformFamily),
    AnyOf(&'static [PlatformFamily]),
}

impl Platforms {
    fn includes(self, family: PlatformFamily) -> bool {
        match self {
            Platforms::All => true,
            Platforms::Only(only) => only == family,
            Platforms::AnyOf(families) => families.contains(&family),
        }
    }
}

/// How a detail query's rows become host columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ingest {
    /// The vital's own reading (`VitalsPatch::absorb`).
    Vital,
    /// Windows' display name, display version and update revision, read from the registry (Fleet's
    /// `os_version_windows`): the OS label of a Windows host.
    WindowsOsVersion,
}

/// One query herd sends as `fleet_detail_query_<name>`, with the tables its discovery requires and those whose
/// presence means another variant answers instead.
#[derive(Debug)]
pub struct DetailQuery {
    pub name: &'static str,
    pub vital: Vital,
    pub sql: &'static str,
    tables: &'static [&'static str],
    absent_tables: &'static [&'static str],
    platforms: Platforms,
    ingest: Ingest,
}

const UNIX_NETWORK_INTERFACE_SQL: &str = "SELECT ia.address, id.mac FROM interface_addresses ia \
     JOIN interface_details id ON id.interface = ia.interface \
     JOIN routes r ON r.interface = ia.interface \
     WHERE (r.destination = '0.0.0.0' OR r.destination = '::') AND r.netmask = 0 \
     AND r.type = 'gateway' \
     ORDER BY r.metric ASC, ia.address NOT LIKE '%:%' DESC LIMIT 1";

const MOUNTS_DISK_SPACE_SQL: &str = "SELECT ROUND((blocks_available * 100.0) / blocks, 2) AS percent_disk_space_available, \
     ROUND((blocks_available * blocks_size) / 1e9, 2) AS gigs_disk_space_available, \
     ROUND((blocks * blocks_size) / 1e9, 2) AS gigs_total_disk_space \
     FROM mounts WHERE path = '/' LIMIT 1";

const NETWORK_TABLES: &[&str] = &["interface_addresses", "interface_details", "routes"];

/// Every detail query, Fleet's platform variants included (`server/service/osquery_utils/queries.go`:
/// `network_interface_windows`, `disk_space_darwin` and its legacy `mounts` twin, `disk_space_windows`,
/// `os_version_windows`). The Unix names stay herd's own (`network_interface`, `disk_space`), as hosts and
/// tools have always seen them.
static DETAIL_QUERIES: &[DetailQuery] = &[
    DetailQuery {
        name: "os_version",
        vital: Vital::OsVersion,
        sql: "SELECT * FROM os_version LIMIT 1",
        tables: &["os_version"],
        absent_tables: &[],
        platforms: Platforms::All,
        ingest: Ingest::Vital,
    },
    // osquery's os_version on Windows has neither the marketing version (23H2) nor the update revision; Fleet
    // reads both from the registry. display_version and the revision are LEFT JOINed: Windows Server 2019 has
    // no DisplayVersion, and the query must still answer.
    DetailQuery {
        name: "os_version_windows",
        vital: Vital::OsVersion,
        sql: "WITH display_version_table AS (SELECT data AS display_version FROM registry \
              WHERE path = 'HKEY_LOCAL_MACHINE\\\\SOFTWARE\\\\Microsoft\\\\Windows NT\\\\CurrentVersion\\\\DisplayVersion'), \
              ubr_table AS (SELECT data AS ubr FROM registry \
              WHERE path = 'HKEY_LOCAL_MACHINE\\\\SOFTWARE\\\\Microsoft\\\\Windows NT\\\\CurrentVersion\\\\UBR'), \
              installation_type_table AS (SELECT data AS installation_type FROM registry \
              WHERE path = 'HKEY_LOCAL_MACHINE\\\\SOFTWARE\\\\Microsoft\\\\Windows NT\\\\CurrentVersion\\\\InstallationType') \
              SELECT os.name, COALESCE(d.display_version, '') AS display_version, \
              COALESCE(CONCAT((SELECT version FROM os_version), '.', u.ubr), k.version) AS version, \
              COALESCE(it.installation_type, '') AS installation_type \
              FROM os_version os, kernel_info k \
              LEFT JOIN display_version_table d LEFT JOIN ubr_table u LEFT JOIN installation_type_table it",
        tables: &["os_version", "kernel_info", "registry"],
        absent_tables: &[],
        platforms: Platforms::Only(PlatformFamily::Windows),
        ingest: Ingest::WindowsOsVersion,
    },
    DetailQuery {
        name: "osquery_info",
        vital: Vital::OsqueryInfo,
        sql: "SELECT * FROM osquery_info LIMIT 1",
        tables: &["osquery_info"],
        absent_tables: &[],
        platforms: Platforms::All,
        ingest: Ingest::Vital,
    },
    DetailQuery {
        name: "system_info",
        vital: Vital::SystemInfo,
        sql: "SELECT * FROM system_info LIMIT 1",
        tables: &["system_info"],
        absent_tables: &[],
        platforms: Platforms::All,
        ingest: Ingest::Vital,
    },
    DetailQuery {
        name: "uptime",
        vital: Vital::Uptime,
        sql: "SELECT * FROM uptime LIMIT 1",
        tables: &["uptime"],
        absent_tables: &[],
        platforms: Platforms::All,
        ingest: Ingest::Vital,
    },
    // The address on the interface that carries the default route: the one the host talks out of.
    DetailQuery {
        name: "network_interface",
        vital: Vital::NetworkInterface,
        sql: UNIX_NETWORK_INTERFACE_SQL,
        tables: NETWORK_TABLES,
        absent_tables: &[],
        platforms: Platforms::AnyOf(&[PlatformFamily::Linux, PlatformFamily::Darwin]),
        ingest: Ingest::Vital,
    },
    // On Windows a route names its interface by address, and the default route's type is "remote".
    DetailQuery {
        name: "network_interface_windows",
        vital: Vital::NetworkInterface,
        sql: "SELECT ia.address, id.mac FROM interface_addresses ia \
              JOIN interface_details id ON id.interface = ia.interface \
              JOIN routes r ON r.interface = ia.address \
              WHERE (r.destination = '0.0.0.0' OR r.destination = '::') AND r.netmask = 0 \
              AND r.type = 'remote' \
              ORDER BY r.metric ASC, ia.address NOT LIKE '%:%' DESC LIMIT 1",
        tables: NETWORK_TABLES,
        absent_tables: &[],
        platforms: Platforms::Only(PlatformFamily::Windows),
        ingest: Ingest::Vital,
    },
    DetailQuery {
        name: "disk_space",
        vital: Vital::DiskSpace,
        sql: MOUNTS_DISK_SPACE_SQL,
        tables: &["mounts"],
        absent_tables: &[],
        platforms: Platforms::Only(PlatformFamily::Linux),
        ingest: Ingest::Vital,
    },
    // On APFS, `/` is the sealed system volume; fleetd's `disk_space` table reads the data volume's container,
    // which is what the Mac's owner sees. Macs without it (plain osqueryd) fall back to `mounts`.
    DetailQuery {
        name: "disk_space_darwin",
        vital: Vital::DiskSpace,
        sql: "SELECT ROUND(bytes_available * 100.0 / bytes_total, 2) AS percent_disk_space_available, \
              ROUND(bytes_available / 1e9, 2) AS gigs_disk_space_available, \
              ROUND(bytes_total / 1e9, 2) AS gigs_total_disk_space \
              FROM disk_space LIMIT 1",
        tables: &["disk_space"],
        absent_tables: &[],
        platforms: Platforms::Only(PlatformFamily::Darwin),
        ingest: Ingest::Vital,
    },
    DetailQuery {
        name: "disk_space",
        vital: Vital::DiskSpace,
        sql: MOUNTS_DISK_SPACE_SQL,
        tables: &["mounts"],
        absent_tables: &["disk_space"],
        platforms: Platforms::Only(PlatformFamily::Darwin),
        ingest: Ingest::Vital,
    },
    DetailQuery {
        name: "disk_space_windows",
        vital: Vital::DiskSpace,
        sql: "SELECT ROUND((SUM(free_space) * 100.0) / SUM(size), 2) AS percent_disk_space_available, \
              ROUND(SUM(free_space) / 1e9, 2) AS gigs_disk_space_available, \
              ROUND(SUM(size) / 1e9, 2) AS gigs_total_disk_space \
              FROM logical_drives WHERE file_system = 'NTFS' LIMIT 1",
        tables: &["logical_drives"],
        absent_tables: &[],
        platforms: Platforms::Only(PlatformFamily::Windows),
        ingest: Ingest::Vital,
    },
    DetailQuery {
        name: "osquery_flags",
        vital: Vital::OsqueryFlags,
        sql: "SELECT name, value FROM osquery_flags WHERE name IN \
              ('distributed_interval', 'config_tls_refresh', 'config_refresh', 'logger_tls_period')",
        tables: &["osquery_flags"],
        absent_tables: &[],
        platforms: Platforms::All,
        ingest: Ingest::Vital,
    },
];

impl DetailQuery {
    /// `fleet_detail_query_<name>`.
    pub fn query_name(&self) -> String {
        format!("{QUERY_PREFIX}{}", self.name)
    }

    /// The detail query a distributed/write result name refers to, if it is one of ours. A name several
    /// platforms share reads the same way on each.
    pub fn from_query_name(query_name: &str) -> Option<&'static DetailQuery> {
        let name = query_name.strip_prefix(QUERY_PREFIX)?;
        DETAIL_QUERIES.iter().find(|query| query.name == name)
    }

    /// Discovery SQL: returns a row only when every table the query reads exists on the host, and none of the
    /// tables whose presence hands the vital to another variant.
    pub fn discovery(&self) -> String {
        let quoted = |tables: &[&str]| tables.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
        let mut sql = format!(
            "SELECT 1 FROM (SELECT COUNT(*) AS present FROM osquery_registry \
             WHERE active = 1 AND registry = 'table' AND name IN ({})) WHERE present = {}",
            quoted(self.tables),
            self.tables.len()
        );
        if !self.absent_tables.is_empty() {
            sql.push_str(&format!(
                " AND NOT EXISTS (SELECT 1 FROM osquery_registry \
                 WHERE active = 1 AND registry = 'table' AND name IN ({}))",
                quoted(self.absent_tables)
            ));
        }
        sql
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

/// "Windows 11 Enterprise 23H2 10.0.22631.3155" from an os_version_windows row, as Fleet labels it: the product
/// name ("Microsoft " dropped), its display version, "(Server Core)" on such installations, the build with its
/// update revision.
fn windows_os_version_label(row: &Row) -> Option<String> {
    let name = text(row, "name")?;
    let mut label = format!("{name} {}", text(row, "display_version").unwrap_or_default())
        .replacen("Microsoft Windows", "Windows", 1)
        .trim()
        .to_string();
    if text(row, "installation_type").is_some_and(|t| t.eq_ignore_ascii_case("Server Core")) {
        label.push_str(" (Server Core)");
    }
    if let Some(version) = text(row, "version") {
        label = format!("{label} {version}");
    }
    Some(label)
}

/// Firmware that was never given a serial reports a placeholder ("Default string", "System Serial Number",
/// "-1"); Fleet keeps none of those, and neither does herd (the serial identifies a machine).
fn real_serial(serial: String) -> Option<String> {
    let lower = serial.to_ascii_lowercase();
    let placeholder = ["default", "serial", "string"].iter().any(|word| lower.contains(word)) || serial == "-1";
    (!placeholder).then_some(serial)
}

impl VitalsPatch {
    /// Folds the result rows of one detail query a host answered into the patch.
    pub fn absorb_answer(&mut self, query: &DetailQuery, rows: &[Row]) {
        match query.ingest {
            Ingest::WindowsOsVersion => {
                if let Some(label) = rows.first().and_then(windows_os_version_label) {
                    self.os_version = Some(label);
                }
            }
            // A Windows host's label comes from os_version_windows (osquery's os_version lacks the display
            // version and the update revision), whichever of the two answers is read first.
            Ingest::Vital if query.vital == Vital::OsVersion => {
                let windows_label = self.os_version.take();
                self.absorb(query.vital, rows);
                if self.platform.as_deref() == Some("windows") {
                    self.os_version = windows_label;
                }
            }
            Ingest::Vital => self.absorb(query.vital, rows),
        }
    }

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
                self.hardware_serial = text(row, "hardware_serial").and_then(real_serial);
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

    fn names(family: Option<PlatformFamily>) -> Vec<String> {
        Vital::ALL.into_iter().flat_map(|vital| vital.detail_queries(family)).map(|q| q.name.to_string()).collect()
    }

    #[test]
    fn query_names_round_trip() {
        for family in [None, Some(PlatformFamily::Linux), Some(PlatformFamily::Darwin), Some(PlatformFamily::Windows)] {
            for vital in Vital::ALL {
                for query in vital.detail_queries(family) {
                    let read = DetailQuery::from_query_name(&query.query_name()).expect("known");
                    assert_eq!((read.vital, read.ingest), (vital, query.ingest), "{}", query.name);
                }
            }
        }
        assert!(DetailQuery::from_query_name("fleet_detail_query_nope").is_none());
        assert!(DetailQuery::from_query_name("fleet_policy_query_1").is_none());
    }

    #[test]
    fn each_platform_gets_its_variants() {
        let unix = ["os_version", "osquery_info", "system_info", "uptime", "network_interface", "disk_space"];
        let cases: &[(Option<PlatformFamily>, &[&str])] = &[
            (None, &unix),
            (Some(PlatformFamily::Linux), &unix),
            (
                Some(PlatformFamily::Darwin),
                &[
                    "os_version",
                    "osquery_info",
                    "system_info",
                    "uptime",
                    "network_interface",
                    "disk_space_darwin",
                    "disk_space",
                ],
            ),
            (
                Some(PlatformFamily::Windows),
                &[
                    "os_version",
                    "os_version_windows",
                    "osquery_info",
                    "system_info",
                    "uptime",
                    "network_interface_windows",
                    "disk_space_windows",
                ],
            ),
        ];
        for (family, want) in cases {
            let mut want: Vec<String> = want.iter().map(|n| n.to_string()).collect();
            want.push("osquery_flags".into());
            assert_eq!(names(*family), want, "{family:?}");
        }
        let windows_route = Vital::NetworkInterface.detail_queries(Some(PlatformFamily::Windows)).next().unwrap().sql;
        assert!(windows_route.contains("r.interface = ia.address") && windows_route.contains("'remote'"));
    }

    #[test]
    fn discovery_counts_every_table() {
        let network = Vital::NetworkInterface.detail_queries(Some(PlatformFamily::Linux)).next().unwrap();
        let sql = network.discovery();
        assert!(sql.contains("'interface_addresses', 'interface_details', 'routes'"), "{sql}");
        assert!(sql.ends_with("present = 3"), "{sql}");
        let windows_disk = Vital::DiskSpace.detail_queries(Some(PlatformFamily::Windows)).next().unwrap();
        assert!(windows_disk.discovery().contains("'logical_drives'"));
        // A Mac runs exactly one of its two disk queries: fleetd's table where it exists, else mounts.
        let mac: Vec<_> = Vital::DiskSpace.detail_queries(Some(PlatformFamily::Darwin)).collect();
        assert!(mac[0].discovery().ends_with("present = 1") && mac[0].discovery().contains("'disk_space'"));
        assert!(mac[1].discovery().contains("'mounts'"));
        assert!(mac[1].discovery().contains("NOT EXISTS") && mac[1].discovery().ends_with("name IN ('disk_space'))"));
    }

    #[test]
    fn windows_labels() {
        let cases = [
            (
                row(&[
                    ("name", "Microsoft Windows 11 Enterprise"),
                    ("display_version", "23H2"),
                    ("version", "10.0.22631.3155"),
                    ("installation_type", "Client"),
                ]),
                "Windows 11 Enterprise 23H2 10.0.22631.3155",
            ),
            (
                row(&[
                    ("name", "Microsoft Windows Server 2019 Datacenter"),
                    ("display_version", ""),
                    ("version", "10.0.17763.5458"),
                    ("installation_type", "Server Core"),
                ]),
                "Windows Server 2019 Datacenter (Server Core) 10.0.17763.5458",
            ),
        ];
        for (r, want) in cases {
            assert_eq!(windows_os_version_label(&r).as_deref(), Some(want));
        }
        assert_eq!(windows_os_version_label(&row(&[("version", "10.0")])), None);
    }

    #[test]
    fn a_windows_label_is_not_replaced_by_os_version() {
        let windows = |name: &str| DetailQuery::from_query_name(&format!("{QUERY_PREFIX}{name}")).unwrap();
        let os_version = row(&[
            ("name", "Microsoft Windows 11 Pro"),
            ("version", "10.0.22631"),
            ("major", "10"),
            ("minor", "0"),
            ("patch", ""),
            ("build", "22631"),
            ("platform", "windows"),
            ("platform_like", "windows"),
        ]);
        let registry =
            row(&[("name", "Microsoft Windows 11 Pro"), ("display_version", "23H2"), ("version", "10.0.22631.3155")]);
        for order in [["os_version", "os_version_windows"], ["os_version_windows", "os_version"]] {
            let mut patch = VitalsPatch::default();
            for name in order {
                let rows = if name == "os_version" { &os_version } else { &registry };
                patch.absorb_answer(windows(name), std::slice::from_ref(rows));
            }
            assert_eq!(patch.os_version.as_deref(), Some("Windows 11 Pro 23H2 10.0.22631.3155"), "{order:?}");
            assert_eq!((patch.platform.as_deref(), patch.os_build.as_deref()), (Some("windows"), Some("22631")));
        }
        // A Mac's os_version is its label.
        let mut patch = VitalsPatch::default();
        let mac = row(&[("name", "macOS"), ("major", "14"), ("minor", "5"), ("patch", "0"), ("platform", "darwin")]);
        patch.absorb_answer(windows("os_version"), &[mac]);
        assert_eq!(patch.os_version.as_deref(), Some("macOS 14.5"));
    }

    #[test]
    fn placeholder_serials_are_unknown() {
        let cases = [
            ("C02XK0AAJGH5", Some("C02XK0AAJGH5")),
            ("Default string", None),
            ("System Serial Number", None),
            ("To Be Filled By O.E.M. String", None),
            ("-1", None),
            ("PF3ABCDE", Some("PF3ABCDE")),
        ];
        for (serial, want) in cases {
            let mut patch = VitalsPatch::default();
            patch.absorb(Vital::SystemInfo, &[row(&[("hardware_serial", serial)])]);
            assert_eq!(patch.hardware_serial.as_deref(), want, "{serial}");
        }
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
