//! Reports not yet acknowledged by the server, kept on disk so an outage, a server restart or an agent
//! restart loses none of them. Each report is one file, written and synced before it is sent, removed once
//! the server has answered 200.

use anyhow::{Context, Result};
use herd_proto::osquery::DistributedWriteRequest;
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
    pub fn push(&self, report: &DistributedWriteRequest) -> Result<PathBuf> {
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

    pub fn load(path: &Path) -> Result<DistributedWriteRequest> {
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

    /// A report told apart by its one status.
    fn report(n: i64) -> DistributedWriteRequest {
        let mut report = DistributedWriteRequest::default();
        report.statuses.insert("n".into(), n);
        report
    }

    fn numbers(spool: &Spool) -> Vec<i64> {
        spool.pending().unwrap().iter().map(|p| Spool::load(p).unwrap().statuses["n"]).collect()
    }

    #[test]
    fn reports_survive_reopening_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        for i in 0..3 {
            spool.push(&report(i)).unwrap();
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(dir.path()).unwrap().permissions().mode() & 0o777, 0o700);
        }
        let reopened = Spool::open(dir.path()).unwrap();
        assert_eq!(numbers(&reopened), [0, 1, 2]);
        Spool::remove(&reopened.pending().unwrap()[0]).unwrap();
        reopened.push(&report(3)).unwrap();
        assert_eq!(numbers(&reopened), [1, 2, 3], "new reports go after the old ones");
    }

    #[test]
    fn reports_spooled_by_earlier_agents_still_load() {
        // Written by the agent before the typed protocol: no node key, `herd_recheck` patched in.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("00000000000000000001.json");
        let old = r#"{"herd_recheck":true,"messages":{},"queries":{"q":[{"a":"1"}]},"stats":{},"statuses":{"q":0}}"#;
        std::fs::write(&path, old).unwrap();
        let report = Spool::load(&path).unwrap();
        assert!(report.herd_recheck);
        assert_eq!((report.queries["q"][0]["a"].as_str(), report.statuses["q"]), ("1", 0));
    }
}
