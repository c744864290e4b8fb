//! One HTTP/1 connection that gives its memory back while idle. Called by the accept loop (`conn/mod.rs`) for
//! each HTTP/1 connection; the router serves its requests.
//!
//! hyper keeps an 8 KiB read buffer and an 8 KiB write buffer for as long as a
//! connection lives, idle or not, and offers no option to release them; idle keep-alive
//! connections are what a client can hold by the thousand. So once a connection has been
//! idle (its last response written and flushed, nothing more to read) for [`PARK_AFTER`],
//! servy ends hyper's connection without closing the socket (`graceful_shutdown` closes
//! an idle hyper connection at once; `into_parts` hands back the socket and any bytes
//! hyper had read), and keeps only the socket. When the client speaks again, a fresh
//! hyper connection picks up where the old one stopped.
//!
//! The header-read timeout is kept here too, with one timer per connection ticking
//! through it ([`HeadTimeout`]), rather than by hyper, which arms (and boxes) a fresh
//! timer for every request head.

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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::sync::watch;
use tokio::time::Sleep;

use crate::conn::held_response::{HeldResponse, respond_holding};
use crate::held_body::HeldBody;
use crate::request::RequestService;

/// How long a keep-alive connection is idle before it parks. Short, so buffers do not
/// pile up under a burst of new connections (their peak stays in the heap); long enough
/// that a client sending its next request at once (a page's assets, a benchmark) does not
/// pay for a new hyper connection per request.
const PARK_AFTER: Duration = Duration::from_millis(10);

/// Serves HTTP/1 on `io` until the client leaves, takes longer than `head_timeout` to
/// send a request head (an idle keep-alive connection included), or `stop` turns true
/// (then in-flight requests finish first).
pub async fn serve<I, S>(
    builder: &http1::Builder,
    io: I,
    service: S,
    head_timeout: Duration,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: RequestService,
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
        // Boxed, so that while parked the task keeps none of hyper's state inline.
        let mut conn = Box::new(builder.serve_connection(TokioIo::new(watched), service));
        let mut parking = false;
        let mut stopping = false;
        let mut head_timer = HeadTimeout::new(head_timeout);
        // `stop` is read through a clone, so that a wake-up is checked for a change with
        // one load instead of polling `changed()` (and its waiter) every time.
        let mut stop_waiter = stop.clone();
        let done = {
            let mut stopped = pin!(stop_waiter.changed());
            let mut stop_registered = false;
            // Armed at the first idle moment; when it fires with no exchange finished
            // since, the connection parks. Re-armed at most once per PARK_AFTER, so a
            // busy connection costs no timer work per request.
            let mut park_timer: Option<(Pin<Box<Sleep>>, usize)> = None;
            poll_fn(|cx| {
                if !stopping
                    && (!stop_registered || stop.has_changed().unwrap_or(true))
                    && stopped.as_mut().poll(cx).is_ready()
                {
                    stopping = true;
                    Pin::new(&mut *conn).graceful_shutdown();
                }
                stop_registered = true;
                loop {
                    // Until it parks, hyper runs as usual: when it is done it flushes
                    // what it buffered and shuts the socket. Only an idle connection,
                    // with everything flushed, is ended without that.
                    let polled = if parking {
                        conn.poll_without_shutdown(cx)
                    } else {
                        Pin::new(&mut *conn).poll(cx)
                    };
                    if polled.is_pending() && !parking && head_timer.expired(cx, &activity) {
                        return Poll::Ready(Ended::HeadTimeout);
                    }
                    if polled.is_ready() || parking || stopping || !activity.is_idle() {
                        return polled.map(Ended::Hyper);
                    }
                    let answered = activity.answered.load(Ordering::Relaxed);
                    let mut armed = false;
                    let (timer, armed_at) = park_timer.get_or_insert_with(|| {
                        armed = true;
                        (Box::pin(tokio::time::sleep(PARK_AFTER)), answered)
                    });
                    // Registered once armed; until it fires, a wake-up need not poll it.
                    if !armed && !timer.is_elapsed() {
                        return Poll::Pending;
                    }
                    if timer.as_mut().poll(cx).is_pending() {
                        return Poll::Pending;
                    }
                    if *armed_at != answered {
                        // Served since it was armed: idle for less than PARK_AFTER.
                        timer
                            .as_mut()
                            .reset(tokio::time::Instant::now() + PARK_AFTER);
                        *armed_at = answered;
                        let _ = timer.as_mut().poll(cx); // registers the wake-up
                        return Poll::Pending;
                    }
                    // Idle long enough: hyper closes at once, and the poll above returns.
                    parking = true;
                    Pin::new(&mut *conn).graceful_shutdown();
                }
            })
            .await
        };
        drop(activity);
        let done = match done {
            Ended::Hyper(done) => done,
            // Dropped, as hyper drops a connection whose head timed out: the socket closes.
            Ended::HeadTimeout => return,
        };
        let http1::Parts {
            io: parked,
            read_buf,
            ..
        } = conn.into_parts();
        let Watched { io: mut socket, .. } = parked.into_inner();
        if done.is_err() || !parking {
            // Closed by the client, an error, a timeout, or the drain (hyper has shut
            // the socket down after flushing, or it failed).
            return;
        }
        // Parked: hyper and its buffers are gone; keep the socket and any bytes of the
        // next request hyper had read. Copied: even an empty `read_buf` shares (and so
        // keeps) hyper's whole read buffer.
        leftover = Bytes::copy_from_slice(&read_buf);
        drop(read_buf);
        if *stop.borrow() {
            return;
        }
        if leftover.is_empty() {
            let mut first = [0u8; 256];
            let read = tokio::select! {
                read = tokio::time::timeout(head_timeout, socket.read(&mut first)) => read,
                _ = stop.changed() => return,
            };
            match read {
                Ok(Ok(n)) if n > 0 => leftover = Bytes::copy_from_slice(&first[..n]),
                _ => return, // idle too long, closed, or failed
            }
        }
        io = socket;
    }
}

/// How a hyper connection's run ended.
enum Ended {
    /// hyper finished (the client left, an error, the drain, or parking).
    Hyper(Result<(), hyper::Error>),
    /// The client took longer than the header-read timeout to send a request head.
    HeadTimeout,
}

/// Ticks a header-read timeout is counted in: the connection closes after this many
/// ticks in a row in which it waited for a request head and nothing happened, so
/// between 1 and 1 + 1/HEAD_TICKS timeouts after the wait began.
const HEAD_TICKS: u32 = 8;

/// The header-read timeout of one hyper connection: one timer, armed once and re-armed
/// once a tick, so a request costs it nothing. A tick is quiet when no exchange is open,
/// every byte is flushed, and no request came or finished since the last tick.
struct HeadTimeout {
    timer: Pin<Box<Sleep>>,
    tick: Duration,
    /// (responses finished, exchanges open) at the last tick.
    seen: (usize, usize),
    quiet: u32,
    registered: bool,
}

impl HeadTimeout {
    fn new(timeout: Duration) -> HeadTimeout {
        let tick = timeout / HEAD_TICKS;
        HeadTimeout {
            timer: Box::pin(tokio::time::sleep(tick)),
            tick,
            seen: (0, 0),
            quiet: 0,
            registered: false,
        }
    }

    /// Whether the connection has waited a whole timeout for a request head. Registers
    /// the timer's wake-up; a wake-up before it fires costs one load.
    fn expired(&mut self, cx: &mut Context<'_>, activity: &Activity) -> bool {
        if self.registered && !self.timer.is_elapsed() {
            return false;
        }
        self.registered = true;
        while self.timer.as_mut().poll(cx).is_ready() {
            let now = (
                activity.answered.load(Ordering::Relaxed),
                activity.open.load(Ordering::Relaxed),
            );
            let waiting_for_head =
                now.1 == 0 && activity.flushed.load(Ordering::Relaxed) && now == self.seen;
            self.quiet = if waiting_for_head { self.quiet + 1 } else { 0 };
            self.seen = now;
            if self.quiet >= HEAD_TICKS {
                return true;
            }
            let next = tokio::time::Instant::now() + self.tick;
            self.timer.as_mut().reset(next);
        }
        false
    }
}

/// What the idle check needs to know, shared by the IO wrapper and the service.
struct Activity {
    /// hyper's last read found nothing to read.
    waiting_to_read: AtomicBool,
    /// Everything hyper wrote has been flushed to the socket.
    flushed: AtomicBool,
    /// Requests whose response body hyper has not finished with.
    open: AtomicUsize,
    /// Responses finished on this hyper connection.
    answered: AtomicUsize,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            waiting_to_read: AtomicBool::new(false),
            flushed: AtomicBool::new(true),
            open: AtomicUsize::new(0),
            answered: AtomicUsize::new(0),
        }
    }
}

impl Activity {
    /// Idle in hyper's sense: at least one exchange finished (a fresh hyper connection
    /// is not idle until its first response), none open, every byte flushed, and hyper
    /// waiting for the next request. Ending the connection then changes nothing the
    /// client can see; part of a next request already read comes back in `into_parts`.
    fn is_idle(&self) -> bool {
        self.answered.load(Ordering::Relaxed) > 0
            && self.open.load(Ordering::Relaxed) == 0
            && self.flushed.load(Ordering::Relaxed)
            && self.waiting_to_read.load(Ordering::Relaxed)
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
            this.activity
                .waiting_to_read
                .store(false, Ordering::Relaxed);
            return Poll::Ready(Ok(()));
        }
        let polled = Pin::new(&mut this.io).poll_read(cx, buf);
        this.activity
            .waiting_to_read
            .store(polled.is_pending(), Ordering::Relaxed);
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.activity.flushed.store(false, Ordering::Relaxed);
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.activity.flushed.store(false, Ordering::Relaxed);
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = Pin::new(&mut self.io).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            self.activity.flushed.store(true, Ordering::Relaxed);
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

/// The tower service as hyper wants it (`Unpin`, so the connection can be polled without
/// shutting the socket), counting exchanges until hyper is done with the response body.
struct Tracked<S> {
    service: S,
    activity: Arc<Activity>,
}

impl<S> hyper::service::Service<Request<Incoming>> for Tracked<S>
where
    S: RequestService,
{
    type Response = Response<HeldBody<Open>>;
    type Error = Infallible;
    type Future = HeldResponse<S, Open>;

    fn call(&self, req: Request<Incoming>) -> HeldResponse<S, Open> {
        let open = Open(self.activity.clone());
        open.0.open.fetch_add(1, Ordering::Relaxed);
        respond_holding(self.service.clone(), req, open)
    }
}

/// One exchange hyper has not finished with; closes when dropped (body written, or the
/// request abandoned).
pub struct Open(Arc<Activity>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
        self.0.answered.fetch_add(1, Ordering::Relaxed);
    }
}
