//! Configuration profiles: adding and deleting them (each change queues its reconcile job in the same
//! transaction), and what hosts have, as views show it.

use super::AfterCommit;
use crate::auth::AuthUser;
use crate::error::{ApiError, OsqueryError};
use crate::host_cache::CachedHost;
use crate::state::{SharedState, now_ms};
use crate::wire::rfc3339;
use herd_core::Millis;
use herd_core::labels::LabelScope;
use herd_core::profiles::ProfileDocument;
use herd_core::roles::Action;
use herd_proto::agent::{
    ProfileCommand, ProfileCommandStatus, ProfileCommandsResponse, ProfileOperation, ProfileResultsRequest,
};
use herd_store::{NewProfile, ProfileRecord, StoreError};
use serde_json::json;

/// Fleet's limit.
const MAX_PROFILE_BYTES: usize = 1 << 20;

/// A host's profiles as the host views show them.
pub async fn of_host(state: &SharedState, host_id: i64) -> Result<Vec<herd_proto::fleet::HostProfile>, ApiError> {
    let rows = state.store.host_profiles(host_id).await?;
    Ok(rows
        .into_iter()
        .map(|r| herd_proto::fleet::HostProfile {
            profile_uuid: r.profile_uuid,
            identifier: r.identifier,
            name: r.name,
            // Host rows exist only for herd profiles (Apple ones are not delivered), which are Linux's.
            platform: "linux".into(),
            operation_type: r.operation.as_str().into(),
            status: r.status.map(|s| s.as_str().to_string()),
            detail: r.detail.unwrap_or_default(),
            retries: r.retries,
            updated_at: rfc3339(r.updated_at),
        })
        .collect())
}

/// Adds a profile file to a team's set (None: the no-team set): parsed, checked, stored (its reconcile job
/// queued with it), the activity recorded. Used by the REST upload and the console.
/// A profile file of a batch, with its label scope by label names (include any, include all, exclude any).
pub struct ProfileFile {
    pub name: String,
    pub bytes: Vec<u8>,
    pub labels: [Option<Vec<String>>; 3],
}

/// The label scope a profile's names make (every list absent: none).
async fn scope_of(state: &SharedState, names: [Option<Vec<String>>; 3]) -> Result<LabelScope, ApiError> {
    let [any, all, exclude] = names;
    super::labels::scope_from_names(state, any, all, exclude, None).await
}

pub async fn add(
    state: &SharedState,
    auth: &AuthUser,
    team_id: Option<i64>,
    file_name: &str,
    bytes: &[u8],
    labels: [Option<Vec<String>>; 3],
) -> Result<ProfileRecord, ApiError> {
    crate::access::scope_field(state, auth, team_id, Action::Write, "team_id").await?;
    let mut profile = parse_profile(file_name, bytes)?;
    profile.labels = scope_of(state, labels).await?;
    let record = state.store.create_profile(team_id, &profile, now_ms()).await.map_err(team_error)?;
    let details = json!({"profile_uuid": record.uuid, "profile_name": record.name, "profile_identifier": record.identifier, "team_id": team_id});
    AfterCommit::new().record("created_configuration_profile", details).apply(state, Some(auth)).await?;
    Ok(record)
}

/// Deletes a profile the actor may write (its reconcile job queued with it), recorded as
/// `deleted_configuration_profile`.
pub async fn delete(state: &SharedState, auth: &AuthUser, uuid: &str) -> Result<(), ApiError> {
    crate::access::profile(state, auth, uuid, Action::Write).await?;
    let deleted =
        state.store.delete_profile(uuid, now_ms()).await?.ok_or(ApiError::NotFound("configuration profile"))?;
    let details = json!({"profile_uuid": deleted.uuid, "profile_name": deleted.name, "profile_identifier": deleted.identifier, "team_id": deleted.team_id});
    Ok(AfterCommit::new().record("deleted_configuration_profile", details).apply(state, Some(auth)).await?)
}

/// A profile file read and checked: what to store, or a 422 with the reason.
pub fn parse_profile(file_name: &str, bytes: &[u8]) -> Result<NewProfile, ApiError> {
    let invalid = |reason: String| ApiError::invalid("profile", reason);
    if bytes.len() > MAX_PROFILE_BYTES {
        return Err(invalid("a configuration profile is at most 1 MB".into()));
    }
    let lower = file_name.to_ascii_lowercase();
    if lower.ends_with(".mobileconfig") {
        let profile = parse_mobileconfig(bytes).map_err(invalid)?;
        return checked_names(profile, "profile.PayloadDisplayName", "profile.PayloadIdentifier");
    }
    let text = std::str::from_utf8(bytes).map_err(|_| invalid("must be UTF-8 text".into()))?;
    let document: ProfileDocument = if lower.ends_with(".json") {
        serde_json::from_str(text).map_err(|e| invalid(format!("not a herd profile: {e}")))?
    } else if lower.ends_with(".yml") || lower.ends_with(".yaml") {
        serde_saphyr::from_str(text).map_err(|e| {
            invalid(format!("not a herd profile: {}", e.to_string().lines().next().unwrap_or("invalid YAML")))
        })?
    } else {
        return Err(invalid(format!(
            "{file_name:?}: expected a herd profile (.json, .yml, .yaml) or an Apple profile (.mobileconfig)"
        )));
    };
    let profile =
        herd_profile(document).map_err(|(field, reason)| ApiError::invalid(format!("profile.{field}"), reason))?;
    checked_names(profile, "profile.name", "profile.identifier")
}

/// A profile's name (shown to admins and users) and identifier (the agent's file name for what the profile
/// replaced) follow the name rules every way in shares.
pub fn checked_names(profile: NewProfile, name_field: &str, identifier_field: &str) -> Result<NewProfile, ApiError> {
    use herd_core::validate::{NameKind, name};
    name(&profile.name, NameKind::Display).map_err(|r| ApiError::invalid(name_field, format!("name {r}")))?;
    name(&profile.identifier, NameKind::File)
        .map_err(|r| ApiError::invalid(identifier_field, format!("identifier {r}")))?;
    Ok(profile)
}

pub fn herd_profile(mut document: ProfileDocument) -> Result<NewProfile, herd_core::profiles::FieldError> {
    document.identifier = document.identifier.trim().to_string();
    document.name = document.name.trim().to_string();
    document.check()?;
    let mut types: Vec<String> = document.payloads.iter().map(|p| p.kind().to_string()).collect();
    types.dedup();
    Ok(NewProfile {
        labels: herd_core::labels::LabelScope::default(),
        identifier: document.identifier.clone(),
        name: document.name.clone(),
        platform: "linux".into(),
        format: "herd".into(),
        payload_types: types,
        contents: serde_json::to_string(&document).expect("a document serializes"),
        checksum: document.checksum(),
    })
}

/// An Apple configuration profile (XML or binary plist; signed ones are refused with the reason): top-level
/// PayloadType "Configuration", PayloadIdentifier and PayloadDisplayName required, each payload typed.
pub fn parse_mobileconfig(bytes: &[u8]) -> Result<NewProfile, String> {
    if bytes.first() == Some(&0x30) {
        return Err("signed (PKCS #7) profiles are not supported yet: upload the unsigned .mobileconfig".into());
    }
    let value =
        plist::Value::from_reader(std::io::Cursor::new(bytes)).map_err(|e| format!("not a property list: {e}"))?;
    let dict = value.as_dictionary().ok_or("the top level must be a dictionary")?;
    let text = |key: &str| dict.get(key).and_then(plist::Value::as_string).map(str::trim).unwrap_or_default();
    match text("PayloadType") {
        "Configuration" => {}
        "" => return Err("PayloadType is missing (expected \"Configuration\")".into()),
        other => return Err(format!("invalid PayloadType {other:?} (expected \"Configuration\")")),
    }
    let identifier = text("PayloadIdentifier");
    if identifier.is_empty() {
        return Err("PayloadIdentifier is missing or empty".into());
    }
    let name = text("PayloadDisplayName");
    if name.is_empty() {
        return Err("PayloadDisplayName is missing or empty".into());
    }
    let mut types = Vec::new();
    if let Some(content) = dict.get("PayloadContent") {
        let payloads = content.as_array().ok_or("PayloadContent must be an array")?;
        for (i, payload) in payloads.iter().enumerate() {
            let kind = payload
                .as_dictionary()
                .and_then(|d| d.get("PayloadType"))
                .and_then(plist::Value::as_string)
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| format!("PayloadContent[{i}] has no PayloadType"))?;
            if !types.iter().any(|t| t == kind) {
                types.push(kind.to_string());
            }
        }
    }
    use sha2::Digest;
    Ok(NewProfile {
        labels: herd_core::labels::LabelScope::default(),
        identifier: identifier.to_string(),
        name: name.to_string(),
        platform: "darwin".into(),
        format: "mobileconfig".into(),
        payload_types: types,
        contents: String::from_utf8_lossy(bytes).into_owned(),
        checksum: hex::encode(sha2::Sha256::digest(bytes)),
    })
}

pub fn team_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound(_) => ApiError::invalid("team_id", "team does not exist"),
        StoreError::Conflict(reason) => ApiError::Conflict(reason),
        other => other.into(),
    }
}

/// Fleet's batch: a team's whole set replaced by these files (name, contents) in one transaction, profiles
/// matched by identifier updated in place (this is how profiles are edited); `dry_run` checks and changes
/// nothing. Recorded as `edited_configuration_profiles` when anything changed.
pub async fn replace_set(
    state: &SharedState,
    auth: &AuthUser,
    team_id: Option<i64>,
    files: Vec<ProfileFile>,
    dry_run: bool,
) -> Result<(), ApiError> {
    crate::access::scope_field(state, auth, team_id, Action::Write, "team_id").await?;
    let mut profiles: Vec<NewProfile> = Vec::with_capacity(files.len());
    for (i, file) in files.into_iter().enumerate() {
        let at = |e: ApiError| match e {
            ApiError::Validation { field, reason } => {
                ApiError::Validation { field: format!("profiles[{i}].{field}"), reason }
            }
            other => other,
        };
        let mut profile = parse_profile(&file.name, &file.bytes).map_err(at)?;
        profile.labels = scope_of(state, file.labels).await.map_err(at)?;
        if profiles.iter().any(|p| p.identifier == profile.identifier || p.name == profile.name) {
            return Err(ApiError::invalid(format!("profiles[{i}]"), "the same identifier or name twice in one batch"));
        }
        profiles.push(profile);
    }
    if dry_run {
        return Ok(());
    }
    if state.store.replace_profiles(team_id, &profiles, now_ms()).await.map_err(team_error)? {
        let identifiers: Vec<&str> = profiles.iter().map(|p| p.identifier.as_str()).collect();
        let details = json!({"team_id": team_id, "profile_identifiers": identifiers});
        AfterCommit::new().record("edited_configuration_profiles", details).apply(state, Some(auth)).await?;
    }
    Ok(())
}

/// Sends a host's profile again (only one whose last command finished: verified or failed).
pub async fn resend(state: &SharedState, auth: &AuthUser, host_id: i64, uuid: &str) -> Result<(), ApiError> {
    let host = crate::access::host(state, auth, host_id, Action::Write).await?;
    match state.store.resend_host_profile(host.id, uuid, now_ms()).await? {
        Ok(()) => {
            let details = json!({"host_id": host.id, "profile_uuid": uuid});
            let effects = AfterCommit::new().evict([host.id]).record("resent_configuration_profile", details);
            Ok(effects.apply(state, Some(auth)).await?)
        }
        Err(herd_store::ResendRefused::NotFound) => Err(ApiError::NotFound("configuration profile on this host")),
        Err(herd_store::ResendRefused::NotFinal) => Err(ApiError::Conflict(
            "Couldn't resend. Configuration profiles with \"pending\" or \"verifying\" status can't be resent.".into(),
        )),
    }
}

/// The agent asks for its profile commands (and so says it applies profiles): in order, each with the
/// document to install.
pub async fn agent_commands(
    state: &SharedState,
    host: &CachedHost,
    now: Millis,
) -> Result<ProfileCommandsResponse, OsqueryError> {
    let host_id = host.checkin.id;
    if !host.checkin.profiles_enabled {
        state.store.enable_host_profiles(host_id, now).await?;
        AfterCommit::new().evict([host_id]).apply(state, None).await?;
    }
    let commands = state.store.profile_commands(host_id).await?;
    let commands = commands
        .into_iter()
        .map(|c| ProfileCommand {
            command_uuid: c.command_uuid,
            operation: match c.operation {
                herd_core::profiles::Operation::Install => ProfileOperation::Install,
                herd_core::profiles::Operation::Remove => ProfileOperation::Remove,
            },
            identifier: c.identifier,
            name: c.name,
            profile: c.contents.as_deref().and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok()),
        })
        .collect();
    Ok(ProfileCommandsResponse { commands })
}

/// Most characters of an agent's error detail kept.
const DETAIL_KEPT_CHARS: usize = 2_000;

/// The agent answers its commands: each acknowledged or failed (with why), retried within the limits.
pub async fn record_agent_results(
    state: &SharedState,
    host: &CachedHost,
    request: &ProfileResultsRequest,
    now: Millis,
) -> Result<(), OsqueryError> {
    let results: Vec<(String, Option<String>)> = request
        .results
        .iter()
        .map(|r| {
            let error = match r.status {
                ProfileCommandStatus::Acknowledged => None,
                ProfileCommandStatus::Error => {
                    Some(r.detail.as_deref().unwrap_or("no detail").chars().take(DETAIL_KEPT_CHARS).collect())
                }
            };
            (r.command_uuid.clone(), error)
        })
        .collect();
    let limits = state.settings.get().profile_limits();
    state.store.record_profile_results(host.checkin.id, &results, &limits, now).await?;
    Ok(AfterCommit::new().evict([host.checkin.id]).apply(state, None).await?)
}
