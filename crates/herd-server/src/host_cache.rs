//! The in-memory view of enrolled hosts that lets a check-in with nothing due skip the database.
//!
//! Correctness with several servers: every change that makes a cached entry stale (delete, re-enroll, team
//! move, refetch request) is written to the store's `host_changes` feed in the same transaction; each server
//! polls the feed and evicts those hosts (see `workers::ChangeFeed`). Entries are also checked against the
//! database whenever they say work is due, so a stale "vitals are old" never hands out work twice for long.

use herd_core::Millis;
use herd_core::due::CheckinState;
use herd_store::HostCheckin;
use std::collections::HashMap;
use std::sync::Mutex;

#[derive(Debug, Clone)]
pub struct CachedHost {
    pub checkin: HostCheckin,
    /// When vitals queries were last handed out and not yet answered.
    pub vitals_sent_at: Option<Millis>,
    /// When the installed profiles were last asked for.
    pub profiles_sent_at: Option<Millis>,
    /// The last policy plan: (planned at, next policy due at). None: plan at the next check-in.
    pub policy_plan: Option<(Millis, Option<Millis>)>,
    /// When policies were last handed out (their answers are awaited). Which revision each answer is to
    /// travels in the query's name, so any server can attribute it.
    pub policies_sent_at: Option<Millis>,
}

impl CachedHost {
    /// An entry for a row just read, with nothing handed out yet.
    fn fresh(checkin: HostCheckin) -> CachedHost {
        CachedHost { checkin, vitals_sent_at: None, profiles_sent_at: None, policy_plan: None, policies_sent_at: None }
    }

    pub fn due_state(&self) -> CheckinState {
        CheckinState {
            host_id: self.checkin.id,
            vitals_updated_at: self.checkin.detail_updated_at,
            refetch_requested: self.checkin.refetch_requested_at.is_some(),
            recheck_requested: self.checkin.recheck_requested_at.is_some(),
            vitals_sent_at: self.vitals_sent_at,
            policy_plan: self.policy_plan,
            policies_sent_at: self.policies_sent_at,
            migration_window_until: self.checkin.migration_window_until,
            profiles_enabled: self.checkin.profiles_enabled,
            profiles_verifying: self.checkin.profiles_verifying,
            profiles_sent_at: self.profiles_sent_at,
        }
    }
}

/// Loads every enrolled host into the cache with its policy plan, before the server serves: after a restart,
/// each host's first check-in is then answered from memory like any other (without this, a fleet checking in
/// every 10 s sends every host to the database within 10 s of the restart). Returns the hosts loaded.
pub async fn warm(state: &crate::state::SharedState) -> Result<usize, herd_store::StoreError> {
    use herd_core::due::{HostScope, plan_labels, plan_policies};
    use herd_core::platform::PlatformFamily;
    const PAGE: i64 = 5000;
    let settings = state.settings.get();
    let schedules = settings.schedules();
    let label_schedules = settings.label_schedules();
    let now = crate::state::now_ms();
    let (mut after, mut loaded) = (0, 0);
    loop {
        let page = state.store.host_checkins_page(after, PAGE).await?;
        let Some((last, _)) = page.last() else { break };
        after = last.id;
        for (checkin, runs) in page {
            let family = PlatformFamily::of_host_platform(&checkin.platform, &checkin.platform_like);
            let scope = HostScope {
                host_id: checkin.id,
                team_id: checkin.team_id,
                family,
                platform: checkin.platform.clone(),
                labels: checkin.label_ids.clone(),
            };
            let refetch = checkin.refetch_requested_at.is_some();
            let mut plan = plan_policies(&scope, &schedules, &runs, refetch, now);
            let labels = plan_labels(&scope, &label_schedules, &runs, refetch, settings.label_interval_ms(), now);
            plan.due.extend(labels.due);
            if let Some(at) = labels.next_due_at {
                plan.next_due_at = Some(plan.next_due_at.map_or(at, |n| n.min(at)));
            }
            // Policies due now are planned again (with a database read) at the host's first check-in.
            let next_due_at = if plan.due.is_empty() { plan.next_due_at } else { Some(now) };
            let id = checkin.id;
            state.hosts.insert(checkin);
            state.hosts.set_policy_plan(id, now, next_due_at);
            loaded += 1;
        }
    }
    Ok(loaded)
}

#[derive(Default)]
struct Maps {
    by_id: HashMap<i64, CachedHost>,
    id_by_key: HashMap<String, i64>,
    /// Fleet's orbit (fleetd) has a node key of its own, which names the same host.
    id_by_orbit_key: HashMap<String, i64>,
    /// Evictions so far (see [`HostCache::eviction_mark`]).
    evictions: u64,
}

#[derive(Default)]
pub struct HostCache {
    maps: Mutex<Maps>,
}

impl HostCache {
    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn by_node_key(&self, node_key_hash: &str) -> Option<CachedHost> {
        let maps = self.maps();
        let id = maps.id_by_key.get(node_key_hash)?;
        maps.by_id.get(id).cloned()
    }

    /// The host whose orbit (fleetd) node key hashes to `orbit_node_key_hash`.
    pub fn by_orbit_node_key(&self, orbit_node_key_hash: &str) -> Option<CachedHost> {
        let maps = self.maps();
        let id = maps.id_by_orbit_key.get(orbit_node_key_hash)?;
        maps.by_id.get(id).cloned()
    }

    /// Stores a fresh row from the database, keeping the in-memory marks of what was handed out; the policy
    /// plan is dropped, since the row may say the host moved or was asked to refetch.
    pub fn insert(&self, checkin: HostCheckin) -> CachedHost {
        Self::insert_into(&mut self.maps(), checkin)
    }

    fn insert_into(maps: &mut Maps, checkin: HostCheckin) -> CachedHost {
        let previous = maps.by_id.remove(&checkin.id);
        if let Some(previous) = &previous {
            Self::forget_keys(maps, &previous.checkin);
        }
        // A host orbit enrolled before its osqueryd has no osquery node key yet.
        if !checkin.node_key_hash.is_empty() {
            maps.id_by_key.insert(checkin.node_key_hash.clone(), checkin.id);
        }
        if let Some(orbit_key) = &checkin.orbit_node_key_hash {
            maps.id_by_orbit_key.insert(orbit_key.clone(), checkin.id);
        }
        let entry = match previous {
            Some(previous) => CachedHost { checkin, policy_plan: None, ..previous },
            None => CachedHost::fresh(checkin),
        };
        maps.by_id.insert(entry.checkin.id, entry.clone());
        entry
    }

    /// Where the evictions stand: taken before reading a host from the store, handed to
    /// [`HostCache::insert_unless_evicted_since`] after. A row read (or written) before a change whose
    /// eviction ran meanwhile must not be cached, or it would stay, stale, with nothing left to evict it.
    pub fn eviction_mark(&self) -> u64 {
        self.maps().evictions
    }

    /// Caches `checkin` unless a host was evicted since `mark` (then the row may predate that change and is
    /// left to be read again when next needed). Returns the entry either way, with the marks of what was
    /// handed out to the host kept from its cached entry, if it still has one.
    pub fn insert_unless_evicted_since(&self, checkin: HostCheckin, mark: u64) -> CachedHost {
        let mut maps = self.maps();
        if maps.evictions != mark {
            return match maps.by_id.get(&checkin.id) {
                Some(cached) => CachedHost { checkin, policy_plan: None, ..cached.clone() },
                None => CachedHost::fresh(checkin),
            };
        }
        Self::insert_into(&mut maps, checkin)
    }

    pub fn evict(&self, host_id: i64) {
        let mut maps = self.maps();
        maps.evictions += 1;
        if let Some(entry) = maps.by_id.remove(&host_id) {
            Self::forget_keys(&mut maps, &entry.checkin);
        }
    }

    fn forget_keys(maps: &mut Maps, checkin: &HostCheckin) {
        maps.id_by_key.remove(&checkin.node_key_hash);
        if let Some(orbit_key) = &checkin.orbit_node_key_hash {
            maps.id_by_orbit_key.remove(orbit_key);
        }
    }

    pub fn set_policy_plan(&self, host_id: i64, planned_at: Millis, next_due_at: Option<Millis>) {
        if let Some(entry) = self.maps().by_id.get_mut(&host_id) {
            entry.policy_plan = Some((planned_at, next_due_at));
        }
    }

    pub fn mark_policies_sent(&self, host_id: i64, now: Millis) {
        if let Some(entry) = self.maps().by_id.get_mut(&host_id) {
            entry.policies_sent_at = Some(now);
        }
    }

    /// After a policy report is committed: plan again at the next check-in (from the new run history).
    pub fn policies_recorded(&self, host_id: i64) {
        if let Some(entry) = self.maps().by_id.get_mut(&host_id) {
            entry.policies_sent_at = None;
            entry.policy_plan = None;
            // The store clears it with the answers (see `Store::record_report`).
            entry.checkin.recheck_requested_at = None;
        }
    }

    pub fn mark_profiles_sent(&self, host_id: i64, now: Millis) {
        if let Some(entry) = self.maps().by_id.get_mut(&host_id) {
            entry.profiles_sent_at = Some(now);
        }
    }

    pub fn mark_vitals_sent(&self, host_id: i64, now: Millis) {
        if let Some(entry) = self.maps().by_id.get_mut(&host_id) {
            entry.vitals_sent_at = Some(now);
        }
    }

    /// Reflects a vitals write that the store just committed (the same rule as `Store::record_vitals`).
    pub fn vitals_recorded(&self, host_id: i64, requested_at: Millis, now: Millis, platform: Option<&str>) {
        if let Some(entry) = self.maps().by_id.get_mut(&host_id) {
            entry.checkin.detail_updated_at = Some(now);
            if entry.checkin.refetch_requested_at.is_some_and(|at| at <= requested_at) {
                entry.checkin.refetch_requested_at = None;
            }
            if let Some(platform) = platform {
                entry.checkin.platform = platform.to_string();
            }
            entry.vitals_sent_at = None;
        }
    }

    pub fn len(&self) -> usize {
        self.maps().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkin(id: i64, key: &str) -> HostCheckin {
        HostCheckin {
            id,
            node_key_hash: key.into(),
            orbit_node_key_hash: None,
            team_id: None,
            platform: "ubuntu".into(),
            platform_like: String::new(),
            detail_updated_at: None,
            refetch_requested_at: Some(50),
            recheck_requested_at: None,
            migration_window_until: None,
            created_at: 0,
            pending_scripts: false,
            profiles_enabled: false,
            pending_profiles: false,
            profiles_verifying: false,
            label_ids: Default::default(),
        }
    }

    /// A row read before a change whose eviction has already run (the change feed got there first) is not
    /// cached: nothing would ever evict it.
    #[test]
    fn a_row_read_before_an_eviction_is_not_cached() {
        let cache = HostCache::default();
        let mark = cache.eviction_mark();
        cache.evict(7); // the change feed, between the read and the insert
        let entry = cache.insert_unless_evicted_since(checkin(7, "stale"), mark);
        assert_eq!(entry.checkin.node_key_hash, "stale", "the caller still gets the row");
        assert!(cache.by_node_key("stale").is_none());
        let mark = cache.eviction_mark();
        cache.insert_unless_evicted_since(checkin(7, "fresh"), mark);
        assert_eq!(cache.by_node_key("fresh").unwrap().checkin.id, 7);
    }

    /// A re-read skipped because some other host was evicted meanwhile keeps what this host was handed
    /// (so its awaited answers are not handed out again), and leaves the cached entry to be confirmed again.
    #[test]
    fn a_skipped_reread_keeps_what_was_handed_out() {
        let cache = HostCache::default();
        cache.insert(checkin(7, "k"));
        cache.mark_policies_sent(7, 100);
        let mark = cache.eviction_mark();
        cache.evict(8);
        let mut reread = checkin(7, "k");
        reread.detail_updated_at = Some(90);
        let entry = cache.insert_unless_evicted_since(reread, mark);
        assert_eq!(entry.policies_sent_at, Some(100));
        assert_eq!(entry.checkin.detail_updated_at, Some(90), "the caller gets the row it read");
        assert_eq!(cache.by_node_key("k").unwrap().checkin.detail_updated_at, None, "not cached");
    }

    #[test]
    fn reenrolled_host_loses_its_old_key() {
        let cache = HostCache::default();
        cache.insert(checkin(1, "old"));
        cache.mark_vitals_sent(1, 10);
        cache.insert(checkin(1, "new"));
        assert!(cache.by_node_key("old").is_none());
        assert_eq!(cache.by_node_key("new").unwrap().vitals_sent_at, Some(10));
        cache.evict(1);
        assert!(cache.by_node_key("new").is_none());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn vitals_clear_only_older_refetch() {
        let cache = HostCache::default();
        cache.insert(checkin(1, "k"));
        cache.vitals_recorded(1, 40, 100, Some("darwin"));
        let entry = cache.by_node_key("k").unwrap();
        assert_eq!(entry.checkin.refetch_requested_at, Some(50));
        assert_eq!(entry.checkin.platform, "darwin");
        cache.vitals_recorded(1, 60, 110, None);
        assert_eq!(cache.by_node_key("k").unwrap().checkin.refetch_requested_at, None);
    }

    /// fleetd's orbit and osqueryd name one host with two keys: each finds it, neither finds it for the
    /// other's lookup, and a new orbit key (orbit enrolled again) or an eviction forgets the old one.
    #[test]
    fn orbit_keys_name_the_same_host() {
        let cache = HostCache::default();
        let mut both = checkin(3, "osquery");
        both.orbit_node_key_hash = Some("orbit".into());
        cache.insert(both.clone());
        assert_eq!(cache.by_orbit_node_key("orbit").unwrap().checkin.id, 3);
        assert_eq!(cache.by_node_key("osquery").unwrap().checkin.id, 3);
        assert!(cache.by_node_key("orbit").is_none() && cache.by_orbit_node_key("osquery").is_none());
        both.orbit_node_key_hash = Some("orbit-again".into());
        cache.insert(both);
        assert!(cache.by_orbit_node_key("orbit").is_none());
        assert_eq!(cache.by_orbit_node_key("orbit-again").unwrap().checkin.id, 3);
        // Orbit enrolled first: no osquery key yet.
        let mut orbit_only = checkin(4, "");
        orbit_only.orbit_node_key_hash = Some("orbit-4".into());
        cache.insert(orbit_only);
        assert!(cache.by_node_key("").is_none());
        cache.evict(3);
        cache.evict(4);
        assert!(cache.by_orbit_node_key("orbit-again").is_none() && cache.by_orbit_node_key("orbit-4").is_none());
        assert_eq!(cache.len(), 0);
    }
}
