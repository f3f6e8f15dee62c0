//! A host's migration off a previous management system: its states and the rule that ends one.

use std::fmt;

/// Where a host's migration stands. Stored as text (`''` for never started, as rows have held since the
/// migration arrived) and converted at the row boundary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MigrationState {
    /// No migration was ever started on the host.
    #[default]
    NotStarted,
    /// Its user (or an admin) started it; the window is open until the host reports the old system gone.
    Started,
    /// The host reported the old system gone while a migration was started.
    Migrated,
    /// The window closed with the old system still there.
    TimedOut,
}

impl MigrationState {
    /// The stored spelling, also Fleet's host view's `mdm_migration.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            MigrationState::NotStarted => "",
            MigrationState::Started => "started",
            MigrationState::Migrated => "migrated",
            MigrationState::TimedOut => "timed_out",
        }
    }

    pub fn parse(text: &str) -> Option<MigrationState> {
        [MigrationState::NotStarted, MigrationState::Started, MigrationState::Migrated, MigrationState::TimedOut]
            .into_iter()
            .find(|state| state.as_str() == text)
    }

    /// Whether a host in this state that now reports `managed_by_other` has finished migrating: only a
    /// started migration ends, and only when the old system is gone.
    pub fn completed_by(self, managed_by_other: bool) -> bool {
        self == MigrationState::Started && !managed_by_other
    }
}

/// A stored state herd does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMigrationState(pub String);

impl fmt::Display for UnknownMigrationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown migration state {:?}", self.0)
    }
}

impl std::error::Error for UnknownMigrationState {}

impl TryFrom<String> for MigrationState {
    type Error = UnknownMigrationState;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        MigrationState::parse(&text).ok_or(UnknownMigrationState(text))
    }
}

/// Whether hosts of this platform family are offered the move off their previous management system: macOS
/// (Fleet's migration, read from osquery's `mdm` table) and Linux or not yet known (the admin's migration query);
/// never Windows, whose fleetd takes the offer (`needs_mdm_migration`) as an order to unenroll from its Windows
/// MDM, which herd cannot replace, and where Fleet never sends it for this setting either.
pub fn offered_on(family: Option<crate::platform::PlatformFamily>) -> bool {
    !matches!(family, Some(crate::platform::PlatformFamily::Windows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_hosts_are_never_offered_the_migration() {
        use crate::platform::PlatformFamily::*;
        let cases = [(Some(Darwin), true), (Some(Linux), true), (None, true), (Some(Windows), false)];
        for (family, offered) in cases {
            assert_eq!(offered_on(family), offered, "{family:?}");
        }
    }

    #[test]
    fn states_round_trip_and_only_a_started_migration_completes() {
        for state in
            [MigrationState::NotStarted, MigrationState::Started, MigrationState::Migrated, MigrationState::TimedOut]
        {
            assert_eq!(MigrationState::parse(state.as_str()), Some(state));
            assert_eq!(MigrationState::try_from(state.as_str().to_string()), Ok(state));
        }
        assert_eq!(MigrationState::try_from("paused".to_string()), Err(UnknownMigrationState("paused".into())));
        let cases = [
            (MigrationState::NotStarted, false, false),
            (MigrationState::Started, false, true),
            (MigrationState::Started, true, false),
            (MigrationState::Migrated, false, false),
            (MigrationState::TimedOut, false, false),
        ];
        for (state, managed, completes) in cases {
            assert_eq!(state.completed_by(managed), completes, "{state:?} managed={managed}");
        }
    }
}
