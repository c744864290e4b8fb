//! Load shedding on the main listener: past `limits.max_concurrency` requests in flight,
//! answer 503 at once instead of queueing. The first step of `service.rs`.
//!
//! A request counts as in flight until the connection has taken its whole body (or
//! dropped it), not just until its head is ready as with tower's `ConcurrencyLimit`:
//! every servy response head is ready in microseconds, while a body can wait on the
//! client (HTTP/2 flow control) for as long as the client likes.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use axum::http::{HeaderValue, StatusCode, header};

use crate::held_body::{InFlight, Response, ResponseBody};

/// The in-flight count of one listener's requests.
#[derive(Clone)]
pub struct Shed {
    in_flight: Arc<AtomicUsize>,
    max_concurrency: usize,
}

impl Shed {
    pub fn new(max_concurrency: usize) -> Shed {
        Shed {
            in_flight: Arc::new(AtomicUsize::new(0)),
            max_concurrency,
        }
    }

    /// A place for one more request, or `None` at `max_concurrency`.
    pub fn admit(&self) -> Option<InFlight> {
        InFlight::take(&self.in_flight, self.max_concurrency)
    }

    /// `response`'s body holds `in_flight` until hyper is done with it (set in place: a
    /// response is a few hundred bytes to move).
    pub fn hold(response: &mut Response, in_flight: InFlight) {
        response.body_mut().hold(in_flight);
    }

    /// 503 with `Retry-After`, built without asking the answer.
    pub fn overloaded() -> Response {
        let body = ResponseBody::from_static(b"servy is overloaded, retry shortly\n");
        let mut response = Response::new(body);
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        let headers = response.headers_mut();
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        response
    }
}
