//! End-to-end: the real `herd` and the real `herd-agent` on loopback. The host appears with its vitals; a
//! file-existence policy flips as the test creates and removes the file; the device token works; the agent
//! rides out a server restart and delivers everything.

use herd_testkit::{AgentProcess, Server, eventually};
use serde_json::{Value, json};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);

async fn the_host(server: &Server, token: &str) -> Option<Value> {
    let (_, hosts) = server.get("/api/v1/fleet/hosts", token).await;
    let id = hosts["hosts"].as_array()?.first()?["id"].as_i64()?;
    let (_, host) = server.get(&format!("/api/v1/fleet/hosts/{id}"), token).await;
    Some(host["host"].clone())
}

async fn response_becomes(server: &Server, token: &str, policy: i64, want: &str) {
    eventually(PATIENCE, &format!("policy {policy} to be {want:?}"), || async {
        let host = the_host(server, token).await?;
        let response = host["policies"].as_array()?.iter().find(|p| p["id"] == policy)?["response"].clone();
        (response == want).then_some(())
    })
    .await
}

async fn agent_checks_in_reports_and_survives_restarts(server: Server) {
    let admin = server.admin_token().await;
    // Check in every second and run policies every second, so the test sees flips quickly.
    let (status, body) = server
        .patch(
            "/api/v1/fleet/config",
            &admin,
            json!({"agent_options": {"config": {"options": {"distributed_interval": 1}}}, "host_settings": {"policy_interval": 1}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let work = tempfile::tempdir().unwrap();
    let agent_dir = work.path().join("agent");
    // Fleet's path for the token, here in the test's directory (the real one is /opt/orbit/identifier).
    let orbit_identifier = work.path().join("opt/orbit/identifier");
    let orbit_flag = format!("--orbit-identifier={}", orbit_identifier.display());
    let _agent =
        AgentProcess::start(env!("CARGO_BIN_EXE_herd-agent"), &server, &agent_dir, "e2e-agent", &[orbit_flag.as_str()]);

    // The host appears with real vitals.
    let host = eventually(PATIENCE, "host with vitals", || async {
        let host = the_host(&server, &admin).await?;
        (host["detail_updated_at"].is_string() && host["os_version"] != "").then_some(host)
    })
    .await;
    let release = std::fs::read_to_string("/etc/os-release").unwrap();
    let id = release.lines().find_map(|l| l.strip_prefix("ID=")).unwrap().trim_matches('"');
    assert_eq!(host["platform"], id);
    assert_eq!(host["osquery_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(host["hostname"], std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim());
    assert!(host["memory"].as_i64().unwrap() > 0);
    assert_eq!(host["distributed_interval"], 1, "the agent reports the interval it runs with");

    // A policy on a file's existence flips as the file comes and goes.
    let flag = work.path().join("compliant");
    let query = format!("SELECT 1 FROM file WHERE path = '{}';", flag.display());
    let (status, created) = server
        .post("/api/v1/fleet/global/policies", &admin, json!({"name": "flag file present", "query": query}))
        .await;
    assert_eq!(status, 200, "{created}");
    let policy = created["policy"]["id"].as_i64().unwrap();
    response_becomes(&server, &admin, policy, "fail").await;
    std::fs::write(&flag, "yes").unwrap();
    response_becomes(&server, &admin, policy, "pass").await;
    std::fs::remove_file(&flag).unwrap();
    response_becomes(&server, &admin, policy, "fail").await;
    let (_, counts) = server.get(&format!("/api/v1/fleet/global/policies/{policy}"), &admin).await;
    assert_eq!(
        (counts["policy"]["passing_host_count"].as_i64(), counts["policy"]["failing_host_count"].as_i64()),
        (Some(0), Some(1))
    );

    // The device token the agent published works with seed 000's curl line.
    let token_file = agent_dir.join("identifier");
    let token = eventually(PATIENCE, "device token file", || async { std::fs::read_to_string(&token_file).ok() }).await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&token_file).unwrap().permissions().mode() & 0o777, 0o644);
    }
    // Seed 000's line reads the token where Fleet's agent keeps it: the same token, as readable.
    let orbit_token = std::fs::read_to_string(&orbit_identifier).expect("the token is published at Fleet's path too");
    assert_eq!(orbit_token, token);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&orbit_identifier).unwrap().permissions().mode() & 0o777, 0o644);
    }
    let refetch = server
        .client
        .post(format!("{}/api/latest/fleet/device/{}/refetch", server.url, orbit_token.trim()))
        .send()
        .await
        .unwrap();
    assert_eq!(refetch.status(), 200);
    // Fleet's orbit_info shows this agent as fleetd's shows itself: enrolled, scripts off here, the same token.
    let query = format!(
        "SELECT 1 FROM orbit_info WHERE enrolled = 'true' AND scripts_enabled = 0 AND device_auth_token = '{}' \
         AND version = '{}' AND uptime >= 0;",
        token.trim(),
        env!("CARGO_PKG_VERSION")
    );
    let (status, created) =
        server.post("/api/v1/fleet/global/policies", &admin, json!({"name": "orbit_info", "query": query})).await;
    assert_eq!(status, 200, "{created}");
    response_becomes(&server, &admin, created["policy"]["id"].as_i64().unwrap(), "pass").await;

    // Server restart (same port): the agent carries on; nothing is left undelivered.
    let server = server.restart_same_port();
    let admin = server.admin_token().await;
    std::fs::write(&flag, "again").unwrap();
    response_becomes(&server, &admin, policy, "pass").await;
    let spool = agent_dir.join("spool");
    eventually(PATIENCE, "empty spool", || async {
        (std::fs::read_dir(&spool)
            .ok()?
            .filter_map(|e| e.ok())
            .all(|e| e.path().extension().is_none_or(|x| x != "json")))
        .then_some(())
    })
    .await;

    // Deleting the host: the agent enrolls again by itself.
    let id = the_host(&server, &admin).await.unwrap()["id"].as_i64().unwrap();
    server.delete(&format!("/api/v1/fleet/hosts/{id}"), &admin).await;
    eventually(PATIENCE, "re-enrolled host", || async {
        let host = the_host(&server, &admin).await?;
        (host["id"].as_i64()? != id && host["detail_updated_at"].is_string()).then_some(())
    })
    .await;
}

herd_testkit::server_cases!(bin = herd_testkit::herd_beside(env!("CARGO_BIN_EXE_herd-agent")); agent_checks_in_reports_and_survives_restarts);
