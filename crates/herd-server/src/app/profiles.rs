//! Configuration profiles: adding and deleting them (each change queues its reconcile job in the same
//! transaction), and what hosts have, as views show it.

use super::AfterCommit;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::{SharedState, now_ms};
use crate::wire::rfc3339;
use herd_core::profiles::ProfileDocument;
use herd_core::roles::Action;
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
pub async fn add(
    state: &SharedState,
    auth: &AuthUser,
    team_id: Option<i64>,
    file_name: &str,
    bytes: &[u8],
) -> Result<ProfileRecord, ApiError> {
    crate::access::scope_field(state, auth, team_id, Action::Write, "team_id").await?;
    let profile = parse_profile(file_name, bytes)?;
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
