//! The last step of every request on the main listener: count the response in the
//! metrics and queue one log line (the writer thread formats it, see `logging`). Last, so 503s from load shedding and 500s from caught
//! panics are seen like any other response.

use std::time::Instant;

use axum::http::request::Parts;
use axum::http::{Method, header};
use hyper::body::Body as _;

use crate::held_body::Response;
use crate::logging::{LoggedPath, RequestLog, RequestRecord};
use crate::metrics::Metrics;
use crate::served::Served;

/// Counts `response` in the metrics and, with a request log, queues its line.
pub fn record(
    metrics: &Metrics,
    log: Option<&RequestLog>,
    head: &Parts,
    response: &Response,
    served: Option<Served>,
    start: Instant,
) {
    let elapsed = start.elapsed();
    let bytes = match head.method == Method::HEAD {
        true => 0,
        false => body_len(response),
    };
    metrics.observe(head.version, response.status(), bytes, elapsed);
    if let Some(log) = log {
        log.record(RequestRecord {
            method: head.method.clone(),
            path: LoggedPath::new(head.uri.path()),
            status: response.status().as_u16(),
            bytes,
            duration_us: elapsed.as_micros() as u64,
            served,
        });
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
