//! What several areas show alike: times, team choices and labels, the activity table's rows.

use super::ConsoleUser;
use crate::error::ApiError;
use crate::state::SharedState;
use crate::wire::rfc3339;
use herd_core::roles::{Action, Scope};

/// An instant as the console shows it ("2026-01-02 03:04:05 UTC"), or "—".
pub fn time(at: Option<herd_core::Millis>) -> String {
    at.map(|t| rfc3339(t).replace('T', " ").trim_end_matches('Z').to_string() + " UTC").unwrap_or_else(|| "—".into())
}

/// The team names the user may read: (id, name), for selects and labels.
pub async fn readable_teams(state: &SharedState, user: &ConsoleUser) -> Result<Vec<(i64, String)>, ApiError> {
    let teams = state.store.list_teams().await?;
    Ok(teams
        .into_iter()
        .filter(|t| user.auth.actor.may(Action::Read, Scope::Team(t.id)))
        .map(|t| (t.id, t.name))
        .collect())
}

pub fn team_label(teams: &[(i64, String)], team_id: Option<i64>) -> String {
    match team_id {
        None => "All hosts".into(),
        Some(id) => teams.iter().find(|(t, _)| *t == id).map_or_else(|| format!("team {id}"), |(_, n)| n.clone()),
    }
}

/// The sets a user may look at: the no-team set (or global), then each team they may read.
pub fn scopes_of(teams: &[(i64, String)]) -> Vec<Option<i64>> {
    std::iter::once(None).chain(teams.iter().map(|(id, _)| Some(*id))).collect()
}

/// One `<option>` of a select.
pub struct Choice {
    pub value: String,
    pub label: String,
    pub selected: bool,
}

impl Choice {
    pub fn new(value: impl ToString, label: impl Into<String>, selected: bool) -> Self {
        Choice { value: value.to_string(), label: label.into(), selected }
    }

    /// The readable teams as options, `selected` marking the chosen one.
    pub fn teams(teams: &[(i64, String)], selected: impl Fn(i64) -> bool) -> Vec<Choice> {
        teams.iter().map(|(id, name)| Choice::new(id, name, selected(*id))).collect()
    }
}

/// The sets the user may add to (`none_label` for the no-team set, value 0), or None when there is none: the
/// page then shows no form.
pub fn writable_team_options(user: &ConsoleUser, teams: &[(i64, String)], none_label: &str) -> Option<Vec<Choice>> {
    let global = user.auth.actor.may(Action::Write, Scope::Global).then(|| Choice::new(0, none_label, false));
    let options: Vec<Choice> = global
        .into_iter()
        .chain(
            teams
                .iter()
                .filter(|(id, _)| user.auth.actor.may(Action::Write, Scope::Team(*id)))
                .map(|(id, name)| Choice::new(id, name, false)),
        )
        .collect();
    (!options.is_empty()).then_some(options)
}

/// One row of the activity table (`templates/console/activity_table.html`).
pub struct ActivityRow {
    pub when: String,
    pub who: String,
    pub what: String,
    pub details: String,
}

impl ActivityRow {
    pub fn all(activities: &[herd_store::ActivityRecord]) -> Vec<ActivityRow> {
        activities
            .iter()
            .map(|a| ActivityRow {
                when: time(Some(a.created_at)),
                who: a.actor_email.clone().unwrap_or_else(|| "herd".into()),
                what: a.kind.replace('_', " "),
                details: a.details.to_string(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_labels() {
        let teams = vec![(1, "Lab".to_string()), (2, "<Office>".to_string())];
        for (team, label) in [(None, "All hosts"), (Some(1), "Lab"), (Some(2), "<Office>"), (Some(9), "team 9")] {
            assert_eq!(team_label(&teams, team), label, "{team:?}");
        }
        assert_eq!(scopes_of(&teams), vec![None, Some(1), Some(2)]);
    }

    #[test]
    fn times_read_as_utc() {
        for (at, shown) in [(None, "—"), (Some(0), "1970-01-01 00:00:00 UTC")] {
            assert_eq!(time(at), shown, "{at:?}");
        }
    }
}
