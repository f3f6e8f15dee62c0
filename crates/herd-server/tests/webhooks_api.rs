//! End-to-end: failing-policy webhooks through the durable job table. The receiver is down, then up; the
//! server restarts in between; every new failure is delivered, at least once, with its idempotency key.

use axum::Json;
use axum::http::HeaderMap;
use herd_testkit::{ENROLL_SECRET, Server, TestHost, eventually};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(90);

type Received = Arc<Mutex<Vec<(String, Value)>>>;

/// A webhook receiver on `port`, recording (Idempotency-Key, body) of every POST.
async fn start_receiver(port: u16) -> Received {
    let received: Received = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, Json(body): Json<Value>| {
            let sink = sink.clone();
            async move {
                let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
                sink.lock().unwrap().push((key, body));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("receiver port");
    tokio::spawn(async move { axum::serve(listener, app).await });
    received
}

async fn deliveries(server: &Server, token: &str) -> Vec<Value> {
    let (status, body) = server.get("/api/v1/fleet/webhook_deliveries", token).await;
    assert_eq!(status, 200, "{body}");
    body["webhook_deliveries"].as_array().cloned().unwrap_or_default()
}

async fn answer(host: &TestHost, server: &Server, policy: i64, pass: bool) {
    let name = format!("fleet_policy_query_{policy}");
    let rows = if pass { json!([{"1": "1"}]) } else { json!([]) };
    let (status, _) = host.write(server, json!({ name.clone(): rows }), json!({ name: 0 })).await;
    assert_eq!(status, 200);
}

async fn failures_are_delivered_after_outage_and_restart(server: Server) {
    let admin = server.admin_token().await;
    // A port with nothing listening yet: the receiver is "down".
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (_, created) = server
        .post("/api/v1/fleet/global/policies", &admin, json!({"name": "disk encrypted", "query": "SELECT 1;"}))
        .await;
    let policy = created["policy"]["id"].as_i64().unwrap();
    let bad = json!({"webhook_settings": {"failing_policies_webhook": {"enable_failing_policies_webhook": true}}});
    let (status, reply) = server.patch("/api/v1/fleet/config", &admin, bad).await;
    assert_eq!(
        (status.as_u16(), &reply["errors"][0]["name"]),
        (422, &json!("webhook_settings.failing_policies_webhook.destination_url"))
    );
    let settings = json!({"webhook_settings": {"interval": "24h", "failing_policies_webhook": {
        "enable_failing_policies_webhook": true,
        "destination_url": format!("http://127.0.0.1:{port}/hook"),
        "policy_ids": [policy],
        "host_batch_size": 0
    }}});
    let (status, reply) = server.patch("/api/v1/fleet/config", &admin, settings).await;
    assert_eq!(status, 200, "{reply}");

    let mut host = TestHost::new("laptop-9");
    host.enroll(&server, ENROLL_SECRET).await;
    answer(&host, &server, policy, true).await;
    assert!(deliveries(&server, &admin).await.is_empty(), "passing is not news");
    answer(&host, &server, policy, false).await;
    answer(&host, &server, policy, false).await;
    let pending = eventually(PATIENCE, "a failed delivery attempt", || async {
        let list = deliveries(&server, &admin).await;
        (list.len() == 1 && list[0]["attempts"].as_i64()? >= 1 && list[0]["last_error"].is_string()).then_some(list)
    })
    .await;
    assert_eq!(pending[0]["status"], "pending", "the receiver is down: retried later");
    assert_eq!(pending[0]["policy_id"], policy);
    let key = pending[0]["idempotency_key"].as_str().unwrap().to_string();

    // The server restarts; the job survives. Then the receiver comes up.
    let server = server.restart();
    let admin = server.admin_token().await;
    assert_eq!(deliveries(&server, &admin).await.len(), 1);
    let received = start_receiver(port).await;
    let delivered = eventually(PATIENCE, "delivery", || async {
        let list = deliveries(&server, &admin).await;
        (list[0]["status"] == "delivered").then_some(list)
    })
    .await;
    assert!(delivered[0]["finished_at"].is_string());
    let got = received.lock().unwrap().clone();
    assert!(!got.is_empty(), "the receiver saw the delivery");
    assert!(got.iter().all(|(k, _)| *k == key), "every attempt carries the job's idempotency key");
    let body = &got[0].1;
    assert_eq!(body["policy"]["id"], policy);
    assert_eq!(body["policy"]["name"], "disk encrypted");
    assert_eq!(body["hosts"][0]["hostname"], "laptop-9");
    assert!(body["hosts"][0]["url"].as_str().unwrap().ends_with(&format!("/hosts/{}", body["hosts"][0]["id"])));
    assert!(body["timestamp"].is_string());

    // A new failure after recovering: delivered within seconds, now that the receiver is up.
    answer(&host, &server, policy, true).await;
    answer(&host, &server, policy, false).await;
    eventually(PATIENCE, "the second delivery", || async {
        let list = deliveries(&server, &admin).await;
        (list.len() == 2 && list.iter().all(|d| d["status"] == "delivered")).then_some(())
    })
    .await;

    // Fleet's automations reset: the host, still failing, counts as newly failing at its next answer.
    answer(&host, &server, policy, false).await;
    assert_eq!(deliveries(&server, &admin).await.len(), 2, "a continuing failure is not news");
    let (status, _) = server.post("/api/v1/fleet/automations/reset", &admin, json!({"policy_ids": [policy]})).await;
    assert_eq!(status, 200);
    let (status, reply) = server.post("/api/v1/fleet/automations/reset", &admin, json!({"policy_ids": [424242]})).await;
    assert_eq!((status.as_u16(), &reply["errors"][0]["name"]), (422, &json!("policy_ids")));
    answer(&host, &server, policy, false).await;
    eventually(PATIENCE, "the delivery after the reset", || async {
        let list = deliveries(&server, &admin).await;
        (list.len() == 3 && list.iter().all(|d| d["status"] == "delivered")).then_some(())
    })
    .await;
}

herd_testkit::server_cases!(failures_are_delivered_after_outage_and_restart);
