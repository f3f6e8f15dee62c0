//! Scripts: the list per set (no team, then each team), uploading one, deleting one.

use super::forms::{CsrfOnly, team_choice, text_file};
use super::layout::{Frame, page_or_error, render};
use super::shared::{Choice, readable_teams, scopes_of, team_label, time, writable_team_options};
use super::{ConsoleUser, done_or_error};
use crate::error::ApiError;
use crate::state::SharedState;
use askama::Template;
use axum::extract::{Path, State};
use axum::response::Response;
use herd_core::roles::{Action, Scope};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "console/scripts.html")]
struct ScriptsPage<'a> {
    frame: Frame<'a>,
    rows: Vec<ScriptRow>,
    /// The sets the user may add a script to (None: no form).
    new_in: Option<Vec<Choice>>,
}

struct ScriptRow {
    id: i64,
    name: String,
    team: String,
    uploaded: String,
    may_delete: bool,
}

pub async fn page(State(state): State<SharedState>, user: ConsoleUser) -> Response {
    page_or_error(
        async {
            let teams = readable_teams(&state, &user).await?;
            let mut rows = Vec::new();
            for scope in scopes_of(&teams) {
                if !user.auth.actor.may(Action::Read, Scope::of_team(scope)) {
                    continue;
                }
                let may_delete = user.auth.actor.may(Action::Write, Scope::of_team(scope));
                for s in state.store.list_scripts(scope).await? {
                    rows.push(ScriptRow {
                        id: s.id,
                        team: scope.map_or_else(|| "All teams".into(), |t| team_label(&teams, Some(t))),
                        uploaded: time(Some(s.created_at)),
                        name: s.name,
                        may_delete,
                    });
                }
            }
            let page = ScriptsPage {
                frame: Frame::new(&user, "/console/scripts", "Scripts"),
                rows,
                new_in: writable_team_options(&user, &teams, "All teams"),
            };
            Ok(render(&page))
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct ScriptForm {
    #[serde(default)]
    csrf: String,
    /// The file name (`.sh` or `.ps1`).
    #[serde(default)]
    name: String,
    #[serde(default, deserialize_with = "team_choice")]
    team_id: Option<i64>,
    #[serde(default, deserialize_with = "text_file")]
    contents: String,
}

/// Uploads a script with the REST API's own function and checks.
pub async fn create(
    State(state): State<SharedState>,
    user: ConsoleUser,
    axum::Form(form): axum::Form<ScriptForm>,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form.csrf) {
        return refused;
    }
    let name = form.name.trim();
    let added = crate::app::scripts::add(&state, &user.auth, form.team_id, name, &form.contents).await;
    done_or_error(added.map(|_| ()), "/console/scripts")
}

/// Deletes a script with the REST API's own handler.
pub async fn delete(
    State(state): State<SharedState>,
    user: ConsoleUser,
    Path(id): Path<String>,
    axum::Form(form): axum::Form<CsrfOnly>,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form.csrf) {
        return refused;
    }
    let result = match id.parse::<i64>() {
        Ok(id) => crate::app::scripts::delete(&state, &user.auth, id).await,
        Err(_) => Err(ApiError::NotFound("script")),
    };
    done_or_error(result, "/console/scripts")
}
