//! augeas: configuration files as augeas trees, with osquery's columns, written in Rust as a faithful subset
//! of augeas's own lenses (1.14, `/usr/share/augeas/lenses/dist`): Sshd, Sudoers, Login_defs, Pam, Fstab,
//! Sysctl, each with the files its filter loads.
//!
//! Columns (osquery's `matchAugeasPattern`): `node` is the augeas path of a tree node — `/files` then the
//! file's path, then labels, a label followed by `[n]` when siblings share it, the characters `][|/=()!,`,
//! whitespace and `\` escaped with `\` (`/files/etc/sysctl.conf/kernel\/a`); `label` its label (`#comment` for
//! comments, numbers for sequences); `value` its value, `""` when it has none (osquery prints NULL values as
//! empty strings); `path` the file the node belongs to (for the directory nodes `/files/etc`: the node
//! without `/files`).
//!
//! Which nodes (osquery's patterns): `path = P` gives the node of P and everything below it; `node = N` the
//! node N (an exact node path; augeas path expressions with wildcards or predicates are not evaluated — SQLite
//! re-checks `node = N` anyway, so in osquery too only rows whose node is exactly N survive); neither gives every
//! node of every file loaded.
//!
//! Unsupported lenses: files that only other augeas lenses read (`/etc/hosts`, `/etc/os-release`, ...) have no
//! nodes here — a query about them gives no rows, as osquery does with a lens directory that lacks the lens.
//! Continuation lines (a trailing `\`) in sudoers and pam files are not read: such a file gives no rows.
//!
//! Bad input, as augeas: a lens reads a whole file or nothing — a file with a line its lens rejects gives no
//! rows (augeas records a parse error and loads no tree for it; osquery shows nothing of it). A last line
//! without its newline is read (augeas adds it). Missing files give no rows. Files over 1 MiB are not read.

use crate::table::{Column, Constraints, Row, Table, TableError, Value};
use regex::Regex;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

const MAX_FILE: u64 = 1 << 20;

/// An augeas tree node.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub label: String,
    pub value: Option<String>,
    pub children: Vec<Node>,
}

impl Node {
    fn leaf(label: impl Into<String>, value: impl Into<String>) -> Node {
        Node { label: label.into(), value: Some(value.into()), children: Vec::new() }
    }
    fn bare(label: impl Into<String>) -> Node {
        Node { label: label.into(), value: None, children: Vec::new() }
    }
    fn with(mut self, child: Node) -> Node {
        self.children.push(child);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Lens {
    Sshd,
    Sudoers,
    LoginDefs,
    Pam,
    Fstab,
    Sysctl,
}

/// Names augeas's stdexcl leaves out (backups, package manager leftovers).
fn std_excluded(name: &str) -> bool {
    const SUFFIXES: &[&str] = &[
        "~",
        ".rpmnew",
        ".rpmsave",
        ".dpkg-old",
        ".dpkg-new",
        ".dpkg-bak",
        ".dpkg-dist",
        ".augsave",
        ".augnew",
        ".bak",
        ".old",
    ];
    SUFFIXES.iter().any(|s| name.ends_with(s)) || (name.starts_with('#') && name.ends_with('#') && name.len() > 1)
}

/// One include of a lens's filter: a path, whether it is a directory whose entries are read, the entry names
/// excluded, and a suffix entries must have.
type Filter = (Lens, &'static str, bool, &'static [&'static str], Option<&'static str>);

/// The files each lens's filter includes.
fn filters() -> Vec<Filter> {
    vec![
        (Lens::Sshd, "/etc/ssh/sshd_config", false, &[], None),
        (Lens::Sshd, "/etc/ssh/sshd_config.d", true, &[], Some(".conf")),
        (Lens::Sudoers, "/etc/sudoers", false, &[], None),
        (Lens::Sudoers, "/usr/local/etc/sudoers", false, &[], None),
        (Lens::Sudoers, "/etc/sudoers.d", true, &[], None),
        (Lens::Sudoers, "/usr/local/etc/sudoers.d", true, &[], None),
        (Lens::Sudoers, "/opt/csw/etc/sudoers", false, &[], None),
        (Lens::Sudoers, "/etc/opt/csw/sudoers", false, &[], None),
        (Lens::LoginDefs, "/etc/login.defs", false, &[], None),
        (Lens::Pam, "/etc/pam.d", true, &["allow.pamlist", "README"], None),
        (Lens::Fstab, "/etc/fstab", false, &[], None),
        (Lens::Fstab, "/etc/mtab", false, &[], None),
        (Lens::Sysctl, "/boot/loader.conf", false, &[], None),
        (Lens::Sysctl, "/etc/sysctl.conf", false, &[], None),
        (Lens::Sysctl, "/etc/sysctl.d", true, &["README", "README.sysctl"], None),
    ]
}

/// Every (file path as augeas names it, lens) the filters load under `root`.
fn loadable(root: &Path) -> Vec<(String, Lens)> {
    let mut files = Vec::new();
    for (lens, path, directory, excluded, suffix) in filters() {
        let on_disk = root.join(path.trim_start_matches('/'));
        if !directory {
            if on_disk.is_file() {
                files.push((path.to_string(), lens));
            }
            continue;
        }
        let Ok(entries) = std::fs::read_dir(&on_disk) else { continue };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let wanted = !excluded.contains(&name.as_str())
                && !std_excluded(&name)
                && suffix.is_none_or(|s| name.ends_with(s) && name.len() > s.len())
                && entry.path().is_file();
            if wanted {
                files.push((format!("{path}/{name}"), lens));
            }
        }
    }
    files.sort();
    files
}

fn parse(lens: Lens, text: &str) -> Option<Vec<Node>> {
    // augeas adds the newline a file's last line lacks before a lens reads it.
    let text = if text.is_empty() || text.ends_with('\n') { text.to_string() } else { format!("{text}\n") };
    let lines: Vec<&str> = text.split('\n').collect();
    let lines = &lines[..lines.len().saturating_sub(1)];
    match lens {
        Lens::Sshd => sshd(lines),
        Lens::Sudoers => sudoers(lines),
        Lens::LoginDefs => login_defs(lines),
        Lens::Pam => pam(lines),
        Lens::Fstab => fstab(lines),
        Lens::Sysctl => sysctl(lines),
    }
}

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("lens regex")
}

/// Util.empty: blank lines, and lines of only `#`, make no node.
fn is_empty(line: &str) -> bool {
    static EMPTY: LazyLock<Regex> = LazyLock::new(|| re(r"^[ \t]*#?[ \t]*$"));
    EMPTY.is_match(line)
}

/// Util.comment (or comment_noindent, or Sysctl's `[#;]` comments): the text after the marker, trimmed.
fn comment(line: &str, markers: &str, indent: bool) -> Option<Node> {
    let body = if indent { line.trim_start_matches([' ', '\t']) } else { line };
    let rest = body.strip_prefix(|c: char| markers.contains(c))?;
    let text = rest.trim_end_matches('\r').trim_matches([' ', '\t']);
    (!text.is_empty()).then(|| Node::leaf("#comment", text))
}

/// Util.comment_eol after a value: ` # text` → the comment node; nothing but blanks → None inside Some.
fn eol_comment(rest: &str) -> Option<Option<Node>> {
    let trimmed = rest.trim_start_matches([' ', '\t']);
    if trimmed.is_empty() {
        return Some(None);
    }
    let text = trimmed.strip_prefix('#')?.trim_end_matches('\r').trim_matches([' ', '\t']);
    Some((!text.is_empty()).then(|| Node::leaf("#comment", text)))
}

fn login_defs(lines: &[&str]) -> Option<Vec<Node>> {
    static RECORD: LazyLock<Regex> =
        LazyLock::new(|| re(r"^([A-Za-z0-9_.-]+)[ \t]+([^ \t]+(?:[ \t]+[^ \t]+)*)[ \t]*$"));
    let mut nodes = Vec::new();
    for line in lines {
        if is_empty(line) {
            continue;
        }
        if let Some(c) = comment(line, "#", true) {
            nodes.push(c);
        } else {
            let captures = RECORD.captures(line)?;
            nodes.push(Node::leaf(&captures[1], &captures[2]));
        }
    }
    Some(nodes)
}

fn sysctl(lines: &[&str]) -> Option<Vec<Node>> {
    static ENTRY: LazyLock<Regex> = LazyLock::new(|| re(r"^[ \t]*([*:/A-Za-z0-9_.-]+)(.*)$"));
    static VALUE: LazyLock<Regex> =
        LazyLock::new(|| re(r##"^[ \t]*=[ \t]*('[^\n']*'|"[^\n"]*"|[^\n \t'"#][^\n#]*[^\n \t#]|[^\n \t'"#])(.*)$"##));
    static EMPTY_VALUE: LazyLock<Regex> = LazyLock::new(|| re(r"^[ \t]*=(.*)$"));
    let mut nodes = Vec::new();
    for line in lines {
        if is_empty(line) {
            continue;
        }
        if let Some(c) = comment(line, "#;", true) {
            nodes.push(c);
            continue;
        }
        let captures = ENTRY.captures(line)?;
        let mut node = Node::bare(&captures[1]);
        let after = captures.get(2).map_or("", |m| m.as_str());
        let rest = if let Some(v) = VALUE.captures(after) {
            node.value = Some(v[1].to_string());
            v.get(2).map_or("", |m| m.as_str()).to_string()
        } else if let Some(v) = EMPTY_VALUE.captures(after).filter(|v| eol_comment(&v[1]).is_some()) {
            node.value = Some(String::new());
            v[1].to_string()
        } else {
            after.to_string()
        };
        if let Some(c) = eol_comment(&rest)? {
            node.children.push(c);
        }
        nodes.push(node);
    }
    Some(nodes)
}

/// Fstab's comma list of `label[=value]` (vfstype, opt).
fn option_list(label: &str, text: &str) -> Option<Vec<Node>> {
    static OPTION: LazyLock<Regex> = LazyLock::new(|| re(r"^([^,#= \t]+)(=([^,# \t]+)?)?$"));
    text.split(',')
        .map(|part| {
            let captures = OPTION.captures(part)?;
            let mut node = Node::leaf(label, &captures[1]);
            if captures.get(2).is_some() {
                let value = Node {
                    label: "value".into(),
                    value: captures.get(3).map(|m| m.as_str().to_string()),
                    children: vec![],
                };
                node.children.push(value);
            }
            Some(node)
        })
        .collect()
}

fn fstab(lines: &[&str]) -> Option<Vec<Node>> {
    static RECORD: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"^[ \t]*([^,# \t][^ \t]*)[ \t]+([^# \t]+)[ \t]+([^# \t]+)(?:[ \t]+([^# \t]+)(?:[ \t]+([0-9]+)(?:[ \t]+([0-9]+))?)?)?(.*)$",
        )
    });
    let mut nodes = Vec::new();
    let mut seq = 0;
    for line in lines {
        if is_empty(line) {
            continue;
        }
        if let Some(c) = comment(line, "#", true) {
            nodes.push(c);
            continue;
        }
        let captures = RECORD.captures(line)?;
        seq += 1;
        let mut record =
            Node::bare(seq.to_string()).with(Node::leaf("spec", &captures[1])).with(Node::leaf("file", &captures[2]));
        record.children.extend(option_list("vfstype", &captures[3])?);
        if let Some(opts) = captures.get(4) {
            record.children.extend(option_list("opt", opts.as_str())?);
        }
        if let Some(dump) = captures.get(5) {
            record.children.push(Node::leaf("dump", dump.as_str()));
        }
        if let Some(passno) = captures.get(6) {
            record.children.push(Node::leaf("passno", passno.as_str()));
        }
        let rest = captures.get(7).map_or("", |m| m.as_str());
        // Util.comment_or_eol: a comment, or a bare `#`.
        if rest.trim_matches([' ', '\t']) != "#"
            && let Some(c) = eol_comment(rest)?
        {
            record.children.push(c);
        }
        nodes.push(record);
    }
    Some(nodes)
}

fn pam(lines: &[&str]) -> Option<Vec<Node>> {
    static INCLUDE: LazyLock<Regex> = LazyLock::new(|| re(r"^[ \t]*@include[ \t]+((?:[^# \t\n\\]|\\.)+)[ \t]*$"));
    static RECORD: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r"^[ \t]*(-)?((?i:auth|session|account|password))[ \t]+(\[[^\]#\n]*\]|[a-zA-Z]+)[ \t]+((?:[^# \t\n\\]|\\.)+)(.*)$",
        )
    });
    static ARGUMENT: LazyLock<Regex> = LazyLock::new(|| re(r"^[ \t]+(\[[^\]#\n]+\]|[^\[#\n \t\\][^#\n \t\\]*)"));
    let mut nodes = Vec::new();
    let mut seq = 0;
    for line in lines {
        if is_empty(line) {
            continue;
        }
        if let Some(c) = comment(line, "#", true) {
            nodes.push(c);
            continue;
        }
        if let Some(captures) = INCLUDE.captures(line) {
            nodes.push(Node::leaf("include", &captures[1]));
            continue;
        }
        let captures = RECORD.captures(line)?;
        seq += 1;
        let mut record = Node::bare(seq.to_string());
        if captures.get(1).is_some() {
            record.children.push(Node::bare("optional"));
        }
        record.children.push(Node::leaf("type", &captures[2]));
        record.children.push(Node::leaf("control", &captures[3]));
        record.children.push(Node::leaf("module", &captures[4]));
        let mut rest = captures.get(5).map_or("", |m| m.as_str());
        while let Some(argument) = ARGUMENT.captures(rest) {
            record.children.push(Node::leaf("argument", &argument[1]));
            rest = &rest[argument[0].len()..];
        }
        if rest.trim_matches([' ', '\t']) != "#"
            && let Some(c) = eol_comment(rest)?
        {
            record.children.push(c);
        }
        nodes.push(record);
    }
    Some(nodes)
}

/// Sequence counters: augeas's `seq` keeps counting across a whole file, per name.
#[derive(Default)]
struct Counters(std::collections::BTreeMap<String, usize>);

impl Counters {
    fn next(&mut self, name: &str) -> String {
        let n = self.0.entry(name.to_lowercase()).or_default();
        *n += 1;
        n.to_string()
    }
}

/// Removes one pair of matching surrounding quotes (Quote.do_quote_opt).
fn unquote(word: &str) -> &str {
    for q in ['"', '\''] {
        if let Some(inner) = word.strip_prefix(q).and_then(|w| w.strip_suffix(q)) {
            return inner;
        }
    }
    word
}

/// One Sshd entry (not Match), or None when the lens would reject it.
fn sshd_entry(line: &str, counters: &mut Counters) -> Option<Node> {
    static KEY: LazyLock<Regex> = LazyLock::new(|| re(r"^([A-Za-z0-9-]+)(.*)$"));
    static OTHER: LazyLock<Regex> = LazyLock::new(|| re(r"^[ \t=]+([^ \t=]+(?:[ \t=]+[^ \t=]+)*)[ \t]*$"));
    static ARRAY_ITEM: LazyLock<Regex> = LazyLock::new(|| re(r##"^[ \t=]+("[^"'\n]*"|'[^"'\n]*'|[^"' \t\n=]+)"##));
    static SUBSYSTEM: LazyLock<Regex> =
        LazyLock::new(|| re(r"^[ \t=]+([A-Za-z0-9\-]+)[ \t=]+([^ \t\n=](?:.*[^ \t\n=])?)[ \t]*$"));
    static LIST: LazyLock<Regex> = LazyLock::new(|| re(r"^[ \t=]+([^, \t\n=]+(?:,[^, \t\n=]+)*)[ \t]*$"));
    let captures = KEY.captures(line)?;
    let key = &captures[1];
    let rest = captures.get(2).map_or("", |m| m.as_str());
    let lower = key.to_lowercase();
    const ARRAYS: &[&str] = &["acceptenv", "allowgroups", "allowusers", "denygroups", "denyusers"];
    const LISTS: &[&str] = &[
        "macs",
        "ciphers",
        "kexalgorithms",
        "hostkeyalgorithms",
        "gssapikexalgorithms",
        "casignaturealgorithms",
        "pubkeyacceptedkeytypes",
    ];
    if ARRAYS.contains(&lower.as_str()) {
        let mut node = Node::bare(key);
        let mut rest = rest;
        while let Some(item) = ARRAY_ITEM.captures(rest) {
            let word = &item[1];
            let quoted_with_blank = (word.starts_with('"') || word.starts_with('\'')) && word.contains([' ', '\t']);
            let bare_ok = !word.contains([' ', '\t']) || quoted_with_blank;
            if !bare_ok {
                return None;
            }
            node.children.push(Node::leaf(counters.next(key), unquote(word)));
            rest = &rest[item[0].len()..];
        }
        return rest.trim_matches([' ', '\t']).is_empty().then_some(node);
    }
    if lower == "subsystem" {
        let sub = SUBSYSTEM.captures(rest)?;
        return Some(Node::bare(key).with(Node::leaf(&sub[1], &sub[2])));
    }
    if LISTS.contains(&lower.as_str()) {
        let list = LIST.captures(rest)?;
        let mut node = Node::bare(key);
        for value in list[1].split(',') {
            node.children.push(Node::leaf(counters.next(key), value));
        }
        return Some(node);
    }
    if lower == "match" || key.contains('-') {
        return None;
    }
    let value = OTHER.captures(rest)?;
    Some(Node::leaf(key, &value[1]))
}

fn sshd(lines: &[&str]) -> Option<Vec<Node>> {
    static MATCH: LazyLock<Regex> = LazyLock::new(|| re(r"^((?i:match))(.*)$"));
    static CONDITION: LazyLock<Regex> = LazyLock::new(|| {
        re(
            r##"^[ \t=]+([A-Za-z0-9]+)[ \t=]+("[^"'\t\n]* [^"'\t\n]*"|'[^"'\t\n]* [^"'\t\n]*'|"[^"' \t\n=]+"|[^"' \t\n=]+)"##,
        )
    });
    let mut nodes = Vec::new();
    let mut counters = Counters::default();
    let mut current_match: Option<Node> = None;
    for line in lines {
        if let Some(m) = MATCH.captures(line) {
            if let Some(done) = current_match.take() {
                // Settings needs at least one line (match_entry+).
                done.children.get(1)?;
                nodes.push(done);
            }
            let mut condition = Node::bare("Condition");
            let mut rest = m.get(2).map_or("", |c| c.as_str());
            while let Some(c) = CONDITION.captures(rest) {
                condition.children.push(Node::leaf(&c[1], unquote(&c[2])));
                rest = &rest[c[0].len()..];
            }
            if condition.children.is_empty() || !rest.trim_matches([' ', '\t']).is_empty() {
                return None;
            }
            current_match = Some(Node::bare(&m[1]).with(condition));
            continue;
        }
        match current_match.as_mut() {
            None => {
                if is_empty(line) {
                    continue;
                }
                match comment(line, "#", true) {
                    Some(c) => nodes.push(c),
                    None => nodes.push(sshd_entry(line, &mut counters)?),
                }
            }
            Some(block) => {
                if block.children.len() == 1 {
                    block.children.push(Node::bare("Settings"));
                }
                if is_empty(line) {
                    continue;
                }
                let body = line.trim_start_matches([' ', '\t']);
                let entry = match comment(body, "#", false) {
                    Some(c) => c,
                    None => sshd_entry(body, &mut counters)?,
                };
                block.children[1].children.push(entry);
            }
        }
    }
    if let Some(done) = current_match {
        done.children.get(1)?;
        nodes.push(done);
    }
    Some(nodes)
}

const SUDO_FLAGS: &[&str] = &[
    "always_set_home",
    "authenticate",
    "env_editor",
    "env_reset",
    "fqdn",
    "ignore_dot",
    "ignore_local_sudoers",
    "insults",
    "log_host",
    "log_year",
    "long_otp_prompt",
    "mail_always",
    "mail_badpass",
    "mail_no_host",
    "mail_no_perms",
    "mail_no_user",
    "noexec",
    "path_info",
    "passprompt_override",
    "preserve_groups",
    "requiretty",
    "root_sudo",
    "rootpw",
    "runaspw",
    "set_home",
    "set_logname",
    "setenv",
    "shell_noargs",
    "stay_setuid",
    "targetpw",
    "tty_tickets",
    "visiblepw",
    "closefrom_override",
    "compress_io",
    "fast_glob",
    "log_input",
    "log_output",
    "pwfeedback",
    "umask_override",
    "use_pty",
    "match_group_by_gid",
    "always_query_group_plugin",
];
const SUDO_INT_NOBOOL: &[&str] = &["passwd_tries"];
const SUDO_INT_BOOL: &[&str] = &["loglinelen", "passwd_timeout", "timestamp_timeout", "umask"];
const SUDO_STRING_NOBOOL: &[&str] = &[
    "badpass_message",
    "editor",
    "mailsub",
    "noexec_file",
    "passprompt",
    "runas_default",
    "syslog_badpri",
    "syslog_goodpri",
    "timestampdir",
    "timestampowner",
    "secure_path",
];
const SUDO_STRING_BOOL: &[&str] = &[
    "exempt_group",
    "lecture",
    "lecture_file",
    "listpw",
    "logfile",
    "mailerflags",
    "mailerpath",
    "mailto",
    "mailfrom",
    "syslog",
    "verifypw",
];
const SUDO_LISTS: &[&str] = &["env_check", "env_delete", "env_keep"];

/// One Defaults parameter, or None when the Sudoers lens would reject it.
fn sudo_parameter(text: &str) -> Option<Node> {
    static PARAM: LazyLock<Regex> = LazyLock::new(|| re(r"^((?:!!)*)(!)?([a-z_]+)(.*)$"));
    static INT: LazyLock<Regex> = LazyLock::new(|| re(r##"^[ \t]*=[ \t]*"?(-?[0-9]+)"?$"##));
    static STRING: LazyLock<Regex> = LazyLock::new(|| re(r##"^[ \t]*=[ \t]*([^",=#() \t\n\\]+|"[^",=#()\n\\]+")$"##));
    static LIST: LazyLock<Regex> = LazyLock::new(|| re(r##"^[ \t]*([+-])?=[ \t]*(.*)$"##));
    static VAR: LazyLock<Regex> = LazyLock::new(|| re(r##"^[^",# \t\n\\]+$"##));
    let p = PARAM.captures(text.trim_matches([' ', '\t']))?;
    let negated = p.get(2).is_some();
    let key = &p[3];
    let rest = p.get(4).map_or("", |m| m.as_str());
    let mut node = Node::bare(key);
    if negated {
        node.children.push(Node::bare("negate"));
    }
    let kw = |list: &[&str]| list.contains(&key);
    if kw(SUDO_FLAGS) {
        return rest.is_empty().then_some(node);
    }
    if negated {
        // Only flags and the "bool" parameters may be negated, and then take no value.
        return (rest.is_empty() && (kw(SUDO_INT_BOOL) || kw(SUDO_STRING_BOOL) || kw(SUDO_LISTS))).then_some(node);
    }
    if kw(SUDO_INT_NOBOOL) || kw(SUDO_INT_BOOL) {
        node.value = Some(INT.captures(rest)?[1].to_string());
        return Some(node);
    }
    if kw(SUDO_STRING_NOBOOL) || kw(SUDO_STRING_BOOL) {
        node.value = Some(STRING.captures(rest)?[1].to_string());
        return Some(node);
    }
    if kw(SUDO_LISTS) {
        let l = LIST.captures(rest)?;
        match l.get(1).map(|m| m.as_str()) {
            Some("+") => node.children.push(Node::bare("append")),
            Some("-") => node.children.push(Node::bare("remove")),
            _ => {}
        }
        let values = &l[2];
        let words: Vec<&str> = match values.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(inner) if inner.contains([' ', '\t']) => inner.split([' ', '\t']).filter(|w| !w.is_empty()).collect(),
            Some(inner) => vec![inner],
            None => vec![values],
        };
        for word in words {
            if !VAR.is_match(word) {
                return None;
            }
            node.children.push(Node::leaf("var", word));
        }
        return Some(node);
    }
    None
}

/// Splits at separators outside double quotes.
fn split_unquoted(text: &str, separator: char) -> Vec<&str> {
    let (mut parts, mut start, mut quoted) = (Vec::new(), 0, false);
    for (i, c) in text.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == separator && !quoted {
            parts.push(&text[start..i]);
            start = i + 1;
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The line without a trailing ` # comment` (Sudoers needs a blank before `#`), and the comment node.
fn sudo_split_comment(line: &str) -> Option<(&str, Option<Node>)> {
    static EOL: LazyLock<Regex> = LazyLock::new(|| re(r"^(.*?)[ \t]+#[ \t]*(.*)$"));
    match EOL.captures(line) {
        Some(c) => {
            let body = c.get(1).map_or("", |m| m.as_str());
            let text = c[2].trim_end_matches([' ', '\t', '\r']);
            let node = (!text.is_empty()).then(|| Node::leaf("#comment", text));
            Some((&line[..body.len()], node))
        }
        None => Some((line.trim_end_matches([' ', '\t']), None)),
    }
}

fn sudo_command(text: &str) -> Option<Node> {
    static RUNAS: LazyLock<Regex> = LazyLock::new(|| re(r"^\(([^)]*)\)[ \t]*(.*)$"));
    static TAG: LazyLock<Regex> = LazyLock::new(|| re(r"^((?:NO)?(?:PASSWD|EXEC|SETENV))[ \t]*:[ \t]*(.*)$"));
    static CMD: LazyLock<Regex> = LazyLock::new(|| {
        re(r"^(?:(!)?)([A-Za-z0-9_.-]+|[/a-z](?:[^,:#()\n\\]|\\[=:,\\])*[^,=:#() \t\n\\]|[^,=:#() \t\n\\])$")
    });
    static ITEM: LazyLock<Regex> =
        LazyLock::new(|| re(r"^([^,=:#() \t\n\\][^,=:#()\n]*[^,=:#() \t\n\\]|[^,=:#() \t\n\\])$"));
    let mut rest = text.trim_matches([' ', '\t']);
    let mut children = Vec::new();
    if let Some(r) = RUNAS.captures(rest) {
        let inner = r.get(1).map_or("", |m| m.as_str());
        let (users, groups) = match inner.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (inner, None),
        };
        if !users.trim().is_empty() {
            for user in users.split(',') {
                children.push(Node::leaf("runas_user", ITEM.captures(user.trim())?[1].to_string()));
            }
        }
        if let Some(groups) = groups {
            for group in groups.split(',') {
                children.push(Node::leaf("runas_group", ITEM.captures(group.trim())?[1].to_string()));
            }
        }
        rest = r.get(2).map_or("", |m| m.as_str());
    }
    while let Some(t) = TAG.captures(rest) {
        children.push(Node::leaf("tag", &t[1]));
        rest = t.get(2).map_or("", |m| m.as_str());
    }
    let c = CMD.captures(rest.trim_end())?;
    let command = &c[2];
    if matches!(command, "PASSWD" | "NOPASSWD" | "EXEC" | "NOEXEC" | "SETENV" | "NOSETENV") {
        return None;
    }
    let mut node = Node::leaf("command", command);
    if c.get(1).is_some() {
        node.children.push(Node::bare("negate"));
    }
    node.children.extend(children);
    Some(node)
}

fn sudoers(lines: &[&str]) -> Option<Vec<Node>> {
    static INCLUDE: LazyLock<Regex> = LazyLock::new(|| re(r"^([#@]include(?:dir)?)[ \t]+([^ \t\n]+)[ \t]*$"));
    static ALIAS: LazyLock<Regex> =
        LazyLock::new(|| re(r"^[ \t]*(User_Alias|Runas_Alias|Host_Alias|Cmnd_Alias)[ \t]+(.*)$"));
    static ALIAS_ENTRY: LazyLock<Regex> = LazyLock::new(|| re(r"^[ \t]*([A-Z][A-Z0-9_]*)[ \t]*=[ \t]*(.*)$"));
    static DEFAULTS: LazyLock<Regex> = LazyLock::new(|| re(r"^[ \t]*Defaults([@:!>][^ \t\n\\]+)?[ \t]+(.*)$"));
    static USER: LazyLock<Regex> = LazyLock::new(|| {
        re(r"^(?:[A-Z](?:[-A-Z0-9]|\\[ \t])*\\\\)?[%+@a-z](?:[-A-Za-z0-9._+]|\\[ \t]|\\\\[A-Za-z0-9])*$|^[A-Z_]+$")
    });
    static HOST: LazyLock<Regex> = LazyLock::new(|| re(r"^[^,=:#() \t\n\\]+$"));
    static ITEM: LazyLock<Regex> =
        LazyLock::new(|| re(r"^([^,=:#() \t\n\\][^,=:#()\n]*[^,=:#() \t\n\\]|[^,=:#() \t\n\\])$"));
    let mut nodes = Vec::new();
    for line in lines {
        if is_empty(line) {
            continue;
        }
        if let Some(i) = INCLUDE.captures(line) {
            nodes.push(Node::leaf(&i[1], &i[2]));
            continue;
        }
        let trimmed = line.trim_start_matches([' ', '\t']);
        if let Some(text) = trimmed.strip_prefix('#') {
            let text = text.trim_matches([' ', '\t']);
            if text.starts_with("include") {
                return None;
            }
            nodes.push(Node::leaf("#comment", text));
            continue;
        }
        let (body, eol_comment) = sudo_split_comment(line)?;
        let mut node = if let Some(a) = ALIAS.captures(body) {
            let kind = &a[1];
            let field = match kind {
                "User_Alias" => "user",
                "Runas_Alias" => "runas_user",
                "Host_Alias" => "host",
                _ => "command",
            };
            let mut node = Node::bare(kind);
            for entry in a[2].split(':') {
                let e = ALIAS_ENTRY.captures(entry)?;
                let mut alias = Node::bare("alias").with(Node::leaf("name", &e[1]));
                for item in e[2].split(',') {
                    let item = item.trim_matches([' ', '\t']);
                    if field == "command" {
                        let mut command = sudo_command(item)?;
                        command.label = "command".into();
                        if !command.children.iter().all(|c| c.label == "negate") {
                            return None;
                        }
                        alias.children.push(command);
                    } else {
                        alias.children.push(Node::leaf(field, ITEM.captures(item)?[1].to_string()));
                    }
                }
                node.children.push(alias);
            }
            node
        } else if let Some(d) = DEFAULTS.captures(body) {
            let mut node = Node::bare("Defaults");
            if let Some(t) = d.get(1) {
                node.children.push(Node::leaf("type", t.as_str()));
            }
            for parameter in split_unquoted(&d[2], ',') {
                node.children.push(sudo_parameter(parameter)?);
            }
            node
        } else {
            // A user specification: users, then host lists `=` commands, separated by `:`.
            let body = body.trim_start_matches([' ', '\t']);
            let split = body.find([' ', '\t'])?;
            let (users, specs) = (&body[..split], &body[split..]);
            let mut node = Node::bare("spec");
            let mut users_text = users.to_string();
            let mut specs = specs.trim_start_matches([' ', '\t']);
            // Users may be a comma list with blanks after commas.
            while users_text.ends_with(',') || specs.starts_with(',') {
                let next = specs.trim_start_matches([',', ' ', '\t']);
                let end = next.find([' ', '\t'])?;
                users_text = format!("{},{}", users_text.trim_end_matches(','), &next[..end]);
                specs = next[end..].trim_start_matches([' ', '\t']);
            }
            for user in users_text.split(',') {
                if !USER.is_match(user) || user.starts_with("@include") {
                    return None;
                }
                node.children.push(Node::leaf("user", user));
            }
            for group in host_groups(specs) {
                let (hosts, commands) = group.split_once('=')?;
                let mut host_group = Node::bare("host_group");
                for host in hosts.split(',') {
                    let host = host.trim_matches([' ', '\t']);
                    if !HOST.is_match(host) {
                        return None;
                    }
                    host_group.children.push(Node::leaf("host", host));
                }
                for command in split_commands(commands) {
                    host_group.children.push(sudo_command(command)?);
                }
                node.children.push(host_group);
            }
            node
        };
        node.children.extend(eol_comment);
        nodes.push(node);
    }
    Some(nodes)
}

/// A spec's host groups (`hosts = commands`), split at the colons that start a new one: colons inside a runas
/// list or after a tag (`NOPASSWD:`) belong to the commands.
fn host_groups(specs: &str) -> Vec<String> {
    let mut groups: Vec<String> = Vec::new();
    for part in split_outside_parentheses(specs, ':') {
        match groups.last_mut() {
            Some(last) if !part.contains('=') => {
                last.push(':');
                last.push_str(part);
            }
            _ => groups.push(part.to_string()),
        }
    }
    groups
}

/// A spec's commands split at commas outside a runas list's parentheses.
fn split_commands(text: &str) -> Vec<&str> {
    split_outside_parentheses(text, ',')
}

fn split_outside_parentheses(text: &str, separator: char) -> Vec<&str> {
    let (mut parts, mut start, mut depth) = (Vec::new(), 0, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            c if c == separator && depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// augeas's escaping of a label inside a path.
fn escape(label: &str) -> String {
    let mut out = String::with_capacity(label.len());
    for c in label.chars() {
        if "][|/=()!,\\".contains(c) || c.is_whitespace() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Rows for `node` (whose path is `at`) and everything below it.
fn emit(node: &Node, at: &str, file: &str, rows: &mut Vec<(String, String, String, String)>) {
    rows.push((at.to_string(), node.value.clone().unwrap_or_default(), node.label.clone(), file.to_string()));
    emit_children(&node.children, at, file, rows);
}

fn emit_children(children: &[Node], at: &str, file: &str, rows: &mut Vec<(String, String, String, String)>) {
    for (i, child) in children.iter().enumerate() {
        let same = children.iter().filter(|c| c.label == child.label).count();
        let position = children[..i].iter().filter(|c| c.label == child.label).count() + 1;
        let name = escape(&child.label);
        let path = if same > 1 { format!("{at}/{name}[{position}]") } else { format!("{at}/{name}") };
        emit(child, &path, file, rows);
    }
}

/// The augeas table over files under `root` (`/` for the agent; tests give a directory of fixtures).
pub struct Augeas {
    root: PathBuf,
}

impl Default for Augeas {
    fn default() -> Self {
        Augeas { root: PathBuf::from("/") }
    }
}

impl Augeas {
    pub fn at_root(root: impl Into<PathBuf>) -> Augeas {
        Augeas { root: root.into() }
    }

    /// Every node of every file loaded: (node, value, label, path), directories first as augeas lists them.
    fn all_rows(&self) -> Vec<(String, String, String, String)> {
        let mut rows = Vec::new();
        let mut directories = std::collections::BTreeSet::new();
        for (path, lens) in loadable(&self.root) {
            let on_disk = self.root.join(path.trim_start_matches('/'));
            if std::fs::metadata(&on_disk).map(|m| m.len() > MAX_FILE).unwrap_or(true) {
                continue;
            }
            let Ok(bytes) = std::fs::read(&on_disk) else { continue };
            let Ok(text) = String::from_utf8(bytes) else { continue };
            let Some(nodes) = parse(lens, &text) else { continue };
            // The directory nodes above the file.
            let mut at = String::new();
            let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
            for segment in &segments[..segments.len() - 1] {
                at = format!("{at}/{}", escape(segment));
                if directories.insert(at.clone()) {
                    rows.push((format!("/files{at}"), String::new(), segment.to_string(), at.clone()));
                }
            }
            let name = segments.last().copied().unwrap_or_default();
            let file_node = format!("/files{at}/{}", escape(name));
            rows.push((file_node.clone(), String::new(), name.to_string(), path.clone()));
            emit_children(&nodes, &file_node, &path, &mut rows);
        }
        rows
    }
}

impl Table for Augeas {
    fn name(&self) -> &'static str {
        "augeas"
    }
    fn description(&self) -> &'static str {
        "Configuration files parsed by augeas."
    }
    fn columns(&self) -> &'static [Column] {
        const COLUMNS: &[Column] =
            &[Column::text("node").index(), Column::text("value"), Column::text("label"), Column::text("path").index()];
        COLUMNS
    }
    fn generate(&self, constraints: &Constraints) -> Result<Vec<Row>, TableError> {
        let (nodes, paths) = (constraints.texts("node"), constraints.texts("path"));
        let wanted = |row: &(String, String, String, String)| {
            if nodes.is_empty() && paths.is_empty() {
                return true;
            }
            nodes.contains(&row.0)
                || paths.iter().any(|p| {
                    let base = format!("/files{p}");
                    row.0 == base || row.0.strip_prefix(&base).is_some_and(|rest| rest.starts_with('/'))
                })
        };
        Ok(self
            .all_rows()
            .into_iter()
            .filter(wanted)
            .map(|(node, value, label, path)| {
                Row::from([
                    ("node", Value::text(node)),
                    ("value", Value::text(value)),
                    ("label", Value::text(label)),
                    ("path", Value::text(path)),
                ])
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(lens: Lens, text: &str) -> Vec<(String, String)> {
        let nodes = parse(lens, text).expect("parses");
        let mut rows = Vec::new();
        emit_children(&nodes, "", "", &mut rows);
        rows.into_iter().map(|(n, v, _, _)| (n, v)).collect()
    }

    fn p(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
    }

    #[test]
    fn lenses_build_augeas_trees() {
        assert_eq!(
            tree(
                Lens::LoginDefs,
                "# Login\nMAIL_DIR        /var/mail\nPASS_MAX_DAYS\t99999\n\n#\nENCRYPT_METHOD SHA512 x\n"
            ),
            p(&[
                ("/#comment", "Login"),
                ("/MAIL_DIR", "/var/mail"),
                ("/PASS_MAX_DAYS", "99999"),
                ("/ENCRYPT_METHOD", "SHA512 x")
            ])
        );
        assert_eq!(
            tree(Lens::Sysctl, "net.ipv4.ip_forward = 1\nkernel/a=2 # c\n; semi\nnovalue\nkernel.x =\n"),
            p(&[
                ("/net.ipv4.ip_forward", "1"),
                ("/kernel\\/a", "2"),
                ("/kernel\\/a/#comment", "c"),
                ("/#comment", "semi"),
                ("/novalue", ""),
                ("/kernel.x", "")
            ])
        );
        let sshd = tree(
            Lens::Sshd,
            "AcceptEnv LANG LC_*\nAcceptEnv XMODIFIERS\nCiphers a,b\nSubsystem sftp /usr/lib/sftp-server\nPermitRootLogin no\n\
             Match User bob Address 1.2.3.4\n  X11Forwarding no\n  # c\nMatch Group x\n  AllowTcpForwarding no\n",
        );
        assert_eq!(
            sshd,
            p(&[
                ("/AcceptEnv[1]", ""),
                ("/AcceptEnv[1]/1", "LANG"),
                ("/AcceptEnv[1]/2", "LC_*"),
                ("/AcceptEnv[2]", ""),
                ("/AcceptEnv[2]/3", "XMODIFIERS"),
                ("/Ciphers", ""),
                ("/Ciphers/1", "a"),
                ("/Ciphers/2", "b"),
                ("/Subsystem", ""),
                ("/Subsystem/sftp", "/usr/lib/sftp-server"),
                ("/PermitRootLogin", "no"),
                ("/Match[1]", ""),
                ("/Match[1]/Condition", ""),
                ("/Match[1]/Condition/User", "bob"),
                ("/Match[1]/Condition/Address", "1.2.3.4"),
                ("/Match[1]/Settings", ""),
                ("/Match[1]/Settings/X11Forwarding", "no"),
                ("/Match[1]/Settings/#comment", "c"),
                ("/Match[2]", ""),
                ("/Match[2]/Condition", ""),
                ("/Match[2]/Condition/Group", "x"),
                ("/Match[2]/Settings", ""),
                ("/Match[2]/Settings/AllowTcpForwarding", "no"),
            ])
        );
        assert_eq!(tree(Lens::Sysctl, "no.newline = 1"), p(&[("/no.newline", "1")]), "a final newline is added");
        assert!(parse(Lens::Sshd, "  PermitRootLogin no\n").is_none(), "Sshd has no indent at top level");
    }
}
