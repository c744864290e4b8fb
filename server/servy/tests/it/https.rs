//! HTTPS: TLS by rustls on a passed `https` socket. ALPN picks HTTP/1.1 or h2, SNI picks
//! the certificate, the handshake has its own timeout, SIGHUP swaps certificates (or
//! keeps the old ones), the expiry metric, HSTS, `redirect_to_https`, and bad files
//! refused as config errors.

use std::io::{Read, Write};
use std::path::Path;
use std::process::Output;
use std::thread;
use std::time::{Duration, Instant};

use rustls::HandshakeKind;

use crate::support::http::{H2Frame, next_h2_frame};
use crate::support::tls::{self, Leaf, Pki};
use crate::support::{Servy, TempDir, command, get, raw, request};

/// 2031-01-02T00:00:00Z, the `notAfter` of the certificates below (from `date -d`).
const EXPIRY: (i32, u8, u8) = (2031, 1, 2);
const EXPIRY_UNIX: f64 = 1_925_078_400.0;

fn certificates_toml(leaves: &[&Leaf]) -> String {
    leaves
        .iter()
        .map(|l| {
            format!(
                "[[https.certificates]]\ncert = {:?}\nkey = {:?}\n",
                l.cert, l.key
            )
        })
        .collect()
}

fn start(leaves: &[&Leaf], extra: &str) -> Servy {
    Servy::builder()
        .config(&format!("{extra}\n{}", certificates_toml(leaves)))
        .https()
        .start()
}

fn https(servy: &Servy) -> std::net::SocketAddr {
    servy.https.expect("an https socket")
}

/// The value of one series in `/metrics` (`name{labels}` exactly as exposed), if present.
fn metric(servy: &Servy, series: &str) -> Option<f64> {
    get(servy.metrics, "/metrics").text().lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

fn reloads(servy: &Servy, result: &str) -> f64 {
    metric(
        servy,
        &format!("servy_tls_reloads_total{{result=\"{result}\"}}"),
    )
    .unwrap_or(0.0)
}

/// SIGHUP, then wait until the reload counter for `result` has gone up.
fn reload(servy: &Servy, result: &str) {
    let before = reloads(servy, result);
    servy.signal(libc::SIGHUP);
    await_reloads(servy, result, before + 1.0);
}

/// Waits (10 s at most) until `reloads(result)` reaches `count`.
fn await_reloads(servy: &Servy, result: &str, count: f64) {
    let what = format!("a reload counted as {result:?}");
    poll_until(servy, Duration::from_secs(10), &what, || {
        reloads(servy, result) >= count
    });
}

/// Asks `done` every 20 ms until it says yes, failing with servy's stderr after `within`;
/// returns how long it took.
fn poll_until(
    servy: &Servy,
    within: Duration,
    what: &str,
    mut done: impl FnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < within,
            "not within {within:?}: {what}; stderr:\n{}",
            servy.stderr()
        );
        thread::sleep(Duration::from_millis(20));
    }
    started.elapsed()
}

#[test]
fn http1_over_tls_when_the_client_offers_only_http1() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "a", &["a.test"], 1, EXPIRY);
    let servy = start(&[&a], "");
    let mut conn =
        tls::connect(https(&servy), "a.test", pki.client(&[b"http/1.1"])).expect("handshake");
    assert_eq!(conn.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(tls::peer_leaf(&conn), a.der);
    let r = tls::get(&mut conn, "a.test", "/");
    let plain = get(servy.http, "/");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, plain.body, "the same site over TLS");
}

#[test]
fn a_client_without_alpn_gets_http1() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "a", &["a.test"], 1, EXPIRY);
    let servy = start(&[&a], "");
    let mut conn = tls::connect(https(&servy), "a.test", pki.client(&[])).expect("handshake");
    assert_eq!(conn.conn.alpn_protocol(), None);
    assert_eq!(tls::get(&mut conn, "a.test", "/robots.txt").status, 200);
}

/// One HTTP/2 frame: 9-byte header (RFC 9113 §4.1) and payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[test]
fn h2_over_tls_when_alpn_chooses_it() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "a", &["a.test"], 1, EXPIRY);
    let servy = start(&[&a], "");
    let mut conn = tls::connect(https(&servy), "a.test", pki.client(&[b"h2", b"http/1.1"]))
        .expect("handshake");
    assert_eq!(conn.conn.alpn_protocol(), Some(&b"h2"[..]));

    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[])); // SETTINGS, empty
    // HEADERS, END_STREAM | END_HEADERS: :method GET, :scheme https, :path /robots.txt,
    // :authority a.test (HPACK static indexes 2, 7, literal 4, literal 1; RFC 7541).
    let path = b"/robots.txt";
    let mut block = vec![0x82, 0x87, 0x44, path.len() as u8];
    block.extend_from_slice(path);
    block.extend_from_slice(&[0x41, 6]);
    block.extend_from_slice(b"a.test");
    out.extend(frame(0x1, 0x5, 1, &block));
    conn.write_all(&out).expect("send h2 request");

    // Read frames until stream 1 ends; the first HEADERS on it must be `:status 200`
    // (hyper encodes it as the static index 8, byte 0x88), and DATA the robots.txt body.
    let mut buf = Vec::new();
    let mut status_200 = None;
    let mut body = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    'frames: loop {
        assert!(Instant::now() < deadline, "no complete h2 response");
        let mut chunk = [0u8; 16384];
        let n = conn.read(&mut chunk).expect("read h2");
        assert!(n > 0, "connection closed before the response");
        buf.extend_from_slice(&chunk[..n]);
        while let Some(H2Frame {
            kind,
            flags,
            stream,
            payload,
        }) = next_h2_frame(&mut buf)
        {
            if stream == 1 && kind == 0x1 && status_200.is_none() {
                status_200 = Some(payload.first() == Some(&0x88));
            }
            if stream == 1 && kind == 0x0 {
                body.extend_from_slice(&payload);
            }
            if stream == 1 && flags & 0x1 != 0 {
                break 'frames;
            }
        }
    }
    assert_eq!(status_200, Some(true), "HEADERS with :status 200");
    assert_eq!(body, get(servy.http, "/robots.txt").body);
}

#[test]
fn a_second_connection_resumes_the_session_over_tls13_and_tls12() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "a", &["a.test"], 1, EXPIRY);
    let servy = start(&[&a], "");
    for (what, client) in [
        ("TLS 1.3", pki.client(&[])),
        ("TLS 1.2", pki.client_tls12(&[])),
    ] {
        let mut first = tls::connect(https(&servy), "a.test", client.clone()).expect("handshake");
        assert_eq!(
            first.conn.handshake_kind(),
            Some(HandshakeKind::Full),
            "{what}"
        );
        // TLS 1.3 tickets arrive after the handshake, with the first response.
        assert_eq!(tls::get(&mut first, "a.test", "/robots.txt").status, 200);
        let second = tls::connect(https(&servy), "a.test", client).expect("handshake");
        assert_eq!(
            second.conn.handshake_kind(),
            Some(HandshakeKind::Resumed),
            "{what}"
        );
    }
}

#[test]
fn sni_chooses_between_two_certificates_and_a_wildcard() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "a", &["a.test"], 1, EXPIRY);
    let b = pki.issue(&dir, "b", &["b.test", "*.w.test"], 2, EXPIRY);
    let servy = start(&[&a, &b], "");
    let client = pki.client(&[b"http/1.1"]);
    for (name, want) in [("a.test", &a), ("b.test", &b), ("x.w.test", &b)] {
        let conn = tls::connect(https(&servy), name, client.clone())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            tls::peer_leaf(&conn) == want.der,
            "{name} got the wrong certificate"
        );
    }
    // No certificate covers c.test: it gets the default (a.test), which its client refuses.
    let Err(e) = tls::connect(https(&servy), "c.test", client) else {
        panic!("c.test was accepted");
    };
    assert!(
        e.contains("not valid for name \"c.test\"") && e.contains("\"a.test\""),
        "{e}"
    );
}

#[test]
fn a_client_that_never_finishes_the_handshake_is_closed() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "a", &["a.test"], 1, EXPIRY);
    // The header-read timeout is far longer: only the handshake timeout can close these.
    let servy = start(
        &[&a],
        "[https]\nhandshake_timeout = \"1s\"\n[limits]\nheader_read_timeout = \"60s\"\n",
    );
    for (what, bytes) in [
        ("silent", &b""[..]),
        // The first bytes of a TLS record header (handshake, TLS 1.0 record version).
        (
            "half a ClientHello",
            &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01][..],
        ),
    ] {
        let started = Instant::now();
        let mut tcp = std::net::TcpStream::connect(https(&servy)).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        tcp.write_all(bytes).expect("send");
        let mut rest = Vec::new();
        let _ = tcp.read_to_end(&mut rest);
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(900) && waited < Duration::from_secs(8),
            "{what}: closed after {waited:?}"
        );
    }
}

#[test]
fn reload_serves_the_new_certificate_and_open_connections_survive() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let old = pki.issue(&dir, "site", &["a.test"], 1, EXPIRY);
    let servy = start(&[&old], "");
    let client = pki.client(&[b"http/1.1"]);
    let mut open = tls::connect(https(&servy), "a.test", client.clone()).expect("handshake");
    assert_eq!(
        tls::get_keep_alive(&mut open, "a.test", "/robots.txt").status,
        200
    );

    // Same file names, new serial: what a renewal does.
    let new = pki.issue(&dir, "site", &["a.test"], 2, EXPIRY);
    assert!(new.der != old.der);
    reload(&servy, "ok");

    // A new client: the old one would resume its session, and with it the old certificate.
    let fresh =
        tls::connect(https(&servy), "a.test", pki.client(&[b"http/1.1"])).expect("handshake");
    assert!(
        tls::peer_leaf(&fresh) == new.der,
        "a new handshake gets the new certificate"
    );
    // The connection opened before the reload still answers, with what it negotiated.
    assert_eq!(
        tls::get_keep_alive(&mut open, "a.test", "/robots.txt").status,
        200
    );
    assert!(tls::peer_leaf(&open) == old.der);
}

#[test]
fn a_bad_reload_keeps_the_old_certificate_and_is_counted() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let good = pki.issue(&dir, "site", &["a.test"], 1, EXPIRY);
    let servy = start(&[&good], "");
    let client = pki.client(&[b"http/1.1"]);
    let cert_pem = std::fs::read_to_string(&good.cert).expect("read cert");

    // Unparsable chain.
    std::fs::write(&good.cert, "not a certificate\n").expect("write");
    reload(&servy, "parse");
    let conn = tls::connect(https(&servy), "a.test", client.clone()).expect("old one serves");
    assert!(tls::peer_leaf(&conn) == good.der);

    // A key from another certificate.
    std::fs::write(&good.cert, &cert_pem).expect("write");
    let other = pki.issue(&dir, "other", &["a.test"], 9, EXPIRY);
    std::fs::copy(&other.key, &good.key).expect("copy key");
    reload(&servy, "key_mismatch");

    // Missing.
    std::fs::remove_file(&good.cert).expect("remove");
    reload(&servy, "read");
    let conn = tls::connect(https(&servy), "a.test", client).expect("old one serves");
    assert!(tls::peer_leaf(&conn) == good.der);
    assert_eq!(reloads(&servy, "ok"), 0.0);
    assert!(
        servy.stderr().contains("site.pem"),
        "the log names the file"
    );
}

#[test]
fn expiry_metric_follows_the_served_certificates() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "a", &["a.test"], 1, EXPIRY);
    let b = pki.issue(&dir, "b", &["b.test"], 2, (2032, 3, 4));
    let servy = start(&[&a, &b], "");
    let series = |name: &str| {
        metric(
            &servy,
            &format!("servy_tls_certificate_expiry_timestamp_seconds{{name=\"{name}\"}}"),
        )
    };
    assert_eq!(series("a.test"), Some(EXPIRY_UNIX));
    // 2032-03-04T00:00:00Z
    assert_eq!(series("b.test"), Some(1_961_971_200.0));
    // A renewal moves it.
    pki.issue(&dir, "a", &["a.test"], 3, (2032, 3, 4));
    reload(&servy, "ok");
    assert_eq!(series("a.test"), Some(1_961_971_200.0));
}

#[test]
fn hsts_is_sent_on_https_only_when_configured() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "a", &["a.test"], 1, EXPIRY);
    let client = pki.client(&[b"http/1.1"]);
    let servy = start(&[&a], "[https]\nhsts = \"max-age=31536000\"\n");
    let mut conn = tls::connect(https(&servy), "a.test", client.clone()).expect("handshake");
    let r = tls::get(&mut conn, "a.test", "/");
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    assert_eq!(
        get(servy.http, "/").header("strict-transport-security"),
        None
    );

    let servy = start(&[&a], "");
    let mut conn = tls::connect(https(&servy), "a.test", client).expect("handshake");
    assert_eq!(
        tls::get(&mut conn, "a.test", "/").header("strict-transport-security"),
        None
    );
}

#[test]
fn redirect_to_https_only_for_hosts_a_certificate_covers() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "a", &["a.test", "*.w.test"], 1, EXPIRY);
    let servy = start(&[&a], "[http]\nredirect_to_https = true\n");
    let r = request(servy.http, "GET", "/blog/?q=1", &[("host", "A.test:8080")]);
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("https://a.test/blog/?q=1"));
    let r = request(servy.http, "GET", "/", &[("host", "x.w.test")]);
    assert_eq!(r.header("location"), Some("https://x.w.test/"));
    // Never an open redirect: a foreign host gets a 4xx and no Location.
    for host in ["evil.test", "a.test.evil.test", "w.test"] {
        let r = request(servy.http, "GET", "/", &[("host", host)]);
        assert_eq!(r.status, 421, "{host}");
        assert_eq!(r.header("location"), None, "{host}");
    }
    // HTTPS still serves the site.
    let mut conn = tls::connect(https(&servy), "a.test", pki.client(&[])).expect("handshake");
    assert_eq!(tls::get(&mut conn, "a.test", "/robots.txt").status, 200);
}

#[test]
fn redirect_to_https_refuses_what_the_dispatch_refuses_in_host() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "a", &["a.test"], 1, EXPIRY);
    let servy = start(&[&a], "[http]\nredirect_to_https = true\n");
    // Two Host lines: which one would the redirect trust? Neither (RFC 9112 §3.2).
    let r = request(
        servy.http,
        "GET",
        "/",
        &[("host", "a.test"), ("host", "evil.test")],
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.header("location"), None);
    for host in ["user@a.test", "a.test:port", "a.test/x"] {
        let r = request(servy.http, "GET", "/", &[("host", host)]);
        assert_eq!(r.status, 400, "{host}");
        assert_eq!(r.header("location"), None, "{host}");
    }
    let r = raw(servy.http, b"GET / HTTP/1.1\r\nconnection: close\r\n\r\n");
    assert!(
        r.starts_with(b"HTTP/1.1 400"),
        "{}",
        String::from_utf8_lossy(&r)
    );
}

fn check(config: &str, env: &[(&str, &str)], dir: &Path) -> Output {
    let path = dir.join("servy.toml");
    std::fs::write(&path, config).expect("write config");
    let mut cmd = command();
    cmd.arg("--config").arg(&path).arg("--check");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run servy")
}

#[test]
fn bad_certificate_files_are_config_errors_naming_the_file() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "a", &["a.test"], 1, EXPIRY);
    let b = pki.issue(&dir, "b", &["b.test"], 2, EXPIRY);
    let missing = dir.path().join("missing.pem");
    let garbage = dir.write("garbage.pem", "hello\n");
    let cases = [
        (
            format!("cert = {missing:?}\nkey = {:?}", a.key),
            "missing.pem",
        ),
        (
            format!("cert = {garbage:?}\nkey = {:?}", a.key),
            "garbage.pem",
        ),
        (
            format!("cert = {:?}\nkey = {garbage:?}", a.cert),
            "garbage.pem",
        ),
        (
            format!("cert = {:?}\nkey = {:?}", a.cert, b.key),
            "does not match",
        ),
    ];
    for (files, needle) in cases {
        let o = check(
            &format!("[[https.certificates]]\n{files}\n"),
            &[],
            dir.path(),
        );
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(78), "{files}: {e}");
        assert!(
            e.contains(needle) && e.trim_end().lines().count() == 1,
            "{files}: {e}"
        );
    }
    let o = check(&certificates_toml(&[&a]), &[], dir.path());
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn relative_names_are_read_from_the_credentials_directory() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "fullchain", &["a.test"], 1, EXPIRY);
    let servy = Servy::builder()
        .config("[[https.certificates]]\ncert = \"fullchain.pem\"\nkey = \"fullchain.key\"\n")
        .env("CREDENTIALS_DIRECTORY", dir.path().to_str().expect("utf-8"))
        .https()
        .start();
    let conn = tls::connect(https(&servy), "a.test", pki.client(&[])).expect("handshake");
    assert!(tls::peer_leaf(&conn) == a.der);
}

#[test]
fn a_passed_https_socket_without_certificates_is_a_config_error() {
    let mut servy = Servy::builder().https().no_wait().start();
    let status = servy.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(78), "{}", servy.stderr());
    assert!(
        servy.stderr().contains("https.certificates"),
        "{}",
        servy.stderr()
    );
}

/// An ACME TLS-ALPN-01 validator (ALPN `acme-tls/1` only) must never be shown the site's
/// certificate: with no challenge answer installed, the handshake fails.
#[test]
fn acme_tls_alpn_without_a_challenge_gets_no_certificate() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let a = pki.issue(&dir, "a", &["a.test"], 1, EXPIRY);
    let servy = start(&[&a], "");
    let Err(e) = tls::connect(https(&servy), "a.test", pki.client(&[b"acme-tls/1"])) else {
        panic!("a handshake for acme-tls/1 succeeded without a challenge certificate");
    };
    assert!(e.contains("handshake"), "{e}");
    // The same client offering h2 is served as usual.
    tls::connect(https(&servy), "a.test", pki.client(&[b"h2"])).expect("handshake");
}

/// A Kubernetes Secret volume, as kubelet writes it: the files live in a timestamped
/// directory, `..data` links to it, and each name links through `..data`. An update
/// writes a new directory and renames a new `..data` link over the old one.
struct SecretVolume {
    dir: std::path::PathBuf,
    generation: u32,
}

impl SecretVolume {
    fn new(dir: &TempDir, leaf: &Leaf) -> SecretVolume {
        let dir = dir.path().join("secret");
        std::fs::create_dir(&dir).expect("secret dir");
        let mut volume = SecretVolume { dir, generation: 0 };
        volume.update(leaf);
        for name in ["tls.crt", "tls.key"] {
            std::os::unix::fs::symlink(format!("..data/{name}"), volume.dir.join(name))
                .expect("link");
        }
        volume
    }

    /// Writes `leaf` as the next generation and swaps `..data` to it atomically.
    fn update(&mut self, leaf: &Leaf) {
        self.generation += 1;
        let generation = format!(
            "..2026_12_04_00_00_0{}.{}",
            self.generation,
            1000 + self.generation
        );
        let target = self.dir.join(&generation);
        std::fs::create_dir(&target).expect("generation dir");
        std::fs::copy(&leaf.cert, target.join("tls.crt")).expect("cert");
        std::fs::copy(&leaf.key, target.join("tls.key")).expect("key");
        let staged = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&generation, &staged).expect("staged link");
        std::fs::rename(&staged, self.dir.join("..data")).expect("swap ..data");
    }

    fn toml(&self) -> String {
        format!(
            "[https]\nwatch_interval = \"100ms\"\n[[https.certificates]]\ncert = {:?}\nkey = {:?}\n",
            self.dir.join("tls.crt"),
            self.dir.join("tls.key")
        )
    }
}

/// New handshakes until one presents `leaf`, for at most `within`; requests keep being
/// answered all the while. Returns how long it took.
fn until_served(servy: &Servy, pki: &Pki, leaf: &Leaf, within: Duration) -> Duration {
    poll_until(servy, within, "the swapped certificate served", || {
        let mut conn =
            tls::connect(https(servy), "a.test", pki.client(&[b"http/1.1"])).expect("handshake");
        let answer = tls::get_keep_alive(&mut conn, "a.test", "/robots.txt");
        assert_eq!(answer.status, 200);
        tls::peer_leaf(&conn) == leaf.der
    })
}

#[test]
fn a_swapped_secret_is_served_without_a_signal_and_a_broken_one_is_refused() {
    let (dir, pki) = (TempDir::new(), Pki::new());
    let first = pki.issue(&dir, "first", &["a.test"], 1, EXPIRY);
    let mut volume = SecretVolume::new(&dir, &first);
    let servy = Servy::builder().config(&volume.toml()).https().start();
    until_served(&servy, &pki, &first, Duration::from_secs(1));
    let mut open =
        tls::connect(https(&servy), "a.test", pki.client(&[b"http/1.1"])).expect("handshake");

    let expiry = |servy: &Servy| {
        metric(
            servy,
            "servy_tls_certificate_expiry_timestamp_seconds{name=\"a.test\"}",
        )
    };
    assert_eq!(expiry(&servy), Some(EXPIRY_UNIX));
    // Renewed a year later (2032-01-02T00:00:00Z).
    let second = pki.issue(&dir, "second", &["a.test"], 2, (2032, 1, 2));
    volume.update(&second);
    let took = until_served(&servy, &pki, &second, Duration::from_secs(5));
    eprintln!("the swapped certificate was served after {took:?}");
    assert_eq!(reloads(&servy, "ok"), 1.0);
    assert_eq!(expiry(&servy), Some(1_956_614_400.0));
    // The connection opened before the swap still answers, with what it negotiated.
    assert_eq!(
        tls::get_keep_alive(&mut open, "a.test", "/robots.txt").status,
        200
    );
    assert!(tls::peer_leaf(&open) == first.der);

    // A broken pair: the certificate of one, the key of another.
    let third = pki.issue(&dir, "third", &["a.test"], 3, EXPIRY);
    let broken = Leaf {
        cert: third.cert.clone(),
        key: first.key.clone(),
        der: third.der.clone(),
    };
    volume.update(&broken);
    await_reloads(&servy, "key_mismatch", 1.0);
    // Reported once, not on every check.
    thread::sleep(Duration::from_millis(400));
    assert_eq!(reloads(&servy, "key_mismatch"), 1.0);
    assert_eq!(
        servy
            .stderr()
            .matches("do not load; the old certificates keep serving")
            .count(),
        1,
        "{}",
        servy.stderr()
    );
    until_served(&servy, &pki, &second, Duration::from_secs(1));
}
