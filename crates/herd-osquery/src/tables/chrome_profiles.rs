//! google_chrome_profiles: Fleet's agent table (macadmins' extension) — the profiles Google Chrome lists in each
//! user's `~/.config/google-chrome/Local State` (`profile.info_cache`), users from /etc/passwd.
//!
//! One row per profile: `name` its name, `email` the signed-in Google account (`user_name`; `""` when none is
//! signed in, as Chrome writes it), `ephemeral` 1 when `is_ephemeral` is true, else 0, `username` the user
//! whose home it is. A missing, unreadable or malformed Local State gives no rows; files over 16 MiB are not
//! read. Other Chromium browsers are not read (the table is Chrome's, as in fleetd).

use super::accounts::accounts;
use super::user_files::read_text;
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use serde_json::Value as J;
use std::path::PathBuf;

const LOCAL_STATE: &str = ".config/google-chrome/Local State";

/// The table over the users' homes, or (tests) over given (username, home) pairs.
#[derive(Default)]
pub struct GoogleChromeProfiles {
    homes: Option<Vec<(String, PathBuf)>>,
}

impl GoogleChromeProfiles {
    pub fn with_homes(homes: Vec<(String, PathBuf)>) -> GoogleChromeProfiles {
        GoogleChromeProfiles { homes: Some(homes) }
    }
}

/// The rows of one Local State file.
pub(crate) fn profile_rows(text: &str, username: &str) -> Vec<Row> {
    let Ok(state) = serde_json::from_str::<J>(text) else { return Vec::new() };
    let Some(cache) = state.pointer("/profile/info_cache").and_then(J::as_object) else { return Vec::new() };
    cache
        .values()
        .filter(|profile| profile.is_object())
        .map(|profile| {
            let text_of = |key: &str| profile.get(key).and_then(J::as_str).unwrap_or_default().to_string();
            let ephemeral = profile.get("is_ephemeral").and_then(J::as_bool).unwrap_or(false);
            Row::from([
                ("email", Value::text(text_of("user_name"))),
                ("ephemeral", Value::Int(ephemeral as i64)),
                ("name", Value::text(text_of("name"))),
                ("username", Value::text(username)),
            ])
        })
        .collect()
}

impl Table for GoogleChromeProfiles {
    fn name(&self) -> &'static str {
        "google_chrome_profiles"
    }
    fn description(&self) -> &'static str {
        "Profiles configured in Google Chrome."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] =
            &[Column::text("email"), Column::boolean("ephemeral"), Column::text("name"), Column::text("username")];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let homes = match &self.homes {
            Some(homes) => homes.clone(),
            None => accounts().into_iter().map(|(name, _, home)| (name, PathBuf::from(home))).collect(),
        };
        let mut rows = Vec::new();
        for (username, home) in homes {
            let Some(text) = read_text(&home.join(LOCAL_STATE)) else { continue };
            rows.extend(profile_rows(&text, &username));
        }
        Ok(rows)
    }
}
