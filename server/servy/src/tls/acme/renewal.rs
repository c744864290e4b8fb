//! The renewal task: sleeps until the certificate is due, orders, stores, installs;
//! on failure retries with a doubling backoff while the current certificate serves on.
//!
//! Due means: the CA's ACME Renewal Information window (RFC 9773) when the CA offers it,
//! else a third of the lifetime left. With no certificate, or one that lacks a
//! configured domain, it is due at once.
//!
//! Replicas sharing the state directory order once between them: the one that takes the
//! order lease (see `store.rs`) orders; the others wait for the certificate it stores and
//! serve that. A holder that dies leaves a lease nobody renews, taken over after [`LEASE`].

use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, SystemTime};

use instant_acme::Account;

use super::certificate::{Certificate, unix_seconds};
use super::order::{self, OrderError};
use super::store::LeaseLost;
use super::{Shared, install};

/// The longest wait between two failed orders: a CA that is down for a day is retried
/// four times an hour, well inside Let's Encrypt's limits.
const BACKOFF_MAX: Duration = Duration::from_secs(6 * 3600);

/// How long an order lease lasts without renewal; the holder renews it every third.
const LEASE: Duration = Duration::from_secs(30);

/// How often a replica waiting on another's order looks for the stored result.
const FOLLOW_POLL: Duration = Duration::from_secs(1);

/// How often ARI is asked again at most, whatever Retry-After says.
const ARI_RECHECK_MAX: Duration = Duration::from_secs(24 * 3600);

/// The longest one attempt may take, account and polls included. instant-acme's HTTP
/// client has no timeout of its own: a CA that accepts and never answers must become a
/// failure (and a backoff), not a renewal task stuck for ever.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(300);

/// The same for the quick questions asked while the certificate is current (the
/// account's directory, ARI).
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn run(shared: Shared) {
    let Shared {
        config,
        store,
        challenges,
        mut current,
        tls,
        metrics,
    } = shared;
    let mut account: Option<Account> = None;
    let mut failures: u32 = 0;
    loop {
        let now = SystemTime::now();
        let (due, recheck) = match &current {
            Some(cert) if cert.covers(&config.domains) => {
                if account.is_none() {
                    // For ARI only; a CA that is down now just means the fallback rule.
                    account =
                        tokio::time::timeout(QUERY_TIMEOUT, order::stored_account(&config, &store))
                            .await
                            .ok()
                            .flatten();
                }
                due(cert, account.as_ref()).await
            }
            Some(_) => {
                tracing::info!(domains = ?config.domains, "acme: the stored certificate lacks a configured domain; ordering");
                (now, None)
            }
            None => (now, None),
        };
        let wake = recheck.map_or(due, |r| due.min(now + r));
        if wake > now {
            metrics.next_renewal.set(unix_seconds(due));
            tracing::info!(
                renew_in = ?due.duration_since(now).unwrap_or_default(),
                "acme: certificate is current; next renewal scheduled"
            );
            tokio::time::sleep(wake.duration_since(now).unwrap_or_default()).await;
            if wake < due {
                continue; // time to ask ARI again
            }
        }
        metrics.next_renewal.set(unix_seconds(SystemTime::now()));

        match store.try_lease(LEASE) {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!("acme: another replica is ordering; waiting for its certificate");
                if let Some(cert) = follow(&store, current.as_ref(), &config.domains).await {
                    install(&tls, &cert);
                    tracing::info!(
                        serial = cert.serial,
                        not_after = unix_seconds(cert.not_after),
                        "acme: serving the certificate another replica ordered"
                    );
                    current = Some(cert);
                }
                continue;
            }
            Err(e) => {
                // Ordered anyway: a lone replica must still get its certificate.
                tracing::error!(error = %e, dir = %store.dir().display(), "acme: cannot take the order lease");
            }
        }

        let started = std::time::Instant::now();
        // Ends only if another replica took the lease over (this process stalled longer
        // than the lease): then both would order, so this one stops.
        let mut renew_lease = {
            let store = store.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(LEASE / 3);
                loop {
                    tick.tick().await;
                    match store.renew_lease() {
                        Ok(()) => {}
                        Err(e) if e.get_ref().is_some_and(|e| e.is::<LeaseLost>()) => return,
                        Err(e) => {
                            tracing::warn!(error = %e, "acme: could not renew the order lease")
                        }
                    }
                }
            })
        };
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(
                ATTEMPT_TIMEOUT,
                attempt(&config, &store, &challenges, &mut account),
            ) => outcome.unwrap_or(Err(OrderError::Timeout(ATTEMPT_TIMEOUT))),
            _ = &mut renew_lease => {
                tracing::warn!(
                    took = ?started.elapsed(),
                    "acme: another replica took the order lease over; stopping this order and waiting for its certificate"
                );
                continue;
            }
        };
        renew_lease.abort();
        store.release_lease();
        match outcome {
            Ok(cert) => {
                // Served first, then reported: whoever sees the log line or the counter
                // can already connect and get it.
                install(&tls, &cert);
                failures = 0;
                metrics.orders.with_label_values(&["ok"]).inc();
                metrics.consecutive_failures.set(0);
                tracing::info!(
                    serial = cert.serial,
                    not_after = unix_seconds(cert.not_after),
                    took = ?started.elapsed(),
                    "acme: certificate issued and installed"
                );
                current = Some(cert);
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                // A forgotten account is not a CA in trouble: a new one can be made at once.
                let wait = match e {
                    OrderError::AccountGone(_) => config.retry_min,
                    _ => backoff(config.retry_min, failures),
                };
                metrics.orders.with_label_values(&[e.label()]).inc();
                metrics.consecutive_failures.set(i64::from(failures));
                metrics
                    .next_renewal
                    .set(unix_seconds(SystemTime::now() + wait));
                tracing::warn!(
                    result = e.label(),
                    error = %e,
                    retry_in = ?wait,
                    failures,
                    serving_current = current.is_some(),
                    "acme: order failed; retrying later"
                );
                match &e {
                    // The CA may have been replaced meanwhile: connect afresh.
                    OrderError::Account(_) => account = None,
                    OrderError::AccountGone(_) => {
                        account = None;
                        match store.forget_account() {
                            Ok(()) => tracing::warn!(
                                "acme: the CA no longer knows the account; a new one is made next"
                            ),
                            Err(e) => {
                                tracing::error!(error = %e, "acme: could not set the stale account aside")
                            }
                        }
                    }
                    _ => {}
                }
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Waits while another replica holds the lease, for a stored certificate that covers
/// `domains` and is newer than `current`. `None` when the lease ends without one (the
/// holder failed or died): the caller goes round again and may take the lease itself.
async fn follow(
    store: &super::store::Store,
    current: Option<&Certificate>,
    domains: &[String],
) -> Option<Certificate> {
    loop {
        if let Ok(Some(stored)) = store.certificate()
            && stored.covers(domains)
            && current.is_none_or(|c| stored.not_after > c.not_after)
        {
            return Some(stored);
        }
        if !store.lease_held(LEASE) {
            return None;
        }
        tokio::time::sleep(FOLLOW_POLL).await;
    }
}

/// The account (once), one order, then the store: a certificate is installed only
/// after it is on disk, so a restart serves what was served.
async fn attempt(
    config: &crate::config::AcmeConfig,
    store: &super::store::Store,
    challenges: &super::Challenges,
    account: &mut Option<Account>,
) -> Result<Certificate, OrderError> {
    let account = match account {
        Some(a) => a,
        None => account.insert(order::account(config, store).await?),
    };
    let issued = order::order(account, config, challenges).await?;
    let cert =
        Certificate::from_pem(format!("{}\n{}", issued.chain_pem, issued.key_pem).as_bytes())
            .map_err(|e| OrderError::Store(format!("the issued certificate: {e}")))?;
    store
        .save_certificate(&issued.chain_pem, &issued.key_pem)
        .map_err(|e| OrderError::Store(format!("{}: {e}", store.dir().display())))?;
    Ok(cert)
}

/// When `cert` is due, and when to ask the CA's ARI again (if it answered).
async fn due(cert: &Certificate, account: Option<&Account>) -> (SystemTime, Option<Duration>) {
    let fallback = (cert.renew_at(), None);
    let (Some(account), Some(id)) = (account, &cert.ari_id) else {
        return fallback;
    };
    let Ok(info) = tokio::time::timeout(QUERY_TIMEOUT, account.renewal_info(id)).await else {
        tracing::debug!("acme: no renewal information in time; using a third of the lifetime");
        return fallback;
    };
    match info {
        Ok((info, retry_after)) => {
            let window = info.suggested_window;
            let start = SystemTime::from(window.start);
            let end = SystemTime::from(window.end).max(start);
            // RFC 9773 §4.2: a uniformly random time in the window spreads the CA's load.
            let spread = end.duration_since(start).unwrap_or_default();
            let at = start + spread.mul_f64(random_fraction());
            tracing::debug!(?window.start, ?window.end, "acme: renewal window from the CA");
            (
                at,
                Some(retry_after.clamp(Duration::from_secs(60), ARI_RECHECK_MAX)),
            )
        }
        Err(instant_acme::Error::Unsupported(_)) => fallback,
        Err(e) => {
            tracing::debug!(error = %e, "acme: renewal information unavailable; using a third of the lifetime");
            fallback
        }
    }
}

/// `retry_min`, doubled per failure, up to [`BACKOFF_MAX`].
fn backoff(retry_min: Duration, failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(20);
    retry_min
        .saturating_mul(1 << doublings)
        .min(BACKOFF_MAX.max(retry_min))
}

/// A fraction in [0, 1) from the standard library's randomly keyed hasher.
fn random_fraction() -> f64 {
    let bits = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let m = Duration::from_secs(60);
        assert_eq!(backoff(m, 1), m);
        assert_eq!(backoff(m, 2), m * 2);
        assert_eq!(backoff(m, 4), m * 8);
        assert_eq!(backoff(m, 30), BACKOFF_MAX);
        assert_eq!(backoff(m, u32::MAX), BACKOFF_MAX);
        // A retry_min above the cap is honoured as is.
        assert_eq!(backoff(BACKOFF_MAX * 2, 3), BACKOFF_MAX * 2);
    }

    #[test]
    fn random_fractions_stay_in_range() {
        for _ in 0..1000 {
            let f = random_fraction();
            assert!((0.0..1.0).contains(&f), "{f}");
        }
    }
}
