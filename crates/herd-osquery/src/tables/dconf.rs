//! dconf_read: Fleet's agent (fleetd) table — one dconf key's value as a given user reads it.
//!
//! As fleetd does, the value comes from `dconf read KEY` run as that user (fleetd: `sudo -u USER dconf read`):
//! dconf resolves the user's profile, the user database and the system databases and their locks, which no
//! reimplementation here could follow faithfully. The helper runs with the user's uid and gid, a clean
//! environment (HOME, USER, LOGNAME, PATH, XDG_RUNTIME_DIR, and DCONF_PROFILE when the agent has one), stdin
//! closed, for at most 5 seconds (less when the query has less time left) and 64 KiB of output.
//!
//! Columns: `username`, `key` as given (both required: fleetd refuses a query without either); `value` is
//! dconf's output without its final newline (GVariant text: `true`, `uint32 300`, `'text'`), and empty when
//! the key is not set (dconf prints nothing; fleetd gives that row too).
//!
//! No rows (never an error) when the user does not exist, dconf is not installed, it fails or times out, or
//! the agent cannot act as that user (it is not root and the user is someone else).

use super::command::run_bounded;
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

const DCONF: &str = "/usr/bin/dconf";
const LIMIT: Duration = Duration::from_secs(5);
const MAX_OUTPUT: usize = 64 << 10;

pub struct DconfRead;

fn read_as(user: &nix::unistd::User, key: &str) -> Option<String> {
    let me = nix::unistd::geteuid();
    if !me.is_root() && me != user.uid {
        return None;
    }
    let mut command = Command::new(DCONF);
    command.args(["read", key]).env_clear();
    command.env("HOME", &user.dir).env("USER", &user.name).env("LOGNAME", &user.name).env("PATH", "/usr/bin:/bin");
    let runtime = format!("/run/user/{}", user.uid);
    if std::path::Path::new(&runtime).is_dir() {
        command.env("XDG_RUNTIME_DIR", runtime);
    }
    if let Some(profile) = std::env::var_os("DCONF_PROFILE") {
        command.env("DCONF_PROFILE", profile);
    }
    if me != user.uid {
        command.uid(user.uid.as_raw()).gid(user.gid.as_raw());
    }
    let output = run_bounded(command, LIMIT.min(crate::engine::time_left()), MAX_OUTPUT)?;
    if !output.success {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    Some(text.strip_suffix('\n').unwrap_or(&text).to_string())
}

impl Table for DconfRead {
    fn name(&self) -> &'static str {
        "dconf_read"
    }
    fn description(&self) -> &'static str {
        "Read a dconf key as a given user."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] =
            &[Column::text("username").required(), Column::text("key").required(), Column::text("value")];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let (usernames, keys) = (constraints.texts("username"), constraints.texts("key"));
        if usernames.is_empty() {
            return Err(TableError::Message("table dconf_read requires a constraint on username".into()));
        }
        if keys.is_empty() {
            return Err(TableError::Message("table dconf_read requires a constraint on key".into()));
        }
        let mut rows = Vec::new();
        for username in &usernames {
            let Ok(Some(user)) = nix::unistd::User::from_name(username) else { continue };
            for key in &keys {
                let Some(value) = read_as(&user, key) else { continue };
                rows.push(Row::from([
                    ("username", Value::text(username.as_str())),
                    ("key", Value::text(key.as_str())),
                    ("value", Value::text(value)),
                ]));
            }
        }
        Ok(rows)
    }
}
