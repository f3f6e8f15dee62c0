//! Policies: which hosts a policy targets, what a result means, and how results move the pass/fail counts.

use crate::platform::PlatformFamily;
use serde::{Deserialize, Serialize};

/// Prefix of policy query names in distributed/read and distributed/write (Fleet's naming).
pub const QUERY_PREFIX: &str = "fleet_policy_query_";

/// The name a policy's query is handed out under: its id and the revision handed out
/// (`fleet_policy_query_<id>_<revision>`), so the answer is attributed to exactly the query the host ran,
/// whichever server hands it out and whichever takes the answer.
pub fn query_name(policy_id: i64, revision: i64) -> String {
    format!("{QUERY_PREFIX}{policy_id}_{revision}")
}

/// The name of a policy's query without a revision (Fleet's form; herd-agent's own re-checks): the answer
/// counts for the revision current when it arrives.
pub fn unrevised_query_name(policy_id: i64) -> String {
    format!("{QUERY_PREFIX}{policy_id}")
}

/// The policy id and, when named, the revision of a policy query name.
pub fn policy_of_query(name: &str) -> Option<(i64, Option<i64>)> {
    let rest = name.strip_prefix(QUERY_PREFIX)?;
    let positive = |text: &str| text.parse().ok().filter(|n: &i64| *n > 0);
    match rest.split_once('_') {
        Some((id, revision)) => Some((positive(id)?, Some(positive(revision)?))),
        None => Some((positive(rest)?, None)),
    }
}

/// The platforms a policy targets: every platform (empty), or a set of families.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyPlatforms(Vec<PlatformFamily>);

impl PolicyPlatforms {
    /// Parses Fleet's form: "" or a comma list of darwin, windows, linux, chrome (spaces allowed).
    pub fn parse(text: &str) -> Result<PolicyPlatforms, String> {
        let mut families = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let family = PlatformFamily::parse(part)
                .ok_or_else(|| format!("unknown platform {part:?}; expected darwin, windows, linux or chrome"))?;
            if !families.contains(&family) {
                families.push(family);
            }
        }
        families.sort_by_key(|f| f.as_str());
        Ok(PolicyPlatforms(families))
    }

    /// Canonical text: sorted, comma-separated, "" for all.
    pub fn to_text(&self) -> String {
        self.0.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(",")
    }

    /// Whether a host of `family` runs the policy. A host whose platform is unknown runs only policies
    /// for every platform.
    pub fn applies_to(&self, family: Option<PlatformFamily>) -> bool {
        self.0.is_empty() || family.is_some_and(|f| self.0.contains(&f))
    }
}

/// A host's answer to a policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PolicyResponse {
    Pass,
    Fail,
    /// The query errored on the host (status ≠ 0), or has not run yet.
    NoAnswer,
}

impl PolicyResponse {
    /// osquery's rule: status ≠ 0 → no answer; status 0 with at least one row → pass; no row → fail.
    pub fn from_result(status: i64, row_count: usize) -> PolicyResponse {
        match (status, row_count) {
            (0, 0) => PolicyResponse::Fail,
            (0, _) => PolicyResponse::Pass,
            _ => PolicyResponse::NoAnswer,
        }
    }

    /// Fleet's wire form: "pass", "fail" or "".
    pub fn as_wire(self) -> &'static str {
        match self {
            PolicyResponse::Pass => "pass",
            PolicyResponse::Fail => "fail",
            PolicyResponse::NoAnswer => "",
        }
    }

    /// Stored form: 1 pass, 0 fail, NULL no answer.
    pub fn to_stored(self) -> Option<i64> {
        match self {
            PolicyResponse::Pass => Some(1),
            PolicyResponse::Fail => Some(0),
            PolicyResponse::NoAnswer => None,
        }
    }

    pub fn from_stored(value: Option<i64>) -> PolicyResponse {
        match value {
            Some(0) => PolicyResponse::Fail,
            Some(_) => PolicyResponse::Pass,
            None => PolicyResponse::NoAnswer,
        }
    }
}

/// How a change of one host's answer moves a policy's (passing, failing) counts.
pub fn count_delta(old: PolicyResponse, new: PolicyResponse) -> (i64, i64) {
    let weight = |r: PolicyResponse| match r {
        PolicyResponse::Pass => (1, 0),
        PolicyResponse::Fail => (0, 1),
        PolicyResponse::NoAnswer => (0, 0),
    };
    let (old_pass, old_fail) = weight(old);
    let (new_pass, new_fail) = weight(new);
    (new_pass - old_pass, new_fail - old_fail)
}

#[cfg(test)]
mod tests {
    use super::*;
    use PolicyResponse::*;

    #[test]
    fn platforms() {
        assert_eq!(PolicyPlatforms::parse("").unwrap().to_text(), "");
        assert_eq!(PolicyPlatforms::parse("linux, darwin,linux").unwrap().to_text(), "darwin,linux");
        assert!(PolicyPlatforms::parse("linux,beos").unwrap_err().contains("beos"));
        let linux = PolicyPlatforms::parse("linux").unwrap();
        assert!(linux.applies_to(Some(PlatformFamily::Linux)));
        assert!(!linux.applies_to(Some(PlatformFamily::Darwin)));
        assert!(!linux.applies_to(None));
        assert!(PolicyPlatforms::default().applies_to(None));
    }

    #[test]
    fn responses() {
        assert_eq!(PolicyResponse::from_result(0, 3), Pass);
        assert_eq!(PolicyResponse::from_result(0, 0), Fail);
        assert_eq!(PolicyResponse::from_result(1, 5), NoAnswer);
        for r in [Pass, Fail, NoAnswer] {
            assert_eq!(PolicyResponse::from_stored(r.to_stored()), r);
        }
        assert_eq!(Pass.as_wire(), "pass");
        assert_eq!(NoAnswer.as_wire(), "");
    }

    #[test]
    fn deltas() {
        let cases = [
            (NoAnswer, Pass, (1, 0)),
            (NoAnswer, Fail, (0, 1)),
            (Pass, Fail, (-1, 1)),
            (Fail, Pass, (1, -1)),
            (Pass, NoAnswer, (-1, 0)),
            (Fail, Fail, (0, 0)),
        ];
        for (old, new, want) in cases {
            assert_eq!(count_delta(old, new), want, "{old:?} → {new:?}");
        }
    }

    #[test]
    fn query_names() {
        assert_eq!(policy_of_query(&query_name(42, 3)), Some((42, Some(3))));
        assert_eq!(policy_of_query(&unrevised_query_name(42)), Some((42, None)));
        assert_eq!(policy_of_query("fleet_policy_query_x"), None);
        assert_eq!(policy_of_query("fleet_policy_query_-1"), None);
        assert_eq!(policy_of_query("fleet_policy_query_1_x"), None);
        assert_eq!(policy_of_query("fleet_policy_query_1_0"), None);
        assert_eq!(policy_of_query("fleet_policy_query_1_2_3"), None);
        assert_eq!(policy_of_query("fleet_detail_query_uptime"), None);
    }
}
