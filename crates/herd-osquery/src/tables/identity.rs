//! Who the host is: os_version, system_info, osquery_info, kernel_info.
//!
//! NULL columns and why:
//! - system_info.uuid, hardware_serial, board_serial: the DMI files are readable by root only; an agent
//!   running unprivileged cannot know them.
//! - system_info.cpu_subtype, cpu_microcode (when /proc/cpuinfo lacks them), hardware_version, emulated_cpu_type.
//! - osquery_info.config_hash, config_valid, build_distro: herd-agent has no osquery config file or build.

use super::procfs::{key_values, read_trimmed};
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::collections::BTreeSet;

pub struct OsVersion;

impl Table for OsVersion {
    fn name(&self) -> &'static str {
        "os_version"
    }
    fn description(&self) -> &'static str {
        "A single row containing the operating system name and version."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("name"),
            Column::text("version"),
            Column::int("major"),
            Column::int("minor"),
            Column::int("patch"),
            Column::text("build"),
            Column::text("platform"),
            Column::text("platform_like"),
            Column::text("codename"),
            Column::text("arch"),
            Column::text("extra").hidden(),
            Column::bigint("install_date").hidden(),
            Column::int("revision").hidden(),
            Column::int("pid_with_namespace").index().hidden(),
            Column::text("mount_namespace_id").hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let text =
            std::fs::read_to_string("/etc/os-release").or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))?;
        let release = key_values(&text);
        let get = |k: &str| release.get(k).cloned().filter(|v| !v.is_empty());
        let numbers: Vec<i64> =
            get("VERSION_ID").map(|v| v.split('.').map_while(|p| p.parse().ok()).collect()).unwrap_or_default();
        let mut row = Row::new();
        row.insert("name", Value::opt_text(get("NAME")));
        row.insert("version", Value::opt_text(get("VERSION").or_else(|| get("VERSION_ID"))));
        row.insert("major", Value::opt_int(numbers.first().copied()));
        row.insert("minor", Value::opt_int(numbers.get(1).copied()));
        row.insert("patch", Value::opt_int(numbers.get(2).copied()));
        row.insert("build", Value::opt_text(get("BUILD_ID")));
        row.insert("platform", Value::opt_text(get("ID")));
        row.insert("platform_like", Value::opt_text(get("ID_LIKE")));
        row.insert("codename", Value::opt_text(get("VERSION_CODENAME")));
        row.insert(
            "arch",
            Value::text(
                nix::sys::utsname::uname().map(|u| u.machine().to_string_lossy().into_owned()).unwrap_or_default(),
            ),
        );
        Ok(vec![row])
    }
}

/// CPU facts from /proc/cpuinfo: brand, logical count, physical core count.
fn cpu_facts() -> (Option<String>, i64, Option<i64>, Option<String>) {
    let text = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let mut brand = None;
    let mut microcode = None;
    let mut logical = 0;
    let mut cores = BTreeSet::new();
    let mut physical_id = String::new();
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else { continue };
        let (key, value) = (key.trim(), value.trim());
        match key {
            "processor" => logical += 1,
            "model name" if brand.is_none() => brand = Some(value.to_string()),
            "microcode" if microcode.is_none() => microcode = Some(value.to_string()),
            "physical id" => physical_id = value.to_string(),
            "core id" => {
                cores.insert((physical_id.clone(), value.to_string()));
            }
            _ => {}
        }
    }
    let physical = if cores.is_empty() { None } else { Some(cores.len() as i64) };
    (brand, logical, physical, microcode)
}

pub fn hostname() -> Option<String> {
    nix::unistd::gethostname().ok().map(|h| h.to_string_lossy().into_owned()).filter(|h| !h.is_empty())
}

/// The host's hardware UUID (DMI product_uuid), readable by root only.
pub fn hardware_uuid() -> Option<String> {
    read_trimmed("/sys/class/dmi/id/product_uuid").map(|u| u.to_uppercase())
}

pub struct SystemInfo;

impl Table for SystemInfo {
    fn name(&self) -> &'static str {
        "system_info"
    }
    fn description(&self) -> &'static str {
        "System information for identification."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("hostname"),
            Column::text("uuid"),
            Column::text("cpu_type"),
            Column::text("cpu_subtype"),
            Column::text("cpu_brand"),
            Column::int("cpu_physical_cores"),
            Column::int("cpu_logical_cores"),
            Column::int("cpu_sockets"),
            Column::text("cpu_microcode"),
            Column::bigint("physical_memory"),
            Column::text("hardware_vendor"),
            Column::text("hardware_model"),
            Column::text("hardware_version"),
            Column::text("hardware_serial"),
            Column::text("board_vendor"),
            Column::text("board_model"),
            Column::text("board_version"),
            Column::text("board_serial"),
            Column::text("computer_name"),
            Column::text("local_hostname"),
            Column::text("emulated_cpu_type").hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let dmi = |f: &str| read_trimmed(format!("/sys/class/dmi/id/{f}"));
        let (brand, logical, physical, microcode) = cpu_facts();
        let meminfo = super::procfs::colon_fields(&std::fs::read_to_string("/proc/meminfo").unwrap_or_default());
        let host = hostname();
        let mut row = Row::new();
        row.insert("hostname", Value::opt_text(host.clone()));
        row.insert("uuid", Value::opt_text(hardware_uuid()));
        row.insert(
            "cpu_type",
            Value::opt_text(nix::sys::utsname::uname().ok().map(|u| u.machine().to_string_lossy().into_owned())),
        );
        row.insert("cpu_brand", Value::opt_text(brand));
        row.insert("cpu_physical_cores", Value::opt_int(physical));
        row.insert("cpu_logical_cores", Value::Int(logical));
        row.insert("cpu_microcode", Value::opt_text(microcode));
        row.insert("physical_memory", Value::opt_int(super::procfs::kib_field(&meminfo, "MemTotal")));
        row.insert("hardware_vendor", Value::opt_text(dmi("sys_vendor")));
        row.insert("hardware_model", Value::opt_text(dmi("product_name")));
        row.insert("hardware_version", Value::opt_text(dmi("product_version")));
        row.insert("hardware_serial", Value::opt_text(dmi("product_serial")));
        row.insert("board_vendor", Value::opt_text(dmi("board_vendor")));
        row.insert("board_model", Value::opt_text(dmi("board_name")));
        row.insert("board_version", Value::opt_text(dmi("board_version")));
        row.insert("board_serial", Value::opt_text(dmi("board_serial")));
        row.insert("computer_name", Value::opt_text(host.clone()));
        row.insert("local_hostname", Value::opt_text(host));
        Ok(vec![row])
    }
}

pub struct OsqueryInfo;

impl Table for OsqueryInfo {
    fn name(&self) -> &'static str {
        "osquery_info"
    }
    fn description(&self) -> &'static str {
        "Top level information about the running agent (herd-agent, in osquery's shape)."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::int("pid"),
            Column::text("uuid"),
            Column::text("instance_id"),
            Column::text("version"),
            Column::text("config_hash"),
            Column::int("config_valid"),
            Column::text("extensions"),
            Column::text("build_platform"),
            Column::text("build_distro"),
            Column::int("start_time"),
            Column::int("watcher"),
            Column::int("platform_mask"),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let pid = std::process::id() as i64;
        let start_time = process_start_time(pid);
        let mut row = Row::new();
        row.insert("pid", Value::Int(pid));
        row.insert("uuid", Value::opt_text(hardware_uuid()));
        row.insert("version", Value::text(super::AGENT_VERSION));
        row.insert("extensions", Value::text("inactive"));
        row.insert("build_platform", Value::text(std::env::consts::OS));
        row.insert("start_time", Value::opt_int(start_time));
        row.insert("watcher", Value::Int(-1));
        // osquery's platform bitmask: posix (1) | linux (8).
        row.insert("platform_mask", Value::Int(if cfg!(target_os = "linux") { 9 } else { 1 }));
        Ok(vec![row])
    }
}

/// Start time (Unix seconds) of a process, from /proc/PID/stat and the boot time.
pub fn process_start_time(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    let ticks: i64 = after.split_whitespace().nth(19)?.parse().ok()?;
    Some(super::procfs::boot_time()? + ticks / super::procfs::clock_ticks())
}

pub struct KernelInfo;

impl Table for KernelInfo {
    fn name(&self) -> &'static str {
        "kernel_info"
    }
    fn description(&self) -> &'static str {
        "Basic active kernel information."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] =
            &[Column::text("version"), Column::text("arguments"), Column::text("path"), Column::text("device")];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let cmdline = read_trimmed("/proc/cmdline").unwrap_or_default();
        let arg = |key: &str| cmdline.split_whitespace().find_map(|a| a.strip_prefix(key)).map(str::to_string);
        let mut row = Row::new();
        row.insert("version", Value::opt_text(read_trimmed("/proc/sys/kernel/osrelease")));
        row.insert("arguments", Value::text(cmdline.clone()));
        row.insert("path", Value::opt_text(arg("BOOT_IMAGE=")));
        row.insert("device", Value::opt_text(arg("root=")));
        Ok(vec![row])
    }
}
