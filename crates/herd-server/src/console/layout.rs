//! What every console page shares: the frame around a signed-in page (`templates/console/base.html`: title,
//! navigation with the current entry marked, the user, Log out) and the message page.

use super::{ConsoleUser, error_page};
use crate::error::ApiError;
use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;

/// The navigation, in order: (path, label).
const NAV: &[(&str, &str)] = &[
    ("/console", "Dashboard"),
    ("/console/hosts", "Hosts"),
    ("/console/policies", "Policies"),
    ("/console/labels", "Labels"),
    ("/console/teams", "Teams"),
    ("/console/scripts", "Scripts"),
    ("/console/profiles", "Profiles"),
    ("/console/users", "Users"),
    ("/console/settings", "Settings"),
    ("/console/activity", "Activity"),
];

/// The frame of a signed-in page: every page template has one as `frame` (the base template reads it).
pub struct Frame<'a> {
    pub title: String,
    /// The navigation entry marked as the current page ("" for none).
    current: &'static str,
    pub email: &'a str,
    /// The session's CSRF token, which every form carries.
    pub csrf: &'a str,
}

pub struct NavItem {
    pub path: &'static str,
    pub label: &'static str,
    pub current: bool,
}

impl<'a> Frame<'a> {
    pub fn new(user: &'a ConsoleUser, current: &'static str, title: impl Into<String>) -> Self {
        Frame { title: title.into(), current, email: &user.auth.user.email, csrf: &user.csrf }
    }

    pub fn nav(&self) -> impl Iterator<Item = NavItem> + '_ {
        NAV.iter().map(|&(path, label)| NavItem { path, label, current: path == self.current })
    }
}

/// A page with only a message; with `password_link`, the message leads to the password form.
#[derive(Template)]
#[template(path = "console/message.html")]
pub struct MessagePage<'a> {
    pub title: &'a str,
    pub text: &'a str,
    pub password_link: bool,
}

/// A signed-in page, rendered (200).
pub fn render(page: &impl Template) -> Response {
    crate::html::page(StatusCode::OK, page)
}

/// The page, or the error page for what went wrong.
pub fn page_or_error(result: Result<Response, ApiError>) -> Response {
    result.unwrap_or_else(|e| error_page(&e))
}
