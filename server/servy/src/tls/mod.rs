//! HTTPS: the rustls server configuration, the certificates it presents, and the
//! handshake that turns an accepted `TcpStream` into a TLS stream plus the protocol ALPN
//! chose. Sits between the https listener and HTTP (`conn/mod.rs`).
//!
//! How ACME plugs in: [`Tls::certificates`] is the shared [`Certificates`] store.
//! - A certificate obtained at run time goes in with [`Certificates::install`]
//!   (built by [`certs::from_pem`], the one PEM loader); it wins
//!   over a file for the names it covers and survives SIGHUP reloads of the files.
//! - A TLS-ALPN-01 answer goes in with [`Certificates::set_challenge`]; a ClientHello
//!   offering `acme-tls/1` gets only that certificate, and the connection is closed
//!   right after the handshake ([`Protocol::AcmeChallenge`]).
//! - Call [`Tls::export_expiries`] after installing, so the expiry metric follows.

pub mod acme;
pub mod certs;
mod resolver;
pub mod watch;

use std::io;
use std::sync::Arc;
use std::time::Duration;

use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};
use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::server::ServerSessionMemoryCache;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use crate::config::{CertificateFiles, HttpsConfig};
pub use certs::{CertError, Loaded};
pub use resolver::{ACME_TLS_ALPN, Certificates};

/// Sessions a handshake can resume from the server-side cache (TLS 1.2 session IDs
/// and TLS 1.3 stateful resumption). A few hundred bytes each.
const SESSION_CACHE: usize = 4096;

/// What a connection speaks: what ALPN agreed on in the handshake, or, on a plain
/// connection, what its first bytes showed (`conn` sniffs them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http1,
    Http2,
    /// An ACME validator checking a TLS-ALPN-01 answer: it needs the handshake only.
    AcmeChallenge,
}

/// The TLS side of servy, built once in `main`.
pub struct Tls {
    files: Vec<CertificateFiles>,
    provider: Arc<CryptoProvider>,
    certificates: Arc<Certificates>,
    acceptor: Acceptor,
    reloads: IntCounterVec,
    expiry: IntGaugeVec,
}

impl Tls {
    /// Loads every certificate (a failure is a config error naming the file) and
    /// registers the TLS metrics.
    pub fn new(config: &HttpsConfig, registry: &Registry) -> Result<Tls, CertError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let loaded = load_all(&config.certificates, &provider)?;
        let certificates = Certificates::new(loaded);
        let server = server_config(provider.clone(), certificates.clone());
        let acceptor = Acceptor {
            inner: TlsAcceptor::from(Arc::new(server)),
            handshake_timeout: config.handshake_timeout,
        };
        let reloads = IntCounterVec::new(
            Opts::new(
                "servy_tls_reloads_total",
                "Certificate reloads (SIGHUP), by result: ok, read, parse, key_mismatch.",
            ),
            &["result"],
        )
        .expect("valid metric");
        let expiry = IntGaugeVec::new(
            Opts::new(
                "servy_tls_certificate_expiry_timestamp_seconds",
                "Unix time at which each served certificate expires (notAfter).",
            ),
            &["name"],
        )
        .expect("valid metric");
        registry
            .register(Box::new(reloads.clone()))
            .expect("metric names are unique");
        registry
            .register(Box::new(expiry.clone()))
            .expect("metric names are unique");
        let tls = Tls {
            files: config.certificates.clone(),
            provider,
            certificates,
            acceptor,
            reloads,
            expiry,
        };
        tls.export_expiries();
        Ok(tls)
    }

    pub fn acceptor(&self) -> Acceptor {
        self.acceptor.clone()
    }

    /// The TLS side of HTTP/3 (`conn/http3.rs`): TLS 1.3 only (QUIC has no other), ALPN
    /// `h3`, and the same resolver, so a reload or an ACME renewal reaches QUIC too.
    /// 0-RTT stays off: `max_early_data_size` is rustls' default, 0 (replayable requests
    /// are not worth a round trip saved on a static site).
    pub fn quic_config(&self) -> ServerConfig {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])
            .expect("ring supports TLS 1.3")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(resolver::Resolver(self.certificates.clone())));
        config.alpn_protocols = vec![b"h3".to_vec()];
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
        if let Ok(ticketer) = rustls::crypto::ring::Ticketer::new() {
            config.ticketer = ticketer;
        }
        debug_assert_eq!(config.max_early_data_size, 0, "0-RTT stays off");
        config
    }

    pub fn certificates(&self) -> Arc<Certificates> {
        self.certificates.clone()
    }

    /// The configured certificate files (resolved against `$CREDENTIALS_DIRECTORY`).
    pub fn files(&self) -> &[CertificateFiles] {
        &self.files
    }

    /// Re-reads every certificate file. All of them load, and are swapped in together,
    /// or none is: the old ones keep serving and the reason is returned (and counted).
    /// New handshakes see the result; open connections keep what they negotiated.
    pub fn reload(&self) -> Result<(), CertError> {
        let result = load_all(&self.files, &self.provider);
        let label = match &result {
            Ok(_) => "ok",
            Err(e) => e.kind(),
        };
        self.reloads.with_label_values(&[label]).inc();
        self.certificates.replace_files(result?);
        self.export_expiries();
        Ok(())
    }

    /// Sets `servy_tls_certificate_expiry_timestamp_seconds` to the certificates served now.
    pub fn export_expiries(&self) {
        self.expiry.reset();
        for (name, not_after) in self.certificates.expiries() {
            self.expiry.with_label_values(&[&name]).set(not_after);
        }
    }
}

fn load_all(
    files: &[CertificateFiles],
    provider: &CryptoProvider,
) -> Result<Vec<Loaded>, CertError> {
    files.iter().map(|f| certs::load(f, provider)).collect()
}

/// TLS 1.3 and 1.2 with rustls' default suites (all forward-secret AEADs), ALPN
/// deciding HTTP/2 or HTTP/1.1, and resumption by both tickets and a session cache.
fn server_config(provider: Arc<CryptoProvider>, certificates: Arc<Certificates>) -> ServerConfig {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver::Resolver(certificates)));
    // Server preference: h2 first. `acme-tls/1` last: only a validator offers it.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    // Stateless tickets with a rotating key: resumption that survives a full cache.
    match rustls::crypto::ring::Ticketer::new() {
        Ok(ticketer) => config.ticketer = ticketer,
        Err(e) => tracing::warn!(error = %e, "no session tickets; the session cache still resumes"),
    }
    config
}

/// Turns an accepted connection into TLS; cheap to clone, one per listener.
#[derive(Clone)]
pub struct Acceptor {
    inner: TlsAcceptor,
    handshake_timeout: Duration,
}

impl Acceptor {
    /// Runs the handshake under its own timeout, so a client that connects and never
    /// finishes the handshake is closed.
    pub async fn accept(&self, stream: TcpStream) -> io::Result<(TlsStream<TcpStream>, Protocol)> {
        let tls = tokio::time::timeout(self.handshake_timeout, self.inner.accept(stream))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))??;
        let protocol = match tls.get_ref().1.alpn_protocol() {
            Some(b"h2") => Protocol::Http2,
            Some(p) if p == ACME_TLS_ALPN => Protocol::AcmeChallenge,
            _ => Protocol::Http1,
        };
        Ok((tls, protocol))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quic_gets_alpn_h3_and_no_0rtt() {
        let tls = Tls::new(&HttpsConfig::default(), &Registry::new()).expect("no files to load");
        let quic = tls.quic_config();
        assert_eq!(quic.alpn_protocols, vec![b"h3".to_vec()]);
        assert_eq!(quic.max_early_data_size, 0, "0-RTT stays off");
    }
}
