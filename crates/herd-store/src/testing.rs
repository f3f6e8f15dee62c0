//! Support for tests that need a real database: a fresh SQLite file or a fresh PostgreSQL database per test.
//!
//! PostgreSQL comes from `HERD_TEST_DATABASE_URL` (set by `scripts/test`, which starts a throwaway cluster).
//! Every PostgreSQL test case is `#[ignore = "needs PostgreSQL (HERD_TEST_DATABASE_URL): scripts/test runs
//! it"]`, so a plain `cargo test` shows it as ignored, never as passed; `scripts/test` runs the ignored cases
//! when it has a cluster (and refuses any `#[ignore]` with another reason). A case run without one fails.

use sqlx::AssertSqlSafe;
use sqlx::any::{AnyPoolOptions, install_default_drivers};

/// A URL for a new, empty PostgreSQL database. Panics when PostgreSQL is not configured or unreachable: a
/// PostgreSQL case runs only when asked for (see the module's comment), and then must not pass without it.
pub async fn fresh_postgres_url() -> String {
    match fresh_postgres_url_if_configured().await {
        Some(url) => url,
        None => {
            panic!("this case needs PostgreSQL: HERD_TEST_DATABASE_URL is not set (run the tests with scripts/test)")
        }
    }
}

/// [`fresh_postgres_url`], or None when `HERD_TEST_DATABASE_URL` is not set (benchmarks that measure
/// PostgreSQL when it is there).
pub async fn fresh_postgres_url_if_configured() -> Option<String> {
    let admin_url = std::env::var("HERD_TEST_DATABASE_URL").ok()?;
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
