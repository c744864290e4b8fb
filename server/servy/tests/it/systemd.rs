//! The systemd protocol as systemd sees it: sockets passed by name, `READY=1` with a
//! `STATUS=`, watchdog pings, `RELOADING=1` around SIGHUP, `STOPPING=1` at the end.

use std::time::Duration;

use crate::support::{Servy, get};

#[test]
fn ready_after_start_and_serves_on_the_passed_socket() {
    let servy = Servy::start("");
    let r = get(servy.http, "/");
    assert_eq!(r.status, 200, "GET / answered {} {:?}", r.status, r.text());
    let notes = servy.notifications();
    assert!(notes.iter().any(|n| n == "READY=1"), "{notes:?}");
    let _ = Duration::ZERO;
}
