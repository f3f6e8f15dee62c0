//! End-to-end: while the server is behind, new enrollments are refused with 429 and a spread
//! `Retry-After` (agents retry), enrolled hosts keep being answered, and every refused host enrolls when it
//! comes back. The lag limit is 20 ms here (the default is 50 ms) so that a wave of enrollments passes it
//! on any test machine, while an idle server (~1–2 ms) stays under it.

use herd_testkit::{ENROLL_SECRET, Server, TestHost};
use reqwest::StatusCode;
use serde_json::Value;
use std::time::{Duration, Instant};

herd_testkit::server_cases!(args = ["--enrollment-lag-limit", "20ms"]; a_fleet_enrolling_faster_than_the_server_is_told_to_come_back);

/// Hosts enrolled at once in the first wave; each next wave is twice as large (a faster machine needs more).
const FIRST_WAVE: usize = 200;

fn metric(text: &str, name: &str) -> u64 {
    text.lines().find_map(|l| l.strip_prefix(&format!("{name} "))).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

/// Enrolls `host`, coming back as told until it is in (or the deadline passes).
async fn enroll_until_admitted(server: &Server, host: &mut TestHost, deadline: Instant) {
    loop {
        let (status, body) = host.enroll(server, ENROLL_SECRET).await;
        match status {
            StatusCode::OK => return,
            StatusCode::TOO_MANY_REQUESTS => {
                assert!(Instant::now() < deadline, "{} still refused: {body}", host.hostname);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => panic!("{}: {other} {body}", host.hostname),
        }
    }
}

async fn a_fleet_enrolling_faster_than_the_server_is_told_to_come_back(server: Server) {
    let mut enrolled = TestHost::new("enrolled-before");
    enroll_until_admitted(&server, &mut enrolled, Instant::now() + Duration::from_secs(60)).await;

    // Waves of new hosts until the server has refused some (the first wave does on any machine seen so far).
    let (mut refused, mut admitted, mut wave, mut sent) = (Vec::new(), 0, 0, 0);
    let waves_until = Instant::now() + Duration::from_secs(120);
    while refused.is_empty() {
        assert!(Instant::now() < waves_until, "no enrollment was refused in {wave} waves ({sent} enrollments)");
        let size = FIRST_WAVE << wave.min(4);
        sent += size;
        let mut requests = tokio::task::JoinSet::new();
        for i in 0..size {
            let host = TestHost::new(&format!("wave{wave}-host{i}"));
            let (client, url) = (server.client.clone(), format!("{}/api/osquery/enroll", server.url));
            requests.spawn(async move {
                let response = client.post(url).json(&host.enroll_body(ENROLL_SECRET)).send().await.unwrap();
                let status = response.status();
                let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
                let body: Value = response.json().await.unwrap();
                (host, status, retry_after, body)
            });
        }
        // Hosts already enrolled are answered while the wave is refused: check-ins never go through the gate.
        let mut reads = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let (client, url) = (server.client.clone(), format!("{}/api/osquery/distributed/read", server.url));
            let body = serde_json::json!({"node_key": enrolled.node_key});
            reads.spawn(async move {
                let response = client.post(url).json(&body).send().await.unwrap();
                (response.status(), response.text().await.unwrap())
            });
        }
        while let Some(read) = reads.join_next().await {
            let (status, body) = read.unwrap();
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        while let Some(answer) = requests.join_next().await {
            let (host, status, retry_after, body) = answer.unwrap();
            match status {
                StatusCode::OK => admitted += 1,
                StatusCode::TOO_MANY_REQUESTS => {
                    let seconds: u64 = retry_after.expect("Retry-After").parse().unwrap();
                    assert!((2..=9).contains(&seconds), "Retry-After {seconds}");
                    assert_eq!(body["node_invalid"], false, "{body}");
                    assert!(body["error"].as_str().unwrap().contains("busy"), "{body}");
                    refused.push(host);
                }
                other => panic!("{}: {other} {body}", host.hostname),
            }
        }
        wave += 1;
    }

    // Every refused host gets in when it comes back.
    let refusals_seen = refused.len() as u64;
    eprintln!("{wave} wave(s), {sent} enrollments: {admitted} admitted at once, {refusals_seen} told to come back");
    let comebacks_until = Instant::now() + Duration::from_secs(120);
    for host in &mut refused {
        enroll_until_admitted(&server, host, comebacks_until).await;
    }
    let response = server.client.get(format!("{}/metrics", server.url)).send().await.unwrap();
    let metrics = response.text().await.unwrap();
    assert_eq!(metric(&metrics, "herd_hosts_enrolled"), 1 + sent as u64, "{metrics}");
    assert!(metric(&metrics, "herd_enrollments_deferred_total") >= refusals_seen, "{metrics}");
    assert_eq!(admitted + refused.len(), sent);
}
