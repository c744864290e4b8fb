//! The idle timeout HTTP/2 connections lack: hyper closes an HTTP/2 connection only when
//! the client does or stops answering pings, so a client could hold thousands that never
//! ask for anything. Used by the accept loop (`conn/mod.rs`) on each HTTP/2 connection's socket and service.
//!
//! The service counts open streams (until hyper drops the response body) and stamps the
//! time of the last change; the socket wrapper ends the connection (end of input, so
//! hyper closes it) once no stream has been open for the timeout. Pings are not activity.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tower::Service;

use crate::conn::held_response::{HeldResponse, respond_holding};
use crate::held_body::HeldBody;
use crate::request::RequestService;

/// Open streams and when that last changed, shared by [`Streams`] and [`IdleClose`].
struct Activity {
    /// Shared with the minimum send rate (`send_rate`), which counts open streams as
    /// bytes the client is waited on for.
    open: Arc<AtomicUsize>,
    /// Milliseconds since `start` at the last change.
    changed_ms: AtomicU64,
    start: Instant,
}

impl Activity {
    fn touch(&self) {
        let ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.changed_ms.store(ms, Ordering::Relaxed);
    }

    /// When the connection counts as idle if nothing changes before then; `None` while a
    /// stream is open.
    fn idle_at(&self, timeout: Duration) -> Option<Instant> {
        (self.open.load(Ordering::Relaxed) == 0).then(|| {
            self.start + Duration::from_millis(self.changed_ms.load(Ordering::Relaxed)) + timeout
        })
    }
}

/// Wraps one HTTP/2 connection's socket and service.
pub fn idle_timeout<I, S>(io: I, service: S, timeout: Duration) -> (IdleClose<I>, Streams<S>) {
    let activity = Arc::new(Activity {
        open: Arc::new(AtomicUsize::new(0)),
        changed_ms: AtomicU64::new(0),
        start: Instant::now(),
    });
    let idle = IdleClose {
        io,
        activity: activity.clone(),
        timeout,
        timer: Box::pin(tokio::time::sleep(timeout)),
    };
    (idle, Streams { service, activity })
}

/// The socket: reads end once the connection has been idle for the timeout.
pub struct IdleClose<I> {
    io: I,
    activity: Arc<Activity>,
    timeout: Duration,
    timer: Pin<Box<Sleep>>,
}

impl<I> IdleClose<I> {
    /// The connection's open streams, counted by [`Streams`].
    pub fn open_streams(&self) -> Arc<AtomicUsize> {
        self.activity.open.clone()
    }

    pub fn get_mut(&mut self) -> &mut I {
        &mut self.io
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for IdleClose<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(at) = this.activity.idle_at(this.timeout) {
            if Instant::now() >= at {
                return Poll::Ready(Ok(())); // end of input: hyper closes the connection
            }
            if this.timer.deadline() != at {
                this.timer.as_mut().reset(at);
            }
            // Registers the wake-up for the deadline; the read below may come first.
            let _ = this.timer.as_mut().poll(cx);
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for IdleClose<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The service: counts a stream open from its request until hyper drops its body.
#[derive(Clone)]
pub struct Streams<S> {
    service: S,
    activity: Arc<Activity>,
}

impl<S> Service<Request<Incoming>> for Streams<S>
where
    S: RequestService,
{
    type Response = Response<HeldBody<OpenStream>>;
    type Error = Infallible;
    type Future = HeldResponse<S, OpenStream>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        self.activity.open.fetch_add(1, Ordering::Relaxed);
        self.activity.touch();
        let stream = OpenStream(self.activity.clone());
        respond_holding(self.service.clone(), req, stream)
    }
}

pub struct OpenStream(Arc<Activity>);

impl Drop for OpenStream {
    fn drop(&mut self) {
        self.0.touch();
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}
