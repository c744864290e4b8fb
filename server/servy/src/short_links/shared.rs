//! What the request path's handle ([`super::Redirects`]) and the refresher share: the
//! map swapped whole, the prebuilt response parts, the nudge and SIGHUP channels, and the
//! redirects' metrics.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use axum::http::{HeaderValue, StatusCode};
use prometheus::{IntCounter, IntCounterVec, IntGauge};
use tokio::sync::{Notify, mpsc, oneshot};

use super::fetch::Failure;
use super::parse;
use crate::config::QueryPolicy;
use crate::metrics::Metrics;

/// How one refresh went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A new map is served.
    Loaded { aliases: usize, rejected: usize },
    /// The body was byte-for-byte the one already served.
    Unchanged,
    /// Upstream answered 304 to the conditional GET.
    NotModified,
    /// The last good map keeps serving.
    Failed(Failure),
    /// No source configured, or the refresher is not running.
    Disabled,
}

impl Outcome {
    /// The `result` label of `servy_redirects_refreshes_total`.
    pub(super) fn label(&self) -> Option<&'static str> {
        match self {
            Outcome::Loaded { .. } | Outcome::Unchanged => Some("ok"),
            Outcome::NotModified => Some("not_modified"),
            Outcome::Failed(failure) => Some(failure.label()),
            Outcome::Disabled => None,
        }
    }
}

/// What the request path and the refresher share.
pub(super) struct Shared {
    pub(super) map: ArcSwap<RedirectMap>,
    /// Prebuilt once from the config: nothing on the hot path formats a header.
    pub(super) status: StatusCode,
    pub(super) cache_control: HeaderValue,
    pub(super) cors: bool,
    pub(super) query: QueryPolicy,
    /// Set by the first miss, cleared by the refresher when it acts on it; further misses
    /// in between cost one relaxed load.
    pub(super) pending: AtomicBool,
    pub(super) wake: Notify,
    /// SIGHUP asks here; the reply says how the refresh went.
    pub(super) now: mpsc::Sender<oneshot::Sender<Outcome>>,
}

/// A complete, immutable alias table. The refresher builds a new one and swaps it in whole,
/// so a lookup never sees half a file.
#[derive(Default)]
pub struct RedirectMap {
    pub(super) entries: HashMap<Box<str>, Target>,
}

/// One alias, with everything `lookup` needs already built.
pub(super) struct Target {
    url: Arc<str>,
    location: HeaderValue,
    /// Where `#fragment` starts (or the length): an appended query goes before it.
    fragment_at: usize,
    /// Whether the target already has a query, so an appended one joins with `&`.
    has_query: bool,
    /// `servy_redirects_served{alias}` resolved once: no label hashing per hit.
    served: IntCounter,
}

/// The redirects' share of the metrics, taken from [`Metrics`] once.
#[derive(Clone)]
pub(crate) struct Counters {
    pub served: IntCounterVec,
    pub defined: IntGauge,
    pub refreshes: IntCounterVec,
    pub last_success: IntGauge,
}

/// A redirects section that cannot run (reported before anything is bound).
#[derive(Debug)]
pub struct BuildError(pub(super) String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

impl Shared {
    pub(super) fn swap(&self, map: RedirectMap) {
        self.map.store(Arc::new(map));
    }
}

impl RedirectMap {
    /// Builds the table from parsed entries, resolving every header value and counter now.
    pub(super) fn build(entries: Vec<parse::Entry>, served: &IntCounterVec) -> RedirectMap {
        let entries = entries
            .into_iter()
            .filter_map(|e| {
                // The parser only accepts printable ASCII targets, so this always succeeds.
                let location = HeaderValue::from_str(&e.target).ok()?;
                let fragment_at = e.target.find('#').unwrap_or(e.target.len());
                let has_query = e.target[..fragment_at].contains('?');
                let served = served.with_label_values(&[e.alias.as_str()]);
                let target = Target {
                    url: e.target.into(),
                    location,
                    fragment_at,
                    has_query,
                    served,
                };
                Some((e.alias.into_boxed_str(), target))
            })
            .collect();
        RedirectMap { entries }
    }
}

impl Target {
    /// A request for this alias: counted, and answered with its `Location` (the
    /// request's query joined under `query = append`) and its URL for the request log.
    pub(super) fn hit(&self, policy: QueryPolicy, query: Option<&str>) -> (HeaderValue, Arc<str>) {
        self.served.inc();
        let location = match (policy, query) {
            (QueryPolicy::Append, Some(q)) if !q.is_empty() => self.with_query(q),
            _ => self.location.clone(),
        };
        (location, self.url.clone())
    }

    /// `query = append`: the request's query joins the target's (`?` or `&`), before any
    /// fragment, so `/gh?tab=repos` → `https://github.com/x?tab=repos`. Only this path
    /// allocates.
    fn with_query(&self, query: &str) -> HeaderValue {
        let (base, fragment) = self.url.split_at(self.fragment_at);
        let sep = if self.has_query { '&' } else { '?' };
        HeaderValue::try_from(format!("{base}{sep}{query}{fragment}"))
            .unwrap_or_else(|_| self.location.clone())
    }
}

impl From<&Metrics> for Counters {
    fn from(m: &Metrics) -> Self {
        Counters {
            served: m.redirects_served.clone(),
            defined: m.redirects_defined.clone(),
            refreshes: m.redirects_refreshes.clone(),
            last_success: m.redirects_last_success.clone(),
        }
    }
}

#[cfg(test)]
impl Counters {
    /// Unregistered handles, for unit tests.
    pub fn detached() -> Self {
        use prometheus::Opts;
        Counters {
            served: IntCounterVec::new(Opts::new("served", "t"), &["alias"]).expect("valid opts"),
            defined: IntGauge::new("defined", "t").expect("valid opts"),
            refreshes: IntCounterVec::new(Opts::new("refreshes", "t"), &["result"])
                .expect("valid opts"),
            last_success: IntGauge::new("last", "t").expect("valid opts"),
        }
    }
}
