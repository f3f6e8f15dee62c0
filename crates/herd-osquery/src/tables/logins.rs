//! last: logins and logouts from wtmp (/var/log/wtmp), read as osquery reads it through getutxent: every
//! USER_PROCESS (7, a login) and DEAD_PROCESS (8, a logout) record, in file order; other records (boot,
//! run-level, clock changes) give no row.
//!
//! Columns from the record (glibc's 384-byte `struct utmp`): `username` ut_user, `tty` ut_line, `pid` ut_pid,
//! `type` ut_type, `type_name` `user-process` or `dead-process` (osquery's names), `time` ut_tv.tv_sec, `host`
//! ut_host. No rows when wtmp is missing or unreadable (systems that keep logins in wtmpdb only, such as newer
//! Debian, have none there: osquery reads the same file). A truncated last record is ignored.

use super::accounts::{UTMP_SIZE, c_string};
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::path::PathBuf;

const WTMP: &str = "/var/log/wtmp";
const USER_PROCESS: i16 = 7;
const DEAD_PROCESS: i16 = 8;

/// The table over /var/log/wtmp, or (tests) over another file.
pub struct Last {
    path: PathBuf,
}

impl Default for Last {
    fn default() -> Last {
        Last { path: PathBuf::from(WTMP) }
    }
}

impl Last {
    pub fn with_path(path: impl Into<PathBuf>) -> Last {
        Last { path: path.into() }
    }
}

/// The login and logout rows of wtmp's records.
pub(crate) fn wtmp_rows(data: &[u8]) -> Vec<Row> {
    let int = |bytes: &[u8]| i32::from_ne_bytes(bytes.try_into().unwrap_or_default()) as i64;
    data.chunks_exact(UTMP_SIZE)
        .filter_map(|record| {
            let kind = i16::from_ne_bytes([record[0], record[1]]);
            let type_name = match kind {
                USER_PROCESS => "user-process",
                DEAD_PROCESS => "dead-process",
                _ => return None,
            };
            Some(Row::from([
                ("username", Value::text(c_string(&record[44..76]))),
                ("tty", Value::text(c_string(&record[8..40]))),
                ("pid", Value::Int(int(&record[4..8]))),
                ("type", Value::Int(kind as i64)),
                ("type_name", Value::text(type_name)),
                ("time", Value::Int(int(&record[340..344]))),
                ("host", Value::text(c_string(&record[76..332]))),
            ]))
        })
        .collect()
}

impl Table for Last {
    fn name(&self) -> &'static str {
        "last"
    }
    fn description(&self) -> &'static str {
        "System logins and logouts."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("username"),
            Column::text("tty"),
            Column::int("pid"),
            Column::int("type"),
            Column::text("type_name"),
            Column::int("time"),
            Column::text("host"),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        Ok(std::fs::read(&self.path).map(|data| wtmp_rows(&data)).unwrap_or_default())
    }
}
