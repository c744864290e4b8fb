//! servy's response body, and what it holds until hyper is done with it: the request
//! layer's place among the requests in flight ([`InFlight`]), the connection layer's
//! exchange and stream counts ([`HeldBody`]). Below both layers, so each wraps a body
//! the same way.
//!
//! Bytes from the binary, or none, are carried as they are: no box, no allocation, so a
//! steady-state response allocates nothing here. Any other body (an error page, a
//! redirect built by axum) is axum's boxed body, moved in as it is.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

/// A response as the request layer hands it to the connection layer.
pub type Response = axum::http::Response<ResponseBody>;

/// `response` (axum's, with a boxed body) as a [`Response`].
pub fn from_axum(response: axum::response::Response) -> Response {
    response.map(ResponseBody::from)
}

/// servy's response body (see the module).
pub struct ResponseBody {
    content: Content,
    /// Given back when hyper drops the body.
    _in_flight: Option<InFlight>,
}

enum Content {
    /// The whole body, until hyper takes it; `None` once taken, or for no body.
    Whole(Option<Bytes>),
    Boxed(Body),
}

impl ResponseBody {
    /// No body.
    pub fn empty() -> ResponseBody {
        ResponseBody::whole(None)
    }

    /// `bytes` that live as long as the process (the binary's own).
    pub fn from_static(bytes: &'static [u8]) -> ResponseBody {
        ResponseBody::whole(Some(Bytes::from_static(bytes)))
    }

    fn whole(bytes: Option<Bytes>) -> ResponseBody {
        ResponseBody {
            content: Content::Whole(bytes),
            _in_flight: None,
        }
    }

    /// Holds `in_flight` until hyper drops the body.
    pub fn hold(&mut self, in_flight: InFlight) {
        self._in_flight = Some(in_flight);
    }
}

impl From<Body> for ResponseBody {
    fn from(body: Body) -> ResponseBody {
        ResponseBody {
            content: Content::Boxed(body),
            _in_flight: None,
        }
    }
}

impl hyper::body::Body for ResponseBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match &mut self.content {
            Content::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Content::Boxed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.content {
            Content::Whole(bytes) => bytes.is_none(),
            Content::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.content {
            Content::Whole(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            Content::Boxed(body) => body.size_hint(),
        }
    }
}

/// One place among a bounded number (a listener's requests in flight), given back when
/// dropped.
pub struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    /// A place, or `None` when `count` already holds `limit`.
    pub fn take(count: &Arc<AtomicUsize>, limit: usize) -> Option<InFlight> {
        if count.fetch_add(1, Ordering::AcqRel) >= limit {
            count.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(InFlight(count.clone()))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `body` as it was, with `held` dropped together with it.
pub struct HeldBody<T> {
    body: ResponseBody,
    _held: Option<T>,
}

impl<T> HeldBody<T> {
    pub fn new(body: ResponseBody, held: Option<T>) -> HeldBody<T> {
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

#[cfg(test)]
mod tests {
    use hyper::body::Body as _;

    use super::*;

    #[test]
    fn in_flight_places_are_bounded_and_given_back() {
        let count = Arc::new(AtomicUsize::new(0));
        let first = InFlight::take(&count, 2).expect("a place");
        let second = InFlight::take(&count, 2).expect("a place");
        assert!(InFlight::take(&count, 2).is_none());
        drop(first);
        let third = InFlight::take(&count, 2).expect("a place given back");
        drop((second, third));
        assert_eq!(count.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_whole_body_says_its_size_and_ends_after_one_frame() {
        let mut body = ResponseBody::from_static(b"hello");
        assert_eq!(body.size_hint().exact(), Some(5));
        assert!(!body.is_end_stream());
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let Poll::Ready(Some(Ok(frame))) = Pin::new(&mut body).poll_frame(&mut cx) else {
            panic!("one data frame");
        };
        assert_eq!(frame.into_data().ok(), Some(Bytes::from_static(b"hello")));
        assert!(body.is_end_stream());
        assert!(matches!(
            Pin::new(&mut body).poll_frame(&mut cx),
            Poll::Ready(None)
        ));
        assert_eq!(ResponseBody::empty().size_hint().exact(), Some(0));
    }
}
