//! `GET /activities`: the audit feed, newest first.

use crate::auth::AuthUser;
use crate::error::ApiError;
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
    let number = |name: &str, default: i64| -> Result<i64, ApiError> {
        params.get(name).map_or(Ok(default), |v| {
            v.parse::<i64>().map_err(|_| ApiError::invalid(name, format!("must be an integer, not {v:?}")))
        })
    };
    let page = number("page", 0)?;
    let per_page = number("per_page", 100)?;
    if page < 0 || !(1..=1000).contains(&per_page) {
        return Err(ApiError::invalid("per_page", "page must be ≥ 0 and per_page between 1 and 1000"));
    }
    // One extra row tells whether there is a next page.
    let mut records = state.store.list_activities(page * per_page, per_page + 1).await?;
    let has_next_results = records.len() as i64 > per_page;
    records.truncate(per_page as usize);
    Ok(Json(ActivitiesResponse {
        activities: records.into_iter().map(wire::activity).collect(),
        meta: ActivitiesMeta { has_next_results, has_previous_results: page > 0 },
    }))
}
