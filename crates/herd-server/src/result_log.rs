//! osquery result logs, appended as JSON lines to a file in the data directory (like Fleet's filesystem
//! logging plugin), for a log shipper to pick up.
//!
//! - Durable as acknowledged: a batch is written to the file (one `write` of whole lines, no buffer kept in
//!   this process) before the request is answered, so a crash of the process (`kill -9`) loses nothing that
//!   was acknowledged. (Power loss may lose the last moments: the file is not synced on every batch.)
//! - Every line parses: a crash in the middle of a write leaves a torn last line; at start it is moved to
//!   `osquery-results.log.torn` and the log truncated to its last complete line, so appends never glue onto it.
//! - Bounded on disk: before a write would take the file past `max_size`, it is rotated (`.1` is the newest
//!   rotated file, up to `.keep`; older ones are deleted), so the logs never exceed `(keep + 1) × max_size`
//!   (plus one batch).
//! - Shared fairly: each host has a byte budget per hour (a token bucket: a burst of `host_budget`, refilled
//!   evenly over the hour); a batch that does not fit is refused whole with the time to wait, which osqueryd
//!   honours by keeping its buffer and sending it again later.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How a result log is kept.
#[derive(Debug, Clone, Copy)]
pub struct ResultLogOptions {
    /// Rotate before a write would take the file past this many bytes.
    pub max_size: u64,
    /// Rotated files kept.
    pub keep: u32,
    /// Bytes one host may write per hour.
    pub host_budget: u64,
}

impl Default for ResultLogOptions {
    fn default() -> Self {
        ResultLogOptions { max_size: 100 << 20, keep: 5, host_budget: 64 << 20 }
    }
}

const BUDGET_PERIOD: Duration = Duration::from_secs(3600);
/// Above this many hosts tracked, hosts whose budget is whole again are forgotten (at most once a minute).
const BUDGETS_TRACKED: usize = 10_000;

struct Writer {
    file: File,
    size: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    bytes: f64,
    refilled_at: Instant,
}

struct Budgets {
    hosts: HashMap<i64, Bucket>,
    pruned_at: Instant,
}

/// A host's batch that does not fit its budget now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "result log budget exceeded: this host may write {budget} bytes of results per hour and this batch of {batch} bytes does not fit now; retry in {retry_after_s} s"
)]
pub struct OverBudget {
    pub budget: u64,
    pub batch: u64,
    pub retry_after_s: u64,
}

pub struct ResultLog {
    path: PathBuf,
    options: ResultLogOptions,
    writer: Mutex<Writer>,
    budgets: Mutex<Budgets>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ResultLog {
    /// Opens the log with the default options.
    pub fn open(path: &Path) -> io::Result<ResultLog> {
        ResultLog::open_with(path, ResultLogOptions::default())
    }

    /// Opens (creates) the log, first repairing a torn last line a crash may have left.
    pub fn open_with(path: &Path, options: ResultLogOptions) -> io::Result<ResultLog> {
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(path)?;
        let size = repair_torn_tail(path, &mut file)?;
        Ok(ResultLog {
            path: path.to_path_buf(),
            options,
            writer: Mutex::new(Writer { file, size }),
            budgets: Mutex::new(Budgets { hosts: HashMap::new(), pruned_at: Instant::now() }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Takes `batch` bytes from the host's budget, or says how long to wait before the batch fits. A host
    /// whose budget is whole may send one batch larger than the budget (then waits for it to refill), so no
    /// batch is refused for ever.
    pub fn charge(&self, host_id: i64, batch: u64, now: Instant) -> Result<(), OverBudget> {
        let budget = self.options.host_budget as f64;
        let per_second = budget / BUDGET_PERIOD.as_secs_f64();
        let mut budgets = lock(&self.budgets);
        if budgets.hosts.len() > BUDGETS_TRACKED && now.duration_since(budgets.pruned_at) > Duration::from_secs(60) {
            budgets.hosts.retain(|_, bucket| {
                bucket.bytes + now.duration_since(bucket.refilled_at).as_secs_f64() * per_second < budget
            });
            budgets.pruned_at = now;
        }
        let bucket = budgets.hosts.entry(host_id).or_insert(Bucket { bytes: budget, refilled_at: now });
        let refill = now.saturating_duration_since(bucket.refilled_at).as_secs_f64() * per_second;
        bucket.bytes = (bucket.bytes + refill).min(budget);
        bucket.refilled_at = now;
        let needed = (batch as f64).min(budget);
        if bucket.bytes >= needed {
            bucket.bytes -= batch as f64;
            return Ok(());
        }
        let retry_after_s = ((needed - bucket.bytes) / per_second).ceil().max(1.0) as u64;
        Err(OverBudget { budget: self.options.host_budget, batch, retry_after_s })
    }

    /// Appends lines and hands them to the OS before returning, so an acknowledged log survives a crash of
    /// this process.
    pub fn append(&self, lines: &[serde_json::Value]) -> io::Result<()> {
        self.append_encoded(&encode(lines)?)
    }

    /// Appends whole lines already encoded by [`encode`], rotating first when they would not fit.
    pub fn append_encoded(&self, batch: &[u8]) -> io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut writer = lock(&self.writer);
        if writer.size > 0 && writer.size + batch.len() as u64 > self.options.max_size {
            self.rotate(&mut writer)?;
        }
        match writer.file.write_all(batch) {
            Ok(()) => {
                writer.size += batch.len() as u64;
                Ok(())
            }
            Err(err) => {
                // Part of it may be there: count what is.
                writer.size = writer.file.metadata().map(|m| m.len()).unwrap_or(writer.size);
                Err(err)
            }
        }
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    /// `log.(keep-1)` → `log.keep`, …, `log` → `log.1`, then a new empty `log`.
    fn rotate(&self, writer: &mut Writer) -> io::Result<()> {
        let keep = self.options.keep;
        if keep == 0 {
            writer.file.set_len(0)?;
            writer.size = 0;
            return Ok(());
        }
        for n in (1..keep).rev() {
            match std::fs::rename(self.rotated(n), self.rotated(n + 1)) {
                Err(err) if err.kind() != io::ErrorKind::NotFound => return Err(err),
                _ => {}
            }
        }
        std::fs::rename(&self.path, self.rotated(1))?;
        writer.file = OpenOptions::new().create(true).read(true).append(true).open(&self.path)?;
        writer.size = 0;
        tracing::info!(path = %self.path.display(), keep, "result log rotated");
        Ok(())
    }
}

/// Lines as the log stores them: one JSON document and a newline each.
pub fn encode(lines: &[serde_json::Value]) -> io::Result<Vec<u8>> {
    let mut batch = Vec::new();
    for line in lines {
        serde_json::to_writer(&mut batch, line)?;
        batch.push(b'\n');
    }
    Ok(batch)
}

/// The side file a torn last line is moved to.
pub fn torn_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".torn");
    PathBuf::from(name)
}

/// Moves what follows the last newline (a line a crash cut short) to the `.torn` side file and truncates the
/// log after its last complete line. Returns the log's size.
fn repair_torn_tail(path: &Path, file: &mut File) -> io::Result<u64> {
    let len = file.metadata()?.len();
    let complete = end_of_last_line(file, len)?;
    if complete == len {
        return Ok(len);
    }
    let mut tail = Vec::new();
    file.seek(SeekFrom::Start(complete))?;
    file.take(len - complete).read_to_end(&mut tail)?;
    let side = torn_path(path);
    let mut torn = OpenOptions::new().create(true).append(true).open(&side)?;
    tail.push(b'\n');
    torn.write_all(&tail)?;
    torn.sync_all()?;
    file.set_len(complete)?;
    file.sync_all()?;
    tracing::warn!(
        path = %path.display(),
        bytes = len - complete,
        moved_to = %side.display(),
        "the result log ended in a torn line (the server had stopped mid-write); moved it aside"
    );
    Ok(complete)
}

/// The offset just past the file's last newline (0 when it has none).
fn end_of_last_line(file: &mut File, len: u64) -> io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut end = len;
    let mut buf = vec![0u8; CHUNK as usize];
    while end > 0 {
        let start = end.saturating_sub(CHUNK);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(at) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(start + at as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn options(max_size: u64, keep: u32) -> ResultLogOptions {
        ResultLogOptions { max_size, keep, host_budget: 1 << 20 }
    }

    #[test]
    fn budget_refuses_what_does_not_fit_and_refills() {
        let dir = tempfile::tempdir().unwrap();
        let log = ResultLog::open_with(&dir.path().join("r.log"), options(1 << 20, 1)).unwrap();
        let t0 = Instant::now();
        assert!(log.charge(1, 600 << 10, t0).is_ok());
        let refused = log.charge(1, 600 << 10, t0).unwrap_err();
        assert!(refused.retry_after_s > 0, "{refused}");
        assert!(log.charge(2, 600 << 10, t0).is_ok(), "another host has its own budget");
        // After the wait it names, the batch fits.
        let later = t0 + Duration::from_secs(refused.retry_after_s);
        assert!(log.charge(1, 600 << 10, later).is_ok());
        // A whole budget admits one batch larger than the budget.
        assert!(log.charge(3, 5 << 20, t0).is_ok());
        assert!(log.charge(3, 1, t0).is_err());
    }

    #[test]
    fn torn_tail_is_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.log");
        std::fs::write(&path, b"{\"a\":1}\n{\"a\":2}\n{\"a\":").unwrap();
        let log = ResultLog::open_with(&path, options(1 << 20, 1)).unwrap();
        log.append(&[json!({"a": 3})]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
        assert_eq!(std::fs::read_to_string(torn_path(&path)).unwrap(), "{\"a\":\n");
        // No newline at all: everything is torn.
        let path = dir.path().join("s.log");
        std::fs::write(&path, vec![b'x'; 200_000]).unwrap();
        ResultLog::open_with(&path, options(1 << 20, 1)).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }

    #[test]
    fn rotates_at_the_size_and_keeps_n_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.log");
        let log = ResultLog::open_with(&path, options(100, 2)).unwrap();
        for n in 0..20 {
            log.append(&[json!({"n": n, "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"})]).unwrap();
        }
        for file in [path.clone(), log.rotated(1), log.rotated(2)] {
            let len = std::fs::metadata(&file).unwrap().len();
            assert!(len > 0 && len <= 100, "{}: {len}", file.display());
        }
        assert!(!log.rotated(3).exists());
        let newest = std::fs::read_to_string(&path).unwrap();
        assert!(newest.contains("\"n\":19"));
    }
}
