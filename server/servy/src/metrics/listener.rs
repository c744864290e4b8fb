//! The metrics listener's routes: `/metrics`, `/healthz`, `/readyz` and, when enabled,
//! `/debug/pprof/profile`. Real axum routes live only here; the main listener is one handler.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus::{Encoder, TextEncoder};
use tower::util::MapResponse;

use super::profile::{self, Profiler};
use super::{Metrics, Readiness};
use crate::held_body::{self, from_axum};

#[derive(Clone)]
struct MetricsState {
    metrics: Metrics,
    readiness: Readiness,
}

/// The metrics listener's routes, answering with the connection layer's response type.
/// Profiling is routed only when enabled, so it is a plain 404 otherwise.
pub fn router(
    metrics: Metrics,
    readiness: Readiness,
    profiler: Option<Profiler>,
) -> MapResponse<Router, fn(Response) -> held_body::Response> {
    let mut router = Router::new()
        .route("/metrics", get(render))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(MetricsState { metrics, readiness });
    if let Some(profiler) = profiler {
        router = router.merge(profile::router(profiler));
    }
    MapResponse::new(router, from_axum as fn(Response) -> held_body::Response)
}

async fn render(State(s): State<MetricsState>) -> Response {
    let mut buf = Vec::with_capacity(16 * 1024);
    match TextEncoder::new().encode(&s.metrics.registry.gather(), &mut buf) {
        Ok(()) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], buf).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "encoding metrics failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// Liveness: if this answers, the runtime is turning.
async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(s): State<MetricsState>) -> Response {
    if s.readiness.is_ready() {
        "ready\n".into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}
