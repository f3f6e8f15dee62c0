//! The saved login: server URL, CA certificate, session token — in a file only its owner can read.

use crate::client::Api;
use anyhow::{Context, Result, bail};
use herd_proto::fleet::{LoginRequest, LoginResponse};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    pub server: String,
    pub ca_cert: Option<PathBuf>,
    pub email: String,
    pub token: String,
}

pub fn config_path(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => {
            PathBuf::from(std::env::var_os("HOME").context("neither XDG_CONFIG_HOME nor HOME is set")?).join(".config")
        }
    };
    Ok(base.join("herd").join("herdctl.json"))
}

pub async fn login(server: &str, ca_cert: Option<&Path>, email: &str, password: &str) -> Result<Saved> {
    if !(server.starts_with("https://") || server.starts_with("http://")) {
        bail!("--server must be an http(s) URL, like https://herd.example.com:8080");
    }
    let ca_cert =
        ca_cert.map(|p| std::fs::canonicalize(p).with_context(|| format!("finding {}", p.display()))).transpose()?;
    let api = Api::new(server, ca_cert.as_deref(), None)?;
    let response: LoginResponse = api
        .post("/api/v1/fleet/login", &LoginRequest { email: email.to_string(), password: password.to_string() })
        .await?;
    Ok(Saved {
        server: server.trim_end_matches('/').to_string(),
        ca_cert,
        email: response.user.email,
        token: response.token,
    })
}

/// Writes the login readable by its owner only (0600), replacing any previous one atomically.
pub fn save(path: &Path, saved: &Saved) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(serde_json::to_string_pretty(saved)?.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn load(path: &Path) -> Result<Saved> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("not logged in ({} is missing): run `herdctl login` first", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not a herdctl login; log in again", path.display()))
}
