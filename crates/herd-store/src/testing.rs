//! Support for tests that need a real database: a fresh SQLite file or a fresh PostgreSQL database per test.
//!
//! PostgreSQL comes from `HERD_TEST_DATABASE_URL` (set by `scripts/test`, which starts a throwaway cluster).
//! Without it, PostgreSQL cases skip with a message — unless `REQUIRE_POSTGRES=1`, when they fail.

use sqlx::AssertSqlSafe;
use sqlx::any::{AnyPoolOptions, install_default_drivers};

/// A URL for a new, empty PostgreSQL database, or None when PostgreSQL is not configured for tests.
/// Panics when PostgreSQL is required but missing or unreachable, so CI cannot pass without it.
pub async fn fresh_postgres_url() -> Option<String> {
    let required = std::env::var("REQUIRE_POSTGRES").is_ok_and(|v| v == "1");
    let Ok(admin_url) = std::env::var("HERD_TEST_DATABASE_URL") else {
        assert!(
            !required,
            "REQUIRE_POSTGRES=1 but HERD_TEST_DATABASE_URL is not set (run the tests with scripts/test)"
        );
        eprintln!("skipping PostgreSQL case: HERD_TEST_DATABASE_URL is not set (scripts/test sets it)");
        return None;
    };
    install_default_drivers();
    let admin = AnyPoolOptions::new()
        .max_connections(1)
        .connect(&admin_url)
        .await
        .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at HERD_TEST_DATABASE_URL: {e}"));
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).expect("os random");
    let name = format!("herd_test_{}", hex_string(&random));
    sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot create test database: {e}"));
    admin.close().await;
    let base = admin_url.rsplit_once('/').map(|(base, _)| base).unwrap_or(&admin_url);
    Some(format!("{base}/{name}"))
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
