//! Server-rendered pages (the console and My Device): askama templates under `crates/herd-server/templates/`,
//! checked when the crate compiles and HTML-escaped by default (`NamedEntities`, set in `askama.toml`), so no
//! value reaches a page unescaped unless a template says `|safe` (none does). This module also turns a template
//! into a response and percent-encodes what goes into a URL built outside a template (redirects, links).

pub mod my_device;

use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// The HTML escaper of every template (`askama.toml`): `& < > " '` as named entities (`&#39;` for the
/// apostrophe, which HTML 4 has no name for), safe in element content and in quoted attributes.
#[derive(Clone, Copy)]
pub struct NamedEntities;

impl askama::filters::Escaper for NamedEntities {
    fn write_escaped_str<W: std::fmt::Write>(&self, mut dest: W, text: &str) -> std::fmt::Result {
        let mut rest = text;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            dest.write_str(&rest[..at])?;
            dest.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        dest.write_str(rest)
    }
}

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
    fn markup_is_escaped_with_named_entities() {
        use askama::filters::Escaper;
        for (text, escaped) in [
            ("<b>\"x\" & 'y'</b>", "&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;"),
            ("Acme <R&D>", "Acme &lt;R&amp;D&gt;"),
            ("plain — text", "plain — text"),
            ("", ""),
        ] {
            let mut out = String::new();
            NamedEntities.write_escaped_str(&mut out, text).unwrap();
            assert_eq!(out, escaped, "{text:?}");
        }
    }

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
