//! The admin console: server-rendered HTML under `/console`, sharing the REST API's sessions and roles.
//! No front-end server and no third-party script: the stylesheet and one small script (live regions) are
//! embedded in the binary. Forms post with a per-session CSRF token; the session cookie is HttpOnly, Secure
//! and SameSite=Strict.
//!
//! Live updates: any element with `data-live` and an `id` is refreshed every few seconds from the same URL
//! (the script fetches the page and swaps those elements), so counts and results change without a reload.

mod pages;

use crate::api::my_device::escape;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::Client;
use crate::state::SharedState;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use sha2::Digest;
use std::fmt::Write as _;

const COOKIE: &str = "herd_console";

pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route("/console", get(pages::dashboard))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/password", get(password_page).post(change_password))
        .route("/console/hosts", get(pages::hosts))
        .route("/console/hosts/{id}", get(pages::host))
        .route("/console/hosts/{id}/action", post(pages::host_action))
        .route("/console/policies", get(pages::policies))
        .route("/console/policies/new", get(pages::policy_form).post(pages::policy_save))
        .route("/console/policies/{id}", get(pages::policy_form).post(pages::policy_save))
        .route("/console/policies/{id}/delete", post(pages::delete_policy))
        .route("/console/scripts/{id}/delete", post(pages::delete_script))
        .route("/console/profiles/{uuid}/delete", post(pages::delete_profile))
        .route("/console/teams", get(pages::teams).post(pages::create_team))
        .route("/console/scripts", get(pages::scripts).post(pages::create_script))
        .route("/console/profiles", get(pages::profiles).post(pages::create_profile))
        .route("/console/users", get(pages::users).post(pages::create_user))
        .route("/console/settings", get(pages::settings).post(pages::settings_save))
        .route("/console/activity", get(pages::activity))
        .route("/console/assets/console.css", get(stylesheet))
        .route("/console/assets/console.js", get(script))
        .layer(middleware::map_response(harden))
}

async fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https: data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

/// A signed-in console user, with the CSRF token their forms carry. Pages that need one redirect to the login
/// page without it.
pub struct ConsoleUser {
    pub auth: AuthUser,
    pub csrf: String,
}

/// Not signed in (or the session ended): to the login page, coming back here after.
pub struct ToLogin(String);

impl IntoResponse for ToLogin {
    fn into_response(self) -> Response {
        Redirect::to(&format!("/console/login?next={}", crate::api::my_device::urlencode(&self.0))).into_response()
    }
}

fn cookie_token(parts: &Parts) -> Option<String> {
    let cookies = parts.headers.get_all(header::COOKIE);
    cookies.iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE && !value.is_empty()).then(|| value.to_string())
    })
}

fn csrf_for(token_hash: &str) -> String {
    hex::encode(sha2::Sha256::digest(format!("herd-console-csrf:{token_hash}").as_bytes()))
}

impl FromRequestParts<SharedState> for ConsoleUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &SharedState) -> Result<Self, Self::Rejection> {
        let here = parts.uri.path_and_query().map(|p| p.as_str().to_string()).unwrap_or_else(|| "/console".into());
        let token = cookie_token(parts).ok_or_else(|| ToLogin(here.clone()).into_response())?;
        let client = crate::auth::client_ip(parts);
        match crate::auth::user_for_token(state, client, &token).await {
            Ok(auth) => {
                // An admin set this user's password: only choosing a new one (and logging out) is allowed.
                if auth.user.force_password_reset && !ALLOWED_DURING_PASSWORD_RESET.contains(&parts.uri.path()) {
                    return Err(message_page_html(
                        StatusCode::FORBIDDEN,
                        "Password change required",
                        "An administrator set your password. Choose your own before using the console: \
                         <a href=\"/console/password\">change your password</a>.",
                    ));
                }
                let csrf = csrf_for(&auth.token_hash);
                Ok(ConsoleUser { auth, csrf })
            }
            Err(ApiError::Unauthenticated) => Err(ToLogin(here).into_response()),
            Err(other) => Err(error_page(&other)),
        }
    }
}

/// Console paths a user whose password must be changed may still use.
const ALLOWED_DURING_PASSWORD_RESET: &[&str] = &["/console/password", "/console/logout"];

impl ConsoleUser {
    /// A posted form's CSRF token must be this session's: the refusal page when it is not.
    pub fn csrf_refusal(&self, form: &std::collections::HashMap<String, String>) -> Option<Response> {
        let sent = form.get("csrf").map(String::as_str).unwrap_or_default();
        let ok: bool = subtle::ConstantTimeEq::ct_eq(sent.as_bytes(), self.csrf.as_bytes()).into();
        (!ok).then(|| message_page(StatusCode::FORBIDDEN, "Form expired", "Reload the page and try again."))
    }

    pub fn csrf_field(&self) -> String {
        format!("<input type=\"hidden\" name=\"csrf\" value=\"{}\">", self.csrf)
    }
}

/// The navigation, in order: (path, label).
const NAV: &[(&str, &str)] = &[
    ("/console", "Dashboard"),
    ("/console/hosts", "Hosts"),
    ("/console/policies", "Policies"),
    ("/console/teams", "Teams"),
    ("/console/scripts", "Scripts"),
    ("/console/profiles", "Profiles"),
    ("/console/users", "Users"),
    ("/console/settings", "Settings"),
    ("/console/activity", "Activity"),
];

/// A whole page: header with navigation (the current one marked), the user and Log out, then `body`.
pub fn layout(user: &ConsoleUser, current: &str, title: &str, body: &str) -> Response {
    let mut html = String::with_capacity(body.len() + 2048);
    let _ = write!(
        html,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>{} · herd</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\"><script src=\"/console/assets/console.js\" defer></script>\
         </head><body><a class=\"skip\" href=\"#main\">Skip to content</a><header><span class=\"brand\">herd</span>\
         <nav aria-label=\"Main\"><ul>",
        escape(title)
    );
    for (path, label) in NAV {
        let here = if *path == current { " aria-current=\"page\"" } else { "" };
        let _ = write!(html, "<li><a href=\"{path}\"{here}>{label}</a></li>");
    }
    let _ = write!(
        html,
        "</ul></nav><form method=\"post\" action=\"/console/logout\" class=\"logout\">{}<span>{}</span> \
         <a href=\"/console/password\">Password</a> <button type=\"submit\">Log out</button></form></header><main id=\"main\"><h1>{}</h1>{body}</main></body></html>",
        user.csrf_field(),
        escape(&user.auth.user.email),
        escape(title)
    );
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

/// A page with only a message (errors, refusals), usable signed out.
pub fn message_page(status: StatusCode, title: &str, text: &str) -> Response {
    message_page_html(status, title, &escape(text))
}

/// `message_page` with a message that is already HTML (a link); never pass it anything a user typed.
fn message_page_html(status: StatusCode, title: &str, html_message: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} · herd</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\"></head><body><main id=\"main\">\
         <h1>{t}</h1><p>{html_message}</p><p><a href=\"/console\">Back to the console</a></p></main></body></html>",
        t = escape(title),
    );
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

/// An API error as a page: the status the API gives it (`ApiError::status`, the one mapping), and the reason
/// where there is one; only an internal error is hidden behind "something went wrong" (and logged).
pub fn error_page(error: &ApiError) -> Response {
    let status = error.status();
    let mut page = match error {
        ApiError::NotFound(what) => message_page(status, "Not found", &format!("No such {what}.")),
        ApiError::Forbidden => message_page(status, "Not allowed", "Your role does not allow this."),
        ApiError::Validation { field, reason } => message_page(status, "Not saved", &format!("{field}: {reason}")),
        ApiError::Conflict(reason) => message_page(status, "Not saved", reason),
        ApiError::RateLimited { retry_after_s, reason } => {
            let text = format!("{}. Try again in {retry_after_s} s.", capitalised(reason));
            message_page(status, "Too many attempts", &text)
        }
        ApiError::PasswordResetRequired => message_page_html(
            status,
            "Password change required",
            "Choose your own password first: <a href=\"/console/password\">change your password</a>.",
        ),
        ApiError::Unavailable => {
            message_page(status, "Try again shortly", "The database is unavailable; nothing was changed.")
        }
        ApiError::Internal(err) => {
            tracing::error!(error = format!("{err:#}"), "console page failed");
            message_page(status, "Something went wrong", "The error was logged.")
        }
        ApiError::BadRequest(_) | ApiError::TooLarge(_) | ApiError::Unauthenticated | ApiError::BadCredentials => {
            message_page(status, "Not done", &capitalised(&error.to_string()))
        }
    };
    if let ApiError::RateLimited { retry_after_s, .. } = error {
        page.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
    }
    page
}

fn login_html(next: &str, error: Option<&str>) -> String {
    let alert = error.map(|e| format!("<p role=\"alert\" class=\"error\">{}</p>", escape(e))).unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>Log in · herd</title>\
         <link rel=\"stylesheet\" href=\"/console/assets/console.css\"></head><body><main id=\"main\" class=\"login\">\
         <h1>Log in to herd</h1>{alert}<form method=\"post\" action=\"/console/login\">\
         <input type=\"hidden\" name=\"next\" value=\"{}\">\
         <label for=\"email\">Email</label><input id=\"email\" name=\"email\" type=\"email\" autocomplete=\"username\" required>\
         <label for=\"password\">Password</label><input id=\"password\" name=\"password\" type=\"password\" \
         autocomplete=\"current-password\" required><button type=\"submit\">Log in</button></form></main></body></html>",
        escape(next)
    )
}

/// Only paths inside the console are followed after logging in (no open redirect).
fn safe_next(next: Option<&String>) -> String {
    next.filter(|n| n.starts_with("/console") && !n.starts_with("//") && !n.contains("://"))
        .cloned()
        .unwrap_or_else(|| "/console".into())
}

async fn login_page(
    axum::extract::Query(params): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let next = safe_next(params.get("next"));
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], login_html(&next, None)).into_response()
}

async fn login(
    State(state): State<SharedState>,
    Client(client): Client,
    axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
) -> Response {
    let next = safe_next(form.get("next"));
    let email = form.get("email").map(|e| e.trim().to_string()).unwrap_or_default();
    let password = form.get("password").cloned().unwrap_or_default();
    match crate::app::session::log_in(&state, client, &email, password).await {
        Ok((_, token)) => {
            let cookie = format!("{COOKIE}={token}; Path=/console; HttpOnly; Secure; SameSite=Strict");
            ([(header::SET_COOKIE, cookie)], Redirect::to(&next)).into_response()
        }
        Err(ApiError::BadCredentials) => (
            StatusCode::UNAUTHORIZED,
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            login_html(&next, Some("The email or password is wrong.")),
        )
            .into_response(),
        Err(other) => error_page(&other),
    }
}

async fn logout(
    State(state): State<SharedState>,
    user: ConsoleUser,
    axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form) {
        return refused;
    }
    if let Err(err) = state.store.delete_session(&user.auth.token_hash).await {
        return error_page(&err.into());
    }
    let cookie = format!("{COOKIE}=; Path=/console; HttpOnly; Secure; SameSite=Strict; Max-Age=0");
    ([(header::SET_COOKIE, cookie)], Redirect::to("/console/login")).into_response()
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Changing one's own password. A user whose password an admin set (a required reset) only chooses the new
/// one, as Fleet's `perform_required_password_reset`; others type the current one too (limited like a login).
async fn password_page(user: ConsoleUser) -> Response {
    password_form(&user, StatusCode::OK, None)
}

fn password_form(user: &ConsoleUser, status: StatusCode, error: Option<&str>) -> Response {
    let alert = error.map(|e| format!("<p role=\"alert\" class=\"error\">{}</p>", escape(e))).unwrap_or_default();
    let (intro, current) = if user.auth.user.force_password_reset {
        ("<p>An administrator set your password. Choose your own to continue.</p>", "")
    } else {
        (
            "",
            "<label for=\"old-password\">Current password</label><input id=\"old-password\" name=\"old_password\" \
             type=\"password\" autocomplete=\"current-password\" required>",
        )
    };
    let body = format!(
        "{intro}{alert}<form method=\"post\" action=\"/console/password\">{}{current}\
         <label for=\"new-password\">New password (12+ characters, a number and a symbol)</label>\
         <input id=\"new-password\" name=\"new_password\" type=\"password\" autocomplete=\"new-password\" required>\
         <p><button type=\"submit\">Change password</button></p></form>",
        user.csrf_field()
    );
    let mut page = layout(user, "", "Change password", &body);
    *page.status_mut() = status;
    page
}

async fn change_password(
    State(state): State<SharedState>,
    Client(client): Client,
    user: ConsoleUser,
    axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
) -> Response {
    if let Some(refused) = user.csrf_refusal(&form) {
        return refused;
    }
    let new_password = form.get("new_password").cloned().unwrap_or_default();
    if let Err(reason) = herd_core::validate::password(&new_password) {
        return password_form(&user, StatusCode::UNPROCESSABLE_ENTITY, Some(&format!("New password: {reason}")));
    }
    if !user.auth.user.force_password_reset {
        let old = form.get("old_password").cloned().unwrap_or_default();
        match crate::app::session::check_password(&state, client, &user.auth.user.email, old).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return password_form(&user, StatusCode::UNPROCESSABLE_ENTITY, Some("The current password is wrong."));
            }
            Err(err) => return error_page(&err),
        }
    }
    match crate::app::session::set_own_password(&state, &user.auth, new_password).await {
        Ok(_) => Redirect::to("/console").into_response(),
        Err(err) => error_page(&err),
    }
}

async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("console.css"))
}

async fn script() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("console.js"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every API error becomes a page with the status the API gives it: one mapping, so a 400 or a 503 is
    /// never shown as a 500.
    #[test]
    fn error_pages_keep_the_api_status() {
        let errors = [
            ApiError::BadRequest("the query is empty".into()),
            ApiError::Unauthenticated,
            ApiError::BadCredentials,
            ApiError::Forbidden,
            ApiError::NotFound("host"),
            ApiError::Conflict("taken".into()),
            ApiError::invalid("name", "too long"),
            ApiError::RateLimited { retry_after_s: 7, reason: "too many attempts" },
            ApiError::PasswordResetRequired,
            ApiError::TooLarge("over 1 MiB".into()),
            ApiError::Unavailable,
            ApiError::Internal(anyhow::anyhow!("boom")),
        ];
        for error in &errors {
            assert_eq!(error_page(error).status(), error.status(), "{error:?}");
        }
        assert_eq!(error_page(&errors[7]).headers()[header::RETRY_AFTER], "7");
    }
}
