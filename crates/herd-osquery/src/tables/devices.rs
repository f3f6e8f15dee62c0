//! Hardware and services: disk_encryption, cpu_info, systemd_units.
//!
//! NULL columns and why: cpu_info.address_width / socket_designation / cpu_status (not in /proc/cpuinfo);
//! systemd_units.object_path / job_* / user / source_path (need D-Bus); the table is empty when systemd is
//! not this host's init (no `systemctl` answer).

use super::procfs::read_trimmed;
use crate::table::{Column, Constraints, Row, Table, TableError, Value};

pub struct DiskEncryption;

impl Table for DiskEncryption {
    fn name(&self) -> &'static str {
        "disk_encryption"
    }
    fn description(&self) -> &'static str {
        "Disk encryption status and information (dm-crypt)."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("name").index(),
            Column::text("uuid"),
            Column::int("encrypted"),
            Column::text("type"),
            Column::text("encryption_status"),
            Column::text("uid").hidden(),
            Column::text("user_uuid").hidden(),
            Column::text("filevault_status").hidden(),
        ];
        COLUMNS
    }
    /// Every block device under /sys/block: a device-mapper device whose DM uuid starts with `CRYPT-` is
    /// encrypted (its type is the next part: LUKS1, LUKS2, PLAIN...); everything else is not.
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let wanted = constraints.texts("name");
        let mut rows = Vec::new();
        for entry in std::fs::read_dir("/sys/block")?.flatten() {
            let name = format!("/dev/{}", entry.file_name().to_string_lossy());
            if !wanted.is_empty() && !wanted.contains(&name) {
                continue;
            }
            let dm_uuid = read_trimmed(entry.path().join("dm/uuid"));
            let crypt = dm_uuid.as_deref().and_then(|u| u.strip_prefix("CRYPT-"));
            let kind = crypt.map(|c| c.split('-').next().unwrap_or("").to_lowercase());
            rows.push(Row::from([
                ("name", Value::text(name)),
                ("uuid", Value::opt_text(dm_uuid.clone())),
                ("encrypted", Value::Int(crypt.is_some() as i64)),
                ("type", Value::text(kind.unwrap_or_default())),
                ("encryption_status", Value::text(if crypt.is_some() { "encrypted" } else { "not encrypted" })),
            ]));
        }
        Ok(rows)
    }
}

pub struct CpuInfo;

impl Table for CpuInfo {
    fn name(&self) -> &'static str {
        "cpu_info"
    }
    fn description(&self) -> &'static str {
        "Retrieve cpu hardware info of the machine, one row per physical processor."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("device_id"),
            Column::text("model"),
            Column::text("manufacturer"),
            Column::text("processor_type"),
            Column::int("cpu_status"),
            Column::text("number_of_cores"),
            Column::int("logical_processors"),
            Column::text("address_width"),
            Column::int("current_clock_speed"),
            Column::int("max_clock_speed"),
            Column::text("socket_designation"),
            Column::text("availability").hidden(),
            Column::int("load_percentage").hidden(),
            Column::int("number_of_efficiency_cores").hidden(),
            Column::int("number_of_performance_cores").hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let text = std::fs::read_to_string("/proc/cpuinfo")?;
        // physical id → (model, vendor, cores, logical count, MHz)
        let mut sockets: std::collections::BTreeMap<String, (String, String, String, i64, Option<f64>)> =
            Default::default();
        for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
            let get = |key: &str| {
                block
                    .lines()
                    .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim() == key).map(|(_, v)| v.trim().to_string()))
            };
            let socket = sockets.entry(get("physical id").unwrap_or_else(|| "0".into())).or_insert_with(|| {
                (
                    get("model name").unwrap_or_default(),
                    get("vendor_id").unwrap_or_default(),
                    get("cpu cores").unwrap_or_default(),
                    0,
                    None,
                )
            });
            socket.3 += 1;
            socket.4 = socket.4.or_else(|| get("cpu MHz").and_then(|m| m.parse().ok()));
        }
        let max_khz =
            read_trimmed("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").and_then(|v| v.parse::<i64>().ok());
        Ok(sockets
            .into_iter()
            .map(|(id, (model, vendor, cores, logical, mhz))| {
                Row::from([
                    ("device_id", Value::text(format!("CPU{id}"))),
                    ("model", Value::text(model)),
                    ("manufacturer", Value::text(vendor)),
                    ("processor_type", Value::text(std::env::consts::ARCH)),
                    ("number_of_cores", Value::text(cores)),
                    ("logical_processors", Value::Int(logical)),
                    ("current_clock_speed", Value::opt_int(mhz.map(|m| m as i64))),
                    ("max_clock_speed", Value::opt_int(max_khz.map(|k| k / 1000))),
                ])
            })
            .collect())
    }
}

pub struct SystemdUnits;

impl Table for SystemdUnits {
    fn name(&self) -> &'static str {
        "systemd_units"
    }
    fn description(&self) -> &'static str {
        "Track systemd units."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("id"),
            Column::text("description"),
            Column::text("load_state"),
            Column::text("active_state"),
            Column::text("sub_state"),
            Column::text("unit_file_state"),
            Column::text("following"),
            Column::text("object_path"),
            Column::bigint("job_id"),
            Column::text("job_type"),
            Column::text("job_path"),
            Column::text("fragment_path"),
            Column::text("user"),
            Column::text("source_path"),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let run = |args: &[&str]| {
            std::process::Command::new("systemctl")
                .args(args)
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        };
        let Some(units) = run(&["list-units", "--all", "--plain", "--no-legend", "--no-pager"]) else {
            return Ok(Vec::new());
        };
        let files: std::collections::BTreeMap<String, String> =
            run(&["list-unit-files", "--plain", "--no-legend", "--no-pager"])
                .unwrap_or_default()
                .lines()
                .filter_map(|l| {
                    let mut w = l.split_whitespace();
                    Some((w.next()?.to_string(), w.next()?.to_string()))
                })
                .collect();
        Ok(units
            .lines()
            .filter_map(|line| {
                let w: Vec<&str> = line.split_whitespace().collect();
                let [id, load, active, sub, description @ ..] = &w[..] else { return None };
                Some(Row::from([
                    ("id", Value::text(*id)),
                    ("description", Value::text(description.join(" "))),
                    ("load_state", Value::text(*load)),
                    ("active_state", Value::text(*active)),
                    ("sub_state", Value::text(*sub)),
                    ("unit_file_state", Value::opt_text(files.get(*id).cloned())),
                ]))
            })
            .collect())
    }
}
