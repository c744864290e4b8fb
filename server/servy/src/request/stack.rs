//! The middleware every request on the main listener passes through, in request order,
//! around whichever handler answers it: the dispatch (`request::service`) or the
//! redirect to HTTPS (`https_redirect`).

use std::any::Any;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use tower::{Service, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use super::observe::ObserveLayer;
use super::shed::ShedLayer;
use crate::config::LimitsConfig;
use crate::metrics::Metrics;

/// The middleware, in request order (outermost first), around any inner service.
pub fn stack<S, B>(
    inner: S,
    metrics: Arc<Metrics>,
    limits: &LimitsConfig,
    log_requests: bool,
) -> impl Service<Request<B>, Response = Response, Error = Infallible, Future: Send + 'static>
+ Clone
+ Send
+ 'static
where
    S: Service<Request<B>, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    ServiceBuilder::new()
        // Outermost, so 503s and caught panics are counted and logged like any response.
        .layer(ObserveLayer::new(metrics, log_requests))
        // Bounded work: past max_concurrency requests in flight, a 503 now beats a queue.
        .layer(ShedLayer::new(limits.max_concurrency))
        // Every response here is ready in microseconds; one that is not is a wedge, and
        // the client should hear so rather than hang.
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            limits.request_timeout,
        ))
        // A panic in one request becomes a 500 (the panic hook logs it); the process and
        // every other request carry on.
        .layer(CatchPanicLayer::custom(panicked))
        .service(inner)
}

fn panicked(_: Box<dyn Any + Send + 'static>) -> Response {
    let mut response = Response::new(Body::from("internal server error\n"));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tower::ServiceExt;

    use super::*;

    fn limits() -> LimitsConfig {
        LimitsConfig {
            request_timeout: Duration::from_millis(100),
            ..LimitsConfig::default()
        }
    }

    async fn call<S>(svc: S) -> Response
    where
        S: Service<Request<Body>, Response = Response, Error = Infallible>,
    {
        let Ok(r) = svc.oneshot(Request::new(Body::empty())).await;
        r
    }

    fn counted(metrics: &Metrics, status: &str) -> u64 {
        metrics.response_status.with_label_values(&[status]).get()
    }

    #[tokio::test]
    async fn a_panic_becomes_a_counted_500() {
        let metrics = Arc::new(Metrics::new());
        let inner = tower::service_fn(|_: Request<Body>| async {
            if true {
                panic!("a bug in a handler");
            }
            Ok::<_, Infallible>(Response::new(Body::empty()))
        });
        let svc = stack(inner, metrics.clone(), &limits(), false);
        let response = call(svc.clone()).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(counted(&metrics, "500"), 1);
        // The same service answers the next request.
        assert_eq!(call(svc).await.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(metrics.requests.get(), 2);
    }

    #[tokio::test]
    async fn a_wedged_handler_times_out_with_503() {
        let metrics = Arc::new(Metrics::new());
        let inner = tower::service_fn(|_: Request<Body>| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, Infallible>(Response::new(Body::empty()))
        });
        let response = call(stack(inner, metrics.clone(), &limits(), false)).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(counted(&metrics, "503"), 1);
    }
}
