//! herd-agent's schema against osquery's (and fleetd's): every table it has must have exactly the columns,
//! types, hidden columns, required and index columns of `tests/data/osquery_tables.tsv` (osquery's and
//! fleetd's table specs, kept in the repository so a clone needs nothing beside it), and the Linux tables it
//! lacks are listed in [`NOT_YET`], so a gap is reported, never passed silently — and adding a table fails this
//! test until it leaves that list.
//!
//! How the TSV's flags map to herd's columns:
//! - `hidden`, or `platform-only=` a list without linux: hidden (osquery's codegen keeps another platform's
//!   columns on Linux as hidden columns, so a query naming them still runs);
//! - `required`: required;
//! - `index`, `required`, `additional`, `optimized`: index (osquery hands constraints on all four to the table).
//!
//! Tables whose note says they exist neither in osquery nor in Fleet (`sysctl`, `dconf`, `glob`: policies misuse
//! them) and tables of other platforms only (`services`) are not expected.

use herd_osquery::{ColumnType, Engine};
use std::collections::{BTreeMap, BTreeSet};

/// osquery's Linux tables herd-agent does not have yet (issue 22).
const NOT_YET: &[&str] = &[];

/// Columns herd-agent has beyond the TSV, each with the reason. fleetd's dataflatten tables (parse_*) all have
/// a `query` column (the path filter inside the file) that Fleet's schema files leave out.
const EXTRA_COLUMNS: &[(&str, &str)] =
    &[("parse_json", "query"), ("parse_jsonl", "query"), ("parse_ini", "query"), ("parse_xml", "query")];

/// Columns herd-agent pushes down although the TSV does not flag them, each with the reason: osquery hands an
/// extension (fleetd) every constraint, so fleetd's generators see them all and filter on them.
const PUSHED_DOWN: &[(&str, &str)] = &[("lsblk", "query"), ("nftables", "query"), ("cryptsetup_status", "query")];

#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    name: String,
    kind: &'static str,
    hidden: bool,
    index: bool,
    required: bool,
}

fn kind_of(text: &str) -> &'static str {
    match text {
        "TEXT" => "TEXT",
        "INTEGER" => "INTEGER",
        "BIGINT" => "BIGINT",
        "DOUBLE" => "DOUBLE",
        // fleetd's google_chrome_profiles.ephemeral (osquery-go's BooleanColumn).
        "BOOLEAN" => "BOOLEAN",
        other => panic!("unknown column type {other:?} in the TSV"),
    }
}

/// The Linux tables of the TSV with their columns in order.
fn expected_tables() -> BTreeMap<String, Vec<Expected>> {
    let text = include_str!("data/osquery_tables.tsv");
    let mut tables: BTreeMap<String, Vec<Expected>> = BTreeMap::new();
    let mut excluded: BTreeSet<String> = BTreeSet::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [table, platforms, column, kind, flags, ..] = fields[..] else { continue };
        if column == "(table)" {
            let other_platform = !["", "all"].contains(&platforms) && !platforms.contains("linux");
            if flags.contains("DOES NOT EXIST") || other_platform {
                excluded.insert(table.to_string());
            } else {
                tables.entry(table.to_string()).or_default();
            }
            continue;
        }
        if excluded.contains(table) {
            continue;
        }
        let flags: Vec<&str> = flags.split(',').map(str::trim).collect();
        let other_platform_only =
            flags.iter().any(|f| f.strip_prefix("platform-only=").is_some_and(|p| !p.contains("linux")));
        let has = |f: &str| flags.contains(&f);
        tables.entry(table.to_string()).or_default().push(Expected {
            name: column.to_string(),
            kind: kind_of(kind),
            hidden: has("hidden") || other_platform_only,
            index: has("index") || has("required") || has("additional") || has("optimized"),
            required: has("required"),
        });
    }
    tables
}

#[test]
fn every_table_has_osquerys_schema_and_the_gaps_are_listed() {
    let expected = expected_tables();
    assert!(expected.len() > 70, "the TSV was read: {} tables", expected.len());
    let engine = Engine::new().unwrap();
    let mut mismatches = Vec::new();
    let mut present = BTreeSet::new();
    for table in engine.tables() {
        let Some(want) = expected.get(table.name()) else { continue };
        present.insert(table.name().to_string());
        let extra: BTreeSet<&str> = EXTRA_COLUMNS.iter().filter(|(t, _)| *t == table.name()).map(|(_, c)| *c).collect();
        let got: Vec<Expected> = table
            .columns()
            .iter()
            .filter(|c| !extra.contains(c.name))
            .map(|c| Expected {
                name: c.name.to_string(),
                kind: match c.kind {
                    ColumnType::Text => "TEXT",
                    ColumnType::Integer => "INTEGER",
                    ColumnType::BigInt => "BIGINT",
                    ColumnType::Double => "DOUBLE",
                    ColumnType::Boolean => "BOOLEAN",
                },
                hidden: c.hidden,
                index: c.index && !PUSHED_DOWN.contains(&(table.name(), c.name)),
                required: c.required,
            })
            .collect();
        if &got != want {
            let names = |cs: &[Expected]| cs.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
            if names(&got) != names(want) {
                mismatches.push(format!("{}: columns {:?}\n   osquery: {:?}", table.name(), names(&got), names(want)));
            }
            for (g, w) in got.iter().zip(want.iter()).filter(|(g, w)| g.name == w.name && g != w) {
                mismatches.push(format!("{}.{}: herd {g:?}\n   osquery {w:?}", table.name(), g.name));
            }
        }
    }
    assert!(mismatches.is_empty(), "schemas differ from osquery's:\n{}", mismatches.join("\n"));
    let missing: BTreeSet<String> = expected.keys().filter(|t| !present.contains(*t)).cloned().collect();
    let not_yet: BTreeSet<String> = NOT_YET.iter().map(|t| t.to_string()).collect();
    assert_eq!(
        missing,
        not_yet,
        "osquery's Linux tables herd-agent lacks must be exactly NOT_YET ({} of {} tables present)",
        present.len(),
        expected.len()
    );
    eprintln!("{} of {} osquery Linux tables present; not yet: {}", present.len(), expected.len(), NOT_YET.join(", "));
}
