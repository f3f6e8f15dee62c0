//! What one look at the deferred runs does, decided from the schedule and what the host says now (who is
//! there, which blocking apps run) with `herd_core::deferral`'s rules. No IO: `tick` gathers the inputs and
//! applies the plan.

use super::{Entry, Notice, NoticeChoice, Notices, notice};
use herd_core::Millis;
use herd_core::deferral::{Decision, DeferOption, HostNow, Tz, local_time};
use herd_proto::agent::{DeferralAgentStatus, DeferralTrigger};

/// Longest wait between looks at the deferred runs (blocking apps close, users log in).
pub const LOOK_EVERY_MS: Millis = 30_000;

/// What to tell the server about a deferred run (said once per change: see `Entry::reported`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusReport {
    pub execution_id: String,
    pub status: DeferralAgentStatus,
    pub reason: Option<String>,
}

impl StatusReport {
    /// What `Entry::reported` records once the server has it.
    pub fn said(&self) -> String {
        self.reason.clone().unwrap_or_else(|| self.status.as_str().to_string())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TickPlan {
    /// What local users should see now.
    pub notices: Notices,
    /// Runs to make now, and why.
    pub due: Vec<(String, DeferralTrigger)>,
    pub reports: Vec<StatusReport>,
    /// When to look again at the latest.
    pub wake: Millis,
}

/// Decides for every entry: prompt, wait (and say why), remind before a scheduled run, give notice at the
/// deadline, or run. `blocking[i]`: the blocking apps running now for `entries[i]`. Marks the entries it
/// gave notice or reminded for.
pub fn plan_tick(entries: &mut [Entry], blocking: &[Vec<String>], now: Millis, tz: Tz, user: bool) -> TickPlan {
    let mut plan =
        TickPlan { notices: Notices::default(), due: Vec::new(), reports: Vec::new(), wake: now + LOOK_EVERY_MS };
    for (i, entry) in entries.iter_mut().enumerate() {
        let id = entry.script.execution_id.clone();
        let Ok(rules) = entry.info.settings.rules() else {
            // Unreadable rules cannot hold a fix back.
            plan.due.push((id, DeferralTrigger::NoUser));
            continue;
        };
        let state = entry.info.state.core();
        let deadline = rules.deadline(&state, now);
        let notice_ms = entry.info.settings.notice_ms();
        if let Some(until) = entry.notice_until {
            if now >= until {
                plan.due.push((id, DeferralTrigger::Deadline));
            } else {
                plan.wake = plan.wake.min(until);
                plan.notices.deadline_notices.push(notice(entry, deadline, tz, Some(until)));
            }
            continue;
        }
        let blocking = blocking.get(i).map(Vec::as_slice).unwrap_or_default();
        let host = HostNow { now, tz, user_logged_in: user, blocking_process_running: !blocking.is_empty() };
        match rules.decide(&state, &host) {
            Decision::Run => {
                let trigger =
                    if state.scheduled_at.is_some() { DeferralTrigger::Scheduled } else { DeferralTrigger::NoUser };
                plan.due.push((id, trigger));
            }
            Decision::RunAfterNotice => {
                let until = now + notice_ms;
                entry.notice_until = Some(until);
                if notice_ms == 0 {
                    plan.due.push((id, DeferralTrigger::Deadline));
                } else {
                    plan.wake = plan.wake.min(until);
                    plan.notices.deadline_notices.push(notice(entry, deadline, tz, Some(until)));
                    let reason = format!("the deadline has come: the fix runs at {}", local_time(until, tz));
                    plan.reports.push(StatusReport {
                        execution_id: id,
                        status: DeferralAgentStatus::Waiting,
                        reason: Some(reason),
                    });
                }
            }
            Decision::Prompt { offered, deadline } => {
                if entry.reported.as_deref() != Some(DeferralAgentStatus::Prompting.as_str()) {
                    plan.reports.push(StatusReport {
                        execution_id: id,
                        status: DeferralAgentStatus::Prompting,
                        reason: None,
                    });
                }
                let mut prompt: Notice = notice(entry, deadline, tz, None);
                prompt.choices.push(NoticeChoice { choice: "now".into(), label: "Run now".into() });
                for (option, _) in offered {
                    let text = entry.info.settings.options.iter().find(|t| DeferOption::parse(t).ok() == Some(option));
                    if let Some(text) = text {
                        prompt.choices.push(NoticeChoice { choice: text.clone(), label: option.label() });
                    }
                }
                plan.notices.prompts.push(prompt);
                if let Some(deadline) = deadline {
                    plan.wake = plan.wake.min(deadline);
                }
            }
            Decision::Later => match state.scheduled_at {
                Some(at) => {
                    let remind_at = at - notice_ms;
                    if now >= remind_at {
                        plan.notices.reminders.push(notice(entry, deadline, tz, Some(at)));
                        entry.reminded_for = Some(at);
                    } else {
                        plan.wake = plan.wake.min(remind_at);
                    }
                    plan.wake = plan.wake.min(at);
                }
                None => {
                    let reason = if !user {
                        "nobody is logged in".to_string()
                    } else {
                        format!("waiting for {} to close", blocking.join(", "))
                    };
                    if entry.reported.as_deref() != Some(reason.as_str()) {
                        plan.reports.push(StatusReport {
                            execution_id: id,
                            status: DeferralAgentStatus::Waiting,
                            reason: Some(reason),
                        });
                    }
                    if let Some(deadline) = deadline {
                        plan.wake = plan.wake.min(deadline);
                    }
                }
            },
        }
    }
    plan
}

/// How long to wait for the next look: until `wake`, at least 200 ms, at most `LOOK_EVERY_MS`.
pub fn wait_ms(wake: Millis, now: Millis) -> Millis {
    (wake - now).clamp(200, LOOK_EVERY_MS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use herd_core::deferral::DeferralSettings;
    use herd_proto::agent::{DeferralInfo, DeferralProgress, PendingScript};

    const HOUR: Millis = 3_600_000;
    const NOW: Millis = 1_700_000_000_000;

    fn entry(settings: &str, state: DeferralProgress) -> Entry {
        let settings: DeferralSettings = serde_json::from_str(settings).unwrap();
        Entry {
            script: PendingScript {
                execution_id: "e1".into(),
                name: "fix.sh".into(),
                contents: "true".into(),
                timeout_s: None,
                policy_id: Some(1),
                policy_query: Some("SELECT 1".into()),
                policy_revision: Some(1),
                deferral: None,
            },
            info: DeferralInfo { settings, policy_name: "Disk".into(), org_name: "Acme".into(), state },
            reported: None,
            notice_until: None,
            reminded_for: None,
        }
    }

    const RULES: &str = r#"{"options": ["1h", "4h"], "max_deferrals": 2, "deadline_after": "1d",
        "notice_seconds": 300, "when_no_user": "wait"}"#;

    fn state(first_prompt_at: Option<Millis>, used: i64, scheduled_at: Option<Millis>) -> DeferralProgress {
        DeferralProgress { first_prompt_at, deferrals_used: used, scheduled_at }
    }

    /// What a plan says, in short: (due triggers, reports as status/reason, prompts' choices, reminders,
    /// deadline notices, wake - now).
    type Short = (Vec<DeferralTrigger>, Vec<String>, Vec<Vec<String>>, usize, usize, Millis);

    fn short(plan: &TickPlan) -> Short {
        (
            plan.due.iter().map(|(_, t)| *t).collect(),
            plan.reports
                .iter()
                .map(|r| format!("{}: {}", r.status.as_str(), r.reason.as_deref().unwrap_or("-")))
                .collect(),
            plan.notices.prompts.iter().map(|p| p.choices.iter().map(|c| c.choice.clone()).collect()).collect(),
            plan.notices.reminders.len(),
            plan.notices.deadline_notices.len(),
            plan.wake - NOW,
        )
    }

    #[test]
    fn tick_table() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // (what, entry, blocking apps, user present, plan in short)
        let cases: Vec<(&str, Entry, Vec<String>, bool, Short)> = vec![
            (
                "first look, someone there: prompt with every option, say so",
                entry(RULES, state(None, 0, None)),
                vec![],
                true,
                (vec![], s(&["prompting: -"]), vec![s(&["now", "1h", "4h"])], 0, 0, LOOK_EVERY_MS),
            ),
            (
                "prompting already said: not said again",
                Entry { reported: Some("prompting".into()), ..entry(RULES, state(Some(NOW - HOUR), 1, None)) },
                vec![],
                true,
                (vec![], s(&[]), vec![s(&["now", "1h", "4h"])], 0, 0, LOOK_EVERY_MS),
            ),
            (
                "no deferrals left: only now",
                entry(RULES, state(Some(NOW - HOUR), 2, None)),
                vec![],
                true,
                (vec![], s(&["prompting: -"]), vec![s(&["now"])], 0, 0, LOOK_EVERY_MS),
            ),
            (
                "a blocking app: wait, say why",
                entry(RULES, state(Some(NOW - HOUR), 0, None)),
                s(&["zoom"]),
                true,
                (vec![], s(&["waiting: waiting for zoom to close"]), vec![], 0, 0, LOOK_EVERY_MS),
            ),
            (
                "nobody logged in: wait, say why",
                entry(RULES, state(None, 0, None)),
                vec![],
                false,
                (vec![], s(&["waiting: nobody is logged in"]), vec![], 0, 0, LOOK_EVERY_MS),
            ),
            (
                "the same reason again: not said again",
                Entry { reported: Some("nobody is logged in".into()), ..entry(RULES, state(None, 0, None)) },
                vec![],
                false,
                (vec![], s(&[]), vec![], 0, 0, LOOK_EVERY_MS),
            ),
            (
                "nobody logged in, rules say run (the default)",
                entry(r#"{"options": ["1h"], "max_deferrals": 1}"#, state(None, 0, None)),
                vec![],
                false,
                (vec![DeferralTrigger::NoUser], s(&[]), vec![], 0, 0, LOOK_EVERY_MS),
            ),
            (
                "scheduled, far off: wake for the reminder",
                entry(RULES, state(Some(NOW), 1, Some(NOW + HOUR))),
                vec![],
                true,
                (vec![], s(&[]), vec![], 0, 0, LOOK_EVERY_MS),
            ),
            (
                "scheduled in 3 minutes: remind, wake at the time",
                entry(RULES, state(Some(NOW), 1, Some(NOW + 180_000))),
                vec![],
                true,
                (vec![], s(&[]), vec![], 1, 0, LOOK_EVERY_MS),
            ),
            (
                "scheduled time came: run",
                entry(RULES, state(Some(NOW - HOUR), 1, Some(NOW - 1))),
                vec![],
                true,
                (vec![DeferralTrigger::Scheduled], s(&[]), vec![], 0, 0, LOOK_EVERY_MS),
            ),
            (
                "deadline passed: notice, then run",
                entry(RULES, state(Some(NOW - 25 * HOUR), 1, None)),
                vec![],
                true,
                (vec![], s(&["waiting: the deadline has come: the fix runs at"]), vec![], 0, 1, LOOK_EVERY_MS),
            ),
            (
                "deadline passed, no notice period: run at once",
                entry(
                    r#"{"options": ["1h"], "max_deferrals": 1, "deadline_after": "1h", "notice_seconds": 0}"#,
                    state(Some(NOW - 2 * HOUR), 0, None),
                ),
                vec![],
                true,
                (vec![DeferralTrigger::Deadline], s(&[]), vec![], 0, 0, LOOK_EVERY_MS),
            ),
            (
                "the notice runs out: run",
                Entry { notice_until: Some(NOW - 1), ..entry(RULES, state(Some(NOW - 25 * HOUR), 1, None)) },
                vec![],
                true,
                (vec![DeferralTrigger::Deadline], s(&[]), vec![], 0, 0, LOOK_EVERY_MS),
            ),
            (
                "unreadable rules: run",
                entry(r#"{"options": ["1h"], "max_deferrals": 1, "deadline_at": "not a time"}"#, state(None, 0, None)),
                vec![],
                true,
                (vec![DeferralTrigger::NoUser], s(&[]), vec![], 0, 0, LOOK_EVERY_MS),
            ),
        ];
        for (what, entry, blocking, user, want) in cases {
            let mut entries = vec![entry];
            let mut got = short(&plan_tick(&mut entries, &[blocking], NOW, Tz::UTC, user));
            // The deadline notice names a local time: compare its start.
            for report in &mut got.1 {
                if let Some(cut) = report.find(" at ") {
                    report.truncate(cut + 3);
                }
            }
            let mut want = want;
            for report in &mut want.1 {
                if let Some(cut) = report.find(" at") {
                    report.truncate(cut + 3);
                }
            }
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn marks_what_it_gave_notice_or_reminded_for() {
        let mut entries = vec![
            entry(RULES, state(Some(NOW - 25 * HOUR), 1, None)),
            entry(RULES, state(Some(NOW), 1, Some(NOW + 60_000))),
        ];
        plan_tick(&mut entries, &[vec![], vec![]], NOW, Tz::UTC, true);
        assert_eq!(entries[0].notice_until, Some(NOW + 300_000));
        assert_eq!(entries[1].reminded_for, Some(NOW + 60_000));
    }

    #[test]
    fn waits_are_bounded() {
        for (wake, want) in
            [(NOW - 5, 200), (NOW + 50, 200), (NOW + 5_000, 5_000), (NOW + 10 * LOOK_EVERY_MS, LOOK_EVERY_MS)]
        {
            assert_eq!(wait_ms(wake, NOW), want, "{wake}");
        }
    }
}
