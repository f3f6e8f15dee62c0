//! portage_packages: Gentoo's installed packages, from Portage's database (/var/db/pkg/CATEGORY/PF/, one folder
//! per installed package) and its world file (/var/lib/portage/world), as osquery reads them.
//!
//! One row per package folder: `package` CATEGORY/PN and `version` PV (the folder name split where Portage's
//! version syntax begins: `-1.2.3a_rc1-r2`; a name that does not split is skipped); `slot` SLOT, `build_time`
//! BUILD_TIME, `repository` repository, `eapi` EAPI, `size` SIZE, from the files of those names in the folder
//! (NULL when a file is missing or, for numbers, not a number); `world` 1 when CATEGORY/PN is a line of the
//! world file, else 0. No rows on systems without Portage's database.

use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use regex::Regex;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

const PKG_DB: &str = "/var/db/pkg";
const WORLD: &str = "/var/lib/portage/world";

/// (PN, PV) of a package folder name (PF), by Portage's version syntax.
pub(crate) fn split_name(pf: &str) -> Option<(String, String)> {
    static VERSION: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"^(.+?)-(\d+(?:\.\d+)*[a-z]?(?:_(?:alpha|beta|pre|rc|p)\d*)*(?:-r\d+)?)$").expect("regex")
    });
    let captures = VERSION.captures(pf)?;
    Some((captures[1].to_string(), captures[2].to_string()))
}

/// The table over Portage's database, or (tests) another root holding var/db/pkg and var/lib/portage/world.
pub struct PortagePackages {
    db: PathBuf,
    world: PathBuf,
}

impl Default for PortagePackages {
    fn default() -> PortagePackages {
        PortagePackages { db: PathBuf::from(PKG_DB), world: PathBuf::from(WORLD) }
    }
}

impl PortagePackages {
    pub fn with_root(root: &Path) -> PortagePackages {
        PortagePackages { db: root.join("var/db/pkg"), world: root.join("var/lib/portage/world") }
    }
}

fn sorted_dirs(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    dirs
}

impl Table for PortagePackages {
    fn name(&self) -> &'static str {
        "portage_packages"
    }
    fn description(&self) -> &'static str {
        "List of currently installed packages."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("package"),
            Column::text("version"),
            Column::text("slot"),
            Column::bigint("build_time"),
            Column::text("repository"),
            Column::bigint("eapi"),
            Column::bigint("size"),
            Column::int("world"),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        let world: BTreeSet<String> = std::fs::read_to_string(&self.world)
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty())
            .collect();
        let mut rows = Vec::new();
        for category_dir in sorted_dirs(&self.db) {
            let category = category_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            for package_dir in sorted_dirs(&category_dir) {
                let pf = package_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let Some((name, version)) = split_name(&pf) else { continue };
                let field = |file: &str| super::procfs::read_trimmed(package_dir.join(file));
                let number = |file: &str| field(file).and_then(|v| v.parse::<i64>().ok());
                let package = format!("{category}/{name}");
                rows.push(Row::from([
                    ("world", Value::Int(world.contains(&package) as i64)),
                    ("package", Value::text(package)),
                    ("version", Value::text(version)),
                    ("slot", Value::opt_text(field("SLOT"))),
                    ("build_time", Value::opt_int(number("BUILD_TIME"))),
                    ("repository", Value::opt_text(field("repository"))),
                    ("eapi", Value::opt_int(number("EAPI"))),
                    ("size", Value::opt_int(number("SIZE"))),
                ]));
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn package_folders_split_where_the_version_begins() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("gcc-13.2.1_p20240113-r1", Some(("gcc", "13.2.1_p20240113-r1"))),
            ("openssl-3.0.13", Some(("openssl", "3.0.13"))),
            ("python-3.12.1_rc2", Some(("python", "3.12.1_rc2"))),
            ("font-util-1.4.1", Some(("font-util", "1.4.1"))),
            ("libX11-1.8.7a", Some(("libX11", "1.8.7a"))),
            ("qt-creator-12.0.1-r3", Some(("qt-creator", "12.0.1-r3"))),
            ("no-version", None),
        ];
        for (pf, want) in cases {
            let want = want.map(|(n, v)| (n.to_string(), v.to_string()));
            assert_eq!(super::split_name(pf), want, "{pf}");
        }
    }
}
