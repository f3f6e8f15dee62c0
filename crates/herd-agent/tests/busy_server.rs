//! The agent's client against a busy server: a 429 (or 503) with `Retry-After` is "come back then", which
//! the agent's loop honours, not a failure with its own backoff alone.

use axum::http::{HeaderMap, StatusCode, header};
use herd_agent::client::{CallError, OsqueryClient};
use herd_proto::osquery::EnrollRequest;
use std::time::Duration;

/// A plain-HTTP server on loopback that answers every enrollment with `status`, `Retry-After: 7` (when
/// `retry_after`) and herd's error body — or, with `proxy`, a proxy's page that is not JSON.
async fn busy_server(status: StatusCode, retry_after: bool, proxy: bool) -> String {
    let app = axum::Router::new().route(
        "/api/osquery/enroll",
        axum::routing::post(move || async move {
            let mut headers = HeaderMap::new();
            if retry_after {
                headers.insert(header::RETRY_AFTER, "7".parse().unwrap());
            }
            let body = if proxy {
                "<html>the server is busy</html>".to_string()
            } else {
                serde_json::json!({"error": "the server is busy", "node_invalid": false}).to_string()
            };
            (status, headers, body)
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

fn request() -> EnrollRequest {
    EnrollRequest {
        enroll_secret: "s".into(),
        host_identifier: "h".into(),
        platform_type: Some("9".into()),
        host_details: Default::default(),
    }
}

#[tokio::test]
async fn a_busy_server_says_when_to_come_back() {
    // As the agent's main does: one crypto provider for every TLS client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    for (status, proxy) in [
        (StatusCode::TOO_MANY_REQUESTS, false),
        (StatusCode::SERVICE_UNAVAILABLE, false),
        (StatusCode::SERVICE_UNAVAILABLE, true),
    ] {
        let client = OsqueryClient::new(&busy_server(status, true, proxy).await, None).unwrap();
        match client.enroll(&request()).await {
            Err(CallError::Later { retry_after, reason }) => {
                assert_eq!(retry_after, Duration::from_secs(7));
                assert!(reason.contains(status.as_str()), "{reason}");
            }
            other => panic!("{status} (proxy: {proxy}): {other:?}"),
        }
    }
    // Without the header it is an ordinary failure (the agent's own backoff).
    let client = OsqueryClient::new(&busy_server(StatusCode::TOO_MANY_REQUESTS, false, false).await, None).unwrap();
    assert!(matches!(client.enroll(&request()).await, Err(CallError::Failed(_))));
}
