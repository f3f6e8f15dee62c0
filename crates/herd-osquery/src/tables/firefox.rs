//! firefox_addons: the add-ons of each user's Firefox profiles, from the `extensions.json` Firefox keeps in a
//! profile, as osquery reads it. Homes come from /etc/passwd (a `uid` constraint narrows them); profiles are
//! the folders of `~/.mozilla/firefox` (osquery's) and `~/snap/firefox/common/.mozilla/firefox` (Ubuntu's snap
//! Firefox, which osquery does not look at).
//!
//! One row per entry of `addons`: `identifier` id, `name`, `creator`, `description` from defaultLocale,
//! `type`, `version`, `source_url` sourceURI, `location`, `path` as written (NULL when absent); `visible`,
//! `active` 1 when true, else 0; `disabled` 1 when softDisabled, appDisabled or userDisabled is true (osquery's
//! three ways), else 0; `autoupdate` the applyBackgroundUpdates number as Firefox writes it (0 off, 1 the
//! default, 2 on; NULL when absent); `uid` the home's owner. A missing, unreadable or malformed file gives no
//! rows; files over 16 MiB are not read.

use super::user_files::{homes, read_text};
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use serde_json::Value as J;
use std::path::PathBuf;

const PROFILE_ROOTS: &[&str] = &[".mozilla/firefox", "snap/firefox/common/.mozilla/firefox"];

/// The table over the users' homes, or (tests) over given (uid, home) pairs.
#[derive(Default)]
pub struct FirefoxAddons {
    homes: Option<Vec<(i64, PathBuf)>>,
}

impl FirefoxAddons {
    pub fn with_homes(homes: Vec<(i64, PathBuf)>) -> FirefoxAddons {
        FirefoxAddons { homes: Some(homes) }
    }
}

/// The rows of one profile's extensions.json.
pub(crate) fn addon_rows(text: &str, uid: i64) -> Vec<Row> {
    let Ok(document) = serde_json::from_str::<J>(text) else { return Vec::new() };
    let Some(addons) = document.get("addons").and_then(J::as_array) else { return Vec::new() };
    let text_at = |addon: &J, pointer: &str| addon.pointer(pointer).and_then(J::as_str).map(str::to_string);
    let flag = |addon: &J, key: &str| addon.get(key).and_then(J::as_bool).unwrap_or(false);
    addons
        .iter()
        .filter(|addon| addon.is_object())
        .map(|addon| {
            let disabled = ["softDisabled", "appDisabled", "userDisabled"].iter().any(|k| flag(addon, k));
            Row::from([
                ("uid", Value::Int(uid)),
                ("name", Value::opt_text(text_at(addon, "/defaultLocale/name"))),
                ("identifier", Value::opt_text(text_at(addon, "/id"))),
                ("creator", Value::opt_text(text_at(addon, "/defaultLocale/creator"))),
                ("type", Value::opt_text(text_at(addon, "/type"))),
                ("version", Value::opt_text(text_at(addon, "/version"))),
                ("description", Value::opt_text(text_at(addon, "/defaultLocale/description"))),
                ("source_url", Value::opt_text(text_at(addon, "/sourceURI"))),
                ("visible", Value::Int(flag(addon, "visible") as i64)),
                ("active", Value::Int(flag(addon, "active") as i64)),
                ("disabled", Value::Int(disabled as i64)),
                ("autoupdate", Value::opt_int(addon.get("applyBackgroundUpdates").and_then(J::as_i64))),
                ("location", Value::opt_text(text_at(addon, "/location"))),
                ("path", Value::opt_text(text_at(addon, "/path"))),
            ])
        })
        .collect()
}

impl Table for FirefoxAddons {
    fn name(&self) -> &'static str {
        "firefox_addons"
    }
    fn description(&self) -> &'static str {
        "Firefox browser extensions, webapps, and addons."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::bigint("uid").index(),
            Column::text("name"),
            Column::text("identifier").index(),
            Column::text("creator"),
            Column::text("type"),
            Column::text("version"),
            Column::text("description"),
            Column::text("source_url"),
            Column::int("visible"),
            Column::int("active"),
            Column::int("disabled"),
            Column::int("autoupdate"),
            Column::text("location"),
            Column::text("path"),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut rows = Vec::new();
        for (uid, home) in homes(&self.homes, constraints) {
            for root in PROFILE_ROOTS {
                let Ok(entries) = std::fs::read_dir(home.join(root)) else { continue };
                let mut profiles: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
                profiles.sort();
                for profile in profiles {
                    let Some(text) = read_text(&profile.join("extensions.json")) else { continue };
                    rows.extend(addon_rows(&text, uid));
                }
            }
        }
        Ok(rows)
    }
}
