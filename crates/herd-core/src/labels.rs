//! Labels: named groups of hosts that scope policies, profiles and views (Fleet's labels, Jamf's smart
//! groups). Three kinds share one model:
//! - *dynamic*: osquery SQL the hosts run (`fleet_label_query_<id>`); a host is a member when the query
//!   returned rows, and a query that errors is no answer (not a member, with the error kept);
//! - *manual*: a list of hosts;
//! - *criteria* (herd's own): a condition over what the server already stores — team, platform, OS version,
//!   vitals, a policy's result, a profile's status, enrollment time, other labels — evaluated on the server
//!   whenever one of those inputs changes, so membership moves at once.
//!
//! What depends on what (a criteria label on a policy's answers, a policy's scope on a label) must not
//! close a cycle: [`find_cycle`] refuses such a write.

use crate::Millis;
use crate::platform::PlatformFamily;
use crate::policy::PolicyResponse;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// How a label's members are decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LabelKind {
    Dynamic,
    Manual,
    Criteria,
}

impl LabelKind {
    /// Fleet's `label_membership_type` (Fleet calls labels decided on the server from host data
    /// `host_vitals`), which is also the stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            LabelKind::Dynamic => "dynamic",
            LabelKind::Manual => "manual",
            LabelKind::Criteria => "host_vitals",
        }
    }

    /// Fleet's names, and `criteria` for herd's criteria labels.
    pub fn parse(text: &str) -> Option<LabelKind> {
        match text {
            "dynamic" => Some(LabelKind::Dynamic),
            "manual" => Some(LabelKind::Manual),
            "host_vitals" | "criteria" => Some(LabelKind::Criteria),
            _ => None,
        }
    }
}

/// The distributed query name of a dynamic label, as Fleet names it (osqueryd and herd-agent send it back).
pub fn query_name(label_id: i64) -> String {
    format!("fleet_label_query_{label_id}")
}

/// The label a distributed query name belongs to.
pub fn label_of_query(name: &str) -> Option<i64> {
    name.strip_prefix("fleet_label_query_")?.parse().ok().filter(|id: &i64| *id > 0)
}

/// A host's answer to a dynamic label's query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelAnswer {
    Member,
    NotMember,
    /// The query failed on the host: no answer, so not a member; the message is shown.
    Error(String),
}

impl LabelAnswer {
    /// osquery's status and row count: rows returned make a member (Fleet's rule).
    pub fn from_result(status: i64, row_count: usize, message: &str) -> LabelAnswer {
        match (status, row_count) {
            (0, 0) => LabelAnswer::NotMember,
            (0, _) => LabelAnswer::Member,
            _ => LabelAnswer::Error(if message.is_empty() {
                format!("query failed (status {status})")
            } else {
                message.to_string()
            }),
        }
    }

    pub fn is_member(&self) -> bool {
        *self == LabelAnswer::Member
    }
}

/// Which hosts a policy or profile applies to, by label (Fleet's `labels_include_any`, `labels_include_all`,
/// `labels_exclude_any`). Empty: every host its team and platform allow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelScope {
    pub include_any: Vec<i64>,
    pub include_all: Vec<i64>,
    pub exclude_any: Vec<i64>,
}

/// How a label takes part in a scope, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScopeMode {
    IncludeAny,
    IncludeAll,
    ExcludeAny,
}

impl ScopeMode {
    pub const ALL: [ScopeMode; 3] = [ScopeMode::IncludeAny, ScopeMode::IncludeAll, ScopeMode::ExcludeAny];

    /// The stored name, which is also Fleet's field name without `labels_`.
    pub fn as_str(self) -> &'static str {
        match self {
            ScopeMode::IncludeAny => "include_any",
            ScopeMode::IncludeAll => "include_all",
            ScopeMode::ExcludeAny => "exclude_any",
        }
    }

    pub fn parse(text: &str) -> Option<ScopeMode> {
        ScopeMode::ALL.into_iter().find(|m| m.as_str() == text)
    }
}

impl LabelScope {
    pub fn is_empty(&self) -> bool {
        self.include_any.is_empty() && self.include_all.is_empty() && self.exclude_any.is_empty()
    }

    /// Builds a scope from stored (label, mode) rows.
    pub fn from_rows(rows: impl IntoIterator<Item = (i64, ScopeMode)>) -> LabelScope {
        let mut scope = LabelScope::default();
        for (label, mode) in rows {
            let list = match mode {
                ScopeMode::IncludeAny => &mut scope.include_any,
                ScopeMode::IncludeAll => &mut scope.include_all,
                ScopeMode::ExcludeAny => &mut scope.exclude_any,
            };
            list.push(label);
        }
        for list in [&mut scope.include_any, &mut scope.include_all, &mut scope.exclude_any] {
            list.sort_unstable();
            list.dedup();
        }
        scope
    }

    pub fn rows(&self) -> Vec<(i64, ScopeMode)> {
        let mut rows = Vec::new();
        for (mode, list) in [
            (ScopeMode::IncludeAny, &self.include_any),
            (ScopeMode::IncludeAll, &self.include_all),
            (ScopeMode::ExcludeAny, &self.exclude_any),
        ] {
            rows.extend(list.iter().map(|id| (*id, mode)));
        }
        rows
    }

    pub fn labels(&self) -> BTreeSet<i64> {
        self.include_any.iter().chain(&self.include_all).chain(&self.exclude_any).copied().collect()
    }

    /// Whether a host with these memberships is in scope: a member of at least one `include_any` label
    /// (when there are any), of every `include_all` label, and of no `exclude_any` label.
    pub fn admits(&self, is_member: impl Fn(i64) -> bool) -> bool {
        (self.include_any.is_empty() || self.include_any.iter().any(|id| is_member(*id)))
            && self.include_all.iter().all(|id| is_member(*id))
            && !self.exclude_any.iter().any(|id| is_member(*id))
    }
}

/// A policy's result as a criterion names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyResultTerm {
    Failing,
    Passing,
    NoAnswer,
}

impl PolicyResultTerm {
    fn matches(self, response: PolicyResponse) -> bool {
        matches!(
            (self, response),
            (PolicyResultTerm::Failing, PolicyResponse::Fail)
                | (PolicyResultTerm::Passing, PolicyResponse::Pass)
                | (PolicyResultTerm::NoAnswer, PolicyResponse::NoAnswer)
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyTerm {
    pub id: i64,
    pub result: PolicyResultTerm,
}

/// A configuration profile's status on the host; `none`: the host has no row for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileStatusTerm {
    Pending,
    Verifying,
    Verified,
    Failed,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileTerm {
    pub identifier: String,
    pub status: ProfileStatusTerm,
}

/// An operating system by name (a prefix of the host's `os_version`, any case: "Ubuntu", "macOS") and an
/// optional version range: `min_version` inclusive, `below_version` exclusive, compared number by number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OsTerm {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below_version: Option<String>,
}

/// A comparison of one stored vital.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Comparison {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    Contains,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VitalTerm {
    pub field: String,
    pub op: Comparison,
    pub value: serde_json::Value,
}

/// Vitals a criterion may compare, with whether they are numbers.
pub const VITAL_FIELDS: &[(&str, bool)] = &[
    ("hostname", false),
    ("computer_name", false),
    ("hardware_model", false),
    ("hardware_vendor", false),
    ("hardware_serial", false),
    ("cpu_brand", false),
    ("osquery_version", false),
    ("os_version", false),
    ("platform", false),
    ("platform_like", false),
    ("primary_ip", false),
    ("cpu_logical_cores", true),
    ("cpu_physical_cores", true),
    ("memory", true),
    ("gigs_disk_space_available", true),
    ("percent_disk_space_available", true),
    ("gigs_total_disk_space", true),
];

/// One condition of a criteria label (JSON, externally tagged: `{"all": [{"platform": "linux"},
/// {"policy": {"id": 3, "result": "failing"}}]}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Criterion {
    /// Every enrolled host (JSON: `"any_host"`).
    AnyHost,
    All(Vec<Criterion>),
    Any(Vec<Criterion>),
    Not(Box<Criterion>),
    /// The host's team (null: no team).
    Team(Option<i64>),
    /// A platform family (`linux`, `darwin`, `windows`, `chrome`).
    Platform(String),
    /// osquery's `os_version.platform` exactly (`ubuntu`, `rhel`, `debian`, ...).
    OsPlatform(String),
    Os(OsTerm),
    Vital(VitalTerm),
    Policy(PolicyTerm),
    Profile(ProfileTerm),
    /// Enrolled at or after this instant (RFC 3339).
    EnrolledAfter(String),
    /// Enrolled before this instant (RFC 3339).
    EnrolledBefore(String),
    /// A member of another label.
    Label(i64),
}

/// What a host looks like to criteria: read by the store in the transaction that changed one of them.
#[derive(Debug, Clone, Default)]
pub struct HostFacts {
    pub team_id: Option<i64>,
    pub platform: String,
    pub platform_like: String,
    pub os_version: String,
    pub enrolled_at: Millis,
    /// Stored vitals by name (see [`VITAL_FIELDS`]); a vital never reported is absent.
    pub vitals: HashMap<&'static str, VitalValue>,
    /// Current answers to the policies the criteria name (absent: no answer).
    pub policies: HashMap<i64, PolicyResponse>,
    /// Status of the profiles the criteria name, by identifier (absent: none).
    pub profiles: HashMap<String, ProfileStatusTerm>,
    /// Labels the host is a member of (those decided before this one, for criteria naming labels).
    pub labels: BTreeSet<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum VitalValue {
    Text(String),
    Number(f64),
}

/// At most this many conditions in one label, this deep, so a stored criterion is cheap to evaluate.
pub const MAX_TERMS: usize = 100;
pub const MAX_DEPTH: usize = 8;

/// Everything a criterion depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Refs {
    pub labels: BTreeSet<i64>,
    pub policies: BTreeSet<i64>,
    pub teams: BTreeSet<i64>,
    pub profiles: BTreeSet<String>,
}

fn parse_instant(text: &str) -> Option<Millis> {
    chrono::DateTime::parse_from_rfc3339(text).ok().map(|t| t.timestamp_millis())
}

/// Version numbers of a text ("22.04.4 LTS" → [22, 4, 4]); None without a leading number.
fn version_numbers(text: &str) -> Option<Vec<u64>> {
    let start = text.find(|c: char| c.is_ascii_digit())?;
    let numbers: Vec<u64> = text[start..]
        .split(|c: char| !c.is_ascii_digit() && c != '.')
        .next()?
        .split('.')
        .filter(|part| !part.is_empty())
        .map(|part| part.parse().unwrap_or(u64::MAX))
        .collect();
    (!numbers.is_empty()).then_some(numbers)
}

fn compare_versions(a: &[u64], b: &[u64]) -> std::cmp::Ordering {
    let len = a.len().max(b.len());
    (0..len)
        .map(|i| a.get(i).unwrap_or(&0).cmp(b.get(i).unwrap_or(&0)))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

impl Criterion {
    /// Parses and checks a criterion, naming where it is wrong (`criteria.all[1].policy.result: ...`).
    pub fn parse(value: &serde_json::Value) -> Result<Criterion, String> {
        let criterion: Criterion = serde_json::from_value(value.clone()).map_err(|e| format!("criteria: {e}"))?;
        let mut terms = 0;
        criterion.check("criteria", 1, &mut terms)?;
        Ok(criterion)
    }

    fn check(&self, at: &str, depth: usize, terms: &mut usize) -> Result<(), String> {
        *terms += 1;
        if *terms > MAX_TERMS {
            return Err(format!("{at}: at most {MAX_TERMS} conditions in one label"));
        }
        if depth > MAX_DEPTH {
            return Err(format!("{at}: nested deeper than {MAX_DEPTH}"));
        }
        match self {
            Criterion::All(list) | Criterion::Any(list) => {
                let key = if matches!(self, Criterion::All(_)) { "all" } else { "any" };
                if list.is_empty() {
                    return Err(format!("{at}.{key}: must list at least one condition"));
                }
                for (i, c) in list.iter().enumerate() {
                    c.check(&format!("{at}.{key}[{i}]"), depth + 1, terms)?;
                }
            }
            Criterion::Not(inner) => inner.check(&format!("{at}.not"), depth + 1, terms)?,
            Criterion::AnyHost | Criterion::Team(_) | Criterion::Label(_) | Criterion::Policy(_) => {}
            Criterion::Platform(name) => {
                if PlatformFamily::parse(name).is_none() {
                    return Err(format!("{at}.platform: {name:?} is not one of darwin, windows, linux, chrome"));
                }
            }
            Criterion::OsPlatform(name) => {
                if name.trim().is_empty() {
                    return Err(format!("{at}.os_platform: must not be empty"));
                }
            }
            Criterion::Os(os) => {
                if os.name.trim().is_empty() && os.min_version.is_none() && os.below_version.is_none() {
                    return Err(format!("{at}.os: give a name, a min_version or a below_version"));
                }
                for (field, version) in [("min_version", &os.min_version), ("below_version", &os.below_version)] {
                    if let Some(v) = version
                        && version_numbers(v).is_none()
                    {
                        return Err(format!("{at}.os.{field}: {v:?} is not a version number"));
                    }
                }
            }
            Criterion::Vital(vital) => {
                let Some((_, numeric)) = VITAL_FIELDS.iter().find(|(name, _)| *name == vital.field) else {
                    let known: Vec<&str> = VITAL_FIELDS.iter().map(|(n, _)| *n).collect();
                    return Err(format!("{at}.vital.field: {:?} is not one of {}", vital.field, known.join(", ")));
                };
                let value_ok = if *numeric {
                    vital.value.is_number() && vital.op != Comparison::Contains
                } else {
                    vital.value.is_string()
                };
                if !value_ok {
                    let want = if *numeric { "a number (and no contains)" } else { "a string" };
                    return Err(format!("{at}.vital.value: {} compares with {want}", vital.field));
                }
            }
            Criterion::Profile(profile) => {
                if profile.identifier.trim().is_empty() {
                    return Err(format!("{at}.profile.identifier: must not be empty"));
                }
            }
            Criterion::EnrolledAfter(text) | Criterion::EnrolledBefore(text) => {
                if parse_instant(text).is_none() {
                    return Err(format!("{at}: {text:?} is not an RFC 3339 instant (2026-01-31T00:00:00Z)"));
                }
            }
        }
        Ok(())
    }

    /// What this criterion depends on.
    pub fn refs(&self) -> Refs {
        let mut refs = Refs::default();
        self.collect_refs(&mut refs);
        refs
    }

    fn collect_refs(&self, refs: &mut Refs) {
        match self {
            Criterion::All(list) | Criterion::Any(list) => list.iter().for_each(|c| c.collect_refs(refs)),
            Criterion::Not(inner) => inner.collect_refs(refs),
            Criterion::Team(Some(team)) => {
                refs.teams.insert(*team);
            }
            Criterion::Label(label) => {
                refs.labels.insert(*label);
            }
            Criterion::Policy(policy) => {
                refs.policies.insert(policy.id);
            }
            Criterion::Profile(profile) => {
                refs.profiles.insert(profile.identifier.clone());
            }
            _ => {}
        }
    }

    /// Whether a host with these facts meets the criterion.
    pub fn matches(&self, host: &HostFacts) -> bool {
        match self {
            Criterion::AnyHost => true,
            Criterion::All(list) => list.iter().all(|c| c.matches(host)),
            Criterion::Any(list) => list.iter().any(|c| c.matches(host)),
            Criterion::Not(inner) => !inner.matches(host),
            Criterion::Team(team) => host.team_id == *team,
            Criterion::Platform(family) => PlatformFamily::of_host_platform(&host.platform, &host.platform_like)
                .is_some_and(|f| f.as_str() == family),
            Criterion::OsPlatform(name) => host.platform.eq_ignore_ascii_case(name.trim()),
            Criterion::Os(os) => {
                let name = os.name.trim();
                let named = name.is_empty()
                    || host.os_version.get(..name.len()).is_some_and(|prefix| prefix.eq_ignore_ascii_case(name));
                let version = version_numbers(host.os_version.get(name.len()..).unwrap_or(""));
                let in_range = |bound: &Option<String>, want: fn(std::cmp::Ordering) -> bool| match bound {
                    None => true,
                    Some(bound) => match (&version, version_numbers(bound)) {
                        (Some(v), Some(b)) => want(compare_versions(v, &b)),
                        _ => false,
                    },
                };
                named && in_range(&os.min_version, |o| o.is_ge()) && in_range(&os.below_version, |o| o.is_lt())
            }
            Criterion::Vital(term) => match (host.vitals.get(term.field.as_str()), &term.value) {
                (Some(VitalValue::Number(have)), serde_json::Value::Number(want)) => {
                    let want = want.as_f64().unwrap_or(f64::NAN);
                    match term.op {
                        Comparison::Eq => *have == want,
                        Comparison::Ne => *have != want,
                        Comparison::Lt => *have < want,
                        Comparison::Lte => *have <= want,
                        Comparison::Gt => *have > want,
                        Comparison::Gte => *have >= want,
                        Comparison::Contains => false,
                    }
                }
                (Some(VitalValue::Text(have)), serde_json::Value::String(want)) => {
                    let (have, want) = (have.to_lowercase(), want.to_lowercase());
                    match term.op {
                        Comparison::Eq => have == want,
                        Comparison::Ne => have != want,
                        Comparison::Lt => have < want,
                        Comparison::Lte => have <= want,
                        Comparison::Gt => have > want,
                        Comparison::Gte => have >= want,
                        Comparison::Contains => have.contains(&want),
                    }
                }
                // Never reported: no comparison holds (and `ne` neither: unknown is not "different").
                _ => false,
            },
            Criterion::Policy(term) => {
                term.result.matches(host.policies.get(&term.id).copied().unwrap_or(PolicyResponse::NoAnswer))
            }
            Criterion::Profile(term) => {
                host.profiles.get(&term.identifier).copied().unwrap_or(ProfileStatusTerm::None) == term.status
            }
            Criterion::EnrolledAfter(text) => parse_instant(text).is_some_and(|at| host.enrolled_at >= at),
            Criterion::EnrolledBefore(text) => parse_instant(text).is_some_and(|at| host.enrolled_at < at),
            Criterion::Label(label) => host.labels.contains(label),
        }
    }
}

/// A node of the dependency graph [`find_cycle`] walks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Node {
    Label(i64),
    Policy(i64),
    Profile(String),
}

/// What depends on what: a criteria label on the labels, policies and profiles it names; a policy or
/// profile on the labels of its scope (leaving the scope drops its answer or removes it). Returns a cycle,
/// if there is one, as the nodes along it.
pub fn find_cycle(edges: &BTreeMap<Node, BTreeSet<Node>>) -> Option<Vec<Node>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        node: &Node,
        edges: &BTreeMap<Node, BTreeSet<Node>>,
        marks: &mut HashMap<Node, Mark>,
        path: &mut Vec<Node>,
    ) -> Option<Vec<Node>> {
        match marks.get(node) {
            Some(Mark::Done) => return None,
            Some(Mark::Visiting) => {
                let start = path.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(node.clone());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(node.clone(), Mark::Visiting);
        path.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(node.clone(), Mark::Done);
        None
    }
    let mut marks = HashMap::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, edges, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

/// The order criteria labels are decided in for one host: a label after the labels it names. Labels in a
/// cycle (refused on write, so only from a damaged store) come last, decided with what is known.
pub fn evaluation_order(criteria: &BTreeMap<i64, Criterion>) -> Vec<i64> {
    let mut order = Vec::with_capacity(criteria.len());
    let mut placed = BTreeSet::new();
    let mut pending: Vec<i64> = criteria.keys().copied().collect();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|id| {
            let ready =
                criteria[id].refs().labels.iter().all(|dep| !criteria.contains_key(dep) || placed.contains(dep));
            if ready {
                order.push(*id);
                placed.insert(*id);
            }
            !ready
        });
        if pending.len() == before {
            order.append(&mut pending);
        }
    }
    order
}

/// A label herd creates and nobody may edit or delete: Fleet's built-in labels, with Fleet's query text
/// (what the label means) and the criterion herd decides it with from the platform every host reports.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    pub name: &'static str,
    pub description: &'static str,
    pub query: &'static str,
    /// The criterion as JSON text.
    pub criteria: &'static str,
}

pub const BUILTINS: &[Builtin] = &[
    Builtin {
        name: "All Hosts",
        description: "All hosts which have enrolled in Fleet",
        query: "SELECT 1;",
        criteria: r#""any_host""#,
    },
    Builtin {
        name: "macOS",
        description: "All macOS hosts",
        query: "SELECT 1 FROM os_version WHERE platform = 'darwin';",
        criteria: r#"{"platform": "darwin"}"#,
    },
    Builtin {
        name: "Ubuntu Linux",
        description: "All Ubuntu hosts",
        query: "SELECT 1 FROM os_version WHERE platform = 'ubuntu' or platform_like like '%ubuntu%';",
        criteria: r#"{"any": [{"os_platform": "ubuntu"},
            {"vital": {"field": "platform_like", "op": "contains", "value": "ubuntu"}}]}"#,
    },
    Builtin {
        name: "CentOS Linux",
        description: "All CentOS hosts",
        query: "SELECT 1 FROM os_version WHERE platform = 'centos' OR name LIKE '%centos%'",
        criteria: r#"{"any": [{"os_platform": "centos"},
            {"vital": {"field": "os_version", "op": "contains", "value": "centos"}}]}"#,
    },
    Builtin {
        name: "MS Windows",
        description: "All Windows hosts",
        query: "SELECT 1 FROM os_version WHERE platform = 'windows';",
        criteria: r#"{"platform": "windows"}"#,
    },
    Builtin {
        name: "Red Hat Linux",
        description: "All Red Hat Enterprise Linux hosts",
        query: "SELECT 1 FROM os_version WHERE name LIKE '%red hat%'",
        criteria: r#"{"vital": {"field": "os_version", "op": "contains", "value": "red hat"}}"#,
    },
    Builtin {
        name: "All Linux",
        description: "All Linux distributions",
        query: "SELECT 1 FROM osquery_info WHERE build_platform LIKE '%ubuntu%' OR build_distro LIKE '%centos%';",
        criteria: r#"{"platform": "linux"}"#,
    },
    Builtin {
        name: "chrome",
        description: "All Chrome hosts",
        query: "select 1 from os_version where platform = 'chrome';",
        criteria: r#"{"platform": "chrome"}"#,
    },
    Builtin {
        name: "macOS 14+ (Sonoma+)",
        description: "macOS hosts with version 14 and above",
        query: "select 1 from os_version where platform = 'darwin' and major >= 14;",
        criteria: r#"{"all": [{"platform": "darwin"}, {"os": {"name": "macOS", "min_version": "14"}}]}"#,
    },
    Builtin {
        name: "Fedora Linux",
        description: "All Fedora hosts",
        query: "select 1 from os_version where name like '%fedora%';",
        criteria: r#"{"vital": {"field": "os_version", "op": "contains", "value": "fedora"}}"#,
    },
    Builtin { name: "iOS", description: "All iOS hosts", query: "", criteria: r#"{"os_platform": "ios"}"# },
    Builtin { name: "iPadOS", description: "All iPadOS hosts", query: "", criteria: r#"{"os_platform": "ipados"}"# },
    Builtin { name: "Android", description: "All Android hosts", query: "", criteria: r#"{"os_platform": "android"}"# },
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts() -> HostFacts {
        HostFacts {
            team_id: Some(2),
            platform: "ubuntu".into(),
            platform_like: "debian".into(),
            os_version: "Ubuntu 22.04.4 LTS".into(),
            enrolled_at: parse_instant("2026-03-01T00:00:00Z").unwrap(),
            vitals: [("memory", VitalValue::Number(16e9)), ("hostname", VitalValue::Text("Build-07".into()))]
                .into_iter()
                .collect(),
            policies: [(5, PolicyResponse::Fail), (6, PolicyResponse::Pass)].into_iter().collect(),
            profiles: [("com.example.ssh".to_string(), ProfileStatusTerm::Verified)].into_iter().collect(),
            labels: [9].into_iter().collect(),
        }
    }

    #[test]
    fn criteria_table() {
        let host = facts();
        let cases: &[(serde_json::Value, bool)] = &[
            (json!("any_host"), true),
            (json!({"team": 2}), true),
            (json!({"team": null}), false),
            (json!({"platform": "linux"}), true),
            (json!({"platform": "darwin"}), false),
            (json!({"os_platform": "Ubuntu"}), true),
            (json!({"os": {"name": "ubuntu"}}), true),
            (json!({"os": {"name": "Ubuntu", "min_version": "22.04"}}), true),
            (json!({"os": {"name": "Ubuntu", "min_version": "22.04.5"}}), false),
            (json!({"os": {"name": "Ubuntu", "below_version": "24.04"}}), true),
            (json!({"os": {"name": "Ubuntu", "below_version": "22.04"}}), false),
            (json!({"os": {"name": "Debian"}}), false),
            (json!({"vital": {"field": "memory", "op": "gte", "value": 8_000_000_000u64}}), true),
            (json!({"vital": {"field": "memory", "op": "lt", "value": 8_000_000_000u64}}), false),
            (json!({"vital": {"field": "hostname", "op": "contains", "value": "build"}}), true),
            (json!({"vital": {"field": "cpu_brand", "op": "ne", "value": "x"}}), false),
            (json!({"policy": {"id": 5, "result": "failing"}}), true),
            (json!({"policy": {"id": 6, "result": "failing"}}), false),
            (json!({"policy": {"id": 7, "result": "no_answer"}}), true),
            (json!({"profile": {"identifier": "com.example.ssh", "status": "verified"}}), true),
            (json!({"profile": {"identifier": "com.example.other", "status": "none"}}), true),
            (json!({"enrolled_after": "2026-02-01T00:00:00Z"}), true),
            (json!({"enrolled_before": "2026-02-01T00:00:00Z"}), false),
            (json!({"label": 9}), true),
            (json!({"label": 10}), false),
            (json!({"all": [{"platform": "linux"}, {"not": {"team": 3}}]}), true),
            (json!({"any": [{"platform": "darwin"}, {"label": 10}]}), false),
        ];
        for (value, want) in cases {
            let criterion = Criterion::parse(value).unwrap_or_else(|e| panic!("{value}: {e}"));
            assert_eq!(criterion.matches(&host), *want, "{value}");
        }
    }

    #[test]
    fn refusals_name_the_place() {
        let cases: &[(serde_json::Value, &str)] = &[
            (json!({"all": []}), "criteria.all: must list"),
            (json!({"all": [{"platform": "beos"}]}), "criteria.all[0].platform"),
            (json!({"any": [{"os": {"name": "x", "min_version": "abc"}}]}), "criteria.any[0].os.min_version"),
            (json!({"vital": {"field": "ram", "op": "eq", "value": 1}}), "criteria.vital.field"),
            (json!({"vital": {"field": "memory", "op": "contains", "value": 1}}), "criteria.vital.value"),
            (json!({"vital": {"field": "hostname", "op": "eq", "value": 1}}), "criteria.vital.value"),
            (json!({"enrolled_after": "yesterday"}), "not an RFC 3339"),
            (json!({"policy": {"id": 1, "result": "red"}}), "criteria:"),
            (json!({"colour": 1}), "criteria:"),
        ];
        for (value, want) in cases {
            let err = Criterion::parse(value).unwrap_err();
            assert!(err.contains(want), "{value}: {err}");
        }
        let mut deep = json!({"team": 1});
        for _ in 0..MAX_DEPTH {
            deep = json!({"not": deep});
        }
        assert!(Criterion::parse(&deep).unwrap_err().contains("nested deeper"));
        let many = json!({"any": (0..MAX_TERMS).map(|i| json!({"label": i})).collect::<Vec<_>>()});
        assert!(Criterion::parse(&many).unwrap_err().contains("at most"));
    }

    #[test]
    fn scope_table() {
        let members: BTreeSet<i64> = [1, 2].into_iter().collect();
        let is = |id| members.contains(&id);
        let scope = |any: &[i64], all: &[i64], ex: &[i64]| LabelScope {
            include_any: any.to_vec(),
            include_all: all.to_vec(),
            exclude_any: ex.to_vec(),
        };
        let cases = [
            (scope(&[], &[], &[]), true),
            (scope(&[1, 5], &[], &[]), true),
            (scope(&[5], &[], &[]), false),
            (scope(&[], &[1, 2], &[]), true),
            (scope(&[], &[1, 5], &[]), false),
            (scope(&[], &[], &[2]), false),
            (scope(&[], &[], &[5]), true),
            (scope(&[1], &[], &[2]), false),
        ];
        for (scope, want) in cases {
            assert_eq!(scope.admits(is), want, "{scope:?}");
        }
        let rows = scope(&[3, 1], &[2], &[4]).rows();
        assert_eq!(LabelScope::from_rows(rows), scope(&[1, 3], &[2], &[4]));
    }

    #[test]
    fn cycles_and_order() {
        let edges = |list: &[(Node, Node)]| {
            let mut map: BTreeMap<Node, BTreeSet<Node>> = BTreeMap::new();
            for (a, b) in list {
                map.entry(a.clone()).or_default().insert(b.clone());
            }
            map
        };
        use Node::{Label, Policy, Profile};
        assert_eq!(find_cycle(&edges(&[(Label(1), Label(2)), (Label(2), Policy(3))])), None);
        let cycle = find_cycle(&edges(&[(Label(1), Policy(3)), (Policy(3), Label(1))])).unwrap();
        assert_eq!(cycle.first(), cycle.last());
        assert!(find_cycle(&edges(&[(Label(1), Label(1))])).is_some());
        assert!(find_cycle(&edges(&[(Label(1), Profile("p".into())), (Profile("p".into()), Label(1))])).is_some());

        let parse = |v: serde_json::Value| Criterion::parse(&v).unwrap();
        let criteria: BTreeMap<i64, Criterion> = [
            (1, parse(json!({"label": 3}))),
            (2, parse(json!({"team": 1}))),
            (3, parse(json!({"all": [{"label": 2}, {"label": 40}]}))),
        ]
        .into_iter()
        .collect();
        assert_eq!(evaluation_order(&criteria), vec![2, 3, 1]);
    }

    #[test]
    fn answers_and_names() {
        assert_eq!(LabelAnswer::from_result(0, 1, ""), LabelAnswer::Member);
        assert_eq!(LabelAnswer::from_result(0, 0, ""), LabelAnswer::NotMember);
        assert_eq!(LabelAnswer::from_result(1, 0, "no such table: x"), LabelAnswer::Error("no such table: x".into()));
        assert_eq!(label_of_query(&query_name(12)), Some(12));
        assert_eq!(label_of_query("fleet_label_query_x"), None);
        assert_eq!(label_of_query("fleet_policy_query_1"), None);
        for builtin in BUILTINS {
            Criterion::parse(&serde_json::from_str(builtin.criteria).unwrap()).unwrap();
        }
    }
}
