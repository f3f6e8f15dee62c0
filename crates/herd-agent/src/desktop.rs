//! `herd-agent desktop`: runs in the user's session, next to `herd-agent run`. It reads the device token the
//! agent publishes (DATA_DIR/identifier, rotated hourly), polls the server's `/device/{token}/desktop`
//! summary, and tells the user — with a desktop notification (`notify-send`) or, without one, on the
//! terminal — when more policies fail than before or a migration prompt is due; `--open` opens the My Device
//! page. Errors (the server away, a token being rotated) back off exponentially; never a tight loop.
//!
//! It also shows what the agent publishes locally in DATA_DIR/notices.json (read every few seconds, so it
//! works while the server is away): a deferrable fix asking for a choice — one notification action per
//! choice, recorded through the device API —, a reminder before a scheduled run, the notice at a deadline.

use crate::cli::DesktopOptions;
use anyhow::{Context, bail};
use herd_proto::agent::{DeferralChoiceRequest, DesktopSummary};
use herd_proto::fleet::ErrorBody;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// The first wait after an error; doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(30 * 60);
/// How often the agent's local notices are read.
const LOCAL_LOOK: Duration = Duration::from_secs(3);
/// A forced migration prompts again this often until the host has migrated (Fleet's rhythm).
const FORCED_REPROMPT: Duration = Duration::from_secs(15 * 60);

/// What the server says about this device.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub failing_policies: u64,
    pub needs_migration: bool,
    pub migration_mode: String,
    pub org_name: String,
    pub contact_url: String,
}

impl Summary {
    fn from_desktop(body: DesktopSummary) -> Summary {
        let org = body.config.org_info;
        Summary {
            failing_policies: body.failing_policies_count,
            needs_migration: body.notifications.needs_mdm_migration,
            migration_mode: body.config.mdm.macos_migration.mode,
            org_name: org.org_name,
            contact_url: org.contact_url,
        }
    }
}

/// Why a poll failed: a rejected token (the agent may be rotating it) or anything else.
#[derive(Debug)]
enum PollError {
    Unauthorized,
    Other(anyhow::Error),
}

#[derive(Clone)]
struct Desktop {
    http: reqwest::Client,
    server: String,
    token_file: std::path::PathBuf,
}

/// Where the desktop finds the server: what `herd-agent run` publishes beside its device token, so a user's
/// `herd-agent desktop` needs no flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub server: String,
    #[serde(default)]
    pub ca_cert: Option<std::path::PathBuf>,
}

/// The file in the agent's data directory.
pub const CONNECTION_FILE: &str = "desktop.json";

/// Publishes the agent's server and CA certificate (its absolute path) for the desktop (0644, like the token).
pub fn publish_connection(data_dir: &Path, server: &str, ca_cert: Option<&Path>) -> anyhow::Result<()> {
    let ca_cert = ca_cert.map(|p| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf()));
    let connection = Connection { server: server.trim_end_matches('/').to_string(), ca_cert };
    let bytes = serde_json::to_vec_pretty(&connection)?;
    crate::durable::write_atomically(&data_dir.join(CONNECTION_FILE), &bytes, 0o644, None)
}

/// The agent data directory the desktop reads: the one given, else the first common layout holding a token.
pub fn find_data_dir(given: Option<&Path>, candidates: &[std::path::PathBuf]) -> anyhow::Result<std::path::PathBuf> {
    if let Some(dir) = given {
        return Ok(dir.to_path_buf());
    }
    candidates.iter().find(|dir| dir.join("identifier").is_file()).cloned().ok_or_else(|| {
        let looked: Vec<String> = candidates.iter().map(|d| d.display().to_string()).collect();
        anyhow::anyhow!(
            "no device token found in {}: is `herd-agent run` (or `herd serve --with-agent`) running? \
             Give its data directory with --data-dir",
            looked.join(" or ")
        )
    })
}

impl Desktop {
    fn new(options: &DesktopOptions, data_dir: &Path) -> anyhow::Result<Desktop> {
        let published: Option<Connection> =
            std::fs::read(data_dir.join(CONNECTION_FILE)).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok());
        let server = match (&options.server, &published) {
            (Some(server), _) => server.clone(),
            (None, Some(connection)) => connection.server.clone(),
            (None, None) => bail!(
                "no server given and none published in {}: pass --server https://…",
                data_dir.join(CONNECTION_FILE).display()
            ),
        };
        let ca_cert = options.ca_cert.clone().or_else(|| published.and_then(|c| c.ca_cert));
        Ok(Desktop {
            http: crate::client::http_client(ca_cert.as_deref(), Duration::from_secs(30))?,
            server: server.trim_end_matches('/').to_string(),
            token_file: data_dir.join("identifier"),
        })
    }

    /// Read at every poll: the agent rotates the token hourly.
    fn token(&self) -> anyhow::Result<String> {
        let text = std::fs::read_to_string(&self.token_file)
            .with_context(|| format!("reading the device token from {}", self.token_file.display()))?;
        let token = text.trim().to_string();
        if token.is_empty() {
            bail!("{} is empty: is `herd-agent run` running?", self.token_file.display());
        }
        Ok(token)
    }

    /// Records the user's choice for a deferrable fix (the server checks it; a refusal is shown).
    async fn choose(&self, policy_id: i64, choice: &str) -> anyhow::Result<()> {
        let token = self.token()?;
        let url = format!("{}/api/latest/fleet/device/{token}/deferrals/{policy_id}", self.server);
        let chosen_by = std::env::var("USER").ok();
        let body = DeferralChoiceRequest { choice: choice.to_string(), chosen_by };
        let response = self.http.post(&url).json(&body).send().await?;
        if !response.status().is_success() {
            let status = response.status();
            let answer: Option<ErrorBody> = response.json().await.ok();
            let reason = answer
                .map(|a| a.errors.into_iter().next().map_or(a.message, |e| e.reason))
                .unwrap_or_else(|| "refused".to_string());
            bail!("the server answered {status}: {reason}");
        }
        Ok(())
    }

    fn page_url(&self, token: &str) -> String {
        format!("{}/device/{token}", self.server)
    }

    async fn poll(&self) -> Result<(Summary, String), PollError> {
        let token = self.token().map_err(PollError::Other)?;
        let url = format!("{}/api/latest/fleet/device/{token}/desktop", self.server);
        let response = self.http.get(&url).send().await.map_err(|e| PollError::Other(e.into()))?;
        match response.status() {
            reqwest::StatusCode::UNAUTHORIZED => Err(PollError::Unauthorized),
            status if !status.is_success() => Err(PollError::Other(anyhow::anyhow!("the server answered {status}"))),
            _ => {
                let body: DesktopSummary = response.json().await.map_err(|e| PollError::Other(e.into()))?;
                Ok((Summary::from_desktop(body), self.page_url(&token)))
            }
        }
    }
}

/// Shows a notice: a desktop notification with an "Open My Device" action when `notify-send` works (the page
/// opens when the user picks it), else a line on the terminal with the link.
fn notify(title: &str, url: &str) {
    let body = format!("Open My Device: {url}");
    let spawned = std::process::Command::new("notify-send")
        .args(["--app-name=herd", "--action=open=Open My Device", "--wait", title, &body])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn();
    match spawned {
        Ok(child) => {
            let (title, url) = (title.to_string(), url.to_string());
            // Waits for the user's choice without holding up the polling.
            std::thread::spawn(move || match child.wait_with_output() {
                Ok(done) if done.status.success() => {
                    if String::from_utf8_lossy(&done.stdout).trim() == "open" {
                        open_page(&url);
                    }
                }
                // No notification service in this session: say it on the terminal.
                _ => println!("[herd] {title} — {body}"),
            });
        }
        Err(_) => println!("[herd] {title} — {body}"),
    }
}

/// Shows one of the agent's local notices. A prompt offers each choice as a notification action (and "Open
/// My Device"); the picked one is sent to the server. Without a notification service: the terminal, with
/// the link to choose on My Device.
fn show_local(desktop: &Desktop, kind: &'static str, notice: &crate::deferrals::Notice) {
    let url = desktop.token().map(|t| desktop.page_url(&t)).unwrap_or_default();
    let mut body = notice.message.clone();
    if let Some(at) = &notice.runs_at {
        body = match kind {
            "reminder" => format!("The fix for \"{}\" runs at {at}. Save your work.", notice.policy_name),
            _ => format!("The deadline has come: the fix for \"{}\" runs at {at}. Save your work.", notice.policy_name),
        };
    }
    let mut args = vec!["--app-name=herd".to_string(), "--wait".to_string()];
    for choice in &notice.choices {
        args.push(format!("--action={}={}", choice.choice, choice.label));
    }
    args.push("--action=open=Open My Device".into());
    args.push(notice.title.clone());
    args.push(body.clone());
    let spawned = tokio::process::Command::new("notify-send")
        .args(&args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn();
    let terminal = format!("[herd] {} — {body} — My Device: {url}", notice.title);
    let Ok(child) = spawned else {
        println!("{terminal}");
        return;
    };
    let desktop = desktop.clone();
    let policy_id = notice.policy_id;
    tokio::spawn(async move {
        match child.wait_with_output().await {
            Ok(done) if done.status.success() => {
                let picked = String::from_utf8_lossy(&done.stdout).trim().to_string();
                match (picked.as_str(), policy_id) {
                    ("", _) => {}
                    ("open", _) => open_page(&url),
                    (choice, Some(policy_id)) => {
                        if let Err(e) = desktop.choose(policy_id, choice).await {
                            notify(&format!("Your choice was not recorded: {e:#}"), &url);
                        }
                    }
                    _ => {}
                }
            }
            _ => println!("{terminal}"),
        }
    });
}

/// Opens the My Device page in the user's browser; prints the link when no browser can be opened.
fn open_page(url: &str) {
    let opened = std::process::Command::new("xdg-open").arg(url).status().is_ok_and(|s| s.success());
    if !opened {
        println!("{url}");
    }
}

/// What to tell the user after a poll, given the previous summary and when a migration was last prompted.
pub fn notices(
    previous: Option<&Summary>,
    now: &Summary,
    since_migration_prompt: Option<Duration>,
) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    if now.failing_policies > previous.map_or(0, |p| p.failing_policies) {
        let n = now.failing_policies;
        out.push((
            format!("{n} {} failing on this device", if n == 1 { "policy is" } else { "policies are" }),
            "policies",
        ));
    }
    if now.needs_migration {
        let due = match since_migration_prompt {
            None => true,
            Some(elapsed) => now.migration_mode == "forced" && elapsed >= FORCED_REPROMPT,
        };
        if due {
            out.push(("Your device needs to move to the new management system".to_string(), "migration"));
        }
    }
    out
}

pub async fn run(options: DesktopOptions) -> anyhow::Result<()> {
    let layouts = [
        std::path::PathBuf::from(crate::cli::defaults::DATA_DIR),
        std::path::PathBuf::from(crate::cli::defaults::QUICK_START_DATA_DIR),
    ];
    let data_dir = find_data_dir(options.data_dir.as_deref(), &layouts)?;
    let desktop = Desktop::new(&options, &data_dir)?;
    if options.once || options.open {
        let (summary, url) = match desktop.poll().await {
            Ok(found) => found,
            Err(PollError::Unauthorized) => {
                bail!("the server rejected this device's token (is `herd-agent run` running?)")
            }
            Err(PollError::Other(e)) => return Err(e),
        };
        if options.open {
            open_page(&url);
            return Ok(());
        }
        println!("failing policies: {}", summary.failing_policies);
        println!("needs migration: {}", if summary.needs_migration { "yes" } else { "no" });
        if !summary.org_name.is_empty() {
            println!("organisation: {}", summary.org_name);
        }
        if !summary.contact_url.is_empty() {
            println!("contact: {}", summary.contact_url);
        }
        println!("my device: {url}");
        return Ok(());
    }
    let interval = Duration::from_secs(options.interval.max(1));
    let mut previous: Option<Summary> = None;
    let mut migration_prompted: Option<std::time::Instant> = None;
    let mut backoff = FIRST_BACKOFF.min(interval);
    let mut shown: std::collections::HashSet<String> = std::collections::HashSet::new();
    let mut next_poll = std::time::Instant::now();
    loop {
        // The agent's local notices: each shown once while it lasts.
        let local = crate::deferrals::Notices::read(&data_dir);
        let mut current = std::collections::HashSet::new();
        let kinds = [("prompt", &local.prompts), ("reminder", &local.reminders), ("deadline", &local.deadline_notices)];
        for (kind, list) in kinds {
            for notice in list.iter() {
                let key = format!("{kind}:{:?}:{:?}:{}", notice.policy_id, notice.runs_at, notice.choices.len());
                if !shown.contains(&key) {
                    show_local(&desktop, kind, notice);
                }
                current.insert(key);
            }
        }
        shown = current;
        let now = std::time::Instant::now();
        if now < next_poll {
            tokio::time::sleep(LOCAL_LOOK.min(next_poll - now)).await;
            continue;
        }
        let wait = match desktop.poll().await {
            Ok((summary, url)) => {
                for (title, _) in notices(previous.as_ref(), &summary, migration_prompted.map(|at| at.elapsed())) {
                    if title.contains("management system") {
                        migration_prompted = Some(std::time::Instant::now());
                    }
                    notify(&title, &url);
                }
                if !summary.needs_migration {
                    migration_prompted = None;
                }
                previous = Some(summary);
                backoff = FIRST_BACKOFF.min(interval);
                interval
            }
            Err(error) => {
                match error {
                    // The agent rotates the token hourly: the next poll reads the new one. Still back off.
                    PollError::Unauthorized => tracing::warn!("device token rejected; retrying in {backoff:?}"),
                    PollError::Other(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "polling the server; retrying in {backoff:?}")
                    }
                }
                let wait = backoff;
                backoff = (backoff * 2).min(MAX_BACKOFF);
                wait
            }
        };
        next_poll = std::time::Instant::now() + wait;
        tokio::time::sleep(LOCAL_LOOK.min(wait)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without flags the desktop reads the first common layout holding a token, and the server and CA the
    /// agent published there; flags win; nothing found says where it looked.
    #[test]
    fn finds_the_agent_and_its_server_without_flags() {
        let root = tempfile::tempdir().unwrap();
        let (packaged, quick_start) = (root.path().join("var-lib"), root.path().join("herd-data/agent"));
        let layouts = [packaged.clone(), quick_start.clone()];
        let error = find_data_dir(None, &layouts).unwrap_err().to_string();
        assert!(error.contains("no device token found") && error.contains("herd-data/agent"), "{error}");
        std::fs::create_dir_all(&quick_start).unwrap();
        std::fs::write(quick_start.join("identifier"), "t".repeat(64)).unwrap();
        let ca = root.path().join("cert.pem");
        std::fs::write(&ca, "pem").unwrap();
        publish_connection(&quick_start, "https://herd.test:8080/", Some(&ca)).unwrap();
        assert_eq!(find_data_dir(None, &layouts).unwrap(), quick_start, "the one holding a token");
        assert_eq!(find_data_dir(Some(&packaged), &layouts).unwrap(), packaged, "the one given");
        let published: Connection =
            serde_json::from_slice(&std::fs::read(quick_start.join(CONNECTION_FILE)).unwrap()).unwrap();
        assert_eq!(
            published,
            Connection { server: "https://herd.test:8080".into(), ca_cert: Some(ca.canonicalize().unwrap()) }
        );
        let _ = rustls::crypto::ring::default_provider().install_default();
        let options = |server: Option<&str>| DesktopOptions {
            server: server.map(str::to_string),
            ca_cert: None,
            data_dir: None,
            once: true,
            open: false,
            interval: 300,
        };
        publish_connection(&quick_start, "https://herd.test:8080/", None).unwrap();
        assert_eq!(Desktop::new(&options(None), &quick_start).unwrap().server, "https://herd.test:8080");
        let error = Desktop::new(&options(None), &packaged).err().unwrap().to_string();
        assert!(error.contains("pass --server"), "{error}");
        let desktop = Desktop::new(&options(Some("https://other.test")), &packaged).unwrap();
        assert_eq!(desktop.server, "https://other.test");
    }

    fn summary(failing: u64, migration: bool, mode: &str) -> Summary {
        Summary {
            failing_policies: failing,
            needs_migration: migration,
            migration_mode: mode.into(),
            org_name: String::new(),
            contact_url: String::new(),
        }
    }

    /// (what, previous summary, this summary, time since the last migration prompt, notices wanted)
    type Case = (&'static str, Option<Summary>, Summary, Option<Duration>, Vec<&'static str>);

    #[test]
    fn notice_table() {
        let min = |m: u64| Some(Duration::from_secs(m * 60));
        let kinds = |v: Vec<(String, &'static str)>| v.into_iter().map(|(_, k)| k).collect::<Vec<_>>();
        let cases: &[Case] = &[
            ("first poll, nothing failing", None, summary(0, false, ""), None, vec![]),
            ("first poll, failing", None, summary(2, false, ""), None, vec!["policies"]),
            ("count rose", Some(summary(1, false, "")), summary(2, false, ""), None, vec!["policies"]),
            ("count unchanged", Some(summary(2, false, "")), summary(2, false, ""), None, vec![]),
            ("count fell", Some(summary(3, false, "")), summary(1, false, ""), None, vec![]),
            ("migration due, never prompted", None, summary(0, true, "voluntary"), None, vec!["migration"]),
            ("voluntary: once", None, summary(0, true, "voluntary"), min(60), vec![]),
            ("forced: again after 15 min", None, summary(0, true, "forced"), min(15), vec!["migration"]),
            ("forced: not sooner", None, summary(0, true, "forced"), min(14), vec![]),
        ];
        for (what, previous, now, since, want) in cases {
            assert_eq!(kinds(notices(previous.as_ref(), now, *since)), *want, "{what}");
        }
    }
}
