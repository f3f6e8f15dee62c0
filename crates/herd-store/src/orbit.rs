//! Fleet's orbit (fleetd's agent process): its enrollment into the host row it shares with the host's
//! osqueryd, and finding the host by its orbit node key.

use crate::hosts::{CHECKIN_COLUMNS, ENROLL_ATTEMPTS, Enrolled, HostCheckin, checkin_from_row, note_host_change};
use crate::{Result, Store, StoreError};
use herd_core::Millis;
use sqlx::{Acquire, AnyConnection, AssertSqlSafe, Row};

/// What an orbit enrollment establishes about a host (Fleet's `OrbitHostInfo` and the secret's team).
#[derive(Debug, Clone, Default)]
pub struct OrbitEnroll {
    pub hardware_uuid: String,
    /// The identifier osqueryd enrolls with when it is not the hardware UUID (osquery's `instance` id, for
    /// machines that share a hardware UUID); empty otherwise.
    pub osquery_identifier: String,
    pub orbit_node_key_hash: String,
    pub team_id: Option<i64>,
    pub hostname: String,
    pub computer_name: String,
    pub platform: String,
    pub hardware_serial: String,
    pub hardware_model: String,
}

impl Store {
    /// Enrolls a host's orbit: the host row of the same hardware UUID (or, when orbit names one, of the
    /// osquery identifier) gets the orbit node key, whichever of orbit and osqueryd enrolled first; with no
    /// such row, a new one that osqueryd's enrollment will find (same uuid). Like osquery enrollment, an
    /// insert that does nothing on a known uuid then an update, so concurrent enrollments of one machine
    /// leave one row; the team and details already known stay (a detail orbit reports fills an empty one).
    pub async fn enroll_orbit(&self, host: &OrbitEnroll, now: Millis) -> Result<Enrolled> {
        let mut conn = self.writer.acquire().await?;
        let mut tx = conn.begin().await?;
        let enrolled = enroll_orbit_in(&mut tx, host, now).await?;
        tx.commit().await?;
        Ok(enrolled)
    }

    /// A host's runs still to do, oldest first, with their time limits: queued ones and those waiting on a
    /// deferral (fleetd asks no user: it runs them when told). Read every time orbit fetches its
    /// configuration, as Fleet does, from any server; the index on (host, status) keeps it cheap.
    pub async fn queued_executions(&self, host_id: i64) -> Result<Vec<(String, i64)>> {
        let rows = sqlx::query(
            "SELECT execution_id, timeout_s FROM script_executions \
             WHERE host_id = $1 AND status IN ('pending', 'deferred') ORDER BY id",
        )
        .bind(host_id)
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(|row| Ok((row.try_get("execution_id")?, row.try_get("timeout_s")?))).collect()
    }

    pub async fn host_checkin_by_orbit_node_key(&self, orbit_node_key_hash: &str) -> Result<Option<HostCheckin>> {
        let row =
            sqlx::query(AssertSqlSafe(format!("SELECT {CHECKIN_COLUMNS} FROM hosts WHERE orbit_node_key_hash = $1")))
                .bind(orbit_node_key_hash)
                .fetch_optional(&self.reader)
                .await?;
        row.as_ref().map(checkin_from_row).transpose()
    }
}

async fn enroll_orbit_in(conn: &mut AnyConnection, host: &OrbitEnroll, now: Millis) -> Result<Enrolled> {
    // osqueryd enrolls as its host identifier only when it reports no hardware UUID; orbit then names that
    // identifier, and the row osqueryd made is the one to join.
    let mut uuid = host.hardware_uuid.clone();
    if !host.osquery_identifier.is_empty() {
        let known: Option<String> =
            sqlx::query("SELECT uuid FROM hosts WHERE osquery_host_id = $1 AND uuid <> $2 ORDER BY id LIMIT 1")
                .bind(&host.osquery_identifier)
                .bind(&host.hardware_uuid)
                .fetch_optional(&mut *conn)
                .await?
                .map(|row| row.try_get("uuid"))
                .transpose()?;
        if let Some(known) = known {
            uuid = known;
        }
    }
    let osquery_host_id =
        if host.osquery_identifier.is_empty() { host.hardware_uuid.clone() } else { host.osquery_identifier.clone() };
    for _ in 0..ENROLL_ATTEMPTS {
        let inserted = sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO hosts (uuid, osquery_host_id, orbit_node_key_hash, team_id, hostname, computer_name, \
             platform, hardware_serial, hardware_model, created_at, last_enrolled_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
             ON CONFLICT (uuid) DO NOTHING RETURNING {CHECKIN_COLUMNS}"
        )))
        .bind(&uuid)
        .bind(&osquery_host_id)
        .bind(&host.orbit_node_key_hash)
        .bind(host.team_id)
        .bind(&host.hostname)
        .bind(&host.computer_name)
        .bind(&host.platform)
        .bind(&host.hardware_serial)
        .bind(&host.hardware_model)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await
        .map_err(|e| match &e {
            // The secret's team was deleted meanwhile (perhaps through another server).
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => StoreError::NotFound("team"),
            _ => StoreError::Database(e),
        })?;
        if let Some(row) = inserted {
            return Ok(Enrolled { checkin: checkin_from_row(&row)?, new_host: true });
        }
        // Known: osqueryd (or an earlier orbit) enrolled this machine. Fleet fills only what is empty.
        let updated = sqlx::query(AssertSqlSafe(format!(
            "UPDATE hosts SET orbit_node_key_hash = $2, \
             hostname = CASE WHEN hostname = '' THEN $3 ELSE hostname END, \
             computer_name = CASE WHEN computer_name = '' THEN $4 ELSE computer_name END, \
             platform = CASE WHEN platform = '' THEN $5 ELSE platform END, \
             hardware_serial = CASE WHEN hardware_serial = '' THEN $6 ELSE hardware_serial END, \
             hardware_model = CASE WHEN hardware_model = '' THEN $7 ELSE hardware_model END \
             WHERE uuid = $1 RETURNING {CHECKIN_COLUMNS}"
        )))
        .bind(&uuid)
        .bind(&host.orbit_node_key_hash)
        .bind(&host.hostname)
        .bind(&host.computer_name)
        .bind(&host.platform)
        .bind(&host.hardware_serial)
        .bind(&host.hardware_model)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(row) = updated {
            let checkin = checkin_from_row(&row)?;
            // A previous orbit node key of this host may be cached by any server.
            note_host_change(conn, checkin.id, now).await?;
            return Ok(Enrolled { checkin, new_host: false });
        }
    }
    Err(StoreError::unavailable("the host was deleted again and again while orbit enrolled; enroll again"))
}
