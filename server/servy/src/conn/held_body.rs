//! A response body that holds something until hyper is done with it. `http1` and `http2`
//! use it to count an exchange (or a stream) as open until its last byte is written or
//! the request is abandoned, which is when hyper drops the body.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use tower::ServiceExt;

use crate::request::RequestService;

/// `body` as it was, with `held` dropped together with it.
pub struct HeldBody<T> {
    body: Body,
    _held: T,
}

impl<T> HeldBody<T> {
    pub fn new(body: Body, held: T) -> HeldBody<T> {
        HeldBody { body, _held: held }
    }
}

/// The response future of a service that wraps servy's with [`respond_holding`].
pub type HeldResponse<T> =
    Pin<Box<dyn Future<Output = Result<Response<HeldBody<T>>, Infallible>> + Send>>;

/// `service` answers `req`, and `held` lives until hyper drops the response body.
pub fn respond_holding<S: RequestService, T: Send + 'static>(
    service: S,
    req: Request<Incoming>,
    held: T,
) -> HeldResponse<T> {
    let response = service.oneshot(req);
    Box::pin(async move {
        let Ok(response) = response.await;
        Ok(response.map(|body| HeldBody::new(body, held)))
    })
}

impl<T: Unpin> hyper::body::Body for HeldBody<T> {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
