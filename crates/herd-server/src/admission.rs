//! Enrollment admission: when the server falls behind, new hosts wait so that enrolled hosts do not.
//!
//! A new host costs the server one to two milliseconds of CPU (the enrollment, then a first report of
//! vitals and every policy's answer) against tens of microseconds for a check-in with nothing due. A fleet
//! enrolling faster than that (a migration moving every host within minutes) used to queue everything
//! behind it: at 1,250 enrollments a second on a 2-core machine, the check-ins of hosts already enrolled
//! waited 87 s (p99), though the server enrolled no faster for it.
//!
//! A new host loses nothing by coming back a little later: osqueryd retries its enrollment (1, 4, 9 … s
//! apart), herd-agent backs off and honours `Retry-After`. So while the server is behind, an enrollment is
//! refused with 429 and a `Retry-After` of a few seconds, spread so the refused do not return together,
//! before any work is done for it. Reports and check-ins are never refused here: they carry data, and
//! they are what enrolled hosts need answered.
//!
//! "Behind" is measured, not configured as a rate (which would be wrong on every other machine): how late
//! a probe task wakes on the async runtime, which is the queue every request waits in, CPU starvation
//! included, past the lag limit; or how long enrollments and reports take to be written, past
//! [`WRITE_LIMIT_FACTOR`] times that limit (a write committed in a group waits for the batch before it, so
//! a healthy write takes longer than a healthy wake; on SQLite the writer is one thread, busy while the
//! runtime idles). Once behind, enrollments stay refused for [`HOLD`] after the last sign of it, so
//! admission does not flap at the probe's period and the first reports of hosts just admitted get through.

use crate::state::SharedState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the probe measures the runtime's lag.
const PROBE_PERIOD: Duration = Duration::from_millis(10);
/// How long enrollments stay refused after the last sign of overload.
pub const HOLD: Duration = Duration::from_millis(500);
/// An enrollment or report taking longer than this many lag limits to be written is behind.
pub const WRITE_LIMIT_FACTOR: u32 = 4;
/// Refused enrollments are told to come back within this many seconds (at least the lower bound), spread
/// at random so they do not return at once.
const RETRY_AFTER_S: (u64, u64) = (2, 9);

/// Decides whether an enrollment may start now; fed by [`run_probe`].
pub struct EnrollmentGate {
    /// Runtime lag beyond which the server is behind; None: never refuse.
    lag_limit: Option<Duration>,
    started: Instant,
    /// Enrollments are refused until this time (µs since `started`).
    refuse_until_us: AtomicU64,
    /// The latest lag measured (µs), for `/metrics`.
    last_lag_us: AtomicU64,
    /// Enrollments refused so far.
    deferred: AtomicU64,
}

/// An enrollment refused for now: come back after `retry_after_s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deferred {
    pub retry_after_s: u64,
}

impl std::fmt::Display for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the server is busy (hosts are enrolling faster than it can take them); enroll again later")
    }
}

impl EnrollmentGate {
    pub fn new(lag_limit: Option<Duration>) -> EnrollmentGate {
        EnrollmentGate {
            lag_limit,
            started: Instant::now(),
            refuse_until_us: AtomicU64::new(0),
            last_lag_us: AtomicU64::new(0),
            deferred: AtomicU64::new(0),
        }
    }

    fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_micros() as u64
    }

    /// One measurement: how late the probe woke (`lag`) and the slowest enrollment or report written since
    /// the previous one.
    pub fn observe(&self, lag: Duration, slowest_write: Duration, now: Instant) {
        self.last_lag_us.store(lag.as_micros() as u64, Ordering::Relaxed);
        let Some(limit) = self.lag_limit else { return };
        if lag > limit || slowest_write > limit * WRITE_LIMIT_FACTOR {
            self.refuse_until_us.fetch_max(self.micros(now + HOLD), Ordering::Relaxed);
        }
    }

    /// Whether an enrollment may start at `now`.
    pub fn admit(&self, now: Instant) -> Result<(), Deferred> {
        if self.micros(now) >= self.refuse_until_us.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.deferred.fetch_add(1, Ordering::Relaxed);
        let (least, most) = RETRY_AFTER_S;
        let mut random = [0u8; 1];
        // Without randomness the spread is lost, not the refusal's meaning.
        let _ = getrandom::fill(&mut random);
        Err(Deferred { retry_after_s: least + u64::from(random[0]) % (most - least + 1) })
    }

    /// Enrollments refused so far.
    pub fn deferred(&self) -> u64 {
        self.deferred.load(Ordering::Relaxed)
    }

    /// The latest runtime lag measured.
    pub fn last_lag(&self) -> Duration {
        Duration::from_micros(self.last_lag_us.load(Ordering::Relaxed))
    }
}

/// Measures the runtime's lag every [`PROBE_PERIOD`] (how much later than asked a sleeping task wakes)
/// and the slowest write the store finished meanwhile, until shutdown.
pub async fn run_probe(state: SharedState, mut shutdown: watch::Receiver<bool>) {
    loop {
        let asleep = Instant::now();
        tokio::select! {
            _ = tokio::time::sleep(PROBE_PERIOD) => {}
            _ = shutdown.changed() => return,
        }
        let now = Instant::now();
        let lag = now.saturating_duration_since(asleep).saturating_sub(PROBE_PERIOD);
        state.enrollment_gate.observe(lag, state.store.take_slowest_hot_write(), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_millis(50);

    #[test]
    fn admits_while_the_server_keeps_up() {
        let gate = EnrollmentGate::new(Some(LIMIT));
        let now = Instant::now();
        gate.observe(Duration::from_millis(3), LIMIT * WRITE_LIMIT_FACTOR, now);
        assert_eq!(gate.admit(now), Ok(()));
        assert_eq!(gate.deferred(), 0);
    }

    #[test]
    fn refuses_for_a_while_after_the_runtime_lags() {
        let gate = EnrollmentGate::new(Some(LIMIT));
        let now = Instant::now();
        gate.observe(Duration::from_millis(80), Duration::ZERO, now);
        let refused = gate.admit(now + Duration::from_millis(100)).unwrap_err();
        assert!((RETRY_AFTER_S.0..=RETRY_AFTER_S.1).contains(&refused.retry_after_s), "{refused:?}");
        // A measurement within the limit does not lift the refusal before HOLD has passed...
        gate.observe(Duration::from_millis(1), Duration::ZERO, now + Duration::from_millis(200));
        assert!(gate.admit(now + HOLD - Duration::from_millis(1)).is_err());
        // ...and after it, with no new sign of overload, enrollments are admitted again.
        assert_eq!(gate.admit(now + HOLD), Ok(()));
        assert_eq!(gate.deferred(), 2);
        assert_eq!(gate.last_lag(), Duration::from_millis(1));
    }

    #[test]
    fn refuses_while_writes_are_slow() {
        let gate = EnrollmentGate::new(Some(LIMIT));
        let now = Instant::now();
        gate.observe(Duration::ZERO, LIMIT * WRITE_LIMIT_FACTOR + Duration::from_millis(1), now);
        assert!(gate.admit(now).is_err());
    }

    #[test]
    fn refused_hosts_are_told_different_times_to_come_back() {
        let gate = EnrollmentGate::new(Some(LIMIT));
        let now = Instant::now();
        gate.observe(Duration::from_secs(1), Duration::ZERO, now);
        let times: std::collections::BTreeSet<u64> =
            (0..200).map(|_| gate.admit(now).unwrap_err().retry_after_s).collect();
        assert!(times.len() > 1, "{times:?}");
        assert!(times.iter().all(|s| (RETRY_AFTER_S.0..=RETRY_AFTER_S.1).contains(s)), "{times:?}");
    }

    #[test]
    fn switched_off_it_never_refuses() {
        let gate = EnrollmentGate::new(None);
        let now = Instant::now();
        gate.observe(Duration::from_secs(5), Duration::from_secs(5), now);
        assert_eq!(gate.admit(now), Ok(()));
        assert_eq!(gate.last_lag(), Duration::from_secs(5), "still measured, for /metrics");
    }
}
