//! What one report of policy answers means: which answers count, which membership rows change, how the
//! pass/fail counts move, which automations fire. A pure function of what the store read in the report's
//! transaction (the policies as they are now, the host's prior answers and team), so every server decides
//! the same from the database's truth, whatever it has cached.

use crate::Millis;
use crate::policy::{PolicyResponse, count_delta};
use std::collections::HashMap;

/// Why a host sent a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportOrigin {
    /// Queries the server handed out (scheduled policies, vitals, a refetch).
    Scheduled,
    /// The agent's own re-check of the policies it just remediated: it confirms a fix, so continuous
    /// automations do not fire on it (the next scheduled failing result does).
    Recheck,
}

/// One answer as the host sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportedAnswer {
    pub policy_id: i64,
    /// The revision of the query the host ran, when its name said so (`fleet_policy_query_<id>_<revision>`);
    /// None: a query named by policy id only (older agents' own re-checks), taken as the current revision.
    pub revision: Option<i64>,
    pub response: PolicyResponse,
}

/// A policy as it is in the database at the report's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CurrentPolicy {
    pub revision: i64,
    /// None: a global policy.
    pub team_id: Option<i64>,
    /// Its script automation, if any: whether the user is asked first.
    pub script_deferrable: Option<bool>,
    pub automations_reset_at: Option<Millis>,
    /// Automations fire at every scheduled failing result, not only at a new failure.
    pub continuous: bool,
}

/// The host's stored answer to a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PriorAnswer {
    pub response: PolicyResponse,
    pub revision: i64,
    /// When this answer was first given (membership rows change only when the answer does).
    pub since: Millis,
}

/// What a failing answer asks of a policy's script automation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remediation {
    /// Run once per failure, then retry with backoff while it keeps failing (up to the retry limit).
    Retrying { failing_since: Millis },
    /// Continuous mode, at a scheduled failing result: run again (unless a run is still pending).
    Continuous,
    /// Continuous mode, at the agent's re-check: wait for the next scheduled result.
    AwaitSchedule,
}

/// Everything the report's meaning depends on, read in its transaction.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    pub host_team: Option<i64>,
    /// Policies whose label scope the host is outside of: their answers are ignored like another team's.
    pub out_of_label_scope: &'a std::collections::HashSet<i64>,
    pub origin: ReportOrigin,
    pub answers: &'a [ReportedAnswer],
    /// Current policies: at least those answered (a policy answered but missing here was deleted).
    pub policies: &'a HashMap<i64, CurrentPolicy>,
    /// The host's stored answers to those policies.
    pub prior: &'a HashMap<i64, PriorAnswer>,
    /// When the host last answered each policy (its run history), before this report.
    pub last_answered_at: &'a HashMap<i64, Millis>,
    pub now: Millis,
}

/// The effects of a report, for the store to apply in the same transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportDecision {
    /// Answers that count: (policy, revision), recorded in the host's run history.
    pub accepted: Vec<(i64, i64)>,
    /// Membership rows to write: (policy, answer, revision).
    pub membership: Vec<(i64, PolicyResponse, i64)>,
    /// Count deltas: (policy, revision, (passing, failing)).
    pub deltas: Vec<(i64, i64, (i64, i64))>,
    /// Policies whose automations fire (webhooks): newly failing, failing after a reset, or continuous.
    pub firing: Vec<i64>,
    /// Script automations to consider: (policy, how, whether the user is asked first).
    pub remediations: Vec<(i64, Remediation, bool)>,
    /// Policies the host passes again after failing: their deferred runs are cancelled.
    pub fixed: Vec<i64>,
    /// Answers ignored because they are to an older revision: (policy, current revision). The host ran a
    /// query edited since (handed out before the edit, or by a server that had not loaded it yet), so it
    /// must be asked the current one.
    pub stale: Vec<(i64, i64)>,
}

/// Decides a report. Answers to a deleted policy, to a revision that is no longer current, or to a team
/// policy of a team the host has left are ignored. A stored answer to an older revision counts as no answer
/// (its counts were voided with it).
pub fn decide(input: &ReportInput<'_>) -> ReportDecision {
    let mut out = ReportDecision::default();
    // In policy order (stable: of two answers to one policy the first counts), so every effect — rows
    // written, automations queued — is applied in the one order all writers use (deadlock-free).
    let mut answers: Vec<&ReportedAnswer> = input.answers.iter().collect();
    answers.sort_by_key(|a| a.policy_id);
    for answer in answers {
        let Some(policy) = input.policies.get(&answer.policy_id) else { continue };
        if answer.revision.is_some_and(|r| r != policy.revision) {
            out.stale.push((answer.policy_id, policy.revision));
            continue;
        }
        if policy.team_id.is_some() && policy.team_id != input.host_team {
            continue;
        }
        if input.out_of_label_scope.contains(&answer.policy_id) {
            continue;
        }
        if out.accepted.iter().any(|(id, _)| *id == answer.policy_id) {
            continue; // the same policy twice in one report: the first answer is the report's
        }
        let revision = policy.revision;
        out.accepted.push((answer.policy_id, revision));
        let prior = input.prior.get(&answer.policy_id).copied().filter(|p| p.revision == revision);
        let old_response = prior.map_or(PolicyResponse::NoAnswer, |p| p.response);
        let last_answer_at = input.last_answered_at.get(&answer.policy_id).copied();
        // The first answer after an automations reset: a failure that began before it counts as new.
        let reset = policy.automations_reset_at;
        let first_since_reset = reset.is_some_and(|at| last_answer_at.is_none_or(|last| last <= at));
        let scheduled = input.origin == ReportOrigin::Scheduled;
        let failing = answer.response == PolicyResponse::Fail;
        if failing && (old_response != PolicyResponse::Fail || first_since_reset || (policy.continuous && scheduled)) {
            out.firing.push(answer.policy_id);
        }
        if failing && let Some(deferrable) = policy.script_deferrable {
            // Failing since the answer turned to fail, or since the automations were reset, when that came later.
            let failing_since = match prior {
                Some(p) if p.response == PolicyResponse::Fail => p.since.max(reset.unwrap_or(Millis::MIN)),
                _ => input.now,
            };
            let mode = match (policy.continuous, input.origin) {
                (false, _) => Remediation::Retrying { failing_since },
                (true, ReportOrigin::Scheduled) => Remediation::Continuous,
                (true, ReportOrigin::Recheck) => Remediation::AwaitSchedule,
            };
            out.remediations.push((answer.policy_id, mode, deferrable));
        }
        if old_response == PolicyResponse::Fail && answer.response == PolicyResponse::Pass {
            out.fixed.push(answer.policy_id);
        }
        if prior.is_some_and(|p| p.response == answer.response) {
            continue;
        }
        out.membership.push((answer.policy_id, answer.response, revision));
        let delta = count_delta(old_response, answer.response);
        if delta != (0, 0) {
            out.deltas.push((answer.policy_id, revision, delta));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use PolicyResponse::{Fail, NoAnswer, Pass};

    const NOW: Millis = 1_000_000;

    fn policy(revision: i64) -> CurrentPolicy {
        CurrentPolicy {
            revision,
            team_id: None,
            script_deferrable: None,
            automations_reset_at: None,
            continuous: false,
        }
    }

    fn answer(policy_id: i64, revision: Option<i64>, response: PolicyResponse) -> ReportedAnswer {
        ReportedAnswer { policy_id, revision, response }
    }

    struct Case {
        policies: Vec<(i64, CurrentPolicy)>,
        prior: Vec<(i64, PriorAnswer)>,
        last: Vec<(i64, Millis)>,
        host_team: Option<i64>,
        out_of_scope: Vec<i64>,
        origin: ReportOrigin,
        answers: Vec<ReportedAnswer>,
    }

    impl Default for Case {
        fn default() -> Self {
            Case {
                policies: vec![(1, policy(1))],
                prior: vec![],
                last: vec![],
                host_team: None,
                out_of_scope: vec![],
                origin: ReportOrigin::Scheduled,
                answers: vec![],
            }
        }
    }

    fn run(case: Case) -> ReportDecision {
        let policies = case.policies.into_iter().collect();
        let prior = case.prior.into_iter().collect();
        let last = case.last.into_iter().collect();
        let out_of_scope = case.out_of_scope.into_iter().collect();
        decide(&ReportInput {
            host_team: case.host_team,
            out_of_label_scope: &out_of_scope,
            origin: case.origin,
            answers: &case.answers,
            policies: &policies,
            prior: &prior,
            last_answered_at: &last,
            now: NOW,
        })
    }

    fn prior(response: PolicyResponse, revision: i64, since: Millis) -> PriorAnswer {
        PriorAnswer { response, revision, since }
    }

    #[test]
    fn first_answers_write_membership_and_move_counts() {
        let d = run(Case { answers: vec![answer(1, Some(1), Fail)], ..Case::default() });
        assert_eq!(d.accepted, vec![(1, 1)]);
        assert_eq!(d.membership, vec![(1, Fail, 1)]);
        assert_eq!(d.deltas, vec![(1, 1, (0, 1))]);
        assert_eq!(d.firing, vec![1]);
        let d = run(Case { answers: vec![answer(1, None, Pass)], ..Case::default() });
        assert_eq!((d.membership, d.deltas, d.firing), (vec![(1, Pass, 1)], vec![(1, 1, (1, 0))], vec![]));
    }

    #[test]
    fn unchanged_answers_write_nothing_but_the_run() {
        let d = run(Case {
            prior: vec![(1, prior(Pass, 1, 5))],
            answers: vec![answer(1, Some(1), Pass)],
            ..Case::default()
        });
        assert_eq!(d.accepted, vec![(1, 1)]);
        assert!(d.membership.is_empty() && d.deltas.is_empty() && d.firing.is_empty());
    }

    #[test]
    fn ignored_answers() {
        // Deleted policy, stale revision, a team policy of another team.
        let d = run(Case {
            policies: vec![(1, policy(2)), (3, CurrentPolicy { team_id: Some(7), ..policy(1) })],
            host_team: Some(8),
            answers: vec![answer(1, Some(1), Fail), answer(2, Some(1), Fail), answer(3, Some(1), Fail)],
            ..Case::default()
        });
        assert_eq!(d, ReportDecision { stale: vec![(1, 2)], ..ReportDecision::default() });
        // A policy whose label scope the host is outside of (it left the label after the query went out).
        let d = run(Case { out_of_scope: vec![1], answers: vec![answer(1, Some(1), Fail)], ..Case::default() });
        assert_eq!(d, ReportDecision::default());
    }

    #[test]
    fn a_stored_answer_to_an_older_revision_counts_as_none() {
        let d = run(Case {
            policies: vec![(1, policy(3))],
            prior: vec![(1, prior(Fail, 2, 5))],
            answers: vec![answer(1, Some(3), Fail)],
            ..Case::default()
        });
        assert_eq!(d.membership, vec![(1, Fail, 3)]);
        assert_eq!(d.deltas, vec![(1, 3, (0, 1))]);
        assert_eq!(d.firing, vec![1], "a failure of the new query is new");
    }

    #[test]
    fn flips_move_counts_both_ways() {
        let d = run(Case {
            prior: vec![(1, prior(Fail, 1, 5))],
            answers: vec![answer(1, Some(1), Pass)],
            ..Case::default()
        });
        assert_eq!(d.deltas, vec![(1, 1, (1, -1))]);
        assert_eq!(d.fixed, vec![1]);
        let d = run(Case {
            prior: vec![(1, prior(Pass, 1, 5))],
            answers: vec![answer(1, Some(1), NoAnswer)],
            ..Case::default()
        });
        assert_eq!(d.deltas, vec![(1, 1, (-1, 0))]);
        assert_eq!(d.membership, vec![(1, NoAnswer, 1)]);
    }

    #[test]
    fn a_policy_answered_twice_counts_once() {
        let d = run(Case { answers: vec![answer(1, Some(1), Fail), answer(1, None, Pass)], ..Case::default() });
        assert_eq!(d.membership, vec![(1, Fail, 1)]);
        assert_eq!(d.deltas, vec![(1, 1, (0, 1))]);
    }

    #[test]
    fn automations_fire_on_new_failures_after_resets_and_continuously() {
        let still_failing = vec![(1, prior(Fail, 1, 5))];
        let d = run(Case { prior: still_failing.clone(), answers: vec![answer(1, Some(1), Fail)], ..Case::default() });
        assert!(d.firing.is_empty());
        let reset = CurrentPolicy { automations_reset_at: Some(100), ..policy(1) };
        let d = run(Case {
            policies: vec![(1, reset)],
            prior: still_failing.clone(),
            last: vec![(1, 50)],
            answers: vec![answer(1, Some(1), Fail)],
            ..Case::default()
        });
        assert_eq!(d.firing, vec![1], "first answer since the reset");
        let d = run(Case {
            policies: vec![(1, reset)],
            prior: still_failing.clone(),
            last: vec![(1, 150)],
            answers: vec![answer(1, Some(1), Fail)],
            ..Case::default()
        });
        assert!(d.firing.is_empty(), "already answered since the reset");
        let continuous = CurrentPolicy { continuous: true, ..policy(1) };
        let d = run(Case {
            policies: vec![(1, continuous)],
            prior: still_failing.clone(),
            answers: vec![answer(1, Some(1), Fail)],
            ..Case::default()
        });
        assert_eq!(d.firing, vec![1]);
        let d = run(Case {
            policies: vec![(1, continuous)],
            prior: still_failing,
            origin: ReportOrigin::Recheck,
            answers: vec![answer(1, Some(1), Fail)],
            ..Case::default()
        });
        assert!(d.firing.is_empty(), "a re-check does not fire a continuous automation");
    }

    #[test]
    fn remediation_modes() {
        let scripted = CurrentPolicy { script_deferrable: Some(false), automations_reset_at: Some(200), ..policy(1) };
        let d = run(Case {
            policies: vec![(1, scripted)],
            prior: vec![(1, prior(Fail, 1, 100))],
            answers: vec![answer(1, Some(1), Fail)],
            ..Case::default()
        });
        assert_eq!(d.remediations, vec![(1, Remediation::Retrying { failing_since: 200 }, false)]);
        let d = run(Case { policies: vec![(1, scripted)], answers: vec![answer(1, Some(1), Fail)], ..Case::default() });
        assert_eq!(d.remediations, vec![(1, Remediation::Retrying { failing_since: NOW }, false)]);
        let continuous = CurrentPolicy { script_deferrable: Some(true), continuous: true, ..policy(1) };
        let d =
            run(Case { policies: vec![(1, continuous)], answers: vec![answer(1, Some(1), Fail)], ..Case::default() });
        assert_eq!(d.remediations, vec![(1, Remediation::Continuous, true)]);
        let d = run(Case {
            policies: vec![(1, continuous)],
            origin: ReportOrigin::Recheck,
            answers: vec![answer(1, Some(1), Fail)],
            ..Case::default()
        });
        assert_eq!(d.remediations, vec![(1, Remediation::AwaitSchedule, true)]);
        let d = run(Case { policies: vec![(1, scripted)], answers: vec![answer(1, Some(1), Pass)], ..Case::default() });
        assert!(d.remediations.is_empty());
    }
}
