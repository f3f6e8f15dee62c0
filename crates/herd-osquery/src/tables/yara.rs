//! yara: osquery's one-off YARA scan of files (osquery's `genYara`), through boreal, a pure-Rust YARA engine
//! (no libyara; rules are compiled and files scanned in this process).
//!
//! Which files: `path` (required) by `=` — scanned when it is a regular file — or LIKE, `%` a glob within one
//! directory level and a trailing `%%` everything below, expanding to the regular files it names (osquery's
//! `GLOB_FILES`; devices, FIFOs and directories are never opened).
//!
//! Which rules, as osquery takes them from the query (one row per file and signature, in that order):
//! - `sigfile`: a rule file (source text; relative paths are under `/etc/osquery/yara/`, as osquery's
//!   `kYARAHome`), compiled for this query. osquery also loads rules precompiled by yarac, and caches a
//!   compiled file until it restarts; herd compiles the file's current text on each query.
//! - `sigrule`: rule text in the query itself. osquery (5.x) needs no flag for it any more.
//! - `sig_group`: a group of rule files from osquery's configuration (`yara.signatures`). herd-agent keeps no
//!   osquery yara configuration, so no group is known and a `sig_group` scans nothing (no rows), as osquery does
//!   for a group its configuration lacks.
//! - `sigurl`: osquery downloads rules from URLs its configuration allows; herd-agent has no such list and
//!   fetches nothing, so a `sigurl` gives no rows.
//!
//! With none of them there are no rows (osquery: "Query must specify sig_group, sigfile, or sigrule"). A rule
//! file or rule text that does not compile (syntax error, unknown module, missing include) is skipped, giving no
//! rows for it, as osquery logs "YARA compile error" and skips it; other signatures of the query still scan.
//!
//! Columns, from the scan of one file with one signature (osquery's `YARACallback`):
//! - `matches`: the identifiers of the rules that matched, in the rules' order, joined by `,`; `count`: how many.
//!   Private rules are never reported (YARA calls back only for public rules).
//! - `tags`: the tags of the matched rules, joined by `,`.
//! - `strings`: `$identifier:offset` (offset in lower-case hex, no `0x`) for the strings of the matched rules
//!   that were found, joined by `,`; private strings are left out (YARA keeps their matches apart). osquery
//!   scans in YARA's fast mode, which reports one match for a string whose count and offsets the rule does not
//!   use; herd reports the first match of every string (osquery also lists further matches of strings a rule
//!   counts, `#a`, or indexes, `@a[i]`). For `sigrule` the column is empty: osquery makes rule text's strings
//!   private (its `enable_yara_string` flag is off by default) so a query cannot read file contents back through
//!   it — osquery 5 marks only each rule's first string so; herd hides them all.
//! - `sigfile`, `sigrule`, `sig_group`: the signature the row used, the other two `""` (osquery's defaults).
//!   `sigurl` is NULL (never used here).
//!
//! Bounds (osquery has none but the `yara_delay` sleep of 50 ms after each file, which herd leaves out): files
//! over 64 MiB are not scanned (no row), rule files and rule text over 4 MiB are not compiled, includes are read
//! only from regular files within that size, and every scan stops when the query's time is up
//! (`engine::time_left`): a file whose scan was cut short gives no row (a partial scan could miss a match), and
//! files left when the time is up are not scanned. boreal looks at the clock between candidate matches and
//! condition steps; a regex string without a literal to search for is one linear-time pass over the file,
//! bounded by the file size limit. Compiling cannot be interrupted; the size limit bounds it.
//!
//! Modules: boreal's time, math, string, hash, pe, elf, macho, dotnet and dex (libyara's, as osquery's build of
//! libyara 4 compiles them); `magic` and `cuckoo` are not built here, so a rule importing them does not compile.

use super::flatten::constrained_paths;
use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use std::path::{Path, PathBuf};

/// Largest file scanned.
const MAX_SCANNED: u64 = 64 << 20;

#[derive(Default)]
pub struct Yara;

/// One signature a query names, in osquery's order (groups, files, rule text, URLs).
#[derive(Debug, Clone, PartialEq)]
enum Signature {
    Group(String),
    File(String),
    Rule(String),
    Url(String),
}

impl Signature {
    fn from_constraints(constraints: &Constraints) -> Vec<Signature> {
        let mut signatures: Vec<Signature> = Vec::new();
        let mut add = |signature: Signature| {
            if !signatures.contains(&signature) {
                signatures.push(signature);
            }
        };
        constraints.texts("sig_group").into_iter().for_each(|s| add(Signature::Group(s)));
        constraints.texts("sigfile").into_iter().for_each(|s| add(Signature::File(s)));
        constraints.texts("sigrule").into_iter().for_each(|s| add(Signature::Rule(s)));
        constraints.texts("sigurl").into_iter().for_each(|s| add(Signature::Url(s)));
        signatures
    }

    /// The row's signature columns: the one used, the others `""` as osquery sets them (sigurl NULL).
    fn columns(&self) -> [(&'static str, Value); 3] {
        let (mut group, mut file, mut rule) = (String::new(), String::new(), String::new());
        match self {
            Signature::Group(s) => group = s.clone(),
            Signature::File(s) => file = s.clone(),
            Signature::Rule(s) => rule = s.clone(),
            Signature::Url(_) => {}
        }
        [("sig_group", Value::text(group)), ("sigfile", Value::text(file)), ("sigrule", Value::text(rule))]
    }
}

/// A regular file's bytes, when it is no larger than `limit` (also if it grew while being read).
fn read_regular(path: &Path, limit: u64) -> Option<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path).ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > limit {
        return None;
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut bytes).ok()?;
    (bytes.len() as u64 <= limit).then_some(bytes)
}

/// The files a query names: `=` paths that are regular files, and the regular files LIKE patterns expand to.
fn scanned_paths(constraints: &Constraints) -> Vec<PathBuf> {
    constrained_paths(constraints, "path")
        .into_iter()
        .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.is_file()))
        .collect()
}

/// What one scan found, in osquery's column values.
#[derive(Debug, Clone, PartialEq, Default)]
struct Findings {
    matches: Vec<String>,
    tags: Vec<String>,
    strings: Vec<String>,
}

impl Findings {
    fn row(&self, path: &Path, signature: &Signature) -> Row {
        let mut row = Row::from([
            ("path", Value::text(path.display().to_string())),
            ("matches", Value::text(self.matches.join(","))),
            ("count", Value::Int(self.matches.len() as i64)),
            ("tags", Value::text(self.tags.join(","))),
            ("strings", Value::text(self.strings.join(","))),
        ]);
        row.extend(signature.columns());
        row
    }
}

/// The boreal side: a signature compiled, bytes scanned.
mod engine {
    use super::{Findings, Signature, read_regular};
    use boreal::scanner::ScanParams;
    use boreal::{Compiler, Scanner};
    use std::path::{Path, PathBuf};
    use std::time::Duration;

    /// Largest rule file, rule text or included file compiled.
    const MAX_RULES: u64 = 4 << 20;
    /// Where osquery looks for relative `sigfile` paths.
    const YARA_HOME: &str = "/etc/osquery/yara/";

    /// A `sigfile` as osquery resolves it.
    pub(super) fn rule_file_path(sigfile: &str) -> PathBuf {
        let path = Path::new(sigfile);
        if path.is_relative() { Path::new(YARA_HOME).join(path) } else { path.to_path_buf() }
    }

    /// Compiled rules for one signature; `hide_strings` for rule text from the query.
    pub(super) struct Rules {
        scanner: Scanner,
        hide_strings: bool,
    }

    fn compiler() -> Compiler {
        let mut compiler = Compiler::new();
        // Includes are read like rule files: regular files only, bounded (a FIFO or a huge file cannot stall
        // the compile). Relative names are relative to the including file, else to the working directory.
        compiler.set_include_callback(|name, current, _namespace| {
            let path = match current.and_then(Path::parent) {
                Some(dir) if Path::new(name).is_relative() => dir.join(name),
                _ => Path::new(name).to_path_buf(),
            };
            let bytes = read_regular(&path, MAX_RULES).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{}: not a readable rule file", path.display()),
                )
            })?;
            String::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        });
        compiler
    }

    /// The signature's rules compiled, or None when they cannot be had (no such file or group, a URL, too
    /// large, not UTF-8, or a compile error).
    pub(super) fn compile(signature: &Signature) -> Option<Rules> {
        let mut compiler = compiler();
        match signature {
            Signature::File(sigfile) => {
                let path = rule_file_path(sigfile);
                // Checked first (a regular file within the limit): boreal then reads it itself, so that its
                // relative includes resolve from its directory.
                read_regular(&path, MAX_RULES)?;
                compiler.add_rules_file(&path).ok()?;
            }
            Signature::Rule(text) => {
                if text.len() as u64 > MAX_RULES {
                    return None;
                }
                compiler.add_rules_str(text).ok()?;
            }
            Signature::Group(_) | Signature::Url(_) => return None,
        }
        Some(Rules { scanner: compiler.finalize(), hide_strings: matches!(signature, Signature::Rule(_)) })
    }

    impl Rules {
        /// The scan of `bytes`, or None when it did not finish within `limit`.
        pub(super) fn scan(&mut self, bytes: &[u8], limit: Duration) -> Option<Findings> {
            let params = ScanParams::default().compute_full_matches(true).timeout_duration(Some(limit));
            self.scanner.set_scan_params(params);
            let result = self.scanner.scan_mem(bytes).ok()?;
            let mut findings = Findings::default();
            for rule in &result.rules {
                findings.matches.push(rule.name.to_string());
                findings.tags.extend(rule.tags.iter().map(|t| self.scanner.get_string_symbol(*t).to_string()));
                if self.hide_strings {
                    continue;
                }
                for string in &rule.matches {
                    if let Some(first) = string.matches.first() {
                        // boreal names a string without YARA's `$`.
                        findings.strings.push(format!("${}:{:x}", string.name, first.base + first.offset));
                    }
                }
            }
            Some(findings)
        }
    }
}

impl Table for Yara {
    fn name(&self) -> &'static str {
        "yara"
    }
    fn description(&self) -> &'static str {
        "Track YARA matches for files or PIDs."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] = &[
            Column::text("path").required().like(),
            Column::text("matches"),
            Column::int("count"),
            Column::text("sig_group").index(),
            Column::text("sigfile").index(),
            Column::text("sigrule").index().hidden(),
            Column::text("strings"),
            Column::text("tags"),
            Column::text("sigurl").index().hidden(),
        ];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let mut compiled: Vec<(Signature, engine::Rules)> = Signature::from_constraints(constraints)
            .into_iter()
            .filter_map(|signature| engine::compile(&signature).map(|rules| (signature, rules)))
            .collect();
        if compiled.is_empty() {
            return Ok(Vec::new());
        }
        let mut rows = Vec::new();
        for path in scanned_paths(constraints) {
            let Some(bytes) = read_regular(&path, MAX_SCANNED) else { continue };
            for (signature, rules) in &mut compiled {
                let left = crate::engine::time_left();
                if left.is_zero() {
                    return Ok(rows);
                }
                if let Some(findings) = rules.scan(&bytes, left) {
                    rows.push(findings.row(&path, signature));
                }
            }
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn scan(rules: &str, data: &[u8], signature: fn(String) -> Signature) -> Option<Findings> {
        let dir = tempfile::tempdir().unwrap();
        let signature = match signature(String::new()) {
            Signature::File(_) => {
                let path = dir.path().join("rules.yar");
                std::fs::write(&path, rules).unwrap();
                Signature::File(path.display().to_string())
            }
            _ => signature(rules.to_string()),
        };
        engine::compile(&signature)?.scan(data, Duration::from_secs(10))
    }

    #[test]
    fn findings_read_like_osquerys_callback() {
        let rules = r#"
            rule first : tag1 tag2 { strings: $a = "alpha" $b = "beta" condition: any of them }
            private rule hidden { condition: true }
            rule second { strings: $c = "gamma" $d = "delta" private condition: $c and $d and hidden }
            rule never { condition: false }
        "#;
        let data = b"..alpha..beta..alpha..gamma..delta";
        let found = scan(rules, data, Signature::File).unwrap();
        assert_eq!(found.matches, ["first", "second"]);
        assert_eq!(found.tags, ["tag1", "tag2"]);
        // First match of each public string, hex offsets; the private $d is left out.
        assert_eq!(found.strings, ["$a:2", "$b:9", "$c:16"]);
        // Rule text from the query: strings hidden, as osquery makes them private.
        let found = scan(rules, data, Signature::Rule).unwrap();
        assert_eq!((found.matches.len(), found.strings.len()), (2, 0));
    }

    #[test]
    fn rules_that_do_not_compile_scan_nothing() {
        for bad in [
            "rule invalid { Not a valid rule }",
            "rule x { condition: $missing }",
            "import \"cuckoo\" rule x { condition: true }",
            "include \"/no/such/file.yar\" rule x { condition: true }",
            "include \"/dev/zero\" rule x { condition: true }",
            "",
        ] {
            let compiled = engine::compile(&Signature::Rule(bad.to_string()));
            // An empty text compiles to no rules: it scans, matching nothing.
            match bad {
                "" => assert_eq!(compiled.unwrap().scan(b"x", Duration::from_secs(1)), Some(Findings::default())),
                _ => assert!(compiled.is_none(), "{bad:?} compiled"),
            }
        }
        assert!(engine::compile(&Signature::File("/no/such/rules.yar".into())).is_none());
        assert!(engine::compile(&Signature::File("/dev/zero".into())).is_none());
        assert!(engine::compile(&Signature::File("/".into())).is_none());
        assert!(engine::compile(&Signature::Group("default".into())).is_none());
        assert!(engine::compile(&Signature::Url("https://example.com/rules.yar".into())).is_none());
        assert!(engine::compile(&Signature::Rule("rule x { condition: true }".repeat(200_000))).is_none());
    }

    #[test]
    fn relative_sigfiles_are_under_osquerys_yara_home() {
        assert_eq!(engine::rule_file_path("test.yara"), PathBuf::from("/etc/osquery/yara/test.yara"));
        assert_eq!(engine::rule_file_path("/tmp/r.yar"), PathBuf::from("/tmp/r.yar"));
    }

    #[test]
    fn a_scan_that_runs_out_of_time_gives_nothing() {
        // Millions of candidate matches, each checked against a regex: far longer than a zero time limit.
        let rules = r#"rule slow { strings: $a = /aa[^b]{0,300}c/ condition: #a > 0 }"#;
        let mut compiled = engine::compile(&Signature::Rule(rules.into())).unwrap();
        let data = vec![b'a'; 8 << 20];
        assert_eq!(compiled.scan(&data, Duration::ZERO), None);
    }
}
