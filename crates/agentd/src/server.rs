//! The HTTP/1.1 server under the API: an accept loop over hyper with limits
//! that keep slow and idle clients from exhausting the process.
//!
//! - a cap on open connections: over it, new connections wait in the
//!   kernel's listen backlog until one closes;
//! - a header-read timeout: a request head (request line and headers) must
//!   arrive within it, which also ends a slowloris client sending bytes one
//!   by one;
//! - a body-read timeout: a request body that sends nothing for that long
//!   fails;
//! - an idle timeout: a connection with no request in flight and no bytes
//!   moving is closed, so idle keep-alive connections give their slot back.
//!
//! Shutdown is graceful: the listener closes, idle connections close at once
//! and requests in flight finish.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tower::ServiceExt as _;
use tower_http::timeout::RequestBodyTimeoutLayer;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

/// File descriptors kept for everything but client connections (database,
/// uploaded files, outbound HTTP, the model file): a quarter of the limit,
/// at most this many.
const RESERVED_FILE_DESCRIPTORS: u64 = 256;

/// Raises the soft limit on open files to the hard limit (a server holding
/// thousands of connections needs more than the usual 1,024) and returns the
/// limit now in force, or `None` where it cannot be read.
pub fn raise_open_files_limit() -> Option<u64> {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => Some(limit),
        Err(error) => {
            tracing::warn!(%error, "could not raise the open-files limit");
            None
        }
    }
}

impl ConnectionLimits {
    /// The connection cap lowered to what `open_files` leaves room for, so
    /// that accepting never fails for want of a descriptor.
    pub fn fitted_to(self, open_files: Option<u64>) -> Self {
        let Some(open_files) = open_files else {
            return self;
        };
        let reserved = (open_files / 4).min(RESERVED_FILE_DESCRIPTORS);
        let room = open_files.saturating_sub(reserved).max(1);
        if self.max_connections as u64 <= room {
            return self;
        }
        tracing::warn!(
            configured = self.max_connections,
            open_files,
            allowed = room,
            "AGENTD_MAX_CONNECTIONS exceeds what the open-files limit allows; lowered"
        );
        Self {
            max_connections: usize::try_from(room).unwrap_or(usize::MAX),
            ..self
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then waits for
/// the requests in flight.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let app = tower::ServiceBuilder::new()
        .layer(RequestBodyTimeoutLayer::new(limits.body_read_timeout))
        .service(router);
    tokio::pin!(shutdown);
    loop {
        // A slot first: over the cap, connections wait in the backlog.
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = Arc::clone(&slots).acquire_owned() => slot.expect("the semaphore is never closed"),
        };
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    back_off_after_accept_error(&error).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::new());
        let service = {
            let activity = Arc::clone(&activity);
            let app = app.clone();
            hyper::service::service_fn(move |request: Request<Incoming>| {
                let in_flight = activity.request_started();
                let response = app.clone().oneshot(request);
                async move {
                    let response = response.await;
                    drop(in_flight);
                    response
                }
            })
        };
        let io = TokioIo::new(TrackedStream {
            inner: stream,
            activity: Arc::clone(&activity),
        });
        let connection = graceful.watch(http.serve_connection(io, service));
        let idle_timeout = limits.idle_timeout;
        tokio::spawn(async move {
            tokio::select! {
                result = connection => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "connection ended with an error");
                    }
                }
                () = activity.idle_for(idle_timeout) => {
                    tracing::debug!("closing an idle connection");
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Accept fails for the connection itself (reset before accept) or for the
/// process (out of descriptors); the latter is retried after a pause rather
/// than in a busy loop.
async fn back_off_after_accept_error(error: &io::Error) {
    let per_connection = matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    );
    if !per_connection {
        tracing::error!(%error, "accepting a connection failed");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// When a connection last moved bytes, and how many requests it has in
/// flight (a long synchronous run moves no bytes but is not idle).
struct Activity {
    opened: Instant,
    last_active_ms: AtomicU64,
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Self {
        Self {
            opened: Instant::now(),
            last_active_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
        }
    }

    fn touch(&self) {
        let elapsed = u64::try_from(self.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_active_ms.store(elapsed, Ordering::Relaxed);
    }

    fn last_active(&self) -> Instant {
        self.opened + Duration::from_millis(self.last_active_ms.load(Ordering::Relaxed))
    }

    fn request_started(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// Resolves once the connection has been idle for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            if self.in_flight.load(Ordering::Relaxed) > 0 {
                tokio::time::sleep(timeout).await;
                continue;
            }
            let deadline = self.last_active() + timeout;
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One request in flight; its end counts as activity.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.touch();
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A TCP stream that records when bytes last moved.
struct TrackedStream {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for TrackedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        result
    }
}

impl AsyncWrite for TrackedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        result
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(result, Poll::Ready(Ok(written)) if written > 0) {
            self.activity.touch();
        }
        result
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_connections: usize) -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(1),
            body_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(1),
            max_connections,
        }
    }

    #[test]
    fn the_connection_cap_leaves_descriptors_for_everything_else() {
        assert_eq!(limits(4096).fitted_to(Some(1024)).max_connections, 768);
        assert_eq!(limits(4096).fitted_to(Some(100_000)).max_connections, 4096);
        assert_eq!(limits(4096).fitted_to(None).max_connections, 4096);
        assert_eq!(limits(4096).fitted_to(Some(256)).max_connections, 192);
        assert_eq!(limits(10).fitted_to(Some(10)).max_connections, 8);
        assert_eq!(limits(10).fitted_to(Some(1)).max_connections, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_without_requests_in_flight() {
        let activity = Arc::new(Activity::new());
        let request = activity.request_started();
        let idle = activity.idle_for(Duration::from_secs(5));
        tokio::pin!(idle);
        // A request in flight for a minute keeps the connection open.
        assert!(tokio::time::timeout(Duration::from_secs(60), &mut idle)
            .await
            .is_err());
        drop(request);
        let ended = Instant::now();
        idle.await;
        assert!(ended.elapsed() >= Duration::from_secs(5));
    }
}
