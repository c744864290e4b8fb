//! The minimum send rate (`limits.min_send_rate` over `limits.send_window`): a client
//! that takes its responses slower than that, or never reads them, loses its connection.
//! Wraps every HTTP/1 and HTTP/2 connection's byte stream (above TLS) in the accept
//! loop (`conn/mod.rs`), below hyper.
//!
//! Without it, a client that pipelines requests for large files and reads a few bytes a
//! second holds a connection, and the kernel's send buffer behind it (megabytes), for as
//! long as it likes; an HTTP/2 client that floods PINGs or SETTINGS and never reads the
//! acknowledgements does the same. Both show up here the same way: writes that stay
//! blocked. An HTTP/2 client that opens streams with a flow-control window of 0 blocks
//! no write, so on HTTP/2 an open stream counts as waiting too.
//!
//! The first moment servy waits on the client (a write the socket refuses: its send
//! buffer is full; or an open HTTP/2 stream) opens a window. Bytes the socket takes
//! during it count; at its end, if servy waited for at least half of it and fewer than
//! `min_send_rate × send_window` bytes went out, the connection is abandoned: the read
//! or write fails (hyper drops the connection) and the socket closes with a reset, so
//! the kernel drops the queued bytes at once rather than keep trying to deliver them. A
//! timer wakes the connection at the window's end, so a client that never reads is
//! caught too. Idle connections open no window.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use prometheus::IntCounter;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// `limits.min_send_rate` and `limits.send_window`; a rate of 0 turns the check off.
#[derive(Debug, Clone, Copy)]
pub struct SendRule {
    pub min_rate: u64,
    pub window: Duration,
}

impl SendRule {
    fn enabled(&self) -> bool {
        self.min_rate > 0
    }

    /// The bytes a window must carry.
    fn floor(&self) -> u64 {
        let bytes = u128::from(self.min_rate) * self.window.as_millis() / 1000;
        u64::try_from(bytes).unwrap_or(u64::MAX)
    }
}

/// A connection's socket, which can be told to close with a reset (`SO_LINGER` 0).
pub trait ResetOnClose {
    fn reset_on_close(&self);
}

/// One window in which servy waited on the client.
struct Window {
    start: Instant,
    /// Time waited before the current stretch.
    blocked: Duration,
    blocked_since: Option<Instant>,
    sent: u64,
}

impl Window {
    fn blocked_until(&self, now: Instant) -> Duration {
        self.blocked
            + self
                .blocked_since
                .map_or(Duration::ZERO, |since| now - since)
    }
}

/// The stream hyper writes to, with the rule applied to its writes.
pub struct SendRate<I> {
    io: I,
    rule: SendRule,
    window: Option<Window>,
    /// Allocated on the first window only: most connections never fill their send buffer.
    timer: Option<Pin<Box<Sleep>>>,
    /// The last write or flush returned `Pending`.
    write_blocked: bool,
    /// An HTTP/2 connection's open streams (see [`SendRate::watch_streams`]).
    streams: Option<Arc<AtomicUsize>>,
    closed: IntCounter,
    protocol: &'static str,
}

/// The first abandoned connection is logged at warn; the rest are counted only, so an
/// attack does not flood the log.
static LOGGED: AtomicBool = AtomicBool::new(false);

impl<I: ResetOnClose> SendRate<I> {
    /// `closed` counts the connections abandoned (`servy_slow_clients_closed_total`).
    pub fn new(io: I, rule: SendRule, closed: IntCounter, protocol: &'static str) -> Self {
        SendRate {
            io,
            rule,
            window: None,
            timer: None,
            write_blocked: false,
            streams: None,
            closed,
            protocol,
        }
    }

    /// Counts an HTTP/2 connection's open streams as waiting on the client: a response
    /// held back by a flow-control window that never opens blocks no write.
    pub fn watch_streams(&mut self, open: Arc<AtomicUsize>) {
        self.streams = Some(open);
    }

    /// Whether servy has bytes for the client that the client has not made room for.
    fn waiting(&self) -> bool {
        self.write_blocked
            || self
                .streams
                .as_ref()
                .is_some_and(|open| open.load(Ordering::Relaxed) > 0)
    }

    /// Applies the rule after a read or write: ends a window that is over (abandoning
    /// the connection if it was too slow), opens one while the client is waited on, and
    /// keeps a timer for the window's end.
    fn step(&mut self, cx: &mut Context<'_>, sent: usize) -> io::Result<()> {
        // Most steps find no window open and nothing waited on: no clock to read.
        if !self.rule.enabled() || (self.window.is_none() && !self.waiting()) {
            return Ok(());
        }
        let now = Instant::now();
        if let Some(window) = &mut self.window {
            window.sent += sent as u64;
        }
        if self.window_ended(now) {
            if self.too_slow(now) {
                return Err(self.abandon(now));
            }
            self.window = None;
        }
        if !self.waiting() {
            if let Some(window) = &mut self.window
                && let Some(since) = window.blocked_since.take()
            {
                window.blocked += now - since;
            }
            return Ok(());
        }
        let window = self.window.get_or_insert(Window {
            start: now,
            blocked: Duration::ZERO,
            blocked_since: None,
            sent: 0,
        });
        window.blocked_since.get_or_insert(now);
        let end = window.start + self.rule.window;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(end)));
        if timer.deadline() != end {
            timer.as_mut().reset(end);
        }
        // Registers the wake-up at the window's end; should it be due already, the next
        // poll finds the window over.
        if timer.as_mut().poll(cx).is_ready() {
            cx.waker().wake_by_ref();
        }
        Ok(())
    }

    /// Applies the rule to what a write (or a flush, as 0 bytes) returned.
    fn track(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        let sent = match &polled {
            Poll::Ready(Ok(n)) => *n,
            Poll::Pending => 0,
            Poll::Ready(Err(_)) => return polled,
        };
        self.write_blocked = polled.is_pending();
        match self.step(cx, sent) {
            Ok(()) => polled,
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn window_ended(&self, now: Instant) -> bool {
        self.window
            .as_ref()
            .is_some_and(|w| now >= w.start + self.rule.window)
    }

    /// Blocked for at least half the window, and fewer bytes than the floor went out.
    fn too_slow(&self, now: Instant) -> bool {
        self.window.as_ref().is_some_and(|w| {
            w.blocked_until(now) * 2 >= self.rule.window && w.sent < self.rule.floor()
        })
    }

    fn abandon(&mut self, now: Instant) -> io::Error {
        let sent = self.window.as_ref().map_or(0, |w| w.sent);
        let seconds = self
            .window
            .as_ref()
            .map_or(0.0, |w| (now - w.start).as_secs_f64());
        self.closed.inc();
        self.io.reset_on_close();
        if !LOGGED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                protocol = self.protocol,
                sent,
                seconds,
                min_send_rate = self.rule.min_rate,
                "closed a connection that took its responses slower than limits.min_send_rate \
                 (further ones are only counted in servy_slow_clients_closed_total)"
            );
        } else {
            tracing::debug!(
                protocol = self.protocol,
                sent,
                seconds,
                "closed a slow client"
            );
        }
        self.window = None;
        io::Error::new(
            io::ErrorKind::TimedOut,
            "client slower than limits.min_send_rate",
        )
    }
}

impl<I: AsyncRead + ResetOnClose + Unpin> AsyncRead for SendRate<I> {
    /// HTTP/2 reads all the time, so this is where a stalled stream's window is kept
    /// (and, ending with an error, where hyper learns the connection is abandoned).
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.streams.is_some() {
            this.step(cx, 0)?;
        }
        Pin::new(&mut this.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + ResetOnClose + Unpin> AsyncWrite for SendRate<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_write(cx, buf);
        this.track(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.track(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    /// TLS writes its records to the socket here too: a flush that waits is a blocked write.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.io).poll_flush(cx).map_ok(|()| 0);
        this.track(cx, polled).map_ok(|_| ())
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_floor_is_the_rate_over_the_window() {
        let rule = SendRule {
            min_rate: 1024,
            window: Duration::from_secs(60),
        };
        assert_eq!(rule.floor(), 60 * 1024);
        let half = SendRule {
            min_rate: 1000,
            window: Duration::from_millis(500),
        };
        assert_eq!(half.floor(), 500);
    }
}
