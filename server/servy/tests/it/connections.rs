//! Bounded connections: the cap holds new connections in the backlog until one closes,
//! request heads are bounded (431), HTTP/2 advertises the same bounds, and a keep-alive
//! connection that went idle (and gave its buffers back) still serves.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::http::{parse, parse_pipelined};
use crate::support::{Servy, get};

/// Sends one keep-alive GET and reads its (Content-Length framed) response.
fn keep_alive_get(conn: &mut TcpStream, path: &str) -> u16 {
    conn.write_all(format!("GET {path} HTTP/1.1\r\nhost: x\r\n\r\n").as_bytes())
        .expect("send");
    read_one(conn)
}

fn read_one(conn: &mut TcpStream) -> u16 {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = conn.read(&mut buf).expect("a response in time");
        assert!(n > 0, "closed before a whole response");
        bytes.extend_from_slice(&buf[..n]);
        if let Ok(r) = parse(&bytes, false) {
            let declared: usize = r
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .expect("content-length");
            if r.body.len() >= declared {
                return r.status;
            }
        }
    }
}

fn connect(servy: &Servy) -> TcpStream {
    let conn = TcpStream::connect(servy.http).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    conn
}

#[test]
fn a_connection_past_the_cap_waits_until_one_closes() {
    let servy = Servy::start("[limits]\nmax_connections = 2\nheader_read_timeout = \"30s\"\n");
    let mut first = connect(&servy);
    let mut second = connect(&servy);
    assert_eq!(keep_alive_get(&mut first, "/"), 200);
    assert_eq!(keep_alive_get(&mut second, "/"), 200);

    // The third is queued by the kernel, not accepted: its request gets no answer...
    let mut third = connect(&servy);
    third
        .write_all(b"GET /robots.txt HTTP/1.1\r\nhost: x\r\n\r\n")
        .expect("send");
    third
        .set_read_timeout(Some(Duration::from_millis(700)))
        .expect("timeout");
    let mut buf = [0u8; 64];
    let early = third.read(&mut buf);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "served past the cap: {early:?}"
    );

    // ...until one of the two closes; then it is served.
    drop(first);
    let start = Instant::now();
    third
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    assert_eq!(read_one(&mut third), 200);
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        keep_alive_get(&mut second, "/"),
        200,
        "the others still serve"
    );
}

#[test]
fn a_request_head_over_max_header_bytes_gets_431() {
    let servy = Servy::start("");
    // Under the 16 KiB default: served.
    let fits = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\nx-pad: {}\r\n\r\n",
        "a".repeat(12 * 1024)
    );
    let r = parse(&crate::support::raw(servy.http, fits.as_bytes()), false).expect("response");
    assert_eq!(r.status, 200);

    let over = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-pad: {}\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    let mut conn = connect(&servy);
    let _ = conn.write_all(over.as_bytes());
    let mut bytes = Vec::new();
    let _ = conn.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    assert_eq!(get(servy.http, "/").status, 200);
}

#[test]
fn http2_advertises_the_header_and_stream_bounds() {
    let servy = Servy::start("[limits]\nmax_header_bytes = 20000\n");
    let mut s = connect(&servy);
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .expect("send");
    let mut head = [0u8; 9];
    s.read_exact(&mut head).expect("a frame back");
    assert_eq!(head[3], 0x4, "first frame is SETTINGS: {head:?}");
    let len = usize::from(head[0]) << 16 | usize::from(head[1]) << 8 | usize::from(head[2]);
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).expect("settings payload");
    let settings: Vec<(u16, u32)> = payload
        .chunks_exact(6)
        .map(|c| {
            (
                u16::from_be_bytes([c[0], c[1]]),
                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
            )
        })
        .collect();
    // SETTINGS_MAX_CONCURRENT_STREAMS (0x3), SETTINGS_MAX_HEADER_LIST_SIZE (0x6).
    assert!(settings.contains(&(0x3, 128)), "{settings:?}");
    assert!(settings.contains(&(0x6, 20000)), "{settings:?}");
}

/// An idle keep-alive connection is handed back from hyper (its buffers freed) and
/// picked up again when the client speaks: the client sees one ordinary connection.
#[test]
fn an_idle_keep_alive_connection_serves_again_after_parking() {
    let servy = Servy::start("");
    let mut conn = connect(&servy);
    assert_eq!(keep_alive_get(&mut conn, "/"), 200);
    // Idle now, so parked: hyper's connection is gone, the socket stays.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(keep_alive_get(&mut conn, "/robots.txt"), 200);
    std::thread::sleep(Duration::from_millis(300));
    // Two pipelined requests after parking: both answered, in order.
    conn.write_all(
        b"GET / HTTP/1.1\r\nhost: x\r\n\r\nGET /robots.txt HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .expect("send");
    let mut bytes = Vec::new();
    let _ = conn.read_to_end(&mut bytes);
    let (responses, _) = parse_pipelined(&bytes);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200], "{}", String::from_utf8_lossy(&bytes));
}

/// HTTP/2 gets the idle timeout HTTP/1 has: a connection with no stream open is closed
/// after header_read_timeout, even when it would answer pings (this client never reads
/// them; before, only the missing ping answers closed it, after 20 s more).
#[test]
fn an_idle_http2_connection_is_closed_after_the_header_timeout() {
    let servy = Servy::start("[limits]\nheader_read_timeout = \"1s\"\n");
    let mut s = connect(&servy);
    s.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        .expect("send");
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) => assert!(start.elapsed() < Duration::from_secs(10), "still open"),
        }
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "closed after {took:?}"
    );
}
