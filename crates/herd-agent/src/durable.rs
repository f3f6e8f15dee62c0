//! The agent's one way to write a file it must not lose or half-write: node key, device token, report
//! spool, script ledger, deferral schedule, installed profiles and the files profiles put in place.

use anyhow::{Context, Result};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Who should own a file profiles put in place: (uid, gid), either left as is when None.
pub type Owner = (Option<u32>, Option<u32>);

/// Writes `bytes` to `path` so that a crash or power loss leaves the old content or the new, never a mix:
/// a temporary file beside it (`.NAME.herd-tmp`), created with `mode` (so a secret is never readable more
/// widely, not even for a moment), given `owner`, synced, renamed over the target, and the directory
/// synced so the rename itself survives. The directory is created if missing. On failure the temporary
/// file is removed and the target is untouched.
pub fn write_atomically(path: &Path, bytes: &[u8], mode: u32, owner: Option<Owner>) -> Result<()> {
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = path.file_name().with_context(|| format!("{} names no file", path.display()))?;
    let tmp = parent.join(format!(".{}.herd-tmp", name.to_string_lossy()));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .with_context(|| format!("creating {}", tmp.display()))?;
        file.write_all(bytes).with_context(|| format!("writing {}", tmp.display()))?;
        // The mode given at creation is narrowed by the umask, and a leftover temporary file keeps its old
        // one: set it exactly.
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::fchown(&file, uid, gid)
                .with_context(|| format!("changing the owner of {}", path.display()))?;
        }
        file.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
        // Best effort: not every file system lets a directory be opened for syncing.
        std::fs::File::open(parent).and_then(|dir| dir.sync_all()).ok();
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn replaces_the_whole_file_with_the_mode_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("node_key");
        write_atomically(&path, b"first, and longer", 0o644, None).unwrap();
        write_atomically(&path, b"second", 0o600, None).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"second");
        assert_eq!(std::fs::metadata(&path).unwrap().mode() & 0o777, 0o600);
        let names: Vec<_> =
            std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["node_key"], "no temporary file left behind");
    }

    #[test]
    fn a_failed_write_leaves_the_target_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should go: the rename fails after the temporary file was written.
        let path = dir.path().join("schedule.json");
        std::fs::create_dir(&path).unwrap();
        std::fs::write(path.join("inside"), b"kept").unwrap();
        assert!(write_atomically(&path, b"lost", 0o600, None).is_err());
        assert_eq!(std::fs::read(path.join("inside")).unwrap(), b"kept");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "the temporary file was removed");
    }
}
