//! Client connections: how long they may take and how many may be open.
//!
//! Every accepted connection is wrapped (beneath TLS, so the handshake is covered too) in a [`Watched`]
//! stream that knows the connection's phase, told by a [`Tracked`] service wrapper around the router:
//! - reading a request head (from the connection's start, or on HTTP/1 from the first byte after it went
//!   idle): the head must be complete within `header_read` — a client sending a header byte a second is cut
//!   off;
//! - idle (no request in flight): closed after `idle` without a new request (HTTP/1 keep-alive and HTTP/2);
//! - busy (a request in flight): the handler's business (a synchronous script run may wait minutes), except
//!   that the request's body must arrive within `body_read` of its head ([`TimedBody`]): a client trickling
//!   a body gets an error and its connection closed.
//!
//! The same rules hold for HTTP/1.1 and HTTP/2, which hyper's own timeouts do not cover alike (its HTTP/1
//! header-read timer also runs through keep-alive idleness, and HTTP/2 has none).
//!
//! At most `max` connections are open at once, each holding a permit, so the process keeps file descriptors
//! for its database, logs and workers. A connection arriving at the limit closes the longest-waiting
//! connection that has no request in flight (a slow or idle one) and takes its place, so a flood of slow
//! clients cannot keep health checks and real hosts out; when every connection is busy, the new one is
//! closed at once.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// How long a connection arriving at the limit waits for the slot of the connection it evicted.
const SLOT_WAIT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read: Duration,
    pub idle: Duration,
    /// A request's whole body must arrive within this time of its head.
    pub body_read: Duration,
    pub max: usize,
}

/// Counts for `/metrics` and the logs.
#[derive(Debug, Default)]
pub struct ConnectionStats {
    pub open: AtomicU64,
    pub timed_out: AtomicU64,
    pub evicted: AtomicU64,
    pub refused: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for a request head to be complete, since this instant.
    Head(Instant),
    /// No request in flight and no byte since this instant.
    Idle(Instant),
    /// This many requests in flight.
    Busy(usize),
}

/// One connection's state, shared by its stream and its service.
struct Conn {
    phase: Mutex<Phase>,
    /// Set to close the connection for a newcomer at the limit.
    evicted: AtomicBool,
    /// The stream's last pending read, woken when the phase changes or the connection is evicted.
    reader: Mutex<Option<Waker>>,
    /// Known once its first request arrives. HTTP/2 clients send frames between requests (window updates,
    /// settings, pings), so on HTTP/2 bytes do not start the header-read clock; idleness alone bounds them.
    http2: AtomicBool,
}

impl Conn {
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        match *lock(&self.phase) {
            Phase::Head(since) => Some(since + limits.header_read),
            Phase::Idle(since) => Some(since + limits.idle),
            Phase::Busy(_) => None,
        }
    }

    /// The instant it has been waiting since, when it has no request in flight (for choosing whom to evict).
    fn waiting_since(&self) -> Option<Instant> {
        match *lock(&self.phase) {
            Phase::Head(since) | Phase::Idle(since) => Some(since),
            Phase::Busy(_) => None,
        }
    }

    fn bytes_read(&self) {
        if self.http2.load(Ordering::Relaxed) {
            return;
        }
        let mut phase = lock(&self.phase);
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Head(Instant::now());
        }
    }

    fn bytes_written(&self) {
        // A response still being written (a slow reader of a large body) is not idleness.
        let mut phase = lock(&self.phase);
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Idle(Instant::now());
        }
    }

    fn request_started(&self) {
        let mut phase = lock(&self.phase);
        *phase = match *phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            _ => Phase::Busy(1),
        };
    }

    fn request_finished(&self) {
        {
            let mut phase = lock(&self.phase);
            *phase = match *phase {
                Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
                _ => Phase::Idle(Instant::now()),
            };
        }
        self.wake_reader();
    }

    fn wake_reader(&self) {
        if let Some(waker) = lock(&self.reader).take() {
            waker.wake();
        }
    }
}

struct Registry {
    limits: Limits,
    permits: Arc<Semaphore>,
    live: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    stats: Arc<ConnectionStats>,
}

impl Registry {
    /// Closes the connection with no request in flight that has waited longest; false when there is none.
    fn evict_one(&self) -> bool {
        let live = lock(&self.live);
        let victim = live
            .values()
            .filter(|conn| !conn.evicted.load(Ordering::Acquire))
            .filter_map(|conn| conn.waiting_since().map(|since| (since, conn)))
            .min_by_key(|(since, _)| *since);
        match victim {
            Some((_, conn)) => {
                conn.evicted.store(true, Ordering::Release);
                conn.wake_reader();
                self.stats.evicted.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }
}

/// The acceptor: admits a connection (taking a slot, evicting if need be) and wraps its stream and service.
#[derive(Clone)]
pub struct Guard {
    registry: Arc<Registry>,
}

impl Guard {
    pub fn new(limits: Limits, stats: Arc<ConnectionStats>) -> Guard {
        Guard {
            registry: Arc::new(Registry {
                limits,
                permits: Arc::new(Semaphore::new(limits.max)),
                live: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(0),
                stats,
            }),
        }
    }
}

impl<I, S> axum_server::accept::Accept<I, S> for Guard
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Send + 'static,
{
    type Stream = Watched<I>;
    type Service = Tracked<S>;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Watched<I>, Tracked<S>)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let registry = self.registry.clone();
        Box::pin(async move {
            let permit = match registry.permits.clone().try_acquire_owned() {
                Ok(permit) => permit,
                // At the limit: take the slot of the connection closed for it. With every connection busy,
                // close this one at once rather than hold its descriptor while waiting.
                Err(_) if registry.evict_one() => {
                    match tokio::time::timeout(SLOT_WAIT, registry.permits.clone().acquire_owned()).await {
                        Ok(Ok(permit)) => permit,
                        _ => return Err(refuse(&registry)),
                    }
                }
                Err(_) => return Err(refuse(&registry)),
            };
            let conn = Arc::new(Conn {
                phase: Mutex::new(Phase::Head(Instant::now())),
                evicted: AtomicBool::new(false),
                reader: Mutex::new(None),
                http2: AtomicBool::new(false),
            });
            let id = registry.next_id.fetch_add(1, Ordering::Relaxed);
            lock(&registry.live).insert(id, conn.clone());
            registry.stats.open.fetch_add(1, Ordering::Relaxed);
            let watched = Watched {
                inner: stream,
                conn: conn.clone(),
                timer: Box::pin(tokio::time::sleep_until(Instant::now())),
                armed_for: None,
                slot: Some(Slot { registry: registry.clone(), id, _permit: permit }),
            };
            let body_read = registry.limits.body_read;
            Ok((watched, Tracked { inner: service, conn, body_read }))
        })
    }
}

fn refuse(registry: &Registry) -> io::Error {
    registry.stats.refused.fetch_add(1, Ordering::Relaxed);
    io::Error::other("connection limit reached with every connection busy")
}

/// A connection's place in the registry; freed when its stream is dropped.
struct Slot {
    registry: Arc<Registry>,
    id: u64,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Slot {
    fn drop(&mut self) {
        lock(&self.registry.live).remove(&self.id);
        self.registry.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A client connection's stream: reports bytes to the phase, and fails its reads once the phase's deadline
/// has passed or the connection was evicted, which makes hyper close the connection.
pub struct Watched<I> {
    inner: I,
    conn: Arc<Conn>,
    timer: Pin<Box<Sleep>>,
    armed_for: Option<Instant>,
    slot: Option<Slot>,
}

impl<I> Watched<I> {
    fn limits(&self) -> Limits {
        self.slot.as_ref().map(|slot| slot.registry.limits).expect("a watched stream holds its slot")
    }

    fn stats(&self) -> &ConnectionStats {
        &self.slot.as_ref().expect("a watched stream holds its slot").registry.stats
    }

    /// While no byte arrives: Err once the deadline has passed, else Pending with the timer armed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        *lock(&self.conn.reader) = Some(cx.waker().clone());
        loop {
            if self.conn.evicted.load(Ordering::Acquire) {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::ConnectionAborted,
                    "closed to make room for a new connection",
                ));
            }
            let Some(deadline) = self.conn.deadline(&self.limits()) else {
                self.armed_for = None;
                return Poll::Pending;
            };
            if Instant::now() >= deadline {
                self.stats().timed_out.fetch_add(1, Ordering::Relaxed);
                return Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "client too slow or idle too long"));
            }
            if self.armed_for != Some(deadline) {
                self.timer.as_mut().reset(deadline);
                self.armed_for = Some(deadline);
            }
            match self.timer.as_mut().poll(cx) {
                // The deadline may have moved meanwhile: look again.
                Poll::Ready(()) => self.armed_for = None,
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.conn.evicted.load(Ordering::Acquire) {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::ConnectionAborted, "closed to make room")));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    this.conn.bytes_read();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match this.poll_deadline(cx) {
                Poll::Ready(err) => Poll::Ready(Err(err)),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write(cx, data);
        if let Poll::Ready(Ok(n)) = written
            && n > 0
        {
            this.conn.bytes_written();
        }
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = written
            && n > 0
        {
            this.conn.bytes_written();
        }
        written
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The router, telling its connection when requests start and finish.
#[derive(Clone)]
pub struct Tracked<S> {
    inner: S,
    conn: Arc<Conn>,
    body_read: Duration,
}

/// Marks its request finished when dropped: when the response is ready, or when hyper gives the request up.
struct InFlight(Arc<Conn>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.request_finished();
    }
}

impl<S, B> tower::Service<axum::http::Request<B>> for Tracked<S>
where
    S: tower::Service<axum::http::Request<TimedBody<B>>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        if request.version() == axum::http::Version::HTTP_2 {
            self.conn.http2.store(true, Ordering::Relaxed);
        }
        self.conn.request_started();
        let in_flight = InFlight(self.conn.clone());
        let request = request.map(|body| TimedBody::new(body, self.body_read));
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(in_flight);
            response
        })
    }
}

/// A request body that fails once its deadline has passed before it was all received.
pub struct TimedBody<B> {
    inner: B,
    deadline: Pin<Box<Sleep>>,
    within: Duration,
}

impl<B> TimedBody<B> {
    fn new(inner: B, within: Duration) -> TimedBody<B> {
        TimedBody { inner, deadline: Box::pin(tokio::time::sleep(within)), within }
    }
}

/// The body did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("request body not received within {0:?} (client too slow)")]
pub struct BodyTooSlow(Duration);

impl<B> http_body::Body for TimedBody<B>
where
    B: http_body::Body + Unpin,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Data = B::Data;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|frame| frame.map_err(Into::into)));
        }
        match this.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTooSlow(this.within))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Raises the soft open-file limit to the hard one and returns the hard limit (None where it cannot be read).
// `rlim_t` is u64 on Linux but not on every target: the casts say what we need.
#[allow(clippy::unnecessary_cast)]
pub fn raise_fd_limit() -> Option<u64> {
    // SAFETY: getrlimit/setrlimit only read and write the struct passed to them.
    unsafe {
        let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return None;
        }
        // "Unlimited" is not a number of descriptors the kernel will give (nr_open caps it): keep a large one.
        let hard = if limit.rlim_max == libc::RLIM_INFINITY { 1 << 20 } else { limit.rlim_max };
        if limit.rlim_cur < hard {
            let raised = libc::rlimit { rlim_cur: hard, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
                return Some(limit.rlim_cur as u64);
            }
        }
        Some(hard as u64)
    }
}

/// Descriptors kept for everything but client connections: database connections (PostgreSQL pool of 32, or
/// SQLite's files), the result logs, the webhook client's connections, the local agent.
pub const FD_HEADROOM: u64 = 512;

/// The connection limit: `requested`, at most the open-file limit less the headroom.
pub fn connection_limit(requested: Option<u64>, fd_limit: Option<u64>) -> usize {
    let ceiling = match fd_limit {
        Some(limit) if limit > 2 * FD_HEADROOM => limit - FD_HEADROOM,
        Some(limit) => (limit / 2).max(1),
        None => 10_000,
    };
    let limit = match requested {
        Some(requested) if requested > ceiling => {
            tracing::warn!(requested, ceiling, "--max-connections is above what the open-file limit allows; lowered");
            ceiling
        }
        Some(requested) => requested,
        None => ceiling,
    };
    limit as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_keeps_headroom_below_the_fd_limit() {
        assert_eq!(connection_limit(None, Some(20_000)), 20_000 - FD_HEADROOM as usize);
        assert_eq!(connection_limit(Some(100), Some(20_000)), 100);
        assert_eq!(connection_limit(Some(50_000), Some(20_000)), 20_000 - FD_HEADROOM as usize);
        assert_eq!(connection_limit(None, Some(1024)), 512);
        assert_eq!(connection_limit(None, Some(256)), 128);
    }
}
