//! `herdctl gitops`: Fleet's GitOps layout (`default.yml` and `teams/*.yml`, with `path:` includes) applied
//! declaratively, like `fleetctl gitops`: what the files hold is created or updated, and the policies and
//! scripts of a scope the files manage that they no longer hold are deleted. `--dry-run` prints the same
//! changes and makes none.
//!
//! The kinds herd has: `org_settings` (herd's configuration; `secrets` are the global enroll secrets),
//! `agent_options`, `controls.scripts`, `controls.macos_migration`, `labels` (default.yml only: labels are
//! global; without the key, labels are left alone; with it, labels it no longer holds are deleted),
//! `policies` (with `run_script` and label scopes), and per team `name`, `team_settings.secrets`. Settings of
//! features herd lacks (software, queries, MDM profiles…) are refused when they say something, so nothing a
//! file asks for is silently dropped.

use crate::apply::{self, TeamChange, TeamSpec};
use crate::client::Api;
use crate::yaml::{self, Node, Origin, Problems, Tree};
use anyhow::{Context, Result};
use herd_proto::fleet::{
    AppConfig, DeletePoliciesRequest, Label, LabelSpec, PoliciesResponse, PolicySpec, SecretInput, TeamsResponse,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

/// One scope the files manage: the global one (`default.yml`) or a team (`teams/NAME.yml`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScopeFiles {
    pub file: String,
    /// None: global.
    pub team: Option<TeamSpec>,
    pub scripts: Vec<ScriptFile>,
    pub policies: Vec<(Origin, PolicySpec)>,
}

impl ScopeFiles {
    fn label(&self) -> String {
        match &self.team {
            Some(team) => format!("team {:?}", team.name),
            None => "global".to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ScriptFile {
    pub at: Origin,
    pub name: String,
    pub path: PathBuf,
    pub contents: String,
}

/// What a GitOps repository asks for.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Repo {
    pub scopes: Vec<ScopeFiles>,
    /// The configuration patch from `default.yml` (`org_settings`, `agent_options`, `controls.macos_migration`).
    pub config: serde_json::Map<String, Value>,
    pub global_secrets: Option<Vec<SecretInput>>,
    /// `labels:` of default.yml; `None` when the key is absent (labels are then not managed).
    pub labels: Option<Vec<(Origin, LabelSpec)>>,
}

/// The files to read: each `-f` file, or for a directory its `default.yml` and `teams/*.yml`.
pub fn files_of(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let default = path.join("default.yml");
        if default.exists() {
            files.push(default);
        }
        let teams = path.join("teams");
        if teams.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(&teams)
                .with_context(|| format!("reading {}", teams.display()))?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "yml" || e == "yaml"))
                .collect();
            found.sort();
            files.extend(found);
        }
    }
    Ok(files)
}

/// `a/b/../c` is `a/c`: include paths are relative to the file naming them, and the same file is the same
/// script however it is reached.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir if out.file_name().is_some() => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn relative_to(file: &Path, path: &str) -> PathBuf {
    normalize(&file.parent().unwrap_or(Path::new("")).join(path))
}

/// Reads a file (environment expanded) as one YAML document; `None` after recording why not.
fn read_node(path: &Path, at: Option<&Origin>, problems: &mut Problems) -> Option<Node> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) => {
            let message = format!("reading {}: {err}", path.display());
            match at {
                Some(at) => problems.error(at, message),
                None => problems.errors.push(message),
            }
            return None;
        }
    };
    let name = path.display().to_string();
    let lookup = |name: &str| std::env::var(name).ok();
    let text = yaml::expand_env(&name, &text, &lookup, problems);
    match yaml::documents(&name, &text) {
        Ok(mut docs) if docs.len() <= 1 => Some(
            docs.pop()
                .unwrap_or(Node { at: Origin { file: name, line: 1, column: 1 }, value: Tree::Scalar(Value::Null) }),
        ),
        Ok(docs) => {
            problems.error(&docs[1].at, "a GitOps file holds one YAML document");
            None
        }
        Err((at, message)) => {
            problems.error(&at, message);
            None
        }
    }
}

/// A value that says nothing: absent, null, false, empty.
fn is_off(node: &Node) -> bool {
    match node.to_json() {
        Value::Null | Value::Bool(false) => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

/// `{path: …}` as the whole value: the included file's node. Otherwise the value itself.
fn included(node: &Node, file: &Path, problems: &mut Problems) -> Option<Node> {
    match &node.value {
        Tree::Map(entries) if entries.len() == 1 && entries[0].0 == "path" => {
            let path = entries[0].1.typed::<String>("path", problems)?;
            read_node(&relative_to(file, &path), Some(&entries[0].1.at), problems)
        }
        _ => Some(node.clone()),
    }
}

fn unsupported(node: &Node, what: &str, problems: &mut Problems) {
    if !is_off(node) {
        problems.error(&node.at, format!("`{what}`: herd has no such feature; remove it or leave it empty"));
    }
}

/// Reads the files: every mistake and warning goes to `problems`.
pub fn read(files: &[PathBuf], problems: &mut Problems) -> Repo {
    let mut repo = Repo::default();
    let mut team_names = BTreeMap::new();
    let mut seen_global = false;
    for file in files {
        let Some(root) = read_node(file, None, problems) else { continue };
        let Some(entries) = root.entries("a GitOps file", problems) else { continue };
        let is_team = root.get("name").is_some();
        let mut scope =
            ScopeFiles { file: file.display().to_string(), team: None, scripts: Vec::new(), policies: Vec::new() };
        if is_team {
            let name = root.get("name").and_then(|n| n.typed::<String>("name", problems)).unwrap_or_default();
            if name == "No team" {
                // Fleet's teams/no-team.yml: hosts in no team. herd's global scope is every host.
                problems
                    .error(&root.at, "herd has no \"No team\" scope: put these policies and scripts in default.yml");
                continue;
            }
            if let Some(first) = team_names.insert(name.clone(), root.at.clone()) {
                problems.error(&root.at, format!("team {name:?} is also in {}", first.file));
            }
            scope.team = Some(TeamSpec { name, description: None, secrets: None, agent_options: None });
        } else if std::mem::replace(&mut seen_global, true) {
            problems.error(&root.at, "a second default.yml (a file without `name` is the global one)");
        }
        let mut policies_node = None;
        for (key, value) in entries {
            match (key.as_str(), is_team) {
                ("name", true) => {}
                ("team_settings", true) => team_settings(value, scope.team.as_mut(), problems),
                ("org_settings", false) => org_settings(value, &mut repo, problems),
                ("agent_options", _) => {
                    if let Some(options) = included(value, file, problems).filter(|n| !n.is_null()) {
                        match scope.team.as_mut() {
                            Some(team) => team.agent_options = Some(options.to_json()),
                            None => {
                                repo.config.insert("agent_options".into(), options.to_json());
                            }
                        }
                    }
                }
                ("controls", _) => controls(value, file, is_team, &mut scope, &mut repo, problems),
                ("policies", _) => policies_node = Some(value),
                ("labels", false) => {
                    let mut found = Vec::new();
                    labels(value, file, &mut found, problems);
                    repo.labels.get_or_insert_with(Vec::new).extend(found);
                }
                ("labels", true) => {
                    if !is_off(value) {
                        problems.error(&value.at, "labels are global in herd: list them in default.yml's `labels:`");
                    }
                }
                ("queries" | "reports" | "software", _) => unsupported(value, key, problems),
                ("org_settings", true) => {
                    problems.error(&value.at, "`org_settings` belongs in default.yml; a team file has `team_settings`")
                }
                ("team_settings", false) => {
                    problems.error(&value.at, "`team_settings` belongs in a team file (with `name`)")
                }
                (other, _) => problems.error(
                    &value.at,
                    format!(
                        "unknown key `{other}`; a GitOps file has {}",
                        if is_team {
                            "name, team_settings, agent_options, controls, policies"
                        } else {
                            "org_settings, agent_options, controls, labels, policies"
                        }
                    ),
                ),
            }
        }
        if let Some(node) = policies_node {
            policies(node, file, &mut scope, problems);
        }
        repo.scopes.push(scope);
    }
    repo
}

fn secrets(node: &Node, problems: &mut Problems) -> Option<Vec<SecretInput>> {
    node.typed::<Option<Vec<SecretInput>>>("secrets", problems).map(Option::unwrap_or_default)
}

fn team_settings(node: &Node, team: Option<&mut TeamSpec>, problems: &mut Problems) {
    if node.is_null() {
        return;
    }
    let Some(entries) = node.entries("team_settings", problems) else { return };
    let Some(team) = team else { return };
    for (key, value) in entries {
        match key.as_str() {
            "secrets" => team.secrets = secrets(value, problems),
            "description" => team.description = value.typed("description", problems),
            other => unsupported(value, &format!("team_settings.{other}"), problems),
        }
    }
}

fn org_settings(node: &Node, repo: &mut Repo, problems: &mut Problems) {
    if node.is_null() {
        return;
    }
    let Some(entries) = node.entries("org_settings", problems) else { return };
    for (key, value) in entries {
        match key.as_str() {
            "secrets" => repo.global_secrets = secrets(value, problems),
            // herd's configuration sections; the server checks their fields.
            _ => {
                if !value.is_null() {
                    repo.config.insert(key.clone(), value.to_json());
                }
            }
        }
    }
}

fn controls(node: &Node, file: &Path, is_team: bool, scope: &mut ScopeFiles, repo: &mut Repo, problems: &mut Problems) {
    if node.is_null() {
        return;
    }
    let Some(entries) = node.entries("controls", problems) else { return };
    for (key, value) in entries {
        match key.as_str() {
            "scripts" => {
                let items = match &value.value {
                    Tree::Seq(items) => items.as_slice(),
                    Tree::Scalar(Value::Null) => &[],
                    _ => {
                        problems.error(&value.at, "controls.scripts must be a list of `- path: …`");
                        continue;
                    }
                };
                for item in items {
                    #[derive(Deserialize)]
                    #[serde(deny_unknown_fields)]
                    struct ScriptPath {
                        path: String,
                    }
                    let Some(ScriptPath { path }) = item.typed("controls.scripts item", problems) else { continue };
                    let resolved = relative_to(file, &path);
                    let name = resolved.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                    match std::fs::read_to_string(&resolved) {
                        Ok(contents) => {
                            if scope.scripts.iter().any(|s| s.name == name) {
                                problems.error(&item.at, format!("a script named {name:?} is already listed"));
                            }
                            scope.scripts.push(ScriptFile { at: item.at.clone(), name, path: resolved, contents });
                        }
                        Err(err) => problems.error(&item.at, format!("reading {}: {err}", resolved.display())),
                    }
                }
            }
            "macos_migration" if !is_team => {
                let mdm = repo.config.entry("mdm").or_insert_with(|| json!({}));
                if let Some(mdm) = mdm.as_object_mut() {
                    mdm.insert("macos_migration".into(), value.to_json());
                }
            }
            other => unsupported(value, &format!("controls.{other}"), problems),
        }
    }
}

/// A `labels:` list: label specs, or `- path: lib/x.yml` items naming a file that holds such a list.
fn labels(node: &Node, file: &Path, found: &mut Vec<(Origin, LabelSpec)>, problems: &mut Problems) {
    let items = match &node.value {
        Tree::Seq(items) => items.clone(),
        Tree::Scalar(Value::Null) => Vec::new(),
        _ => {
            problems.error(&node.at, "labels must be a list");
            return;
        }
    };
    for item in items {
        if let Some(path) = item.get("path").filter(|_| matches!(&item.value, Tree::Map(e) if e.len() == 1)) {
            let Some(path) = path.typed::<String>("path", problems) else { continue };
            let included = relative_to(file, &path);
            let Some(list) = read_node(&included, Some(&item.at), problems) else { continue };
            match &list.value {
                Tree::Seq(_) | Tree::Scalar(Value::Null) => labels(&list, &included, found, problems),
                _ => problems.error(&list.at, "a labels file holds a list of labels"),
            }
            continue;
        }
        let Some(spec) = crate::labels::label_spec(&item, problems) else { continue };
        if let Some((first, _)) = found.iter().find(|(_, l)| l.name.eq_ignore_ascii_case(&spec.name)) {
            problems.error(&item.at, format!("label {:?} is also at {first}", spec.name));
        }
        found.push((item.at.clone(), spec));
    }
}

fn policies(node: &Node, file: &Path, scope: &mut ScopeFiles, problems: &mut Problems) {
    let items = match &node.value {
        Tree::Seq(items) => items.clone(),
        Tree::Scalar(Value::Null) => Vec::new(),
        _ => {
            problems.error(&node.at, "policies must be a list");
            return;
        }
    };
    for item in items {
        // `- path: lib/x.yml`: a file holding a list of policies, paths in it relative to it.
        if let Some(path) = item.get("path").filter(|_| matches!(&item.value, Tree::Map(e) if e.len() == 1)) {
            let Some(path) = path.typed::<String>("path", problems) else { continue };
            let included = relative_to(file, &path);
            let Some(list) = read_node(&included, Some(&item.at), problems) else { continue };
            match &list.value {
                Tree::Seq(_) | Tree::Scalar(Value::Null) => policies(&list, &included, scope, problems),
                _ => problems.error(&list.at, "a policies file holds a list of policies"),
            }
            continue;
        }
        let Some((mut spec, run_script)) = apply::policy_spec(&item, true, problems) else { continue };
        spec.team = scope.team.as_ref().map(|t| t.name.clone()).unwrap_or_default();
        // Declarative: a policy without run_script has no script automation.
        spec.script = Some(String::new());
        if let Some(run_script) = run_script {
            let resolved = relative_to(file, &run_script.path);
            match scope.scripts.iter().find(|s| s.path == resolved) {
                Some(script) => spec.script = Some(script.name.clone()),
                None => problems.error(
                    &run_script.at,
                    format!("run_script {}: not among this file's controls.scripts", resolved.display()),
                ),
            }
        }
        if let Some((first, _)) = scope.policies.iter().find(|(_, p)| p.name == spec.name) {
            problems.error(&item.at, format!("policy {:?} is also at {first}", spec.name));
        }
        scope.policies.push((item.at.clone(), spec));
    }
}

#[derive(Debug, Deserialize)]
struct ScriptsResponse {
    scripts: Vec<ScriptListed>,
}

#[derive(Debug, Deserialize)]
struct ScriptListed {
    id: i64,
    name: String,
}

#[derive(Debug, Deserialize)]
struct GlobalSecrets {
    spec: GlobalSecretsSpec,
}

#[derive(Debug, Deserialize)]
struct GlobalSecretsSpec {
    secrets: Vec<ListedSecret>,
}

#[derive(Debug, Deserialize)]
struct ListedSecret {
    secret: String,
}

/// The changes made (or, in a dry run, that would be made), one line each: `+` added, `~` changed,
/// `-` deleted.
#[derive(Debug, Default)]
pub struct Changes {
    pub lines: Vec<String>,
}

impl Changes {
    fn add(&mut self, sign: char, what: String) {
        self.lines.push(format!("{sign} {what}"));
    }
}

fn scripts_path(team_id: Option<i64>) -> String {
    match team_id {
        Some(team) => format!("/api/v1/fleet/scripts?team_id={team}"),
        None => "/api/v1/fleet/scripts".to_string(),
    }
}

/// Team ids by name; `None` for a team a dry run would create (nothing of it exists yet).
type TeamIds = BTreeMap<String, Option<i64>>;

/// Scripts by scope label and name.
type ScriptKeys = BTreeSet<(String, String)>;

/// The scope's team id (`Some(None)`: global), or `None` for a team a dry run would create.
fn scope_id(scope: &ScopeFiles, team_ids: &TeamIds) -> Option<Option<i64>> {
    match &scope.team {
        Some(team) => team_ids.get(&team.name).copied().flatten().map(Some),
        None => Some(None),
    }
}

/// One run: what it changed (or would change).
struct Run<'a> {
    api: &'a Api,
    dry_run: bool,
    changes: Changes,
}

/// Brings the server to what `repo` says, in dependency order: teams (everything else may live in one),
/// settings, scripts and labels (policies name them), policies, then what the files no longer hold
/// (policies before labels, since a policy may name a label). Nothing is changed when `dry_run`.
pub async fn sync(api: &Api, repo: &Repo, dry_run: bool) -> Result<Changes> {
    let mut run = Run { api, dry_run, changes: Changes::default() };
    let current_labels = match &repo.labels {
        Some(wanted) => {
            let current = crate::labels::list(api).await?.labels;
            check_policy_labels(repo, wanted, &current)?;
            Some(current)
        }
        None => None,
    };
    let team_ids = run.teams(repo).await?;
    run.settings(repo).await?;
    let (replaced_scripts, stale_scripts) = run.scripts(repo, &team_ids).await?;
    let new_labels = run.labels(repo).await?;
    run.policies(repo, &team_ids, &replaced_scripts, &new_labels).await?;
    run.delete_stale_policies(repo, &team_ids).await?;
    if let (Some(wanted), Some(current)) = (&repo.labels, &current_labels) {
        run.delete_stale_labels(wanted, current).await?;
    }
    for (label, name, id) in stale_scripts {
        run.changes.add('-', format!("script {name:?} ({label})"));
        if !dry_run {
            let _: Value = api.delete(&format!("/api/v1/fleet/scripts/{id}")).await?;
        }
    }
    Ok(run.changes)
}

/// The label names each policy's scope lists.
fn scope_names(spec: &PolicySpec) -> impl Iterator<Item = &String> {
    [&spec.labels_include_any, &spec.labels_include_all, &spec.labels_exclude_any].into_iter().flatten().flatten()
}

/// With labels managed by the files, a policy may name only a label the files hold or a built-in one: any
/// other would be deleted by this very run. Checked before anything is sent.
fn check_policy_labels(repo: &Repo, wanted: &[(Origin, LabelSpec)], current: &[Label]) -> Result<()> {
    let mut problems = Problems::default();
    for scope in &repo.scopes {
        for (at, spec) in &scope.policies {
            for name in scope_names(spec) {
                let held = wanted.iter().any(|(_, l)| l.name.eq_ignore_ascii_case(name.trim()));
                let builtin = current.iter().any(|l| l.label_type == "builtin" && l.name == name.trim());
                if !held && !builtin {
                    problems.error(
                        at,
                        format!(
                            "policy {:?} names label {name:?}, which is neither in default.yml's `labels:` nor built in",
                            spec.name
                        ),
                    );
                }
            }
        }
    }
    apply::conclude(&problems)
}

impl Run<'_> {
    /// Creates and updates the labels of default.yml's `labels:` in one request, which the server validates
    /// whole before writing. Returns the names of the labels created (or, in a dry run, to be created).
    async fn labels(&mut self, repo: &Repo) -> Result<BTreeSet<String>> {
        let mut created = BTreeSet::new();
        let Some(labels) = repo.labels.as_ref().filter(|l| !l.is_empty()) else { return Ok(created) };
        let (origins, specs): (Vec<Origin>, Vec<LabelSpec>) = labels.iter().cloned().unzip();
        let applied = crate::labels::post_specs(self.api, specs, &origins, self.dry_run).await?;
        for label in applied.outcomes {
            match label.outcome.as_str() {
                "created" => {
                    self.changes.add('+', format!("label {:?}", label.name));
                    created.insert(label.name);
                }
                "updated" => self.changes.add('~', format!("label {:?}", label.name)),
                _ => {}
            }
        }
        Ok(created)
    }

    /// Deletes the labels (built-in ones aside) that default.yml's `labels:` no longer holds. One still in
    /// use elsewhere (a profile, another team's policy, a criteria label) is refused by the server, naming
    /// its users.
    async fn delete_stale_labels(&mut self, wanted: &[(Origin, LabelSpec)], current: &[Label]) -> Result<()> {
        for label in current {
            if label.label_type == "builtin" || wanted.iter().any(|(_, l)| l.name.eq_ignore_ascii_case(&label.name)) {
                continue;
            }
            self.changes.add('-', format!("label {:?}", label.name));
            if !self.dry_run {
                let _: Value = self
                    .api
                    .delete(&crate::labels::delete_path(label.id, false))
                    .await
                    .with_context(|| format!("deleting label {:?}", label.name))?;
            }
        }
        Ok(())
    }

    async fn teams(&mut self, repo: &Repo) -> Result<TeamIds> {
        let teams: TeamsResponse = self.api.get("/api/v1/fleet/teams").await?;
        let mut team_ids = TeamIds::new();
        for scope in &repo.scopes {
            let Some(spec) = &scope.team else { continue };
            match teams.teams.iter().find(|t| t.name == spec.name) {
                Some(team) => {
                    for change in apply::team_changes(team, spec) {
                        self.changes.add('~', format!("team {:?}: {}", spec.name, change.describe()));
                        if !self.dry_run {
                            TeamChange::send(&change, self.api, team.id).await?;
                        }
                    }
                    team_ids.insert(spec.name.clone(), Some(team.id));
                }
                None => {
                    self.changes.add('+', format!("team {:?}", spec.name));
                    let id = if self.dry_run { None } else { Some(apply::create_team(self.api, spec).await?) };
                    team_ids.insert(spec.name.clone(), id);
                }
            }
        }
        Ok(team_ids)
    }

    /// The configuration patch and the global enroll secrets.
    async fn settings(&mut self, repo: &Repo) -> Result<()> {
        if !repo.config.is_empty() {
            let current = serde_json::to_value(self.api.get::<AppConfig>("/api/v1/fleet/config").await?)?;
            let changed = apply::config_changes(&current, &repo.config);
            if !changed.is_empty() {
                self.changes.add('~', format!("config: {}", changed.join(", ")));
                if !self.dry_run {
                    let _: Value = self.api.patch("/api/v1/fleet/config", &Value::Object(repo.config.clone())).await?;
                }
            }
        }
        if let Some(wanted) = &repo.global_secrets {
            let current: GlobalSecrets = self.api.get("/api/v1/fleet/spec/enroll_secret").await?;
            let wanted_set: BTreeSet<&str> = wanted.iter().map(|s| s.secret.as_str()).collect();
            let current_set: BTreeSet<&str> = current.spec.secrets.iter().map(|s| s.secret.as_str()).collect();
            if wanted_set != current_set {
                self.changes.add('~', "global enroll secrets".to_string());
                if !self.dry_run {
                    let body = json!({"spec": {"secrets": wanted}});
                    let _: Value = self.api.post("/api/v1/fleet/spec/enroll_secret", &body).await?;
                }
            }
        }
        Ok(())
    }

    /// Uploads new scripts and replaces edited ones (herd has no script update: delete, then upload).
    /// Returns the scripts uploaded (their policies must link them again) and those no longer listed,
    /// deleted once no policy of the files names them.
    async fn scripts(&mut self, repo: &Repo, team_ids: &TeamIds) -> Result<(ScriptKeys, Vec<(String, String, i64)>)> {
        let mut uploaded = ScriptKeys::new();
        let mut stale = Vec::new();
        for scope in &repo.scopes {
            let Some(team_id) = scope_id(scope, team_ids) else {
                for script in &scope.scripts {
                    self.changes.add('+', format!("script {:?} ({})", script.name, scope.label()));
                    uploaded.insert((scope.label(), script.name.clone()));
                }
                continue;
            };
            let current: ScriptsResponse = self.api.get(&scripts_path(team_id)).await?;
            for script in &scope.scripts {
                if let Some(existing) = current.scripts.iter().find(|s| s.name == script.name) {
                    let path = format!("/api/v1/fleet/scripts/{}?alt=media", existing.id);
                    if self.api.get_text(&path).await? == script.contents {
                        continue;
                    }
                    self.changes.add('~', format!("script {:?} ({})", script.name, scope.label()));
                    if !self.dry_run {
                        let _: Value = self.api.delete(&format!("/api/v1/fleet/scripts/{}", existing.id)).await?;
                    }
                } else {
                    self.changes.add('+', format!("script {:?} ({})", script.name, scope.label()));
                }
                uploaded.insert((scope.label(), script.name.clone()));
                if !self.dry_run {
                    let fields: Vec<(&str, String)> =
                        team_id.map(|id| ("team_id", id.to_string())).into_iter().collect();
                    let contents = script.contents.clone().into_bytes();
                    let _: Value = self
                        .api
                        .upload("/api/v1/fleet/scripts", "script", &script.name, contents, &fields)
                        .await
                        .with_context(|| format!("{}: uploading {}", script.at, script.path.display()))?;
                }
            }
            for listed in &current.scripts {
                if !scope.scripts.iter().any(|s| s.name == listed.name) {
                    stale.push((scope.label(), listed.name.clone(), listed.id));
                }
            }
        }
        Ok((uploaded, stale))
    }

    /// The policies of every scope in one request, which the server validates whole before writing. In a
    /// dry run a script or a label not on the server yet is left out of its policy's spec (the server would
    /// not find it), and the new link counts as a change.
    async fn policies(
        &mut self,
        repo: &Repo,
        team_ids: &TeamIds,
        uploaded: &ScriptKeys,
        new_labels: &BTreeSet<String>,
    ) -> Result<()> {
        let mut specs = Vec::new();
        let mut origins = Vec::new();
        let mut labels = Vec::new();
        let mut relinked = BTreeSet::new();
        for scope in &repo.scopes {
            if scope_id(scope, team_ids).is_none() {
                for (_, spec) in &scope.policies {
                    self.changes.add('+', format!("policy {:?} ({})", spec.name, scope.label()));
                }
                continue;
            }
            for (at, spec) in &scope.policies {
                let mut spec = spec.clone();
                let script = spec.script.clone().unwrap_or_default();
                if self.dry_run && uploaded.contains(&(scope.label(), script)) {
                    spec.script = None;
                    relinked.insert((scope.label(), spec.name.clone()));
                }
                if self.dry_run && scope_names(&spec).any(|name| new_labels.contains(name.trim())) {
                    let lists =
                        [&mut spec.labels_include_any, &mut spec.labels_include_all, &mut spec.labels_exclude_any];
                    for names in lists.into_iter().flatten() {
                        names.retain(|name| !new_labels.contains(name.trim()));
                    }
                    relinked.insert((scope.label(), spec.name.clone()));
                }
                specs.push(spec);
                origins.push(at.clone());
                labels.push(scope.label());
            }
        }
        if specs.is_empty() {
            return Ok(());
        }
        let applied = apply::post_specs(self.api, specs, &origins, self.dry_run).await?;
        for (label, spec) in labels.iter().zip(&applied.policies) {
            let sign = match spec.outcome.as_str() {
                "created" => '+',
                "updated" => '~',
                _ if relinked.contains(&(label.clone(), spec.name.clone())) => '~',
                _ => continue,
            };
            self.changes.add(sign, format!("policy {:?} ({label})", spec.name));
        }
        Ok(())
    }

    /// Deletes the policies of each managed scope that the files no longer hold.
    async fn delete_stale_policies(&mut self, repo: &Repo, team_ids: &TeamIds) -> Result<()> {
        for scope in &repo.scopes {
            let Some(team_id) = scope_id(scope, team_ids) else { continue };
            let base = crate::policies_path(team_id);
            let current: PoliciesResponse = self.api.get(&base).await?;
            let gone: Vec<_> =
                current.policies.iter().filter(|p| !scope.policies.iter().any(|(_, s)| s.name == p.name)).collect();
            for policy in &gone {
                self.changes.add('-', format!("policy {:?} ({})", policy.name, scope.label()));
            }
            if !self.dry_run && !gone.is_empty() {
                let ids = gone.iter().map(|p| p.id).collect();
                let _: Value = self.api.post(&format!("{base}/delete"), &DeletePoliciesRequest { ids }).await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_paths_are_relative_to_their_file() {
        let cases = [
            ("repo/default.yml", "lib/x.yml", "repo/lib/x.yml"),
            ("repo/teams/a.yml", "../lib/x.yml", "repo/lib/x.yml"),
            ("repo/lib/linux/policies/p.yml", "../scripts/fix.sh", "repo/lib/linux/scripts/fix.sh"),
            ("repo/teams/a.yml", "./../lib/./x.yml", "repo/lib/x.yml"),
            ("default.yml", "lib/x.yml", "lib/x.yml"),
        ];
        for (file, path, expected) in cases {
            assert_eq!(relative_to(Path::new(file), path), PathBuf::from(expected), "{file} + {path}");
        }
    }

    fn write(dir: &Path, files: &[(&str, &str)]) {
        for (name, text) in files {
            let path = dir.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
    }

    #[test]
    fn reads_a_fleet_layout() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                (
                    "default.yml",
                    "org_settings:\n  org_info:\n    org_name: Acme\n  secrets:\n    - secret: global-secret-1\nagent_options:\n  path: lib/agent-options.yml\ncontrols:\n  macos_migration:\n    enable: false\npolicies:\n  - path: lib/global.policies.yml\nqueries:\n",
                ),
                ("lib/agent-options.yml", "config:\n  options:\n    distributed_interval: 10\n"),
                ("lib/global.policies.yml", "- name: Firewall\n  query: SELECT 1;\n  platform: linux\n  tags: cis\n"),
                (
                    "teams/workstations.yml",
                    "name: Workstations\nteam_settings:\n  secrets:\n    - secret: ws-secret-1\ncontrols:\n  scripts:\n    - path: ../lib/linux/scripts/fix.sh\npolicies:\n  - path: ../lib/linux/policies/sudoers.yml\nsoftware:\n",
                ),
                ("lib/linux/scripts/fix.sh", "#!/bin/sh\necho fixed\n"),
                (
                    "lib/linux/policies/sudoers.yml",
                    "- name: Sudoers\n  query: SELECT 1;\n  run_script:\n    path: ../scripts/fix.sh\n",
                ),
            ],
        );
        let mut problems = Problems::default();
        let files = files_of(&[dir.path().to_path_buf()]).unwrap();
        let repo = read(&files, &mut problems);
        assert!(problems.errors.is_empty(), "{:?}", problems.errors);
        assert_eq!(repo.config["org_info"]["org_name"], "Acme");
        assert_eq!(repo.config["agent_options"]["config"]["options"]["distributed_interval"], 10);
        assert_eq!(repo.config["mdm"]["macos_migration"]["enable"], false);
        assert_eq!(repo.global_secrets.as_ref().unwrap()[0].secret, "global-secret-1");
        assert_eq!(repo.scopes.len(), 2);
        let global = &repo.scopes[0];
        assert_eq!(
            (global.policies[0].1.name.as_str(), global.policies[0].1.script.as_deref()),
            ("Firewall", Some(""))
        );
        let team = &repo.scopes[1];
        assert_eq!(team.team.as_ref().unwrap().secrets.as_ref().unwrap()[0].secret, "ws-secret-1");
        assert_eq!(team.scripts[0].name, "fix.sh");
        let sudoers = &team.policies[0].1;
        assert_eq!((sudoers.team.as_str(), sudoers.script.as_deref()), ("Workstations", Some("fix.sh")));
        assert!(
            problems.warnings().iter().any(|w| w.contains("lib/global.policies.yml:4:")),
            "{:?}",
            problems.warnings()
        );
    }

    #[test]
    fn labels_are_read_from_default_yml() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                (
                    "default.yml",
                    "labels:\n  - name: Kiosks\n    hosts: [kiosk-1]\n  - path: lib/labels.yml\npolicies:\n  - name: P\n    query: SELECT 1;\n    labels_exclude_any: [Kiosks]\n",
                ),
                ("lib/labels.yml", "- name: Build servers\n  query: SELECT 1;\n  label_membership_type: dynamic\n"),
                (
                    "teams/a.yml",
                    "name: A\npolicies:\n  - name: Q\n    query: SELECT 1;\n    labels_include_all: [Build servers]\n",
                ),
            ],
        );
        let mut problems = Problems::default();
        let repo = read(&files_of(&[dir.path().to_path_buf()]).unwrap(), &mut problems);
        assert!(problems.errors.is_empty(), "{:?}", problems.errors);
        let labels = repo.labels.as_ref().expect("managed");
        let names: Vec<&str> = labels.iter().map(|(_, l)| l.name.as_str()).collect();
        assert_eq!(names, ["Kiosks", "Build servers"]);
        assert_eq!(labels[1].0.file, dir.path().join("lib/labels.yml").display().to_string());
        assert_eq!(repo.scopes[0].policies[0].1.labels_exclude_any, Some(vec!["Kiosks".to_string()]));
        assert_eq!(repo.scopes[1].policies[0].1.labels_include_all, Some(vec!["Build servers".to_string()]));

        // Without the key, labels are not managed; with an empty one, every label is to go.
        let cases = [("policies: []\n", None), ("labels:\n", Some(0)), ("labels: []\n", Some(0))];
        for (text, expected) in cases {
            let other = tempfile::tempdir().unwrap();
            write(other.path(), &[("default.yml", text)]);
            let mut problems = Problems::default();
            let repo = read(&files_of(&[other.path().to_path_buf()]).unwrap(), &mut problems);
            assert!(problems.errors.is_empty(), "{text}: {:?}", problems.errors);
            assert_eq!(repo.labels.map(|l| l.len()), expected, "{text}");
        }
    }

    #[test]
    fn label_mistakes_in_a_repository_are_found() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                (
                    "default.yml",
                    "labels:\n  - name: Kiosks\n    hosts: [kiosk-1]\n  - name: kiosks\n    query: SELECT 1;\n  - path: lib/labels.yml\n  - name: Typo\n    query: SELECT 1;\n    platfrom: linux\n",
                ),
                ("lib/labels.yml", "name: not a list\n"),
                ("teams/a.yml", "name: A\nlabels:\n  - name: Team label\n    query: SELECT 1;\n"),
            ],
        );
        let mut problems = Problems::default();
        read(&files_of(&[dir.path().to_path_buf()]).unwrap(), &mut problems);
        let all = problems.errors.join("\n");
        let expected = [
            "default.yml:4:5: label \"kiosks\" is also at",
            "labels.yml:1:1: a labels file holds a list of labels",
            "default.yml:9:15: unknown label field `platfrom`",
            "a.yml:3:3: labels are global in herd",
        ];
        for fragment in expected {
            assert!(all.contains(fragment), "{fragment} in:\n{all}");
        }
        assert_eq!(problems.errors.len(), expected.len(), "{all}");
    }

    #[test]
    fn every_mistake_in_a_repository_is_found() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            &[
                (
                    "default.yml",
                    "org_settings: {}\npolicies:\n  - path: lib/missing.yml\n  - name: No query\nqueries:\n  - name: q\n    query: SELECT 1;\nsurprise: 1\n",
                ),
                (
                    "teams/a.yml",
                    "name: A\ncontrols:\n  macos_settings:\n    custom_settings:\n      - path: x.mobileconfig\npolicies:\n  - name: P\n    query: SELECT 1;\n    run_script:\n      path: ../lib/absent.sh\n",
                ),
            ],
        );
        let mut problems = Problems::default();
        read(&files_of(&[dir.path().to_path_buf()]).unwrap(), &mut problems);
        let all = problems.errors.join("\n");
        let expected = [
            "default.yml:3:5: reading",
            "default.yml:4:5: this policy has no `query`",
            "default.yml:6:3: `queries`",
            "default.yml:8:11: unknown key `surprise`",
            "a.yml:4:5: `controls.macos_settings`",
            "a.yml:10:7: run_script",
        ];
        for fragment in expected {
            assert!(all.contains(fragment), "{fragment} in:\n{all}");
        }
        assert_eq!(problems.errors.len(), expected.len(), "{all}");
    }
}
