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
}
