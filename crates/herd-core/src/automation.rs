//! A policy's script automation on a failing host: whether to run the script now, wait, or stop trying.
//! The store reads the host's run history for the current failure and applies the step in the report's
//! transaction; the rule lives here, with its table test.

use crate::Millis;
use crate::report::Remediation;

/// What the store knows of the script's runs on this host for the current failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunHistory {
    /// Runs queued since the failure began.
    pub runs: i64,
    /// A run is still pending or deferred (never a second one).
    pub pending: bool,
    /// When the latest finished run finished.
    pub last_finished_at: Option<Millis>,
    /// herd already gave up on this failure (said once: a new failure starts afresh).
    pub gave_up: bool,
}

/// The next step for the host and policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutomationStep {
    /// Nothing now: a run is pending, a retry is not due yet, continuous mode waits for the schedule, or herd
    /// has already given up on this failure.
    Wait,
    /// Queue a run; `attempt` counts the runs for this failure, this one included.
    Run { attempt: i64 },
    /// Out of retries and still failing: stop, and say so once.
    GiveUp { runs: i64 },
}

/// The step for a failing answer, under `mode`, with `retries` runs allowed after the first. Retries wait
/// with the job table's backoff (5 s doubling to an hour, jitter stable per `seed`) after the last run ended.
pub fn next_step(mode: Remediation, history: RunHistory, retries: i64, seed: i64, now: Millis) -> AutomationStep {
    if mode == Remediation::AwaitSchedule || history.pending {
        return AutomationStep::Wait;
    }
    if mode == Remediation::Continuous {
        return AutomationStep::Run { attempt: history.runs + 1 };
    }
    if history.runs > retries {
        return if history.gave_up { AutomationStep::Wait } else { AutomationStep::GiveUp { runs: history.runs } };
    }
    if history.runs > 0 {
        let retry_at = history.last_finished_at.unwrap_or(now) + crate::jobs::retry_delay_ms(history.runs, seed);
        if now < retry_at {
            return AutomationStep::Wait;
        }
    }
    AutomationStep::Run { attempt: history.runs + 1 }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AutomationStep::{GiveUp, Run, Wait};

    #[test]
    fn steps() {
        let failing = Remediation::Retrying { failing_since: 1_000 };
        let now = 10_000_000;
        let after = |runs, finished_ago: Millis| RunHistory {
            runs,
            last_finished_at: Some(now - finished_ago),
            ..RunHistory::default()
        };
        let pending = RunHistory { runs: 1, pending: true, ..RunHistory::default() };
        let gave_up = RunHistory { gave_up: true, ..after(4, 1) };
        let cases: [(&str, Remediation, RunHistory, AutomationStep); 11] = [
            ("first failure runs at once", failing, RunHistory::default(), Run { attempt: 1 }),
            ("never a second pending run", failing, pending, Wait),
            ("a retry waits out its backoff (5 s after one run)", failing, after(1, 1_000), Wait),
            ("then runs", failing, after(1, 6_000), Run { attempt: 2 }),
            ("the backoff doubles (20 s after three runs)", failing, after(3, 15_000), Wait),
            ("the last retry", failing, after(3, 23_000), Run { attempt: 4 }),
            ("out of retries: give up", failing, after(4, 1), GiveUp { runs: 4 }),
            ("said once per failure", failing, gave_up, Wait),
            (
                "continuous mode runs at every scheduled failing result",
                Remediation::Continuous,
                after(9, 1),
                Run { attempt: 10 },
            ),
            ("continuous mode still never doubles a pending run", Remediation::Continuous, pending, Wait),
            (
                "continuous mode waits for the schedule at a re-check",
                Remediation::AwaitSchedule,
                RunHistory::default(),
                Wait,
            ),
        ];
        for (what, mode, history, want) in cases {
            assert_eq!(next_step(mode, history, 3, 7, now), want, "{what}");
        }
    }

    #[test]
    fn a_run_whose_end_is_unknown_counts_as_just_ended() {
        let history = RunHistory { runs: 1, last_finished_at: None, ..RunHistory::default() };
        assert_eq!(next_step(Remediation::Retrying { failing_since: 0 }, history, 3, 7, 1_000), AutomationStep::Wait);
    }
}
