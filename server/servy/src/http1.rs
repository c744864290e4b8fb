//! One HTTP/1 connection that gives its memory back while idle. Called by `serve` for
//! each HTTP/1 connection; the router serves its requests.
//!
//! hyper keeps an 8 KiB read buffer and an 8 KiB write buffer for as long as a
//! connection lives, idle or not, and offers no option to release them; idle keep-alive
//! connections are what a client can hold by the thousand. So once a connection has been
//! idle for [`PARK_AFTER`], servy ends hyper's connection without closing the socket
//! (`graceful_shutdown` on an idle connection, then `into_parts`), and keeps only the
//! socket and any bytes hyper had read. When the client speaks again, a fresh hyper
//! connection picks up where the old one stopped.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::io;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::watch;
use tower::{Service, ServiceExt};

/// How long a keep-alive connection sits idle before its buffers are released. Long
/// enough that a browser's next request on a busy page finds hyper still there.
pub const PARK_AFTER: Duration = Duration::from_secs(1);

/// Serves HTTP/1 on `io` until the client leaves, `idle_timeout` passes with nothing
/// asked, or `stop` turns true (then in-flight requests finish first).
pub async fn serve<I, S>(
    builder: &http1::Builder,
    io: I,
    service: S,
    idle_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Unpin
        + 'static,
    S::Future: Send + 'static,
{
    let mut io = io;
    let mut leftover = Bytes::new();
    loop {
        let activity = Arc::new(Activity::default());
        let watched = Watched {
            io,
            leftover,
            activity: activity.clone(),
        };
        let service = Tracked {
            service: service.clone(),
            activity: activity.clone(),
        };
        let mut conn = builder.serve_connection(TokioIo::new(watched), service);
        let mut parking = false;
        let mut stopping = false;
        let mut tick =
            tokio::time::interval_at(tokio::time::Instant::now() + PARK_AFTER, PARK_AFTER);
        let done = {
            let mut stopped = pin!(stop.changed());
            poll_fn(|cx| {
                if !stopping && stopped.as_mut().poll(cx).is_ready() {
                    stopping = true;
                    Pin::new(&mut conn).graceful_shutdown();
                }
                if !parking
                    && !stopping
                    && tick.poll_tick(cx).is_ready()
                    && activity.idle_since_last_look()
                {
                    parking = true;
                    Pin::new(&mut conn).graceful_shutdown();
                }
                conn.poll_without_shutdown(cx)
            })
            .await
        };
        let parts = conn.into_parts();
        let mut watched = parts.io.into_inner();
        if done.is_err() || !parking {
            // Closed by the client, an error, a timeout, or the drain.
            let _ = watched.io.shutdown().await;
            return;
        }
        // Parked: hyper and its buffers are gone; wait for the next request's first bytes.
        leftover = parts.read_buf;
        if leftover.is_empty() {
            let mut first = [0u8; 256];
            let read = tokio::select! {
                read = tokio::time::timeout(idle_timeout, watched.io.read(&mut first)) => read,
                _ = stop.changed() => return,
            };
            match read {
                Ok(Ok(n)) if n > 0 => leftover = Bytes::copy_from_slice(&first[..n]),
                _ => return, // idle too long, closed, or failed
            }
        }
        io = watched.io;
    }
}

/// What the idle check needs to know, shared by the IO wrapper and the service.
#[derive(Default)]
struct Activity {
    /// Bytes moved since the last look.
    busy: AtomicBool,
    /// hyper's last read found nothing to read.
    waiting_to_read: AtomicBool,
    /// Requests whose response is not yet produced.
    in_flight: AtomicUsize,
}

impl Activity {
    /// Idle: nothing moved since the last call, hyper waits for a request, none is in
    /// flight. Then hyper has no request half-read or half-answered, so ending its
    /// connection changes nothing the client can see.
    fn idle_since_last_look(&self) -> bool {
        let moved = self.busy.swap(false, Ordering::Relaxed);
        !moved
            && self.waiting_to_read.load(Ordering::Relaxed)
            && self.in_flight.load(Ordering::Relaxed) == 0
    }
}

/// The socket as hyper sees it: replays bytes a parked connection had read, and notes
/// activity.
struct Watched<I> {
    io: I,
    leftover: Bytes,
    activity: Arc<Activity>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.leftover.is_empty() {
            let n = this.leftover.len().min(buf.remaining());
            buf.put_slice(&this.leftover.split_to(n));
            this.activity.busy.store(true, Ordering::Relaxed);
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        let waiting = polled.is_pending();
        this.activity
            .waiting_to_read
            .store(waiting, Ordering::Relaxed);
        if !waiting && buf.filled().len() > before {
            this.activity.busy.store(true, Ordering::Relaxed);
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.activity.busy.store(true, Ordering::Relaxed);
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.activity.busy.store(true, Ordering::Relaxed);
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

/// The tower service as hyper wants it (`Unpin`, so the connection can be polled without
/// shutting the socket), counting requests in flight.
struct Tracked<S> {
    service: S,
    activity: Arc<Activity>,
}

type BoxedResponse = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

impl<S> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Unpin
        + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxedResponse;

    fn call(&self, req: Request<Incoming>) -> BoxedResponse {
        let activity = self.activity.clone();
        activity.in_flight.fetch_add(1, Ordering::Relaxed);
        let response = self.service.clone().oneshot(req);
        Box::pin(async move {
            let response = response.await;
            activity.in_flight.fetch_sub(1, Ordering::Relaxed);
            response
        })
    }
}
