//! Group commit for the hot writes — enrollments and reports — on SQLite.
//!
//! SQLite has one writer, and with `synchronous=FULL` every commit waits for the disk: one report per
//! transaction caps a server at the disk's sync rate (a fleet enrolling queued for seconds). Here one task
//! owns the writes: it takes every write waiting (up to [`MAX_BATCH`]), applies each in its own savepoint
//! (a failing one is rolled back alone and gets its own error), commits once, and only then answers each
//! caller. Durability is unchanged: nobody hears "done" before the commit that holds their write is on disk.
//! Under light load a batch is one write and nothing waits for company.
//!
//! PostgreSQL takes concurrent writers and groups their WAL flushes itself; there the writes run directly.

use crate::hosts::EnrollHost;
use crate::policies::{OnFailure, ReportOutcome};
use crate::{AutomationRules, ReportedAnswer, Result, StoreError};
use herd_core::Millis;
use herd_core::vitals::VitalsPatch;
use sqlx::{Acquire, AnyPool};
use tokio::sync::{mpsc, oneshot};

/// The most writes one transaction commits.
pub(crate) const MAX_BATCH: usize = 256;
/// Writes waiting beyond this make callers wait to queue (backpressure instead of unbounded memory).
const QUEUE: usize = 4096;

/// One write, owned (it crosses to the committing task), with whom to answer.
pub(crate) enum Write {
    Enroll { host: EnrollHost, now: Millis, reply: oneshot::Sender<Result<i64>> },
    Report { report: Report, reply: oneshot::Sender<Result<ReportOutcome>> },
}

pub(crate) struct Report {
    pub host_id: i64,
    pub answers: Vec<ReportedAnswer>,
    pub vitals: Option<(VitalsPatch, Millis)>,
    pub now: Millis,
    pub rules: AutomationRules,
    pub on_failure: OnFailure,
}

/// A write's answer, sent once the batch's commit is decided: with its own outcome when the commit
/// succeeded, with the commit's failure otherwise.
type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

fn answer<T: Send + 'static>(reply: oneshot::Sender<Result<T>>, outcome: Result<T>) -> Answer {
    Box::new(move |commit_failed: Option<&str>| {
        let outcome = match commit_failed {
            None => outcome,
            // Nothing of the batch is on disk: the caller hears so (as unavailable: worth retrying).
            Some(reason) => Err(StoreError::Database(sqlx::Error::Io(std::io::Error::other(format!(
                "the commit failed: {reason}"
            ))))),
        };
        let _ = reply.send(outcome);
    })
}

#[derive(Clone)]
pub(crate) struct GroupCommit {
    queue: mpsc::Sender<Write>,
    counts: std::sync::Arc<Counts>,
}

/// How many transactions committed and how many writes they held (their ratio is the batching achieved).
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub commits: std::sync::atomic::AtomicU64,
    pub writes: std::sync::atomic::AtomicU64,
}

impl GroupCommit {
    /// Starts the committing task over the (one-connection) writer pool.
    pub fn start(writer: AnyPool) -> GroupCommit {
        let (queue, waiting) = mpsc::channel(QUEUE);
        let counts = std::sync::Arc::new(Counts::default());
        tokio::spawn(commit_loop(writer, waiting, counts.clone()));
        GroupCommit { queue, counts }
    }

    /// (transactions committed, writes they held) so far.
    pub fn counts(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.counts.commits.load(Relaxed), self.counts.writes.load(Relaxed))
    }

    /// Enrolls a host; answers once the transaction holding it has committed.
    pub async fn enroll(&self, host: EnrollHost, now: Millis) -> Result<i64> {
        let (reply, outcome) = oneshot::channel();
        self.queue.send(Write::Enroll { host, now, reply }).await.map_err(|_| closed())?;
        outcome.await.map_err(|_| closed())?
    }

    /// Records a report; answers once the transaction holding it has committed.
    pub async fn report(&self, report: Report) -> Result<ReportOutcome> {
        let (reply, outcome) = oneshot::channel();
        self.queue.send(Write::Report { report, reply }).await.map_err(|_| closed())?;
        outcome.await.map_err(|_| closed())?
    }
}

fn closed() -> StoreError {
    StoreError::Database(sqlx::Error::PoolClosed)
}

async fn commit_loop(writer: AnyPool, mut waiting: mpsc::Receiver<Write>, counts: std::sync::Arc<Counts>) {
    use std::sync::atomic::Ordering::Relaxed;
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while waiting.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let writes = batch.len() as u64;
        // Its own task: should a write panic, that batch's callers hear "unavailable" (their answers are
        // dropped unsent) and the next batch is committed as usual — writes never stop for good.
        match tokio::spawn(commit_batch(writer.clone(), std::mem::take(&mut batch))).await {
            Ok(true) => {
                counts.commits.fetch_add(1, Relaxed);
                counts.writes.fetch_add(writes, Relaxed);
            }
            Ok(false) => {}
            Err(err) => tracing::error!(error = %err, writes, "a group commit panicked; its writes were refused"),
        }
    }
}

/// Applies a batch in one transaction, each write in its own savepoint, and answers every caller after the
/// commit (or with the commit's failure). Returns whether it committed.
async fn commit_batch(writer: AnyPool, batch: Vec<Write>) -> bool {
    let mut answers: Vec<Answer> = Vec::with_capacity(batch.len());
    let committed = apply_all(&writer, batch, &mut answers).await;
    let failure = committed.err().map(|err| err.to_string());
    if let Some(reason) = &failure {
        tracing::error!(error = %reason, writes = answers.len(), "a group commit failed");
    }
    for answer in answers {
        answer(failure.as_deref());
    }
    failure.is_none()
}

async fn apply_all(writer: &AnyPool, batch: Vec<Write>, answers: &mut Vec<Answer>) -> Result<()> {
    let mut pending = batch.into_iter();
    let result = async {
        let mut conn = writer.acquire().await?;
        let mut tx = conn.begin().await?;
        for write in pending.by_ref() {
            // A savepoint per write: one that fails is undone alone and the others still commit.
            let mut savepoint = tx.begin().await?;
            let (ok, answer) = apply(&mut savepoint, write).await;
            answers.push(answer);
            if ok {
                savepoint.commit().await?;
            } else {
                savepoint.rollback().await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
    .await;
    // Writes never reached (the batch failed before them) are answered with the failure too.
    for write in pending {
        answers.push(match write {
            Write::Enroll { reply, .. } => answer(reply, Err(closed())),
            Write::Report { reply, .. } => answer(reply, Err(closed())),
        });
    }
    result
}

/// Applies one write in the caller's savepoint: whether it succeeded, and its answer.
async fn apply(conn: &mut sqlx::AnyConnection, write: Write) -> (bool, Answer) {
    match write {
        Write::Enroll { host, now, reply } => {
            let outcome = crate::hosts::enroll_in(conn, &host, now).await;
            (outcome.is_ok(), answer(reply, outcome))
        }
        Write::Report { report, reply } => {
            let vitals = report.vitals.as_ref().map(|(patch, at)| (patch, *at));
            let outcome = crate::policies::report_in(
                conn,
                crate::Backend::Sqlite,
                report.host_id,
                &report.answers,
                vitals,
                report.now,
                &report.rules,
                report.on_failure,
            )
            .await;
            (outcome.is_ok(), answer(reply, outcome))
        }
    }
}
