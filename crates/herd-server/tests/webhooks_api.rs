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

/// A team's Fleet webhook and a policy's own webhook both deliver; a receiver that never answers holds up
/// only its own deliveries; a continuous-mode policy posts on every failing result.
async fn team_and_policy_webhooks_and_a_slow_receiver(server: Server) {
    let admin = server.admin_token().await;
    // Accepts connections and never answers: deliveries to it hang until the client's timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://127.0.0.1:{}/hook", silent.local_addr().unwrap().port());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let received = start_receiver(port).await;
    let fast_url = format!("http://127.0.0.1:{port}/hook");

    let (_, team) = server.post("/api/v1/fleet/teams", &admin, json!({"name": "Servers"})).await;
    let team_id = team["team"]["id"].as_i64().unwrap();
    let (_, created) = server
        .post(
            &format!("/api/v1/fleet/teams/{team_id}/policies"),
            &admin,
            json!({"name": "sshd hardened", "query": "SELECT 1;"}),
        )
        .await;
    let team_policy = created["policy"]["id"].as_i64().unwrap();
    let (status, created) = server
        .post(
            "/api/v1/fleet/global/policies",
            &admin,
            json!({"name": "firewall on", "query": "SELECT 1;", "webhook_url": fast_url, "continuous_automation": true}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let global_policy = created["policy"]["id"].as_i64().unwrap();
    assert_eq!(created["policy"]["webhook_url"], fast_url);
    assert_eq!(created["policy"]["continuous_automation"], true);

    // Bad input names its field.
    let (status, reply) = server
        .post(
            "/api/v1/fleet/global/policies",
            &admin,
            json!({"name": "x", "query": "SELECT 1;", "webhook_url": "ftp://x"}),
        )
        .await;
    assert_eq!((status.as_u16(), &reply["errors"][0]["name"]), (422, &json!("webhook_url")));
    let hook = |policy_ids: Value| {
        json!({"webhook_settings": {"failing_policies_webhook": {
            "enable_failing_policies_webhook": true, "destination_url": silent_url, "policy_ids": policy_ids}}})
    };
    let (status, reply) =
        server.patch(&format!("/api/v1/fleet/teams/{team_id}"), &admin, hook(json!([global_policy]))).await;
    assert_eq!(
        (status.as_u16(), &reply["errors"][0]["name"]),
        (422, &json!("webhook_settings.failing_policies_webhook.policy_ids")),
        "a team webhook covers the team's own policies"
    );
    let (status, reply) =
        server.patch(&format!("/api/v1/fleet/teams/{team_id}"), &admin, hook(json!([team_policy]))).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["team"]["webhook_settings"]["failing_policies_webhook"]["destination_url"], silent_url);

    let mut host = TestHost::new("db-1");
    host.enroll(&server, ENROLL_SECRET).await;
    let (_, hosts) = server.get("/api/v1/fleet/hosts", &admin).await;
    let host_id = hosts["hosts"][0]["id"].as_i64().unwrap();
    let (status, _) =
        server.post("/api/v1/fleet/hosts/transfer", &admin, json!({"team_id": team_id, "hosts": [host_id]})).await;
    assert_eq!(status, 200);

    // The team policy fails first: its delivery goes to the silent receiver and hangs there.
    answer(&host, &server, team_policy, false).await;
    answer(&host, &server, global_policy, false).await;
    let list = eventually(PATIENCE, "the policy's own webhook delivered", || async {
        let list = deliveries(&server, &admin).await;
        list.iter().any(|d| d["destination_url"] == fast_url && d["status"] == "delivered").then_some(list)
    })
    .await;
    let stuck = list.iter().find(|d| d["destination_url"] == silent_url).expect("the team webhook's delivery");
    assert_eq!(stuck["policy_id"], team_policy);
    assert_eq!(
        (&stuck["status"], &stuck["last_error"]),
        (&json!("running"), &Value::Null),
        "still in flight: the silent receiver held up only its own delivery"
    );
    let body = received.lock().unwrap()[0].1.clone();
    assert_eq!(body["policy"]["id"], global_policy);
    assert_eq!(body["hosts"][0]["hostname"], "db-1");

    // Continuous mode: another failing result is news again; the team policy's continuing failure is not.
    answer(&host, &server, global_policy, false).await;
    answer(&host, &server, team_policy, false).await;
    eventually(PATIENCE, "a second delivery of the continuous policy", || async {
        (received.lock().unwrap().len() == 2).then_some(())
    })
    .await;
    let list = deliveries(&server, &admin).await;
    assert_eq!(list.iter().filter(|d| d["policy_id"] == team_policy).count(), 1);
    drop(silent);
}

// The receivers listen on loopback, which the outbound policy forbids unless allowed.
herd_testkit::server_cases!(
    args = herd_testkit::ALLOW_LOOPBACK_WEBHOOKS;
    failures_are_delivered_after_outage_and_restart,
    team_and_policy_webhooks_and_a_slow_receiver,
    the_host_url_opens_the_host_in_the_console
);

/// The host `url` of a delivered webhook (Fleet's `{server_url}/hosts/{id}`) opens the host's console page for
/// a signed-in user, and leads a signed-out one to the login page that returns there.
async fn the_host_url_opens_the_host_in_the_console(server: Server) {
    let admin = server.admin_token().await;
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let received = start_receiver(port).await;
    let (_, created) =
        server.post("/api/v1/fleet/global/policies", &admin, json!({"name": "fw", "query": "SELECT 1;"})).await;
    let policy = created["policy"]["id"].as_i64().unwrap();
    let settings = json!({
        "server_settings": {"server_url": server.url},
        "webhook_settings": {"failing_policies_webhook": {
            "enable_failing_policies_webhook": true,
            "destination_url": format!("http://127.0.0.1:{port}/hook"),
            "policy_ids": [policy]
        }}
    });
    let (status, reply) = server.patch("/api/v1/fleet/config", &admin, settings).await;
    assert_eq!(status, 200, "{reply}");
    let mut host = TestHost::new("linked-host");
    host.enroll(&server, ENROLL_SECRET).await;
    answer(&host, &server, policy, false).await;
    let url = eventually(PATIENCE, "the delivery", || async {
        let got = received.lock().unwrap().clone();
        got.first().and_then(|(_, body)| body["hosts"][0]["url"].as_str().map(str::to_string))
    })
    .await;
    assert!(url.starts_with(&server.url), "{url}");

    let browser = server.browser();
    let signed_out = browser.get(&url).send().await.unwrap();
    assert_eq!(signed_out.status(), 303);
    let console_page = signed_out.headers()["location"].to_str().unwrap().to_string();
    assert!(console_page.starts_with("/console/hosts/"), "{console_page}");
    let form = [("email", herd_testkit::ADMIN_EMAIL), ("password", herd_testkit::ADMIN_PASSWORD), ("next", "/console")];
    let login = browser.post(format!("{}/console/login", server.url)).form(&form).send().await.unwrap();
    assert_eq!(login.status(), 303);
    let redirected = browser.get(&url).send().await.unwrap();
    assert_eq!(redirected.status(), 303);
    let page = browser.get(format!("{}{console_page}", server.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("linked-host"));
    let not_a_host = browser.get(format!("{}/hosts/evil.example", server.url)).send().await.unwrap();
    assert_eq!(not_a_host.status(), 404, "only host ids are sent on");
}
