//! suid_bin: setuid and setgid files under osquery's search roots — /bin, /sbin, /usr/bin, /usr/sbin,
//! /usr/local/bin, /usr/local/sbin, /tmp — walked as osquery walks them: each root followed when it is a link
//! (a merged-/usr /bin lists /usr/bin's files again under /bin), links to directories inside not descended,
//! links to files judged by their target (a link to a setuid binary is listed under the link's path).
//!
//! Columns: `path` the file's path under its root; `username` and `groupname` the names of the (target's)
//! owner and group from /etc/passwd and /etc/group, else the numeric ids (as osquery prints unknown ids);
//! `permissions` `S` for setuid, `G` for setgid, `SG` for both; `pid_with_namespace` (hidden) 0, as osquery
//! fills it when it reads the host's namespace. Missing roots and unreadable directories are skipped.

use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const ROOTS: &[&str] = &["/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/tmp"];
const SETUID: u32 = 0o4000;
const SETGID: u32 = 0o2000;

/// The setuid or setgid regular files below `dir`: (path, metadata of the file, links followed).
fn walk(dir: &Path, out: &mut Vec<(PathBuf, std::fs::Metadata)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            walk(&path, out);
            continue;
        }
        let Ok(meta) = std::fs::metadata(&path) else { continue };
        if meta.is_file() && meta.mode() & (SETUID | SETGID) != 0 {
            out.push((path, meta));
        }
    }
}

/// osquery's permissions text: `S` setuid, `G` setgid.
fn permissions(mode: u32) -> String {
    let mut text = String::new();
    if mode & SETUID != 0 {
        text.push('S');
    }
    if mode & SETGID != 0 {
        text.push('G');
    }
    text
}

pub struct SuidBin;

impl Table for SuidBin {
    fn name(&self) -> &'static str {
        "suid_bin"
    }
    fn description(&self) -> &'static str {
        "suid binaries in common locations."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("path"),
            Column::text("username"),
            Column::text("groupname"),
            Column::text("permissions"),
            Column::int("pid_with_namespace").index().hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut found = Vec::new();
        for root in ROOTS {
            walk(Path::new(root), &mut found);
        }
        let user = |uid: u32| {
            nix::unistd::User::from_uid(uid.into()).ok().flatten().map_or_else(|| uid.to_string(), |u| u.name)
        };
        let group = |gid: u32| {
            nix::unistd::Group::from_gid(gid.into()).ok().flatten().map_or_else(|| gid.to_string(), |g| g.name)
        };
        Ok(found
            .into_iter()
            .map(|(path, meta)| {
                Row::from([
                    ("path", Value::text(path.display().to_string())),
                    ("username", Value::text(user(meta.uid()))),
                    ("groupname", Value::text(group(meta.gid()))),
                    ("permissions", Value::text(permissions(meta.mode()))),
                    ("pid_with_namespace", Value::Int(0)),
                ])
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn permissions_name_the_bits() {
        for (mode, want) in [(0o4755, "S"), (0o2755, "G"), (0o6755, "SG"), (0o755, "")] {
            assert_eq!(super::permissions(mode), want, "{mode:o}");
        }
    }
}
