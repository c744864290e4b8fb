//! Keeping the alias map fresh: one background task, the only place that fetches.
//!
//! Off the request path. It refreshes every `refresh_interval`; on a nudge (a miss on the
//! request path) it refreshes too, but never sooner than `min_refresh_interval` after the
//! previous attempt; on SIGHUP (`refresh_now`) at once. Because every refresh runs on this
//! one task, at most one fetch is ever in flight, and a flood of unknown paths costs at
//! most one upstream request per `min_refresh_interval` (both predecessors fetched on
//! every miss: an amplification bug).
//!
//! A failed or empty refresh keeps the last good map and says why, in the log and in
//! `servy_redirects_refreshes_total{result}`. Until a first map has loaded, a failure is
//! retried with backoff (1 s, doubling, up to `refresh_interval`): a source that comes
//! up just after servy (a sibling service at boot) is picked up within seconds, without
//! waiting for a miss or the periodic refresh.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::fetch::{Failure, Fetched, Fetcher};
use super::parse;
use super::shared::{BuildError, Counters, Outcome, RedirectMap, Shared};
use crate::config::RedirectsConfig;

pub struct Refresher {
    shared: Arc<Shared>,
    /// `None` without a source: the task then only answers SIGHUPs with `Disabled`.
    fetcher: Option<Fetcher>,
    now: mpsc::Receiver<oneshot::Sender<Outcome>>,
    refresh_interval: Duration,
    min_interval: Duration,
    counters: Counters,
    last_attempt: Option<Instant>,
    /// Hash of the body behind the current map, to keep quiet about an unchanged file.
    served_body: Option<u64>,
    /// The wait before the next retry while no map has ever loaded.
    retry: Option<Duration>,
}

/// The first retry after a failed load with nothing served yet.
const FIRST_RETRY: Duration = Duration::from_secs(1);

impl Refresher {
    pub(super) fn new(
        config: RedirectsConfig,
        shared: Arc<Shared>,
        now: mpsc::Receiver<oneshot::Sender<Outcome>>,
        counters: Counters,
    ) -> Result<Refresher, BuildError> {
        let fetcher = match &config.source {
            Some(source) => Some(Fetcher::new(source, &config).map_err(BuildError)?),
            None => None,
        };
        Ok(Refresher {
            shared,
            fetcher,
            now,
            refresh_interval: config.refresh_interval,
            min_interval: config.min_refresh_interval,
            counters,
            last_attempt: None,
            served_body: None,
            retry: None,
        })
    }

    /// The load at startup, awaited before READY. Whatever happens (a dead source
    /// included) it returns, bounded by the fetch timeouts, and servy starts.
    pub async fn first_load(&mut self) -> Outcome {
        self.refresh().await
    }

    /// Runs the refresher for the rest of the process. It holds nothing that needs
    /// flushing: at shutdown, abort the handle (or let the runtime drop it).
    pub fn spawn(self) -> JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(mut self) {
        if self.fetcher.is_none() {
            while let Some(reply) = self.now.recv().await {
                let _ = reply.send(Outcome::Disabled);
            }
            return;
        }
        // A miss was reported and not yet acted on.
        let mut miss = false;
        loop {
            let last = *self.last_attempt.get_or_insert_with(Instant::now);
            let mut due = last + self.refresh_interval;
            if miss {
                due = due.min(last + self.min_interval);
            }
            if let Some(retry) = self.retry {
                due = due.min(last + retry);
            }
            tokio::select! {
                reply = self.now.recv() => {
                    let Some(reply) = reply else { return };
                    let outcome = self.refresh().await;
                    let _ = reply.send(outcome);
                    miss = false;
                }
                // Not polled while a miss is pending: further nudges have nothing to add.
                () = self.shared.wake.notified(), if !miss => miss = true,
                () = tokio::time::sleep_until(due.into()) => {
                    self.refresh().await;
                    miss = false;
                }
            }
        }
    }

    /// One attempt: fetch, parse, swap or keep, then log and count the result.
    async fn refresh(&mut self) -> Outcome {
        // Misses from here on ask for the *next* refresh, which this one may not cover.
        self.shared.pending.store(false, Ordering::Release);
        self.last_attempt = Some(Instant::now());
        let Some(fetcher) = &mut self.fetcher else {
            return Outcome::Disabled;
        };
        let source = fetcher.describe();
        let outcome = match fetcher.fetch().await {
            Err(failure) => Outcome::Failed(failure),
            Ok(Fetched::NotModified) => Outcome::NotModified,
            Ok(Fetched::Body { text, validators }) => {
                let hash = hash(&text);
                if self.served_body == Some(hash) {
                    fetcher.accept(validators);
                    Outcome::Unchanged
                } else {
                    let parsed = parse::parse(&text);
                    for problem in &parsed.problems {
                        tracing::warn!(source = %source, line = problem.line, "redirects: {problem}");
                    }
                    if parsed.entries.is_empty() {
                        Outcome::Failed(Failure::Empty)
                    } else {
                        let aliases = parsed.entries.len();
                        let rejected = parsed.problems.iter().filter(|p| p.is_rejection()).count();
                        self.shared
                            .swap(RedirectMap::build(parsed.entries, &self.counters.served));
                        self.counters.defined.set(aliases as i64);
                        fetcher.accept(validators);
                        self.served_body = Some(hash);
                        Outcome::Loaded { aliases, rejected }
                    }
                }
            }
        };
        self.record(&source, &outcome);
        self.retry = match (&outcome, self.served_body) {
            (Outcome::Failed(_), None) => Some(
                self.retry
                    .map_or(FIRST_RETRY, |r| r.saturating_mul(2))
                    .min(self.refresh_interval),
            ),
            _ => None,
        };
        outcome
    }

    fn record(&self, source: &str, outcome: &Outcome) {
        if let Some(label) = outcome.label() {
            self.counters.refreshes.with_label_values(&[label]).inc();
        }
        match outcome {
            Outcome::Loaded { aliases, rejected } => {
                tracing::info!(source, aliases, rejected, "redirects loaded");
            }
            Outcome::Unchanged | Outcome::NotModified => {
                tracing::debug!(
                    source,
                    result = outcome.label().unwrap_or_default(),
                    "redirects unchanged"
                );
            }
            Outcome::Failed(failure) => {
                let served = self.shared.map.load().entries.len();
                tracing::warn!(
                    source,
                    result = failure.label(),
                    served,
                    "redirects refresh failed: {failure}; keeping the last good map"
                );
            }
            Outcome::Disabled => {}
        }
        if matches!(
            outcome,
            Outcome::Loaded { .. } | Outcome::Unchanged | Outcome::NotModified
        ) {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            self.counters.last_success.set(now.as_secs() as i64);
        }
    }
}

impl parse::Problem {
    /// A duplicate is a warning (its line still loads); everything else skipped a line.
    fn is_rejection(&self) -> bool {
        !matches!(self.kind, parse::ProblemKind::Duplicate { .. })
    }
}

fn hash(text: &str) -> u64 {
    let mut h = DefaultHasher::new();
    text.hash(&mut h);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RedirectsSource;
    use crate::short_links::Redirects;

    fn setup(path: &std::path::Path, min: Duration) -> (Redirects, Refresher, Counters) {
        let counters = Counters::detached();
        let config = RedirectsConfig {
            source: Some(RedirectsSource::File(path.to_path_buf())),
            refresh_interval: Duration::from_secs(3600),
            min_refresh_interval: min,
            ..Default::default()
        };
        let (r, refresher) = Redirects::with_counters(config, counters.clone()).unwrap();
        (r, refresher, counters)
    }

    fn temp(name: &str, content: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("servy-refresher-{}-{name}", std::process::id()));
        std::fs::write(&path, content).unwrap();
        path
    }

    #[tokio::test]
    async fn a_bad_refresh_keeps_the_last_good_map() {
        let path = temp("keep", "gh https://x.example\nbad line here\n");
        let (r, mut refresher, counters) = setup(&path, Duration::ZERO);
        assert_eq!(
            refresher.first_load().await,
            Outcome::Loaded {
                aliases: 1,
                rejected: 1
            }
        );
        assert_eq!(refresher.refresh().await, Outcome::Unchanged);
        std::fs::write(&path, "# emptied\n").unwrap();
        assert_eq!(refresher.refresh().await, Outcome::Failed(Failure::Empty));
        std::fs::remove_file(&path).unwrap();
        assert!(matches!(
            refresher.refresh().await,
            Outcome::Failed(Failure::Io(_))
        ));
        assert!(
            r.lookup("gh", None).is_some(),
            "the last good map still serves"
        );
        assert_eq!(counters.defined.get(), 1);
        assert_eq!(counters.refreshes.with_label_values(&["ok"]).get(), 2);
        assert_eq!(counters.refreshes.with_label_values(&["empty"]).get(), 1);
        assert_eq!(counters.refreshes.with_label_values(&["io"]).get(), 1);
        assert!(counters.last_success.get() > 0);
    }

    #[tokio::test]
    async fn a_flood_of_nudges_refreshes_once_per_min_interval() {
        let path = temp("flood", "a https://a.example\n");
        let (r, mut refresher, counters) = setup(&path, Duration::from_secs(1));
        refresher.first_load().await;
        let start = Instant::now();
        let task = refresher.spawn();
        let ok = || counters.refreshes.with_label_values(&["ok"]).get();
        for _ in 0..20 {
            for _ in 0..100 {
                r.nudge();
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        std::fs::write(&path, "a https://a.example\nb https://b.example\n").unwrap();
        if start.elapsed() < Duration::from_millis(900) {
            assert_eq!(
                ok(),
                1,
                "2,000 nudges inside the min interval fetched nothing yet"
            );
        }
        while ok() < 2 {
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "no refresh after the min interval"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            start.elapsed() >= Duration::from_millis(950),
            "refreshed before the min interval"
        );
        assert!(r.lookup("b", None).is_some());
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(
            ok(),
            2,
            "no nudge since, no refresh before the periodic one"
        );
        assert_eq!(
            r.refresh_now().await,
            Outcome::Unchanged,
            "SIGHUP skips the min interval"
        );
        assert_eq!(ok(), 3);
        task.abort();
        let _ = std::fs::remove_file(&path);
    }

    #[tokio::test]
    async fn without_a_source_everything_is_disabled() {
        let (r, mut refresher) =
            Redirects::with_counters(RedirectsConfig::default(), Counters::detached()).unwrap();
        assert_eq!(refresher.first_load().await, Outcome::Disabled);
        let task = refresher.spawn();
        assert_eq!(r.refresh_now().await, Outcome::Disabled);
        r.nudge();
        assert_eq!(r.len(), 0);
        task.abort();
    }
}
