//! `herd-agent run`: the loop. Check in (see `checkin`), look at the deferred runs between check-ins, back
//! off while the server is unreachable or busy, stop promptly when asked.

use crate::checkin::Agent;
use crate::cli::RunOptions;
use crate::client::CallError;
use anyhow::Result;
use std::time::{Duration, Instant};

/// The first wait after a failed check-in; doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Longest wait between attempts while the server is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

pub async fn run(options: RunOptions) -> Result<()> {
    run_until(options, shutdown_signal()).await
}

/// Runs the agent until `shutdown` completes (`herd serve --with-agent` passes its own shutdown).
///
/// Returns as soon as `shutdown` completes, whatever the agent was doing: the step in flight is dropped.
/// Nothing is lost by that — reports are in the spool before they are sent, the schedule and the ledger are
/// written atomically before anything depends on them — and a script that was running is killed with
/// everything it started (its process group, see `scripts::run_script`). Its ledger entry then says it
/// started and never finished, so, true to at-most-once, it is not run again: at the next start it is
/// reported as interrupted (exit code null, `scripts::INTERRUPTED`), as after a crash or a power loss.
pub async fn run_until(options: RunOptions, shutdown: impl std::future::Future<Output = ()>) -> Result<()> {
    let mut agent = Agent::open(&options)?;
    tracing::info!(server = %options.server, data_dir = %options.data_dir.display(), "herd-agent running");
    let mut rhythm = Rhythm { backoff: FIRST_BACKOFF, next_checkin: Instant::now() };
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = rhythm.step(&mut agent) => {}
            _ = &mut shutdown => break,
        }
    }
    tracing::info!("herd-agent stopping");
    Ok(())
}

/// When the next check-in is due, and the backoff after failures.
struct Rhythm {
    backoff: Duration,
    next_checkin: Instant,
}

impl Rhythm {
    /// One turn of the loop: a look at the deferred runs, then a check-in when one is due, then a wait.
    async fn step(&mut self, agent: &mut Agent) {
        // Deferred runs keep their times whether or not the server answers; at start this runs what came due
        // while the machine was off.
        let look_again = agent.tick_deferrals().await;
        let until_checkin = self.next_checkin.saturating_duration_since(Instant::now());
        if !until_checkin.is_zero() {
            tokio::time::sleep(until_checkin.min(look_again.unwrap_or(Duration::MAX))).await;
            return;
        }
        let wait = self.after(agent.check_in().await, agent);
        self.next_checkin = Instant::now() + wait;
        // The check-in may have brought deferred runs or the user's choices.
        let look_again = agent.tick_deferrals().await.or(look_again);
        tokio::time::sleep(wait.min(look_again.unwrap_or(Duration::MAX))).await;
    }

    /// The wait after a check-in's outcome.
    fn after(&mut self, outcome: Result<(), CallError>, agent: &mut Agent) -> Duration {
        match outcome {
            Ok(()) => {
                self.backoff = FIRST_BACKOFF;
                agent.next_wait()
            }
            Err(CallError::NodeInvalid) => {
                tracing::warn!("the server no longer knows this host; enrolling again");
                agent.session.forget_node_key();
                self.backoff
            }
            Err(CallError::Later { retry_after, reason }) => {
                // The server said when (and spread its answers): that, plus up to a second of our own so
                // agents told the same second do not return in step. Our backoff is for failures, not this.
                let wait = retry_after + Duration::from_millis(u64::from(jitter_ms()));
                tracing::info!(%reason, retry_in_ms = wait.as_millis() as u64, "the server is busy");
                wait
            }
            Err(err @ (CallError::Failed(_) | CallError::Unknown(_))) => {
                tracing::warn!(error = %err, retry_in_s = self.backoff.as_secs(), "check-in failed");
                let wait = self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                wait
            }
        }
    }
}

/// Up to a second, at random (a wait that would otherwise line agents up).
fn jitter_ms() -> u16 {
    let mut bytes = [0u8; 2];
    // Without randomness there is no spread, which is no worse than no jitter.
    let _ = getrandom::fill(&mut bytes);
    u16::from_le_bytes(bytes) % 1000
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}
