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
//! included, past the lag limit; or how long enrollments and reports wait to start (for a database
//! connection, or for the SQLite group commit to take them), past [`WRITE_LIMIT_FACTOR`] times that limit
//! (a write committed in a group waits for the batch before it, so a healthy write waits longer than a
//! healthy wake; on SQLite the writer is one thread, busy while the runtime idles). Waiting, not a
//! transaction's own time: a distant database makes every transaction slow without being behind. Once
//! behind, enrollments stay refused for [`HOLD`] after the last sign of it, so admission does not flap at the
//! probe's period and the first reports of hosts just admitted get through. Even then one enrollment every
//! [`TRICKLE`] is let through, so a server that stays behind (or a signal that misjudges it) still enrolls
//! hosts, slowly, instead of refusing every one for good.

use crate::state::SharedState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the probe measures the runtime's lag.
const PROBE_PERIOD: Duration = Duration::from_millis(10);
/// How long enrollments stay refused after the last sign of overload.
pub const HOLD: Duration = Duration::from_millis(500);
/// An enrollment or report waiting longer than this many lag limits to start is behind.
pub const WRITE_LIMIT_FACTOR: u32 = 4;
/// While refusing, one enrollment is still admitted every this long (20 a second).
pub const TRICKLE: Duration = Duration::from_millis(50);
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
    /// While refusing, the next enrollment let through is admitted at or after this time (µs since
    /// `started`).
    next_trickle_us: AtomicU64,
    /// The longest lag and write wait measured since `/metrics` last asked (µs).
    max_lag_us: AtomicU64,
    max_write_wait_us: AtomicU64,
    /// Enrollments refused so far.
    deferred: AtomicU64,
}

/// What the gate measured since the previous look, for `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GateReading {
    pub max_lag: Duration,
    pub max_write_wait: Duration,
    pub refusing: bool,
    pub deferred: u64,
}

/// An enrollment refused for now: come back after `retry_after_s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deferred {
    pub retry_after_s: u64,
}

impl std::fmt::Display for Deferred {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the server is busy (it is behind on its work); enroll again later")
    }
}

impl EnrollmentGate {
    pub fn new(lag_limit: Option<Duration>) -> EnrollmentGate {
        EnrollmentGate {
            lag_limit,
            started: Instant::now(),
            refuse_until_us: AtomicU64::new(0),
            next_trickle_us: AtomicU64::new(0),
            max_lag_us: AtomicU64::new(0),
            max_write_wait_us: AtomicU64::new(0),
            deferred: AtomicU64::new(0),
        }
    }

    fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.started).as_micros() as u64
    }

    /// One measurement: how late the probe woke (`lag`) and the longest an enrollment or report waited to
    /// start since the previous one.
    pub fn observe(&self, lag: Duration, write_wait: Duration, now: Instant) {
        self.max_lag_us.fetch_max(lag.as_micros() as u64, Ordering::Relaxed);
        self.max_write_wait_us.fetch_max(write_wait.as_micros() as u64, Ordering::Relaxed);
        let Some(limit) = self.lag_limit else { return };
        if lag > limit || write_wait > limit * WRITE_LIMIT_FACTOR {
            self.refuse_until_us.fetch_max(self.micros(now + HOLD), Ordering::Relaxed);
        }
    }

    fn refusing(&self, now: Instant) -> bool {
        self.micros(now) < self.refuse_until_us.load(Ordering::Relaxed)
    }

    /// Whether an enrollment may start at `now`.
    pub fn admit(&self, now: Instant) -> Result<(), Deferred> {
        if !self.refusing(now) {
            return Ok(());
        }
        // The trickle: the first to ask once the interval has passed gets in.
        let (at, next) = (self.micros(now), self.micros(now + TRICKLE));
        let due = self.next_trickle_us.load(Ordering::Relaxed);
        if at >= due && self.next_trickle_us.compare_exchange(due, next, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
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

    /// The longest lag and write wait since the previous reading, whether it refuses now, and the refusals
    /// so far (`/metrics`: a scrape sees the spikes between scrapes, not one 10-ms sample).
    pub fn take_reading(&self, now: Instant) -> GateReading {
        GateReading {
            max_lag: Duration::from_micros(self.max_lag_us.swap(0, Ordering::Relaxed)),
            max_write_wait: Duration::from_micros(self.max_write_wait_us.swap(0, Ordering::Relaxed)),
            refusing: self.refusing(now),
            deferred: self.deferred(),
        }
    }
}

/// Measures the runtime's lag every [`PROBE_PERIOD`] (how much later than asked a sleeping task wakes)
/// and the longest a write waited to start meanwhile, until shutdown.
pub async fn run_probe(state: SharedState, mut shutdown: watch::Receiver<bool>) {
    loop {
        let asleep = Instant::now();
        tokio::select! {
            _ = tokio::time::sleep(PROBE_PERIOD) => {}
            _ = shutdown.changed() => return,
        }
        let now = Instant::now();
        let lag = now.saturating_duration_since(asleep).saturating_sub(PROBE_PERIOD);
        state.enrollment_gate.observe(lag, state.store.take_longest_hot_write_wait(), now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_millis(50);

    /// A gate that has just seen the server fall behind at `now`, its trickle spent at `now`.
    fn behind(now: Instant) -> EnrollmentGate {
        let gate = EnrollmentGate::new(Some(LIMIT));
        gate.observe(Duration::from_millis(80), Duration::ZERO, now);
        assert_eq!(gate.admit(now), Ok(()), "the trickle's first");
        gate
    }

    #[test]
    fn admits_while_the_server_keeps_up() {
        let gate = EnrollmentGate::new(Some(LIMIT));
        let now = Instant::now();
        gate.observe(Duration::from_millis(3), LIMIT * WRITE_LIMIT_FACTOR, now);
        assert_eq!(gate.admit(now), Ok(()));
        assert_eq!(gate.deferred(), 0);
        assert!(!gate.take_reading(now).refusing);
    }

    #[test]
    fn refuses_for_a_while_after_the_runtime_lags() {
        let now = Instant::now();
        let gate = behind(now);
        let refused = gate.admit(now + Duration::from_millis(10)).unwrap_err();
        assert!((RETRY_AFTER_S.0..=RETRY_AFTER_S.1).contains(&refused.retry_after_s), "{refused:?}");
        // A measurement within the limit does not lift the refusal before HOLD has passed...
        gate.observe(Duration::from_millis(1), Duration::ZERO, now + Duration::from_millis(20));
        assert!(gate.admit(now + Duration::from_millis(30)).is_err());
        // ...and after it, with no new sign of overload, enrollments are admitted again.
        assert_eq!(gate.admit(now + HOLD), Ok(()));
        assert_eq!(gate.admit(now + HOLD), Ok(()));
        assert_eq!(gate.deferred(), 2);
    }

    #[test]
    fn refuses_while_writes_wait_to_start() {
        let gate = EnrollmentGate::new(Some(LIMIT));
        let now = Instant::now();
        gate.observe(Duration::ZERO, LIMIT * WRITE_LIMIT_FACTOR + Duration::from_millis(1), now);
        assert!(gate.take_reading(now).refusing);
    }

    /// A server that stays behind still enrolls one host per TRICKLE, never more.
    #[test]
    fn while_refusing_one_enrollment_per_trickle_gets_in() {
        let now = Instant::now();
        let gate = behind(now);
        let mut admitted = 0;
        for ms in 0..400 {
            let at = now + Duration::from_millis(ms);
            gate.observe(Duration::from_millis(80), Duration::ZERO, at); // still behind
            admitted += (0..10).filter(|_| gate.admit(at).is_ok()).count();
        }
        assert_eq!(admitted as u128, 400 / TRICKLE.as_millis() - 1, "one per {TRICKLE:?} after the first");
    }

    #[test]
    fn refused_hosts_are_told_different_times_to_come_back() {
        let now = Instant::now();
        let gate = behind(now);
        let times: std::collections::BTreeSet<u64> =
            (0..200).map(|_| gate.admit(now).unwrap_err().retry_after_s).collect();
        assert!(times.len() > 1, "{times:?}");
        assert!(times.iter().all(|s| (RETRY_AFTER_S.0..=RETRY_AFTER_S.1).contains(s)), "{times:?}");
    }

    #[test]
    fn readings_keep_the_spikes_between_two_looks() {
        let gate = EnrollmentGate::new(Some(LIMIT));
        let now = Instant::now();
        gate.observe(Duration::from_millis(30), Duration::from_millis(7), now);
        gate.observe(Duration::from_millis(2), Duration::from_millis(1), now);
        let reading = gate.take_reading(now);
        assert_eq!((reading.max_lag, reading.max_write_wait), (Duration::from_millis(30), Duration::from_millis(7)));
        assert_eq!(gate.take_reading(now).max_lag, Duration::ZERO, "reset by the look");
    }

    #[test]
    fn switched_off_it_never_refuses() {
        let gate = EnrollmentGate::new(None);
        let now = Instant::now();
        gate.observe(Duration::from_secs(5), Duration::from_secs(5), now);
        assert_eq!(gate.admit(now), Ok(()));
        let reading = gate.take_reading(now);
        assert_eq!(reading.max_lag, Duration::from_secs(5), "still measured, for /metrics");
        assert!(!reading.refusing);
    }
}
