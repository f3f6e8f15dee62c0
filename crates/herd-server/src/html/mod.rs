//! Server-rendered pages (the console and My Device): askama templates under `crates/herd-server/templates/`,
//! checked when the crate compiles and HTML-escaped by default, so no value reaches a page unescaped unless a
//! template says `|safe` (none does). This module turns a template into a response and percent-encodes what goes
//! into a URL built outside a template (redirects).

pub mod my_device;

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Everything but RFC 3986's unreserved characters is encoded (`/` too): safe in a path segment or a query value.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// `text` percent-encoded for one path segment or query value.
pub fn url_component(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// A rendered page with `status`. Rendering fails only if a value's `Display` fails, which none of ours does; it
/// is logged and answered as a plain 500 all the same.
pub fn page(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (status, [(header::CONTENT_TYPE, "text/html; charset=utf-8")], html).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "rendering a page failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_components_keep_only_unreserved_characters() {
        for (text, encoded) in [
            ("ab-_.~/?", "ab-_.~%2F%3F"),
            ("/console/policies", "%2Fconsole%2Fpolicies"),
            ("a b&c=d", "a%20b%26c%3Dd"),
            ("é", "%C3%A9"),
            ("", ""),
        ] {
            assert_eq!(url_component(text), encoded, "{text:?}");
        }
    }
}
