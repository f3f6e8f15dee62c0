//! The osquery TLS remote API (`--tls_hostname`, `--enroll_tls_endpoint`, `--distributed_tls_*`, ...).

use serde::de::{self, MapAccess, SeqAccess, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A result or detail row: osquery sends every value as a string, but a hand-written client may not, so
/// numbers, booleans and nulls are accepted and turned into the string osquery would have sent.
pub type Row = BTreeMap<String, String>;

/// Most rows one query's results may have in a report. Larger results are refused whole (a policy or vitals
/// query answers with a few rows; a result that large is a mistake or an attack, and would cost the server
/// hundreds of bytes per value).
pub const MAX_ROWS_PER_QUERY: usize = 100_000;

/// Query results, read straight into rows of strings (no intermediate `Value` tree, which costs several
/// times the memory of the text).
fn rows_lenient<'de, D: Deserializer<'de>>(de: D) -> Result<BTreeMap<String, Vec<Row>>, D::Error> {
    let raw: BTreeMap<String, QueryRows> = BTreeMap::deserialize(de)?;
    Ok(raw.into_iter().map(|(name, QueryRows(rows))| (name, rows)).collect())
}

/// One query's results: an array of objects; `null`, or `""` (some osquery versions, for no rows), as none.
struct QueryRows(Vec<Row>);

impl<'de> Deserialize<'de> for QueryRows {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct RowsVisitor;
        impl<'de> Visitor<'de> for RowsVisitor {
            type Value = QueryRows;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an array of rows (objects)")
            }
            fn visit_unit<E: de::Error>(self) -> Result<QueryRows, E> {
                Ok(QueryRows(Vec::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<QueryRows, E> {
                Ok(QueryRows(Vec::new()))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<QueryRows, E> {
                if v.is_empty() { Ok(QueryRows(Vec::new())) } else { Err(E::invalid_type(Unexpected::Str(v), &self)) }
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<QueryRows, A::Error> {
                let mut rows = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
                while let Some(RowCells(row)) = seq.next_element()? {
                    if rows.len() == MAX_ROWS_PER_QUERY {
                        return Err(de::Error::custom(format!("more than {MAX_ROWS_PER_QUERY} rows")));
                    }
                    rows.push(row);
                }
                Ok(QueryRows(rows))
            }
        }
        de.deserialize_any(RowsVisitor)
    }
}

/// A row: an object whose values become osquery's strings.
struct RowCells(Row);

impl<'de> Deserialize<'de> for RowCells {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct RowVisitor;
        impl<'de> Visitor<'de> for RowVisitor {
            type Value = RowCells;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a row (an object of column values)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RowCells, A::Error> {
                let mut row = Row::new();
                while let Some((column, Cell(value))) = map.next_entry::<String, Cell>()? {
                    row.insert(column, value);
                }
                Ok(RowCells(row))
            }
        }
        de.deserialize_map(RowVisitor)
    }
}

/// A column value as osquery sends it (a string), or any other JSON value turned into the string osquery
/// would have sent ([`value_to_string`]).
struct Cell(String);

impl<'de> Deserialize<'de> for Cell {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct CellVisitor;
        impl<'de> Visitor<'de> for CellVisitor {
            type Value = Cell;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a column value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Cell, E> {
                Ok(Cell(v.to_owned()))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Cell, E> {
                Ok(Cell(v))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Cell, E> {
                Ok(Cell(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Cell, E> {
                Ok(Cell(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Cell, E> {
                Ok(Cell(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Cell, E> {
                Ok(Cell(value_to_string(Value::from(v))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Cell, E> {
                Ok(Cell(String::new()))
            }
            fn visit_none<E: de::Error>(self) -> Result<Cell, E> {
                Ok(Cell(String::new()))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Cell, A::Error> {
                Value::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(|v| Cell(v.to_string()))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Cell, A::Error> {
                Value::deserialize(de::value::MapAccessDeserializer::new(map)).map(|v| Cell(v.to_string()))
            }
        }
        de.deserialize_any(CellVisitor)
    }
}

fn details_lenient<'de, D: Deserializer<'de>>(de: D) -> Result<BTreeMap<String, Row>, D::Error> {
    let raw: Option<BTreeMap<String, Value>> = Option::deserialize(de)?;
    let mut out = BTreeMap::new();
    for (table, row) in raw.unwrap_or_default() {
        if let Value::Object(map) = row {
            out.insert(table, map.into_iter().map(|(k, v)| (k, value_to_string(v))).collect());
        }
    }
    Ok(out)
}

pub fn value_to_string(value: Value) -> String {
    match value {
        Value::String(s) => s,
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// A query's status: osquery ≥ 3 sends integers, older agents numeric strings.
fn statuses_lenient<'de, D: Deserializer<'de>>(de: D) -> Result<BTreeMap<String, i64>, D::Error> {
    let raw: BTreeMap<String, Value> = BTreeMap::deserialize(de)?;
    raw.into_iter()
        .map(|(name, status)| {
            let code = match &status {
                Value::Number(n) => n.as_i64(),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                _ => None,
            };
            code.map(|code| (name.clone(), code))
                .ok_or_else(|| serde::de::Error::custom(format!("status of query {name:?} must be an integer")))
        })
        .collect()
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct EnrollRequest {
    pub enroll_secret: String,
    #[serde(default)]
    pub host_identifier: String,
    /// Decimal bitmask as a string ("9" for Linux, "17" for macOS, "2" for Windows).
    #[serde(default, deserialize_with = "platform_type_lenient")]
    pub platform_type: Option<String>,
    #[serde(default, deserialize_with = "details_lenient")]
    pub host_details: BTreeMap<String, Row>,
}

fn platform_type_lenient<'de, D: Deserializer<'de>>(de: D) -> Result<Option<String>, D::Error> {
    Ok(match Option::<Value>::deserialize(de)? {
        None | Some(Value::Null) => None,
        Some(v) => Some(value_to_string(v)),
    })
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnrollResponse {
    pub node_key: String,
}

/// Body of config, distributed/read: the node key alone. osquery ≥ 5.23 also sends it as
/// `Authorization: NodeKey <key>`, which the server accepts when the body has none.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct NodeKeyRequest {
    /// herd-agent's own endpoints (Fleet's orbit ones) also accept Fleet's `orbit_node_key`.
    #[serde(default, alias = "orbit_node_key")]
    pub node_key: Option<String>,
}

/// Any error answer. `node_invalid: true` makes osquery drop its node key and enroll again.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error: String,
    pub node_invalid: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DistributedReadResponse {
    pub queries: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub discovery: BTreeMap<String, String>,
    /// Seconds of fast polling (every 5 s); must be a JSON integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accelerate: Option<u32>,
    /// herd's own: script runs are queued for this host (herd-agent then asks for them; osqueryd ignores
    /// keys it does not know).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub herd_pending_scripts: bool,
    /// herd's own: configuration profile commands await this host's agent.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub herd_pending_profiles: bool,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct DistributedWriteRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_key: Option<String>,
    #[serde(default, deserialize_with = "rows_lenient")]
    pub queries: BTreeMap<String, Vec<Row>>,
    #[serde(default, deserialize_with = "statuses_lenient")]
    pub statuses: BTreeMap<String, i64>,
    #[serde(default)]
    pub messages: BTreeMap<String, Value>,
    #[serde(default)]
    pub stats: BTreeMap<String, Value>,
    /// herd-agent's own: this report re-checks policies right after their remediations ran.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub herd_recheck: bool,
}

/// The empty object the write and log endpoints answer (herd's agent endpoints answer it too).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledged {}

/// What an agent follows of a config answer, which is the admin's document: `options.distributed_interval`
/// and `options.logger_tls_period`, in seconds. Read leniently, as osqueryd does: a value that is not a
/// whole number of seconds, or a document of another shape, reads as absent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConfigOptions {
    pub distributed_interval: Option<u64>,
    pub logger_tls_period: Option<u64>,
}

impl<'de> Deserialize<'de> for ConfigOptions {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let config = Value::deserialize(de)?;
        let option = |name: &str| config.get("options").and_then(|o| o.get(name)).and_then(Value::as_u64);
        Ok(ConfigOptions {
            distributed_interval: option("distributed_interval"),
            logger_tls_period: option("logger_tls_period"),
        })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInvalid {
    pub node_invalid: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogType {
    Result,
    Status,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct LogRequest {
    #[serde(default)]
    pub node_key: Option<String>,
    pub log_type: LogType,
    #[serde(default)]
    pub data: Vec<Value>,
}

/// One status log line. Numbers arrive as strings from osquery and as numbers from hand-written clients.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatusLogLine {
    pub unix_time: Option<i64>,
    pub severity: i64,
    pub filename: String,
    pub line: i64,
    pub message: String,
    pub version: String,
}

impl StatusLogLine {
    /// None when the value is not a JSON object.
    pub fn from_value(value: &Value) -> Option<StatusLogLine> {
        let map = value.as_object()?;
        let text = |key: &str| map.get(key).cloned().map(value_to_string).unwrap_or_default();
        let number = |key: &str| text(key).trim().parse::<i64>().ok();
        Some(StatusLogLine {
            unix_time: number("unixTime"),
            severity: number("severity").unwrap_or(0),
            filename: text("filename"),
            line: number("line").unwrap_or(0),
            message: text("message"),
            version: text("version"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_options_read_leniently() {
        let cases: &[(&str, ConfigOptions)] = &[
            (
                r#"{"options": {"distributed_interval": 30, "logger_tls_period": 10}, "decorators": {}}"#,
                ConfigOptions { distributed_interval: Some(30), logger_tls_period: Some(10) },
            ),
            (r#"{"options": {"distributed_interval": "30"}}"#, ConfigOptions::default()),
            (r#"{"options": {"distributed_interval": -1}}"#, ConfigOptions::default()),
            (r#"{"options": "none"}"#, ConfigOptions::default()),
            (r#"{}"#, ConfigOptions::default()),
            (r#"[]"#, ConfigOptions::default()),
        ];
        for (config, want) in cases {
            assert_eq!(serde_json::from_str::<ConfigOptions>(config).unwrap(), *want, "{config}");
        }
    }

    #[test]
    fn the_agents_report_is_todays() {
        // What herd-agent sends: rows of strings, statuses as numbers, messages as strings, `herd_recheck` only
        // when set; its spool keeps the report without the node key.
        let mut report = DistributedWriteRequest::default();
        report.queries.insert("a".into(), vec![Row::from([("x".to_string(), "1".to_string())])]);
        report.statuses.insert("a".into(), 0);
        report.queries.insert("b".into(), vec![]);
        report.statuses.insert("b".into(), 1);
        report.messages.insert("b".into(), Value::String("no such table: nope".into()));
        assert_eq!(
            serde_json::to_value(&report).unwrap(),
            serde_json::json!({"queries": {"a": [{"x": "1"}], "b": []}, "statuses": {"a": 0, "b": 1},
                "messages": {"b": "no such table: nope"}, "stats": {}})
        );
        report.herd_recheck = true;
        report.node_key = Some("k".into());
        let sent = serde_json::to_value(&report).unwrap();
        assert_eq!((&sent["herd_recheck"], &sent["node_key"]), (&serde_json::json!(true), &serde_json::json!("k")));
    }

    #[test]
    fn write_accepts_string_and_number_statuses() {
        let body = r#"{"node_key":"k","queries":{"a":[{"x":"1","n":2,"b":true,"z":null}],"b":[],"c":""},
            "statuses":{"a":0,"b":"1","c":"0"},"messages":{"b":"no such table: foo"},"stats":{}}"#;
        let req: DistributedWriteRequest = serde_json::from_str(body).unwrap();
        assert_eq!(req.statuses["a"], 0);
        assert_eq!(req.statuses["b"], 1);
        assert_eq!(req.queries["a"][0]["n"], "2");
        assert_eq!(req.queries["a"][0]["b"], "true");
        assert_eq!(req.queries["a"][0]["z"], "");
        assert!(req.queries["c"].is_empty());
    }

    #[test]
    fn write_rejects_bad_shapes() {
        for body in [
            r#"{"queries":{"a":[1]}}"#,
            r#"{"queries":{"a":{"x":"1"}}}"#,
            r#"{"statuses":{"a":"zero"}}"#,
            r#"{"statuses":{"a":[0]}}"#,
            r#"{"queries":{"a":"text"}}"#,
            r#"{"queries":{"a":3}}"#,
        ] {
            assert!(serde_json::from_str::<DistributedWriteRequest>(body).is_err(), "{body}");
        }
    }

    #[test]
    fn rows_keep_every_json_type_as_osquery_strings() {
        let body = r#"{"queries":{"a":[{"f":1.5,"big":18446744073709551615,"neg":-3,"arr":[1,"x"],"obj":{"k":null}}],
            "n":null}}"#;
        let req: DistributedWriteRequest = serde_json::from_str(body).unwrap();
        let row = &req.queries["a"][0];
        assert_eq!(row["f"], "1.5");
        assert_eq!(row["big"], "18446744073709551615");
        assert_eq!(row["neg"], "-3");
        assert_eq!(row["arr"], r#"[1,"x"]"#);
        assert_eq!(row["obj"], r#"{"k":null}"#);
        assert!(req.queries["n"].is_empty());
    }

    #[test]
    fn rows_per_query_are_bounded() {
        let rows = vec!["{}"; MAX_ROWS_PER_QUERY + 1].join(",");
        let body = format!(r#"{{"queries":{{"a":[{rows}]}}}}"#);
        let err = serde_json::from_str::<DistributedWriteRequest>(&body).unwrap_err();
        assert!(err.to_string().contains("more than 100000 rows"), "{err}");
        let rows = vec!["{}"; MAX_ROWS_PER_QUERY].join(",");
        let body = format!(r#"{{"queries":{{"a":[{rows}]}}}}"#);
        assert_eq!(
            serde_json::from_str::<DistributedWriteRequest>(&body).unwrap().queries["a"].len(),
            MAX_ROWS_PER_QUERY
        );
    }

    #[test]
    fn enroll_details_are_strings() {
        let body = r#"{"enroll_secret":"s","host_identifier":"h","platform_type":9,
            "host_details":{"system_info":{"uuid":"U","physical_memory":1024},"bogus":"x"}}"#;
        let req: EnrollRequest = serde_json::from_str(body).unwrap();
        assert_eq!(req.platform_type.as_deref(), Some("9"));
        assert_eq!(req.host_details["system_info"]["physical_memory"], "1024");
        assert!(!req.host_details.contains_key("bogus"));
    }

    #[test]
    fn read_response_omits_empty_parts() {
        let empty = serde_json::to_string(&DistributedReadResponse::default()).unwrap();
        assert_eq!(empty, r#"{"queries":{}}"#);
    }

    #[test]
    fn status_lines() {
        let v: Value = serde_json::from_str(
            r#"{"hostIdentifier":"h","calendarTime":"x","unixTime":"1700000000","severity":"1","filename":"f.cpp","line":"12","message":"m","version":"5.12.1"}"#,
        )
        .unwrap();
        let line = StatusLogLine::from_value(&v).unwrap();
        assert_eq!(line.unix_time, Some(1_700_000_000));
        assert_eq!((line.severity, line.line), (1, 12));
        assert!(StatusLogLine::from_value(&Value::from(3)).is_none());
    }
}
