//! Kernel security state read from sysfs and efivarfs: selinux_settings, apparmor_profiles, secureboot. Each
//! gives no rows when its source is absent (SELinux or AppArmor not enabled, securityfs not mounted, a BIOS
//! boot), as osquery does.
//!
//! selinux_settings (selinuxfs, /sys/fs/selinux), as osquery reads it:
//! - scope `""`: the root keys checkreqprot, deny_unknown, enforce, mls, policyvers, reject_unknown that exist,
//!   `value` the file's contents (trimmed);
//! - scopes `booleans`, `policy_capabilities`, `initial_contexts`: one row per file of that directory (`key`
//!   the file name); a boolean's value is `on` for `1 1` and `off` for `0 0`, and a boolean whose pending value
//!   differs from its current one gives no row (osquery skips it); the others' values are the file's contents;
//! - scope `class`: one row per file below class/ other than `index`: `key` the path between class/ and the
//!   file (`file/perms`), `value` the file name (`read`).
//!
//! apparmor_profiles (securityfs, /sys/kernel/security/apparmor/policy/profiles): one row per profile
//! directory, children (`profiles/` inside a profile) included: `name`, `mode`, `attach` from the files of
//! those names (trimmed); `sha1`, `sha256` from those files, NULL when the kernel does not expose that hash;
//! `path` the name prefixed by the parent profile's name and `//` for a child (aa-status's identifier). A
//! profile without name, mode or attach gives no row.
//!
//! secureboot (efivarfs, /sys/firmware/efi/efivars): one row when the EFI global variables SecureBoot and
//! SetupMode can be read: `secure_boot` and `setup_mode` their value byte (after the 4 attribute bytes); a
//! variable that is missing or unreadable is NULL. No row on a machine booted without EFI (no
//! /sys/firmware/efi). The macOS columns (`secure_mode`, `description`, `kernel_extensions`,
//! `mdm_operations`) are NULL.

use super::procfs::read_trimmed;
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::path::{Path, PathBuf};

const SELINUXFS: &str = "/sys/fs/selinux";
const SELINUX_ROOT_KEYS: &[&str] = &["checkreqprot", "deny_unknown", "enforce", "mls", "policyvers", "reject_unknown"];
const SELINUX_SCOPES: &[&str] = &["booleans", "policy_capabilities", "initial_contexts"];
const APPARMOR_PROFILES: &str = "/sys/kernel/security/apparmor/policy/profiles";
const EFI: &str = "/sys/firmware/efi";
const EFI_GLOBAL: &str = "8be4df61-93ca-11d2-aa0d-00e098032b8c";

fn row3(scope: &str, key: &str, value: &str) -> Row {
    Row::from([("scope", Value::text(scope)), ("key", Value::text(key)), ("value", Value::text(value))])
}

/// The files (not directories) directly in `dir`, sorted.
fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| !p.is_dir()).collect();
    files.sort();
    files
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// selinux_settings' rows for a selinuxfs mounted at `root`.
pub(crate) fn selinux_rows(root: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    for key in SELINUX_ROOT_KEYS {
        let path = root.join(key);
        if path.exists() {
            rows.push(row3("", key, std::fs::read_to_string(&path).unwrap_or_default().trim()));
        }
    }
    for scope in SELINUX_SCOPES {
        for path in files_in(&root.join(scope)) {
            let Ok(raw) = std::fs::read_to_string(&path) else { continue };
            let value = match (*scope, raw.trim()) {
                ("booleans", "1 1") => "on",
                ("booleans", "0 0") => "off",
                ("booleans", _) => continue,
                (_, value) => value,
            };
            rows.push(row3(scope, &file_name(&path), value));
        }
    }
    let mut classes = Vec::new();
    walk_files(&root.join("class"), &mut classes);
    classes.sort();
    for path in classes {
        let Ok(relative) = path.strip_prefix(root.join("class")) else { continue };
        let value = file_name(&path);
        let key = relative.parent().map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
        if value != "index" && !key.is_empty() {
            rows.push(row3("class", &key, &value));
        }
    }
    rows
}

fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        match entry.file_type() {
            Ok(kind) if kind.is_dir() => walk_files(&entry.path(), out),
            Ok(_) => out.push(entry.path()),
            Err(_) => {}
        }
    }
}

/// The table over a selinuxfs mount point (/sys/fs/selinux; tests give another).
pub struct SelinuxSettings {
    root: PathBuf,
}

impl Default for SelinuxSettings {
    fn default() -> SelinuxSettings {
        SelinuxSettings { root: PathBuf::from(SELINUXFS) }
    }
}

impl SelinuxSettings {
    pub fn with_root(root: impl Into<PathBuf>) -> SelinuxSettings {
        SelinuxSettings { root: root.into() }
    }
}

impl Table for SelinuxSettings {
    fn name(&self) -> &'static str {
        "selinux_settings"
    }
    fn description(&self) -> &'static str {
        "Track active SELinux settings."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[Column::text("scope"), Column::text("key"), Column::text("value")];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        Ok(selinux_rows(&self.root))
    }
}

/// apparmor_profiles' rows for a policy/profiles directory.
pub(crate) fn apparmor_rows(profiles: &Path) -> Vec<Row> {
    let mut rows = Vec::new();
    let mut queue: Vec<(String, PathBuf)> = Vec::new();
    let push_children = |queue: &mut Vec<(String, PathBuf)>, parent: &str, dir: &Path| {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
        dirs.sort();
        queue.extend(dirs.into_iter().rev().map(|d| (parent.to_string(), d)));
    };
    push_children(&mut queue, "", profiles);
    while let Some((parent, dir)) = queue.pop() {
        let (Some(name), Some(mode), Some(attach)) =
            (read_trimmed(dir.join("name")), read_trimmed(dir.join("mode")), read_trimmed(dir.join("attach")))
        else {
            continue;
        };
        let path = if parent.is_empty() { name.clone() } else { format!("{parent}//{name}") };
        rows.push(Row::from([
            ("path", Value::text(path)),
            ("name", Value::text(name.clone())),
            ("attach", Value::text(attach)),
            ("mode", Value::text(mode)),
            ("sha1", Value::opt_text(read_trimmed(dir.join("sha1")))),
            ("sha256", Value::opt_text(read_trimmed(dir.join("sha256")))),
        ]));
        push_children(&mut queue, &name, &dir.join("profiles"));
    }
    rows
}

/// The table over AppArmor's loaded profiles (tests give another directory).
pub struct ApparmorProfiles {
    profiles: PathBuf,
}

impl Default for ApparmorProfiles {
    fn default() -> ApparmorProfiles {
        ApparmorProfiles { profiles: PathBuf::from(APPARMOR_PROFILES) }
    }
}

impl ApparmorProfiles {
    pub fn with_profiles(profiles: impl Into<PathBuf>) -> ApparmorProfiles {
        ApparmorProfiles { profiles: profiles.into() }
    }
}

impl Table for ApparmorProfiles {
    fn name(&self) -> &'static str {
        "apparmor_profiles"
    }
    fn description(&self) -> &'static str {
        "Track active AppArmor profiles."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("path").index(),
            Column::text("name"),
            Column::text("attach"),
            Column::text("mode"),
            Column::text("sha1"),
            Column::text("sha256"),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        Ok(apparmor_rows(&self.profiles))
    }
}

/// An EFI variable's first data byte (efivarfs files start with 4 attribute bytes).
fn efi_byte(efivars: &Path, name: &str) -> Option<i64> {
    let data = std::fs::read(efivars.join(format!("{name}-{EFI_GLOBAL}"))).ok()?;
    data.get(4).map(|b| *b as i64)
}

/// secureboot's row for an EFI directory (/sys/firmware/efi), none when it does not exist.
pub(crate) fn secureboot_rows(efi: &Path) -> Vec<Row> {
    if !efi.is_dir() {
        return Vec::new();
    }
    let efivars = efi.join("efivars");
    vec![Row::from([
        ("secure_boot", Value::opt_int(efi_byte(&efivars, "SecureBoot"))),
        ("setup_mode", Value::opt_int(efi_byte(&efivars, "SetupMode"))),
    ])]
}

/// The table over /sys/firmware/efi (tests give another directory).
pub struct Secureboot {
    efi: PathBuf,
}

impl Default for Secureboot {
    fn default() -> Secureboot {
        Secureboot { efi: PathBuf::from(EFI) }
    }
}

impl Secureboot {
    pub fn with_efi(efi: impl Into<PathBuf>) -> Secureboot {
        Secureboot { efi: efi.into() }
    }
}

impl Table for Secureboot {
    fn name(&self) -> &'static str {
        "secureboot"
    }
    fn description(&self) -> &'static str {
        "Secure Boot UEFI Settings."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::int("secure_boot"),
            Column::int("secure_mode").hidden(),
            Column::text("description").hidden(),
            Column::int("kernel_extensions").hidden(),
            Column::int("mdm_operations").hidden(),
            Column::int("setup_mode"),
        ];
        COLUMNS
    }
    fn generate(&self, _: &Constraints) -> Result<Vec<Row>, TableError> {
        Ok(secureboot_rows(&self.efi))
    }
}
