//! Running a helper program with bounds: a time limit (then it is killed) and a cap on the output kept, so
//! no table that asks another program can hang a query or fill memory.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a bounded run produced.
pub(crate) struct Bounded {
    pub success: bool,
    pub stdout: Vec<u8>,
}

/// How often a running helper is checked for having exited.
const POLL: Duration = Duration::from_millis(5);

/// Runs `command` with stdin closed, keeping at most `max_output` bytes of its stdout. None when it cannot be
/// started (not installed) or did not finish within `limit` (it is killed).
pub(crate) fn run_bounded(mut command: Command, limit: Duration, max_output: usize) -> Option<Bounded> {
    let started = Instant::now();
    let mut child = command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().ok()?;
    let mut stdout = child.stdout.take()?;
    // A separate reader keeps the pipe drained, so a chatty helper cannot block on a full pipe.
    let reader = std::thread::spawn(move || {
        let mut kept = Vec::new();
        let _ = (&mut stdout).take(max_output as u64).read_to_end(&mut kept);
        let _ = std::io::copy(&mut stdout, &mut std::io::sink());
        kept
    });
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() < limit => std::thread::sleep(POLL),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let stdout = reader.join().unwrap_or_default();
    status.map(|status| Bounded { success: status.success(), stdout })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_capped_and_slow_helpers_are_killed() {
        let mut yes = Command::new("sh");
        yes.args(["-c", "head -c 100000 /dev/zero"]);
        let out = run_bounded(yes, Duration::from_secs(30), 10).unwrap();
        assert!(out.success);
        assert_eq!(out.stdout.len(), 10);
        let mut slow = Command::new("sleep");
        slow.arg("30");
        let started = Instant::now();
        assert!(run_bounded(slow, Duration::from_millis(50), 10).is_none());
        assert!(started.elapsed() < Duration::from_secs(30), "killed at its limit, not waited for");
        assert!(run_bounded(Command::new("/no/such/program"), Duration::from_secs(1), 10).is_none());
    }
}
