//! herdctl: log in to a herd server, apply Fleet-format YAML, list and delete things.
//!
//! Everything goes through herd's Fleet-compatible REST API, so herdctl needs nothing the API does not offer.

#![deny(clippy::disallowed_macros)]

pub mod apply;
pub mod cli;
pub mod client;
pub mod gitops;
pub mod labels;
pub mod out;
pub mod session;
pub mod yaml;

use anyhow::{Context, Result};
use cli::{Cli, Command, Deletable, Listing};
use client::Api;
use herd_proto::fleet::{DeletePoliciesRequest, HostsResponse, PoliciesResponse, Policy, TeamsResponse};
use std::io::{BufRead, IsTerminal};

pub async fn run(cli: Cli) -> Result<()> {
    let config_path = session::config_path(cli.config.as_deref())?;
    match cli.command {
        Command::Login(args) => {
            let password = if args.password_stdin {
                let mut line = String::new();
                std::io::stdin().lock().read_line(&mut line).context("reading the password from standard input")?;
                line.trim_end_matches(['\r', '\n']).to_string()
            } else if !std::io::stdin().is_terminal() {
                // A script or pipe: no one to prompt (the prompt would fail with "No such device or address").
                anyhow::bail!("{NO_TERMINAL}");
            } else {
                rpassword::prompt_password(format!("password for {}: ", args.email))
                    .with_context(|| format!("reading the password from the terminal; {NO_TERMINAL}"))?
            };
            let saved = session::login(&args.server, args.ca_cert.as_deref(), &args.email, &password).await?;
            session::save(&config_path, &saved)?;
            out::line(format_args!("logged in to {} as {}", saved.server, saved.email))?;
            Ok(())
        }
        Command::Logout => {
            let api = Api::from_saved(&session::load(&config_path)?)?;
            // The session may have expired already; forgetting it locally is what matters.
            let _ = api.post::<serde_json::Value>("/api/v1/fleet/logout", &serde_json::json!({})).await;
            std::fs::remove_file(&config_path).with_context(|| format!("removing {}", config_path.display()))?;
            out::line("logged out")?;
            Ok(())
        }
        Command::Apply { files } => {
            let api = Api::from_saved(&session::load(&config_path)?)?;
            let documents = apply::read_documents(&files)?;
            for line in apply::apply(&api, documents).await? {
                out::line(line)?;
            }
            Ok(())
        }
        Command::Gitops { files, dry_run } => {
            // Every file is read and checked before the server is asked anything.
            let mut problems = yaml::Problems::default();
            let repo = gitops::read(&gitops::files_of(&files)?, &mut problems);
            apply::conclude(&problems)?;
            let api = Api::from_saved(&session::load(&config_path)?)?;
            if dry_run {
                out::line("dry run: nothing is changed")?;
            }
            let changes = gitops::sync(&api, &repo, dry_run).await?;
            for line in &changes.lines {
                out::line(line)?;
            }
            let count = changes.lines.len();
            out::line(match (count, dry_run) {
                (0, _) => "no changes".to_string(),
                (n, true) => format!("{n} change(s) would be made"),
                (n, false) => format!("{n} change(s) made"),
            })?;
            Ok(())
        }
        Command::Get { what, team, json } => {
            let api = Api::from_saved(&session::load(&config_path)?)?;
            get(&api, what, team.as_deref(), json).await
        }
        Command::Delete { what: Deletable::Label, name, team, force } => {
            if team.is_some() {
                anyhow::bail!("labels belong to no team: delete label takes no --team");
            }
            let api = Api::from_saved(&session::load(&config_path)?)?;
            labels::delete(&api, &name, force).await?;
            out::line(format_args!("label {name:?} deleted"))?;
            Ok(())
        }
        Command::Delete { what: Deletable::Policy, name, team, force } => {
            if force {
                anyhow::bail!("--force is for labels: a policy is deleted without it");
            }
            let api = Api::from_saved(&session::load(&config_path)?)?;
            let team_id = match team.as_deref() {
                Some(name) => {
                    Some(apply::team_id_by_name(&api, name).await?.with_context(|| format!("no team named {name:?}"))?)
                }
                None => None,
            };
            let base = policies_path(team_id);
            let list: PoliciesResponse = api.get(&base).await?;
            let policy =
                list.policies.iter().find(|p| p.name == name).with_context(|| format!("no policy named {name:?}"))?;
            let _: serde_json::Value =
                api.post(&format!("{base}/delete"), &DeletePoliciesRequest { ids: vec![policy.id] }).await?;
            out::line(format_args!("policy {name:?} deleted"))?;
            Ok(())
        }
    }
}

const NO_TERMINAL: &str = "standard input is not a terminal, so herdctl cannot ask for the password; \
pass it on standard input with --password-stdin, e.g. printf '%s\\n' \"$HERD_PASSWORD\" | herdctl login --password-stdin ...";

pub fn policies_path(team_id: Option<i64>) -> String {
    match team_id {
        Some(team) => format!("/api/v1/fleet/teams/{team}/policies"),
        None => "/api/v1/fleet/global/policies".to_string(),
    }
}

fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(header.iter().map(|h| h.to_string()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

async fn get(api: &Api, what: Listing, team: Option<&str>, json: bool) -> Result<()> {
    let team_id = match team {
        Some(_) if matches!(what, Listing::Labels) => {
            anyhow::bail!("labels belong to no team: get labels takes no --team")
        }
        Some(name) => {
            Some(apply::team_id_by_name(api, name).await?.with_context(|| format!("no team named {name:?}"))?)
        }
        None => None,
    };
    let (value, text) = match what {
        Listing::Policies => {
            let list: PoliciesResponse = api.get(&policies_path(team_id)).await?;
            let rows = list.policies.iter().map(|p: &Policy| {
                vec![
                    p.id.to_string(),
                    p.name.clone(),
                    p.platform.clone(),
                    p.passing_host_count.to_string(),
                    p.failing_host_count.to_string(),
                ]
            });
            let text = table(&["ID", "NAME", "PLATFORM", "PASSING", "FAILING"], rows.collect());
            (serde_json::to_value(&list.policies)?, text)
        }
        Listing::Hosts => {
            let path = match team_id {
                Some(team) => format!("/api/v1/fleet/hosts?per_page=10000&team_id={team}"),
                None => "/api/v1/fleet/hosts?per_page=10000".to_string(),
            };
            let list: HostsResponse = api.get(&path).await?;
            let rows = list.hosts.iter().map(|h| {
                vec![
                    h.id.to_string(),
                    h.display_name.clone(),
                    h.platform.clone(),
                    h.os_version.clone(),
                    h.status.clone(),
                    h.issues.failing_policies_count.to_string(),
                ]
            });
            let text = table(&["ID", "NAME", "PLATFORM", "OS", "STATUS", "FAILING"], rows.collect());
            (serde_json::to_value(&list.hosts)?, text)
        }
        Listing::Teams => {
            let list: TeamsResponse = api.get("/api/v1/fleet/teams").await?;
            let rows = list.teams.iter().map(|t| vec![t.id.to_string(), t.name.clone(), t.host_count.to_string()]);
            let text = table(&["ID", "NAME", "HOSTS"], rows.collect());
            (serde_json::to_value(&list.teams)?, text)
        }
        Listing::Labels => {
            let list = labels::list(api).await?;
            let rows = list.labels.iter().map(|l| {
                vec![
                    l.id.to_string(),
                    l.name.clone(),
                    l.label_type.clone(),
                    l.label_membership_type.clone(),
                    l.platform.clone(),
                    l.host_count.to_string(),
                ]
            });
            let text = table(&["ID", "NAME", "TYPE", "MEMBERSHIP", "PLATFORM", "HOSTS"], rows.collect());
            (serde_json::to_value(&list.labels)?, text)
        }
    };
    if json {
        out::line(serde_json::to_string_pretty(&value)?)?;
    } else {
        out::line(text)?;
    }
    Ok(())
}
