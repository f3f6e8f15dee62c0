//! Roles and what each may do. Every REST endpoint asks [`Actor::may`] before it acts.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Observer,
    Maintainer,
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "admin" => Some(Self::Admin),
            "maintainer" => Some(Self::Maintainer),
            "observer" => Some(Self::Observer),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Maintainer => "maintainer",
            Self::Observer => "observer",
        }
    }
}

/// Where an action applies: the whole fleet, or one team's slice of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Global,
    Team(i64),
}

impl Scope {
    pub fn of_team(team_id: Option<i64>) -> Self {
        team_id.map_or(Scope::Global, Scope::Team)
    }
}

/// Everything a user can ask for, grouped by the least role it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Hosts, teams, policies, activities: look.
    Read,
    /// Ask hosts to refetch (observers may, as in Fleet).
    Refetch,
    /// Hosts, policies, enroll secrets: change.
    Write,
    /// A team's own settings (name, agent options).
    AdministerTeam,
    /// Users, teams' existence, server configuration: global admins only.
    AdministerServer,
}

/// The authenticated user as the authorization rules see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: i64,
    pub global_role: Option<Role>,
    pub team_roles: Vec<(i64, Role)>,
}

impl Actor {
    /// The role that applies in `scope`: a global role applies everywhere; a team role only in its team,
    /// and the stronger of the two wins.
    pub fn role_in(&self, scope: Scope) -> Option<Role> {
        let team_role = match scope {
            Scope::Global => None,
            Scope::Team(team) => self.team_roles.iter().find(|(id, _)| *id == team).map(|(_, role)| *role),
        };
        self.global_role.max(team_role)
    }

    pub fn may(&self, action: Action, scope: Scope) -> bool {
        let role = match action {
            Action::AdministerServer => return self.global_role == Some(Role::Admin),
            _ => self.role_in(scope),
        };
        let needed = match action {
            Action::Read | Action::Refetch => Role::Observer,
            Action::Write => Role::Maintainer,
            Action::AdministerTeam | Action::AdministerServer => Role::Admin,
        };
        role.is_some_and(|role| role >= needed)
    }

    /// Teams whose objects this user may see, or `None` when the user sees every team (global role).
    pub fn visible_teams(&self) -> Option<Vec<i64>> {
        if self.global_role.is_some() { None } else { Some(self.team_roles.iter().map(|(id, _)| *id).collect()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Action::*;

    fn actor(global: Option<Role>, teams: &[(i64, Role)]) -> Actor {
        Actor { user_id: 1, global_role: global, team_roles: teams.to_vec() }
    }

    #[test]
    fn authorization_table() {
        let admin = actor(Some(Role::Admin), &[]);
        let maintainer = actor(Some(Role::Maintainer), &[]);
        let observer = actor(Some(Role::Observer), &[]);
        let team1_admin = actor(None, &[(1, Role::Admin)]);
        let team1_maint = actor(None, &[(1, Role::Maintainer)]);
        let team1_obs = actor(None, &[(1, Role::Observer)]);
        let observer_but_team1_admin = actor(Some(Role::Observer), &[(1, Role::Admin)]);
        let nobody = actor(None, &[]);
        let g = Scope::Global;
        let t1 = Scope::Team(1);
        let t2 = Scope::Team(2);
        #[rustfmt::skip]
        let cases: &[(&Actor, Action, Scope, bool)] = &[
            (&admin, AdministerServer, g, true), (&admin, Write, t2, true), (&admin, AdministerTeam, t1, true),
            (&maintainer, AdministerServer, g, false), (&maintainer, Write, g, true), (&maintainer, Write, t1, true),
            (&maintainer, AdministerTeam, t1, false), (&maintainer, Read, t2, true),
            (&observer, Read, g, true), (&observer, Refetch, t1, true), (&observer, Write, g, false),
            (&team1_admin, AdministerTeam, t1, true), (&team1_admin, AdministerTeam, t2, false),
            (&team1_admin, Write, t1, true), (&team1_admin, Read, g, false), (&team1_admin, AdministerServer, g, false),
            (&team1_maint, Write, t1, true), (&team1_maint, Write, t2, false), (&team1_maint, AdministerTeam, t1, false),
            (&team1_obs, Read, t1, true), (&team1_obs, Refetch, t1, true), (&team1_obs, Write, t1, false),
            (&team1_obs, Read, t2, false), (&team1_obs, Read, g, false),
            (&observer_but_team1_admin, Write, t1, true), (&observer_but_team1_admin, Write, t2, false),
            (&observer_but_team1_admin, Read, t2, true),
            (&nobody, Read, g, false), (&nobody, Read, t1, false),
        ];
        for (i, (who, action, scope, want)) in cases.iter().enumerate() {
            assert_eq!(who.may(*action, *scope), *want, "case {i}: {who:?} {action:?} {scope:?}");
        }
    }

    #[test]
    fn visibility() {
        assert_eq!(actor(Some(Role::Observer), &[]).visible_teams(), None);
        assert_eq!(actor(None, &[(3, Role::Observer), (5, Role::Admin)]).visible_teams(), Some(vec![3, 5]));
    }

    #[test]
    fn role_names_round_trip() {
        for role in [Role::Admin, Role::Maintainer, Role::Observer] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
    }
}
