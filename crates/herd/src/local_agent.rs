//! `herd serve --with-agent`: this machine's own agent, run in the server's process as a [`Companion`], so one
//! command gives a server with one real host. It talks to the server over HTTPS like any other agent.

use anyhow::bail;
use herd_server::{Companion, CompanionTask, Serving, ShutdownSignal};

#[derive(Debug, Clone, clap::Args)]
pub struct LocalAgentArgs {
    // No clap `conflicts_with`/`requires` here: clap counts a flag set to false through its variable as given
    // (HERD_WITH_AGENT=false with --plain-http would refuse to start). `prepare` refuses what cannot work,
    // before the server serves.
    /// Also run an agent in this process, enrolling this machine as a host (data in DATA_DIR/agent). Needs
    /// HTTPS (not --plain-http) and a global enroll secret.
    #[arg(long, env = "HERD_WITH_AGENT")]
    pub with_agent: bool,
    /// Let the local agent of --with-agent run scripts queued for this machine.
    #[arg(long, env = "HERD_WITH_AGENT_SCRIPTS")]
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

#[cfg(test)]
mod tests {
    use super::*;

    fn serving(tls_cert: Option<&str>, enroll_secret_file: Option<&str>) -> Serving {
        Serving {
            url: "https://localhost:8080".into(),
            data_dir: "/tmp/herd-data".into(),
            tls_cert: tls_cert.map(Into::into),
            enroll_secret_file: enroll_secret_file.map(Into::into),
        }
    }

    fn refusal(serving: &Serving) -> String {
        let stopped: ShutdownSignal = Box::pin(std::future::pending());
        match prepare(serving, stopped, false) {
            Ok(_) => panic!("prepared a local agent that cannot work"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn refuses_before_serving_what_cannot_work() {
        assert!(refusal(&serving(None, Some("/s"))).contains("needs HTTPS"));
        assert!(refusal(&serving(Some("/c.pem"), None)).contains("needs a global enroll secret"));
        let stopped: ShutdownSignal = Box::pin(std::future::pending());
        let (note, _task) = prepare(&serving(Some("/c.pem"), Some("/s")), stopped, false).unwrap();
        assert!(note.contains("local agent") && note.contains("/tmp/herd-data/agent"), "{note}");
    }
}
