//! servy's response future with something held for the response's body ([`HeldBody`]):
//! `http1` and `http2` count an exchange (or a stream) as open until its last byte is
//! written or the request is abandoned, which is when hyper drops the body.
//!
//! A service that is ready answers within hyper's call to it, so the request (whose URI
//! and header values share hyper's read buffer) is dropped before hyper reads again:
//! hyper then reuses its buffer instead of allocating a new one for every request.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use axum::extract::Request;
use axum::response::Response;
use hyper::body::Incoming;
use tower::ServiceExt;
use tower::util::Oneshot;

use crate::held_body::HeldBody;
use crate::request::RequestService;

/// The response future of a service that wraps servy's with [`respond_holding`]: servy's
/// own future, unboxed, with what it holds handed to the body when the response is ready.
pub struct HeldResponse<S: RequestService, T> {
    response: Called<S>,
    held: Option<T>,
}

/// The service's future: called at once when the service was ready, else once it is
/// (boxed: it holds the whole request, and servy's services are always ready).
enum Called<S: RequestService> {
    Now(S::Future),
    WhenReady(Box<Oneshot<S, Request<Incoming>>>),
}

/// `service` answers `req`, and `held` lives until hyper drops the response body.
pub fn respond_holding<S: RequestService, T>(
    mut service: S,
    req: Request<Incoming>,
    held: T,
) -> HeldResponse<S, T> {
    // Asked with a waker that does nothing: a service that is not ready yet is asked
    // again, with the task's own waker, by `Oneshot`.
    let mut cx = Context::from_waker(Waker::noop());
    let response = match service.poll_ready(&mut cx) {
        Poll::Ready(Ok(())) => Called::Now(service.call(req)),
        Poll::Pending => Called::WhenReady(Box::new(service.oneshot(req))),
    };
    HeldResponse {
        response,
        held: Some(held),
    }
}

impl<S: RequestService, T: Unpin> Future for HeldResponse<S, T> {
    type Output = Result<Response<HeldBody<T>>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let polled = match &mut self.response {
            Called::Now(future) => Pin::new(future).poll(cx),
            Called::WhenReady(oneshot) => Pin::new(&mut **oneshot).poll(cx),
        };
        let Ok(response) = std::task::ready!(polled);
        // Polled again after Ready is a caller's bug; the body then holds nothing.
        let held = self.held.take();
        Poll::Ready(Ok(response.map(|body| HeldBody::new(body, held))))
    }
}
