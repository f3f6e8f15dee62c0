//! The server's configuration (organisation info, server settings, host settings, webhooks, agent options):
//! reading it as the actor may see it, and changing it (merged, checked, saved, settings reloaded, recorded).

use crate::agent_options;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::outbound::OutboundPolicy;
use crate::state::{SharedState, now_ms};
use herd_core::roles::{Action, Scope};
use herd_proto::fleet::AppConfig;
use serde_json::Value;

/// Sections merged field by field; `agent_options` is replaced whole (as in Fleet).
const MERGED_SECTIONS: &[&str] =
    &["org_info", "server_settings", "host_settings", "features", "webhook_settings", "mdm"];

/// Fields older Fleet took under `host_settings`, its alias of `features`: a patch's `host_settings` with
/// these goes to `features`, its other fields to herd's own host settings (which stay where clients know them).
const FLEET_FEATURES_FIELDS: &[&str] = &["enable_host_users", "enable_software_inventory", "additional_queries"];

pub async fn stored_config(state: &SharedState) -> Result<AppConfig, ApiError> {
    match state.store.app_config().await? {
        Some(document) => serde_json::from_value(document)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored configuration is unreadable: {e}"))),
        None => Ok(AppConfig::default()),
    }
}

/// What a set value shows when it is withheld (Fleet's mask).
pub const WITHHELD: &str = "********";

/// The configuration as users other than global admins see it: webhook URLs (which often carry a token)
/// masked, and no agent options (as in Fleet, where only global admins see them: they may hold enroll
/// flags and paths of every team's hosts).
pub fn reduced_view(mut config: AppConfig) -> AppConfig {
    let mask = |url: &mut String| {
        if !url.is_empty() {
            *url = WITHHELD.to_string();
        }
    };
    mask(&mut config.webhook_settings.failing_policies_webhook.destination_url);
    mask(&mut config.mdm.macos_migration.webhook_url);
    config.agent_options = Value::Null;
    config
}

/// A configuration patch as the activity feed (read by every global user, observers included) may show it:
/// webhook URLs (which often carry a token) masked, and agent options withheld whole, as `reduced_view`
/// withholds them (they may hold enroll flags and paths of every team's hosts).
pub fn recorded_patch(patch: &Value) -> Value {
    let mut shown = masked(patch);
    if let Some(options) = shown.get_mut("agent_options")
        && !options.is_null()
    {
        *options = Value::from(WITHHELD);
    }
    shown
}

/// A configuration document (or patch) with its webhook URLs masked, for what others may read (activities).
pub fn masked(document: &Value) -> Value {
    match document {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let secret = matches!(key.as_str(), "destination_url" | "webhook_url")
                        && value.as_str().is_some_and(|url| !url.is_empty());
                    (key.clone(), if secret { Value::from(WITHHELD) } else { masked(value) })
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(masked).collect()),
        other => other.clone(),
    }
}

fn check_url(field: &str, url: &str) -> Result<(), ApiError> {
    if url.is_empty() || url.starts_with("https://") || url.starts_with("http://") {
        Ok(())
    } else {
        Err(ApiError::invalid(field, format!("must be an http(s) url, not {url:?}")))
    }
}

fn validate(outbound: &OutboundPolicy, config: &AppConfig) -> Result<(), ApiError> {
    agent_options::validate("agent_options", &config.agent_options)?;
    let interval = config.host_settings.vitals_interval;
    if !(60..=7 * 86_400).contains(&interval) {
        return Err(ApiError::invalid("host_settings.vitals_interval", "must be between 60 and 604800 seconds"));
    }
    // Short policy intervals are allowed (tests, a lab, a critical check on a few hosts); each run costs the
    // host a query and the server a report.
    if !(1..=7 * 86_400).contains(&config.host_settings.label_interval) {
        return Err(ApiError::invalid("host_settings.label_interval", "must be between 1 and 604800 seconds"));
    }
    if !(1..=7 * 86_400).contains(&config.host_settings.policy_interval) {
        return Err(ApiError::invalid("host_settings.policy_interval", "must be between 1 and 604800 seconds"));
    }
    if !(0..=10).contains(&config.host_settings.automation_retries) {
        return Err(ApiError::invalid("host_settings.automation_retries", "must be between 0 and 10"));
    }
    if !(1..=86_400).contains(&config.host_settings.automation_script_timeout) {
        return Err(ApiError::invalid(
            "host_settings.automation_script_timeout",
            "must be between 1 and 86400 seconds",
        ));
    }
    if !(0..=7 * 86_400).contains(&config.host_settings.profile_grace_period) {
        return Err(ApiError::invalid("host_settings.profile_grace_period", "must be between 0 and 604800 seconds"));
    }
    if !(0..=10).contains(&config.host_settings.profile_retries) {
        return Err(ApiError::invalid("host_settings.profile_retries", "must be between 0 and 10"));
    }
    check_url("org_info.org_logo_url", &config.org_info.org_logo_url)?;
    check_url("org_info.org_logo_url_light_background", &config.org_info.org_logo_url_light_background)?;
    check_url("org_info.contact_url", &config.org_info.contact_url)?;
    check_url("server_settings.server_url", &config.server_settings.server_url)?;
    crate::webhooks::check_settings(
        outbound,
        "webhook_settings.failing_policies_webhook",
        &config.webhook_settings.failing_policies_webhook,
    )?;
    let migration = &config.mdm.macos_migration;
    if migration.enable {
        let https = reqwest::Url::parse(&migration.webhook_url)
            .is_ok_and(|u| u.scheme() == "https" && u.host_str().is_some_and(|h| !h.is_empty()));
        if !https {
            return Err(ApiError::invalid(
                "mdm.macos_migration.webhook_url",
                "an https URL is required to enable the migration (it is told when a user starts one)",
            ));
        }
        crate::webhooks::check_destination(outbound, &migration.webhook_url)
            .map_err(|reason| ApiError::invalid("mdm.macos_migration.webhook_url", reason))?;
    }
    if !matches!(migration.mode.as_str(), "" | "voluntary" | "forced") {
        return Err(ApiError::invalid("mdm.macos_migration.mode", "must be voluntary or forced"));
    }
    if !(10..=86_400).contains(&config.mdm.migration_window_seconds) {
        return Err(ApiError::invalid("mdm.migration_window_seconds", "must be between 10 and 86400 seconds"));
    }
    if config.mdm.migration_query.len() > 64 * 1024 {
        return Err(ApiError::invalid("mdm.migration_query", "must be at most 64 KiB"));
    }
    let features = &config.features;
    if features.enable_host_users {
        return Err(ApiError::invalid("features.enable_host_users", "host users are not collected yet"));
    }
    if features.enable_software_inventory {
        return Err(ApiError::invalid(
            "features.enable_software_inventory",
            "the software inventory is not supported yet",
        ));
    }
    let empty = |v: &Value| v.is_null() || v.as_object().is_some_and(|m| m.is_empty());
    if !features.additional_queries.as_ref().is_none_or(empty) {
        return Err(ApiError::invalid("features.additional_queries", "additional queries are not supported yet"));
    }
    // Shown on every user's My Device page and in notifications: the name rules, once it is set.
    if !config.org_info.org_name.is_empty() {
        herd_core::validate::display_name(&config.org_info.org_name)
            .map_err(|r| ApiError::invalid("org_info.org_name", format!("name {r}")))?;
    }
    Ok(())
}

/// Applies a PATCH body to the current configuration, returning the whole new one.
pub fn merge(current: &AppConfig, patch: &Value) -> Result<AppConfig, ApiError> {
    let patch = patch.as_object().ok_or_else(|| ApiError::invalid("base", "expected a json object"))?;
    let mut merged = serde_json::to_value(current).map_err(|e| ApiError::Internal(e.into()))?;
    for (key, value) in patch {
        if key == "agent_options" {
            merged[key] = value.clone();
        } else if MERGED_SECTIONS.contains(&key.as_str()) {
            let fields = value.as_object().ok_or_else(|| ApiError::invalid(key.clone(), "must be an object"))?;
            for (field, field_value) in fields {
                let section = if key == "host_settings" && FLEET_FEATURES_FIELDS.contains(&field.as_str()) {
                    "features"
                } else {
                    key
                };
                merged[section][field] = field_value.clone();
            }
        } else {
            return Err(ApiError::invalid(key.clone(), "unknown configuration section"));
        }
    }
    serde_path_to_error::deserialize::<_, AppConfig>(merged).map_err(|err| {
        let path = err.path().to_string();
        ApiError::invalid(path, err.into_inner().to_string())
    })
}

/// Reads the configuration as the actor may see it: every logged-in user may read it (as in Fleet: clients
/// need the org info and server settings), but only global admins, who alone may change it, see it whole.
pub async fn view(state: &SharedState, auth: &AuthUser) -> Result<AppConfig, ApiError> {
    let config = stored_config(state).await?;
    Ok(if auth.actor.may(Action::AdministerServer, Scope::Global) { config } else { reduced_view(config) })
}

/// A global admin's change to the configuration (REST PATCH and the console's settings form): applied, then
/// recorded as `edited_settings` as `recorded_patch` shows it.
pub async fn update(state: &SharedState, auth: &AuthUser, patch: &Value) -> Result<AppConfig, ApiError> {
    auth.require(Action::AdministerServer, Scope::Global)?;
    let config = apply_patch(state, patch).await?;
    let effects = super::AfterCommit::new().reload_settings().record("edited_settings", recorded_patch(patch));
    effects.apply(state, Some(auth)).await?;
    Ok(config)
}

/// Merges a patch into the stored configuration, checks it and saves it. The merge
/// happens inside the store's locked read-modify-write, so patches of different sections made at once (two
/// admins, two servers) all survive; a patch that fails validation changes nothing.
async fn apply_patch(state: &SharedState, patch: &Value) -> Result<AppConfig, ApiError> {
    let mut config = AppConfig::default();
    state
        .store
        .update_app_config(now_ms(), |stored| {
            let current = match stored {
                Some(document) => serde_json::from_value(document)
                    .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored configuration is unreadable: {e}")))?,
                None => AppConfig::default(),
            };
            config = merge(&current, patch)?;
            validate(&state.outbound, &config)?;
            serde_json::to_value(&config).map_err(|e| ApiError::Internal(e.into()))
        })
        .await?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merges_sections_and_names_bad_fields() {
        let current = AppConfig::default();
        let merged =
            merge(&current, &json!({"org_info": {"org_name": "Acme"}, "host_settings": {"vitals_interval": 600}}))
                .unwrap();
        assert_eq!(merged.org_info.org_name, "Acme");
        assert_eq!(merged.host_settings.vitals_interval, 600);
        assert_eq!(merged.agent_options, current.agent_options, "untouched sections stay");
        let replaced = merge(&current, &json!({"agent_options": {"config": {}}})).unwrap();
        assert_eq!(replaced.agent_options, json!({"config": {}}));
        for (patch, field) in [
            (json!({"org_inf": {}}), "org_inf"),
            (json!({"org_info": {"org_nam": "x"}}), "org_info.org_nam"),
            (json!({"org_info": {"org_name": 5}}), "org_info.org_name"),
            (json!({"host_settings": {"vitals_interval": "often"}}), "host_settings.vitals_interval"),
            (json!({"server_settings": []}), "server_settings"),
            (json!([]), "base"),
        ] {
            match merge(&current, &patch) {
                Err(ApiError::Validation { field: got, .. }) => assert_eq!(got, field, "{patch}"),
                other => panic!("{patch}: {other:?}"),
            }
        }
    }

    #[test]
    fn fleet_features_and_their_host_settings_alias() {
        let current = AppConfig::default();
        let cases = [
            // Fleet's section, values herd honours.
            (json!({"features": {"enable_host_users": false, "additional_queries": null}}), Ok(3600)),
            // Older Fleet's alias: its fields go to `features`, herd's own stay in `host_settings`.
            (json!({"host_settings": {"enable_software_inventory": false, "vitals_interval": 600}}), Ok(600)),
            (json!({"host_settings": {"enable_host_users": true}}), Err("features.enable_host_users")),
            (json!({"features": {"enable_software_inventory": true}}), Err("features.enable_software_inventory")),
            (json!({"features": {"additional_queries": {"q": "SELECT 1"}}}), Err("features.additional_queries")),
            (json!({"features": {"enable_host_user": false}}), Err("features.enable_host_user")),
        ];
        let outbound = crate::outbound::OutboundPolicy::default();
        for (patch, expected) in cases {
            let result = merge(&current, &patch).and_then(|config| validate(&outbound, &config).map(|_| config));
            match (result, expected) {
                (Ok(config), Ok(interval)) => assert_eq!(config.host_settings.vitals_interval, interval, "{patch}"),
                (Err(ApiError::Validation { field, .. }), Err(expected)) => assert_eq!(field, expected, "{patch}"),
                (other, _) => panic!("{patch}: {other:?}"),
            }
        }
    }

    #[test]
    fn views_for_others_mask_webhook_urls() {
        let mut config = AppConfig::default();
        config.webhook_settings.failing_policies_webhook.destination_url = "https://h.test/T0KEN".into();
        config.mdm.macos_migration.webhook_url = "https://m.test/T0KEN".into();
        let view = serde_json::to_value(reduced_view(config.clone())).unwrap();
        assert!(!view.to_string().contains("T0KEN"), "{view}");
        assert_eq!(view["agent_options"], Value::Null);
        assert_eq!(view["webhook_settings"]["failing_policies_webhook"]["destination_url"], WITHHELD);
        let patch = serde_json::to_value(&config).unwrap();
        let shown = masked(&patch);
        assert!(!shown.to_string().contains("T0KEN"), "{shown}");
        assert_eq!(shown["org_info"], patch["org_info"], "the rest is as it was");
        // Unset URLs stay empty (nothing to hide, and "empty" stays meaningful).
        assert_eq!(masked(&json!({"webhook_url": ""})), json!({"webhook_url": ""}));
        // The feed never shows agent options (observers read it; only global admins see them in the config).
        let recorded = recorded_patch(&json!({"agent_options": {"config": {"options": {"enroll_secret_path": "/s"}}}}));
        assert_eq!(recorded, json!({"agent_options": WITHHELD}));
    }

    #[test]
    fn validation() {
        let mut config = AppConfig::default();
        validate(&OutboundPolicy::default(), &config).unwrap();
        config.host_settings.vitals_interval = 5;
        assert!(validate(&OutboundPolicy::default(), &config).is_err());
        config.host_settings.vitals_interval = 3600;
        config.org_info.contact_url = "javascript:alert(1)".into();
        assert!(validate(&OutboundPolicy::default(), &config).is_err());
    }
}
