//! `herdctl apply -f`: Fleet's multi-document `apiVersion: v1` YAML (kinds policy, team, label, config), applied by
//! name and idempotent: applying the same files twice changes nothing the second time. Every file is read
//! and checked before anything is sent, and every mistake is reported at once with its `file:line:column`.

use crate::client::Api;
use crate::yaml::{self, Node, Origin, Problems, Tree};
use anyhow::{Context, Result, bail};
use herd_proto::fleet::{
    AppConfig, DeferralSettings, LabelSpec, PolicySpec, PolicySpecsRequest, SecretInput, SecretsInput, TeamResponse,
    TeamsResponse,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::io::Read;
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamSpec {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub secrets: Option<Vec<SecretInput>>,
    #[serde(default)]
    pub agent_options: Option<Value>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    Policy(Origin, Box<PolicySpec>),
    Team(Origin, TeamSpec),
    Label(Origin, Box<LabelSpec>),
    Config(Origin, serde_json::Map<String, Value>),
}

/// How a policy field is treated.
enum PolicyField {
    /// herd uses it.
    Used,
    /// Fleet's metadata herd has no use for: accepted with a warning saying why.
    Ignored(&'static str),
    /// Means something herd cannot do: refused, saying why, unless it is off (`false`, empty, null).
    Unsupported(&'static str),
}

fn policy_field(name: &str, gitops: bool) -> Option<PolicyField> {
    use PolicyField::*;
    Some(match name {
        "name" | "query" | "description" | "resolution" | "platform" | "critical" | "interval" | "script"
        | "deferral" | "labels_include_any" | "labels_exclude_any" | "labels_include_all" => Used,
        "team" if !gitops => Used,
        "run_script" if gitops => Used,
        "platforms" => Ignored("`platforms` is not a Fleet policy field (Fleet reads `platform`)"),
        "purpose" | "tags" | "contributors" => {
            Ignored("Fleet's descriptive metadata (`purpose`, `tags`, `contributors`)")
        }
        "calendar_events_enabled" | "calendar_event_enabled" => Unsupported("herd schedules no calendar events"),
        "conditional_access_enabled" => Unsupported("herd has no conditional access"),
        "install_software" => Unsupported("herd installs no software; use run_script"),
        _ => return None,
    })
}

const POLICY_FIELDS: &str = "name, query, description, resolution, platform, critical, interval, script, deferral, \
labels_include_any, labels_include_all, labels_exclude_any";

/// A policy's `run_script: {path: …}` (GitOps): the script's file, relative to the file naming it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunScript {
    pub at: Origin,
    pub path: String,
}

/// Reads one policy (a `kind: policy` spec, or an item of a GitOps `policies:` list). Every mistake in it
/// is recorded; `None` when there was one.
pub fn policy_spec(node: &Node, gitops: bool, problems: &mut Problems) -> Option<(PolicySpec, Option<RunScript>)> {
    let entries = node.entries("a policy", problems)?;
    let errors_before = problems.errors.len();
    let mut fields = serde_json::Map::new();
    let mut run_script = None;
    for (key, value) in entries {
        match policy_field(key, gitops) {
            Some(PolicyField::Used) => {
                let checked = match key.as_str() {
                    "critical" => value.typed::<bool>(key, problems).map(Value::from),
                    "interval" => value.typed::<Option<i64>>(key, problems).map(|v| json!(v)),
                    "deferral" => value.typed::<DeferralSettings>(key, problems).map(|_| value.to_json()),
                    // Label names; the server refuses a name it has no label for, naming the field.
                    "labels_include_any" | "labels_exclude_any" | "labels_include_all" => {
                        value.typed::<Option<Vec<String>>>(key, problems).map(|v| json!(v.unwrap_or_default()))
                    }
                    "run_script" => {
                        #[derive(Deserialize)]
                        #[serde(deny_unknown_fields)]
                        struct Path {
                            path: String,
                        }
                        value.typed::<Path>(key, problems).map(|p| {
                            run_script = Some(RunScript { at: value.at.clone(), path: p.path });
                            Value::Null
                        })
                    }
                    _ => value.typed::<String>(key, problems).map(Value::from),
                };
                if let Some(checked) = checked.filter(|_| key != "run_script") {
                    fields.insert(key.clone(), checked);
                }
            }
            Some(PolicyField::Ignored(why)) => problems.ignored(&value.at, key, why),
            Some(PolicyField::Unsupported(why)) => {
                let off = matches!(value.to_json(), Value::Null | Value::Bool(false))
                    || value.to_json().as_array().is_some_and(|a| a.is_empty());
                if off {
                    problems.ignored(&value.at, key, &format!("`{key}` is off; {why}"));
                } else {
                    problems.error(&value.at, format!("`{key}`: {why}"));
                }
            }
            None => {
                let also = if gitops { ", run_script" } else { ", team" };
                problems.error(&value.at, format!("unknown policy field `{key}`; a policy has {POLICY_FIELDS}{also}"));
            }
        }
    }
    for required in ["name", "query"] {
        if node.get(required).is_none() {
            problems.error(&node.at, format!("this policy has no `{required}`"));
        }
    }
    if problems.errors.len() > errors_before {
        return None;
    }
    let spec: PolicySpec =
        Node { at: node.at.clone(), value: Tree::Scalar(Value::Object(fields)) }.typed("policy", problems)?;
    Some((spec, run_script))
}

/// Reads one file's documents, recording every mistake (and warning) in `problems`.
pub fn parse(file: &str, text: &str, problems: &mut Problems) -> Vec<Document> {
    let nodes = match yaml::documents(file, text) {
        Ok(nodes) => nodes,
        Err((at, message)) => {
            problems.error(&at, message);
            return Vec::new();
        }
    };
    let mut documents = Vec::new();
    for doc in nodes {
        let Some(entries) = doc.entries("a document", problems) else { continue };
        for (key, value) in entries {
            if !matches!(key.as_str(), "apiVersion" | "kind" | "spec") {
                problems.error(&value.at, format!("unknown field `{key}`; a document has apiVersion, kind and spec"));
            }
        }
        let field = |name: &str, problems: &mut Problems| {
            let found = doc.get(name);
            if found.is_none() {
                problems.error(&doc.at, format!("this document has no `{name}`"));
            }
            found
        };
        let (Some(version), Some(kind), Some(spec)) =
            (field("apiVersion", problems), field("kind", problems), field("spec", problems))
        else {
            continue;
        };
        if version.to_json() != json!("v1") {
            problems.error(&version.at, format!("unsupported apiVersion {}; expected v1", version.to_json()));
        }
        match kind.to_json().as_str() {
            Some("policy") => {
                if let Some((policy, _)) = policy_spec(spec, false, problems) {
                    documents.push(Document::Policy(spec.at.clone(), Box::new(policy)));
                }
            }
            Some("team") => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct TeamDocument {
                    team: TeamSpec,
                }
                if let Some(team) = spec.typed::<TeamDocument>("team spec", problems) {
                    documents.push(Document::Team(spec.at.clone(), team.team));
                }
            }
            Some("label") => {
                if let Some(label) = crate::labels::label_spec(spec, problems) {
                    documents.push(Document::Label(spec.at.clone(), Box::new(label)));
                }
            }
            Some("config") => match spec.to_json() {
                Value::Object(map) => documents.push(Document::Config(spec.at.clone(), map)),
                _ => problems.error(&spec.at, "config spec must be a mapping"),
            },
            _ => problems
                .error(&kind.at, format!("unknown kind {}; expected policy, team, label or config", kind.to_json())),
        }
    }
    documents
}

/// A file's text with the environment expanded, as fleetctl does; `-` is standard input.
pub fn read_expanded(path: &std::path::Path, problems: &mut Problems) -> Result<(String, String)> {
    let (name, text) = if path.as_os_str() == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading standard input")?;
        ("<stdin>".to_string(), text)
    } else {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        (path.display().to_string(), text)
    };
    let lookup = |name: &str| std::env::var(name).ok();
    let expanded = yaml::expand_env(&name, &text, &lookup, problems);
    Ok((name, expanded))
}

/// Turns what was found into the command's outcome: warnings are printed, and mistakes become one error
/// listing all of them.
pub fn conclude(problems: &Problems) -> Result<()> {
    for warning in problems.warnings() {
        crate::out::warn(warning);
    }
    if problems.errors.is_empty() {
        return Ok(());
    }
    let count = problems.errors.len();
    let noun = if count == 1 { "mistake" } else { "mistakes" };
    bail!("{count} {noun}, nothing applied:\n{}", problems.errors.join("\n"))
}

pub fn read_documents(files: &[PathBuf]) -> Result<Vec<Document>> {
    let mut problems = Problems::default();
    let mut documents = Vec::new();
    for path in files {
        let (name, text) = read_expanded(path, &mut problems)?;
        documents.extend(parse(&name, &text, &mut problems));
    }
    conclude(&problems)?;
    Ok(documents)
}

pub async fn team_id_by_name(api: &Api, name: &str) -> Result<Option<i64>> {
    let teams: TeamsResponse = api.get("/api/v1/fleet/teams").await?;
    Ok(teams.teams.into_iter().find(|t| t.name == name).map(|t| t.id))
}

/// What `POST /spec/policies` answers: each spec's outcome (herd's addition to Fleet's `{}`).
#[derive(Debug, Deserialize)]
pub struct SpecsApplied {
    #[serde(default)]
    pub policies: Vec<SpecApplied>,
}

#[derive(Debug, Deserialize)]
pub struct SpecApplied {
    pub name: String,
    /// `created`, `updated` or `unchanged`.
    pub outcome: String,
}

/// Sends policy specs (validated by the server first, all or nothing); `dry_run` only asks what would
/// happen. A refusal points at the document of the spec the server names.
pub async fn post_specs(api: &Api, specs: Vec<PolicySpec>, origins: &[Origin], dry_run: bool) -> Result<SpecsApplied> {
    let path = if dry_run { "/api/v1/fleet/spec/policies?dry_run=true" } else { "/api/v1/fleet/spec/policies" };
    let applied: Result<SpecsApplied> = api.post(path, &PolicySpecsRequest { specs }).await;
    applied.map_err(|err| {
        // The server names the spec by position ("specs[2].deferral.options"): point at its document.
        match spec_index(&format!("{err:#}")).and_then(|i| origins.get(i)) {
            Some(at) => err.context(format!("{at}: policy")),
            None => err,
        }
    })
}

/// Applies teams first (policies may name them), then configuration, then labels (policies may name them),
/// then policies. Returns one line per thing applied, saying what changed.
pub async fn apply(api: &Api, documents: Vec<Document>) -> Result<Vec<String>> {
    let mut report = Vec::new();
    for doc in &documents {
        if let Document::Team(at, spec) = doc {
            report.push(apply_team(api, spec).await.with_context(|| format!("{at}: team {:?}", spec.name))?);
        }
    }
    for doc in &documents {
        if let Document::Config(at, patch) = doc {
            report.push(apply_config(api, patch, false).await.with_context(|| format!("{at}: config"))?);
        }
    }
    let (origins, specs): (Vec<Origin>, Vec<LabelSpec>) = documents
        .iter()
        .filter_map(|d| if let Document::Label(at, s) = d { Some((at.clone(), (**s).clone())) } else { None })
        .unzip();
    if !specs.is_empty() {
        let applied = crate::labels::post_specs(api, specs, &origins, false).await?;
        report.extend(outcome_lines("label", "labels", &applied.outcomes));
    }
    let (origins, specs): (Vec<Origin>, Vec<PolicySpec>) = documents
        .iter()
        .filter_map(|d| if let Document::Policy(at, s) = d { Some((at.clone(), (**s).clone())) } else { None })
        .unzip();
    if !specs.is_empty() {
        let applied = post_specs(api, specs, &origins, false).await?;
        report.extend(outcome_lines("policy", "policies", &applied.policies));
    }
    Ok(report)
}

/// One line per spec applied, then the totals.
fn outcome_lines(noun: &str, plural: &str, applied: &[SpecApplied]) -> Vec<String> {
    let mut counts = [0; 3];
    let mut lines = Vec::new();
    for spec in applied {
        lines.push(format!("{noun} {:?} {}", spec.name, spec.outcome));
        match spec.outcome.as_str() {
            "created" => counts[0] += 1,
            "updated" => counts[1] += 1,
            _ => counts[2] += 1,
        }
    }
    lines.push(format!("{plural} applied: {} created, {} updated, {} unchanged", counts[0], counts[1], counts[2]));
    lines
}

/// The N of the first "specs[N]" in a server's error.
pub fn spec_index(message: &str) -> Option<usize> {
    let rest = &message[message.find("specs[")? + "specs[".len()..];
    rest[..rest.find(']')?].parse().ok()
}

async fn apply_team(api: &Api, spec: &TeamSpec) -> Result<String> {
    let teams: TeamsResponse = api.get("/api/v1/fleet/teams").await?;
    let Some(team) = teams.teams.into_iter().find(|t| t.name == spec.name) else {
        create_team(api, spec).await?;
        return Ok(format!("team {:?} created", spec.name));
    };
    let changes = team_changes(&team, spec);
    for change in &changes {
        change.send(api, team.id).await?;
    }
    Ok(format!("team {:?} {}", spec.name, if changes.is_empty() { "unchanged" } else { "updated" }))
}

pub async fn create_team(api: &Api, spec: &TeamSpec) -> Result<i64> {
    let mut body = json!({"name": spec.name});
    if let Some(description) = &spec.description {
        body["description"] = json!(description);
    }
    if let Some(secrets) = &spec.secrets {
        body["secrets"] = serde_json::to_value(secrets)?;
    }
    let created: TeamResponse = api.post("/api/v1/fleet/teams", &body).await?;
    if let Some(options) = &spec.agent_options {
        let _: Value =
            api.patch(&format!("/api/v1/fleet/teams/{}", created.team.id), &json!({"agent_options": options})).await?;
    }
    Ok(created.team.id)
}

/// One change an existing team needs to match its spec.
#[derive(Debug, Clone, PartialEq)]
pub enum TeamChange {
    /// `PATCH /teams/{id}` with these fields.
    Patch(serde_json::Map<String, Value>),
    Secrets(Vec<SecretInput>),
}

impl TeamChange {
    pub fn describe(&self) -> String {
        match self {
            TeamChange::Patch(fields) => fields.keys().cloned().collect::<Vec<_>>().join(", "),
            TeamChange::Secrets(_) => "enroll secrets".to_string(),
        }
    }

    pub async fn send(&self, api: &Api, team_id: i64) -> Result<()> {
        match self {
            TeamChange::Patch(fields) => {
                let _: Value =
                    api.patch(&format!("/api/v1/fleet/teams/{team_id}"), &Value::Object(fields.clone())).await?;
            }
            TeamChange::Secrets(secrets) => {
                let body = SecretsInput { secrets: secrets.clone() };
                let _: Value = api.patch(&format!("/api/v1/fleet/teams/{team_id}/secrets"), &body).await?;
            }
        }
        Ok(())
    }
}

/// What an existing team lacks to match `spec` (fields the spec leaves out are left alone).
pub fn team_changes(team: &herd_proto::fleet::Team, spec: &TeamSpec) -> Vec<TeamChange> {
    let mut changes = Vec::new();
    let mut patch = serde_json::Map::new();
    if spec.description.as_ref().is_some_and(|d| *d != team.description) {
        patch.insert("description".into(), json!(spec.description));
    }
    if spec.agent_options.is_some() && spec.agent_options != team.agent_options {
        patch.insert("agent_options".into(), json!(spec.agent_options));
    }
    if !patch.is_empty() {
        changes.push(TeamChange::Patch(patch));
    }
    if let Some(secrets) = &spec.secrets {
        let mut wanted: Vec<&str> = secrets.iter().map(|s| s.secret.as_str()).collect();
        let mut current: Vec<&str> = team.secrets.iter().map(|s| s.secret.as_str()).collect();
        wanted.sort();
        current.sort();
        if wanted != current {
            changes.push(TeamChange::Secrets(secrets.clone()));
        }
    }
    changes
}

/// Which configuration sections `patch` would change (sections merge field by field on the server;
/// `agent_options` is replaced whole).
pub fn config_changes(current: &Value, patch: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut changed = Vec::new();
    for (section, value) in patch {
        match (section.as_str(), value, current.get(section)) {
            ("agent_options", value, current) => {
                if Some(value) != current {
                    changed.push(section.clone());
                }
            }
            (_, Value::Object(fields), Some(current)) => {
                changed.extend(
                    fields
                        .iter()
                        .filter(|(k, v)| current.get(k.as_str()) != Some(v))
                        .map(|(k, _)| format!("{section}.{k}")),
                );
            }
            _ => changed.push(section.clone()),
        }
    }
    changed
}

/// Applies a configuration patch unless it changes nothing; `dry_run` only says what it would change.
pub async fn apply_config(api: &Api, patch: &serde_json::Map<String, Value>, dry_run: bool) -> Result<String> {
    let current = serde_json::to_value(api.get::<AppConfig>("/api/v1/fleet/config").await?)?;
    let changed = config_changes(&current, patch);
    if changed.is_empty() {
        return Ok("config unchanged".into());
    }
    if dry_run {
        return Ok(format!("config would change: {}", changed.join(", ")));
    }
    let _: Value = api.patch("/api/v1/fleet/config", &Value::Object(patch.clone())).await?;
    Ok("config updated".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLEET_YAML: &str = "apiVersion: v1
kind: policy
spec:
  name: Firewall enabled
  query: SELECT 1 FROM alf WHERE global_state >= 1;
  platform: darwin
  critical: true
---
apiVersion: v1
kind: team
spec:
  team:
    name: Workstations
    secrets:
      - secret: workstations-secret-1
---
apiVersion: v1
kind: config
spec:
  org_info:
    org_name: Acme
";

    fn parse_ok(file: &str, text: &str) -> Vec<Document> {
        let mut problems = Problems::default();
        let docs = parse(file, text, &mut problems);
        assert!(problems.errors.is_empty(), "{:?}", problems.errors);
        docs
    }

    /// All mistakes, one per line.
    fn parse_err(file: &str, text: &str) -> String {
        let mut problems = Problems::default();
        parse(file, text, &mut problems);
        assert!(!problems.errors.is_empty(), "expected mistakes in {text}");
        problems.errors.join("\n")
    }

    #[test]
    fn server_errors_name_the_spec() {
        assert_eq!(spec_index("POST /x: 422: specs[12].deferral.options[0]: too long"), Some(12));
        assert_eq!(spec_index("POST /x: 422: name: taken"), None);
        assert_eq!(spec_index("specs[x]"), None);
    }

    #[test]
    fn parses_fleet_documents() {
        let docs = parse_ok("fleet.yml", FLEET_YAML);
        assert_eq!(docs.len(), 3);
        match &docs[0] {
            Document::Policy(at, spec) => {
                assert_eq!(spec.name, "Firewall enabled");
                assert!(spec.critical);
                assert_eq!(at.file, "fleet.yml");
                assert_eq!(at.line, 4, "the spec starts on line 4: {at}");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&docs[1], Document::Team(_, t) if t.name == "Workstations" && t.secrets.as_ref().unwrap().len() == 1)
        );
        assert!(matches!(&docs[2], Document::Config(_, c) if c["org_info"]["org_name"] == "Acme"));
    }

    #[test]
    fn mistakes_name_file_line_and_column() {
        let unknown_kind =
            "apiVersion: v1\nkind: policy\nspec: {name: a, query: b}\n---\napiVersion: v1\nkind: pack\nspec: {}\n";
        let err = parse_err("x.yml", unknown_kind);
        assert!(err.starts_with("x.yml:6:"), "{err}");
        assert!(err.contains("unknown kind \"pack\""), "{err}");

        let broken = "apiVersion: v1\nkind: policy\nspec:\n  name: [unclosed\n";
        let err = parse_err("y.yml", broken);
        assert!(err.starts_with("y.yml:"), "{err}");
        assert!(!err.starts_with("y.yml:0"), "has a location: {err}");

        let missing_query = "apiVersion: v1\nkind: policy\nspec:\n  name: only a name\n";
        let err = parse_err("z.yml", missing_query);
        assert!(err.starts_with("z.yml:4:"), "{err}");
        assert!(err.contains("query"), "{err}");

        let typo = "apiVersion: v1\nkind: policy\nspec: {name: a, query: b, platfrom: linux}\n";
        assert!(parse_err("t.yml", typo).contains("platfrom"));
        let version = "apiVersion: v2\nkind: policy\nspec: {name: a, query: b}\n";
        assert!(parse_err("v.yml", version).contains("apiVersion"));
    }

    #[test]
    fn every_mistake_is_reported_at_its_field() {
        let text = "apiVersion: v1
kind: policy
spec:
  name: One
  query: SELECT 1;
  critical: sometimes
  platfrom: linux
---
apiVersion: v1
kind: policy
spec:
  query: SELECT 2;
  labels_include_any: Macs
---
apiVersion: v1
kind: pack
spec: {}
---
apiVersion: v1
kind: label
spec:
  name: Macs
  qeury: SELECT 1;
";
        let err = parse_err("many.yml", text);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 6, "{err}");
        assert!(lines[0].starts_with("many.yml:6:13: critical:"), "{err}");
        assert!(lines[1].starts_with("many.yml:7:13: unknown policy field `platfrom`"), "{err}");
        assert!(lines[2].starts_with("many.yml:13:23: labels_include_any: invalid type"), "{err}");
        assert!(lines[3].starts_with("many.yml:12:3: this policy has no `name`"), "{err}");
        assert!(lines[4].starts_with("many.yml:16:7: unknown kind \"pack\""), "{err}");
        assert!(lines[5].starts_with("many.yml:23:10: unknown label field `qeury`"), "{err}");
    }

    #[test]
    fn fleet_metadata_is_accepted_with_a_warning() {
        let cis = "---
apiVersion: v1
kind: policy
spec:
  name: CIS - 1.1.1.1 Ensure cramfs kernel module is not available
  platforms: linux
  platform: linux
  description: Ensure cramfs kernel module is not available
  query: SELECT 1;
  purpose: Informational
  tags: compliance, CIS, CIS_Ubuntu_22_04
  contributors: sharon-fdm
  calendar_events_enabled: false
---
apiVersion: v1
kind: policy
spec:
  name: CIS - 1.1.1.2
  platforms: linux
  query: SELECT 2;
  tags: compliance
";
        let mut problems = Problems::default();
        let docs = parse("cis.yml", cis, &mut problems);
        assert!(problems.errors.is_empty(), "{:?}", problems.errors);
        assert_eq!(docs.len(), 2);
        let warnings = problems.warnings();
        assert!(
            warnings.iter().any(|w| w.starts_with("cis.yml:6:14: warning: `platforms`") && w.contains("2 times")),
            "{warnings:?}"
        );
        assert!(
            warnings.iter().any(|w| w.starts_with("cis.yml:10:12: warning: Fleet's descriptive metadata")),
            "{warnings:?}"
        );
        assert!(warnings.iter().any(|w| w.contains("calendar_events_enabled` is off")), "{warnings:?}");
        let on = cis.replace("calendar_events_enabled: false", "calendar_events_enabled: true");
        assert!(parse_err("cis.yml", &on).contains("herd schedules no calendar events"));
    }

    #[test]
    fn labels_and_policy_label_scopes_are_read() {
        let text = "apiVersion: v1
kind: label
spec:
  name: Build servers
  query: SELECT 1 FROM file WHERE path = '/etc/build';
  label_membership_type: dynamic
---
apiVersion: v1
kind: policy
spec:
  name: Builds pass
  query: SELECT 1;
  labels_include_any: [Build servers]
  labels_exclude_any: [Kiosks]
";
        let docs = parse_ok("scoped.yml", text);
        assert!(matches!(&docs[0], Document::Label(at, l) if l.name == "Build servers" && at.line == 4));
        match &docs[1] {
            Document::Policy(_, spec) => {
                assert_eq!(spec.labels_include_any, Some(vec!["Build servers".to_string()]));
                assert_eq!(spec.labels_exclude_any, Some(vec!["Kiosks".to_string()]));
                assert_eq!(spec.labels_include_all, None, "absent: no such list");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn config_changes_name_the_fields() {
        let current = json!({"org_info": {"org_name": "Acme", "contact_url": ""}, "agent_options": {"config": {}}});
        let cases: Vec<(Value, Vec<&str>)> = vec![
            (json!({"org_info": {"org_name": "Acme"}}), vec![]),
            (json!({"org_info": {"org_name": "Acme Corp"}}), vec!["org_info.org_name"]),
            (json!({"agent_options": {"config": {}}}), vec![]),
            (json!({"agent_options": {"config": {"options": {}}}}), vec!["agent_options"]),
            (json!({"mdm": {"macos_migration": {"enable": true}}}), vec!["mdm"]),
        ];
        for (patch, expected) in cases {
            assert_eq!(config_changes(&current, patch.as_object().unwrap()), expected, "{patch}");
        }
    }
}
