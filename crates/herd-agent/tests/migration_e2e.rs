//! End-to-end, seed 002: a host managed by a previous system is moved off it by its user. The real agent
//! reports the old system through the admin's detail query (a marker file); the user starts the migration with
//! the device token; the server tells the migration webhook (an HTTPS receiver that "unenrolls" the host by
//! removing the marker) through the job table; the host's accelerated check-ins then show it unmanaged. A host
//! that never leaves the old system stops being asked when its window times out.

use herd_testkit::receiver::HttpsReceiver;
use herd_testkit::{Backend, ENROLL_SECRET, Server, TestHost, eventually};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);

async fn device(server: &Server, token: &str, method: reqwest::Method, path: &str) -> (u16, Value) {
    let url = format!("{}/api/latest/fleet/device/{token}{path}", server.url);
    let response = server.client.request(method, url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn host_by_name(server: &Server, admin: &str, name: &str) -> Option<Value> {
    let (_, hosts) = server.get(&format!("/api/v1/fleet/hosts?query={name}"), admin).await;
    let id = hosts["hosts"].as_array()?.first()?["id"].as_i64()?;
    let (_, host) = server.get(&format!("/api/v1/fleet/hosts/{id}"), admin).await;
    Some(host["host"].clone())
}

async fn activity_kinds(server: &Server, admin: &str) -> Vec<String> {
    let (_, feed) = server.get("/api/v1/fleet/activities?per_page=100", admin).await;
    feed["activities"].as_array().unwrap().iter().map(|a| a["type"].as_str().unwrap().to_string()).collect()
}

async fn migration(server: Server, marker: PathBuf, received: Arc<Mutex<Vec<Value>>>, url: String) {
    let admin = server.admin_token().await;
    let http =
        json!({"mdm": {"macos_migration": {"enable": true, "mode": "forced", "webhook_url": "http://127.0.0.1:1/x"}}});
    let (status, body) = server.patch("/api/v1/fleet/config", &admin, http).await;
    assert_eq!((status.as_u16(), &body["errors"][0]["name"]), (422, &json!("mdm.macos_migration.webhook_url")));
    let settings = json!({
        "agent_options": {"config": {"options": {"distributed_interval": 1}}},
        "mdm": {
            "macos_migration": {"enable": true, "mode": "forced", "webhook_url": url},
            "migration_query": format!("SELECT 1 FROM file WHERE path = '{}';", marker.display()),
            "migration_window_seconds": 60
        }
    });
    let (status, body) = server.patch("/api/v1/fleet/config", &admin, settings).await;
    assert_eq!(status, 200, "{body}");

    let work = marker.parent().unwrap().to_path_buf();
    let data_dir = work.join("agent");
    let _agent =
        herd_testkit::AgentProcess::start(env!("CARGO_BIN_EXE_herd-agent"), &server, &data_dir, "migrating", &[]);
    let host = eventually(PATIENCE, "the host reporting the old system", || async {
        let host = host_by_name(&server, &admin, "migrating").await?;
        (host["mdm_migration"]["managed_by_other"] == true).then_some(host)
    })
    .await;
    let token = eventually(PATIENCE, "the device token", || async {
        std::fs::read_to_string(data_dir.join("identifier"))
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
    })
    .await;
    let (_, desktop) = device(&server, &token, reqwest::Method::GET, "/desktop").await;
    assert_eq!(desktop["notifications"]["needs_mdm_migration"], true);
    assert_eq!(desktop["config"]["mdm"]["macos_migration"]["mode"], "forced");

    // The user starts it — twice, quickly: one webhook.
    assert_eq!(device(&server, &token, reqwest::Method::POST, "/migrate_mdm").await.0, 204);
    assert_eq!(device(&server, &token, reqwest::Method::POST, "/migrate_mdm").await.0, 204);
    let migrated = eventually(PATIENCE, "the host reporting itself unmanaged", || async {
        let host = host_by_name(&server, &admin, "migrating").await?;
        (host["mdm_migration"]["state"] == "migrated").then_some(host)
    })
    .await;
    assert_eq!(migrated["mdm_migration"]["managed_by_other"], false);
    assert!(!marker.exists(), "the receiver unenrolled the host");
    let bodies = received.lock().unwrap().clone();
    assert_eq!(bodies.len(), 1, "a second start inside the window sends nothing: {bodies:?}");
    let body = &bodies[0];
    assert_eq!(
        body["host"],
        json!({"id": host["id"], "uuid": host["uuid"], "hardware_serial": host["hardware_serial"]})
    );
    assert!(body["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 2, "exactly Fleet's payload: {body}");
    let (_, desktop) = device(&server, &token, reqwest::Method::GET, "/desktop").await;
    assert_eq!(desktop["notifications"]["needs_mdm_migration"], false);
    let kinds = activity_kinds(&server, &admin).await;
    assert!(kinds.contains(&"mdm_migration_started".into()) && kinds.contains(&"mdm_migration_completed".into()));

    // A host that never leaves the old system (osqueryd simulated): its window closes, it is asked no more.
    let (status, _) = server
        .patch("/api/v1/fleet/config", &admin, json!({"mdm": {"macos_migration": {"enable": true, "mode": "voluntary", "webhook_url": url}, "migration_query": "SELECT 1;", "migration_window_seconds": 10}}))
        .await;
    assert_eq!(status, 200);
    let mut stuck = TestHost::new("stuck");
    stuck.enroll(&server, ENROLL_SECRET).await;
    let (_, read) = stuck.read(&server).await;
    assert!(read["queries"].get("fleet_detail_query_mdm_migration").is_some(), "asked with the vitals: {read}");
    assert_eq!(stuck.answer_vitals(&server, &read).await.0, 200);
    let managed = json!({"fleet_detail_query_mdm_migration": [{"1": "1"}]});
    assert_eq!(stuck.write(&server, managed.clone(), json!({"fleet_detail_query_mdm_migration": 0})).await.0, 200);
    let stuck_token = "2c9b8a7f-6e5d-4c3b-a2f1-0e9d8c7b6a59";
    let (status, _) = server
        .osquery("/api/fleet/orbit/device_token", json!({"node_key": stuck.node_key, "device_auth_token": stuck_token}))
        .await;
    assert_eq!(status, 200);
    assert_eq!(device(&server, stuck_token, reqwest::Method::POST, "/migrate_mdm").await.0, 204);
    let (_, read) = stuck.read(&server).await;
    let names: Vec<&String> = read["queries"].as_object().unwrap().keys().collect();
    assert_eq!(names, vec!["fleet_detail_query_mdm_migration"], "only the management status in the window");
    assert!(read["accelerate"].as_u64().is_some_and(|s| (1..=10).contains(&s)), "{read}");
    stuck.write(&server, managed, json!({"fleet_detail_query_mdm_migration": 0})).await;
    eventually(PATIENCE, "the window timing out", || async {
        let host = host_by_name(&server, &admin, "stuck").await?;
        (host["mdm_migration"]["state"] == "timed_out").then_some(())
    })
    .await;
    assert!(activity_kinds(&server, &admin).await.contains(&"mdm_migration_timed_out".into()));
    let (_, read) = stuck.read(&server).await;
    assert!(
        read["queries"].get("fleet_detail_query_mdm_migration").is_none() && read.get("accelerate").is_none(),
        "{read}"
    );
    let (status, body) = device(&server, "not-a-device-token-0000000", reqwest::Method::POST, "/migrate_mdm").await;
    assert_eq!(status, 401, "{body}");
}

async fn run(backend: Backend) {
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("old-mdm-enrolled");
    std::fs::write(&marker, "enrolled").unwrap();
    // The management system the webhook drives: it lets go of the device (the marker goes).
    let released = marker.clone();
    let receiver = HttpsReceiver::start(work.path(), "/migrate", move |_| {
        let _ = std::fs::remove_file(&released);
    })
    .await;
    let (url, cert, received) = (receiver.url, receiver.cert, receiver.received);
    let herd = herd_testkit::herd_beside(env!("CARGO_BIN_EXE_herd-agent"));
    let cert = cert.to_string_lossy().to_string();
    // The receiver is on loopback, which the outbound policy forbids unless allowed.
    let mut args = vec!["--webhook-ca-cert", &cert];
    args.extend(herd_testkit::ALLOW_LOOPBACK_WEBHOOKS);
    herd_testkit::with_server_args(&herd, backend, &args, |server| migration(server, marker, received, url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migration_end_to_end() {
    run(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs PostgreSQL (HERD_TEST_DATABASE_URL): scripts/test runs it"]
async fn postgres_migration_end_to_end() {
    run(Backend::Postgres).await;
}
