//! End-to-end: the real `herd` binary, spoken to over HTTPS the way osqueryd speaks to it.

use herd_testkit::{ENROLL_SECRET, Server, TestHost, eventually};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::Write;
use std::time::Duration;

herd_testkit::server_cases!(
    enroll_vitals_and_host_view,
    bad_secret_and_bad_node_keys_are_node_invalid,
    deleted_host_reenrolls_into_the_same_row,
    refetch_hands_out_vitals_again,
    team_secret_enrolls_into_team_and_config_follows_agent_options,
    status_and_result_logs_including_gzip,
    malformed_agent_requests_get_json_errors,
    shutdown_flushes_last_seen_times,
);

fn vitals_names(read: &Value) -> Vec<String> {
    let mut names: Vec<String> = read["queries"].as_object().unwrap().keys().cloned().collect();
    names.sort();
    names
}

async fn enroll_vitals_and_host_view(server: Server) {
    let admin = server.admin_token().await;
    let mut host = TestHost::new("web-1");
    let (status, body) = host.enroll(&server, ENROLL_SECRET).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(host.node_key.len(), 64);

    let (status, read) = host.read(&server).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        vitals_names(&read),
        [
            "fleet_detail_query_disk_space",
            "fleet_detail_query_network_interface",
            "fleet_detail_query_os_version",
            "fleet_detail_query_osquery_flags",
            "fleet_detail_query_osquery_info",
            "fleet_detail_query_system_info",
            "fleet_detail_query_uptime",
        ]
    );
    assert_eq!(read["accelerate"], json!(60), "a new host polls fast until its vitals are in");
    for name in vitals_names(&read) {
        let discovery = read["discovery"][&name].as_str().unwrap();
        assert!(discovery.contains("osquery_registry"), "{name}: {discovery}");
    }
    assert!(read["queries"]["fleet_detail_query_disk_space"].as_str().unwrap().contains("mounts"), "linux variant");

    // Results are not in yet: the next poll must not hand the same queries out again.
    let (_, again) = host.read(&server).await;
    assert_eq!(again, json!({"queries": {}}));

    let (status, body) = host.answer_vitals(&server, &read).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let (_, after) = host.read(&server).await;
    assert_eq!(after, json!({"queries": {}}), "nothing due once vitals are fresh");

    let (status, hosts) = server.get("/api/v1/fleet/hosts", &admin).await;
    assert_eq!(status, StatusCode::OK);
    let id = hosts["hosts"][0]["id"].as_i64().unwrap();
    let (status, body) = server.get(&format!("/api/v1/fleet/hosts/{id}"), &admin).await;
    assert_eq!(status, StatusCode::OK);
    let h = &body["host"];
    assert_eq!(h["uuid"], "UUID-WEB-1");
    assert_eq!(h["hostname"], "web-1");
    assert_eq!(h["display_name"], "web-1");
    assert_eq!(h["platform"], "ubuntu");
    assert_eq!(h["os_version"], "Ubuntu 22.4");
    assert_eq!(h["osquery_version"], "5.12.1");
    assert_eq!(h["hardware_serial"], "SN-web-1");
    assert_eq!(h["hardware_model"], "T1000");
    assert_eq!(h["cpu_brand"], "Test CPU @ 3.0GHz");
    assert_eq!(h["cpu_logical_cores"], 8);
    assert_eq!(h["memory"], 17_179_869_184_i64);
    assert_eq!(h["uptime"], 3_600_000_000_000_i64, "nanoseconds, as Fleet reports");
    assert_eq!(h["primary_ip"], "192.0.2.10");
    assert_eq!(h["primary_mac"], "00:11:22:33:44:55");
    assert_eq!(h["percent_disk_space_available"], 41.5);
    assert_eq!(h["gigs_disk_space_available"], 98.2);
    assert_eq!(h["distributed_interval"], 10);
    assert_eq!(h["status"], "online");
    assert_eq!(h["refetch_requested"], false);
    assert!(h["detail_updated_at"].is_string());
    assert!(h["seen_time"].is_string());
    assert_eq!(h["team_id"], Value::Null);
    for (path, key) in
        [("/api/v1/fleet/hosts/identifier/web-1", "host"), ("/api/latest/fleet/hosts/identifier/UUID-WEB-1", "host")]
    {
        let (status, body) = server.get(path, &admin).await;
        assert_eq!((status, body[key]["id"].as_i64()), (StatusCode::OK, Some(id)), "{path}");
    }
    let (_, count) = server.get("/api/v1/fleet/hosts/count?status=online", &admin).await;
    assert_eq!(count, json!({"count": 1}));
}

async fn bad_secret_and_bad_node_keys_are_node_invalid(server: Server) {
    let mut host = TestHost::new("intruder");
    let (status, body) = host.enroll(&server, "wrong-secret").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["node_invalid"], true);
    assert!(body["error"].as_str().unwrap().contains("enroll secret"));
    for path in
        ["/api/osquery/config", "/api/osquery/distributed/read", "/api/v1/osquery/distributed/read", "/api/osquery/log"]
    {
        let (status, body) =
            server.osquery(path, json!({"node_key": "not-a-key", "log_type": "status", "data": []})).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(body["node_invalid"], true, "{path}");
        let (status, body) = server.osquery(path, json!({"log_type": "status", "data": []})).await;
        assert_eq!((status, &body["node_invalid"]), (StatusCode::UNAUTHORIZED, &json!(true)), "{path} without key");
    }
    let (status, body) = server
        .osquery("/api/osquery/distributed/write", json!({"node_key": "nope", "queries": {}, "statuses": {}}))
        .await;
    assert_eq!((status, &body["node_invalid"]), (StatusCode::UNAUTHORIZED, &json!(true)));

    // The node key may also come in osquery 5.23's header.
    host.enroll(&server, ENROLL_SECRET).await;
    let response = server
        .client
        .post(format!("{}/api/osquery/distributed/read", server.url))
        .header("Authorization", format!("NodeKey {}", host.node_key))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

async fn deleted_host_reenrolls_into_the_same_row(server: Server) {
    let admin = server.admin_token().await;
    let mut host = TestHost::new("laptop-7");
    host.enroll(&server, ENROLL_SECRET).await;
    let (_, read) = host.read(&server).await;
    host.answer_vitals(&server, &read).await;
    let (_, hosts) = server.get("/api/v1/fleet/hosts", &admin).await;
    let id = hosts["hosts"][0]["id"].as_i64().unwrap();

    // Re-enrolling (osquery lost its key) keeps the row and revokes the previous key.
    let old_key = host.node_key.clone();
    host.enroll(&server, ENROLL_SECRET).await;
    let (status, body) = server.osquery("/api/osquery/distributed/read", json!({"node_key": old_key})).await;
    assert_eq!((status, &body["node_invalid"]), (StatusCode::UNAUTHORIZED, &json!(true)));
    let (_, hosts) = server.get("/api/v1/fleet/hosts", &admin).await;
    assert_eq!(hosts["hosts"].as_array().unwrap().len(), 1);
    assert_eq!(hosts["hosts"][0]["id"].as_i64(), Some(id));

    let (status, _) = server.delete(&format!("/api/v1/fleet/hosts/{id}"), &admin).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = host.read(&server).await;
    assert_eq!((status, &body["node_invalid"]), (StatusCode::UNAUTHORIZED, &json!(true)));
    let (status, _) = server.get(&format!("/api/v1/fleet/hosts/{id}"), &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = host.enroll(&server, ENROLL_SECRET).await;
    assert_eq!(status, StatusCode::OK);
    let (_, read) = host.read(&server).await;
    assert!(!read["queries"].as_object().unwrap().is_empty(), "a re-enrolled host reports its vitals again");
    let (_, hosts) = server.get("/api/v1/fleet/hosts", &admin).await;
    assert_eq!(hosts["hosts"].as_array().unwrap().len(), 1);
    let new_id = hosts["hosts"][0]["id"].as_i64().unwrap();
    assert_ne!(new_id, id, "a deleted row is gone; the host comes back as a new row");
    assert_eq!(hosts["hosts"][0]["uuid"], "UUID-LAPTOP-7");
}

async fn refetch_hands_out_vitals_again(server: Server) {
    let admin = server.admin_token().await;
    let mut host = TestHost::new("db-1");
    host.enroll(&server, ENROLL_SECRET).await;
    let (_, read) = host.read(&server).await;
    host.answer_vitals(&server, &read).await;
    assert_eq!(host.read(&server).await.1, json!({"queries": {}}));
    let (_, hosts) = server.get("/api/v1/fleet/hosts", &admin).await;
    let id = hosts["hosts"][0]["id"].as_i64().unwrap();

    let (status, _) = server.post(&format!("/api/v1/fleet/hosts/{id}/refetch"), &admin, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = server.get(&format!("/api/v1/fleet/hosts/{id}"), &admin).await;
    assert_eq!(body["host"]["refetch_requested"], true);
    let (_, read) = host.read(&server).await;
    assert_eq!(vitals_names(&read).len(), 7, "refetch: every vitals query at the next check-in");
    assert_eq!(read.get("accelerate"), None, "known hosts are not accelerated");
    host.answer_vitals(&server, &read).await;
    let (_, body) = server.get(&format!("/api/v1/fleet/hosts/{id}"), &admin).await;
    assert_eq!(body["host"]["refetch_requested"], false);
    assert_eq!(host.read(&server).await.1, json!({"queries": {}}));
    let (status, _) = server.post("/api/v1/fleet/hosts/99999/refetch", &admin, json!({})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn team_secret_enrolls_into_team_and_config_follows_agent_options(server: Server) {
    let admin = server.admin_token().await;
    let (status, team) = server
        .post("/api/v1/fleet/teams", &admin, json!({"name": "Servers", "secrets": [{"secret": "servers-secret-1"}]}))
        .await;
    assert_eq!(status, StatusCode::OK, "{team}");
    let team_id = team["team"]["id"].as_i64().unwrap();

    let mut global_host = TestHost::new("g-1");
    global_host.enroll(&server, ENROLL_SECRET).await;
    let mut team_host = TestHost::new("t-1");
    let (status, _) = team_host.enroll(&server, "servers-secret-1").await;
    assert_eq!(status, StatusCode::OK);
    let (_, hosts) = server.get(&format!("/api/v1/fleet/hosts?team_id={team_id}"), &admin).await;
    assert_eq!(hosts["hosts"].as_array().unwrap().len(), 1);
    assert_eq!(hosts["hosts"][0]["hostname"], "t-1");
    assert_eq!(hosts["hosts"][0]["team_name"], "Servers");

    let config_of = |host: &TestHost| server.osquery("/api/osquery/config", json!({"node_key": host.node_key}));
    let (status, config) = config_of(&global_host).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(config["options"]["distributed_interval"], 10, "Fleet's default agent options");

    let (status, body) = server
        .patch(
            "/api/v1/fleet/config",
            &admin,
            json!({"agent_options": {"config": {"options": {"distributed_interval": 30}}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(config_of(&global_host).await.1["options"]["distributed_interval"], 30);
    assert_eq!(config_of(&team_host).await.1["options"]["distributed_interval"], 30, "no team options yet");

    let (status, body) = server
        .patch(
            &format!("/api/v1/fleet/teams/{team_id}"),
            &admin,
            json!({"agent_options": {"config": {"options": {"distributed_interval": 5}}}}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(config_of(&team_host).await.1["options"]["distributed_interval"], 5);
    assert_eq!(config_of(&global_host).await.1["options"]["distributed_interval"], 30);

    // Rotating the team's secrets: the old one stops enrolling, the new one works.
    let (status, _) = server
        .patch(
            &format!("/api/v1/fleet/teams/{team_id}/secrets"),
            &admin,
            json!({"secrets": [{"secret": "servers-secret-2"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let mut newcomer = TestHost::new("t-2");
    assert_eq!(newcomer.enroll(&server, "servers-secret-1").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(newcomer.enroll(&server, "servers-secret-2").await.0, StatusCode::OK);

    // Moving hosts between teams.
    let (_, all) = server.get("/api/v1/fleet/hosts", &admin).await;
    let ids: Vec<i64> = all["hosts"].as_array().unwrap().iter().map(|h| h["id"].as_i64().unwrap()).collect();
    let (status, _) =
        server.post("/api/v1/fleet/hosts/transfer", &admin, json!({"team_id": team_id, "hosts": ids})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, count) = server.get(&format!("/api/v1/fleet/hosts/count?team_id={team_id}"), &admin).await;
    assert_eq!(count["count"], 3);
    assert_eq!(
        config_of(&global_host).await.1["options"]["distributed_interval"],
        5,
        "moved host gets its new team's options"
    );
    let (status, body) =
        server.post("/api/v1/fleet/hosts/transfer", &admin, json!({"team_id": 4242, "hosts": ids})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(body["errors"][0]["name"], "team_id");
}

async fn status_and_result_logs_including_gzip(server: Server) {
    let admin = server.admin_token().await;
    let mut host = TestHost::new("logger");
    host.enroll(&server, ENROLL_SECRET).await;
    let status_lines = json!({
        "node_key": host.node_key,
        "log_type": "status",
        "data": [
            {"hostIdentifier": "logger", "calendarTime": "Mon Jan  1 00:00:00 2024 UTC", "unixTime": "1704067200", "severity": "0", "filename": "init.cpp", "line": "42", "message": "osquery started", "version": "5.12.1"},
            {"hostIdentifier": "logger", "calendarTime": "Mon Jan  1 00:00:01 2024 UTC", "unixTime": "1704067201", "severity": "2", "filename": "tls.cpp", "line": "7", "message": "TLS error", "version": "5.12.1"}
        ]
    });
    let (status, body) = server.osquery("/api/osquery/log", status_lines).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));

    // osquery compresses log bodies when --logger_tls_compress is set.
    let results = json!({
        "node_key": host.node_key,
        "log_type": "result",
        "data": [{"name": "pack/it/processes", "hostIdentifier": "logger", "calendarTime": "x", "unixTime": 1704067202, "epoch": 0, "counter": 0, "numerics": false, "columns": {"pid": "1"}, "action": "added"}]
    });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(results.to_string().as_bytes()).unwrap();
    let (status, body) = server
        .raw(
            Method::POST,
            "/api/osquery/log",
            None,
            &[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
            gz.finish().unwrap(),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));

    let (_, hosts) = server.get("/api/v1/fleet/hosts", &admin).await;
    let id = hosts["hosts"][0]["id"].as_i64().unwrap();
    let (status, logs) = server.get(&format!("/api/v1/fleet/hosts/{id}/status_logs"), &admin).await;
    assert_eq!(status, StatusCode::OK);
    let logs = logs["status_logs"].as_array().unwrap();
    assert_eq!(logs.len(), 2);
    assert_eq!(logs[0]["message"], "TLS error", "newest first");
    assert_eq!(logs[0]["severity"], 2);
    assert_eq!(logs[1]["filename"], "init.cpp");
    let written = std::fs::read_to_string(server.data_dir.join("osquery-results.log")).unwrap();
    let line: Value = serde_json::from_str(written.lines().last().unwrap()).unwrap();
    assert_eq!(line["name"], "pack/it/processes");
    assert_eq!(line["herd_host_id"], id);

    let (status, body) = server
        .osquery("/api/osquery/log", json!({"node_key": host.node_key, "log_type": "status", "data": [1, 2]}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, _) =
        server.osquery("/api/osquery/log", json!({"node_key": host.node_key, "log_type": "debug", "data": []})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

async fn malformed_agent_requests_get_json_errors(server: Server) {
    let mut host = TestHost::new("fuzzy");
    host.enroll(&server, ENROLL_SECRET).await;
    let bodies: Vec<(&[u8], StatusCode)> =
        vec![(b"{not json", StatusCode::BAD_REQUEST), (b"", StatusCode::BAD_REQUEST), (b"[]", StatusCode::BAD_REQUEST)];
    for (body, want) in bodies {
        let (status, reply) = server
            .raw(
                Method::POST,
                "/api/osquery/distributed/write",
                None,
                &[("Content-Type", "application/json")],
                body.to_vec(),
            )
            .await;
        assert_eq!(status, want, "{:?}", String::from_utf8_lossy(body));
        assert!(reply["error"].is_string());
    }
    let wrong_types =
        json!({"node_key": host.node_key, "queries": {"fleet_detail_query_uptime": "oops"}, "statuses": {}});
    let (status, reply) = server.osquery("/api/osquery/distributed/write", wrong_types).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    assert!(reply["error"].as_str().unwrap().contains("queries"), "{reply}");
    let bad_status = json!({"node_key": host.node_key, "queries": {}, "statuses": {"x": "zero"}});
    assert_eq!(server.osquery("/api/osquery/distributed/write", bad_status).await.0, StatusCode::BAD_REQUEST);
    let (status, _) = server
        .raw(Method::POST, "/api/osquery/log", None, &[("Content-Encoding", "gzip")], b"not gzip at all".to_vec())
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    server.assert_oversize_refused("/api/osquery/log", None, 40 << 20).await;
    // A small gzip body that inflates past the limit is refused too, after reading it whole.
    let mut bomb = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..130 {
        bomb.write_all(&spaces).unwrap();
    }
    let (status, reply) = server
        .raw(Method::POST, "/api/osquery/log", None, &[("Content-Encoding", "gzip")], bomb.finish().unwrap())
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{reply}");
    let sql = json!({"enroll_secret": ENROLL_SECRET, "host_identifier": "x'; DROP TABLE hosts; --"});
    assert_eq!(server.osquery("/api/osquery/enroll", sql).await.0, StatusCode::OK);
    // A failed query (status ≠ 0) leaves the host's columns alone and is not an error.
    let (_, read) = host.read(&server).await;
    let failed = json!({"fleet_detail_query_uptime": []});
    let (status, _) = host.write(&server, failed, json!({"fleet_detail_query_uptime": 1})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(read["queries"].is_object());
    // The server is still serving.
    assert_eq!(host.read(&server).await.0, StatusCode::OK);
}

async fn shutdown_flushes_last_seen_times(server: Server) {
    let mut host = TestHost::new("sleepy");
    host.enroll(&server, ENROLL_SECRET).await;
    host.read(&server).await;
    // Stop at once: the check-in above is only in memory until the shutdown flush writes it.
    let server = server.restart();
    let admin = server.admin_token().await;
    let (_, hosts) = server.get("/api/v1/fleet/hosts", &admin).await;
    assert!(hosts["hosts"][0]["seen_time"].is_string(), "seen time survived the restart: {hosts}");
    // And the restarted server still knows the node key (from the database, its cache being empty).
    let seen = eventually(Duration::from_secs(10), "check-in after restart", || async {
        (host.read(&server).await.0 == StatusCode::OK).then_some(())
    })
    .await;
    let _: () = seen;
    assert!(!server.stdout.iter().any(|l| l.contains("generated now and shown")), "no second bootstrap");
}

/// README's first command: `herd serve --with-agent` also enrolls this machine, with real vitals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_with_agent_enrolls_this_machine() {
    let dir = tempfile::tempdir().unwrap().keep();
    let mut server = Server::start_with(
        std::path::Path::new(&herd_testkit::herd_binary()),
        dir,
        None,
        "127.0.0.1:0",
        // Not at Fleet's path: README's quick-start test publishes this machine's token there.
        &["--with-agent", "--with-agent-orbit-identifier="],
    );
    assert!(server.stdout.iter().any(|l| l.contains("local agent")), "{:?}", server.stdout);
    let admin = server.admin_token().await;
    let host = eventually(Duration::from_secs(60), "this machine with vitals", || async {
        let (_, hosts) = server.get("/api/v1/fleet/hosts", &admin).await;
        let host = hosts["hosts"].as_array()?.first()?.clone();
        (host["os_version"] != "" && host["detail_updated_at"].is_string()).then_some(host)
    })
    .await;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(host["hostname"], hostname.trim());
    assert_eq!(host["status"], "online");
    assert!(server.stop().success(), "clean exit with the agent running");
}
