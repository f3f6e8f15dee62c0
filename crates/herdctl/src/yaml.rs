//! Reading YAML files as trees that remember where each value was written, so every mistake (and warning)
//! can name `file:line:column`, and all of them are found before anything is sent to the server.

use serde::Deserialize;
use serde::de::{DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::Spanned;
use std::collections::BTreeMap;
use std::fmt;

/// Where something was written: `file:line:column` (both 1-based).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Origin {
    pub file: String,
    pub line: u64,
    pub column: u64,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A YAML value and where it starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub at: Origin,
    pub value: Tree,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Tree {
    Scalar(Value),
    Seq(Vec<Node>),
    /// Keys in the order written; a key's origin is its value's.
    Map(Vec<(String, Node)>),
}

impl Node {
    pub fn to_json(&self) -> Value {
        match &self.value {
            Tree::Scalar(value) => value.clone(),
            Tree::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            Tree::Map(entries) => Value::Object(entries.iter().map(|(k, v)| (k.clone(), v.to_json())).collect()),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Tree::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Tree::Scalar(Value::Null))
    }

    /// The mapping's entries, or a mistake naming what was expected.
    pub fn entries(&self, what: &str, problems: &mut Problems) -> Option<&[(String, Node)]> {
        match &self.value {
            Tree::Map(entries) => Some(entries),
            _ => {
                problems.error(&self.at, format!("{what} must be a mapping"));
                None
            }
        }
    }

    /// The value as `T`, or a mistake naming `what`: at the unknown field (or enum variant written as a key)
    /// it names when there is one, otherwise at this node.
    pub fn typed<T: DeserializeOwned>(&self, what: &str, problems: &mut Problems) -> Option<T> {
        match serde_json::from_value(self.to_json()) {
            Ok(value) => Some(value),
            Err(err) => {
                let message = err.to_string();
                let unknown = ["unknown field `", "unknown variant `"]
                    .iter()
                    .find_map(|prefix| message.strip_prefix(prefix))
                    .and_then(|rest| rest.split('`').next());
                let at = unknown.and_then(|field| self.find_key(field)).unwrap_or(&self.at);
                problems.error(at, format!("{what}: {message}"));
                None
            }
        }
    }

    /// Where the first value under `key` is, anywhere below this node.
    fn find_key(&self, key: &str) -> Option<&Origin> {
        match &self.value {
            Tree::Scalar(_) => None,
            Tree::Seq(items) => items.iter().find_map(|item| item.find_key(key)),
            Tree::Map(entries) => entries
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| &v.at)
                .or_else(|| entries.iter().find_map(|(_, v)| v.find_key(key))),
        }
    }
}

/// The tree as the parser delivers it: each child wrapped in `Spanned` to keep its location.
enum RawTree {
    Scalar(Value),
    Seq(Vec<Spanned<RawTree>>),
    Map(Vec<(String, Spanned<RawTree>)>),
}

impl<'de> Deserialize<'de> for RawTree {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TreeVisitor;
        impl<'de> Visitor<'de> for TreeVisitor {
            type Value = RawTree;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<RawTree, E> {
                Ok(RawTree::Scalar(Value::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawTree, E> {
                Ok(RawTree::Scalar(Value::from(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<RawTree, E> {
                Ok(RawTree::Scalar(Value::from(v)))
            }
            fn visit_f64<E>(self, v: f64) -> Result<RawTree, E> {
                Ok(RawTree::Scalar(Value::from(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<RawTree, E> {
                Ok(RawTree::Scalar(Value::String(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<RawTree, E> {
                Ok(RawTree::Scalar(Value::String(v)))
            }
            fn visit_unit<E>(self) -> Result<RawTree, E> {
                Ok(RawTree::Scalar(Value::Null))
            }
            fn visit_none<E>(self) -> Result<RawTree, E> {
                Ok(RawTree::Scalar(Value::Null))
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<RawTree, D::Error> {
                RawTree::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<RawTree, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Spanned<RawTree>>()? {
                    items.push(item);
                }
                Ok(RawTree::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawTree, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<Value>()? {
                    let key = match key {
                        Value::String(s) => s,
                        other => other.to_string(),
                    };
                    entries.push((key, map.next_value::<Spanned<RawTree>>()?));
                }
                Ok(RawTree::Map(entries))
            }
        }
        deserializer.deserialize_any(TreeVisitor)
    }
}

fn node(file: &str, raw: Spanned<RawTree>) -> Node {
    let at = Origin { file: file.to_string(), line: raw.referenced.line(), column: raw.referenced.column() };
    let value = match raw.value {
        RawTree::Scalar(value) => Tree::Scalar(value),
        RawTree::Seq(items) => Tree::Seq(items.into_iter().map(|v| node(file, v)).collect()),
        RawTree::Map(entries) => Tree::Map(entries.into_iter().map(|(k, v)| (k, node(file, v))).collect()),
    };
    Node { at, value }
}

/// Every document of a YAML file (`---`-separated), or the syntax error with its location.
pub fn documents(file: &str, text: &str) -> Result<Vec<Node>, (Origin, String)> {
    let raw: Vec<Spanned<RawTree>> = serde_saphyr::from_multiple(text).map_err(|err| {
        let (line, column) = err.location().map(|l| (l.line(), l.column())).unwrap_or((0, 0));
        // The first line of the message is the diagnosis; the rest is a rendered snippet.
        let message = err.to_string().lines().next().unwrap_or("invalid YAML").to_string();
        (Origin { file: file.to_string(), line, column }, message)
    })?;
    Ok(raw.into_iter().map(|doc| node(file, doc)).collect())
}

/// The mistakes and warnings found while reading files, in the order found. Warnings about the same
/// ignored field in one file are gathered into one line (Fleet's CIS file has hundreds of policies).
#[derive(Debug, Default)]
pub struct Problems {
    pub errors: Vec<String>,
    ignored: BTreeMap<(String, String), (Origin, usize, String)>,
}

impl Problems {
    pub fn error(&mut self, at: &Origin, message: impl fmt::Display) {
        self.errors.push(format!("{at}: {message}"));
    }

    /// A field herd does not use and ignores; `why` says what it is.
    pub fn ignored(&mut self, at: &Origin, field: &str, why: &str) {
        let entry = self.ignored.entry((at.file.clone(), field.to_string())).or_insert((at.clone(), 0, why.into()));
        entry.1 += 1;
    }

    pub fn warnings(&self) -> Vec<String> {
        let mut found: Vec<&(Origin, usize, String)> = self.ignored.values().collect();
        found.sort_by(|a, b| a.0.cmp(&b.0));
        found
            .into_iter()
            .map(|(at, count, why)| {
                let times = if *count > 1 { format!(" ({count} times in this file)") } else { String::new() };
                format!("{at}: warning: {why}; ignored{times}")
            })
            .collect()
    }

    pub fn no_errors(&self) -> bool {
        self.errors.is_empty()
    }
}

/// Expands `$VAR` and `${VAR}` from the environment as fleetctl does before parsing a file:
/// - `\$` writes a literal `$` (an odd run of backslashes before `$` escapes it, and half of the rest is
///   kept: `\\\$X` is `\$X`); an even run leaves the backslashes and expands;
/// - `$FLEET_VAR_…` (any case) is left for the server; `$FLEET_SECRET_…` is refused (herd keeps no secrets);
/// - inside `description:` and `resolution:` values nothing is expanded (they are prose, and may show `$`);
/// - a `$` not followed by a name is kept as it is;
/// - an undefined variable is a mistake naming it, at its `line:column`.
pub fn expand_env(file: &str, text: &str, lookup: &dyn Fn(&str) -> Option<String>, problems: &mut Problems) -> String {
    let zones = prose_zones(text);
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let mut copied = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            let start = i;
            while i < bytes.len() && bytes[i] == b'\\' {
                i += 1;
            }
            let run = i - start;
            if i < bytes.len() && bytes[i] == b'$' && run % 2 == 1 {
                out.push_str(&text[copied..start]);
                out.push_str(&"\\".repeat(run / 2));
                out.push('$');
                i += 1;
                copied = i;
            }
            continue;
        }
        if bytes[i] != b'$' {
            i += 1;
            continue;
        }
        let dollar = i;
        let (name, end, braced) = match bytes.get(i + 1) {
            Some(b'{') => match text[i + 2..].find('}') {
                Some(close) if close > 0 => (&text[i + 2..i + 2 + close], i + 2 + close + 1, true),
                _ => ("", i + 1, true),
            },
            _ => {
                let len = text[i + 1..].bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
                (&text[i + 1..i + 1 + len], i + 1 + len, false)
            }
        };
        let in_prose = zones.iter().any(|(start, stop)| dollar >= *start && end <= *stop);
        if name.is_empty() || name.to_ascii_uppercase().starts_with("FLEET_VAR_") || in_prose {
            i += 1;
            continue;
        }
        let at = position(file, text, dollar);
        let written = if braced { format!("${{{name}}}") } else { format!("${name}") };
        if name.starts_with("FLEET_SECRET_") {
            problems.error(
                &at,
                format!("{written}: herd keeps no secrets for files; FLEET_SECRET_ variables are not supported"),
            );
        } else if let Some(value) = lookup(name) {
            out.push_str(&text[copied..dollar]);
            out.push_str(&value);
            copied = end;
        } else {
            problems.error(
                &at,
                format!(
                    "environment variable {name:?} is not set; to write {written} literally, escape it as \\{written}"
                ),
            );
        }
        i = end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Byte ranges of `description:` and `resolution:` values, as fleetctl finds them: from the key to the next
/// indented `key:` line (or the end).
fn prose_zones(text: &str) -> Vec<(usize, usize)> {
    let mut line_starts = vec![0];
    line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
    let is_key_line = |line: &str| {
        let rest = line.trim_start();
        let indented = rest.len() < line.len();
        let word = rest.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count();
        indented && word > 0 && rest[word..].starts_with(':')
    };
    let mut zones = Vec::new();
    for (n, start) in line_starts.iter().enumerate() {
        let line = text[*start..].split('\n').next().unwrap_or("");
        // Also as the first key of a list item (`- description: …`), which fleetctl's pattern misses.
        let rest = line.trim_start();
        let rest = rest.strip_prefix("- ").unwrap_or(rest).trim_start();
        if !(rest.starts_with("description:") || rest.starts_with("resolution:")) {
            continue;
        }
        let stop = line_starts[n + 1..]
            .iter()
            .find(|s| is_key_line(text[**s..].split('\n').next().unwrap_or("")))
            .copied()
            .unwrap_or(text.len());
        zones.push((*start, stop));
    }
    zones
}

fn position(file: &str, text: &str, offset: usize) -> Origin {
    let before = &text[..offset];
    let line = before.matches('\n').count() as u64 + 1;
    let column = before[before.rfind('\n').map_or(0, |i| i + 1)..].chars().count() as u64 + 1;
    Origin { file: file.to_string(), line, column }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TEAM" => Some("Workstations".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn environment_expansion_follows_fleetctl() {
        let cases: &[(&str, &str)] = &[
            ("name: $TEAM", "name: Workstations"),
            ("name: ${TEAM}s", "name: Workstationss"),
            ("name: x${EMPTY}y", "name: xy"),
            ("name: \\$TEAM", "name: $TEAM"),
            ("name: \\\\\\$TEAM", "name: \\$TEAM"),
            ("name: \\\\$TEAM", "name: \\\\Workstations"),
            ("cost: 5$ or $ alone", "cost: 5$ or $ alone"),
            ("q: $FLEET_VAR_HOST_UUID", "q: $FLEET_VAR_HOST_UUID"),
            ("q: ${fleet_var_x}", "q: ${fleet_var_x}"),
            ("- description: costs $HOME\n  query: $TEAM", "- description: costs $HOME\n  query: Workstations"),
            (
                "  resolution: |\n    run $PATH_TO\n  name: $TEAM",
                "  resolution: |\n    run $PATH_TO\n  name: Workstations",
            ),
        ];
        for (input, expected) in cases {
            let mut problems = Problems::default();
            assert_eq!(expand_env("f.yml", input, &env, &mut problems), *expected, "{input}");
            assert!(problems.no_errors(), "{input}: {:?}", problems.errors);
        }
    }

    #[test]
    fn undefined_variables_are_named_with_their_place() {
        let mut problems = Problems::default();
        expand_env("f.yml", "a: 1\nname: $NOPE and ${ALSO_NOPE}\nq: $FLEET_SECRET_X\n", &env, &mut problems);
        assert_eq!(problems.errors.len(), 3, "{:?}", problems.errors);
        assert!(
            problems.errors[0].starts_with("f.yml:2:7: environment variable \"NOPE\" is not set"),
            "{:?}",
            problems.errors
        );
        assert!(problems.errors[1].starts_with("f.yml:2:17:") && problems.errors[1].contains("\\${ALSO_NOPE}"));
        assert!(problems.errors[2].starts_with("f.yml:3:4:") && problems.errors[2].contains("FLEET_SECRET_"));
    }

    #[test]
    fn documents_remember_where_values_are() {
        let docs = documents("f.yml", "a: 1\nspec:\n  name: x\n  list: [1, two]\n---\nb: true\n").unwrap();
        assert_eq!(docs.len(), 2);
        let spec = docs[0].get("spec").unwrap();
        assert_eq!((spec.at.line, spec.at.column), (3, 3));
        let name = spec.get("name").unwrap();
        assert_eq!((name.at.line, name.at.column, name.to_json()), (3, 9, Value::from("x")));
        assert_eq!(spec.get("list").unwrap().to_json(), serde_json::json!([1, "two"]));
        assert_eq!(docs[1].get("b").unwrap().to_json(), Value::Bool(true));
        let (at, message) = documents("g.yml", "a: [unclosed\n").unwrap_err();
        assert!(at.line > 0 && !message.is_empty(), "{at}: {message}");
    }

    #[test]
    fn warnings_about_one_field_are_gathered_per_file() {
        let mut problems = Problems::default();
        let at = |line| Origin { file: "cis.yml".into(), line, column: 3 };
        problems.ignored(&at(9), "tags", "Fleet metadata `tags`");
        problems.ignored(&at(5), "tags", "Fleet metadata `tags`");
        problems.ignored(&at(6), "purpose", "Fleet metadata `purpose`");
        assert_eq!(
            problems.warnings(),
            vec![
                "cis.yml:6:3: warning: Fleet metadata `purpose`; ignored".to_string(),
                "cis.yml:9:3: warning: Fleet metadata `tags`; ignored (2 times in this file)".to_string(),
            ]
        );
        assert!(problems.no_errors());
    }
}
