//! docker_containers: Docker's containers, asked of the Docker Engine API on its socket
//! (/var/run/docker.sock), as osquery asks: `GET /containers/json?all=1` for the list, then
//! `GET /containers/ID/json` for each container's details. No rows when there is no socket, nobody answers,
//! or the answer is not the API's JSON (never an error). Each request ends within 5 seconds (less when the query
//! has less time left) and reads at most 16 MiB.
//!
//! Columns: from the list — `id` Id, `name` the first of Names without its leading `/`, `image` Image,
//! `image_id` ImageID, `command` Command, `created` Created, `state` State, `status` Status; from the
//! details — `pid` State.Pid, `path` Path, `started_at` State.StartedAt, `finished_at` State.FinishedAt,
//! `privileged` and `readonly_rootfs` HostConfig.Privileged / ReadonlyRootfs as 1 or 0, `config_entrypoint`
//! Config.Entrypoint, `security_options` HostConfig.SecurityOpt and `env_variables` Config.Env, each list
//! joined with `, `. The namespaces (`cgroup_namespace`, `ipc_namespace`, `mnt_namespace`, `net_namespace`,
//! `pid_namespace`, `user_namespace`, `uts_namespace`): the inode of /proc/PID/ns/NAME of the container's
//! process, NULL when it is not running or the agent may not look. A detail the container's JSON lacks is
//! NULL. `id` and `name` constraints narrow the containers asked about.
//!
//! docker_container_processes: the processes of the containers named by `id` (required, as in osquery),
//! from `GET /containers/ID/top` with osquery's ps columns (`pid,state,uid,gid,euid,egid,suid,sgid,rss,vsz,
//! etimes,ppid,pgrp,nlwp,nice,user,time,pcpu,pmem,comm,cmd`): `pid`, `state`, the ids, `parent` ppid,
//! `pgroup` pgrp, `threads` nlwp, `nice`, `user`, `time`, `cpu` pcpu, `mem` pmem, `name` comm, `cmdline` cmd
//! as ps prints them; `resident_size` and `total_size` rss and vsz in bytes (ps gives KiB); `start_time` now
//! minus etimes (Unix seconds). `wired_size` is NULL (no such notion on Linux). A container that does not
//! exist or is not running gives no rows.

use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use serde_json::Value as J;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const SOCKET: &str = "/var/run/docker.sock";
const LIMIT: Duration = Duration::from_secs(5);
const MAX_RESPONSE: u64 = 16 << 20;
const NAMESPACES: &[(&str, &str)] = &[
    ("cgroup_namespace", "cgroup"),
    ("ipc_namespace", "ipc"),
    ("mnt_namespace", "mnt"),
    ("net_namespace", "net"),
    ("pid_namespace", "pid"),
    ("user_namespace", "user"),
    ("uts_namespace", "uts"),
];

/// The table over Docker's socket, or (tests) another.
pub struct DockerContainers {
    socket: PathBuf,
}

/// docker_container_processes over Docker's socket, or (tests) another.
pub struct DockerContainerProcesses {
    socket: PathBuf,
}

impl Default for DockerContainerProcesses {
    fn default() -> DockerContainerProcesses {
        DockerContainerProcesses { socket: PathBuf::from(SOCKET) }
    }
}

impl DockerContainerProcesses {
    pub fn with_socket(socket: impl Into<PathBuf>) -> DockerContainerProcesses {
        DockerContainerProcesses { socket: socket.into() }
    }
}

/// The ps columns asked of `top`, in this order (osquery's).
const PS_ARGS: &str =
    "pid,state,uid,gid,euid,egid,suid,sgid,rss,vsz,etimes,ppid,pgrp,nlwp,nice,user,time,pcpu,pmem,comm,cmd";

/// The rows of one container's `top` answer.
pub(crate) fn top_rows(id: &str, top: &J, now: i64) -> Vec<Row> {
    let Some(processes) = top.get("Processes").and_then(J::as_array) else { return Vec::new() };
    processes
        .iter()
        .filter_map(J::as_array)
        .filter(|fields| fields.len() >= 21)
        .map(|fields| {
            let field = |i: usize| fields[i].as_str().unwrap_or_default().trim().to_string();
            let int = |i: usize| field(i).parse::<i64>().ok();
            let real = |i: usize| field(i).parse::<f64>().ok().map_or(Value::Null, Value::Real);
            Row::from([
                ("id", Value::text(id)),
                ("pid", Value::opt_int(int(0))),
                ("state", Value::text(field(1))),
                ("uid", Value::opt_int(int(2))),
                ("gid", Value::opt_int(int(3))),
                ("euid", Value::opt_int(int(4))),
                ("egid", Value::opt_int(int(5))),
                ("suid", Value::opt_int(int(6))),
                ("sgid", Value::opt_int(int(7))),
                ("resident_size", Value::opt_int(int(8).map(|k| k * 1024))),
                ("total_size", Value::opt_int(int(9).map(|k| k * 1024))),
                ("start_time", Value::opt_int(int(10).map(|elapsed| now - elapsed))),
                ("parent", Value::opt_int(int(11))),
                ("pgroup", Value::opt_int(int(12))),
                ("threads", Value::opt_int(int(13))),
                ("nice", Value::opt_int(int(14))),
                ("user", Value::text(field(15))),
                ("time", Value::text(field(16))),
                ("cpu", real(17)),
                ("mem", real(18)),
                ("name", Value::text(field(19))),
                ("cmdline", Value::text(field(20))),
            ])
        })
        .collect()
}

impl Table for DockerContainerProcesses {
    fn name(&self) -> &'static str {
        "docker_container_processes"
    }
    fn description(&self) -> &'static str {
        "Docker container processes."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("id").required(),
            Column::bigint("pid").index(),
            Column::text("name"),
            Column::text("cmdline"),
            Column::text("state"),
            Column::bigint("uid"),
            Column::bigint("gid"),
            Column::bigint("euid"),
            Column::bigint("egid"),
            Column::bigint("suid"),
            Column::bigint("sgid"),
            Column::bigint("wired_size"),
            Column::bigint("resident_size"),
            Column::bigint("total_size"),
            Column::bigint("start_time"),
            Column::bigint("parent"),
            Column::bigint("pgroup"),
            Column::int("threads"),
            Column::int("nice"),
            Column::text("user"),
            Column::text("time"),
            Column::double("cpu"),
            Column::double("mem"),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let deadline = Instant::now() + LIMIT.min(crate::engine::time_left());
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        let mut rows = Vec::new();
        for id in constraints.texts("id") {
            // A container id is hex and a name is [a-zA-Z0-9_.-]: anything else cannot name one.
            if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
                continue;
            }
            let Some(top) = get(&self.socket, &format!("/containers/{id}/top?ps_args=axwwo%20{}", PS_ARGS), deadline)
            else {
                continue;
            };
            rows.extend(top_rows(&id, &top, now));
        }
        Ok(rows)
    }
}

impl Default for DockerContainers {
    fn default() -> DockerContainers {
        DockerContainers { socket: PathBuf::from(SOCKET) }
    }
}

impl DockerContainers {
    pub fn with_socket(socket: impl Into<PathBuf>) -> DockerContainers {
        DockerContainers { socket: socket.into() }
    }
}

/// One GET on the API (HTTP/1.0: the daemon closes the connection after the body), its JSON body when the
/// status is 200.
fn get(socket: &std::path::Path, path: &str, deadline: Instant) -> Option<J> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return None;
    }
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(left)).ok()?;
    stream.set_write_timeout(Some(left)).ok()?;
    stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: docker\r\n\r\n").as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.take(MAX_RESPONSE).read_to_end(&mut response).ok()?;
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(length) = head.parse(&response).ok()? else { return None };
    if head.code != Some(200) {
        return None;
    }
    serde_json::from_slice(&response[length..]).ok()
}

fn joined(value: Option<&J>) -> Option<String> {
    let items = value?.as_array()?;
    Some(items.iter().filter_map(J::as_str).collect::<Vec<_>>().join(", "))
}

fn namespace_inode(pid: i64, name: &str) -> Option<String> {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/{name}")).ok()?;
    let link = link.to_string_lossy();
    Some(link.split_once(":[")?.1.trim_end_matches(']').to_string())
}

impl Table for DockerContainers {
    fn name(&self) -> &'static str {
        "docker_containers"
    }
    fn description(&self) -> &'static str {
        "Docker containers information."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("id").index(),
            Column::text("name").index(),
            Column::text("image"),
            Column::text("image_id"),
            Column::text("command"),
            Column::bigint("created"),
            Column::text("state"),
            Column::text("status"),
            Column::bigint("pid"),
            Column::text("path"),
            Column::text("config_entrypoint"),
            Column::text("started_at"),
            Column::text("finished_at"),
            Column::int("privileged"),
            Column::text("security_options"),
            Column::text("env_variables"),
            Column::int("readonly_rootfs"),
            Column::text("cgroup_namespace"),
            Column::text("ipc_namespace"),
            Column::text("mnt_namespace"),
            Column::text("net_namespace"),
            Column::text("pid_namespace"),
            Column::text("user_namespace"),
            Column::text("uts_namespace"),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let deadline = Instant::now() + LIMIT.min(crate::engine::time_left());
        let Some(J::Array(containers)) = get(&self.socket, "/containers/json?all=1", deadline) else {
            return Ok(Vec::new());
        };
        let (ids, names) = (constraints.texts("id"), constraints.texts("name"));
        let mut rows = Vec::new();
        for container in &containers {
            let text_of = |key: &str| container.get(key).and_then(J::as_str).map(str::to_string);
            let Some(id) = text_of("Id") else { continue };
            let name = container
                .get("Names")
                .and_then(J::as_array)
                .and_then(|n| n.first())
                .and_then(J::as_str)
                .map(|n| n.trim_start_matches('/').to_string());
            if (constraints.has("id") && !ids.contains(&id))
                || (constraints.has("name") && !name.as_ref().is_some_and(|n| names.contains(n)))
            {
                continue;
            }
            let mut row = Row::from([
                ("image", Value::opt_text(text_of("Image"))),
                ("image_id", Value::opt_text(text_of("ImageID"))),
                ("command", Value::opt_text(text_of("Command"))),
                ("created", Value::opt_int(container.get("Created").and_then(J::as_i64))),
                ("state", Value::opt_text(text_of("State"))),
                ("status", Value::opt_text(text_of("Status"))),
                ("name", Value::opt_text(name)),
            ]);
            if let Some(details) = get(&self.socket, &format!("/containers/{id}/json"), deadline) {
                let text_at = |pointer: &str| details.pointer(pointer).and_then(J::as_str).map(str::to_string);
                let flag = |pointer: &str| details.pointer(pointer).and_then(J::as_bool).map(|b| b as i64);
                let pid = details.pointer("/State/Pid").and_then(J::as_i64);
                row.insert("pid", Value::opt_int(pid));
                row.insert("path", Value::opt_text(text_at("/Path")));
                row.insert("started_at", Value::opt_text(text_at("/State/StartedAt")));
                row.insert("finished_at", Value::opt_text(text_at("/State/FinishedAt")));
                row.insert("privileged", Value::opt_int(flag("/HostConfig/Privileged")));
                row.insert("readonly_rootfs", Value::opt_int(flag("/HostConfig/ReadonlyRootfs")));
                row.insert("config_entrypoint", Value::opt_text(joined(details.pointer("/Config/Entrypoint"))));
                row.insert("security_options", Value::opt_text(joined(details.pointer("/HostConfig/SecurityOpt"))));
                row.insert("env_variables", Value::opt_text(joined(details.pointer("/Config/Env"))));
                for (column, namespace) in NAMESPACES {
                    let inode = pid.filter(|p| *p > 0).and_then(|p| namespace_inode(p, namespace));
                    row.insert(column, Value::opt_text(inode));
                }
            }
            row.insert("id", Value::text(id));
            rows.push(row);
        }
        Ok(rows)
    }
}
