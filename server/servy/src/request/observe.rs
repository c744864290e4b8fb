//! The outermost layer on the main listener: counts every response in the metrics and
//! writes one log line per request. Outermost so 503s from load shedding and 500s from
//! caught panics are seen like any other response.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::{Method, header};
use axum::response::Response;
use hyper::body::Body as _;
use tower::{Layer, Service};

use crate::metrics::Metrics;
use crate::served::Served;

/// Where request lines go, so they can be filtered on their own
/// (`log.level = "info,servy::request=warn"`).
use crate::logging::REQUEST_TARGET as TARGET;

#[derive(Clone)]
pub struct ObserveLayer {
    metrics: Arc<Metrics>,
    log: bool,
}

impl ObserveLayer {
    /// `log`: write the per-request line (`log.requests`); metrics are always kept.
    pub fn new(metrics: Arc<Metrics>, log: bool) -> Self {
        ObserveLayer { metrics, log }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            metrics: self.metrics.clone(),
            log: self.log,
        }
    }
}

#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    metrics: Arc<Metrics>,
    log: bool,
}

impl<S, B> Service<Request<B>> for Observe<S>
where
    S: Service<Request<B>, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let start = Instant::now();
        let head = req.method() == Method::HEAD;
        // Only copied when the line will be written; both are cheap (Method is an enum
        // for standard methods, Uri shares its bytes).
        let line = (self.log && tracing::enabled!(target: TARGET, tracing::Level::INFO))
            .then(|| (req.method().clone(), req.uri().clone()));
        let metrics = self.metrics.clone();
        let response = self.inner.call(req);
        Box::pin(async move {
            let Ok(response) = response.await;
            let elapsed = start.elapsed();
            let bytes = if head { 0 } else { body_len(&response) };
            metrics.observe(response.status(), bytes, elapsed);
            if let Some((method, uri)) = line {
                log(
                    &method,
                    uri.path(),
                    &response,
                    bytes,
                    elapsed.as_micros() as u64,
                );
            }
            Ok(response)
        })
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

fn log(method: &Method, path: &str, response: &Response, bytes: u64, duration_us: u64) {
    let status = response.status().as_u16();
    match response.extensions().get::<Served>() {
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
