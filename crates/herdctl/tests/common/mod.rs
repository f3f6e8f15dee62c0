//! Running the real `herdctl` binary in tests.
#![allow(dead_code)]

use herd_testkit::{ADMIN_EMAIL, ADMIN_PASSWORD, Server};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const HERDCTL: &str = env!("CARGO_BIN_EXE_herdctl");

/// A herdctl command with its own login file; standard input is a pipe (never a terminal).
pub fn command(config: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(HERDCTL);
    command.arg("--config").arg(config).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command
}

pub fn run(mut command: Command, stdin: Option<&str>) -> Output {
    let mut child = command.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

pub fn herdctl(config: &Path, args: &[&str]) -> Output {
    run(command(config, args), None)
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

pub fn ok(output: &Output) -> String {
    assert!(output.status.success(), "stdout: {}\nstderr: {}", stdout(output), stderr(output));
    stdout(output)
}

pub fn failed(output: &Output) -> String {
    assert!(!output.status.success(), "expected a failure; stdout: {}", stdout(output));
    stderr(output)
}

/// Logs in as the admin; the login file.
pub fn login(server: &Server, dir: &Path) -> PathBuf {
    let config = dir.join("herdctl.json");
    let cert = server.data_dir.join("tls/cert.pem");
    let args = [
        "login",
        "--server",
        &server.url,
        "--ca-cert",
        &cert.to_string_lossy(),
        "--email",
        ADMIN_EMAIL,
        "--password-stdin",
    ];
    ok(&run(command(&config, &args), Some(&format!("{ADMIN_PASSWORD}\n"))));
    config
}

/// How many activities the server has recorded.
pub async fn activity_count(server: &Server, token: &str) -> usize {
    let (_, body) = server.get("/api/v1/fleet/activities?per_page=10000", token).await;
    body["activities"].as_array().expect("activities").len()
}
