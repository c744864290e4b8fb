//! Load shedding on the main listener: past `limits.max_concurrency` requests in flight,
//! answer 503 at once instead of queueing. The first step of `service.rs`.
//!
//! A request counts as in flight until the connection has taken its whole body (or
//! dropped it), not just until its head is ready as with tower's `ConcurrencyLimit`:
//! every servy response head is ready in microseconds, while a body can wait on the
//! client (HTTP/2 flow control) for as long as the client likes.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::held_body::HeldBody;

/// The in-flight count of one listener's requests.
#[derive(Clone)]
pub struct Shed {
    permits: Arc<Semaphore>,
}

impl Shed {
    pub fn new(max_concurrency: usize) -> Shed {
        Shed {
            permits: Arc::new(Semaphore::new(max_concurrency.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// A place for one more request, or `None` at `max_concurrency`.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }

    /// `response` with its body holding `permit` until hyper is done with it.
    pub fn hold(response: Response, permit: OwnedSemaphorePermit) -> Response {
        response.map(|body| Body::new(HeldBody::new(body, Some(permit))))
    }

    /// 503 with `Retry-After`, built without asking the answer.
    pub fn overloaded() -> Response {
        let mut response = Response::new(Body::from("servy is overloaded, retry shortly\n"));
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
