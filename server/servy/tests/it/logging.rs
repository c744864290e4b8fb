//! Logging never waits on the request path: with stderr stalled, requests are still
//! answered at once, lost lines are counted, and a warning follows the catch-up.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::support::{Servy, get};

/// The value of one sample line (`name value`) on `/metrics`.
fn metric(servy: &Servy, series: &str) -> f64 {
    let text = get(servy.metrics, "/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
}

/// Keep-alive GETs on one connection until `stop`; returns (requests, slowest).
fn hammer(addr: SocketAddr, stop: &AtomicBool) -> (u64, Duration) {
    let mut conn = TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let (mut count, mut slowest) = (0, Duration::ZERO);
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        conn.write_all(b"GET /robots.txt HTTP/1.1\r\nhost: x\r\n\r\n")
            .expect("send");
        read_response(&mut conn, &mut buf);
        slowest = slowest.max(start.elapsed());
        count += 1;
    }
    (count, slowest)
}

/// Reads one `200` response with a Content-Length body.
fn read_response(conn: &mut TcpStream, buf: &mut [u8]) {
    let mut len = 0;
    loop {
        let n = conn.read(&mut buf[len..]).expect("a response in time");
        assert!(n > 0, "servy closed the connection");
        len += n;
        let Some(end) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        assert!(head.starts_with("http/1.1 200"), "{head}");
        let body: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("content-length");
        if len >= end + 4 + body {
            return;
        }
    }
}

#[test]
fn a_stalled_stderr_drops_log_lines_instead_of_stalling_requests() {
    // Shipped defaults: the request log is on, text on stderr; nobody reads the pipe.
    let mut servy = Servy::builder().stderr_unread().start();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (addr, stop) = (servy.http, stop.clone());
            thread::spawn(move || hammer(addr, &stop))
        })
        .collect();
    // The pipe (64 KiB) and the queue fill after a few thousand lines; then lines drop.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut dropped = 0.0;
    while dropped == 0.0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
        dropped = metric(&servy, "servy_log_lines_dropped_total");
    }
    stop.store(true, Ordering::Relaxed);
    let (mut total, mut slowest) = (0, Duration::ZERO);
    for c in clients {
        let (n, s) = c.join().expect("client thread");
        total += n;
        slowest = slowest.max(s);
    }
    assert!(dropped > 0.0, "no line dropped after {total} requests");
    assert!(
        slowest < Duration::from_secs(1),
        "a request took {slowest:?} while stderr was stalled ({total} requests)"
    );

    // Unstalled: the writer catches up and says how much was lost.
    servy.read_stderr();
    assert!(
        servy.wait_stderr(Duration::from_secs(20), "lines were dropped"),
        "no warning after the catch-up; stderr tail:\n{}",
        tail(&servy.stderr())
    );
    assert_eq!(get(servy.http, "/").status, 200);
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}
