//! Let's Encrypt's test CA for the ACME tests: Debian's `pebble`, on loopback, really
//! validating (no `PEBBLE_VA_ALWAYS_VALID`), with its resolver pointed at a DNS stub
//! owned by the test that answers every name with 127.0.0.1, and its validation ports
//! set to servy's.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::{Collected, TempDir, spawn_line_reader, tls};

/// A running pebble. Dropping it stops pebble and the DNS stub.
pub struct Pebble {
    child: Option<Child>,
    log: Collected,
    dns: DnsStub,
    binary: PathBuf,
    config: PathBuf,
    listen: SocketAddr,
    /// The ACME directory URL, for `acme.directory`.
    pub directory: String,
    /// The root pebble's own HTTPS listeners present, for `acme.ca_roots`.
    pub ca_roots: PathBuf,
    management: SocketAddr,
    client: Arc<ClientConfig>,
    dir: TempDir,
}

/// Where servy answers the challenges: pebble validates HTTP-01 on `http` and
/// TLS-ALPN-01 on `https`.
pub struct ValidationPorts {
    pub http: u16,
    pub https: u16,
}

impl Pebble {
    /// Starts pebble issuing certificates valid for `validity`, or fails the test with a
    /// clear message when pebble is not installed.
    pub fn start(ports: ValidationPorts, validity: Duration) -> Pebble {
        let binary = which("pebble").unwrap_or_else(|| {
            panic!(
                "pebble is not installed: the ACME tests need Debian's `pebble` package \
                 (tests/install-deps.sh installs it)"
            )
        });
        let dir = TempDir::new();
        let (cert, key, ca_pem, ca_der) = listener_certificate();
        let cert = dir.write("pebble.pem", &cert);
        let key = dir.write("pebble.key", &key);
        let ca_roots = dir.write("pebble-https-root.pem", &ca_pem);
        let listen = free_port();
        let management = free_port();
        let config = format!(
            r#"{{"pebble": {{
                "listenAddress": "{listen}",
                "managementListenAddress": "{management}",
                "certificate": "{}",
                "privateKey": "{}",
                "httpPort": {},
                "tlsPort": {},
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": {}
            }}}}"#,
            cert.display(),
            key.display(),
            ports.http,
            ports.https,
            validity.as_secs(),
        );
        let config = dir.write("pebble.json", &config);
        let dns = DnsStub::start();
        let log = Collected::default();

        let client = tls::client_trusting(ca_der);
        let mut pebble = Pebble {
            child: None,
            log,
            dns,
            binary,
            config,
            listen,
            directory: format!("https://{listen}/dir"),
            ca_roots,
            management,
            client,
            dir,
        };
        pebble.spawn();
        pebble
    }

    fn spawn(&mut self) {
        let mut child = Command::new(&self.binary)
            .arg("-config")
            .arg(&self.config)
            .arg("-dnsserver")
            .arg(self.dns.addr.to_string())
            // No artificial validation delays; every nonce good; every order validated
            // afresh (no authorization reuse), so a renewal proves the challenge again.
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start pebble");
        spawn_line_reader(child.stdout.take().expect("stdout"), self.log.clone());
        spawn_line_reader(child.stderr.take().expect("stderr"), self.log.clone());
        self.child = Some(child);
        // pebble logs before its listeners accept; wait until both do.
        let up = |addr: SocketAddr| {
            eventually(Duration::from_secs(10), || {
                std::net::TcpStream::connect(addr).is_ok()
            })
        };
        if !(up(self.listen) && up(self.management)) {
            panic!("pebble did not start; its log:\n{}", self.log());
        }
    }

    /// Starts a stopped pebble again, on the same ports. Like any pebble start it has
    /// forgotten every account, order and root: the CA is back, but new.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    /// Everything pebble logged so far.
    pub fn log(&self) -> String {
        self.log.snapshot().join("\n")
    }

    /// New orders pebble received: one `POST /order-plz` each.
    pub fn orders(&self) -> usize {
        self.log
            .snapshot()
            .iter()
            .filter(|l| l.contains("POST /order-plz"))
            .count()
    }

    /// The root pebble issues under (it makes a new one on every start).
    pub fn issuing_root(&self) -> CertificateDer<'static> {
        let pem = self.management_get("/roots/0");
        CertificateDer::from_pem_slice(&pem).expect("pebble's root is PEM")
    }

    /// The intermediate that signs the leaves.
    pub fn intermediate(&self) -> CertificateDer<'static> {
        let pem = self.management_get("/intermediates/0");
        CertificateDer::from_pem_slice(&pem).expect("pebble's intermediate is PEM")
    }

    fn management_get(&self, path: &str) -> Vec<u8> {
        let mut conn = tls::connect(self.management, "127.0.0.1", self.client.clone())
            .unwrap_or_else(|e| panic!("pebble management {path}: {e}"));
        let response = tls::get(&mut conn, "127.0.0.1", path);
        assert_eq!(response.status, 200, "pebble management {path}");
        response.body
    }

    /// Stops pebble (the CA is down from now on).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.stop();
        self.dns.stop.store(true, Ordering::Relaxed);
    }
}

/// A throwaway CA and a leaf for 127.0.0.1 and localhost: what pebble presents on its
/// directory and management listeners. Returns (leaf PEM, key PEM, CA PEM, CA DER).
fn listener_certificate() -> (String, String, String, CertificateDer<'static>) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "servy test: pebble's listener CA");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = params.self_signed(&ca_key).expect("CA certificate");
    let (ca_pem, ca_der) = (ca.pem(), ca.der().clone());
    let issuer = Issuer::new(params, ca_key);
    let key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("leaf params")
        .signed_by(&key, &issuer)
        .expect("leaf certificate");
    (leaf.pem(), key.serialize_pem(), ca_pem, ca_der)
}

/// A free TCP port on 127.0.0.1 for pebble (bound then released: pebble binds itself).
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The smallest DNS server pebble needs: every A question gets 127.0.0.1, every other
/// type an empty answer (so validation goes to IPv4 loopback).
struct DnsStub {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl DnsStub {
    fn start() -> DnsStub {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind DNS stub");
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let addr = socket.local_addr().expect("addr");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !stopped.load(Ordering::Relaxed) {
                let Ok((n, peer)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                if let Some(answer) = dns_answer(&buf[..n]) {
                    let _ = socket.send_to(&answer, peer);
                }
            }
        });
        DnsStub { addr, stop }
    }
}

/// RFC 1035 §4.1: the reply to a one-question query.
fn dns_answer(query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 || query[4..6] != [0, 1] {
        return None;
    }
    // The question: labels up to the root, then type and class.
    let mut end = 12;
    while *query.get(end)? != 0 {
        end += 1 + usize::from(query[end]);
    }
    let qtype = query.get(end + 1..end + 3)?;
    let question = &query[12..end + 5];
    let is_a = qtype == [0, 1];
    let mut reply = Vec::with_capacity(64);
    reply.extend_from_slice(&query[0..2]); // id
    reply.extend_from_slice(&[0x81 | (query[2] & 0x78), 0x80]); // response, RD, RA
    reply.extend_from_slice(&[0, 1, 0, u8::from(is_a), 0, 0, 0, 0]);
    reply.extend_from_slice(question);
    if is_a {
        // Name: pointer to the question; A, IN, TTL 0, 4 bytes: 127.0.0.1.
        reply.extend_from_slice(&[0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 0, 0, 4, 127, 0, 0, 1]);
    }
    Some(reply)
}

/// Polls `check` every 100 ms for up to `timeout`; true once it holds.
pub fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(100));
    }
}
