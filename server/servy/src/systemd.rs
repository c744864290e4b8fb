//! The notify protocol (sd_notify(3)): `READY=1`, `STATUS=`, watchdog pings,
//! `RELOADING=1`, `STOPPING=1`. Off the request path. Without `NOTIFY_SOCKET` every call
//! is a no-op, so servy runs the same under systemd, in a container, or in a terminal.

use std::time::Duration;

use sd_notify::NotifyState;

/// Sends `states` in one datagram. A lost notification is not worth failing over, but
/// it is worth a log line: systemd may then time the service out.
fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "sd_notify failed");
    }
}

/// Listeners are up and the first redirects load was attempted: the same condition as
/// `/readyz`. Only `main` calls this, after those steps, never a constructor.
pub fn ready(status: &str) {
    notify(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// SIGHUP work starts. `MONOTONIC_USEC` is required with `RELOADING=1` by
/// `Type=notify-reload` so systemd can match the reload to this notification.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[NotifyState::Reloading, now]),
        Err(_) => notify(&[NotifyState::Reloading]),
    }
}

/// SIGHUP work is done: ready again, with what is now served.
pub fn reloaded(status: &str) {
    ready(status);
}

pub fn stopping() {
    notify(&[
        NotifyState::Stopping,
        NotifyState::Status("draining connections"),
    ]);
}

/// With `WatchdogSec=`, pings at half the interval from a task on the serving runtime,
/// so a runtime that stops turning stops pinging and systemd restarts servy.
pub fn spawn_watchdog() -> Option<Duration> {
    let interval = sd_notify::watchdog_enabled()? / 2;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            notify(&[NotifyState::Watchdog]);
        }
    });
    Some(interval)
}
