//! Configuration profiles: per set (no team, then each team) the hosts' status summary and the profiles,
//! uploading one, deleting one.

use super::forms::{CsrfOnly, team_choice, text_file};
use super::layout::{Frame, page_or_error, render};
use super::shared::{Choice, readable_teams, scopes_of, team_label, time, writable_team_options};
use super::{ConsoleUser, done_or_error};
use crate::html::url_component;
use crate::state::SharedState;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use herd_core::roles::{Action, Scope};
use herd_store::{ProfileRecord, ProfilesSummary};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "console/profiles.html")]
struct ProfilesPage<'a> {
    frame: Frame<'a>,
    sets: Vec<ProfileSet>,
    /// The sets the user may add a profile to (None: no form).
    new_in: Option<Vec<Choice>>,
    /// Every label's name, offered by the scope fields.
    label_names: Vec<String>,
}

/// The profiles of one set (no team, or a team).
struct ProfileSet {
    title: String,
    /// The team's id, 0 for no team: names the live summary.
    id: i64,
    summary: ProfilesSummary,
    profiles: Vec<ProfileRecord>,
    may_delete: bool,
}

impl ProfilesPage<'_> {
    fn delete_action(profile: &ProfileRecord) -> String {
        format!("/console/profiles/{}/delete", url_component(&profile.uuid))
    }

    /// The profile's label scope in words ("" when it has none).
    fn scope(profile: &ProfileRecord) -> String {
        let names = |ids: &[i64]| -> String {
            ids.iter().filter_map(|id| profile.label_names.get(id).map(String::as_str)).collect::<Vec<_>>().join(", ")
        };
        let scope = &profile.labels;
        [("in any of", &scope.include_any), ("in all of", &scope.include_all), ("not in", &scope.exclude_any)]
            .into_iter()
            .filter(|(_, ids)| !ids.is_empty())
            .map(|(words, ids)| format!("hosts {words} {}", names(ids)))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn uploaded(profile: &ProfileRecord) -> String {
        time(Some(profile.uploaded_at))
    }
}

pub async fn page(State(state): State<SharedState>, user: ConsoleUser) -> Response {
    page_or_error(
        async {
            let teams = readable_teams(&state, &user).await?;
            let mut sets = Vec::new();
            for scope in scopes_of(&teams) {
                if !user.auth.actor.may(Action::Read, Scope::of_team(scope)) {
                    continue;
                }
                let summary = state.store.profiles_summary(scope).await?;
                let profiles = state.store.list_profiles(scope).await?;
                sets.push(ProfileSet {
                    title: scope.map_or_else(|| "No team".into(), |t| team_label(&teams, Some(t))),
                    id: scope.unwrap_or(0),
                    summary,
                    profiles,
                    may_delete: user.auth.actor.may(Action::Write, Scope::of_team(scope)),
                });
            }
            let page = ProfilesPage {
                frame: Frame::new(&user, "/console/profiles", "Configuration profiles"),
                sets,
                new_in: writable_team_options(&user, &teams, "No team"),
                label_names: crate::app::labels::list(&state, &user.auth).await?.into_iter().map(|l| l.name).collect(),
            };
            Ok(render(&page))
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct ProfileForm {
    #[serde(default)]
    csrf: String,
    /// `.json`, `.yml` or `.mobileconfig`: says how to read the contents.
    #[serde(default)]
    file_name: String,
    #[serde(default, deserialize_with = "team_choice")]
    team_id: Option<i64>,
    #[serde(default, deserialize_with = "text_file")]
    contents: String,
    /// The label scope: label names, comma-separated (empty: every host of the set).
    #[serde(default)]
    labels_include_any: String,
    #[serde(default)]
    labels_include_all: String,
    #[serde(default)]
    labels_exclude_any: String,
}

/// A scope field as posted: label names, comma-separated (empty: no such list).
fn name_list(text: &str) -> Option<Vec<String>> {
    let names: Vec<String> = text.split(',').map(str::trim).filter(|n| !n.is_empty()).map(str::to_string).collect();
    (!names.is_empty()).then_some(names)
}

/// Uploads a profile with the REST API's own function and checks.
pub async fn create(
    State(state): State<SharedState>,
    user: ConsoleUser,
    axum::Form(form): axum::Form<ProfileForm>,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form.csrf) {
        return refused;
    }
    let file_name = form.file_name.trim();
    let added = crate::app::profiles::add(
        &state,
        &user.auth,
        form.team_id,
        file_name,
        form.contents.as_bytes(),
        [name_list(&form.labels_include_any), name_list(&form.labels_include_all), name_list(&form.labels_exclude_any)],
    );
    done_or_error(added.await.map(|_| ()), "/console/profiles")
}

/// Deletes a profile with the REST API's own handler.
pub async fn delete(
    State(state): State<SharedState>,
    user: ConsoleUser,
    Path(uuid): Path<String>,
    axum::Form(form): axum::Form<CsrfOnly>,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form.csrf) {
        return refused;
    }
    let result = crate::app::profiles::delete(&state, &user.auth, &uuid).await;
    done_or_error(result, "/console/profiles")
}
