//! What a run measures: latency per endpoint, errors by kind, a per-second timeline.

use crate::net::ErrorKind;
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The requests herd-perf makes, each measured on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Endpoint {
    Enroll,
    Config,
    DistributedRead,
    DistributedWrite,
    /// The cheapest request the server answers (`/livez`): the HTTP + TLS floor.
    Floor,
}

impl Endpoint {
    pub const ALL: [Endpoint; 5] =
        [Endpoint::Enroll, Endpoint::Config, Endpoint::DistributedRead, Endpoint::DistributedWrite, Endpoint::Floor];

    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Enroll => "enroll",
            Endpoint::Config => "config",
            Endpoint::DistributedRead => "distributed_read",
            Endpoint::DistributedWrite => "distributed_write",
            Endpoint::Floor => "floor",
        }
    }
}

struct PerEndpoint {
    latency_us: Histogram<u64>,
    errors: BTreeMap<String, u64>,
}

impl PerEndpoint {
    fn new() -> PerEndpoint {
        // 1 µs to 10 min at 3 significant digits.
        PerEndpoint {
            latency_us: Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds"),
            errors: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Second {
    /// Seconds since the run started.
    pub t: u64,
    pub ok: u64,
    pub errors: u64,
    /// Successful distributed reads (check-ins) in that second.
    pub checkins: u64,
}

pub struct Stats {
    started: Instant,
    endpoints: Mutex<BTreeMap<Endpoint, PerEndpoint>>,
    timeline: Mutex<Vec<Second>>,
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    pub enrolled: AtomicU64,
    /// Enrollments the server refused for now (429: it was behind); the host came back later.
    pub enroll_deferred: AtomicU64,
    /// When the latest enrollment succeeded (ms into the run).
    last_enrolled_ms: AtomicU64,
}

impl Stats {
    pub fn new() -> Stats {
        Stats {
            started: Instant::now(),
            endpoints: Mutex::new(Endpoint::ALL.into_iter().map(|e| (e, PerEndpoint::new())).collect()),
            timeline: Mutex::new(Vec::new()),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            enrolled: AtomicU64::new(0),
            enroll_deferred: AtomicU64::new(0),
            last_enrolled_ms: AtomicU64::new(0),
        }
    }

    /// A host enrolled now.
    pub fn host_enrolled(&self) {
        self.enrolled.fetch_add(1, Ordering::Relaxed);
        self.last_enrolled_ms.fetch_max(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Seconds into the run when the latest host enrolled.
    pub fn last_enrolled_at_s(&self) -> f64 {
        self.last_enrolled_ms.load(Ordering::Relaxed) as f64 / 1000.0
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn second(&self, update: impl FnOnce(&mut Second)) {
        let t = self.started.elapsed().as_secs();
        let mut timeline = self.timeline.lock().unwrap_or_else(|e| e.into_inner());
        while timeline.len() as u64 <= t {
            let next = timeline.len() as u64;
            timeline.push(Second { t: next, ..Default::default() });
        }
        update(&mut timeline[t as usize]);
    }

    pub fn ok(&self, endpoint: Endpoint, took: Duration) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let micros = (took.as_micros() as u64).clamp(1, 600_000_000);
        if let Some(e) = self.endpoints.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&endpoint) {
            let _ = e.latency_us.record(micros);
        }
        self.second(|s| {
            s.ok += 1;
            if endpoint == Endpoint::DistributedRead {
                s.checkins += 1;
            }
        });
    }

    pub fn error(&self, endpoint: Endpoint, kind: &ErrorKind) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.errors.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = self.endpoints.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&endpoint) {
            *e.errors.entry(kind.to_string()).or_default() += 1;
        }
        self.second(|s| s.errors += 1);
    }

    pub fn count(&self, endpoint: Endpoint) -> u64 {
        self.endpoints.lock().unwrap_or_else(|e| e.into_inner()).get(&endpoint).map_or(0, |e| e.latency_us.len())
    }

    pub fn timeline(&self) -> Vec<Second> {
        self.timeline.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Every endpoint's latencies and errors so far, to summarise a window of the run later.
    pub fn snapshot(&self) -> Snapshot {
        let endpoints = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        Snapshot(endpoints.iter().map(|(k, e)| (*k, (e.latency_us.clone(), e.errors.clone()))).collect())
    }

    /// The summary of each endpoint that saw traffic over the whole run; rates over `seconds`.
    pub fn summary(&self, seconds: f64) -> Vec<EndpointSummary> {
        self.snapshot().summary(seconds)
    }
}

/// Latencies and errors per endpoint at one moment.
#[derive(Clone)]
pub struct Snapshot(BTreeMap<Endpoint, (Histogram<u64>, BTreeMap<String, u64>)>);

impl Snapshot {
    /// What happened between `earlier` and this snapshot.
    pub fn since(&self, earlier: &Snapshot) -> Snapshot {
        let mut window = self.clone();
        for (endpoint, (latency, errors)) in &mut window.0 {
            if let Some((before, errors_before)) = earlier.0.get(endpoint) {
                let _ = latency.subtract(before);
                for (kind, n) in errors.iter_mut() {
                    *n -= errors_before.get(kind).copied().unwrap_or(0);
                }
                errors.retain(|_, n| *n > 0);
            }
        }
        window
    }

    pub fn summary(&self, seconds: f64) -> Vec<EndpointSummary> {
        self.0
            .iter()
            .map(|(endpoint, (latency_us, errors))| {
                (endpoint, PerEndpoint { latency_us: latency_us.clone(), errors: errors.clone() })
            })
            .filter(|(_, e)| !e.latency_us.is_empty() || !e.errors.is_empty())
            .map(|(endpoint, e)| {
                let h = &e.latency_us;
                let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
                EndpointSummary {
                    endpoint: endpoint.name(),
                    ok: h.len(),
                    errors: e.errors.values().sum(),
                    errors_by_kind: e.errors.clone(),
                    per_second: h.len() as f64 / seconds.max(0.001),
                    p50_ms: ms(0.50),
                    p90_ms: ms(0.90),
                    p99_ms: ms(0.99),
                    max_ms: h.max() as f64 / 1000.0,
                }
            })
            .collect()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EndpointSummary {
    pub endpoint: &'static str,
    pub ok: u64,
    pub errors: u64,
    pub errors_by_kind: BTreeMap<String, u64>,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// CPU time and memory of a process, from /proc.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct ProcSample {
    pub cpu_seconds: f64,
    pub rss_kib: u64,
    pub peak_rss_kib: u64,
}

pub fn proc_sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name (state is field 3).
    let (utime, stime) = (ticks(11)?, ticks(12)?);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Some(ProcSample { cpu_seconds: (utime + stime) as f64 / hz, rss_kib: kib("VmRSS:"), peak_rss_kib: kib("VmHWM:") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let sample = proc_sample(std::process::id()).expect("/proc/self");
        assert!(sample.rss_kib > 0 && sample.peak_rss_kib >= sample.rss_kib);
        // Burn CPU until /proc shows it (ticks are 10 ms; a loaded machine may give this thread little time).
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut x = 0u64;
        while proc_sample(std::process::id()).unwrap().cpu_seconds <= 0.0 {
            assert!(Instant::now() < deadline, "no CPU time ever showed in /proc");
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_add(i));
            }
        }
    }

    #[test]
    fn summarises_latency_and_errors() {
        let stats = Stats::new();
        for ms in 1..=100 {
            stats.ok(Endpoint::DistributedRead, Duration::from_millis(ms));
        }
        stats.error(Endpoint::DistributedRead, &ErrorKind::Status(500));
        let summary = stats.summary(10.0);
        assert_eq!(summary.len(), 1);
        let read = &summary[0];
        assert_eq!((read.ok, read.errors), (100, 1));
        assert!((read.p50_ms - 50.0).abs() < 0.5 && (read.p99_ms - 99.0).abs() < 0.5, "{read:?}");
        assert_eq!(read.errors_by_kind["http_500"], 1);
        assert_eq!(stats.timeline().iter().map(|s| s.checkins).sum::<u64>(), 100);
    }
}
