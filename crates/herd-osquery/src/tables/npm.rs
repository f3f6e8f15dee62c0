//! npm_packages: Node packages, read from their package.json files as osquery does.
//!
//! Where: the `directory` constraint's directories, or else osquery's list — `/usr/local/lib`,
//! `/opt/homebrew/lib`, `/usr/lib`, `/home/%/.npm-global/lib`, `/home/%/.nvm/versions/node/%/lib` (and the
//! same under `/Users`). In each, `node_modules/NAME/package.json` and `node_modules/@SCOPE/NAME/package.json`,
//! then the same inside each package found (nested dependencies, `depth` + 1) down to `max_depth` (hidden; 100
//! unless a constraint gives it, -1: unlimited); a directory already visited (a symlink loop) is not read twice.
//!
//! Columns: `name`, `version`, `description`, `homepage` from package.json when they are strings (`""` when
//! present but not a string, NULL when absent); `author` the string or the object's `name`; `license` the
//! string or the deprecated object's `url`; `path` the package.json; `directory` the directory searched (not
//! the package's); `depth`; `max_depth`; `pid_with_namespace` 0 (no other namespace is entered).
//! NULL: `mount_namespace_id` (no namespaces). A package.json that is not a JSON object still gives its row,
//! with only the location columns, as in osquery.

use super::file::expand_glob;
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const SEARCHED: &[&str] = &[
    "/usr/local/lib",
    "/opt/homebrew/lib",
    "/usr/lib",
    "/home/%/.npm-global/lib",
    "/home/%/.nvm/versions/node/%/lib",
    "/Users/%/.npm-global/lib",
    "/Users/%/.nvm/versions/node/%/lib",
];
const DEFAULT_MAX_DEPTH: i64 = 100;
/// package.json files larger than this are not parsed (their row keeps only its location).
const MAX_MANIFEST: u64 = 4 << 20;

pub struct NpmPackages;

fn package_row(manifest: &Path, row: &mut Row) {
    let Ok(meta) = std::fs::metadata(manifest) else { return };
    if meta.len() > MAX_MANIFEST {
        return;
    }
    let Ok(text) = std::fs::read_to_string(manifest) else { return };
    let Ok(serde_json::Value::Object(doc)) = serde_json::from_str::<serde_json::Value>(&text) else { return };
    for key in ["name", "version", "description", "homepage"] {
        if let Some(value) = doc.get(key) {
            row.insert(key, Value::text(value.as_str().unwrap_or_default()));
        }
    }
    match doc.get("author") {
        Some(serde_json::Value::String(author)) => {
            row.insert("author", Value::text(author.as_str()));
        }
        Some(serde_json::Value::Object(author)) => {
            if let Some(name) = author.get("name") {
                row.insert("author", Value::text(name.as_str().unwrap_or_default()));
            }
        }
        _ => {}
    }
    match doc.get("license") {
        Some(serde_json::Value::String(license)) => {
            row.insert("license", Value::text(license.as_str()));
        }
        Some(serde_json::Value::Object(license)) => {
            if let Some(url) = license.get("url").and_then(|u| u.as_str()) {
                row.insert("license", Value::text(url));
            }
        }
        _ => {}
    }
}

fn manifests_in(dir: &Path) -> Vec<PathBuf> {
    let base = dir.display().to_string();
    let mut found = expand_glob(&format!("{base}/node_modules/%/package.json"));
    found.extend(expand_glob(&format!("{base}/node_modules/@%/%/package.json")));
    found.retain(|p| p.is_file());
    found
}

fn search(site: &str, max_depth: i64, rows: &mut Vec<Row>) {
    let mut visited: HashSet<u64> = HashSet::new();
    let mut pending: Vec<(PathBuf, i64)> = vec![(PathBuf::from(site), 0)];
    while let Some((dir, depth)) = pending.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&dir) else { continue };
        if !visited.insert(meta.ino()) {
            continue;
        }
        for manifest in manifests_in(&dir) {
            let mut row = Row::from([
                ("directory", Value::text(site)),
                ("path", Value::text(manifest.display().to_string())),
                ("depth", Value::Int(depth)),
                ("max_depth", Value::Int(max_depth)),
                ("pid_with_namespace", Value::Int(0)),
            ]);
            package_row(&manifest, &mut row);
            rows.push(row);
            if max_depth == -1 || depth < max_depth {
                let package = manifest.parent().map(Path::to_path_buf).unwrap_or_default();
                if package.join("node_modules").is_dir() {
                    pending.push((package, depth + 1));
                }
            }
        }
    }
}

impl Table for NpmPackages {
    fn name(&self) -> &'static str {
        "npm_packages"
    }
    fn description(&self) -> &'static str {
        "Node packages installed in a system."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("name"),
            Column::text("version"),
            Column::text("description"),
            Column::text("author"),
            Column::text("license"),
            Column::text("homepage"),
            Column::text("path"),
            Column::text("directory").index(),
            Column::int("depth"),
            Column::int("max_depth").index().hidden(),
            Column::int("pid_with_namespace").index().hidden(),
            Column::text("mount_namespace_id").hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let max_depth = constraints.ints("max_depth").first().copied().unwrap_or(DEFAULT_MAX_DEPTH);
        let mut sites: Vec<String> = constraints.texts("directory");
        if sites.is_empty() {
            for pattern in SEARCHED {
                sites.extend(expand_glob(pattern).into_iter().filter(|p| p.is_dir()).map(|p| p.display().to_string()));
            }
        }
        sites.sort();
        sites.dedup();
        let mut rows = Vec::new();
        for site in sites {
            search(&site, max_depth, &mut rows);
        }
        Ok(rows)
    }
}
