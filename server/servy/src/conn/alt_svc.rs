//! `Alt-Svc: h3=":PORT"; ma=86400` on the https listener's HTTP/1.1 and HTTP/2 responses,
//! only while the QUIC endpoint (`http3.rs`) is up: browsers learn HTTP/3 from it. It
//! wraps the https listener's service in the connection layer; the endpoint turns it on
//! when it serves and off when the drain begins.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwapOption;
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use hyper::body::Incoming;
use tower::Service;

use crate::held_body::Response;
use crate::request::RequestService;

/// How long a browser may remember the advertisement (a day, as Caddy's).
const MAX_AGE_SECONDS: u32 = 86_400;

/// The advertisement, shared by the https services and the endpoint; `None` while off.
#[derive(Clone, Default)]
pub struct AltSvc(Arc<ArcSwapOption<HeaderValue>>);

impl AltSvc {
    /// Advertises HTTP/3 on `port` from the next response on.
    pub fn advertise(&self, port: u16) {
        let value = format!("h3=\":{port}\"; ma={MAX_AGE_SECONDS}");
        let value = HeaderValue::from_str(&value).expect("digits and ASCII");
        self.0.store(Some(Arc::new(value)));
    }

    /// Stops advertising (the endpoint is draining).
    pub fn withdraw(&self) {
        self.0.store(None);
    }

    /// `service`, with the advertisement on its responses while it is on.
    pub fn wrap<S>(&self, service: S) -> WithAltSvc<S> {
        WithAltSvc {
            service,
            alt_svc: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct WithAltSvc<S> {
    service: S,
    alt_svc: AltSvc,
}

impl<S: RequestService> Service<Request<Incoming>> for WithAltSvc<S> {
    type Response = Response;
    type Error = Infallible;
    type Future = Advertised<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.service.poll_ready(cx)
    }

    fn call(&mut self, req: Request<Incoming>) -> Self::Future {
        Advertised {
            response: self.service.call(req),
            value: self.alt_svc.0.load_full(),
        }
    }
}

/// The wrapped service's future, the header added when it is ready.
pub struct Advertised<F> {
    response: F,
    value: Option<Arc<HeaderValue>>,
}

impl<F> Future for Advertised<F>
where
    F: Future<Output = Result<Response, Infallible>> + Unpin,
{
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Ok(mut response) = std::task::ready!(Pin::new(&mut self.response).poll(cx));
        if let Some(value) = self.value.take() {
            response
                .headers_mut()
                .insert(header::ALT_SVC, HeaderValue::clone(&value));
        }
        Poll::Ready(Ok(response))
    }
}
