//! What a host must do at this check-in. Computed from in-memory state on every distributed/read, so it must
//! stay cheap and must not need the database.

use crate::jitter::stable_jitter_ms;
use crate::vitals::Vital;
use crate::{MINUTE_MS, Millis};

/// How long after handing out queries the server waits for their results before handing them out again.
/// Stops a host that polls every few seconds (accelerated) from getting the same queries on every poll.
pub const RESULTS_AWAITED_MS: Millis = 2 * MINUTE_MS;

/// `accelerate` seconds sent to hosts that have not reported vitals yet, so a new host fills in quickly.
pub const NEW_HOST_ACCELERATE_S: u32 = 60;

/// `accelerate` seconds sent with a re-check the server asked for, so its answers and what follows come fast.
pub const RECHECK_ACCELERATE_S: u32 = 60;

/// How long the server waits for a host's report of its installed profiles before asking again, while some
/// of its profiles await verification.
pub const PROFILES_REPORT_AWAITED_MS: Millis = 10 * crate::SECOND_MS;

/// What the server remembers about a host between check-ins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckinState {
    pub host_id: i64,
    /// When vitals were last ingested; None before the first report.
    pub vitals_updated_at: Option<Millis>,
    pub refetch_requested: bool,
    /// The host's remediations finished: the policies they fixed are due now (their runs were dropped).
    pub recheck_requested: bool,
    /// Set when vitals were handed out and results are awaited (in memory only).
    pub vitals_sent_at: Option<Millis>,
    /// The host's last policy plan: when it was made, and when its next policy comes due then (None: no
    /// policy in scope). None: never planned on this server.
    pub policy_plan: Option<(Millis, Option<Millis>)>,
    /// Set when policies were handed out and results are awaited.
    pub policies_sent_at: Option<Millis>,
    /// A migration's critical window is open until then: only the management status is asked, accelerated.
    pub migration_window_until: Option<Millis>,
    /// The host's agent applies profiles: its installed profiles are asked with the vitals.
    pub profiles_enabled: bool,
    /// Acknowledged profiles await the host's report: it is asked at once (and every
    /// `PROFILES_REPORT_AWAITED_MS` while they do).
    pub profiles_verifying: bool,
    /// When the installed profiles were last asked for (in memory only).
    pub profiles_sent_at: Option<Millis>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DueSettings {
    pub vitals_interval_ms: Millis,
    /// When the policy set last changed (created, edited, deleted): plans older than this are stale.
    pub policies_changed_at: Millis,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DueWork {
    pub vitals: Vec<Vital>,
    /// Some policy may be due: plan the host's policies (which needs its run history).
    pub plan_policies: bool,
    pub accelerate_s: Option<u32>,
    /// Ask whether another management system manages the host (with the vitals, and at every check-in of a
    /// migration's critical window).
    pub management_check: bool,
    /// Ask for the installed profiles (`herd_profiles`).
    pub profiles_check: bool,
}

impl DueWork {
    pub fn is_empty(&self) -> bool {
        self.vitals.is_empty()
            && !self.plan_policies
            && self.accelerate_s.is_none()
            && !self.management_check
            && !self.profiles_check
    }
}

/// Whether the host's policies must be planned now. Cheap: no run history needed, only the last plan.
pub fn policies_need_planning(state: &CheckinState, settings: &DueSettings, now: Millis) -> bool {
    if state.policies_sent_at.is_some_and(|sent| now - sent < RESULTS_AWAITED_MS) {
        return false;
    }
    if state.refetch_requested || state.recheck_requested {
        return true;
    }
    match state.policy_plan {
        None => true,
        Some((planned_at, next_due_at)) => {
            planned_at < settings.policies_changed_at || next_due_at.is_some_and(|at| now >= at)
        }
    }
}

pub fn vitals_due(state: &CheckinState, settings: &DueSettings, now: Millis) -> bool {
    let awaiting = state.vitals_sent_at.is_some_and(|sent| now - sent < RESULTS_AWAITED_MS);
    if awaiting {
        return false;
    }
    if state.refetch_requested {
        return true;
    }
    match state.vitals_updated_at {
        None => true,
        Some(updated) => {
            let interval = settings.vitals_interval_ms;
            now >= updated + interval + stable_jitter_ms(state.host_id, "vitals", interval)
        }
    }
}

pub fn due_work(state: &CheckinState, settings: &DueSettings, now: Millis) -> DueWork {
    if let Some(until) = state.migration_window_until.filter(|until| now < *until) {
        // The critical window: nothing but the management status, as often as the host can be made to ask.
        let left_s = ((until - now) / 1000).clamp(1, u32::MAX as Millis) as u32;
        return DueWork {
            vitals: Vec::new(),
            plan_policies: false,
            accelerate_s: Some(left_s),
            management_check: true,
            profiles_check: false,
        };
    }
    let vitals = if vitals_due(state, settings, now) { Vital::ALL.to_vec() } else { Vec::new() };
    let plan_policies = policies_need_planning(state, settings, now);
    let accelerate_s = if state.vitals_updated_at.is_none() && !vitals.is_empty() {
        Some(NEW_HOST_ACCELERATE_S)
    } else if state.recheck_requested && plan_policies {
        Some(RECHECK_ACCELERATE_S)
    } else {
        None
    };
    let management_check = !vitals.is_empty();
    let profiles_awaited = state.profiles_sent_at.is_some_and(|sent| now - sent < PROFILES_REPORT_AWAITED_MS);
    let profiles_check =
        state.profiles_enabled && (!vitals.is_empty() || (state.profiles_verifying && !profiles_awaited));
    DueWork { vitals, plan_policies, accelerate_s, management_check, profiles_check }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HOUR_MS;

    const SETTINGS: DueSettings = DueSettings { vitals_interval_ms: HOUR_MS, policies_changed_at: 0 };

    fn state(updated: Option<Millis>, refetch: bool, sent: Option<Millis>) -> CheckinState {
        CheckinState {
            host_id: 42,
            vitals_updated_at: updated,
            refetch_requested: refetch,
            recheck_requested: false,
            vitals_sent_at: sent,
            // Planned long ago with nothing in scope: these cases are about vitals.
            policy_plan: Some((1, None)),
            policies_sent_at: None,
            migration_window_until: None,
            profiles_enabled: false,
            profiles_verifying: false,
            profiles_sent_at: None,
        }
    }

    #[test]
    fn policy_planning_table() {
        let now = 1_000 * HOUR_MS;
        let settings = DueSettings { vitals_interval_ms: HOUR_MS, policies_changed_at: now - HOUR_MS };
        let with = |plan: Option<(Millis, Option<Millis>)>, refetch: bool, sent: Option<Millis>| CheckinState {
            policy_plan: plan,
            refetch_requested: refetch,
            policies_sent_at: sent,
            ..state(Some(now), false, None)
        };
        let cases: &[(&str, CheckinState, bool)] = &[
            ("never planned", with(None, false, None), true),
            ("planned, next not yet due", with(Some((now - MINUTE_MS, Some(now + MINUTE_MS))), false, None), false),
            ("planned, next due now", with(Some((now - MINUTE_MS, Some(now))), false, None), true),
            ("nothing in scope", with(Some((now - MINUTE_MS, None)), false, None), false),
            ("policies changed since the plan", with(Some((now - 2 * HOUR_MS, None)), false, None), true),
            ("refetch", with(Some((now - MINUTE_MS, None)), true, None), true),
            ("results awaited", with(None, true, Some(now - MINUTE_MS)), false),
            ("results lost", with(Some((now - 5 * MINUTE_MS, None)), true, Some(now - 3 * MINUTE_MS)), true),
            (
                "re-check after remediation",
                CheckinState { recheck_requested: true, ..with(Some((now - MINUTE_MS, None)), false, None) },
                true,
            ),
            (
                "re-check handed out, results awaited",
                CheckinState { recheck_requested: true, ..with(None, false, Some(now - MINUTE_MS)) },
                false,
            ),
        ];
        for (what, s, want) in cases {
            assert_eq!(policies_need_planning(s, &settings, now), *want, "{what}");
        }
    }

    #[test]
    fn vitals_due_table() {
        let now = 1_000 * HOUR_MS;
        let jitter = stable_jitter_ms(42, "vitals", HOUR_MS);
        let cases: &[(&str, CheckinState, bool)] = &[
            ("never reported", state(None, false, None), true),
            ("fresh", state(Some(now - 10 * MINUTE_MS), false, None), false),
            ("just before interval + jitter", state(Some(now - HOUR_MS - jitter + 1), false, None), false),
            ("at interval + jitter", state(Some(now - HOUR_MS - jitter), false, None), true),
            ("refetch overrides freshness", state(Some(now - MINUTE_MS), true, None), true),
            ("sent a minute ago, awaiting", state(None, true, Some(now - MINUTE_MS)), false),
            ("sent long ago, results lost", state(None, false, Some(now - 3 * MINUTE_MS)), true),
        ];
        for (what, s, want) in cases {
            assert_eq!(vitals_due(s, &SETTINGS, now), *want, "{what}");
        }
    }

    #[test]
    fn new_hosts_are_accelerated() {
        let now = 1_000 * HOUR_MS;
        let work = due_work(&state(None, false, None), &SETTINGS, now);
        assert_eq!(work.vitals.len(), Vital::ALL.len());
        assert_eq!(work.accelerate_s, Some(NEW_HOST_ACCELERATE_S));
        let known = due_work(&state(Some(now - 2 * HOUR_MS), false, None), &SETTINGS, now);
        assert_eq!(known.accelerate_s, None);
        assert!(!known.is_empty());
        assert!(due_work(&state(Some(now), false, None), &SETTINGS, now).is_empty());
    }

    #[test]
    fn rechecks_are_accelerated_when_handed_out() {
        let now = 1_000 * HOUR_MS;
        let recheck = CheckinState { recheck_requested: true, ..state(Some(now), false, None) };
        let work = due_work(&recheck, &SETTINGS, now);
        assert!(work.plan_policies && work.vitals.is_empty());
        assert_eq!(work.accelerate_s, Some(RECHECK_ACCELERATE_S));
        let awaited = CheckinState { policies_sent_at: Some(now - MINUTE_MS), ..recheck };
        assert!(due_work(&awaited, &SETTINGS, now).is_empty(), "nothing new while its answers are awaited");
    }

    #[test]
    fn a_migration_window_asks_only_the_management_status() {
        let now = 1_000 * HOUR_MS;
        let open = CheckinState { migration_window_until: Some(now + 90_000), ..state(None, true, None) };
        let work = due_work(&open, &SETTINGS, now);
        assert!(work.management_check && work.vitals.is_empty() && !work.plan_policies, "{work:?}");
        assert_eq!(work.accelerate_s, Some(90));
        let closed = CheckinState { migration_window_until: Some(now), ..state(Some(now), false, None) };
        assert!(due_work(&closed, &SETTINGS, now).is_empty(), "a closed window asks nothing");
        let hourly = due_work(&state(Some(now - 2 * HOUR_MS), false, None), &SETTINGS, now);
        assert!(hourly.management_check, "asked with the vitals");
    }

    #[test]
    fn installed_profiles_are_asked_with_the_vitals_and_while_awaiting_verification() {
        let now = 1_000 * HOUR_MS;
        let agent = CheckinState { profiles_enabled: true, ..state(Some(now), false, None) };
        let cases: &[(&str, CheckinState, bool)] = &[
            ("nothing due", agent.clone(), false),
            ("with the vitals", CheckinState { vitals_updated_at: Some(now - 2 * HOUR_MS), ..agent.clone() }, true),
            ("awaiting verification", CheckinState { profiles_verifying: true, ..agent.clone() }, true),
            (
                "asked a moment ago",
                CheckinState { profiles_verifying: true, profiles_sent_at: Some(now - 1_000), ..agent.clone() },
                false,
            ),
            (
                "asked, no answer for a while",
                CheckinState {
                    profiles_verifying: true,
                    profiles_sent_at: Some(now - PROFILES_REPORT_AWAITED_MS),
                    ..agent.clone()
                },
                true,
            ),
            (
                "not herd-agent (osqueryd)",
                CheckinState { vitals_updated_at: Some(now - 2 * HOUR_MS), profiles_enabled: false, ..agent.clone() },
                false,
            ),
        ];
        for (what, state, want) in cases {
            assert_eq!(due_work(state, &SETTINGS, now).profiles_check, *want, "{what}");
        }
    }
}

/// A policy as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledPolicy {
    pub id: i64,
    /// None: a global policy (every host); Some: that team's hosts only.
    pub team_id: Option<i64>,
    pub platforms: crate::policy::PolicyPlatforms,
    /// The policy's own interval, or the global default when it has none.
    pub interval_ms: Millis,
    /// Bumped whenever the query, platform or label scope changes: an answer to an older revision does not
    /// count.
    pub revision: i64,
    /// Which hosts, by label (empty: all of the team's and platform's).
    pub labels: crate::labels::LabelScope,
}

/// A dynamic label as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledLabel {
    pub id: i64,
    /// Fleet's label platform: "" (every host), a family (`darwin`, `windows`, `linux`) or an osquery platform
    /// (`ubuntu`, `centos`).
    pub platform: String,
}

impl ScheduledLabel {
    pub fn applies_to(&self, host: &HostScope) -> bool {
        self.platform.is_empty()
            || host.family.is_some_and(|f| f.as_str() == self.platform)
            || host.platform.eq_ignore_ascii_case(&self.platform)
    }
}

/// The host a plan is made for.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostScope {
    pub host_id: i64,
    pub team_id: Option<i64>,
    pub family: Option<crate::platform::PlatformFamily>,
    /// osquery's `os_version.platform` (`ubuntu`, `darwin`...).
    pub platform: String,
    /// The labels the host is a member of.
    pub labels: std::collections::BTreeSet<i64>,
}

/// When a host last ran one policy, and which revision of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyRun {
    pub ran_at: Millis,
    pub revision: i64,
}

impl ScheduledPolicy {
    pub fn in_scope(&self, host: &HostScope) -> bool {
        (self.team_id.is_none() || self.team_id == host.team_id)
            && self.platforms.applies_to(host.family)
            && self.labels.admits(|label| host.labels.contains(&label))
    }
}

/// Which policies a host must run now, and when the next one of the others comes due.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyPlan {
    pub due: Vec<i64>,
    /// The earliest moment a policy that is not due now becomes due (None: nothing else in scope).
    pub next_due_at: Option<Millis>,
}

/// A policy is due on a host in its scope when the host never ran it, ran an older revision (query or
/// platform edited since), ran it longer ago than its interval plus the host's stable jitter, or when the
/// host has a refetch pending.
pub fn plan_policies(
    host: &HostScope,
    policies: &[ScheduledPolicy],
    runs: &std::collections::HashMap<i64, PolicyRun>,
    refetch_requested: bool,
    now: Millis,
) -> PolicyPlan {
    let mut plan = PolicyPlan::default();
    for policy in policies.iter().filter(|p| p.in_scope(host)) {
        let next = match runs.get(&policy.id) {
            Some(run) if run.revision == policy.revision => {
                Some(run.ran_at + policy.interval_ms + stable_jitter_ms(host.host_id, "policies", policy.interval_ms))
            }
            _ => None,
        };
        match next {
            Some(at) if !refetch_requested && now < at => {
                plan.next_due_at = Some(plan.next_due_at.map_or(at, |n: Millis| n.min(at)));
            }
            _ => plan.due.push(policy.id),
        }
    }
    plan
}

/// The run-history key of a dynamic label: labels share the host's run history with policies under negative
/// ids (see `herd_store::label_run_key`).
pub fn label_run_key(label_id: i64) -> i64 {
    -label_id
}

/// Which dynamic labels a host must answer now: those that apply to it and that it never answered, answered
/// longer ago than the label interval plus its stable jitter, or all of them on a refetch. `next_due_at`: when
/// the next of the others comes due.
pub fn plan_labels(
    host: &HostScope,
    labels: &[ScheduledLabel],
    runs: &std::collections::HashMap<i64, PolicyRun>,
    refetch_requested: bool,
    interval_ms: Millis,
    now: Millis,
) -> PolicyPlan {
    let mut plan = PolicyPlan::default();
    for label in labels.iter().filter(|l| l.applies_to(host)) {
        let next = runs
            .get(&label_run_key(label.id))
            .map(|run| run.ran_at + interval_ms + stable_jitter_ms(host.host_id, "labels", interval_ms));
        match next {
            Some(at) if !refetch_requested && now < at => {
                plan.next_due_at = Some(plan.next_due_at.map_or(at, |n: Millis| n.min(at)));
            }
            _ => plan.due.push(label.id),
        }
    }
    plan
}

#[cfg(test)]
mod policy_tests {
    use super::*;
    use crate::platform::PlatformFamily::{Darwin, Linux};
    use crate::policy::PolicyPlatforms;
    use crate::{HOUR_MS, MINUTE_MS};
    use std::collections::HashMap;

    fn policy(id: i64, team: Option<i64>, platforms: &str, interval: Millis, revision: i64) -> ScheduledPolicy {
        ScheduledPolicy {
            id,
            team_id: team,
            platforms: PolicyPlatforms::parse(platforms).unwrap(),
            interval_ms: interval,
            revision,
            labels: crate::labels::LabelScope::default(),
        }
    }

    #[test]
    fn scope_and_schedule_table() {
        let now = 1_000 * HOUR_MS;
        let host = HostScope { host_id: 7, team_id: Some(1), family: Some(Linux), ..HostScope::default() };
        let jitter = |interval| stable_jitter_ms(7, "policies", interval);
        let policies = vec![
            policy(1, None, "", HOUR_MS, 1),         // global, all platforms
            policy(2, Some(1), "linux", HOUR_MS, 1), // this team, linux
            policy(3, Some(2), "", HOUR_MS, 1),      // another team: out of scope
            policy(4, None, "darwin", HOUR_MS, 1),   // wrong platform: out of scope
            policy(5, None, "", 5 * MINUTE_MS, 3),   // short interval, revision 3
        ];
        let run = |ago: Millis, revision| PolicyRun { ran_at: now - ago, revision };
        struct Case {
            what: &'static str,
            runs: Vec<(i64, PolicyRun)>,
            refetch: bool,
            due: Vec<i64>,
            next: Option<Millis>,
        }
        let cases = vec![
            Case {
                what: "never ran: everything in scope",
                runs: vec![],
                refetch: false,
                due: vec![1, 2, 5],
                next: None,
            },
            Case {
                what: "all fresh",
                runs: vec![(1, run(MINUTE_MS, 1)), (2, run(MINUTE_MS, 1)), (5, run(MINUTE_MS, 3))],
                refetch: false,
                due: vec![],
                next: Some(now - MINUTE_MS + 5 * MINUTE_MS + jitter(5 * MINUTE_MS)),
            },
            Case {
                what: "short interval elapsed, long ones not",
                runs: vec![(1, run(10 * MINUTE_MS, 1)), (2, run(10 * MINUTE_MS, 1)), (5, run(10 * MINUTE_MS, 3))],
                refetch: false,
                due: vec![5],
                next: Some(now - 10 * MINUTE_MS + HOUR_MS + jitter(HOUR_MS)),
            },
            Case {
                what: "edited policy (older revision) is due at once",
                runs: vec![(1, run(MINUTE_MS, 1)), (2, run(MINUTE_MS, 1)), (5, run(MINUTE_MS, 2))],
                refetch: false,
                due: vec![5],
                next: Some(now - MINUTE_MS + HOUR_MS + jitter(HOUR_MS)),
            },
            Case {
                what: "refetch: everything in scope",
                runs: vec![(1, run(MINUTE_MS, 1)), (2, run(MINUTE_MS, 1)), (5, run(MINUTE_MS, 3))],
                refetch: true,
                due: vec![1, 2, 5],
                next: None,
            },
            Case {
                what: "interval plus jitter exactly elapsed",
                runs: vec![(1, run(HOUR_MS + jitter(HOUR_MS), 1)), (2, run(0, 1)), (5, run(0, 3))],
                refetch: false,
                due: vec![1],
                next: Some(now + 5 * MINUTE_MS + jitter(5 * MINUTE_MS)),
            },
        ];
        for case in cases {
            let runs: HashMap<i64, PolicyRun> = case.runs.into_iter().collect();
            let plan = plan_policies(&host, &policies, &runs, case.refetch, now);
            assert_eq!(plan.due, case.due, "{}", case.what);
            assert_eq!(plan.next_due_at, case.next, "{}", case.what);
        }
    }

    #[test]
    fn unknown_platform_runs_only_all_platform_policies() {
        let host = HostScope { host_id: 1, team_id: None, family: None, ..HostScope::default() };
        let policies = vec![policy(1, None, "", HOUR_MS, 1), policy(2, None, "linux", HOUR_MS, 1)];
        assert_eq!(plan_policies(&host, &policies, &HashMap::new(), false, 0).due, vec![1]);
        let mac = HostScope { host_id: 1, team_id: None, family: Some(Darwin), ..HostScope::default() };
        assert_eq!(plan_policies(&mac, &policies, &HashMap::new(), false, 0).due, vec![1]);
    }

    #[test]
    fn label_scopes_and_label_schedule() {
        use crate::labels::LabelScope;
        let now = 1_000 * HOUR_MS;
        let host = HostScope {
            host_id: 3,
            family: Some(Linux),
            platform: "ubuntu".into(),
            labels: [10].into_iter().collect(),
            ..HostScope::default()
        };
        let scoped = |id, scope: LabelScope| ScheduledPolicy { labels: scope, ..policy(id, None, "", HOUR_MS, 1) };
        let policies = vec![
            scoped(1, LabelScope { include_any: vec![10, 11], ..LabelScope::default() }),
            scoped(2, LabelScope { include_any: vec![11], ..LabelScope::default() }),
            scoped(3, LabelScope { exclude_any: vec![10], ..LabelScope::default() }),
            scoped(4, LabelScope::default()),
        ];
        assert_eq!(plan_policies(&host, &policies, &HashMap::new(), false, 0).due, vec![1, 4]);

        let label = |id, platform: &str| ScheduledLabel { id, platform: platform.into() };
        let labels = vec![label(1, ""), label(2, "linux"), label(3, "ubuntu"), label(4, "darwin"), label(5, "")];
        let jitter = stable_jitter_ms(3, "labels", HOUR_MS);
        let runs: HashMap<i64, PolicyRun> = [
            (label_run_key(1), PolicyRun { ran_at: now - MINUTE_MS, revision: 0 }),
            (label_run_key(2), PolicyRun { ran_at: now - 2 * HOUR_MS, revision: 0 }),
            // A policy's run with the same id is not a label's.
            (5, PolicyRun { ran_at: now, revision: 1 }),
        ]
        .into_iter()
        .collect();
        let plan = plan_labels(&host, &labels, &runs, false, HOUR_MS, now);
        assert_eq!(plan.due, vec![2, 3, 5]);
        assert_eq!(plan.next_due_at, Some(now - MINUTE_MS + HOUR_MS + jitter));
        assert_eq!(plan_labels(&host, &labels, &runs, true, HOUR_MS, now).due, vec![1, 2, 3, 5]);
    }
}
