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
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], state.metrics.render(&gauges))
}
