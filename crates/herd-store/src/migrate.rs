//! Schema migrations, embedded in the binary and applied at start, in order, each in its own transaction.

use crate::{Backend, Result, Store};
use sqlx::{Acquire, Executor};

struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

/// One migration: its version and file stem, the same under `migrations/sqlite/` and `migrations/postgres/`.
macro_rules! migration {
    ($version:literal, $stem:literal) => {
        Migration {
            version: $version,
            sqlite: include_str!(concat!("../migrations/sqlite/", $stem, ".sql")),
            postgres: include_str!(concat!("../migrations/postgres/", $stem, ".sql")),
        }
    };
}

const MIGRATIONS: &[Migration] = &[
    migration!(1, "0001_foundation"),
    migration!(2, "0002_policies"),
    migration!(3, "0003_jobs"),
    migration!(4, "0004_scripts"),
    migration!(5, "0005_automations"),
    migration!(6, "0006_automation_targets"),
    migration!(7, "0007_mdm_migration"),
    migration!(8, "0008_deferrals"),
    migration!(9, "0009_profiles"),
    migration!(10, "0010_compliance"),
    migration!(11, "0011_count_shards"),
    migration!(12, "0012_automation_give_ups"),
    migration!(13, "0013_script_outcomes"),
    migration!(14, "0014_orbit"),
    migration!(15, "0015_labels"),
];

/// Several servers may start at once against one PostgreSQL: an advisory lock makes them migrate one at a
/// time, and each sees what the previous one applied.
const PG_MIGRATION_LOCK: i64 = 0x6865_7264; // "herd"

pub(crate) async fn apply(store: &Store) -> Result<()> {
    let mut conn = store.writer.acquire().await?;
    if store.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_lock($1)").bind(PG_MIGRATION_LOCK).execute(&mut *conn).await?;
    }
    let outcome = apply_locked(store.backend, &mut conn).await;
    if store.backend == Backend::Postgres {
        sqlx::query("SELECT pg_advisory_unlock($1)").bind(PG_MIGRATION_LOCK).execute(&mut *conn).await?;
    }
    outcome
}

async fn apply_locked(backend: Backend, conn: &mut sqlx::AnyConnection) -> Result<()> {
    conn.execute(
        "CREATE TABLE IF NOT EXISTS herd_schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .await?;
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM herd_schema_migrations").fetch_all(&mut *conn).await?;
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let mut tx = conn.begin().await?;
        let script = match backend {
            Backend::Sqlite => migration.sqlite,
            Backend::Postgres => migration.postgres,
        };
        sqlx::raw_sql(script).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO herd_schema_migrations (version, applied_at) VALUES ($1, $2)")
            .bind(migration.version)
            .bind(crate::sql::now_ms())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version = migration.version, backend = backend.name(), "applied schema migration");
    }
    Ok(())
}
