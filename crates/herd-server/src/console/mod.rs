//! The admin console: server-rendered HTML under `/console`, sharing the REST API's sessions and roles.
//! No front-end server and no third-party script: the stylesheet and one small script (live regions) are
//! embedded in the binary. Forms post with a per-session CSRF token; the session cookie is HttpOnly, Secure
//! and SameSite=Strict.
//!
//! Live updates: any element with `data-live` and an `id` is refreshed every few seconds from the same URL
//! (the script fetches the page and swaps those elements), so counts and results change without a reload.
//!
//! Layout: one file per area (`dashboard`, `hosts`, `policies`, `teams`, `scripts`, `profiles`, `users`,
//! `settings`, `activity`, and `session` for logging in and out and the password), each with its typed forms and
//! the views its templates (`templates/console/`) render; `layout` holds the frame every page shares, `forms`
//! how form fields are read, `shared` what several areas show alike. Errors become pages here (`error_page`),
//! with the status `ApiError::status` gives them.

mod activity;
mod dashboard;
mod forms;
mod hosts;
mod labels;
mod layout;
mod policies;
mod profiles;
mod scripts;
mod session;
mod settings;
mod shared;
mod teams;
mod users;

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::state::SharedState;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use layout::MessagePage;
use sha2::Digest;

const COOKIE: &str = "herd_console";

pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route("/console", get(dashboard::page))
        .route("/console/login", get(session::login_page).post(session::login))
        .route("/console/logout", post(session::logout))
        .route("/console/password", get(session::password_page).post(session::change_password))
        .route("/console/hosts", get(hosts::list))
        .route("/console/hosts/{id}", get(hosts::page))
        .route("/hosts/{id}", get(hosts::fleet_host_link))
        .route("/console/hosts/{id}/action", post(hosts::action))
        .route("/console/hosts/{id}/my-device", get(hosts::my_device))
        .route("/console/policies", get(policies::list))
        .route("/console/policies/new", get(policies::form).post(policies::save))
        .route("/console/policies/{id}", get(policies::form).post(policies::save))
        .route("/console/policies/{id}/delete", post(policies::delete))
        .route("/console/scripts/{id}/delete", post(scripts::delete))
        .route("/console/profiles/{uuid}/delete", post(profiles::delete))
        .route("/console/teams", get(teams::page).post(teams::create))
        .route("/console/labels", get(labels::page).post(labels::create))
        .route("/console/labels/{id}/delete", post(labels::delete))
        .route("/console/scripts", get(scripts::page).post(scripts::create))
        .route("/console/profiles", get(profiles::page).post(profiles::create))
        .route("/console/users", get(users::page).post(users::create))
        .route("/console/settings", get(settings::page).post(settings::save))
        .route("/console/activity", get(activity::page))
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
        Redirect::to(&format!("/console/login?next={}", crate::html::url_component(&self.0))).into_response()
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
                    return Err(password_change_required(
                        StatusCode::FORBIDDEN,
                        "An administrator set your password. Choose your own before using the console:",
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
    /// A posted form's CSRF token (`sent`) must be this session's: the refusal page when it is not.
    pub fn csrf_refusal(&self, sent: &str) -> Option<Response> {
        let ok: bool = subtle::ConstantTimeEq::ct_eq(sent.as_bytes(), self.csrf.as_bytes()).into();
        (!ok).then(|| message_page(StatusCode::FORBIDDEN, "Form expired", "Reload the page and try again."))
    }
}

/// A page with only a message (errors, refusals), usable signed out.
pub fn message_page(status: StatusCode, title: &str, text: &str) -> Response {
    crate::html::page(status, &MessagePage { title, text, password_link: false })
}

/// A message page ending with the link to the password form (`text` leads to it).
fn password_change_required(status: StatusCode, text: &str) -> Response {
    crate::html::page(status, &MessagePage { title: "Password change required", text, password_link: true })
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
        ApiError::PasswordResetRequired => password_change_required(status, "Choose your own password first:"),
        ApiError::Unavailable => {
            message_page(status, "Try again shortly", "The database is unavailable; nothing was changed.")
        }
        ApiError::Internal(err) => {
            tracing::error!(error = format!("{err:#}"), "console page failed");
            message_page(status, "Something went wrong", "The error was logged.")
        }
        ApiError::BadRequest(_)
        | ApiError::TooLarge(_)
        | ApiError::Unauthenticated
        | ApiError::BadCredentials
        | ApiError::DeviceTokenRejected(_) => message_page(status, "Not done", &capitalised(&error.to_string())),
    };
    if let ApiError::RateLimited { retry_after_s, .. } = error {
        page.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_s));
    }
    page
}

/// After a form that changes something: back to `back`, or the error page for what went wrong.
fn done_or_error(result: Result<(), ApiError>, back: &str) -> Response {
    match result {
        Ok(()) => Redirect::to(back).into_response(),
        Err(e) => error_page(&e),
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
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

    /// Message pages escape their text; only the password-change page links (to the password form).
    #[test]
    fn message_pages() {
        use askama::Template;
        for (page, expected) in [
            (
                MessagePage { title: "Not saved", text: "name: <b> & \"x\"", password_link: false },
                "<h1>Not saved</h1>\n<p>name: &lt;b&gt; &amp; &quot;x&quot;</p>",
            ),
            (
                MessagePage {
                    title: "Password change required",
                    text: "Choose your own password first:",
                    password_link: true,
                },
                "<p>Choose your own password first: <a href=\"/console/password\">change your password</a>.</p>",
            ),
        ] {
            let html = page.render().unwrap();
            assert!(html.contains(expected), "{expected} missing from {html}");
        }
    }
}
