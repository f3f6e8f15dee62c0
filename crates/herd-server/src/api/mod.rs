//! HTTP routing: one router per API surface, assembled here with the layers every request passes through.

pub mod activities;
pub mod config;
pub mod deferrals;
pub mod deliveries;
pub mod device;
pub mod hosts;
pub mod labels;
pub mod my_device;
pub mod ops;
pub mod orbit;
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
use axum::routing::{MethodRouter, Route};
use std::convert::Infallible;
use std::time::Instant;
use tower::{Layer, Service};

/// A router that remembers its paths. Every `routes()` function builds one, so [`route_table`] lists every
/// route the server answers (axum's `Router` cannot list its own); the authorization matrix test
/// (`tests/authz_matrix.rs`) fails for a route it has no row for.
#[derive(Clone)]
pub struct Routes {
    router: Router<SharedState>,
    paths: Vec<String>,
}

impl Default for Routes {
    fn default() -> Self {
        Routes::new()
    }
}

impl Routes {
    pub fn new() -> Routes {
        Routes { router: Router::new(), paths: Vec::new() }
    }

    pub fn route(mut self, path: &str, handler: MethodRouter<SharedState>) -> Routes {
        self.paths.push(path.to_string());
        self.router = self.router.route(path, handler);
        self
    }

    pub fn merge(mut self, other: Routes) -> Routes {
        self.paths.extend(other.paths);
        self.router = self.router.merge(other.router);
        self
    }

    pub fn nest(mut self, prefix: &str, other: Routes) -> Routes {
        self.paths.extend(other.paths.iter().map(|p| format!("{prefix}{p}")));
        self.router = self.router.nest(prefix, other.router);
        self
    }

    /// `Router::layer`: wraps the routes added so far.
    pub fn layer<L>(mut self, layer: L) -> Routes
    where
        L: Layer<Route> + Clone + Send + Sync + 'static,
        L::Service: Service<Request> + Clone + Send + Sync + 'static,
        <L::Service as Service<Request>>::Response: IntoResponse + 'static,
        <L::Service as Service<Request>>::Error: Into<Infallible> + 'static,
        <L::Service as Service<Request>>::Future: Send + 'static,
    {
        self.router = self.router.layer(layer);
        self
    }
}

/// The versions of Fleet's REST API herd serves. Fleet registers most routes for every version and some only
/// up to or from one (`EndingAtVersion("v1")`, `StartingAtVersion("2022-04")` in its `handler.go`); `latest`
/// is the newest, `2022-04`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FleetVersion {
    V1,
    Latest,
}

impl FleetVersion {
    fn prefix(self) -> &'static str {
        match self {
            FleetVersion::V1 => "/api/v1/fleet",
            FleetVersion::Latest => "/api/latest/fleet",
        }
    }

    /// The routes only this version has.
    fn own_routes(self) -> Routes {
        match self {
            FleetVersion::V1 => policies::v1_routes(),
            FleetVersion::Latest => policies::latest_routes(),
        }
    }
}

/// Fleet's REST API as one version names it.
fn fleet_api(version: FleetVersion) -> Routes {
    Routes::new()
        .merge(version.own_routes())
        .merge(session::routes())
        .merge(users::routes())
        .merge(teams::routes())
        .merge(hosts::routes())
        .merge(config::routes())
        .merge(policies::routes())
        .merge(labels::routes())
        .merge(activities::routes())
        .merge(device::routes())
        .merge(deferrals::device_routes())
        .merge(deliveries::routes())
        .merge(scripts::routes())
        .merge(profiles::routes())
}

fn all_routes() -> Routes {
    // Multipart uploads and forms of the REST API and console get the REST limit; JSON bodies get the limits
    // of their extractor (`crate::extract`), each endpoint's own.
    let mut routes = Routes::new();
    for version in [FleetVersion::V1, FleetVersion::Latest] {
        routes = routes.nest(version.prefix(), fleet_api(version).layer(DefaultBodyLimit::max(REST_LIMITS.sent)));
    }
    routes
        .merge(osquery::routes())
        .merge(agent_routes())
        .merge(my_device::routes())
        .merge(crate::console::routes().layer(DefaultBodyLimit::max(REST_LIMITS.sent)))
        .merge(ops::routes())
}

/// The agents' endpoints at Fleet's orbit paths: fleetd's own and herd-agent's (which fleetd shares for a
/// script's result and the device token). Every answer says what the server supports, as Fleet's do.
fn agent_routes() -> Routes {
    Routes::new()
        .merge(orbit::routes())
        .merge(device::agent_routes())
        .merge(scripts::agent_routes())
        .merge(deferrals::agent_routes())
        .merge(profiles::agent_routes())
        .layer(middleware::map_response(orbit::with_capabilities))
}

/// Every route path the server answers, as declared (`/api/v1/fleet/hosts/{id}`). Each path's methods are
/// in the `Allow` header of its 405 answer.
pub fn route_table() -> Vec<String> {
    all_routes().paths
}

pub fn router(state: SharedState) -> Router {
    all_routes()
        .router
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(LARGEST_BODY))
        .layer(tower::util::MapRequestLayer::new(crate::drain::drain_unread))
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
