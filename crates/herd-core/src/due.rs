//! What a host must do at this check-in. Computed from in-memory state on every distributed/read, so it must
//! stay cheap and must not need the database.

use crate::jitter::stable_jitter_ms;
use crate::vitals::Vital;
use crate::{MINUTE_MS, Millis};

/// How long after handing out queries the server waits for their results before handing them out again.
/// Stops a host that polls every few seconds (accelerated) from getting the same queries on every poll.
pub const RESULTS_AWAITED_MS: Millis = 2 * MINUTE_MS;

/// `accelerate` seconds sent to hosts that have not reported vitals yet, so a new host fills in quickly.
pub const NEW_HOST_ACCELERATE_S: u32 = 60;

/// What the server remembers about a host between check-ins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckinState {
    pub host_id: i64,
    /// When vitals were last ingested; None before the first report.
    pub vitals_updated_at: Option<Millis>,
    pub refetch_requested: bool,
    /// Set when vitals were handed out and results are awaited (in memory only).
    pub vitals_sent_at: Option<Millis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueSettings {
    pub vitals_interval_ms: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DueWork {
    pub vitals: Vec<Vital>,
    pub accelerate_s: Option<u32>,
}

impl DueWork {
    pub fn is_empty(&self) -> bool {
        self.vitals.is_empty() && self.accelerate_s.is_none()
    }
}

pub fn vitals_due(state: &CheckinState, settings: &DueSettings, now: Millis) -> bool {
    let awaiting = state
        .vitals_sent_at
        .is_some_and(|sent| now - sent < RESULTS_AWAITED_MS);
    if awaiting {
        return false;
    }
    if state.refetch_requested {
        return true;
    }
    match state.vitals_updated_at {
        None => true,
        Some(updated) => {
            let interval = settings.vitals_interval_ms;
            now >= updated + interval + stable_jitter_ms(state.host_id, "vitals", interval)
        }
    }
}

pub fn due_work(state: &CheckinState, settings: &DueSettings, now: Millis) -> DueWork {
    let vitals = if vitals_due(state, settings, now) {
        Vital::ALL.to_vec()
    } else {
        Vec::new()
    };
    let accelerate_s =
        (state.vitals_updated_at.is_none() && !vitals.is_empty()).then_some(NEW_HOST_ACCELERATE_S);
    DueWork {
        vitals,
        accelerate_s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HOUR_MS;

    const SETTINGS: DueSettings = DueSettings {
        vitals_interval_ms: HOUR_MS,
    };

    fn state(updated: Option<Millis>, refetch: bool, sent: Option<Millis>) -> CheckinState {
        CheckinState {
            host_id: 42,
            vitals_updated_at: updated,
            refetch_requested: refetch,
            vitals_sent_at: sent,
        }
    }

    #[test]
    fn vitals_due_table() {
        let now = 1_000 * HOUR_MS;
        let jitter = stable_jitter_ms(42, "vitals", HOUR_MS);
        let cases: &[(&str, CheckinState, bool)] = &[
            ("never reported", state(None, false, None), true),
            (
                "fresh",
                state(Some(now - 10 * MINUTE_MS), false, None),
                false,
            ),
            (
                "just before interval + jitter",
                state(Some(now - HOUR_MS - jitter + 1), false, None),
                false,
            ),
            (
                "at interval + jitter",
                state(Some(now - HOUR_MS - jitter), false, None),
                true,
            ),
            (
                "refetch overrides freshness",
                state(Some(now - MINUTE_MS), true, None),
                true,
            ),
            (
                "sent a minute ago, awaiting",
                state(None, true, Some(now - MINUTE_MS)),
                false,
            ),
            (
                "sent long ago, results lost",
                state(None, false, Some(now - 3 * MINUTE_MS)),
                true,
            ),
        ];
        for (what, s, want) in cases {
            assert_eq!(vitals_due(s, &SETTINGS, now), *want, "{what}");
        }
    }

    #[test]
    fn new_hosts_are_accelerated() {
        let now = 1_000 * HOUR_MS;
        let work = due_work(&state(None, false, None), &SETTINGS, now);
        assert_eq!(work.vitals.len(), Vital::ALL.len());
        assert_eq!(work.accelerate_s, Some(NEW_HOST_ACCELERATE_S));
        let known = due_work(&state(Some(now - 2 * HOUR_MS), false, None), &SETTINGS, now);
        assert_eq!(known.accelerate_s, None);
        assert!(!known.is_empty());
        assert!(due_work(&state(Some(now), false, None), &SETTINGS, now).is_empty());
    }
}
