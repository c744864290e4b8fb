//! The main listener: the middleware stack around one dispatch handler.
//!
//! The main listener has no routes, only the steps below, so it is a single handler
//! (a direct handler skips axum's routing work). Real routes live on the metrics listener.

use std::any::Any;
use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper::body::Incoming;
use tower::{Service, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::LimitsConfig;
use crate::metrics::Metrics;
use crate::observe::ObserveLayer;
use crate::shed::ShedLayer;
use crate::tls::acme::Challenges;
use crate::{not_found, path, redirects::Redirects, site::Site};

/// The main listener's service: the middleware stack around [`dispatch`].
pub fn service(
    app: AppState,
    metrics: Arc<Metrics>,
    limits: &LimitsConfig,
) -> impl Service<Request<Incoming>, Response = Response, Error = Infallible, Future: Send + 'static>
+ Clone
+ Send
+ 'static {
    let log_requests = app.log_requests;
    stack(dispatch.with_state(app), metrics, limits, log_requests)
}

/// The https listener's service: the same as [`service`], plus `Strict-Transport-Security`
/// on every response when `[https] hsts` is set (never on plain HTTP, RFC 6797 §7.2).
pub fn https_service(
    app: AppState,
    metrics: Arc<Metrics>,
    limits: &LimitsConfig,
    hsts: Option<HeaderValue>,
) -> impl Service<Request<Incoming>, Response = Response, Error = Infallible, Future: Send + 'static>
+ Clone
+ Send
+ 'static {
    ServiceBuilder::new()
        .map_response(move |mut response: Response| {
            if let Some(hsts) = &hsts {
                response
                    .headers_mut()
                    .insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
            }
            response
        })
        .service(service(app, metrics, limits))
}

/// The middleware, in request order (outermost first), around any inner service.
pub(crate) fn stack<S, B>(
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

/// What the request path needs, built once in `main`.
#[derive(Clone)]
pub struct AppState {
    pub site: &'static Site,
    pub redirects: Redirects,
    /// `log.requests`: write the per-request line, and so tell it what was served.
    pub log_requests: bool,
    /// Open ACME HTTP-01 challenges, when `[acme]` is on.
    pub acme: Option<Challenges>,
}

impl AppState {
    /// Attaches what was served for the request line, only when there will be one: an
    /// extension costs three allocations, a third of servy's own per request.
    fn served(&self, (mut response, served): (Response, Served)) -> Response {
        if self.log_requests {
            response.extensions_mut().insert(served);
        }
        response
    }
}

/// What a response carried, for the request log (a response extension). A 404 has none.
#[derive(Clone, Debug)]
pub enum Served {
    Asset(&'static str),
    Redirect(Arc<str>),
}

/// One request, in order:
///
/// 1. GET and HEAD only; anything else is 405 with `Allow`.
///    An open ACME HTTP-01 challenge is answered here, from memory, so no file or
///    alias can shadow it.
/// 2. Normalise the path once (or refuse it: 400/414).
/// 3. Site: embedded asset → encoding → conditional (304) → range (206/416). The
///    encoding comes first because each representation has its own ETag.
///    Files always win over aliases, so a redirect can never shadow a page.
/// 4. Redirect alias → 30x + `Location`.
/// 5. Not found: `404.html` or a plain 404; the miss nudges the redirects refresher
///    (new aliases appear without a restart) without waiting for it.
pub async fn dispatch(State(app): State<AppState>, req: Request) -> Response {
    let (parts, _body) = req.into_parts();
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
        )
            .into_response();
    }
    if let Some(key_authorization) = app.acme.as_ref().and_then(|c| c.http01(parts.uri.path())) {
        return (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            key_authorization,
        )
            .into_response();
    }
    let key = match path::normalise(parts.uri.path()) {
        Ok(key) => key,
        Err(rejection) => return rejection.into_response(),
    };
    if let Some(served) = app.site.respond(&key, &parts.method, &parts.headers) {
        return app.served(served);
    }
    if let Some(served) = app.redirects.lookup(&key, parts.uri.query()) {
        return app.served(served);
    }
    app.redirects.nudge();
    not_found::respond(app.site.not_found_page(), &parts.method)
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
