//! fleetd's tables that run a program printing JSON and flatten its output as parse_json flattens a file
//! (`fullkey`, `parent`, `key`, `value`; `query` filters as there, default `*`):
//! - lsblk: `lsblk -n -O --json` (util-linux);
//! - nftables: `nft -jat list ruleset` (nftables; JSON, with handles, terse: sets' elements left out), which
//!   needs root (CAP_NET_ADMIN).
//!
//! The program runs with stdin closed for at most 5 seconds (less when the query has less time left), its
//! output capped at 4 MiB. No rows when it is not installed, fails (not permitted), times out or prints no
//! JSON.

use super::command::run_bounded;
use super::flatten::{flatten, parse_json};
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(5);
const MAX_OUTPUT: usize = 4 << 20;

pub struct FlattenedCommand {
    name: &'static str,
    description: &'static str,
    program: &'static str,
    args: &'static [&'static str],
}

impl FlattenedCommand {
    pub const LSBLK: FlattenedCommand = FlattenedCommand {
        name: "lsblk",
        description: "Based on the output obtained by running `lsblk -n -O`",
        program: "lsblk",
        args: &["-n", "-O", "--json"],
    };
    pub const NFTABLES: FlattenedCommand = FlattenedCommand {
        name: "nftables",
        description: "Show configuration for Linux `nftables` network filters in JSON flattened format.",
        program: "nft",
        args: &["-jat", "list", "ruleset"],
    };
}

impl Table for FlattenedCommand {
    fn name(&self) -> &'static str {
        self.name
    }
    fn description(&self) -> &'static str {
        self.description
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("fullkey"),
            Column::text("parent"),
            Column::text("key"),
            Column::text("value"),
            // fleetd's extension receives every constraint; this one must reach the generator to filter.
            Column::text("query").index(),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut command = Command::new(self.program);
        command.args(self.args);
        let Some(output) = run_bounded(command, LIMIT.min(crate::engine::time_left()), MAX_OUTPUT) else {
            return Ok(Vec::new());
        };
        let Some(document) = output.success.then(|| parse_json(&String::from_utf8_lossy(&output.stdout))).flatten()
        else {
            return Ok(Vec::new());
        };
        let mut queries = constraints.texts("query");
        if queries.is_empty() {
            queries.push("*".into());
        }
        let mut rows = Vec::new();
        for query in &queries {
            let terms: Vec<String> =
                if query.is_empty() { Vec::new() } else { query.split('/').map(str::to_string).collect() };
            for leaf in flatten(&document, &terms) {
                let (parent, key) = match leaf.keys.split_last() {
                    Some((key, parent)) => (parent.join("/"), key.clone()),
                    None => (String::new(), String::new()),
                };
                rows.push(Row::from([
                    ("fullkey", Value::text(leaf.keys.join("/"))),
                    ("parent", Value::text(parent)),
                    ("key", Value::text(key)),
                    ("value", Value::text(leaf.value)),
                    ("query", Value::text(query.clone())),
                ]));
            }
        }
        Ok(rows)
    }
}
