//! TLS for the tests: a throwaway CA and leaf certificates made with rcgen, and a
//! blocking rustls client that trusts only that CA and reports what servy presented.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SerialNumber,
};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::TempDir;
use super::http::{Response, parse};

/// A test CA. Leaves it issues are written as `fullchain.pem` / `key.pem` style files.
pub struct Pki {
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// One issued certificate, written to disk.
pub struct Leaf {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The leaf's DER, to compare with what servy presents.
    pub der: CertificateDer<'static>,
}

impl Pki {
    pub fn new() -> Pki {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "servy test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = params.self_signed(&key).expect("CA certificate");
        Pki {
            ca_der: ca.der().clone(),
            ca_pem: ca.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Issues a leaf for `names` with `serial`, expiring at midnight UTC of `not_after`
    /// (year, month, day), and writes `<stem>.pem` (leaf then CA) and `<stem>.key`.
    pub fn issue(
        &self,
        dir: &TempDir,
        stem: &str,
        names: &[&str],
        serial: u64,
        not_after: (i32, u8, u8),
    ) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.serial_number = Some(SerialNumber::from(serial));
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        let chain = format!("{}{}", cert.pem(), self.ca_pem);
        Leaf {
            cert: dir.write(&format!("{stem}.pem"), &chain),
            key: dir.write(&format!("{stem}.key"), &key.serialize_pem()),
            der: cert.der().clone(),
        }
    }

    /// A client trusting only this CA, offering `alpn`, TLS 1.3 and 1.2.
    pub fn client(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        self.client_for(alpn, rustls::DEFAULT_VERSIONS)
    }

    /// As [`Pki::client`], TLS 1.2 only.
    pub fn client_tls12(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        self.client_for(alpn, &[&rustls::version::TLS12])
    }

    fn client_for(
        &self,
        alpn: &[&[u8]],
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der.clone()).expect("CA is a valid root");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)
            .expect("supported versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Arc::new(config)
    }
}

/// A client that trusts only `root` (any CA other than a `Pki`'s: pebble's, a stranger's),
/// offering HTTP/1.1.
pub fn client_trusting(root: CertificateDer<'static>) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    roots.add(root).expect("a valid root");
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// An open TLS connection to servy, handshake done.
pub type Tls = StreamOwned<ClientConnection, TcpStream>;

/// Connects to `addr`, sends SNI `name`, and completes the handshake.
pub fn connect(addr: SocketAddr, name: &str, config: Arc<ClientConfig>) -> Result<Tls, String> {
    let server_name = ServerName::try_from(name.to_string()).map_err(|e| e.to_string())?;
    let mut conn = ClientConnection::new(config, server_name).map_err(|e| e.to_string())?;
    let mut tcp = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .map_err(|e| format!("handshake: {e}"))?;
    }
    Ok(StreamOwned::new(conn, tcp))
}

/// The leaf certificate the server presented.
pub fn peer_leaf(tls: &Tls) -> CertificateDer<'static> {
    tls.conn.peer_certificates().expect("a certificate")[0].clone()
}

/// One HTTP/1.1 request on `tls` with `Connection: close`; the response.
pub fn get(tls: &mut Tls, host: &str, path: &str) -> Response {
    let req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    tls.write_all(req.as_bytes()).expect("send request");
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        match tls.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
    parse(&bytes, false).unwrap_or_else(|e| panic!("GET {path} over TLS: {e}"))
}

/// One keep-alive HTTP/1.1 request; reads exactly one response (Content-Length bodies).
pub fn get_keep_alive(tls: &mut Tls, host: &str, path: &str) -> Response {
    let req = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\n\r\n");
    tls.write_all(req.as_bytes()).expect("send request");
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16384];
    loop {
        let n = tls.read(&mut buf).expect("read response");
        assert!(n > 0, "connection closed mid-response");
        bytes.extend_from_slice(&buf[..n]);
        let (responses, _) = super::http::parse_pipelined(&bytes);
        if let Some(r) = responses.into_iter().next() {
            return r;
        }
    }
}
