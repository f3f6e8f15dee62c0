//! The CI smoke scenario: herd-perf and the real server work together — 200 simulated hosts enroll, report
//! vitals and policy answers and check in for 20 s with no error, and the end-of-run check finds the server's
//! counts and a sample of hosts exactly as the hosts reported them. Long runs are benchmarks (bench/).

use herd_testkit::{ADMIN_EMAIL, ADMIN_PASSWORD, ENROLL_SECRET, Server};
use serde_json::Value;

async fn two_hundred_hosts_run_without_errors(server: Server) {
    let out = tempfile::tempdir().unwrap();
    let report_path = out.path().join("perf.json");
    let pid = server.child.as_ref().expect("the server runs").id().to_string();
    let cert = server.data_dir.join("tls/cert.pem");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_herd-perf"))
        .args(["--server", &server.url, "--ca-cert", cert.to_str().unwrap(), "--enroll-secret", ENROLL_SECRET])
        .args(["--admin-email", ADMIN_EMAIL, "--policies", "5", "--hosts", "200", "--ramp", "5", "--duration", "20"])
        .args(["--distributed-interval", "2", "--config-interval", "5", "--floor-seconds", "2", "--server-pid", &pid])
        .arg("--json")
        .arg(&report_path)
        .env("HERD_PERF_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .output()
        .await
        .expect("herd-perf starts");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "herd-perf failed:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(&report_path).unwrap()).unwrap();
    assert_eq!(report["errors"], 0, "{stdout}");
    assert_eq!(report["ok"], true);
    let check = &report["check"];
    assert_eq!(check["hosts_on_server"], 200);
    assert_eq!(check["policies_checked"], 5, "every policy's counts were compared");
    assert!(check["hosts_checked"].as_u64().unwrap() >= 50);
    assert_eq!(check["mismatches"], Value::Array(vec![]));
    let endpoint = |name: &str| report["endpoints"].as_array().unwrap().iter().find(|e| e["endpoint"] == name).cloned();
    assert_eq!(endpoint("enroll").unwrap()["ok"], 200);
    assert!(endpoint("distributed_write").unwrap()["ok"].as_u64().unwrap() >= 200, "every host reported");
    assert!(endpoint("distributed_read").unwrap()["ok"].as_u64().unwrap() >= 1000);
    assert!(endpoint("floor").unwrap()["ok"].as_u64().unwrap() > 0);
    assert!(report["steady"]["server_cpu_seconds"].is_number(), "the server's CPU was read from /proc");
    assert!(report["server"]["peak_rss_kib"].as_u64().unwrap() > 0);
    assert!(stdout.contains("distributed_read") && stdout.contains("all match"), "{stdout}");
}

herd_testkit::server_cases!(bin = herd_testkit::herd_beside(env!("CARGO_BIN_EXE_herd-perf")); two_hundred_hosts_run_without_errors);
