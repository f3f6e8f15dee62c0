//! Logging in and out, and changing one's own password.

use super::forms::CsrfOnly;
use super::layout::Frame;
use super::{COOKIE, ConsoleUser, error_page};
use crate::error::ApiError;
use crate::extract::Client;
use crate::state::SharedState;
use askama::Template;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage<'a> {
    next: &'a str,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    next: Option<String>,
    #[serde(default)]
    email: String,
    #[serde(default)]
    password: String,
}

/// Only paths inside the console are followed after logging in (no open redirect).
fn safe_next(next: Option<&str>) -> &str {
    next.filter(|n| n.starts_with("/console") && !n.starts_with("//") && !n.contains("://")).unwrap_or("/console")
}

pub async fn login_page(Query(query): Query<LoginQuery>) -> Response {
    let next = safe_next(query.next.as_deref());
    crate::html::page(StatusCode::OK, &LoginPage { next, error: None })
}

pub async fn login(
    State(state): State<SharedState>,
    Client(client): Client,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let next = safe_next(form.next.as_deref());
    let email = form.email.trim().to_string();
    match crate::app::session::log_in(&state, client, &email, form.password).await {
        Ok((_, token)) => {
            let cookie = format!("{COOKIE}={token}; Path=/console; HttpOnly; Secure; SameSite=Strict");
            ([(header::SET_COOKIE, cookie)], Redirect::to(next)).into_response()
        }
        Err(ApiError::BadCredentials) => crate::html::page(
            StatusCode::UNAUTHORIZED,
            &LoginPage { next, error: Some("The email or password is wrong.") },
        ),
        Err(other) => error_page(&other),
    }
}

pub async fn logout(
    State(state): State<SharedState>,
    user: ConsoleUser,
    axum::Form(form): axum::Form<CsrfOnly>,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form.csrf) {
        return refused;
    }
    if let Err(err) = crate::app::session::log_out(&state, &user.auth).await {
        return error_page(&err);
    }
    let cookie = format!("{COOKIE}=; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/console/login")).into_response()
}

#[derive(Template)]
#[template(path = "console/password.html")]
struct PasswordPage<'a> {
    frame: Frame<'a>,
    /// A required reset: the user only chooses the new password (no current one to type).
    required_reset: bool,
    error: Option<&'a str>,
}

#[derive(Deserialize)]
pub struct PasswordForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    old_password: String,
    #[serde(default)]
    new_password: String,
}

/// Changing one's own password. A user whose password an admin set (a required reset) only chooses the new
/// one, as Fleet's `perform_required_password_reset`; others type the current one too (limited like a login).
pub async fn password_page(user: ConsoleUser) -> Response {
    password_form(&user, StatusCode::OK, None)
}

fn password_form(user: &ConsoleUser, status: StatusCode, error: Option<&str>) -> Response {
    let page = PasswordPage {
        frame: Frame::new(user, "", "Change password"),
        required_reset: user.auth.user.force_password_reset,
        error,
    };
    crate::html::page(status, &page)
}

pub async fn change_password(
    State(state): State<SharedState>,
    Client(client): Client,
    user: ConsoleUser,
    axum::Form(form): axum::Form<PasswordForm>,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form.csrf) {
        return refused;
    }
    if let Err(reason) = herd_core::validate::password(&form.new_password) {
        return password_form(&user, StatusCode::UNPROCESSABLE_ENTITY, Some(&format!("New password: {reason}")));
    }
    if !user.auth.user.force_password_reset {
        match crate::app::session::check_password(&state, client, &user.auth.user.email, form.old_password).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return password_form(&user, StatusCode::UNPROCESSABLE_ENTITY, Some("The current password is wrong."));
            }
            Err(err) => return error_page(&err),
        }
    }
    match crate::app::session::set_own_password(&state, &user.auth, form.new_password).await {
        Ok(_) => Redirect::to("/console").into_response(),
        Err(err) => error_page(&err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_console_paths_are_followed_after_login() {
        for (next, followed) in [
            (None, "/console"),
            (Some("/console/hosts?status=online"), "/console/hosts?status=online"),
            (Some("https://evil.example/steal"), "/console"),
            (Some("//evil.example"), "/console"),
            (Some("/console/x?to=https://evil.example"), "/console"),
            (Some("/elsewhere"), "/console"),
        ] {
            assert_eq!(safe_next(next), followed, "{next:?}");
        }
    }

    #[test]
    fn the_login_page_escapes_what_it_echoes() {
        let html = LoginPage { next: "/console\"><script>", error: Some("<b>") }.render().unwrap();
        assert!(html.contains("value=\"/console&quot;&gt;&lt;script&gt;\""), "{html}");
        assert!(html.contains("<p role=\"alert\" class=\"error\">&lt;b&gt;</p>"), "{html}");
    }
}
