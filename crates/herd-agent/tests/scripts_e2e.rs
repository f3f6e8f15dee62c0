//! End-to-end: scripts on the real agent — upload, run synchronously and asynchronously, output and exit
//! codes, a timeout that kills everything the script started, scripts disabled on the agent or the server.

use herd_testkit::{AgentProcess, Server, eventually, processes_running};
use serde_json::{Value, json};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);

async fn upload(server: &Server, token: &str, name: &str, contents: &str) -> (u16, Value) {
    let (status, reply) = server.upload_script(token, name, contents).await;
    (status.as_u16(), reply)
}

async fn scripts_run_on_the_agent(server: Server) {
    let admin = server.admin_token().await;
    server
        .patch(
            "/api/v1/fleet/config",
            &admin,
            json!({"agent_options": {"config": {"options": {"distributed_interval": 1}}}}),
        )
        .await;
    let work = tempfile::tempdir().unwrap();
    let agent = AgentProcess::start(
        env!("CARGO_BIN_EXE_herd-agent"),
        &server,
        &work.path().join("agent"),
        "scripts-e2e",
        &["--enable-scripts", "--script-timeout", "3"],
    );
    let host_id = eventually(PATIENCE, "the host", || async {
        let (_, hosts) = server.get("/api/v1/fleet/hosts", &admin).await;
        hosts["hosts"].as_array()?.first()?["id"].as_i64()
    })
    .await;

    let marker = work.path().join("remediated");
    let (status, created) =
        upload(&server, &admin, "fix.sh", &format!("echo fixing\ntouch '{}'\necho done >&2\n", marker.display())).await;
    assert_eq!(status, 200, "{created}");
    let script_id = created["script_id"].as_i64().unwrap();
    assert_eq!(upload(&server, &admin, "fix.sh", "echo again").await.0, 409, "names are unique per scope");
    assert_eq!(upload(&server, &admin, "notes.txt", "echo").await.0, 422);
    let (_, listed) = server.get("/api/v1/fleet/scripts", &admin).await;
    assert_eq!(listed["scripts"][0]["name"], "fix.sh");

    // Synchronous run: the answer carries the result.
    let (status, result) = server
        .post("/api/v1/fleet/scripts/run/sync", &admin, json!({"host_id": host_id, "script_id": script_id}))
        .await;
    assert_eq!(status, 200, "{result}");
    assert_eq!(result["exit_code"], 0);
    assert_eq!(result["output"], "fixing\ndone\n");
    assert!(marker.exists(), "the script ran on the host");
    let (_, host) = server.get(&format!("/api/v1/fleet/hosts/{host_id}"), &admin).await;
    assert_eq!(host["host"]["scripts_enabled"], true, "the agent said it runs scripts");
    let (_, host_scripts) = server.get(&format!("/api/v1/fleet/hosts/{host_id}/scripts"), &admin).await;
    assert_eq!(host_scripts["scripts"][0]["last_execution"]["status"], "ran");

    // Asynchronous run that outlives its timeout, with a background child: everything is killed.
    // Durations unique to this test process, so a parallel test's sleeps are not mistaken for ours.
    let (first, second) = (10_000 + std::process::id() % 10_000 * 2, 10_001 + std::process::id() % 10_000 * 2);
    let contents = format!("sleep {first} &\necho started\nsleep {second}\n");
    let (status, queued) = server
        .post("/api/v1/fleet/scripts/run", &admin, json!({"host_id": host_id, "script_contents": contents}))
        .await;
    assert_eq!(status, 202, "{queued}");
    let execution = queued["execution_id"].as_str().unwrap().to_string();
    let finished = eventually(PATIENCE, "the timed-out run", || async {
        let (_, r) = server.get(&format!("/api/v1/fleet/scripts/results/{execution}"), &admin).await;
        (r["status"] != "pending").then_some(r)
    })
    .await;
    assert_eq!(finished["exit_code"], Value::Null);
    assert_eq!(finished["host_timeout"], true);
    assert!(finished["output"].as_str().unwrap().contains("timed out after 3 s"), "{finished}");
    eventually(Duration::from_secs(10), "no process left behind", || async {
        (processes_running(&format!("sleep {first}")) == 0 && processes_running(&format!("sleep {second}")) == 0)
            .then_some(())
    })
    .await;

    // Bad requests.
    let both = json!({"host_id": host_id, "script_id": script_id, "script_contents": "echo"});
    assert_eq!(server.post("/api/v1/fleet/scripts/run", &admin, both).await.0, 422);
    assert_eq!(
        server.post("/api/v1/fleet/scripts/run", &admin, json!({"host_id": 9999, "script_id": script_id})).await.0,
        404
    );

    // An agent started without --enable-scripts: queued runs end as errors, nothing runs.
    drop(agent);
    let _agent =
        AgentProcess::start(env!("CARGO_BIN_EXE_herd-agent"), &server, &work.path().join("agent"), "scripts-e2e", &[]);
    let (_, queued) = server
        .post(
            "/api/v1/fleet/scripts/run",
            &admin,
            json!({"host_id": host_id, "script_contents": "touch /tmp/should-not-exist-herd"}),
        )
        .await;
    let execution = queued["execution_id"].as_str().unwrap().to_string();
    let refused = eventually(PATIENCE, "the refused run", || async {
        let (_, r) = server.get(&format!("/api/v1/fleet/scripts/results/{execution}"), &admin).await;
        (r["status"] != "pending").then_some(r)
    })
    .await;
    assert_eq!(refused["status"], "error");
    assert!(refused["output"].as_str().unwrap().contains("disabled on this host"), "{refused}");
    // Nothing timed out: a refusal is not a host timeout (it used to be guessed from the missing exit code).
    assert_eq!(refused["host_timeout"], false, "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("disabled on this host"), "{refused}");

    // Scripts disabled on the server: runs are refused outright.
    server.patch("/api/v1/fleet/config", &admin, json!({"server_settings": {"scripts_disabled": true}})).await;
    assert_eq!(
        server.post("/api/v1/fleet/scripts/run", &admin, json!({"host_id": host_id, "script_id": script_id})).await.0,
        403
    );
}

herd_testkit::server_cases!(bin = herd_testkit::herd_beside(env!("CARGO_BIN_EXE_herd-agent")); scripts_run_on_the_agent);
