//! The minimum send rate: a client that takes its responses slower than
//! `limits.min_send_rate` over `limits.send_window`, or never reads them, loses its
//! connection, and the metric counts it; a client that reads keeps it.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

use crate::http2::{get_frame, preface};
use crate::support::http::{connect_slow_reader, h2_stalled_get, parse_pipelined};
use crate::support::tls::Pki;
use crate::support::{Servy, TempDir, get};

/// The demo site's largest file.
const LARGE: &str = "/search-index.json";
const PIPELINED: usize = 20;

fn pipelined() -> Vec<u8> {
    format!("GET {LARGE} HTTP/1.1\r\nhost: x\r\n\r\n")
        .repeat(PIPELINED)
        .into_bytes()
}

fn slow_clients_closed(servy: &Servy, protocol: &str) -> String {
    let metrics = get(servy.metrics, "/metrics").text();
    let series = format!("servy_slow_clients_closed_total{{protocol=\"{protocol}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&series))
        .unwrap_or("missing")
        .to_string()
}

/// Waits until servy has closed `stream`, reading nothing meanwhile, then drains what
/// is left:
/// how long the close took and how many bytes the client got.
fn closed_after(stream: &mut TcpStream, limit: Duration) -> (Duration, usize) {
    let start = Instant::now();
    while !has_closed(stream) {
        assert!(start.elapsed() < limit, "still open after {limit:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = start.elapsed();
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut got = 0;
    let mut buf = [0u8; 65536];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        got += n;
    }
    (took, got)
}

/// The TCP state says the peer closed (a reset leaves CLOSE, a FIN CLOSE_WAIT).
fn has_closed(stream: &TcpStream) -> bool {
    use std::os::fd::AsRawFd;
    let mut info = [0u8; 8];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: getsockopt on an open socket into a buffer of `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    matches!(info[0] as i32, 7 | 8) // TCP_CLOSE, TCP_CLOSE_WAIT
}

#[test]
fn a_client_that_never_reads_is_closed_after_the_send_window() {
    let servy = Servy::start("[limits]\nsend_window = \"2s\"\n");
    let mut stalled = connect_slow_reader(servy.http, &pipelined());
    let (took, got) = closed_after(&mut stalled, Duration::from_secs(10));
    let full = PIPELINED * get(servy.http, LARGE).body.len();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "closed after {took:?}"
    );
    assert!(
        got < full,
        "all {full} bytes arrived: nothing was abandoned"
    );
    assert_eq!(slow_clients_closed(&servy, "http1"), "1");
    // servy itself carries on.
    assert_eq!(get(servy.http, "/").status, 200);
}

#[test]
fn a_client_that_reads_gets_every_pipelined_response_whatever_the_window() {
    let servy = Servy::start("[limits]\nsend_window = \"1s\"\n");
    let mut reader = TcpStream::connect(servy.http).expect("connect");
    reader.write_all(&pipelined()).expect("send");
    reader
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let full = PIPELINED * get(servy.http, LARGE).body.len();
    let mut bytes = Vec::new();
    let mut buf = [0u8; 65536];
    // A reader that takes a short break between reads is slow for a moment only.
    loop {
        match reader.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
        if bytes.len() >= full && parse_pipelined(&bytes).0.len() == PIPELINED {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let (responses, _) = parse_pipelined(&bytes);
    assert_eq!(responses.len(), PIPELINED, "{} bytes", bytes.len());
    assert!(responses.iter().all(|r| r.status == 200));
    assert_eq!(slow_clients_closed(&servy, "http1"), "0");
}

#[test]
fn an_h2_ping_flood_that_never_reads_is_closed_after_the_send_window() {
    let servy = Servy::start("[limits]\nsend_window = \"2s\"\n");
    let mut flood = connect_slow_reader(servy.http, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    // An empty SETTINGS, then PINGs: each asks for an acknowledgement never read.
    flood
        .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .expect("settings");
    let ping: Vec<u8> = [0, 0, 8, 6, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8].repeat(1000);
    flood.set_nonblocking(true).expect("nonblocking");
    let start = Instant::now();
    // Until servy stops reading (its replies back up), at most 5 s.
    let mut blocked_since = None;
    while start.elapsed() < Duration::from_secs(5) {
        match flood.write(&ping) {
            Ok(_) => blocked_since = None,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let since = *blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(500) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("servy closed during the flood: {e}"),
        }
    }
    assert!(blocked_since.is_some(), "servy kept reading the flood");
    let (took, _) = closed_after(&mut flood, Duration::from_secs(10));
    assert!(took < Duration::from_secs(5), "closed after {took:?}");
    assert_eq!(slow_clients_closed(&servy, "http2"), "1");
}

#[test]
fn an_h2_stream_stalled_by_a_zero_window_is_closed_after_the_send_window() {
    let servy = Servy::start("[limits]\nsend_window = \"2s\"\n");
    // The response's headers go out; its body waits on a window that never opens.
    let mut stalled = h2_stalled_get(servy.http, LARGE);
    stalled
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stalled.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
    let took = start.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "closed after {took:?}"
    );
    assert_eq!(slow_clients_closed(&servy, "http2"), "1");
}

/// 20 streams for the large file with windows as large as allowed, over h2c and over TLS,
/// never read. Each response is handed to h2 whole, so no stream stays open: only the
/// writes that back up behind the socket (servy gathers a connection's writes in batches,
/// written once a batch is full) show that the client is waited on.
#[test]
fn an_h2_client_with_open_windows_that_never_reads_is_closed_after_the_send_window() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let leaf = pki.issue(&dir, "a", &["a.test"], 1, (2031, 1, 2));
    let servy = Servy::builder()
        .config(&format!(
            "[limits]\nsend_window = \"2s\"\n[[https.certificates]]\ncert = {:?}\nkey = {:?}\n",
            leaf.cert, leaf.key
        ))
        .https()
        .start();
    let requests = |https: bool| {
        let mut out = preface();
        for i in 0..20 {
            out.extend(get_frame(2 * i + 1, https, LARGE));
        }
        out
    };

    let mut plain = connect_slow_reader(servy.http, &requests(false));
    let (took, _) = closed_after(&mut plain, Duration::from_secs(10));
    assert!(took < Duration::from_secs(6), "h2c closed after {took:?}");

    let mut socket = connect_slow_reader(servy.https.expect("https"), b"");
    let name = ServerName::try_from("a.test").expect("name");
    let mut tls = ClientConnection::new(pki.client(&[b"h2"]), name).expect("client");
    while tls.is_handshaking() {
        tls.complete_io(&mut socket).expect("handshake");
    }
    assert_eq!(tls.alpn_protocol(), Some(&b"h2"[..]));
    let mut tls = StreamOwned::new(tls, socket);
    tls.write_all(&requests(true)).expect("send requests");
    let (took, _) = closed_after(&mut tls.sock, Duration::from_secs(10));
    assert!(
        took < Duration::from_secs(6),
        "h2 over TLS closed after {took:?}"
    );
    assert_eq!(slow_clients_closed(&servy, "http2"), "2");
}
