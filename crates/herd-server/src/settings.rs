//! Settings every request may need — the configuration document, teams' agent options, enroll secrets —
//! cached in memory and reloaded from the store every few seconds (and at once after a local change), so
//! every server of a cluster converges on the same values without a database read per request.

use herd_proto::fleet::AppConfig;
use herd_store::{Store, StoreError, StoredSecret};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone, Default)]
pub struct LiveSettings {
    pub config: AppConfig,
    pub team_agent_options: HashMap<i64, serde_json::Value>,
    pub enroll_secrets: Vec<StoredSecret>,
}

impl LiveSettings {
    /// Agent options of a host: its team's own when the team has them, else the global ones (Fleet's rule:
    /// team options replace the global ones whole).
    pub fn agent_options(&self, team_id: Option<i64>) -> &serde_json::Value {
        team_id
            .and_then(|team| self.team_agent_options.get(&team))
            .unwrap_or(&self.config.agent_options)
    }

    pub fn vitals_interval_ms(&self) -> i64 {
        self.config
            .host_settings
            .vitals_interval
            .saturating_mul(1000)
    }
}

#[derive(Default)]
pub struct SettingsCache {
    current: RwLock<Arc<LiveSettings>>,
}

impl SettingsCache {
    pub fn get(&self) -> Arc<LiveSettings> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub async fn reload(&self, store: &Store) -> Result<(), StoreError> {
        let config = match store.app_config().await? {
            Some(document) => serde_json::from_value(document)
                .map_err(|e| StoreError::Corrupt(format!("stored configuration: {e}")))?,
            None => AppConfig::default(),
        };
        let settings = LiveSettings {
            config,
            team_agent_options: store.team_agent_options().await?.into_iter().collect(),
            enroll_secrets: store.all_enroll_secrets().await?,
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
        Ok(())
    }
}
