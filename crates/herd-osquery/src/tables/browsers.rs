//! chrome_extensions: the extensions of Chromium-based browsers' profiles, read as osquery reads them.
//!
//! Where: each user's home (from /etc/passwd; `uid` narrows it) joined with osquery's Linux browser folders —
//! `.config/google-chrome` (chrome), `.config/google-chrome-beta` (chrome_beta), `.config/google-chrome-unstable`
//! (chrome_dev), `.config/BraveSoftware/Brave-Browser` (brave), `.config/chromium` and
//! `snap/chromium/common/chromium` (chromium), `.config/yandex-browser-beta` (yandex), `.config/opera` (opera),
//! `.config/vivaldi` (vivaldi), `.config/island` (island). The folder itself, or each folder in it, is a profile
//! when it holds `Preferences` or `Secure Preferences`; as in osquery, a profile is read only when both files
//! can be read and parsed, and has a `profile.name` (Opera's need none).
//!
//! Which extensions: every `Extensions/ID/VERSION` folder of the profile with a readable `manifest.json`
//! (`referenced` 0), and those the preferences' `extensions.settings` (or `opsettings`) point at by `path`,
//! relative paths under `Extensions` (`referenced` 1, with `referenced_identifier`, `state`, `from_webstore`,
//! `install_time` from that entry). A manifest that is not JSON leaves its extension out.
//!
//! Columns as osquery fills them: manifest properties (`name`, `version`, `author`, `update_url`,
//! `default_locale`, `current_locale`, `description`; `""` when absent or not text), `__MSG_name__` values
//! localized from `_locales/LOCALE/messages.json` (LOCALE: default_locale, else current_locale, else `en`;
//! names matched without case); `permissions` and `optional_permissions` the strings joined with `, `, their
//! `_json` (hidden) the list as JSON (`{}` when absent); `persistent` 1 when `background.persistent` is true;
//! `identifier` computed from the manifest's `key` (SHA-256 of the decoded key, first 32 hex digits mapped to
//! `a`-`p`; `""` without a key); `manifest_hash` the SHA-256 of manifest.json; `install_timestamp` the Webkit
//! `install_time` as Unix seconds (0 when there is none). `manifest_json` (hidden): the manifest rendered
//! compactly with every scalar as a string, as osquery's property-tree writer does (key order may differ).
//! NULL: `key` (hidden; osquery does not fill it).

use super::accounts::accounts;
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use md5::Digest as _;
use serde_json::Value as J;
use std::path::{Path, PathBuf};

const BROWSERS: &[(&str, &str)] = &[
    ("chrome", ".config/google-chrome"),
    ("chrome_beta", ".config/google-chrome-beta"),
    ("chrome_dev", ".config/google-chrome-unstable"),
    ("brave", ".config/BraveSoftware/Brave-Browser"),
    ("chromium", ".config/chromium"),
    ("chromium", "snap/chromium/common/chromium"),
    ("yandex", ".config/yandex-browser-beta"),
    ("opera", ".config/opera"),
    ("vivaldi", ".config/vivaldi"),
    ("island", ".config/island"),
];
/// Largest manifest, preferences or messages file read.
const MAX_FILE: u64 = 16 << 20;

/// The table over the users' homes, or (tests) over given (uid, home) pairs.
#[derive(Default)]
pub struct ChromeExtensions {
    homes: Option<Vec<(i64, PathBuf)>>,
}

impl ChromeExtensions {
    pub fn with_homes(homes: Vec<(i64, PathBuf)>) -> ChromeExtensions {
        ChromeExtensions { homes: Some(homes) }
    }
}

fn read_small(path: &Path) -> Option<String> {
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE {
        return None;
    }
    std::fs::read_to_string(path).ok()
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn is_profile(path: &Path) -> bool {
    ["Preferences", "Secure Preferences"].iter().any(|f| std::fs::File::open(path.join(f)).is_ok())
}

/// A scalar as boost's property tree holds it: text.
fn scalar_text(value: &J) -> Option<String> {
    match value {
        J::String(s) => Some(s.clone()),
        J::Bool(b) => Some(b.to_string()),
        J::Number(n) => Some(n.to_string()),
        J::Null => Some("null".into()),
        // A property tree node with children has empty data.
        J::Array(_) | J::Object(_) => Some(String::new()),
    }
}

/// boost::property_tree's compact JSON: scalars as strings.
fn ptree_json(value: &J) -> String {
    match value {
        J::Array(items) => format!("[{}]", items.iter().map(ptree_json).collect::<Vec<_>>().join(",")),
        J::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!("{}:{}", J::String(k.clone()), ptree_json(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        scalar => J::String(scalar_text(scalar).unwrap_or_default()).to_string(),
    }
}

/// A key of an object, matched without case (osquery reads with a case-insensitive tree).
fn get_ci<'a>(value: &'a J, key: &str) -> Option<&'a J> {
    value.as_object()?.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v)
}

fn settings(preferences: &J) -> Option<&serde_json::Map<String, J>> {
    let extensions = get_ci(preferences, "extensions")?;
    get_ci(extensions, "settings").or_else(|| get_ci(extensions, "opsettings"))?.as_object()
}

/// Where a settings entry's extension lives.
fn settings_path(profile: &Path, entry: &J) -> Option<PathBuf> {
    let path = get_ci(entry, "path")?.as_str()?;
    let path = PathBuf::from(path);
    let absolute = if path.is_absolute() { path } else { profile.join("Extensions").join(path) };
    Some(canonical(&absolute))
}

/// The extension identifier Chrome derives from a manifest's public key.
pub(crate) fn identifier_from_key(key: &str) -> Option<String> {
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD.decode(key.trim()).ok().filter(|d| !d.is_empty())?;
    let hash = hex::encode(sha2::Sha256::digest(&decoded));
    hash[..32].chars().map(|c| c.to_digit(16).map(|d| (b'a' + d as u8) as char)).collect()
}

struct Profile {
    browser: &'static str,
    uid: i64,
    path: PathBuf,
}

fn profiles(homes: &[(i64, PathBuf)]) -> Vec<Profile> {
    let mut found = Vec::new();
    for (uid, home) in homes {
        for (browser, suffix) in BROWSERS {
            let base = canonical(&home.join(suffix));
            if is_profile(&base) {
                found.push(Profile { browser, uid: *uid, path: base });
                continue;
            }
            let Ok(entries) = std::fs::read_dir(&base) else { continue };
            let mut dirs: Vec<PathBuf> =
                entries.flatten().filter(|e| e.path().is_dir()).map(|e| canonical(&e.path())).collect();
            dirs.sort();
            for dir in dirs.into_iter().filter(|d| is_profile(d)) {
                found.push(Profile { browser, uid: *uid, path: dir });
            }
        }
    }
    found
}

fn localize(value: &str, messages: Option<&J>) -> String {
    let Some(name) = value.strip_prefix("__MSG_").and_then(|v| v.strip_suffix("__")) else { return value.into() };
    messages
        .and_then(|m| get_ci(m, name))
        .and_then(|entry| get_ci(entry, "message"))
        .and_then(scalar_text)
        .unwrap_or_else(|| value.into())
}

fn extension_row(profile: &Profile, name: &str, path: &Path, manifest_text: &str) -> Option<Row> {
    let manifest: J = serde_json::from_str(manifest_text).ok()?;
    let text = |key: &str| get_ci(&manifest, key).and_then(scalar_text);
    let list = |key: &str| {
        get_ci(&manifest, key).map(|node| {
            let items: Vec<String> = match node {
                J::Array(items) => items.iter().filter_map(|i| i.as_str().map(str::to_string)).collect(),
                _ => Vec::new(),
            };
            (items.join(", "), ptree_json(node))
        })
    };
    let default_locale = text("default_locale");
    let current_locale = text("current_locale");
    let fields = ["name", "version", "author", "update_url", "description"];
    let needs_messages = fields.iter().any(|f| text(f).is_some_and(|v| v.starts_with("__MSG_")));
    let messages: Option<J> = needs_messages
        .then(|| {
            let locale = default_locale.clone().or_else(|| current_locale.clone()).unwrap_or_else(|| "en".into());
            read_small(&path.join("_locales").join(locale).join("messages.json"))
                .and_then(|t| serde_json::from_str(&t).ok())
        })
        .flatten();
    let localized = |key: &str| localize(&text(key).unwrap_or_default(), messages.as_ref());
    let persistent = get_ci(&manifest, "background")
        .and_then(|b| get_ci(b, "persistent"))
        .and_then(scalar_text)
        .is_some_and(|p| p.eq_ignore_ascii_case("true"));
    let (permissions, permissions_json) = list("permissions").unwrap_or_else(|| (String::new(), "{}".into()));
    let (optional, optional_json) = list("optional_permissions").unwrap_or_else(|| (String::new(), "{}".into()));
    let identifier = text("key").and_then(|k| identifier_from_key(&k)).unwrap_or_default();
    Some(Row::from([
        ("browser_type", Value::text(profile.browser)),
        ("uid", Value::Int(profile.uid)),
        ("profile", Value::text(name)),
        ("profile_path", Value::text(profile.path.display().to_string())),
        ("name", Value::text(localized("name"))),
        ("version", Value::text(localized("version"))),
        ("author", Value::text(localized("author"))),
        ("update_url", Value::text(localized("update_url"))),
        ("description", Value::text(localized("description"))),
        ("default_locale", Value::text(default_locale.unwrap_or_default())),
        ("current_locale", Value::text(current_locale.unwrap_or_default())),
        ("permissions", Value::text(permissions)),
        ("permissions_json", Value::text(permissions_json)),
        ("optional_permissions", Value::text(optional)),
        ("optional_permissions_json", Value::text(optional_json)),
        ("persistent", Value::Int(persistent as i64)),
        ("path", Value::text(path.display().to_string())),
        ("manifest_hash", Value::text(hex::encode(sha2::Sha256::digest(manifest_text.as_bytes())))),
        ("manifest_json", Value::text(ptree_json(&manifest))),
        ("identifier", Value::text(identifier)),
        ("referenced", Value::Int(0)),
        ("referenced_identifier", Value::text("")),
        ("state", Value::text("")),
        ("from_webstore", Value::text("")),
        ("install_time", Value::text("")),
        ("install_timestamp", Value::Int(0)),
    ]))
}

fn profile_rows(profile: &Profile, rows: &mut Vec<Row>) -> Option<()> {
    let preferences: J = serde_json::from_str(&read_small(&profile.path.join("Preferences"))?).ok()?;
    let secure: J = serde_json::from_str(&read_small(&profile.path.join("Secure Preferences"))?).ok()?;
    let profile_name = |prefs: &J| {
        get_ci(prefs, "profile").and_then(|p| get_ci(p, "name")).and_then(scalar_text).filter(|n| !n.is_empty())
    };
    let name = profile_name(&preferences).or_else(|| profile_name(&secure));
    if name.is_none() && profile.browser != "opera" {
        return None;
    }
    let name = name.unwrap_or_default();
    // Every extension folder in the profile, then those the preferences point at.
    let mut unreferenced: Vec<PathBuf> = Vec::new();
    if let Ok(ids) = std::fs::read_dir(profile.path.join("Extensions")) {
        for id in ids.flatten().filter(|e| e.path().is_dir()) {
            let Ok(versions) = std::fs::read_dir(id.path()) else { continue };
            unreferenced.extend(versions.flatten().filter(|v| v.path().is_dir()).map(|v| canonical(&v.path())));
        }
    }
    unreferenced.sort();
    let mut referenced: Vec<(PathBuf, String, &J)> = Vec::new();
    for prefs in [&preferences, &secure] {
        for (id, entry) in settings(prefs).into_iter().flatten() {
            if let Some(path) = settings_path(&profile.path, entry)
                && !referenced.iter().any(|(p, _, _)| *p == path)
            {
                referenced.push((path, id.clone(), entry));
            }
        }
    }
    unreferenced.retain(|p| !referenced.iter().any(|(r, _, _)| r == p));
    for path in &unreferenced {
        let Some(manifest) = read_small(&path.join("manifest.json")) else { continue };
        rows.extend(extension_row(profile, &name, path, &manifest));
    }
    for (path, id, entry) in referenced {
        let Some(manifest) = read_small(&path.join("manifest.json")) else { continue };
        let Some(mut row) = extension_row(profile, &name, &path, &manifest) else { continue };
        let setting = |key: &str| get_ci(entry, key).and_then(scalar_text).unwrap_or_default();
        let install_time = setting("install_time");
        let timestamp = install_time
            .parse::<i64>()
            .ok()
            .map(|micros| micros / 1_000_000 - 11_644_473_600)
            .filter(|t| *t >= 0)
            .unwrap_or(0);
        row.insert("referenced", Value::Int(1));
        row.insert("referenced_identifier", Value::text(id));
        row.insert("state", Value::text(setting("state")));
        row.insert("from_webstore", Value::text(setting("from_webstore")));
        row.insert("install_time", Value::text(install_time));
        row.insert("install_timestamp", Value::Int(timestamp));
        rows.push(row);
    }
    Some(())
}

impl Table for ChromeExtensions {
    fn name(&self) -> &'static str {
        "chrome_extensions"
    }
    fn description(&self) -> &'static str {
        "Chrome-based browser extensions."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("browser_type"),
            Column::bigint("uid").index(),
            Column::text("name"),
            Column::text("profile"),
            Column::text("profile_path"),
            Column::text("referenced_identifier"),
            Column::text("identifier"),
            Column::text("version"),
            Column::text("description"),
            Column::text("default_locale"),
            Column::text("current_locale"),
            Column::text("update_url"),
            Column::text("author"),
            Column::int("persistent"),
            Column::text("path"),
            Column::text("permissions"),
            Column::text("permissions_json").hidden(),
            Column::text("optional_permissions"),
            Column::text("optional_permissions_json").hidden(),
            Column::text("manifest_hash"),
            Column::bigint("referenced"),
            Column::text("from_webstore"),
            Column::text("state"),
            Column::text("install_time"),
            Column::bigint("install_timestamp"),
            Column::text("manifest_json").hidden(),
            Column::text("key").hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let uids = constraints.ints("uid");
        let homes: Vec<(i64, PathBuf)> = match &self.homes {
            Some(homes) => homes.clone(),
            None => accounts().into_iter().map(|(_, uid, home)| (uid, PathBuf::from(home))).collect(),
        };
        let homes: Vec<(i64, PathBuf)> =
            homes.into_iter().filter(|(uid, _)| uids.is_empty() || uids.contains(uid)).collect();
        let mut rows = Vec::new();
        for profile in profiles(&homes) {
            profile_rows(&profile, &mut rows);
        }
        Ok(rows)
    }
}
