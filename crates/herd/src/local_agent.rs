//! `herd serve --with-agent`: this machine's own agent, run in the server's process as a [`Companion`], so one
//! command gives a server with one real host. It talks to the server over HTTPS like any other agent.

use anyhow::bail;
use herd_agent::cli::OptionalPath;
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
    /// Let the local agent of --with-agent run scripts queued for this machine, as the user herd runs as. On
    /// by default, so the quick start shows the whole loop (policy fails, script fixes, policy passes);
    /// `--with-agent-scripts=false` turns it off.
    #[arg(
        long,
        env = "HERD_WITH_AGENT_SCRIPTS",
        default_value_t = true,
        action = clap::ArgAction::Set,
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true"
    )]
    pub with_agent_scripts: bool,
    /// Let the local agent of --with-agent apply the configuration profiles assigned to this machine (files
    /// and kernel parameters, written as the user herd runs as). Off unless given.
    #[arg(long, env = "HERD_WITH_AGENT_PROFILES")]
    pub with_agent_profiles: bool,
    /// Where the local agent of --with-agent also publishes its device token for scripts written for Fleet
    /// (Fleet's agent keeps it there); empty (`--with-agent-orbit-identifier=`) turns it off, e.g. on a machine
    /// that runs Fleet's agent or another herd agent.
    #[arg(
        long,
        env = "HERD_WITH_AGENT_ORBIT_IDENTIFIER",
        default_value = herd_agent::cli::defaults::ORBIT_IDENTIFIER,
        value_parser = OptionalPath::parse
    )]
    pub with_agent_orbit_identifier: OptionalPath,
}

impl LocalAgentArgs {
    /// The companion to hand the server, if asked for one.
    pub fn companion(&self) -> Option<Companion> {
        if !self.with_agent {
            return None;
        }
        let features = LocalFeatures {
            scripts: self.with_agent_scripts,
            profiles: self.with_agent_profiles,
            orbit_identifier: self.with_agent_orbit_identifier.clone(),
        };
        Some(Box::new(move |serving: &Serving, stopped: ShutdownSignal| prepare(serving, stopped, features)))
    }
}

/// What the local agent may change on this machine.
#[derive(Debug, Clone)]
struct LocalFeatures {
    scripts: bool,
    profiles: bool,
    /// Where the device token is also published for Fleet's scripts (none: not published).
    orbit_identifier: OptionalPath,
}

fn prepare(
    serving: &Serving,
    stopped: ShutdownSignal,
    features: LocalFeatures,
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
    let options = herd_agent::cli::RunOptions::local(
        serving.url.clone(),
        enroll_secret_file.clone(),
        Some(ca_cert.clone()),
        data_dir.clone(),
        features.scripts,
        features.profiles,
        features.orbit_identifier.clone(),
    );
    let on_off = |on: bool| if on { "on" } else { "off" };
    // The device token is made once the agent has enrolled, and replaced hourly: the banner says where to read
    // it, and the My Device address built from it.
    let token_file = data_dir.join("identifier");
    let published = match &features.orbit_identifier.0 {
        Some(path) => format!(", and in {} for Fleet's scripts", path.display()),
        None => String::new(),
    };
    let note = format!(
        "This machine runs a local agent too (data in {data}; scripts {scripts}, profiles {profiles}).\n  \
         my device:       {url}/device/$(cat {token})   (this machine's page; the token in {token}{published})",
        data = data_dir.display(),
        scripts = on_off(features.scripts),
        profiles = on_off(features.profiles),
        url = serving.url.trim_end_matches('/'),
        token = token_file.display(),
    );
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
        let features = LocalFeatures { scripts: false, profiles: false, orbit_identifier: OptionalPath(None) };
        match prepare(serving, stopped, features) {
            Ok(_) => panic!("prepared a local agent that cannot work"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn refuses_before_serving_what_cannot_work() {
        assert!(refusal(&serving(None, Some("/s"))).contains("needs HTTPS"));
        assert!(refusal(&serving(Some("/c.pem"), None)).contains("needs a global enroll secret"));
        let stopped: ShutdownSignal = Box::pin(std::future::pending());
        let orbit_identifier = OptionalPath(Some("/opt/orbit/identifier".into()));
        let features = LocalFeatures { scripts: true, profiles: false, orbit_identifier };
        let (note, _task) = prepare(&serving(Some("/c.pem"), Some("/s")), stopped, features).unwrap();
        assert!(note.contains("local agent") && note.contains("/tmp/herd-data/agent"), "{note}");
        assert!(note.contains("scripts on, profiles off"), "{note}");
        assert!(
            note.contains("https://localhost:8080/device/$(cat /tmp/herd-data/agent/identifier)"),
            "the banner gives this machine's My Device address: {note}"
        );
        assert!(note.contains("and in /opt/orbit/identifier for Fleet's scripts"), "{note}");
    }
}
