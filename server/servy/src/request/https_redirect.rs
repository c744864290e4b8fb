//! `[http] redirect_to_https`: the plain listener answers every request with a 308 to
//! the same host and path over HTTPS. In place of the router's dispatch on that listener.
//!
//! Only a host some certificate covers is redirected; any other Host gets 421, so the
//! redirect can never send a client to a site of the client's choosing (an open
//! redirect), and never to a name whose handshake would fail anyway.

use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::host;
use super::service::{Answer, MainService};
use crate::config::LimitsConfig;
use crate::held_body;
use crate::logging::RequestLog;
use crate::metrics::Metrics;
use crate::request_headers::RequestHeaders;
use crate::served::Served;
use crate::site::headers::ResponseHeaders;
use crate::tls::Certificates;

/// The plain listener's service when `redirect_to_https` is on: the usual steps
/// (shedding, headers, metrics, the log line) around [`redirect`].
pub fn service(
    certificates: Arc<Certificates>,
    headers: &'static ResponseHeaders,
    metrics: Arc<Metrics>,
    limits: &LimitsConfig,
    log: Option<RequestLog>,
) -> MainService<RedirectToHttps> {
    let answer = RedirectToHttps(certificates);
    MainService::new(answer, limits.max_concurrency, headers, metrics, log)
}

/// The hosts the redirect may send a client to: those a certificate covers.
#[derive(Clone)]
pub struct RedirectToHttps(Arc<Certificates>);

impl Answer for RedirectToHttps {
    fn answer(&self, head: &Parts) -> (held_body::Response, Option<Served>) {
        (held_body::from_axum(redirect(&self.0, head)), None)
    }
}

/// 308 keeps the method (RFC 9110 §15.4.9), so a form POST stays a POST over HTTPS.
fn redirect(certificates: &Certificates, req: &Parts) -> Response {
    // The same Host rules as the dispatch: two Host lines, or a malformed one, are a 400.
    let host = match host::check(req.version, &RequestHeaders::of(&req.headers)) {
        Ok(host) => host,
        Err(rejection) => return rejection.into_response(),
    };
    // HTTP/1.1 carries the host in `Host`; h2c in `:authority` (the URI's).
    let authority = req.uri.authority().map(|a| a.as_str()).or(host);
    let Some(name) = authority.and_then(host::dns_name) else {
        return (StatusCode::BAD_REQUEST, "a Host header is required\n").into_response();
    };
    if !certificates.covers(&name) {
        return (
            StatusCode::MISDIRECTED_REQUEST,
            "this server has no certificate for that host\n",
        )
            .into_response();
    }
    let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
    match HeaderValue::try_from(format!("https://{name}{path}")) {
        Ok(location) => (
            StatusCode::PERMANENT_REDIRECT,
            [(header::LOCATION, location)],
        )
            .into_response(),
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}
