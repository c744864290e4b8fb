//! `[acme]` against a real CA: Debian's pebble on loopback, validating for real through
//! a DNS stub that points every name at 127.0.0.1 (see `support/pebble.rs`).
//!
//! Each test runs its own pebble, with its validation ports set to the sockets the test
//! bound for servy, so nothing is shared between tests.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::support::pebble::{Pebble, ValidationPorts, eventually};
use crate::support::tls::Pki;
use crate::support::{Servy, TempDir, get, tls};

const DOMAIN: &str = "site.servy.test";
const WWW: &str = "www.servy.test";

/// How long a test waits for an order to complete (pebble takes about a second).
const ORDER_TIMEOUT: Duration = Duration::from_secs(60);

/// The sockets servy will get, bound first so pebble can be told the ports.
struct Sockets {
    http: TcpListener,
    https: TcpListener,
}

impl Sockets {
    fn bind() -> Sockets {
        Sockets {
            http: TcpListener::bind("127.0.0.1:0").expect("bind http"),
            https: TcpListener::bind("127.0.0.1:0").expect("bind https"),
        }
    }

    fn ports(&self) -> ValidationPorts {
        ValidationPorts {
            http: self.http.local_addr().expect("addr").port(),
            https: self.https.local_addr().expect("addr").port(),
        }
    }
}

fn config(pebble: &Pebble, state: &TempDir, challenge: &str) -> String {
    format!(
        r#"
[acme]
domains = ["{DOMAIN}", "{WWW}"]
email = "admin@servy.test"
directory = "{}"
ca_roots = "{}"
state_dir = "{}"
challenge = "{challenge}"
retry_min = "1s"
"#,
        pebble.directory,
        pebble.ca_roots.display(),
        state.path().display()
    )
}

fn start(sockets: &Sockets, config: &str) -> Servy {
    Servy::builder()
        .config(config)
        .sockets(&sockets.http, &sockets.https)
        .start()
}

/// A sample's value from servy's `/metrics` (`name` includes any labels), 0 if absent.
fn metric(servy: &Servy, name: &str) -> f64 {
    let text = get(servy.metrics, "/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn issued(servy: &Servy) -> f64 {
    metric(servy, "servy_acme_orders_total{result=\"ok\"}")
}

/// Failed orders of any kind.
fn failed(servy: &Servy) -> f64 {
    let text = get(servy.metrics, "/metrics").text();
    text.lines()
        .filter(|l| l.starts_with("servy_acme_orders_total{") && !l.contains("result=\"ok\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn wait_issued(servy: &Servy, pebble: &Pebble, count: f64) {
    assert!(
        eventually(ORDER_TIMEOUT, || issued(servy) >= count),
        "no certificate #{count} within {ORDER_TIMEOUT:?}\nservy:\n{}\npebble:\n{}",
        servy.stderr(),
        pebble.log()
    );
}

/// A client that trusts only pebble's issuing root.
fn client(pebble: &Pebble) -> Arc<ClientConfig> {
    tls::client_trusting(pebble.issuing_root())
}

fn serial(cert: &CertificateDer<'_>) -> String {
    let (_, x509) = X509Certificate::from_der(cert).expect("X.509");
    x509.raw_serial_as_string()
}

fn names(cert: &CertificateDer<'_>) -> Vec<String> {
    let (_, x509) = X509Certificate::from_der(cert).expect("X.509");
    let san = x509.subject_alternative_name().expect("SAN").expect("SAN");
    san.value
        .general_names
        .iter()
        .map(|n| {
            n.to_string()
                .trim_start_matches("DNSName(")
                .trim_end_matches(')')
                .to_string()
        })
        .collect()
}

/// Fetches `/` over HTTPS for `name`, verifying against pebble's root; the response and
/// the chain servy presented.
fn fetch(
    servy: &Servy,
    client: &Arc<ClientConfig>,
    name: &str,
) -> (u16, Vec<CertificateDer<'static>>) {
    let addr = servy.https.expect("an https socket");
    let mut conn = tls::connect(addr, name, client.clone())
        .unwrap_or_else(|e| panic!("HTTPS to {name}: {e}\nservy:\n{}", servy.stderr()));
    let chain = conn.conn.peer_certificates().expect("a chain").to_vec();
    let response = tls::get(&mut conn, name, "/");
    (response.status, chain)
}

/// The order, the chain, and what HTTPS serves, for either challenge.
fn order_and_fetch(challenge: &str) {
    let sockets = Sockets::bind();
    let pebble = Pebble::start(sockets.ports(), Duration::from_secs(3600));
    let state = TempDir::new();
    let started = Instant::now();
    let servy = start(&sockets, &config(&pebble, &state, challenge));
    // READY did not wait for the CA: plain HTTP serves whether or not the order is done.
    assert_eq!(get(servy.http, "/").status, 200);
    wait_issued(&servy, &pebble, 1.0);
    eprintln!(
        "{challenge}: first certificate {:?} after start",
        started.elapsed()
    );

    let client = client(&pebble);
    for name in [DOMAIN, WWW] {
        let (status, chain) = fetch(&servy, &client, name);
        assert_eq!(status, 200, "{name}");
        assert_eq!(chain.len(), 2, "leaf and pebble's intermediate");
        assert_eq!(
            chain[1],
            pebble.intermediate(),
            "signed by pebble's intermediate"
        );
        let mut on_leaf = names(&chain[0]);
        on_leaf.sort();
        assert_eq!(on_leaf, [DOMAIN, WWW]);
    }
    assert_eq!(pebble.orders(), 1);
    assert!(
        metric(
            &servy,
            &format!("servy_tls_certificate_expiry_timestamp_seconds{{name=\"{DOMAIN}\"}}")
        ) > 0.0
    );
    assert!(metric(&servy, "servy_acme_next_renewal_timestamp_seconds") > 0.0);
    // The answers are gone once the order is over.
    assert!(servy.stderr().contains("acme: challenge answered"));
}

#[test]
fn tls_alpn_01_order_serves_the_issued_chain_over_https() {
    order_and_fetch("tls-alpn-01");
}

#[test]
fn http_01_order_serves_the_issued_chain_over_https() {
    order_and_fetch("http-01");
}

#[test]
fn a_restart_serves_the_stored_certificate_without_a_new_order() {
    let sockets = Sockets::bind();
    let pebble = Pebble::start(sockets.ports(), Duration::from_secs(3600));
    let state = TempDir::new();
    let config = config(&pebble, &state, "tls-alpn-01");
    let client = client(&pebble);

    let mut first = start(&sockets, &config);
    wait_issued(&first, &pebble, 1.0);
    let (_, chain) = fetch(&first, &client, DOMAIN);
    let issued_serial = serial(&chain[0]);
    first.terminate();
    assert_eq!(pebble.orders(), 1);

    let second = start(&sockets, &config);
    // Served from the first handshake: the certificate came from the state directory.
    let (status, chain) = fetch(&second, &self::client(&pebble), DOMAIN);
    assert_eq!(status, 200);
    assert_eq!(serial(&chain[0]), issued_serial);
    assert!(
        second
            .stderr()
            .contains("acme: serving the stored certificate")
    );
    // Give a wrongly eager renewal task the time to order; pebble must see nothing.
    thread::sleep(Duration::from_secs(2));
    assert_eq!(pebble.orders(), 1, "pebble's log:\n{}", pebble.log());
    assert_eq!(issued(&second), 0.0);
}

#[test]
fn renewal_serves_a_new_serial_without_dropping_a_connection() {
    let sockets = Sockets::bind();
    // A 20 s lifetime: renewal is due with a third left, about 13 s after issuance.
    let pebble = Pebble::start(sockets.ports(), Duration::from_secs(20));
    let state = TempDir::new();
    let servy = start(&sockets, &config(&pebble, &state, "tls-alpn-01"));
    wait_issued(&servy, &pebble, 1.0);
    let client = client(&pebble);
    let addr = servy.https.expect("https");

    let mut open = tls::connect(addr, DOMAIN, client.clone()).expect("connect");
    let old = serial(&tls::peer_leaf(&open));
    // Meanwhile, new connections keep coming; none may fail.
    let failures = Arc::new(AtomicUsize::new(0));
    let requests = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load = {
        let (client, failures, requests, stop) = (
            client.clone(),
            failures.clone(),
            requests.clone(),
            stop.clone(),
        );
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let ok = tls::connect(addr, DOMAIN, client.clone())
                    .map(|mut c| tls::get(&mut c, DOMAIN, "/").status == 200)
                    .unwrap_or(false);
                requests.fetch_add(1, Ordering::Relaxed);
                if !ok {
                    failures.fetch_add(1, Ordering::Relaxed);
                }
                thread::sleep(Duration::from_millis(50));
            }
        })
    };
    // The open connection stays busy (an idle one would meet the keep-alive timeout).
    let deadline = Instant::now() + ORDER_TIMEOUT;
    while issued(&servy) < 2.0 {
        assert!(Instant::now() < deadline, "no renewal\n{}", servy.stderr());
        let response = tls::get_keep_alive(&mut open, DOMAIN, "/");
        assert_eq!(response.status, 200);
        thread::sleep(Duration::from_millis(500));
    }
    // After the renewal, the same connection still answers.
    assert_eq!(tls::get_keep_alive(&mut open, DOMAIN, "/").status, 200);
    stop.store(true, Ordering::Relaxed);
    load.join().expect("load thread");

    // A fresh client: a resumed session would report the certificate of its first
    // handshake.
    let (status, chain) = fetch(&servy, &self::client(&pebble), DOMAIN);
    assert_eq!(status, 200);
    assert_ne!(serial(&chain[0]), old, "the renewed certificate is served");
    assert_eq!(pebble.orders(), 2);
    let requests = requests.load(Ordering::Relaxed);
    assert!(requests > 10, "only {requests} requests during the renewal");
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "of {requests} requests"
    );
    eprintln!("renewal: {requests} new connections during it, 0 failed");
}

#[test]
fn with_the_ca_down_the_old_certificate_serves_orders_back_off_and_recover() {
    let sockets = Sockets::bind();
    // Renewal due about 16 s after issuance; the certificate lasts until 24 s.
    let mut pebble = Pebble::start(sockets.ports(), Duration::from_secs(24));
    let state = TempDir::new();
    let servy = start(&sockets, &config(&pebble, &state, "tls-alpn-01"));
    wait_issued(&servy, &pebble, 1.0);
    let client = client(&pebble);
    let (_, chain) = fetch(&servy, &client, DOMAIN);
    let old = serial(&chain[0]);
    let root = pebble.issuing_root();
    pebble.stop();

    assert!(
        eventually(ORDER_TIMEOUT, || metric(
            &servy,
            "servy_acme_consecutive_failures"
        ) >= 2.0),
        "no failed renewals\n{}",
        servy.stderr()
    );
    // Fresh handshakes (no resumption) still get the old certificate.
    let (status, chain) = fetch(&servy, &tls::client_trusting(root), DOMAIN);
    assert_eq!(status, 200);
    assert_eq!(serial(&chain[0]), old, "the old certificate keeps serving");
    assert!(failed(&servy) >= 2.0);
    assert_eq!(issued(&servy), 1.0);
    // The next attempt is scheduled in the future (backoff), not in a tight loop.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    assert!(metric(&servy, "servy_acme_next_renewal_timestamp_seconds") >= now - 1.0);
    let log = servy.stderr();
    assert!(
        log.contains("retry_in=1s") && log.contains("retry_in=2s"),
        "backoff doubles:\n{log}"
    );

    // The CA comes back, new (pebble keeps no state): servy makes a new account and
    // gets a certificate from it.
    pebble.restart();
    wait_issued(&servy, &pebble, 2.0);
    assert!(
        servy.stderr().contains("no longer knows the account"),
        "{}",
        servy.stderr()
    );
    let (status, chain) = fetch(&servy, &tls::client_trusting(pebble.issuing_root()), DOMAIN);
    assert_eq!(status, 200);
    assert_ne!(serial(&chain[0]), old);
    assert_eq!(chain[1], pebble.intermediate(), "issued by the new pebble");
    assert_eq!(metric(&servy, "servy_acme_consecutive_failures"), 0.0);
}

#[test]
fn before_the_first_certificate_https_fails_cleanly_and_http_serves() {
    let sockets = Sockets::bind();
    let state = TempDir::new();
    // A CA that is not there: the order can never complete.
    let dead = TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead_addr = dead.local_addr().expect("addr");
    drop(dead);
    let roots = state.write(
        "roots.pem",
        &rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()])
            .expect("params")
            .self_signed(&rcgen::KeyPair::generate().expect("key"))
            .expect("cert")
            .pem(),
    );
    let config = format!(
        "[acme]\ndomains = [\"{DOMAIN}\"]\ndirectory = \"https://{dead_addr}/dir\"\nca_roots = \"{}\"\nstate_dir = \"{}\"\nretry_min = \"1s\"\n",
        roots.display(),
        state.path().display()
    );
    let servy = start(&sockets, &config);
    // READY came (start waited for it) and the site serves over HTTP.
    assert_eq!(get(servy.http, "/").status, 200);
    // A handshake for the domain fails at once instead of hanging.
    let began = Instant::now();
    // Any client gets no certificate yet: one trusting a stranger's root will do.
    let stranger = rcgen::CertificateParams::new(vec!["x.test".to_string()])
        .expect("params")
        .self_signed(&rcgen::KeyPair::generate().expect("key"))
        .expect("cert");
    let client = tls::client_trusting(stranger.der().clone());
    let refused = tls::connect(servy.https.expect("https"), DOMAIN, client);
    assert!(
        refused.is_err(),
        "a handshake without a certificate must fail"
    );
    assert!(
        began.elapsed() < Duration::from_secs(5),
        "it failed promptly"
    );
    assert!(
        eventually(ORDER_TIMEOUT, || metric(
            &servy,
            "servy_acme_orders_total{result=\"account\"}"
        ) >= 2.0),
        "failed orders are counted\n{}",
        servy.stderr()
    );
    assert_eq!(get(servy.http, "/").status, 200, "HTTP still serves");
    // No open challenge: the well-known path is an ordinary miss.
    assert_eq!(
        get(servy.http, "/.well-known/acme-challenge/no-such-token").status,
        404
    );
}

#[test]
fn tls_alpn_01_without_an_https_listener_is_a_config_error() {
    let state = TempDir::new();
    let config = format!(
        "[acme]\ndomains = [\"{DOMAIN}\"]\nstate_dir = \"{}\"\n",
        state.path().display()
    );
    // Only http and metrics are passed, and https.listen is empty.
    let mut servy = Servy::builder().config(&config).no_wait().start();
    let status = servy.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(78), "{}", servy.stderr());
    assert!(servy.stderr().contains("tls-alpn-01"), "{}", servy.stderr());
}

/// Replicas sharing one state directory and one listening socket (the kernel hands each
/// connection, the CA's validations included, to either process, as a Service would).
fn replicas(sockets: &Sockets, config: &str) -> [Servy; 2] {
    [start(sockets, config), start(sockets, config)]
}

/// Both replicas serve certificate #1 of one order; returns its serial.
fn assert_one_order_served_by_all(replicas: &[Servy; 2], pebble: &Pebble) -> String {
    let client = client(pebble);
    assert!(
        eventually(ORDER_TIMEOUT, || replicas.iter().all(|r| {
            r.stderr()
                .contains("acme: certificate issued and installed")
                || r.stderr()
                    .contains("acme: serving the certificate another replica ordered")
        })),
        "not every replica got the certificate\nfirst:\n{}\nsecond:\n{}\npebble:\n{}",
        replicas[0].stderr(),
        replicas[1].stderr(),
        pebble.log()
    );
    assert_eq!(pebble.orders(), 1, "pebble's log:\n{}", pebble.log());
    let ordered: f64 = replicas.iter().map(issued).sum();
    assert_eq!(ordered, 1.0, "exactly one replica ordered");
    // Over the shared socket, connections land on either process: all see one serial.
    let serials: std::collections::BTreeSet<String> = (0..12)
        .map(|_| serial(&fetch(&replicas[0], &client, DOMAIN).1[0]))
        .collect();
    assert_eq!(serials.len(), 1, "{serials:?}");
    serials.into_iter().next().expect("one serial")
}

/// The CA's directory in the state directory, as the store names it (the URL made into a
/// file name).
fn ca_dir(pebble: &Pebble, state: &TempDir) -> std::path::PathBuf {
    let ca = pebble.directory.split_once("://").expect("a URL").1;
    let ca: String = ca
        .trim_end_matches('/')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    state.path().join("acme").join(ca)
}

#[test]
fn replicas_sharing_the_state_directory_order_once_and_answer_each_others_http_01() {
    let sockets = Sockets::bind();
    let pebble = Pebble::start(sockets.ports(), Duration::from_secs(3600));
    let state = TempDir::new();
    let replicas = replicas(&sockets, &config(&pebble, &state, "http-01"));
    assert_one_order_served_by_all(&replicas, &pebble);

    // An answer neither process published (as if a third replica had): both serve it.
    let answers = ca_dir(&pebble, &state).join("http-01");
    std::fs::create_dir_all(&answers).expect("http-01 dir");
    std::fs::write(answers.join("t0ken_-1"), "t0ken_-1.thumbprint").expect("answer");
    for _ in 0..12 {
        let response = get(replicas[0].http, "/.well-known/acme-challenge/t0ken_-1");
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), "t0ken_-1.thumbprint");
    }
    assert_eq!(
        get(replicas[0].http, "/.well-known/acme-challenge/account.json").status,
        404
    );
}

#[test]
fn replicas_sharing_the_state_directory_order_once_and_answer_each_others_tls_alpn_01() {
    let sockets = Sockets::bind();
    let pebble = Pebble::start(sockets.ports(), Duration::from_secs(3600));
    let state = TempDir::new();
    let replicas = replicas(&sockets, &config(&pebble, &state, "tls-alpn-01"));
    assert_one_order_served_by_all(&replicas, &pebble);

    // A validation certificate neither process made (as if a third replica had): every
    // `acme-tls/1` handshake gets it, whichever process the kernel hands it to.
    let pki = Pki::new();
    let keys = TempDir::new();
    let leaf = pki.issue(&keys, "answer", &[DOMAIN], 7, (2040, 1, 1));
    let pem = std::fs::read_to_string(&leaf.cert).expect("chain")
        + &std::fs::read_to_string(&leaf.key).expect("key");
    let answers = ca_dir(&pebble, &state).join("tls-alpn-01");
    std::fs::create_dir_all(&answers).expect("tls-alpn-01 dir");
    std::fs::write(answers.join(format!("{DOMAIN}.pem")), pem).expect("answer");
    let validator = pki.client(&[b"acme-tls/1"]);
    let https = replicas[0].https.expect("an https socket");
    for _ in 0..12 {
        let conn = tls::connect(https, DOMAIN, validator.clone())
            .unwrap_or_else(|e| panic!("acme-tls/1 handshake: {e}\n{}", replicas[0].stderr()));
        assert_eq!(tls::peer_leaf(&conn), leaf.der);
    }
    // A name with no answer gets no certificate, not the site's.
    assert!(tls::connect(https, WWW, validator).is_err());
}

#[test]
fn a_holder_killed_mid_order_is_taken_over_after_the_lease_and_the_order_completes() {
    let sockets = Sockets::bind();
    let pebble = Pebble::start(sockets.ports(), Duration::from_secs(3600));
    let state = TempDir::new();
    let config = config(&pebble, &state, "http-01");
    let started = Instant::now();
    let mut replicas: Vec<Servy> = (0..2)
        .map(|_| {
            Servy::builder()
                .config(&config)
                .sockets(&sockets.http, &sockets.https)
                .no_wait()
                .start()
        })
        .collect();

    // The lease names its holder: kill that process once its order is created at the CA,
    // before pebble has validated it (about a second).
    let lease = ca_dir(&pebble, &state).join("order.lease");
    let mut holder = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while holder.is_none() && Instant::now() < deadline {
        let text = std::fs::read_to_string(&lease).unwrap_or_default();
        let pid: Option<u32> = text.split_whitespace().nth(2).and_then(|p| p.parse().ok());
        holder = pid.and_then(|pid| replicas.iter().position(|r| r.pid() == pid));
        thread::sleep(Duration::from_millis(1));
    }
    let holder = holder.expect("a replica took the order lease");
    let deadline = Instant::now() + Duration::from_secs(20);
    while !replicas[holder].stderr().contains("acme: order created") {
        assert!(Instant::now() < deadline, "{}", replicas[holder].stderr());
        thread::sleep(Duration::from_millis(1));
    }
    replicas[holder].signal(libc::SIGKILL);
    let killed_at = started.elapsed();
    assert!(
        !ca_dir(&pebble, &state).join("certificate.pem").exists(),
        "the holder finished its order before it was killed: the test proves nothing"
    );
    let survivor = replicas.swap_remove(1 - holder);

    assert!(
        eventually(Duration::from_secs(90), || survivor
            .stderr()
            .contains("acme: certificate issued and installed")),
        "the survivor never completed the order\n{}",
        survivor.stderr()
    );
    let stderr = survivor.stderr();
    assert!(stderr.contains("another replica is ordering"), "{stderr}");
    assert!(
        stderr.contains("taking over a stale order lease"),
        "{stderr}"
    );
    assert_eq!(issued(&survivor), 1.0);
    assert_eq!(pebble.orders(), 2, "the abandoned order and the survivor's");
    let (status, chain) = fetch(&survivor, &client(&pebble), DOMAIN);
    assert_eq!(status, 200);
    assert_eq!(names(&chain[0]), [DOMAIN, WWW]);
    eprintln!(
        "holder killed {killed_at:?} after start; survivor served its own order {:?} after start",
        started.elapsed()
    );
}
