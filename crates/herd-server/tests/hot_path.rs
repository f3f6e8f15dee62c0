//! The check-in hot path: once a host's vitals are fresh, a distributed/read must not touch the database.
//! Proven without timing: the store is closed, and check-ins keep being answered from memory.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use herd_server::bootstrap::{self, BootstrapOptions};
use herd_server::result_log::ResultLog;
use herd_server::state::{AppState, SharedState};
use herd_store::Store;
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

async fn call(app: &axum::Router, path: &str, body: Value) -> (StatusCode, Value) {
    let request =
        Request::post(path).header("content-type", "application/json").body(Body::from(body.to_string())).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkin_with_nothing_due_needs_no_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("herd.db").to_string_lossy()).await.unwrap();
    let boot = bootstrap::run(
        &store,
        dir.path(),
        BootstrapOptions {
            admin_email: "admin@herd.local".into(),
            admin_password: Some("admin-password-1!".into()),
            enroll_secret: Some("hot-path-secret".into()),
            server_url: "https://127.0.0.1:1".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(boot.enroll_secret.as_deref(), Some("hot-path-secret"));
    let state: SharedState =
        Arc::new(AppState::new(store.clone(), ResultLog::open(&dir.path().join("results.log")).unwrap()));
    state.settings.reload(&store).await.unwrap();
    let app = herd_server::api::router(state.clone());

    let enroll = json!({"enroll_secret": "hot-path-secret", "host_identifier": "h1", "platform_type": "9"});
    let (status, body) = call(&app, "/api/osquery/enroll", enroll).await;
    assert_eq!(status, StatusCode::OK);
    let node_key = body["node_key"].as_str().unwrap().to_string();
    let (_, read) = call(&app, "/api/osquery/distributed/read", json!({"node_key": node_key})).await;
    let names: Vec<String> = read["queries"].as_object().unwrap().keys().cloned().collect();
    let queries: serde_json::Map<String, Value> = names.iter().map(|n| (n.clone(), json!([]))).collect();
    let statuses: serde_json::Map<String, Value> = names.iter().map(|n| (n.clone(), json!(0))).collect();
    let write = json!({"node_key": node_key, "queries": queries, "statuses": statuses});
    assert_eq!(call(&app, "/api/osquery/distributed/write", write).await.0, StatusCode::OK);

    store.close().await;
    let (status, _) = call(&app, "/api/v1/fleet/login", json!({"email": "admin@herd.local", "password": "x"})).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "the database really is gone");
    for _ in 0..100 {
        let (status, body) = call(&app, "/api/osquery/distributed/read", json!({"node_key": node_key})).await;
        assert_eq!((status, body), (StatusCode::OK, json!({"queries": {}})));
    }
    assert!(state.seen.get(1).is_some(), "the check-ins were recorded in memory for the next flush");
}
