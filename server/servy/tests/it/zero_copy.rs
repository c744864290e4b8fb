//! Zero-copy responses: bodies sent with sendfile from servy's own executable arrive byte
//! for byte, whole, in ranges, through short sends and on kept-alive connections; the
//! counters prove sendfile (not a write) carried them, so a wrong file offset fails here.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::assets::{demo_file, demo_keys};
use crate::encoding::decode;
use crate::support::http::{Response, connect_slow_reader, parse_pipelined, read_to_close};
use crate::support::{Servy, get, request};

/// `zero_copy_min_bytes` when the config leaves it out.
const DEFAULT_MIN_BYTES: usize = 32 * 1024;

/// servy with zero-copy on (whatever `SERVY_TEST_ZERO_COPY` says) for bodies of `min`
/// bytes or more.
fn start(min: usize) -> Servy {
    Servy::builder()
        .config(&format!("[http]\nzero_copy_min_bytes = {min}\n"))
        .env("SERVY_HTTP_ZERO_COPY", "auto")
        .start()
}

/// (`servy_sendfile_bytes_total`, `servy_sendfile_calls_total`).
fn sent(servy: &Servy) -> (u64, u64) {
    let text = get(servy.metrics, "/metrics").text();
    let value = |series: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{series} missing from /metrics"))
    };
    (
        value("servy_sendfile_bytes_total"),
        value("servy_sendfile_calls_total"),
    )
}

fn get_with(servy: &Servy, key: &str, headers: &[(&str, &str)]) -> Response {
    request(servy.http, "GET", &format!("/{key}"), headers)
}

/// Every embedded file, the original and each compressed variant, whole and in ranges
/// (first byte, last byte, across page boundaries, the tail), all through sendfile.
#[test]
fn every_representation_and_range_is_byte_identical_through_sendfile() {
    let servy = start(1);
    let mut expected_bytes = 0u64;
    let mut representations = 0;
    for key in demo_keys() {
        let original = demo_file(&key);
        for coding in ["identity", "br", "zstd", "gzip"] {
            let accept = [("accept-encoding", coding)];
            let whole = get_with(&servy, &key, &accept);
            assert_eq!(whole.status, 200, "{key} {coding}");
            expected_bytes += whole.body.len() as u64;
            let served_coding = whole.header("content-encoding").unwrap_or("identity");
            if served_coding != coding {
                continue; // no such variant (small files, images)
            }
            representations += 1;
            let decoded = match coding {
                "identity" => whole.body.clone(),
                _ => decode(coding, &whole.body),
            };
            assert!(decoded == original, "{key} {coding}: not the file");

            let len = whole.body.len();
            let mut ranges = vec![(0, 0), (len - 1, len - 1), (len / 3, 2 * len / 3)];
            for page in [4096, 8192, 65536] {
                if page + 10 < len {
                    ranges.push((page - 7, page + 9));
                }
            }
            ranges.push((len / 2, len - 1));
            for (first, last) in ranges {
                let range = format!("bytes={first}-{last}");
                let part = get_with(&servy, &key, &[accept[0], ("range", &range)]);
                assert_eq!(part.status, 206, "{key} {coding} {range}");
                assert!(
                    part.body == whole.body[first..=last],
                    "{key} {coding} {range}: wrong bytes"
                );
                expected_bytes += part.body.len() as u64;
            }
        }
    }
    assert!(
        representations >= 12,
        "only {representations} representations"
    );
    let (bytes, calls) = sent(&servy);
    assert_eq!(
        bytes, expected_bytes,
        "every body byte went out by sendfile"
    );
    assert!(calls > 0);
}

/// Bodies just below the threshold are written, at and above it sent from the file.
#[test]
fn the_threshold_decides_per_body() {
    for min in [1000, DEFAULT_MIN_BYTES] {
        let servy = if min == DEFAULT_MIN_BYTES {
            Servy::builder().env("SERVY_HTTP_ZERO_COPY", "auto").start()
        } else {
            start(min)
        };
        let original = demo_file("search-index.json");
        let mut expected = 0;
        for len in [min - 1, min, min + 1] {
            for first in [0, 4095, 100_000] {
                let range = format!("bytes={first}-{}", first + len - 1);
                let before = sent(&servy).0;
                let r = get_with(&servy, "search-index.json", &[("range", &range)]);
                assert_eq!(r.status, 206, "{range}");
                assert!(
                    r.body == original[first..first + len],
                    "{range}: wrong bytes"
                );
                let by_sendfile = sent(&servy).0 - before;
                let want = if len >= min { len as u64 } else { 0 };
                assert_eq!(by_sendfile, want, "min {min}, {range}");
                expected += want;
            }
        }
        assert_eq!(sent(&servy).0, expected);
    }
}

/// A reader with a tiny receive window, behind more pipelined bytes than the kernel's
/// send buffer holds (4 MiB at most): sendfile returns short, and each body resumes from
/// the right offset.
#[test]
fn a_slow_reader_gets_every_byte_across_short_sends() {
    const N: usize = 40;
    let servy = start(1);
    let original = demo_file("search-index.json");
    let request = "GET /search-index.json HTTP/1.1\r\nhost: x\r\n\r\n".repeat(N - 1)
        + "GET /search-index.json HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n";
    let mut slow = connect_slow_reader(servy.http, request.as_bytes());
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    for reads in 0.. {
        match slow.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read after {} bytes: {e}", bytes.len()),
        }
        if reads % 64 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let (responses, leftover) = parse_pipelined(&bytes);
    assert_eq!((responses.len(), leftover), (N, 0));
    for (i, r) in responses.iter().enumerate() {
        assert!(r.body == original, "slow download {i} differs");
    }
    let (sent_bytes, calls) = sent(&servy);
    assert_eq!(sent_bytes, (N * original.len()) as u64);
    assert!(
        calls > N as u64,
        "{calls} sendfile calls for {N} bodies: none was short"
    );
}

/// Pipelined requests on one connection: heads, bodies from the file and bodies written
/// interleave, and each response starts where the previous one ended.
#[test]
fn pipelined_responses_on_one_connection_stay_in_order() {
    let servy = start(2000);
    let original = demo_file("search-index.json");
    let index = demo_file("index.html");
    let mut req = String::new();
    for i in 0..20 {
        req.push_str("GET /search-index.json HTTP/1.1\r\nhost: x\r\n");
        if i % 3 == 1 {
            req.push_str(&format!("range: bytes={}-{}\r\n", i * 997, i * 997 + 5000));
        }
        req.push_str("\r\nGET /index.html HTTP/1.1\r\nhost: x\r\n\r\n");
    }
    req.push_str("GET /robots.txt HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    let mut stream = TcpStream::connect(servy.http).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream.write_all(req.as_bytes()).expect("send");
    let bytes = read_to_close(&mut stream);
    let (responses, leftover) = parse_pipelined(&bytes);
    assert_eq!((responses.len(), leftover), (41, 0));
    let mut expected = 0;
    for (i, pair) in responses.chunks(2).take(20).enumerate() {
        let want = if i % 3 == 1 {
            &original[i * 997..=i * 997 + 5000]
        } else {
            &original[..]
        };
        assert!(pair[0].body == want, "response {i} differs");
        assert!(pair[1].body == index, "index after response {i} differs");
        expected += want.len() as u64;
    }
    // index.html (below 2000) is written, never sent from the file. A body's tail left
    // by a short write (the socket holds at most 128 KiB unsent) is written too when it
    // is below the threshold: up to 2000 bytes per body fewer.
    let from_file = sent(&servy).0;
    assert!(
        from_file <= expected && from_file + 20 * 2000 >= expected,
        "{from_file} bytes sent from the file, {expected} in the large bodies"
    );
}

/// `zero_copy = "off"` sends nothing by sendfile, and the bytes are the same.
#[test]
fn off_writes_every_body() {
    let servy = Servy::builder()
        .config("[http]\nzero_copy_min_bytes = 1\n")
        .env("SERVY_HTTP_ZERO_COPY", "off")
        .start();
    let r = get(servy.http, "/search-index.json");
    assert!(r.body == demo_file("search-index.json"));
    assert_eq!(sent(&servy), (0, 0));
}

/// HTTP/2 frames its own bodies: its connections never use sendfile.
#[test]
fn http2_bodies_are_written() {
    let servy = start(1);
    let index = demo_file("index.html");
    let mut s = TcpStream::connect(servy.http).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(h2_frame(0x4, 0, 0, &[]));
    // HEADERS (END_STREAM | END_HEADERS): GET http, :path literal, :authority x.
    let mut block = vec![0x82, 0x86, 0x44, 11];
    block.extend_from_slice(b"/index.html");
    block.extend_from_slice(&[0x41, 1, b'x']);
    out.extend(h2_frame(0x1, 0x5, 1, &block));
    s.write_all(&out).expect("send");
    let mut body = Vec::new();
    loop {
        let mut head = [0u8; 9];
        s.read_exact(&mut head).expect("a frame");
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let mut payload = vec![0u8; len];
        s.read_exact(&mut payload).expect("frame payload");
        if head[3] == 0x4 && head[4] & 1 == 0 {
            s.write_all(&h2_frame(0x4, 1, 0, &[]))
                .expect("ack settings");
        }
        if head[3] == 0x0 {
            body.extend_from_slice(&payload);
            if head[4] & 1 == 1 {
                break;
            }
        }
    }
    assert!(body == index, "h2 body differs");
    assert_eq!(sent(&servy), (0, 0));
}

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}
