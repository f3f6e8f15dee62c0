//! vscode_extensions: the extensions of VS Code and its relatives, from each user's `extensions.json` (the
//! list the editor keeps of what it installed), as osquery reads it. Homes come from /etc/passwd (a `uid`
//! constraint narrows them); editions and their folders: `.vscode` (vscode), `.vscode-insiders`
//! (vscode_insiders), `.vscode-oss` (vscodium), `.vscodium-insiders` (vscodium_insiders), `.cursor` (cursor),
//! `.windsurf` (windsurf), `.trae` (trae), each `FOLDER/extensions/extensions.json`.
//!
//! One row per entry: `name` identifier.id, `uuid` identifier.uuid, `version`, `path` location.path (else
//! location.fsPath), `publisher` metadata.publisherDisplayName, `publisher_id` metadata.publisherId,
//! `installed_at` metadata.installedTimestamp (milliseconds, as the editor writes it), `prerelease` 1 when
//! metadata.isPreReleaseVersion (or preRelease) is true, else 0; `uid` the home's owner, `vscode_edition` the
//! edition. Keys an entry lacks are NULL. A missing, unreadable or malformed file gives no rows; files over
//! 16 MiB are not read.

use super::user_files::{homes, read_text};
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use serde_json::Value as J;
use std::path::PathBuf;

const EDITIONS: &[(&str, &str)] = &[
    ("vscode", ".vscode"),
    ("vscode_insiders", ".vscode-insiders"),
    ("vscodium", ".vscode-oss"),
    ("vscodium_insiders", ".vscodium-insiders"),
    ("cursor", ".cursor"),
    ("windsurf", ".windsurf"),
    ("trae", ".trae"),
];

/// The table over the users' homes, or (tests) over given (uid, home) pairs.
#[derive(Default)]
pub struct VscodeExtensions {
    homes: Option<Vec<(i64, PathBuf)>>,
}

impl VscodeExtensions {
    pub fn with_homes(homes: Vec<(i64, PathBuf)>) -> VscodeExtensions {
        VscodeExtensions { homes: Some(homes) }
    }
}

/// The rows of one extensions.json.
pub(crate) fn extension_rows(text: &str, uid: i64, edition: &str) -> Vec<Row> {
    let Ok(J::Array(entries)) = serde_json::from_str::<J>(text) else { return Vec::new() };
    let text_at = |entry: &J, pointer: &str| entry.pointer(pointer).and_then(J::as_str).map(str::to_string);
    entries
        .iter()
        .filter(|entry| entry.is_object())
        .map(|entry| {
            let prerelease = ["/metadata/isPreReleaseVersion", "/metadata/preRelease"]
                .iter()
                .any(|p| entry.pointer(p).and_then(J::as_bool).unwrap_or(false));
            Row::from([
                ("name", Value::opt_text(text_at(entry, "/identifier/id"))),
                ("uuid", Value::opt_text(text_at(entry, "/identifier/uuid"))),
                ("version", Value::opt_text(text_at(entry, "/version"))),
                (
                    "path",
                    Value::opt_text(text_at(entry, "/location/path").or_else(|| text_at(entry, "/location/fsPath"))),
                ),
                ("publisher", Value::opt_text(text_at(entry, "/metadata/publisherDisplayName"))),
                ("publisher_id", Value::opt_text(text_at(entry, "/metadata/publisherId"))),
                ("installed_at", Value::opt_int(entry.pointer("/metadata/installedTimestamp").and_then(J::as_i64))),
                ("prerelease", Value::Int(prerelease as i64)),
                ("uid", Value::Int(uid)),
                ("vscode_edition", Value::text(edition)),
            ])
        })
        .collect()
}

impl Table for VscodeExtensions {
    fn name(&self) -> &'static str {
        "vscode_extensions"
    }
    fn description(&self) -> &'static str {
        "Lists all vscode extensions."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("name"),
            Column::text("uuid"),
            Column::text("version"),
            Column::text("path"),
            Column::text("publisher"),
            Column::text("publisher_id"),
            Column::bigint("installed_at"),
            Column::int("prerelease"),
            Column::bigint("uid").index(),
            Column::text("vscode_edition"),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        for (uid, home) in homes(&self.homes, constraints) {
            for (edition, folder) in EDITIONS {
                let Some(text) = read_text(&home.join(folder).join("extensions/extensions.json")) else { continue };
                rows.extend(extension_rows(&text, uid, edition));
            }
        }
        Ok(rows)
    }
}
