//! Settings every request may need — the configuration document, teams' agent options, enroll secrets —
//! cached in memory and reloaded from the store every few seconds (and at once after a local change), so
//! every server of a cluster converges on the same values without a database read per request.

use herd_core::Millis;
use herd_core::due::{ScheduledLabel, ScheduledPolicy};
use herd_core::policy::PolicyPlatforms;
use herd_proto::fleet::AppConfig;
use herd_store::{Store, StoreError, StoredSecret};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Debug, Clone, Default)]
pub struct LiveSettings {
    pub config: AppConfig,
    pub team_agent_options: HashMap<i64, serde_json::Value>,
    pub enroll_secrets: Vec<StoredSecret>,
    /// Every policy, as the check-in scheduler needs it, with its SQL.
    pub policies: Vec<PolicyToRun>,
    /// Dynamic labels, as the check-in scheduler needs them, with their SQL.
    pub labels: Vec<LabelToRun>,
    /// When this server last saw the policy or dynamic label set change (a host whose plan is older must be
    /// re-planned).
    pub policies_changed_at: Millis,
}

/// A dynamic label as check-ins need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelToRun {
    pub schedule: ScheduledLabel,
    pub query: String,
}

/// A policy as check-ins need it: its schedule and the SQL to hand out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyToRun {
    pub schedule: ScheduledPolicy,
    pub query: String,
    /// The policy's own webhook.
    pub webhook_url: Option<String>,
}

impl LiveSettings {
    /// Agent options of a host: its team's own when the team has them, else the global ones (Fleet's rule:
    /// team options replace the global ones whole).
    pub fn agent_options(&self, team_id: Option<i64>) -> &serde_json::Value {
        team_id.and_then(|team| self.team_agent_options.get(&team)).unwrap_or(&self.config.agent_options)
    }

    /// The verification rules admins set for configuration profiles.
    pub fn profile_limits(&self) -> herd_core::profiles::Limits {
        let host = &self.config.host_settings;
        herd_core::profiles::Limits {
            grace_ms: host.profile_grace_period.saturating_mul(1000),
            max_retries: u32::try_from(host.profile_retries).unwrap_or(0),
        }
    }

    pub fn vitals_interval_ms(&self) -> i64 {
        self.config.host_settings.vitals_interval.saturating_mul(1000)
    }

    pub fn schedules(&self) -> Vec<ScheduledPolicy> {
        self.policies.iter().map(|p| p.schedule.clone()).collect()
    }

    pub fn policy(&self, id: i64) -> Option<&PolicyToRun> {
        self.policies.iter().find(|p| p.schedule.id == id)
    }

    pub fn label_schedules(&self) -> Vec<ScheduledLabel> {
        self.labels.iter().map(|l| l.schedule.clone()).collect()
    }

    pub fn label(&self, id: i64) -> Option<&LabelToRun> {
        self.labels.iter().find(|l| l.schedule.id == id)
    }

    pub fn label_interval_ms(&self) -> i64 {
        self.config.host_settings.label_interval.saturating_mul(1000)
    }
}

#[derive(Default)]
pub struct SettingsCache {
    current: RwLock<Arc<LiveSettings>>,
    /// One catch-up reload at a time (see `catch_up`).
    catching_up: tokio::sync::Mutex<()>,
}

impl SettingsCache {
    pub fn get(&self) -> Arc<LiveSettings> {
        self.current.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Reloads if this server's copy of a policy is older than `revision` (the database's, seen by a report):
    /// one reload at a time, and callers that waited for it find the copy current and return — a burst of
    /// stale answers after an edit costs one reload, not one per answer.
    pub async fn catch_up(&self, store: &Store, policy_id: i64, revision: i64) -> Result<(), StoreError> {
        let behind = || self.get().policy(policy_id).is_none_or(|p| p.schedule.revision < revision);
        if !behind() {
            return Ok(());
        }
        let _one_at_a_time = self.catching_up.lock().await;
        if behind() { self.reload(store).await } else { Ok(()) }
    }

    pub async fn reload(&self, store: &Store) -> Result<(), StoreError> {
        let config: AppConfig = match store.app_config().await? {
            Some(document) => serde_json::from_value(document)
                .map_err(|e| StoreError::Corrupt(format!("stored configuration: {e}")))?,
            None => AppConfig::default(),
        };
        let default_interval_ms = config.host_settings.policy_interval.saturating_mul(1000);
        let policies: Vec<PolicyToRun> = store
            .policies_to_schedule()
            .await?
            .into_iter()
            .filter_map(|p| {
                // Platforms are validated on the way in; one that cannot be read targets no host.
                let platforms = PolicyPlatforms::parse(&p.platform)
                    .map_err(|reason| tracing::error!(policy_id = p.id, %reason, "unreadable policy platform"))
                    .ok()?;
                Some(PolicyToRun {
                    schedule: ScheduledPolicy {
                        id: p.id,
                        team_id: p.team_id,
                        platforms,
                        interval_ms: p.interval_seconds.map_or(default_interval_ms, |s| s.saturating_mul(1000)),
                        revision: p.revision,
                        labels: p.labels,
                    },
                    query: p.query,
                    webhook_url: p.webhook_url,
                })
            })
            .collect();
        let labels: Vec<LabelToRun> = store
            .dynamic_labels_to_schedule()
            .await?
            .into_iter()
            .map(|(id, platform, query)| LabelToRun { schedule: ScheduledLabel { id, platform }, query })
            .collect();
        let previous = self.get();
        let policies_changed_at = if previous.policies == policies && previous.labels == labels {
            previous.policies_changed_at
        } else {
            crate::state::now_ms()
        };
        let settings = LiveSettings {
            config,
            team_agent_options: store.team_agent_options().await?.into_iter().collect(),
            enroll_secrets: store.all_enroll_secrets().await?,
            policies,
            labels,
            policies_changed_at,
        };
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(settings);
        Ok(())
    }
}
