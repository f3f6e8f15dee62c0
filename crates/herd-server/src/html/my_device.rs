//! The My Device page's view (templates `my_device/*.html`): what the person at the keyboard sees of their
//! computer, built from what `api::my_device` read — failing policies first, then fixes under way, unanswered
//! ones and passing ones; the migration banner; the fixes waiting on a choice.

use askama::Template;
use herd_proto::fleet::{DevicePolicy, Host, HostDeferral, OrgInfo};

#[derive(Template)]
#[template(path = "my_device/page.html")]
pub struct DevicePage<'a> {
    /// The device token of the person's own link; none on an admin's preview from the console, where the
    /// buttons are shown but inert (they act only through the device's link).
    token: Option<&'a str>,
    name: &'a str,
    host: &'a Host,
    /// The organisation's name, or "My device" when none is set.
    org_label: &'a str,
    /// The logo (only an http(s) URL) and its text alternative.
    logo: Option<(&'a str, String)>,
    contact: Option<&'a str>,
    migration: Option<Migration<'a>>,
    deferrals: Vec<DeferralView<'a>>,
    /// Without JavaScript the page refreshes itself while results are on their way.
    refresh: bool,
    sections: Vec<PolicySection<'a>>,
}

/// The banner offering to move the device to the organisation's management.
struct Migration<'a> {
    org_name: &'a str,
    started: bool,
    timed_out: bool,
}

struct PolicySection<'a> {
    id: &'static str,
    title: &'static str,
    policies: Vec<PolicyItem<'a>>,
    empty: &'static str,
}

struct PolicyItem<'a> {
    policy: &'a DevicePolicy,
    /// The class of its item and badge, and the badge's text.
    class: &'static str,
    label: &'static str,
    /// How to fix it, shown while it fails.
    resolution: Option<&'a str>,
}

struct DeferralView<'a> {
    deferral: &'a HostDeferral,
    deadline: String,
    /// While prompting: one button per choice (its value and text).
    choices: Vec<(&'a str, String)>,
    /// While scheduled: when it runs.
    deferred_until: String,
}

/// Only http(s) links and images from the configuration are shown (a `javascript:` URL never is).
fn safe_url(url: &str) -> Option<&str> {
    (url.starts_with("https://") || url.starts_with("http://")).then_some(url)
}

/// A time as the device's user reads it: in the host's time zone.
fn local(rfc3339: Option<&str>, time_zone: Option<&str>) -> String {
    let tz = time_zone.and_then(|z| z.parse().ok()).unwrap_or(herd_core::deferral::Tz::UTC);
    match rfc3339.map(herd_core::deferral::parse_instant) {
        Some(Ok(at)) => herd_core::deferral::local_time(at, tz),
        _ => "no set time".into(),
    }
}

impl<'a> DevicePage<'a> {
    /// The page for `host` (as the device API shows it) and its `policies`. `needs_migration` shows the banner;
    /// `window_open` says a migration is under way; `migration_state` is the host's last one.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        token: Option<&'a str>,
        host: &'a Host,
        policies: &'a [DevicePolicy],
        org: &'a OrgInfo,
        needs_migration: bool,
        window_open: bool,
        migration_state: herd_core::migration::MigrationState,
    ) -> Self {
        let name = if host.display_name.is_empty() { &host.hostname } else { &host.display_name };
        let logo = safe_url(&org.org_logo_url_light_background).or_else(|| safe_url(&org.org_logo_url)).map(|url| {
            let alt = if org.org_name.is_empty() {
                "Organisation logo".to_string()
            } else {
                format!("{} logo", org.org_name)
            };
            (url, alt)
        });
        let migration = needs_migration.then(|| Migration {
            org_name: if org.org_name.is_empty() { "your organisation" } else { &org.org_name },
            started: window_open,
            timed_out: migration_state == herd_core::migration::MigrationState::TimedOut,
        });
        let of = |keep: &dyn Fn(&DevicePolicy) -> bool| -> Vec<PolicyItem<'a>> {
            policies.iter().filter(|p| keep(p)).map(PolicyItem::new).collect()
        };
        let section = |id, title, policies, empty| PolicySection { id, title, policies, empty };
        let mut sections = vec![section(
            "failing",
            "Failing policies",
            of(&|p| p.response == "fail"),
            "Nothing to fix: every checked policy passes.",
        )];
        let fixing = of(&|p| p.remediating);
        if !fixing.is_empty() {
            sections.push(section("fixing", "Fixes under way", fixing, ""));
        }
        let unanswered = of(&|p| p.response.is_empty());
        if !unanswered.is_empty() {
            sections.push(section("pending", "Not checked yet", unanswered, ""));
        }
        sections.push(section("passing", "Passing policies", of(&|p| p.response == "pass"), "None yet."));
        DevicePage {
            token,
            name,
            host,
            org_label: if org.org_name.is_empty() { "My device" } else { &org.org_name },
            logo,
            contact: safe_url(&org.contact_url),
            migration,
            deferrals: DeferralView::active(host.deferrals.as_deref().unwrap_or_default()),
            refresh: host.refetch_requested || window_open,
            sections,
        }
    }
}

/// The page of `record`: under the person's link (`token`), or an admin's preview from the console (none).
pub async fn render(
    state: &crate::state::SharedState,
    record: herd_store::HostRecord,
    token: Option<&str>,
) -> Result<String, crate::error::ApiError> {
    let needs_migration = crate::app::device::needs_migration(state, &record);
    let migration_state = record.migration_state;
    let window_open = record.migration_window_until.is_some_and(|until| until > crate::state::now_ms());
    let (host, policies) = crate::app::device::view(state, record).await?;
    let settings = state.settings.get();
    let org = &settings.config.org_info;
    let page = DevicePage::new(token, &host, &policies, org, needs_migration, window_open, migration_state);
    page.render().map_err(|err| crate::error::ApiError::Internal(err.into()))
}

impl DevicePage<'_> {
    /// Where a button posts: under the person's link, or nowhere on a preview.
    fn action(&self, what: &str) -> String {
        self.token.map(|token| format!("/device/{token}/{what}")).unwrap_or_default()
    }

    fn preview(&self) -> bool {
        self.token.is_none()
    }
}

impl<'a> PolicyItem<'a> {
    fn new(policy: &'a DevicePolicy) -> Self {
        let (class, label) = match policy.response.as_str() {
            "fail" => ("fail", "Failing"),
            "pass" => ("pass", "Passing"),
            _ => ("none", "Not checked yet"),
        };
        let resolution =
            (policy.response == "fail" && !policy.resolution.is_empty()).then_some(policy.resolution.as_str());
        PolicyItem { policy, class, label, resolution }
    }
}

impl<'a> DeferralView<'a> {
    /// Fixes that wait on the user: prompting (with its choices), scheduled, waiting or running.
    fn active(deferrals: &'a [HostDeferral]) -> Vec<Self> {
        deferrals
            .iter()
            .filter(|d| matches!(d.state.as_str(), "prompting" | "scheduled" | "waiting" | "running"))
            .map(|d| {
                let zone = d.time_zone.as_deref();
                let choices = d
                    .offered
                    .iter()
                    .map(|choice| {
                        let text = match &choice.runs_at {
                            None => choice.label.clone(),
                            Some(_) => format!("In {} ({})", choice.label, local(choice.runs_at.as_deref(), zone))
                                .replace("In tomorrow", "Tomorrow"),
                        };
                        (choice.choice.as_str(), text)
                    })
                    .collect();
                DeferralView {
                    deferral: d,
                    deadline: local(d.deadline.as_deref(), zone),
                    choices,
                    deferred_until: local(d.deferred_until.as_deref(), zone),
                }
            })
            .collect()
    }

    fn waiting_reason(&self) -> &str {
        self.deferral.waiting_reason.as_deref().unwrap_or("waiting")
    }
}

/// A page with only a message (an expired link, a refused choice).
#[derive(Template)]
#[template(path = "my_device/message.html")]
pub struct MessagePage<'a> {
    pub title: &'a str,
    pub text: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_urls_are_shown() {
        for (url, shown) in [
            ("javascript:alert(1)", None),
            ("data:text/html,x", None),
            ("https://x.test/a?b=1&c=2", Some("https://x.test/a?b=1&c=2")),
            ("http://x.test", Some("http://x.test")),
        ] {
            assert_eq!(safe_url(url), shown, "{url}");
        }
    }

    #[test]
    fn messages_are_escaped() {
        let page = MessagePage { title: "<b>\"x\" & 'y'</b>", text: "a < b" }.render().unwrap();
        assert!(page.contains("<h1>&lt;b&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/b&gt;</h1>"), "{page}");
        assert!(page.contains("<p>a &lt; b</p>"), "{page}");
    }
}
