//! parse_json, parse_jsonl, parse_ini, parse_xml: Fleet's agent (fleetd) tables that flatten a file into one
//! row per leaf value, with fleetd's columns and meaning (orbit's `dataflattentable` over `dataflatten`):
//!
//! - `path` (required; `=` or LIKE, `%` a glob within one directory level): the file the row comes from.
//! - `fullkey`: the leaf's path from the root, keys joined with `/` (array elements by index: `users/0/id`);
//!   `parent` is all of it but the last key, `key` the last key.
//! - `value`: the leaf as text — strings as they are, numbers as Go's shortest decimal (`1`, `1.5`, never an
//!   exponent), booleans `true`/`false`. JSON `null` gives no row (fleetd skips nulls), nor do empty arrays and
//!   objects (no leaves).
//! - `query` (hidden, as in fleetd; Fleet's schema files leave it out): a `/`-separated filter applied while
//!   descending, fleetd's syntax: per level a key (`*` anything, `a*` prefix, `*a` suffix, `*a*` contains), an
//!   array index, `key=>value` to keep array elements having such a pair, and `#key` to name array elements by
//!   their `key` value instead of their index. Default `*`.
//!
//! Formats, as fleetd reads them:
//! - JSON: one document. JSONL: a stream of documents (whitespace or newline separated), element `i` of it at
//!   `i/...`.
//! - INI (go-ini's reading): `[section]` headers, `key = value` or `key: value`; keys before any section are in
//!   `DEFAULT`; `;` and `#` start comments (in a value too, unless it is quoted); surrounding quotes are removed;
//!   a later duplicate key wins; go-ini's boolean words (`yes`/`no`, `on`/`off`, `true`/`false`, `t`/`f`,
//!   `y`/`n` in their usual cases) become `true`/`false`. Hand-written: no INI crate reads go-ini's dialect,
//!   and reading line by line lets a bad line be skipped alone.
//! - XML (mxj's map, as fleetd uses it): `root/child/...`; an element with neither attributes nor children is a
//!   leaf with its text (empty: `""`); attributes are keys `-name`; text beside attributes or children is
//!   `#text`; repeated sibling elements become an array (`item/0`, `item/1`); text is trimmed; namespace prefixes
//!   are dropped (local names).
//!
//! Bad input: a missing or unreadable file gives no rows; files over 10 MiB are skipped. Where fleetd drops a
//! whole file on the first syntax error, these keep what parses: JSON documents of a JSONL stream before and
//! after a bad one (reading resumes at the next line), INI lines other than the bad ones, and an XML document's
//! elements completed before the error. A malformed JSON document (one document) gives no rows.

use super::file::expand_glob;
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Largest file read.
const MAX_FILE: u64 = 10 << 20;

/// A parsed document, the shape fleetd's flattener walks.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Leaf(String),
    List(Vec<Node>),
    Map(BTreeMap<String, Node>),
}

/// One leaf: its keys from the root and its value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Leaf {
    pub keys: Vec<String>,
    pub value: String,
}

/// fleetd's string match: `*` anything, `*a*` contains, `*a` suffix, `a*` prefix, else equality.
fn match_string(value: &str, term: &str) -> bool {
    if term == "*" {
        return true;
    }
    match (term.strip_prefix('*'), term.strip_suffix('*')) {
        (Some(rest), _) if rest.ends_with('*') => value.contains(&rest[..rest.len() - 1]),
        (Some(suffix), _) => value.ends_with(suffix),
        (None, Some(prefix)) => value.starts_with(prefix),
        (None, None) => value == term,
    }
}

fn match_stringified(node: &Node, term: &str) -> bool {
    let term = term.strip_prefix('#').unwrap_or(term);
    if term == "*" {
        return true;
    }
    match node {
        Node::Leaf(v) => match_string(v, term),
        _ => false,
    }
}

fn match_array_element(node: &Node, index: usize, term: &str) -> bool {
    let term = term.strip_prefix('#').unwrap_or(term);
    if term == "*" {
        return true;
    }
    if let Ok(wanted) = term.parse::<i64>() {
        return usize::try_from(wanted).is_ok_and(|w| w == index);
    }
    match node {
        Node::List(_) | Node::Null => false,
        Node::Map(map) => match term.split_once("=>") {
            None => map.contains_key(term),
            Some((key, value)) => map.iter().any(|(k, v)| match_string(k, key) && match_stringified(v, value)),
        },
        Node::Leaf(v) => match_string(v, term),
    }
}

/// The leaves of `node` that `query` (fleetd's per-level terms; empty: everything) keeps.
pub(crate) fn flatten(node: &Node, query: &[String]) -> Vec<Leaf> {
    let mut out = Vec::new();
    descend(&mut Vec::new(), node, 0, query, &mut out);
    out
}

fn descend(path: &mut Vec<String>, node: &Node, depth: usize, query: &[String], out: &mut Vec<Leaf>) {
    let (term, everything) = match query.get(depth) {
        None => ("*", true),
        Some(term) => (term.as_str(), term == "*"),
    };
    match node {
        Node::List(items) => {
            for (i, item) in items.iter().enumerate() {
                let mut key = i.to_string();
                if let Some(rewrite) = term.strip_prefix('#') {
                    // Name the element by one of its values: only maps having that key as a string qualify.
                    let name = rewrite.split_once("=>").map_or(rewrite, |(k, _)| k);
                    let Node::Map(map) = item else { continue };
                    let Some(Node::Leaf(value)) = map.get(name) else { continue };
                    key = value.clone();
                }
                if !(everything || match_array_element(item, i, term)) {
                    continue;
                }
                path.push(key);
                descend(path, item, depth + 1, query, out);
                path.pop();
            }
        }
        Node::Map(map) => {
            for (key, item) in map {
                if !(everything || match_string(key, term)) {
                    continue;
                }
                path.push(key.clone());
                descend(path, item, depth + 1, query, out);
                path.pop();
            }
        }
        Node::Null => {}
        Node::Leaf(value) => {
            if everything || match_string(value, term) {
                out.push(Leaf { keys: path.clone(), value: value.clone() });
            }
        }
    }
}

/// A JSON number as Go's `strconv.FormatFloat(v, 'f', -1, 64)` prints the float64 fleetd decodes it to.
fn json_number(n: &serde_json::Number) -> String {
    n.as_f64().map(|f| f.to_string()).unwrap_or_else(|| n.to_string())
}

fn from_json(value: serde_json::Value) -> Node {
    use serde_json::Value as J;
    match value {
        J::Null => Node::Null,
        J::Bool(b) => Node::Leaf(b.to_string()),
        J::Number(n) => Node::Leaf(json_number(&n)),
        J::String(s) => Node::Leaf(s),
        J::Array(items) => Node::List(items.into_iter().map(from_json).collect()),
        J::Object(map) => Node::Map(map.into_iter().map(|(k, v)| (k, from_json(v))).collect()),
    }
}

pub(crate) fn parse_json(text: &str) -> Option<Node> {
    serde_json::from_str(text).ok().map(from_json)
}

/// The documents of a JSON stream; after a bad document, reading resumes at the next line.
pub(crate) fn parse_jsonl(text: &str) -> Node {
    let mut documents = Vec::new();
    let mut rest = text;
    while !rest.trim().is_empty() {
        let mut stream = serde_json::Deserializer::from_str(rest).into_iter::<serde_json::Value>();
        match stream.next() {
            Some(Ok(value)) => {
                documents.push(from_json(value));
                rest = &rest[stream.byte_offset()..];
            }
            Some(Err(_)) => {
                // The bad document starts after the last good one (and the blanks after it): skip its line.
                let from = stream.byte_offset();
                let bad = rest[from..].trim_start();
                match bad.find('\n') {
                    Some(newline) => rest = &bad[newline + 1..],
                    None => break,
                }
            }
            None => break,
        }
    }
    Node::List(documents)
}

/// go-ini's boolean words.
fn ini_bool(value: &str) -> Option<bool> {
    match value {
        "t" | "T" | "true" | "TRUE" | "True" | "YES" | "yes" | "Yes" | "y" | "ON" | "on" | "On" => Some(true),
        "f" | "F" | "false" | "FALSE" | "False" | "NO" | "no" | "No" | "n" | "OFF" | "off" | "Off" => Some(false),
        _ => None,
    }
}

fn ini_value(raw: &str) -> String {
    let raw = raw.trim();
    for quote in ['"', '\''] {
        if let Some(inner) = raw.strip_prefix(quote)
            && let Some(end) = inner.find(quote)
        {
            return inner[..end].to_string();
        }
    }
    let uncommented = raw.find(['#', ';']).map_or(raw, |i| &raw[..i]).trim();
    uncommented.to_string()
}

pub(crate) fn parse_ini(text: &str) -> Node {
    let mut sections: BTreeMap<String, Node> = BTreeMap::new();
    let mut current = "DEFAULT".to_string();
    sections.insert(current.clone(), Node::Map(BTreeMap::new()));
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with(['#', ';']) {
            continue;
        }
        if let Some(header) = line.strip_prefix('[') {
            let Some(end) = header.find(']') else { continue };
            current = header[..end].trim().to_string();
            sections.entry(current.clone()).or_insert_with(|| Node::Map(BTreeMap::new()));
            continue;
        }
        let Some(split) = line.find(['=', ':']) else { continue };
        let key = line[..split].trim();
        if key.is_empty() {
            continue;
        }
        let value = ini_value(&line[split + 1..]);
        let value = ini_bool(&value).map_or(value, |b| b.to_string());
        if let Some(Node::Map(section)) = sections.get_mut(&current) {
            section.insert(key.to_string(), Node::Leaf(value));
        }
    }
    Node::Map(sections)
}

/// An XML element being read: attributes, children by name (in order), text.
#[derive(Default)]
struct Element {
    name: String,
    attributes: Vec<(String, String)>,
    children: Vec<(String, Node)>,
    text: String,
}

impl Element {
    fn into_node(self) -> Node {
        let text = self.text.trim().to_string();
        if self.attributes.is_empty() && self.children.is_empty() {
            return Node::Leaf(text);
        }
        let mut map: BTreeMap<String, Node> = BTreeMap::new();
        for (name, value) in self.attributes {
            map.insert(format!("-{name}"), Node::Leaf(value));
        }
        for (name, child) in self.children {
            match map.remove(&name) {
                None => {
                    map.insert(name, child);
                }
                // Elements are leaves or maps, never lists: a list here is the repeats seen so far.
                Some(Node::List(mut items)) => {
                    items.push(child);
                    map.insert(name, Node::List(items));
                }
                Some(previous) => {
                    map.insert(name, Node::List(vec![previous, child]));
                }
            }
        }
        if !text.is_empty() {
            map.insert("#text".into(), Node::Leaf(text));
        }
        Node::Map(map)
    }
}

pub(crate) fn parse_xml(text: &str) -> Node {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<(String, Node)> = None;
    let open = |e: &quick_xml::events::BytesStart<'_>| Element {
        name: e.local_name().as_ref().to_string(),
        attributes: e
            .attributes()
            .flatten()
            .map(|a| {
                let name = a.key.local_name().as_ref().to_string();
                let value =
                    a.normalized_value(quick_xml::XmlVersion::Implicit1_0).map(|v| v.into_owned()).unwrap_or_default();
                (name, value)
            })
            .collect(),
        ..Element::default()
    };
    loop {
        let finished = match reader.read_event() {
            Ok(Event::Start(e)) => {
                stack.push(open(&e));
                None
            }
            Ok(Event::Empty(e)) => Some(open(&e)),
            Ok(Event::End(_)) => stack.pop(),
            Ok(Event::Text(t)) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t);
                }
                None
            }
            Ok(Event::CData(t)) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t);
                }
                None
            }
            Ok(Event::GeneralRef(r)) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c.to_string()),
                    _ => quick_xml::escape::resolve_predefined_entity(&r).map(str::to_string),
                };
                if let (Some(top), Some(text)) = (stack.last_mut(), resolved) {
                    top.text.push_str(&text);
                }
                None
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => None,
        };
        if let Some(element) = finished {
            let name = element.name.clone();
            let node = element.into_node();
            match stack.last_mut() {
                Some(parent) => parent.children.push((name, node)),
                None if root.is_none() => root = Some((name, node)),
                None => {}
            }
        }
    }
    // A document cut short: the elements still open keep the children they completed.
    while let Some(element) = stack.pop() {
        let name = element.name.clone();
        let node = element.into_node();
        match stack.last_mut() {
            Some(parent) => parent.children.push((name, node)),
            None if root.is_none() => root = Some((name, node)),
            None => {}
        }
    }
    match root {
        Some((name, node)) => Node::Map(BTreeMap::from([(name, node)])),
        None => Node::Null,
    }
}

#[derive(Clone, Copy)]
enum Format {
    Json,
    Jsonl,
    Ini,
    Xml,
}

pub struct Flattened {
    name: &'static str,
    format: Format,
}

impl Flattened {
    pub const JSON: Flattened = Flattened { name: "parse_json", format: Format::Json };
    pub const JSONL: Flattened = Flattened { name: "parse_jsonl", format: Format::Jsonl };
    pub const INI: Flattened = Flattened { name: "parse_ini", format: Format::Ini };
    pub const XML: Flattened = Flattened { name: "parse_xml", format: Format::Xml };

    fn parse(&self, text: &str) -> Node {
        match self.format {
            Format::Json => parse_json(text).unwrap_or(Node::Null),
            Format::Jsonl => parse_jsonl(text),
            Format::Ini => parse_ini(text),
            Format::Xml => parse_xml(text),
        }
    }
}

/// Paths named by `=` or LIKE, `%` read as a glob (as fleetd reads it in both).
pub(crate) fn constrained_paths(constraints: &Constraints, column: &str) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = Vec::new();
    for pattern in constraints.texts(column).iter().chain(constraints.like.get(column).into_iter().flatten()) {
        paths.extend(expand_glob(pattern));
    }
    paths.sort();
    paths.dedup();
    paths
}

impl Table for Flattened {
    fn name(&self) -> &'static str {
        self.name
    }
    fn description(&self) -> &'static str {
        match self.format {
            Format::Json => "Parses a JSON file into key/value rows.",
            Format::Jsonl => "Parses a JSON lines file into key/value rows.",
            Format::Ini => "Parses an INI file into key/value rows.",
            Format::Xml => "Parses an XML file into key/value rows.",
        }
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("path").required().like(),
            Column::text("fullkey"),
            Column::text("parent"),
            Column::text("key"),
            Column::text("value"),
            Column::text("query").index().hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut queries = constraints.texts("query");
        if queries.is_empty() {
            queries.push("*".into());
        }
        let mut rows = Vec::new();
        for path in constrained_paths(constraints, "path") {
            if std::fs::metadata(&path).map(|m| !m.is_file() || m.len() > MAX_FILE).unwrap_or(true) {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else { continue };
            let document = self.parse(&String::from_utf8_lossy(&bytes));
            let shown = path.display().to_string();
            for query in &queries {
                let terms: Vec<String> =
                    if query.is_empty() { Vec::new() } else { query.split('/').map(str::to_string).collect() };
                for leaf in flatten(&document, &terms) {
                    let (parent, key) = match leaf.keys.split_last() {
                        Some((key, parent)) => (parent.join("/"), key.clone()),
                        None => (String::new(), String::new()),
                    };
                    rows.push(Row::from([
                        ("path", Value::text(shown.clone())),
                        ("fullkey", Value::text(leaf.keys.join("/"))),
                        ("parent", Value::text(parent)),
                        ("key", Value::text(key)),
                        ("value", Value::text(leaf.value)),
                        ("query", Value::text(query.clone())),
                    ]));
                }
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(node: &Node, query: &str) -> Vec<(String, String)> {
        let terms: Vec<String> = if query.is_empty() { vec![] } else { query.split('/').map(String::from).collect() };
        flatten(node, &terms).into_iter().map(|l| (l.keys.join("/"), l.value)).collect()
    }

    fn p(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn string_matches() {
        let cases = [
            ("abc", "*", true),
            ("abc", "abc", true),
            ("abc", "ab", false),
            ("abc", "ab*", true),
            ("abc", "*bc", true),
            ("abc", "*b*", true),
            ("abc", "*x*", false),
        ];
        for (value, term, want) in cases {
            assert_eq!(match_string(value, term), want, "{value} {term}");
        }
    }

    #[test]
    fn json_flattens_like_fleetd() {
        let doc = parse_json(
            r#"{"metadata": {"testing": true, "version": "1.0.1", "n": 1.0, "big": 1e21, "none": null, "empty": []},
                "users": [{"name": "Aardvark", "id": 1}, {"name": "Bear", "id": 2}, {"name": "Chipmunk", "id": 3}]}"#,
        )
        .unwrap();
        assert_eq!(
            pairs(&doc, "metadata"),
            p(&[
                ("metadata/big", "1000000000000000000000"),
                ("metadata/n", "1"),
                ("metadata/testing", "true"),
                ("metadata/version", "1.0.1")
            ])
        );
        assert_eq!(pairs(&doc, "users/name=>*Aardvark/id"), p(&[("users/0/id", "1")]));
        assert_eq!(pairs(&doc, "users/1/name"), p(&[("users/1/name", "Bear")]));
        assert_eq!(
            pairs(&doc, "users/#name/id"),
            p(&[("users/Aardvark/id", "1"), ("users/Bear/id", "2"), ("users/Chipmunk/id", "3")])
        );
        assert_eq!(pairs(&doc, "users/id/id").len(), 3, "a bare key keeps elements having it");
        assert_eq!(pairs(&doc, "").len(), 10);
        assert!(parse_json("{\"a\": ").is_none());
    }

    #[test]
    fn jsonl_keeps_documents_around_a_bad_one() {
        let doc = parse_jsonl("{\"a\": 1}\n{\"a\": oops}\n{\"a\": 3} {\"a\": 4}\n");
        assert_eq!(pairs(&doc, ""), p(&[("0/a", "1"), ("1/a", "3"), ("2/a", "4")]));
    }

    #[test]
    fn ini_reads_go_ini_dialect() {
        let doc = parse_ini(
            "top = level\n[server]\nname = \"quoted ; value\"\nport: 8080 ; comment\nenabled = yes\nbroken line\nport = 9090\n[empty]\n",
        );
        assert_eq!(
            pairs(&doc, ""),
            p(&[
                ("DEFAULT/top", "level"),
                ("server/enabled", "true"),
                ("server/name", "quoted ; value"),
                ("server/port", "9090")
            ])
        );
    }

    #[test]
    fn xml_maps_like_mxj() {
        let doc = parse_xml(
            "<simple>\n <Items><item1>One</item1><item2>Two &amp; more</item2></Items>\n <Animals><Cat/><Dog/></Animals>\n \
             <list><i>1</i><i>2</i><i>3</i></list><tag id=\"7\">text</tag></simple>",
        );
        assert_eq!(
            pairs(&doc, ""),
            p(&[
                ("simple/Animals/Cat", ""),
                ("simple/Animals/Dog", ""),
                ("simple/Items/item1", "One"),
                ("simple/Items/item2", "Two & more"),
                ("simple/list/i/0", "1"),
                ("simple/list/i/1", "2"),
                ("simple/list/i/2", "3"),
                ("simple/tag/#text", "text"),
                ("simple/tag/-id", "7"),
            ])
        );
        assert_eq!(pairs(&doc, "simple/Items").len(), 2);
        let cut = parse_xml("<a><b>1</b><c>2</c><d>unfinished");
        assert_eq!(pairs(&cut, ""), p(&[("a/b", "1"), ("a/c", "2"), ("a/d", "unfinished")]));
    }
}
