//! The device token: registered with the server, then published in DATA_DIR/identifier (0644) for local
//! users — `herd-agent desktop`, scripts, My Device links — to present; rotated hourly. After a restart the
//! published token is registered again while it is young, so open My Device pages keep working. It is also
//! published where Fleet's agent keeps it (`/opt/orbit/identifier`, `--orbit-identifier`), so scripts written
//! for Fleet (`curl …/device/$(cat /opt/orbit/identifier)/refetch`) work unchanged on a herd host.

use crate::client::CallError;
use crate::session::Session;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

pub const LIFETIME: Duration = Duration::from_secs(3600);

/// What to do about the token at a check-in.
#[derive(Debug, PartialEq, Eq)]
pub enum TokenPlan {
    /// The current one is still young.
    Keep,
    /// Register the published one again (the agent restarted).
    Reuse(String),
    /// Make a new one.
    New,
}

/// Decides from the age of the token this process registered (None: none yet) and the published file
/// (its text and age, when readable).
pub fn plan(registered_age: Option<Duration>, published: Option<(&str, Duration)>) -> TokenPlan {
    match registered_age {
        Some(age) if age < LIFETIME => TokenPlan::Keep,
        // Rotation: never the published one again.
        Some(_) => TokenPlan::New,
        None => match published {
            Some((text, age)) if age < LIFETIME && text.trim().len() >= 32 => TokenPlan::Reuse(text.trim().to_string()),
            _ => TokenPlan::New,
        },
    }
}

pub struct DeviceToken {
    file: PathBuf,
    /// Copies of the published token elsewhere (Fleet's path). A copy that cannot be written (herd runs as a
    /// user who may not write there) is skipped, and said once.
    copies: Vec<PathBuf>,
    copy_refused: bool,
    /// When this process registered the current token.
    registered_at: Option<Instant>,
    /// Fleet's `orbit_info` shows the current token as `device_auth_token`, as fleetd's does.
    facts: herd_osquery::tables::SharedFacts,
}

impl DeviceToken {
    pub fn new(data_dir: &Path, copies: Vec<PathBuf>, facts: herd_osquery::tables::SharedFacts) -> DeviceToken {
        DeviceToken { file: data_dir.join("identifier"), copies, copy_refused: false, registered_at: None, facts }
    }

    /// A new enrollment: the server knows no token of ours.
    pub fn forget(&mut self) {
        self.registered_at = None;
    }

    fn published(&self) -> Option<(String, Duration)> {
        let modified = std::fs::metadata(&self.file).and_then(|m| m.modified()).ok()?;
        let age = SystemTime::now().duration_since(modified).unwrap_or(Duration::MAX);
        Some((std::fs::read_to_string(&self.file).ok()?, age))
    }

    /// Registers a new token (or the published one again after a restart) and publishes it.
    pub async fn keep_fresh(&mut self, session: &Session) -> Result<(), CallError> {
        let published = if self.registered_at.is_none() { self.published() } else { None };
        let token =
            match plan(self.registered_at.map(|at| at.elapsed()), published.as_ref().map(|(t, a)| (t.as_str(), *a))) {
                TokenPlan::Keep => return Ok(()),
                TokenPlan::Reuse(token) => token,
                TokenPlan::New => {
                    let mut bytes = [0u8; 32];
                    getrandom::fill(&mut bytes)
                        .map_err(|e| CallError::Failed(anyhow::anyhow!("random source: {e}")))?;
                    hex::encode(bytes)
                }
            };
        // Register first: the file never holds a token the server does not know.
        session.client.register_device_token(session.key()?, &token).await?;
        crate::durable::write_atomically(&self.file, token.as_bytes(), 0o644, None).map_err(CallError::Failed)?;
        for copy in &self.copies {
            if let Err(err) = crate::durable::write_atomically(copy, token.as_bytes(), 0o644, None) {
                if !self.copy_refused {
                    tracing::warn!(path = %copy.display(), error = %format!("{err:#}"),
                        "could not publish the device token there too (--orbit-identifier= turns this off)");
                }
                self.copy_refused = true;
            }
        }
        self.registered_at = Some(Instant::now());
        self.facts.write().unwrap_or_else(|e| e.into_inner()).insert("device_auth_token".into(), token);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_table() {
        let minutes = |m: u64| Duration::from_secs(m * 60);
        let token = "a".repeat(64);
        /// (what, age of the registered token, the published file's text and age, plan)
        type Case<'a> = (&'a str, Option<Duration>, Option<(&'a str, Duration)>, TokenPlan);
        let cases: Vec<Case> = vec![
            ("registered 10 minutes ago", Some(minutes(10)), None, TokenPlan::Keep),
            ("registered an hour ago: rotate", Some(minutes(60)), Some((&token, minutes(1))), TokenPlan::New),
            ("restart, young file: reuse", None, Some((&token, minutes(10))), TokenPlan::Reuse(token.clone())),
            ("restart, old file", None, Some((&token, minutes(61))), TokenPlan::New),
            ("restart, too short to be ours", None, Some(("short", minutes(1))), TokenPlan::New),
            ("first start", None, None, TokenPlan::New),
        ];
        for (what, registered, published, want) in cases {
            assert_eq!(plan(registered, published), want, "{what}");
        }
    }
}
