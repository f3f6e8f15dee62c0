//! users, groups, etc_hosts: from /etc/passwd, /etc/group and /etc/hosts.
//!
//! NULL columns and why: users.uuid (Linux has no user UUIDs), users.type / is_hidden, groups.group_sid /
//! comment / is_hidden (other platforms' columns).

use crate::table::{Column, Constraints, Row, Table, TableError, Value};

fn colon_records(path: &str) -> Result<Vec<Vec<String>>, TableError> {
    Ok(std::fs::read_to_string(path)?
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect())
}

/// Whether `id` passes an equality constraint on `column` (no constraint: everything passes).
fn wanted(constraints: &Constraints, column: &str, id: i64) -> bool {
    !constraints.equals.contains_key(column) || constraints.ints(column).contains(&id)
}

pub struct Users;

impl Table for Users {
    fn name(&self) -> &'static str {
        "users"
    }
    fn description(&self) -> &'static str {
        "Local user accounts."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::bigint("uid").index(),
            Column::bigint("gid"),
            Column::bigint("uid_signed"),
            Column::bigint("gid_signed"),
            Column::text("username").index(),
            Column::text("description"),
            Column::text("directory"),
            Column::text("shell"),
            Column::text("uuid").index(),
            Column::text("type").hidden(),
            Column::int("is_hidden").hidden(),
            Column::int("pid_with_namespace").index().hidden(),
            Column::int("include_remote").index().hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        for fields in colon_records("/etc/passwd")? {
            let [name, _, uid, gid, gecos, dir, shell, ..] = &fields[..] else { continue };
            let (Ok(uid), Ok(gid)) = (uid.parse::<u32>(), gid.parse::<u32>()) else { continue };
            if !wanted(constraints, "uid", uid as i64) {
                continue;
            }
            rows.push(Row::from([
                ("uid", Value::Int(uid as i64)),
                ("gid", Value::Int(gid as i64)),
                ("uid_signed", Value::Int(uid as i32 as i64)),
                ("gid_signed", Value::Int(gid as i32 as i64)),
                ("username", Value::text(name.as_str())),
                ("description", Value::text(gecos.as_str())),
                ("directory", Value::text(dir.as_str())),
                ("shell", Value::text(shell.as_str())),
            ]));
        }
        Ok(rows)
    }
}

pub struct Groups;

impl Table for Groups {
    fn name(&self) -> &'static str {
        "groups"
    }
    fn description(&self) -> &'static str {
        "Local system groups."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::bigint("gid").index(),
            Column::bigint("gid_signed"),
            Column::text("groupname"),
            Column::text("group_sid").index().hidden(),
            Column::text("comment").hidden(),
            Column::int("is_hidden").hidden(),
            Column::int("pid_with_namespace").index().hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        for fields in colon_records("/etc/group")? {
            let [name, _, gid, ..] = &fields[..] else { continue };
            let Ok(gid) = gid.parse::<u32>() else { continue };
            if !wanted(constraints, "gid", gid as i64) {
                continue;
            }
            rows.push(Row::from([
                ("gid", Value::Int(gid as i64)),
                ("gid_signed", Value::Int(gid as i32 as i64)),
                ("groupname", Value::text(name.as_str())),
            ]));
        }
        Ok(rows)
    }
}

pub struct EtcHosts;

impl Table for EtcHosts {
    fn name(&self) -> &'static str {
        "etc_hosts"
    }
    fn description(&self) -> &'static str {
        "Line-parsed /etc/hosts."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] =
            &[Column::text("address"), Column::text("hostnames"), Column::int("pid_with_namespace").index().hidden()];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let text = std::fs::read_to_string("/etc/hosts")?;
        Ok(text
            .lines()
            .map(|l| l.split('#').next().unwrap_or("").trim())
            .filter_map(|l| {
                let mut words = l.split_whitespace();
                let address = words.next()?;
                let names: Vec<&str> = words.collect();
                Some(Row::from([("address", Value::text(address)), ("hostnames", Value::text(names.join(" ")))]))
            })
            .collect())
    }
}
