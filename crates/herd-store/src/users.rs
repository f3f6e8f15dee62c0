//! Users, their sessions and their team roles; teams.

use crate::config::StoredSecret;
use crate::sql::to_bool;
use crate::{Result, Store, StoreError};
use herd_core::Millis;
use herd_core::roles::{Actor, Role};
use sqlx::AssertSqlSafe;
use sqlx::{Acquire, Row};

#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub id: i64,
    pub name: String,
    pub email: String,
    pub password_hash: String,
    pub global_role: Option<Role>,
    pub team_roles: Vec<(i64, String, Role)>,
    pub api_only: bool,
    pub force_password_reset: bool,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl UserRecord {
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.id,
            global_role: self.global_role,
            team_roles: self.team_roles.iter().map(|(id, _, role)| (*id, *role)).collect(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub name: String,
    pub email: String,
    pub password_hash: String,
    pub global_role: Option<Role>,
    pub team_roles: Vec<(i64, Role)>,
    pub api_only: bool,
    pub force_password_reset: bool,
}

/// Which of a user's sessions a change ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndSessions<'a> {
    None,
    All,
    /// All but the session with this token hash (the one that made the change).
    AllBut(&'a str),
}

/// The user behind a session token.
#[derive(Debug, Clone)]
pub struct SessionUser {
    pub user: UserRecord,
    pub expires_at: Option<Millis>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TeamRecord {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub agent_options: Option<serde_json::Value>,
    /// Fleet's team `webhook_settings` document (failing_policies_webhook for the team's policies).
    pub webhook_settings: Option<serde_json::Value>,
    pub host_count: i64,
    pub user_count: i64,
    pub secrets: Vec<StoredSecret>,
    pub created_at: Millis,
}

fn parse_role(text: &str) -> Result<Role> {
    Role::parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown role {text:?}")))
}

impl Store {
    async fn user_team_roles(&self, user_id: i64) -> Result<Vec<(i64, String, Role)>> {
        let rows = sqlx::query(
            "SELECT ut.team_id, t.name, ut.role FROM user_teams ut JOIN teams t ON t.id = ut.team_id \
             WHERE ut.user_id = $1 ORDER BY ut.team_id",
        )
        .bind(user_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?, parse_role(&r.try_get::<String, _>(2)?)?))).collect()
    }

    async fn user_from_row(&self, row: &sqlx::any::AnyRow) -> Result<UserRecord> {
        let id: i64 = row.try_get("id")?;
        let global_role: Option<String> = row.try_get("global_role")?;
        Ok(UserRecord {
            id,
            name: row.try_get("name")?,
            email: row.try_get("email")?,
            password_hash: row.try_get("password_hash")?,
            global_role: global_role.as_deref().map(parse_role).transpose()?,
            team_roles: self.user_team_roles(id).await?,
            api_only: to_bool(row.try_get("api_only")?),
            force_password_reset: to_bool(row.try_get("force_password_reset")?),
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    pub async fn create_user(&self, user: &NewUser, now: Millis) -> Result<i64> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (name, email, password_hash, global_role, api_only, force_password_reset, \
             created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING id",
        )
        .bind(&user.name)
        .bind(user.email.trim().to_lowercase())
        .bind(&user.password_hash)
        .bind(user.global_role.map(|r| r.as_str().to_string()))
        .bind(user.api_only as i64)
        .bind(user.force_password_reset as i64)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, "a user with this email already exists"))?;
        set_team_roles(&mut tx, id, &user.team_roles).await?;
        tx.commit().await?;
        Ok(id)
    }

    pub async fn user_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM users").fetch_one(&self.reader).await?)
    }

    pub async fn get_user(&self, id: i64) -> Result<Option<UserRecord>> {
        let row = sqlx::query("SELECT * FROM users WHERE id = $1").bind(id).fetch_optional(&self.reader).await?;
        match row {
            Some(row) => Ok(Some(self.user_from_row(&row).await?)),
            None => Ok(None),
        }
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        let row = sqlx::query("SELECT * FROM users WHERE email = $1")
            .bind(email.trim().to_lowercase())
            .fetch_optional(&self.reader)
            .await?;
        match row {
            Some(row) => Ok(Some(self.user_from_row(&row).await?)),
            None => Ok(None),
        }
    }

    /// Users, optionally only those with a role in `team_id`.
    pub async fn list_users(&self, team_id: Option<i64>) -> Result<Vec<UserRecord>> {
        let rows = match team_id {
            None => sqlx::query("SELECT * FROM users ORDER BY id").fetch_all(&self.reader).await?,
            Some(team) => sqlx::query(
                "SELECT u.* FROM users u JOIN user_teams ut ON ut.user_id = u.id WHERE ut.team_id = $1 ORDER BY u.id",
            )
            .bind(team)
            .fetch_all(&self.reader)
            .await?,
        };
        let mut users = Vec::with_capacity(rows.len());
        for row in &rows {
            users.push(self.user_from_row(row).await?);
        }
        Ok(users)
    }

    /// Saves a user's editable fields (name, email, password hash, roles) as given. Refused (Conflict) when it
    /// would take the global admin role from the last global admin.
    pub async fn update_user(&self, user: &UserRecord, now: Millis) -> Result<()> {
        self.update_user_ending_sessions(user, EndSessions::None, now).await
    }

    /// `update_user`, and in the same transaction ends the user's sessions (all, or all but the one that made
    /// the change): what a password change or reset needs, so no session opened with the old password
    /// survives it.
    pub async fn update_user_ending_sessions(
        &self,
        user: &UserRecord,
        end: EndSessions<'_>,
        now: Millis,
    ) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        if user.global_role != Some(Role::Admin) {
            self.refuse_removing_last_admin(&mut tx, user.id).await?;
        }
        let updated = sqlx::query(
            "UPDATE users SET name = $1, email = $2, password_hash = $3, global_role = $4, \
             force_password_reset = $5, updated_at = $6 WHERE id = $7",
        )
        .bind(&user.name)
        .bind(user.email.trim().to_lowercase())
        .bind(&user.password_hash)
        .bind(user.global_role.map(|r| r.as_str().to_string()))
        .bind(user.force_password_reset as i64)
        .bind(now)
        .bind(user.id)
        .execute(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, "a user with this email already exists"))?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound("user"));
        }
        let roles: Vec<(i64, Role)> = user.team_roles.iter().map(|(id, _, role)| (*id, *role)).collect();
        set_team_roles(&mut tx, user.id, &roles).await?;
        match end {
            EndSessions::None => {}
            EndSessions::All => {
                sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user.id).execute(&mut *tx).await?;
            }
            EndSessions::AllBut(keep) => {
                sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
                    .bind(user.id)
                    .bind(keep)
                    .execute(&mut *tx)
                    .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Deletes a user (their sessions and team roles go with them). Refused (Conflict) for the last global
    /// admin.
    pub async fn delete_user(&self, id: i64) -> Result<bool> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        self.refuse_removing_last_admin(&mut tx, id).await?;
        let done = sqlx::query("DELETE FROM users WHERE id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Inside a transaction that is about to delete `user_id` or take its admin role: Conflict when it is the
    /// only global admin. The admins' rows stay locked (PostgreSQL; SQLite has one writer) until the
    /// transaction ends, so two such changes at once are decided one after the other: with two admins
    /// deleting each other at the same moment, one wins and the other is refused.
    async fn refuse_removing_last_admin(&self, tx: &mut sqlx::AnyConnection, user_id: i64) -> Result<()> {
        // Always in id order, so concurrent transactions take the locks in the same order (no deadlock).
        let lock = if self.backend == crate::Backend::Postgres { " FOR UPDATE" } else { "" };
        let admins: Vec<i64> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT id FROM users WHERE global_role = 'admin' ORDER BY id{lock}"
        )))
        .fetch_all(&mut *tx)
        .await?;
        if admins == [user_id] {
            return Err(StoreError::Conflict("this is the last global admin; make another user admin first".into()));
        }
        Ok(())
    }

    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: i64,
        expires_at: Option<Millis>,
        now: Millis,
    ) -> Result<()> {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(user_id)
            .bind(now)
            .bind(expires_at)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The user a live session token belongs to; None for unknown or expired tokens.
    pub async fn session_user(&self, token_hash: &str, now: Millis) -> Result<Option<SessionUser>> {
        let row = sqlx::query(
            "SELECT u.*, s.expires_at AS session_expires_at FROM sessions s JOIN users u ON u.id = s.user_id \
             WHERE s.token_hash = $1 AND (s.expires_at IS NULL OR s.expires_at > $2)",
        )
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.reader)
        .await?;
        match row {
            Some(row) => Ok(Some(SessionUser {
                expires_at: row.try_get("session_expires_at")?,
                user: self.user_from_row(&row).await?,
            })),
            None => Ok(None),
        }
    }

    pub async fn delete_session(&self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1").bind(token_hash).execute(&self.writer).await?;
        Ok(())
    }

    pub async fn delete_user_sessions(&self, user_id: i64) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id).execute(&self.writer).await?;
        Ok(())
    }

    pub async fn prune_expired_sessions(&self, now: Millis) -> Result<u64> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at IS NOT NULL AND expires_at <= $1")
            .bind(now)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn create_team(&self, name: &str, description: &str, secrets: &[String], now: Millis) -> Result<i64> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO teams (name, description, created_at, updated_at) VALUES ($1, $2, $3, $3) RETURNING id",
        )
        .bind(name.trim())
        .bind(description)
        .bind(now)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, "a team with this name already exists"))?;
        crate::config::replace_secrets(&mut tx, self.backend, Some(id), secrets, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn team_from_row(&self, row: &sqlx::any::AnyRow) -> Result<TeamRecord> {
        let id: i64 = row.try_get("id")?;
        let document = |column: &str| -> Result<Option<serde_json::Value>> {
            let text: Option<String> = row.try_get(column)?;
            text.map(|text| serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))).transpose()
        };
        Ok(TeamRecord {
            id,
            name: row.try_get("name")?,
            description: row.try_get("description")?,
            agent_options: document("agent_options")?,
            webhook_settings: document("webhook_settings")?,
            host_count: row.try_get("host_count")?,
            user_count: row.try_get("user_count")?,
            secrets: self.enroll_secrets(Some(id)).await?,
            created_at: row.try_get("created_at")?,
        })
    }

    const TEAM_SELECT: &'static str = "SELECT t.*, \
        (SELECT COUNT(*) FROM hosts h WHERE h.team_id = t.id) AS host_count, \
        (SELECT COUNT(*) FROM user_teams ut WHERE ut.team_id = t.id) AS user_count FROM teams t";

    pub async fn get_team(&self, id: i64) -> Result<Option<TeamRecord>> {
        let row = sqlx::query(AssertSqlSafe(format!("{} WHERE t.id = $1", Self::TEAM_SELECT)))
            .bind(id)
            .fetch_optional(&self.reader)
            .await?;
        match row {
            Some(row) => Ok(Some(self.team_from_row(&row).await?)),
            None => Ok(None),
        }
    }

    pub async fn list_teams(&self) -> Result<Vec<TeamRecord>> {
        let rows =
            sqlx::query(AssertSqlSafe(format!("{} ORDER BY t.id", Self::TEAM_SELECT))).fetch_all(&self.reader).await?;
        let mut teams = Vec::with_capacity(rows.len());
        for row in &rows {
            teams.push(self.team_from_row(row).await?);
        }
        Ok(teams)
    }

    /// Agent options of every team that has its own (team id → options), for the servers' config cache.
    pub async fn team_agent_options(&self) -> Result<Vec<(i64, serde_json::Value)>> {
        self.team_documents("agent_options").await
    }

    async fn team_documents(&self, column: &'static str) -> Result<Vec<(i64, serde_json::Value)>> {
        let rows = sqlx::query(AssertSqlSafe(format!("SELECT id, {column} FROM teams WHERE {column} IS NOT NULL")))
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                let text: String = r.try_get(1)?;
                let value = serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok((r.try_get(0)?, value))
            })
            .collect()
    }

    pub async fn update_team(
        &self,
        id: i64,
        name: &str,
        description: &str,
        agent_options: Option<&serde_json::Value>,
        webhook_settings: Option<&serde_json::Value>,
        now: Millis,
    ) -> Result<()> {
        let updated = sqlx::query(
            "UPDATE teams SET name = $1, description = $2, agent_options = $3, updated_at = $4, webhook_settings = $6 \
             WHERE id = $5",
        )
        .bind(name.trim())
        .bind(description)
        .bind(agent_options.map(|v| v.to_string()))
        .bind(now)
        .bind(id)
        .bind(webhook_settings.map(|v| v.to_string()))
        .execute(&self.writer)
        .await
        .map_err(|e| StoreError::conflict_on_unique(e, "a team with this name already exists"))?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound("team"));
        }
        Ok(())
    }

    /// Deletes a team: its hosts move to no team, its secrets stop enrolling, its users lose that role.
    /// Returns the ids of the hosts that moved, or None when there was no such team.
    pub async fn delete_team(&self, id: i64, now: Millis) -> Result<Option<Vec<i64>>> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        // The team row first: a transfer into the team (whose foreign-key check shares the row) waits until
        // the team is gone and then fails, instead of landing a host under a deleted team's key. Then its
        // hosts, locked in id order, so a transfer out of the team that committed meanwhile is seen.
        let lock = if self.backend == crate::Backend::Postgres { " FOR UPDATE" } else { "" };
        let exists: Option<i64> =
            sqlx::query_scalar(AssertSqlSafe(format!("SELECT id FROM teams WHERE id = $1{lock}")))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Ok(None);
        }
        let members: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM hosts WHERE team_id = $1").bind(id).fetch_all(&mut *tx).await?;
        let hosts: Vec<i64> = crate::hosts::lock_hosts(&mut tx, self.backend, &members)
            .await?
            .into_iter()
            .filter(|(_, team)| *team == Some(id))
            .map(|(host, _)| host)
            .collect();
        let mut moved = crate::sql::SqlBuilder::new("UPDATE hosts SET team_id = NULL WHERE id IN ");
        moved.bind_id_set(self.backend, &hosts);
        moved.query().execute(&mut *tx).await?;
        let mut deltas = crate::policies::CountDeltas::new();
        for host in &hosts {
            crate::policies::note_host_moved(&mut tx, self.backend, *host, Some(id), None, &mut deltas, now).await?;
        }
        // Criteria naming the team, or its policies, have lost an input; the moved hosts' labels are decided
        // again (a criterion may name "no team").
        let team_policies: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM policies WHERE team_id = $1").bind(id).fetch_all(&mut *tx).await?;
        for policy in team_policies {
            crate::labels::break_labels_naming(&mut tx, crate::labels::Input::Policy(policy), now).await?;
        }
        crate::labels::break_labels_naming(&mut tx, crate::labels::Input::Team(id), now).await?;
        let facts = crate::labels::LabelFacts::load(&mut tx).await?;
        for host in &hosts {
            crate::labels::refresh_host_in(&mut tx, self.backend, *host, &facts, &[], &mut deltas, now).await?;
        }
        crate::policies::apply_count_deltas(&mut tx, &deltas, now).await?;
        // The team's policies go with it (by foreign key); their answers and counts count nowhere from then on
        // and are pruned by housekeeping (`Store::prune_voided_answers`).
        // The team's profiles go with it; its hosts now expect the no-team set.
        sqlx::query("DELETE FROM profiles WHERE team_id = $1").bind(id).execute(&mut *tx).await?;
        crate::profiles::note_hosts_moved(&mut tx, &hosts, now).await?;
        sqlx::query("DELETE FROM enroll_secrets WHERE team_id = $1").bind(id).execute(&mut *tx).await?;
        sqlx::query("DELETE FROM user_teams WHERE team_id = $1").bind(id).execute(&mut *tx).await?;
        let deleted = sqlx::query("DELETE FROM teams WHERE id = $1").bind(id).execute(&mut *tx).await?;
        if deleted.rows_affected() == 0 {
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(hosts))
    }
}

async fn set_team_roles(conn: &mut sqlx::AnyConnection, user_id: i64, roles: &[(i64, Role)]) -> Result<()> {
    sqlx::query("DELETE FROM user_teams WHERE user_id = $1").bind(user_id).execute(&mut *conn).await?;
    for (team, role) in roles {
        sqlx::query("INSERT INTO user_teams (user_id, team_id, role) VALUES ($1, $2, $3)")
            .bind(user_id)
            .bind(*team)
            .bind(role.as_str())
            .execute(&mut *conn)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound("team"),
                sqlx::Error::Database(db) if db.is_unique_violation() => {
                    StoreError::Conflict("a team is listed twice".into())
                }
                _ => StoreError::Database(e),
            })?;
    }
    Ok(())
}
