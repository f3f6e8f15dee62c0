//! Teams: the list (hosts, users, enroll secrets for those who may see them), creating one, global secrets.

use super::ConsoleUser;
use super::layout::{Frame, page_or_error, render};
use crate::state::SharedState;
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use herd_core::roles::{Action, Scope};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "console/teams.html")]
struct TeamsPage<'a> {
    frame: Frame<'a>,
    rows: Vec<TeamRow>,
    may_create: bool,
    /// The global enroll secrets, for those who may change the global set.
    global_secrets: Option<Vec<String>>,
}

struct TeamRow {
    id: i64,
    name: String,
    host_count: i64,
    user_count: i64,
    /// Its enroll secrets, for those who may change the team (None: "hidden").
    secrets: Option<Vec<String>>,
}

pub async fn page(State(state): State<SharedState>, user: ConsoleUser) -> Response {
    page_or_error(
        async {
            let rows = state
                .store
                .list_teams()
                .await?
                .into_iter()
                .filter(|t| user.auth.actor.may(Action::Read, Scope::Team(t.id)))
                .map(|t| TeamRow {
                    secrets: user
                        .auth
                        .actor
                        .may(Action::Write, Scope::Team(t.id))
                        .then(|| t.secrets.into_iter().map(|s| s.secret).collect()),
                    id: t.id,
                    name: t.name,
                    host_count: t.host_count,
                    user_count: t.user_count,
                })
                .collect();
            let global_secrets = if user.auth.actor.may(Action::Write, Scope::Global) {
                Some(state.store.enroll_secrets(None).await?.into_iter().map(|s| s.secret).collect())
            } else {
                None
            };
            let page = TeamsPage {
                frame: Frame::new(&user, "/console/teams", "Teams"),
                rows,
                may_create: user.auth.actor.may(Action::AdministerServer, Scope::Global),
                global_secrets,
            };
            Ok(render(&page))
        }
        .await,
    )
}

#[derive(Deserialize)]
pub struct TeamForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

/// Creates a team with the REST API's own handler and checks.
pub async fn create(
    State(state): State<SharedState>,
    user: ConsoleUser,
    axum::Form(form): axum::Form<TeamForm>,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form.csrf) {
        return refused;
    }
    let request = herd_proto::fleet::CreateTeamRequest { name: form.name, description: None, secrets: None };
    let result = crate::app::teams::create(&state, &user.auth, request).await;
    super::done_or_error(result.map(|_| ()), "/console/teams")
}
