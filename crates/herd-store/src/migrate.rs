//! Schema migrations, embedded in the binary and applied at start, in order, each in its own transaction.

use crate::{Backend, Result, Store};
use sqlx::{Acquire, Executor};

struct Migration {
    version: i64,
    sqlite: &'static str,
    postgres: &'static str,
}

const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        sqlite: include_str!("../migrations/sqlite/0001_foundation.sql"),
        postgres: include_str!("../migrations/postgres/0001_foundation.sql"),
    },
    Migration {
        version: 2,
        sqlite: include_str!("../migrations/sqlite/0002_policies.sql"),
        postgres: include_str!("../migrations/postgres/0002_policies.sql"),
    },
    Migration {
        version: 3,
        sqlite: include_str!("../migrations/sqlite/0003_jobs.sql"),
        postgres: include_str!("../migrations/postgres/0003_jobs.sql"),
    },
    Migration {
        version: 4,
        sqlite: include_str!("../migrations/sqlite/0004_scripts.sql"),
        postgres: include_str!("../migrations/postgres/0004_scripts.sql"),
    },
    Migration {
        version: 5,
        sqlite: include_str!("../migrations/sqlite/0005_automations.sql"),
        postgres: include_str!("../migrations/postgres/0005_automations.sql"),
    },
    Migration {
        version: 6,
        sqlite: include_str!("../migrations/sqlite/0006_automation_targets.sql"),
        postgres: include_str!("../migrations/postgres/0006_automation_targets.sql"),
    },
    Migration {
        version: 7,
        sqlite: include_str!("../migrations/sqlite/0007_mdm_migration.sql"),
        postgres: include_str!("../migrations/postgres/0007_mdm_migration.sql"),
    },
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
