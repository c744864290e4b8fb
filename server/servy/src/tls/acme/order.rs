//! One ACME order, start to finish, with instant-acme doing the protocol: the account
//! (stored, or created once), the order, one challenge per authorization, finalization
//! with a fresh key, and the issued chain.

use std::fmt;
use std::time::Duration;

use instant_acme::{
    Account, AuthorizationStatus, ChallengeType, Identifier, NewAccount, NewOrder, OrderStatus,
    RetryPolicy,
};
use rcgen::{CertificateParams, DistinguishedName, KeyPair};

use super::challenge::Challenges;
use super::store::Store;
use crate::config::{AcmeChallenge, AcmeConfig};

/// How long the CA may take to validate, and then to issue. Let's Encrypt takes
/// seconds; past this the order is a failure and the backoff takes over.
const VALIDATION_TIMEOUT: Duration = Duration::from_secs(90);

/// Why an order failed. The variant is the `result` label of
/// `servy_acme_orders_total` and the log field.
#[derive(Debug)]
pub enum OrderError {
    /// The CA's directory or account endpoint (down, refused, unreachable).
    Account(String),
    /// The CA no longer knows the stored account (deactivated, or a CA that lost its
    /// state): a new one is made on the next attempt.
    AccountGone(String),
    /// Creating the order.
    Order(String),
    /// Publishing or announcing a challenge answer.
    Challenge(String),
    /// The CA could not validate a domain (wrong DNS, port not reachable, ...).
    Invalid(String),
    /// Validation or issuance took longer than [`VALIDATION_TIMEOUT`], or the whole
    /// attempt longer than the renewal task allows (a CA that accepts and never answers).
    Timeout(Duration),
    /// Sending the CSR or fetching the certificate.
    Finalize(String),
    /// The issued chain is unusable, or could not be stored.
    Store(String),
}

impl OrderError {
    pub fn label(&self) -> &'static str {
        match self {
            OrderError::Account(_) | OrderError::AccountGone(_) => "account",
            OrderError::Order(_) => "order",
            OrderError::Challenge(_) => "challenge",
            OrderError::Invalid(_) => "invalid",
            OrderError::Timeout(_) => "timeout",
            OrderError::Finalize(_) => "finalize",
            OrderError::Store(_) => "store",
        }
    }
}

impl fmt::Display for OrderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OrderError::Timeout(limit) => write!(f, "no answer or no certificate within {limit:?}"),
            OrderError::Account(m)
            | OrderError::AccountGone(m)
            | OrderError::Order(m)
            | OrderError::Challenge(m)
            | OrderError::Invalid(m)
            | OrderError::Finalize(m)
            | OrderError::Store(m) => f.write_str(m),
        }
    }
}

/// The stored account, or a new one (stored before it is used, so a crash after
/// creating it does not create another).
pub async fn account(config: &AcmeConfig, store: &Store) -> Result<Account, OrderError> {
    let builder = || match &config.ca_roots {
        Some(roots) => Account::builder_with_root(roots),
        None => Account::builder(),
    };
    let builder =
        builder().map_err(|e| OrderError::Account(format!("HTTP client: {}", chain(&e))))?;
    if let Some(credentials) = store.account().map_err(OrderError::Account)? {
        tracing::debug!("acme: using the stored account");
        return builder
            .from_credentials(credentials)
            .await
            .map_err(|e| OrderError::Account(format!("{}: {}", config.directory, chain(&e))));
    }
    let contact = config.email.as_ref().map(|e| format!("mailto:{e}"));
    let contact: Vec<&str> = contact.iter().map(String::as_str).collect();
    let (account, credentials) = builder
        .create(
            &NewAccount {
                contact: &contact,
                // The CA's terms are accepted by configuring its directory.
                terms_of_service_agreed: true,
                only_return_existing: false,
            },
            config.directory.clone(),
            None,
        )
        .await
        .map_err(|e| OrderError::Account(format!("{}: {}", config.directory, chain(&e))))?;
    store
        .save_account(&credentials)
        .map_err(|e| OrderError::Store(format!("saving the account: {e}")))?;
    tracing::info!(id = account.id(), "acme: account created");
    Ok(account)
}

/// The stored account, if there is one and the CA answers; `None` otherwise.
pub async fn stored_account(config: &AcmeConfig, store: &Store) -> Option<Account> {
    let credentials = store.account().ok()??;
    let builder = match &config.ca_roots {
        Some(roots) => Account::builder_with_root(roots),
        None => Account::builder(),
    };
    builder.ok()?.from_credentials(credentials).await.ok()
}

/// A chain and its private key, as PEM.
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

/// Orders a certificate for `config.domains`, answering with `config.challenge`.
pub async fn order(
    account: &Account,
    config: &AcmeConfig,
    challenges: &Challenges,
) -> Result<Issued, OrderError> {
    // Whatever happens below, no answer outlives the order.
    struct Clear<'a>(&'a Challenges);
    impl Drop for Clear<'_> {
        fn drop(&mut self) {
            self.0.clear();
        }
    }
    let _clear = Clear(challenges);

    let identifiers: Vec<Identifier> = config
        .domains
        .iter()
        .map(|d| Identifier::Dns(d.clone()))
        .collect();
    let mut order = account
        .new_order(&NewOrder::new(&identifiers))
        .await
        .map_err(|e| match &e {
            // RFC 8555 §7.3.1: the account URL no longer names an account.
            instant_acme::Error::Api(problem)
                if problem.r#type.as_deref()
                    == Some("urn:ietf:params:acme:error:accountDoesNotExist") =>
            {
                OrderError::AccountGone(chain(&e))
            }
            _ => OrderError::Order(chain(&e)),
        })?;
    tracing::info!(url = order.url(), domains = ?config.domains, "acme: order created");

    let kind = match config.challenge {
        AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        AcmeChallenge::Http01 => ChallengeType::Http01,
    };
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization
            .map_err(|e| OrderError::Order(format!("authorization: {}", chain(&e))))?;
        let domain = authorization.identifier().to_string();
        match authorization.status {
            AuthorizationStatus::Pending => {}
            // Still valid from an earlier order: nothing to prove.
            AuthorizationStatus::Valid => continue,
            status => {
                return Err(OrderError::Invalid(format!(
                    "authorization for {domain} is {status:?}"
                )));
            }
        }
        let mut challenge = authorization.challenge(kind.clone()).ok_or_else(|| {
            OrderError::Challenge(format!("the CA offers no {kind:?} challenge for {domain}"))
        })?;
        let key_authorization = challenge.key_authorization();
        match kind {
            ChallengeType::TlsAlpn01 => challenges
                .publish_tls_alpn01(&domain, &key_authorization)
                .map_err(OrderError::Challenge)?,
            _ => challenges
                .publish_http01(&challenge.token, &key_authorization)
                .map_err(OrderError::Challenge)?,
        }
        challenge
            .set_ready()
            .await
            .map_err(|e| OrderError::Challenge(format!("{domain}: {}", chain(&e))))?;
        tracing::info!(domain, challenge = ?kind, "acme: challenge answered");
    }

    let retries = RetryPolicy::new()
        .initial_delay(Duration::from_millis(250))
        .timeout(VALIDATION_TIMEOUT);
    let status = order.poll_ready(&retries).await.map_err(|e| match e {
        instant_acme::Error::Timeout(_) => OrderError::Timeout(VALIDATION_TIMEOUT),
        e => OrderError::Invalid(chain(&e)),
    })?;
    if status != OrderStatus::Ready {
        let why = order
            .state()
            .error
            .as_ref()
            .map_or_else(|| format!("{status:?}"), |p| p.to_string());
        return Err(OrderError::Invalid(format!("order is {status:?}: {why}")));
    }
    tracing::info!("acme: domains validated; finalizing");

    let key = KeyPair::generate().map_err(|e| OrderError::Finalize(e.to_string()))?;
    let mut params = CertificateParams::new(config.domains.clone())
        .map_err(|e| OrderError::Finalize(e.to_string()))?;
    params.distinguished_name = DistinguishedName::new();
    let csr = params
        .serialize_request(&key)
        .map_err(|e| OrderError::Finalize(e.to_string()))?;
    order
        .finalize_csr(csr.der())
        .await
        .map_err(|e| OrderError::Finalize(chain(&e)))?;
    let chain_pem = order
        .poll_certificate(&retries)
        .await
        .map_err(|e| match e {
            instant_acme::Error::Timeout(_) => OrderError::Timeout(VALIDATION_TIMEOUT),
            e => OrderError::Finalize(chain(&e)),
        })?;
    Ok(Issued {
        chain_pem,
        key_pem: key.serialize_pem(),
    })
}

/// An error and its sources on one line: hyper's "client error (Connect)" alone does not
/// say that the connection was refused.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    text
}
