//! The Prometheus registry and its handles, plus the metrics listener's routes
//! (`/metrics`, `/healthz`, `/readyz`, `/debug/pprof/profile`).
//!
//! Series names keep the predecessor's (`servy_requests_total`, `servy_redirects_served`,
//! `servy_redirects_defined`, `servy_response_status`) so existing dashboards work. No
//! label takes its value from an unknown request path: `alias` is only ever a defined alias.

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry};

/// Cheap to clone: every handle is an `Arc` inside.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// `servy_requests_total`: every request on the main listener.
    pub requests: IntCounter,
    /// `servy_response_status{status}`: responses by status code.
    pub response_status: IntCounterVec,
    /// `servy_request_duration_seconds`: time to produce the response head.
    pub request_duration: Histogram,
    /// `servy_response_bytes_total`: body bytes sent.
    pub response_bytes: IntCounter,
    /// `servy_redirects_served{alias}`: hits per defined alias.
    pub redirects_served: IntCounterVec,
    /// `servy_redirects_defined`: aliases in the current map.
    pub redirects_defined: IntGauge,
    /// `servy_redirects_refreshes_total{result}`: `ok`, `not_modified`, or the failure variant.
    pub redirects_refreshes: IntCounterVec,
    /// `servy_redirects_last_success_timestamp_seconds`.
    pub redirects_last_success: IntGauge,
    /// `servy_build_info{version}` = 1.
    pub build_info: IntGaugeVec,
}

// TODO(runtime): Metrics::new() registering everything (plus the process collector),
// and the metrics router.
