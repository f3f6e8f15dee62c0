//! Validation of osquery agent options (global in the config, or a team's own), so a typo is refused with
//! the path of the bad field instead of breaking every agent at its next config fetch.

use crate::error::ApiError;
use serde_json::Value;

const TOP_LEVEL_KEYS: &[&str] = &["config", "overrides", "command_line_flags", "extensions", "update_channels"];

/// Options whose value osquery reads as a positive number of seconds or attempts.
const POSITIVE_INTEGER_OPTIONS: &[&str] = &[
    "distributed_interval",
    "config_refresh",
    "config_tls_refresh",
    "logger_tls_period",
    "distributed_tls_max_attempts",
    "config_tls_max_attempts",
    "logger_tls_max_lines",
    "schedule_timeout",
];

pub fn validate(field: &str, options: &Value) -> Result<(), ApiError> {
    let object = options.as_object().ok_or_else(|| ApiError::invalid(field, "agent options must be an object"))?;
    for (key, value) in object {
        if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
            return Err(ApiError::invalid(
                format!("{field}.{key}"),
                format!("unknown key; expected one of {}", TOP_LEVEL_KEYS.join(", ")),
            ));
        }
        if !value.is_object() && !value.is_null() {
            return Err(ApiError::invalid(format!("{field}.{key}"), "must be an object"));
        }
    }
    if let Some(config) = object.get("config").and_then(Value::as_object) {
        for section in ["options", "decorators", "schedule", "packs"] {
            if let Some(value) = config.get(section).filter(|v| !v.is_object() && !v.is_null()) {
                return Err(ApiError::invalid(
                    format!("{field}.config.{section}"),
                    format!("must be an object, not {value}"),
                ));
            }
        }
        if let Some(flags) = config.get("options").and_then(Value::as_object) {
            for name in POSITIVE_INTEGER_OPTIONS {
                if let Some(value) = flags.get(*name) {
                    let ok = value.as_u64().is_some_and(|n| n > 0 && n <= 86_400 * 7);
                    if !ok {
                        return Err(ApiError::invalid(
                            format!("{field}.config.options.{name}"),
                            format!("must be a positive integer (seconds or count), not {value}"),
                        ));
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_fleet_defaults_and_rejects_typos() {
        validate("agent_options", &herd_proto::fleet::default_agent_options()).unwrap();
        validate("agent_options", &json!({})).unwrap();
        let cases = [
            (json!([]), "agent_options"),
            (json!({"confg": {}}), "agent_options.confg"),
            (
                json!({"config": {"options": {"distributed_interval": "10"}}}),
                "agent_options.config.options.distributed_interval",
            ),
            (
                json!({"config": {"options": {"distributed_interval": 0}}}),
                "agent_options.config.options.distributed_interval",
            ),
            (json!({"config": {"options": []}}), "agent_options.config.options"),
            (json!({"overrides": 3}), "agent_options.overrides"),
        ];
        for (options, field) in cases {
            match validate("agent_options", &options) {
                Err(ApiError::Validation { field: got, .. }) => assert_eq!(got, field, "{options}"),
                other => panic!("{options}: {other:?}"),
            }
        }
    }
}
