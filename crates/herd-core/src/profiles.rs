//! Configuration profiles (seed 004): what a herd profile is, how its presence on a host is fingerprinted,
//! and how each host's copy moves pending → verifying → verified, or is retried and finally failed.
//!
//! The checksum is computed from the *desired state* on the server and from the *observed state* on the host
//! with the same functions ([`file_line`], [`sysctl_line`], [`checksum`]), so a file edited or removed on the host gives a
//! different checksum at the next report: drift, healed through the retry path.

pub mod reconcile;

use crate::Millis;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Fleet's defaults: a profile missing less than an hour after it was acknowledged is not yet missing; 3 retries.
pub const DEFAULT_GRACE_MS: Millis = crate::HOUR_MS;
pub const DEFAULT_MAX_RETRIES: u32 = 3;

const MAX_PAYLOADS: usize = 100;
const MAX_FILE_BYTES: usize = 1 << 20;

/// A herd profile: declarative, identified, applied by herd-agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileDocument {
    pub identifier: String,
    pub name: String,
    pub payloads: Vec<Payload>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Payload {
    /// A file with this exact content; mode defaults to 0644; owner and group (names or numeric ids) are left
    /// as they come when not given.
    File {
        path: String,
        content: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mode: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owner: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        group: Option<String>,
    },
    /// A kernel parameter: applied now and persisted under /etc/sysctl.d.
    Sysctl { key: String, value: String },
}

impl Payload {
    pub fn kind(&self) -> &'static str {
        match self {
            Payload::File { .. } => "file",
            Payload::Sysctl { .. } => "sysctl",
        }
    }
}

/// A mode written as octal ("0644", "644", "0o600"), within 0..=0o7777.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.trim().trim_start_matches("0o");
    let mode = u32::from_str_radix(digits, 8).map_err(|_| format!("{text:?}: expected an octal mode such as 0644"))?;
    if mode > 0o7777 {
        return Err(format!("{text:?}: a mode is at most 07777"));
    }
    Ok(mode)
}

pub const DEFAULT_FILE_MODE: u32 = 0o644;

/// The key as a path under /proc/sys ("net.ipv4.ip_forward" → "net/ipv4/ip_forward"), if it is a valid key.
pub fn sysctl_path(key: &str) -> Option<String> {
    let ok = !key.is_empty()
        && key.len() <= 200
        && key.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'))
        && !key.split(['.', '/']).any(|part| part.is_empty() || part == "..");
    ok.then(|| key.replace('.', "/"))
}

/// How osquery and sysctl print a value: words separated by single spaces.
pub fn normalize_sysctl_value(value: &str) -> String {
    value.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A field that failed a check, and why: ("payloads[1].path", "must be an absolute path").
pub type FieldError = (String, String);

impl ProfileDocument {
    pub fn check(&self) -> Result<(), FieldError> {
        let bad = |field: &str, reason: &str| Err((field.to_string(), reason.to_string()));
        let id = self.identifier.trim();
        if id.is_empty() || id.len() > 255 || id.chars().any(|c| c.is_control() || c == '/' || c == '\\') {
            return bad("identifier", "1 to 255 characters, no slashes or control characters");
        }
        if self.name.trim().is_empty() || self.name.len() > 255 {
            return bad("name", "1 to 255 characters");
        }
        if self.payloads.is_empty() || self.payloads.len() > MAX_PAYLOADS {
            return bad("payloads", "1 to 100 payloads");
        }
        let mut paths = std::collections::HashSet::new();
        for (i, payload) in self.payloads.iter().enumerate() {
            let at = |field: &str| format!("payloads[{i}].{field}");
            match payload {
                Payload::File { path, content, mode, owner, group } => {
                    let clean = path.starts_with('/')
                        && !path.ends_with('/')
                        && !path.split('/').any(|part| part == ".." || part == ".")
                        && !path.contains("//")
                        && !path.chars().any(char::is_control);
                    if !clean {
                        return Err((at("path"), "an absolute, normalized file path".into()));
                    }
                    if !paths.insert(path.clone()) {
                        return Err((at("path"), "the same file twice in one profile".into()));
                    }
                    if content.len() > MAX_FILE_BYTES {
                        return Err((at("content"), "at most 1 MiB".into()));
                    }
                    if let Some(mode) = mode {
                        parse_mode(mode).map_err(|reason| (at("mode"), reason))?;
                    }
                    for (field, value) in [("owner", owner), ("group", group)] {
                        if value.as_deref().is_some_and(|v| {
                            v.is_empty() || v.len() > 64 || v.chars().any(|c| c.is_whitespace() || c == ':')
                        }) {
                            return Err((at(field), "a user or group name, or a numeric id".into()));
                        }
                    }
                }
                Payload::Sysctl { key, value } => {
                    if sysctl_path(key).is_none() {
                        return Err((at("key"), "a sysctl key such as net.ipv4.ip_forward".into()));
                    }
                    if !paths.insert(format!("sysctl:{key}")) {
                        return Err((at("key"), "the same key twice in one profile".into()));
                    }
                    if value.trim().is_empty() || value.len() > 4096 || value.contains('\n') {
                        return Err((at("value"), "one line, not empty".into()));
                    }
                }
            }
        }
        Ok(())
    }

    /// The desired state, one line per payload (see [`state_lines`]).
    pub fn desired_lines(&self) -> Vec<String> {
        self.payloads
            .iter()
            .map(|payload| match payload {
                Payload::File { path, content, mode, owner, group } => {
                    let mode = mode.as_deref().and_then(|m| parse_mode(m).ok()).unwrap_or(DEFAULT_FILE_MODE);
                    file_line(path, Some((content.as_bytes(), mode)), owner.as_deref(), group.as_deref())
                }
                Payload::Sysctl { key, value } => sysctl_line(key, Some(value)),
            })
            .collect()
    }

    /// The checksum of the desired state: what a host that has the profile reports.
    pub fn checksum(&self) -> String {
        checksum(&self.identifier, &self.desired_lines())
    }
}

/// One file's state line: its path, then "absent" or the content's SHA-256, mode, owner and group. Owner and
/// group are "-" when the profile does not set them (so they are not compared).
pub fn file_line(path: &str, state: Option<(&[u8], u32)>, owner: Option<&str>, group: Option<&str>) -> String {
    match state {
        None => format!("file\t{path}\tabsent"),
        Some((content, mode)) => format!(
            "file\t{path}\tsha256={}\tmode={mode:04o}\towner={}\tgroup={}",
            hex(&Sha256::digest(content)),
            owner.unwrap_or("-"),
            group.unwrap_or("-")
        ),
    }
}

/// One kernel parameter's state line: its key and value (normalized), or "absent".
pub fn sysctl_line(key: &str, value: Option<&str>) -> String {
    match value {
        None => format!("sysctl\t{key}\tabsent"),
        Some(value) => format!("sysctl\t{key}\t{}", normalize_sysctl_value(value)),
    }
}

/// The fingerprint of a profile's state on a host.
pub fn checksum(identifier: &str, lines: &[String]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(identifier.as_bytes());
    for line in lines {
        hasher.update(b"\n");
        hasher.update(line.as_bytes());
    }
    hex(&hasher.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a host's copy of a profile stands. `None` in storage: a command must be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// A command was sent; no answer yet.
    Pending,
    /// The host acknowledged the command; its report has not confirmed it yet.
    Verifying,
    /// The host's report shows the profile, with the expected checksum, installed after the command.
    Verified,
    /// Retries ran out (or a remove failed for good).
    Failed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Verifying => "verifying",
            Status::Verified => "verified",
            Status::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<Status> {
        [Status::Pending, Status::Verifying, Status::Verified, Status::Failed].into_iter().find(|s| s.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operation {
    Install,
    Remove,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Install => "install",
            Operation::Remove => "remove",
        }
    }

    pub fn parse(text: &str) -> Option<Operation> {
        match text {
            "install" => Some(Operation::Install),
            "remove" => Some(Operation::Remove),
            _ => None,
        }
    }
}

/// The limits admins set (`host_settings.profile_grace_period`, `host_settings.profile_retries`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub grace_ms: Millis,
    pub max_retries: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { grace_ms: DEFAULT_GRACE_MS, max_retries: DEFAULT_MAX_RETRIES }
    }
}

/// A host's copy of one expected profile, as far as the rules need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostProfileState {
    pub operation: Operation,
    pub status: Option<Status>,
    pub retries: u32,
    /// When the host acknowledged the last command.
    pub acked_at: Option<Millis>,
    /// The host must report an install time no earlier than this (the last command's time).
    pub earliest_install_at: Option<Millis>,
}

/// What the host reports about one profile (`herd_profiles`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed<'a> {
    pub checksum: &'a str,
    pub installed_at: Millis,
}

/// What to do with a host's copy of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// Nothing changes.
    Keep,
    /// The status moves; the detail says why (empty: none).
    To(Status, String),
    /// Status cleared and retry count + 1: the command is sent again.
    Retry { retries: u32, detail: String },
    /// A remove was acknowledged: the host's copy is gone.
    Removed,
}

/// Retry while retries are left, else fail — with the same reason either way.
fn retry_or_fail(state: &HostProfileState, limits: &Limits, detail: String) -> Transition {
    if state.retries < limits.max_retries {
        Transition::Retry { retries: state.retries + 1, detail }
    } else {
        Transition::To(Status::Failed, format!("{detail} (after {} retries)", state.retries))
    }
}

/// The host answered a command: acknowledged (`error` None) or with an error.
pub fn on_command_result(state: &HostProfileState, error: Option<&str>, limits: &Limits) -> Transition {
    if state.status != Some(Status::Pending) {
        // An answer to a command that is no longer current (resent, or already answered).
        return Transition::Keep;
    }
    match (error, state.operation) {
        (None, Operation::Install) => Transition::To(Status::Verifying, String::new()),
        (None, Operation::Remove) => Transition::Removed,
        (Some(error), _) => retry_or_fail(state, limits, format!("the host could not apply it: {error}")),
    }
}

/// The host reported its installed profiles: verify one expected profile against them.
pub fn on_report(
    state: &HostProfileState,
    expected_checksum: &str,
    installed: Option<&Installed>,
    now: Millis,
    limits: &Limits,
) -> Transition {
    if state.operation != Operation::Install {
        return Transition::Keep;
    }
    let status = match state.status {
        Some(s @ (Status::Verifying | Status::Verified)) => s,
        // Nothing sent or answered yet, or failed for good: nothing to verify.
        _ => return Transition::Keep,
    };
    let problem = match installed {
        None => "missing on the host",
        Some(found) if found.checksum != expected_checksum => "different on the host (edited, or not fully applied)",
        Some(found) if state.earliest_install_at.is_some_and(|at| found.installed_at < at) => {
            "outdated on the host (installed before the last command)"
        }
        Some(_) => {
            return if status == Status::Verified {
                Transition::Keep
            } else {
                Transition::To(Status::Verified, String::new())
            };
        }
    };
    // Just acknowledged: the host gets the grace period before a missing profile counts. A verified profile
    // that goes missing is drift: no grace.
    let within_grace =
        status == Status::Verifying && state.acked_at.is_some_and(|acked| now < acked.saturating_add(limits.grace_ms));
    if within_grace {
        return Transition::Keep;
    }
    retry_or_fail(state, limits, format!("the profile was {problem}"))
}

/// A host's overall state for the summary: failed outranks pending, which outranks verifying (Fleet's rule);
/// None when no profile is expected.
pub fn host_summary_status(statuses: impl IntoIterator<Item = Option<Status>>) -> Option<Status> {
    let mut worst: Option<Status> = None;
    let rank = |s: Status| match s {
        Status::Failed => 3,
        Status::Pending => 2,
        Status::Verifying => 1,
        Status::Verified => 0,
    };
    for status in statuses {
        // Not sent yet counts as pending.
        let status = status.unwrap_or(Status::Pending);
        if worst.is_none_or(|w| rank(status) > rank(w)) {
            worst = Some(status);
        }
    }
    worst
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits { grace_ms: 1_000, max_retries: 2 };

    fn state(status: Option<Status>, retries: u32) -> HostProfileState {
        HostProfileState {
            operation: Operation::Install,
            status,
            retries,
            acked_at: Some(10_000),
            earliest_install_at: Some(9_000),
        }
    }

    #[test]
    fn command_results() {
        use Status::*;
        let cases: &[(&str, HostProfileState, Option<&str>, Transition)] = &[
            ("install acknowledged", state(Some(Pending), 0), None, Transition::To(Verifying, String::new())),
            (
                "remove acknowledged",
                HostProfileState { operation: Operation::Remove, ..state(Some(Pending), 0) },
                None,
                Transition::Removed,
            ),
            (
                "error, retries left",
                state(Some(Pending), 1),
                Some("read-only"),
                Transition::Retry { retries: 2, detail: "the host could not apply it: read-only".into() },
            ),
            (
                "error, no retry left",
                state(Some(Pending), 2),
                Some("read-only"),
                Transition::To(Failed, "the host could not apply it: read-only (after 2 retries)".into()),
            ),
            ("stale answer (verifying)", state(Some(Verifying), 0), None, Transition::Keep),
            ("stale answer (not sent)", state(None, 0), Some("x"), Transition::Keep),
            ("stale answer (failed)", state(Some(Failed), 2), None, Transition::Keep),
        ];
        for (what, s, error, want) in cases {
            assert_eq!(on_command_result(s, *error, &LIMITS), *want, "{what}");
        }
    }

    #[test]
    fn reports() {
        use Status::*;
        let good = Installed { checksum: "abc", installed_at: 9_500 };
        let edited = Installed { checksum: "zzz", installed_at: 9_500 };
        let old = Installed { checksum: "abc", installed_at: 8_000 };
        let in_grace = 10_500;
        let after_grace = 11_000;
        let cases: &[(&str, HostProfileState, Option<&Installed>, Millis, Transition)] = &[
            (
                "verifying, present → verified",
                state(Some(Verifying), 1),
                Some(&good),
                in_grace,
                Transition::To(Verified, String::new()),
            ),
            ("verified, still present", state(Some(Verified), 0), Some(&good), after_grace, Transition::Keep),
            ("verifying, missing within grace", state(Some(Verifying), 0), None, in_grace, Transition::Keep),
            (
                "verifying, missing after grace → retry",
                state(Some(Verifying), 0),
                None,
                after_grace,
                Transition::Retry { retries: 1, detail: "the profile was missing on the host".into() },
            ),
            (
                "verifying, outdated after grace → retry",
                state(Some(Verifying), 1),
                Some(&old),
                after_grace,
                Transition::Retry {
                    retries: 2,
                    detail: "the profile was outdated on the host (installed before the last command)".into(),
                },
            ),
            ("verifying, outdated within grace", state(Some(Verifying), 1), Some(&old), in_grace, Transition::Keep),
            (
                "verifying, missing after grace, no retry left → failed",
                state(Some(Verifying), 2),
                None,
                after_grace,
                Transition::To(Failed, "the profile was missing on the host (after 2 retries)".into()),
            ),
            (
                "drift: verified, edited on the host → retry at once",
                state(Some(Verified), 0),
                Some(&edited),
                in_grace,
                Transition::Retry {
                    retries: 1,
                    detail: "the profile was different on the host (edited, or not fully applied)".into(),
                },
            ),
            (
                "drift: verified, removed on the host → retry at once",
                state(Some(Verified), 0),
                None,
                in_grace,
                Transition::Retry { retries: 1, detail: "the profile was missing on the host".into() },
            ),
            ("pending: nothing to verify yet", state(Some(Pending), 0), None, after_grace, Transition::Keep),
            ("not sent: nothing to verify", state(None, 0), None, after_grace, Transition::Keep),
            ("failed stays failed", state(Some(Failed), 2), Some(&good), after_grace, Transition::Keep),
            (
                "a remove is not verified by presence",
                HostProfileState { operation: Operation::Remove, ..state(Some(Verifying), 0) },
                None,
                after_grace,
                Transition::Keep,
            ),
        ];
        for (what, s, installed, now, want) in cases {
            assert_eq!(on_report(s, "abc", *installed, *now, &LIMITS), *want, "{what}");
        }
    }

    #[test]
    fn documents_are_checked_by_field() {
        let file =
            |path: &str| Payload::File { path: path.into(), content: "x".into(), mode: None, owner: None, group: None };
        let doc =
            |payloads: Vec<Payload>| ProfileDocument { identifier: "com.acme.x".into(), name: "X".into(), payloads };
        assert_eq!(doc(vec![file("/etc/x.conf")]).check(), Ok(()));
        let cases: Vec<(ProfileDocument, &str)> = vec![
            (ProfileDocument { identifier: " ".into(), ..doc(vec![file("/a")]) }, "identifier"),
            (ProfileDocument { identifier: "a/b".into(), ..doc(vec![file("/a")]) }, "identifier"),
            (ProfileDocument { name: "".into(), ..doc(vec![file("/a")]) }, "name"),
            (doc(vec![]), "payloads"),
            (doc(vec![file("relative")]), "payloads[0].path"),
            (doc(vec![file("/etc/../shadow")]), "payloads[0].path"),
            (doc(vec![file("/etc/")]), "payloads[0].path"),
            (doc(vec![file("/a"), file("/a")]), "payloads[1].path"),
            (
                doc(vec![Payload::File {
                    path: "/a".into(),
                    content: "".into(),
                    mode: Some("999".into()),
                    owner: None,
                    group: None,
                }]),
                "payloads[0].mode",
            ),
            (
                doc(vec![Payload::File {
                    path: "/a".into(),
                    content: "".into(),
                    mode: None,
                    owner: Some("a b".into()),
                    group: None,
                }]),
                "payloads[0].owner",
            ),
            (doc(vec![Payload::Sysctl { key: "net..x".into(), value: "1".into() }]), "payloads[0].key"),
            (doc(vec![Payload::Sysctl { key: "net.x".into(), value: " ".into() }]), "payloads[0].value"),
        ];
        for (document, field) in cases {
            assert_eq!(document.check().map_err(|(f, _)| f), Err(field.to_string()), "{document:?}");
        }
    }

    #[test]
    fn checksums_follow_the_state() {
        let doc = ProfileDocument {
            identifier: "com.acme.motd".into(),
            name: "MOTD".into(),
            payloads: vec![
                Payload::File {
                    path: "/etc/motd".into(),
                    content: "hi\n".into(),
                    mode: Some("600".into()),
                    owner: None,
                    group: None,
                },
                Payload::Sysctl { key: "net.ipv4.ip_forward".into(), value: "0".into() },
            ],
        };
        // What a host observes when it matches: the same lines, the same checksum.
        let observed = vec![
            file_line("/etc/motd", Some((b"hi\n", 0o600)), None, None),
            sysctl_line("net.ipv4.ip_forward", Some(" 0 ")),
        ];
        assert_eq!(checksum("com.acme.motd", &observed), doc.checksum());
        let edited = vec![file_line("/etc/motd", Some((b"hacked\n", 0o600)), None, None), observed[1].clone()];
        assert_ne!(checksum("com.acme.motd", &edited), doc.checksum());
        let chmodded = vec![file_line("/etc/motd", Some((b"hi\n", 0o666)), None, None), observed[1].clone()];
        assert_ne!(checksum("com.acme.motd", &chmodded), doc.checksum());
        let removed = vec![file_line("/etc/motd", None, None, None), observed[1].clone()];
        assert_ne!(checksum("com.acme.motd", &removed), doc.checksum());
        assert_eq!(sysctl_path("net.ipv4.ip_forward").as_deref(), Some("net/ipv4/ip_forward"));
        assert_eq!(parse_mode("0o755"), Ok(0o755));
    }

    #[test]
    fn summary_ranks_failed_then_pending_then_verifying() {
        use Status::*;
        assert_eq!(host_summary_status([Some(Verified), Some(Verifying)]), Some(Verifying));
        assert_eq!(host_summary_status([Some(Verifying), None]), Some(Pending), "not sent counts as pending");
        assert_eq!(host_summary_status([Some(Pending), Some(Failed), Some(Verified)]), Some(Failed));
        assert_eq!(host_summary_status([Some(Verified)]), Some(Verified));
        assert_eq!(host_summary_status([]), None);
    }
}
