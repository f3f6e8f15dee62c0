//! Prometheus metrics, rendered in the text exposition format at `GET /metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

const LATENCY_BUCKETS_S: [f64; 13] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

#[derive(Default, Clone)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS_S.len()],
    count: u64,
    sum: f64,
}

/// What one background worker has done, for `/metrics` and the logs.
#[derive(Default, Clone, Debug)]
pub struct WorkerStats {
    pub runs: u64,
    pub errors: u64,
    pub last_run_unix_s: f64,
    pub last_error: Option<String>,
}

#[derive(Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, String, u16), u64>>,
    latency: Mutex<BTreeMap<String, Histogram>>,
    workers: Mutex<BTreeMap<&'static str, WorkerStats>>,
    pub checkins: AtomicU64,
    pub checkins_with_work: AtomicU64,
    pub distributed_writes: AtomicU64,
    pub enrollments: AtomicU64,
    pub failed_enrollments: AtomicU64,
    pub status_log_lines: AtomicU64,
    pub result_log_lines: AtomicU64,
    /// Result-log batches refused because their host was over its budget.
    pub result_log_refused_batches: AtomicU64,
}

/// Gauges read at scrape time.
pub struct Gauges {
    pub hosts_enrolled: i64,
    pub hosts_online: i64,
    pub hosts_cached: usize,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn escape_label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

impl Metrics {
    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        *lock(&self.requests).entry((route.to_string(), method.to_string(), status)).or_default() += 1;
        let mut latency = lock(&self.latency);
        let histogram = latency.entry(route.to_string()).or_default();
        for (i, bound) in LATENCY_BUCKETS_S.iter().enumerate() {
            if seconds <= *bound {
                histogram.buckets[i] += 1;
            }
        }
        histogram.count += 1;
        histogram.sum += seconds;
    }

    pub fn worker_ran(&self, worker: &'static str, result: Result<(), String>) {
        let mut workers = lock(&self.workers);
        let stats = workers.entry(worker).or_default();
        stats.runs += 1;
        stats.last_run_unix_s =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
        if let Err(err) = result {
            stats.errors += 1;
            stats.last_error = Some(err);
        }
    }

    pub fn worker_stats(&self) -> BTreeMap<&'static str, WorkerStats> {
        lock(&self.workers).clone()
    }

    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::new();
        let counter = |out: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}");
        };
        let gauge = |out: &mut String, name: &str, help: &str, value: i64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}");
        };
        out.push_str("# HELP herd_http_requests_total HTTP requests by route, method and status.\n");
        out.push_str("# TYPE herd_http_requests_total counter\n");
        for ((route, method, status), count) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "herd_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {count}",
                escape_label(route)
            );
        }
        out.push_str("# HELP herd_http_request_duration_seconds Time to answer HTTP requests, by route.\n");
        out.push_str("# TYPE herd_http_request_duration_seconds histogram\n");
        for (route, h) in lock(&self.latency).iter() {
            let route = escape_label(route);
            for (bound, count) in LATENCY_BUCKETS_S.iter().zip(h.buckets.iter()) {
                let _ = writeln!(
                    out,
                    "herd_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ =
                writeln!(out, "herd_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}", h.count);
            let _ = writeln!(out, "herd_http_request_duration_seconds_sum{{route=\"{route}\"}} {}", h.sum);
            let _ = writeln!(out, "herd_http_request_duration_seconds_count{{route=\"{route}\"}} {}", h.count);
        }
        gauge(&mut out, "herd_hosts_enrolled", "Hosts enrolled.", gauges.hosts_enrolled);
        gauge(&mut out, "herd_hosts_online", "Hosts seen within their check-in interval.", gauges.hosts_online);
        gauge(&mut out, "herd_hosts_cached", "Hosts in this server's check-in cache.", gauges.hosts_cached as i64);
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        counter(&mut out, "herd_checkins_total", "osquery distributed/read check-ins.", load(&self.checkins));
        counter(
            &mut out,
            "herd_checkins_with_work_total",
            "Check-ins that were handed queries.",
            load(&self.checkins_with_work),
        );
        counter(
            &mut out,
            "herd_distributed_writes_total",
            "osquery distributed/write reports.",
            load(&self.distributed_writes),
        );
        counter(&mut out, "herd_enrollments_total", "Successful enrollments.", load(&self.enrollments));
        counter(&mut out, "herd_failed_enrollments_total", "Enrollments refused.", load(&self.failed_enrollments));
        counter(
            &mut out,
            "herd_status_log_lines_total",
            "osquery status log lines kept.",
            load(&self.status_log_lines),
        );
        counter(
            &mut out,
            "herd_result_log_lines_total",
            "osquery result log lines written.",
            load(&self.result_log_lines),
        );
        counter(
            &mut out,
            "herd_result_log_refused_batches_total",
            "osquery result log batches refused: the host was over its hourly budget.",
            load(&self.result_log_refused_batches),
        );
        out.push_str("# HELP herd_worker_runs_total Background worker runs.\n# TYPE herd_worker_runs_total counter\n");
        let workers = lock(&self.workers);
        for (name, stats) in workers.iter() {
            let _ = writeln!(out, "herd_worker_runs_total{{worker=\"{name}\"}} {}", stats.runs);
        }
        out.push_str("# HELP herd_worker_errors_total Background worker runs that failed.\n# TYPE herd_worker_errors_total counter\n");
        for (name, stats) in workers.iter() {
            let _ = writeln!(out, "herd_worker_errors_total{{worker=\"{name}\"}} {}", stats.errors);
        }
        out.push_str("# HELP herd_worker_last_run_timestamp_seconds When each worker last ran.\n# TYPE herd_worker_last_run_timestamp_seconds gauge\n");
        for (name, stats) in workers.iter() {
            let _ =
                writeln!(out, "herd_worker_last_run_timestamp_seconds{{worker=\"{name}\"}} {}", stats.last_run_unix_s);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_histograms() {
        let metrics = Metrics::default();
        metrics.observe_request("/api/osquery/distributed/read", "POST", 200, 0.002);
        metrics.observe_request("/api/osquery/distributed/read", "POST", 200, 3.0);
        metrics.worker_ran("seen_time_flusher", Err("db down".into()));
        let text = metrics.render(&Gauges { hosts_enrolled: 3, hosts_online: 2, hosts_cached: 1 });
        assert!(text.contains(
            "herd_http_requests_total{route=\"/api/osquery/distributed/read\",method=\"POST\",status=\"200\"} 2"
        ));
        assert!(text.contains(
            "herd_http_request_duration_seconds_bucket{route=\"/api/osquery/distributed/read\",le=\"0.0025\"} 1"
        ));
        assert!(text.contains(
            "herd_http_request_duration_seconds_bucket{route=\"/api/osquery/distributed/read\",le=\"+Inf\"} 2"
        ));
        assert!(text.contains("herd_hosts_enrolled 3"));
        assert!(text.contains("herd_worker_errors_total{worker=\"seen_time_flusher\"} 1"));
    }
}
