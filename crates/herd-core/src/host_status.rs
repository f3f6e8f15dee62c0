//! A host's status from when it was last seen, judged against the intervals it actually runs with.

use crate::{DAY_MS, Millis, SECOND_MS};
use serde::{Deserialize, Serialize};

/// Grace added to a host's own check-in interval before it counts as offline (Fleet uses the same minute).
pub const ONLINE_GRACE_MS: Millis = 60 * SECOND_MS;
/// Offline for longer than this: missing.
pub const MISSING_AFTER_MS: Millis = 30 * DAY_MS;
/// Enrolled within this: new (a filter that overlaps the others, as in Fleet).
pub const NEW_WITHIN_MS: Millis = DAY_MS;
/// Check-in interval assumed until the host has reported its flags (osquery's own default).
pub const DEFAULT_CHECKIN_INTERVAL_S: i64 = 60;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HostStatus {
    Online,
    Offline,
    Missing,
}

/// Status filters accepted by host listings. `New` is orthogonal to the three statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Online,
    Offline,
    Missing,
    New,
}

impl StatusFilter {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "online" => Some(Self::Online),
            "offline" => Some(Self::Offline),
            "missing" => Some(Self::Missing),
            "new" => Some(Self::New),
            _ => None,
        }
    }
}

impl HostStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Offline => "offline",
            Self::Missing => "missing",
        }
    }
}

/// How long a host may stay silent and still be online: the longer of its distributed and config intervals
/// (each in seconds, as osquery's flags report them) plus [`ONLINE_GRACE_MS`].
pub fn online_window_ms(distributed_interval_s: Option<i64>, config_refresh_s: Option<i64>) -> Millis {
    let distributed = distributed_interval_s.filter(|s| *s > 0).unwrap_or(DEFAULT_CHECKIN_INTERVAL_S);
    let config = config_refresh_s.filter(|s| *s > 0).unwrap_or(0);
    distributed.max(config) * SECOND_MS + ONLINE_GRACE_MS
}

pub fn host_status(
    seen_time: Option<Millis>,
    distributed_interval_s: Option<i64>,
    config_refresh_s: Option<i64>,
    now: Millis,
) -> HostStatus {
    let Some(seen) = seen_time else {
        return HostStatus::Offline;
    };
    let silent_for = now - seen;
    if silent_for <= online_window_ms(distributed_interval_s, config_refresh_s) {
        HostStatus::Online
    } else if silent_for > MISSING_AFTER_MS {
        HostStatus::Missing
    } else {
        HostStatus::Offline
    }
}

pub fn is_new(created_at: Millis, now: Millis) -> bool {
    now - created_at <= NEW_WITHIN_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        let now = 100 * DAY_MS;
        type Case = (Option<Millis>, Option<i64>, Option<i64>, HostStatus);
        let cases: &[Case] = &[
            (Some(now), Some(10), Some(60), HostStatus::Online),
            (Some(now - 119_000), Some(10), Some(60), HostStatus::Online),
            (Some(now - 121_000), Some(10), Some(60), HostStatus::Offline),
            (Some(now - 70_000), Some(10), Some(10), HostStatus::Online),
            (Some(now - 71_000), Some(10), Some(10), HostStatus::Offline),
            // Unknown flags: osquery's default of 60 s.
            (Some(now - 119_000), None, None, HostStatus::Online),
            (Some(now - 121_000), None, None, HostStatus::Offline),
            (Some(now - 30 * DAY_MS), Some(10), None, HostStatus::Offline),
            (Some(now - 31 * DAY_MS), Some(10), None, HostStatus::Missing),
            (None, Some(10), None, HostStatus::Offline),
        ];
        for (seen, distributed, config, want) in cases {
            assert_eq!(host_status(*seen, *distributed, *config, now), *want, "{seen:?} {distributed:?} {config:?}");
        }
    }

    #[test]
    fn new_hosts() {
        assert!(is_new(0, DAY_MS));
        assert!(!is_new(0, DAY_MS + 1));
    }

    #[test]
    fn filters_parse() {
        assert_eq!(StatusFilter::parse("new"), Some(StatusFilter::New));
        assert_eq!(StatusFilter::parse("gone"), None);
    }
}
