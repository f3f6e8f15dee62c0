//! `GET|PATCH /api/v1/fleet/config`: organisation info, server settings, host settings, agent options.

use crate::app;
use crate::auth::AuthUser;
use crate::error::ApiError;
use crate::extract::ApiJson;
use crate::state::SharedState;
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use herd_proto::fleet::AppConfig;
use serde_json::Value;

pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new().route("/config", get(get_config).patch(patch_config)).route("/version", get(version))
}

/// Fleet's `GET /version`, with herd's own facts: the crate version, and the git revision when the build set
/// `HERD_GIT_REVISION` (nothing is looked up at build time). Fleet's fields herd has no value for (its branch,
/// Go version, build date and user) are empty strings, so Fleet clients decode the same shape.
async fn version(_auth: AuthUser) -> Json<Value> {
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "branch": "",
        "revision": option_env!("HERD_GIT_REVISION").unwrap_or(""),
        "go_version": "",
        "build_date": "",
        "build_user": "",
    }))
}

async fn get_config(State(state): State<SharedState>, auth: AuthUser) -> Result<Json<AppConfig>, ApiError> {
    Ok(Json(app::config::view(&state, &auth).await?))
}

async fn patch_config(
    State(state): State<SharedState>,
    auth: AuthUser,
    ApiJson(patch): ApiJson<Value>,
) -> Result<Json<AppConfig>, ApiError> {
    Ok(Json(app::config::update(&state, &auth, &patch).await?))
}
