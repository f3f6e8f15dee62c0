//! The agent's standing with the server: the client, the node key (on disk), and reports sent durably
//! through the spool — every feature reports through here.

use crate::client::{CallError, OsqueryClient};
use crate::host::LocalHost;
use crate::spool::Spool;
use anyhow::Result;
use herd_proto::osquery::{DistributedReadResponse, DistributedWriteRequest};
use std::path::{Path, PathBuf};

pub struct Session {
    pub client: OsqueryClient,
    node_key: Option<String>,
    node_key_file: PathBuf,
    spool: Spool,
    /// What Fleet's `orbit_info` table shows of the agent: `enrolled` follows the node key.
    facts: herd_osquery::tables::SharedFacts,
}

impl Session {
    pub fn open(client: OsqueryClient, data_dir: &Path, facts: herd_osquery::tables::SharedFacts) -> Result<Session> {
        let node_key_file = data_dir.join("node_key");
        let node_key =
            std::fs::read_to_string(&node_key_file).ok().map(|k| k.trim().to_string()).filter(|k| !k.is_empty());
        let session = Session { client, node_key, node_key_file, spool: Spool::open(&data_dir.join("spool"))?, facts };
        session.note_enrollment();
        Ok(session)
    }

    /// `enrolled` as Fleet's orbit_info says it: "true" or "false".
    fn note_enrollment(&self) {
        let enrolled = if self.enrolled() { "true" } else { "false" };
        self.facts.write().unwrap_or_else(|e| e.into_inner()).insert("enrolled".into(), enrolled.into());
    }

    pub fn enrolled(&self) -> bool {
        self.node_key.is_some()
    }

    /// The node key; NodeInvalid when the agent must enroll first.
    pub fn key(&self) -> Result<&str, CallError> {
        self.node_key.as_deref().ok_or(CallError::NodeInvalid)
    }

    /// Keeps a new node key (on disk first, owner only).
    pub fn enrolled_as(&mut self, node_key: String) -> Result<()> {
        crate::durable::write_atomically(&self.node_key_file, node_key.as_bytes(), 0o600, None)?;
        self.node_key = Some(node_key);
        self.note_enrollment();
        Ok(())
    }

    /// The server no longer knows the node key: enroll again.
    pub fn forget_node_key(&mut self) {
        self.node_key = None;
        let _ = std::fs::remove_file(&self.node_key_file);
        self.note_enrollment();
    }

    /// Sends a report, on disk before it is sent: if the server or this process goes away now, it is sent
    /// with the next check-in.
    pub async fn report(&self, report: DistributedWriteRequest) -> Result<(), CallError> {
        let path = self.spool.push(&report).map_err(CallError::Failed)?;
        self.client.write(self.key()?, report).await?;
        Spool::remove(&path).map_err(CallError::Failed)
    }

    /// Sends every pending report, oldest first. Stops at the first failure (kept for the next attempt).
    pub async fn flush(&self) -> Result<(), CallError> {
        for path in self.spool.pending().map_err(CallError::Failed)? {
            let report = Spool::load(&path).map_err(CallError::Failed)?;
            self.client.write(self.key()?, report).await?;
            Spool::remove(&path).map_err(CallError::Failed)?;
        }
        Ok(())
    }

    /// Runs these policies now and reports them as the agent's own re-check.
    /// `policies`: (query name, SQL).
    pub async fn recheck(&self, host: &LocalHost, policies: Vec<(String, String)>) -> Result<(), CallError> {
        let work = DistributedReadResponse { queries: policies.into_iter().collect(), ..Default::default() };
        let mut report = host.execute(&work).await;
        report.herd_recheck = true;
        self.report(report).await
    }
}
