//! `GET /activities`: the audit feed, newest first.

use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::paging::Page;
use crate::state::SharedState;
use crate::wire;
use axum::Json;
use axum::extract::{Query, State};
use axum::routing::get;
use herd_core::roles::{Action, Scope};
use herd_proto::fleet::{ActivitiesMeta, ActivitiesResponse};
use std::collections::HashMap;

pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new().route("/activities", get(list))
}

async fn list(
    State(state): State<SharedState>,
    auth: AuthUser,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<ActivitiesResponse>, ApiError> {
    auth.require(Action::Read, Scope::Global)?;
    let page = Page::from_params(&params, 100)?;
    // One extra row tells whether there is a next page.
    let mut records = state.store.list_activities(page.offset(), page.per_page() + 1).await?;
    let has_next_results = records.len() as i64 > page.per_page();
    records.truncate(page.per_page() as usize);
    Ok(Json(ActivitiesResponse {
        activities: records.into_iter().map(wire::activity).collect(),
        meta: ActivitiesMeta { has_next_results, has_previous_results: page.has_previous() },
    }))
}
