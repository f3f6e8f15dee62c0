//! The admin's deferral settings as the REST API and policy YAML carry them: checked field by field at save
//! time (the error names the field), compiled into `DeferralRules`, and rendered into the words a user sees.

use super::{DeferOption, DeferralRules, WhenNoUser};
use crate::{Millis, SECOND_MS};
use chrono::TimeZone;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

pub const DEFAULT_TITLE: &str = "A fix for this device is waiting";
pub const DEFAULT_MESSAGE: &str = "{org_name} needs to run a fix for \"{policy_name}\" on this device. It may \
     interrupt your work: run it now, or pick a later time. It runs by itself at {deadline}.";
/// Placeholders a title or message may use.
pub const PLACEHOLDERS: [&str; 4] = ["policy_name", "deadline", "org_name", "deferrals_left"];
const MAX_TITLE: usize = 200;
const MAX_MESSAGE: usize = 2_000;
const MAX_OPTIONS: usize = 10;
const MAX_DEFERRALS: i64 = 100;
const MAX_BLOCKING: usize = 50;
const MAX_NOTICE_S: i64 = 3_600;

fn yes() -> bool {
    true
}

fn default_notice() -> i64 {
    300
}

/// `deferral` of a policy's script automation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeferralSettings {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Heading of the prompt ("" → `DEFAULT_TITLE`).
    #[serde(default)]
    pub title: String,
    /// Body of the prompt, with `{policy_name}`, `{deadline}`, `{org_name}`, `{deferrals_left}` ("" →
    /// `DEFAULT_MESSAGE`).
    #[serde(default)]
    pub message: String,
    /// "30m", "4h", "1d", "tomorrow 09:00" (the host's local time).
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default)]
    pub max_deferrals: i64,
    /// Floating deadline, counted from the first prompt on the host ("3d").
    #[serde(default)]
    pub deadline_after: Option<String>,
    /// Absolute deadline (RFC 3339).
    #[serde(default)]
    pub deadline_at: Option<String>,
    /// Process names that postpone the prompt while they run (never past the deadline).
    #[serde(default)]
    pub blocking_processes: Vec<String>,
    #[serde(default)]
    pub when_no_user: WhenNoUser,
    /// How long before a scheduled run the user is reminded, and how long the notice before an enforced
    /// deadline run lasts.
    #[serde(default = "default_notice")]
    pub notice_seconds: i64,
}

/// A bad field: (field path, reason).
pub type FieldError = (String, String);

fn field(name: &str, reason: impl Into<String>) -> FieldError {
    (format!("deferral.{name}"), reason.into())
}

/// Parses a positive duration ("30m", "4h", "2d").
pub fn parse_duration(text: &str) -> Result<Millis, String> {
    match DeferOption::parse(text)? {
        DeferOption::For(ms) => Ok(ms),
        DeferOption::TomorrowAt { .. } => Err(format!("{text:?}: expected a duration like 30m, 4h or 2d")),
    }
}

/// Parses an RFC 3339 instant.
pub fn parse_instant(text: &str) -> Result<Millis, String> {
    chrono::DateTime::parse_from_rfc3339(text.trim())
        .map(|t| t.timestamp_millis())
        .map_err(|e| format!("{text:?} is not an RFC 3339 time ({e})"))
}

fn check_placeholders(name: &str, text: &str) -> Result<(), FieldError> {
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else { return Err(field(name, "an unclosed '{'")) };
        let placeholder = &after[..close];
        if !PLACEHOLDERS.contains(&placeholder) {
            return Err(field(
                name,
                format!(
                    "unknown placeholder {{{placeholder}}}; use {}",
                    PLACEHOLDERS.map(|p| format!("{{{p}}}")).join(", ")
                ),
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

/// What the placeholders stand for on one host.
#[derive(Debug, Clone, Copy)]
pub struct MessageContext<'a> {
    pub policy_name: &'a str,
    pub org_name: &'a str,
    pub deadline: Option<Millis>,
    pub deferrals_left: u32,
    /// The host's time zone: the deadline reads in the user's local time.
    pub tz: Tz,
}

/// A deadline as a user reads it, in their time zone ("Tue 24 Nov 2026 09:00 CET").
pub fn local_time(at: Millis, tz: Tz) -> String {
    match tz.timestamp_millis_opt(at).single() {
        Some(t) => t.format("%a %d %b %Y %H:%M %Z").to_string(),
        None => "an unknown time".into(),
    }
}

impl DeferralSettings {
    /// Checks every field at save time `now`, naming the first bad one.
    pub fn check(&self, now: Millis) -> Result<(), FieldError> {
        if self.title.chars().count() > MAX_TITLE {
            return Err(field("title", format!("must be at most {MAX_TITLE} characters")));
        }
        if self.message.chars().count() > MAX_MESSAGE {
            return Err(field("message", format!("must be at most {MAX_MESSAGE} characters")));
        }
        check_placeholders("title", &self.title)?;
        check_placeholders("message", &self.message)?;
        if !(0..=MAX_DEFERRALS).contains(&self.max_deferrals) {
            return Err(field("max_deferrals", format!("must be between 0 and {MAX_DEFERRALS}")));
        }
        if self.options.len() > MAX_OPTIONS {
            return Err(field("options", format!("at most {MAX_OPTIONS} options")));
        }
        if self.max_deferrals > 0 && self.options.is_empty() {
            return Err(field("options", "max_deferrals lets users defer, but no option says for how long"));
        }
        let deadline_after = match &self.deadline_after {
            Some(text) => Some(parse_duration(text).map_err(|r| field("deadline_after", r))?),
            None => None,
        };
        let deadline_at = match &self.deadline_at {
            Some(text) => {
                let at = parse_instant(text).map_err(|r| field("deadline_at", r))?;
                if at <= now {
                    return Err(field("deadline_at", format!("{text} is in the past")));
                }
                Some(at)
            }
            None => None,
        };
        if self.enabled && deadline_after.is_none() && deadline_at.is_none() {
            return Err(field(
                "deadline_after",
                "a deferral needs a deadline, or users could put the fix off for ever: set deadline_after, deadline_at, or both",
            ));
        }
        // The longest time an option could be offered for: the floating window, or what is left until the
        // absolute deadline now.
        let window = match (deadline_after, deadline_at.map(|at| at - now)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let mut seen = Vec::new();
        for (i, text) in self.options.iter().enumerate() {
            let name = format!("options[{i}]");
            let option = DeferOption::parse(text).map_err(|r| field(&name, r))?;
            if let (DeferOption::For(ms), Some(window)) = (option, window)
                && ms > window
            {
                return Err(field(
                    &name,
                    format!("{text:?} is longer than the deadline window ({}): it could never be offered", {
                        DeferOption::For(window.max(crate::SECOND_MS)).label()
                    }),
                ));
            }
            if seen.contains(&option) {
                return Err(field(&name, format!("{text:?} is listed twice")));
            }
            seen.push(option);
        }
        if self.blocking_processes.len() > MAX_BLOCKING {
            return Err(field("blocking_processes", format!("at most {MAX_BLOCKING} process names")));
        }
        for (i, name) in self.blocking_processes.iter().enumerate() {
            if name.trim().is_empty() || name.len() > 255 || name.contains('/') || name.contains('\0') {
                return Err(field(
                    &format!("blocking_processes[{i}]"),
                    "must be a process name (not empty, no '/', at most 255 bytes)",
                ));
            }
        }
        if !(0..=MAX_NOTICE_S).contains(&self.notice_seconds) {
            return Err(field("notice_seconds", format!("must be between 0 and {MAX_NOTICE_S}")));
        }
        Ok(())
    }

    /// The rules these settings describe (each field read as `check` reads it; an absolute deadline in the
    /// past is fine here: it simply has come).
    pub fn rules(&self) -> Result<DeferralRules, FieldError> {
        let options = self
            .options
            .iter()
            .enumerate()
            .map(|(i, text)| DeferOption::parse(text).map_err(|r| field(&format!("options[{i}]"), r)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DeferralRules {
            options,
            max_deferrals: u32::try_from(self.max_deferrals.max(0)).unwrap_or(u32::MAX),
            deadline_after: match &self.deadline_after {
                Some(text) => Some(parse_duration(text).map_err(|r| field("deadline_after", r))?),
                None => None,
            },
            deadline_at: match &self.deadline_at {
                Some(text) => Some(parse_instant(text).map_err(|r| field("deadline_at", r))?),
                None => None,
            },
            when_no_user: self.when_no_user,
        })
    }

    pub fn notice_ms(&self) -> Millis {
        self.notice_seconds.clamp(0, MAX_NOTICE_S) * SECOND_MS
    }

    pub fn render_title(&self, context: &MessageContext) -> String {
        render(if self.title.trim().is_empty() { DEFAULT_TITLE } else { &self.title }, context)
    }

    pub fn render_message(&self, context: &MessageContext) -> String {
        render(if self.message.trim().is_empty() { DEFAULT_MESSAGE } else { &self.message }, context)
    }
}

fn render(template: &str, context: &MessageContext) -> String {
    let deadline = context.deadline.map_or_else(|| "no set time".to_string(), |at| local_time(at, context.tz));
    template
        .replace("{policy_name}", context.policy_name)
        .replace("{org_name}", if context.org_name.is_empty() { "Your IT team" } else { context.org_name })
        .replace("{deadline}", &deadline)
        .replace("{deferrals_left}", &context.deferrals_left.to_string())
}

/// A policy's stored deferral document, read one way wherever it matters: the store deciding whether a run
/// waits on the user, the policy view, the device user's choice. Documents are checked when saved; one that no
/// longer reads or compiles (written by another release, or by hand) is shown as none and defers nothing, so a
/// fix never waits on a prompt that cannot be shown.
pub fn read_stored(text: Option<&str>) -> Option<DeferralSettings> {
    // An object only: serde would also read a struct from an array of its fields in order.
    match serde_json::from_str(text?).ok()? {
        object @ serde_json::Value::Object(_) => serde_json::from_value(object).ok(),
        _ => None,
    }
}

/// The settings and compiled rules of a stored document, whether or not deferral is on: a run deferred while it
/// was on keeps following them. None when the document is absent, unreadable, or its rules do not compile.
pub fn stored_rules(text: Option<&str>) -> Option<(DeferralSettings, DeferralRules)> {
    let settings = read_stored(text)?;
    let rules = settings.rules().ok()?;
    Some((settings, rules))
}

/// Whether a stored document makes new runs wait on the user: it reads, its rules compile, and it is enabled.
pub fn defers_runs(text: Option<&str>) -> bool {
    stored_rules(text).is_some_and(|(settings, _)| settings.enabled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DAY_MS, HOUR_MS, MINUTE_MS};

    fn settings() -> DeferralSettings {
        serde_json::from_str(
            r#"{"options": ["1h", "4h", "tomorrow 09:00"], "max_deferrals": 3, "deadline_after": "2d"}"#,
        )
        .unwrap()
    }

    #[test]
    fn defaults_and_compiled_rules() {
        let s = settings();
        assert!(s.enabled);
        assert_eq!(s.when_no_user, WhenNoUser::Run);
        assert_eq!(s.notice_seconds, 300);
        assert_eq!(s.check(0), Ok(()));
        let rules = s.rules().unwrap();
        assert_eq!(rules.deadline_after, Some(2 * DAY_MS));
        assert_eq!(rules.options.len(), 3);
        assert!(serde_json::from_str::<DeferralSettings>(r#"{"optoins": []}"#).is_err(), "unknown fields refused");
    }

    #[test]
    fn bad_fields_are_named() {
        let now = 1_000 * DAY_MS;
        let past = chrono::DateTime::from_timestamp_millis(now - HOUR_MS).unwrap().to_rfc3339();
        let soon = chrono::DateTime::from_timestamp_millis(now + 2 * HOUR_MS).unwrap().to_rfc3339();
        let cases: Vec<(&str, DeferralSettings, &str)> = vec![
            ("zero duration", DeferralSettings { options: vec!["0h".into()], ..settings() }, "deferral.options[0]"),
            (
                "negative duration",
                DeferralSettings { options: vec!["-1h".into()], ..settings() },
                "deferral.options[0]",
            ),
            (
                "option longer than the floating window",
                DeferralSettings { options: vec!["1h".into(), "3d".into()], ..settings() },
                "deferral.options[1]",
            ),
            (
                "option longer than what is left until deadline_at",
                DeferralSettings { deadline_after: None, deadline_at: Some(soon), ..settings() },
                "deferral.options[1]",
            ),
            ("max_deferrals < 0", DeferralSettings { max_deferrals: -1, ..settings() }, "deferral.max_deferrals"),
            (
                "deadline in the past",
                DeferralSettings { deadline_at: Some(past), ..settings() },
                "deferral.deadline_at",
            ),
            ("no deadline at all", DeferralSettings { deadline_after: None, ..settings() }, "deferral.deadline_after"),
            (
                "bad deadline_after",
                DeferralSettings { deadline_after: Some("soon".into()), ..settings() },
                "deferral.deadline_after",
            ),
            ("unknown placeholder", DeferralSettings { message: "Hi {user}".into(), ..settings() }, "deferral.message"),
            (
                "options twice",
                DeferralSettings { options: vec!["1h".into(), "60m".into()], ..settings() },
                "deferral.options[1]",
            ),
            (
                "a path is not a process name",
                DeferralSettings { blocking_processes: vec!["/usr/bin/zoom".into()], ..settings() },
                "deferral.blocking_processes[0]",
            ),
            ("notice too long", DeferralSettings { notice_seconds: 7200, ..settings() }, "deferral.notice_seconds"),
            ("deferring with no option", DeferralSettings { options: vec![], ..settings() }, "deferral.options"),
        ];
        for (what, s, want) in cases {
            let got = s.check(now);
            assert_eq!(got.as_ref().map_err(|(f, _)| f.as_str()), Err(want), "{what}: {got:?}");
        }
        let disabled = DeferralSettings { enabled: false, deadline_after: None, ..settings() };
        assert_eq!(disabled.check(now), Ok(()), "a disabled deferral needs no deadline");
    }

    #[test]
    fn messages_render_in_the_host_s_time_zone() {
        let s = DeferralSettings {
            message: "{org_name}: {policy_name} by {deadline} ({deferrals_left} left)".into(),
            ..settings()
        };
        let deadline = chrono_tz::Europe::Berlin.with_ymd_and_hms(2026, 11, 24, 9, 0, 0).unwrap().timestamp_millis();
        let context = MessageContext {
            policy_name: "Disk encrypted",
            org_name: "Acme",
            deadline: Some(deadline),
            deferrals_left: 2,
            tz: chrono_tz::Europe::Berlin,
        };
        assert_eq!(s.render_message(&context), "Acme: Disk encrypted by Tue 24 Nov 2026 09:00 CET (2 left)");
        assert_eq!(s.render_title(&context), DEFAULT_TITLE);
        assert!(
            DeferralSettings::check(&DeferralSettings { message: DEFAULT_MESSAGE.into(), ..settings() }, 0).is_ok()
        );
    }

    #[test]
    fn labels() {
        assert_eq!(DeferOption::For(HOUR_MS).label(), "1 hour");
        assert_eq!(DeferOption::For(4 * HOUR_MS).label(), "4 hours");
        assert_eq!(DeferOption::For(30 * MINUTE_MS).label(), "30 minutes");
        assert_eq!(DeferOption::For(DAY_MS).label(), "1 day");
        assert_eq!(DeferOption::For(90 * SECOND_MS).label(), "90 seconds");
        assert_eq!(DeferOption::TomorrowAt { hour: 9, minute: 0 }.label(), "tomorrow at 09:00");
    }

    #[test]
    fn a_stored_document_has_one_meaning() {
        let cases: [(Option<&str>, bool, bool); 8] = [
            (None, false, false),
            (Some("{}"), true, true),
            (Some(r#"{"enabled": false}"#), true, false),
            (Some(r#"{"options": ["30m"], "max_deferrals": 2}"#), true, true),
            (Some("not json"), false, false),
            (Some("[]"), false, false),
            // Read leniently, these deferred runs that the server then could neither show nor let a user choose.
            (Some(r#"{"enabled": true, "colour": "red"}"#), false, false),
            (Some(r#"{"options": ["whenever"]}"#), true, false),
        ];
        for (text, readable, defers) in cases {
            assert_eq!(read_stored(text).is_some(), readable, "{text:?} readable");
            assert_eq!(defers_runs(text), defers, "{text:?} defers runs");
        }
    }
}
