//! Open descriptors of processes: process_open_files and process_open_sockets, from /proc/PID/fd (the
//! descriptors' targets) and the socket tables of each process's network namespace (/proc/PID/net/...).
//! Processes the agent may not inspect (other users' when it is not root) and processes that exit while being
//! read give no rows.
//!
//! process_open_files: one row per descriptor whose target is not a socket, pipe or anonymous inode (osquery
//! leaves those out): `pid`, `fd` (the descriptor's number), `path` (its link target as the kernel shows it,
//! ` (deleted)` included for deleted files, as osquery shows it).
//!
//! process_open_sockets: one row per socket descriptor (`socket:[INODE]`) found in the namespace's
//! /proc/net/{tcp,tcp6,udp,udp6,unix} (sockets of other kinds — raw, netlink, packet — give no row):
//! - `pid`, `fd`; `socket` the inode; `net_namespace` the inode of the process's network namespace.
//! - `family` 2 (IPv4), 10 (IPv6), 1 (UNIX); `protocol` 6 (TCP), 17 (UDP), and for UNIX sockets the table's
//!   Protocol field (0), as osquery reads it.
//! - TCP and UDP: `local_address`, `local_port`, `remote_address`, `remote_port` from the table; `state` TCP's
//!   state name (`ESTABLISHED`, `LISTEN`, ...), empty for UDP; `path` empty.
//! - UNIX: `path` the bound path (abstract names start with `@`; empty when unbound); addresses empty and
//!   ports 0, `state` empty.

use super::network::parse_endpoint;
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::collections::BTreeMap;

/// The pids asked for by a `pid` constraint, else every process.
fn pids(constraints: &Constraints) -> Vec<i64> {
    if constraints.has("pid") {
        return constraints.ints("pid");
    }
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect()
}

/// A process's descriptors: (number, link target).
fn descriptors(pid: i64) -> Vec<(i64, String)> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    let mut fds: Vec<(i64, String)> = entries
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            let target = std::fs::read_link(e.path()).ok()?;
            Some((fd, target.to_string_lossy().into_owned()))
        })
        .collect();
    fds.sort();
    fds
}

pub struct ProcessOpenFiles;

impl Table for ProcessOpenFiles {
    fn name(&self) -> &'static str {
        "process_open_files"
    }
    fn description(&self) -> &'static str {
        "File descriptors for each process."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[Column::bigint("pid").index(), Column::bigint("fd"), Column::text("path")];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        for pid in pids(constraints) {
            for (fd, target) in descriptors(pid) {
                if ["socket:", "pipe:", "anon_inode:"].iter().any(|p| target.starts_with(p)) {
                    continue;
                }
                rows.push(Row::from([("pid", Value::Int(pid)), ("fd", Value::Int(fd)), ("path", Value::text(target))]));
            }
        }
        Ok(rows)
    }
}

/// One socket of a namespace's tables.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SocketInfo {
    family: i64,
    protocol: i64,
    local: (String, i64),
    remote: (String, i64),
    state: String,
    path: String,
}

/// TCP's states as /proc/net/tcp numbers them (include/net/tcp_states.h).
fn tcp_state(code: &str) -> &'static str {
    match u8::from_str_radix(code, 16).unwrap_or(0) {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        12 => "NEW_SYN_RECV",
        _ => "UNKNOWN",
    }
}

/// inode → socket, from the tables in `net` (a /proc/PID/net directory).
pub(crate) fn socket_tables(net: &std::path::Path) -> BTreeMap<u64, SocketInfo> {
    let mut sockets = BTreeMap::new();
    for (file, protocol, family, v6) in
        [("tcp", 6, 2, false), ("tcp6", 6, 10, true), ("udp", 17, 2, false), ("udp6", 17, 10, true)]
    {
        // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
        for line in std::fs::read_to_string(net.join(file)).unwrap_or_default().lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 {
                continue;
            }
            let (Some(local), Some(remote), Ok(inode)) =
                (parse_endpoint(f[1], v6), parse_endpoint(f[2], v6), f[9].parse())
            else {
                continue;
            };
            let state = if protocol == 6 { tcp_state(f[3]).to_string() } else { String::new() };
            sockets.insert(inode, SocketInfo { family, protocol, local, remote, state, path: String::new() });
        }
    }
    // Num RefCount Protocol Flags Type St Inode Path
    for line in std::fs::read_to_string(net.join("unix")).unwrap_or_default().lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 7 {
            continue;
        }
        let Ok(inode) = f[6].parse() else { continue };
        let protocol = i64::from_str_radix(f[2], 16).unwrap_or(0);
        let path = after_fields(line, 7).to_string();
        sockets.insert(
            inode,
            SocketInfo {
                family: 1,
                protocol,
                local: (String::new(), 0),
                remote: (String::new(), 0),
                state: String::new(),
                path,
            },
        );
    }
    sockets
}

/// What follows the first `n` whitespace-separated fields of `line`, trimmed (a UNIX socket's path, which may
/// hold spaces).
fn after_fields(line: &str, n: usize) -> &str {
    let mut rest = line.trim_start();
    for _ in 0..n {
        rest = rest.find(char::is_whitespace).map_or("", |i| rest[i..].trim_start());
    }
    rest.trim_end()
}

pub struct ProcessOpenSockets;

/// The inode of a process's network namespace.
fn net_namespace(pid: i64) -> Option<String> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/net")).ok()?;
    let link = link.to_string_lossy();
    Some(link.strip_prefix("net:[")?.strip_suffix(']')?.to_string())
}

impl Table for ProcessOpenSockets {
    fn name(&self) -> &'static str {
        "process_open_sockets"
    }
    fn description(&self) -> &'static str {
        "Processes which have open network sockets on the system."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::int("pid").index(),
            Column::bigint("fd"),
            Column::bigint("socket"),
            Column::int("family"),
            Column::int("protocol"),
            Column::text("local_address"),
            Column::text("remote_address"),
            Column::int("local_port"),
            Column::int("remote_port"),
            Column::text("path"),
            Column::text("state"),
            Column::text("net_namespace"),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        // Each namespace's tables are read once, through the first process seen in it.
        let mut tables: BTreeMap<String, BTreeMap<u64, SocketInfo>> = BTreeMap::new();
        let mut rows = Vec::new();
        for pid in pids(constraints) {
            let sockets: Vec<(i64, u64)> = descriptors(pid)
                .into_iter()
                .filter_map(|(fd, t)| Some((fd, t.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()?)))
                .collect();
            if sockets.is_empty() {
                continue;
            }
            let Some(namespace) = net_namespace(pid) else { continue };
            let table = tables
                .entry(namespace.clone())
                .or_insert_with(|| socket_tables(std::path::Path::new(&format!("/proc/{pid}/net"))));
            for (fd, inode) in sockets {
                let Some(info) = table.get(&inode) else { continue };
                rows.push(Row::from([
                    ("pid", Value::Int(pid)),
                    ("fd", Value::Int(fd)),
                    ("socket", Value::Int(inode as i64)),
                    ("family", Value::Int(info.family)),
                    ("protocol", Value::Int(info.protocol)),
                    ("local_address", Value::text(info.local.0.clone())),
                    ("remote_address", Value::text(info.remote.0.clone())),
                    ("local_port", Value::Int(info.local.1)),
                    ("remote_port", Value::Int(info.remote.1)),
                    ("path", Value::text(info.path.clone())),
                    ("state", Value::text(info.state.clone())),
                    ("net_namespace", Value::text(namespace.clone())),
                ]));
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_tables_read_inet_and_unix_sockets() {
        let net = tempfile::tempdir().unwrap();
        let header =
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
        std::fs::write(
            net.path().join("tcp"),
            format!("{header}   0: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0 20 4 30 10 -1\n   1: bad\n"),
        )
        .unwrap();
        std::fs::write(
            net.path().join("udp6"),
            format!("{header}  5: 00000000000000000000000001000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 77 2 0 0\n"),
        )
        .unwrap();
        std::fs::write(
            net.path().join("unix"),
            "Num       RefCount Protocol Flags    Type St Inode Path\n0000000077df2211: 00000003 00000000 00010000 0001 01   991 /run/my socket\n0000000077df2212: 00000003 00000000 00000000 0001 03 992\n",
        )
        .unwrap();
        let tables = socket_tables(net.path());
        assert_eq!(tables.len(), 4, "{tables:?}");
        let tcp = &tables[&4242];
        assert_eq!((tcp.family, tcp.protocol, tcp.state.as_str()), (2, 6, "ESTABLISHED"));
        assert_eq!((tcp.local.clone(), tcp.remote.clone()), (("127.0.0.1".into(), 8080), ("127.0.0.1".into(), 54321)));
        let udp = &tables[&77];
        assert_eq!((udp.family, udp.protocol, udp.state.as_str(), udp.local.1), (10, 17, "", 53));
        assert_eq!(udp.local.0, "::1");
        assert_eq!((tables[&991].family, tables[&991].path.as_str()), (1, "/run/my socket"));
        assert_eq!(tables[&992].path, "");
    }
}
