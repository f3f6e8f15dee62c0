//! Recording who did what in the activity feed.

use crate::auth::AuthUser;
use crate::state::{SharedState, now_ms};
use serde_json::Value;

/// Records an activity of `by` (None: herd itself). The change it describes is already committed, so a
/// failure here is logged rather than turned into an error for a request that did succeed.
pub async fn record(state: &SharedState, by: Option<&AuthUser>, kind: &str, details: Value) {
    let actor = by.map(|auth| herd_store::Actor {
        id: auth.user.id,
        name: auth.user.name.clone(),
        email: auth.user.email.clone(),
    });
    if let Err(err) = state.store.record_activity(actor.as_ref(), kind, &details, now_ms()).await {
        tracing::error!(error = %err, kind, "could not record activity");
    }
}
