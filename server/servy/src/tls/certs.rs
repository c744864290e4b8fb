//! Certificates from PEM files: read the chain and the key, check that they belong
//! together, and note what the certificate covers and when it lapses.
//!
//! Paths arrive already resolved (`config/mod.rs` resolves a relative name against
//! `$CREDENTIALS_DIRECTORY`), so this file only reads what it is told to.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

use crate::config::CertificateFiles;

/// A certificate ready to serve, with what the resolver and the metrics need to know.
#[derive(Clone, Debug)]
pub struct Loaded {
    /// DNS names the certificate covers (SANs, else the subject CN), lower-case;
    /// `*.example.org` for a wildcard.
    pub names: Vec<String>,
    /// Unix time of `notAfter`.
    pub not_after: i64,
    pub key: Arc<CertifiedKey>,
}

impl Loaded {
    /// The name shown in logs and the expiry metric: the first name, else the file.
    pub fn label(&self) -> &str {
        self.names.first().map_or("", String::as_str)
    }
}

/// Why a certificate could not be loaded. The variant is the `result` label of
/// `servy_tls_reloads_total`; `Display` names the file.
#[derive(Debug)]
pub enum CertError {
    /// The file is missing or unreadable.
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// Not PEM, no certificate / key in it, or a certificate rustls or x509 cannot parse.
    Parse { path: PathBuf, why: String },
    /// The key is not the one the certificate was issued for.
    KeyMismatch { cert: PathBuf, key: PathBuf },
}

impl CertError {
    /// Bounded label for the reload counter.
    pub fn kind(&self) -> &'static str {
        match self {
            CertError::Read { .. } => "read",
            CertError::Parse { .. } => "parse",
            CertError::KeyMismatch { .. } => "key_mismatch",
        }
    }
}

impl fmt::Display for CertError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CertError::Read { path, error } => write!(f, "reading {}: {error}", path.display()),
            CertError::Parse { path, why } => write!(f, "{}: {why}", path.display()),
            CertError::KeyMismatch { cert, key } => write!(
                f,
                "{}: the private key does not match the certificate in {}",
                key.display(),
                cert.display()
            ),
        }
    }
}

impl std::error::Error for CertError {}

/// Loads one chain + key pair from its two files.
pub fn load(files: &CertificateFiles, provider: &CryptoProvider) -> Result<Loaded, CertError> {
    let chain = read(&files.cert)?;
    let key = read(&files.key)?;
    from_pem(&chain, &key, provider).map_err(|e| match e {
        PemError::Chain(why) => CertError::Parse {
            path: files.cert.clone(),
            why,
        },
        PemError::Key(why) => CertError::Parse {
            path: files.key.clone(),
            why,
        },
        PemError::Mismatch => CertError::KeyMismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        },
    })
}

/// Which half of a PEM pair is wrong.
#[derive(Debug, PartialEq, Eq)]
pub enum PemError {
    Chain(String),
    Key(String),
    /// The key is not the one the certificate was issued for, or rustls cannot tell.
    Mismatch,
}

impl fmt::Display for PemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemError::Chain(why) => write!(f, "certificate chain: {why}"),
            PemError::Key(why) => write!(f, "private key: {why}"),
            PemError::Mismatch => f.write_str("the private key does not match the certificate"),
        }
    }
}

/// The one PEM loader, for files and ACME alike: a chain (leaf first, then its
/// intermediates, as in a `fullchain.pem`) and a PKCS#8, PKCS#1 or SEC1 key (the first
/// key block), checked to belong together. Either input may hold both parts (an ACME
/// bundle): only certificate blocks are read from `chain`, only the key from `key`.
///
/// A pair whose match rustls cannot confirm (`InconsistentKeys::Unknown`) is refused like
/// a mismatch: serving it would fail every handshake instead of failing the load.
pub fn from_pem(chain: &[u8], key: &[u8], provider: &CryptoProvider) -> Result<Loaded, PemError> {
    let certified = parse_pem(chain, key, provider)?;
    let (names, not_after) = describe(&certified.cert[0]).map_err(PemError::Chain)?;
    certified.keys_match().map_err(|_| PemError::Mismatch)?;
    Ok(Loaded {
        names,
        not_after,
        key: Arc::new(certified),
    })
}

/// The PEM parsing of [`from_pem`] without its checks: a certificate servy made itself
/// (an ACME TLS-ALPN-01 answer, whose critical extension webpki cannot parse) needs only
/// this. The chain is never empty.
pub fn parse_pem(
    chain: &[u8],
    key: &[u8],
    provider: &CryptoProvider,
) -> Result<CertifiedKey, PemError> {
    let chain = CertificateDer::pem_slice_iter(chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Chain(format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(PemError::Chain("no CERTIFICATE block".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| PemError::Key(format!("no usable PEM private key: {e}")))?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| PemError::Key(format!("unusable private key: {e}")))?;
    Ok(CertifiedKey::new(chain, key))
}

fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|error| CertError::Read {
        path: path.to_path_buf(),
        error,
    })
}

/// The DNS names a certificate covers, and its `notAfter` as Unix time.
pub fn describe(cert: &CertificateDer<'_>) -> Result<(Vec<String>, i64), String> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    Ok((dns_names(&x509)?, x509.validity().not_after.timestamp()))
}

/// The DNS names a parsed certificate covers, lower-cased: its subjectAltNames, or its
/// CN when it has none. Shared with ACME, which reads the rest of an issued leaf itself.
pub fn dns_names(
    x509: &x509_parser::certificate::X509Certificate<'_>,
) -> Result<Vec<String>, String> {
    let mut names: Vec<String> = match x509.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_string()),
                _ => None,
            })
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => return Err(format!("unreadable subjectAltName: {e}")),
    };
    // Clients ignore the CN when SANs exist (RFC 6125); use it only for old certificates.
    if names.is_empty() {
        names.extend(
            x509.subject()
                .iter_common_name()
                .filter_map(|cn| cn.as_str().ok().map(str::to_string)),
        );
    }
    for name in &mut names {
        name.make_ascii_lowercase();
    }
    Ok(names)
}

/// A self-signed certificate for `names` and its key, as PEM: for the TLS unit tests.
#[cfg(test)]
pub(crate) fn self_signed_pem(names: &[&str]) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let cert = rcgen::CertificateParams::new(names)
        .unwrap()
        .self_signed(&key)
        .unwrap();
    (cert.pem(), key.serialize_pem())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_in_memory_gives_names_and_expiry() {
        let provider = rustls::crypto::ring::default_provider();
        let (chain, key) = self_signed_pem(&["Example.ORG", "*.example.org"]);
        let loaded = from_pem(chain.as_bytes(), key.as_bytes(), &provider).unwrap();
        assert_eq!(loaded.names, ["example.org", "*.example.org"]);
        assert!(
            loaded.not_after > 4_000_000_000,
            "rcgen's default notAfter is 4096"
        );
    }

    #[test]
    fn pem_in_memory_refuses_a_foreign_key_and_garbage() {
        let provider = rustls::crypto::ring::default_provider();
        let (chain, _) = self_signed_pem(&["a.test"]);
        let (_, other_key) = self_signed_pem(&["b.test"]);
        let e = from_pem(chain.as_bytes(), other_key.as_bytes(), &provider).unwrap_err();
        assert_eq!(e, PemError::Mismatch);
        let e = from_pem(b"nothing", other_key.as_bytes(), &provider).unwrap_err();
        assert!(e.to_string().contains("no CERTIFICATE"), "{e}");
        let e = from_pem(chain.as_bytes(), b"nothing", &provider).unwrap_err();
        assert!(matches!(e, PemError::Key(_)), "{e}");
    }

    /// A key whose public half rustls cannot see, so it cannot say whether the pair
    /// matches (`InconsistentKeys::Unknown`).
    #[derive(Debug)]
    struct Opaque(Arc<dyn rustls::sign::SigningKey>);

    impl rustls::sign::SigningKey for Opaque {
        fn choose_scheme(
            &self,
            offered: &[rustls::SignatureScheme],
        ) -> Option<Box<dyn rustls::sign::Signer>> {
            self.0.choose_scheme(offered)
        }

        fn algorithm(&self) -> rustls::SignatureAlgorithm {
            self.0.algorithm()
        }
    }

    #[derive(Debug)]
    struct OpaqueKeys;

    impl rustls::crypto::KeyProvider for OpaqueKeys {
        fn load_private_key(
            &self,
            key: PrivateKeyDer<'static>,
        ) -> Result<Arc<dyn rustls::sign::SigningKey>, rustls::Error> {
            let ring = rustls::crypto::ring::default_provider();
            Ok(Arc::new(Opaque(ring.key_provider.load_private_key(key)?)))
        }
    }

    #[test]
    fn a_pair_whose_match_cannot_be_confirmed_is_refused() {
        let provider = CryptoProvider {
            key_provider: &OpaqueKeys,
            ..rustls::crypto::ring::default_provider()
        };
        let (chain, key) = self_signed_pem(&["a.test"]);
        let e = from_pem(chain.as_bytes(), key.as_bytes(), &provider).unwrap_err();
        assert_eq!(e, PemError::Mismatch);
    }
}
