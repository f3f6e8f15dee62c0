//! README's quick start, typed as README writes it: the commands are read out of README.md and run, so a README
//! edit that breaks the walkthrough fails here.
//!
//! - "Two commands": the first command (`cargo run --release --bin herd -- serve --with-agent`) runs as the
//!   built `herd` with the same arguments, in a scratch directory (its `./herd-data`), on a free port
//!   (`HERD_LISTEN=127.0.0.1:0`: several test runs share this machine).
//! - "The whole loop in a minute": its block runs in bash with the banner's address and password put where
//!   README says to; its last line, `watch`, is interactive, so a `watch` function polls the same command until
//!   the policy is passing again (with a deadline). Then the server is asked what README promises: the policy
//!   failed, the script ran, the policy passes, and the activities say so.
//! - Seed 000's line (`curl … $(cat /opt/orbit/identifier)/refetch`), with the quick start's certificate
//!   trusted through `CURL_CA_BUNDLE`: the host's vitals are refreshed. The local agent publishes the token at
//!   that path only where it may write there (root); elsewhere that part is reported as skipped.
//!
//! It changes this machine (`/tmp/herd-demo-fixed`, `/opt/orbit/identifier`), so it runs in nextest's
//! machine-state group, one at a time with the packages test.

use herd_testkit::{Server, client_for, eventually};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const README: &str = include_str!("../../../README.md");
const PATIENCE: Duration = Duration::from_secs(120);
/// The file the walkthrough's script creates and its policy looks for.
const DEMO_FILE: &str = "/tmp/herd-demo-fixed";

/// The text of README's section `## {heading}`, up to the next section.
fn section(heading: &str) -> &'static str {
    let start = README.find(&format!("\n## {heading}\n")).unwrap_or_else(|| panic!("README has no \"{heading}\""));
    let rest = &README[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |end| end + 3);
    &rest[..end]
}

/// The fenced ```sh blocks of a section, in order.
fn sh_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in text.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(Vec::new()),
            (Some(lines), "```") => {
                blocks.push(lines.join("\n"));
                current = None;
            }
            (Some(lines), _) => lines.push(line),
            (None, _) => {}
        }
    }
    blocks
}

/// What the quick-start server printed that the walkthrough needs.
struct Banner {
    url: String,
    password: String,
}

/// Starts README's first command in `dir` and reads its banner.
fn start_quick_start(dir: &Path) -> (Server, Banner) {
    let command = sh_blocks(section("Two commands")).into_iter().next().expect("README's first command");
    let args = command
        .trim()
        .strip_prefix("cargo run --release --bin herd -- ")
        .unwrap_or_else(|| panic!("README's first command is no longer `cargo run … herd -- ARGS`: {command}"));
    let mut child = Command::new(herd_testkit::herd_binary())
        .args(args.split_whitespace())
        .current_dir(dir)
        .env("HERD_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting herd");
    let (lines_tx, lines_rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    // The banner ends with the local agent's "my device" line.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut printed: Vec<String> = Vec::new();
    while !printed.iter().any(|line| line.contains("my device:")) {
        match lines_rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) => printed.push(line),
            Err(_) => panic!("no whole banner within 60 s: {printed:#?}"),
        }
    }
    let after = |marker: &str| {
        printed
            .iter()
            .find_map(|line| line.split(marker).nth(1))
            .map(|rest| rest.split_whitespace().next().unwrap_or_default().to_string())
            .unwrap_or_else(|| panic!("the banner has no \"{marker}\": {printed:#?}"))
    };
    let banner = Banner { url: after(" is listening on "), password: after("admin password:") };
    let data_dir = dir.join("herd-data");
    let server = Server {
        bin: herd_testkit::herd_binary().into(),
        child: Some(child),
        client: client_for(&data_dir.join("tls/cert.pem")),
        data_dir,
        database_url: None,
        url: banner.url.clone(),
        stdout: printed,
        extra_args: Vec::new(),
    };
    (server, banner)
}

/// Stands in for `watch -n SECONDS "COMMAND"`: runs COMMAND every SECONDS until the `jq` condition in
/// `$WATCH_UNTIL` holds for its output (all its JSON values as one array), for at most `$WATCH_DEADLINE`
/// seconds; the last output is printed either way.
const WATCH: &str = r#"
watch() {
    local interval=${1#-n} command=$2 output=""
    local deadline=$((SECONDS + WATCH_DEADLINE))
    while ((SECONDS < deadline)); do
        output=$(eval "$command")
        if printf '%s' "$output" | jq -e -s "$WATCH_UNTIL" >/dev/null 2>&1; then
            printf '%s\n' "$output"
            return 0
        fi
        sleep "$interval"
    done
    printf 'watch: gave up; last output:\n%s\n' "$output"
    return 1
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_quick_start_shows_the_whole_loop() {
    match std::fs::remove_file(DEMO_FILE) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => panic!("{DEMO_FILE} exists and cannot be removed, so the demo policy could not fail: {err}"),
    }
    let dir = tempfile::tempdir().unwrap();
    let (server, banner) = start_quick_start(dir.path());

    let walkthrough = sh_blocks(section("The whole loop in a minute")).into_iter().next().expect("the loop's block");
    assert!(walkthrough.contains("127.0.0.1:8080") && walkthrough.contains("PASSWORD"), "{walkthrough}");
    let walkthrough = walkthrough.replace("https://127.0.0.1:8080", &banner.url).replace("PASSWORD", &banner.password);
    let output = Command::new("bash")
        .arg("-c")
        .arg(format!("set -e\n{WATCH}\n{walkthrough}"))
        .current_dir(dir.path())
        .env("WATCH_DEADLINE", PATIENCE.as_secs().to_string())
        .env(
            "WATCH_UNTIL",
            r#"any(.[]; .name == "demo file present" and .passing_host_count == 1 and .failing_host_count == 0)"#,
        )
        .output()
        .expect("bash");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "README's loop did not end with the policy passing: {printed}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // What README says happened, from the server.
    let admin = server.login("admin@herd.local", &banner.password).await;
    let (_, activities) = server.get("/api/v1/fleet/activities?per_page=100", &admin).await;
    let kinds: Vec<&str> =
        activities["activities"].as_array().unwrap().iter().filter_map(|a| a["type"].as_str()).collect();
    for kind in ["created_policy", "policy_automation_fired", "ran_script"] {
        assert!(kinds.contains(&kind), "README promises `{kind}` in the activity feed: {kinds:?}");
    }
    let (_, policies) = server.get("/api/v1/fleet/global/policies", &admin).await;
    let policy = &policies["policies"][0];
    assert_eq!((policy["passing_host_count"].as_i64(), policy["failing_host_count"].as_i64()), (Some(1), Some(0)));
    let (_, hosts) = server.get("/api/v1/fleet/hosts", &admin).await;
    let host_id = hosts["hosts"][0]["id"].as_i64().unwrap();
    let (_, runs) = server.get(&format!("/api/v1/fleet/hosts/{host_id}/scripts"), &admin).await;
    let execution_id = runs["scripts"][0]["last_execution"]["execution_id"].as_str().expect("a run").to_string();
    let (_, ran) = server.get(&format!("/api/v1/fleet/scripts/results/{execution_id}"), &admin).await;
    let outcome = (ran["status"].as_str(), ran["exit_code"].as_i64(), ran["host_timeout"].as_bool());
    assert_eq!(outcome, (Some("ran"), Some(0), Some(false)), "{ran}");
    assert!(Path::new(DEMO_FILE).exists(), "the script made {DEMO_FILE}");

    seed_refetch_line(&server, &admin, host_id, dir.path()).await;
}

/// Seed 000's line, against the quick-start server: the token from Fleet's path, a refetch the host answers.
async fn seed_refetch_line(server: &Server, admin: &str, host_id: i64, dir: &Path) {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped seed 000's line: only root may write /opt/orbit/identifier, where the line reads the token");
        return;
    }
    let line = section("Policies")
        .lines()
        .find(|line| line.contains("/opt/orbit/identifier)/refetch"))
        .expect("README's seed 000 line");
    let line = line.replace("https://herd.example.com:8080", &server.url);
    let token_file = dir.join("herd-data/agent/identifier");
    // The local agent publishes its current token (a stale one from another run may be there first).
    eventually(PATIENCE, "the token at /opt/orbit/identifier", || async {
        let published = std::fs::read_to_string("/opt/orbit/identifier").ok()?;
        (std::fs::read_to_string(&token_file).ok()? == published).then_some(())
    })
    .await;
    let detail_time = || async {
        let (_, host) = server.get(&format!("/api/v1/fleet/hosts/{host_id}"), admin).await;
        host["host"]["detail_updated_at"].as_str().map(str::to_string)
    };
    let before = detail_time().await.expect("vitals before the refetch");

    let output = Command::new("bash")
        .arg("-c")
        .arg(&line)
        .env("CURL_CA_BUNDLE", server.data_dir.join("tls/cert.pem"))
        .output()
        .expect("bash");
    let answer: Value = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&output.stdout)));
    assert!(output.status.success() && answer.get("errors").is_none(), "{line}\n→ {answer}");
    eventually(PATIENCE, "vitals refreshed after the refetch", || async {
        detail_time().await.filter(|after| *after > before).map(|_| ())
    })
    .await;
}
