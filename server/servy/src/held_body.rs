//! A response body that holds something until hyper is done with it: the connection
//! layer's exchange and stream counts, and the request layer's shedding permit. Below
//! both layers, so each wraps a body the same way.

use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

/// `body` as it was, with `held` dropped together with it.
pub struct HeldBody<T> {
    body: Body,
    _held: Option<T>,
}

impl<T> HeldBody<T> {
    pub fn new(body: Body, held: Option<T>) -> HeldBody<T> {
        HeldBody { body, _held: held }
    }
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
