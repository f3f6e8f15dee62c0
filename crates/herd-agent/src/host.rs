//! This host as the agent reads it: osquery SQL through herd-osquery (off the async threads), host details
//! for enrollment, the answers to what a distributed/read handed out, and the identity it enrolls with.

use herd_osquery::tables::SharedFlags;
use herd_osquery::{Engine, Limits};
use herd_proto::osquery::{DistributedReadResponse, DistributedWriteRequest, Row};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// Rows as the engine returns them (a NULL is None).
pub type Rows = Vec<BTreeMap<String, Option<String>>>;

pub struct LocalHost {
    engine: Arc<Mutex<Engine>>,
    /// osquery's flags as `osquery_flags` reports them (the check-in follows the server's config into them).
    pub flags: SharedFlags,
}

impl LocalHost {
    pub fn new(engine: Engine, flags: SharedFlags) -> LocalHost {
        LocalHost { engine: Arc::new(Mutex::new(engine)), flags }
    }

    pub async fn query(&self, sql: String) -> Result<Rows, String> {
        let engine = self.engine.clone();
        tokio::task::spawn_blocking(move || {
            let engine = engine.lock().unwrap_or_else(|e| e.into_inner());
            engine.query(&sql, Limits::default()).map(|out| out.records()).map_err(|e| e.to_string())
        })
        .await
        .unwrap_or_else(|e| Err(format!("query task failed: {e}")))
    }

    /// Whether `sql` returns a row (a failed query: no).
    pub async fn any_row(&self, sql: &str) -> bool {
        self.query(sql.to_string()).await.is_ok_and(|rows| !rows.is_empty())
    }

    /// The first row of a table as osquery sends it in host_details (every value a string).
    pub async fn detail(&self, table: &str) -> BTreeMap<String, String> {
        match self.query(format!("SELECT * FROM {table}")).await {
            Ok(rows) => rows.into_iter().next().map(osquery_row).unwrap_or_default(),
            Err(err) => {
                tracing::warn!(table, %err, "could not read host detail");
                BTreeMap::new()
            }
        }
    }

    /// Runs what a distributed/read handed out and builds the report. A query with a discovery query runs
    /// only when its discovery returns a row.
    pub async fn execute(&self, work: &DistributedReadResponse) -> DistributedWriteRequest {
        let mut report = DistributedWriteRequest::default();
        for (name, sql) in &work.queries {
            if let Some(discovery) = work.discovery.get(name)
                && !self.any_row(discovery).await
            {
                continue;
            }
            match self.query(sql.clone()).await {
                Ok(rows) => {
                    report.queries.insert(name.clone(), rows.into_iter().map(osquery_row).collect());
                    report.statuses.insert(name.clone(), 0);
                }
                Err(err) => {
                    report.queries.insert(name.clone(), Vec::new());
                    report.statuses.insert(name.clone(), 1);
                    report.messages.insert(name.clone(), serde_json::Value::String(err));
                }
            }
        }
        report
    }
}

/// A row as osquery sends it: every value a string, NULL as "".
fn osquery_row(row: BTreeMap<String, Option<String>>) -> Row {
    row.into_iter().map(|(k, v)| (k, v.unwrap_or_default())).collect()
}

/// What this host enrolls as without `--host-identifier`: the hardware UUID, else /etc/machine-id, else the
/// hostname.
pub fn default_identifier() -> String {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string()).filter(|s| !s.is_empty());
    read("/sys/class/dmi/id/product_uuid")
        .or_else(|| read("/etc/machine-id"))
        .or_else(|| read("/proc/sys/kernel/hostname"))
        .unwrap_or_else(|| "unknown-host".into())
}
