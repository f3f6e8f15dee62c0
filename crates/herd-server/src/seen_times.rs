//! Last-seen times, gathered in memory on every check-in and written to the store in batches, so a check-in
//! with nothing due costs no database write.

use herd_core::Millis;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Default)]
pub struct SeenTimes {
    pending: Mutex<HashMap<i64, Millis>>,
}

impl SeenTimes {
    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Millis>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn record(&self, host_id: i64, now: Millis) {
        let mut pending = self.pending();
        let at = pending.entry(host_id).or_insert(now);
        *at = (*at).max(now);
    }

    /// The unflushed time of a host, to show a fresher seen_time than the database has.
    pub fn get(&self, host_id: i64) -> Option<Millis> {
        self.pending().get(&host_id).copied()
    }

    pub fn forget(&self, host_id: i64) {
        self.pending().remove(&host_id);
    }

    /// Takes every pending time; on a failed write the caller puts them back with [`SeenTimes::restore`].
    pub fn take(&self) -> Vec<(i64, Millis)> {
        self.pending().drain().collect()
    }

    pub fn restore(&self, times: Vec<(i64, Millis)>) {
        for (host, at) in times {
            self.record(host, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_latest_and_restores_after_failure() {
        let seen = SeenTimes::default();
        seen.record(1, 10);
        seen.record(1, 5);
        seen.record(2, 7);
        assert_eq!(seen.get(1), Some(10));
        let mut taken = seen.take();
        taken.sort();
        assert_eq!(taken, vec![(1, 10), (2, 7)]);
        assert_eq!(seen.get(1), None);
        seen.record(1, 12);
        seen.restore(taken);
        assert_eq!(seen.get(1), Some(12), "a newer time survives a restore");
        assert_eq!(seen.get(2), Some(7));
        seen.forget(2);
        assert_eq!(seen.get(2), None);
    }
}
