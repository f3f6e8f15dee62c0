//! Accounts and access: user_groups, shadow, logged_in_users, sudoers, authorized_keys, user_ssh_keys,
//! ssh_configs, crontab.
//!
//! NULL columns and why: shadow rows need root (without it the table is empty, as in osquery);
//! user_ssh_keys.key_length / key_security_bits / key_group_name (the key would have to be parsed in full).

use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::path::{Path, PathBuf};

/// (username, uid, home) of every account in /etc/passwd.
pub(super) fn accounts() -> Vec<(String, i64, String)> {
    std::fs::read_to_string("/etc/passwd")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.first()?.to_string(), f.get(2)?.parse().ok()?, f.get(5)?.to_string()))
        })
        .collect()
}

fn wanted_int(constraints: &Constraints, column: &str, value: i64) -> bool {
    !constraints.equals.contains_key(column) || constraints.ints(column).contains(&value)
}

pub struct UserGroups;

impl Table for UserGroups {
    fn name(&self) -> &'static str {
        "user_groups"
    }
    fn description(&self) -> &'static str {
        "Local system user group relationships."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[Column::bigint("uid").index(), Column::bigint("gid").index()];
        COLUMNS
    }
    /// Primary groups from /etc/passwd and supplementary ones from /etc/group's member lists.
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let passwd = std::fs::read_to_string("/etc/passwd")?;
        let groups = std::fs::read_to_string("/etc/group")?;
        let mut pairs = std::collections::BTreeSet::new();
        let mut uid_of = std::collections::BTreeMap::new();
        for line in passwd.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if let (Some(name), Some(Ok(uid)), Some(Ok(gid))) =
                (f.first(), f.get(2).map(|v| v.parse::<i64>()), f.get(3).map(|v| v.parse::<i64>()))
            {
                uid_of.insert(name.to_string(), uid);
                pairs.insert((uid, gid));
            }
        }
        for line in groups.lines() {
            let f: Vec<&str> = line.split(':').collect();
            let (Some(Ok(gid)), Some(members)) = (f.get(2).map(|v| v.parse::<i64>()), f.get(3)) else { continue };
            for member in members.split(',').filter(|m| !m.is_empty()) {
                if let Some(uid) = uid_of.get(member) {
                    pairs.insert((*uid, gid));
                }
            }
        }
        Ok(pairs
            .into_iter()
            .filter(|(uid, gid)| wanted_int(constraints, "uid", *uid) && wanted_int(constraints, "gid", *gid))
            .map(|(uid, gid)| Row::from([("uid", Value::Int(uid)), ("gid", Value::Int(gid))]))
            .collect())
    }
}

pub struct Shadow;

impl Table for Shadow {
    fn name(&self) -> &'static str {
        "shadow"
    }
    fn description(&self) -> &'static str {
        "Local system users' password state (/etc/shadow, readable by root)."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("password_status"),
            Column::text("hash_alg"),
            Column::bigint("last_change"),
            Column::bigint("min"),
            Column::bigint("max"),
            Column::bigint("warning"),
            Column::bigint("inactive"),
            Column::bigint("expire"),
            Column::bigint("flag"),
            Column::text("username").index(),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let Ok(text) = std::fs::read_to_string("/etc/shadow") else { return Ok(Vec::new()) };
        let mut rows = Vec::new();
        for line in text.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() < 9 {
                continue;
            }
            let hash = f[1];
            let status = if hash.starts_with('!') || hash.starts_with('*') {
                "locked"
            } else if hash.is_empty() {
                "empty"
            } else {
                "active"
            };
            let alg =
                hash.trim_start_matches('!').strip_prefix('$').and_then(|h| h.split('$').next()).map(str::to_string);
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<i64>().ok());
            rows.push(Row::from([
                ("username", Value::text(f[0])),
                ("password_status", Value::text(status)),
                ("hash_alg", Value::opt_text(alg)),
                ("last_change", Value::opt_int(num(2))),
                ("min", Value::opt_int(num(3))),
                ("max", Value::opt_int(num(4))),
                ("warning", Value::opt_int(num(5))),
                ("inactive", Value::opt_int(num(6))),
                ("expire", Value::opt_int(num(7))),
                ("flag", Value::opt_int(num(8))),
            ]));
        }
        Ok(rows)
    }
}

pub struct LoggedInUsers;

/// utmp record layout on Linux (glibc, 64-bit): 384 bytes.
pub(super) const UTMP_SIZE: usize = 384;

pub(super) fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

impl Table for LoggedInUsers {
    fn name(&self) -> &'static str {
        "logged_in_users"
    }
    fn description(&self) -> &'static str {
        "Users with an active shell on the system (from utmp)."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("type"),
            Column::text("user"),
            Column::text("tty"),
            Column::text("host"),
            Column::bigint("time"),
            Column::int("pid"),
            Column::text("sid").hidden(),
            Column::text("registry_hive").hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let Ok(data) = std::fs::read("/var/run/utmp") else { return Ok(Vec::new()) };
        let mut rows = Vec::new();
        for record in data.chunks_exact(UTMP_SIZE) {
            let kind = i16::from_ne_bytes([record[0], record[1]]);
            // osquery reports user and login processes, the ones with a person behind them.
            let name = match kind {
                6 => "login",
                7 => "user",
                _ => continue,
            };
            let pid = i32::from_ne_bytes(record[4..8].try_into().unwrap_or_default());
            let seconds = i32::from_ne_bytes(record[340..344].try_into().unwrap_or_default());
            rows.push(Row::from([
                ("type", Value::text(name)),
                ("user", Value::text(c_string(&record[44..76]))),
                ("tty", Value::text(c_string(&record[8..40]))),
                ("host", Value::text(c_string(&record[76..332]))),
                ("time", Value::Int(seconds as i64)),
                ("pid", Value::Int(pid as i64)),
            ]));
        }
        Ok(rows)
    }
}

pub struct Sudoers;

fn sudoers_rules(path: &Path, depth: usize, rows: &mut Vec<Row>) {
    let Ok(text) = std::fs::read_to_string(path) else { return };
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        let include = line.strip_prefix("#includedir ").or_else(|| line.strip_prefix("@includedir "));
        let include_file = line.strip_prefix("#include ").or_else(|| line.strip_prefix("@include "));
        if let (Some(dir), true) = (include, depth < 8) {
            rows.push(Row::from([
                ("source", Value::text(path.display().to_string())),
                ("header", Value::text(line.split_whitespace().next().unwrap_or(""))),
                ("rule_details", Value::text(dir.trim())),
            ]));
            if let Ok(entries) = std::fs::read_dir(dir.trim()) {
                let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
                files.sort();
                // sudo skips files ending in ~ or containing a dot.
                for file in files
                    .into_iter()
                    .filter(|f| f.file_name().is_some_and(|n| !n.to_string_lossy().contains(['.', '~'])))
                {
                    sudoers_rules(&file, depth + 1, rows);
                }
            }
            continue;
        }
        if let (Some(file), true) = (include_file, depth < 8) {
            rows.push(Row::from([
                ("source", Value::text(path.display().to_string())),
                ("header", Value::text(line.split_whitespace().next().unwrap_or(""))),
                ("rule_details", Value::text(file.trim())),
            ]));
            sudoers_rules(Path::new(file.trim()), depth + 1, rows);
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let (header, details) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        rows.push(Row::from([
            ("source", Value::text(path.display().to_string())),
            ("header", Value::text(header)),
            ("rule_details", Value::text(details.trim())),
        ]));
    }
}

impl Table for Sudoers {
    fn name(&self) -> &'static str {
        "sudoers"
    }
    fn description(&self) -> &'static str {
        "Rules for running commands as other users via sudo (readable by root)."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[Column::text("source"), Column::text("header"), Column::text("rule_details")];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        sudoers_rules(Path::new("/etc/sudoers"), 0, &mut rows);
        Ok(rows)
    }
}

pub struct AuthorizedKeys;

/// Splits an authorized_keys line into (options, algorithm, key, comment).
pub fn parse_authorized_key(line: &str) -> Option<(String, String, String, String)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let is_algorithm = |w: &str| w.starts_with("ssh-") || w.starts_with("ecdsa-") || w.starts_with("sk-");
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| is_algorithm(w))?;
    let options = if at > 0 { words[..at].join(" ") } else { String::new() };
    let key = words.get(at + 1)?.to_string();
    let comment = words.get(at + 2..).map(|c| c.join(" ")).unwrap_or_default();
    Some((options, words[at].to_string(), key, comment))
}

impl Table for AuthorizedKeys {
    fn name(&self) -> &'static str {
        "authorized_keys"
    }
    fn description(&self) -> &'static str {
        "A line-delimited authorized_keys table."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::bigint("uid").index(),
            Column::text("algorithm"),
            Column::text("key"),
            Column::text("options"),
            Column::text("comment"),
            Column::text("key_file"),
            Column::int("pid_with_namespace").index().hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        for (_, uid, home) in accounts().into_iter().filter(|(_, uid, _)| wanted_int(constraints, "uid", *uid)) {
            for name in ["authorized_keys", "authorized_keys2"] {
                let path = Path::new(&home).join(".ssh").join(name);
                let Ok(text) = std::fs::read_to_string(&path) else { continue };
                for (options, algorithm, key, comment) in text.lines().filter_map(parse_authorized_key) {
                    rows.push(Row::from([
                        ("uid", Value::Int(uid)),
                        ("algorithm", Value::text(algorithm)),
                        ("key", Value::text(key)),
                        ("options", Value::text(options)),
                        ("comment", Value::text(comment)),
                        ("key_file", Value::text(path.display().to_string())),
                    ]));
                }
            }
        }
        Ok(rows)
    }
}

pub struct UserSshKeys;

impl Table for UserSshKeys {
    fn name(&self) -> &'static str {
        "user_ssh_keys"
    }
    fn description(&self) -> &'static str {
        "Private keys in users' ~/.ssh directories."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::bigint("uid").index(),
            Column::text("path").index(),
            Column::int("encrypted"),
            Column::text("key_type"),
            Column::text("key_group_name"),
            Column::int("key_length"),
            Column::int("key_security_bits"),
            Column::int("pid_with_namespace").index().hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        for (_, uid, home) in accounts().into_iter().filter(|(_, uid, _)| wanted_int(constraints, "uid", *uid)) {
            let Ok(entries) = std::fs::read_dir(Path::new(&home).join(".ssh")) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(text) = std::fs::read_to_string(&path) else { continue };
                let Some(first) = text.lines().next() else { continue };
                if !(first.starts_with("-----BEGIN") && first.contains("PRIVATE KEY")) {
                    continue;
                }
                let key_type =
                    first.trim_start_matches("-----BEGIN ").trim_end_matches("-----").replace(" PRIVATE KEY", "");
                // PEM keys say so in a header; OpenSSH keys name their cipher in the binary body ("none" = plain).
                let encrypted = text.contains("ENCRYPTED") || openssh_key_encrypted(&text).unwrap_or(false);
                rows.push(Row::from([
                    ("uid", Value::Int(uid)),
                    ("path", Value::text(path.display().to_string())),
                    ("encrypted", Value::Int(encrypted as i64)),
                    (
                        "key_type",
                        Value::text(if key_type.is_empty() { "unknown".into() } else { key_type.to_lowercase() }),
                    ),
                ]));
            }
        }
        Ok(rows)
    }
}

/// Whether an `-----BEGIN OPENSSH PRIVATE KEY-----` body names a cipher other than "none".
fn openssh_key_encrypted(text: &str) -> Option<bool> {
    use base64::Engine as _;
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    let bytes = base64::engine::general_purpose::STANDARD.decode(body.trim()).ok()?;
    let rest = bytes.strip_prefix(b"openssh-key-v1\0")?;
    let len = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
    let cipher = rest.get(4..4 + len)?;
    Some(cipher != b"none")
}

pub struct SshConfigs;

impl Table for SshConfigs {
    fn name(&self) -> &'static str {
        "ssh_configs"
    }
    fn description(&self) -> &'static str {
        "Options of the system's and users' ssh client configurations."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::bigint("uid").index(),
            Column::text("block"),
            Column::text("option"),
            Column::text("ssh_config_file"),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut files: Vec<(Option<i64>, PathBuf)> = vec![(None, PathBuf::from("/etc/ssh/ssh_config"))];
        for (_, uid, home) in accounts() {
            files.push((Some(uid), Path::new(&home).join(".ssh/config")));
        }
        let mut rows = Vec::new();
        for (uid, path) in files {
            if constraints.equals.contains_key("uid") && !uid.is_some_and(|u| constraints.ints("uid").contains(&u)) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            let mut block = String::new();
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
                let lower = line.to_ascii_lowercase();
                if lower.starts_with("host ") || lower.starts_with("match ") {
                    block = line.to_string();
                    continue;
                }
                rows.push(Row::from([
                    ("uid", Value::opt_int(uid)),
                    ("block", Value::text(block.clone())),
                    ("option", Value::text(line)),
                    ("ssh_config_file", Value::text(path.display().to_string())),
                ]));
            }
        }
        Ok(rows)
    }
}

pub struct Crontab;

impl Table for Crontab {
    fn name(&self) -> &'static str {
        "crontab"
    }
    fn description(&self) -> &'static str {
        "Line parsed values from system and user cron/tab."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("event"),
            Column::text("minute"),
            Column::text("hour"),
            Column::text("day_of_month"),
            Column::text("month"),
            Column::text("day_of_week"),
            Column::text("command"),
            Column::text("path"),
            Column::int("pid_with_namespace").index().hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut files: Vec<(PathBuf, bool)> = vec![(PathBuf::from("/etc/crontab"), true)];
        for (dir, system) in [("/etc/cron.d", true), ("/var/spool/cron/crontabs", false), ("/var/spool/cron", false)] {
            if let Ok(entries) = std::fs::read_dir(dir) {
                let mut more: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect();
                more.sort();
                files.extend(more.into_iter().map(|p| (p, system)));
            }
        }
        let mut rows = Vec::new();
        for (path, system) in files {
            let Ok(text) = std::fs::read_to_string(&path) else { continue };
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
                let first = line.split_whitespace().next().unwrap_or("");
                if first.contains('=') && !first.starts_with('@') {
                    continue; // environment assignment
                }
                let mut row = Row::from([("path", Value::text(path.display().to_string()))]);
                let words: Vec<&str> = line.split_whitespace().collect();
                if first.starts_with('@') {
                    // @reboot [user] command
                    let skip = if system { 2 } else { 1 };
                    row.insert("event", Value::text(first));
                    row.insert("command", Value::text(words.get(skip..).map(|w| w.join(" ")).unwrap_or_default()));
                } else {
                    let fields = if system { 6 } else { 5 };
                    if words.len() <= fields {
                        continue;
                    }
                    for (i, column) in ["minute", "hour", "day_of_month", "month", "day_of_week"].iter().enumerate() {
                        row.insert(column, Value::text(words[i]));
                    }
                    row.insert("event", Value::text(""));
                    row.insert("command", Value::text(words[fields..].join(" ")));
                }
                rows.push(row);
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorized_key_lines() {
        let (options, algorithm, key, comment) =
            parse_authorized_key(r#"from="10.0.0.0/8",no-pty ssh-ed25519 AAAAC3Nz ops@example team key"#).unwrap();
        assert_eq!(
            (options.as_str(), algorithm.as_str(), key.as_str(), comment.as_str()),
            (r#"from="10.0.0.0/8",no-pty"#, "ssh-ed25519", "AAAAC3Nz", "ops@example team key")
        );
        assert!(parse_authorized_key("# comment").is_none());
        assert!(parse_authorized_key("garbage").is_none());
    }
}
