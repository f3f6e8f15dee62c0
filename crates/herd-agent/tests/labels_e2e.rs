//! End to end, issue 19 with the real agent: a dynamic label over a marker file scopes a policy and a
//! profile — the host is asked the policy (and gets the profile) when it joins the label, and stops being
//! asked (leaving the counts, the profile removed) when it leaves; and seed 000's smart-group loop: a
//! criteria label "failing policy X" drives a second policy's automation, with no hourly wait.

use herd_testkit::{AgentProcess, Server, eventually};
use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(90);
const AGENT: &str = env!("CARGO_BIN_EXE_herd-agent");

/// Check in every 2 s; policies and labels run every 2 s.
async fn quick_settings(server: &Server, admin: &str) {
    let settings = json!({
        "agent_options": {"config": {"options": {"distributed_interval": 2}}},
        "host_settings": {"policy_interval": 2, "label_interval": 2, "profile_grace_period": 5},
    });
    assert_eq!(server.patch("/api/v1/fleet/config", admin, settings).await.0, 200);
}

async fn the_host(server: &Server, admin: &str) -> Option<Value> {
    let (_, hosts) = server.get("/api/v1/fleet/hosts", admin).await;
    let id = hosts["hosts"].as_array()?.first()?["id"].as_i64()?;
    let (_, host) = server.get(&format!("/api/v1/fleet/hosts/{id}"), admin).await;
    Some(host["host"].clone())
}

fn has_label(host: &Value, name: &str) -> bool {
    host["labels"].as_array().is_some_and(|l| l.iter().any(|l| l["name"] == name && l.get("error").is_none()))
}

fn policy_response(host: &Value, policy: i64) -> Option<String> {
    host["policies"].as_array()?.iter().find(|p| p["id"] == policy)?["response"].as_str().map(str::to_string)
}

async fn counts(server: &Server, admin: &str, policy: i64) -> (i64, i64) {
    let (_, body) = server.get(&format!("/api/v1/fleet/global/policies/{policy}"), admin).await;
    (body["policy"]["passing_host_count"].as_i64().unwrap(), body["policy"]["failing_host_count"].as_i64().unwrap())
}

fn file_exists_query(path: &Path) -> String {
    format!("SELECT 1 FROM file WHERE path = '{}';", path.display())
}

async fn a_dynamic_label_scopes_a_policy_and_a_profile(server: Server) {
    let admin = server.admin_token().await;
    quick_settings(&server, &admin).await;
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("build-server");
    let (status, label) = server
        .post(
            "/api/v1/fleet/labels",
            &admin,
            json!({"name": "Build servers", "query": file_exists_query(&marker), "description": "have the marker"}),
        )
        .await;
    assert_eq!(status, 200, "{label}");
    assert_eq!(label["label"]["label_membership_type"], "dynamic");
    let label_id = label["label"]["id"].as_i64().unwrap();
    let body = json!({"name": "builds pass", "query": "SELECT 1;", "labels_include_any": ["Build servers"]});
    let (status, created) = server.post("/api/v1/fleet/global/policies", &admin, body).await;
    assert_eq!(status, 200, "{created}");
    assert_eq!(created["policy"]["labels_include_any"], json!([{"id": label_id, "name": "Build servers"}]));
    let policy = created["policy"]["id"].as_i64().unwrap();
    // A profile only for the label's hosts.
    let motd = work.path().join("motd");
    let doc = json!({
        "identifier": "com.acme.build-motd",
        "name": "Build motd",
        "payloads": [{"type": "file", "path": motd.display().to_string(), "content": "builds only\n"}],
    });
    use base64::Engine;
    let contents = base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&doc).unwrap());
    let batch = json!({"profiles": [
        {"name": "build-motd.json", "contents": contents, "labels_include_any": ["Build servers"]},
    ]});
    let (status, reply) = server.post("/api/v1/fleet/mdm/profiles/batch", &admin, batch).await;
    assert_eq!(status, 204, "{reply}");

    let _agent = AgentProcess::start(AGENT, &server, &work.path().join("agent"), "labels-e2e", &["--enable-profiles"]);
    // Out of the label: the host has vitals and the built-in labels, is not asked the policy, and gets no profile.
    let host = eventually(PATIENCE, "the host's vitals and built-in labels", || async {
        let host = the_host(&server, &admin).await?;
        (has_label(&host, "All Hosts") && has_label(&host, "All Linux")).then_some(host)
    })
    .await;
    assert!(!has_label(&host, "Build servers"), "{host}");
    assert_eq!(policy_response(&host, policy), None, "out of the label's scope: {host}");
    assert_eq!(counts(&server, &admin, policy).await, (0, 0));
    assert!(!motd.exists());

    // The host joins: asked the policy, counted, the profile installed.
    std::fs::write(&marker, "x").unwrap();
    eventually(PATIENCE, "the host in the label, passing the policy, the profile installed", || async {
        let host = the_host(&server, &admin).await?;
        let joined = has_label(&host, "Build servers") && policy_response(&host, policy)? == "pass";
        (joined && counts(&server, &admin, policy).await == (1, 0) && motd.exists()).then_some(())
    })
    .await;
    let (_, members) = server.get(&format!("/api/v1/fleet/hosts?label_id={label_id}"), &admin).await;
    assert_eq!(members["hosts"].as_array().unwrap().len(), 1, "{members}");
    let (_, listed) = server.get(&format!("/api/v1/fleet/labels/{label_id}"), &admin).await;
    assert_eq!(listed["label"]["host_count"], 1, "{listed}");

    // The host leaves: no longer asked, out of the counts, the profile removed.
    std::fs::remove_file(&marker).unwrap();
    eventually(PATIENCE, "the host out of the label and its scopes", || async {
        let host = the_host(&server, &admin).await?;
        let left = !has_label(&host, "Build servers") && policy_response(&host, policy).is_none();
        (left && counts(&server, &admin, policy).await == (0, 0) && !motd.exists()).then_some(())
    })
    .await;
    let (_, members) = server.get(&format!("/api/v1/fleet/labels/{label_id}/hosts"), &admin).await;
    assert_eq!(members["hosts"], json!([]));

    // In use: deleting the label is refused with its users, unless forced.
    let (status, refused) = server.delete("/api/v1/fleet/labels/Build%20servers", &admin).await;
    assert_eq!(status, 409, "{refused}");
    let reason = refused.to_string();
    assert!(reason.contains("builds pass") && reason.contains("Build motd"), "{reason}");
}

async fn a_criteria_label_on_a_failing_policy_drives_another_policys_fix(server: Server) {
    let admin = server.admin_token().await;
    quick_settings(&server, &admin).await;
    let work = tempfile::tempdir().unwrap();
    let unwanted = work.path().join("unwanted");
    // X: fails while the unwanted file exists.
    let x_query = format!("SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM file WHERE path = '{}');", unwanted.display());
    let (status, x) = server
        .post("/api/v1/fleet/global/policies", &admin, json!({"name": "no unwanted file", "query": x_query}))
        .await;
    assert_eq!(status, 200, "{x}");
    let x = x["policy"]["id"].as_i64().unwrap();
    // The smart group: hosts failing X.
    let criteria = json!({"policy": {"id": x, "result": "failing"}});
    let (status, label) =
        server.post("/api/v1/fleet/labels", &admin, json!({"name": "Failing X", "criteria": criteria})).await;
    assert_eq!(status, 200, "{label}");
    assert_eq!(label["label"]["label_membership_type"], "host_vitals");
    // Y: asked only of the group's hosts; it always fails there, and its script removes the file.
    let script = server.script_id(&admin, "clean-up.sh", &format!("rm -f '{}'\n", unwanted.display())).await;
    let body = json!({
        "name": "cleaned up", "query": "SELECT 1 WHERE 0;", "script_id": script, "labels_include_any": ["Failing X"],
    });
    let (status, y) = server.post("/api/v1/fleet/global/policies", &admin, body).await;
    assert_eq!(status, 200, "{y}");
    let y = y["policy"]["id"].as_i64().unwrap();
    // A cycle (Y's scope names the label; a label naming Y's result would close it) is refused.
    let cycle = json!({"name": "Failing Y", "criteria": {"all": [{"policy": {"id": y, "result": "failing"}}]}});
    let (status, _) = server.post("/api/v1/fleet/labels", &admin, cycle).await;
    assert_eq!(status, 200, "a label on Y's result alone is no cycle");
    let (status, refused) = server
        .patch(&format!("/api/v1/fleet/global/policies/{y}"), &admin, json!({"labels_include_any": ["Failing Y"]}))
        .await;
    assert_eq!(status, 422, "{refused}");
    assert!(refused.to_string().contains("cycle"), "{refused}");

    let _agent = AgentProcess::start(AGENT, &server, &work.path().join("agent"), "criteria-e2e", &["--enable-scripts"]);
    eventually(PATIENCE, "X passing, the host outside the group", || async {
        let host = the_host(&server, &admin).await?;
        (policy_response(&host, x)? == "pass" && !has_label(&host, "Failing X")).then_some(())
    })
    .await;
    assert_eq!(counts(&server, &admin, y).await, (0, 0));

    // The deviation: X fails → the host joins the group → Y is asked, fails, its script removes the file →
    // X passes → the host leaves the group, and Y no longer counts it.
    std::fs::write(&unwanted, "x").unwrap();
    eventually(PATIENCE, "Y's fix run, X green again, the host out of the group", || async {
        let (_, feed) = server.get("/api/v1/fleet/activities?per_page=100", &admin).await;
        let ran =
            feed["activities"].as_array()?.iter().any(|a| a["type"] == "ran_script" && a["details"]["policy_id"] == y);
        let host = the_host(&server, &admin).await?;
        let settled = ran && policy_response(&host, x)? == "pass" && !has_label(&host, "Failing X");
        (settled && !unwanted.exists() && counts(&server, &admin, y).await == (0, 0)).then_some(())
    })
    .await;
}

herd_testkit::server_cases!(
    bin = herd_testkit::herd_beside(env!("CARGO_BIN_EXE_herd-agent"));
    a_dynamic_label_scopes_a_policy_and_a_profile,
    a_criteria_label_on_a_failing_policy_drives_another_policys_fix
);
