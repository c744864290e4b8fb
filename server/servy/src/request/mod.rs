//! The request layer: the main listener's service (`service.rs`: shedding, panics,
//! headers, metrics and the log line) around one dispatch, which asks the site, its
//! rules and the short links in turn.
//!
//! The main listener has no routes, only the steps below, so it is a single function.
//! Real routes live on the metrics listener.

mod host;
pub mod https_redirect;
mod observe;
mod service;
mod shed;

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use tower::Service;

use crate::config::LimitsConfig;
use crate::held_body::{Response, from_axum};
use crate::logging::RequestLog;
use crate::metrics::Metrics;
use crate::path;
use crate::request_headers::RequestHeaders;
use crate::served::Served;
use crate::short_links::Redirects;
use crate::site::Site;
use crate::site::headers::ResponseHeaders;
use crate::site::not_found;
use crate::site::rules::{Asked, Outcome, SiteRules};
use crate::tls::acme::Challenges;
pub use service::{Answer, MainService};

/// servy's request service as the connection layers take it: tower's `Service` for
/// hyper's requests, never failing, cloned per connection, `Unpin` so a connection can
/// be polled (and parked) without pinning it, its futures spawnable and `Unpin` so the
/// connection layer can hold one without a box.
pub trait RequestService:
    Service<
        Request<Incoming>,
        Response = Response,
        Error = Infallible,
        Future: Send + Unpin + 'static,
    > + Clone
    + Send
    + Unpin
    + 'static
{
}

impl<S> RequestService for S
where
    S: Service<Request<Incoming>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + Unpin
        + 'static,
    S::Future: Send + Unpin + 'static,
{
}

/// The main listener's service: [`MainService`] around [`dispatch`].
pub fn service(
    app: AppState,
    metrics: Arc<Metrics>,
    limits: &LimitsConfig,
    log: Option<RequestLog>,
) -> MainService<AppState> {
    let headers = app.headers;
    MainService::new(app, limits.max_concurrency, headers, metrics, log)
}

/// The https listener's service: the same as [`service`], plus `Strict-Transport-Security`
/// on every response when `[https] hsts` is set.
pub fn https_service(
    app: AppState,
    metrics: Arc<Metrics>,
    limits: &LimitsConfig,
    log: Option<RequestLog>,
    hsts: Option<HeaderValue>,
) -> MainService<AppState> {
    service(app, metrics, limits, log).with_hsts(hsts)
}

/// What the dispatch asks, in its order, built once in `main`: the site and its
/// `_redirects` (compiled at start-up), the short links, the open ACME HTTP-01
/// challenges (when `[acme]` is on); and the every-path headers, for responses no file
/// built.
#[derive(Clone)]
pub struct AppState {
    pub site: &'static Site,
    pub rules: &'static SiteRules,
    pub redirects: Redirects,
    pub acme: Option<Challenges>,
    pub headers: &'static ResponseHeaders,
}

impl AppState {
    /// A `_redirects` rule's answer; a rewrite to a file the site lacks is a 404.
    fn answer_rule(&self, outcome: Outcome, method: &Method) -> (Response, Option<Served>) {
        match outcome {
            Outcome::Response(response, served) => (response, Some(served)),
            Outcome::Missing => (not_found::respond(self.site.not_found_page(), method), None),
        }
    }
}

impl Answer for AppState {
    fn answer(&self, head: &Parts) -> (Response, Option<Served>) {
        dispatch(self, head)
    }
}

/// One request, in order:
///
/// 1. GET and HEAD only; anything else is 405 with `Allow`. Exactly one well-formed
///    `Host` (none is fine before HTTP/1.1 and in HTTP/2), or 400 (`host.rs`).
///    An open ACME HTTP-01 challenge is answered here, from memory, so no file or
///    alias can shadow it.
/// 2. Normalise the path once (or refuse it: 400/414).
/// 3. Site: embedded asset → encoding → conditional (304) → range (206/416). The
///    encoding comes first because each representation has its own ETag.
///    Files always win over aliases, so a redirect can never shadow a page; only a
///    forced `_redirects` rule can, and it withdrew the file at start-up (`site/rules.rs`).
/// 4. The site's `_redirects` rules for exact paths, then the short links (30x +
///    `Location`), then the site's pattern rules (`site/rules.rs` says why in that order).
/// 5. Not found: `404.html` or a plain 404; the miss nudges the redirects refresher
///    (new aliases appear without a restart) without waiting for it.
pub fn dispatch(app: &AppState, parts: &Parts) -> (Response, Option<Served>) {
    if parts.method != Method::GET && parts.method != Method::HEAD {
        let response = (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "GET, HEAD")],
        );
        return (from_axum(response.into_response()), None);
    }
    let headers = RequestHeaders::of(&parts.headers);
    if let Err(rejection) = host::check(parts.version, &headers) {
        return (from_axum(rejection.into_response()), None);
    }
    if let Some(key_authorization) = app.acme.as_ref().and_then(|c| c.http01(parts.uri.path())) {
        let response = (
            [(header::CONTENT_TYPE, "application/octet-stream")],
            key_authorization,
        );
        return (from_axum(response.into_response()), None);
    }
    let key = match path::normalise(parts.uri.path()) {
        Ok(key) => key,
        Err(rejection) => return (from_axum(rejection.into_response()), None),
    };
    if let Some((response, served)) = app.site.respond(&key, &parts.method, &headers) {
        return (response, Some(served));
    }
    let asked = Asked {
        method: &parts.method,
        headers: &headers,
        query: parts.uri.query(),
    };
    if let Some(outcome) = app.rules.exact(app.site, &key, asked) {
        return app.answer_rule(outcome, &parts.method);
    }
    if let Some((response, served)) = app.redirects.lookup(&key, parts.uri.query()) {
        return (from_axum(response), Some(served));
    }
    if let Some(outcome) = app.rules.pattern(app.site, &key, asked) {
        return app.answer_rule(outcome, &parts.method);
    }
    app.redirects.nudge();
    let response = not_found::respond(app.site.not_found_page(), &parts.method);
    (response, None)
}
