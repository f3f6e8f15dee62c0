//! `herdctl apply -f`: Fleet's multi-document `apiVersion: v1` YAML (kinds policy, team, config), applied by
//! name and idempotent: applying the same files twice changes nothing the second time.

use crate::client::Api;
use anyhow::{Context, Result, bail};
use herd_proto::fleet::{
    AppConfig, PolicySpec, PolicySpecsRequest, SecretInput, SecretsInput, TeamResponse, TeamsResponse,
};
use serde::Deserialize;
use serde_json::{Value, json};
use serde_saphyr::Spanned;
use std::io::Read;
use std::path::PathBuf;

/// Where a document came from, for error messages: `file:line:column`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: u64,
    pub column: u64,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct TeamDocument {
    team: TeamSpec,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    Policy(Origin, Box<PolicySpec>),
    Team(Origin, TeamSpec),
    Config(Origin, serde_json::Map<String, Value>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDocument {
    #[serde(rename = "apiVersion")]
    api_version: Spanned<String>,
    kind: Spanned<String>,
    spec: Spanned<Value>,
}

fn origin(file: &str, location: serde_saphyr::Location) -> Origin {
    Origin { file: file.to_string(), line: location.line(), column: location.column() }
}

/// Parses one file's documents. Every mistake names `file:line:column`.
pub fn parse(file: &str, text: &str) -> Result<Vec<Document>> {
    let raw: Vec<RawDocument> = serde_saphyr::from_multiple(text).map_err(|err| {
        let at = err.location().map(|l| format!("{}:{}", l.line(), l.column())).unwrap_or_else(|| "?".into());
        // The first line of the message is the diagnosis; the rest is a rendered snippet.
        let message = err.to_string();
        anyhow::anyhow!("{file}:{at}: {}", message.lines().next().unwrap_or("invalid YAML"))
    })?;
    let mut documents = Vec::with_capacity(raw.len());
    for doc in raw {
        if doc.api_version.value != "v1" {
            let at = origin(file, doc.api_version.referenced);
            bail!("{at}: unsupported apiVersion {:?}; expected v1", doc.api_version.value);
        }
        let at = origin(file, doc.spec.referenced);
        let spec = doc.spec.value;
        documents.push(match doc.kind.value.as_str() {
            "policy" => Document::Policy(
                at.clone(),
                Box::new(serde_json::from_value(spec).with_context(|| format!("{at}: policy spec"))?),
            ),
            "team" => {
                let team: TeamDocument = serde_json::from_value(spec).with_context(|| format!("{at}: team spec"))?;
                Document::Team(at, team.team)
            }
            "config" => match spec {
                Value::Object(map) => Document::Config(at, map),
                _ => bail!("{at}: config spec must be a mapping"),
            },
            other => {
                let at = origin(file, doc.kind.referenced);
                bail!("{at}: unknown kind {other:?}; expected policy, team or config");
            }
        });
    }
    Ok(documents)
}

pub fn read_documents(files: &[PathBuf]) -> Result<Vec<Document>> {
    let mut documents = Vec::new();
    for path in files {
        let (name, text) = if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::stdin().read_to_string(&mut text).context("reading standard input")?;
            ("<stdin>".to_string(), text)
        } else {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            (path.display().to_string(), text)
        };
        documents.extend(parse(&name, &text)?);
    }
    Ok(documents)
}

pub async fn team_id_by_name(api: &Api, name: &str) -> Result<Option<i64>> {
    let teams: TeamsResponse = api.get("/api/v1/fleet/teams").await?;
    Ok(teams.teams.into_iter().find(|t| t.name == name).map(|t| t.id))
}

/// Applies teams first (policies may name them), then configuration, then policies. Returns one line per
/// thing applied, saying what changed.
pub async fn apply(api: &Api, documents: Vec<Document>) -> Result<Vec<String>> {
    let mut report = Vec::new();
    for doc in &documents {
        if let Document::Team(at, spec) = doc {
            report.push(apply_team(api, spec).await.with_context(|| format!("{at}: team {:?}", spec.name))?);
        }
    }
    for doc in &documents {
        if let Document::Config(at, patch) = doc {
            report.push(apply_config(api, patch).await.with_context(|| format!("{at}: config"))?);
        }
    }
    let (origins, specs): (Vec<Origin>, Vec<PolicySpec>) = documents
        .iter()
        .filter_map(|d| if let Document::Policy(at, s) = d { Some((at.clone(), (**s).clone())) } else { None })
        .unzip();
    if !specs.is_empty() {
        let names: Vec<String> = specs.iter().map(|s| format!("{:?}", s.name)).collect();
        let applied: Result<Value> = api.post("/api/v1/fleet/spec/policies", &PolicySpecsRequest { specs }).await;
        if let Err(err) = applied {
            // The server names the spec by position ("specs[2].deferral.options"): point at its document.
            return Err(match spec_index(&format!("{err:#}")).and_then(|i| origins.get(i)) {
                Some(at) => err.context(format!("{at}: policy")),
                None => err,
            });
        }
        report.push(format!("policies applied: {}", names.join(", ")));
    }
    Ok(report)
}

/// The N of the first "specs[N]" in a server's error.
fn spec_index(message: &str) -> Option<usize> {
    let rest = &message[message.find("specs[")? + "specs[".len()..];
    rest[..rest.find(']')?].parse().ok()
}

async fn apply_team(api: &Api, spec: &TeamSpec) -> Result<String> {
    let teams: TeamsResponse = api.get("/api/v1/fleet/teams").await?;
    let Some(team) = teams.teams.into_iter().find(|t| t.name == spec.name) else {
        let mut body = json!({"name": spec.name});
        if let Some(description) = &spec.description {
            body["description"] = json!(description);
        }
        if let Some(secrets) = &spec.secrets {
            body["secrets"] = serde_json::to_value(secrets)?;
        }
        let created: TeamResponse = api.post("/api/v1/fleet/teams", &body).await?;
        if let Some(options) = &spec.agent_options {
            let _: Value = api
                .patch(&format!("/api/v1/fleet/teams/{}", created.team.id), &json!({"agent_options": options}))
                .await?;
        }
        return Ok(format!("team {:?} created", spec.name));
    };
    let mut patch = serde_json::Map::new();
    if spec.description.as_ref().is_some_and(|d| *d != team.description) {
        patch.insert("description".into(), json!(spec.description));
    }
    if spec.agent_options.is_some() && spec.agent_options != team.agent_options {
        patch.insert("agent_options".into(), json!(spec.agent_options));
    }
    let mut changed = !patch.is_empty();
    if changed {
        let _: Value = api.patch(&format!("/api/v1/fleet/teams/{}", team.id), &Value::Object(patch)).await?;
    }
    if let Some(secrets) = &spec.secrets {
        let mut wanted: Vec<&str> = secrets.iter().map(|s| s.secret.as_str()).collect();
        let mut current: Vec<&str> = team.secrets.iter().map(|s| s.secret.as_str()).collect();
        wanted.sort();
        current.sort();
        if wanted != current {
            let body = SecretsInput { secrets: secrets.clone() };
            let _: Value = api.patch(&format!("/api/v1/fleet/teams/{}/secrets", team.id), &body).await?;
            changed = true;
        }
    }
    Ok(format!("team {:?} {}", spec.name, if changed { "updated" } else { "unchanged" }))
}

async fn apply_config(api: &Api, patch: &serde_json::Map<String, Value>) -> Result<String> {
    let current = serde_json::to_value(api.get::<AppConfig>("/api/v1/fleet/config").await?)?;
    // Sections merge field by field on the server; agent_options is replaced whole.
    let differs = patch.iter().any(|(section, value)| match (section.as_str(), value, current.get(section)) {
        ("agent_options", value, current) => Some(value) != current,
        (_, Value::Object(fields), Some(current)) => fields.iter().any(|(k, v)| current.get(k) != Some(v)),
        _ => true,
    });
    if !differs {
        return Ok("config unchanged".into());
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

    #[test]
    fn server_errors_name_the_spec() {
        assert_eq!(spec_index("POST /x: 422: specs[12].deferral.options[0]: too long"), Some(12));
        assert_eq!(spec_index("POST /x: 422: name: taken"), None);
        assert_eq!(spec_index("specs[x]"), None);
    }

    #[test]
    fn parses_fleet_documents() {
        let docs = parse("fleet.yml", FLEET_YAML).unwrap();
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
            "apiVersion: v1\nkind: policy\nspec: {name: a, query: b}\n---\napiVersion: v1\nkind: label\nspec: {}\n";
        let err = parse("x.yml", unknown_kind).unwrap_err().to_string();
        assert!(err.starts_with("x.yml:6:"), "{err}");
        assert!(err.contains("unknown kind \"label\""), "{err}");

        let broken = "apiVersion: v1\nkind: policy\nspec:\n  name: [unclosed\n";
        let err = parse("y.yml", broken).unwrap_err().to_string();
        assert!(err.starts_with("y.yml:"), "{err}");
        assert!(!err.starts_with("y.yml:?"), "has a location: {err}");

        let missing_query = "apiVersion: v1\nkind: policy\nspec:\n  name: only a name\n";
        let err = format!("{:#}", parse("z.yml", missing_query).unwrap_err());
        assert!(err.starts_with("z.yml:4:"), "{err}");
        assert!(err.contains("query"), "{err}");

        let typo = "apiVersion: v1\nkind: policy\nspec: {name: a, query: b, platfrom: linux}\n";
        assert!(format!("{:#}", parse("t.yml", typo).unwrap_err()).contains("platfrom"));
        let version = "apiVersion: v2\nkind: policy\nspec: {name: a, query: b}\n";
        assert!(parse("v.yml", version).unwrap_err().to_string().contains("apiVersion"));
    }
}
