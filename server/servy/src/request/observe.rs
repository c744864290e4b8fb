//! The last step of every request on the main listener: count the response in the
//! metrics and write one log line. Last, so 503s from load shedding and 500s from caught
//! panics are seen like any other response.

use std::time::Instant;

use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::response::Response;
use hyper::body::Body as _;

use crate::metrics::Metrics;
use crate::served::Served;

/// Where request lines go, so they can be filtered on their own
/// (`log.level = "info,servy::request=warn"`).
use crate::logging::REQUEST_TARGET as TARGET;

/// Counts `response` in the metrics and, with `log` (`log.requests`), writes its line.
pub fn record(
    metrics: &Metrics,
    log: bool,
    head: &Parts,
    response: &Response,
    served: Option<&Served>,
    start: Instant,
) {
    let elapsed = start.elapsed();
    let bytes = match head.method == Method::HEAD {
        true => 0,
        false => body_len(response),
    };
    metrics.observe(response.status(), bytes, elapsed);
    if log && tracing::enabled!(target: TARGET, tracing::Level::INFO) {
        let duration_us = elapsed.as_micros() as u64;
        line(
            &head.method,
            head.uri.path(),
            response,
            served,
            bytes,
            duration_us,
        );
    }
}

/// The body's exact size, which every servy body knows (bytes from the binary), so the
/// Content-Length string is only parsed for a body that does not.
fn body_len(response: &Response) -> u64 {
    response
        .body()
        .size_hint()
        .exact()
        .or_else(|| {
            response
                .headers()
                .get(header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn line(
    method: &Method,
    path: &str,
    response: &Response,
    served: Option<&Served>,
    bytes: u64,
    duration_us: u64,
) {
    let status = response.status().as_u16();
    match served {
        Some(Served::Asset(file)) => {
            tracing::info!(target: TARGET, %method, path, status, bytes, duration_us, file, "request");
        }
        Some(Served::Redirect(target)) => {
            tracing::info!(target: TARGET, %method, path, status, bytes, duration_us, target = &**target, "request");
        }
        None => {
            tracing::info!(target: TARGET, %method, path, status, bytes, duration_us, "request");
        }
    }
}
