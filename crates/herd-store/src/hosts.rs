//! Hosts: enrollment, the check-in view the servers cache, vitals, listing, deletion and team moves.

use crate::sql::{Arg, SqlBuilder, contains_pattern};
use crate::{Backend, Result, Store, StoreError};
use herd_core::Millis;
use herd_core::host_status::{DEFAULT_CHECKIN_INTERVAL_S, MISSING_AFTER_MS, NEW_WITHIN_MS, ONLINE_GRACE_MS};
use herd_core::vitals::VitalsPatch;
use sqlx::AssertSqlSafe;
use sqlx::{Acquire, AnyConnection, Row};

/// A row of the change feed: `host_id`'s cached check-in state went stale at `changed_at`. `seq` tells
/// two changes apart even when they share a host and a millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostChange {
    pub seq: i64,
    pub host_id: i64,
    pub changed_at: Millis,
}

/// Everything a server needs at check-in time, small enough to keep in memory for every host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostCheckin {
    pub id: i64,
    pub node_key_hash: String,
    /// The node key of Fleet's orbit on this host (fleetd), hashed; None until orbit enrolls.
    pub orbit_node_key_hash: Option<String>,
    pub team_id: Option<i64>,
    pub platform: String,
    pub platform_like: String,
    pub detail_updated_at: Option<Millis>,
    pub refetch_requested_at: Option<Millis>,
    /// The host's remediations finished and the policies they fixed must be re-run (see
    /// `Store::request_automation_recheck`).
    pub recheck_requested_at: Option<Millis>,
    pub created_at: Millis,
    /// Runs are queued for this host (its agent should ask for them).
    pub pending_scripts: bool,
    /// The host's agent applies profiles.
    pub profiles_enabled: bool,
    /// Profile commands await the host's agent.
    pub pending_profiles: bool,
    /// Acknowledged profiles await the host's report (the check-in asks for it).
    pub profiles_verifying: bool,
    /// A migration's critical window is open until then: check-ins carry only the management status.
    pub migration_window_until: Option<Millis>,
    /// The labels the host is a member of (`hosts.label_ids`), for planning its label-scoped policies.
    pub label_ids: std::collections::BTreeSet<i64>,
}

/// A whole host row, for the REST API.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct HostRecord {
    pub id: i64,
    pub uuid: String,
    pub osquery_host_id: String,
    pub team_id: Option<i64>,
    pub team_name: Option<String>,
    pub hostname: String,
    pub computer_name: String,
    pub platform: String,
    pub platform_like: String,
    pub os_version: String,
    pub os_build: String,
    pub osquery_version: String,
    pub hardware_serial: String,
    pub hardware_model: String,
    pub hardware_vendor: String,
    pub cpu_brand: String,
    pub cpu_type: String,
    pub cpu_physical_cores: Option<i64>,
    pub cpu_logical_cores: Option<i64>,
    pub memory: Option<i64>,
    pub uptime_seconds: Option<i64>,
    pub primary_ip: String,
    pub primary_mac: String,
    pub percent_disk_space_available: Option<f64>,
    pub gigs_disk_space_available: Option<f64>,
    pub gigs_total_disk_space: Option<f64>,
    pub distributed_interval: Option<i64>,
    pub config_tls_refresh: Option<i64>,
    pub logger_tls_period: Option<i64>,
    pub seen_time: Option<i64>,
    pub created_at: i64,
    pub last_enrolled_at: i64,
    pub detail_updated_at: Option<i64>,
    pub refetch_requested_at: Option<i64>,
    pub policy_updated_at: Option<i64>,
    /// 1/0 as the host's agent last said; NULL when it never said (osqueryd, or an agent that never asked).
    pub scripts_enabled: Option<i64>,
    /// 1 when the host last reported another management system manages it, 0 when not, NULL unknown.
    pub managed_by_other: Option<i64>,
    #[sqlx(try_from = "String")]
    pub migration_state: herd_core::migration::MigrationState,
    pub migration_started_at: Option<i64>,
    pub migration_window_until: Option<i64>,
}

const HOST_COLUMNS: &str = "h.id, h.uuid, h.osquery_host_id, h.team_id, t.name AS team_name, h.hostname, \
    h.computer_name, h.platform, h.platform_like, h.os_version, h.os_build, h.osquery_version, h.hardware_serial, \
    h.hardware_model, h.hardware_vendor, h.cpu_brand, h.cpu_type, h.cpu_physical_cores, h.cpu_logical_cores, \
    h.memory, h.uptime_seconds, h.primary_ip, h.primary_mac, h.percent_disk_space_available, \
    h.gigs_disk_space_available, h.gigs_total_disk_space, h.distributed_interval, h.config_tls_refresh, \
    h.logger_tls_period, h.seen_time, h.created_at, h.last_enrolled_at, h.detail_updated_at, h.refetch_requested_at, h.policy_updated_at, h.scripts_enabled, \
    h.managed_by_other, h.migration_state, h.migration_started_at, h.migration_window_until";

pub(crate) const CHECKIN_COLUMNS: &str = "id, node_key_hash, orbit_node_key_hash, team_id, platform, platform_like, detail_updated_at, \
    refetch_requested_at, recheck_requested_at, created_at, migration_window_until, label_ids, \
    (SELECT COUNT(*) FROM script_executions e WHERE e.host_id = hosts.id AND e.status = 'pending') + \
    (SELECT COUNT(*) FROM deferrals d WHERE d.host_id = hosts.id AND d.agent_synced = 0) AS pending_scripts, \
    profiles_enabled, \
    (SELECT COUNT(*) FROM host_profiles p WHERE p.host_id = hosts.id AND p.status = 'pending') AS pending_profiles, \
    (SELECT COUNT(*) FROM host_profiles p WHERE p.host_id = hosts.id AND p.status = 'verifying') AS profiles_verifying";

/// A host's check-in row and its policy run history (when it last ran each policy, and which revision).
pub type CheckinAndRuns = (HostCheckin, std::collections::HashMap<i64, herd_core::due::PolicyRun>);

/// A row of `CHECKIN_COLUMNS` followed by `policy_runs`.
fn checkin_and_runs_from_row(row: &sqlx::any::AnyRow) -> Result<CheckinAndRuns> {
    Ok((checkin_from_row(row)?, crate::policies::parse_runs(&row.try_get::<String, _>("policy_runs")?)))
}

pub(crate) fn checkin_from_row(row: &sqlx::any::AnyRow) -> Result<HostCheckin> {
    Ok(HostCheckin {
        id: row.try_get("id")?,
        node_key_hash: row.try_get::<Option<String>, _>("node_key_hash")?.unwrap_or_default(),
        orbit_node_key_hash: row.try_get("orbit_node_key_hash")?,
        team_id: row.try_get("team_id")?,
        platform: row.try_get("platform")?,
        platform_like: row.try_get("platform_like")?,
        detail_updated_at: row.try_get("detail_updated_at")?,
        refetch_requested_at: row.try_get("refetch_requested_at")?,
        recheck_requested_at: row.try_get("recheck_requested_at")?,
        created_at: row.try_get("created_at")?,
        pending_scripts: row.try_get::<i64, _>("pending_scripts")? > 0,
        profiles_enabled: row.try_get::<Option<i64>, _>("profiles_enabled")? == Some(1),
        pending_profiles: row.try_get::<i64, _>("pending_profiles")? > 0,
        profiles_verifying: row.try_get::<i64, _>("profiles_verifying")? > 0,
        migration_window_until: row.try_get("migration_window_until")?,
        label_ids: crate::labels::parse_label_ids(&row.try_get::<String, _>("label_ids")?),
    })
}

/// What an enroll request establishes about a host.
#[derive(Debug, Clone)]
pub struct EnrollHost {
    /// Stable identity: `system_info.uuid`, else the osquery host identifier.
    pub uuid: String,
    pub osquery_host_id: String,
    pub node_key_hash: String,
    pub team_id: Option<i64>,
    /// Platform from the enroll request's platform mask, until os_version says better.
    pub platform_hint: String,
    pub details: VitalsPatch,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCondition {
    Online,
    Offline,
    Missing,
    New,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostOrder {
    Id,
    Hostname,
    DisplayName,
    ComputerName,
    Platform,
    OsVersion,
    OsqueryVersion,
    SeenTime,
    CreatedAt,
    LastEnrolledAt,
    DetailUpdatedAt,
    PrimaryIp,
    Memory,
    HardwareSerial,
    TeamName,
}

impl HostOrder {
    pub fn parse(key: &str) -> Option<HostOrder> {
        Some(match key {
            "id" => HostOrder::Id,
            "hostname" => HostOrder::Hostname,
            "display_name" => HostOrder::DisplayName,
            "computer_name" => HostOrder::ComputerName,
            "platform" => HostOrder::Platform,
            "os_version" => HostOrder::OsVersion,
            "osquery_version" => HostOrder::OsqueryVersion,
            "seen_time" => HostOrder::SeenTime,
            "created_at" => HostOrder::CreatedAt,
            "last_enrolled_at" => HostOrder::LastEnrolledAt,
            "detail_updated_at" => HostOrder::DetailUpdatedAt,
            "primary_ip" => HostOrder::PrimaryIp,
            "memory" => HostOrder::Memory,
            "hardware_serial" => HostOrder::HardwareSerial,
            "team_name" => HostOrder::TeamName,
            _ => return None,
        })
    }

    fn column(self) -> &'static str {
        match self {
            HostOrder::Id => "h.id",
            HostOrder::Hostname => "h.hostname",
            HostOrder::DisplayName => "(CASE WHEN h.computer_name <> '' THEN h.computer_name ELSE h.hostname END)",
            HostOrder::ComputerName => "h.computer_name",
            HostOrder::Platform => "h.platform",
            HostOrder::OsVersion => "h.os_version",
            HostOrder::OsqueryVersion => "h.osquery_version",
            HostOrder::SeenTime => "h.seen_time",
            HostOrder::CreatedAt => "h.created_at",
            HostOrder::LastEnrolledAt => "h.last_enrolled_at",
            HostOrder::DetailUpdatedAt => "h.detail_updated_at",
            HostOrder::PrimaryIp => "h.primary_ip",
            HostOrder::Memory => "h.memory",
            HostOrder::HardwareSerial => "h.hardware_serial",
            HostOrder::TeamName => "t.name",
        }
    }
}

/// Filters of a host listing. Every field narrows; the default lists every host.
#[derive(Debug, Clone, Default)]
pub struct HostFilter {
    /// `Some(None)`: hosts in no team; `Some(Some(id))`: that team's hosts.
    pub team: Option<Option<i64>>,
    /// Restricts to these teams' hosts (a team-scoped user's view); None: no restriction.
    pub visible_teams: Option<Vec<i64>>,
    pub status: Option<StatusCondition>,
    /// Case-insensitive substring of hostname, computer name, uuid, serial or primary IP.
    pub query: Option<String>,
    pub ids: Option<Vec<i64>>,
    /// Hosts whose latest answer to this policy is pass (true) or fail (false).
    pub policy_response: Option<(i64, bool)>,
    /// Hosts whose configuration profiles, taken together, are in this state (Fleet's `os_settings`: failed
    /// outranks pending, which outranks verifying; not sent yet and removes in progress count as pending).
    pub profiles_status: Option<herd_core::profiles::Status>,
    /// Hosts whose copy of this profile is in this state (Fleet's `profile_uuid` + `profile_status`).
    pub profile_status: Option<(String, herd_core::profiles::Status)>,
    /// Hosts whose operating system label is exactly this ("Ubuntu 22.04.3": Fleet's `os_name` and
    /// `os_version` together).
    pub os_version: Option<String>,
    /// Hosts with less than this many GB of disk space available (Fleet's `low_disk_space`); hosts that have
    /// not reported their disk do not match.
    pub low_disk_space_gb: Option<i64>,
    /// Members of this label (Fleet's `label_id`).
    pub label_id: Option<i64>,
}

/// The rank of a host profile row's state, as the summary orders them (see `profiles_summary`).
pub(crate) const PROFILE_RANK_SQL: &str = "CASE WHEN hp.status = 'failed' THEN 3 \
    WHEN hp.status = 'pending' OR hp.status IS NULL OR hp.operation = 'remove' THEN 2 \
    WHEN hp.status = 'verifying' THEN 1 ELSE 0 END";

fn profile_rank(status: herd_core::profiles::Status) -> i64 {
    use herd_core::profiles::Status;
    match status {
        Status::Failed => 3,
        Status::Pending => 2,
        Status::Verifying => 1,
        Status::Verified => 0,
    }
}

/// The SQL for "the host's online window in ms", mirroring `herd_core::host_status::online_window_ms`.
fn online_window_sql() -> String {
    let distributed = format!(
        "(CASE WHEN COALESCE(h.distributed_interval, 0) > 0 THEN h.distributed_interval ELSE {DEFAULT_CHECKIN_INTERVAL_S} END)"
    );
    let config = "(CASE WHEN COALESCE(h.config_tls_refresh, 0) > 0 THEN h.config_tls_refresh ELSE 0 END)";
    format!("((CASE WHEN {distributed} > {config} THEN {distributed} ELSE {config} END) * 1000 + {ONLINE_GRACE_MS})")
}

impl HostFilter {
    fn apply(&self, sql: &mut SqlBuilder, backend: Backend, now: Millis) {
        if let Some(team) = self.team {
            match team {
                None => sql.push(" AND h.team_id IS NULL"),
                Some(id) => sql.push(" AND h.team_id = ").bind(Arg::Int(id)),
            };
        }
        if let Some(teams) = &self.visible_teams {
            sql.push(" AND h.team_id IN ").bind_id_set(backend, teams);
        }
        if let Some((policy_id, passing)) = self.policy_response {
            // A set of the policy's hosts (one range of the primary key), not a probe per host: at 150,000
            // hosts the console's "hosts failing this policy" page went from ~0.6 s to a fraction of that.
            sql.push(" AND h.id IN (SELECT m.host_id FROM policy_membership m WHERE m.policy_id = ")
                .bind(Arg::Int(policy_id))
                .push(" AND m.revision = (SELECT p.revision FROM policies p WHERE p.id = m.policy_id)")
                .push(" AND m.passes = ")
                .bind(Arg::Int(passing as i64))
                .push(")");
        }
        if let Some(status) = self.profiles_status {
            sql.push(&format!(
                " AND h.id IN (SELECT hp.host_id FROM host_profiles hp GROUP BY hp.host_id HAVING MAX({PROFILE_RANK_SQL}) = "
            ))
            .bind(Arg::Int(profile_rank(status)))
            .push(")");
        }
        if let Some((uuid, status)) = &self.profile_status {
            sql.push(" AND h.id IN (SELECT hp.host_id FROM host_profiles hp WHERE hp.profile_uuid = ")
                .bind(Arg::Text(uuid.clone()))
                .push(&format!(" AND {PROFILE_RANK_SQL} = "))
                .bind(Arg::Int(profile_rank(*status)))
                .push(")");
        }
        if let Some(label_id) = self.label_id {
            sql.push(" AND h.id IN (SELECT lm.host_id FROM label_membership lm WHERE lm.label_id = ")
                .bind(Arg::Int(label_id))
                .push(" AND lm.member = 1)");
        }
        if let Some(ids) = &self.ids {
            sql.push(" AND h.id IN ").bind_id_set(backend, ids);
        }
        if let Some(os_version) = &self.os_version {
            sql.push(" AND h.os_version = ").bind(Arg::Text(os_version.clone()));
        }
        if let Some(gb) = self.low_disk_space_gb {
            sql.push(" AND h.gigs_disk_space_available < ").bind(Arg::Int(gb));
        }
        if let Some(query) = self.query.as_deref().map(str::trim).filter(|q| !q.is_empty()) {
            let pattern = contains_pattern(query);
            sql.push(" AND (");
            for (i, column) in
                ["h.hostname", "h.computer_name", "h.uuid", "h.hardware_serial", "h.primary_ip"].iter().enumerate()
            {
                if i > 0 {
                    sql.push(" OR ");
                }
                sql.push(&format!("LOWER({column}) LIKE ")).bind(Arg::Text(pattern.clone())).push(" ESCAPE '\\'");
            }
            sql.push(")");
        }
        match self.status {
            None => {}
            Some(StatusCondition::Online) => {
                sql.push(&format!(" AND h.seen_time IS NOT NULL AND h.seen_time + {} >= ", online_window_sql()))
                    .bind(Arg::Int(now));
            }
            Some(StatusCondition::Offline) => {
                sql.push(&format!(" AND (h.seen_time IS NULL OR (h.seen_time + {} < ", online_window_sql()))
                    .bind(Arg::Int(now))
                    .push(" AND h.seen_time >= ")
                    .bind(Arg::Int(now - MISSING_AFTER_MS))
                    .push("))");
            }
            Some(StatusCondition::Missing) => {
                sql.push(" AND h.seen_time < ").bind(Arg::Int(now - MISSING_AFTER_MS));
            }
            Some(StatusCondition::New) => {
                sql.push(" AND h.created_at >= ").bind(Arg::Int(now - NEW_WITHIN_MS));
            }
        }
    }
}

/// Floats travel as text and are CAST in SQL: sqlx 0.9's Any driver sends a NULL f64 to PostgreSQL as a
/// float4 parameter, so a statement first prepared with a NULL then fails on a real f64 ("incorrect binary
/// data format"). Text has one type whether or not it is NULL. `to_string` round-trips every finite f64.
fn float_param(value: f64) -> String {
    value.to_string()
}

/// How a transaction holds a host row (PostgreSQL; SQLite's single writer serialises every write anyway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HostLock {
    /// The host is about to be deleted: nobody else may touch it.
    Delete,
    /// The host's answers, team or run history are read and then written (reports, transfers, team
    /// deletion): one such transaction per host at a time. Rows that merely reference the host (logs,
    /// script runs) do not wait for it.
    Change,
    /// The host must still exist at commit (a status log, a script result): it cannot be deleted meanwhile.
    Exists,
}

/// The host's team and run history, locked as `lock` says for the rest of the caller's transaction; Err
/// [`StoreError::HostGone`] when the host does not exist (deleted, on this server or another). Every
/// read-then-write of a host goes through here, so deletions, transfers and reports of one host serialise
/// on its row instead of racing.
pub(crate) async fn lock_host(
    conn: &mut AnyConnection,
    backend: Backend,
    host_id: i64,
    lock: HostLock,
) -> Result<LockedHost> {
    let clause = match (backend, lock) {
        (Backend::Sqlite, _) => "",
        (Backend::Postgres, HostLock::Delete) => " FOR UPDATE",
        (Backend::Postgres, HostLock::Change) => " FOR NO KEY UPDATE",
        (Backend::Postgres, HostLock::Exists) => " FOR KEY SHARE",
    };
    let row = sqlx::query(AssertSqlSafe(format!(
        "SELECT team_id, policy_runs, policy_updated_at, scripts_enabled, label_ids FROM hosts WHERE id = $1{clause}"
    )))
    .bind(host_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(StoreError::HostGone)?;
    Ok(LockedHost {
        team_id: row.try_get(0)?,
        policy_runs: row.try_get(1)?,
        policy_updated_at: row.try_get(2)?,
        scripts_enabled: row.try_get(3)?,
        label_ids: crate::labels::parse_label_ids(&row.try_get::<String, _>(4)?),
    })
}

/// The parts of a locked host row its writers need.
#[derive(Debug, Clone)]
pub(crate) struct LockedHost {
    pub team_id: Option<i64>,
    /// The run history (see `policies::parse_runs`).
    pub policy_runs: String,
    /// When the host last reported answers; None: never (so it has no stored answers).
    pub policy_updated_at: Option<Millis>,
    /// What its agent last said about running scripts (None: nothing yet).
    pub scripts_enabled: Option<i64>,
    /// The labels it is a member of.
    pub label_ids: std::collections::BTreeSet<i64>,
}

/// Locks hosts for a change in id order (so two transactions locking overlapping sets cannot deadlock) and
/// returns (id, team) of those that exist.
pub(crate) async fn lock_hosts(
    conn: &mut AnyConnection,
    backend: Backend,
    host_ids: &[i64],
) -> Result<Vec<(i64, Option<i64>)>> {
    let mut sql = SqlBuilder::new("SELECT id, team_id FROM hosts WHERE id IN ");
    sql.bind_id_set(backend, host_ids).push(" ORDER BY id");
    if backend == Backend::Postgres {
        sql.push(" FOR NO KEY UPDATE");
    }
    sql.query().fetch_all(&mut *conn).await?.iter().map(|r| Ok((r.try_get(0)?, r.try_get(1)?))).collect()
}

/// Records that `host_id`'s cached check-in state is stale, in the caller's transaction.
pub(crate) async fn note_host_change(conn: &mut AnyConnection, host_id: i64, now: Millis) -> Result<()> {
    sqlx::query("INSERT INTO host_changes (host_id, changed_at) VALUES ($1, $2)")
        .bind(host_id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

impl Store {
    /// Enrolls a host, or re-enrolls it (new node key, fresh details) into its existing row when its uuid is
    /// known: the row keeps its id, team and history, and the old node key stops working. Any number of
    /// enrollments of one uuid at once — osqueryd retrying, a cloned machine, several servers — leave one
    /// row (the last node key wins) and never fail on the unique uuid. Returns the host's check-in row as
    /// this enrollment wrote it, and whether the host is new (see [`Enrolled`]).
    pub async fn enroll_host(&self, host: &EnrollHost, now: Millis) -> Result<Enrolled> {
        let in_flight = self.start_hot_write();
        if let Some(group) = &self.group_commit {
            return group.enroll(host.clone(), now).await;
        }
        let mut conn = self.writer.acquire().await?;
        in_flight.begins();
        let mut tx = conn.begin().await?;
        let enrolled = enroll_in(&mut tx, host, now).await?;
        tx.commit().await?;
        Ok(enrolled)
    }
}

/// Binds what an enrolling host reported, `$5` to `$13` of both of `enroll_in`'s statements.
fn bind_enroll_details<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    d: &VitalsPatch,
    platform: &str,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    query
        .bind(d.hostname.clone())
        .bind(d.computer_name.clone())
        .bind(platform.to_string())
        .bind(d.platform_like.clone())
        .bind(d.os_version.clone())
        .bind(d.osquery_version.clone())
        .bind(d.hardware_serial.clone())
        .bind(d.hardware_model.clone())
        .bind(d.hardware_vendor.clone())
}

/// What an enrollment did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    /// The host's check-in row as the enrollment wrote it.
    pub checkin: HostCheckin,
    /// A new row. Nobody can have cached a new host, so its row may be cached at once (unless something
    /// evicted it meanwhile: see `herd_server::host_cache`). A re-enrolled host's row may be changing
    /// under other writers (its pending work, in PostgreSQL, is read from the statement's snapshot), and
    /// the change feed evicts it everywhere anyway: it is read back when next needed.
    pub new_host: bool,
}

/// How many times an enrollment tries insert-or-update when the row it found keeps being deleted.
pub(crate) const ENROLL_ATTEMPTS: usize = 3;

/// An enrollment (see `Store::enroll_host`), in the caller's transaction.
///
/// A new host is one insert. Only a re-enrollment is noted in the change feed (its old node key may be
/// cached by any server); noting every new host too would make every server evict it and read it back.
pub(crate) async fn enroll_in(conn: &mut AnyConnection, host: &EnrollHost, now: Millis) -> Result<Enrolled> {
    let d = &host.details;
    let platform = d.platform.clone().unwrap_or_else(|| host.platform_hint.clone());
    // A row deleted between the insert that found it and the update (a host deletion, perhaps on another
    // server) is inserted again; a few attempts, since a concurrent enrollment may win that insert and a
    // deletion remove it again.
    for _ in 0..ENROLL_ATTEMPTS {
        // A detail the host did not report is '' in a new row.
        let insert = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO hosts (uuid, osquery_host_id, node_key_hash, team_id, hostname, computer_name, \
             platform, platform_like, os_version, osquery_version, hardware_serial, hardware_model, \
             hardware_vendor, created_at, last_enrolled_at) \
             VALUES ($1, $2, $3, $4, COALESCE($5, ''), COALESCE($6, ''), $7, COALESCE($8, ''), COALESCE($9, ''), \
             COALESCE($10, ''), COALESCE($11, ''), COALESCE($12, ''), COALESCE($13, ''), $14, $14) \
             ON CONFLICT (uuid) DO NOTHING RETURNING {CHECKIN_COLUMNS}"
        )))
        .bind(&host.uuid)
        .bind(&host.osquery_host_id)
        .bind(&host.node_key_hash)
        .bind(host.team_id);
        let inserted = bind_enroll_details(insert, d, &platform).bind(now).fetch_optional(&mut *conn).await;
        let inserted = inserted.map_err(|e| match &e {
            // The secret's team was deleted meanwhile (perhaps through another server).
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound("team"),
            _ => StoreError::Database(e),
        })?;
        if let Some(row) = inserted {
            return Ok(Enrolled { checkin: checkin_from_row(&row)?, new_host: true });
        }
        // Known uuid: a re-enrollment. A detail the host did not report keeps its value; the team and
        // creation time stay (re-enrolling never moves a host).
        let update = sqlx::query(AssertSqlSafe(format!(
            "UPDATE hosts SET node_key_hash = $2, osquery_host_id = $3, last_enrolled_at = $4, \
             hostname = COALESCE($5, hostname), computer_name = COALESCE($6, computer_name), \
             platform = CASE WHEN $7 <> '' THEN $7 ELSE platform END, \
             platform_like = COALESCE($8, platform_like), os_version = COALESCE($9, os_version), \
             osquery_version = COALESCE($10, osquery_version), hardware_serial = COALESCE($11, hardware_serial), \
             hardware_model = COALESCE($12, hardware_model), hardware_vendor = COALESCE($13, hardware_vendor) \
             WHERE uuid = $1 RETURNING {CHECKIN_COLUMNS}"
        )))
        .bind(&host.uuid)
        .bind(&host.node_key_hash)
        .bind(&host.osquery_host_id)
        .bind(now);
        let updated = bind_enroll_details(update, d, &platform).fetch_optional(&mut *conn).await?;
        if let Some(row) = updated {
            let checkin = checkin_from_row(&row)?;
            // The old node key must stop working on every server.
            note_host_change(conn, checkin.id, now).await?;
            return Ok(Enrolled { checkin, new_host: false });
        }
    }
    Err(StoreError::unavailable("the host was deleted again and again while it enrolled; enroll again"))
}

impl Store {
    pub async fn host_checkin_by_node_key(&self, node_key_hash: &str) -> Result<Option<HostCheckin>> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {CHECKIN_COLUMNS} FROM hosts WHERE node_key_hash = $1")))
            .bind(node_key_hash)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(checkin_from_row).transpose()
    }

    /// Enrolled hosts with ids above `after_id`, in id order, at most `limit`: their check-in rows and policy run
    /// histories, for warming a server's cache before it serves (so a restart does not send every host's first
    /// check-in to the database).
    pub async fn host_checkins_page(&self, after_id: i64, limit: i64) -> Result<Vec<CheckinAndRuns>> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CHECKIN_COLUMNS}, policy_runs FROM hosts WHERE id > $1 AND node_key_hash IS NOT NULL \
             ORDER BY id LIMIT $2"
        )))
        .bind(after_id)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(checkin_and_runs_from_row).collect()
    }

    /// A host's check-in row with its policy run history, in one read (a check-in that finds work due
    /// needs both).
    pub async fn host_checkin_and_runs(&self, host_id: i64) -> Result<Option<CheckinAndRuns>> {
        let row = sqlx::query(AssertSqlSafe(format!("SELECT {CHECKIN_COLUMNS}, policy_runs FROM hosts WHERE id = $1")))
            .bind(host_id)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(checkin_and_runs_from_row).transpose()
    }

    /// Applies a vitals report. Clears a refetch request that was made before `results_requested_at` (the
    /// moment the queries were handed out), so a refetch asked for while results were in flight still runs.
    /// Returns false when the host no longer exists.
    pub async fn record_vitals(
        &self,
        host_id: i64,
        patch: &VitalsPatch,
        results_requested_at: Millis,
        now: Millis,
    ) -> Result<bool> {
        let mut conn = self.writer.acquire().await?;
        write_vitals(&mut conn, host_id, patch, results_requested_at, None, now).await
    }
}

/// The vitals part of a report, in the caller's transaction (see `Store::record_vitals`).
///
/// `policy_runs`: the run history of a report that also carried answers, written by the same statement
/// (with what `policies::write_policy_runs` writes), one update of the host row per report.
pub(crate) async fn write_vitals(
    conn: &mut AnyConnection,
    host_id: i64,
    patch: &VitalsPatch,
    results_requested_at: Millis,
    policy_runs: Option<&str>,
    now: Millis,
) -> Result<bool> {
    {
        let p = patch;
        let runs_clause = match policy_runs {
            Some(_) => "policy_runs = $28, policy_updated_at = $25, recheck_requested_at = NULL, ",
            None => "",
        };
        let query = sqlx::query(AssertSqlSafe(format!(
            "UPDATE hosts SET {runs_clause} hostname = COALESCE($1, hostname), computer_name = COALESCE($2, computer_name), \
             platform = COALESCE($3, platform), platform_like = COALESCE($4, platform_like), \
             os_version = COALESCE($5, os_version), os_build = COALESCE($6, os_build), \
             osquery_version = COALESCE($7, osquery_version), hardware_serial = COALESCE($8, hardware_serial), \
             hardware_model = COALESCE($9, hardware_model), hardware_vendor = COALESCE($10, hardware_vendor), \
             cpu_brand = COALESCE($11, cpu_brand), cpu_type = COALESCE($12, cpu_type), \
             cpu_physical_cores = COALESCE($13, cpu_physical_cores), cpu_logical_cores = COALESCE($14, cpu_logical_cores), \
             memory = COALESCE($15, memory), uptime_seconds = COALESCE($16, uptime_seconds), \
             primary_ip = COALESCE($17, primary_ip), primary_mac = COALESCE($18, primary_mac), \
             percent_disk_space_available = COALESCE(CAST($19 AS DOUBLE PRECISION), percent_disk_space_available), \
             gigs_disk_space_available = COALESCE(CAST($20 AS DOUBLE PRECISION), gigs_disk_space_available), \
             gigs_total_disk_space = COALESCE(CAST($21 AS DOUBLE PRECISION), gigs_total_disk_space), \
             distributed_interval = COALESCE($22, distributed_interval), \
             config_tls_refresh = COALESCE($23, config_tls_refresh), \
             logger_tls_period = COALESCE($24, logger_tls_period), \
             detail_updated_at = $25, \
             refetch_requested_at = CASE WHEN refetch_requested_at <= $26 THEN NULL ELSE refetch_requested_at END \
             WHERE id = $27"
        )))
        .bind(p.hostname.clone())
        .bind(p.computer_name.clone())
        .bind(p.platform.clone())
        .bind(p.platform_like.clone())
        .bind(p.os_version.clone())
        .bind(p.os_build.clone())
        .bind(p.osquery_version.clone())
        .bind(p.hardware_serial.clone())
        .bind(p.hardware_model.clone())
        .bind(p.hardware_vendor.clone())
        .bind(p.cpu_brand.clone())
        .bind(p.cpu_type.clone())
        .bind(p.cpu_physical_cores)
        .bind(p.cpu_logical_cores)
        .bind(p.memory)
        .bind(p.uptime_seconds)
        .bind(p.primary_ip.clone())
        .bind(p.primary_mac.clone())
        .bind(p.percent_disk_space_available.map(float_param))
        .bind(p.gigs_disk_space_available.map(float_param))
        .bind(p.gigs_total_disk_space.map(float_param))
        .bind(p.distributed_interval)
        .bind(p.config_tls_refresh)
        .bind(p.logger_tls_period)
        .bind(now)
        .bind(results_requested_at)
        .bind(host_id);
        let query = match policy_runs {
            Some(runs) => query.bind(runs),
            None => query,
        };
        let done = query.execute(&mut *conn).await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Store {
    pub async fn get_host(&self, host_id: i64) -> Result<Option<HostRecord>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {HOST_COLUMNS} FROM hosts h LEFT JOIN teams t ON t.id = h.team_id WHERE h.id = $1"
        )))
        .bind(host_id)
        .fetch_optional(&self.reader)
        .await?)
    }

    /// A host by hostname, uuid or hardware serial (Fleet's `/hosts/identifier/{identifier}`), first match by
    /// that order.
    pub async fn host_by_identifier(&self, identifier: &str) -> Result<Option<HostRecord>> {
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {HOST_COLUMNS} FROM hosts h LEFT JOIN teams t ON t.id = h.team_id \
             WHERE h.uuid = $1 OR h.hostname = $1 OR (h.hardware_serial = $1 AND h.hardware_serial <> '') \
             OR h.osquery_host_id = $1 \
             ORDER BY CASE WHEN h.hostname = $1 THEN 0 WHEN h.uuid = $1 THEN 1 ELSE 2 END, h.id LIMIT 1"
        )))
        .bind(identifier)
        .fetch_optional(&self.reader)
        .await?)
    }

    /// Ids of the hosts these identifiers name: hostname, uuid, hardware serial, osquery host id, or the id
    /// itself (Fleet's manual label `hosts`). Identifiers naming no host are left out.
    pub async fn host_ids_by_identifiers(&self, identifiers: &[String]) -> Result<Vec<i64>> {
        let texts: Vec<&str> = identifiers.iter().map(|i| i.trim()).filter(|i| !i.is_empty()).collect();
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let json = serde_json::to_string(&texts).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let set = match self.backend {
            Backend::Sqlite => "(SELECT value FROM json_each($1))",
            Backend::Postgres => "(SELECT value FROM json_array_elements_text(CAST($1 AS JSON)))",
        };
        let sql = format!(
            "SELECT id FROM hosts WHERE hostname IN {set} OR uuid IN {set} OR hardware_serial IN {set} \
             OR osquery_host_id IN {set} OR CAST(id AS TEXT) IN {set} ORDER BY id"
        );
        Ok(sqlx::query_scalar(AssertSqlSafe(sql)).bind(json).fetch_all(&self.reader).await?)
    }

    /// The ids among these that are hosts.
    pub async fn existing_host_ids(&self, ids: &[i64]) -> Result<Vec<i64>> {
        let mut sql = SqlBuilder::new("SELECT id FROM hosts WHERE id IN ");
        sql.bind_id_set(self.backend, ids).push(" ORDER BY id");
        Ok(sql
            .query()
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(|r| r.try_get(0))
            .collect::<std::result::Result<_, _>>()?)
    }

    pub async fn list_hosts(
        &self,
        filter: &HostFilter,
        order: HostOrder,
        descending: bool,
        offset: i64,
        limit: i64,
        now: Millis,
    ) -> Result<Vec<HostRecord>> {
        let mut sql = SqlBuilder::new(&format!(
            "SELECT {HOST_COLUMNS} FROM hosts h LEFT JOIN teams t ON t.id = h.team_id WHERE 1 = 1"
        ));
        filter.apply(&mut sql, self.backend, now);
        let direction = if descending { "DESC" } else { "ASC" };
        sql.push(&format!(" ORDER BY {} {direction}, h.id {direction} LIMIT ", order.column()))
            .bind(Arg::Int(limit))
            .push(" OFFSET ")
            .bind(Arg::Int(offset));
        let rows = sql.query().fetch_all(&self.reader).await?;
        rows.iter().map(|row| sqlx::FromRow::from_row(row).map_err(StoreError::from)).collect()
    }

    /// (all, online, offline) hosts matching `filter` (its own status condition aside), in one pass over the
    /// table: what a dashboard shows, for the price of one count.
    pub async fn host_status_counts(&self, filter: &HostFilter, now: Millis) -> Result<(i64, i64, i64)> {
        let window = online_window_sql();
        let mut sql = SqlBuilder::new(&format!(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN h.seen_time IS NOT NULL AND h.seen_time + {window} >= "
        ));
        sql.bind(Arg::Int(now))
            .push(&format!(
                " THEN 1 ELSE 0 END), 0), COALESCE(SUM(CASE WHEN h.seen_time IS NULL OR (h.seen_time + {window} < "
            ))
            .bind(Arg::Int(now))
            .push(" AND h.seen_time >= ")
            .bind(Arg::Int(now - MISSING_AFTER_MS))
            .push(") THEN 1 ELSE 0 END), 0) FROM hosts h WHERE 1 = 1");
        let unfiltered = HostFilter { status: None, ..filter.clone() };
        unfiltered.apply(&mut sql, self.backend, now);
        let row = sql.query().fetch_one(&self.reader).await?;
        Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?))
    }

    pub async fn count_hosts(&self, filter: &HostFilter, now: Millis) -> Result<i64> {
        let mut sql = SqlBuilder::new("SELECT COUNT(*) FROM hosts h WHERE 1 = 1");
        filter.apply(&mut sql, self.backend, now);
        let row = sql.query().fetch_one(&self.reader).await?;
        Ok(row.try_get(0)?)
    }

    /// How many hosts of a listing each platform has (Fleet's host summary), by platform name.
    pub async fn host_platform_counts(&self, filter: &HostFilter, now: Millis) -> Result<Vec<(String, i64)>> {
        let mut sql = SqlBuilder::new("SELECT h.platform, COUNT(*) FROM hosts h WHERE 1 = 1");
        filter.apply(&mut sql, self.backend, now);
        sql.push(" GROUP BY h.platform ORDER BY h.platform");
        let rows = sql.query().fetch_all(&self.reader).await?;
        rows.iter().map(|row| Ok((row.try_get(0)?, row.try_get(1)?))).collect()
    }

    /// Deletes a host and everything recorded about it. Its node key stops working at once on this server and
    /// within one change-feed poll on the others.
    pub async fn delete_host(&self, host_id: i64, now: Millis) -> Result<bool> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        // Locked first: a report of this host on another connection either committed before (its answers are
        // uncounted here) or waits and then finds the host gone.
        let host = match lock_host(&mut tx, self.backend, host_id, HostLock::Delete).await {
            Ok(host) => host,
            Err(StoreError::HostGone) => return Ok(false),
            Err(err) => return Err(err),
        };
        let mut deltas = crate::policies::CountDeltas::new();
        crate::policies::move_host_answers(&mut tx, self.backend, host_id, host.team_id, None, true, &mut deltas)
            .await?;
        crate::policies::apply_count_deltas(&mut tx, &deltas, now).await?;
        let deleted = sqlx::query("DELETE FROM hosts WHERE id = $1").bind(host_id).execute(&mut *tx).await?;
        if deleted.rows_affected() == 1 {
            note_host_change(&mut tx, host_id, now).await?;
        }
        tx.commit().await?;
        Ok(deleted.rows_affected() == 1)
    }

    /// Moves hosts to a team (or to no team). Returns how many moved. Unknown host ids are ignored, as in Fleet.
    pub async fn transfer_hosts(&self, team_id: Option<i64>, host_ids: &[i64], now: Millis) -> Result<u64> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        if let Some(team) = team_id {
            // Shared until commit: a team deletion (which locks the team first) waits for this transfer and
            // then moves these hosts out too, or this transfer waits for it and finds no team.
            let lock = if self.backend == Backend::Postgres { " FOR KEY SHARE" } else { "" };
            let exists: Option<i64> =
                sqlx::query_scalar(AssertSqlSafe(format!("SELECT id FROM teams WHERE id = $1{lock}")))
                    .bind(team)
                    .fetch_optional(&mut *tx)
                    .await?;
            if exists.is_none() {
                return Err(StoreError::NotFound("team"));
            }
        }
        // Locked, then read: two transfers of one host serialise, and the second sees the first's team.
        let hosts = lock_hosts(&mut tx, self.backend, host_ids).await?;
        let mut sql = SqlBuilder::new("UPDATE hosts SET team_id = ");
        match team_id {
            Some(team) => sql.bind(Arg::Int(team)),
            None => sql.push("NULL"),
        };
        sql.push(" WHERE id IN ").bind_id_set(self.backend, host_ids);
        sql.query().execute(&mut *tx).await?;
        let moved = hosts.len() as u64;
        let mut deltas = crate::policies::CountDeltas::new();
        for (host, old_team) in &hosts {
            crate::policies::note_host_moved(&mut tx, self.backend, *host, *old_team, team_id, &mut deltas, now)
                .await?;
        }
        // Criteria may name the team: the moved hosts' labels are decided again, with what follows.
        let facts = crate::labels::LabelFacts::load(&mut tx).await?;
        for (host, _) in &hosts {
            crate::labels::refresh_host_in(&mut tx, self.backend, *host, &facts, &[], &mut deltas, now).await?;
        }
        crate::policies::apply_count_deltas(&mut tx, &deltas, now).await?;
        // Their expected profiles change: the reconcile jobs send the removes and installs (one job per 500
        // hosts keeps each job's payload small).
        let ids: Vec<i64> = hosts.iter().map(|(id, _)| *id).collect();
        for chunk in ids.chunks(500) {
            crate::profiles::note_hosts_moved(&mut tx, chunk, now).await?;
        }
        tx.commit().await?;
        Ok(moved)
    }

    /// Asks the host to run all its vitals (and later its policies) at its next check-in.
    pub async fn request_refetch(&self, host_id: i64, now: Millis) -> Result<bool> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let updated = sqlx::query("UPDATE hosts SET refetch_requested_at = $1 WHERE id = $2")
            .bind(now)
            .bind(host_id)
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 1 {
            note_host_change(&mut tx, host_id, now).await?;
        }
        tx.commit().await?;
        Ok(updated.rows_affected() == 1)
    }

    /// Writes last-seen times gathered in memory. A time never moves backwards (another server may have seen
    /// the host later).
    pub async fn flush_seen_times(&self, seen: &[(i64, Millis)]) -> Result<()> {
        // One time per host: an UPDATE ... FROM that matches a row twice updates it with either value.
        let mut latest: std::collections::BTreeMap<i64, Millis> = std::collections::BTreeMap::new();
        for (host, at) in seen {
            let entry = latest.entry(*host).or_insert(*at);
            *entry = (*entry).max(*at);
        }
        let seen: Vec<(i64, Millis)> = latest.into_iter().collect();
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        // Integer literals, not parameters: a flush carries every host seen in the last seconds (150,000 hosts
        // at a 10 s check-in interval: 75,000 per flush), and binding costs SQLite n² per statement.
        for chunk in seen.chunks(5000) {
            if self.backend == Backend::Postgres {
                // Each chunk its own transaction, its rows locked in id order first: the order every multi-host
                // writer uses (`lock_hosts`), so a flush never deadlocks with a transfer or another server's
                // flush, and reports of these hosts wait for one chunk, not the whole flush.
                let mut lock = SqlBuilder::new("SELECT id FROM hosts WHERE id IN (");
                for (i, (id, _)) in chunk.iter().enumerate() {
                    if i > 0 {
                        lock.push(", ");
                    }
                    lock.push_int(*id);
                }
                lock.push(") ORDER BY id FOR NO KEY UPDATE");
                lock.one_off_query().execute(&mut *tx).await?;
            }
            let mut sql = SqlBuilder::new("UPDATE hosts SET seen_time = v.column2 FROM (VALUES ");
            for (i, (id, at)) in chunk.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push("(").push_int(*id).push(", ").push_int(*at).push(")");
            }
            sql.push(") AS v WHERE hosts.id = v.column1 AND (hosts.seen_time IS NULL OR hosts.seen_time < v.column2)");
            sql.one_off_query().execute(&mut *tx).await?;
            if self.backend == Backend::Postgres {
                tx.commit().await?;
                tx = conn.begin().await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Hosts whose cached check-in state changed at or after `since` (change-feed poll), and the newest change
    /// time seen. Callers poll with an overlap, because PostgreSQL may commit a change stamped slightly earlier
    /// after a later one; evicting a host twice is harmless.
    pub async fn changed_hosts_since(&self, since: Millis) -> Result<Vec<HostChange>> {
        let rows = sqlx::query("SELECT seq, host_id, changed_at FROM host_changes WHERE changed_at >= $1 ORDER BY seq")
            .bind(since)
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| Ok(HostChange { seq: r.try_get(0)?, host_id: r.try_get(1)?, changed_at: r.try_get(2)? }))
            .collect()
    }

    /// Drops change-feed rows no server can still need.
    pub async fn prune_host_changes(&self, older_than: Millis) -> Result<u64> {
        let done = sqlx::query("DELETE FROM host_changes WHERE changed_at < $1")
            .bind(older_than)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    pub async fn host_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM hosts").fetch_one(&self.reader).await?)
    }
}
