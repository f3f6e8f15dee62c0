//! Labels in files (Fleet's `kind: label` spec, and the items of a GitOps `labels:` list), read and checked
//! before anything is sent; sent to `POST /spec/labels`, listed and deleted by name.
//!
//! A label is one of three kinds, decided by its fields as the server decides them: `query` makes a dynamic
//! label, `criteria` a criteria one (`host_vitals`, herd's conditions on what the server stores), and `hosts`
//! (or none of them) a manual one. `label_membership_type`, when given, must agree.

use crate::client::Api;
use crate::yaml::{Node, Origin, Problems, Tree};
use anyhow::{Context, Result};
use herd_proto::fleet::{Criterion, LabelSpec, LabelSpecsRequest, LabelsResponse};
use serde::Deserialize;
use serde_json::Value;

const LABEL_FIELDS: &str = "name, description, query, platform, label_membership_type, hosts, criteria, label_type";

/// Reads one label (a `kind: label` spec, or an item of a GitOps `labels:` list). Every mistake in it is
/// recorded at its field; `None` when there was one.
pub fn label_spec(node: &Node, problems: &mut Problems) -> Option<LabelSpec> {
    let entries = node.entries("a label", problems)?;
    let errors_before = problems.errors.len();
    let mut spec = LabelSpec::default();
    let mut membership_at = None;
    let mut kind_fields: Vec<(&str, &Origin)> = Vec::new();
    for (key, value) in entries {
        match key.as_str() {
            "name" => spec.name = value.typed::<String>(key, problems).unwrap_or_default(),
            "description" => {
                spec.description = value.typed::<Option<String>>(key, problems).flatten().unwrap_or_default()
            }
            "platform" => spec.platform = value.typed::<Option<String>>(key, problems).flatten().unwrap_or_default(),
            "query" => {
                spec.query = value.typed::<Option<String>>(key, problems).flatten().unwrap_or_default();
                if !spec.query.trim().is_empty() {
                    kind_fields.push(("query", &value.at));
                }
            }
            "label_membership_type" => {
                let named = value.typed::<String>(key, problems);
                match named.as_deref() {
                    Some("dynamic" | "manual" | "host_vitals" | "criteria") => {
                        spec.label_membership_type = named;
                        membership_at = Some(&value.at);
                    }
                    Some(other) => problems.error(
                        &value.at,
                        format!("label_membership_type {other:?}: expected dynamic, manual or host_vitals (criteria)"),
                    ),
                    None => {}
                }
            }
            "hosts" => {
                spec.hosts = Some(host_names(value, problems));
                kind_fields.push(("hosts", &value.at));
            }
            "criteria" => {
                // Read as the server's type first, so a misspelt condition is reported where it is.
                if value.typed::<Criterion>("criteria", problems).is_some() {
                    match Criterion::parse(&value.to_json()) {
                        Ok(_) => spec.criteria = Some(value.to_json()),
                        Err(reason) => problems.error(&value.at, reason),
                    }
                }
                kind_fields.push(("criteria", &value.at));
            }
            "label_type" => match value.typed::<String>(key, problems).as_deref() {
                Some("regular") => {}
                // Fleet's exports list the built-in labels too; the server leaves them alone.
                Some("builtin") => spec.label_type = Some("builtin".into()),
                Some(other) => problems.error(&value.at, format!("label_type {other:?}: expected regular or builtin")),
                None => {}
            },
            other => problems.error(&value.at, format!("unknown label field `{other}`; a label has {LABEL_FIELDS}")),
        }
    }
    if node.get("name").is_none() {
        problems.error(&node.at, "this label has no `name`");
    }
    check_kind(&spec, membership_at, &kind_fields, &node.at, problems);
    (problems.errors.len() == errors_before).then_some(spec)
}

/// The fields that decide a label's kind agree with one another and with `label_membership_type`.
fn check_kind(
    spec: &LabelSpec,
    membership_at: Option<&Origin>,
    kind_fields: &[(&str, &Origin)],
    label_at: &Origin,
    problems: &mut Problems,
) {
    if let [_, (second, at), ..] = kind_fields {
        let first = kind_fields[0].0;
        problems.error(at, format!("`{second}` and `{first}`: a label has one of query, hosts or criteria"));
        return;
    }
    let (Some(named), Some(at)) = (spec.label_membership_type.as_deref(), membership_at) else { return };
    let wanted = match named {
        "dynamic" => "query",
        "manual" => "hosts",
        _ => "criteria",
    };
    match kind_fields.first() {
        Some((field, field_at)) if *field != wanted => problems.error(
            field_at,
            format!("`{field}` does not fit label_membership_type {named} (at {}), which has `{wanted}`", at),
        ),
        None if wanted != "hosts" => {
            problems.error(label_at, format!("this {named} label has no `{wanted}`"));
        }
        _ => {}
    }
}

/// A manual label's hosts: hostnames (or serials, uuids, ids), numbers read as text.
fn host_names(node: &Node, problems: &mut Problems) -> Vec<String> {
    let items = match &node.value {
        Tree::Seq(items) => items.as_slice(),
        Tree::Scalar(Value::Null) => &[],
        _ => {
            problems.error(&node.at, "hosts must be a list of hostnames");
            return Vec::new();
        }
    };
    let mut names = Vec::new();
    for item in items {
        match item.to_json() {
            Value::String(name) if !name.trim().is_empty() => names.push(name),
            Value::Number(number) => names.push(number.to_string()),
            _ => problems.error(&item.at, "a host is named by its hostname, serial, uuid or id"),
        }
    }
    names
}

/// What `POST /spec/labels` answers: each spec's outcome.
#[derive(Debug, Deserialize)]
pub struct LabelsApplied {
    #[serde(default)]
    pub outcomes: Vec<crate::apply::SpecApplied>,
}

/// Sends label specs (validated by the server first, all or nothing); `dry_run` only asks what would happen.
/// A refusal points at the document of the spec the server names.
pub async fn post_specs(api: &Api, specs: Vec<LabelSpec>, origins: &[Origin], dry_run: bool) -> Result<LabelsApplied> {
    let path = if dry_run { "/api/v1/fleet/spec/labels?dry_run=true" } else { "/api/v1/fleet/spec/labels" };
    let applied: Result<LabelsApplied> = api.post(path, &LabelSpecsRequest { specs }).await;
    applied.map_err(|err| match crate::apply::spec_index(&format!("{err:#}")).and_then(|i| origins.get(i)) {
        Some(at) => err.context(format!("{at}: label")),
        None => err,
    })
}

pub async fn list(api: &Api) -> Result<LabelsResponse> {
    api.get("/api/v1/fleet/labels").await
}

/// The path deleting label `id`: by id, since a name may hold characters a path cannot.
pub fn delete_path(id: i64, force: bool) -> String {
    let force = if force { "?force=true" } else { "" };
    format!("/api/v1/fleet/labels/id/{id}{force}")
}

/// Deletes the label named `name`; one in use is refused by the server (naming its users) unless `force`.
pub async fn delete(api: &Api, name: &str, force: bool) -> Result<()> {
    let labels = list(api).await?;
    let label = labels.labels.iter().find(|l| l.name == name).with_context(|| format!("no label named {name:?}"))?;
    let _: Value = api.delete(&delete_path(label.id, force)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> (Option<LabelSpec>, Vec<String>) {
        let mut problems = Problems::default();
        let node = crate::yaml::documents("l.yml", text).unwrap().pop().unwrap();
        (label_spec(&node, &mut problems), problems.errors)
    }

    #[test]
    fn reads_the_three_kinds() {
        let (dynamic, errors) = read("name: Build servers\nquery: SELECT 1;\nplatform: linux\ndescription: builds\n");
        assert!(errors.is_empty(), "{errors:?}");
        let dynamic = dynamic.unwrap();
        assert_eq!(
            (dynamic.name.as_str(), dynamic.query.as_str(), dynamic.platform.as_str()),
            ("Build servers", "SELECT 1;", "linux")
        );
        assert_eq!(dynamic.hosts, None);

        let (manual, errors) = read("name: Kiosks\nlabel_membership_type: manual\nhosts: [kiosk-1, 1234]\n");
        assert!(errors.is_empty(), "{errors:?}");
        let manual = manual.unwrap();
        assert_eq!(manual.hosts, Some(vec!["kiosk-1".to_string(), "1234".to_string()]));
        assert_eq!(manual.label_membership_type.as_deref(), Some("manual"));

        let criteria = "name: Old Ubuntu\nlabel_membership_type: host_vitals\ncriteria:\n  all:\n    - platform: linux\n    - os: {name: Ubuntu, below_version: '24.04'}\n";
        let (criteria, errors) = read(criteria);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(criteria.unwrap().criteria.unwrap()["all"][0]["platform"], "linux");

        let (builtin, errors) = read("name: All Hosts\nlabel_type: builtin\nquery: SELECT 1;\n");
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(builtin.unwrap().label_type.as_deref(), Some("builtin"));
    }

    #[test]
    fn mistakes_are_reported_at_their_field() {
        let cases: &[(&str, &str)] = &[
            ("name: A\nqeury: SELECT 1;\n", "l.yml:2:8: unknown label field `qeury`"),
            ("description: no name\nquery: SELECT 1;\n", "l.yml:1:1: this label has no `name`"),
            ("name: A\nquery: SELECT 1;\nhosts: [a]\n", "l.yml:3:8: `hosts` and `query`"),
            (
                "name: A\nlabel_membership_type: dynamic\nhosts: [a]\n",
                "l.yml:3:8: `hosts` does not fit label_membership_type dynamic (at l.yml:2:24)",
            ),
            ("name: A\nlabel_membership_type: dynamic\n", "l.yml:1:1: this dynamic label has no `query`"),
            ("name: A\nlabel_membership_type: host_vitals\n", "l.yml:1:1: this host_vitals label has no `criteria`"),
            ("name: A\nlabel_membership_type: smart\n", "l.yml:2:24: label_membership_type \"smart\""),
            ("name: A\nhosts: web-1\n", "l.yml:2:8: hosts must be a list"),
            ("name: A\nhosts: [web-1, {x: 1}]\n", "l.yml:2:16: a host is named"),
            ("name: A\ncriteria:\n  all:\n    - platfrom: linux\n", "l.yml:4:17: criteria: unknown variant `platfrom`"),
            (
                "name: A\ncriteria:\n  os: {name: Ubuntu, min_versoin: '22'}\n",
                "l.yml:3:35: criteria: unknown field `min_versoin`",
            ),
            ("name: A\ncriteria:\n  platform: beos\n", "l.yml:3:3: criteria.platform: \"beos\" is not one of"),
            ("name: A\ncriteria: {all: []}\n", "l.yml:2:11: criteria.all: must list at least one condition"),
            ("name: A\nlabel_type: special\n", "l.yml:2:13: label_type \"special\""),
            ("name: [A]\nquery: SELECT 1;\n", "l.yml:1:7: name:"),
        ];
        for (text, expected) in cases {
            let (spec, errors) = read(text);
            assert!(spec.is_none(), "{text}");
            assert!(errors.iter().any(|e| e.starts_with(expected)), "{text}: expected {expected:?} in {errors:?}");
        }
    }

    #[test]
    fn labels_are_deleted_by_id() {
        assert_eq!(delete_path(7, false), "/api/v1/fleet/labels/id/7");
        assert_eq!(delete_path(7, true), "/api/v1/fleet/labels/id/7?force=true");
    }
}
