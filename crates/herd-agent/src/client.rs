//! Transport: the agent's side of the osquery TLS API and of herd's agent protocol (`herd_proto::agent`),
//! one typed call per endpoint. It knows the bodies, not what the features do with them.

use anyhow::Result;
use herd_proto::agent::{
    self, Acknowledged, DeferralProgress, DeferralStatusRequest, DeferralStatusResponse, DeviceTokenRequest,
    PendingScript, PendingScriptsRequest, PendingScriptsResponse, ProfileCommand, ProfileCommandResult,
    ProfileCommandsResponse, ProfileResultsRequest, ScriptResultRequest,
};
use herd_proto::osquery::{
    ConfigOptions, DistributedReadResponse, DistributedWriteRequest, EnrollRequest, EnrollResponse, NodeKeyRequest,
};
use reqwest::Client;
use serde::Serialize;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// What went wrong talking to the server.
#[derive(Debug)]
pub enum CallError {
    /// The server does not know our node key (deleted host, new database): enroll again.
    NodeInvalid,
    /// The server is busy and said when to come back (429 or 503 with `Retry-After`, e.g. enrollments
    /// refused while a fleet enrolls); nothing is lost.
    Later { retry_after: Duration, reason: String },
    /// The server does not know what the request names (404), e.g. a run of a host deleted since: sending it
    /// again cannot help, so queues of such requests drop it instead of stopping on it.
    Unknown(String),
    /// Anything else; retried later, nothing is lost.
    Failed(anyhow::Error),
}

impl std::error::Error for CallError {}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::NodeInvalid => write!(f, "the server no longer knows this host's node key"),
            CallError::Later { retry_after, reason } => write!(f, "{reason} (come back in {retry_after:?})"),
            CallError::Unknown(reason) => write!(f, "the server does not know it: {reason}"),
            CallError::Failed(err) => write!(f, "{err:#}"),
        }
    }
}

/// An HTTPS client that trusts `ca_cert` only (the server's own certificate), or the system's roots.
pub fn http_client(ca_cert: Option<&Path>, timeout: Duration) -> Result<Client> {
    let builder = Client::builder().timeout(timeout).user_agent(concat!("herd-agent/", env!("CARGO_PKG_VERSION")));
    let builder = match ca_cert {
        Some(path) => builder.use_preconfigured_tls(herd_tls::pinned_client_config(path)?),
        None => builder,
    };
    Ok(builder.build()?)
}

pub struct OsqueryClient {
    http: Client,
    server: String,
}

impl OsqueryClient {
    pub fn new(server: &str, ca_cert: Option<&Path>) -> Result<OsqueryClient> {
        // osquery's own request timeout.
        let http = http_client(ca_cert, Duration::from_secs(16))?;
        Ok(OsqueryClient { http, server: server.trim_end_matches('/').to_string() })
    }

    async fn post<T: serde::de::DeserializeOwned>(&self, path: &str, body: &impl Serialize) -> Result<T, CallError> {
        let url = format!("{}{path}", self.server);
        let response = self.http.post(&url).json(body).send().await.map_err(|e| CallError::Failed(e.into()))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|_| matches!(status.as_u16(), 429 | 503));
        let text = response.text().await.map_err(|e| CallError::Failed(e.into()))?;
        let later = |reason: String| {
            // At most an hour: a wrong header must not silence the agent for days.
            retry_after.map(|s| CallError::Later { retry_after: Duration::from_secs(s.min(3600)), reason })
        };
        let value: Value = serde_json::from_str(&text).map_err(|_| {
            // A busy proxy in front of herd answers in its own words, not JSON; its Retry-After still counts.
            if let Some(later) = later(format!("{path}: {status}")) {
                return later;
            }
            CallError::Failed(anyhow::anyhow!(
                "{path}: {status}: not JSON: {}",
                text.chars().take(200).collect::<String>()
            ))
        })?;
        if value.get("node_invalid") == Some(&Value::Bool(true)) {
            return Err(CallError::NodeInvalid);
        }
        if !status.is_success() || value.get("error").is_some() {
            let reason = value.get("error").and_then(Value::as_str).unwrap_or("").to_string();
            if let Some(later) = later(format!("{path}: {status}: {reason}")) {
                return Err(later);
            }
            if status == reqwest::StatusCode::NOT_FOUND {
                return Err(CallError::Unknown(format!("{path}: {reason}")));
            }
            return Err(CallError::Failed(anyhow::anyhow!("{path}: {status}: {reason}")));
        }
        serde_json::from_value(value).map_err(|e| CallError::Failed(anyhow::anyhow!("{path}: unexpected answer: {e}")))
    }

    pub async fn enroll(&self, request: &EnrollRequest) -> Result<String, CallError> {
        let response: EnrollResponse = self.post("/api/osquery/enroll", request).await?;
        Ok(response.node_key)
    }

    pub async fn config(&self, node_key: &str) -> Result<ConfigOptions, CallError> {
        self.post("/api/osquery/config", &node_key_request(node_key)).await
    }

    pub async fn read(&self, node_key: &str) -> Result<DistributedReadResponse, CallError> {
        self.post("/api/osquery/distributed/read", &node_key_request(node_key)).await
    }

    /// Sends a report (its node key is set here).
    pub async fn write(&self, node_key: &str, mut report: DistributedWriteRequest) -> Result<(), CallError> {
        report.node_key = Some(node_key.to_string());
        let _: Acknowledged = self.post("/api/osquery/distributed/write", &report).await?;
        Ok(())
    }

    pub async fn pending_scripts(
        &self,
        node_key: &str,
        mut request: PendingScriptsRequest,
    ) -> Result<Vec<PendingScript>, CallError> {
        request.node_key = Some(node_key.to_string());
        let pending: PendingScriptsResponse = self.post(agent::SCRIPTS_PENDING_PATH, &request).await?;
        Ok(pending.scripts)
    }

    /// The host's profile commands, in order (asking also tells the server this agent applies profiles).
    pub async fn profile_commands(&self, node_key: &str) -> Result<Vec<ProfileCommand>, CallError> {
        let commands: ProfileCommandsResponse =
            self.post(agent::PROFILES_COMMANDS_PATH, &node_key_request(node_key)).await?;
        Ok(commands.commands)
    }

    pub async fn profile_results(&self, node_key: &str, results: Vec<ProfileCommandResult>) -> Result<(), CallError> {
        let body = ProfileResultsRequest { node_key: Some(node_key.to_string()), results };
        let _: Acknowledged = self.post(agent::PROFILES_RESULTS_PATH, &body).await?;
        Ok(())
    }

    pub async fn script_result(&self, node_key: &str, mut result: ScriptResultRequest) -> Result<(), CallError> {
        result.node_key = Some(node_key.to_string());
        let _: Acknowledged = self.post(agent::SCRIPTS_RESULT_PATH, &result).await?;
        Ok(())
    }

    /// Returns the state to follow; None when the run is no longer deferred.
    pub async fn deferral_status(
        &self,
        node_key: &str,
        mut status: DeferralStatusRequest,
    ) -> Result<Option<DeferralProgress>, CallError> {
        status.node_key = Some(node_key.to_string());
        let answer: DeferralStatusResponse = self.post(agent::DEFERRALS_STATUS_PATH, &status).await?;
        Ok(answer.deferral)
    }

    pub async fn register_device_token(&self, node_key: &str, token: &str) -> Result<(), CallError> {
        let body = DeviceTokenRequest { node_key: Some(node_key.to_string()), device_auth_token: token.to_string() };
        let _: Acknowledged = self.post(agent::DEVICE_TOKEN_PATH, &body).await?;
        Ok(())
    }
}

fn node_key_request(node_key: &str) -> NodeKeyRequest {
    NodeKeyRequest { node_key: Some(node_key.to_string()) }
}
