//! osquery result logs, appended as JSON lines to a file in the data directory (like Fleet's filesystem
//! logging plugin), for a log shipper to pick up.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct ResultLog {
    path: PathBuf,
    file: Mutex<BufWriter<File>>,
}

impl ResultLog {
    pub fn open(path: &Path) -> std::io::Result<ResultLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(ResultLog { path: path.to_path_buf(), file: Mutex::new(BufWriter::new(file)) })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends lines and flushes them to the file before returning, so an acknowledged log is not only in
    /// this process's memory.
    pub fn append(&self, lines: &[serde_json::Value]) -> std::io::Result<()> {
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        for line in lines {
            serde_json::to_writer(&mut *file, line)?;
            file.write_all(b"\n")?;
        }
        file.flush()
    }
}
