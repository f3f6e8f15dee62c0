//! End-to-end: request bodies are read within limits on size *and* shape, decoded off the async workers,
//! and refused cheaply — a small gzip body cannot become gigabytes of memory, and a bad credential is refused
//! before the body it came with is built.

use herd_testkit::{ENROLL_SECRET, Server, TestHost, client_for};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::io::Write;

herd_testkit::server_cases!(
    memory_bombs_stay_within_a_memory_bound,
    real_reports_of_normal_size_still_work,
    refusals_name_the_limit_that_was_passed,
    a_node_key_in_the_header_is_checked_before_the_body,
    unread_bodies_are_drained_so_the_answer_can_be_read,
);

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// `{"<key>":"<key value>","<field>":[0,0,0,…]}` with `values` zeros: a few dozen KiB of gzip that a
/// naive server inflates into millions of JSON values.
fn value_bomb(key: &str, key_value: &str, field: &str, values: usize) -> Vec<u8> {
    let mut text = format!(r#"{{"{key}":"{key_value}","{field}":["#).into_bytes();
    text.reserve(values * 2);
    for _ in 0..values {
        text.extend_from_slice(b"0,");
    }
    text.extend_from_slice(b"0]}");
    gzip(&text)
}

/// `{"<key>":"<key value>","<field>":"xxxx…"}`: a valid shape far over the size limit once inflated.
fn size_bomb(key: &str, key_value: &str, field: &str, bytes: usize) -> Vec<u8> {
    let mut text = format!(r#"{{"{key}":"{key_value}","{field}":""#).into_bytes();
    text.resize(text.len() + bytes, b'x');
    text.extend_from_slice(b"\"}");
    gzip(&text)
}

fn proc_status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap_or_else(|| panic!("{field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn post_gzip(server: &Server, path: &str, token: Option<&str>, body: Vec<u8>) -> (StatusCode, Value) {
    server
        .raw(Method::POST, path, token, &[("Content-Encoding", "gzip"), ("Content-Type", "application/json")], body)
        .await
}

/// The server's peak resident memory stays under this while bombs arrive (it was ~2.2 GB for one 126 KiB
/// bomb before bodies had shape limits). What it may legitimately hold: a few decodes at once (2 to 8, by
/// cores), each at most 32 MiB of text.
const PEAK_RSS_BOUND_MIB: u64 = 256;

async fn memory_bombs_stay_within_a_memory_bound(server: Server) {
    let pid = server.child.as_ref().unwrap().id();
    let admin = server.admin_token().await;
    let mut host = TestHost::new("bombed");
    assert_eq!(host.enroll(&server, ENROLL_SECRET).await.0, StatusCode::OK);
    let before_kib = proc_status_kib(pid, "VmRSS:");

    let values = 5_000_000; // 10 MB of JSON text, 5 times the most values a report may have
    let enroll_bomb = value_bomb("enroll_secret", ENROLL_SECRET, "host_details", values);
    let log_bomb = value_bomb("node_key", "not-a-node-key", "data", values);
    let write_bomb = value_bomb("node_key", &host.node_key, "messages", values);
    let rest_bomb = value_bomb("org_info", "x", "items", values);
    let string_bomb = size_bomb("node_key", "not-a-node-key", "data", 64 << 20);
    assert!(log_bomb.len() < 256 << 10, "the bomb is small: {} bytes", log_bomb.len());
    assert!(string_bomb.len() < 512 << 10, "the bomb is small: {} bytes", string_bomb.len());

    let mut attacks = tokio::task::JoinSet::new();
    for _ in 0..3 {
        for (path, token, body) in [
            ("/api/osquery/enroll", None, enroll_bomb.clone()),
            ("/api/osquery/log", None, log_bomb.clone()),
            ("/api/osquery/distributed/write", None, write_bomb.clone()),
            ("/api/osquery/log", None, string_bomb.clone()),
            ("/api/v1/fleet/config", Some(admin.clone()), rest_bomb.clone()),
        ] {
            let (client, url) = (server.client.clone(), format!("{}{path}", server.url));
            attacks.spawn(async move {
                let method = if path.ends_with("/config") { Method::PATCH } else { Method::POST };
                let mut request = client.request(method, url).header("Content-Encoding", "gzip").body(body);
                if let Some(token) = token {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.unwrap_or_else(|err| panic!("{path}: {err:?}"));
                (path, response.status(), response.json::<Value>().await.unwrap())
            });
        }
    }
    // The server keeps answering others while the bombs are being refused.
    for _ in 0..20 {
        let (status, _) = host.read(&server).await;
        assert_eq!(status, StatusCode::OK);
    }
    while let Some(answer) = attacks.join_next().await {
        let (path, status, body) = answer.unwrap();
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{path}: {body}");
        let reason = body["error"].as_str().or(body["errors"][0]["reason"].as_str()).unwrap_or_default().to_string();
        assert!(reason.contains("values") || reason.contains("after gunzip"), "{path}: {reason}");
    }
    let peak_mib = proc_status_kib(pid, "VmHWM:") / 1024;
    eprintln!("resident before: {} MiB, peak: {peak_mib} MiB", before_kib / 1024);
    assert!(peak_mib < PEAK_RSS_BOUND_MIB, "peak resident memory {peak_mib} MiB");
    assert_eq!(server.get("/api/v1/fleet/me", &admin).await.0, StatusCode::OK);
}

async fn real_reports_of_normal_size_still_work(server: Server) {
    let mut host = TestHost::new("big-reporter");
    assert_eq!(host.enroll(&server, ENROLL_SECRET).await.0, StatusCode::OK);
    // 50,000 rows of 6 columns (~5 MB): far more than any policy or vitals answer.
    let rows: Vec<Value> = (0..50_000)
        .map(|i| json!({"path": format!("/usr/lib/x86_64-linux-gnu/lib{i}.so"), "size": i, "mode": "0644", "uid": 0, "gid": 0, "type": "regular"}))
        .collect();
    let (status, body) = host.write(&server, json!({"some_large_query": rows}), json!({"some_large_query": 0})).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));

    // A gzip batch of 1,000 result lines, as `--logger_tls_compress` sends it.
    let lines: Vec<Value> = (0..1000)
        .map(|i| json!({"name": "pack_x_q", "hostIdentifier": "big-reporter", "unixTime": 1700000000 + i, "columns": {"n": i.to_string()}, "action": "added"}))
        .collect();
    let body = serde_json::to_vec(&json!({"node_key": host.node_key, "log_type": "result", "data": lines})).unwrap();
    let (status, body) = post_gzip(&server, "/api/osquery/log", None, gzip(&body)).await;
    assert_eq!((status, body), (StatusCode::OK, json!({})));
    let log = std::fs::read_to_string(server.data_dir.join("osquery-results.log")).unwrap();
    assert_eq!(log.lines().filter(|l| l.contains("pack_x_q")).count(), 1000);
}

async fn refusals_name_the_limit_that_was_passed(server: Server) {
    let admin = server.admin_token().await;
    let mut host = TestHost::new("limited");
    assert_eq!(host.enroll(&server, ENROLL_SECRET).await.0, StatusCode::OK);

    // The REST limit (4 MiB) applies after gunzip.
    let big = size_bomb("org_info", "x", "filler", 5 << 20);
    assert!(big.len() < 64 << 10);
    let (status, body) =
        server.raw(Method::PATCH, "/api/v1/fleet/config", Some(&admin), &[("Content-Encoding", "gzip")], big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["errors"][0]["reason"], "request body is larger than 4 MiB after gunzip");

    // Nesting.
    let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
    let body = format!(r#"{{"node_key":"{}","queries":{{"q":{deep}}}}}"#, host.node_key).into_bytes();
    let (status, body) = server.raw(Method::POST, "/api/osquery/distributed/write", None, &[], body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"], "request body nests deeper than 64 levels");
    assert_eq!(body["node_invalid"], false);

    // Rows of one query.
    let rows: Vec<Value> = (0..100_001).map(|_| json!({})).collect();
    let (status, body) = host.write(&server, json!({"q": rows}), json!({"q": 0})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("more than 100000 rows"), "{body}");

    // Over the size on the wire: refused, and the answer is readable.
    let (status, body) = server.raw(Method::POST, "/api/osquery/enroll", None, &[], vec![b' '; (1 << 20) + 1]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"], "request body is larger than 1 MiB");
}

async fn a_node_key_in_the_header_is_checked_before_the_body(server: Server) {
    let mut host = TestHost::new("header-key");
    assert_eq!(host.enroll(&server, ENROLL_SECRET).await.0, StatusCode::OK);
    let auth = |key: &str| format!("NodeKey {key}");

    // A bad key in the header: refused without reading a body that is over every limit.
    let bad = auth("not-a-node-key");
    let (status, body) = server
        .raw(Method::POST, "/api/osquery/distributed/write", None, &[("Authorization", &bad)], vec![b'{'; 40 << 20])
        .await;
    assert_eq!((status, body["node_invalid"].clone()), (StatusCode::UNAUTHORIZED, json!(true)), "{body}");

    // The good key in the header, with no key in the body (osquery ≥ 5.23).
    let good = auth(&host.node_key);
    let (status, body) = server
        .raw(Method::POST, "/api/osquery/distributed/read", None, &[("Authorization", &good)], b"{}".to_vec())
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Header and body disagree: refused.
    let mut other = TestHost::new("other-key");
    assert_eq!(other.enroll(&server, ENROLL_SECRET).await.0, StatusCode::OK);
    let body = serde_json::to_vec(&json!({"node_key": other.node_key})).unwrap();
    let (status, body) =
        server.raw(Method::POST, "/api/osquery/distributed/read", None, &[("Authorization", &good)], body).await;
    assert_eq!(
        (status, body["error"].clone()),
        (StatusCode::UNAUTHORIZED, json!("node keys in header and body differ"))
    );

    // No key anywhere.
    let (status, body) = server.raw(Method::POST, "/api/osquery/config", None, &[], b"{}".to_vec()).await;
    assert_eq!((status, body["error"].clone()), (StatusCode::UNAUTHORIZED, json!("missing node key")));
}

async fn unread_bodies_are_drained_so_the_answer_can_be_read(server: Server) {
    let token = server.admin_token().await;
    // One keep-alive client: each refusal must be readable, and the connection usable after it.
    let client = client_for(&server.data_dir.join("tls/cert.pem"));
    for attempt in 0..5 {
        let response = client
            .post(format!("{}/api/v1/fleet/teams", server.url))
            .bearer_auth("not-a-session-token")
            .body(vec![b' '; 3 << 20])
            .send()
            .await
            .unwrap_or_else(|err| panic!("attempt {attempt}: the answer could not be read: {err:?}"));
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    // Over the route's limit: refused with 413, readable.
    let response = client
        .post(format!("{}/api/v1/fleet/teams", server.url))
        .bearer_auth(&token)
        .body(vec![b' '; 5 << 20])
        .send()
        .await
        .expect("the 413 can be read");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}
