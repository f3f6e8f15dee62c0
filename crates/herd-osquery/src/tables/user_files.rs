//! Tables read from files in users' homes: known_hosts and shell_history. Homes come from /etc/passwd (a
//! `uid` constraint narrows them); unreadable or missing files give no rows.
//!
//! known_hosts: `~/.ssh/known_hosts`, one row per line that is neither blank nor a `#` comment; `key` the
//! line (trimmed, as osquery splits it), `key_file` the file.
//!
//! shell_history: `~/.bash_history`, `~/.zsh_history`, `~/.zhistory`, `~/.history`, `~/.sh_history`, one row
//! per command: zsh's extended lines (`: 1700000000:0;command`) give `time` and `command`; a bash timestamp
//! line (`#1700000000`, written with HISTTIMEFORMAT) dates the command after it; otherwise `time` is 0. Blank
//! lines are skipped. Files over 16 MiB are not read.

use super::accounts::accounts;
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use regex::Regex;
use std::path::PathBuf;
use std::sync::LazyLock;

const HISTORY_FILES: &[&str] = &[".bash_history", ".zsh_history", ".zhistory", ".history", ".sh_history"];
const MAX_FILE: u64 = 16 << 20;

/// The users' homes, or (tests) given (uid, home) pairs; narrowed by a `uid` constraint.
pub(super) fn homes(given: &Option<Vec<(i64, PathBuf)>>, constraints: &Constraints) -> Vec<(i64, PathBuf)> {
    let uids = constraints.ints("uid");
    let all = match given {
        Some(homes) => homes.clone(),
        None => accounts().into_iter().map(|(_, uid, home)| (uid, PathBuf::from(home))).collect(),
    };
    all.into_iter().filter(|(uid, _)| !constraints.has("uid") || uids.contains(uid)).collect()
}

pub(super) fn read_text(path: &std::path::Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return None;
    }
    std::fs::read(path).ok().map(|b| String::from_utf8_lossy(&b).into_owned())
}

#[derive(Default)]
pub struct KnownHosts {
    homes: Option<Vec<(i64, PathBuf)>>,
}

impl KnownHosts {
    pub fn with_homes(homes: Vec<(i64, PathBuf)>) -> KnownHosts {
        KnownHosts { homes: Some(homes) }
    }
}

impl Table for KnownHosts {
    fn name(&self) -> &'static str {
        "known_hosts"
    }
    fn description(&self) -> &'static str {
        "A line-delimited known_hosts table."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[Column::bigint("uid").index(), Column::text("key"), Column::text("key_file")];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        for (uid, home) in homes(&self.homes, constraints) {
            let file = home.join(".ssh/known_hosts");
            let Some(text) = read_text(&file) else { continue };
            for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
                rows.push(Row::from([
                    ("uid", Value::Int(uid)),
                    ("key", Value::text(line)),
                    ("key_file", Value::text(file.display().to_string())),
                ]));
            }
        }
        Ok(rows)
    }
}

/// (time, command) of each command in a history file.
pub(crate) fn history_entries(text: &str) -> Vec<(i64, String)> {
    static BASH_TIME: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^#(\d+)$").expect("regex"));
    static ZSH: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^: {0,10}(\d{1,11}):\d+;(.*)$").expect("regex"));
    let mut entries = Vec::new();
    let mut bash_time = 0;
    for line in text.lines() {
        if let Some(c) = BASH_TIME.captures(line) {
            bash_time = c[1].parse().unwrap_or(0);
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        match ZSH.captures(line) {
            Some(c) => entries.push((c[1].parse().unwrap_or(0), c[2].to_string())),
            None => entries.push((bash_time, line.to_string())),
        }
        bash_time = 0;
    }
    entries
}

#[derive(Default)]
pub struct ShellHistory {
    homes: Option<Vec<(i64, PathBuf)>>,
}

impl ShellHistory {
    pub fn with_homes(homes: Vec<(i64, PathBuf)>) -> ShellHistory {
        ShellHistory { homes: Some(homes) }
    }
}

impl Table for ShellHistory {
    fn name(&self) -> &'static str {
        "shell_history"
    }
    fn description(&self) -> &'static str {
        "A line-delimited (command) table of per-user .*_history data."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::bigint("uid").index(),
            Column::int("time"),
            Column::text("command"),
            Column::text("history_file"),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        for (uid, home) in homes(&self.homes, constraints) {
            for name in HISTORY_FILES {
                let file = home.join(name);
                let Some(text) = read_text(&file) else { continue };
                for (time, command) in history_entries(&text) {
                    rows.push(Row::from([
                        ("uid", Value::Int(uid)),
                        ("time", Value::Int(time)),
                        ("command", Value::text(command)),
                        ("history_file", Value::text(file.display().to_string())),
                    ]));
                }
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_lines_become_commands() {
        let cases: &[(&str, &[(i64, &str)])] = &[
            ("ls -la\n\ncd /tmp\n", &[(0, "ls -la"), (0, "cd /tmp")]),
            ("#1700000000\nsudo reboot\nuptime\n", &[(1_700_000_000, "sudo reboot"), (0, "uptime")]),
            (
                ": 1700000001:0;git status\n:  1700000002:3;echo a;b\n",
                &[(1_700_000_001, "git status"), (1_700_000_002, "echo a;b")],
            ),
            ("#not a time\n", &[(0, "#not a time")]),
        ];
        for (text, want) in cases {
            let want: Vec<(i64, String)> = want.iter().map(|(t, c)| (*t, c.to_string())).collect();
            assert_eq!(history_entries(text), want, "{text:?}");
        }
    }
}
