//! uptime, time, memory_info, load_average, mounts.

use super::procfs::{colon_fields, kib_field, read_trimmed, unescape_octal};
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use chrono::{Datelike, Timelike};

pub struct Uptime;

impl Table for Uptime {
    fn name(&self) -> &'static str {
        "uptime"
    }
    fn description(&self) -> &'static str {
        "Track time passed since last boot."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::int("days"),
            Column::int("hours"),
            Column::int("minutes"),
            Column::int("seconds"),
            Column::bigint("total_seconds"),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let text = std::fs::read_to_string("/proc/uptime")?;
        let total = text
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| TableError::Message("unreadable /proc/uptime".into()))? as i64;
        let mut row = Row::new();
        row.insert("days", Value::Int(total / 86_400));
        row.insert("hours", Value::Int(total % 86_400 / 3_600));
        row.insert("minutes", Value::Int(total % 3_600 / 60));
        row.insert("seconds", Value::Int(total % 60));
        row.insert("total_seconds", Value::Int(total));
        Ok(vec![row])
    }
}

pub struct Time;

impl Table for Time {
    fn name(&self) -> &'static str {
        "time"
    }
    fn description(&self) -> &'static str {
        "Track current date and time in UTC."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("weekday"),
            Column::int("year"),
            Column::int("month"),
            Column::int("day"),
            Column::int("hour"),
            Column::int("minutes"),
            Column::int("seconds"),
            Column::text("timezone"),
            Column::text("local_timezone"),
            Column::int("unix_time"),
            Column::text("timestamp"),
            Column::text("datetime"),
            Column::text("iso_8601"),
            Column::bigint("win_timestamp").hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let now = chrono::Utc::now();
        let local = std::env::var("TZ").ok().filter(|t| !t.is_empty()).or_else(|| read_trimmed("/etc/timezone"));
        let mut row = Row::new();
        row.insert("weekday", Value::text(now.format("%A").to_string()));
        row.insert("year", Value::Int(now.year() as i64));
        row.insert("month", Value::Int(now.month() as i64));
        row.insert("day", Value::Int(now.day() as i64));
        row.insert("hour", Value::Int(now.hour() as i64));
        row.insert("minutes", Value::Int(now.minute() as i64));
        row.insert("seconds", Value::Int(now.second() as i64));
        row.insert("timezone", Value::text("UTC"));
        row.insert("local_timezone", Value::opt_text(local));
        row.insert("unix_time", Value::Int(now.timestamp()));
        row.insert("timestamp", Value::text(now.format("%a %b %e %H:%M:%S %Y UTC").to_string()));
        row.insert("datetime", Value::text(now.format("%Y-%m-%dT%H:%M:%SZ").to_string()));
        row.insert("iso_8601", Value::text(now.format("%Y-%m-%dT%H:%M:%SZ").to_string()));
        Ok(vec![row])
    }
}

pub struct MemoryInfo;

impl Table for MemoryInfo {
    fn name(&self) -> &'static str {
        "memory_info"
    }
    fn description(&self) -> &'static str {
        "Main memory information in bytes."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::bigint("memory_total"),
            Column::bigint("memory_free"),
            Column::bigint("memory_available"),
            Column::bigint("buffers"),
            Column::bigint("cached"),
            Column::bigint("swap_cached"),
            Column::bigint("active"),
            Column::bigint("inactive"),
            Column::bigint("swap_total"),
            Column::bigint("swap_free"),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let fields = colon_fields(&std::fs::read_to_string("/proc/meminfo")?);
        let mut row = Row::new();
        for (column, key) in [
            ("memory_total", "MemTotal"),
            ("memory_free", "MemFree"),
            ("memory_available", "MemAvailable"),
            ("buffers", "Buffers"),
            ("cached", "Cached"),
            ("swap_cached", "SwapCached"),
            ("active", "Active"),
            ("inactive", "Inactive"),
            ("swap_total", "SwapTotal"),
            ("swap_free", "SwapFree"),
        ] {
            row.insert(column, Value::opt_int(kib_field(&fields, key)));
        }
        Ok(vec![row])
    }
}

pub struct LoadAverage;

impl Table for LoadAverage {
    fn name(&self) -> &'static str {
        "load_average"
    }
    fn description(&self) -> &'static str {
        "Displays information about the system wide load averages."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[Column::text("period"), Column::text("average")];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let text = std::fs::read_to_string("/proc/loadavg")?;
        Ok(["1m", "5m", "15m"]
            .iter()
            .zip(text.split_whitespace())
            .map(|(period, average)| Row::from([("period", Value::text(*period)), ("average", Value::text(average))]))
            .collect())
    }
}

pub struct Mounts;

impl Table for Mounts {
    fn name(&self) -> &'static str {
        "mounts"
    }
    fn description(&self) -> &'static str {
        "System mounted devices and filesystems (not process specific)."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("device"),
            Column::text("device_alias"),
            Column::text("path"),
            Column::text("type"),
            Column::bigint("blocks_size"),
            Column::bigint("blocks"),
            Column::bigint("blocks_free"),
            Column::bigint("blocks_available"),
            Column::bigint("inodes"),
            Column::bigint("inodes_free"),
            Column::text("flags"),
        ];
        COLUMNS
    }
    /// Block and inode counts come from statvfs(2); a mount it cannot stat (permissions, a hung network
    /// filesystem) keeps NULL there.
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let text = std::fs::read_to_string("/proc/mounts")?;
        let mut rows = Vec::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [device, path, kind, flags, ..] = fields[..] else { continue };
            let (device, path) = (unescape_octal(device), unescape_octal(path));
            let alias =
                std::fs::canonicalize(&device).map(|p| p.display().to_string()).unwrap_or_else(|_| device.clone());
            let mut row = Row::new();
            if let Ok(stats) = nix::sys::statvfs::statvfs(path.as_str()) {
                row.insert("blocks_size", Value::Int(stats.block_size() as i64));
                row.insert("blocks", Value::Int(stats.blocks() as i64));
                row.insert("blocks_free", Value::Int(stats.blocks_free() as i64));
                row.insert("blocks_available", Value::Int(stats.blocks_available() as i64));
                row.insert("inodes", Value::Int(stats.files() as i64));
                row.insert("inodes_free", Value::Int(stats.files_free() as i64));
            }
            row.insert("device", Value::text(device));
            row.insert("device_alias", Value::text(alias));
            row.insert("path", Value::text(path));
            row.insert("type", Value::text(kind));
            row.insert("flags", Value::text(flags));
            rows.push(row);
        }
        Ok(rows)
    }
}
