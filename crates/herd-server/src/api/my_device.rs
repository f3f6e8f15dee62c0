//! The My Device page at `/device/{token}`: what the person at the keyboard sees of their computer — failing
//! policies first, with how to fix them, fixes under way, then the rest; a Refetch button; how to reach IT.
//! Server-rendered HTML that works without JavaScript (a small script only refreshes it while a refetch is
//! pending; without it, the page refreshes itself). The token is the only credential, so the page is never
//! cached and never sends it on as a Referer. Its markup: `html::my_device` and `templates/my_device/`.

use crate::app;
use crate::error::ApiError;
use crate::extract::Client;
use crate::html::my_device::MessagePage;
use crate::html::url_component;
use crate::state::SharedState;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route("/device/{token}", get(page))
        .route("/device/{token}/refetch", post(refetch))
        .route("/device/{token}/migrate", post(migrate))
        .route("/device/{token}/defer/{policy_id}", post(defer))
        .route("/assets/my-device.js", get(script))
        .route("/assets/my-device.css", get(stylesheet))
        .layer(middleware::map_response(harden))
}

/// Private, uncacheable, no third-party script, and the token never leaves in a Referer header.
async fn harden(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src https: data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

async fn page(State(state): State<SharedState>, Client(client): Client, Path(token): Path<String>) -> Response {
    match render(&state, client, &token).await {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(ApiError::DeviceTokenRejected(_)) => error_page(
            StatusCode::UNAUTHORIZED,
            "This link is not valid any more",
            "Open My Device again from your computer's herd menu: the link changes every hour.",
        ),
        Err(ApiError::RateLimited { .. }) => {
            error_page(StatusCode::TOO_MANY_REQUESTS, "Too many attempts", "Wait a minute, then try again.")
        }
        Err(other) => other.into_response(),
    }
}

fn error_page(status: StatusCode, title: &str, text: &str) -> Response {
    crate::html::page(status, &MessagePage { title, text })
}

async fn render(state: &SharedState, client: std::net::IpAddr, token: &str) -> Result<String, ApiError> {
    let record = app::device::host(state, client, token).await?;
    crate::html::my_device::render(state, record, Some(token)).await
}

/// Who chose, for choices made on the page (it cannot know who is signed in to the computer).
const MY_DEVICE: &str = "My Device page";

/// A choice button: records it (see `deferrals::choose`), then back to the page; a refused choice shows why.
async fn defer(
    State(state): State<SharedState>,
    Client(client): Client,
    Path((token, policy_id)): Path<(String, String)>,
    axum::Form(form): axum::Form<std::collections::HashMap<String, String>>,
) -> Response {
    let outcome = async {
        let host_id = crate::app::device::host_id(&state, client, &token).await?;
        let policy_id: i64 = policy_id.parse().map_err(|_| ApiError::NotFound("deferral"))?;
        let choice = form.get("choice").cloned().unwrap_or_default();
        let request = crate::app::deferrals::ChoiceRequest { choice, chosen_by: Some(MY_DEVICE.into()) };
        crate::app::deferrals::choose(&state, host_id, policy_id, &request).await
    }
    .await;
    match outcome {
        Ok(_) => Redirect::to(&format!("/device/{}", url_component(&token))).into_response(),
        Err(ApiError::DeviceTokenRejected(_)) => error_page(
            StatusCode::UNAUTHORIZED,
            "This link has expired",
            "Open My Device again from the herd icon on your computer.",
        ),
        Err(ApiError::Conflict(reason)) | Err(ApiError::Validation { reason, .. }) => error_page(
            StatusCode::CONFLICT,
            "That choice was not recorded",
            &format!("{reason}. Go back to My Device to see what you can choose now."),
        ),
        Err(other) => other.into_response(),
    }
}

/// The Refetch button: asks for every vital and policy at the next check-in, then back to the page.
async fn refetch(
    State(state): State<SharedState>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<Redirect, ApiError> {
    // A host deleted since its page opened: its token is no longer good.
    app::device::refetch(&state, client, &token).await.map_err(|e| match e {
        ApiError::NotFound(_) => crate::app::device::rejected(&token),
        other => other,
    })?;
    Ok(Redirect::to(&format!("/device/{}", url_component(&token))))
}

/// The Start migration button: starts it (see `device::start_migration`), then back to the page.
async fn migrate(
    State(state): State<SharedState>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<Redirect, ApiError> {
    let record = app::device::host(&state, client, &token).await?;
    crate::app::device::start_migration(&state, &record).await?;
    Ok(Redirect::to(&format!("/device/{}", url_component(&token))))
}

/// While a refetch is pending, reloads the page's main part every 5 s until the results are in (the status
/// note then disappears). Announced politely to screen readers.
async fn script() -> impl IntoResponse {
    const JS: &str = r#"(function () {
  function poll() {
    if (!document.querySelector("[data-pending]")) return;
    fetch(window.location.pathname, {cache: "no-store"}).then(function (r) { return r.text(); }).then(function (html) {
      var next = new DOMParser().parseFromString(html, "text/html").getElementById("device");
      var main = document.getElementById("device");
      if (next && main) { main.innerHTML = next.innerHTML; main.setAttribute("aria-live", "polite"); }
      setTimeout(poll, 5000);
    }).catch(function () { setTimeout(poll, 10000); });
  }
  document.addEventListener("DOMContentLoaded", function () { setTimeout(poll, 5000); });
})();
"#;
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], JS)
}

async fn stylesheet() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("my_device.css"))
}
