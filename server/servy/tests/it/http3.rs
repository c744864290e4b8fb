//! HTTP/3 (`[https] http3`): QUIC on the https listener's address (or a passed `quic`
//! socket), answered like HTTP/1.1 byte for byte, `Alt-Svc` on HTTP/1.1 and HTTP/2 only
//! while it is on, certificate reloads seen over QUIC, streams that end cleanly, the
//! QUIC metrics and the drain at SIGTERM.

use std::time::Duration;

use crate::support::h3::{H3, h2_get};
use crate::support::tls::{self, Leaf, Pki};
use crate::support::{Servy, TempDir, get, request};

const EXPIRY: (i32, u8, u8) = (2031, 1, 2);

fn start(leaf: &Leaf, https: &str) -> Servy {
    Servy::builder()
        .config(&config(leaf, https))
        .https()
        .start()
}

fn config(leaf: &Leaf, https: &str) -> String {
    format!(
        "[https]\n{https}\n[[https.certificates]]\ncert = {:?}\nkey = {:?}\n",
        leaf.cert, leaf.key
    )
}

fn connect(servy: &Servy, pki: &Pki) -> H3 {
    let addr = servy.quic.or(servy.https).expect("an https socket");
    H3::connect(addr, "a.test", &pki.client(&[])).expect("an HTTP/3 connection")
}

/// The value of one series in `/metrics`, if present.
fn metric(servy: &Servy, series: &str) -> Option<f64> {
    get(servy.metrics, "/metrics").text().lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

#[test]
fn embedded_files_come_byte_for_byte_as_over_http1_in_each_encoding() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "a", &["a.test"], 1, EXPIRY);
    let servy = start(&a, "http3 = true");
    let mut h3 = connect(&servy, &pki);
    for path in ["/search-index.json", "/", "/favicon.png"] {
        for coding in ["identity", "gzip", "br"] {
            let asked = [("accept-encoding", coding)];
            let over_h3 = h3.request("GET", path, &asked);
            let over_h1 = request(servy.http, "GET", path, &asked);
            assert_eq!(over_h3.status, 200, "{path} {coding}");
            assert!(
                over_h3.body == over_h1.body,
                "{path} {coding}: bodies differ"
            );
            for name in [
                "content-encoding",
                "content-type",
                "content-length",
                "etag",
                "vary",
            ] {
                assert_eq!(
                    over_h3.header(name),
                    over_h1.header(name),
                    "{path} {coding}: {name}"
                );
            }
        }
    }
    // HEAD: the same head, no body.
    let head = h3.request("HEAD", "/search-index.json", &[]);
    let full = h3.get("/search-index.json");
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), full.header("content-length"));
    assert_eq!(
        full.header("content-length"),
        Some(full.body.len().to_string().as_str())
    );
}

#[test]
fn conditional_range_redirect_and_not_found_over_http3() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "a", &["a.test"], 1, EXPIRY);
    let servy = start(&a, "http3 = true");
    let mut h3 = connect(&servy, &pki);

    let full = h3.get("/style.css");
    let etag = full.header("etag").expect("an etag").to_string();
    let not_modified = h3.request("GET", "/style.css", &[("if-none-match", &etag)]);
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));

    let part = h3.request("GET", "/search-index.json", &[("range", "bytes=10-19")]);
    let whole = get(servy.http, "/search-index.json").body;
    assert_eq!(part.status, 206);
    assert_eq!(part.body, whole[10..20]);
    assert_eq!(
        part.header("content-range"),
        Some(format!("bytes 10-19/{}", whole.len()).as_str())
    );

    let moved = h3.get("/old-home");
    assert_eq!(moved.status, 301);
    assert_eq!(moved.header("location"), Some("/"));

    let missing = h3.get("/no-such-page");
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body, get(servy.http, "/no-such-page").body);

    // Counted with every other request.
    assert!(metric(&servy, "servy_response_status{status=\"206\"}") >= Some(1.0));
}

#[test]
fn alt_svc_is_sent_over_http1_and_http2_only_while_http3_is_on() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "a", &["a.test"], 1, EXPIRY);
    let client = pki.client(&[b"http/1.1"]);

    let on = start(&a, "http3 = true");
    let https = on.https.unwrap();
    let expected = format!("h3=\":{}\"; ma=86400", https.port());
    let mut conn = tls::connect(https, "a.test", client.clone()).expect("handshake");
    let over_h1 = tls::get(&mut conn, "a.test", "/robots.txt");
    assert_eq!(over_h1.header("alt-svc"), Some(expected.as_str()));
    let over_h2 = h2_get(https, "a.test", &pki.client(&[]), "/robots.txt");
    assert_eq!(over_h2.status, 200);
    assert_eq!(over_h2.header("alt-svc"), Some(expected.as_str()));
    // Not on plain HTTP, and not over HTTP/3 itself.
    assert_eq!(get(on.http, "/robots.txt").header("alt-svc"), None);
    assert_eq!(
        connect(&on, &pki).get("/robots.txt").header("alt-svc"),
        None
    );

    let off = start(&a, "");
    let https = off.https.unwrap();
    let mut conn = tls::connect(https, "a.test", client).expect("handshake");
    assert_eq!(
        tls::get(&mut conn, "a.test", "/robots.txt").header("alt-svc"),
        None
    );
    let over_h2 = h2_get(https, "a.test", &pki.client(&[]), "/robots.txt");
    assert_eq!(over_h2.status, 200);
    assert_eq!(over_h2.header("alt-svc"), None);
    assert!(
        H3::connect(https, "a.test", &pki.client(&[])).is_err(),
        "no QUIC endpoint when http3 is off"
    );
}

#[test]
fn a_passed_quic_socket_is_served_and_advertised_with_its_port() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "a", &["a.test"], 1, EXPIRY);
    let servy = Servy::builder()
        .config(&config(&a, "http3 = true"))
        .quic()
        .start();
    let quic = servy.quic.expect("a quic socket");
    assert_ne!(Some(quic.port()), servy.https.map(|a| a.port()));
    assert_eq!(connect(&servy, &pki).get("/robots.txt").status, 200);
    let mut conn = tls::connect(servy.https.unwrap(), "a.test", pki.client(&[b"http/1.1"]))
        .expect("handshake");
    let expected = format!("h3=\":{}\"; ma=86400", quic.port());
    assert_eq!(
        tls::get(&mut conn, "a.test", "/robots.txt").header("alt-svc"),
        Some(expected.as_str())
    );
}

#[test]
fn a_certificate_reload_is_seen_over_quic() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let old = pki.issue(&dir, "site", &["a.test"], 1, EXPIRY);
    let servy = start(&old, "http3 = true");
    assert!(connect(&servy, &pki).peer_leaf() == old.der);

    let new = pki.issue(&dir, "site", &["a.test"], 2, EXPIRY);
    servy.signal(libc::SIGHUP);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if connect(&servy, &pki).peer_leaf() == new.der {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "a new QUIC handshake still gets the old certificate"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_full_response_ends_its_stream_cleanly_and_servy_reads_the_request_to_its_end() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "a", &["a.test"], 1, EXPIRY);
    let servy = start(&a, "http3 = true");
    let mut h3 = connect(&servy, &pki);
    // The request stream stays open past the response: servy must keep reading it, not
    // stop it (which curl reports as "stream reset by server", hyperium/h3#321).
    let answer = h3
        .exchange("GET", "/search-index.json", &[], Some(b"late"))
        .expect("the request stream is still open after the response");
    assert!(answer.clean_end);
    assert_eq!(
        answer.response.body,
        get(servy.http, "/search-index.json").body
    );
    // And the connection carries on.
    assert_eq!(h3.get("/robots.txt").status, 200);
}

#[test]
fn quic_connections_are_counted_and_sigterm_drains_them() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "a", &["a.test"], 1, EXPIRY);
    let mut servy = start(&a, "http3 = true");
    let mut h3 = connect(&servy, &pki);
    assert_eq!(h3.get("/robots.txt").status, 200);
    assert_eq!(metric(&servy, "servy_quic_connections_open"), Some(1.0));
    assert_eq!(
        metric(
            &servy,
            "servy_requests_by_protocol_total{protocol=\"HTTP/3\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&servy, "servy_quic_handshake_failures_total"),
        Some(0.0)
    );
    // A client that does not trust the certificate fails its handshake. servy counts it
    // once it reads the client's alert, which may be a moment after the client gave up.
    let stranger = Pki::new();
    assert!(H3::connect(servy.https.unwrap(), "a.test", &stranger.client(&[])).is_err());
    let failures = || metric(&servy, "servy_quic_handshake_failures_total");
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while failures() != Some(1.0) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(failures(), Some(1.0));

    servy.signal(libc::SIGTERM);
    // GOAWAY, then the idle connection is closed by servy well before the grace (10 s).
    let reason = h3
        .closed(Duration::from_secs(5))
        .expect("servy closes the connection");
    assert!(!reason.contains("timed out"), "{reason}");
    let status = servy.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status}");
    assert!(
        servy.wait_stderr(Duration::from_secs(1), "drained"),
        "{}",
        servy.stderr()
    );
}

#[test]
fn a_response_in_flight_at_sigterm_finishes_before_the_connection_closes() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "a", &["a.test"], 1, EXPIRY);
    let mut servy = start(&a, "http3 = true");
    let addr = servy.https.unwrap();
    let expected = get(servy.http, "/search-index.json").body;
    // A 16 KiB window: most of the 158 KB body is still on servy's side at SIGTERM.
    let mut h3 = H3::connect_with_window(addr, "a.test", &pki.client(&[]), Some(16 * 1024))
        .expect("an HTTP/3 connection");
    let (body, clean) = h3.get_with_pause("/search-index.json", || {
        servy.signal(libc::SIGTERM);
        std::thread::sleep(Duration::from_millis(500));
    });
    assert!(clean, "the stream ended cleanly");
    assert!(
        body == expected,
        "{} of {} bytes",
        body.len(),
        expected.len()
    );
    assert!(
        h3.closed(Duration::from_secs(5)).is_some(),
        "servy closes the connection"
    );
    assert!(servy.wait_exit(Duration::from_secs(10)).success());
    assert!(
        servy.wait_stderr(Duration::from_secs(1), "drained"),
        "{}",
        servy.stderr()
    );
}

#[test]
fn a_connection_past_limits_max_connections_is_refused_and_counted() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "a", &["a.test"], 1, EXPIRY);
    let servy = Servy::builder()
        .config(&format!(
            "[limits]\nmax_connections = 1\n{}",
            config(&a, "http3 = true")
        ))
        .https()
        .start();
    let mut first = connect(&servy, &pki);
    assert_eq!(first.get("/robots.txt").status, 200);
    let second = H3::connect(servy.https.unwrap(), "a.test", &pki.client(&[]));
    assert!(
        second.is_err(),
        "a second QUIC connection at max_connections = 1"
    );
    assert_eq!(metric(&servy, "servy_quic_refused_total"), Some(1.0));
    // The first one is still served, and its slot is free again once it is closed.
    assert_eq!(first.get("/robots.txt").status, 200);
    first.close();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while H3::connect(servy.https.unwrap(), "a.test", &pki.client(&[])).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the slot was not given back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
