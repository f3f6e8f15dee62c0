//! End-to-end: the agent stops promptly while a script runs. The script and everything it started are
//! killed; the run is not made again after a restart but reported as interrupted (at most once).

use herd_testkit::{AgentProcess, Server, eventually, processes_running};
use serde_json::json;
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(60);

fn start_agent(server: &Server, data_dir: &std::path::Path) -> AgentProcess {
    AgentProcess::start(env!("CARGO_BIN_EXE_herd-agent"), server, data_dir, "shutdown-e2e", &["--enable-scripts"])
}

async fn stops_promptly_during_a_script(server: Server) {
    let admin = server.admin_token().await;
    server
        .patch(
            "/api/v1/fleet/config",
            &admin,
            json!({"agent_options": {"config": {"options": {"distributed_interval": 1}}}}),
        )
        .await;
    let work = tempfile::tempdir().unwrap();
    let data_dir = work.path().join("agent");
    let mut agent = start_agent(&server, &data_dir);
    let host_id = eventually(PATIENCE, "the host", || async {
        let (_, hosts) = server.get("/api/v1/fleet/hosts", &admin).await;
        hosts["hosts"].as_array()?.first()?["id"].as_i64()
    })
    .await;

    // A duration unique to this test process, so a parallel test's sleeps are not mistaken for ours.
    let seconds = 20_000 + std::process::id() % 10_000;
    let started = work.path().join("started");
    let contents = format!("touch '{}'\nsleep {seconds} &\nsleep {seconds}\n", started.display());
    let (status, queued) = server
        .post("/api/v1/fleet/scripts/run", &admin, json!({"host_id": host_id, "script_contents": contents}))
        .await;
    assert_eq!(status, 202, "{queued}");
    let execution = queued["execution_id"].as_str().unwrap().to_string();
    eventually(PATIENCE, "the script running", || async {
        (started.exists() && processes_running(&format!("sleep {seconds}")) == 2).then_some(())
    })
    .await;

    // The script sleeps for hours: an agent that waited on it would not exit within the test's patience, so
    // exiting at all shows shutdown does not wait on a script (how fast is for benchmarks, not this test).
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(agent.child().id() as i32), nix::sys::signal::Signal::SIGTERM)
        .unwrap();
    let exited = eventually(PATIENCE, "the agent exiting after SIGTERM", || {
        let status = agent.child().try_wait().unwrap();
        async move { status }
    })
    .await;
    assert!(exited.success(), "{exited:?}");
    eventually(PATIENCE, "the script and its background child killed", || async {
        (processes_running(&format!("sleep {seconds}")) == 0).then_some(())
    })
    .await;

    // Started again: the run is reported as interrupted, not made again.
    std::fs::remove_file(&started).unwrap();
    let _agent = start_agent(&server, &data_dir);
    let result = eventually(PATIENCE, "the interrupted run's result", || async {
        let (_, r) = server.get(&format!("/api/v1/fleet/scripts/results/{execution}"), &admin).await;
        (r["status"] != "pending").then_some(r)
    })
    .await;
    assert_eq!(result["exit_code"], serde_json::Value::Null, "{result}");
    assert_eq!(result["output"], herd_agent::scripts::INTERRUPTED, "{result}");
    assert!(!started.exists(), "the script did not run again");
}

herd_testkit::server_cases!(bin = herd_testkit::herd_beside(env!("CARGO_BIN_EXE_herd-agent")); stops_promptly_during_a_script);
