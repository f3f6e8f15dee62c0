//! distributed/write ingestion: one report of 50 policy answers per host, through the real router and
//! store (in process, no TLS), on SQLite and — when `HERD_TEST_DATABASE_URL` is set — PostgreSQL.
//!
//!     cargo bench -p herd-server --bench ingest
//!     HERD_TEST_DATABASE_URL=postgres://... cargo bench -p herd-server --bench ingest
//!
//! Also the check-in hot path (`checkin_nothing_due`): a distributed/read with nothing due; and onboarding
//! (`onboard_cpu`): new hosts enrolling, 64 at a time, each through enroll, config, distributed/read and its
//! first distributed/write (vitals and 50 answers). That group's figure is the **process CPU time** per new
//! host (not wall time), the quantity issue 17's target (≤ 0.5 ms of server CPU per new host) is about,
//! minus TLS and HTTP parsing. `ONBOARD_STEPS=N` stops each host after its first N requests.
//!
//! Two cases: every answer flips (each report rewrites 50 membership rows and moves 50 counts) and nothing
//! changes (the steady state: only the host's run times are written).

use axum::body::Body;
use axum::http::Request;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use herd_server::bootstrap::{self, BootstrapOptions};
use herd_server::result_log::ResultLog;
use herd_server::state::{AppState, SharedState};
use herd_store::{PolicyFields, Store};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tower::ServiceExt;

const HOSTS: usize = 200;
const POLICIES: usize = 50;

struct Bench {
    app: axum::Router,
    node_keys: Vec<String>,
    policy_ids: Vec<i64>,
    _dir: tempfile::TempDir,
}

async fn post(app: &axum::Router, path: &str, body: &Value) -> Value {
    let request =
        Request::post(path).header("content-type", "application/json").body(Body::from(body.to_string())).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

async fn setup(url: String, dir: tempfile::TempDir) -> Bench {
    let store = Store::open(&url).await.unwrap();
    bootstrap::run(
        &store,
        dir.path(),
        BootstrapOptions {
            admin_email: "admin@herd.local".into(),
            admin_password: Some("admin-password-1!".into()),
            enroll_secret: Some("bench-secret".into()),
            server_url: "https://127.0.0.1:1".into(),
        },
    )
    .await
    .unwrap();
    let mut policy_ids = Vec::new();
    for i in 0..POLICIES {
        let fields = PolicyFields::new(&format!("policy {i}"), &format!("SELECT 1 FROM processes WHERE pid = {i};"));
        policy_ids.push(store.create_policy(&fields, None, None, 0).await.unwrap());
    }
    let state: SharedState =
        Arc::new(AppState::new(store.clone(), ResultLog::open(&dir.path().join("r.log")).unwrap()));
    state.settings.reload(&store).await.unwrap();
    let app = herd_server::api::router(state);
    let mut node_keys = Vec::new();
    for i in 0..HOSTS {
        let body =
            json!({"enroll_secret": "bench-secret", "host_identifier": format!("host-{i}"), "platform_type": "9"});
        node_keys.push(post(&app, "/api/osquery/enroll", &body).await["node_key"].as_str().unwrap().to_string());
    }
    Bench { app, node_keys, policy_ids, _dir: dir }
}

fn report(bench: &Bench, host: usize, pass: bool) -> Value {
    let mut queries = serde_json::Map::new();
    let mut statuses = serde_json::Map::new();
    for id in &bench.policy_ids {
        let name = format!("fleet_policy_query_{id}");
        queries.insert(name.clone(), if pass { json!([{"1": "1"}]) } else { json!([]) });
        statuses.insert(name, json!(0));
    }
    json!({"node_key": bench.node_keys[host], "queries": queries, "statuses": statuses, "messages": {}, "stats": {}})
}

fn bench_backend(c: &mut Criterion, runtime: &tokio::runtime::Runtime, backend: &str, bench: Bench) {
    let mut group = c.benchmark_group(format!("distributed_write_50_policies/{backend}"));
    group.throughput(Throughput::Elements(POLICIES as u64));
    group.sample_size(30);
    group.measurement_time(std::time::Duration::from_secs(8));
    let next = AtomicUsize::new(0);
    // Every answer flips relative to the host's previous report.
    let flips: Vec<[Value; 2]> = (0..HOSTS).map(|h| [report(&bench, h, true), report(&bench, h, false)]).collect();
    group.bench_function("every_answer_changes", |b| {
        b.to_async(runtime).iter(|| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            let body = &flips[n % HOSTS][(n / HOSTS) % 2];
            post(&bench.app, "/api/osquery/distributed/write", body)
        })
    });
    group.bench_function("no_answer_changes", |b| {
        b.to_async(runtime).iter(|| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            post(&bench.app, "/api/osquery/distributed/write", &flips[n % HOSTS][0])
        })
    });
    group.finish();

    // The check-in hot path: a distributed/read with nothing due (no database round trip), so what is left is
    // routing, reading and checking the body, authenticating the node key from memory and answering. The
    // body limits (shape check, node key read first) sit on this path and must not slow it.
    let mut group = c.benchmark_group(format!("checkin_nothing_due/{backend}"));
    group.sample_size(50);
    group.measurement_time(std::time::Duration::from_secs(5));
    let reads: Vec<Value> = bench.node_keys.iter().map(|key| json!({"node_key": key})).collect();
    runtime.block_on(async {
        // Hand out (and forget) whatever is due first, so the measured reads find nothing due.
        for read in &reads {
            post(&bench.app, "/api/osquery/distributed/read", read).await;
        }
    });
    group.bench_function("distributed_read", |b| {
        b.to_async(runtime).iter(|| {
            let n = next.fetch_add(1, Ordering::Relaxed);
            post(&bench.app, "/api/osquery/distributed/read", &reads[n % HOSTS])
        })
    });
    group.finish();
}

/// CPU time this process has used (user + system).
fn process_cpu() -> std::time::Duration {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let time = |t: libc::timeval| std::time::Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// Posts a body given as text and returns the response's bytes: the onboarding client keeps its own work
/// small (no `Value` trees), since its CPU counts in that group's figure.
async fn post_text(app: &axum::Router, path: &str, body: String) -> axum::body::Bytes {
    let request = Request::post(path).header("content-type", "application/json").body(Body::from(body)).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert!(response.status().is_success(), "{path}: {}", response.status());
    axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap()
}

#[derive(serde::Deserialize)]
struct EnrollAnswer {
    node_key: String,
}

#[derive(serde::Deserialize)]
struct ReadAnswer {
    queries: std::collections::BTreeMap<String, serde::de::IgnoredAny>,
}

/// One new host's first minute: enroll, config, distributed/read, and the answers to what it was asked.
async fn onboard(app: axum::Router, n: usize) {
    let uuid = format!("onboard-{n:08}");
    let body = format!(
        r#"{{"enroll_secret":"bench-secret","host_identifier":"{uuid}","platform_type":"9","host_details":{{"system_info":{{"uuid":"{uuid}","hostname":"new-{n}","hardware_serial":"S{n}"}},"os_version":{{"platform":"ubuntu","platform_like":"debian","version":"24.04"}}}}}}"#
    );
    let enrolled: EnrollAnswer = serde_json::from_slice(&post_text(&app, "/api/osquery/enroll", body).await).unwrap();
    let node_key = enrolled.node_key;
    // ONBOARD_STEPS=N stops after the first N requests (1: enroll only, …), to see what each step costs.
    let steps: usize = std::env::var("ONBOARD_STEPS").ok().and_then(|s| s.parse().ok()).unwrap_or(4);
    if steps < 2 {
        return;
    }
    post_text(&app, "/api/osquery/config", format!(r#"{{"node_key":"{node_key}"}}"#)).await;
    if steps < 3 {
        return;
    }
    let read = post_text(&app, "/api/osquery/distributed/read", format!(r#"{{"node_key":"{node_key}"}}"#)).await;
    let read: ReadAnswer = serde_json::from_slice(&read).unwrap();
    if steps < 4 {
        return;
    }
    let (mut queries, mut statuses) = (String::new(), String::new());
    for name in read.queries.keys() {
        let rows = match name.as_str() {
            "fleet_detail_query_system_info" => format!(
                r#"[{{"hostname":"new-{n}","uuid":"{uuid}","cpu_brand":"Intel","cpu_physical_cores":"4","cpu_logical_cores":"8","physical_memory":"17179869184","hardware_vendor":"Dell","hardware_model":"XPS","hardware_serial":"S{n}","computer_name":"n"}}]"#
            ),
            "fleet_detail_query_os_version" => {
                r#"[{"name":"Ubuntu","version":"24.04","platform":"ubuntu","platform_like":"debian","build":""}]"#
                    .into()
            }
            "fleet_detail_query_uptime" => r#"[{"total_seconds":"1000"}]"#.into(),
            name if name.starts_with("fleet_policy_query_") && !n.is_multiple_of(3) => r#"[{"1":"1"}]"#.into(),
            _ => "[]".into(),
        };
        let comma = if queries.is_empty() { "" } else { "," };
        queries.push_str(&format!(r#"{comma}"{name}":{rows}"#));
        statuses.push_str(&format!(r#"{comma}"{name}":0"#));
    }
    let write = format!(
        r#"{{"node_key":"{node_key}","queries":{{{queries}}},"statuses":{{{statuses}}},"messages":{{}},"stats":{{}}}}"#
    );
    post_text(&app, "/api/osquery/distributed/write", write).await;
}

fn bench_onboarding(c: &mut Criterion, runtime: &tokio::runtime::Runtime, backend: &str, bench: &Bench) {
    let mut group = c.benchmark_group(format!("onboard_cpu/{backend}"));
    group.sample_size(10);
    group.measurement_time(std::time::Duration::from_secs(10));
    let next = Arc::new(AtomicUsize::new(0));
    group.bench_function("enroll_config_read_first_report", |b| {
        b.to_async(runtime).iter_custom(|iters| {
            let (app, next) = (bench.app.clone(), next.clone());
            async move {
                let limit = Arc::new(tokio::sync::Semaphore::new(64));
                let cpu = process_cpu();
                let mut hosts = tokio::task::JoinSet::new();
                for _ in 0..iters {
                    let permit = limit.clone().acquire_owned().await.unwrap();
                    let (app, n) = (app.clone(), next.fetch_add(1, Ordering::Relaxed));
                    hosts.spawn(async move {
                        onboard(app, n).await;
                        drop(permit);
                    });
                }
                hosts.join_all().await;
                process_cpu() - cpu
            }
        })
    });
    group.finish();
}

fn ingest(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite_url = format!("sqlite://{}", dir.path().join("herd.db").display());
    let sqlite = runtime.block_on(setup(sqlite_url, dir));
    bench_onboarding(c, &runtime, "sqlite", &sqlite);
    bench_backend(c, &runtime, "sqlite", sqlite);
    match runtime.block_on(herd_store::testing::fresh_postgres_url_if_configured()) {
        Some(url) => {
            let postgres = runtime.block_on(setup(url, tempfile::tempdir().unwrap()));
            bench_onboarding(c, &runtime, "postgres", &postgres);
            bench_backend(c, &runtime, "postgres", postgres);
        }
        None => eprintln!("postgres: skipped (set HERD_TEST_DATABASE_URL)"),
    }
}

criterion_group!(benches, ingest);
criterion_main!(benches);
