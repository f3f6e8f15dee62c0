//! herd-perf: simulated osquery hosts against a herd server, over the real osquery TLS API.

mod check;
mod net;
mod sim;
mod stats;

use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use serde::Serialize;
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Load generator for herd: N simulated hosts, each with its own identity, node key, vitals and policy
/// answers, speaking the osquery TLS API over HTTPS like osqueryd at Fleet's default cadence (distributed read
/// every 10 s, config every 60 s, vitals and policies whenever the server hands them out).
///
/// A run: hosts start staggered over --ramp, run until --duration, then poll the floor endpoint for
/// --floor-seconds (the HTTP + TLS floor, measured with the same client in the same run), then the server's
/// state is checked against what the hosts reported (with admin credentials). Progress every few seconds; at
/// the end a table and, with --json, every figure. Exit status: 0 when the run had no errors and the check
/// found no mismatch, 2 otherwise, 1 when the run could not start.
#[derive(Parser, Debug, Clone, Serialize)]
#[command(version)]
struct Args {
    /// The server, e.g. https://127.0.0.1:8080. Several (repeated, or comma-separated): herd servers on one
    /// database; requests go to each in turn, as through a load balancer without stickiness. The REST side
    /// (policies, the end-of-run check) uses the first.
    #[arg(long = "server", env = "HERD_PERF_SERVER", value_delimiter = ',', required = true)]
    servers: Vec<String>,
    /// An enroll secret of the server.
    #[arg(long, env = "HERD_PERF_ENROLL_SECRET")]
    enroll_secret: String,
    /// PEM certificate to trust (herd's is DATA_DIR/tls/cert.pem).
    #[arg(long, conflicts_with = "insecure")]
    ca_cert: Option<PathBuf>,
    /// Accept any server certificate (throwaway benchmark servers only).
    #[arg(long)]
    insecure: bool,
    /// Simulated hosts.
    #[arg(long, default_value_t = 1000)]
    hosts: u64,
    /// Seconds over which hosts start (evenly spread).
    #[arg(long, default_value_t = 10)]
    ramp: u64,
    /// Seconds from the first host's start to the end of the check-in phase (the ramp included). Default:
    /// the ramp, two check-in intervals, then a 30-second steady window.
    #[arg(long)]
    duration: Option<u64>,
    /// Seconds into the run at which the steady window ends (default: --duration). The steady window starts
    /// two check-in intervals after the ramp; CPU per check-in and the steady latencies are measured in it.
    #[arg(long)]
    steady_until: Option<u64>,
    /// Seconds between a host's distributed reads (osqueryd's distributed_interval; Fleet's default 10).
    #[arg(long, default_value_t = 10)]
    distributed_interval: u64,
    /// Seconds between a host's config requests (Fleet's default 60).
    #[arg(long, default_value_t = 60)]
    config_interval: u64,
    /// Probability that a host passes a policy (stable per host and policy).
    #[arg(long, default_value_t = 0.9)]
    pass_probability: f64,
    /// pooled: --pool-size keep-alive connections shared by all hosts (as behind a load balancer);
    /// per-host: one keep-alive connection per host (as agents connecting directly; needs one file
    /// descriptor per host in this process and in the server).
    #[arg(long, value_enum, default_value_t = ConnectionModel::Pooled)]
    connection_model: ConnectionModel,
    /// Connections of the pooled model (a load balancer keeps a few hundred open to each server).
    #[arg(long, default_value_t = 256)]
    pool_size: usize,
    /// Create global policies `perf policy 0..N` first if missing (needs admin credentials).
    #[arg(long, default_value_t = 0)]
    policies: usize,
    /// Create `perf label 0..N` first if missing: a quarter dynamic (the simulated hosts answer half in),
    /// a quarter manual (empty), half criteria (on the platform, or on failing the first policy); and scope
    /// every fourth policy to a criteria label (needs admin credentials and --policies).
    #[arg(long, default_value_t = 0)]
    labels: usize,
    /// Admin email, for creating policies and checking results at the end.
    #[arg(long, env = "HERD_PERF_ADMIN_EMAIL")]
    admin_email: Option<String>,
    /// Admin password.
    #[arg(long, env = "HERD_PERF_ADMIN_PASSWORD", hide_env_values = true)]
    #[serde(skip)]
    admin_password: Option<String>,
    /// Hosts whose stored results are compared one by one at the end (policy counts are always compared whole).
    #[arg(long, default_value_t = 50)]
    check_sample: usize,
    /// Seconds of the floor phase (0: skip it).
    #[arg(long, default_value_t = 5)]
    floor_seconds: u64,
    /// The floor endpoint: the cheapest request the server answers.
    #[arg(long, default_value = "/livez")]
    floor_path: String,
    /// The servers' process ids (repeated or comma-separated), for their CPU seconds and peak RSS (from
    /// /proc; CPU is summed over them).
    #[arg(long = "server-pid", value_delimiter = ',', conflicts_with = "server_pid_file")]
    server_pids: Vec<u32>,
    /// A file holding the server's process id, read at every sample (follows a server that restarts).
    #[arg(long)]
    server_pid_file: Option<PathBuf>,
    /// Seconds between progress lines.
    #[arg(long, default_value_t = 5)]
    progress_every: u64,
    /// Write every figure as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Host names are PREFIX-NNNNNN and identities derive from it: the same prefix is the same fleet.
    #[arg(long, default_value = "perf")]
    prefix: String,
    /// A burst: create a new global policy this many seconds into the run, then time how long until every
    /// enrolled host's answer to it is counted (needs the admin credentials).
    #[arg(long)]
    new_policy_at: Option<u64>,
    /// Seconds before a request counts as timed out.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
enum ConnectionModel {
    Pooled,
    PerHost,
}

/// Server CPU over a window of the run, and what it served.
#[derive(Debug, Clone, Default, Serialize)]
struct Window {
    seconds: f64,
    /// Latencies and errors of the window alone.
    endpoints: Vec<stats::EndpointSummary>,
    requests: u64,
    checkins: u64,
    server_cpu_seconds: Option<f64>,
    server_cpu_us_per_request: Option<f64>,
    server_cpu_us_per_checkin: Option<f64>,
    client_cpu_seconds: Option<f64>,
}

struct Mark {
    at: Instant,
    snapshot: stats::Snapshot,
    requests: u64,
    checkins: u64,
    server_cpu: Option<f64>,
    client_cpu: Option<f64>,
}

impl Args {
    /// The run's length in seconds (see `--duration`).
    fn duration(&self) -> u64 {
        self.duration.unwrap_or(self.steady_from() + 30)
    }

    /// Seconds into the run at which the steady window starts: two check-in intervals after the ramp, when
    /// every host's first reports are done.
    fn steady_from(&self) -> u64 {
        self.ramp + 2 * self.distributed_interval
    }

    /// Seconds into the run at which the steady window ends.
    fn steady_until(&self) -> u64 {
        self.steady_until.unwrap_or(self.duration()).min(self.duration())
    }

    /// Every figure but a burst's is measured in the steady window: a run without one would measure nothing,
    /// so it is refused before any host starts.
    fn refuse_an_empty_steady_window(&self) -> anyhow::Result<()> {
        if self.steady_until() <= self.steady_from() {
            bail!(
                "no steady window: it starts {from} s into the run (--ramp {ramp} plus two --distributed-interval \
                 {interval}) and --duration/--steady-until end it at {until} s; give --duration above {from} (the \
                 default, {default} s, measures 30 s)",
                from = self.steady_from(),
                ramp = self.ramp,
                interval = self.distributed_interval,
                until = self.steady_until(),
                default = self.steady_from() + 30,
            );
        }
        Ok(())
    }
}

fn server_pids(args: &Args) -> Vec<u32> {
    match &args.server_pid_file {
        Some(path) => std::fs::read_to_string(path).ok().and_then(|t| t.trim().parse().ok()).into_iter().collect(),
        None => args.server_pids.clone(),
    }
}

/// CPU seconds and peak RSS of the servers together (None unless every one could be read).
fn servers_sample(args: &Args) -> Option<stats::ProcSample> {
    let pids = server_pids(args);
    if pids.is_empty() {
        return None;
    }
    let samples: Option<Vec<stats::ProcSample>> = pids.into_iter().map(stats::proc_sample).collect();
    samples?.into_iter().reduce(|a, b| stats::ProcSample {
        cpu_seconds: a.cpu_seconds + b.cpu_seconds,
        peak_rss_kib: a.peak_rss_kib.max(b.peak_rss_kib),
        ..a
    })
}

fn mark(args: &Args, shared: &sim::Shared) -> Mark {
    Mark {
        at: Instant::now(),
        snapshot: shared.stats.snapshot(),
        requests: shared.stats.requests.load(Ordering::Relaxed),
        checkins: shared.stats.count(stats::Endpoint::DistributedRead),
        server_cpu: servers_sample(args).map(|s| s.cpu_seconds),
        client_cpu: stats::proc_sample(std::process::id()).map(|s| s.cpu_seconds),
    }
}

fn window(from: &Mark, to: &Mark, floor: bool) -> Window {
    let requests = to.requests - from.requests;
    let checkins = to.checkins - from.checkins;
    let cpu = from.server_cpu.zip(to.server_cpu).map(|(a, b)| b - a).filter(|d| *d >= 0.0);
    let per = |n: u64| cpu.filter(|_| n > 0).map(|c| c * 1e6 / n as f64);
    let seconds = to.at.duration_since(from.at).as_secs_f64();
    Window {
        seconds,
        endpoints: to.snapshot.since(&from.snapshot).summary(seconds),
        requests,
        checkins,
        server_cpu_seconds: cpu,
        server_cpu_us_per_request: per(requests),
        server_cpu_us_per_checkin: if floor { None } else { per(checkins) },
        client_cpu_seconds: from.client_cpu.zip(to.client_cpu).map(|(a, b)| b - a),
    }
}

async fn sleep_until(at: Instant) {
    tokio::time::sleep_until(at.into()).await;
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    match runtime.block_on(run(args)) {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => std::process::ExitCode::from(2),
        Err(e) => {
            eprintln!("herd-perf: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}

async fn run(args: Args) -> anyhow::Result<bool> {
    if args.ca_cert.is_none() && !args.insecure {
        bail!("give --ca-cert (herd's DATA_DIR/tls/cert.pem) or --insecure");
    }
    if !(0.0..=1.0).contains(&args.pass_probability) {
        bail!("--pass-probability must be between 0 and 1");
    }
    if args.hosts == 0 || args.distributed_interval == 0 || args.config_interval == 0 || args.pool_size == 0 {
        bail!("--hosts, --distributed-interval, --config-interval and --pool-size must be positive");
    }
    args.refuse_an_empty_steady_window()?;
    let transport = match args.connection_model {
        ConnectionModel::Pooled => {
            net::Transport::Pooled(args.servers.iter().map(|_| net::Pool::new(args.pool_size)).collect())
        }
        ConnectionModel::PerHost => {
            net::raise_open_files_limit();
            let limit = net::open_files_limit();
            if args.hosts + 64 > limit {
                bail!(
                    "the per-host model needs a file descriptor per host: {} hosts, open-files limit {limit} \
                     (raise `ulimit -n` for herd-perf and the server, or use --connection-model pooled)",
                    args.hosts
                );
            }
            net::Transport::PerHost
        }
    };
    let servers = args
        .servers
        .iter()
        .map(|url| net::Endpoint::new(url, args.ca_cert.as_deref(), Duration::from_secs(args.timeout)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let admin_credentials = args.admin_email.clone().zip(args.admin_password.clone());
    if args.new_policy_at.is_some() && admin_credentials.is_none() {
        bail!("--new-policy-at needs --admin-email and --admin-password");
    }
    if args.policies > 0 {
        let (email, password) =
            admin_credentials.clone().context("--policies needs --admin-email and --admin-password")?;
        let mut admin = check::Admin::login(&servers[0], &email, &password).await?;
        let ids = admin.ensure_policies(args.policies).await?;
        println!("herd-perf: {} global policies ready (ids {}..={})", ids.len(), ids[0], ids[ids.len() - 1]);
        if args.labels > 0 {
            let labels = admin.ensure_labels(args.labels, &ids).await?;
            println!("herd-perf: {} labels ready; every fourth policy scoped to a criteria label", labels.len());
        }
    } else if args.labels > 0 {
        bail!("--labels needs --policies (the criteria labels name a policy)");
    }

    let shared = Arc::new(sim::Shared {
        servers,
        next_server: std::sync::atomic::AtomicUsize::new(0),
        transport,
        stats: stats::Stats::new(),
        phase: std::sync::atomic::AtomicU8::new(sim::PHASE_RUN),
        enroll_secret: args.enroll_secret.clone(),
        prefix: args.prefix.clone(),
        distributed_interval: Duration::from_secs(args.distributed_interval),
        config_interval: Duration::from_secs(args.config_interval),
        pass_probability: args.pass_probability,
        floor_path: args.floor_path.clone(),
        stopped: tokio::sync::Notify::new(),
    });
    let started = Instant::now();
    let started_unix =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    println!(
        "herd-perf: {} hosts, ramp {} s, run {} s, {:?} connections, against {}",
        args.hosts,
        args.ramp,
        args.duration(),
        args.connection_model,
        args.servers.join(", ")
    );
    let ramp = Duration::from_secs(args.ramp);
    let mut tasks = Vec::with_capacity(args.hosts as usize);
    for i in 0..args.hosts {
        let start_in = ramp.mul_f64(i as f64 / args.hosts as f64);
        let host = sim::SimHost::new(&shared.prefix, i);
        tasks.push(tokio::spawn(host.run(shared.clone(), start_in)));
    }

    let progress = {
        let shared = shared.clone();
        let every = Duration::from_secs(args.progress_every.max(1));
        tokio::spawn(async move {
            let mut last = (Instant::now(), 0u64);
            loop {
                tokio::time::sleep(every).await;
                let requests = shared.stats.requests.load(Ordering::Relaxed);
                let rate = (requests - last.1) as f64 / last.0.elapsed().as_secs_f64();
                last = (Instant::now(), requests);
                println!(
                    "[{:>5.0} s] enrolled {:>7} (told to come back {:>7})  requests/s {:>8.0}  check-ins {:>9}  errors {}",
                    shared.stats.elapsed().as_secs_f64(),
                    shared.stats.enrolled.load(Ordering::Relaxed),
                    shared.stats.enroll_deferred.load(Ordering::Relaxed),
                    rate,
                    shared.stats.count(stats::Endpoint::DistributedRead),
                    shared.stats.errors.load(Ordering::Relaxed),
                );
            }
        })
    };

    let new_policy = args.new_policy_at.map(|at| {
        let shared = shared.clone();
        let (email, password) = admin_credentials.clone().expect("checked above");
        let at = started + Duration::from_secs(at);
        let until = started + Duration::from_secs(args.duration());
        tokio::spawn(async move { new_policy_burst(&shared, &email, &password, started, at, until).await })
    });

    // The steady window: from two check-in intervals after the ramp (the first reports are done) to the end.
    let interval = Duration::from_secs(args.distributed_interval);
    let run_end = started + Duration::from_secs(args.duration());
    let steady_end = started + Duration::from_secs(args.steady_until());
    let steady_start = started + Duration::from_secs(args.steady_from());
    sleep_until(steady_start).await;
    let steady_from = mark(&args, &shared);
    sleep_until(steady_end).await;
    let steady_to = mark(&args, &shared);
    let steady = window(&steady_from, &steady_to, false);
    sleep_until(run_end).await;

    let floor = if args.floor_seconds > 0 {
        shared.phase.store(sim::PHASE_FLOOR, Ordering::Relaxed);
        // Every host switches at its next tick.
        tokio::time::sleep(interval + Duration::from_secs(1)).await;
        let from = mark(&args, &shared);
        tokio::time::sleep(Duration::from_secs(args.floor_seconds)).await;
        Some(window(&from, &mark(&args, &shared), true))
    } else {
        None
    };
    let new_policy = match new_policy {
        Some(task) => Some(task.await??),
        None => None,
    };
    shared.phase.store(sim::PHASE_STOP, Ordering::Relaxed);
    shared.stopped.notify_waiters();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await?);
    }
    progress.abort();
    let total_seconds = started.elapsed().as_secs_f64();
    let server_proc = servers_sample(&args);

    let check = match &admin_credentials {
        Some((email, password)) => {
            let mut admin = check::Admin::login(&shared.servers[0], email, password).await?;
            Some(admin.verify(&outcomes, args.check_sample).await?)
        }
        None => None,
    };

    // After an outage (a server restart): when the last host that saw an error checked in normally again.
    let with_errors: Vec<&sim::HostOutcome> = outcomes.iter().filter(|h| h.last_error_at.is_some()).collect();
    let recovery = json!({
        "hosts_with_errors": with_errors.len(),
        "hosts_not_recovered": with_errors.iter().filter(|h| h.recovered_at.is_none()).count(),
        "first_error_at": with_errors.iter().filter_map(|h| h.last_error_at).reduce(f64::min),
        "last_recovered_at": with_errors.iter().filter_map(|h| h.recovered_at).reduce(f64::max),
    });
    let summary = shared.stats.summary(total_seconds);
    let errors = shared.stats.errors.load(Ordering::Relaxed);
    let ratio = steady
        .server_cpu_us_per_checkin
        .zip(floor.as_ref().and_then(|f| f.server_cpu_us_per_request))
        .map(|(checkin, floor)| checkin / floor);
    // Why a CPU figure is missing, when one is.
    let no_cpu = if server_pids(&args).is_empty() {
        "n/a (no --server-pid)"
    } else {
        "n/a (no request in the window, or the server's /proc not readable)"
    };
    let windows = Windows { steady: &steady, floor: floor.as_ref(), no_cpu };
    print_report(&summary, &windows, ratio, server_proc, check.as_ref(), errors);
    if let Some(burst) = &new_policy {
        let after = burst.all_counted_after_s.map_or("not within the run".to_string(), |s| format!("{s:.1} s"));
        println!(
            "new policy {} created {:.0} s into the run: every enrolled host's answer counted after {after} \
             ({} of {} at the end)",
            burst.policy_id, burst.created_at_s, burst.counted_at_end, burst.hosts_enrolled
        );
    }
    let enrollment = json!({
        "enrolled": shared.stats.enrolled.load(Ordering::Relaxed),
        "deferred": shared.stats.enroll_deferred.load(Ordering::Relaxed),
        "last_enrolled_at_s": shared.stats.last_enrolled_at_s(),
    });
    println!(
        "enrollment: {} hosts, the last {:.1} s into the run; {} attempts told to come back later (429)",
        enrollment["enrolled"], enrollment["last_enrolled_at_s"], enrollment["deferred"]
    );
    // How long the new policy took is a measurement (reported), not a failure.
    let ok = errors == 0 && check.as_ref().is_none_or(|c| c.mismatches.is_empty());
    if let Some(path) = &args.json {
        let report = json!({
            "args": args,
            "ok": ok,
            "started_unix": started_unix,
            "recovery": recovery,
            "enrollment": enrollment,
            "total_seconds": total_seconds,
            "errors": errors,
            "endpoints": summary,
            "steady": steady,
            "floor": floor,
            "checkin_to_floor_cpu_ratio": ratio,
            "server": server_proc,
            "client": stats::proc_sample(std::process::id()),
            "check": check,
            "new_policy": new_policy,
            "timeline": shared.stats.timeline(),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ok)
}

/// The new-policy burst: a policy created mid-run, and how long until every host's answer was counted.
#[derive(Debug, Clone, Serialize)]
struct NewPolicyBurst {
    policy_id: i64,
    /// Seconds into the run.
    created_at_s: f64,
    /// Seconds after creation until passing + failing reached the hosts enrolled (None: not within the run).
    all_counted_after_s: Option<f64>,
    counted_at_end: i64,
    hosts_enrolled: u64,
}

async fn new_policy_burst(
    shared: &sim::Shared,
    email: &str,
    password: &str,
    started: Instant,
    at: Instant,
    until: Instant,
) -> anyhow::Result<NewPolicyBurst> {
    sleep_until(at).await;
    let mut admin = check::Admin::login(&shared.servers[0], email, password).await?;
    let name = format!("perf new policy {}", started.elapsed().as_millis());
    let policy_id = admin.create_policy(&name, "SELECT 1 FROM osquery_info WHERE version >= '5.1.0';").await?;
    let created = Instant::now();
    let mut burst = NewPolicyBurst {
        policy_id,
        created_at_s: created.duration_since(started).as_secs_f64(),
        all_counted_after_s: None,
        counted_at_end: 0,
        hosts_enrolled: 0,
    };
    while Instant::now() < until {
        let (passing, failing) = admin.policy_counts(policy_id).await?;
        burst.counted_at_end = passing + failing;
        burst.hosts_enrolled = shared.stats.enrolled.load(Ordering::Relaxed);
        if burst.counted_at_end as u64 >= burst.hosts_enrolled {
            burst.all_counted_after_s = Some(created.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(burst)
}

/// The measured windows, as the report prints them.
struct Windows<'a> {
    steady: &'a Window,
    floor: Option<&'a Window>,
    /// What a missing CPU figure says instead.
    no_cpu: &'a str,
}

fn print_report(
    summary: &[stats::EndpointSummary],
    windows: &Windows,
    ratio: Option<f64>,
    server: Option<stats::ProcSample>,
    check: Option<&check::CheckReport>,
    errors: u64,
) {
    let Windows { steady, floor, no_cpu } = *windows;
    println!();
    println!(
        "{:<18} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "endpoint", "ok", "per s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors"
    );
    for e in summary {
        println!(
            "{:<18} {:>10} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.1} {:>8}",
            e.endpoint, e.ok, e.per_second, e.p50_ms, e.p90_ms, e.p99_ms, e.max_ms, e.errors
        );
        for (kind, n) in &e.errors_by_kind {
            println!("{:<18}   error {kind}: {n}", "");
        }
    }
    let us = |v: Option<f64>| v.map_or(no_cpu.to_string(), |v| format!("{v:.1} µs"));
    println!();
    println!(
        "steady window: {:.0} s, {} check-ins ({:.0}/s), server CPU per check-in {}, per request {}",
        steady.seconds,
        steady.checkins,
        steady.checkins as f64 / steady.seconds.max(0.001),
        us(steady.server_cpu_us_per_checkin),
        us(steady.server_cpu_us_per_request)
    );
    if let Some(read) = steady.endpoints.iter().find(|e| e.endpoint == "distributed_read") {
        println!(
            "steady check-ins: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.1} ms, errors {}",
            read.p50_ms, read.p90_ms, read.p99_ms, read.max_ms, read.errors
        );
    }
    if let Some(floor) = floor {
        println!(
            "floor window:  {:.0} s, {} requests ({:.0}/s), server CPU per request {}",
            floor.seconds,
            floor.requests,
            floor.requests as f64 / floor.seconds.max(0.001),
            us(floor.server_cpu_us_per_request)
        );
    }
    if let Some(ratio) = ratio {
        println!("check-in cost / floor cost: {ratio:.2}");
    }
    if let Some(server) = server {
        println!(
            "server: {:.1} CPU s in all, peak RSS {:.0} MiB",
            server.cpu_seconds,
            server.peak_rss_kib as f64 / 1024.0
        );
    }
    if let Some(check) = check {
        println!(
            "check: {} hosts on the server ({} enrolled here), {} policies' counts and {} hosts compared: {}",
            check.hosts_on_server,
            check.hosts_enrolled,
            check.policies_checked,
            check.hosts_checked,
            if check.mismatches.is_empty() {
                "all match".to_string()
            } else {
                format!("{} MISMATCHES", check.mismatches.len())
            }
        );
        for m in check.mismatches.iter().take(20) {
            println!("  {m}");
        }
    }
    println!("errors: {errors}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let base = ["herd-perf", "--server", "https://127.0.0.1:8080", "--insecure", "--enroll-secret", "s"];
        Args::try_parse_from(base.iter().chain(extra)).unwrap()
    }

    /// Flags, the run's length, and its steady window (from, until); None: refused before it starts.
    type Case<'a> = (&'a [&'a str], u64, Option<(u64, u64)>);

    #[test]
    fn a_run_always_has_a_steady_window() {
        let cases: [Case; 6] = [
            (&[], 60, Some((30, 60))),
            (&["--ramp", "20"], 70, Some((40, 70))),
            (&["--ramp", "10", "--duration", "30"], 30, None),
            (&["--ramp", "10", "--duration", "40"], 40, Some((30, 40))),
            (&["--ramp", "5", "--duration", "20", "--distributed-interval", "2"], 20, Some((9, 20))),
            (&["--ramp", "900", "--duration", "1260", "--steady-until", "900"], 1260, None),
        ];
        for (flags, length, window) in cases {
            let args = args(flags);
            assert_eq!(args.duration(), length, "{flags:?}");
            match window {
                Some(window) => {
                    assert!(args.refuse_an_empty_steady_window().is_ok(), "{flags:?}");
                    assert_eq!((args.steady_from(), args.steady_until()), window, "{flags:?}");
                }
                None => {
                    let refusal = args.refuse_an_empty_steady_window().unwrap_err().to_string();
                    assert!(refusal.starts_with("no steady window"), "{flags:?}: {refusal}");
                }
            }
        }
    }
}
