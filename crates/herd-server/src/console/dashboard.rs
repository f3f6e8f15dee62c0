//! The dashboard: host counts, the policies with the most failing hosts, the compliance chart, recent activity.

use super::ConsoleUser;
use super::layout::{Frame, page_or_error, render};
use super::shared::ActivityRow;
use crate::error::ApiError;
use crate::state::{SharedState, now_ms};
use crate::wire::rfc3339;
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use herd_core::roles::{Action, Scope};
use herd_store::{HostFilter, PolicyRecord};

#[derive(Template)]
#[template(path = "console/dashboard.html")]
struct DashboardPage<'a> {
    frame: Frame<'a>,
    total: i64,
    online: i64,
    offline: i64,
    remediating: i64,
    /// The (up to 10) policies with the most failing hosts, failing ones only.
    top_failing: Vec<PolicyRecord>,
    chart: Chart,
    /// For global readers only, as in the REST API.
    recent: Option<Vec<ActivityRow>>,
}

pub async fn page(State(state): State<SharedState>, user: ConsoleUser) -> Response {
    page_or_error(dashboard_page(&state, &user).await)
}

async fn dashboard_page(state: &SharedState, user: &ConsoleUser) -> Result<Response, ApiError> {
    let now = now_ms();
    let visible = user.auth.actor.visible_teams();
    crate::app::seen::flush(state).await.map_err(ApiError::Internal)?;
    let filter = HostFilter { visible_teams: visible, ..Default::default() };
    let (total, online, offline) = state.store.host_status_counts(&filter, now).await?;
    let mut policies: Vec<_> = state
        .store
        .all_policies()
        .await?
        .into_iter()
        .filter(|p| user.auth.actor.may(Action::Read, Scope::of_team(p.team_id)))
        .collect();
    let remediating: i64 = policies.iter().map(|p| p.remediating_host_count).sum();
    policies.sort_by(|a, b| b.failing_host_count.cmp(&a.failing_host_count).then(a.name.cmp(&b.name)));
    let top_failing = policies.into_iter().filter(|p| p.failing_host_count > 0).take(10).collect();
    let chart = compliance_chart(state).await?;
    // The activity feed is for global readers, as in the REST API.
    let recent = if user.auth.actor.may(Action::Read, Scope::Global) {
        Some(ActivityRow::all(&state.store.list_activities(0, 10).await?))
    } else {
        None
    };
    let page = DashboardPage {
        frame: Frame::new(user, "/console", "Dashboard"),
        total,
        online,
        offline,
        remediating,
        top_failing,
        chart,
        recent,
    };
    Ok(render(&page))
}

/// One day of a pass-rate table.
pub struct DayRow {
    pub day: String,
    pub passing: i64,
    pub failing: i64,
    /// "97.5 %", or "—" when no host answered.
    pub rate: String,
}

impl DayRow {
    pub fn new(day: &herd_store::ComplianceDay) -> Self {
        let rate = pass_rate(day.passing, day.failing).map_or_else(|| "—".into(), |r| format!("{r:.1} %"));
        DayRow { day: day.day.clone(), passing: day.passing, failing: day.failing, rate }
    }
}

/// The share of answering hosts that pass, in percent; None when none answered.
pub fn pass_rate(passing: i64, failing: i64) -> Option<f64> {
    if passing + failing == 0 { None } else { Some(passing as f64 * 100.0 / (passing + failing) as f64) }
}

/// The overall pass rate of the last 30 days as an SVG line (`templates/console/compliance_chart.html`), with
/// the same figures in a table for screen readers and copying. Coordinates are in the SVG's user units.
struct Chart {
    width: f64,
    height: f64,
    /// Where the plot starts (left of it: the percent labels) and ends.
    left: f64,
    right: f64,
    /// The 0, 50 and 100 % lines: (y, percent).
    gridlines: Vec<(f64, f64)>,
    /// The days with answers, as points of the line.
    points: Vec<(f64, f64)>,
    /// The first and last days shown, labelling the axis.
    first_day: Option<String>,
    last_day: Option<String>,
    /// Newest first.
    days: Vec<DayRow>,
}

const CHART_WIDTH: f64 = 600.0;
const CHART_HEIGHT: f64 = 200.0;
const CHART_LEFT: f64 = 40.0;
const CHART_TOP: f64 = 10.0;

impl Chart {
    fn new(overall: &[herd_store::ComplianceDay]) -> Chart {
        let plot_w = CHART_WIDTH - CHART_LEFT - 10.0;
        let plot_h = CHART_HEIGHT - CHART_TOP - 30.0;
        let n = overall.len().max(1) as f64;
        let x = |i: usize| CHART_LEFT + if n > 1.0 { plot_w * i as f64 / (n - 1.0) } else { plot_w / 2.0 };
        let y = |r: f64| CHART_TOP + plot_h * (1.0 - r / 100.0);
        Chart {
            width: CHART_WIDTH,
            height: CHART_HEIGHT,
            left: CHART_LEFT,
            right: CHART_WIDTH - 10.0,
            gridlines: [0.0, 50.0, 100.0].into_iter().map(|pct| (y(pct), pct)).collect(),
            points: overall
                .iter()
                .enumerate()
                .filter_map(|(i, d)| pass_rate(d.passing, d.failing).map(|r| (x(i), y(r))))
                .collect(),
            first_day: overall.first().map(|d| d.day.clone()),
            last_day: overall.last().map(|d| d.day.clone()),
            days: overall.iter().rev().map(DayRow::new).collect(),
        }
    }

    /// The polyline's points attribute: "x,y x,y …", one decimal.
    fn polyline(&self) -> String {
        self.points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect::<Vec<_>>().join(" ")
    }
}

/// The last 30 days of the overall pass rate (and today's, kept by the compliance recorder).
async fn compliance_chart(state: &SharedState) -> Result<Chart, ApiError> {
    let now = now_ms();
    let today = rfc3339(now)[..10].to_string();
    let from = rfc3339(now - 29 * herd_core::DAY_MS)[..10].to_string();
    let mut history = state.store.compliance_history(&from).await?;
    if !history.iter().any(|d| d.day == today) {
        crate::app::compliance::record(state).await.map_err(ApiError::Internal)?;
        history = state.store.compliance_history(&from).await?;
    }
    let overall: Vec<_> = history.into_iter().filter(|d| d.policy_id == 0).collect();
    Ok(Chart::new(&overall))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(day: &str, passing: i64, failing: i64) -> herd_store::ComplianceDay {
        herd_store::ComplianceDay { day: day.into(), policy_id: 0, passing, failing }
    }

    #[test]
    fn pass_rates() {
        for (passing, failing, rate, shown) in
            [(0, 0, None, "—"), (3, 1, Some(75.0), "75.0 %"), (1, 2, Some(100.0 / 3.0), "33.3 %")]
        {
            assert_eq!(pass_rate(passing, failing), rate);
            assert_eq!(DayRow::new(&day("2026-01-01", passing, failing)).rate, shown);
        }
    }

    #[test]
    fn the_chart_spreads_days_over_the_plot_and_skips_days_without_answers() {
        let chart = Chart::new(&[day("2026-01-01", 1, 1), day("2026-01-02", 0, 0), day("2026-01-03", 4, 0)]);
        assert_eq!(chart.polyline(), "40.0,90.0 590.0,10.0");
        assert_eq!(chart.gridlines, vec![(170.0, 0.0), (90.0, 50.0), (10.0, 100.0)]);
        assert_eq!((chart.first_day.as_deref(), chart.last_day.as_deref()), (Some("2026-01-01"), Some("2026-01-03")));
        assert_eq!(
            chart.days.iter().map(|d| d.day.as_str()).collect::<Vec<_>>(),
            ["2026-01-03", "2026-01-02", "2026-01-01"]
        );
        let single = Chart::new(&[day("2026-01-01", 1, 0)]);
        assert_eq!(single.polyline(), "315.0,10.0");
        assert!(Chart::new(&[]).points.is_empty());
    }

    #[test]
    fn the_chart_renders_as_svg() {
        #[derive(Template)]
        #[template(source = "{% include \"console/compliance_chart.html\" %}", ext = "html")]
        struct Only {
            chart: Chart,
        }
        let html = Only { chart: Chart::new(&[day("2026-01-01", 1, 1), day("2026-01-02", 3, 1)]) }.render().unwrap();
        for part in [
            "<svg class=\"chart\" viewBox=\"0 0 600 200\" role=\"img\" aria-labelledby=\"compliance-title\">",
            "<line x1=\"40\" x2=\"590\" y1=\"170.0\" y2=\"170.0\" stroke=\"#d0d0d0\"/><text x=\"4\" y=\"174.0\" font-size=\"11\" fill=\"#333\">0%</text>",
            "<polyline fill=\"none\" stroke=\"#1b6e2a\" stroke-width=\"2.5\" points=\"40.0,90.0 590.0,50.0\"/>",
            "<circle cx=\"590.0\" cy=\"50.0\" r=\"3.5\" fill=\"#1b6e2a\"/>",
            "<text x=\"40\" y=\"192\" font-size=\"11\" fill=\"#333\">2026-01-01</text>",
            "<tr><td>2026-01-02</td><td class=\"num\">3</td><td class=\"num\">1</td><td class=\"num\">75.0 %</td></tr>",
        ] {
            assert!(html.contains(part), "{part} missing from {html}");
        }
    }
}
