//! Software and kernel state: deb_packages, rpm_packages, python_packages, apt_sources, kernel_modules,
//! system_controls.
//!
//! NULL columns and why: rpm_packages.sha1 (not kept by `rpm -qa` output we read); python_packages.uid
//! (system-wide site directories belong to no user); system_controls.oid and type (BSD notions: Linux's
//! /proc/sys has neither OIDs nor declared types).

use super::procfs::read_trimmed;
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::path::{Path, PathBuf};

/// Paragraphs of a deb822 file (dpkg status, .sources): fields with continuation lines folded.
pub fn deb822(text: &str) -> Vec<Vec<(String, String)>> {
    let mut paragraphs = Vec::new();
    let mut current: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line.trim().is_empty() {
            if !current.is_empty() {
                paragraphs.push(std::mem::take(&mut current));
            }
        } else if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                value.push('\n');
                value.push_str(line.trim());
            }
        } else if let Some((key, value)) = line.split_once(':') {
            current.push((key.trim().to_string(), value.trim().to_string()));
        }
    }
    if !current.is_empty() {
        paragraphs.push(current);
    }
    paragraphs
}

fn field<'a>(paragraph: &'a [(String, String)], key: &str) -> Option<&'a str> {
    paragraph.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
}

pub struct DebPackages;

impl Table for DebPackages {
    fn name(&self) -> &'static str {
        "deb_packages"
    }
    fn description(&self) -> &'static str {
        "The installed DEB package database."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("name"),
            Column::text("version"),
            Column::text("source"),
            Column::bigint("size"),
            Column::text("arch"),
            Column::text("revision"),
            Column::text("status"),
            Column::text("maintainer"),
            Column::text("section"),
            Column::text("priority"),
            Column::text("admindir").index(),
            Column::int("pid_with_namespace").index().hidden(),
            Column::text("mount_namespace_id").hidden(),
        ];
        COLUMNS
    }
    /// Installed packages (status "install ok installed") from DPKG_ADMINDIR/status; no dpkg database:
    /// no rows.
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut admindirs = constraints.texts("admindir");
        if admindirs.is_empty() {
            admindirs.push("/var/lib/dpkg".into());
        }
        let mut rows = Vec::new();
        for admindir in admindirs {
            let Ok(text) = std::fs::read_to_string(Path::new(&admindir).join("status")) else { continue };
            for p in deb822(&text) {
                let status = field(&p, "Status").unwrap_or("");
                if !status.ends_with(" installed") {
                    continue;
                }
                let version = field(&p, "Version").unwrap_or("");
                let revision = version.rsplit_once('-').map(|(_, r)| r.to_string()).unwrap_or_default();
                let source = field(&p, "Source").map(|s| s.split_whitespace().next().unwrap_or(s).to_string());
                rows.push(Row::from([
                    ("name", Value::opt_text(field(&p, "Package"))),
                    ("version", Value::text(version)),
                    ("source", Value::text(source.unwrap_or_default())),
                    (
                        "size",
                        Value::opt_int(
                            field(&p, "Installed-Size").and_then(|s| s.parse::<i64>().ok()).map(|k| k * 1024),
                        ),
                    ),
                    ("arch", Value::opt_text(field(&p, "Architecture"))),
                    ("revision", Value::text(revision)),
                    ("status", Value::text(status)),
                    ("maintainer", Value::opt_text(field(&p, "Maintainer"))),
                    ("section", Value::opt_text(field(&p, "Section"))),
                    ("priority", Value::opt_text(field(&p, "Priority"))),
                    ("admindir", Value::text(admindir.clone())),
                ]));
            }
        }
        Ok(rows)
    }
}

pub struct RpmPackages;

impl Table for RpmPackages {
    fn name(&self) -> &'static str {
        "rpm_packages"
    }
    fn description(&self) -> &'static str {
        "RPM packages currently installed (empty when the host has no RPM database)."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("name").index(),
            Column::text("version").index(),
            Column::text("release").index(),
            Column::text("source"),
            Column::bigint("size"),
            Column::text("sha1"),
            Column::text("arch").index(),
            Column::int("epoch").index(),
            Column::int("install_time"),
            Column::text("vendor"),
            Column::text("package_group"),
            Column::int("pid_with_namespace").index().hidden(),
            Column::text("mount_namespace_id").hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let has_db = ["/var/lib/rpm", "/usr/lib/sysimage/rpm"]
            .iter()
            .any(|d| Path::new(d).join("rpmdb.sqlite").exists() || Path::new(d).join("Packages").exists());
        if !has_db {
            return Ok(Vec::new());
        }
        const FORMAT: &str = "%{NAME}\\t%{VERSION}\\t%{RELEASE}\\t%{SOURCERPM}\\t%{SIZE}\\t%{ARCH}\\t%{EPOCH}\\t%{INSTALLTIME}\\t%{VENDOR}\\t%{GROUP}\\n";
        let output = std::process::Command::new("rpm").args(["-qa", "--qf", FORMAT]).output()?;
        let text = String::from_utf8_lossy(&output.stdout);
        let none = |v: &str| if v == "(none)" { None } else { Some(v.to_string()) };
        Ok(text
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split('\t').collect();
                (f.len() == 10).then(|| {
                    Row::from([
                        ("name", Value::text(f[0])),
                        ("version", Value::text(f[1])),
                        ("release", Value::text(f[2])),
                        ("source", Value::opt_text(none(f[3]))),
                        ("size", Value::opt_int(f[4].parse().ok())),
                        ("arch", Value::text(f[5])),
                        ("epoch", Value::opt_int(f[6].parse().ok())),
                        ("install_time", Value::opt_int(f[7].parse().ok())),
                        ("vendor", Value::opt_text(none(f[8]))),
                        ("package_group", Value::opt_text(none(f[9]))),
                    ])
                })
            })
            .collect())
    }
}

pub struct PythonPackages;

/// System-wide site directories where Python packages live.
fn site_directories() -> Vec<PathBuf> {
    let mut dirs = vec![PathBuf::from("/usr/lib/python3/dist-packages")];
    for base in ["/usr/lib", "/usr/local/lib", "/usr/lib64"] {
        if let Ok(entries) = std::fs::read_dir(base) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with("python") {
                    dirs.push(entry.path().join("site-packages"));
                    dirs.push(entry.path().join("dist-packages"));
                }
            }
        }
    }
    dirs.sort();
    dirs.dedup();
    dirs.into_iter().filter(|d| d.is_dir()).collect()
}

impl Table for PythonPackages {
    fn name(&self) -> &'static str {
        "python_packages"
    }
    fn description(&self) -> &'static str {
        "Python packages installed in the system's site directories."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("name"),
            Column::bigint("uid").index(),
            Column::text("version"),
            Column::text("summary"),
            Column::text("author"),
            Column::text("license"),
            Column::text("path"),
            Column::text("directory").index(),
            Column::int("pid_with_namespace").index().hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut directories: Vec<PathBuf> = constraints.texts("directory").into_iter().map(PathBuf::from).collect();
        if directories.is_empty() {
            directories = site_directories();
        }
        let mut rows = Vec::new();
        for dir in directories {
            let Ok(entries) = std::fs::read_dir(&dir) else { continue };
            let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
            entries.sort();
            for entry in entries {
                let name = entry.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let metadata = if name.ends_with(".dist-info") {
                    entry.join("METADATA")
                } else if name.ends_with(".egg-info") {
                    if entry.is_dir() { entry.join("PKG-INFO") } else { entry.clone() }
                } else {
                    continue;
                };
                let Ok(text) = std::fs::read_to_string(&metadata) else { continue };
                // The header block ends at the first blank line; the description follows.
                let header = text.split("\n\n").next().unwrap_or("");
                let get = |key: &str| {
                    header.lines().find_map(|l| {
                        l.strip_prefix(key).and_then(|v| v.strip_prefix(':')).map(|v| v.trim().to_string())
                    })
                };
                rows.push(Row::from([
                    ("name", Value::opt_text(get("Name"))),
                    ("version", Value::opt_text(get("Version"))),
                    ("summary", Value::opt_text(get("Summary"))),
                    ("author", Value::opt_text(get("Author"))),
                    ("license", Value::opt_text(get("License"))),
                    ("path", Value::text(entry.display().to_string())),
                    ("directory", Value::text(dir.display().to_string())),
                ]));
            }
        }
        Ok(rows)
    }
}

pub struct AptSources;

impl Table for AptSources {
    fn name(&self) -> &'static str {
        "apt_sources"
    }
    fn description(&self) -> &'static str {
        "Current list of APT repositories or software channels."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("name"),
            Column::text("source"),
            Column::text("base_uri"),
            Column::text("release"),
            Column::text("version"),
            Column::text("maintainer"),
            Column::text("components"),
            Column::text("architectures"),
            Column::int("pid_with_namespace").index().hidden(),
        ];
        COLUMNS
    }
    /// One-line `.list` entries and deb822 `.sources` stanzas. `version`/`maintainer` come from the
    /// repositories' downloaded Release files, which this table does not read: NULL.
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
        if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
            // apt reads only *.list and *.sources there (foo.list.disabled is off).
            let mut more: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "list" || x == "sources"))
                .collect();
            more.sort();
            files.extend(more);
        }
        let mut rows = Vec::new();
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else { continue };
            let source = file.display().to_string();
            let mut add = |uri: &str, suite: &str, components: &str, arch: Option<String>| {
                let name = format!("{} {suite}", uri.trim_end_matches('/'));
                rows.push(Row::from([
                    ("name", Value::text(name)),
                    ("source", Value::text(source.clone())),
                    ("base_uri", Value::text(uri)),
                    ("release", Value::text(suite)),
                    ("components", Value::text(components)),
                    ("architectures", Value::opt_text(arch)),
                ]));
            };
            if file.extension().is_some_and(|e| e == "sources") {
                for p in deb822(&text) {
                    if field(&p, "Enabled").is_some_and(|e| e.eq_ignore_ascii_case("no")) {
                        continue;
                    }
                    let (uris, suites) = (field(&p, "URIs").unwrap_or(""), field(&p, "Suites").unwrap_or(""));
                    for uri in uris.split_whitespace() {
                        for suite in suites.split_whitespace() {
                            add(
                                uri,
                                suite,
                                field(&p, "Components").unwrap_or(""),
                                field(&p, "Architectures").map(str::to_string),
                            );
                        }
                    }
                }
            } else {
                for line in text.lines().map(str::trim).filter(|l| l.starts_with("deb ")) {
                    let mut words: Vec<&str> = line.split_whitespace().skip(1).collect();
                    let mut arch = None;
                    if words.first().is_some_and(|w| w.starts_with('[')) {
                        let options = words.remove(0);
                        arch = options
                            .trim_matches(['[', ']'])
                            .split_whitespace()
                            .find_map(|o| o.strip_prefix("arch="))
                            .map(str::to_string);
                    }
                    if let [uri, suite, components @ ..] = &words[..] {
                        add(uri, suite, &components.join(" "), arch);
                    }
                }
            }
        }
        Ok(rows)
    }
}

pub struct KernelModules;

impl Table for KernelModules {
    fn name(&self) -> &'static str {
        "kernel_modules"
    }
    fn description(&self) -> &'static str {
        "Linux kernel modules both loaded and within the load search path."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("name"),
            Column::bigint("size"),
            Column::text("used_by"),
            Column::text("status"),
            Column::text("address"),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let text = std::fs::read_to_string("/proc/modules").unwrap_or_default();
        Ok(text
            .lines()
            .filter_map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                (f.len() >= 6).then(|| {
                    Row::from([
                        ("name", Value::text(f[0])),
                        ("size", Value::opt_int(f[1].parse().ok())),
                        ("used_by", Value::text(f[3].trim_end_matches(','))),
                        ("status", Value::text(f[4])),
                        ("address", Value::text(f[5])),
                    ])
                })
            })
            .collect())
    }
}

pub struct SystemControls;

/// Values set in /etc/sysctl.conf and /etc/sysctl.d/*.conf (later files win).
fn configured_sysctls() -> std::collections::BTreeMap<String, String> {
    let mut files = vec![PathBuf::from("/etc/sysctl.conf")];
    for dir in ["/usr/lib/sysctl.d", "/run/sysctl.d", "/etc/sysctl.d"] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut more: Vec<PathBuf> =
                entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "conf")).collect();
            more.sort();
            files.extend(more);
        }
    }
    let mut values = std::collections::BTreeMap::new();
    for file in files {
        for line in std::fs::read_to_string(file).unwrap_or_default().lines().map(str::trim) {
            if line.starts_with(['#', ';']) {
                continue;
            }
            if let Some((key, value)) = line.split_once('=') {
                values.insert(key.trim().trim_start_matches('-').replace('/', "."), value.trim().to_string());
            }
        }
    }
    values
}

fn walk_sysctl(dir: &Path, prefix: &str, out: &mut Vec<(String, PathBuf)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let dotted = if prefix.is_empty() { name.clone() } else { format!("{prefix}.{name}") };
        match entry.file_type() {
            Ok(t) if t.is_dir() => walk_sysctl(&entry.path(), &dotted, out),
            Ok(t) if t.is_file() => out.push((dotted, entry.path())),
            _ => {}
        }
    }
}

impl Table for SystemControls {
    fn name(&self) -> &'static str {
        "system_controls"
    }
    fn description(&self) -> &'static str {
        "sysctl names, values, and settings information."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("name").index(),
            Column::text("oid").index(),
            Column::text("subsystem").index(),
            Column::text("current_value"),
            Column::text("config_value"),
            Column::text("type"),
            Column::text("field_name").hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut entries = Vec::new();
        let names = constraints.texts("name");
        if names.is_empty() {
            walk_sysctl(Path::new("/proc/sys"), "", &mut entries);
        } else {
            entries =
                names.into_iter().map(|n| (n.clone(), Path::new("/proc/sys").join(n.replace('.', "/")))).collect();
        }
        let configured = configured_sysctls();
        Ok(entries
            .into_iter()
            .filter_map(|(name, path)| {
                // Write-only and unreadable entries have no current value to report.
                let value = read_trimmed(&path).or_else(|| std::fs::metadata(&path).ok().map(|_| String::new()))?;
                let subsystem = name.split('.').next().unwrap_or("").to_string();
                Some(Row::from([
                    ("current_value", Value::text(value.replace('\t', " "))),
                    ("config_value", Value::opt_text(configured.get(&name).cloned())),
                    ("subsystem", Value::text(subsystem)),
                    ("name", Value::text(name)),
                ]))
            })
            .collect())
    }
}
