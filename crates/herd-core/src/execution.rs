//! The states of a script execution, as the store keeps them and the APIs show them.

use serde::{Deserialize, Serialize};

/// Where a script execution stands. Stored as its lowercase name (`script_executions.status`); converted at
/// the row boundary, so code past the store matches on states, not strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionStatus {
    /// Queued: the host runs it at its next check-in.
    Pending,
    /// Queued, waiting on the device user's choice (a deferrable automation).
    Deferred,
    /// Ran; the exit code says how it went.
    Ran,
    /// Could not run, or ran past its time limit (no exit code).
    Error,
    /// Dropped before it ran (the policy passed again while the run waited on the user).
    Cancelled,
}

impl ExecutionStatus {
    pub const ALL: [ExecutionStatus; 5] = [
        ExecutionStatus::Pending,
        ExecutionStatus::Deferred,
        ExecutionStatus::Ran,
        ExecutionStatus::Error,
        ExecutionStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ExecutionStatus::Pending => "pending",
            ExecutionStatus::Deferred => "deferred",
            ExecutionStatus::Ran => "ran",
            ExecutionStatus::Error => "error",
            ExecutionStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(text: &str) -> Option<ExecutionStatus> {
        ExecutionStatus::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

impl std::fmt::Display for ExecutionStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Compared with the name on the wire (`status == "ran"`), as tests and views read it.
impl PartialEq<&str> for ExecutionStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// How a run that finished ended (what an agent's result or a timeout records).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    Ran,
    /// Could not run (refused by the agent or the server, failed to start, the agent stopped during it).
    Error,
    /// Killed at its time limit on the host: an error that Fleet's `host_timeout` reports.
    TimedOut,
    /// Never run: the host's agent (or the server) has scripts disabled. An error that is no attempt.
    Refused,
}

impl From<RunOutcome> for ExecutionStatus {
    fn from(outcome: RunOutcome) -> ExecutionStatus {
        match outcome {
            RunOutcome::Ran => ExecutionStatus::Ran,
            RunOutcome::Error | RunOutcome::TimedOut | RunOutcome::Refused => ExecutionStatus::Error,
        }
    }
}

/// Whose conventions a script result follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultConvention {
    /// herd-agent: an exit code only when the script ended by itself; otherwise none, and whether it was
    /// killed at its time limit.
    Herd,
    /// Fleet's fleetd (`HostScriptResultPayload`): always an exit code; -1 when the script did not end by
    /// itself (killed at its timeout, or it could not start: Fleet reports both as a timeout), -2 when
    /// scripts are disabled on the host.
    Fleet,
}

/// Fleet's exit code for a run that did not end by itself.
pub const FLEET_NOT_TERMINATED: i64 = -1;
/// Fleet's exit code for a run refused because scripts are disabled on the host.
pub const FLEET_SCRIPTS_DISABLED: i64 = -2;

/// How a reported run ended, and the exit code to keep (none when it did not end by itself): one reading
/// of both agents' results, so a fleetd timeout is recorded as herd-agent's is.
pub fn reported_outcome(
    convention: ResultConvention,
    exit_code: Option<i64>,
    timed_out: bool,
) -> (RunOutcome, Option<i64>) {
    match (convention, exit_code) {
        (ResultConvention::Fleet, Some(FLEET_NOT_TERMINATED)) => (RunOutcome::TimedOut, None),
        (ResultConvention::Fleet, Some(FLEET_SCRIPTS_DISABLED)) => (RunOutcome::Refused, None),
        (_, Some(code)) => (RunOutcome::Ran, Some(code)),
        (ResultConvention::Herd, None) if timed_out => (RunOutcome::TimedOut, None),
        (_, None) => (RunOutcome::Error, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_serde() {
        for status in ExecutionStatus::ALL {
            assert_eq!(ExecutionStatus::parse(status.as_str()), Some(status));
            assert_eq!(serde_json::to_value(status).unwrap(), serde_json::Value::from(status.as_str()));
        }
        assert_eq!(ExecutionStatus::parse("Ran"), None, "names are exact");
        assert!(ExecutionStatus::Ran == "ran" && ExecutionStatus::Error != "ran");
    }

    #[test]
    fn reported_outcomes_of_both_agents() {
        use ResultConvention::{Fleet, Herd};
        let cases = [
            (Herd, Some(0), false, RunOutcome::Ran, Some(0)),
            (Herd, Some(3), false, RunOutcome::Ran, Some(3)),
            (Herd, None, true, RunOutcome::TimedOut, None),
            (Herd, None, false, RunOutcome::Error, None),
            // herd-agent never reports -1 for a timeout: a script's own -1 (Windows) is its exit code.
            (Herd, Some(-1), false, RunOutcome::Ran, Some(-1)),
            (Fleet, Some(0), false, RunOutcome::Ran, Some(0)),
            (Fleet, Some(1), false, RunOutcome::Ran, Some(1)),
            (Fleet, Some(-1), false, RunOutcome::TimedOut, None),
            (Fleet, Some(-2), false, RunOutcome::Refused, None),
            (Fleet, None, false, RunOutcome::Error, None),
        ];
        for (convention, exit_code, timed_out, outcome, kept) in cases {
            assert_eq!(
                reported_outcome(convention, exit_code, timed_out),
                (outcome, kept),
                "{convention:?} {exit_code:?} {timed_out}"
            );
        }
    }
}
