//! Configuration profiles on the host (see `herd_core::profiles`): install and remove commands from the
//! server, applied in order; what each install replaced is kept so a remove puts it back; and the
//! `herd_profiles` table, which reports each installed profile with the checksum of what is *on the host now*
//! (so an edited or deleted file shows as drift at the next report).
//!
//! State lives in DATA_DIR/profiles/ (private): `installed.json` (written durably after every change) and
//! `backups/` (the files an install replaced).

use crate::durable::write_atomically;
use anyhow::{Context, Result};
use herd_core::profiles::{Payload, ProfileDocument, file_line, parse_mode, sysctl_line, sysctl_path};
use herd_osquery::table::{Column, Constraints, Row, Table, TableError, Value};
use herd_proto::agent::{ProfileCommand, ProfileCommandResult, ProfileOperation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where kernel parameters are applied and persisted (changeable for containers and tests).
#[derive(Debug, Clone)]
pub struct Roots {
    pub sysctl_conf_dir: PathBuf,
    pub proc_sys: PathBuf,
}

impl Default for Roots {
    fn default() -> Self {
        Roots { sysctl_conf_dir: "/etc/sysctl.d".into(), proc_sys: "/proc/sys".into() }
    }
}

/// What an install replaced, to put back on remove.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Backup {
    /// `saved`: a copy of the file that was there (with its mode and owner); None: there was none.
    File { path: String, saved: Option<PathBuf>, mode: u32, uid: u32, gid: u32 },
    /// The value before the install; None when it could not be read.
    Sysctl { key: String, old: Option<String> },
}

impl Backup {
    fn target(&self) -> String {
        match self {
            Backup::File { path, .. } => path.clone(),
            Backup::Sysctl { key, .. } => format!("sysctl:{key}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Installed {
    document: ProfileDocument,
    /// Unix seconds of the last complete install; None while an install did not complete (not reported).
    installed_at: Option<i64>,
    backups: Vec<Backup>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    installed: BTreeMap<String, Installed>,
}

pub struct Profiles {
    dir: PathBuf,
    roots: Roots,
    state: State,
}

/// What a command asks of this host.
#[derive(Debug, PartialEq)]
pub enum ProfileAction {
    Install(ProfileDocument),
    Remove(String),
}

/// Reads a command; Err: why it cannot be applied (answered as the command's error, the others still apply).
pub fn plan_command(command: &ProfileCommand) -> Result<ProfileAction, String> {
    match command.operation {
        ProfileOperation::Install => match &command.profile {
            Some(document) => serde_json::from_value::<ProfileDocument>(document.clone())
                .map(ProfileAction::Install)
                .map_err(|err| format!("unreadable profile: {err}")),
            None => Err("the install command has no profile".to_string()),
        },
        ProfileOperation::Remove => Ok(ProfileAction::Remove(command.identifier.clone())),
        ProfileOperation::Unknown => Err("unknown operation".to_string()),
    }
}

fn target_of(payload: &Payload) -> String {
    match payload {
        Payload::File { path, .. } => path.clone(),
        Payload::Sysctl { key, .. } => format!("sysctl:{key}"),
    }
}

/// A user or group (name or numeric id) as its id, from /etc/passwd or /etc/group.
fn resolve_id(name: &str, database: &str) -> Option<u32> {
    if let Ok(id) = name.parse() {
        return Some(id);
    }
    let text = std::fs::read_to_string(database).ok()?;
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then(|| fields.nth(1)?.parse().ok()).flatten()
    })
}

impl Profiles {
    pub fn open(data_dir: &Path, roots: Roots) -> Result<Profiles> {
        let dir = data_dir.join("profiles");
        let path = dir.join("installed.json");
        let state = match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).with_context(|| format!("reading {}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => State::default(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(Profiles { dir, roots, state })
    }

    fn save(&self) -> Result<()> {
        std::fs::create_dir_all(&self.dir)?;
        std::fs::set_permissions(&self.dir, std::fs::Permissions::from_mode(0o700))?;
        let text = serde_json::to_string_pretty(&self.state)?;
        write_atomically(&self.dir.join("installed.json"), text.as_bytes(), 0o600, None)
    }

    fn conf_path(&self, identifier: &str) -> PathBuf {
        let safe: String = identifier
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') { c } else { '_' })
            .collect();
        self.roots.sysctl_conf_dir.join(format!("90-herd-{safe}.conf"))
    }

    fn proc_path(&self, key: &str) -> Option<PathBuf> {
        sysctl_path(key).map(|p| self.roots.proc_sys.join(p))
    }

    /// Keeps what is at `payload`'s target before the first install touches it.
    fn back_up(&self, identifier: &str, payload: &Payload) -> Result<Backup> {
        match payload {
            Payload::File { path, .. } => match std::fs::metadata(path) {
                Ok(meta) => {
                    let backups = self.dir.join("backups");
                    std::fs::create_dir_all(&backups)?;
                    use sha2::Digest;
                    let name = hex::encode(sha2::Sha256::digest(format!("{identifier}\n{path}").as_bytes()));
                    let saved = backups.join(name);
                    let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
                    write_atomically(&saved, &bytes, 0o600, None)?;
                    Ok(Backup::File {
                        path: path.clone(),
                        saved: Some(saved),
                        mode: meta.mode() & 0o7777,
                        uid: meta.uid(),
                        gid: meta.gid(),
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Ok(Backup::File { path: path.clone(), saved: None, mode: 0, uid: 0, gid: 0 })
                }
                Err(e) => Err(e).with_context(|| format!("reading {path}")),
            },
            Payload::Sysctl { key, .. } => {
                let old =
                    self.proc_path(key).and_then(|p| std::fs::read_to_string(p).ok()).map(|v| v.trim().to_string());
                Ok(Backup::Sysctl { key: key.clone(), old })
            }
        }
    }

    fn apply(&self, payload: &Payload) -> Result<()> {
        match payload {
            Payload::File { path, content, mode, owner, group } => {
                let mode = mode.as_deref().map(parse_mode).transpose().map_err(anyhow::Error::msg)?.unwrap_or(0o644);
                let uid = match owner {
                    Some(o) => {
                        Some(resolve_id(o, "/etc/passwd").with_context(|| format!("no user {o:?} on this host"))?)
                    }
                    None => None,
                };
                let gid = match group {
                    Some(g) => {
                        Some(resolve_id(g, "/etc/group").with_context(|| format!("no group {g:?} on this host"))?)
                    }
                    None => None,
                };
                let chown = (uid.is_some() || gid.is_some()).then_some((uid, gid));
                write_atomically(Path::new(path), content.as_bytes(), mode, chown)
            }
            Payload::Sysctl { key, value } => {
                let proc = self.proc_path(key).context("an invalid sysctl key")?;
                std::fs::write(&proc, format!("{value}\n"))
                    .with_context(|| format!("setting {key} ({})", proc.display()))
            }
        }
    }

    fn restore(&self, backup: &Backup) -> Result<()> {
        match backup {
            Backup::File { path, saved: Some(saved), mode, uid, gid } => {
                let bytes = std::fs::read(saved).with_context(|| format!("reading the copy of {path}"))?;
                write_atomically(Path::new(path), &bytes, *mode, Some((Some(*uid), Some(*gid))))?;
                let _ = std::fs::remove_file(saved);
                Ok(())
            }
            Backup::File { path, saved: None, .. } => match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("removing {path}"))
                }
                _ => Ok(()),
            },
            Backup::Sysctl { key, old: Some(old) } => {
                let proc = self.proc_path(key).context("an invalid sysctl key")?;
                std::fs::write(&proc, format!("{old}\n")).with_context(|| format!("restoring {key}"))
            }
            Backup::Sysctl { old: None, .. } => Ok(()),
        }
    }

    /// The persisted kernel parameters of a profile (none: the file is removed).
    fn write_conf(&self, document: &ProfileDocument) -> Result<()> {
        let lines: Vec<String> = document
            .payloads
            .iter()
            .filter_map(|p| match p {
                Payload::Sysctl { key, value } => Some(format!("{key} = {value}\n")),
                Payload::File { .. } => None,
            })
            .collect();
        let path = self.conf_path(&document.identifier);
        if lines.is_empty() {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    Err(e).with_context(|| format!("removing {}", path.display()))
                }
                _ => Ok(()),
            };
        }
        let text = format!("# Written by herd-agent for profile {:?}.\n{}", document.identifier, lines.concat());
        write_atomically(&path, text.as_bytes(), 0o644, None)
    }

    /// Installs (or updates) a profile: every payload applied, what it replaced kept; payloads an update drops
    /// are put back. Err: the reason the server shows (the profile is then not reported as installed).
    pub fn install(&mut self, document: ProfileDocument, now_s: i64) -> Result<(), String> {
        document.check().map_err(|(field, reason)| format!("{field}: {reason}"))?;
        let identifier = document.identifier.clone();
        let mut backups = self.state.installed.get(&identifier).map(|i| i.backups.clone()).unwrap_or_default();
        let mut outcome = Ok(());
        for payload in &document.payloads {
            let target = target_of(payload);
            if !backups.iter().any(|b| b.target() == target) {
                match self.back_up(&identifier, payload) {
                    Ok(backup) => backups.push(backup),
                    Err(err) => {
                        outcome = Err(format!("{err:#}"));
                        break;
                    }
                }
            }
            if let Err(err) = self.apply(payload) {
                outcome = Err(format!("{err:#}"));
                break;
            }
        }
        if outcome.is_ok() {
            outcome = self.write_conf(&document).map_err(|e| format!("{e:#}"));
        }
        if outcome.is_ok() {
            // What the new version no longer sets goes back to what it was.
            let wanted: Vec<String> = document.payloads.iter().map(target_of).collect();
            let (keep, drop): (Vec<Backup>, Vec<Backup>) =
                backups.into_iter().partition(|b| wanted.contains(&b.target()));
            for backup in &drop {
                if let Err(err) = self.restore(backup) {
                    tracing::warn!(error = format!("{err:#}"), "could not put back what a profile replaced");
                }
            }
            backups = keep;
        }
        let installed_at = outcome.is_ok().then_some(now_s);
        self.state.installed.insert(identifier, Installed { document, installed_at, backups });
        self.save().map_err(|e| format!("saving the profile state: {e:#}"))?;
        outcome
    }

    /// Removes a profile: what it replaced is put back, what it created is deleted. Removing one that is not
    /// installed succeeds (the host already lacks it).
    pub fn remove(&mut self, identifier: &str) -> Result<(), String> {
        let Some(installed) = self.state.installed.get(identifier).cloned() else { return Ok(()) };
        let mut failures = Vec::new();
        for backup in installed.backups.iter().rev() {
            if let Err(err) = self.restore(backup) {
                failures.push(format!("{err:#}"));
            }
        }
        let empty = ProfileDocument { payloads: Vec::new(), ..installed.document.clone() };
        if let Err(err) = self.write_conf(&empty) {
            failures.push(format!("{err:#}"));
        }
        if !failures.is_empty() {
            return Err(failures.join("; "));
        }
        self.state.installed.remove(identifier);
        self.save().map_err(|e| format!("saving the profile state: {e:#}"))
    }

    /// Applies the server's commands in order; the answer to each (applied, or why not).
    pub fn apply_commands(&mut self, commands: Vec<ProfileCommand>, now_s: i64) -> Vec<ProfileCommandResult> {
        let mut results = Vec::with_capacity(commands.len());
        for command in commands {
            let outcome = match plan_command(&command) {
                Ok(ProfileAction::Install(document)) => self.install(document, now_s),
                Ok(ProfileAction::Remove(identifier)) => self.remove(&identifier),
                Err(reason) => Err(reason),
            };
            let operation = command.operation.as_str();
            match &outcome {
                Ok(()) => tracing::info!(profile = %command.identifier, operation, "profile applied"),
                Err(err) => tracing::warn!(profile = %command.identifier, operation, %err, "profile not applied"),
            }
            results.push(ProfileCommandResult::new(command.command_uuid, outcome.err()));
        }
        results
    }

    /// One payload's state as the host has it now (see `herd_core::profiles::file_line`).
    fn observed_line(&self, identifier: &str, payload: &Payload) -> String {
        match payload {
            Payload::File { path, owner, group, .. } => match (std::fs::read(path), std::fs::metadata(path)) {
                (Ok(bytes), Ok(meta)) => {
                    let seen = |wanted: &Option<String>, actual: u32, database: &str| -> Option<String> {
                        let wanted = wanted.as_deref()?;
                        Some(if resolve_id(wanted, database) == Some(actual) {
                            wanted.to_string()
                        } else {
                            actual.to_string()
                        })
                    };
                    let owner = seen(owner, meta.uid(), "/etc/passwd");
                    let group = seen(group, meta.gid(), "/etc/group");
                    file_line(path, Some((&bytes, meta.mode() & 0o7777)), owner.as_deref(), group.as_deref())
                }
                _ => file_line(path, None, None, None),
            },
            Payload::Sysctl { key, .. } => {
                let value = self.proc_path(key).and_then(|p| std::fs::read_to_string(p).ok());
                // Persisted too: a value that would not survive a reboot is not the profile.
                let persisted = std::fs::read_to_string(self.conf_path(identifier))
                    .is_ok_and(|conf| conf.lines().any(|l| l.split('=').next().map(str::trim) == Some(key.as_str())));
                sysctl_line(key, value.as_deref().filter(|_| persisted))
            }
        }
    }

    /// (identifier, name, checksum of what is on the host now, install time in Unix seconds), for every
    /// completely installed profile.
    pub fn report(&self) -> Vec<(String, String, String, i64)> {
        self.state
            .installed
            .iter()
            .filter_map(|(identifier, installed)| {
                let at = installed.installed_at?;
                let lines: Vec<String> =
                    installed.document.payloads.iter().map(|p| self.observed_line(identifier, p)).collect();
                let checksum = herd_core::profiles::checksum(identifier, &lines);
                Some((identifier.clone(), installed.document.name.clone(), checksum, at))
            })
            .collect()
    }
}

/// `herd_profiles`: the profiles herd-agent installed, as they are on the host now.
pub struct HerdProfilesTable {
    pub data_dir: PathBuf,
    pub roots: Roots,
}

const COLUMNS: &[Column] =
    &[Column::text("identifier"), Column::text("name"), Column::text("checksum"), Column::bigint("installed_at")];

impl Table for HerdProfilesTable {
    fn name(&self) -> &'static str {
        "herd_profiles"
    }
    fn description(&self) -> &'static str {
        "Configuration profiles installed by herd-agent, with the checksum of their state on the host now."
    }
    fn columns(&self) -> &'static [Column] {
        COLUMNS
    }
    fn generate(&self, _constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let profiles =
            Profiles::open(&self.data_dir, self.roots.clone()).map_err(|e| TableError::Message(format!("{e:#}")))?;
        Ok(profiles
            .report()
            .into_iter()
            .map(|(identifier, name, checksum, at)| {
                Row::from([
                    ("identifier", Value::text(identifier)),
                    ("name", Value::text(name)),
                    ("checksum", Value::text(checksum)),
                    ("installed_at", Value::Int(at)),
                ])
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_table() {
        let command = |operation, profile: Option<serde_json::Value>| ProfileCommand {
            command_uuid: "c".into(),
            operation,
            identifier: "com.example.motd".into(),
            name: String::new(),
            profile,
        };
        let document: serde_json::Value =
            serde_json::from_str(r#"{"identifier": "com.example.motd", "name": "MOTD", "payloads": []}"#).unwrap();
        let parsed: ProfileDocument = serde_json::from_value(document.clone()).unwrap();
        let cases: Vec<(&str, ProfileCommand, Result<ProfileAction, &str>)> = vec![
            ("install", command(ProfileOperation::Install, Some(document)), Ok(ProfileAction::Install(parsed))),
            ("remove", command(ProfileOperation::Remove, None), Ok(ProfileAction::Remove("com.example.motd".into()))),
            (
                "install without a document",
                command(ProfileOperation::Install, None),
                Err("the install command has no profile"),
            ),
            (
                "unreadable document",
                command(ProfileOperation::Install, Some(serde_json::Value::from(vec![1]))),
                Err("unreadable profile"),
            ),
            (
                "an operation this agent does not know",
                command(ProfileOperation::Unknown, None),
                Err("unknown operation"),
            ),
        ];
        for (what, command, want) in cases {
            match (plan_command(&command), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, want, "{what}"),
                (Err(got), Err(want)) => assert!(got.starts_with(want), "{what}: {got}"),
                (got, want) => panic!("{what}: {got:?}, wanted {want:?}"),
            }
        }
    }

    fn setup() -> (tempfile::TempDir, Profiles) {
        let dir = tempfile::tempdir().unwrap();
        let roots = Roots { sysctl_conf_dir: dir.path().join("sysctl.d"), proc_sys: dir.path().join("proc/sys") };
        std::fs::create_dir_all(dir.path().join("proc/sys/net/ipv4")).unwrap();
        std::fs::write(dir.path().join("proc/sys/net/ipv4/ip_forward"), "1\n").unwrap();
        let profiles = Profiles::open(&dir.path().join("data"), roots).unwrap();
        (dir, profiles)
    }

    fn document(dir: &Path, content: &str) -> ProfileDocument {
        ProfileDocument {
            identifier: "com.acme.test".into(),
            name: "Test".into(),
            payloads: vec![
                Payload::File {
                    path: dir.join("etc/motd").display().to_string(),
                    content: content.into(),
                    mode: Some("0600".into()),
                    owner: None,
                    group: None,
                },
                Payload::Sysctl { key: "net.ipv4.ip_forward".into(), value: "0".into() },
            ],
        }
    }

    #[test]
    fn install_reports_the_desired_checksum_drift_shows_and_remove_restores() {
        let (dir, mut profiles) = setup();
        let motd = dir.path().join("etc/motd");
        std::fs::create_dir_all(motd.parent().unwrap()).unwrap();
        std::fs::write(&motd, "the old motd\n").unwrap();
        let doc = document(dir.path(), "welcome\n");
        profiles.install(doc.clone(), 100).unwrap();
        assert_eq!(std::fs::read_to_string(&motd).unwrap(), "welcome\n");
        assert_eq!(std::fs::metadata(&motd).unwrap().mode() & 0o7777, 0o600);
        let proc = dir.path().join("proc/sys/net/ipv4/ip_forward");
        assert_eq!(std::fs::read_to_string(&proc).unwrap().trim(), "0");
        let conf = std::fs::read_to_string(dir.path().join("sysctl.d/90-herd-com.acme.test.conf")).unwrap();
        assert!(conf.contains("net.ipv4.ip_forward = 0"), "{conf}");
        let report = profiles.report();
        assert_eq!(report, vec![("com.acme.test".into(), "Test".into(), doc.checksum(), 100)]);

        // Survives reopening; an edit on the host changes the reported checksum.
        let reopened = Profiles::open(&dir.path().join("data"), profiles.roots.clone()).unwrap();
        std::fs::write(&motd, "edited\n").unwrap();
        assert_ne!(reopened.report()[0].2, doc.checksum(), "drift shows");
        std::fs::write(&proc, "1\n").unwrap();
        profiles.install(doc.clone(), 200).unwrap();
        assert_eq!(profiles.report()[0].2, doc.checksum(), "healed by installing again");

        // Remove: the old file and value come back; the persisted setting goes.
        profiles.remove("com.acme.test").unwrap();
        assert_eq!(std::fs::read_to_string(&motd).unwrap(), "the old motd\n");
        assert_eq!(std::fs::read_to_string(&proc).unwrap().trim(), "1");
        assert!(!dir.path().join("sysctl.d/90-herd-com.acme.test.conf").exists());
        assert!(profiles.report().is_empty());
        profiles.remove("com.acme.test").unwrap();
    }

    #[test]
    fn a_file_the_profile_created_is_deleted_on_remove_and_failures_say_why() {
        let (dir, mut profiles) = setup();
        let doc = document(dir.path(), "new\n");
        profiles.install(doc, 1).unwrap();
        profiles.remove("com.acme.test").unwrap();
        assert!(!dir.path().join("etc/motd").exists(), "it did not exist before");

        let blocked = dir.path().join("a-file");
        std::fs::write(&blocked, "").unwrap();
        let bad = ProfileDocument {
            identifier: "com.acme.bad".into(),
            name: "Bad".into(),
            payloads: vec![Payload::File {
                path: blocked.join("under-a-file").display().to_string(),
                content: "x".into(),
                mode: None,
                owner: None,
                group: None,
            }],
        };
        let err = profiles.install(bad, 1).unwrap_err();
        assert!(err.contains("under-a-file") && err.contains("Not a directory"), "{err}");
        assert!(profiles.report().is_empty(), "not reported as installed");
    }
}
