//! End-to-end, seed 000's promise: a policy fails, its script fixes the host, and the policy is green again
//! seconds later — re-checked by the agent right after the fix, not at the next hourly run.

use herd_testkit::{AgentProcess, Server, eventually};
use serde_json::json;
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(90);

async fn response(server: &Server, token: &str, policy: i64) -> Option<String> {
    let (_, hosts) = server.get("/api/v1/fleet/hosts", token).await;
    let id = hosts["hosts"].as_array()?.first()?["id"].as_i64()?;
    let (_, host) = server.get(&format!("/api/v1/fleet/hosts/{id}"), token).await;
    host["host"]["policies"].as_array()?.iter().find(|p| p["id"] == policy)?["response"].as_str().map(str::to_string)
}

/// A global policy that passes while `marker` is absent, with a script `script_name` that deletes the marker.
/// Returns the policy's id, the script's id and the create response.
async fn remediable_policy(
    server: &Server,
    admin: &str,
    marker: &std::path::Path,
    name: &str,
    script_name: &str,
) -> (i64, i64, serde_json::Value) {
    let script = format!("rm -f '{}'\necho removed\n", marker.display());
    let script_id = server.script_id(admin, script_name, &script).await;
    let query = format!("SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM file WHERE path = '{}');", marker.display());
    let body = json!({"name": name, "query": query, "script_id": script_id});
    let (status, created) = server.post("/api/v1/fleet/global/policies", admin, body).await;
    assert_eq!(status, 200, "{created}");
    (created["policy"]["id"].as_i64().unwrap(), script_id, created)
}

async fn failing_policy_is_remediated_and_rechecked(server: Server) {
    let admin = server.admin_token().await;
    // Check in every 10 s (herd's default); run the policy every 2 s so the failure is seen quickly.
    let options = json!({"agent_options": {"config": {"options": {"distributed_interval": 10}}}, "host_settings": {"policy_interval": 2}});
    assert_eq!(server.patch("/api/v1/fleet/config", &admin, options).await.0, 200);
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("unwanted");
    let (policy, script, created) =
        remediable_policy(&server, &admin, &marker, "no unwanted file", "remove-marker.sh").await;
    assert_eq!(created["policy"]["run_script"], json!({"id": script, "name": "remove-marker.sh"}));

    let _agent = AgentProcess::start(
        env!("CARGO_BIN_EXE_herd-agent"),
        &server,
        &work.path().join("agent"),
        "automation-e2e",
        &["--enable-scripts"],
    );
    eventually(PATIENCE, "the policy passing", || async {
        (response(&server, &admin, policy).await? == "pass").then_some(())
    })
    .await;

    // The deviation.
    std::fs::write(&marker, "x").unwrap();
    let deviated = Instant::now();
    // Fail → script → re-check → pass: wait for the fix to have run and the policy to be green again.
    let (ran, green_after) = eventually(PATIENCE, "remediation and re-check", || async {
        let (_, feed) = server.get("/api/v1/fleet/activities?per_page=50", &admin).await;
        let ran = feed["activities"].as_array()?.iter().find(|a| a["type"] == "ran_script")?.clone();
        (response(&server, &admin, policy).await? == "pass" && !marker.exists()).then(|| (ran, deviated.elapsed()))
    })
    .await;
    assert_eq!(ran["details"]["policy_id"], policy);
    assert_eq!(ran["details"]["policy_name"], "no unwanted file");
    assert_eq!(ran["actor_id"], serde_json::Value::Null, "automations have no user as actor");
    let execution = ran["details"]["script_execution_id"].as_str().unwrap();
    let (_, result) = server.get(&format!("/api/v1/fleet/scripts/results/{execution}"), &admin).await;
    assert_eq!((result["exit_code"].as_i64(), result["output"].as_str()), (Some(0), Some("removed\n")));
    let (_, counts) = server.get(&format!("/api/v1/fleet/global/policies/{policy}"), &admin).await;
    assert_eq!(
        (counts["policy"]["passing_host_count"].as_i64(), counts["policy"]["failing_host_count"].as_i64()),
        (Some(1), Some(0))
    );
    // Timings are printed, never asserted (BENCHMARKS.md has the measured figures).
    println!("deviation → green again: {:.1} s at a 10 s check-in interval", green_after.as_secs_f64());
}

/// Three failing policies on one host, each fixed by its own script: the agent re-checks them in exactly one
/// round, after the last fix.
async fn three_failures_get_one_recheck_round(server: Server) {
    let admin = server.admin_token().await;
    let options = json!({"agent_options": {"config": {"options": {"distributed_interval": 10}}}, "host_settings": {"policy_interval": 2}});
    assert_eq!(server.patch("/api/v1/fleet/config", &admin, options).await.0, 200);
    let work = tempfile::tempdir().unwrap();
    let mut policies = Vec::new();
    for i in 0..3 {
        let marker = work.path().join(format!("unwanted-{i}"));
        std::fs::write(&marker, "x").unwrap();
        let name = format!("no unwanted file {i}");
        policies.push(remediable_policy(&server, &admin, &marker, &name, &format!("fix-{i}.sh")).await.0);
    }
    let _agent = AgentProcess::start(
        env!("CARGO_BIN_EXE_herd-agent"),
        &server,
        &work.path().join("agent"),
        "automation-e2e",
        &["--enable-scripts"],
    );
    eventually(PATIENCE, "all three fixed and passing", || async {
        for policy in &policies {
            if response(&server, &admin, *policy).await? != "pass" {
                return None;
            }
        }
        Some(())
    })
    .await;
    let (_, feed) = server.get("/api/v1/fleet/activities?per_page=100", &admin).await;
    let rechecks: Vec<&serde_json::Value> =
        feed["activities"].as_array().unwrap().iter().filter(|a| a["type"] == "rechecked_policies").collect();
    assert_eq!(rechecks.len(), 1, "one re-check round: {rechecks:?}");
    let mut rechecked: Vec<i64> =
        rechecks[0]["details"]["policy_ids"].as_array().unwrap().iter().map(|v| v.as_i64().unwrap()).collect();
    rechecked.sort();
    assert_eq!(rechecked, policies);
    let runs = feed["activities"].as_array().unwrap().iter().filter(|a| a["type"] == "ran_script").count();
    assert_eq!(runs, 3, "one run per policy");
}

herd_testkit::server_cases!(bin = herd_testkit::herd_beside(env!("CARGO_BIN_EXE_herd-agent")); three_failures_get_one_recheck_round, failing_policy_is_remediated_and_rechecked);
