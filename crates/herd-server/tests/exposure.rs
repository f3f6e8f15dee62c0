//! End-to-end: what makes the server safe to expose to a whole fleet and to every admin.
//! - Outbound policy: webhooks cannot be aimed at the server's own machine, its network or the metadata service.
//! - Connections: slow and idle clients are cut off; at the connection limit health checks still get in.
//! - Result logs: rotated at a size, a budget per host, torn lines repaired, nothing acknowledged lost on kill -9.

use axum::Json;
use herd_testkit::{ENROLL_SECRET, Server, TestHost, eventually};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------------------------
// Outbound policy

/// A webhook receiver on loopback counting the POSTs it gets; its port.
async fn start_receiver() -> (u16, Arc<AtomicUsize>) {
    let received = Arc::new(AtomicUsize::new(0));
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |Json(_): Json<Value>| {
            let sink = sink.clone();
            async move {
                sink.fetch_add(1, Ordering::SeqCst);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, received)
}

/// A team, its maintainer's token, and a host enrolled with the team's own secret (as the maintainer could).
async fn maintainer_with_a_host(server: &Server) -> (i64, String, TestHost) {
    let admin = server.admin_token().await;
    let (_, team) = server.post("/api/v1/fleet/teams", &admin, json!({"name": "Edge"})).await;
    let team_id = team["team"]["id"].as_i64().unwrap();
    let maintainer = server.user_token(&admin, "maintainer@edge.test", "maintainer", Some(team_id)).await;
    let secret = "edge-team-secret-0123456789";
    let (status, reply) = server
        .patch(&format!("/api/v1/fleet/teams/{team_id}/secrets"), &maintainer, json!({"secrets": [{"secret": secret}]}))
        .await;
    assert_eq!(status, 200, "{reply}");
    let mut host = TestHost::new("edge-1");
    let (status, reply) = host.enroll(server, secret).await;
    assert_eq!(status, 200, "{reply}");
    (team_id, maintainer, host)
}

async fn answer(host: &TestHost, server: &Server, policy: i64, pass: bool) {
    let name = format!("fleet_policy_query_{policy}");
    let rows = if pass { json!([{"1": "1"}]) } else { json!([]) };
    let (status, _) = host.write(server, json!({ name.clone(): rows }), json!({ name: 0 })).await;
    assert_eq!(status, 200);
}

async fn deliveries(server: &Server, token: &str) -> Vec<Value> {
    let (status, body) = server.get("/api/v1/fleet/webhook_deliveries", token).await;
    assert_eq!(status, 200, "{body}");
    body["webhook_deliveries"].as_array().cloned().unwrap_or_default()
}

/// Every place an admin or maintainer writes a webhook URL refuses a forbidden literal address, naming the field.
async fn forbidden_webhook_addresses_are_refused_when_written(server: Server) {
    let admin = server.admin_token().await;
    let (team_id, maintainer, _host) = maintainer_with_a_host(&server).await;
    let policies = format!("/api/v1/fleet/teams/{team_id}/policies");
    for url in [
        "http://127.0.0.1:8080/api/v1/fleet/users",
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
        "http://[::1]:22/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fd00:ec2::254]/",
        "http://10.0.0.1/",
        "http://2130706433/",
        "http://0.0.0.0:8080/",
    ] {
        let (status, reply) =
            server.post(&policies, &maintainer, json!({"name": "p", "query": "SELECT 1;", "webhook_url": url})).await;
        assert_eq!((status.as_u16(), &reply["errors"][0]["name"]), (422, &json!("webhook_url")), "{url}: {reply}");
        assert!(reply["errors"][0]["reason"].as_str().unwrap().contains("may not go there"), "{reply}");
    }
    let (status, created) = server.post(&policies, &maintainer, json!({"name": "p", "query": "SELECT 1;"})).await;
    assert_eq!(status, 200, "{created}");
    let id = created["policy"]["id"].as_i64().unwrap();
    let (status, reply) =
        server.patch(&format!("{policies}/{id}"), &maintainer, json!({"webhook_url": "http://127.1/"})).await;
    assert_eq!((status.as_u16(), &reply["errors"][0]["name"]), (422, &json!("webhook_url")), "{reply}");

    let fleet_hook = |url: &str| {
        json!({"webhook_settings": {"failing_policies_webhook": {
            "enable_failing_policies_webhook": true, "destination_url": url, "policy_ids": [id]}}})
    };
    let (status, reply) =
        server.patch(&format!("/api/v1/fleet/teams/{team_id}"), &admin, fleet_hook("http://192.168.1.1/")).await;
    assert_eq!(
        (status.as_u16(), &reply["errors"][0]["name"]),
        (422, &json!("webhook_settings.failing_policies_webhook.destination_url")),
        "{reply}"
    );
    let (status, reply) = server.patch("/api/v1/fleet/config", &admin, fleet_hook("http://169.254.169.254/")).await;
    assert_eq!(
        (status.as_u16(), &reply["errors"][0]["name"]),
        (422, &json!("webhook_settings.failing_policies_webhook.destination_url")),
        "{reply}"
    );
    let migration =
        json!({"mdm": {"macos_migration": {"enable": true, "mode": "voluntary", "webhook_url": "https://[::1]/m"}}});
    let (status, reply) = server.patch("/api/v1/fleet/config", &admin, migration).await;
    assert_eq!((status.as_u16(), &reply["errors"][0]["name"]), (422, &json!("mdm.macos_migration.webhook_url")));
    // A public address and a host name are accepted when written.
    let (status, reply) = server
        .patch(&format!("{policies}/{id}"), &maintainer, json!({"webhook_url": "https://hooks.example.com/x"}))
        .await;
    assert_eq!(status, 200, "{reply}");
}

/// A host name that resolves to loopback passes the write-time check but is refused when delivering: recorded
/// as a failed delivery with the reason, not retried, and the receiver gets nothing.
async fn a_name_resolving_to_loopback_is_refused_at_delivery(server: Server) {
    let admin = server.admin_token().await;
    let (port, received) = start_receiver().await;
    let (team_id, maintainer, host) = maintainer_with_a_host(&server).await;
    let url = format!("http://localhost:{port}/hook");
    let (status, created) = server
        .post(
            &format!("/api/v1/fleet/teams/{team_id}/policies"),
            &maintainer,
            json!({"name": "ssrf", "query": "SELECT 1;", "webhook_url": url}),
        )
        .await;
    assert_eq!(status, 200, "{created}");
    let policy = created["policy"]["id"].as_i64().unwrap();
    answer(&host, &server, policy, false).await;
    let delivery = eventually(PATIENCE, "the delivery recorded as failed", || async {
        deliveries(&server, &admin).await.into_iter().find(|d| d["status"] == "failed")
    })
    .await;
    let reason = delivery["last_error"].as_str().unwrap();
    assert!(
        reason.contains("localhost resolves only to forbidden addresses") && reason.contains("loopback"),
        "{reason}"
    );
    assert_eq!(delivery["attempts"], 1, "refused once, not retried: {delivery}");
    assert_eq!(delivery["next_attempt_at"], Value::Null);
    assert_eq!(received.load(Ordering::SeqCst), 0, "the receiver on loopback got nothing");
}

mod allowed {
    use super::*;

    /// With the operator's allow flag, loopback receivers (by address or by name) are reached.
    async fn the_allow_flag_lets_loopback_webhooks_through(server: Server) {
        let admin = server.admin_token().await;
        let (port, received) = start_receiver().await;
        let (team_id, maintainer, host) = maintainer_with_a_host(&server).await;
        let mut policies = Vec::new();
        for (n, url) in
            [format!("http://127.0.0.1:{port}/hook"), format!("http://localhost:{port}/hook")].into_iter().enumerate()
        {
            let (status, created) = server
                .post(
                    &format!("/api/v1/fleet/teams/{team_id}/policies"),
                    &maintainer,
                    json!({"name": format!("allowed {n}"), "query": "SELECT 1;", "webhook_url": url}),
                )
                .await;
            assert_eq!(status, 200, "{created}");
            policies.push(created["policy"]["id"].as_i64().unwrap());
        }
        for policy in &policies {
            answer(&host, &server, *policy, false).await;
        }
        eventually(PATIENCE, "both deliveries", || async {
            let list = deliveries(&server, &admin).await;
            (list.iter().filter(|d| d["status"] == "delivered").count() == 2).then_some(())
        })
        .await;
        assert_eq!(received.load(Ordering::SeqCst), 2);
    }

    herd_testkit::server_cases!(args = herd_testkit::ALLOW_LOOPBACK_WEBHOOKS; the_allow_flag_lets_loopback_webhooks_through);
}

// ---------------------------------------------------------------------------------------------------------
// Connections

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// A TLS connection to the server that has finished its handshake (None if the server closed it first).
fn tls_connect(server: &Server) -> Option<TlsStream> {
    let pem = std::fs::read(server.data_dir.join("tls/cert.pem")).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut pem.as_slice()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let address = server.url.trim_start_matches("https://");
    let tcp = std::net::TcpStream::connect(address).ok()?;
    tcp.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(config), name).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).ok()?;
    }
    Some(stream)
}

/// Whether the server has closed the connection (EOF or an error), waiting up to the socket's read timeout.
fn closed_by_server(stream: &mut TlsStream) -> bool {
    let mut buf = [0u8; 4096];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

/// A slowloris client: TLS done, then one header byte at a time, each followed by a one-second wait for the
/// server's answer. Returns how many bytes it sent before the server closed the connection (None: never).
fn slow_client(server: &Server, max_bytes: usize) -> Option<usize> {
    let head = b"GET /livez HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    let Some(mut stream) = tls_connect(server) else { return Some(0) };
    for sent in 0..max_bytes {
        let byte = head.get(sent).copied().unwrap_or(b'a');
        if stream.write_all(&[byte]).and_then(|()| stream.flush()).is_err() {
            return Some(sent);
        }
        if closed_by_server(&mut stream) {
            return Some(sent + 1);
        }
    }
    None
}

async fn livez(server: &Server) -> bool {
    let client = herd_testkit::client_for(&server.data_dir.join("tls/cert.pem"));
    let request = client.get(format!("{}/livez", server.url)).timeout(Duration::from_secs(5)).send();
    matches!(request.await, Ok(response) if response.status() == 200)
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

mod limits {
    use super::*;

    pub const ARGS: [&str; 8] = [
        "--header-read-timeout",
        "2s",
        "--idle-timeout",
        "3s",
        "--request-body-timeout",
        "2s",
        "--max-connections",
        "12",
    ];
    const SLOW_CLIENTS: usize = 20;

    /// More slow clients than the connection limit: each is cut off (header-read timeout, or closed to make
    /// room), and /livez answers throughout.
    async fn slow_clients_are_cut_off_and_health_checks_get_in(server: Server) {
        let server = Arc::new(server);
        let outcomes: Arc<Mutex<Vec<Option<usize>>>> = Arc::default();
        let mut threads = Vec::new();
        for _ in 0..SLOW_CLIENTS {
            let (server, outcomes) = (server.clone(), outcomes.clone());
            // At most 60 bytes at one a second: the client gives up on its own after a minute.
            threads.push(std::thread::spawn(move || {
                let outcome = slow_client(&server, 60);
                outcomes.lock().unwrap().push(outcome);
            }));
        }
        // While they hold their connections (and the limit is reached), health checks are answered.
        for _ in 0..5 {
            eventually(Duration::from_secs(20), "/livez answering during the slow-client flood", || async {
                livez(&server).await.then_some(())
            })
            .await;
        }
        eventually(PATIENCE, "every slow client cut off", || async {
            (outcomes.lock().unwrap().len() == SLOW_CLIENTS).then_some(())
        })
        .await;
        for thread in threads {
            thread.join().unwrap();
        }
        let outcomes = outcomes.lock().unwrap().clone();
        assert!(outcomes.iter().all(Option::is_some), "a slow client kept its connection for a minute: {outcomes:?}");
        let (_, metrics_text) = {
            let response = server.client.get(format!("{}/metrics", server.url)).send().await.unwrap();
            ((), response.text().await.unwrap())
        };
        let cut = metric(&metrics_text, "herd_connections_timed_out_total")
            + metric(&metrics_text, "herd_connections_evicted_total");
        assert!(cut >= 1, "{metrics_text}");
        assert!(livez(&server).await);
    }

    /// A kept-alive connection with nothing more to ask is closed after the idle timeout.
    async fn idle_connections_are_closed(server: Server) {
        let mut stream = tls_connect(&server).expect("connected");
        stream.write_all(b"GET /livez HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut answer = Vec::new();
        let mut buf = [0u8; 4096];
        for _ in 0..10 {
            if let Ok(n) = stream.read(&mut buf) {
                answer.extend_from_slice(&buf[..n]);
            }
            if answer.ends_with(b"ok") {
                break;
            }
        }
        assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "{:?}", String::from_utf8_lossy(&answer));
        // Each wait is the socket's one-second read timeout; 30 of them is far beyond the 3 s idle timeout.
        let closed = (0..30).any(|_| closed_by_server(&mut stream));
        assert!(closed, "an idle connection stayed open 30 s");
    }

    /// A client that sends its headers and then trickles the body is answered with an error and cut off.
    async fn slow_request_bodies_are_cut_off(server: Server) {
        let mut stream = tls_connect(&server).expect("connected");
        let head = "POST /api/osquery/log HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n";
        stream.write_all(head.as_bytes()).unwrap();
        let mut answer = Vec::new();
        let mut closed = false;
        // One body byte, then up to a second's wait for the server, at most 30 times.
        for _ in 0..30 {
            if stream.write_all(b" ").and_then(|()| stream.flush()).is_err() {
                closed = true;
                break;
            }
            let mut buf = [0u8; 4096];
            match stream.read(&mut buf) {
                Ok(0) => closed = true,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) => closed = !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            }
            if closed {
                break;
            }
        }
        assert!(closed, "a trickled body kept its connection 30 s");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 4"), "{answer}");
        assert!(livez(&server).await);
    }

    herd_testkit::server_cases!(
        args = crate::limits::ARGS;
        slow_clients_are_cut_off_and_health_checks_get_in,
        idle_connections_are_closed,
        slow_request_bodies_are_cut_off,
    );
}

// ---------------------------------------------------------------------------------------------------------
// Result logs

/// `count` result lines tagged `tag`, each with `pad` bytes of padding.
fn result_lines(tag: &str, count: usize, pad: usize) -> Value {
    let lines: Vec<Value> = (0..count)
        .map(|n| {
            json!({"name": "pack/edge/processes", "hostIdentifier": tag, "unixTime": 1_700_000_000, "action": "added",
                   "columns": {"tag": format!("{tag}-{n}"), "pad": "x".repeat(pad)}})
        })
        .collect();
    Value::Array(lines)
}

async fn post_results(server: &Server, host: &TestHost, data: Value) -> (reqwest::StatusCode, Option<String>, Value) {
    let body = json!({"node_key": host.node_key, "log_type": "result", "data": data});
    let response =
        server.client.post(format!("{}/api/osquery/log", server.url)).json(&body).send().await.expect("log request");
    let status = response.status();
    let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
    (status, retry_after, response.json().await.unwrap())
}

/// Every line of a result log file, parsed (panics on a line that does not parse).
fn parsed_lines(path: &std::path::Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: unparseable line {line:?}: {e}", path.display()))
        })
        .collect()
}

fn tags(lines: &[Value]) -> Vec<String> {
    lines.iter().map(|l| l["columns"]["tag"].as_str().unwrap_or_default().to_string()).collect()
}

async fn enrolled(server: &Server, name: &str) -> TestHost {
    let mut host = TestHost::new(name);
    let (status, reply) = host.enroll(server, ENROLL_SECRET).await;
    assert_eq!(status, 200, "{reply}");
    host
}

mod rotation {
    use super::*;

    pub const ARGS: [&str; 4] = ["--result-log-max-size", "64KiB", "--result-log-keep", "2"];

    /// Rotated at the size, keeping two files: every file within the size, the newest lines kept, in order.
    async fn result_log_rotates_at_its_size_and_keeps_n_files(server: Server) {
        let host = enrolled(&server, "logger").await;
        for batch in 0..40 {
            let (status, _, reply) = post_results(&server, &host, result_lines(&format!("b{batch:02}"), 8, 900)).await;
            assert_eq!(status, 200, "{reply}");
        }
        let log = server.data_dir.join("osquery-results.log");
        let files = [log.with_extension("log.2"), log.with_extension("log.1"), log.clone()];
        let mut all = Vec::new();
        for file in &files {
            let len = std::fs::metadata(file).map(|m| m.len()).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(len > 0 && len <= 64 * 1024, "{}: {len} bytes", file.display());
            all.extend(parsed_lines(file));
        }
        assert!(!log.with_extension("log.3").exists(), "only two rotated files are kept");
        let tags = tags(&all);
        assert_eq!(tags.last().unwrap(), "b39-7", "the newest line is last");
        // What is kept is the newest stretch of lines, whole batches, in order.
        let first_batch: usize = tags[0][1..3].parse().unwrap();
        assert!(tags[0].ends_with("-0"), "files start with a whole batch: {}", tags[0]);
        let expected: Vec<String> =
            (first_batch..40).flat_map(|b| (0..8).map(move |n| format!("b{b:02}-{n}"))).collect();
        assert_eq!(tags, expected);
        assert!(first_batch > 0, "older lines were rotated away");
    }

    herd_testkit::server_cases!(args = crate::rotation::ARGS; result_log_rotates_at_its_size_and_keeps_n_files);
}

mod budget {
    use super::*;

    pub const ARGS: [&str; 2] = ["--result-log-host-budget", "256KiB"];

    /// A host past its hourly budget is refused with 429, the reason and Retry-After; another host is served.
    async fn a_host_over_its_budget_is_refused_while_another_is_served(server: Server) {
        let noisy = enrolled(&server, "noisy").await;
        let quiet = enrolled(&server, "quiet").await;
        let mut accepted = 0;
        let refusal = loop {
            assert!(accepted < 10, "2.5 MB accepted from one host on a 256 KiB budget");
            let (status, retry_after, reply) = post_results(&server, &noisy, result_lines("noisy", 100, 900)).await;
            if status == 200 {
                accepted += 1;
                continue;
            }
            break (status, retry_after, reply);
        };
        let (status, retry_after, reply) = refusal;
        assert_eq!(status, 429, "{reply}");
        assert!(accepted >= 1, "the first batches fit");
        let reason = reply["error"].as_str().unwrap();
        assert!(reason.contains("result log budget exceeded") && reason.contains("262144 bytes"), "{reason}");
        assert_eq!(reply["node_invalid"], false, "the host keeps its identity and retries later");
        assert!(retry_after.unwrap().parse::<u64>().unwrap() >= 1);
        let (status, _, reply) = post_results(&server, &quiet, result_lines("quiet", 100, 900)).await;
        assert_eq!(status, 200, "another host is served: {reply}");
        let lines = parsed_lines(&server.data_dir.join("osquery-results.log"));
        assert_eq!(lines.iter().filter(|l| l["hostIdentifier"] == "noisy").count(), accepted * 100);
    }

    herd_testkit::server_cases!(args = crate::budget::ARGS; a_host_over_its_budget_is_refused_while_another_is_served);
}

/// What a crash mid-write leaves (a last line cut short) is moved aside at start; new lines parse.
async fn a_torn_last_line_is_repaired_at_start(mut server: Server) {
    let host = enrolled(&server, "torn").await;
    let (status, _, _) = post_results(&server, &host, result_lines("before", 5, 10)).await;
    assert_eq!(status, 200);
    assert!(server.stop().success());
    let log = server.data_dir.join("osquery-results.log");
    let torn = "{\"name\":\"pack/edge/processes\",\"hostIdentifier\":\"torn\",\"columns\":{\"tag\":\"cut-";
    std::fs::OpenOptions::new().append(true).open(&log).unwrap().write_all(torn.as_bytes()).unwrap();
    let server = server.start_again("127.0.0.1:0");
    let (status, _, _) = post_results(&server, &host, result_lines("after", 5, 10)).await;
    assert_eq!(status, 200);
    let tags = tags(&parsed_lines(&log));
    let expected: Vec<String> =
        ["before", "after"].iter().flat_map(|t| (0..5).map(move |n| format!("{t}-{n}"))).collect();
    assert_eq!(tags, expected);
    let side = std::fs::read_to_string(server.data_dir.join("osquery-results.log.torn")).unwrap();
    assert_eq!(side, format!("{torn}\n"), "the torn line is kept aside for inspection");
}

/// kill -9 while hosts post results concurrently: after a restart, every line parses and every acknowledged
/// line is there.
async fn acknowledged_results_survive_kill_9(mut server: Server) {
    let mut hosts = Vec::new();
    for n in 0..4 {
        hosts.push(Arc::new(enrolled(&server, &format!("crash-{n}")).await));
    }
    let acknowledged: Arc<Mutex<Vec<String>>> = Arc::default();
    let (url, client) = (server.url.clone(), server.client.clone());
    let mut posters = Vec::new();
    for (n, host) in hosts.iter().enumerate() {
        let (url, client, host, acknowledged) = (url.clone(), client.clone(), host.clone(), acknowledged.clone());
        posters.push(tokio::spawn(async move {
            // Bounded: at most 400 batches each; in practice the kill stops them much sooner.
            for batch in 0..400 {
                let tag = format!("h{n}-b{batch}");
                let body =
                    json!({"node_key": host.node_key, "log_type": "result", "data": result_lines(&tag, 40, 300)});
                match client.post(format!("{url}/api/osquery/log")).json(&body).send().await {
                    Ok(response) if response.status() == 200 => acknowledged.lock().unwrap().push(tag),
                    _ => return,
                }
            }
        }));
    }
    eventually(PATIENCE, "some batches acknowledged", || async {
        (acknowledged.lock().unwrap().len() >= 40).then_some(())
    })
    .await;
    let mut child = server.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    for poster in posters {
        poster.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    let server = server.start_again("127.0.0.1:0");
    let (status, _, reply) = post_results(&server, &hosts[0], result_lines("after-restart", 3, 10)).await;
    assert_eq!(status, 200, "{reply}");
    let lines = parsed_lines(&server.data_dir.join("osquery-results.log"));
    let present: std::collections::HashSet<String> = tags(&lines).into_iter().collect();
    for tag in &acknowledged {
        for n in 0..40 {
            assert!(present.contains(&format!("{tag}-{n}")), "acknowledged line {tag}-{n} lost");
        }
    }
    assert!(present.contains("after-restart-2"));
}

herd_testkit::server_cases!(
    forbidden_webhook_addresses_are_refused_when_written,
    a_name_resolving_to_loopback_is_refused_at_delivery,
    a_torn_last_line_is_repaired_at_start,
    acknowledged_results_survive_kill_9,
);
