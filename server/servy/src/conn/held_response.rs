//! servy's response future with something held for the response's body ([`HeldBody`]):
//! `http1` and `http2` count an exchange (or a stream) as open until its last byte is
//! written or the request is abandoned, which is when hyper drops the body.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

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
    response: Oneshot<S, Request<Incoming>>,
    held: Option<T>,
}

/// `service` answers `req`, and `held` lives until hyper drops the response body.
pub fn respond_holding<S: RequestService, T>(
    service: S,
    req: Request<Incoming>,
    held: T,
) -> HeldResponse<S, T> {
    HeldResponse {
        response: service.oneshot(req),
        held: Some(held),
    }
}

impl<S: RequestService, T: Unpin> Future for HeldResponse<S, T> {
    type Output = Result<Response<HeldBody<T>>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Ok(response) = std::task::ready!(Pin::new(&mut self.response).poll(cx));
        // Polled again after Ready is a caller's bug; the body then holds nothing.
        let held = self.held.take();
        Poll::Ready(Ok(response.map(|body| HeldBody::new(body, held))))
    }
}
