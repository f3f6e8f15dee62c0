//! Scripts: the library (adding with the checks every way in shares, deleting) and queueing a run on a host.

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::secrets::random_token;
use crate::state::{SharedState, now_ms};
use herd_core::roles::Action;
use herd_core::validate::NameKind;
use herd_store::{NewExecution, ScriptRecord};
use serde::Deserialize;
use serde_json::json;

/// Fleet's default: a run may take 5 minutes.
pub const DEFAULT_TIMEOUT_S: i64 = 300;

const MAX_SCRIPT_BYTES: usize = 500_000;

/// Shell scripts for macOS and Linux, PowerShell for Windows, chosen by the file's extension. Returns the
/// name to store (trimmed): a file name, as hosts may write the script under it.
pub fn check_script<'a>(name: &'a str, contents: &str) -> Result<&'a str, ApiError> {
    let name = herd_core::validate::name(name, NameKind::File)
        .map_err(|r| ApiError::invalid("script", format!("file name {r}")))?;
    if !(name.ends_with(".sh") || name.ends_with(".ps1")) {
        return Err(ApiError::invalid("script", "the file name must end in .sh or .ps1"));
    }
    if contents.trim().is_empty() {
        return Err(ApiError::invalid("script", "the script is empty"));
    }
    if contents.len() > MAX_SCRIPT_BYTES {
        return Err(ApiError::invalid("script", format!("at most {MAX_SCRIPT_BYTES} bytes")));
    }
    Ok(name)
}

/// Adds a script to a team's library (None: global) after the checks every way in shares; records the
/// activity. Used by the REST upload and the console.
pub async fn add(
    state: &SharedState,
    auth: &AuthUser,
    team_id: Option<i64>,
    name: &str,
    contents: &str,
) -> Result<i64, ApiError> {
    crate::access::scope_field(state, auth, team_id, Action::Write, "team_id").await?;
    let name = check_script(name, contents)?;
    let id = state.store.create_script(team_id, name, contents, now_ms()).await.map_err(|e| match e {
        herd_store::StoreError::NotFound(_) => ApiError::invalid("team_id", "team does not exist"),
        herd_store::StoreError::Conflict(reason) => ApiError::Conflict(reason),
        other => other.into(),
    })?;
    let details = json!({"script_id": id, "script_name": name, "team_id": team_id});
    crate::activity::record(state, Some(auth), "added_script", details).await;
    Ok(id)
}

/// Deletes a script the actor may write.
pub async fn delete(state: &SharedState, auth: &AuthUser, id: i64) -> Result<(), ApiError> {
    crate::access::script(state, auth, id, Action::Write).await?;
    state.store.delete_script(id).await?;
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    pub host_id: i64,
    #[serde(default)]
    pub script_id: Option<i64>,
    #[serde(default)]
    pub script_contents: Option<String>,
    #[serde(default)]
    pub script_name: Option<String>,
    #[serde(default)]
    pub team_id: Option<i64>,
}

/// Validates a run request and queues it; returns the queued execution.
pub async fn queue(state: &SharedState, auth: &AuthUser, request: RunRequest) -> Result<NewExecution, ApiError> {
    if state.settings.get().config.server_settings.scripts_disabled {
        return Err(ApiError::Forbidden);
    }
    let host = crate::access::host(state, auth, request.host_id, Action::Write).await?;
    // A library script runs only on hosts of its own scope (a team's script on the team's hosts, a global
    // one on hosts in no team), as in Fleet; found by id or by name, it is looked up the same way, so a
    // script the user cannot read is "no such script" either way.
    let in_host_scope = |s: &ScriptRecord, field: &str| {
        if s.team_id == host.team_id {
            Ok(())
        } else {
            Err(ApiError::invalid(field, "the script does not belong to the host's team (or no team)"))
        }
    };
    let (script_id, name, contents) = match (request.script_id, request.script_contents, request.script_name) {
        (Some(id), None, None) => {
            let s = crate::access::script(state, auth, id, Action::Read).await?;
            in_host_scope(&s, "script_id")?;
            (Some(s.id), s.name, s.contents)
        }
        (None, Some(contents), None) => {
            check_script("anonymous.sh", &contents)
                .map_err(|_| ApiError::invalid("script_contents", "must be a non-empty script"))?;
            (None, String::new(), contents)
        }
        (None, None, Some(name)) => {
            let team = request.team_id.filter(|t| *t != 0);
            let s =
                crate::access::script_by_name(state, auth, team, &name, Action::Read).await.map_err(|e| match e {
                    ApiError::NotFound(_) => ApiError::invalid("script_name", "no such script in that team"),
                    other => other,
                })?;
            in_host_scope(&s, "script_name")?;
            (Some(s.id), s.name, s.contents)
        }
        _ => return Err(ApiError::invalid("script_id", "give exactly one of script_id, script_contents, script_name")),
    };
    let windows = host.platform == "windows";
    if !name.is_empty() && name.ends_with(".ps1") != windows {
        return Err(ApiError::invalid("script_id", "the script's kind does not match the host's platform"));
    }
    let execution = NewExecution {
        execution_id: random_token(16),
        host_id: host.id,
        script_id,
        script_name: name,
        contents,
        timeout_s: DEFAULT_TIMEOUT_S,
        policy_id: None,
    };
    state.store.queue_execution(&execution, now_ms()).await?;
    state.hosts.evict(host.id);
    Ok(execution)
}
