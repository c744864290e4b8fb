//! Certificates from PEM files: read the chain and the key, check that they belong
//! together, and note what the certificate covers and when it lapses.
//!
//! Paths arrive already resolved (`config.rs` resolves a relative name against
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

/// Loads one chain + key pair.
pub fn load(files: &CertificateFiles, provider: &CryptoProvider) -> Result<Loaded, CertError> {
    let chain = read_chain(&files.cert)?;
    let key = read_key(&files.key)?;
    let (names, not_after) = describe(&chain[0]).map_err(|why| CertError::Parse {
        path: files.cert.clone(),
        why,
    })?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| CertError::Parse {
            path: files.key.clone(),
            why: format!("unusable private key: {e}"),
        })?;
    let certified = CertifiedKey::new(chain, key);
    // `Unknown` means the key type cannot say; a real mismatch is refused.
    if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
        certified.keys_match()
    {
        return Err(CertError::KeyMismatch {
            cert: files.cert.clone(),
            key: files.key.clone(),
        });
    }
    Ok(Loaded {
        names,
        not_after,
        key: Arc::new(certified),
    })
}

/// A chain + key held in memory (an ACME order's result) as a [`Loaded`], with the same
/// checks as files get; the error says which half is wrong.
#[allow(dead_code)] // the run-time API for ACME (issue 10)
pub fn from_pem(chain: &[u8], key: &[u8], provider: &CryptoProvider) -> Result<Loaded, String> {
    let chain = CertificateDer::pem_slice_iter(chain)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("certificate chain: {e}"))?;
    let Some(leaf) = chain.first() else {
        return Err("certificate chain: no CERTIFICATE block".into());
    };
    let (names, not_after) = describe(leaf)?;
    let key = PrivateKeyDer::from_pem_slice(key).map_err(|e| format!("private key: {e}"))?;
    let key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("private key: {e}"))?;
    let certified = CertifiedKey::new(chain, key);
    if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
        certified.keys_match()
    {
        return Err("the private key does not match the certificate".into());
    }
    Ok(Loaded {
        names,
        not_after,
        key: Arc::new(certified),
    })
}

fn read(path: &Path) -> Result<Vec<u8>, CertError> {
    std::fs::read(path).map_err(|error| CertError::Read {
        path: path.to_path_buf(),
        error,
    })
}

/// The end-entity certificate first, then its intermediates (a `fullchain.pem`).
fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertError> {
    let parse = |why: String| CertError::Parse {
        path: path.to_path_buf(),
        why,
    };
    let chain = CertificateDer::pem_slice_iter(&read(path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| parse(format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(parse("no CERTIFICATE block".into()));
    }
    Ok(chain)
}

/// PKCS#8, PKCS#1 (RSA) or SEC1 (EC): whatever the first key block is.
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertError> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|e| CertError::Parse {
        path: path.to_path_buf(),
        why: format!("no usable PEM private key: {e}"),
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
        assert!(e.contains("does not match"), "{e}");
        let e = from_pem(b"nothing", other_key.as_bytes(), &provider).unwrap_err();
        assert!(e.contains("no CERTIFICATE"), "{e}");
    }
}
