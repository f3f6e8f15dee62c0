//! yum_sources: Yum's repositories as osquery lists them — the sections of /etc/yum.conf other than `main`,
//! then those of every `*.repo` file in the repository directory (`reposdir` of yum.conf's `main` section,
//! default /etc/yum.repos.d), files in name order.
//!
//! One row per section: `name`, `baseurl`, `mirrorlist`, `metalink`, `enabled`, `gpgcheck`, `gpgkey` the
//! section's values of those keys as written (NULL when the section lacks the key: Yum's defaults are not
//! filled in, as osquery does not); `source` the file; `pid_with_namespace` (hidden) 0, as osquery fills it
//! for the host's namespace.
//!
//! INI as osquery's reader takes it: `[section]`, `key=value` (both trimmed), full-line `#` and `;` comments.
//! Where osquery drops a whole file on a line it cannot read (a continuation line of a multi-line baseurl,
//! for instance), herd skips that line alone. A missing yum.conf or repository directory gives no rows from it.

use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::path::{Path, PathBuf};

const YUM_CONF: &str = "/etc/yum.conf";
const REPOS_DIR: &str = "/etc/yum.repos.d";
const KEYS: &[&str] = &["name", "baseurl", "mirrorlist", "metalink", "enabled", "gpgcheck", "gpgkey"];

/// An INI file's sections in order: (name, key-value pairs).
fn ini_sections(text: &str) -> Vec<(String, Vec<(String, String)>)> {
    let mut sections: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            sections.push((name.trim().to_string(), Vec::new()));
        } else if let (Some((key, value)), Some(section)) = (line.split_once('='), sections.last_mut()) {
            let key = key.trim().to_string();
            section.1.retain(|(k, _)| *k != key);
            section.1.push((key, value.trim().to_string()));
        }
    }
    sections
}

/// The table over /etc/yum.conf and its repository directory, or (tests) other paths.
pub struct YumSources {
    conf: PathBuf,
    default_dir: PathBuf,
}

impl Default for YumSources {
    fn default() -> YumSources {
        YumSources { conf: PathBuf::from(YUM_CONF), default_dir: PathBuf::from(REPOS_DIR) }
    }
}

impl YumSources {
    pub fn with_paths(conf: impl Into<PathBuf>, default_dir: impl Into<PathBuf>) -> YumSources {
        YumSources { conf: conf.into(), default_dir: default_dir.into() }
    }
}

fn rows_of(file: &Path, sections: &[(String, Vec<(String, String)>)], rows: &mut Vec<Row>) {
    for (_, values) in sections.iter().filter(|(name, _)| name != "main") {
        let mut row =
            Row::from([("source", Value::text(file.display().to_string())), ("pid_with_namespace", Value::Int(0))]);
        for key in KEYS {
            if let Some((column, value)) =
                values.iter().find(|(k, _)| k == key).map(|(_, v)| (*key, Value::text(v.clone())))
            {
                row.insert(column, value);
            }
        }
        rows.push(row);
    }
}

impl Table for YumSources {
    fn name(&self) -> &'static str {
        "yum_sources"
    }
    fn description(&self) -> &'static str {
        "Current list of Yum repositories or software channels."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("name"),
            Column::text("source"),
            Column::text("baseurl"),
            Column::text("mirrorlist"),
            Column::text("metalink"),
            Column::text("enabled"),
            Column::text("gpgcheck"),
            Column::text("gpgkey"),
            Column::int("pid_with_namespace").index().hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        let mut dir = self.default_dir.clone();
        if let Ok(text) = std::fs::read_to_string(&self.conf) {
            let sections = ini_sections(&text);
            let reposdir = sections
                .iter()
                .filter(|(name, _)| name == "main")
                .flat_map(|(_, values)| values.iter())
                .find(|(k, _)| k == "reposdir");
            if let Some((_, reposdir)) = reposdir {
                dir = PathBuf::from(reposdir);
            }
            rows_of(&self.conf, &sections, &mut rows);
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|entries| {
                entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "repo")).collect()
            })
            .unwrap_or_default();
        files.sort();
        for file in files {
            let Ok(text) = std::fs::read_to_string(&file) else { continue };
            rows_of(&file, &ini_sections(&text), &mut rows);
        }
        Ok(rows)
    }
}
