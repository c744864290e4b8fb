//! HTTP/2 connections, from the accept loop (`conn/mod.rs`) once the sniff or ALPN chose
//! HTTP/2: hyper's connection with servy's settings, run as one task in turns.
//!
//! **Turns.** hyper would spawn a task per stream; here the connection's task polls its
//! streams itself ([`Turns`]): it reads what the client sent, answers every new stream,
//! lets h2 frame the answers, and only then writes, once, everything gathered
//! (`batched_io`). h2o and nginx work this way; it saves a task, its cross-thread wake-ups
//! and one or two writes per request.
//!
//! **The idle timeout** HTTP/2 connections lack: hyper closes an HTTP/2 connection only when
//! the client does or stops answering pings, so a client could hold thousands that never
//! ask for anything. The service counts open streams (until hyper drops the response body)
//! and stamps the time of the last change; the socket wrapper ends the connection (end of
//! input, so hyper closes it) once no stream has been open for the timeout. Pings are not
//! activity.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::response::Response;
use futures_util::stream::{FuturesUnordered, StreamExt};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};
use tower::Service;

use crate::conn::H2_MAX_STREAMS;
use crate::conn::batched_io::{Batch, BatchedIo, Outbox};
use crate::conn::held_response::{HeldResponse, respond_holding};
use crate::conn::send_rate::SendRate;
use crate::held_body::HeldBody;
use crate::request::RequestService;

/// Rounds of reading, answering and framing in one turn before the task lets others run.
const MAX_ROUNDS: usize = 8;

/// What every HTTP/2 connection is given, from `[limits]`.
pub struct Settings {
    /// Closed after this long with no stream open, as HTTP/1 is; also the ping interval.
    pub idle_timeout: Duration,
    /// SETTINGS_MAX_HEADER_LIST_SIZE: the same bound as HTTP/1's header size.
    pub max_header_list_size: u32,
}

impl Settings {
    /// One builder per connection: its executor is that connection's list of new streams.
    fn builder(
        &self,
        spawner: StreamSpawner,
    ) -> hyper::server::conn::http2::Builder<StreamSpawner> {
        let mut http2 = hyper::server::conn::http2::Builder::new(spawner);
        http2
            .timer(TokioTimer::new())
            .keep_alive_interval(self.idle_timeout)
            .max_header_list_size(self.max_header_list_size)
            .max_concurrent_streams(H2_MAX_STREAMS);
        http2
    }
}

/// Serves HTTP/2 on `io` until the connection ends; `outbox` is the other half of `io`'s
/// transport, through which each turn's writes go out. `watcher` holds the drain.
pub async fn serve<B, S>(
    io: SendRate<BatchedIo<B>>,
    outbox: Outbox<B>,
    service: S,
    settings: &Settings,
    watcher: Watcher,
) where
    B: Batch,
    S: RequestService,
{
    let (mut io, service) = idle_timeout(io, service, settings.idle_timeout);
    // A stream whose response waits on the client's flow-control window counts as
    // bytes waiting for the client, like a blocked write.
    let open_streams = io.open_streams();
    io.get_mut().watch_streams(open_streams);
    let started = Arc::new(Mutex::new(Vec::new()));
    let conn = settings
        .builder(StreamSpawner(started.clone()))
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    let turns = Turns {
        conn: Some(Box::pin(watcher.watch(conn))),
        done: None,
        started,
        taken: Vec::new(),
        waiting: FuturesUnordered::new(),
        outbox,
    };
    if let Err(e) = turns.await {
        tracing::debug!(error = %e, "connection closed with an error");
    }
}

/// A stream's task as hyper hands it over (answer, then send the body).
type StreamTask = Pin<Box<dyn Future<Output = ()> + Send>>;

/// hyper's executor for one connection: new streams are listed for [`Turns`] to run.
#[derive(Clone)]
pub struct StreamSpawner(Arc<Mutex<Vec<StreamTask>>>);

impl<F> hyper::rt::Executor<F> for StreamSpawner
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, stream: F) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Box::pin(stream));
    }
}

/// The connection's task: hyper's connection, its streams, and one send per turn.
struct Turns<C: Future, B> {
    conn: Option<Pin<Box<C>>>,
    done: Option<C::Output>,
    started: Arc<Mutex<Vec<StreamTask>>>,
    /// Emptied each round; kept for its allocation.
    taken: Vec<StreamTask>,
    /// Streams that wait, mostly on the client's flow-control window.
    waiting: FuturesUnordered<StreamTask>,
    outbox: Outbox<B>,
}

// Nothing in it is pinned in place: the connection is boxed, the output only moved out.
impl<C: Future, B> Unpin for Turns<C, B> {}

impl<C: Future, B: Batch> Future for Turns<C, B> {
    type Output = C::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let this = self.get_mut();
        let mut settled = false;
        for _ in 0..MAX_ROUNDS {
            // Reads the client's frames (new streams land in `started`) and frames what
            // the streams answered into the outbox.
            if let Some(conn) = &mut this.conn
                && let Poll::Ready(out) = conn.as_mut().poll(cx)
            {
                this.done = Some(out);
                this.conn = None;
                break;
            }
            let mut answered = false;
            std::mem::swap(
                &mut this.taken,
                &mut this.started.lock().unwrap_or_else(PoisonError::into_inner),
            );
            for mut stream in this.taken.drain(..) {
                answered = true;
                if stream.as_mut().poll(cx).is_pending() {
                    this.waiting.push(stream);
                }
            }
            while let Poll::Ready(Some(())) = this.waiting.poll_next_unpin(cx) {
                answered = true;
            }
            if !answered {
                settled = true;
                break;
            }
        }
        if !settled && this.conn.is_some() {
            cx.waker().wake_by_ref(); // more to do: after other tasks have had a turn
        }
        // The end of the turn: everything gathered goes out in one write. A socket that
        // is full wakes the task when it drains; an error reaches hyper at its next
        // read or write.
        let _ = this.outbox.poll_send(cx);
        match this.done.take() {
            // Streams still waiting end with the connection.
            Some(out) => Poll::Ready(out),
            None => Poll::Pending,
        }
    }
}

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
