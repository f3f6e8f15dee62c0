//! End to end, seed 004's promise with the real agent: a team's profile reaches the host and is verified by
//! what the host reports; a file edited on the host is found at the next report and put back; a payload that
//! cannot be applied ends failed after the configured retries, with the reason; moving the host to another
//! team removes the old team's profiles and restores what they replaced. Short grace period for the test.

use herd_testkit::{AgentProcess, Server, eventually};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(90);
const AGENT: &str = env!("CARGO_BIN_EXE_herd-agent");

async fn team(server: &Server, admin: &str, name: &str) -> i64 {
    let (status, created) = server.post("/api/v1/fleet/teams", admin, json!({"name": name})).await;
    assert_eq!(status, 200, "{created}");
    created["team"]["id"].as_i64().unwrap()
}

async fn host(server: &Server, admin: &str) -> Option<Value> {
    let (_, hosts) = server.get("/api/v1/fleet/hosts", admin).await;
    let id = hosts["hosts"].as_array()?.first()?["id"].as_i64()?;
    let (_, host) = server.get(&format!("/api/v1/fleet/hosts/{id}"), admin).await;
    Some(host["host"].clone())
}

async fn profile_on_host(server: &Server, admin: &str, uuid: &str) -> Option<Value> {
    let host = host(server, admin).await?;
    host["mdm"]["profiles"].as_array()?.iter().find(|p| p["profile_uuid"] == uuid).cloned()
}

async fn wait_for_status(server: &Server, admin: &str, uuid: &str, status: &str) -> Value {
    eventually(PATIENCE, &format!("profile {uuid} {status}"), || async {
        profile_on_host(server, admin, uuid).await.filter(|p| p["status"] == status)
    })
    .await
}

fn motd_profile(path: &Path, content: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "identifier": "com.acme.motd",
        "name": "Message of the day",
        "payloads": [{"type": "file", "path": path.display().to_string(), "content": content, "mode": "0640"}],
    }))
    .unwrap()
}

async fn profiles_are_delivered_verified_healed_failed_and_removed(server: Server) {
    let admin = server.admin_token().await;
    let settings = json!({
        "agent_options": {"config": {"options": {"distributed_interval": 2}}},
        "host_settings": {"profile_grace_period": 5, "profile_retries": 2},
    });
    assert_eq!(server.patch("/api/v1/fleet/config", &admin, settings).await.0, 200);
    let servers = team(&server, &admin, "Servers").await;
    let desktops = team(&server, &admin, "Desktops").await;

    let work = tempfile::tempdir().unwrap();
    let motd = work.path().join("etc/motd");
    std::fs::create_dir_all(motd.parent().unwrap()).unwrap();
    std::fs::write(&motd, "the motd before herd\n").unwrap();
    let (status, uploaded) =
        server.upload_profile(&admin, "motd.json", &motd_profile(&motd, "Authorized use only.\n"), Some(servers)).await;
    assert_eq!(status, 200, "{uploaded}");
    let motd_uuid = uploaded["profile_uuid"].as_str().unwrap().to_string();

    let proc_sys = work.path().join("proc-sys");
    let sysctl_dir = work.path().join("sysctl.d");
    std::fs::create_dir_all(proc_sys.join("net/ipv4")).unwrap();
    std::fs::write(proc_sys.join("net/ipv4/ip_forward"), "1\n").unwrap();
    let agent_dir = work.path().join("agent");
    let _agent = AgentProcess::start(
        AGENT,
        &server,
        &agent_dir,
        "profiles-e2e",
        &[
            "--enable-profiles",
            "--sysctl-dir",
            &sysctl_dir.display().to_string(),
            "--proc-sys-dir",
            &proc_sys.display().to_string(),
        ],
    );
    let host_id =
        eventually(PATIENCE, "the host enrolled", || async { host(&server, &admin).await?["id"].as_i64() }).await;
    let moved =
        server.post("/api/v1/fleet/hosts/transfer", &admin, json!({"team_id": servers, "hosts": [host_id]})).await;
    assert_eq!(moved.0, 200, "{}", moved.1);

    // Delivered and verified by the host's own report.
    let verified = wait_for_status(&server, &admin, &motd_uuid, "verified").await;
    assert_eq!(
        (verified["operation_type"].as_str(), verified["identifier"].as_str()),
        (Some("install"), Some("com.acme.motd"))
    );
    assert_eq!(std::fs::read_to_string(&motd).unwrap(), "Authorized use only.\n");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&motd).unwrap().permissions().mode() & 0o7777, 0o640);
    let (_, summary) =
        server.get(&format!("/api/v1/fleet/configuration_profiles/summary?team_id={servers}"), &admin).await;
    assert_eq!(summary, json!({"verified": 1, "verifying": 0, "pending": 0, "failed": 0}));

    // Drift: edited on the host; found at the next report (a refetch asks now) and put back.
    std::fs::write(&motd, "hacked\n").unwrap();
    assert_eq!(server.post(&format!("/api/v1/fleet/hosts/{host_id}/refetch"), &admin, json!({})).await.0, 200);
    eventually(PATIENCE, "the edited file put back", || async {
        let content = std::fs::read_to_string(&motd).ok()?;
        let p = profile_on_host(&server, &admin, &motd_uuid).await?;
        (content == "Authorized use only.\n" && p["status"] == "verified").then_some(())
    })
    .await;

    // A kernel parameter, applied and persisted.
    let sysctl = json!({"identifier": "com.acme.routing", "name": "No routing",
        "payloads": [{"type": "sysctl", "key": "net.ipv4.ip_forward", "value": "0"}]});
    let (status, uploaded) =
        server.upload_profile(&admin, "routing.json", &serde_json::to_vec(&sysctl).unwrap(), Some(servers)).await;
    assert_eq!(status, 200, "{uploaded}");
    let routing_uuid = uploaded["profile_uuid"].as_str().unwrap().to_string();
    wait_for_status(&server, &admin, &routing_uuid, "verified").await;
    assert_eq!(std::fs::read_to_string(proc_sys.join("net/ipv4/ip_forward")).unwrap().trim(), "0");
    assert!(
        std::fs::read_to_string(sysctl_dir.join("90-herd-com.acme.routing.conf"))
            .unwrap()
            .contains("net.ipv4.ip_forward = 0")
    );

    // A payload that cannot be applied (a path under a file): retried twice, then failed with the reason.
    let blocker = work.path().join("not-a-directory");
    std::fs::write(&blocker, "").unwrap();
    let bad = json!({"identifier": "com.acme.broken", "name": "Broken",
        "payloads": [{"type": "file", "path": blocker.join("x.conf").display().to_string(), "content": "x"}]});
    let (status, uploaded) =
        server.upload_profile(&admin, "broken.json", &serde_json::to_vec(&bad).unwrap(), Some(servers)).await;
    assert_eq!(status, 200, "{uploaded}");
    let broken_uuid = uploaded["profile_uuid"].as_str().unwrap().to_string();
    let failed = wait_for_status(&server, &admin, &broken_uuid, "failed").await;
    assert_eq!(failed["retries"], 2, "{failed}");
    let detail = failed["detail"].as_str().unwrap();
    assert!(detail.contains("Not a directory") && detail.contains("after 2 retries"), "{failed}");
    let (_, summary) =
        server.get(&format!("/api/v1/fleet/configuration_profiles/summary?team_id={servers}"), &admin).await;
    assert_eq!(summary["failed"], 1, "{summary}");
    // Hosts by profile state, Fleet's filters.
    let ids = |path: String| {
        let server = &server;
        let admin = &admin;
        async move {
            let (status, hosts) = server.get(&path, admin).await;
            assert_eq!(status, 200, "{path}: {hosts}");
            hosts["hosts"].as_array().unwrap().iter().map(|h| h["id"].as_i64().unwrap()).collect::<Vec<_>>()
        }
    };
    assert_eq!(ids("/api/v1/fleet/hosts?os_settings=failed".into()).await, vec![host_id]);
    assert_eq!(ids("/api/v1/fleet/hosts?os_settings=verified".into()).await, Vec::<i64>::new());
    assert_eq!(
        ids(format!("/api/v1/fleet/hosts?profile_uuid={motd_uuid}&profile_status=verified")).await,
        vec![host_id]
    );
    assert_eq!(
        ids(format!("/api/v1/fleet/hosts?profile_uuid={broken_uuid}&profile_status=verified")).await,
        Vec::<i64>::new()
    );
    assert_eq!(server.get("/api/v1/fleet/hosts?os_settings=sideways", &admin).await.0, 422);
    assert_eq!(server.get(&format!("/api/v1/fleet/hosts?profile_uuid={motd_uuid}"), &admin).await.0, 422);
    // Resend from a final state; not while pending.
    let resend = format!("/api/v1/fleet/hosts/{host_id}/configuration_profiles/{broken_uuid}/resend");
    assert_eq!(server.post(&resend, &admin, json!({})).await.0, 202);
    let (status, refused) = server.post(&resend, &admin, json!({})).await;
    assert_eq!(status, 409, "pending: {refused}");

    // Moving the host to a team without profiles removes them and restores what they replaced.
    let moved =
        server.post("/api/v1/fleet/hosts/transfer", &admin, json!({"team_id": desktops, "hosts": [host_id]})).await;
    assert_eq!(moved.0, 200);
    eventually(PATIENCE, "the old team's profiles removed", || async {
        let host = host(&server, &admin).await?;
        host["mdm"]["profiles"].as_array()?.is_empty().then_some(())
    })
    .await;
    assert_eq!(std::fs::read_to_string(&motd).unwrap(), "the motd before herd\n", "what the profile replaced is back");
    assert_eq!(std::fs::read_to_string(proc_sys.join("net/ipv4/ip_forward")).unwrap().trim(), "1");
    assert!(!sysctl_dir.join("90-herd-com.acme.routing.conf").exists());
    let (_, feed) = server.get("/api/v1/fleet/activities?per_page=50", &admin).await;
    let kinds: Vec<&str> = feed["activities"].as_array().unwrap().iter().filter_map(|a| a["type"].as_str()).collect();
    assert!(
        kinds.contains(&"created_configuration_profile") && kinds.contains(&"resent_configuration_profile"),
        "{kinds:?}"
    );
}

herd_testkit::server_cases!(bin = herd_testkit::herd_beside(env!("CARGO_BIN_EXE_herd-agent"));
    profiles_are_delivered_verified_healed_failed_and_removed);
