//! processes: from /proc/PID/{stat,status,cmdline,exe,cwd,root,io,cgroup}.
//!
//! NULL columns and why: path, cwd, root, disk_bytes_read/written of other users' processes when the agent
//! is not root (the kernel refuses to show them); wired_size (no such notion on Linux); the Windows and
//! macOS columns.

use super::procfs::{boot_time, clock_ticks, colon_fields, kib_field};
use crate::table::{Column, Constraints, Row, Table, TableError, Value};

pub struct Processes;

fn link(pid: i64, name: &str) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/{name}")).ok().map(|p| p.display().to_string())
}

fn process(pid: i64, ticks: i64, boot: Option<i64>) -> Option<Row> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat[open + 1..close].to_string();
    // Fields after the name, numbered from `state` (field 3 in proc(5)) as index 0.
    let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<i64>().ok());
    let status = colon_fields(&std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default());
    let ids = |key: &str| -> Vec<i64> {
        status.get(key).map(|v| v.split_whitespace().filter_map(|x| x.parse().ok()).collect()).unwrap_or_default()
    };
    let (uids, gids) = (ids("Uid"), ids("Gid"));
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|raw| String::from_utf8_lossy(&raw).split('\0').filter(|a| !a.is_empty()).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    let path = link(pid, "exe");
    let on_disk = match &path {
        Some(p) if p.ends_with(" (deleted)") => 0,
        Some(_) => 1,
        None => -1,
    };
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok().map(|t| colon_fields(&t));
    let io_field = |key: &str| io.as_ref().and_then(|io| io.get(key)).and_then(|v| v.parse::<i64>().ok());
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("0::").map(str::to_string)));
    let mut row = Row::new();
    row.insert("pid", Value::Int(pid));
    row.insert("name", Value::text(name));
    row.insert("path", Value::opt_text(path.map(|p| p.trim_end_matches(" (deleted)").to_string())));
    row.insert("cmdline", Value::text(cmdline));
    row.insert("state", Value::opt_text(f.first().map(|s| s.to_string())));
    row.insert("cwd", Value::opt_text(link(pid, "cwd")));
    row.insert("root", Value::opt_text(link(pid, "root")));
    for (column, list, i) in [
        ("uid", &uids, 0),
        ("euid", &uids, 1),
        ("suid", &uids, 2),
        ("gid", &gids, 0),
        ("egid", &gids, 1),
        ("sgid", &gids, 2),
    ] {
        row.insert(column, Value::opt_int(list.get(i).copied()));
    }
    row.insert("on_disk", Value::Int(on_disk));
    row.insert("resident_size", Value::opt_int(kib_field(&status, "VmRSS")));
    row.insert("total_size", Value::opt_int(kib_field(&status, "VmSize")));
    // utime and stime are fields 14 and 15 (index 11 and 12), in clock ticks: osquery reports milliseconds.
    row.insert("user_time", Value::opt_int(num(11).map(|t| t * 1000 / ticks)));
    row.insert("system_time", Value::opt_int(num(12).map(|t| t * 1000 / ticks)));
    row.insert("disk_bytes_read", Value::opt_int(io_field("read_bytes")));
    row.insert("disk_bytes_written", Value::opt_int(io_field("write_bytes")));
    row.insert("start_time", Value::opt_int(boot.zip(num(19)).map(|(boot, start)| boot + start / ticks)));
    row.insert("parent", Value::opt_int(num(1)));
    row.insert("pgroup", Value::opt_int(num(2)));
    row.insert("nice", Value::opt_int(num(16)));
    row.insert("threads", Value::opt_int(num(17)));
    row.insert("cgroup_path", Value::opt_text(cgroup));
    Some(row)
}

impl Table for Processes {
    fn name(&self) -> &'static str {
        "processes"
    }
    fn description(&self) -> &'static str {
        "All running processes on the host system."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::bigint("pid").index(),
            Column::text("name"),
            Column::text("path"),
            Column::text("cmdline"),
            Column::text("state"),
            Column::text("cwd"),
            Column::text("root"),
            Column::bigint("uid"),
            Column::bigint("gid"),
            Column::bigint("euid"),
            Column::bigint("egid"),
            Column::bigint("suid"),
            Column::bigint("sgid"),
            Column::int("on_disk"),
            Column::bigint("wired_size"),
            Column::bigint("resident_size"),
            Column::bigint("total_size"),
            Column::bigint("user_time"),
            Column::bigint("system_time"),
            Column::bigint("disk_bytes_read"),
            Column::bigint("disk_bytes_written"),
            Column::bigint("start_time"),
            Column::bigint("parent"),
            Column::bigint("pgroup"),
            Column::int("threads"),
            Column::int("nice"),
            Column::int("elevated_token").hidden(),
            Column::int("secure_process").hidden(),
            Column::text("protection_type").hidden(),
            Column::int("virtual_process").hidden(),
            Column::bigint("elapsed_time").hidden(),
            Column::bigint("handle_count").hidden(),
            Column::bigint("percent_processor_time").hidden(),
            Column::bigint("upid").hidden(),
            Column::bigint("uppid").hidden(),
            Column::int("cpu_type").hidden(),
            Column::int("cpu_subtype").hidden(),
            Column::int("translated").hidden(),
            Column::text("cgroup_path"),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let (ticks, boot) = (clock_ticks(), boot_time());
        let pids: Vec<i64> = if constraints.equals.contains_key("pid") {
            constraints.ints("pid")
        } else {
            std::fs::read_dir("/proc")?.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i64>().ok()).collect()
        };
        // A process may exit between listing and reading: it is simply not there.
        Ok(pids.into_iter().filter_map(|pid| process(pid, ticks, boot)).collect())
    }
}

/// process_envs: each process's environment, from /proc/PID/environ (the environment it started with;
/// changes it made later are not visible there, as in osquery). Entries without `=` are skipped. Processes
/// of other users give no rows when the agent is not root (the kernel refuses to show their environment).
pub struct ProcessEnvs;

impl Table for ProcessEnvs {
    fn name(&self) -> &'static str {
        "process_envs"
    }
    fn description(&self) -> &'static str {
        "A key/value table of environment variables for each process."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[Column::int("pid").index(), Column::text("key"), Column::text("value")];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let pids: Vec<i64> = if constraints.has("pid") {
            constraints.ints("pid")
        } else {
            std::fs::read_dir("/proc")?.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()
        };
        let mut rows = Vec::new();
        for pid in pids {
            let Ok(raw) = std::fs::read(format!("/proc/{pid}/environ")) else { continue };
            for entry in raw.split(|b| *b == 0).filter(|e| !e.is_empty()) {
                let entry = String::from_utf8_lossy(entry);
                let Some((key, value)) = entry.split_once('=') else { continue };
                rows.push(Row::from([
                    ("pid", Value::Int(pid)),
                    ("key", Value::text(key)),
                    ("value", Value::text(value)),
                ]));
            }
        }
        Ok(rows)
    }
}
