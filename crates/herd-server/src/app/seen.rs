//! Last-seen times: batched in memory per server ([`crate::seen_times`]), written by the flusher worker and
//! before anything that reads them from the database (status filters, the dashboard, shutdown).

use crate::state::SharedState;

pub async fn flush(state: &SharedState) -> anyhow::Result<()> {
    let pending = state.seen.take();
    if pending.is_empty() {
        return Ok(());
    }
    if let Err(err) = state.store.flush_seen_times(&pending).await {
        // Keep them for the next attempt: a seen time is only lost if the process dies too.
        state.seen.restore(pending);
        return Err(err.into());
    }
    Ok(())
}
