//! SIGTERM: stop accepting, let in-flight responses finish within the grace period,
//! exit 0 — and never wait on connections that have nothing in flight.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::http::{connect_slow_reader, parse, parse_pipelined, read_to_close};
use crate::support::{Servy, get};

/// The demo site's largest file.
const LARGE: &str = "/search-index.json";

/// Pipelined requests for the large file: more bytes than the kernel's socket buffers
/// can hold, so some response is still being written when SIGTERM arrives.
fn pipelined(n: usize) -> Vec<u8> {
    format!("GET {LARGE} HTTP/1.1\r\nhost: x\r\n\r\n")
        .repeat(n)
        .into_bytes()
}

#[test]
fn in_flight_download_completes_after_sigterm() {
    let mut servy = Servy::start("[limits]\nshutdown_grace = \"20s\"\n");
    let expected = get(servy.http, LARGE);
    assert_eq!(expected.status, 200);

    let mut slow = connect_slow_reader(servy.http, &pipelined(64));
    let mut first = [0u8; 512];
    let n = slow.read(&mut first).expect("the first response starts");

    servy.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        servy.try_wait().is_none(),
        "servy exited with a download in flight"
    );
    assert!(
        TcpStream::connect(servy.http).is_err(),
        "servy still accepts after SIGTERM"
    );

    let mut bytes = first[..n].to_vec();
    bytes.extend(read_to_close(&mut slow));
    let (responses, leftover) = parse_pipelined(&bytes);
    assert_eq!(
        leftover,
        0,
        "the last response was cut off ({} complete before it)",
        responses.len()
    );
    assert!(
        !responses.is_empty() && responses.len() < 64,
        "{} responses",
        responses.len()
    );
    for r in &responses {
        assert_eq!((r.status, r.body.len()), (200, expected.body.len()));
    }
    assert_eq!(
        responses.last().map(|r| &r.body),
        Some(&expected.body),
        "the in-flight body arrived whole"
    );

    let status = servy.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", servy.stderr());
}

#[test]
fn idle_keep_alive_connections_do_not_hold_the_exit() {
    let mut servy = Servy::start("[limits]\nshutdown_grace = \"20s\"\n");
    // One answered request, then the connection stays open and idle.
    let mut idle = TcpStream::connect(servy.http).expect("connect");
    std::io::Write::write_all(&mut idle, b"GET / HTTP/1.1\r\nhost: x\r\n\r\n").expect("send");
    let mut buf = [0u8; 256];
    assert!(idle.read(&mut buf).expect("response") > 0);
    // And one that never said anything (a browser's preconnect).
    let _silent = TcpStream::connect(servy.http).expect("connect");
    std::thread::sleep(Duration::from_millis(100));

    let start = Instant::now();
    let status = servy.terminate();
    assert_eq!(status.code(), Some(0));
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "exit took {:?}",
        start.elapsed()
    );
}

#[test]
fn a_stalled_reader_is_cut_off_after_the_grace_period() {
    let mut servy = Servy::start("[limits]\nshutdown_grace = \"1s\"\n");
    let _stalled = connect_slow_reader(servy.http, &pipelined(64));
    std::thread::sleep(Duration::from_millis(200));

    let start = Instant::now();
    let status = servy.terminate();
    let took = start.elapsed();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", servy.stderr());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "exit took {took:?}"
    );
    assert!(
        servy.stderr().contains("grace period over"),
        "stderr:\n{}",
        servy.stderr()
    );
}

#[test]
fn a_second_signal_ends_the_drain_at_once() {
    let mut servy = Servy::start("[limits]\nshutdown_grace = \"30s\"\n");
    let _stalled = connect_slow_reader(servy.http, &pipelined(64));
    std::thread::sleep(Duration::from_millis(200));
    servy.signal(libc::SIGTERM);
    assert!(servy.wait_stderr(Duration::from_secs(5), "draining"));
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        servy.try_wait().is_none(),
        "the first signal waits for the stalled reader"
    );
    let start = Instant::now();
    servy.signal(libc::SIGINT);
    assert_eq!(servy.wait_exit(Duration::from_secs(5)).code(), Some(0));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn stopping_is_announced() {
    let mut servy = Servy::start("");
    assert_eq!(servy.terminate().code(), Some(0));
    let notes = servy.notifications();
    assert!(notes.iter().any(|n| n == "STOPPING=1"), "{notes:?}");
}

/// Regression: hyper's connection was polled without its shutdown step, which is also what
/// flushes hyper's own buffer, so SIGTERM during a `Connection: close` download (its body
/// fully queued in hyper, not yet sent) cut off the tail. Found by the container test.
#[test]
fn a_closing_download_in_flight_at_sigterm_arrives_whole() {
    let servy = Servy::builder()
        .config("[limits]\nshutdown_grace = \"20s\"\n")
        .send_buffer(4096)
        .start();
    let expected = get(servy.http, LARGE);
    assert_eq!(expected.status, 200);
    let mut slow = connect_slow_reader(
        servy.http,
        format!("GET {LARGE} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
    );
    let mut first = [0u8; 512];
    let n = slow.read(&mut first).expect("the response starts");
    servy.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    let mut bytes = first[..n].to_vec();
    bytes.extend(read_to_close(&mut slow));
    let r = parse(&bytes, false).expect("a response");
    assert_eq!(
        (r.status, r.body.len()),
        (200, expected.body.len()),
        "the body was cut short"
    );
    assert_eq!(r.body, expected.body);
}

/// Log lines are written by a writer thread; the last ones ("drained") are queued just
/// before exit, and servy waits (within the grace) until they are out.
#[test]
fn the_last_log_lines_are_written_before_exit() {
    let mut servy = Servy::start("");
    let status = servy.terminate();
    assert!(status.success(), "{status}");
    let stderr = servy.stderr();
    assert!(
        stderr.lines().last().is_some_and(|l| l.contains("drained")),
        "the last line is not the drain's:\n{stderr}"
    );
}

/// An orchestrator's readiness probe stops passing the moment the drain begins, while
/// in-flight downloads still finish: a probe that was connected before SIGTERM hears
/// 503, and a new one is refused.
#[test]
fn readiness_ends_at_sigterm_while_the_drain_runs() {
    let mut servy = Servy::start("[limits]\nshutdown_grace = \"20s\"\n");
    let mut probe = TcpStream::connect(servy.metrics).expect("probe connects");
    probe
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let ask = b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n";
    std::io::Write::write_all(&mut probe, ask).expect("probe asks");
    let mut answer = [0u8; 256];
    let n = probe.read(&mut answer).expect("probe answer");
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );

    let mut slow = connect_slow_reader(servy.http, &pipelined(64));
    let mut first = [0u8; 512];
    let n = slow.read(&mut first).expect("the first response starts");
    assert!(n > 0, "the first response starts");
    servy.signal(libc::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    assert!(servy.try_wait().is_none(), "the drain should still run");

    // The kept-alive probe: 503, or closed by the drain; never 200.
    let again = std::io::Write::write_all(&mut probe, ask).map(|_| read_to_close(&mut probe));
    if let Ok(bytes) = again {
        assert!(
            !bytes.starts_with(b"HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&bytes)
        );
    }
    assert!(
        TcpStream::connect(servy.metrics).is_err(),
        "a new probe is refused"
    );
    drop(slow);
    let status = servy.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
}
