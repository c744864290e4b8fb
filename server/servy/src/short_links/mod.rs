//! Short links: a lock-free alias → target map, swapped whole by the refresher.
//!
//! Step 4 of the dispatch (after the site, so a file always wins over an alias): `lookup`
//! turns a defined alias into a 30x with prebuilt headers. A miss on the request path
//! only *nudges* the refresher; it never waits for it, and the refresher turns any number
//! of nudges into at most one fetch per `min_refresh_interval`.
//!
//! ```text
//! Redirects::new(config, &metrics) → (Redirects, Refresher)
//!   refresher.first_load().await      before READY; a dead source only logs
//!   refresher.spawn()                 periodic / nudged / SIGHUP refreshes, one in flight
//!   redirects.lookup(key, query)      request path: one atomic load + one hash lookup
//!   redirects.nudge()                 on a miss: a relaxed load when already pending
//!   redirects.refresh_now().await     SIGHUP: skips the min interval, still single-flight
//! ```

pub mod fetch;
pub mod parse;
pub mod refresher;
mod shared;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::http::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CACHE_CONTROL, CONTENT_LENGTH, LOCATION};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::config::RedirectsConfig;
use crate::metrics::Metrics;
use crate::served::Served;

pub use refresher::Refresher;
pub use shared::{BuildError, Outcome};
use shared::{Counters, RedirectMap, Shared};

/// The handle the request path holds. Cheap to clone (one `Arc`).
#[derive(Clone)]
pub struct Redirects {
    shared: Arc<Shared>,
}

impl Redirects {
    /// Builds the handle (empty map) and its refresher. Nothing is fetched yet: call
    /// [`Refresher::first_load`], then [`Refresher::spawn`].
    pub fn new(
        config: RedirectsConfig,
        metrics: &Metrics,
    ) -> Result<(Redirects, Refresher), BuildError> {
        Self::with_counters(config, Counters::from(metrics))
    }

    pub(crate) fn with_counters(
        config: RedirectsConfig,
        counters: Counters,
    ) -> Result<(Redirects, Refresher), BuildError> {
        let status = match config.status {
            301 | 302 | 307 | 308 => {
                StatusCode::from_u16(config.status).map_err(|e| BuildError(e.to_string()))?
            }
            other => {
                return Err(BuildError(format!(
                    "redirects.status must be 301, 302, 307 or 308, not {other}"
                )));
            }
        };
        let cache_control = HeaderValue::try_from(format!("max-age={}", config.max_age.as_secs()))
            .map_err(|e| BuildError(e.to_string()))?;
        // A few SIGHUPs may queue; each is served in turn by the one refresher task.
        let (now_tx, now_rx) = mpsc::channel(4);
        let shared = Arc::new(Shared {
            map: ArcSwap::from_pointee(RedirectMap::default()),
            status,
            cache_control,
            cors: config.cors,
            query: config.query,
            pending: AtomicBool::new(false),
            wake: Notify::new(),
            now: now_tx,
        });
        let refresher = Refresher::new(config, shared.clone(), now_rx, counters)?;
        Ok((Redirects { shared }, refresher))
    }

    /// Step 4 of the dispatch: `key` as `path::normalise` gives it (no leading slash; a
    /// trailing one is ignored, so `/gh` and `/gh/` both match `gh`). The response comes
    /// with its target, for the request log.
    pub fn lookup(&self, key: &str, query: Option<&str>) -> Option<(Response, Served)> {
        let key = key.trim_end_matches('/');
        if key.is_empty() {
            return None;
        }
        let map = self.shared.map.load();
        let target = map.entries.get(key)?;
        let (location, url) = target.hit(self.shared.query, query);
        let mut response = Response::new(Body::empty());
        *response.status_mut() = self.shared.status;
        let headers = response.headers_mut();
        headers.insert(LOCATION, location);
        headers.insert(CACHE_CONTROL, self.shared.cache_control.clone());
        if self.shared.cors {
            headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        }
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        Some((response, Served::Redirect(url)))
    }

    /// A miss happened: maybe a new alias exists upstream. Never blocks, never fetches;
    /// the refresher decides when (at most once per `min_refresh_interval`).
    pub fn nudge(&self) {
        // The load keeps a flood of misses off the shared cache line once one is pending.
        if !self.shared.pending.load(Ordering::Relaxed)
            && !self.shared.pending.swap(true, Ordering::AcqRel)
        {
            self.shared.wake.notify_one();
        }
    }

    /// Refreshes now (SIGHUP), ignoring `min_refresh_interval`, and waits for the result.
    /// Still single-flight: it runs on the refresher task, after any fetch in progress.
    /// Returns [`Outcome::Disabled`] without a source or once the refresher has stopped.
    pub async fn refresh_now(&self) -> Outcome {
        let (tx, rx) = oneshot::channel();
        if self.shared.now.send(tx).await.is_err() {
            return Outcome::Disabled;
        }
        rx.await.unwrap_or(Outcome::Disabled)
    }

    /// Aliases currently served (for `STATUS=`).
    pub fn len(&self) -> usize {
        self.shared.map.load().entries.len()
    }
}

#[cfg(test)]
impl Redirects {
    /// Serves the aliases of `text`, as a refresh would, for tests outside this module.
    pub fn load_for_tests(&self, text: &str) {
        let counters = Counters::detached();
        self.shared.swap(RedirectMap::build(
            parse::parse(text).entries,
            &counters.served,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::QueryPolicy;

    fn redirects(config: RedirectsConfig, text: &str) -> (Redirects, Counters) {
        let counters = Counters::detached();
        let (r, _refresher) =
            Redirects::with_counters(config, counters.clone()).expect("valid config");
        r.shared.swap(RedirectMap::build(
            parse::parse(text).entries,
            &counters.served,
        ));
        (r, counters)
    }

    fn location(r: &Response) -> &str {
        r.headers()[LOCATION].to_str().expect("ascii")
    }

    const FILE: &str = "gh https://github.com/x\nq https://e.example/s?lang=en#top\n";

    #[test]
    fn an_alias_becomes_a_308_with_prebuilt_headers() {
        let (r, counters) = redirects(RedirectsConfig::default(), FILE);
        for key in ["gh", "gh/"] {
            let (resp, served) = r.lookup(key, None).expect("alias");
            assert_eq!(resp.status(), StatusCode::PERMANENT_REDIRECT);
            assert_eq!(location(&resp), "https://github.com/x");
            assert_eq!(resp.headers()[CACHE_CONTROL], "max-age=300");
            assert_eq!(resp.headers()[CONTENT_LENGTH], "0");
            assert!(resp.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
            assert!(matches!(&served, Served::Redirect(t) if &**t == "https://github.com/x"));
        }
        assert_eq!(counters.served.with_label_values(&["gh"]).get(), 2);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn unknown_and_empty_keys_miss() {
        let (r, _) = redirects(RedirectsConfig::default(), FILE);
        assert!(r.lookup("nope", None).is_none());
        assert!(r.lookup("", None).is_none());
        assert!(r.lookup("/", None).is_none());
        assert!(r.lookup("GH", None).is_none(), "aliases are case-sensitive");
    }

    #[test]
    fn query_append_joins_before_the_fragment() {
        let (r, _) = redirects(RedirectsConfig::default(), FILE);
        assert_eq!(
            location(&r.lookup("gh", Some("tab=repos")).unwrap().0),
            "https://github.com/x?tab=repos"
        );
        assert_eq!(
            location(&r.lookup("q", Some("x=1")).unwrap().0),
            "https://e.example/s?lang=en&x=1#top"
        );
        assert_eq!(
            location(&r.lookup("gh", Some("")).unwrap().0),
            "https://github.com/x"
        );
    }

    #[test]
    fn query_drop_keeps_the_target() {
        let config = RedirectsConfig {
            query: QueryPolicy::Drop,
            ..Default::default()
        };
        let (r, _) = redirects(config, FILE);
        assert_eq!(
            location(&r.lookup("gh", Some("tab=repos")).unwrap().0),
            "https://github.com/x"
        );
    }

    #[test]
    fn status_cors_and_max_age_follow_the_config() {
        for status in [301, 302, 307, 308] {
            let config = RedirectsConfig {
                status,
                cors: true,
                max_age: std::time::Duration::from_secs(60),
                ..Default::default()
            };
            let (r, _) = redirects(config, FILE);
            let resp = r.lookup("gh", None).unwrap().0;
            assert_eq!(resp.status().as_u16(), status);
            assert_eq!(resp.headers()[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
            assert_eq!(resp.headers()[CACHE_CONTROL], "max-age=60");
        }
    }

    #[test]
    fn other_statuses_are_refused() {
        for status in [200, 303, 404, 999] {
            let config = RedirectsConfig {
                status,
                ..Default::default()
            };
            assert!(
                Redirects::with_counters(config, Counters::detached()).is_err(),
                "{status}"
            );
        }
    }

    #[test]
    fn nudge_is_idempotent_until_acted_on() {
        let (r, _) = redirects(RedirectsConfig::default(), FILE);
        r.nudge();
        assert!(r.shared.pending.load(Ordering::Relaxed));
        r.nudge();
        assert!(r.shared.pending.load(Ordering::Relaxed));
    }
}
