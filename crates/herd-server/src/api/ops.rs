//! Operations endpoints: health and metrics. No authentication (put /metrics behind your proxy's ACL if
//! host counts are sensitive).

use crate::metrics::Gauges;
use crate::state::{SharedState, now_ms};
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use herd_store::{HostFilter, StatusCondition};
use serde_json::json;

pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route("/livez", get(livez))
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
}

/// 200 while the process serves requests, touching nothing else: a liveness probe, and the cheapest request
/// herd answers (herd-perf's HTTP + TLS floor).
async fn livez() -> &'static str {
    "ok"
}

/// 200 when the database answers; 503 otherwise, so a load balancer takes this server out of rotation.
async fn healthz(State(state): State<SharedState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ok", "database": state.store.backend().name()}))),
        Err(err) => {
            tracing::warn!(error = %err, "health check failed");
            (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable", "reason": "database unreachable"})))
        }
    }
}

async fn metrics(State(state): State<SharedState>) -> impl IntoResponse {
    let now = now_ms();
    let online = HostFilter { status: Some(StatusCondition::Online), ..Default::default() };
    let gauges = Gauges {
        hosts_enrolled: state.store.host_count().await.unwrap_or(-1),
        hosts_online: state.store.count_hosts(&online, now).await.unwrap_or(-1),
        hosts_cached: state.hosts.len(),
    };
    let mut text = state.metrics.render(&gauges);
    let gate = state.enrollment_gate.take_reading(std::time::Instant::now());
    for (name, kind, help, value) in [
        (
            "herd_enrollments_deferred_total",
            "counter",
            "Enrollments refused with 429 while the server was behind.",
            gate.deferred as f64,
        ),
        ("herd_enrollment_gate_refusing", "gauge", "1 while new enrollments are refused.", f64::from(gate.refusing)),
        (
            "herd_runtime_lag_max_seconds",
            "gauge",
            "The latest a probe task woke since the previous scrape (requests waited as long).",
            gate.max_lag.as_secs_f64(),
        ),
        (
            "herd_hot_write_wait_max_seconds",
            "gauge",
            "The longest an enrollment or report waited to start since the previous scrape.",
            gate.max_write_wait.as_secs_f64(),
        ),
        (
            "herd_hot_writes_in_flight",
            "gauge",
            "Enrollments and reports being written or waiting to be.",
            state.store.hot_writes_in_flight() as f64,
        ),
    ] {
        text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
    }
    text.push_str(&connection_metrics(&state.connections));
    if let Some(counts) = state.store.group_commit_counts() {
        for (name, help, value) in [
            ("herd_group_commits_total", "Transactions the SQLite group commit made.", counts.commits),
            ("herd_group_commit_writes_total", "Enrollments and reports those transactions held.", counts.writes),
            (
                "herd_group_commit_replays_total",
                "Batches applied again write by write because one of their writes failed.",
                counts.replays,
            ),
        ] {
            text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}\n"));
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}

fn connection_metrics(stats: &crate::connections::ConnectionStats) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = String::new();
    for (name, kind, help, value) in [
        ("herd_connections_open", "gauge", "Client connections open now.", stats.open.load(Relaxed)),
        (
            "herd_connections_timed_out_total",
            "counter",
            "Connections closed for a slow request head or idleness.",
            stats.timed_out.load(Relaxed),
        ),
        (
            "herd_connections_evicted_total",
            "counter",
            "Connections closed at the connection limit to admit a new one.",
            stats.evicted.load(Relaxed),
        ),
        (
            "herd_connections_refused_total",
            "counter",
            "Connections closed at once: the limit was reached and every connection was busy.",
            stats.refused.load(Relaxed),
        ),
    ] {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
    }
    out
}
