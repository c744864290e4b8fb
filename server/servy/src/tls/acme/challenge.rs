//! The answers to the CA's challenges while an order is open.
//!
//! - HTTP-01 (RFC 8555 §8.3): the http listener answers
//!   `/.well-known/acme-challenge/<token>` with the key authorization. The answer is also
//!   written to the shared state directory, so a replica that did not start the order
//!   answers the CA's request when the load balancer sends it there.
//! - TLS-ALPN-01 (RFC 8737): a handshake that offers `acme-tls/1` for a domain gets a
//!   self-signed certificate carrying the key authorization's digest; the TLS resolver
//!   holds it ([`Certificates::set_challenge`]). It is also written to the shared state
//!   directory, where the resolver of every replica looks for answers it does not hold.
//!
//! Lookups are rare (only the CA makes them), so a mutex is plenty.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use instant_acme::KeyAuthorization;
use rcgen::{CertificateParams, CustomExtension, KeyPair};
use rustls::sign::CertifiedKey;

use super::store::Store;
use crate::tls::Certificates;

/// Where HTTP-01 answers live (RFC 8555 §8.3).
const HTTP01_PREFIX: &str = "/.well-known/acme-challenge/";

/// Cheap to clone; shared by the order (which publishes) and the listeners (which answer).
#[derive(Clone)]
pub struct Challenges {
    inner: Arc<Mutex<Answers>>,
    certificates: Arc<Certificates>,
    store: Store,
}

#[derive(Default)]
struct Answers {
    /// token → key authorization
    http01: HashMap<String, String>,
    /// Domains with a TLS-ALPN-01 certificate in the resolver.
    tls_alpn01: Vec<String>,
}

impl Challenges {
    /// Also points the TLS resolver at the answers other replicas publish.
    pub(super) fn new(certificates: Arc<Certificates>, store: Store) -> Challenges {
        let shared = store.clone();
        certificates.set_shared_challenges(Box::new(move |domain| {
            let pem = shared.tls_alpn01(domain)?;
            certified_key(&pem)
                .inspect_err(|e| tracing::warn!(domain, error = %e, "acme: unusable TLS-ALPN-01 answer in the state directory"))
                .ok()
        }));
        Challenges {
            inner: Arc::default(),
            certificates,
            store,
        }
    }

    fn answers(&self) -> MutexGuard<'_, Answers> {
        // A panic elsewhere cannot leave the maps half-written; keep answering.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The body for an HTTP-01 request path, if it is a token of an open challenge.
    pub fn http01(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(HTTP01_PREFIX)?;
        let own = self.answers().http01.get(token).cloned();
        own.or_else(|| self.store.http01(token))
    }

    pub(super) fn publish_http01(
        &self,
        token: &str,
        key_authorization: &KeyAuthorization,
    ) -> Result<(), String> {
        self.store
            .publish_http01(token, key_authorization.as_str())
            .map_err(|e| format!("{}: {e}", self.store.dir().display()))?;
        self.answers()
            .http01
            .insert(token.to_string(), key_authorization.as_str().to_string());
        Ok(())
    }

    pub(super) fn publish_tls_alpn01(
        &self,
        domain: &str,
        key_authorization: &KeyAuthorization,
    ) -> Result<(), String> {
        let pem = validation_certificate(domain, key_authorization)?;
        let certificate = certified_key(pem.as_bytes())?;
        self.store
            .publish_tls_alpn01(&domain.to_ascii_lowercase(), &pem)
            .map_err(|e| format!("{}: {e}", self.store.dir().display()))?;
        self.answers().tls_alpn01.push(domain.to_string());
        self.certificates.set_challenge(domain, Some(certificate));
        Ok(())
    }

    /// Forgets every answer this process published: the order is over, whatever its
    /// outcome.
    pub(super) fn clear(&self) {
        let mut answers = self.answers();
        for (token, _) in answers.http01.drain() {
            self.store.clear_http01(&token);
        }
        for domain in answers.tls_alpn01.drain(..) {
            self.store.clear_tls_alpn01(&domain.to_ascii_lowercase());
            self.certificates.set_challenge(&domain, None);
        }
    }
}

/// RFC 8737 §3: a self-signed certificate for `domain` with the critical acmeIdentifier
/// extension holding SHA-256 of the key authorization; PEM, the certificate then its key.
fn validation_certificate(
    domain: &str,
    key_authorization: &KeyAuthorization,
) -> Result<String, String> {
    let mut params = CertificateParams::new(vec![domain.to_string()]).map_err(|e| e.to_string())?;
    params.custom_extensions = vec![CustomExtension::new_acme_identifier(
        key_authorization.digest().as_ref(),
    )];
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
    Ok(format!("{}{}", cert.pem(), key.serialize_pem()))
}

/// What the resolver presents, from a validation certificate's PEM (this process's, or
/// another replica's read from the state directory: both go through here). Parsed only:
/// `tls::certs::from_pem`'s pair check parses the certificate with webpki, which refuses
/// the critical acmeIdentifier extension that RFC 8737 requires.
fn certified_key(pem: &[u8]) -> Result<Arc<CertifiedKey>, String> {
    crate::tls::certs::parse_pem(pem, pem, &rustls::crypto::ring::default_provider())
        .map(Arc::new)
        .map_err(|e| e.to_string())
}
