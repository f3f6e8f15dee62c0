//! Settings (admins only): organization, host intervals, and the JSON sections (webhooks, migration, agent
//! options) as text areas.

use super::layout::{Frame, page_or_error, render};
use super::{ConsoleUser, error_page};
use crate::error::ApiError;
use crate::state::SharedState;
use askama::Template;
use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use herd_core::roles::{Action, Scope};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "console/settings.html")]
struct SettingsPage<'a> {
    frame: Frame<'a>,
    org_name: String,
    contact_url: String,
    policy_interval: i64,
    vitals_interval: i64,
    /// The JSON sections: (field, label, pretty JSON).
    sections: Vec<(&'static str, &'static str, String)>,
}

pub async fn page(State(state): State<SharedState>, user: ConsoleUser) -> Response {
    page_or_error(
        async {
            user.auth.require(Action::AdministerServer, Scope::Global)?;
            let config = crate::app::config::stored_config(&state).await?;
            let pretty = |value: serde_json::Value| serde_json::to_string_pretty(&value).unwrap_or_default();
            let sections = vec![
                (
                    "webhook_settings",
                    "Webhooks (JSON)",
                    pretty(serde_json::to_value(&config.webhook_settings).unwrap_or_default()),
                ),
                (
                    "mdm",
                    "Migration from a previous management system (JSON)",
                    pretty(serde_json::to_value(&config.mdm).unwrap_or_default()),
                ),
                ("agent_options", "Agent options (JSON)", pretty(config.agent_options.clone())),
            ];
            let page = SettingsPage {
                frame: Frame::new(&user, "/console/settings", "Settings"),
                org_name: config.org_info.org_name.clone(),
                contact_url: config.org_info.contact_url.clone(),
                policy_interval: config.host_settings.policy_interval,
                vitals_interval: config.host_settings.vitals_interval,
                sections,
            };
            Ok(render(&page))
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct SettingsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    org_name: String,
    #[serde(default)]
    contact_url: String,
    /// Seconds (checked in `save`, which names the field).
    #[serde(default)]
    policy_interval: String,
    #[serde(default)]
    vitals_interval: String,
    /// JSON; empty or absent leaves the section as it is.
    webhook_settings: Option<String>,
    mdm: Option<String>,
    agent_options: Option<String>,
}

pub async fn save(
    State(state): State<SharedState>,
    user: ConsoleUser,
    axum::Form(form): axum::Form<SettingsForm>,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form.csrf) {
        return refused;
    }
    let result = async {
        user.auth.require(Action::AdministerServer, Scope::Global)?;
        let number = |key: &str, text: &str| -> Result<i64, ApiError> {
            text.trim().parse().map_err(|_| ApiError::invalid(format!("host_settings.{key}"), "a number of seconds"))
        };
        let mut patch = serde_json::json!({
            "org_info": {"org_name": form.org_name, "contact_url": form.contact_url},
            "host_settings": {
                "policy_interval": number("policy_interval", &form.policy_interval)?,
                "vitals_interval": number("vitals_interval", &form.vitals_interval)?,
            },
        });
        for (key, text) in
            [("webhook_settings", &form.webhook_settings), ("mdm", &form.mdm), ("agent_options", &form.agent_options)]
        {
            if let Some(text) = text.as_deref().filter(|t| !t.trim().is_empty()) {
                patch[key] =
                    serde_json::from_str(text).map_err(|e| ApiError::invalid(key, format!("not valid JSON: {e}")))?;
            }
        }
        crate::app::config::update(&state, &user.auth, &patch).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/console/settings").into_response(),
        Err(e) => error_page(&e),
    }
}
