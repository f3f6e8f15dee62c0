//! Deferred remediations on the host (see `herd_core::deferral`). The agent keeps every deferred run on disk
//! (DATA_DIR/deferrals.json, private) with the script and the rules, so it runs at the chosen time — or at
//! the deadline — even when the server is unreachable, and after a power-off runs what came due meanwhile
//! (re-checking the policy first). What the user should see is published in DATA_DIR/notices.json (readable
//! by local users) for `herd-agent desktop`; choices are made on My Device or from the desktop notice, and
//! reach the agent through the server.

//!
//! This module holds that state (the schedule, the published notices, their words); `plan` decides from it
//! what a look at the deferred runs does (pure, table-tested), `tick` does it.

mod plan;
mod tick;

pub use plan::{StatusReport, TickPlan, plan_tick};
pub use tick::Deferrals;

use anyhow::{Context, Result};
use herd_core::Millis;
use herd_core::deferral::{MessageContext, Tz, local_time};
use herd_proto::agent::{DeferralInfo, DeferralTrigger, PendingScript};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One deferred run the agent holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub script: PendingScript,
    pub info: DeferralInfo,
    /// What the agent last told the server ("prompting", or the waiting reason): said again only on change.
    #[serde(default)]
    pub reported: Option<String>,
    /// The deadline has come: the run happens at this time, after the notice.
    #[serde(default)]
    pub notice_until: Option<Millis>,
    /// The scheduled time a reminder was shown for.
    #[serde(default)]
    pub reminded_for: Option<Millis>,
}

/// The result of a deferred run the server has not taken yet (it was away): delivered before anything else
/// at the next check-in, so the server records the run before it sees the re-check that follows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Undelivered {
    pub result: crate::scripts::ScriptResult,
    pub trigger: DeferralTrigger,
    pub rechecks_locally: bool,
}

#[derive(Default, Serialize, Deserialize)]
struct Stored {
    entries: Vec<Entry>,
    #[serde(default)]
    undelivered: Vec<Undelivered>,
}

/// The deferred runs, on disk.
pub struct Schedule {
    path: PathBuf,
    pub entries: Vec<Entry>,
    pub undelivered: Vec<Undelivered>,
}

impl Schedule {
    pub fn open(data_dir: &Path) -> Result<Schedule> {
        let path = data_dir.join("deferrals.json");
        let stored: Stored = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Stored::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Schedule { path, entries: stored.entries, undelivered: stored.undelivered })
    }

    /// Written durably (temp file, fsync, rename) before anything depends on it.
    pub fn save(&self) -> Result<()> {
        let stored = Stored { entries: self.entries.clone(), undelivered: self.undelivered.clone() };
        crate::durable::write_atomically(&self.path, serde_json::to_string_pretty(&stored)?.as_bytes(), 0o600, None)
    }

    /// Takes the server's list of deferred runs: new ones are added, known ones follow the server's state
    /// (keeping what only the agent knows), and ones the server no longer lists (cancelled because the policy
    /// passes, run now, or finished) are dropped.
    pub fn merge(&mut self, deferred: Vec<PendingScript>) {
        let mut next = Vec::with_capacity(deferred.len());
        for mut script in deferred {
            let Some(info) = script.deferral.take() else { continue };
            match self.entries.iter().position(|e| e.script.execution_id == script.execution_id) {
                Some(i) => {
                    let mut entry = self.entries.swap_remove(i);
                    if entry.info.state != info.state {
                        // A choice was made: the prompt closes.
                        entry.reported = None;
                    }
                    entry.info = info;
                    entry.script = script;
                    next.push(entry);
                }
                None => next.push(Entry { script, info, reported: None, notice_until: None, reminded_for: None }),
            }
        }
        self.entries = next;
    }

    pub fn remove(&mut self, execution_id: &str) {
        self.entries.retain(|e| e.script.execution_id != execution_id);
    }
}

/// The host's IANA time zone: $TZ, /etc/timezone, or the /etc/localtime link; UTC when none reads.
pub fn local_zone() -> Tz {
    let from_env = std::env::var("TZ").ok().map(|z| z.trim_start_matches(':').to_string());
    let from_file = || std::fs::read_to_string("/etc/timezone").ok().map(|z| z.trim().to_string());
    let from_link = || {
        let target = std::fs::read_link("/etc/localtime").ok()?;
        let text = target.to_string_lossy().into_owned();
        text.split_once("zoneinfo/").map(|(_, zone)| zone.to_string())
    };
    [from_env, from_file(), from_link()].into_iter().flatten().find_map(|z| z.parse().ok()).unwrap_or(Tz::UTC)
}

/// What local users see (DATA_DIR/notices.json): prompts waiting for a choice, reminders before a scheduled
/// run, and notices that the deadline has come.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Notices {
    pub prompts: Vec<Notice>,
    pub reminders: Vec<Notice>,
    pub deadline_notices: Vec<Notice>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notice {
    pub policy_id: Option<i64>,
    pub policy_name: String,
    pub title: String,
    pub message: String,
    /// When the fix runs (reminders and deadline notices), in the user's local time.
    #[serde(default)]
    pub runs_at: Option<String>,
    /// What the user may choose ("now" first), for prompts.
    #[serde(default)]
    pub choices: Vec<NoticeChoice>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoticeChoice {
    pub choice: String,
    pub label: String,
}

impl Notices {
    pub fn path(data_dir: &Path) -> PathBuf {
        data_dir.join("notices.json")
    }

    pub fn read(data_dir: &Path) -> Notices {
        std::fs::read_to_string(Self::path(data_dir))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub fn write(&self, data_dir: &Path) -> Result<()> {
        crate::durable::write_atomically(
            &Self::path(data_dir),
            serde_json::to_string_pretty(self)?.as_bytes(),
            0o644,
            None,
        )
    }
}

/// The words of a notice about `entry`.
pub fn notice(entry: &Entry, deadline: Option<Millis>, tz: Tz, runs_at: Option<Millis>) -> Notice {
    let settings = &entry.info.settings;
    let left = (settings.max_deferrals - entry.info.state.deferrals_used).max(0);
    let context = MessageContext {
        policy_name: &entry.info.policy_name,
        org_name: &entry.info.org_name,
        deadline,
        deferrals_left: u32::try_from(left).unwrap_or(0),
        tz,
    };
    Notice {
        policy_id: entry.script.policy_id,
        policy_name: entry.info.policy_name.clone(),
        title: settings.render_title(&context),
        message: settings.render_message(&context),
        runs_at: runs_at.map(|at| local_time(at, tz)),
        choices: Vec::new(),
    }
}

/// SQL quoting for a process name in a query the agent builds itself.
fn quoted(name: &str) -> String {
    format!("'{}'", name.replace('\'', "''"))
}

/// The query that finds running blocking processes (by process name).
pub fn blocking_query(names: &[String]) -> Option<String> {
    if names.is_empty() {
        return None;
    }
    let list: Vec<String> = names.iter().map(|n| quoted(n.trim())).collect();
    Some(format!("SELECT DISTINCT name FROM processes WHERE name IN ({})", list.join(", ")))
}

/// Someone can be asked: a desktop session runs `herd-agent desktop`, or a user is logged in.
pub const USER_PRESENT_QUERIES: [&str; 2] = [
    "SELECT 1 FROM processes WHERE cmdline LIKE '%herd-agent desktop%' LIMIT 1",
    "SELECT 1 FROM logged_in_users WHERE type = 'user' LIMIT 1",
];

#[cfg(test)]
mod tests {
    use super::*;

    use herd_core::deferral::DeferralSettings;
    use herd_proto::agent::DeferralProgress;

    fn script(id: &str, state: DeferralProgress) -> PendingScript {
        let settings: DeferralSettings =
            serde_json::from_str(r#"{"options": ["1h"], "max_deferrals": 1, "deadline_after": "1d"}"#).unwrap();
        PendingScript {
            execution_id: id.into(),
            name: "fix.sh".into(),
            contents: "true".into(),
            timeout_s: None,
            policy_id: Some(1),
            policy_query: Some("SELECT 1".into()),
            policy_revision: Some(1),
            deferral: Some(DeferralInfo { settings, policy_name: "p".into(), org_name: String::new(), state }),
        }
    }

    #[test]
    fn schedule_follows_the_server_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let mut schedule = Schedule::open(dir.path()).unwrap();
        schedule.merge(vec![script("a", DeferralProgress::default()), script("b", DeferralProgress::default())]);
        schedule.entries[0].reported = Some("prompting".into());
        schedule.save().unwrap();
        let mut again = Schedule::open(dir.path()).unwrap();
        assert_eq!(again.entries.len(), 2);
        assert_eq!(again.entries[0].reported.as_deref(), Some("prompting"));
        // The user chose for "a"; "b" is no longer listed (the policy passes again).
        let chosen = DeferralProgress { first_prompt_at: Some(5), deferrals_used: 1, scheduled_at: Some(100) };
        again.merge(vec![script("a", chosen)]);
        assert_eq!(again.entries.len(), 1);
        assert_eq!(again.entries[0].info.state, chosen);
        assert_eq!(again.entries[0].reported, None, "a choice closes the prompt");
    }

    #[test]
    fn process_names_are_quoted() {
        assert_eq!(
            blocking_query(&["zoom".into(), "o'neil".into()]).unwrap(),
            "SELECT DISTINCT name FROM processes WHERE name IN ('zoom', 'o''neil')"
        );
        assert_eq!(blocking_query(&[]), None);
    }
}
