//! The systemd protocol as systemd sees it: sockets passed by name (every test passes
//! them; here also the fallback of binding from config), `READY=1` with a `STATUS=`,
//! watchdog pings, `RELOADING=1` around SIGHUP, `STOPPING=1` at the end.

use std::time::{Duration, Instant};

use crate::support::{Servy, TempDir, free_addr, get};

#[test]
fn ready_with_a_status_saying_what_is_served() {
    let servy = Servy::start("");
    assert_eq!(
        get(servy.http, "/").status,
        200,
        "served on the passed socket"
    );
    let notes = servy.notifications();
    let ready = notes.iter().position(|n| n == "READY=1").expect("READY=1");
    let status = notes[ready + 1..].first().expect("STATUS= with READY=1");
    let expected = format!(" redirects on {}", servy.http);
    assert!(
        status.starts_with("STATUS=serving ") && status.ends_with(&expected),
        "{status}"
    );
    assert!(status.contains(" assets, 0 redirects"), "{status}");
}

#[test]
fn binds_from_config_when_no_socket_is_passed() {
    let (http, metrics) = (free_addr(), free_addr());
    let config = format!("[http]\nlisten = [\"{http}\"]\n[metrics]\nlisten = [\"{metrics}\"]\n");
    let servy = Servy::builder().config(&config).without_sockets().start();
    assert_eq!((servy.http, servy.metrics), (http, metrics));
    assert_eq!(get(http, "/").status, 200);
    assert_eq!(get(metrics, "/readyz").status, 200);
    assert!(
        servy.wait_stderr(Duration::from_secs(2), "socket_activated=false"),
        "{}",
        servy.stderr()
    );
}

#[test]
fn passed_sockets_win_over_configured_addresses() {
    // The configured address is taken by someone else; the passed sockets are used.
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let config = format!(
        "[http]\nlisten = [\"{}\"]\n",
        held.local_addr().expect("addr")
    );
    let servy = Servy::start(&config);
    assert_eq!(get(servy.http, "/").status, 200);
    assert!(
        servy.wait_stderr(Duration::from_secs(2), "socket_activated=true"),
        "{}",
        servy.stderr()
    );
}

#[test]
fn watchdog_pings_at_half_the_interval() {
    let servy = Servy::builder().env("WATCHDOG_USEC", "200000").start();
    let start = Instant::now();
    let pings = || {
        servy
            .notifications()
            .iter()
            .filter(|n| *n == "WATCHDOG=1")
            .count()
    };
    while pings() < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "only {} pings in {:?}",
            pings(),
            start.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // 100 ms apart: 5 pings take at least ~400 ms.
    assert!(
        start.elapsed() >= Duration::from_millis(300),
        "pinged too fast: {:?}",
        start.elapsed()
    );
}

#[test]
fn no_watchdog_pings_without_watchdog_usec() {
    let servy = Servy::start("");
    std::thread::sleep(Duration::from_millis(300));
    assert!(!servy.notifications().iter().any(|n| n == "WATCHDOG=1"));
}

#[test]
fn sighup_reloads_the_redirects_between_reloading_and_ready() {
    let dir = TempDir::new();
    let source = dir.write("redirects.txt", "old https://example.org/old\n");
    // A long interval: only SIGHUP can explain the new alias.
    let config = format!(
        "[redirects]\nsource = \"{}\"\nrefresh_interval = \"1h\"\nmin_refresh_interval = \"1h\"\n",
        source.display()
    );
    let servy = Servy::start(&config);
    assert_eq!(get(servy.http, "/new").status, 404);
    dir.write(
        "redirects.txt",
        "old https://example.org/old\nnew https://example.org/new\n",
    );

    servy.signal(libc::SIGHUP);
    let reloaded = || {
        let notes = servy.notifications();
        let Some(reloading) = notes.iter().position(|n| n == "RELOADING=1") else {
            return false;
        };
        notes[reloading + 1].starts_with("MONOTONIC_USEC=")
            && notes[reloading..].iter().any(|n| n == "READY=1")
    };
    let start = Instant::now();
    while !reloaded() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            servy.notifications()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = get(servy.http, "/new");
    assert_eq!(
        (r.status, r.header("location")),
        (308, Some("https://example.org/new"))
    );
    let last_status = servy
        .notifications()
        .into_iter()
        .rev()
        .find(|n| n.starts_with("STATUS="))
        .expect("status");
    assert!(last_status.contains(" 2 redirects"), "{last_status}");
}

#[test]
fn stopping_then_exit_0_on_sigterm() {
    let mut servy = Servy::start("");
    assert_eq!(servy.terminate().code(), Some(0));
    assert!(servy.notifications().iter().any(|n| n == "STOPPING=1"));
}

#[test]
fn sigint_stops_too() {
    let mut servy = Servy::start("");
    servy.signal(libc::SIGINT);
    assert_eq!(servy.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[test]
fn auto_log_format_follows_journal_stream_to_journald() {
    let servy = Servy::builder().journal_stream().start();
    assert_eq!(get(servy.http, "/").status, 200);
    std::thread::sleep(Duration::from_millis(200));
    let e = servy.stderr();
    // journald took the lines (a journal on this machine), or servy said it could not
    // reach it and fell back to text; text without that word means auto did not detect.
    assert!(
        e.contains("journald is unreachable") || !e.contains("servy::request"),
        "{e}"
    );
}

#[test]
fn a_journal_stream_that_is_not_stderr_means_text() {
    // Inherited from a parent whose stderr was the journal; ours is a pipe.
    let servy = Servy::builder().env("JOURNAL_STREAM", "1:1").start();
    assert_eq!(get(servy.http, "/").status, 200);
    assert!(
        servy.wait_stderr(Duration::from_secs(2), "servy::request"),
        "{}",
        servy.stderr()
    );
    assert!(!servy.stderr().contains("journald"), "{}", servy.stderr());
}
