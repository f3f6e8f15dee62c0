//! file: one row per path, from stat(2)/lstat(2). Paths come from `path` (= or LIKE) or `directory` (= or
//! LIKE: its entries), as in osquery; in LIKE patterns `%` matches within one directory level and a trailing
//! `%%` matches everything below.
//!
//! NULL columns and why: btime (not reported through stat(2)); the Windows and macOS columns.

use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Most paths one query may expand a glob to, so `LIKE '/%%'` cannot walk the whole disk.
const MAX_EXPANDED: usize = 100_000;

pub struct File;

fn file_type(meta: &std::fs::Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_symlink() {
        "symlink"
    } else if t.is_char_device() {
        "character"
    } else if t.is_block_device() {
        "block"
    } else if t.is_fifo() {
        "fifo"
    } else if t.is_socket() {
        "socket"
    } else {
        "regular"
    }
}

pub(super) fn row_for(path: &Path) -> Option<Row> {
    let link = std::fs::symlink_metadata(path).ok()?;
    // Like osquery: the target's attributes for a symlink (when it resolves), with `symlink` = 1.
    let meta = std::fs::metadata(path).unwrap_or_else(|_| link.clone());
    let is_link = link.file_type().is_symlink();
    let text = path.display().to_string();
    let directory = path.parent().map(|p| p.display().to_string()).unwrap_or_default();
    let mut row = Row::new();
    row.insert("path", Value::text(text));
    row.insert("directory", Value::text(directory));
    row.insert("filename", Value::opt_text(path.file_name().map(|n| n.to_string_lossy().into_owned())));
    row.insert("inode", Value::Int(meta.ino() as i64));
    row.insert("uid", Value::Int(meta.uid() as i64));
    row.insert("gid", Value::Int(meta.gid() as i64));
    row.insert("mode", Value::text(format!("{:04o}", meta.mode() & 0o7777)));
    row.insert("device", Value::Int(meta.rdev() as i64));
    row.insert("size", Value::Int(meta.size() as i64));
    row.insert("block_size", Value::Int(meta.blksize() as i64));
    row.insert("atime", Value::Int(meta.atime()));
    row.insert("mtime", Value::Int(meta.mtime()));
    row.insert("ctime", Value::Int(meta.ctime()));
    row.insert("hard_links", Value::Int(meta.nlink() as i64));
    row.insert("symlink", Value::Int(is_link as i64));
    row.insert("type", Value::text(file_type(&meta)));
    if is_link {
        row.insert(
            "symlink_target_path",
            Value::opt_text(std::fs::read_link(path).ok().map(|p| p.display().to_string())),
        );
    }
    Some(row)
}

/// SQL LIKE matching of one path segment: `%` any run, `_` one character, case-insensitive for ASCII as
/// SQLite's LIKE is.
fn like_segment(pattern: &str, name: &str) -> bool {
    fn go(p: &[char], n: &[char]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some(('%', rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some(('_', rest)) => !n.is_empty() && go(rest, &n[1..]),
            Some((c, rest)) => n.first().is_some_and(|m| m.eq_ignore_ascii_case(c)) && go(rest, &n[1..]),
        }
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    go(&p, &n)
}

fn walk_all(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        if out.len() >= MAX_EXPANDED {
            return;
        }
        let path = entry.path();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        out.push(path.clone());
        if is_dir {
            walk_all(&path, out);
        }
    }
}

/// Expands an osquery file glob to the paths that exist.
pub fn expand_glob(pattern: &str) -> Vec<PathBuf> {
    if !pattern.contains(['%', '_']) {
        let path = PathBuf::from(pattern);
        return if std::fs::symlink_metadata(&path).is_ok() { vec![path] } else { Vec::new() };
    }
    let recursive = pattern.ends_with("%%");
    let body = if recursive { &pattern[..pattern.len() - 2] } else { pattern };
    let absolute = body.starts_with('/');
    let segments: Vec<&str> = body.split('/').filter(|s| !s.is_empty()).collect();
    let mut current = vec![PathBuf::from(if absolute { "/" } else { "." })];
    let last = segments.len().saturating_sub(1);
    for (i, segment) in segments.iter().enumerate() {
        // A recursive pattern's last segment is a prefix of the names below it ("/etc/ss%%" walks /etc/ss*).
        let prefix_only = recursive && i == last && !body.ends_with('/');
        let mut next = Vec::new();
        for dir in &current {
            if !segment.contains(['%', '_']) && !prefix_only {
                let candidate = dir.join(segment);
                if std::fs::symlink_metadata(&candidate).is_ok() {
                    next.push(candidate);
                }
                continue;
            }
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                let matches = if prefix_only {
                    like_segment(&format!("{segment}%"), &name)
                } else {
                    like_segment(segment, &name)
                };
                if matches {
                    next.push(entry.path());
                }
            }
        }
        current = next;
        if current.len() > MAX_EXPANDED {
            current.truncate(MAX_EXPANDED);
        }
    }
    if !recursive {
        return current;
    }
    let mut out = Vec::new();
    for base in current {
        let is_dir = std::fs::metadata(&base).is_ok_and(|m| m.is_dir());
        if body.ends_with('/') || !is_dir {
            // "/etc/%%": everything below /etc; "/etc/ss%%": the matches and everything below them.
            if !body.ends_with('/') {
                out.push(base.clone());
            }
        } else {
            out.push(base.clone());
        }
        if is_dir {
            walk_all(&base, &mut out);
        }
    }
    out.truncate(MAX_EXPANDED);
    out
}

impl Table for File {
    fn name(&self) -> &'static str {
        "file"
    }
    fn description(&self) -> &'static str {
        "Interactive filesystem attributes and metadata."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("path").required().like(),
            Column::text("directory").required().like(),
            Column::text("filename"),
            Column::bigint("inode"),
            Column::bigint("uid"),
            Column::bigint("gid"),
            Column::text("mode"),
            Column::bigint("device"),
            Column::bigint("size"),
            Column::int("block_size"),
            Column::bigint("atime"),
            Column::bigint("mtime"),
            Column::bigint("ctime"),
            Column::bigint("btime"),
            Column::int("hard_links"),
            Column::int("symlink"),
            Column::text("type"),
            Column::text("symlink_target_path"),
            Column::text("attributes").hidden(),
            Column::text("volume_serial").hidden(),
            Column::text("file_id").hidden(),
            Column::text("file_version").hidden(),
            Column::text("product_version").hidden(),
            Column::text("original_filename").hidden(),
            Column::text("shortcut_target_path").hidden(),
            Column::text("shortcut_target_type").hidden(),
            Column::text("shortcut_target_location").hidden(),
            Column::text("shortcut_start_in").hidden(),
            Column::text("shortcut_run").hidden(),
            Column::text("shortcut_comment").hidden(),
            Column::text("bsd_flags").hidden(),
            Column::int("pid_with_namespace").index().hidden(),
            Column::text("mount_namespace_id").hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut paths: Vec<PathBuf> = Vec::new();
        for path in constraints.texts("path") {
            paths.push(PathBuf::from(path));
        }
        for pattern in constraints.like.get("path").into_iter().flatten() {
            paths.extend(expand_glob(pattern));
        }
        let mut directories: Vec<PathBuf> = constraints.texts("directory").into_iter().map(PathBuf::from).collect();
        for pattern in constraints.like.get("directory").into_iter().flatten() {
            directories.extend(expand_glob(pattern).into_iter().filter(|p| p.is_dir()));
        }
        for dir in directories {
            if let Ok(entries) = std::fs::read_dir(&dir) {
                paths.extend(entries.flatten().map(|e| e.path()));
            }
        }
        paths.sort();
        paths.dedup();
        Ok(paths.iter().filter_map(|p| row_for(p)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_segments() {
        assert!(like_segment("%.conf", "sshd.conf"));
        assert!(like_segment("SSH%", "sshd_config"));
        assert!(like_segment("a_c", "abc"));
        assert!(!like_segment("a_c", "abbc"));
        assert!(!like_segment("%.conf", "sshd.config"));
    }

    #[test]
    fn globs_follow_osquery_levels() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        std::fs::write(root.join("a/one.txt"), "1").unwrap();
        std::fs::write(root.join("a/b/two.txt"), "2").unwrap();
        let base = root.display().to_string();
        let names = |pattern: String| {
            let mut got: Vec<String> =
                expand_glob(&pattern).iter().map(|p| p.strip_prefix(root).unwrap().display().to_string()).collect();
            got.sort();
            got
        };
        assert_eq!(names(format!("{base}/a/%")), ["a/b", "a/one.txt"], "one level");
        assert_eq!(names(format!("{base}/a/%%")), ["a/b", "a/b/two.txt", "a/one.txt"], "recursive");
        assert_eq!(names(format!("{base}/%/%.txt")), ["a/one.txt"]);
        assert_eq!(names(format!("{base}/a/one.txt")), ["a/one.txt"]);
        assert!(names(format!("{base}/a/none%")).is_empty());
    }
}
