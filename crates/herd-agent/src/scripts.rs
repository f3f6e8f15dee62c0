//! Running the scripts the server queues: one at a time, in order, in a fresh temporary directory, in a
//! process group of their own that a timeout kills whole. An execution id is never run twice, even across an
//! agent restart: a ledger file is written before a run starts and keeps its result until the server has it.

use anyhow::{Context, Result};
use herd_proto::agent::{DeferralTrigger, PendingScript, ScriptResultRequest};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::AsyncReadExt;

/// Output kept: the last 10,000 characters (Fleet's rule).
pub const OUTPUT_KEPT_CHARS: usize = 10_000;

/// The policy query to re-check after this run, named as the server handed it out
/// (`fleet_policy_query_<id>_<revision>`), so the answer counts only if the policy was not edited since
/// — a deferred run may come hours after its query was fetched. None: not an automation's run.
pub fn recheck_query(script: &PendingScript) -> Option<(String, String)> {
    let (id, query) = script.policy_id.zip(script.policy_query.clone())?;
    let name = match script.policy_revision {
        Some(revision) => herd_core::policy::query_name(id, revision),
        None => herd_core::policy::unrevised_query_name(id),
    };
    Some((name, query))
}

/// What to do with the runs a fetch brought.
#[derive(Debug, Default, PartialEq)]
pub struct FetchPlan {
    /// Deferred runs, for the schedule (they wait on the user).
    pub deferred: Vec<PendingScript>,
    /// To run now, in order.
    pub run: Vec<PendingScript>,
    /// The policies these runs remediate, re-checked once, after the last of them: (query name, SQL).
    pub recheck: Vec<(String, String)>,
}

/// Sorts fetched runs. A deferred run the ledger knows (it ran; its result was not delivered) is answered
/// from the ledger like any other, not scheduled again.
pub fn plan_fetched(fetched: Vec<PendingScript>, in_ledger: impl Fn(&str) -> bool) -> FetchPlan {
    let mut plan = FetchPlan::default();
    for script in fetched {
        if script.deferral.is_some() && !in_ledger(&script.execution_id) {
            plan.deferred.push(script);
            continue;
        }
        if let Some((name, query)) = recheck_query(&script)
            && !plan.recheck.iter().any(|(known, _)| *known == name)
        {
            plan.recheck.push((name, query));
        }
        plan.run.push(script);
    }
    plan
}

/// How long a run may take: the agent's limit, or the server's when it is shorter.
pub fn time_limit(agent_limit: Duration, server_limit_s: Option<i64>) -> Duration {
    server_limit_s.map_or(agent_limit, |s| agent_limit.min(Duration::from_secs(s.max(0).unsigned_abs())))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScriptResult {
    pub execution_id: String,
    /// None: the script did not finish (timed out, could not start, agent stopped mid-run).
    pub exit_code: Option<i64>,
    pub output: String,
    pub runtime_ms: i64,
    /// Killed at its time limit (the ledger of older agents lacks it: false).
    #[serde(default)]
    pub timed_out: bool,
}

impl ScriptResult {
    /// The result as the server takes it. `rechecks_locally`: this agent re-runs the remediated policy
    /// itself right after the round, so the server need not hand it out again.
    pub fn request(&self, rechecks_locally: bool, trigger: Option<DeferralTrigger>) -> ScriptResultRequest {
        ScriptResultRequest {
            node_key: None,
            execution_id: self.execution_id.clone(),
            exit_code: self.exit_code,
            output: self.output.clone(),
            runtime_ms: Some(self.runtime_ms),
            runtime: None,
            timeout: None,
            timed_out: self.timed_out,
            rechecks_locally,
            deferral_trigger: trigger,
        }
    }
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

/// The script runner with its ledger: every run at most once.
pub struct Scripts {
    pub ledger: Ledger,
    /// `--enable-scripts`.
    pub enabled: bool,
    /// `--script-timeout`.
    pub timeout: Duration,
}

impl Scripts {
    /// Runs a script unless the ledger says it ran (or began) before; the result either way.
    pub async fn run_at_most_once(&self, script: &PendingScript) -> Result<ScriptResult> {
        Ok(match self.ledger.get(&script.execution_id) {
            // Ran before, but the server never got the result: send it again, do not run again.
            Some(LedgerEntry::Finished(result)) => result,
            // The agent stopped during the run (crash, power loss, or a shutdown that killed it): its outcome
            // is unknown, and it must not run twice.
            Some(LedgerEntry::Started) => ScriptResult {
                execution_id: script.execution_id.clone(),
                exit_code: None,
                output: INTERRUPTED.into(),
                runtime_ms: 0,
                timed_out: false,
            },
            None => {
                self.ledger.put(&script.execution_id, &LedgerEntry::Started)?;
                let result = run_script(script, time_limit(self.timeout, script.timeout_s)).await;
                self.ledger.put(&script.execution_id, &LedgerEntry::Finished(result.clone()))?;
                tracing::info!(execution = %script.execution_id, exit_code = ?result.exit_code, "script ran");
                result
            }
        })
    }
}

/// The output reported for a run the agent stopped during.
pub const INTERRUPTED: &str = "the agent stopped while the script was running; not run again";

/// The last `OUTPUT_KEPT_CHARS` characters.
pub fn keep_tail(output: &str) -> String {
    herd_core::text::tail_chars(output, OUTPUT_KEPT_CHARS).to_string()
}

/// Runs one script to completion or timeout. Never panics on a bad script: failures become results.
pub async fn run_script(script: &PendingScript, timeout: Duration) -> ScriptResult {
    let started = Instant::now();
    let ended = |exit_code: Option<i64>, output: String, timed_out: bool| ScriptResult {
        execution_id: script.execution_id.clone(),
        exit_code,
        output: keep_tail(&output),
        runtime_ms: started.elapsed().as_millis() as i64,
        timed_out,
    };
    let finish = |exit_code: Option<i64>, output: String| ended(exit_code, output, false);
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
    // Dropped before the run ends (the agent is stopping: see `run::run_until`): the whole group is killed
    // rather than left running unwatched. Its ledger entry stays `Started`, so the run is reported as
    // interrupted (`INTERRUPTED`) at the next start and never run again.
    let mut guard = KillGroupOnDrop(group);
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
    let outcome = tokio::time::timeout(timeout, collect).await;
    if outcome.is_ok() {
        // The script is done; what it left in the background may go on (as before a timeout: killed).
        guard.0 = None;
    }
    match outcome {
        Ok((Ok(status), output)) => finish(status.code().map(i64::from), output),
        Ok((Err(e), output)) => finish(None, format!("{output}\nwaiting for the script failed: {e}")),
        Err(_) => {
            drop(guard);
            ended(
                None,
                format!("timed out after {} s; the script and everything it started were killed", timeout.as_secs()),
                true,
            )
        }
    }
}

/// Kills a process group when dropped, unless emptied first.
struct KillGroupOnDrop(Option<nix::unistd::Pid>);

impl Drop for KillGroupOnDrop {
    fn drop(&mut self) {
        if let Some(group) = self.0 {
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_proto::agent::{DeferralInfo, DeferralProgress};

    fn script(id: &str, policy: Option<(i64, i64)>, deferred: bool) -> PendingScript {
        let settings = serde_json::from_str(r#"{"options": ["1h"], "max_deferrals": 1}"#).unwrap();
        PendingScript {
            execution_id: id.into(),
            name: "fix.sh".into(),
            contents: "true".into(),
            timeout_s: None,
            policy_id: policy.map(|(id, _)| id),
            policy_query: policy.map(|(id, _)| format!("SELECT {id}")),
            policy_revision: policy.map(|(_, revision)| revision),
            deferral: deferred.then(|| DeferralInfo {
                settings,
                policy_name: "p".into(),
                org_name: String::new(),
                state: DeferralProgress::default(),
            }),
        }
    }

    #[test]
    fn fetch_table() {
        let ids = |v: &[PendingScript]| v.iter().map(|s| s.execution_id.clone()).collect::<Vec<_>>();
        let names = |v: &[(String, String)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        let q = herd_core::policy::query_name;
        // (what, fetched, ids in the ledger, deferred, run, re-checked)
        type Case =
            (&'static str, Vec<PendingScript>, Vec<&'static str>, Vec<&'static str>, Vec<&'static str>, Vec<String>);
        let cases: Vec<Case> = vec![
            ("nothing", vec![], vec![], vec![], vec![], vec![]),
            (
                "a manual run: run, nothing to re-check",
                vec![script("a", None, false)],
                vec![],
                vec![],
                vec!["a"],
                vec![],
            ),
            (
                "two fixes of one policy and one of another: each policy re-checked once, in order",
                vec![
                    script("a", Some((1, 2)), false),
                    script("b", Some((1, 2)), false),
                    script("c", Some((3, 1)), false),
                ],
                vec![],
                vec![],
                vec!["a", "b", "c"],
                vec![q(1, 2), q(3, 1)],
            ),
            ("deferred: to the schedule", vec![script("d", Some((1, 2)), true)], vec![], vec!["d"], vec![], vec![]),
            (
                "deferred but in the ledger: answered from it",
                vec![script("d", Some((1, 2)), true)],
                vec!["d"],
                vec![],
                vec!["d"],
                vec![q(1, 2)],
            ),
        ];
        for (what, fetched, ledger, deferred, run, recheck) in cases {
            let plan = plan_fetched(fetched, |id| ledger.contains(&id));
            assert_eq!(
                (ids(&plan.deferred), ids(&plan.run), names(&plan.recheck)),
                (
                    deferred.iter().map(|s| s.to_string()).collect(),
                    run.iter().map(|s| s.to_string()).collect(),
                    recheck
                ),
                "{what}"
            );
        }
        let old_server = PendingScript { policy_revision: None, ..script("a", Some((4, 1)), false) };
        assert_eq!(recheck_query(&old_server).unwrap().0, herd_core::policy::unrevised_query_name(4));
    }

    #[test]
    fn time_limit_table() {
        let s = Duration::from_secs;
        for (agent, server, want) in
            [(s(300), None, s(300)), (s(300), Some(60), s(60)), (s(30), Some(60), s(30)), (s(30), Some(-5), s(0))]
        {
            assert_eq!(time_limit(agent, server), want, "{agent:?} {server:?}");
        }
    }

    #[tokio::test]
    async fn a_run_dropped_midway_is_killed_with_what_it_started() {
        let dir = tempfile::tempdir().unwrap();
        let pids = dir.path().join("pids");
        let contents = format!("sleep 600 & echo $! > '{0}'\necho $$ >> '{0}'\nsleep 600\n", pids.display());
        let run = PendingScript { contents, ..script("x", None, false) };
        let running = tokio::spawn(async move { run_script(&run, Duration::from_secs(600)).await });
        let read_pids = || -> Vec<i32> {
            std::fs::read_to_string(&pids).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect()
        };
        let started = std::time::Instant::now();
        while read_pids().len() < 2 {
            assert!(started.elapsed() < Duration::from_secs(10), "the script did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        running.abort();
        let _ = running.await;
        let alive = |pid: i32| {
            // A zombie is dead: only its parent's wait is missing.
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            !stat.is_empty() && !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z')
        };
        let started = std::time::Instant::now();
        while read_pids().into_iter().any(alive) {
            assert!(started.elapsed() < Duration::from_secs(5), "still running: {:?}", read_pids());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

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
        let result = ScriptResult {
            execution_id: "abc123".into(),
            exit_code: Some(0),
            output: "ok".into(),
            runtime_ms: 5,
            timed_out: false,
        };
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
