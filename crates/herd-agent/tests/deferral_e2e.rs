//! End to end, seed 003's promise with the real agent: a disruptive fix asks the user first; the user defers
//! it through the device API; it runs at the chosen time and the policy turns green; deferrals past the
//! count are refused; at the deadline it runs unasked, after a notice; a run missed while the machine was off
//! happens at start, even with the server away; a blocking app postpones the prompt but not the deadline.
//! Durations are seconds here; real ones are hours and days.

use herd_testkit::{AgentProcess, Server, eventually};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(120);
const AGENT: &str = env!("CARGO_BIN_EXE_herd-agent");

/// A user's desktop session: `herd-agent desktop` running is how the agent knows someone can be asked.
struct Session(Child);

impl Session {
    fn start(server: &Server, agent_dir: &Path) -> Session {
        let child = Command::new(AGENT)
            .args(["desktop", "--server", &server.url, "--interval", "60"])
            .arg("--ca-cert")
            .arg(server.data_dir.join("tls/cert.pem"))
            .arg("--data-dir")
            .arg(agent_dir)
            // No notification service here: notices go to the terminal.
            .env("PATH", "/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting herd-agent desktop");
        Session(child)
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Setup {
    admin: String,
    policy: i64,
    marker: PathBuf,
    agent_dir: PathBuf,
    work: tempfile::TempDir,
}

/// A policy that passes while `marker` is absent, whose script removes it — only on its second run when
/// `fix_on_second_run` (so the first deferred run leaves the host failing and the retry asks again).
async fn setup(server: &Server, deferral: Value, fix_on_second_run: bool) -> Setup {
    let admin = server.admin_token().await;
    let options = json!({"agent_options": {"config": {"options": {"distributed_interval": 2}}}, "host_settings": {"policy_interval": 2}});
    assert_eq!(server.patch("/api/v1/fleet/config", &admin, options).await.0, 200);
    let work = tempfile::tempdir().unwrap();
    let marker = work.path().join("unwanted");
    let armed = work.path().join("armed");
    let script = if fix_on_second_run {
        format!(
            "if [ -f '{a}' ]; then rm -f '{m}'; echo fixed; else touch '{a}'; echo 'not yet'; fi\n",
            a = armed.display(),
            m = marker.display()
        )
    } else {
        format!("rm -f '{}'\necho fixed\n", marker.display())
    };
    let script_id = server.script_id(&admin, "reboot-like.sh", &script).await;
    let query = format!("SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM file WHERE path = '{}');", marker.display());
    let body = json!({"name": "no unwanted file", "query": query, "script_id": script_id, "deferral": deferral});
    let (status, created) = server.post("/api/v1/fleet/global/policies", &admin, body).await;
    assert_eq!(status, 200, "{created}");
    let agent_dir = work.path().join("agent");
    Setup { admin, policy: created["policy"]["id"].as_i64().unwrap(), marker, agent_dir, work }
}

async fn host_view(server: &Server, admin: &str) -> Option<Value> {
    let (_, hosts) = server.get("/api/v1/fleet/hosts", admin).await;
    let id = hosts["hosts"].as_array()?.first()?["id"].as_i64()?;
    let (_, host) = server.get(&format!("/api/v1/fleet/hosts/{id}"), admin).await;
    Some(host["host"].clone())
}

async fn deferral(server: &Server, s: &Setup) -> Option<Value> {
    let host = host_view(server, &s.admin).await?;
    host["deferrals"].as_array()?.iter().find(|d| d["policy_id"] == s.policy).cloned()
}

async fn response(server: &Server, s: &Setup) -> Option<String> {
    let host = host_view(server, &s.admin).await?;
    host["policies"].as_array()?.iter().find(|p| p["id"] == s.policy)?["response"].as_str().map(str::to_string)
}

async fn wait_for_state(server: &Server, s: &Setup, state: &str) -> Value {
    eventually(PATIENCE, &format!("deferral state {state}"), || async {
        deferral(server, s).await.filter(|d| d["state"] == state)
    })
    .await
}

fn device_token(agent_dir: &Path) -> String {
    std::fs::read_to_string(agent_dir.join("identifier"))
        .expect("the agent publishes its device token")
        .trim()
        .to_string()
}

async fn choose(server: &Server, s: &Setup, choice: &str) -> (u16, Value) {
    let token = device_token(&s.agent_dir);
    let url = format!("{}/api/latest/fleet/device/{token}/deferrals/{}", server.url, s.policy);
    let response = server.client.post(url).json(&json!({"choice": choice})).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn activities(server: &Server, admin: &str, kind: &str) -> Vec<Value> {
    let (_, feed) = server.get("/api/v1/fleet/activities?per_page=200", admin).await;
    feed["activities"].as_array().unwrap().iter().filter(|a| a["type"] == kind).cloned().collect()
}

fn millis(rfc3339: &Value) -> i64 {
    herd_core::deferral::parse_instant(rfc3339.as_str().expect("a time")).unwrap()
}

/// Prompt → "4s" → runs then (not before) → still failing → asked again with no deferrals left → a second
/// deferral refused, state unchanged → at the deadline it runs unasked, after a notice → green.
async fn deferral_is_chosen_counted_and_the_deadline_enforced(server: Server) {
    let settings = json!({
        "options": ["4s"], "max_deferrals": 1, "deadline_after": "40s", "notice_seconds": 2,
        "title": "Restart needed", "message": "{org_name} must fix {policy_name} by {deadline}.",
    });
    let s = setup(&server, settings, true).await;
    let _agent = AgentProcess::start(AGENT, &server, &s.agent_dir, "deferral-e2e", &["--enable-scripts"]);
    eventually(PATIENCE, "the device token", || async { s.agent_dir.join("identifier").exists().then_some(()) }).await;
    let _session = Session::start(&server, &s.agent_dir);
    // Only now does the host fail: with someone there to ask (no user would mean "run at once").
    std::fs::write(&s.marker, "x").unwrap();

    let prompting = wait_for_state(&server, &s, "prompting").await;
    assert_eq!(prompting["title"], "Restart needed");
    assert!(prompting["message"].as_str().unwrap().contains("must fix no unwanted file by "), "{prompting}");
    let choices: Vec<&str> =
        prompting["offered"].as_array().unwrap().iter().map(|c| c["choice"].as_str().unwrap()).collect();
    assert_eq!(choices, ["now", "4s"]);
    assert_eq!((prompting["deferrals_used"].as_i64(), prompting["max_deferrals"].as_i64()), (Some(0), Some(1)));
    assert!(prompting["deadline"].is_string(), "the deadline counts from the first prompt: {prompting}");
    // The desktop sees the prompt in the agent's local notices (published right after the agent tells the
    // server it is asking, so that choices are accepted as soon as the user can make one).
    eventually(PATIENCE, "the prompt in the local notices", || async {
        let text = std::fs::read_to_string(s.agent_dir.join("notices.json")).ok()?;
        let notices: Value = serde_json::from_str(&text).ok()?;
        (notices["prompts"][0]["title"] == "Restart needed").then_some(())
    })
    .await;
    // My Device shows it too, with a button per choice.
    let page = server.client.get(format!("{}/device/{}", server.url, device_token(&s.agent_dir))).send().await.unwrap();
    let html = page.text().await.unwrap();
    assert!(html.contains("Fixes waiting for you") && html.contains("value=\"4s\""), "{html}");

    let (status, refused) = choose(&server, &s, "2h").await;
    assert_eq!(status, 422, "not an offered option: {refused}");
    let (status, chosen) = choose(&server, &s, "4s").await;
    assert_eq!(status, 200, "{chosen}");
    assert_eq!(chosen["deferral"]["state"], "scheduled");
    let scheduled_at = millis(&chosen["deferral"]["deferred_until"]);
    let (status, twice) = choose(&server, &s, "4s").await;
    assert_eq!(status, 409, "the choice was made: {twice}");

    let ran = eventually(PATIENCE, "the deferred run", || async {
        activities(&server, &s.admin, "ran_deferred_remediation").await.into_iter().next()
    })
    .await;
    assert_eq!(ran["details"]["policy_id"], s.policy);
    assert!(millis(&ran["created_at"]) >= scheduled_at, "ran at the chosen time, not before: {ran}");
    let chose = activities(&server, &s.admin, "chose_deferral").await;
    assert_eq!(chose.len(), 1);
    assert_eq!(
        (chose[0]["details"]["choice"].as_str(), chose[0]["details"]["deferrals_used"].as_i64()),
        (Some("4s"), Some(1))
    );

    // The first run did not fix it: the retry asks again, with no deferral left.
    let again = eventually(PATIENCE, "the retry's prompt", || async {
        deferral(&server, &s)
            .await
            .filter(|d| d["state"] == "prompting" && d["script_execution_id"] != ran["details"]["script_execution_id"])
    })
    .await;
    assert_eq!(again["deferrals_used"], 1);
    let only: Vec<&str> = again["offered"].as_array().unwrap().iter().map(|c| c["choice"].as_str().unwrap()).collect();
    assert_eq!(only, ["now"], "no deferrals left: run now only");
    let (status, refused) = choose(&server, &s, "4s").await;
    assert_eq!(status, 409, "past the remaining count: {refused}");
    assert!(refused.to_string().contains("no deferrals left"), "{refused}");
    let unchanged = deferral(&server, &s).await.unwrap();
    assert_eq!((unchanged["deferrals_used"].clone(), unchanged["last_choice"].clone()), (json!(1), json!("4s")));

    // Nobody chooses: at the deadline it runs unasked, after the notice, and the policy turns green.
    let enforced = eventually(PATIENCE, "the enforced deadline", || async {
        activities(&server, &s.admin, "enforced_deferral_deadline").await.into_iter().next()
    })
    .await;
    assert!(millis(&enforced["created_at"]) >= millis(&again["deadline"]), "not before the deadline: {enforced}");
    eventually(PATIENCE, "green again", || async {
        (response(&server, &s).await? == "pass" && !s.marker.exists()).then_some(())
    })
    .await;
    let closed = wait_for_state(&server, &s, "fixed").await;
    assert_eq!(closed["deferrals_used"], 1);
    drop(s.work);
}

/// The user defers; the machine is off (agent stopped) at the chosen time and the server is away when it
/// comes back: the agent runs the missed run at start, on its own; the server learns of it on its return.
async fn missed_run_happens_at_start_without_the_server(mut server: Server) {
    let settings = json!({"options": ["8s"], "max_deferrals": 2, "deadline_after": "1h"});
    let s = setup(&server, settings, false).await;
    let agent = AgentProcess::start(AGENT, &server, &s.agent_dir, "deferral-power", &["--enable-scripts"]);
    eventually(PATIENCE, "the device token", || async { s.agent_dir.join("identifier").exists().then_some(()) }).await;
    let _session = Session::start(&server, &s.agent_dir);
    // Only now does the host fail: with someone there to ask (no user would mean "run at once").
    std::fs::write(&s.marker, "x").unwrap();
    wait_for_state(&server, &s, "prompting").await;
    let (status, chosen) = choose(&server, &s, "8s").await;
    assert_eq!(status, 200, "{chosen}");
    let scheduled_at = chosen["deferral"]["deferred_until"].clone();
    // The agent has the schedule on disk…
    eventually(PATIENCE, "the schedule on the host", || async {
        let text = std::fs::read_to_string(s.agent_dir.join("deferrals.json")).ok()?;
        let stored: Value = serde_json::from_str(&text).ok()?;
        // The API shows whole seconds; the agent keeps milliseconds.
        let on_host = stored["entries"][0]["info"]["state"]["scheduled_at"].as_i64()?;
        ((on_host - millis(&scheduled_at)).abs() < 1_000).then_some(())
    })
    .await;
    // …and the machine goes off before the time (the agent stops; the server goes away too).
    drop(agent);
    assert!(s.marker.exists(), "nothing ran before the chosen time");
    let listen = server.url.trim_start_matches("https://").to_string();
    server.stop();
    eventually(PATIENCE, "the chosen time passing while off", || async {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
        (now > millis(&scheduled_at) + 1_000).then_some(())
    })
    .await;
    let _agent = AgentProcess::start(AGENT, &server, &s.agent_dir, "deferral-power", &["--enable-scripts"]);
    eventually(PATIENCE, "the missed run at start, with the server away", || async {
        (!s.marker.exists()).then_some(())
    })
    .await;
    let server = Server::start_at(&server.bin, server.data_dir.clone(), server.database_url.clone(), &listen);
    let ran = eventually(PATIENCE, "the server learning of the run", || async {
        activities(&server, &s.admin, "ran_script").await.into_iter().next()
    })
    .await;
    assert_eq!(ran["details"]["policy_id"], s.policy);
    eventually(PATIENCE, "green", || async { (response(&server, &s).await? == "pass").then_some(()) }).await;
    drop(s.work);
}

/// A blocking app keeps the prompt away — quietly, with the reason visible to admins — but the deadline
/// still comes, and the fix runs then.
async fn blocking_process_postpones_the_prompt_not_the_deadline(server: Server) {
    let settings = json!({
        "options": ["5s"], "max_deferrals": 3, "deadline_after": "12s", "notice_seconds": 1,
        "blocking_processes": ["herd-blocker"],
    });
    let s = setup(&server, settings, false).await;
    // An app by that name (a copy of sleep), running for the whole test.
    let blocker_path = s.work.path().join("herd-blocker");
    std::fs::copy("/bin/sleep", &blocker_path).unwrap();
    let mut blocker = Command::new(&blocker_path).arg("600").spawn().unwrap();
    let _agent = AgentProcess::start(AGENT, &server, &s.agent_dir, "deferral-blocked", &["--enable-scripts"]);
    eventually(PATIENCE, "the device token", || async { s.agent_dir.join("identifier").exists().then_some(()) }).await;
    let _session = Session::start(&server, &s.agent_dir);
    // Only now does the host fail: with someone there to ask (no user would mean "run at once").
    std::fs::write(&s.marker, "x").unwrap();

    let waiting = wait_for_state(&server, &s, "waiting").await;
    assert!(waiting["waiting_reason"].as_str().unwrap().contains("herd-blocker"), "{waiting}");
    assert!(waiting["deadline"].is_string(), "the deadline runs while the app is open: {waiting}");
    let (status, refused) = choose(&server, &s, "5s").await;
    assert_eq!(status, 409, "the device is not asking: {refused}");
    // Until the fix runs, the user is never prompted.
    eventually(PATIENCE, "the fix at the deadline", || async {
        let notices = std::fs::read_to_string(s.agent_dir.join("notices.json")).unwrap_or_default();
        let notices: Value = serde_json::from_str(&notices).unwrap_or(Value::Null);
        assert!(notices["prompts"].as_array().is_none_or(Vec::is_empty), "no prompt while the app runs: {notices}");
        let d = deferral(&server, &s).await?;
        assert_ne!(d["state"], "prompting", "no prompt while the app runs");
        (!s.marker.exists()).then_some(())
    })
    .await;
    let enforced = eventually(PATIENCE, "the enforced deadline", || async {
        activities(&server, &s.admin, "enforced_deferral_deadline").await.into_iter().next()
    })
    .await;
    assert!(millis(&enforced["created_at"]) >= millis(&waiting["deadline"]), "{enforced}");
    assert!(activities(&server, &s.admin, "chose_deferral").await.is_empty());
    eventually(PATIENCE, "green", || async { (response(&server, &s).await? == "pass").then_some(()) }).await;
    let _ = blocker.kill();
    let _ = blocker.wait();
    drop(s.work);
}

/// The prompt on My Device in a real Chromium: the user reads the wording, clicks a later time, and the page
/// says when the fix will run; the choice is recorded with who made it (the device page), and the agent
/// learns the schedule.
async fn my_device_page_offers_the_choices_in_a_browser(server: Server) {
    let Some(chromedriver) = herd_testkit::browser::chromedriver() else { return };
    let settings = json!({
        "options": ["1h", "tomorrow 09:00"], "max_deferrals": 2, "deadline_after": "3d",
        "title": "Restart needed", "message": "{org_name} restarts this computer by {deadline}.",
    });
    let s = setup(&server, settings, false).await;
    let _agent = AgentProcess::start(AGENT, &server, &s.agent_dir, "deferral-browser", &["--enable-scripts"]);
    eventually(PATIENCE, "the device token", || async { s.agent_dir.join("identifier").exists().then_some(()) }).await;
    let _session = Session::start(&server, &s.agent_dir);
    std::fs::write(&s.marker, "x").unwrap();
    wait_for_state(&server, &s, "prompting").await;

    let browser = herd_testkit::browser::Browser::start(&chromedriver).await;
    browser.open(&format!("{}/device/{}", server.url, device_token(&s.agent_dir))).await;
    let text = browser.text().await;
    assert!(text.contains("Fixes waiting for you") && text.contains("Restart needed"), "{text}");
    assert!(text.contains("Run now") && text.contains("In 1 hour") && text.contains("Tomorrow"), "{text}");
    assert!(text.contains("Deferred 0 of 2 times"), "{text}");
    browser.screenshot("my-device-deferral-prompt").await;
    browser.click("button[value='1h']").await;
    let text = eventually(PATIENCE, "the page showing the schedule", || async {
        let text = browser.text().await;
        text.contains("Scheduled: the fix runs by itself at").then_some(text)
    })
    .await;
    assert!(text.contains("Deferred 1 of 2 times"), "{text}");
    browser.screenshot("my-device-deferral-scheduled").await;
    let chosen = deferral(&server, &s).await.unwrap();
    assert_eq!((chosen["state"].as_str(), chosen["last_choice"].as_str()), (Some("scheduled"), Some("1h")), "{chosen}");
    assert_eq!(chosen["chosen_by"], "My Device page", "where the choice came from: {chosen}");
    eventually(PATIENCE, "the agent keeping the schedule", || async {
        let stored: Value =
            serde_json::from_str(&std::fs::read_to_string(s.agent_dir.join("deferrals.json")).ok()?).ok()?;
        stored["entries"][0]["info"]["state"]["scheduled_at"].as_i64().map(|_| ())
    })
    .await;
    assert!(s.marker.exists(), "nothing runs before the chosen time");
    drop(s.work);
}

herd_testkit::server_cases!(bin = herd_testkit::herd_beside(env!("CARGO_BIN_EXE_herd-agent"));
    my_device_page_offers_the_choices_in_a_browser,
    deferral_is_chosen_counted_and_the_deadline_enforced,
    missed_run_happens_at_start_without_the_server,
    blocking_process_postpones_the_prompt_not_the_deadline);
