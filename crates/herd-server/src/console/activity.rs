//! The activity feed (global readers only, as `GET /activities`), 50 a page.

use super::ConsoleUser;
use super::layout::{Frame, page_or_error, render};
use super::shared::ActivityRow;
use crate::error::ApiError;
use crate::state::SharedState;
use askama::Template;
use axum::extract::{Query, State};
use axum::response::Response;
use herd_core::roles::{Action, Scope};
use serde::Deserialize;

const PER_PAGE: i64 = 50;

#[derive(Template)]
#[template(path = "console/activity.html")]
struct ActivityPage<'a> {
    frame: Frame<'a>,
    activities: Vec<ActivityRow>,
    newer: Option<i64>,
    older: Option<i64>,
}

#[derive(Deserialize)]
pub struct ActivityQuery {
    /// The page number from 0 (checked in `page`, which names the field).
    page: Option<String>,
}

pub async fn page(State(state): State<SharedState>, user: ConsoleUser, Query(query): Query<ActivityQuery>) -> Response {
    page_or_error(
        async {
            // The feed covers every team: global users only, as `GET /activities`.
            user.auth.require(Action::Read, Scope::Global)?;
            let number = query.page.as_deref().map_or(Ok(0), |p| {
                p.trim().parse().map_err(|_| ApiError::invalid("page", format!("must be a whole number, not {p:?}")))
            })?;
            let page = crate::paging::Page::new(number, PER_PAGE)?;
            let list = state.store.list_activities(page.offset(), page.per_page() + 1).await?;
            let view = ActivityPage {
                frame: Frame::new(&user, "/console/activity", "Activity"),
                activities: ActivityRow::all(&list[..list.len().min(PER_PAGE as usize)]),
                newer: page.has_previous().then(|| page.page() - 1),
                older: (list.len() > PER_PAGE as usize).then(|| page.page() + 1),
            };
            Ok(render(&view))
        }
        .await,
    )
}
