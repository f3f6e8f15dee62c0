//! The daily compliance history behind the dashboard's chart.

use crate::state::{SharedState, now_ms};

/// Records today's counts now (also called when the console shows the chart for the first time today).
pub async fn record(state: &SharedState) -> anyhow::Result<()> {
    let now = now_ms();
    let policies = state.store.all_policies().await?;
    let mut counts: Vec<(i64, i64, i64)> =
        policies.iter().map(|p| (p.id, p.passing_host_count, p.failing_host_count)).collect();
    let (passing, failing) = counts.iter().fold((0, 0), |(p, f), (_, pass, fail)| (p + pass, f + fail));
    counts.push((0, passing, failing));
    state.store.record_compliance(&crate::wire::rfc3339(now)[..10], &counts, now).await?;
    Ok(())
}
