//! The Prometheus registry and its handles, shared by every layer that counts something,
//! and the readiness flag. The metrics listener's routes are in [`listener`].
//!
//! Series names keep the predecessor's (`servy_requests_total`, `servy_redirects_served`,
//! `servy_redirects_defined`, `servy_response_status`) so existing dashboards work. No
//! label takes its value from an unknown request path: `alias` is only ever a defined alias.

pub mod listener;
pub mod profile;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::http::{StatusCode, Version};
use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Cheap to clone: every handle is an `Arc` inside.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// `servy_requests_total`: every request on the main listener.
    pub requests: IntCounter,
    /// `servy_requests_by_protocol_total{protocol}`, one counter per HTTP version,
    /// resolved once (see [`protocol_index`]).
    by_protocol: [IntCounter; PROTOCOLS.len()],
    /// `servy_response_status{status}`: responses by status code.
    pub response_status: IntCounterVec,
    /// `servy_request_duration_seconds`: time to produce the response head.
    pub request_duration: Histogram,
    /// `servy_response_bytes_total`: body bytes sent.
    pub response_bytes: IntCounter,
    /// `servy_sendfile_bytes_total`: body bytes sent on the zero-copy path.
    pub sendfile_bytes: IntCounter,
    /// `servy_sendfile_calls_total`: sendfile calls (more than one per body when the
    /// socket buffer fills).
    pub sendfile_calls: IntCounter,
    /// `servy_redirects_served{alias}`: hits per defined alias.
    pub redirects_served: IntCounterVec,
    /// `servy_redirects_defined`: aliases in the current map.
    pub redirects_defined: IntGauge,
    /// `servy_redirects_refreshes_total{result}`: `ok`, `not_modified`, or the failure variant.
    pub redirects_refreshes: IntCounterVec,
    /// `servy_redirects_last_success_timestamp_seconds`.
    pub redirects_last_success: IntGauge,
    /// `servy_log_lines_dropped_total`: log lines lost because the writer fell behind.
    pub log_lines_dropped: IntCounter,
    /// `response_status` children by code (100..=599), resolved once each, so the
    /// request path does an array index instead of a hash-map lookup under a lock.
    status_cells: Arc<[OnceLock<IntCounter>]>,
}

/// Request latencies for in-memory responses are tens of microseconds; the buckets
/// start there and reach the request timeout's range.
const DURATION_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| IntCounter::new(name, help).expect("valid metric");
        let requests = counter(
            "servy_requests_total",
            "Requests received on the main listener.",
        );
        let requests_by_protocol = IntCounterVec::new(
            Opts::new(
                "servy_requests_by_protocol_total",
                "Requests received on the main listener, by protocol (HTTP/1.0, HTTP/1.1, HTTP/2, HTTP/3).",
            ),
            &["protocol"],
        )
        .expect("valid metric");
        let by_protocol = PROTOCOLS.map(|p| requests_by_protocol.with_label_values(&[p]));
        let response_status = IntCounterVec::new(
            Opts::new(
                "servy_response_status",
                "Responses on the main listener, by status code.",
            ),
            &["status"],
        )
        .expect("valid metric");
        let request_duration = Histogram::with_opts(
            HistogramOpts::new(
                "servy_request_duration_seconds",
                "Time from request to response head.",
            )
            .buckets(DURATION_BUCKETS.to_vec()),
        )
        .expect("valid metric");
        let response_bytes = counter(
            "servy_response_bytes_total",
            "Response body bytes (Content-Length; 0 for HEAD).",
        );
        let sendfile_bytes = counter(
            "servy_sendfile_bytes_total",
            "Response body bytes sent on the zero-copy path: with sendfile from the executable, after at most one page copied to reach a page boundary.",
        );
        let sendfile_calls = counter(
            "servy_sendfile_calls_total",
            "sendfile calls made for zero-copy responses.",
        );
        let redirects_served = IntCounterVec::new(
            Opts::new(
                "servy_redirects_served",
                "Redirects served, by defined alias.",
            ),
            &["alias"],
        )
        .expect("valid metric");
        let redirects_defined = IntGauge::new(
            "servy_redirects_defined",
            "Aliases in the current redirects map.",
        )
        .expect("valid metric");
        let redirects_refreshes = IntCounterVec::new(
            Opts::new(
                "servy_redirects_refreshes_total",
                "Redirects refreshes, by result.",
            ),
            &["result"],
        )
        .expect("valid metric");
        let redirects_last_success = IntGauge::new(
            "servy_redirects_last_success_timestamp_seconds",
            "Unix time of the last successful redirects refresh.",
        )
        .expect("valid metric");
        let log_lines_dropped = counter(
            "servy_log_lines_dropped_total",
            "Log lines dropped because the log queue was full (journal or stderr stalled).",
        );
        // `servy_build_info{version}` = 1: joins a version onto any other series.
        let build_info = IntGaugeVec::new(
            Opts::new("servy_build_info", "Always 1; labelled with the version."),
            &["version"],
        )
        .expect("valid metric");
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);

        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(requests_by_protocol),
            Box::new(response_status.clone()),
            Box::new(request_duration.clone()),
            Box::new(response_bytes.clone()),
            Box::new(sendfile_bytes.clone()),
            Box::new(sendfile_calls.clone()),
            Box::new(redirects_served.clone()),
            Box::new(redirects_defined.clone()),
            Box::new(redirects_refreshes.clone()),
            Box::new(redirects_last_success.clone()),
            Box::new(log_lines_dropped.clone()),
            Box::new(build_info.clone()),
            Box::new(prometheus::process_collector::ProcessCollector::for_self()),
        ] {
            registry.register(c).expect("metric names are unique");
        }
        let status_cells = (100..600).map(|_| OnceLock::new()).collect();
        Metrics {
            registry,
            requests,
            by_protocol,
            response_status,
            request_duration,
            response_bytes,
            sendfile_bytes,
            sendfile_calls,
            redirects_served,
            redirects_defined,
            redirects_refreshes,
            redirects_last_success,
            log_lines_dropped,
            status_cells,
        }
    }

    /// Records one finished request on the main listener.
    pub fn observe(&self, version: Version, status: StatusCode, bytes: u64, elapsed: Duration) {
        self.requests.inc();
        if let Some(counter) = protocol_index(version).and_then(|i| self.by_protocol.get(i)) {
            counter.inc();
        }
        self.response_bytes.inc_by(bytes);
        self.request_duration.observe(elapsed.as_secs_f64());
        let code = status.as_u16();
        // StatusCode is always 100..=999; codes past 599 are too rare to cache.
        match self.status_cells.get(usize::from(code).wrapping_sub(100)) {
            Some(cell) => cell
                .get_or_init(|| self.response_status.with_label_values(&[status.as_str()]))
                .inc(),
            None => self
                .response_status
                .with_label_values(&[status.as_str()])
                .inc(),
        }
    }
}

/// The label values of `servy_requests_by_protocol_total`, in [`protocol_index`] order.
const PROTOCOLS: [&str; 4] = ["HTTP/1.0", "HTTP/1.1", "HTTP/2", "HTTP/3"];

/// Where `version` is counted; `None` for HTTP/0.9, which hyper never hands servy.
fn protocol_index(version: Version) -> Option<usize> {
    match version {
        Version::HTTP_10 => Some(0),
        Version::HTTP_11 => Some(1),
        Version::HTTP_2 => Some(2),
        Version::HTTP_3 => Some(3),
        _ => None,
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Whether servy is ready: listeners up and the first redirects load attempted, and no
/// SIGTERM yet. `/readyz` reads it; `main` sets it just before sending `READY=1` and
/// clears it when the drain begins.
#[derive(Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    pub fn set(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Stopping: a probe on a kept-alive connection hears so while the drain runs.
    pub fn clear(&self) {
        self.0.store(false, Ordering::Release);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}
