//! Certificates that servy obtains and renews itself from an ACME CA (RFC 8555), like
//! Caddy: name the domains, and the https listener gets a certificate.
//!
//! - `certificate.rs`: one issued certificate (key, lifetime, names).
//! - `store.rs`: the state directory (account, certificate, order lease, challenge
//!   answers), shareable by replicas.
//! - `challenge.rs`: the answers the listeners give the CA.
//! - `order.rs`: one order through instant-acme.
//! - `renewal.rs`: the task that keeps the certificate current.
//!
//! Start-up never waits for the CA: a stored certificate is loaded before binding and
//! served at once; without one, handshakes for the domains fail until the first order
//! completes, while plain HTTP serves and READY is sent as usual.

mod certificate;
mod challenge;
mod order;
mod renewal;
mod store;

use std::fmt;
use std::sync::Arc;

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use tokio::task::JoinHandle;

use certificate::Certificate;
pub use challenge::Challenges;

use crate::config::AcmeConfig;
use crate::tls::Tls;
use store::Store;

/// The ACME side of servy, built once in `main`.
pub struct Acme {
    shared: Shared,
}

/// What the renewal task owns.
struct Shared {
    config: AcmeConfig,
    store: Store,
    challenges: Challenges,
    /// The certificate being served, if any (the task's own: the TLS store serves it).
    current: Option<Certificate>,
    /// Where certificates are served from.
    tls: Arc<Tls>,
    metrics: AcmeMetrics,
}

/// A state directory or CA root that cannot be used: a config error.
#[derive(Debug)]
pub struct AcmeError(String);

impl fmt::Display for AcmeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for AcmeError {}

impl Acme {
    /// Opens the state directory and installs the stored certificate, if any, so it
    /// serves from the first handshake. Talks to nobody: the CA is first contacted by
    /// the renewal task.
    pub fn new(config: AcmeConfig, registry: &Registry, tls: Arc<Tls>) -> Result<Acme, AcmeError> {
        let state_dir = config
            .state_dir
            .clone()
            .ok_or_else(|| AcmeError("acme.state_dir: not set".into()))?;
        let store = Store::open(&state_dir, &config.directory)
            .map_err(|e| AcmeError(format!("acme.state_dir = {:?}: {e}", state_dir.display())))?;
        if let Some(roots) = &config.ca_roots {
            let pem = std::fs::read(roots)
                .map_err(|e| AcmeError(format!("acme.ca_roots = {:?}: {e}", roots.display())))?;
            use rustls::pki_types::CertificateDer;
            use rustls::pki_types::pem::PemObject;
            if CertificateDer::from_pem_slice(&pem).is_err() {
                return Err(AcmeError(format!(
                    "acme.ca_roots = {:?}: no PEM certificate in it",
                    roots.display()
                )));
            }
        }
        let current = match store.certificate() {
            Ok(Some(cert)) => {
                tracing::info!(
                    serial = cert.serial,
                    names = ?cert.names,
                    not_after = certificate::unix_seconds(cert.not_after),
                    "acme: serving the stored certificate"
                );
                install(&tls, &cert);
                Some(cert)
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!(error = %e, "acme: the stored certificate is unusable; ordering a new one");
                None
            }
        };
        Ok(Acme {
            shared: Shared {
                config,
                challenges: Challenges::new(tls.certificates(), store.clone()),
                current,
                tls,
                metrics: AcmeMetrics::register(registry),
                store,
            },
        })
    }

    /// The answers the listeners give the CA.
    pub fn challenges(&self) -> Challenges {
        self.shared.challenges.clone()
    }

    /// Starts the renewal task.
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(renewal::run(self.shared))
    }
}

/// Serves `cert` for its names from the next handshake on (open connections keep
/// theirs), and exports its expiry as `servy_tls_certificate_expiry_timestamp_seconds`.
fn install(tls: &Tls, cert: &Certificate) {
    tls.certificates().install(crate::tls::Loaded {
        names: cert.names.clone(),
        not_after: certificate::unix_seconds(cert.not_after),
        key: cert.key.clone(),
    });
    tls.export_expiries();
}

/// `servy_acme_*`: what the renewal task did and will do.
#[derive(Clone)]
struct AcmeMetrics {
    /// `servy_acme_orders_total{result}`: `ok`, or the failure (`account`, `invalid`, ...).
    orders: IntCounterVec,
    /// `servy_acme_next_renewal_timestamp_seconds`: when the next order is due (or retried).
    next_renewal: IntGauge,
    /// `servy_acme_consecutive_failures`: failed orders since the last success.
    consecutive_failures: IntGauge,
}

impl AcmeMetrics {
    fn register(registry: &Registry) -> AcmeMetrics {
        let gauge = |name: &str, help: &str| IntGauge::new(name, help).expect("valid metric");
        let metrics = AcmeMetrics {
            orders: IntCounterVec::new(
                Opts::new("servy_acme_orders_total", "ACME orders, by result."),
                &["result"],
            )
            .expect("valid metric"),
            next_renewal: gauge(
                "servy_acme_next_renewal_timestamp_seconds",
                "Unix time of the next ACME order (renewal, or retry after a failure).",
            ),
            consecutive_failures: gauge(
                "servy_acme_consecutive_failures",
                "Failed ACME orders since the last success.",
            ),
        };
        // `ok` exists from the start, so `rate()` and alerts see a zero, not a gap.
        metrics.orders.with_label_values(&["ok"]);
        for c in [
            Box::new(metrics.orders.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(metrics.next_renewal.clone()),
            Box::new(metrics.consecutive_failures.clone()),
        ] {
            registry.register(c).expect("unique metric names");
        }
        metrics
    }
}
