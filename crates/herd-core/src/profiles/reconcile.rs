//! What a host should have against what its rows say it has: the commands that bring them in line. The
//! store reads both inside the reconcile job's transaction and applies the commands in the order given.

use super::Operation;

/// A profile the host should have (of its team, or of "no team").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    pub uuid: String,
    pub identifier: String,
    pub name: String,
    pub checksum: String,
}

/// One of the host's rows: what was last sent for an identifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub identifier: String,
    pub profile_uuid: Option<String>,
    pub checksum: String,
    pub operation: Operation,
}

/// A command to queue for the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// The profile is no longer expected: remove what it installed.
    Remove { identifier: String },
    /// Install (or reinstall) a profile; `has_row` says whether the host already has a row for its
    /// identifier (updated in place) or needs one.
    Install { profile: Expected, has_row: bool },
}

/// The commands, removes first (so a move between teams restores what the old profile replaced before the
/// new one writes), then installs in the expected order; a row already installing the same profile with the
/// same checksum needs nothing.
pub fn commands(expected: &[Expected], current: &[Current]) -> Vec<Command> {
    let mut out = Vec::new();
    for row in current {
        if row.operation == Operation::Install && !expected.iter().any(|e| e.identifier == row.identifier) {
            out.push(Command::Remove { identifier: row.identifier.clone() });
        }
    }
    for profile in expected {
        let row = current.iter().find(|c| c.identifier == profile.identifier);
        let up_to_date = row.is_some_and(|c| {
            c.operation == Operation::Install
                && c.profile_uuid.as_deref() == Some(profile.uuid.as_str())
                && c.checksum == profile.checksum
        });
        if !up_to_date {
            out.push(Command::Install { profile: profile.clone(), has_row: row.is_some() });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expected(identifier: &str, uuid: &str, checksum: &str) -> Expected {
        Expected {
            uuid: uuid.into(),
            identifier: identifier.into(),
            name: identifier.into(),
            checksum: checksum.into(),
        }
    }

    fn current(identifier: &str, uuid: Option<&str>, checksum: &str, operation: Operation) -> Current {
        Current {
            identifier: identifier.into(),
            profile_uuid: uuid.map(Into::into),
            checksum: checksum.into(),
            operation,
        }
    }

    fn install(e: &Expected, has_row: bool) -> Command {
        Command::Install { profile: e.clone(), has_row }
    }

    #[test]
    fn table() {
        use Operation::{Install, Remove};
        let motd = expected("com.acme.motd", "u1", "c1");
        let motd_edited = expected("com.acme.motd", "u1", "c2");
        let motd_other_team = expected("com.acme.motd", "u9", "c1");
        let sysctl = expected("com.acme.sysctl", "u2", "s1");
        let remove = |id: &str| Command::Remove { identifier: id.into() };
        type Case = (&'static str, Vec<Expected>, Vec<Current>, Vec<Command>);
        let cases: Vec<Case> = vec![
            ("nothing expected, nothing there", vec![], vec![], vec![]),
            (
                "a new host gets every profile, in order",
                vec![motd.clone(), sysctl.clone()],
                vec![],
                vec![install(&motd, false), install(&sysctl, false)],
            ),
            (
                "up to date: nothing",
                vec![motd.clone()],
                vec![current("com.acme.motd", Some("u1"), "c1", Install)],
                vec![],
            ),
            (
                "an edited profile is reinstalled in place",
                vec![motd_edited.clone()],
                vec![current("com.acme.motd", Some("u1"), "c1", Install)],
                vec![install(&motd_edited, true)],
            ),
            (
                "the same identifier from another team's profile is reinstalled",
                vec![motd_other_team.clone()],
                vec![current("com.acme.motd", Some("u1"), "c1", Install)],
                vec![install(&motd_other_team, true)],
            ),
            (
                "a profile no longer expected is removed",
                vec![],
                vec![current("com.acme.motd", Some("u1"), "c1", Install)],
                vec![remove("com.acme.motd")],
            ),
            (
                "a removal already under way is left alone",
                vec![],
                vec![current("com.acme.motd", None, "c1", Remove)],
                vec![],
            ),
            (
                "a removed profile expected again is installed on its row",
                vec![motd.clone()],
                vec![current("com.acme.motd", None, "c1", Remove)],
                vec![install(&motd, true)],
            ),
            (
                "removes come before installs (a team move)",
                vec![sysctl.clone()],
                vec![current("com.acme.motd", Some("u1"), "c1", Install)],
                vec![remove("com.acme.motd"), install(&sysctl, false)],
            ),
        ];
        for (what, expected, current, want) in cases {
            assert_eq!(commands(&expected, &current), want, "{what}");
        }
    }
}
