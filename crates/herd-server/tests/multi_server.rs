//! Several real `herd` servers on one PostgreSQL behave as one system: a host may send each request to any
//! of them (a load balancer without stickiness), and what a request means is decided from the database,
//! never from the cache of the server that happens to take it. Each case reproduces a defect found with
//! two servers (issue 17) and would fail on the code before it.
//!
//! PostgreSQL only: SQLite is one server's embedded database.

use herd_testkit::{ALLOW_LOOPBACK_WEBHOOKS, ENROLL_SECRET, Server, TestHost, eventually};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(30);

/// `count` servers started at the same moment on a fresh database.
async fn cluster(count: usize) -> Vec<Server> {
    Server::cluster_on_fresh_postgres(Path::new(&herd_testkit::herd_binary()), count, &ALLOW_LOOPBACK_WEBHOOKS).await
}

/// An answer to a policy, under the name the host was handed (`fleet_policy_query_<id>_<revision>`).
async fn answer(host: &TestHost, server: &Server, policy: i64, revision: i64, pass: bool) -> (StatusCode, Value) {
    let name = format!("fleet_policy_query_{policy}_{revision}");
    let rows = if pass { json!([{"1": "1"}]) } else { json!([]) };
    host.write(server, json!({ name.clone(): rows }), json!({ name: 0 })).await
}

async fn counts(server: &Server, token: &str, policy: i64) -> (i64, i64) {
    let (status, body) = server.get(&format!("/api/v1/fleet/global/policies/{policy}"), token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (body["policy"]["passing_host_count"].as_i64().unwrap(), body["policy"]["failing_host_count"].as_i64().unwrap())
}

async fn create_policy(server: &Server, token: &str, name: &str, query: &str) -> i64 {
    let (status, body) =
        server.post("/api/v1/fleet/global/policies", token, json!({"name": name, "query": query})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["policy"]["id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (HERD_TEST_DATABASE_URL): scripts/test runs it"]
async fn servers_starting_together_on_an_empty_database_all_have_the_secret() {
    let servers = cluster(3).await;
    for (n, server) in servers.iter().enumerate() {
        let file = std::fs::read_to_string(server.data_dir.join("enroll-secret"))
            .unwrap_or_else(|e| panic!("server {n} wrote no enroll-secret file: {e}; it printed {:#?}", server.stdout));
        assert_eq!(file.trim(), ENROLL_SECRET, "server {n}");
        assert!(
            server.stdout.iter().any(|line| line.contains("enroll secret:") && line.contains(ENROLL_SECRET)),
            "server {n} printed {:#?}",
            server.stdout
        );
        let mut host = TestHost::new(&format!("first-{n}"));
        assert_eq!(host.enroll(server, ENROLL_SECRET).await.0, StatusCode::OK, "server {n} enrolls");
    }
}

/// A policy created through A is answered through B before B has loaded it: the answer is stored and
/// counted, not acknowledged and dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (HERD_TEST_DATABASE_URL): scripts/test runs it"]
async fn an_answer_through_b_to_a_policy_just_created_on_a_is_counted() {
    let servers = cluster(2).await;
    let (a, b) = (&servers[0], &servers[1]);
    let admin = a.admin_token().await;
    let mut hosts = Vec::new();
    for n in 0..20 {
        let mut host = TestHost::new(&format!("fresh-{n}"));
        assert_eq!(host.enroll(a, ENROLL_SECRET).await.0, StatusCode::OK);
        hosts.push(host);
    }
    let policy = create_policy(a, &admin, "fresh policy", "SELECT 1;").await;
    // Read from A (which created it: it hands it out at once), answer through B at once.
    for host in &hosts {
        let (_, read) = host.read(a).await;
        let handed = herd_testkit::policy_queries(&read);
        let (revision, _) = handed.get(&policy).unwrap_or_else(|| panic!("A hands out its new policy: {read}"));
        assert_eq!(answer(host, b, policy, *revision, true).await.0, StatusCode::OK);
    }
    assert_eq!(counts(a, &admin, policy).await, (20, 0), "every answer written through B is counted");
    assert_eq!(counts(b, &admin, policy).await, (20, 0));
}

/// The policy is edited after A handed out its query; the host's answer to the old query arrives through
/// B. It is ignored (not counted as an answer to the edited query), and the host is asked the new query at
/// once, whichever server it asks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (HERD_TEST_DATABASE_URL): scripts/test runs it"]
async fn an_answer_to_the_old_revision_through_b_is_ignored_and_the_new_query_handed_out() {
    let servers = cluster(2).await;
    let (a, b) = (&servers[0], &servers[1]);
    let admin = a.admin_token().await;
    let mut host = TestHost::new("edited");
    assert_eq!(host.enroll(a, ENROLL_SECRET).await.0, StatusCode::OK);
    let policy = create_policy(a, &admin, "edited policy", "SELECT 1;").await;
    let (_, read) = host.read(a).await;
    assert_eq!(herd_testkit::policy_queries(&read).get(&policy).map(|(r, _)| *r), Some(1), "{read}");

    let (status, body) =
        a.patch(&format!("/api/v1/fleet/global/policies/{policy}"), &admin, json!({"query": "SELECT 2;"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(answer(&host, b, policy, 1, true).await.0, StatusCode::OK);
    assert_eq!(counts(a, &admin, policy).await, (0, 0), "an answer to the old query is not counted");

    // The host alternates servers, as behind a load balancer; it answers whatever it is handed.
    let servers = [a, b];
    let mut turn = 0;
    let revision = eventually(PATIENCE, "the edited query is handed out", || {
        turn += 1;
        let server = servers[turn % 2];
        let host = &host;
        async move {
            let (status, read) = host.read(server).await;
            assert_eq!(status, StatusCode::OK, "{read}");
            let (revision, sql) = herd_testkit::policy_queries(&read).remove(&policy)?;
            if revision == 1 {
                // A stale server handed out the old query again: answered, and ignored again.
                assert_eq!(answer(host, server, policy, revision, true).await.0, StatusCode::OK);
                return None;
            }
            assert_eq!(sql, "SELECT 2;");
            Some(revision)
        }
    })
    .await;
    assert_eq!(answer(&host, servers[turn % 2], policy, revision, false).await.0, StatusCode::OK);
    assert_eq!(counts(a, &admin, policy).await, (0, 1), "the answer to the edited query counts");
}

/// A failing-policies webhook enabled through A fires for a failure written through B right after: the
/// report's transaction reads the settings, not B's cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (HERD_TEST_DATABASE_URL): scripts/test runs it"]
async fn a_webhook_added_on_a_fires_for_a_failure_through_b() {
    let servers = cluster(2).await;
    let (a, b) = (&servers[0], &servers[1]);
    let admin = a.admin_token().await;
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().unwrap().push(body);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut host = TestHost::new("hooked");
    assert_eq!(host.enroll(b, ENROLL_SECRET).await.0, StatusCode::OK);
    let policy = create_policy(a, &admin, "hooked policy", "SELECT 1;").await;
    let webhook = json!({"webhook_settings": {"failing_policies_webhook": {
        "enable_failing_policies_webhook": true,
        "destination_url": format!("http://127.0.0.1:{port}/hook"),
        "policy_ids": [policy],
    }}});
    let (status, body) = a.patch("/api/v1/fleet/config", &admin, webhook).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(answer(&host, b, policy, 1, false).await.0, StatusCode::OK);
    let delivered = eventually(PATIENCE, "the webhook is delivered", || {
        let received = received.clone();
        async move { received.lock().unwrap().first().cloned() }
    })
    .await;
    assert_eq!(delivered["policy"]["id"], policy, "{delivered}");
    assert_eq!(delivered["hosts"][0]["hostname"], "hooked", "{delivered}");
}

/// A host deleted through A: every agent endpoint on B answers `node_invalid` (so the agent enrolls again),
/// none with a 500 — writes at once, cached reads as soon as B's change feed has told it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (HERD_TEST_DATABASE_URL): scripts/test runs it"]
async fn a_host_deleted_on_a_is_node_invalid_on_b() {
    let servers = cluster(2).await;
    let (a, b) = (&servers[0], &servers[1]);
    let admin = a.admin_token().await;
    let mut host = TestHost::new("doomed");
    assert_eq!(host.enroll(a, ENROLL_SECRET).await.0, StatusCode::OK);
    // B knows the host (its cache holds it).
    assert_eq!(host.read(b).await.0, StatusCode::OK);
    let (status, listing) = a.get("/api/v1/fleet/hosts", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let id = listing["hosts"][0]["id"].as_i64().unwrap();
    let (status, _) = a.delete(&format!("/api/v1/fleet/hosts/{id}"), &admin).await;
    assert_eq!(status, StatusCode::OK);

    let key = host.node_key.clone();
    let status_log = json!({"node_key": key, "log_type": "status", "data": [
        {"severity": "0", "filename": "x.cpp", "line": "1", "message": "hello", "unixTime": "1700000000"}
    ]});
    let (status, body) = b.osquery("/api/osquery/log", status_log).await;
    assert_eq!((status, body["node_invalid"].as_bool()), (StatusCode::UNAUTHORIZED, Some(true)), "{body}");
    let (status, body) = answer(&host, b, 1, 1, true).await;
    assert_eq!((status, body["node_invalid"].as_bool()), (StatusCode::UNAUTHORIZED, Some(true)), "{body}");
    let token = json!({"node_key": key, "device_auth_token": "6f1c9a2e-4b7d-4e3a-9c5f-2d8b7a1e0f93"});
    let (status, body) = b.osquery("/api/fleet/orbit/device_token", token).await;
    assert_eq!((status, body["node_invalid"].as_bool()), (StatusCode::UNAUTHORIZED, Some(true)), "{body}");
    for path in ["/api/osquery/distributed/read", "/api/osquery/config"] {
        eventually(PATIENCE, path, || {
            let key = key.clone();
            async move {
                let (status, body) = b.osquery(path, json!({"node_key": key})).await;
                assert_ne!(status, StatusCode::INTERNAL_SERVER_ERROR, "{path}: {body}");
                (status == StatusCode::UNAUTHORIZED && body["node_invalid"] == true).then_some(())
            }
        })
        .await;
    }
    // Enrolling again through B works: the agent's way back.
    assert_eq!(host.enroll(b, ENROLL_SECRET).await.0, StatusCode::OK);
    assert_eq!(host.read(a).await.0, StatusCode::OK);
}
