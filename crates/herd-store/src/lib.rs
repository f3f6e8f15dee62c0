//! herd-store: the one storage API of herd, over SQLite (embedded, the default) and PostgreSQL (several
//! servers sharing one database).
//!
//! Both backends run the same query texts through sqlx's `Any` driver: every instant is BIGINT milliseconds,
//! every boolean BIGINT 0/1, placeholders are `$n` (which SQLite accepts too). What differs per backend lives in
//! `migrations/<backend>/` and in the few places that branch on [`Backend`].
//!
//! Invariants:
//! - every method that changes more than one row does so in one transaction;
//! - a change that makes a server's cached view of a host stale appends to `host_changes` in the same
//!   transaction (see `hosts::changed_hosts_since`);
//! - on SQLite all writes go through one connection (SQLite allows one writer; queueing in the pool is cheaper
//!   than retrying on SQLITE_BUSY), reads through a separate pool that WAL lets run beside it.

mod activities;
mod automations;
mod compliance;
mod config;
mod deferrals;
mod devices;
mod group_commit;
pub use group_commit::GroupCommitCounts;
mod hosts;
mod jobs;
mod labels;
mod logs;
mod migrate;
mod migration;
mod orbit;
mod policies;
mod profiles;
mod scripts;
mod sql;
pub mod testing;
mod users;

pub use activities::{ActivityRecord, Actor};
pub use automations::AutomationRules;
pub use compliance::ComplianceDay;
pub use config::StoredSecret;
pub use deferrals::{AgentDeferralStatus, ChoiceRefused, DeferralRecord};
pub use herd_core::execution::{ExecutionStatus, RunOutcome};
pub use herd_core::report::ReportOrigin;
pub use herd_core::report::ReportedAnswer;
pub use hosts::{
    CheckinAndRuns, EnrollHost, Enrolled, HostChange, HostCheckin, HostFilter, HostOrder, HostRecord, StatusCondition,
};
pub use jobs::{Job, JobState, NewJob};
pub use labels::{HostLabel, LabelPatch, LabelRecord, LabelUser, NewLabel, label_run_key};
pub use logs::{STATUS_LOGS_KEPT, StoredStatusLog};
pub use migration::MigrationStart;
pub use orbit::OrbitEnroll;
pub use policies::{
    FiringPolicy, HostPolicyAnswer, OnFailure, PolicyAuthor, PolicyFields, PolicyRecord, ReportOutcome,
};
pub use profiles::{HostProfileRecord, NewProfile, ProfileCommand, ProfileRecord, ProfilesSummary, ResendRefused};
pub use scripts::{ExecutionRecord, NewExecution, ScriptRecord};
pub use users::{EndSessions, NewUser, SessionUser, TeamRecord, UserRecord};

use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{AnyPool, Executor};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Conflict(String),
    /// A write refused for what it names (a label that does not exist, a cycle): the field and why.
    #[error("{field}: {reason}")]
    Invalid { field: &'static str, reason: String },
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The host a write is for does not exist (any more): deleted, on this server or another. Agents are
    /// told to enroll again.
    #[error("host not found")]
    HostGone,
    #[error("invalid database url: {0}")]
    InvalidUrl(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StoreError {
    /// The database cannot be reached right now (closed pool, timeout, connection failure): worth retrying,
    /// unlike a bad query.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Database(sqlx::Error::PoolClosed | sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)))
    }

    /// A write that could not be done now but may be retried (answered like an unreachable database).
    pub(crate) fn unavailable(reason: impl Into<String>) -> StoreError {
        StoreError::Database(sqlx::Error::Io(std::io::Error::other(reason.into())))
    }

    /// Maps a unique-constraint violation to [`StoreError::Conflict`] with `what` as its message.
    fn conflict_on_unique(err: sqlx::Error, what: &str) -> StoreError {
        match &err {
            sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(what.to_string()),
            _ => StoreError::Database(err),
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Clone)]
pub struct Store {
    backend: Backend,
    writer: AnyPool,
    reader: AnyPool,
    /// SQLite: enrollments and reports are committed in groups (see `group_commit`).
    group_commit: Option<group_commit::GroupCommit>,
    /// Enrollments and reports in flight, and how long they waited to start (see
    /// [`Store::take_longest_hot_write_wait`]).
    hot_writes: Arc<HotWrites>,
}

#[derive(Default)]
pub(crate) struct HotWrites {
    in_flight: AtomicUsize,
    /// The longest any waited to start since [`Store::take_longest_hot_write_wait`] last looked (µs).
    longest_wait_us: AtomicU64,
}

impl HotWrites {
    /// A write that was asked for at `asked_at` starts now (it has its connection, or its batch).
    pub(crate) fn started(&self, asked_at: std::time::Instant) {
        self.longest_wait_us.fetch_max(asked_at.elapsed().as_micros() as u64, Ordering::Relaxed);
    }
}

/// A hot write (an enrollment or a report) in flight while it lives.
struct HotWrite {
    writes: Arc<HotWrites>,
    asked_at: std::time::Instant,
}

impl HotWrite {
    fn start(writes: &Arc<HotWrites>) -> HotWrite {
        writes.in_flight.fetch_add(1, Ordering::Relaxed);
        HotWrite { writes: writes.clone(), asked_at: std::time::Instant::now() }
    }

    /// The write has its connection and begins (PostgreSQL; the group commit reports its own).
    fn begins(&self) {
        self.writes.started(self.asked_at);
    }
}

impl Drop for HotWrite {
    fn drop(&mut self) {
        self.writes.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).finish()
    }
}

impl Store {
    /// Opens the database at `url` and applies pending migrations. `postgres://` and `postgresql://` select
    /// PostgreSQL; `sqlite://PATH` or a plain path select SQLite (the file is created if missing).
    pub async fn open(url: &str) -> Result<Store> {
        install_default_drivers();
        let store = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool =
                AnyPoolOptions::new().max_connections(32).acquire_timeout(Duration::from_secs(10)).connect(url).await?;
            Store {
                backend: Backend::Postgres,
                writer: pool.clone(),
                reader: pool,
                group_commit: None,
                hot_writes: Arc::default(),
            }
        } else {
            let path = url.strip_prefix("sqlite://").unwrap_or(url);
            if path.is_empty() || path.contains('?') {
                return Err(StoreError::InvalidUrl(format!("{url:?}: expected sqlite://PATH or postgres://...")));
            }
            let url = format!("sqlite://{path}?mode=rwc");
            let pragmas = sqlite_pragmas;
            let writer = AnyPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(30))
                .after_connect(sqlite_writer_pragmas)
                .connect(&url)
                .await?;
            let reader = AnyPoolOptions::new().max_connections(8).after_connect(pragmas).connect(&url).await?;
            let hot_writes = Arc::<HotWrites>::default();
            let group_commit = Some(group_commit::GroupCommit::start(writer.clone(), hot_writes.clone()));
            Store { backend: Backend::Sqlite, writer, reader, group_commit, hot_writes }
        };
        migrate::apply(&store).await?;
        Ok(store)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Enrollments and reports this store is writing or has queued, not yet answered (on SQLite, the group
    /// commit's queue plus the batch being committed; on PostgreSQL, transactions running or waiting for a
    /// connection).
    pub fn hot_writes_in_flight(&self) -> usize {
        self.hot_writes.in_flight.load(Ordering::Relaxed)
    }

    /// The longest an enrollment or report waited to start — for a connection (PostgreSQL) or for the
    /// group commit to take it (SQLite) — among those that started since the previous call (one caller: the
    /// server's admission probe). Waiting, not the transaction's own time, says the database is behind: a
    /// distant database makes every transaction slow without being behind.
    pub fn take_longest_hot_write_wait(&self) -> Duration {
        Duration::from_micros(self.hot_writes.longest_wait_us.swap(0, Ordering::Relaxed))
    }

    fn start_hot_write(&self) -> HotWrite {
        HotWrite::start(&self.hot_writes)
    }

    /// Group commit so far (SQLite).
    pub fn group_commit_counts(&self) -> Option<group_commit::GroupCommitCounts> {
        self.group_commit.as_ref().map(group_commit::GroupCommit::counts)
    }

    /// Closes both pools, waiting for in-flight queries.
    pub async fn close(&self) {
        self.writer.close().await;
        self.reader.close().await;
    }

    /// A cheap query that proves the database answers (health checks).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }
}

type ConnectHook<'c> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), sqlx::Error>> + Send + 'c>>;

/// Run on every new SQLite connection. WAL lets readers run beside the writer; synchronous=FULL makes every
/// acknowledged commit survive a power loss, not just a crash of herd.
fn sqlite_pragmas<'c>(conn: &'c mut sqlx::AnyConnection, _meta: sqlx::pool::PoolConnectionMetadata) -> ConnectHook<'c> {
    Box::pin(async move {
        conn.execute(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;",
        )
        .await?;
        Ok(())
    })
}

/// The writer's connection: as every connection, and temp_store=MEMORY, which keeps statement journals
/// (SQLite copies each page a multi-row statement touches, in case it must undo it) off the disk — in a
/// temporary file they cost a write system call per page, a fifth of the writer's time while a fleet
/// enrolled. Only the writer: a reader's large sort still spills to disk rather than growing in memory.
fn sqlite_writer_pragmas<'c>(
    conn: &'c mut sqlx::AnyConnection,
    meta: sqlx::pool::PoolConnectionMetadata,
) -> ConnectHook<'c> {
    Box::pin(async move {
        sqlite_pragmas(conn, meta).await?;
        conn.execute("PRAGMA temp_store = MEMORY;").await?;
        Ok(())
    })
}
