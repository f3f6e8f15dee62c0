//! File contents: hash, file_lines. Paths are given as in the `file` table (`=` or LIKE globs).

use super::file::expand_glob;
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use md5::Digest as _;
use std::io::Read;
use std::path::PathBuf;

/// Largest file hashed (osquery skips huge files too): 50 MiB.
const MAX_HASHED: u64 = 50 << 20;
/// Largest file file_lines reads.
const MAX_LINES_FILE: u64 = 10 << 20;

fn paths(constraints: &Constraints, with_directories: bool) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = constraints.texts("path").into_iter().map(PathBuf::from).collect();
    for pattern in constraints.like.get("path").into_iter().flatten() {
        paths.extend(expand_glob(pattern));
    }
    if with_directories {
        for dir in constraints.texts("directory") {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                paths.extend(entries.flatten().map(|e| e.path()));
            }
        }
    }
    paths.sort();
    paths.dedup();
    paths.into_iter().filter(|p| p.is_file()).collect()
}

pub struct Hash;

impl Table for Hash {
    fn name(&self) -> &'static str {
        "hash"
    }
    fn description(&self) -> &'static str {
        "Filesystem hash data."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("path").required().like(),
            Column::text("directory").required(),
            Column::text("md5"),
            Column::text("sha1"),
            Column::text("sha256"),
            Column::int("pid_with_namespace").index().hidden(),
            Column::text("mount_namespace_id").hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        for path in paths(constraints, true) {
            let Ok(file) = std::fs::File::open(&path) else { continue };
            if file.metadata().map(|m| m.len() > MAX_HASHED).unwrap_or(true) {
                continue;
            }
            let (mut md5, mut sha1, mut sha256) = (md5::Md5::new(), sha1::Sha1::new(), sha2::Sha256::new());
            let mut reader = std::io::BufReader::new(file);
            let mut buffer = [0u8; 64 * 1024];
            loop {
                let n = reader.read(&mut buffer)?;
                if n == 0 {
                    break;
                }
                md5.update(&buffer[..n]);
                sha1.update(&buffer[..n]);
                sha2::Digest::update(&mut sha256, &buffer[..n]);
            }
            rows.push(Row::from([
                ("path", Value::text(path.display().to_string())),
                ("directory", Value::text(path.parent().map(|p| p.display().to_string()).unwrap_or_default())),
                ("md5", Value::text(hex::encode(md5.finalize()))),
                ("sha1", Value::text(hex::encode(sha1.finalize()))),
                ("sha256", Value::text(hex::encode(sha2::Digest::finalize(sha256)))),
            ]));
        }
        Ok(rows)
    }
}

pub struct FileLines;

impl Table for FileLines {
    fn name(&self) -> &'static str {
        "file_lines"
    }
    fn description(&self) -> &'static str {
        "Allows reading an arbitrary file, line by line."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[Column::text("path").required().like(), Column::text("line")];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        for path in paths(constraints, false) {
            if std::fs::metadata(&path).map(|m| m.len() > MAX_LINES_FILE).unwrap_or(true) {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else { continue };
            let text = String::from_utf8_lossy(&bytes);
            let shown = path.display().to_string();
            rows.extend(
                text.lines().map(|line| Row::from([("path", Value::text(shown.clone())), ("line", Value::text(line))])),
            );
        }
        Ok(rows)
    }
}
