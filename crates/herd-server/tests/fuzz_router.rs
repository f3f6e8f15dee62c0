//! A property test over the in-process router: whatever bytes arrive at the osquery TLS API or the REST API,
//! with or without gzip, authenticated or not, the answer is a 4xx or a 2xx — never a 5xx, never a panic.
//!
//! Bodies come from three generators: arbitrary bytes, arbitrary JSON values, and valid bodies with one field
//! replaced by an arbitrary JSON value (the shape real clients get nearly right). The number of cases is
//! bounded (`PROPTEST_CASES`, default below), so CI runs it in seconds.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use herd_server::bootstrap::{self, BootstrapOptions};
use herd_server::state::AppState;
use proptest::prelude::*;
use serde_json::{Value, json};
use std::io::Write;
use std::sync::Arc;
use tower::ServiceExt;

const ADMIN_PASSWORD: &str = "fuzz-password-1!";
const SECRET: &str = "fuzz-enroll-secret";

/// A router over a fresh SQLite database, with an admin session token and an enrolled host's node key.
struct Target {
    runtime: tokio::runtime::Runtime,
    router: Router,
    token: String,
    node_key: String,
    _dir: tempfile::TempDir,
}

fn target() -> Target {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (router, token, node_key) = runtime.block_on(async {
        let store =
            herd_store::Store::open(&format!("sqlite://{}", dir.path().join("herd.db").display())).await.unwrap();
        let options = BootstrapOptions {
            admin_email: "admin@herd.local".into(),
            admin_password: Some(ADMIN_PASSWORD.into()),
            enroll_secret: Some(SECRET.into()),
            server_url: "https://127.0.0.1:8080".into(),
        };
        bootstrap::run(&store, dir.path(), options).await.unwrap();
        let log = herd_server::result_log::ResultLog::open(&dir.path().join("osquery-results.log")).unwrap();
        let state = Arc::new(AppState::new(store.clone(), log));
        state.settings.reload(&store).await.unwrap();
        let router = herd_server::api::router(state);
        let (_, login) = call(
            &router,
            Method::POST,
            "/api/v1/fleet/login",
            None,
            json_body(&json!({"email": "admin@herd.local", "password": ADMIN_PASSWORD})),
            false,
        )
        .await;
        let (_, enrolled) = call(
            &router,
            Method::POST,
            "/api/osquery/enroll",
            None,
            json_body(&json!({"enroll_secret": SECRET, "host_identifier": "fuzz-host"})),
            false,
        )
        .await;
        (router, login["token"].as_str().unwrap().to_string(), enrolled["node_key"].as_str().unwrap().to_string())
    });
    Target { runtime, router, token, node_key, _dir: dir }
}

fn json_body(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).unwrap()
}

async fn call(
    router: &Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Vec<u8>,
    gzipped: bool,
) -> (StatusCode, Value) {
    let mut request = Request::builder().method(method).uri(path).header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = if gzipped {
        request = request.header(header::CONTENT_ENCODING, "gzip");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(&body).unwrap();
        enc.finish().unwrap()
    } else {
        body
    };
    let response = router.clone().oneshot(request.body(Body::from(body)).unwrap()).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Endpoints and a valid body for each (`NODE_KEY` stands for the enrolled host's key).
fn endpoints() -> Vec<(Method, &'static str, bool, Value)> {
    let key = json!("NODE_KEY");
    vec![
        (
            Method::POST,
            "/api/osquery/enroll",
            false,
            json!({"enroll_secret": SECRET, "host_identifier": "h", "platform_type": "9", "host_details": {"system_info": {"uuid": "U-1"}}}),
        ),
        (Method::POST, "/api/osquery/config", false, json!({"node_key": key})),
        (Method::POST, "/api/osquery/distributed/read", false, json!({"node_key": key})),
        (
            Method::POST,
            "/api/osquery/distributed/write",
            false,
            json!({"node_key": key, "queries": {"fleet_detail_query_uptime": [{"total_seconds": "10"}], "fleet_policy_query_1": []}, "statuses": {"fleet_detail_query_uptime": 0}, "messages": {}}),
        ),
        (
            Method::POST,
            "/api/osquery/log",
            false,
            json!({"node_key": key, "log_type": "status", "data": [{"severity": "0", "message": "m", "unixTime": "1"}]}),
        ),
        (
            Method::POST,
            "/api/osquery/log",
            false,
            json!({"node_key": key, "log_type": "result", "data": [{"name": "q", "columns": {"a": "1"}}]}),
        ),
        (Method::POST, "/api/v1/fleet/login", false, json!({"email": "admin@herd.local", "password": "x"})),
        (Method::POST, "/api/v1/fleet/teams", true, json!({"name": "team", "description": "d"})),
        (
            Method::POST,
            "/api/v1/fleet/global/policies",
            true,
            json!({"name": "p", "query": "SELECT 1;", "platform": "linux"}),
        ),
        (
            Method::PATCH,
            "/api/v1/fleet/config",
            true,
            json!({"org_info": {"org_name": "Acme"}, "host_settings": {"automation_retries": 2}}),
        ),
        (
            Method::POST,
            "/api/v1/fleet/users/admin",
            true,
            json!({"name": "n", "email": "u@example.com", "password": "pass-word-12!", "global_role": "observer"}),
        ),
        (Method::POST, "/api/v1/fleet/hosts/transfer", true, json!({"team_id": null, "hosts": [1]})),
        (Method::POST, "/api/v1/fleet/scripts/run", true, json!({"host_id": 1, "script_contents": "echo hi"})),
        (Method::POST, "/api/v1/fleet/spec/policies", true, json!({"specs": [{"name": "s", "query": "SELECT 1;"}]})),
    ]
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        Just(json!("NODE_KEY")),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,12}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[derive(Debug, Clone)]
enum BodyKind {
    Bytes(Vec<u8>),
    Json(Value),
    /// The endpoint's valid body with the field at `index` (of its top-level fields) replaced.
    Mutated {
        index: usize,
        value: Value,
    },
}

fn body_kind() -> impl Strategy<Value = BodyKind> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256).prop_map(BodyKind::Bytes),
        any_json().prop_map(BodyKind::Json),
        (0usize..8, any_json()).prop_map(|(index, value)| BodyKind::Mutated { index, value }),
    ]
}

fn render(kind: &BodyKind, valid: &Value, node_key: &str) -> Vec<u8> {
    let value = match kind {
        BodyKind::Bytes(bytes) => return bytes.clone(),
        BodyKind::Json(value) => value.clone(),
        BodyKind::Mutated { index, value } => {
            let mut body = valid.clone();
            if let Some(map) = body.as_object_mut() {
                let keys: Vec<String> = map.keys().cloned().collect();
                let key = keys.get(index % keys.len().max(1)).cloned().unwrap_or_else(|| "extra".into());
                map.insert(key, value.clone());
            }
            body
        }
    };
    serde_json::to_string(&value).unwrap().replace("NODE_KEY", node_key).into_bytes()
}

#[test]
fn no_body_makes_the_server_fail() {
    let target = target();
    let endpoints = endpoints();
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(600);
    // The fixtures work: every valid body is authenticated (so the fuzzing reaches past authentication).
    for (method, path, needs_token, valid) in &endpoints {
        let body = render(&BodyKind::Json(valid.clone()), valid, &target.node_key);
        let token = needs_token.then_some(target.token.as_str());
        let (status, answer) = target.runtime.block_on(call(&target.router, method.clone(), path, token, body, false));
        if !path.ends_with("/login") {
            assert!(
                status.is_success() || status == StatusCode::UNPROCESSABLE_ENTITY,
                "{method} {path} → {status}: {answer}"
            );
        }
    }
    let config = ProptestConfig { cases, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(endpoint in 0..endpoints.len(), kind in body_kind(), gzipped in any::<bool>(), authed in prop::bool::weighted(0.8))| {
        let (method, path, needs_token, valid) = &endpoints[endpoint];
        let body = render(&kind, valid, &target.node_key);
        let token = (*needs_token && authed).then_some(target.token.as_str());
        let (status, answer) = target.runtime.block_on(call(&target.router, method.clone(), path, token, body, gzipped));
        prop_assert!(status.as_u16() < 500, "{method} {path} → {status}: {answer}");
        if status.is_client_error() {
            prop_assert!(answer.is_object(), "{method} {path} → {status} without a JSON reason");
        }
    });
}
