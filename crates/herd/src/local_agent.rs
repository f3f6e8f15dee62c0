//! `herd serve --with-agent`: this machine's own agent, run in the server's process as a [`Companion`], so one
//! command gives a server with one real host. It talks to the server over HTTPS like any other agent.

use anyhow::bail;
use herd_server::{Companion, CompanionTask, Serving, ShutdownSignal};

#[derive(Debug, Clone, clap::Args)]
pub struct LocalAgentArgs {
    /// Also run an agent in this process, enrolling this machine as a host (data in DATA_DIR/agent).
    #[arg(long, env = "HERD_WITH_AGENT", conflicts_with = "plain_http")]
    pub with_agent: bool,
    /// Let the local agent of --with-agent run scripts queued for this machine.
    #[arg(long, env = "HERD_WITH_AGENT_SCRIPTS", requires = "with_agent")]
    pub with_agent_scripts: bool,
}

impl LocalAgentArgs {
    /// The companion to hand the server, if asked for one.
    pub fn companion(&self) -> Option<Companion> {
        if !self.with_agent {
            return None;
        }
        let enable_scripts = self.with_agent_scripts;
        Some(Box::new(move |serving: &Serving, stopped: ShutdownSignal| prepare(serving, stopped, enable_scripts)))
    }
}

fn prepare(
    serving: &Serving,
    stopped: ShutdownSignal,
    enable_scripts: bool,
) -> anyhow::Result<(String, CompanionTask)> {
    let Some(ca_cert) = &serving.tls_cert else {
        // clap refuses --plain-http with --with-agent; this guards a server started some other way.
        bail!("--with-agent needs HTTPS (the agent speaks TLS only); drop --plain-http");
    };
    let Some(enroll_secret_file) = &serving.enroll_secret_file else {
        bail!(
            "--with-agent needs a global enroll secret; none is left (add one with POST /api/v1/fleet/spec/enroll_secret)"
        );
    };
    let data_dir = serving.data_dir.join("agent");
    // This machine's own agent: scripts stay off unless the operator starts herd with them on; profiles
    // (which write files as root) stay off (`RunOptions::local`).
    let options = herd_agent::cli::RunOptions::local(
        serving.url.clone(),
        enroll_secret_file.clone(),
        Some(ca_cert.clone()),
        data_dir.clone(),
        enable_scripts,
    );
    let note = format!("This machine runs a local agent too (data in {}).", data_dir.display());
    let task: CompanionTask = Box::pin(async move {
        if let Err(err) = herd_agent::run::run_until(options, stopped).await {
            tracing::error!(error = format!("{err:#}"), "the local agent stopped");
        }
    });
    Ok((note, task))
}
