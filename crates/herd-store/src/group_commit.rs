//! Group commit for the hot writes — enrollments and reports — on SQLite.
//!
//! SQLite has one writer, and with `synchronous=FULL` every commit waits for the disk: one report per
//! transaction caps a server at the disk's sync rate (a fleet enrolling queued for seconds). Here one task
//! owns the writes: it takes every write waiting (up to [`MAX_BATCH`]), applies them in one transaction,
//! commits once, and only then answers each caller. Durability is unchanged: nobody hears "done" before the
//! commit that holds their write is on disk. Under light load a batch is one write and nothing waits for
//! company.
//!
//! A batch is first applied as a whole, without savepoints (SQLite copies every page a savepoint touches
//! to its journal: for a fleet's first reports that was most of the writer's time), with every report's
//! count changes folded into one update per count. Should any write fail, nothing of that attempt is
//! kept: the batch is applied again write by write, each in its own savepoint, so the failing one is
//! undone alone and gets its own error while the others commit.
//!
//! PostgreSQL takes concurrent writers and groups their WAL flushes itself; there the writes run directly.

use crate::hosts::{EnrollHost, Enrolled};
use crate::policies::{CountDeltas, Report, ReportFacts, ReportOutcome, apply_count_deltas};
use crate::{Result, StoreError};
use herd_core::Millis;
use sqlx::{Acquire, AnyPool};
use tokio::sync::{mpsc, oneshot};

/// The most writes one transaction commits.
pub(crate) const MAX_BATCH: usize = 256;
/// Writes waiting beyond this make callers wait to queue (backpressure instead of unbounded memory).
const QUEUE: usize = 4096;

/// One write, owned (it crosses to the committing task), with whom to answer.
pub(crate) struct Write {
    op: Op,
    reply: Reply,
    /// When it was asked for: how long it waited for its batch says how far behind the writer is.
    queued_at: std::time::Instant,
}

enum Op {
    Enroll { host: EnrollHost, now: Millis },
    Report(Report),
}

enum Reply {
    Enroll(oneshot::Sender<Result<Enrolled>>),
    Report(oneshot::Sender<Result<ReportOutcome>>),
}

/// What a write did, for its caller.
#[allow(clippy::large_enum_variant)] // short-lived, one per write in a batch: boxing would allocate for nothing
enum Done {
    Enrolled(Enrolled),
    Reported(ReportOutcome),
}

impl Reply {
    /// Answers the caller: with the write's own outcome when the commit succeeded, with the commit's
    /// failure otherwise.
    fn send(self, outcome: Result<Done>, commit_failed: Option<&str>) {
        let outcome = match commit_failed {
            None => outcome,
            // Nothing of the batch is on disk: the caller hears so (as unavailable: worth retrying).
            Some(reason) => Err(StoreError::unavailable(format!("the commit failed: {reason}"))),
        };
        // Outcomes are produced in the order of the writes, by each write's own kind: a mismatch is never
        // reached (and would be answered as unavailable rather than panic after the commit).
        match self {
            Reply::Enroll(reply) => {
                let _ = reply.send(outcome.and_then(|done| match done {
                    Done::Enrolled(enrolled) => Ok(enrolled),
                    Done::Reported(_) => Err(StoreError::unavailable("mismatched outcome")),
                }));
            }
            Reply::Report(reply) => {
                let _ = reply.send(outcome.and_then(|done| match done {
                    Done::Reported(done) => Ok(done),
                    Done::Enrolled(_) => Err(StoreError::unavailable("mismatched outcome")),
                }));
            }
        }
    }
}

/// What the group commit has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitCounts {
    /// Transactions committed.
    pub commits: u64,
    /// Enrollments and reports those transactions held (their ratio to `commits` is the batching achieved).
    pub writes: u64,
    /// Batches applied again write by write because one of their writes failed.
    pub replays: u64,
}

#[derive(Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Write>,
    counts: std::sync::Arc<Counts>,
}

/// How many transactions committed and how many writes they held (their ratio is the batching achieved),
/// and how many batches had to be applied again write by write because one of their writes failed.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub commits: std::sync::atomic::AtomicU64,
    pub writes: std::sync::atomic::AtomicU64,
    pub replays: std::sync::atomic::AtomicU64,
}

impl GroupCommit {
    /// Starts the committing task over the (one-connection) writer pool.
    pub fn start(writer: AnyPool, hot_writes: std::sync::Arc<crate::HotWrites>) -> GroupCommit {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let counts = std::sync::Arc::new(Counts::default());
        tokio::spawn(commit_loop(writer, waiting, counts.clone(), hot_writes));
        GroupCommit { queue, counts }
    }

    /// The counts so far.
    pub fn counts(&self) -> GroupCommitCounts {
        use std::sync::atomic::Ordering::Relaxed;
        GroupCommitCounts {
            commits: self.counts.commits.load(Relaxed),
            writes: self.counts.writes.load(Relaxed),
            replays: self.counts.replays.load(Relaxed),
        }
    }

    /// Enrolls a host; answers once the transaction holding it has committed.
    pub async fn enroll(&self, host: EnrollHost, now: Millis) -> Result<Enrolled> {
        let (reply, outcome) = oneshot::channel();
        let write =
            Write { op: Op::Enroll { host, now }, reply: Reply::Enroll(reply), queued_at: std::time::Instant::now() };
        self.queue.send(write).await.map_err(|_| closed())?;
        outcome.await.map_err(|_| closed())?
    }

    /// Records a report; answers once the transaction holding it has committed.
    pub async fn report(&self, report: Report) -> Result<ReportOutcome> {
        let (reply, outcome) = oneshot::channel();
        let write = Write { op: Op::Report(report), reply: Reply::Report(reply), queued_at: std::time::Instant::now() };
        self.queue.send(write).await.map_err(|_| closed())?;
        outcome.await.map_err(|_| closed())?
    }
}

fn closed() -> StoreError {
    StoreError::Database(sqlx::Error::PoolClosed)
}

async fn commit_loop(
    writer: AnyPool,
    mut waiting: mpsc::Receiver<Write>,
    counts: std::sync::Arc<Counts>,
    hot_writes: std::sync::Arc<crate::HotWrites>,
) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let writes = batch.len() as u64;
        if let Some(first) = batch.iter().map(|w| w.queued_at).min() {
            hot_writes.started(first);
        }
        // Its own task: should a write panic, that batch's callers hear "unavailable" (their answers are
        // dropped unsent) and the next batch is committed as usual — writes never stop for good.
        match tokio::spawn(commit_batch(writer.clone(), std::mem::take(&mut batch), counts.clone())).await {
            Ok(true) => {
                counts.commits.fetch_add(1, Relaxed);
                counts.writes.fetch_add(writes, Relaxed);
            }
            Ok(false) => {}
            Err(err) => tracing::error!(error = %err, writes, "a group commit panicked; its writes were refused"),
        }
    }
}

/// Applies a batch in one transaction — as a whole, or write by write when a write fails — and answers
/// every caller after the commit (or with the commit's failure). Returns whether it committed.
async fn commit_batch(writer: AnyPool, batch: Vec<Write>, counts: std::sync::Arc<Counts>) -> bool {
    let (ops, replies): (Vec<Op>, Vec<Reply>) = batch.into_iter().map(|w| (w.op, w.reply)).unzip();
    let mut outcomes = Vec::with_capacity(ops.len());
    let committed = async {
        // One connection for both attempts: nothing else takes the writer between them.
        let mut conn = writer.acquire().await?;
        match apply_together(&mut conn, &ops, &mut outcomes).await? {
            Together::Committed => Ok(()),
            // A lone write that failed: its error is its answer, and there is nothing else to commit.
            Together::WriteFailed(err) if ops.len() == 1 => {
                outcomes.push(Err(err));
                Ok(())
            }
            Together::WriteFailed(_) => {
                counts.replays.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                apply_each(&mut conn, &ops, &mut outcomes).await
            }
        }
    }
    .await;
    let failure = committed.err().map(|err| err.to_string());
    if let Some(reason) = &failure {
        tracing::error!(error = %reason, writes = replies.len(), "a group commit failed");
    }
    let mut outcomes = outcomes.into_iter();
    for reply in replies {
        // Writes never reached (the batch failed before them) are answered with the failure too.
        reply.send(outcomes.next().unwrap_or_else(|| Err(closed())), failure.as_deref());
    }
    failure.is_none()
}

/// How applying a batch as a whole ended, when the transaction itself did not fail.
enum Together {
    Committed,
    /// A write failed (with this error): nothing was kept, and no outcome is left in `outcomes`.
    WriteFailed(StoreError),
}

/// The batch as one transaction without savepoints, count changes folded into one update per count. Err:
/// the transaction failed (begin, commit), and nothing of the batch is on disk.
async fn apply_together(
    conn: &mut sqlx::AnyConnection,
    ops: &[Op],
    outcomes: &mut Vec<Result<Done>>,
) -> Result<Together> {
    let mut tx = conn.begin().await?;
    let mut deltas = CountDeltas::new();
    let mut facts = ReportFacts::default();
    let mut stamp = 0;
    let mut failed = None;
    for op in ops {
        match apply(&mut tx, op, &mut facts, &mut deltas).await {
            Ok(done) => outcomes.push(Ok(done)),
            Err(err) => {
                failed = Some(err);
                break;
            }
        }
        stamp = stamp.max(op.now());
    }
    if failed.is_none()
        && let Err(err) = apply_count_deltas(&mut tx, &deltas, stamp).await
    {
        failed = Some(err);
    }
    if let Some(err) = failed {
        // Nothing of this attempt stands, so none of its outcomes either (a lone write whose count update
        // failed must not be answered with its own success).
        tx.rollback().await?;
        outcomes.clear();
        return Ok(Together::WriteFailed(err));
    }
    tx.commit().await?;
    Ok(Together::Committed)
}

/// The batch write by write, each in its own savepoint with its own count changes: one that fails is
/// undone alone and the others still commit.
async fn apply_each(conn: &mut sqlx::AnyConnection, ops: &[Op], outcomes: &mut Vec<Result<Done>>) -> Result<()> {
    let mut tx = conn.begin().await?;
    let mut facts = ReportFacts::default();
    for op in ops {
        let mut savepoint = tx.begin().await?;
        let mut deltas = CountDeltas::new();
        let mut done = apply(&mut savepoint, op, &mut facts, &mut deltas).await;
        if done.is_ok()
            && let Err(err) = apply_count_deltas(&mut savepoint, &deltas, op.now()).await
        {
            done = Err(err);
        }
        if done.is_ok() {
            savepoint.commit().await?;
        } else {
            savepoint.rollback().await?;
        }
        outcomes.push(done);
    }
    tx.commit().await?;
    Ok(())
}

impl Op {
    fn now(&self) -> Millis {
        match self {
            Op::Enroll { now, .. } => *now,
            Op::Report(report) => report.now,
        }
    }
}

/// Applies one write in the caller's transaction, its count changes added to `deltas`.
async fn apply(
    conn: &mut sqlx::AnyConnection,
    op: &Op,
    facts: &mut ReportFacts,
    deltas: &mut CountDeltas,
) -> Result<Done> {
    match op {
        Op::Enroll { host, now } => crate::hosts::enroll_in(conn, host, *now).await.map(Done::Enrolled),
        Op::Report(report) => {
            crate::policies::report_in(conn, crate::Backend::Sqlite, report, facts, deltas).await.map(Done::Reported)
        }
    }
}
