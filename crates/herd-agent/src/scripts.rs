//! Running the scripts the server queues: one at a time, in order, in a fresh temporary directory, in a
//! process group of their own that a timeout kills whole. An execution id is never run twice, even across an
//! agent restart: a ledger file is written before a run starts and keeps its result until the server has it.

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// Output kept: the last 10,000 characters (Fleet's rule).
pub const OUTPUT_KEPT_CHARS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingScript {
    pub execution_id: String,
    #[serde(default)]
    pub name: String,
    pub contents: String,
    #[serde(default)]
    pub timeout_s: Option<u64>,
    /// Set when an automation queued the run: the policy to re-check once the host's runs are done.
    #[serde(default)]
    pub policy_id: Option<i64>,
    #[serde(default)]
    pub policy_query: Option<String>,
    /// The revision of `policy_query` (servers before revisions in query names send none).
    #[serde(default)]
    pub policy_revision: Option<i64>,
    /// Set when the run waits on the user (a deferrable remediation): the agent holds it in its schedule.
    #[serde(default)]
    pub deferral: Option<crate::deferrals::DeferralInfo>,
}

impl PendingScript {
    /// The policy query to re-check after this run, named as the server handed it out
    /// (`fleet_policy_query_<id>_<revision>`), so the answer counts only if the policy was not edited since
    /// — a deferred run may come hours after its query was fetched. None: not an automation's run.
    pub fn recheck_query(&self) -> Option<(String, String)> {
        let (id, query) = self.policy_id.zip(self.policy_query.clone())?;
        let name = match self.policy_revision {
            Some(revision) => herd_core::policy::query_name(id, revision),
            None => herd_core::policy::unrevised_query_name(id),
        };
        Some((name, query))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptResult {
    pub execution_id: String,
    /// None: the script did not finish (timed out, could not start, agent stopped mid-run).
    pub exit_code: Option<i64>,
    pub output: String,
    pub runtime_ms: i64,
}

/// What the ledger knows about an execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LedgerEntry {
    /// A run began (the agent may have died during it).
    Started,
    Finished(ScriptResult),
}

pub struct Ledger {
    dir: PathBuf,
}

impl Ledger {
    pub fn open(dir: &Path) -> Result<Ledger> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        Ok(Ledger { dir: dir.to_path_buf() })
    }

    fn path(&self, execution_id: &str) -> PathBuf {
        // Execution ids are hex from the server; anything else is not a file name we make.
        let safe: String = execution_id.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
        self.dir.join(format!("{safe}.json"))
    }

    pub fn get(&self, execution_id: &str) -> Option<LedgerEntry> {
        let text = std::fs::read_to_string(self.path(execution_id)).ok()?;
        serde_json::from_str(&text).ok()
    }

    pub fn put(&self, execution_id: &str, entry: &LedgerEntry) -> Result<()> {
        let path = self.path(execution_id);
        crate::durable::write_atomically(&path, &serde_json::to_vec(entry)?, 0o600, None)
    }

    /// Forgets entries older than a week (the server stopped asking about them long ago).
    pub fn prune(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return };
        for entry in entries.flatten() {
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().unwrap_or_default() > Duration::from_secs(7 * 86_400));
            if old {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// The last `OUTPUT_KEPT_CHARS` characters.
pub fn keep_tail(output: &str) -> String {
    herd_core::text::tail_chars(output, OUTPUT_KEPT_CHARS).to_string()
}

/// Runs one script to completion or timeout. Never panics on a bad script: failures become results.
pub async fn run_script(script: &PendingScript, timeout: Duration) -> ScriptResult {
    let started = Instant::now();
    let finish = |exit_code: Option<i64>, output: String| ScriptResult {
        execution_id: script.execution_id.clone(),
        exit_code,
        output: keep_tail(&output),
        runtime_ms: started.elapsed().as_millis() as i64,
    };
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => return finish(None, format!("could not create a working directory: {e}")),
    };
    let powershell = script.name.ends_with(".ps1");
    let file = dir.path().join(if powershell { "script.ps1" } else { "script.sh" });
    if let Err(e) = std::fs::write(&file, &script.contents) {
        return finish(None, format!("could not write the script: {e}"));
    }
    let (program, args): (&str, Vec<String>) = if powershell {
        ("pwsh", vec!["-NoProfile".into(), "-NonInteractive".into(), "-File".into(), file.display().to_string()])
    } else {
        // stderr joins stdout so the output reads in the order it was written.
        ("/bin/sh", vec!["-c".into(), "exec /bin/sh \"$1\" 2>&1".into(), "sh".into(), file.display().to_string()])
    };
    let mut command = tokio::process::Command::new(program);
    command.args(&args).current_dir(dir.path()).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    // A process group of its own: the timeout kills the script and everything it started.
    command.process_group(0);
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(e) => return finish(None, format!("could not start {program}: {e}")),
    };
    let group = child.id().map(|pid| nix::unistd::Pid::from_raw(pid as i32));
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let collect = async {
        let mut out = Vec::new();
        let mut err = Vec::new();
        if let Some(stdout) = stdout.as_mut() {
            let _ = stdout.read_to_end(&mut out).await;
        }
        if let Some(stderr) = stderr.as_mut() {
            let _ = stderr.read_to_end(&mut err).await;
        }
        let status = child.wait().await;
        out.extend(err);
        (status, String::from_utf8_lossy(&out).into_owned())
    };
    match tokio::time::timeout(timeout, collect).await {
        Ok((Ok(status), output)) => finish(status.code().map(i64::from), output),
        Ok((Err(e), output)) => finish(None, format!("{output}\nwaiting for the script failed: {e}")),
        Err(_) => {
            if let Some(group) = group {
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
            }
            finish(
                None,
                format!("timed out after {} s; the script and everything it started were killed", timeout.as_secs()),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_keeps_the_tail() {
        let long = format!("{}END", "x".repeat(20_000));
        let kept = keep_tail(&long);
        assert_eq!(kept.chars().count(), OUTPUT_KEPT_CHARS);
        assert!(kept.ends_with("END"));
        assert_eq!(keep_tail("short"), "short");
    }

    #[test]
    fn ledger_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let ledger = Ledger::open(dir.path()).unwrap();
        assert_eq!(ledger.get("abc123"), None);
        ledger.put("abc123", &LedgerEntry::Started).unwrap();
        let again = Ledger::open(dir.path()).unwrap();
        assert_eq!(again.get("abc123"), Some(LedgerEntry::Started));
        let result =
            ScriptResult { execution_id: "abc123".into(), exit_code: Some(0), output: "ok".into(), runtime_ms: 5 };
        again.put("abc123", &LedgerEntry::Finished(result.clone())).unwrap();
        assert_eq!(Ledger::open(dir.path()).unwrap().get("abc123"), Some(LedgerEntry::Finished(result)));
        assert_eq!(again.get("../../etc/passwd"), None, "ids are not paths");
    }

    #[tokio::test]
    async fn runs_scripts_with_exit_codes_and_output() {
        let script = |contents: &str| PendingScript {
            execution_id: "e1".into(),
            name: "t.sh".into(),
            contents: contents.into(),
            timeout_s: None,
            policy_id: None,
            policy_query: None,
            policy_revision: None,
            deferral: None,
        };
        let ok = run_script(&script("echo out; echo err >&2; exit 3"), Duration::from_secs(30)).await;
        assert_eq!(ok.exit_code, Some(3));
        assert_eq!(ok.output, "out\nerr\n");
        let cwd = run_script(&script("pwd"), Duration::from_secs(30)).await;
        assert!(cwd.output.starts_with(&std::env::temp_dir().display().to_string()), "{}", cwd.output);
    }
}
