//! User deferral of a disruptive remediation (seed 003): when a policy's automation fires on a host whose
//! script is deferrable, the user is prompted instead; they run it now or pick an option, within the deferrals
//! left and never past the deadline (the earlier of `deadline_at` and first prompt + `deadline_after`). A
//! blocking process postpones the prompt quietly, never the deadline; at the deadline the script runs after a
//! short notice. Pure rules: the agent and the server feed them the clock, the host's time zone and what is
//! running, and keep the state.

use crate::{DAY_MS, HOUR_MS, MINUTE_MS, Millis};
use chrono::{Days, LocalResult, NaiveTime, TimeZone};
pub use chrono_tz::Tz;

mod settings;
pub use settings::*;

/// One choice the user may be offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeferOption {
    /// Run this long from now ("30m", "1h", "4h", "1d").
    For(Millis),
    /// Run at this local time tomorrow in the host's time zone ("tomorrow 09:00").
    TomorrowAt { hour: u32, minute: u32 },
}

impl DeferOption {
    /// How the option reads to a person ("1 hour", "2 days", "tomorrow at 09:00").
    pub fn label(self) -> String {
        match self {
            DeferOption::TomorrowAt { hour, minute } => format!("tomorrow at {hour:02}:{minute:02}"),
            DeferOption::For(ms) => {
                let (count, unit) = if ms % DAY_MS == 0 {
                    (ms / DAY_MS, "day")
                } else if ms % HOUR_MS == 0 {
                    (ms / HOUR_MS, "hour")
                } else if ms % MINUTE_MS == 0 {
                    (ms / MINUTE_MS, "minute")
                } else {
                    (ms / crate::SECOND_MS, "second")
                };
                format!("{count} {unit}{}", if count == 1 { "" } else { "s" })
            }
        }
    }

    /// Parses "30m", "4h", "1d" or "tomorrow HH:MM"; durations must be positive.
    pub fn parse(text: &str) -> Result<DeferOption, String> {
        let text = text.trim();
        if let Some(time) = text.strip_prefix("tomorrow ") {
            let parsed = NaiveTime::parse_from_str(time.trim(), "%H:%M")
                .map_err(|_| format!("{text:?}: expected \"tomorrow HH:MM\""))?;
            use chrono::Timelike;
            return Ok(DeferOption::TomorrowAt { hour: parsed.hour(), minute: parsed.minute() });
        }
        let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
        let count: i64 = number.parse().map_err(|_| format!("{text:?}: expected a duration like 30m, 4h or 1d"))?;
        let unit_ms = match unit {
            // Seconds are for trying a policy out (and for tests); real deferrals are minutes and more.
            "s" => crate::SECOND_MS,
            "m" => MINUTE_MS,
            "h" => HOUR_MS,
            "d" => DAY_MS,
            _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
        };
        if count <= 0 {
            return Err(format!("{text:?}: must be longer than zero"));
        }
        count.checked_mul(unit_ms).map(DeferOption::For).ok_or_else(|| format!("{text:?}: too long"))
    }

    /// When the script runs if the user picks this option at `now` on a host in `tz`. "Tomorrow 09:00" is the
    /// wall-clock time in the host's zone: across a DST change the interval is 23 or 25 hours; a time that does
    /// not exist that day (spring forward) moves to the first minute that does, an ambiguous one (fall back)
    /// takes the earlier instant.
    pub fn resolve(self, now: Millis, tz: Tz) -> Millis {
        match self {
            DeferOption::For(ms) => now.saturating_add(ms),
            DeferOption::TomorrowAt { hour, minute } => {
                let local_now = tz.timestamp_millis_opt(now).single().expect("a UTC instant maps to one local time");
                let tomorrow = local_now.date_naive().checked_add_days(Days::new(1)).expect("a date after today");
                let time = NaiveTime::from_hms_opt(hour, minute, 0).expect("validated on parse");
                let mut wall = tomorrow.and_time(time);
                // A gap in the clock is at most a few hours: walk forward to the first local time that exists.
                for _ in 0..(24 * 60) {
                    match tz.from_local_datetime(&wall) {
                        LocalResult::Single(t) => return t.timestamp_millis(),
                        LocalResult::Ambiguous(earlier, _) => return earlier.timestamp_millis(),
                        LocalResult::None => wall += chrono::Duration::minutes(1),
                    }
                }
                now.saturating_add(DAY_MS)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WhenNoUser {
    /// Nobody to ask (and nobody to disturb): run at once.
    #[default]
    Run,
    /// Wait until someone logs in (the deadline still holds).
    Wait,
}

/// An admin's deferral settings for one policy's script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeferralRules {
    pub options: Vec<DeferOption>,
    pub max_deferrals: u32,
    /// Floating deadline: counted from the first prompt on the host.
    pub deadline_after: Option<Millis>,
    /// Absolute deadline.
    pub deadline_at: Option<Millis>,
    pub when_no_user: WhenNoUser,
}

/// What a host remembers about one deferrable remediation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeferralState {
    pub first_prompt_at: Option<Millis>,
    pub deferrals_used: u32,
    /// The run the user chose, when they chose to defer it.
    pub scheduled_at: Option<Millis>,
}

/// What is happening on the host when the rules are asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostNow {
    pub now: Millis,
    pub tz: Tz,
    pub user_logged_in: bool,
    /// One of the policy's blocking processes is running.
    pub blocking_process_running: bool,
}

/// What the agent does now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Ask the user: run now, or one of these options (with the time each would run); the deadline to show.
    Prompt { offered: Vec<(DeferOption, Millis)>, deadline: Option<Millis> },
    /// Run the script now (a scheduled run came due, or nobody is there to ask and the rules say run).
    Run,
    /// The deadline has come: tell the user briefly, then run without a choice.
    RunAfterNotice,
    /// Ask again later: a blocking process is running, or nobody is logged in (wait), or a run is scheduled.
    Later,
}

impl DeferralRules {
    /// The deadline: the earlier of `deadline_at` and first prompt + `deadline_after` (counted from now when
    /// this would be the first prompt).
    pub fn deadline(&self, state: &DeferralState, now: Millis) -> Option<Millis> {
        let floating = self.deadline_after.map(|after| state.first_prompt_at.unwrap_or(now).saturating_add(after));
        match (self.deadline_at, floating) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The options the user may pick now: deferrals left, and running before the deadline.
    pub fn offered(&self, state: &DeferralState, host: &HostNow) -> Vec<(DeferOption, Millis)> {
        if state.deferrals_used >= self.max_deferrals {
            return Vec::new();
        }
        let deadline = self.deadline(state, host.now);
        self.options
            .iter()
            .map(|option| (*option, option.resolve(host.now, host.tz)))
            .filter(|(_, at)| deadline.is_none_or(|d| *at <= d))
            .collect()
    }

    /// What to do at this moment about a remediation whose automation fired.
    pub fn decide(&self, state: &DeferralState, host: &HostNow) -> Decision {
        if let Some(at) = state.scheduled_at {
            return if host.now >= at { Decision::Run } else { Decision::Later };
        }
        let deadline = self.deadline(state, host.now);
        if deadline.is_some_and(|d| host.now >= d) {
            return Decision::RunAfterNotice;
        }
        if !host.user_logged_in {
            return match self.when_no_user {
                WhenNoUser::Run => Decision::Run,
                WhenNoUser::Wait => Decision::Later,
            };
        }
        if host.blocking_process_running {
            return Decision::Later;
        }
        Decision::Prompt { offered: self.offered(state, host), deadline }
    }

    /// Records that the user was prompted — or would have been, had a blocking process or nobody's presence
    /// not postponed it: the floating deadline counts from then, so keeping an app open cannot stop the
    /// clock.
    pub fn prompted(&self, state: &DeferralState, now: Millis) -> DeferralState {
        DeferralState { first_prompt_at: state.first_prompt_at.or(Some(now)), ..*state }
    }

    /// Applies the user's choice: `None` runs now; `Some(option)` defers it. Refused — state unchanged — when
    /// the option is not offered now, the deadline has passed, or a run is already scheduled.
    pub fn choose(
        &self,
        state: &DeferralState,
        choice: Option<DeferOption>,
        host: &HostNow,
    ) -> Result<(DeferralState, Decision), &'static str> {
        if state.scheduled_at.is_some() {
            return Err("a run is already scheduled: the choice was made");
        }
        if self.deadline(state, host.now).is_some_and(|d| host.now >= d) {
            return Err("the deadline has passed: the remediation runs now");
        }
        let state = self.prompted(state, host.now);
        let Some(option) = choice else { return Ok((state, Decision::Run)) };
        if state.deferrals_used >= self.max_deferrals {
            return Err("no deferrals left");
        }
        let Some((_, at)) = self.offered(&state, host).into_iter().find(|(o, _)| *o == option) else {
            return Err("that option is not offered: it would run after the deadline");
        };
        let next = DeferralState { deferrals_used: state.deferrals_used + 1, scheduled_at: Some(at), ..state };
        Ok((next, Decision::Later))
    }

    /// The scheduled run came due and ran, or the policy passes again (someone fixed it): the schedule ends.
    /// Deferrals used stay counted for this failure.
    pub fn schedule_done(state: &DeferralState) -> DeferralState {
        DeferralState { scheduled_at: None, ..*state }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BERLIN: Tz = chrono_tz::Europe::Berlin;
    const UTC: Tz = chrono_tz::UTC;

    fn at(tz: Tz, y: i32, mo: u32, d: u32, h: u32, mi: u32) -> Millis {
        tz.with_ymd_and_hms(y, mo, d, h, mi, 0).earliest().unwrap().timestamp_millis()
    }

    fn rules() -> DeferralRules {
        DeferralRules {
            options: vec![DeferOption::For(HOUR_MS), DeferOption::For(4 * HOUR_MS), DeferOption::For(DAY_MS)],
            max_deferrals: 2,
            deadline_after: Some(2 * DAY_MS),
            deadline_at: None,
            when_no_user: WhenNoUser::Wait,
        }
    }

    fn host(now: Millis) -> HostNow {
        HostNow { now, tz: UTC, user_logged_in: true, blocking_process_running: false }
    }

    #[test]
    fn parses_options_and_refuses_bad_ones() {
        assert_eq!(DeferOption::parse("30m"), Ok(DeferOption::For(30 * MINUTE_MS)));
        assert_eq!(DeferOption::parse("4h"), Ok(DeferOption::For(4 * HOUR_MS)));
        assert_eq!(DeferOption::parse("1d"), Ok(DeferOption::For(DAY_MS)));
        assert_eq!(DeferOption::parse("tomorrow 09:00"), Ok(DeferOption::TomorrowAt { hour: 9, minute: 0 }));
        assert_eq!(DeferOption::parse("45s"), Ok(DeferOption::For(45 * crate::SECOND_MS)));
        for bad in ["0h", "-1h", "h", "5w", "tomorrow 25:00", "tomorrow nine", ""] {
            assert!(DeferOption::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tomorrow_at_follows_the_wall_clock_across_dst() {
        let nine = DeferOption::TomorrowAt { hour: 9, minute: 0 };
        // Europe/Berlin springs forward on 2026-03-29 (02:00 → 03:00) and falls back on 2026-10-25.
        let cases = [
            ("ordinary day: 24 h", at(BERLIN, 2026, 6, 10, 9, 0), at(BERLIN, 2026, 6, 11, 9, 0), 24),
            ("spring forward: 23 h", at(BERLIN, 2026, 3, 28, 9, 0), at(BERLIN, 2026, 3, 29, 9, 0), 23),
            ("fall back: 25 h", at(BERLIN, 2026, 10, 24, 9, 0), at(BERLIN, 2026, 10, 25, 9, 0), 25),
        ];
        for (what, now, want, hours) in cases {
            let got = nine.resolve(now, BERLIN);
            assert_eq!(got, want, "{what}");
            assert_eq!((got - now) / HOUR_MS, hours, "{what}");
        }
        // 02:30 does not exist on 2026-03-29 in Berlin: the first minute that does (03:00).
        let gap = DeferOption::TomorrowAt { hour: 2, minute: 30 };
        assert_eq!(gap.resolve(at(BERLIN, 2026, 3, 28, 12, 0), BERLIN), at(BERLIN, 2026, 3, 29, 3, 0));
        // 02:30 happens twice on 2026-10-25: the earlier one.
        let twice = DeferOption::TomorrowAt { hour: 2, minute: 30 };
        let got = twice.resolve(at(BERLIN, 2026, 10, 24, 12, 0), BERLIN);
        assert_eq!(got, BERLIN.with_ymd_and_hms(2026, 10, 25, 2, 30, 0).earliest().unwrap().timestamp_millis());
        // A floating option is plain elapsed time, whatever the zone does.
        assert_eq!(
            DeferOption::For(DAY_MS).resolve(at(BERLIN, 2026, 3, 28, 9, 0), BERLIN) - at(BERLIN, 2026, 3, 28, 9, 0),
            DAY_MS
        );
    }

    /// A floating deadline is elapsed time (24 h is 24 h even on the day the clocks change), while "tomorrow
    /// HH:MM" is wall-clock time: whether such an option is offered is decided by instants, so across a DST
    /// change an option can fall on either side of a deadline that reads "the same time tomorrow".
    #[test]
    fn deadline_across_dst_is_elapsed_time_and_options_compare_as_instants() {
        let options =
            vec![DeferOption::TomorrowAt { hour: 9, minute: 0 }, DeferOption::TomorrowAt { hour: 11, minute: 0 }];
        let rules = DeferralRules { options, deadline_after: Some(DAY_MS), ..rules() };
        // (what, first prompt, deadline wanted, the options offered)
        let cases = [
            // 09:30 + 24 h = 10:30 CEST: 09:00 (22.5 h later) is before it, 11:00 (24.5 h) after.
            (
                "spring forward",
                at(BERLIN, 2026, 3, 28, 9, 30),
                at(BERLIN, 2026, 3, 29, 10, 30),
                vec![at(BERLIN, 2026, 3, 29, 9, 0)],
            ),
            // 09:30 + 24 h = 08:30 CET: even 09:00 (24.5 h later) is past it.
            ("fall back", at(BERLIN, 2026, 10, 24, 9, 30), at(BERLIN, 2026, 10, 25, 8, 30), vec![]),
            (
                "ordinary day",
                at(BERLIN, 2026, 6, 10, 9, 30),
                at(BERLIN, 2026, 6, 11, 9, 30),
                vec![at(BERLIN, 2026, 6, 11, 9, 0)],
            ),
        ];
        for (what, first, deadline, wanted) in cases {
            let state = DeferralState { first_prompt_at: Some(first), ..Default::default() };
            assert_eq!(rules.deadline(&state, first), Some(deadline), "{what}");
            assert_eq!(deadline - first, DAY_MS, "{what}: elapsed time");
            let host = HostNow { tz: BERLIN, ..host(first) };
            let offered: Vec<Millis> = rules.offered(&state, &host).into_iter().map(|(_, at)| at).collect();
            assert_eq!(offered, wanted, "{what}");
        }
        assert!(local_time(at(BERLIN, 2026, 10, 25, 8, 30), BERLIN).contains("08:30"), "shown in the host's zone");
    }

    /// (what, deadline_after, deadline_at, state, deadline wanted)
    type DeadlineCase = (&'static str, Option<Millis>, Option<Millis>, DeferralState, Option<Millis>);

    #[test]
    fn deadline_is_the_earlier_of_absolute_and_floating() {
        let t = 1_000 * DAY_MS;
        let first = DeferralState { first_prompt_at: Some(t), ..Default::default() };
        let cases: &[DeadlineCase] = &[
            ("floating, from the first prompt", Some(2 * DAY_MS), None, first, Some(t + 2 * DAY_MS)),
            ("floating, first prompt now", Some(2 * DAY_MS), None, DeferralState::default(), Some(t + 5 + 2 * DAY_MS)),
            ("absolute only", None, Some(t + HOUR_MS), first, Some(t + HOUR_MS)),
            ("absolute earlier", Some(2 * DAY_MS), Some(t + HOUR_MS), first, Some(t + HOUR_MS)),
            ("floating earlier", Some(HOUR_MS), Some(t + DAY_MS), first, Some(t + HOUR_MS)),
            ("none", None, None, first, None),
        ];
        for (what, after, absolute, state, want) in cases {
            let rules = DeferralRules { deadline_after: *after, deadline_at: *absolute, ..rules() };
            assert_eq!(rules.deadline(state, t + 5), *want, "{what}");
        }
    }

    #[test]
    fn decision_table() {
        let t = 1_000 * DAY_MS;
        let r = rules();
        let prompted = DeferralState { first_prompt_at: Some(t), ..Default::default() };
        let scheduled = DeferralState { scheduled_at: Some(t + HOUR_MS), deferrals_used: 1, ..prompted };
        let no_user = HostNow { user_logged_in: false, ..host(t) };
        let blocked = HostNow { blocking_process_running: true, ..host(t) };
        let all = vec![(r.options[0], t + HOUR_MS), (r.options[1], t + 4 * HOUR_MS), (r.options[2], t + DAY_MS)];
        let cases: Vec<(&str, DeferralRules, DeferralState, HostNow, Decision)> = vec![
            (
                "first prompt offers every option",
                r.clone(),
                DeferralState::default(),
                host(t),
                Decision::Prompt { offered: all.clone(), deadline: Some(t + 2 * DAY_MS) },
            ),
            ("scheduled, not yet: no new prompt", r.clone(), scheduled, host(t + 30 * MINUTE_MS), Decision::Later),
            ("scheduled time reached", r.clone(), scheduled, host(t + HOUR_MS), Decision::Run),
            (
                "options past the deadline are not offered",
                r.clone(),
                prompted,
                host(t + DAY_MS + 21 * HOUR_MS),
                Decision::Prompt {
                    offered: vec![(r.options[0], t + DAY_MS + 22 * HOUR_MS)],
                    deadline: Some(t + 2 * DAY_MS),
                },
            ),
            (
                "no deferrals left: run now only",
                r.clone(),
                DeferralState { deferrals_used: 2, ..prompted },
                host(t + HOUR_MS),
                Decision::Prompt { offered: vec![], deadline: Some(t + 2 * DAY_MS) },
            ),
            (
                "deadline reached: runs after a notice",
                r.clone(),
                prompted,
                host(t + 2 * DAY_MS),
                Decision::RunAfterNotice,
            ),
            ("blocking process: quietly later", r.clone(), prompted, blocked, Decision::Later),
            (
                "blocking process never outlasts the deadline",
                r.clone(),
                prompted,
                HostNow { now: t + 2 * DAY_MS, ..blocked },
                Decision::RunAfterNotice,
            ),
            ("nobody logged in, wait", r.clone(), prompted, no_user, Decision::Later),
            (
                "nobody logged in, run",
                DeferralRules { when_no_user: WhenNoUser::Run, ..r.clone() },
                prompted,
                no_user,
                Decision::Run,
            ),
            (
                "nobody logged in past the deadline",
                r.clone(),
                prompted,
                HostNow { now: t + 3 * DAY_MS, ..no_user },
                Decision::RunAfterNotice,
            ),
        ];
        for (what, rules, state, host, want) in cases {
            assert_eq!(rules.decide(&state, &host), want, "{what}");
        }
    }

    #[test]
    fn choices_are_checked_and_leave_the_state_alone_when_refused() {
        let t = 1_000 * DAY_MS;
        let r = rules();
        let (after_one, decision) = r.choose(&DeferralState::default(), Some(r.options[0]), &host(t)).unwrap();
        assert_eq!(decision, Decision::Later);
        assert_eq!(
            after_one,
            DeferralState { first_prompt_at: Some(t), deferrals_used: 1, scheduled_at: Some(t + HOUR_MS) }
        );
        assert_eq!(
            r.choose(&after_one, Some(r.options[0]), &host(t)),
            Err("a run is already scheduled: the choice was made")
        );
        let ran = DeferralRules::schedule_done(&after_one);
        let (after_two, _) = r.choose(&ran, Some(r.options[1]), &host(t + 2 * HOUR_MS)).unwrap();
        assert_eq!(after_two.deferrals_used, 2);
        let ran = DeferralRules::schedule_done(&after_two);
        assert_eq!(r.choose(&ran, Some(r.options[0]), &host(t + 7 * HOUR_MS)), Err("no deferrals left"));
        assert_eq!(
            r.choose(&ran, None, &host(t + 7 * HOUR_MS)).map(|(_, d)| d),
            Ok(Decision::Run),
            "run now is always offered"
        );
        let late = host(t + DAY_MS + 12 * HOUR_MS);
        let fresh = DeferralState { first_prompt_at: Some(t), ..Default::default() };
        assert_eq!(
            r.choose(&fresh, Some(r.options[2]), &late),
            Err("that option is not offered: it would run after the deadline")
        );
        assert_eq!(
            r.choose(&fresh, None, &host(t + 2 * DAY_MS)),
            Err("the deadline has passed: the remediation runs now")
        );
        let unknown = DeferOption::For(2 * HOUR_MS);
        assert!(r.choose(&fresh, Some(unknown), &host(t)).is_err(), "an option the admin did not set");
    }
}
