//! SIGTERM/SIGINT and SIGHUP, turned into plain events for `main`'s loop.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// What a signal asks servy to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// SIGTERM or SIGINT: stop accepting, drain, exit 0.
    Shutdown,
    /// SIGHUP: refresh the redirects now.
    Refresh,
}

pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    /// Installs the handlers. Done before READY, so a SIGTERM or SIGHUP that follows
    /// readiness is never lost to the default action (for SIGHUP: exit).
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    pub async fn next(&mut self) -> Event {
        tokio::select! {
            _ = self.term.recv() => Event::Shutdown,
            _ = self.int.recv() => Event::Shutdown,
            _ = self.hup.recv() => Event::Refresh,
        }
    }
}
