//! The minimum send rate (`limits.min_send_rate` over `limits.send_window`): a client
//! that takes its responses slower than that, or never reads them, loses its connection.
//! Wraps every HTTP/1 and HTTP/2 connection's byte stream (above TLS) in the accept
//! loop (`conn/mod.rs`), below hyper.
//!
//! Without it, a client that pipelines requests for large files and reads a few bytes a
//! second holds a connection, and the kernel's send buffer behind it (megabytes), for as
//! long as it likes; an HTTP/2 client that floods PINGs or SETTINGS and never reads the
//! acknowledgements does the same. Both show up here the same way: writes that stay
//! blocked.
//!
//! The first write the socket refuses (it returns `Pending`: the send buffer is full)
//! opens a window. Bytes the socket takes during it count; at its end, if the writer was
//! blocked for at least half of it and fewer than `min_send_rate × send_window` bytes
//! went out, the connection is abandoned: the write fails (hyper drops the connection)
//! and the socket closes with a reset, so the kernel drops the queued bytes at once
//! rather than keep trying to deliver them. A timer wakes the connection at the window's
//! end, so a client that never reads is caught too. Idle connections open no window.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
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

/// One window of blocked writes.
struct Window {
    start: Instant,
    /// Blocked time before the current stretch.
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
            closed,
            protocol,
        }
    }

    /// Applies the rule to what a write returned.
    fn track(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        if !self.rule.enabled() {
            return polled;
        }
        let now = Instant::now();
        match &polled {
            Poll::Ready(Ok(n)) => {
                if let Some(window) = &mut self.window {
                    window.sent += *n as u64;
                    if let Some(since) = window.blocked_since.take() {
                        window.blocked += now - since;
                    }
                }
                if self.window_ended(now) {
                    if self.too_slow(now) {
                        return self.abandon(now);
                    }
                    self.window = None;
                }
                polled
            }
            Poll::Pending => {
                if self.window_ended(now) {
                    if self.too_slow(now) {
                        return self.abandon(now);
                    }
                    self.window = None;
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
                // Registers the wake-up at the window's end; should it be due already,
                // the next poll finds the window over.
                if timer.as_mut().poll(cx).is_ready() {
                    cx.waker().wake_by_ref();
                }
                polled
            }
            Poll::Ready(Err(_)) => polled,
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

    fn abandon(&mut self, now: Instant) -> Poll<io::Result<usize>> {
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
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client slower than limits.min_send_rate",
        )))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for SendRate<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
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
