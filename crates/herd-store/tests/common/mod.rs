//! Shared by the store's integration tests: run one case on a fresh SQLite file and on a fresh PostgreSQL
//! database (`HERD_TEST_DATABASE_URL`, set by scripts/test). The PostgreSQL cases are `#[ignore]`d: run by
//! scripts/test when it has its cluster, listed as ignored otherwise (see `herd_store::testing`).

use herd_store::Store;
use std::future::Future;

pub async fn with_sqlite<F, Fut>(case: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("herd.db").to_string_lossy()).await.unwrap();
    case(store.clone()).await;
    store.close().await;
}

pub async fn with_postgres<F, Fut>(case: F)
where
    F: FnOnce(Store) -> Fut,
    Fut: Future<Output = ()>,
{
    let url = herd_store::testing::fresh_postgres_url().await;
    let store = Store::open(&url).await.unwrap();
    case(store.clone()).await;
    store.close().await;
}

/// Declares each case once and runs it on both backends as `sqlite::<case>` and `postgres::<case>`;
/// `multi_thread;` first runs them on a 4-worker runtime (cases that race many tasks at once).
macro_rules! store_cases {
    (multi_thread; $($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
              async fn $case() { crate::common::with_sqlite(super::$case).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
              #[ignore = "needs PostgreSQL (HERD_TEST_DATABASE_URL): scripts/test runs it"]
              async fn $case() { crate::common::with_postgres(super::$case).await })*
        }
    };
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $case() { crate::common::with_sqlite(super::$case).await })*
        }
        mod postgres {
            $(#[tokio::test]
              #[ignore = "needs PostgreSQL (HERD_TEST_DATABASE_URL): scripts/test runs it"]
              async fn $case() { crate::common::with_postgres(super::$case).await })*
        }
    };
}
