//! End-to-end: `herd-agent desktop` beside a running `herd-agent run` — `--once` prints what the server says
//! of this device; with a token the server rejects, it backs off instead of retrying in a loop (counted from
//! the server's own request metrics).

use herd_testkit::{AgentProcess, Server, eventually};
use serde_json::json;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);

fn desktop(server: &Server, data_dir: &std::path::Path) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_herd-agent"));
    command
        .arg("desktop")
        .args(["--server", &server.url])
        .arg("--ca-cert")
        .arg(server.data_dir.join("tls/cert.pem"))
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn");
    command
}

/// Rejected `/desktop` polls the server has counted.
async fn rejected_polls(server: &Server) -> u64 {
    let text = server.client.get(format!("{}/metrics", server.url)).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter(|l| {
            l.starts_with("herd_http_requests_total") && l.contains("/desktop\"") && l.contains("status=\"401\"")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

async fn desktop_summarises_and_backs_off(server: Server) {
    let admin = server.admin_token().await;
    let body = json!({"name": "never passes", "query": "SELECT 1 WHERE 1 = 0;", "resolution": "Call IT"});
    assert_eq!(server.post("/api/v1/fleet/global/policies", &admin, body).await.0, 200);
    let org = json!({"org_info": {"org_name": "Acme", "contact_url": "https://help.acme.test"}});
    assert_eq!(server.patch("/api/v1/fleet/config", &admin, org).await.0, 200);
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("agent");
    let _agent = AgentProcess::start(env!("CARGO_BIN_EXE_herd-agent"), &server, &data_dir, "desktop-e2e", &[]);

    // Once the agent has reported the failing policy, the desktop summary shows it.
    let stdout = eventually(PATIENCE, "a summary with one failing policy", || async {
        let output = desktop(&server, &data_dir).arg("--once").output().ok()?;
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        (output.status.success() && stdout.contains("failing policies: 1")).then_some(stdout)
    })
    .await;
    assert!(stdout.contains("needs migration: no"), "{stdout}");
    assert!(stdout.contains("organisation: Acme") && stdout.contains("contact: https://help.acme.test"), "{stdout}");
    let page = stdout.lines().find_map(|l| l.strip_prefix("my device: ")).expect("the My Device link").to_string();
    assert!(page.starts_with(&format!("{}/device/", server.url)), "{page}");
    assert_eq!(server.client.get(&page).send().await.unwrap().status(), 200, "the link opens the page");

    // A token the server rejects: --once says so and fails…
    let stranger = work.path().join("stranger");
    std::fs::create_dir_all(&stranger).unwrap();
    std::fs::write(stranger.join("identifier"), "rejected-token-000000000000\n").unwrap();
    let output = desktop(&server, &stranger).arg("--once").output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("rejected"), "{output:?}");
    // …and the long-running notifier backs off: polled every second it would try 8 times in this window; with
    // the backoff (1 s, 2 s, 4 s, …) it tries at most 4 times. (A slow machine only makes it fewer.)
    let before = rejected_polls(&server).await;
    let mut notifier = desktop(&server, &stranger).args(["--interval", "1"]).spawn().unwrap();
    let window = std::time::Instant::now() + Duration::from_secs(8);
    while std::time::Instant::now() < window {
        assert!(notifier.try_wait().unwrap().is_none(), "the notifier keeps running after a 401");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    notifier.kill().unwrap();
    notifier.wait().unwrap();
    let tries = rejected_polls(&server).await - before;
    assert!((1..=4).contains(&tries), "{tries} polls with a rejected token in 8 s");
}

herd_testkit::server_cases!(bin = herd_testkit::herd_beside(env!("CARGO_BIN_EXE_herd-agent")); desktop_summarises_and_backs_off);
