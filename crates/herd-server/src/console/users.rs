//! Users and roles (admins only): the list and creating one.

use super::layout::{Frame, page_or_error, render};
use super::{ConsoleUser, done_or_error};
use crate::error::ApiError;
use crate::state::SharedState;
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use herd_core::roles::{Action, Scope};
use serde::{Deserialize, Serialize};

#[derive(Template)]
#[template(path = "console/users.html")]
struct UsersPage<'a> {
    frame: Frame<'a>,
    /// (name, email, role).
    rows: Vec<(String, String, String)>,
}

/// A user's role as the list shows it: "admin (global)", or "observer of Lab, maintainer of Kiosks".
fn role_text(user: &herd_store::UserRecord) -> String {
    match user.global_role {
        Some(r) => format!("{} (global)", r.as_str()),
        None => user
            .team_roles
            .iter()
            .map(|(_, team, r)| format!("{} of {team}", r.as_str()))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

pub async fn page(State(state): State<SharedState>, user: ConsoleUser) -> Response {
    page_or_error(
        async {
            user.auth.require(Action::AdministerServer, Scope::Global)?;
            let rows = state
                .store
                .list_users(None)
                .await?
                .into_iter()
                .map(|u| (u.name.clone(), u.email.clone(), role_text(&u)))
                .collect();
            Ok(render(&UsersPage { frame: Frame::new(&user, "/console/users", "Users and roles"), rows }))
        }
        .await,
    )
}

/// The new-user form; its fields are the REST API's `CreateUserRequest`'s, which checks them.
#[derive(Deserialize, Serialize)]
pub struct UserForm {
    #[serde(default, skip_serializing)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    global_role: String,
}

/// Creates a user with the REST API's own handler and checks.
pub async fn create(
    State(state): State<SharedState>,
    user: ConsoleUser,
    axum::Form(form): axum::Form<UserForm>,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form.csrf) {
        return refused;
    }
    let request = serde_json::to_value(&form).and_then(serde_json::from_value::<herd_proto::fleet::CreateUserRequest>);
    let result = match request {
        Ok(request) => crate::app::users::create(&state, &user.auth, request).await.map(|_| ()),
        Err(e) => Err(ApiError::invalid("user", e.to_string())),
    };
    done_or_error(result, "/console/users")
}
