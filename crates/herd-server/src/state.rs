//! What every request handler shares.

use crate::host_cache::HostCache;
use crate::metrics::Metrics;
use crate::outbound::OutboundPolicy;
use crate::rate_limit::{FailureLimiter, FamiliarPairs, MAX_SUBJECTS, WINDOW};
use crate::result_log::ResultLog;
use crate::seen_times::SeenTimes;
use crate::settings::SettingsCache;
use herd_core::{DAY_MS, Millis};
use herd_store::Store;
use std::sync::Arc;

/// Sessions of interactive users expire this long after login (Fleet's default `session_duration`).
/// API-only users' sessions do not expire; delete the user or log out to revoke them.
pub const SESSION_LIFETIME_MS: Millis = 5 * DAY_MS;

pub struct AppState {
    pub store: Store,
    pub hosts: HostCache,
    pub seen: SeenTimes,
    pub settings: SettingsCache,
    pub metrics: Metrics,
    /// Password checks (login, console login, change_password, email change): per address and account, and
    /// per account (`rate_limit::password_rules`).
    pub login_limiter: FailureLimiter,
    /// (address, account) pairs that passed a password check recently: exempt from the per-account budget.
    pub familiar_logins: FamiliarPairs,
    /// Bad session tokens (bearer header or console cookie), per address.
    pub token_limiter: FailureLimiter,
    /// Bad enroll secrets, per address.
    pub enroll_limiter: FailureLimiter,
    /// Bad device tokens, per address.
    pub device_limiter: FailureLimiter,
    pub result_log: ResultLog,
    /// An extra CA (PEM) trusted for outgoing webhooks (an internal CA), besides the system's roots.
    pub webhook_ca_cert: Option<std::path::PathBuf>,
    /// Where outbound requests (webhooks) may go.
    pub outbound: OutboundPolicy,
    /// Client connections open, timed out, evicted and refused (`/metrics`).
    pub connections: Arc<crate::connections::ConnectionStats>,
    /// Refuses new enrollments while the server is behind (`admission`).
    pub enrollment_gate: crate::admission::EnrollmentGate,
}

pub type SharedState = Arc<AppState>;

impl AppState {
    pub fn new(store: Store, result_log: ResultLog) -> AppState {
        AppState {
            store,
            hosts: HostCache::default(),
            seen: SeenTimes::default(),
            settings: SettingsCache::default(),
            metrics: Metrics::default(),
            login_limiter: FailureLimiter::new(WINDOW, MAX_SUBJECTS),
            familiar_logins: FamiliarPairs::default(),
            token_limiter: FailureLimiter::new(WINDOW, MAX_SUBJECTS),
            enroll_limiter: FailureLimiter::new(WINDOW, MAX_SUBJECTS),
            device_limiter: FailureLimiter::new(WINDOW, MAX_SUBJECTS),
            result_log,
            webhook_ca_cert: None,
            outbound: OutboundPolicy::default(),
            connections: Arc::default(),
            enrollment_gate: crate::admission::EnrollmentGate::new(Some(crate::cli::DEFAULT_ENROLLMENT_LAG_LIMIT)),
        }
    }
}

pub fn now_ms() -> Millis {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as Millis).unwrap_or(0)
}
