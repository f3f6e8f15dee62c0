//! The My Device page at `/device/{token}`: what the person at the keyboard sees of their computer — failing
//! policies first, with how to fix them, fixes under way, then the rest; a Refetch button; how to reach IT.
//! Server-rendered HTML that works without JavaScript (a small script only refreshes it while a refetch is
//! pending; without it, the page refreshes itself). The token is the only credential, so the page is never
//! cached and never sends it on as a Referer.

use crate::app;
use crate::error::ApiError;
use crate::extract::Client;
use crate::state::SharedState;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use herd_proto::fleet::DevicePolicy;
use std::fmt::Write;

pub fn routes() -> crate::api::Routes {
    crate::api::Routes::new()
        .route("/device/{token}", get(page))
        .route("/device/{token}/refetch", post(refetch))
        .route("/device/{token}/migrate", post(migrate))
        .route("/device/{token}/defer/{policy_id}", post(defer))
        .route("/assets/my-device.js", get(script))
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
            "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; img-src https: data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    response
}

/// Escapes text for HTML element content and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Only http(s) links and images from the configuration are shown (a `javascript:` URL never is).
fn safe_url(url: &str) -> Option<String> {
    (url.starts_with("https://") || url.starts_with("http://")).then(|| escape(url))
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;color:#1a1a1a;background:#fff;line-height:1.5}\
header{display:flex;align-items:center;gap:1rem;padding:1rem 1.5rem;border-bottom:1px solid #767676}\
header img{max-height:40px}main{max-width:48rem;padding:1rem 1.5rem}\
h1{font-size:1.6rem;margin:.5rem 0}h2{font-size:1.25rem;margin-top:2rem}h3{font-size:1.05rem;margin:0}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem}dt{font-weight:600}dd{margin:0}\
ul.policies{list-style:none;padding:0}ul.policies li{border:1px solid #767676;border-radius:6px;padding:.75rem 1rem;margin:.5rem 0}\
li.fail{border-left:6px solid #b00020}li.pass{border-left:6px solid #1b6e2a}li.none{border-left:6px solid #595959}\
.badge{display:inline-block;font-size:.85rem;font-weight:600;padding:0 .5rem;border-radius:4px;color:#fff}\
.badge.fail{background:#b00020}.badge.pass{background:#1b6e2a}.badge.none{background:#595959}.badge.fixing{background:#0b5394}\
button{font:inherit;font-weight:600;padding:.5rem 1rem;border-radius:6px;border:2px solid #0b5394;background:#0b5394;color:#fff;cursor:pointer}\
button:focus-visible,a:focus-visible{outline:3px solid #e8a200;outline-offset:2px}a{color:#0b5394}\
.notice{border:2px solid #0b5394;border-radius:6px;padding:.75rem 1rem;margin:1rem 0}.notice h2{margin-top:0}\
article[data-deferral] h3{margin-top:.75rem}form[action*='/defer/']{display:flex;flex-wrap:wrap;gap:.5rem}";

fn policy_item(out: &mut String, policy: &DevicePolicy) {
    let (class, label) = match policy.response.as_str() {
        "fail" => ("fail", "Failing"),
        "pass" => ("pass", "Passing"),
        _ => ("none", "Not checked yet"),
    };
    let _ = write!(
        out,
        "<li class=\"{class}\"><h3>{}</h3> <span class=\"badge {class}\">{label}</span>",
        escape(&policy.name)
    );
    if policy.critical {
        out.push_str(" <span class=\"badge fail\">Critical</span>");
    }
    if policy.remediating {
        out.push_str(" <span class=\"badge fixing\">A fix is being applied</span>");
    }
    if !policy.description.is_empty() {
        let _ = write!(out, "<p>{}</p>", escape(&policy.description));
    }
    if policy.response == "fail" && !policy.resolution.is_empty() {
        let _ = write!(out, "<p><strong>How to fix:</strong> {}</p>", escape(&policy.resolution));
    }
    out.push_str("</li>");
}

fn policy_section(out: &mut String, id: &str, title: &str, policies: &[&DevicePolicy], empty: &str) {
    let _ = write!(out, "<section aria-labelledby=\"{id}\"><h2 id=\"{id}\">{title} ({})</h2>", policies.len());
    if policies.is_empty() {
        let _ = write!(out, "<p>{empty}</p>");
    } else {
        out.push_str("<ul class=\"policies\">");
        for policy in policies {
            policy_item(out, policy);
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
}

async fn page(State(state): State<SharedState>, Client(client): Client, Path(token): Path<String>) -> Response {
    match render(&state, client, &token).await {
        Ok(html) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(ApiError::Unauthenticated) => error_page(
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
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>{title}</title><style>{STYLE}</style></head>\
         <body><main><h1>{title}</h1><p>{text}</p></main></body></html>",
        title = escape(title),
        text = escape(text)
    );
    (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response()
}

async fn render(state: &SharedState, client: std::net::IpAddr, token: &str) -> Result<String, ApiError> {
    let record = app::device::host(state, client, token).await?;
    let needs_migration = crate::app::device::needs_migration(state, &record);
    let migration_state = record.migration_state.clone();
    let window_open = record.migration_window_until.is_some_and(|until| until > crate::state::now_ms());
    let (host, policies) = crate::app::device::view(state, record).await?;
    let settings = state.settings.get();
    let org = &settings.config.org_info;
    let token = escape(token);
    let name = if host.display_name.is_empty() { &host.hostname } else { &host.display_name };
    let mut out = String::with_capacity(8192);
    let _ = write!(
        out,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>My device — {}</title><style>{STYLE}</style>",
        escape(name)
    );
    if host.refetch_requested || window_open {
        // Without JavaScript the page refreshes itself until the results are in.
        out.push_str("<noscript><meta http-equiv=\"refresh\" content=\"10\"></noscript>");
    }
    out.push_str("<script src=\"/assets/my-device.js\" defer></script></head><body>");
    out.push_str("<header>");
    if let Some(logo) = safe_url(&org.org_logo_url_light_background).or_else(|| safe_url(&org.org_logo_url)) {
        let alt = if org.org_name.is_empty() {
            "Organisation logo".to_string()
        } else {
            format!("{} logo", escape(&org.org_name))
        };
        let _ = write!(out, "<img src=\"{logo}\" alt=\"{alt}\">");
    }
    let _ = write!(out, "<span>{}</span>", escape(if org.org_name.is_empty() { "My device" } else { &org.org_name }));
    if let Some(contact) = safe_url(&org.contact_url) {
        let _ = write!(out, " <a href=\"{contact}\" rel=\"noreferrer\">Contact IT</a>");
    }
    out.push_str("</header><main id=\"device\">");
    let _ = write!(out, "<h1>{}</h1><dl>", escape(name));
    let seen = host.seen_time.as_deref().unwrap_or("never");
    for (term, value) in
        [("Operating system", host.os_version.as_str()), ("Status", host.status.as_str()), ("Last seen", seen)]
    {
        let _ = write!(out, "<dt>{term}</dt><dd>{}</dd>", escape(value));
    }
    out.push_str("</dl>");

    if needs_migration {
        let org_name = if org.org_name.is_empty() { "your organisation" } else { org.org_name.as_str() };
        let _ = write!(
            out,
            "<section class=\"notice\" aria-labelledby=\"migration\"><h2 id=\"migration\">Move this device to {}'s \
             management</h2>",
            escape(org_name)
        );
        if window_open {
            out.push_str(
                "<p role=\"status\" data-pending>Migration started. This takes a few minutes; keep the device on.</p>",
            );
        } else {
            if migration_state == "timed_out" {
                out.push_str("<p>The last attempt did not finish. You can start it again.</p>");
            }
            let _ = write!(
                out,
                "<p>Your device is still managed by the previous system. Moving it takes a few minutes.</p>\
                 <form method=\"post\" action=\"/device/{token}/migrate\"><button type=\"submit\">Start migration\
                 </button></form>"
            );
        }
        out.push_str("</section>");
    }
    deferral_section(&mut out, &token, host.deferrals.as_deref().unwrap_or_default());
    let failing: Vec<&DevicePolicy> = policies.iter().filter(|p| p.response == "fail").collect();
    let fixing: Vec<&DevicePolicy> = policies.iter().filter(|p| p.remediating).collect();
    let unanswered: Vec<&DevicePolicy> = policies.iter().filter(|p| p.response.is_empty()).collect();
    let passing: Vec<&DevicePolicy> = policies.iter().filter(|p| p.response == "pass").collect();
    if host.refetch_requested {
        out.push_str(
            "<p class=\"notice\" role=\"status\" data-pending>Checking your device again… \
             Results appear here as they arrive.</p>",
        );
    }
    let _ = write!(
        out,
        "<form method=\"post\" action=\"/device/{token}/refetch\"><button type=\"submit\">Refetch</button> \
         <span>Check this device again now.</span></form>"
    );
    policy_section(&mut out, "failing", "Failing policies", &failing, "Nothing to fix: every checked policy passes.");
    if !fixing.is_empty() {
        policy_section(&mut out, "fixing", "Fixes under way", &fixing, "");
    }
    if !unanswered.is_empty() {
        policy_section(&mut out, "pending", "Not checked yet", &unanswered, "");
    }
    policy_section(&mut out, "passing", "Passing policies", &passing, "None yet.");
    out.push_str("</main></body></html>");
    Ok(out)
}

/// A time as the device's user reads it: in the host's time zone.
fn local(rfc3339: Option<&str>, time_zone: Option<&str>) -> String {
    let tz = time_zone.and_then(|z| z.parse().ok()).unwrap_or(herd_core::deferral::Tz::UTC);
    match rfc3339.map(herd_core::deferral::parse_instant) {
        Some(Ok(at)) => herd_core::deferral::local_time(at, tz),
        _ => "no set time".into(),
    }
}

/// Fixes that wait on the user: the prompt with its choices (one button each), the schedule they chose, or
/// why the device is not asking now.
fn deferral_section(out: &mut String, token: &str, deferrals: &[herd_proto::fleet::HostDeferral]) {
    let active: Vec<_> = deferrals
        .iter()
        .filter(|d| matches!(d.state.as_str(), "prompting" | "scheduled" | "waiting" | "running"))
        .collect();
    if active.is_empty() {
        return;
    }
    out.push_str(
        "<section class=\"notice\" aria-labelledby=\"deferrals\"><h2 id=\"deferrals\">Fixes waiting for you</h2>",
    );
    for d in active {
        let zone = d.time_zone.as_deref();
        let _ = write!(out, "<article data-deferral=\"{}\" data-state=\"{}\">", d.policy_id, escape(&d.state));
        let _ = write!(out, "<h3>{}</h3><p>{}</p>", escape(&d.title), escape(&d.message));
        let _ = write!(
            out,
            "<p>Deferred {} of {} times. Deadline: {}.</p>",
            d.deferrals_used,
            d.max_deferrals,
            escape(&local(d.deadline.as_deref(), zone))
        );
        match d.state.as_str() {
            "prompting" => {
                let _ = write!(
                    out,
                    "<form method=\"post\" action=\"/device/{token}/defer/{}\" aria-label=\"When to run the fix for {}\">",
                    d.policy_id,
                    escape(&d.policy_name)
                );
                for choice in &d.offered {
                    let text = match &choice.runs_at {
                        None => choice.label.clone(),
                        Some(_) => format!("In {} ({})", choice.label, local(choice.runs_at.as_deref(), zone))
                            .replace("In tomorrow", "Tomorrow"),
                    };
                    let _ = write!(
                        out,
                        " <button type=\"submit\" name=\"choice\" value=\"{}\">{}</button>",
                        escape(&choice.choice),
                        escape(&text)
                    );
                }
                out.push_str("</form>");
            }
            "scheduled" => {
                let _ = write!(
                    out,
                    "<p role=\"status\">Scheduled: the fix runs by itself at {}.</p>",
                    escape(&local(d.deferred_until.as_deref(), zone))
                );
            }
            "running" => out.push_str("<p role=\"status\" data-pending>The fix is running now.</p>"),
            _ => {
                let _ =
                    write!(out, "<p>Not asking now: {}.</p>", escape(d.waiting_reason.as_deref().unwrap_or("waiting")));
            }
        }
        out.push_str("</article>");
    }
    out.push_str("</section>");
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
        Ok(_) => Redirect::to(&format!("/device/{}", urlencode(&token))).into_response(),
        Err(ApiError::Unauthenticated) => error_page(
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
    let host_id = crate::app::device::host_id(&state, client, &token).await?;
    if !state.store.request_refetch(host_id, crate::state::now_ms()).await? {
        return Err(ApiError::Unauthenticated);
    }
    state.hosts.evict(host_id);
    Ok(Redirect::to(&format!("/device/{}", urlencode(&token))))
}

/// The Start migration button: starts it (see `device::start_migration`), then back to the page.
async fn migrate(
    State(state): State<SharedState>,
    Client(client): Client,
    Path(token): Path<String>,
) -> Result<Redirect, ApiError> {
    let record = app::device::host(&state, client, &token).await?;
    crate::app::device::start_migration(&state, &record).await?;
    Ok(Redirect::to(&format!("/device/{}", urlencode(&token))))
}

pub(crate) fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_refuses_script_urls() {
        assert_eq!(escape("<b>\"x\" & 'y'</b>"), "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;");
        assert_eq!(safe_url("javascript:alert(1)"), None);
        assert_eq!(safe_url("https://x.test/a?b=1&c=2").as_deref(), Some("https://x.test/a?b=1&amp;c=2"));
        assert_eq!(urlencode("ab-_.~/?"), "ab-_.~%2F%3F");
    }
}
