//! Nothing a client sends can crash or wedge servy: slow or silent clients are cut off,
//! overload is shed with 503, odd methods and malformed requests get 4xx, and servy
//! keeps serving afterwards.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::http::{h2_stalled_get, parse};
use crate::support::{Servy, get, raw, request};

/// Reads until the server closes; returns what arrived and how long it took.
fn wait_for_close(stream: &mut TcpStream) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return (out, start.elapsed()),
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[test]
fn slowloris_headers_are_cut_off_by_the_header_timeout() {
    let servy = Servy::start("[limits]\nheader_read_timeout = \"1s\"\n");
    let mut slow = TcpStream::connect(servy.http).expect("connect");
    // Half a request head, then silence.
    slow.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .expect("send");
    let (bytes, took) = wait_for_close(&mut slow);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
    // hyper answers 408 or just closes; it must never serve the half request.
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        bytes.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    assert_eq!(get(servy.http, "/").status, 200, "servy still serves");
}

#[test]
fn a_silent_connection_is_closed_by_the_header_timeout() {
    let servy = Servy::start("[limits]\nheader_read_timeout = \"1s\"\n");
    let mut silent = TcpStream::connect(servy.http).expect("connect");
    let (bytes, took) = wait_for_close(&mut silent);
    assert!(bytes.is_empty());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
}

#[test]
fn idle_keep_alive_connections_are_closed_by_the_header_timeout() {
    let servy = Servy::start("[limits]\nheader_read_timeout = \"1s\"\n");
    let mut conn = TcpStream::connect(servy.http).expect("connect");
    conn.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("send");
    let mut buf = [0u8; 512];
    assert!(conn.read(&mut buf).expect("a response") > 0);
    let (_, took) = wait_for_close(&mut conn);
    assert!(
        took < Duration::from_secs(5),
        "idle connection open for {took:?}"
    );
}

#[test]
fn overload_is_shed_with_503() {
    let servy = Servy::start("[limits]\nmax_concurrency = 1\n");
    // One request in flight: its body waits on a flow-control window that never opens.
    let mut hog = h2_stalled_get(servy.http, "/search-index.json");
    let mut frames = [0u8; 64];
    assert!(hog.read(&mut frames).expect("servy answers the h2 client") > 0);
    std::thread::sleep(Duration::from_millis(100));

    let r = get(servy.http, "/");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.header("retry-after"), Some("1"));
    let metrics = get(servy.metrics, "/metrics").text();
    assert!(
        metrics.contains("servy_response_status{status=\"503\"} 1"),
        "{metrics}"
    );

    // Closing the stalled connection frees its slot.
    drop(hog);
    let deadline = Instant::now() + Duration::from_secs(5);
    while get(servy.http, "/").status != 200 {
        assert!(Instant::now() < deadline, "the slot was never released");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn other_methods_get_405_with_allow() {
    let servy = Servy::start("");
    for method in ["POST", "PUT", "DELETE", "OPTIONS", "PATCH", "BREW"] {
        let r = request(servy.http, method, "/", &[("content-length", "0")]);
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method}");
    }
}

#[test]
fn malformed_requests_get_400_and_servy_carries_on() {
    let servy = Servy::start("");
    let cases: [&[u8]; 5] = [
        b"NONSENSE\r\n\r\n",
        b"GET / HTTP/9.9\r\nhost: x\r\n\r\n",
        b"GET /\x01 HTTP/1.1\r\nhost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nbad header line\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: x\r\ncontent-length: -1\r\n\r\n",
    ];
    for case in cases {
        let bytes = raw(servy.http, case);
        let text = String::from_utf8_lossy(&bytes);
        let status = parse(&bytes, false).map(|r| r.status).unwrap_or(0);
        assert!(
            bytes.is_empty() || (400..500).contains(&status),
            "{:?} → {text}",
            String::from_utf8_lossy(case)
        );
    }
    assert_eq!(get(servy.http, "/").status, 200);
}

/// No unbounded buffers: servy never reads a request body (nothing it serves takes one),
/// so a client announcing gigabytes gets its answer at once, and the connection ends
/// rather than servy waiting for, or storing, bytes that may never come.
#[test]
fn a_huge_request_body_is_neither_awaited_nor_buffered() {
    let servy = Servy::start("");
    for (method, status) in [("GET", 200), ("POST", 405)] {
        let mut stream = TcpStream::connect(servy.http).expect("connect");
        let head = format!(
            "{method} / HTTP/1.1\r\nhost: x\r\ncontent-length: 10000000000\r\n\r\nfirst bytes"
        );
        stream.write_all(head.as_bytes()).expect("send");
        let (bytes, took) = wait_for_close(&mut stream);
        let r = parse(&bytes, false)
            .unwrap_or_else(|e| panic!("{method}: {e}: {}", String::from_utf8_lossy(&bytes)));
        assert_eq!(r.status, status, "{method}");
        assert!(
            took < Duration::from_secs(5),
            "{method}: the connection stayed open {took:?} waiting for the body"
        );
    }
    assert_eq!(get(servy.http, "/").status, 200);
}

#[test]
fn oversized_headers_are_refused() {
    let servy = Servy::start("");
    let huge = "a".repeat(512 * 1024);
    let req = format!("GET / HTTP/1.1\r\nhost: x\r\nx-big: {huge}\r\n\r\n");
    let mut stream = TcpStream::connect(servy.http).expect("connect");
    // servy may close before reading it all; a failed write is a refusal too.
    let _ = stream.write_all(req.as_bytes());
    let (bytes, _) = wait_for_close(&mut stream);
    let status = parse(&bytes, false).map(|r| r.status).unwrap_or(0);
    assert!(
        bytes.is_empty() || status == 431 || status == 400,
        "{}",
        String::from_utf8_lossy(&bytes)
    );
    assert_eq!(get(servy.http, "/").status, 200);
}

#[test]
fn http2_prior_knowledge_is_understood() {
    let servy = Servy::start("");
    // The h2c preface and an empty SETTINGS frame: servy answers with its SETTINGS.
    let mut s = TcpStream::connect(servy.http).expect("connect");
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .expect("send");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut head = [0u8; 9];
    s.read_exact(&mut head).expect("a frame back");
    assert_eq!(head[3], 0x4, "first frame is SETTINGS: {head:?}");
}
