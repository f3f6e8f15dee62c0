//! Reports not yet acknowledged by the server, kept on disk so an outage, a server restart or an agent
//! restart loses none of them. Each report is one file, written and synced before it is sent, removed once
//! the server has answered 200.

use anyhow::{Context, Result};
use serde_json::Value;
use std::path::{Path, PathBuf};

pub struct Spool {
    dir: PathBuf,
}

/// Reports kept at most; beyond this the oldest are dropped (a host offline for weeks must not fill its disk).
pub const MAX_PENDING: usize = 1000;

impl Spool {
    pub fn open(dir: &Path) -> Result<Spool> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // Reports can hold anything a query returns (shadow entries, keys): owner only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Spool { dir: dir.to_path_buf() })
    }

    /// Pending reports, oldest first.
    pub fn pending(&self) -> Result<Vec<PathBuf>> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        Ok(files)
    }

    /// Stores a report durably and returns its file.
    pub fn push(&self, report: &Value) -> Result<PathBuf> {
        let pending = self.pending()?;
        if pending.len() >= MAX_PENDING {
            for old in &pending[..=pending.len() - MAX_PENDING] {
                tracing::warn!(file = %old.display(), "dropping the oldest unsent report: too many pending");
                let _ = std::fs::remove_file(old);
            }
        }
        let next = pending.last().and_then(|p| p.file_stem()?.to_str()?.parse::<u64>().ok()).map_or(1, |n| n + 1);
        let path = self.dir.join(format!("{next:020}.json"));
        crate::durable::write_atomically(&path, serde_json::to_string(report)?.as_bytes(), 0o600, None)?;
        Ok(path)
    }

    pub fn load(path: &Path) -> Result<Value> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{} is not a report", path.display()))
    }

    pub fn remove(path: &Path) -> Result<()> {
        std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_survive_reopening_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        for i in 0..3 {
            spool.push(&serde_json::json!({"n": i})).unwrap();
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777, 0o700);
        }
        let reopened = Spool::open(dir.path()).unwrap();
        let pending = reopened.pending().unwrap();
        let values: Vec<Value> = pending.iter().map(|p| Spool::load(p).unwrap()["n"].clone()).collect();
        assert_eq!(values, [0, 1, 2]);
        Spool::remove(&pending[0]).unwrap();
        reopened.push(&serde_json::json!({"n": 3})).unwrap();
        let values: Vec<Value> =
            reopened.pending().unwrap().iter().map(|p| Spool::load(p).unwrap()["n"].clone()).collect();
        assert_eq!(values, [1, 2, 3], "new reports go after the old ones");
    }
}
