//! HTTP/2 under many streams at once, over TLS and h2c: every response complete byte for
//! byte, a large response not holding back small ones on the same connection, and a lone
//! request on an idle connection answered at once (servy writes a connection's frames in
//! batches, once per turn of its task; none of that may show), and each response's
//! Content-Length.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::h3::h2_get;
use crate::support::http::{H2Frame, next_h2_frame};
use crate::support::tls::{self, Pki};
use crate::support::{Servy, TempDir, get};

const SMALL: [&str; 6] = [
    "/",
    "/blog/",
    "/blog/first-post/",
    "/style.css",
    "/assets/app.3f2a9c1e.css",
    "/assets/site.js",
];
/// 158 KB: more than one batch, and ten frames.
const LARGE: &str = "/search-index.json";

/// One HTTP/2 frame: 9-byte header (RFC 9113 §4.1) and payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// The preface, and windows as large as allowed: flow control never holds servy back.
pub fn preface() -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    // SETTINGS_INITIAL_WINDOW_SIZE (0x4) = 2^31 - 1.
    out.extend(frame(0x4, 0, 0, &[0, 4, 0x7f, 0xff, 0xff, 0xff]));
    // WINDOW_UPDATE on the connection, up to the same.
    out.extend(frame(0x8, 0, 0, &(0x7fff_ffffu32 - 65_535).to_be_bytes()));
    out
}

/// HEADERS, END_STREAM | END_HEADERS: `GET path`. :method GET and the scheme from the
/// static table, :path and :authority as literals without indexing (HPACK, RFC 7541).
pub fn get_frame(stream: u32, https: bool, path: &str) -> Vec<u8> {
    let mut block = vec![
        0x82,
        if https { 0x87 } else { 0x86 },
        0x04,
        path.len() as u8,
    ];
    block.extend_from_slice(path.as_bytes());
    block.extend_from_slice(&[0x01, 6]);
    block.extend_from_slice(b"a.test");
    frame(0x1, 0x5, stream, &block)
}

/// What came back on each stream.
#[derive(Default)]
struct Answers {
    /// The first HEADERS block began with `:status 200` (static index 8, byte 0x88).
    ok: HashMap<u32, bool>,
    bodies: HashMap<u32, Vec<u8>>,
    /// Streams in the order their END_STREAM arrived.
    ended: Vec<u32>,
}

/// Reads frames until every stream in `streams` has ended; panics past `within`.
fn read_answers(io: &mut impl Read, streams: usize, within: Duration) -> Answers {
    let deadline = Instant::now() + within;
    let mut answers = Answers::default();
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 65536];
    while answers.ended.len() < streams {
        assert!(
            Instant::now() < deadline,
            "streams still open: {} of {streams} ended",
            answers.ended.len()
        );
        let n = io.read(&mut chunk).expect("read h2");
        assert!(
            n > 0,
            "connection closed with {} of {streams} streams ended",
            answers.ended.len()
        );
        buf.extend_from_slice(&chunk[..n]);
        while let Some(H2Frame {
            kind,
            flags,
            stream,
            payload,
        }) = next_h2_frame(&mut buf)
        {
            assert!(
                kind != 0x3 && kind != 0x7,
                "RST_STREAM or GOAWAY on stream {stream}"
            );
            match kind {
                0x1 => {
                    answers
                        .ok
                        .entry(stream)
                        .or_insert(payload.first() == Some(&0x88));
                }
                0x0 => answers
                    .bodies
                    .entry(stream)
                    .or_default()
                    .extend_from_slice(&payload),
                _ => {}
            }
            if stream != 0 && (kind == 0x0 || kind == 0x1) && flags & 0x1 != 0 {
                answers.ended.push(stream);
            }
        }
    }
    answers
}

/// The bodies HTTP/1.1 serves, to compare with.
fn expected(servy: &Servy) -> HashMap<&'static str, Vec<u8>> {
    SMALL
        .iter()
        .chain([&LARGE])
        .map(|&p| {
            let r = get(servy.http, p);
            assert_eq!(r.status, 200, "GET {p} over HTTP/1.1");
            (p, r.body)
        })
        .collect()
}

/// 100 streams in one write, cycling over the demo site's pages and the large index; well
/// within the idle timeout (10 s), which would flush a batch left behind.
fn many_streams(io: &mut (impl Read + Write), https: bool, servy: &Servy) {
    let expected = expected(servy);
    let paths: Vec<&str> = SMALL.iter().chain([&LARGE]).copied().collect();
    let mut out = preface();
    let mut asked = HashMap::new();
    for i in 0..100u32 {
        let (stream, path) = (2 * i + 1, paths[i as usize % paths.len()]);
        out.extend(get_frame(stream, https, path));
        asked.insert(stream, path);
    }
    io.write_all(&out).expect("send 100 requests");
    let answers = read_answers(io, asked.len(), Duration::from_secs(5));
    for (stream, path) in &asked {
        assert_eq!(
            answers.ok.get(stream),
            Some(&true),
            "stream {stream} ({path}): :status 200"
        );
        let body = answers.bodies.get(stream).map_or(&[][..], |b| b);
        assert!(
            body == expected[path],
            "stream {stream} ({path}): {} bytes, expected {}",
            body.len(),
            expected[path].len()
        );
    }
}

/// The large file first, then twelve small ones, in one write: h2 sends a frame of each
/// stream in turn, so every small one ends before the large one.
fn large_and_small(io: &mut (impl Read + Write), https: bool, servy: &Servy) {
    let expected = expected(servy);
    let mut out = preface();
    out.extend(get_frame(1, https, LARGE));
    for i in 0..12u32 {
        out.extend(get_frame(3 + 2 * i, https, SMALL[i as usize % SMALL.len()]));
    }
    io.write_all(&out).expect("send requests");
    let answers = read_answers(io, 13, Duration::from_secs(5));
    assert_eq!(
        answers.ended.last(),
        Some(&1),
        "the large response ended last: {:?}",
        answers.ended
    );
    assert!(
        answers.bodies[&1] == expected[LARGE],
        "the large body, byte for byte"
    );
    for i in 0..12u32 {
        let path = SMALL[i as usize % SMALL.len()];
        assert!(
            answers.bodies[&(3 + 2 * i)] == expected[path],
            "{path}, byte for byte"
        );
    }
}

/// After a first exchange, the connection idles; a second lone request is answered at
/// once, not when some later event (a ping, a timeout) flushes a batch.
fn lone_request(io: &mut (impl Read + Write), https: bool) {
    let mut out = preface();
    out.extend(get_frame(1, https, "/robots.txt"));
    io.write_all(&out).expect("send");
    read_answers(io, 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    io.write_all(&get_frame(3, https, "/robots.txt"))
        .expect("send");
    let answers = read_answers(io, 1, Duration::from_secs(10));
    assert_eq!(answers.ended, [3]);
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "a lone response took {took:?}"
    );
}

fn start_tls() -> (Servy, TempDir, Pki) {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let leaf = pki.issue(&dir, "a", &["a.test"], 1, (2031, 1, 2));
    let servy = Servy::builder()
        .config(&format!(
            "[[https.certificates]]\ncert = {:?}\nkey = {:?}\n",
            leaf.cert, leaf.key
        ))
        .https()
        .start();
    (servy, dir, pki)
}

fn connect_tls(servy: &Servy, pki: &Pki) -> tls::Tls {
    let conn = tls::connect(servy.https.expect("https"), "a.test", pki.client(&[b"h2"]))
        .expect("handshake");
    assert_eq!(conn.conn.alpn_protocol(), Some(&b"h2"[..]));
    conn
}

fn connect_h2c(servy: &Servy) -> TcpStream {
    let stream = TcpStream::connect(servy.http).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    stream
}

#[test]
fn a_hundred_streams_at_once_all_complete_byte_for_byte() {
    let (servy, _dir, pki) = start_tls();
    many_streams(&mut connect_tls(&servy, &pki), true, &servy);
    many_streams(&mut connect_h2c(&servy), false, &servy);
}

#[test]
fn a_large_response_does_not_hold_back_small_ones() {
    let (servy, _dir, pki) = start_tls();
    large_and_small(&mut connect_tls(&servy, &pki), true, &servy);
    large_and_small(&mut connect_h2c(&servy), false, &servy);
}

#[test]
fn a_lone_request_on_an_idle_connection_is_answered_at_once() {
    let (servy, _dir, pki) = start_tls();
    lone_request(&mut connect_tls(&servy, &pki), true);
    lone_request(&mut connect_h2c(&servy), false);
}

/// A GET's 200 carries no `Content-Length` of servy's own (the site leaves it to the
/// connection layer): over HTTP/2 hyper must still say the body's length, the same as
/// over HTTP/1.1 (HTTP/3's and HEAD's are checked in `http3.rs` and `assets.rs`).
#[test]
fn an_h2_response_says_its_length_as_http1_does() {
    let (servy, _dir, pki) = start_tls();
    let addr = servy.https.expect("https");
    for path in SMALL.iter().chain([&LARGE]) {
        let over_h2 = h2_get(addr, "a.test", &pki.client(&[]), path);
        let over_h1 = get(servy.http, path);
        assert_eq!(over_h2.status, 200, "{path}");
        assert_eq!(
            over_h2.header("content-length"),
            Some(over_h1.body.len().to_string().as_str()),
            "{path}"
        );
    }
}
