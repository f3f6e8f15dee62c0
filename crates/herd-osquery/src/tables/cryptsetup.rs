//! cryptsetup_status and cryptsetup_luks_salt: Fleet's agent (fleetd) tables about LUKS/dm-crypt, from the
//! `cryptsetup` program as fleetd runs it (`/usr/sbin/cryptsetup`, else `/sbin/cryptsetup`), with stdin closed,
//! at most 15 seconds (fleetd's limit; less when the query has less time left) and 4 MiB of output. Both need
//! root on a real device (the agent runs as root); a LUKS image file is read as a device is.
//!
//! cryptsetup_status (fleetd's `orbit/pkg/table/cryptsetup`): `cryptsetup --readonly status NAME` for each
//! `name` (required; as fleetd, a name with a character outside `A-Za-z0-9-/_` is dropped, and a query left
//! with no name fails as fleetd's does). Its output becomes a map as fleetd parses it — the first line gives
//! `status` (`active`, `inactive`, `not_found`), `mounted` (`true` when "is in use") and `display_name` (or
//! `short_name` for "Device … not found"); each later `key: value` line gives `key` (spaces as `_`, so
//! `key_location`, `sector_size`) = value — flattened as fleetd's dataflatten tables are: `fullkey`, `parent`
//! (`""` at the top), `key`, `value`, and `query` (fleetd's path filter, default `*`, pushed down since fleetd
//! reads it). A name cryptsetup reports on with a failure exit (inactive, not found: exit 4) gives no rows,
//! as in fleetd, whose helper treats a failed exit as an error and skips the name.
//!
//! cryptsetup_luks_salt (fleetd's `orbit/pkg/table/cryptsetup_luks_salt`): `cryptsetup luksDump
//! --dump-json-metadata DEVICE` for each `device` (required), one row per LUKS2 key slot of the header's JSON:
//! `key_slot` its number, `salt` its `kdf.salt` (base64, as in the header; `""` when the slot has none), in
//! slot order (fleetd's follow Go's map order). LUKS1 has no JSON metadata, so a LUKS1 device gives no rows (fleetd
//! reports cryptsetup's failure as a query error; herd gives no rows, as for any missing source). fleetd falls
//! back to `--debug-json` for cryptsetup before 2.4; herd does not (no rows there). A device starting with `-`
//! is refused (no rows), so it cannot be read as an option.
//!
//! No rows (never an error) when cryptsetup is not installed, fails, times out or prints something else.

use super::command::run_bounded;
use super::flatten::{Node, flatten};
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

const PROGRAMS: &[&str] = &["/usr/sbin/cryptsetup", "/sbin/cryptsetup"];
const LIMIT: Duration = Duration::from_secs(15);
const MAX_OUTPUT: usize = 4 << 20;
/// The characters fleetd allows in a `name`.
const NAME_CHARACTERS: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-/_";

/// The cryptsetup program to run: the first of `programs` that exists.
fn program(programs: &[PathBuf]) -> Option<&PathBuf> {
    programs.iter().find(|p| p.is_file())
}

/// cryptsetup's stdout when it ran and succeeded.
fn run(programs: &[PathBuf], args: &[&str]) -> Option<String> {
    let mut command = Command::new(program(programs)?);
    command.args(args);
    let output = run_bounded(command, LIMIT.min(crate::engine::time_left()), MAX_OUTPUT)?;
    output.success.then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

fn default_programs() -> Vec<PathBuf> {
    PROGRAMS.iter().map(PathBuf::from).collect()
}

/// `cryptsetup status` output as fleetd's parseStatus reads it; None where fleetd fails to parse.
pub(crate) fn parse_status(text: &str) -> Option<BTreeMap<String, String>> {
    static FIRST_LINE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^(?:Device (.*) (not found))|(?:(.*?) is ([a-z]+)(?:\.| and is (in use)))").unwrap()
    });
    let mut lines = text.lines();
    let first = lines.next().filter(|l| !l.is_empty())?;
    let captures = FIRST_LINE.captures(first)?;
    let group = |i: usize| captures.get(i).map_or("", |m| m.as_str());
    let mut data = BTreeMap::new();
    if !group(1).is_empty() && !group(2).is_empty() {
        data.insert("short_name".to_string(), group(1).to_string());
        data.insert("status".to_string(), group(2).replace(' ', "_"));
        data.insert("mounted".to_string(), "false".to_string());
    } else if !group(3).is_empty() && !group(4).is_empty() {
        data.insert("display_name".to_string(), group(3).to_string());
        data.insert("status".to_string(), group(4).replace(' ', "_"));
        data.insert("mounted".to_string(), (!group(5).is_empty()).to_string());
    } else {
        return None;
    }
    for line in lines {
        // Blank or other unexpected lines are skipped, as fleetd does.
        let Some((key, value)) = line.split_once(": ") else { continue };
        data.insert(key.trim().replace(' ', "_"), value.trim().to_string());
    }
    Some(data)
}

/// The key slots and their salts of `cryptsetup luksDump --dump-json-metadata` output, in slot order.
pub(crate) fn parse_salts(json: &str) -> Option<Vec<(String, String)>> {
    let document: serde_json::Value = serde_json::from_str(json).ok()?;
    let mut slots: Vec<(String, String)> = document
        .get("keyslots")?
        .as_object()?
        .iter()
        .map(|(slot, entry)| {
            let salt = entry.pointer("/kdf/salt").and_then(|s| s.as_str()).unwrap_or_default();
            (slot.clone(), salt.to_string())
        })
        .collect();
    slots.sort_by_key(|(slot, _)| (slot.parse::<u64>().unwrap_or(u64::MAX), slot.clone()));
    Some(slots)
}

pub struct CryptsetupStatus {
    programs: Vec<PathBuf>,
}

impl Default for CryptsetupStatus {
    fn default() -> Self {
        CryptsetupStatus { programs: default_programs() }
    }
}

impl CryptsetupStatus {
    /// The table running the first of `programs` instead of the system's cryptsetup (tests).
    pub fn with_programs(programs: &[PathBuf]) -> Self {
        CryptsetupStatus { programs: programs.to_vec() }
    }
}

impl Table for CryptsetupStatus {
    fn name(&self) -> &'static str {
        "cryptsetup_status"
    }
    fn description(&self) -> &'static str {
        "Get info about the encrypted drive on the host."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("name").required(),
            Column::text("key"),
            Column::text("value"),
            Column::text("fullkey"),
            Column::text("parent"),
            // fleetd's extension receives every constraint; this one must reach the generator to filter.
            Column::text("query").index(),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut names: Vec<String> =
            constraints.texts("name").into_iter().filter(|n| n.chars().all(|c| NAME_CHARACTERS.contains(c))).collect();
        names.sort();
        names.dedup();
        if names.is_empty() {
            return Err(TableError::Message(
                "The cryptsetup_status table requires that you specify a constraint for name".into(),
            ));
        }
        let mut queries = constraints.texts("query");
        if queries.is_empty() {
            queries.push("*".into());
        }
        let mut rows = Vec::new();
        for name in &names {
            let Some(output) = run(&self.programs, &["--readonly", "status", name]) else { continue };
            let Some(status) = parse_status(&output) else { continue };
            let document = Node::Map(status.into_iter().map(|(k, v)| (k, Node::Leaf(v))).collect());
            for query in &queries {
                let terms: Vec<String> =
                    if query.is_empty() { Vec::new() } else { query.split('/').map(str::to_string).collect() };
                for leaf in flatten(&document, &terms) {
                    let (parent, key) = match leaf.keys.split_last() {
                        Some((key, parent)) => (parent.join("/"), key.clone()),
                        None => (String::new(), String::new()),
                    };
                    rows.push(Row::from([
                        ("name", Value::text(name.clone())),
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

pub struct CryptsetupLuksSalt {
    programs: Vec<PathBuf>,
}

impl Default for CryptsetupLuksSalt {
    fn default() -> Self {
        CryptsetupLuksSalt { programs: default_programs() }
    }
}

impl CryptsetupLuksSalt {
    /// The table running the first of `programs` instead of the system's cryptsetup (tests).
    pub fn with_programs(programs: &[PathBuf]) -> Self {
        CryptsetupLuksSalt { programs: programs.to_vec() }
    }
}

impl Table for CryptsetupLuksSalt {
    fn name(&self) -> &'static str {
        "cryptsetup_luks_salt"
    }
    fn description(&self) -> &'static str {
        "Given an LUKS encrypted device path, returns all the LUKS2 key slots and their respective salts."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[Column::text("device").required(), Column::text("key_slot"), Column::text("salt")];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut devices = constraints.texts("device");
        if devices.is_empty() {
            return Err(TableError::Message(
                "the cryptsetup_luks_salt table requires the following columns in the where clause: device".into(),
            ));
        }
        devices.sort();
        devices.dedup();
        let mut rows = Vec::new();
        for device in devices.iter().filter(|d| !d.is_empty() && !d.starts_with('-')) {
            let Some(json) = run(&self.programs, &["luksDump", "--dump-json-metadata", device]) else { continue };
            for (slot, salt) in parse_salts(&json).unwrap_or_default() {
                rows.push(Row::from([
                    ("device", Value::text(device.clone())),
                    ("key_slot", Value::text(slot)),
                    ("salt", Value::text(salt)),
                ]));
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn status_parses_like_fleetd() {
        let luks2 = "/dev/mapper/dm-crypto-luks2 is active and is in use.\n  type:    LUKS2\n  cipher:  aes-xts-plain64\n  \
                     keysize: 512 bits\n  key location: keyring\n  device:  /dev/sdc2\n  sector size:  512\n  offset:  \
                     32768 sectors\n  size:    8355840 sectors\n  mode:    read/write\n";
        let cases: &[(&str, Option<BTreeMap<String, String>>)] = &[
            (
                luks2,
                Some(map(&[
                    ("display_name", "/dev/mapper/dm-crypto-luks2"),
                    ("status", "active"),
                    ("mounted", "true"),
                    ("type", "LUKS2"),
                    ("cipher", "aes-xts-plain64"),
                    ("keysize", "512 bits"),
                    ("key_location", "keyring"),
                    ("device", "/dev/sdc2"),
                    ("sector_size", "512"),
                    ("offset", "32768 sectors"),
                    ("size", "8355840 sectors"),
                    ("mode", "read/write"),
                ])),
            ),
            (
                "/dev/mapper/plain is active.\n  type:    PLAIN\n\n  keysize: 256 bits\n",
                Some(map(&[
                    ("display_name", "/dev/mapper/plain"),
                    ("status", "active"),
                    ("mounted", "false"),
                    ("type", "PLAIN"),
                    ("keysize", "256 bits"),
                ])),
            ),
            (
                "/dev/mapper/gone is inactive.\n",
                Some(map(&[("display_name", "/dev/mapper/gone"), ("status", "inactive"), ("mounted", "false")])),
            ),
            (
                "Device nosuch not found\n",
                Some(map(&[("short_name", "nosuch"), ("status", "not_found"), ("mounted", "false")])),
            ),
            // fleetd's parse errors.
            ("", None),
            ("\n\n\n\n", None),
            ("type:    LUKS2", None),
            ("Hello world", None),
        ];
        for (input, want) in cases {
            assert_eq!(&parse_status(input), want, "{input:?}");
        }
    }

    #[test]
    fn salts_come_from_each_keyslots_kdf() {
        let json = r#"{"keyslots":{"10":{"type":"luks2","kdf":{"type":"argon2id","salt":"c2FsdDEw"}},
            "0":{"type":"luks2","kdf":{"type":"pbkdf2","salt":"c2FsdDA="}},"2":{"type":"luks2"}},"tokens":{}}"#;
        let pairs = |v: &[(&str, &str)]| v.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
        assert_eq!(parse_salts(json), Some(pairs(&[("0", "c2FsdDA="), ("2", ""), ("10", "c2FsdDEw")])));
        assert_eq!(parse_salts(r#"{"keyslots":{}}"#), Some(vec![]));
        assert_eq!(parse_salts("LUKS header information\nVersion: 1\n"), None);
        assert_eq!(parse_salts(r#"{"tokens":{}}"#), None);
    }
}
