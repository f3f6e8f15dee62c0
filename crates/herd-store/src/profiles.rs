//! Configuration profiles (seed 004): the profiles of each team (and of the no-team set), and each host's
//! copy with its status. Uploads, edits, deletes and team moves enqueue a reconcile job in their own
//! transaction (a `JobPayload::ProfileReconcile` job); the job turns the difference between what a host should have and what
//! it has into install and remove commands. Statuses move by `herd_core::profiles`' rules.

use crate::jobs::{NewJob, enqueue_in};
use crate::{Result, Store, StoreError};
use herd_core::Millis;
use herd_core::jobs::{JobPayload, ReconcileScope};
use herd_core::profiles::{HostProfileState, Installed, Limits, Operation, Status, Transition, reconcile};
use sqlx::{Acquire, AnyConnection, Row};

/// The job kind of profile reconciliation; its payload is `{"scope_key": n}` (every host of a team, 0: the
/// hosts in no team) or `{"host_ids": [..]}`.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileRecord {
    pub id: i64,
    pub uuid: String,
    pub team_id: Option<i64>,
    pub identifier: String,
    pub name: String,
    pub platform: String,
    pub format: String,
    pub payload_types: Vec<String>,
    pub contents: String,
    pub checksum: String,
    pub created_at: Millis,
    pub uploaded_at: Millis,
    /// Which of the set's hosts get it, by label (empty: all of them).
    pub labels: herd_core::labels::LabelScope,
    /// The names of the labels in `labels`, for views.
    pub label_names: std::collections::BTreeMap<i64, String>,
}

/// A profile to store (its document already checked and normalized by the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct NewProfile {
    pub identifier: String,
    pub name: String,
    pub platform: String,
    pub format: String,
    pub payload_types: Vec<String>,
    pub contents: String,
    pub checksum: String,
    /// Which of the set's hosts get it, by label (empty: all of them).
    pub labels: herd_core::labels::LabelScope,
}

/// One host's copy of a profile.
#[derive(Debug, Clone, PartialEq)]
pub struct HostProfileRecord {
    pub identifier: String,
    pub profile_uuid: Option<String>,
    pub name: String,
    pub operation: Operation,
    pub status: Option<Status>,
    pub detail: Option<String>,
    pub retries: i64,
    pub updated_at: Millis,
}

/// A command for the host's agent.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileCommand {
    pub command_uuid: String,
    pub operation: Operation,
    pub identifier: String,
    pub name: String,
    /// The document to install (herd profile JSON); None for removes.
    pub contents: Option<String>,
}

/// Hosts by their overall profile status (Fleet's summary).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProfilesSummary {
    pub verified: i64,
    pub verifying: i64,
    pub pending: i64,
    pub failed: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResendRefused {
    /// The profile is not on (or for) this host.
    NotFound,
    /// Pending or verifying: Fleet's rule, a resend waits for a final state.
    NotFinal,
}

pub(crate) fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn profile_from_row(row: &sqlx::any::AnyRow) -> Result<ProfileRecord> {
    let types: String = row.try_get("payload_types")?;
    Ok(ProfileRecord {
        id: row.try_get("id")?,
        uuid: row.try_get("uuid")?,
        team_id: row.try_get("team_id")?,
        identifier: row.try_get("identifier")?,
        name: row.try_get("name")?,
        platform: row.try_get("platform")?,
        format: row.try_get("format")?,
        payload_types: types.split(',').filter(|t| !t.is_empty()).map(str::to_string).collect(),
        contents: row.try_get("contents")?,
        checksum: row.try_get("checksum")?,
        created_at: row.try_get("created_at")?,
        uploaded_at: row.try_get("uploaded_at")?,
        labels: herd_core::labels::LabelScope::default(),
        label_names: Default::default(),
    })
}

fn host_profile_from_row(row: &sqlx::any::AnyRow) -> Result<HostProfileRecord> {
    let operation: String = row.try_get("operation")?;
    let status: Option<String> = row.try_get("status")?;
    Ok(HostProfileRecord {
        identifier: row.try_get("identifier")?,
        profile_uuid: row.try_get("profile_uuid")?,
        name: row.try_get("name")?,
        operation: Operation::parse(&operation).ok_or_else(|| StoreError::Corrupt(format!("operation {operation}")))?,
        status: status.as_deref().and_then(Status::parse),
        detail: row.try_get("detail")?,
        retries: row.try_get("retries")?,
        updated_at: row.try_get("updated_at")?,
    })
}

async fn enqueue_reconcile(conn: &mut AnyConnection, scope: ReconcileScope, now: Millis) -> Result<()> {
    let payload = JobPayload::ProfileReconcile(scope);
    let job = NewJob {
        idempotency_key: format!("{}:{now}:{}", payload.kind().as_str(), random_hex()),
        payload,
        max_attempts: 20,
        run_at: now,
    };
    enqueue_in(conn, &job, now).await?;
    Ok(())
}

/// Every host of a profile set must be reconciled (a label its profiles are scoped by was deleted).
pub(crate) async fn enqueue_set_reconcile(conn: &mut AnyConnection, scope_key: i64, now: Millis) -> Result<()> {
    enqueue_reconcile(conn, ReconcileScope::Set { scope_key }, now).await
}

/// Hosts moved between teams: their expected profiles change (called inside the move's transaction).
pub(crate) async fn note_hosts_moved(conn: &mut AnyConnection, host_ids: &[i64], now: Millis) -> Result<()> {
    if host_ids.is_empty() {
        return Ok(());
    }
    enqueue_reconcile(conn, ReconcileScope::Hosts { host_ids: host_ids.to_vec() }, now).await
}

/// Marks a row for (re)sending: a new command, after every other command already queued for the host.
async fn send_command(conn: &mut AnyConnection, host_id: i64, identifier: &str, order: i64, now: Millis) -> Result<()> {
    sqlx::query(
        "UPDATE host_profiles SET status = 'pending', command_uuid = $1, command_seq = $2, sent_at = $3, \
         acked_at = NULL, earliest_install_at = $3, updated_at = $3 WHERE host_id = $4 AND identifier = $5",
    )
    .bind(random_hex())
    .bind(now.saturating_mul(1000).saturating_add(order))
    .bind(now)
    .bind(host_id)
    .bind(identifier)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Brings one host's rows in line with what it should have: installs for missing or changed profiles, removes
/// for ones no longer expected (removes first, so a move between teams restores what the old profile replaced
/// before the new one writes). Returns how many commands were queued.
async fn reconcile_host(conn: &mut AnyConnection, backend: crate::Backend, host_id: i64, now: Millis) -> Result<usize> {
    let host = sqlx::query("SELECT team_id, profiles_enabled, label_ids FROM hosts WHERE id = $1")
        .bind(host_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(host) = host else { return Ok(0) };
    if host.try_get::<Option<i64>, _>("profiles_enabled")? != Some(1) {
        return Ok(0);
    }
    let scope_key = host.try_get::<Option<i64>, _>("team_id")?.unwrap_or(0);
    let labels = crate::labels::parse_label_ids(&host.try_get::<String, _>("label_ids")?);
    let rows = sqlx::query(
        "SELECT uuid, identifier, name, checksum, id FROM profiles WHERE scope_key = $1 AND format = 'herd' ORDER BY id",
    )
    .bind(scope_key)
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.try_get(4)).collect::<std::result::Result<_, _>>()?;
    let scopes = crate::labels::scopes_of(&mut *conn, backend, "profile_labels", "profile_id", &ids).await?;
    let mut expected: Vec<reconcile::Expected> = Vec::new();
    for r in &rows {
        // A profile scoped by labels the host does not meet is not expected: it is removed, or never sent.
        if scopes.get(&r.try_get::<i64, _>(4)?).is_some_and(|scope| !scope.admits(|l| labels.contains(&l))) {
            continue;
        }
        expected.push(reconcile::Expected {
            uuid: r.try_get(0)?,
            identifier: r.try_get(1)?,
            name: r.try_get(2)?,
            checksum: r.try_get(3)?,
        });
    }
    let current: Vec<reconcile::Current> =
        sqlx::query("SELECT identifier, profile_uuid, checksum, operation FROM host_profiles WHERE host_id = $1")
            .bind(host_id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|r| {
                let operation: String = r.try_get(3)?;
                Ok(reconcile::Current {
                    identifier: r.try_get(0)?,
                    profile_uuid: r.try_get(1)?,
                    checksum: r.try_get(2)?,
                    operation: Operation::parse(&operation)
                        .ok_or_else(|| StoreError::Corrupt(format!("host profile operation {operation:?}")))?,
                })
            })
            .collect::<Result<_>>()?;
    let commands = reconcile::commands(&expected, &current);
    for (order, command) in commands.iter().enumerate() {
        let order = order as i64;
        match command {
            reconcile::Command::Remove { identifier } => {
                sqlx::query(
                    "UPDATE host_profiles SET operation = 'remove', profile_uuid = NULL, retries = 0, detail = NULL \
                     WHERE host_id = $1 AND identifier = $2",
                )
                .bind(host_id)
                .bind(identifier)
                .execute(&mut *conn)
                .await?;
                send_command(conn, host_id, identifier, order, now).await?;
            }
            reconcile::Command::Install { profile, has_row: true } => {
                sqlx::query(
                    "UPDATE host_profiles SET operation = 'install', profile_uuid = $1, name = $2, checksum = $3, \
                     retries = 0, detail = NULL WHERE host_id = $4 AND identifier = $5",
                )
                .bind(&profile.uuid)
                .bind(&profile.name)
                .bind(&profile.checksum)
                .bind(host_id)
                .bind(&profile.identifier)
                .execute(&mut *conn)
                .await?;
                send_command(conn, host_id, &profile.identifier, order, now).await?;
            }
            reconcile::Command::Install { profile, has_row: false } => {
                sqlx::query(
                    "INSERT INTO host_profiles (host_id, identifier, profile_uuid, name, checksum, operation, \
                     updated_at) VALUES ($1, $2, $3, $4, $5, 'install', $6)",
                )
                .bind(host_id)
                .bind(&profile.identifier)
                .bind(&profile.uuid)
                .bind(&profile.name)
                .bind(&profile.checksum)
                .bind(now)
                .execute(&mut *conn)
                .await?;
                send_command(conn, host_id, &profile.identifier, order, now).await?;
            }
        }
    }
    let order = commands.len();
    if order > 0 {
        crate::hosts::note_host_change(conn, host_id, now).await?;
    }
    Ok(order)
}

/// What a host's report of its installed profiles does to each verifiable row: (identifier, transition), the
/// rows that stay as they are left out.
fn report_transitions(
    rows: &[sqlx::any::AnyRow],
    installed: &[(String, String, Millis)],
    limits: &Limits,
    now: Millis,
) -> Result<Vec<(String, Transition)>> {
    let mut work = Vec::new();
    for row in rows {
        let identifier: String = row.try_get("identifier")?;
        let checksum: String = row.try_get("checksum")?;
        let found = installed
            .iter()
            .find(|(id, ..)| *id == identifier)
            .map(|(_, sum, at)| Installed { checksum: sum, installed_at: *at });
        let transition = herd_core::profiles::on_report(&state_of(row)?, &checksum, found.as_ref(), now, limits);
        if transition != Transition::Keep {
            work.push((identifier, transition));
        }
    }
    Ok(work)
}

/// Stores a new profile in a set, with a fresh uuid ("a…" for Apple files, "h…" for herd profiles).
async fn insert_profile(
    conn: &mut AnyConnection,
    team_id: Option<i64>,
    profile: &NewProfile,
    now: Millis,
) -> std::result::Result<sqlx::any::AnyRow, sqlx::Error> {
    let prefix = if profile.format == "mobileconfig" { "a" } else { "h" };
    sqlx::query(
        "INSERT INTO profiles (uuid, team_id, scope_key, identifier, name, platform, format, payload_types, \
         contents, checksum, created_at, uploaded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11) \
         RETURNING *",
    )
    .bind(format!("{prefix}{}", random_hex()))
    .bind(team_id)
    .bind(team_id.unwrap_or(0))
    .bind(&profile.identifier)
    .bind(&profile.name)
    .bind(&profile.platform)
    .bind(&profile.format)
    .bind(profile.payload_types.join(","))
    .bind(&profile.contents)
    .bind(&profile.checksum)
    .bind(now)
    .fetch_one(&mut *conn)
    .await
}

fn state_of(row: &sqlx::any::AnyRow) -> Result<HostProfileState> {
    let operation: String = row.try_get("operation")?;
    let status: Option<String> = row.try_get("status")?;
    Ok(HostProfileState {
        operation: Operation::parse(&operation).unwrap_or(Operation::Install),
        status: status.as_deref().and_then(Status::parse),
        retries: u32::try_from(row.try_get::<i64, _>("retries")?).unwrap_or(0),
        acked_at: row.try_get("acked_at")?,
        earliest_install_at: row.try_get("earliest_install_at")?,
    })
}

/// Applies a transition to one row. Returns whether anything changed.
async fn apply(
    conn: &mut AnyConnection,
    host_id: i64,
    identifier: &str,
    transition: Transition,
    now: Millis,
) -> Result<bool> {
    match transition {
        Transition::Keep => Ok(false),
        Transition::Removed => {
            sqlx::query("DELETE FROM host_profiles WHERE host_id = $1 AND identifier = $2")
                .bind(host_id)
                .bind(identifier)
                .execute(&mut *conn)
                .await?;
            Ok(true)
        }
        Transition::To(status, detail) => {
            let acked = if status == Status::Verifying { Some(now) } else { None };
            let reset = if status == Status::Verified { ", retries = 0" } else { "" };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE host_profiles SET status = $1, detail = $2, acked_at = COALESCE($3, acked_at), \
                 updated_at = $4{reset} WHERE host_id = $5 AND identifier = $6"
            )))
            .bind(status.as_str())
            .bind(Some(detail).filter(|d| !d.is_empty()))
            .bind(acked)
            .bind(now)
            .bind(host_id)
            .bind(identifier)
            .execute(&mut *conn)
            .await?;
            Ok(true)
        }
        Transition::Retry { retries, detail } => {
            sqlx::query("UPDATE host_profiles SET retries = $1, detail = $2 WHERE host_id = $3 AND identifier = $4")
                .bind(i64::from(retries))
                .bind(detail)
                .bind(host_id)
                .bind(identifier)
                .execute(&mut *conn)
                .await?;
            send_command(conn, host_id, identifier, 0, now).await?;
            Ok(true)
        }
    }
}

impl Store {
    /// Stores a profile in a team (None: the no-team set) and queues the reconcile of that set's hosts.
    /// Refused with a conflict naming what is taken (identifier or name, per set).
    pub async fn create_profile(
        &self,
        team_id: Option<i64>,
        profile: &NewProfile,
        now: Millis,
    ) -> Result<ProfileRecord> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let scope_key = team_id.unwrap_or(0);
        let taken: Option<(String, String)> = sqlx::query(
            "SELECT identifier, name FROM profiles WHERE scope_key = $1 AND (identifier = $2 OR name = $3)",
        )
        .bind(scope_key)
        .bind(&profile.identifier)
        .bind(&profile.name)
        .fetch_optional(&mut *tx)
        .await?
        .map(|r| Ok::<_, StoreError>((r.try_get(0)?, r.try_get(1)?)))
        .transpose()?;
        if let Some((identifier, _)) = taken {
            return Err(StoreError::Conflict(if identifier == profile.identifier {
                "a configuration profile with this identifier already exists in this team".into()
            } else {
                "a configuration profile with this name already exists in this team".into()
            }));
        }
        let row = insert_profile(&mut tx, team_id, profile, now).await.map_err(|e| match &e {
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound("team"),
            _ => StoreError::conflict_on_unique(e, "a configuration profile with this identifier or name exists"),
        })?;
        let mut record = profile_from_row(&row)?;
        crate::labels::set_scope(
            &mut tx,
            self.backend,
            "profile_labels",
            "profile_id",
            record.id,
            herd_core::labels::Node::Profile(record.identifier.clone()),
            &profile.labels,
        )
        .await?;
        record.labels = profile.labels.clone();
        if record.format == "herd" {
            enqueue_reconcile(&mut tx, ReconcileScope::Set { scope_key }, now).await?;
        }
        tx.commit().await?;
        Ok(record)
    }

    /// Replaces a team's whole set (Fleet's batch): profiles matched by identifier keep their uuid and are
    /// updated when their contents changed; the others are added; profiles not in the batch are deleted.
    /// All or nothing; one reconcile for the set. Returns whether anything changed.
    pub async fn replace_profiles(&self, team_id: Option<i64>, profiles: &[NewProfile], now: Millis) -> Result<bool> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let scope_key = team_id.unwrap_or(0);
        if let Some(team) = team_id {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT id FROM teams WHERE id = $1").bind(team).fetch_optional(&mut *tx).await?;
            if exists.is_none() {
                return Err(StoreError::NotFound("team"));
            }
        }
        let rows =
            sqlx::query("SELECT * FROM profiles WHERE scope_key = $1").bind(scope_key).fetch_all(&mut *tx).await?;
        let existing: Vec<ProfileRecord> = rows.iter().map(profile_from_row).collect::<Result<_>>()?;
        let mut changed = false;
        for old in &existing {
            if !profiles.iter().any(|p| p.identifier == old.identifier) {
                sqlx::query("DELETE FROM profiles WHERE id = $1").bind(old.id).execute(&mut *tx).await?;
                changed = true;
            }
        }
        // Names move between identifiers in a batch: clear them first so the unique name constraint holds.
        for profile in profiles {
            match existing.iter().find(|e| e.identifier == profile.identifier) {
                Some(old) if old.contents == profile.contents && old.name == profile.name => {}
                Some(old) => {
                    sqlx::query("UPDATE profiles SET name = $1 WHERE id = $2")
                        .bind(format!("~renaming~{}", old.uuid))
                        .bind(old.id)
                        .execute(&mut *tx)
                        .await?;
                }
                None => {}
            }
        }
        for profile in profiles {
            let id = match existing.iter().find(|e| e.identifier == profile.identifier) {
                Some(old) if old.contents == profile.contents && old.name == profile.name => old.id,
                Some(old) => {
                    sqlx::query(
                        "UPDATE profiles SET name = $1, platform = $2, format = $3, payload_types = $4, contents = $5, \
                         checksum = $6, uploaded_at = $7 WHERE id = $8",
                    )
                    .bind(&profile.name)
                    .bind(&profile.platform)
                    .bind(&profile.format)
                    .bind(profile.payload_types.join(","))
                    .bind(&profile.contents)
                    .bind(&profile.checksum)
                    .bind(now)
                    .bind(old.id)
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| StoreError::conflict_on_unique(e, "two profiles in the batch share a name"))?;
                    changed = true;
                    old.id
                }
                None => {
                    let row = insert_profile(&mut tx, team_id, profile, now)
                        .await
                        .map_err(|e| StoreError::conflict_on_unique(e, "two profiles in the batch share a name"))?;
                    changed = true;
                    row.try_get("id")?
                }
            };
            let node = herd_core::labels::Node::Profile(profile.identifier.clone());
            changed |= crate::labels::set_scope(
                &mut tx,
                self.backend,
                "profile_labels",
                "profile_id",
                id,
                node,
                &profile.labels,
            )
            .await?;
        }
        if changed {
            enqueue_reconcile(&mut tx, ReconcileScope::Set { scope_key }, now).await?;
        }
        tx.commit().await?;
        Ok(changed)
    }

    pub async fn list_profiles(&self, team_id: Option<i64>) -> Result<Vec<ProfileRecord>> {
        let rows = sqlx::query("SELECT * FROM profiles WHERE scope_key = $1 ORDER BY name, id")
            .bind(team_id.unwrap_or(0))
            .fetch_all(&self.reader)
            .await?;
        let mut profiles: Vec<ProfileRecord> = rows.iter().map(profile_from_row).collect::<Result<_>>()?;
        let ids: Vec<i64> = profiles.iter().map(|p| p.id).collect();
        let mut scopes =
            crate::labels::scopes_of(&self.reader, self.backend, "profile_labels", "profile_id", &ids).await?;
        let names = if scopes.is_empty() { Default::default() } else { self.label_names().await? };
        for profile in &mut profiles {
            profile.labels = scopes.remove(&profile.id).unwrap_or_default();
            profile.label_names =
                profile.labels.labels().into_iter().filter_map(|id| Some((id, names.get(&id)?.clone()))).collect();
        }
        Ok(profiles)
    }

    pub async fn get_profile(&self, uuid: &str) -> Result<Option<ProfileRecord>> {
        let row = sqlx::query("SELECT * FROM profiles WHERE uuid = $1").bind(uuid).fetch_optional(&self.reader).await?;
        let Some(mut profile) = row.as_ref().map(profile_from_row).transpose()? else { return Ok(None) };
        let scopes =
            crate::labels::scopes_of(&self.reader, self.backend, "profile_labels", "profile_id", &[profile.id]).await?;
        profile.labels = scopes.get(&profile.id).cloned().unwrap_or_default();
        if !profile.labels.is_empty() {
            let names = self.label_names().await?;
            profile.label_names =
                profile.labels.labels().into_iter().filter_map(|id| Some((id, names.get(&id)?.clone()))).collect();
        }
        Ok(Some(profile))
    }

    /// Deletes a profile; hosts that have it get a remove command (through the reconcile job).
    pub async fn delete_profile(&self, uuid: &str, now: Millis) -> Result<Option<ProfileRecord>> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let row =
            sqlx::query("DELETE FROM profiles WHERE uuid = $1 RETURNING *").bind(uuid).fetch_optional(&mut *tx).await?;
        let Some(record) = row.as_ref().map(profile_from_row).transpose()? else {
            return Ok(None);
        };
        if record.format == "herd" {
            let scope_key = record.team_id.unwrap_or(0);
            enqueue_reconcile(&mut tx, ReconcileScope::Set { scope_key }, now).await?;
        }
        tx.commit().await?;
        Ok(Some(record))
    }

    /// The reconcile job: every host of a set (`scope_key`), or the listed hosts. Each host in its own
    /// transaction; running it again changes nothing. Returns how many commands were queued.
    pub async fn reconcile_profiles(&self, scope: &ReconcileScope, now: Millis) -> Result<usize> {
        let hosts: Vec<i64> = match scope {
            ReconcileScope::Set { scope_key } => {
                let sql = if *scope_key == 0 {
                    "SELECT id FROM hosts WHERE team_id IS NULL AND profiles_enabled = 1 AND $1 = 0"
                } else {
                    "SELECT id FROM hosts WHERE team_id = $1 AND profiles_enabled = 1"
                };
                sqlx::query_scalar(sql).bind(scope_key).fetch_all(&self.reader).await?
            }
            ReconcileScope::Hosts { host_ids } => host_ids.clone(),
        };
        let mut queued = 0;
        for host_id in hosts {
            let mut conn = self.writer.acquire().await?;
            let mut tx = conn.begin().await?;
            queued += reconcile_host(&mut tx, self.backend, host_id, now).await?;
            tx.commit().await?;
        }
        Ok(queued)
    }

    /// The host's agent applies profiles: remembered, and the first time its commands are worked out at once.
    pub async fn enable_host_profiles(&self, host_id: i64, now: Millis) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let changed = sqlx::query(
            "UPDATE hosts SET profiles_enabled = 1 WHERE id = $1 AND (profiles_enabled IS NULL OR profiles_enabled <> 1)",
        )
        .bind(host_id)
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() == 1 {
            reconcile_host(&mut tx, self.backend, host_id, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The commands the host's agent must apply, in order (sent and not yet answered).
    pub async fn profile_commands(&self, host_id: i64) -> Result<Vec<ProfileCommand>> {
        let rows = sqlx::query(
            "SELECT hp.command_uuid, hp.operation, hp.identifier, hp.name, p.contents FROM host_profiles hp \
             LEFT JOIN profiles p ON p.uuid = hp.profile_uuid \
             WHERE hp.host_id = $1 AND hp.status = 'pending' ORDER BY hp.command_seq, hp.identifier",
        )
        .bind(host_id)
        .fetch_all(&self.writer)
        .await?;
        rows.iter()
            .map(|r| {
                let operation: String = r.try_get("operation")?;
                let operation = Operation::parse(&operation).unwrap_or(Operation::Install);
                Ok(ProfileCommand {
                    command_uuid: r.try_get::<Option<String>, _>("command_uuid")?.unwrap_or_default(),
                    operation,
                    identifier: r.try_get("identifier")?,
                    name: r.try_get("name")?,
                    contents: if operation == Operation::Install { r.try_get("contents")? } else { None },
                })
            })
            .collect()
    }

    /// The agent's answers to commands: (command uuid, None when acknowledged, or its error). Answers to
    /// commands that are no longer current change nothing.
    pub async fn record_profile_results(
        &self,
        host_id: i64,
        results: &[(String, Option<String>)],
        limits: &Limits,
        now: Millis,
    ) -> Result<()> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let mut changed = false;
        // Locked on PostgreSQL, like the report's verification: the two decide on the same rows.
        let lock = if self.backend == crate::Backend::Postgres { " FOR UPDATE" } else { "" };
        for (command_uuid, error) in results {
            let sql = format!("SELECT * FROM host_profiles WHERE host_id = $1 AND command_uuid = $2{lock}");
            let row =
                sqlx::query(sqlx::AssertSqlSafe(sql)).bind(host_id).bind(command_uuid).fetch_optional(&mut *tx).await?;
            let Some(row) = row else { continue };
            let identifier: String = row.try_get("identifier")?;
            let transition = herd_core::profiles::on_command_result(&state_of(&row)?, error.as_deref(), limits);
            changed |= apply(&mut tx, host_id, &identifier, transition, now).await?;
        }
        if changed {
            crate::hosts::note_host_change(&mut tx, host_id, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The host's report of its installed profiles (identifier, checksum of what is there, install time):
    /// expected profiles are verified, or retried, or failed.
    pub async fn verify_host_profiles(
        &self,
        host_id: i64,
        installed: &[(String, String, Millis)],
        limits: &Limits,
        now: Millis,
    ) -> Result<()> {
        const VERIFIABLE: &str = "SELECT * FROM host_profiles WHERE host_id = $1 AND operation = 'install' \
             AND status IN ('verifying', 'verified')";
        // Most reports change nothing: look on the reader first, take the writer only when something moves.
        let rows = sqlx::query(VERIFIABLE).bind(host_id).fetch_all(&self.reader).await?;
        if report_transitions(&rows, installed, limits, now)?.is_empty() {
            return Ok(());
        }
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        // Decided again on the rows as they are inside the transaction (a command result may have landed
        // since the look), locked on PostgreSQL.
        let lock = if self.backend == crate::Backend::Postgres { " FOR UPDATE" } else { "" };
        let rows =
            sqlx::query(sqlx::AssertSqlSafe(format!("{VERIFIABLE}{lock}"))).bind(host_id).fetch_all(&mut *tx).await?;
        for (identifier, transition) in report_transitions(&rows, installed, limits, now)? {
            apply(&mut tx, host_id, &identifier, transition, now).await?;
        }
        // Every change here changes what the host's check-ins carry (commands, verification queries).
        crate::hosts::note_host_change(&mut tx, host_id, now).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn host_profiles(&self, host_id: i64) -> Result<Vec<HostProfileRecord>> {
        let rows = sqlx::query("SELECT * FROM host_profiles WHERE host_id = $1 ORDER BY name, identifier")
            .bind(host_id)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(host_profile_from_row).collect()
    }

    /// Hosts of a team (None: no team) by their worst profile status: failed, then pending (including not
    /// sent yet), then verifying, else verified. Removes in progress count as pending.
    pub async fn profiles_summary(&self, team_id: Option<i64>) -> Result<ProfilesSummary> {
        let team_filter = if team_id.is_some() { "h.team_id = $1" } else { "h.team_id IS NULL AND $1 = 0" };
        let sql = format!(
            "SELECT hp.host_id, MAX({}) AS worst \
             FROM host_profiles hp JOIN hosts h ON h.id = hp.host_id WHERE {team_filter} GROUP BY hp.host_id",
            crate::hosts::PROFILE_RANK_SQL
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(team_id.unwrap_or(0)).fetch_all(&self.reader).await?;
        let mut summary = ProfilesSummary::default();
        for row in rows {
            match row.try_get::<i64, _>("worst")? {
                3 => summary.failed += 1,
                2 => summary.pending += 1,
                1 => summary.verifying += 1,
                _ => summary.verified += 1,
            }
        }
        Ok(summary)
    }

    /// Sends a host's profile again (retry count kept): only from a final state (verified or failed).
    pub async fn resend_host_profile(
        &self,
        host_id: i64,
        profile_uuid: &str,
        now: Millis,
    ) -> Result<std::result::Result<(), ResendRefused>> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let row = sqlx::query("SELECT identifier, status FROM host_profiles WHERE host_id = $1 AND profile_uuid = $2")
            .bind(host_id)
            .bind(profile_uuid)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else { return Ok(Err(ResendRefused::NotFound)) };
        let status: Option<String> = row.try_get("status")?;
        if !matches!(status.as_deref(), Some("verified" | "failed")) {
            return Ok(Err(ResendRefused::NotFinal));
        }
        let identifier: String = row.try_get("identifier")?;
        sqlx::query("UPDATE host_profiles SET retries = 0, detail = NULL WHERE host_id = $1 AND identifier = $2")
            .bind(host_id)
            .bind(&identifier)
            .execute(&mut *tx)
            .await?;
        send_command(&mut tx, host_id, &identifier, 0, now).await?;
        crate::hosts::note_host_change(&mut tx, host_id, now).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }
}
