//! HTTP routing: one router per API surface, assembled here with the layers every request passes through.

pub mod activities;
pub mod config;
pub mod deferrals;
pub mod deliveries;
pub mod device;
pub mod hosts;
pub mod my_device;
pub mod ops;
pub mod osquery;
pub mod policies;
pub mod profiles;
pub mod scripts;
pub mod session;
pub mod teams;
pub mod users;

use crate::error::ApiError;
use crate::extract::{LARGEST_BODY, REST_LIMITS};
use crate::state::SharedState;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::time::Instant;

/// Fleet's REST API, under `/api/v1/fleet` and its alias `/api/latest/fleet`.
fn fleet_api() -> Router<SharedState> {
    Router::new()
        .merge(session::routes())
        .merge(users::routes())
        .merge(teams::routes())
        .merge(hosts::routes())
        .merge(config::routes())
        .merge(policies::routes())
        .merge(activities::routes())
        .merge(device::routes())
        .merge(deferrals::device_routes())
        .merge(deliveries::routes())
        .merge(scripts::routes())
        .merge(profiles::routes())
}

pub fn router(state: SharedState) -> Router {
    // Multipart uploads and forms of the REST API and console get the REST limit; JSON bodies get the limits
    // of their extractor (`crate::extract`), each endpoint's own.
    let fleet = fleet_api().layer(DefaultBodyLimit::max(REST_LIMITS.sent));
    Router::new()
        .nest("/api/v1/fleet", fleet.clone())
        .nest("/api/latest/fleet", fleet)
        .merge(osquery::routes())
        .merge(device::agent_routes())
        .merge(my_device::routes())
        .merge(crate::console::routes().layer(DefaultBodyLimit::max(REST_LIMITS.sent)))
        .merge(scripts::agent_routes())
        .merge(deferrals::agent_routes())
        .merge(profiles::agent_routes())
        .merge(ops::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(LARGEST_BODY))
        .layer(middleware::from_fn(crate::drain::drain_unread))
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .with_state(state)
}

async fn not_found() -> Response {
    ApiError::NotFound("route").into_response()
}

/// Counts every request by route template (not raw path, so ids do not explode the label set) and status.
async fn observe(State(state): State<SharedState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let method = request.method().to_string();
    let response = next.run(request).await;
    state.metrics.observe_request(&route, &method, response.status().as_u16(), started.elapsed().as_secs_f64());
    response
}
