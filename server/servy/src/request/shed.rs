//! Load shedding on the main listener: past `limits.max_concurrency` requests in flight,
//! answer 503 at once instead of queueing. Second layer on the request path.
//!
//! A request counts as in flight until the connection has taken its whole body (or
//! dropped it), not just until its head is ready as with tower's `ConcurrencyLimit`:
//! every servy response head is ready in microseconds, while a body can wait on the
//! client (HTTP/2 flow control) for as long as the client likes.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::BoxError;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tower::{Layer, Service};

#[derive(Clone)]
pub struct ShedLayer {
    permits: Arc<Semaphore>,
}

impl ShedLayer {
    pub fn new(max_concurrency: usize) -> Self {
        ShedLayer {
            permits: Arc::new(Semaphore::new(max_concurrency.min(Semaphore::MAX_PERMITS))),
        }
    }
}

impl<S> Layer<S> for ShedLayer {
    type Service = Shed<S>;

    fn layer(&self, inner: S) -> Shed<S> {
        Shed {
            inner,
            permits: self.permits.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Shed<S> {
    inner: S,
    permits: Arc<Semaphore>,
}

impl<S, B, RB> Service<Request<B>> for Shed<S>
where
    S: Service<Request<B>, Response = Response<RB>, Error = Infallible>,
    S::Future: Send + 'static,
    RB: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    RB::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return Box::pin(std::future::ready(Ok(overloaded())));
        };
        let response = self.inner.call(req);
        Box::pin(async move {
            let Ok(response) = response.await;
            // The inner body goes into `Permitted` as it is, and `Permitted` into an axum
            // `Body`: one box per response, not one to make it a `Body` and another here.
            Ok(response.map(|body| {
                Body::new(Permitted {
                    body,
                    _permit: permit,
                })
            }))
        })
    }
}

/// 503 with `Retry-After`, built without touching the rest of the stack.
fn overloaded() -> Response {
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

/// A response body that holds its request's permit until it is finished or dropped.
struct Permitted<B> {
    body: B,
    _permit: OwnedSemaphorePermit,
}

impl<B> HttpBody for Permitted<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body)
            .poll_frame(cx)
            .map_err(axum::Error::new)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
