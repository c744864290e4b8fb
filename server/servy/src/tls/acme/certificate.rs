//! One issued certificate, as servy holds it: the rustls key for handshakes plus the
//! facts the renewal needs (lifetime, names, the ARI identifier).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use instant_acme::CertificateIdentifier;
use rustls::sign::CertifiedKey;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::tls::certs;

/// A certificate chain and its key, checked to belong together.
#[derive(Clone, Debug)]
pub struct Certificate {
    pub key: Arc<CertifiedKey>,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// The DNS names the leaf covers, sorted: a CA may list them in any order, and the
    /// TLS store replaces an installed certificate by its names.
    pub names: Vec<String>,
    /// Hex serial, for logs and tests.
    pub serial: String,
    /// RFC 9773's identifier; `None` when the leaf has no Authority Key Identifier.
    pub ari_id: Option<CertificateIdentifier<'static>>,
}

impl Certificate {
    /// Parses a PEM bundle: the chain (leaf first) and the private key, in any order,
    /// with the same loader and checks as certificate files.
    pub fn from_pem(pem: &[u8]) -> Result<Certificate, String> {
        let loaded = certs::from_pem(pem, pem, &rustls::crypto::ring::default_provider())
            .map_err(|e| e.to_string())?;
        let leaf = &loaded.key.cert[0];
        let (_, x509) = X509Certificate::from_der(leaf).map_err(|e| format!("certificate: {e}"))?;
        let time = |t: i64| UNIX_EPOCH + Duration::from_secs(t.max(0).unsigned_abs());
        let validity = x509.validity();
        let mut names = loaded.names;
        names.sort();
        names.dedup();
        Ok(Certificate {
            not_before: time(validity.not_before.timestamp()),
            not_after: time(validity.not_after.timestamp()),
            names,
            serial: x509.raw_serial_as_string().replace(':', ""),
            ari_id: CertificateIdentifier::try_from(leaf).ok(),
            key: loaded.key,
        })
    }

    /// True if every domain is on the certificate (a changed `acme.domains` orders anew).
    pub fn covers(&self, domains: &[String]) -> bool {
        domains.iter().all(|d| self.names.contains(d))
    }

    /// When a third of the lifetime is left: Let's Encrypt's own advice, and with its
    /// 90-day certificates that leaves 30 days of retries before anything lapses.
    pub fn renew_at(&self) -> SystemTime {
        let lifetime = self
            .not_after
            .duration_since(self.not_before)
            .unwrap_or_default();
        self.not_after - lifetime / 3
    }
}

/// Seconds since the Unix epoch, for gauges.
pub fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::certs::self_signed_pem;

    #[test]
    fn a_bundle_parses_in_either_order_and_knows_its_names() {
        let (cert, key) = self_signed_pem(&["example.org", "www.example.org"]);
        for pem in [format!("{cert}{key}"), format!("{key}{cert}")] {
            let c = Certificate::from_pem(pem.as_bytes()).unwrap();
            assert_eq!(c.names, ["example.org", "www.example.org"]);
            assert!(c.covers(&["www.example.org".into()]));
            assert!(!c.covers(&["other.example.org".into()]));
            let lifetime = c.not_after.duration_since(c.not_before).unwrap();
            assert_eq!(
                c.not_after.duration_since(c.renew_at()).unwrap(),
                lifetime / 3
            );
        }
    }

    #[test]
    fn a_foreign_key_or_a_missing_part_is_refused() {
        let (cert, _) = self_signed_pem(&["example.org"]);
        let (_, other_key) = self_signed_pem(&["example.org"]);
        let m = Certificate::from_pem(format!("{cert}{other_key}").as_bytes()).unwrap_err();
        assert!(m.contains("does not match"), "{m}");
        assert!(Certificate::from_pem(cert.as_bytes()).is_err());
        assert!(Certificate::from_pem(other_key.as_bytes()).is_err());
        assert!(Certificate::from_pem(b"garbage").is_err());
    }
}
