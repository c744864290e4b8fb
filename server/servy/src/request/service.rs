//! What every request on the main listener passes through, in order, around whichever
//! step answers it (the dispatch, or the redirect to HTTPS):
//!
//! 1. past `limits.max_concurrency` requests in flight, a 503 now beats a queue (`shed.rs`);
//! 2. the answer; a panic in it becomes a 500 (the panic hook logs it), and the process
//!    and every other request carry on;
//! 3. the headers every path gets (the site's `/*` rules, nosniff), and HSTS on https;
//! 4. the metrics and one log line (`observe.rs`), for 503s and 500s too.
//!
//! One plain call per request, not a stack of layers: every answer is built from memory
//! without waiting, so there is no future to box and no per-request timer to arm (a
//! timeout could only ever fire on a step that waits, and none does; a step that spins
//! stops the watchdog's pings instead).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};

use super::observe;
use super::shed::Shed;
use crate::held_body::{Response, ResponseBody};
use crate::logging::RequestLog;
use crate::metrics::Metrics;
use crate::served::Served;
use crate::site::headers::ResponseHeaders;

/// A step that answers a request from its head alone (servy serves GET and HEAD; a body
/// a client sends anyway is not read).
pub trait Answer: Clone + Send + Sync + 'static {
    /// The response, and what served it for the log line (`None` for a 404 or an error).
    fn answer(&self, head: &Parts) -> (Response, Option<Served>);
}

/// The main listener's service around `A` (see the module's steps). Cloned for every
/// request (tower's `call` takes it by `&mut`), so it is one shared pointer.
pub struct MainService<A> {
    shared: Arc<Shared<A>>,
}

impl<A> Clone for MainService<A> {
    fn clone(&self) -> Self {
        MainService {
            shared: self.shared.clone(),
        }
    }
}

#[derive(Clone)]
struct Shared<A> {
    answer: A,
    shed: Shed,
    /// The every-path headers, for responses no file built.
    headers: &'static ResponseHeaders,
    /// `Strict-Transport-Security` on every response of the https listener, when set
    /// (never on plain HTTP, RFC 6797 §7.2).
    hsts: Option<HeaderValue>,
    metrics: Arc<Metrics>,
    /// `None` with `log.requests = false` (or request lines filtered out).
    log: Option<RequestLog>,
}

impl<A: Answer> MainService<A> {
    pub fn new(
        answer: A,
        max_concurrency: usize,
        headers: &'static ResponseHeaders,
        metrics: Arc<Metrics>,
        log: Option<RequestLog>,
    ) -> MainService<A> {
        MainService {
            shared: Arc::new(Shared {
                answer,
                shed: Shed::new(max_concurrency),
                headers,
                hsts: None,
                metrics,
                log,
            }),
        }
    }

    /// Sends `hsts` as `Strict-Transport-Security` on every response.
    pub fn with_hsts(self, hsts: Option<HeaderValue>) -> MainService<A> {
        let Shared {
            answer,
            shed,
            headers,
            metrics,
            log,
            ..
        } = Arc::unwrap_or_clone(self.shared);
        MainService {
            shared: Arc::new(Shared {
                answer,
                shed,
                headers,
                hsts,
                metrics,
                log,
            }),
        }
    }
}

impl<A: Answer, B> tower::Service<Request<B>> for MainService<A> {
    type Response = Response;
    type Error = Infallible;
    type Future = Ready<Result<Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = &*self.shared;
        let start = Instant::now();
        let (head, _unread_body) = req.into_parts();
        let (response, served) = match this.shed.admit() {
            None => (Shed::overloaded(), None),
            Some(permit) => {
                let (mut response, served) =
                    catch_unwind(AssertUnwindSafe(|| this.answer.answer(&head)))
                        .unwrap_or_else(|_| (panicked(), None));
                Shed::hold(&mut response, permit);
                (response, served)
            }
        };
        // A file's response carries the every-path headers already: each file's own
        // list starts with the defaults (`site/headers.rs`).
        let mut response = match served {
            Some(Served::Asset(_)) => response,
            _ => this.headers.complete(response),
        };
        if let Some(hsts) = &this.hsts {
            response
                .headers_mut()
                .insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        observe::record(
            &this.metrics,
            this.log.as_ref(),
            &head,
            &response,
            served,
            start,
        );
        ready(Ok(response))
    }
}

fn panicked() -> Response {
    let mut response = Response::new(ResponseBody::from_static(b"internal server error\n"));
    *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use tower::ServiceExt;

    use super::*;

    #[derive(Clone)]
    struct Panics;

    impl Answer for Panics {
        fn answer(&self, _: &Parts) -> (Response, Option<Served>) {
            panic!("a bug in a handler");
        }
    }

    fn counted(metrics: &Metrics, status: &str) -> u64 {
        metrics.response_status.with_label_values(&[status]).get()
    }

    #[tokio::test]
    async fn a_panic_becomes_a_counted_500_with_the_every_path_headers() {
        let metrics = Arc::new(Metrics::new());
        let headers = Box::leak(Box::new(ResponseHeaders::new(Default::default(), &[])));
        let svc = MainService::new(Panics, 16, headers, metrics.clone(), None);
        let Ok(response) = svc.clone().oneshot(Request::new(())).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(
            response
                .headers()
                .contains_key(header::X_CONTENT_TYPE_OPTIONS)
        );
        assert_eq!(counted(&metrics, "500"), 1);
        // The same service answers the next request.
        let Ok(response) = svc.oneshot(Request::new(())).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(metrics.requests.get(), 2);
    }
}
